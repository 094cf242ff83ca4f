"""Who may use the console, and from where.

With a token configured (required when the console listens beyond loopback), the API takes it as a
bearer header, and the page takes it once through a login form that sets an HttpOnly cookie. Tokens
are compared in constant time. A state-changing request a browser sends from another origin is
refused, whoever sends it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

COOKIE = "musicgen_watcher_session"
_OPEN_PATHS = ("/login", "/static/")
_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


#: the names a console on loopback may be reached by: any other Host is a page that rebound its DNS to us
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})


class Guard:
    """Checks requests against the token (if any), their origin and, on loopback, the host they name."""

    def __init__(self, token: str | None, loopback: bool) -> None:
        self.token = token
        self.loopback = loopback

    @property
    def required(self) -> bool:
        return self.token is not None

    @property
    def session(self) -> str:
        """The cookie value a login sets: derived from the token, so a new token logs everyone out."""
        assert self.token is not None
        return hmac.new(self.token.encode(), b"musicgen-watcher console session", hashlib.sha256).hexdigest()

    def token_matches(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def allows(self, request: Request) -> bool:
        if self.token is None:
            return True
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer ") and self.token_matches(header[7:].strip()):
            return True
        cookie = request.cookies.get(COOKIE, "")
        return hmac.compare_digest(cookie.encode(), self.session.encode())

    async def __call__(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """The middleware: a loopback console's own host names, same origin for changes, then the token."""
        if self.loopback and urlsplit(f"//{request.headers.get('host', '')}").hostname not in _LOOPBACK_HOSTS:
            return JSONResponse({"error": {"code": "wrong_host", "message": "This console answers only to "
                                           "localhost and 127.0.0.1."}}, status_code=403)
        if request.method in _CHANGES and not same_origin(request):
            return JSONResponse({"error": {"code": "cross_origin", "message": "Requests that change something "
                                           "must come from the console's own page."}}, status_code=403)
        path = request.url.path
        if path.startswith(_OPEN_PATHS) or self.allows(request):
            return await call_next(request)
        if path.startswith("/api/"):
            return JSONResponse({"error": {"code": "unauthorized", "message": "A valid token is required: "
                                           "send it as 'Authorization: Bearer <token>'."}}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        return RedirectResponse("/login", status_code=303)


def same_origin(request: Request) -> bool:
    """Whether a browser sent this from our own page. Clients that send no Origin (curl, scripts) pass."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")
