"""The console on a thread of its own: uvicorn serving the app beside the daemon's loop.

The socket is bound before the thread starts, so a port already taken is a clear fatal error at
start. The server has its own event loop and reads the folders in its own threads: a slow or failing
browser costs the generation loop nothing.
"""

from __future__ import annotations

import socket
import threading
import time

import structlog
import uvicorn

from ..config import Settings
from ..errors import FatalCode, FatalError
from .app import create_app

log = structlog.get_logger("watcher.web")


class Console:
    """Starts and stops the web console."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        config = uvicorn.Config(create_app(settings), log_config=None, access_log=False, lifespan="on",
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        web = self.settings.web
        family = socket.AF_INET6 if ":" in web.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((web.host, web.port))
        except OSError as exc:
            sock.close()
            raise FatalError(FatalCode.port_unavailable,
                             f"web.port {web.port} on {web.host} cannot be served: {exc.strerror}") from None
        sock.listen(128)
        self._thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, name="web-console",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            raise FatalError(FatalCode.port_unavailable, "the web console did not start")
        log.info("console", url=f"http://{web.host}:{web.port}/", token_required=web.token is not None)

    def stop(self) -> None:
        if self._thread is not None:
            self.server.should_exit = True
            self._thread.join(timeout=10)
            self._thread = None
