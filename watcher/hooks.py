"""Post-processing hooks: a command run after a request ends, off the main loop, never fatal."""

from __future__ import annotations

import os
import shlex
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import structlog

from .config import HooksConfig

log = structlog.get_logger("watcher.hooks")


class Hooks:
    """Runs `hooks.on_done` / `hooks.on_failed` on a few threads of their own, so a slow hook never delays the queue."""

    def __init__(self, config: HooksConfig) -> None:
        self.config = config
        self._pool: ThreadPoolExecutor | None = None

    def run(self, status: str, request_id: str, paths: dict[str, Path]) -> None:
        """Start the hook for `status` (done or failed) with the request id and paths in its environment."""
        command = self.config.on_done if status == "done" else self.config.on_failed
        if not command:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.config.concurrency, thread_name_prefix="hook")
        env = dict(os.environ, MUSICGEN_WATCHER_STATUS=status, MUSICGEN_WATCHER_REQUEST_ID=request_id)
        env.update({f"MUSICGEN_WATCHER_{key.upper()}": str(path) for key, path in paths.items()})
        self._pool.submit(self._call, command, request_id, env)

    def close(self) -> None:
        """Wait for the hooks still running (each is bounded by `hooks.timeout`)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _call(self, command: str, request_id: str, env: dict[str, str]) -> None:
        """Split like a shell line, run without a shell; a failure or a timeout is logged."""
        try:
            result = subprocess.run(shlex.split(command), env=env, timeout=self.config.timeout, capture_output=True,
                                    text=True, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("hook_failed", request_id=request_id, hook=command, error=str(exc))
            return
        if result.returncode != 0:
            log.warning("hook_failed", request_id=request_id, hook=command, exit_code=result.returncode,
                        stderr=result.stderr[-500:])
        else:
            log.info("hook_ran", request_id=request_id, hook=command)
