"""The console's web application: the page, the login, the static files, and the API under /api."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from .. import __version__
from ..config import Settings
from ..folders import Layout
from ..intake import Policy
from ..models import ALIASES
from ..options import AudioFormat
from .api import Context, api
from .auth import COOKIE, Guard
from .board import Board
from .feed import Feed

HERE = Path(__file__).parent


def create_app(settings: Settings) -> FastAPI:
    """The console for the folders of `settings`."""
    layout = Layout.from_settings(settings)
    policy = Policy.from_settings(settings)
    board = Board(layout, settings.request_limits, settings.watch.depth, settings.daemon.heartbeat_timeout)
    feed = Feed(board)
    guard = Guard(settings.web.token, settings.web.loopback)
    templates = Jinja2Templates(directory=HERE / "templates")

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warming = asyncio.create_task(asyncio.to_thread(board.warm))
        task = asyncio.create_task(feed.run())
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await warming

    app = FastAPI(title="musicgen-watcher console", version=__version__, openapi_url="/api/openapi.json",
                  docs_url=None, redoc_url=None, lifespan=lifespan)
    app.middleware("http")(guard)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.state.context = Context(board, feed, policy, layout.inbox, settings.web.max_upload_bytes)
    app.include_router(api)
    page: dict[str, Any] = {"version": __version__, "default_model": policy.default_model,
                            "models": [m for m in policy.allowed_models if m not in ALIASES],
                            "formats": [f.value for f in AudioFormat], "max_duration": policy.limits.max_duration,
                            "login": guard.required}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index(request: Request) -> Response:
        return templates.TemplateResponse(request, "index.html", page)

    @app.get("/login", response_class=HTMLResponse, include_in_schema=False)
    def login_form(request: Request) -> Response:
        return templates.TemplateResponse(request, "login.html", {**page, "wrong": False})

    @app.post("/login", include_in_schema=False)
    def login(request: Request, token: str = Form("")) -> Response:
        if not guard.token_matches(token):
            return templates.TemplateResponse(request, "login.html", {**page, "wrong": True}, status_code=401)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(COOKIE, guard.session, httponly=True, samesite="strict")
        return response

    return app
