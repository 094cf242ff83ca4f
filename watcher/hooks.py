"""Post-processing hooks: a command run after a request ends, never fatal."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import structlog

from .config import HooksConfig

log = structlog.get_logger("watcher.hooks")


def run_hook(config: HooksConfig, status: str, request_id: str, paths: dict[str, Path]) -> None:
    """Run `hooks.on_done` or `hooks.on_failed` with the request id and paths in the environment.

    The command is split like a shell would (no shell runs it); a failure or a timeout is logged.
    """
    command = config.on_done if status == "done" else config.on_failed
    if not command:
        return
    env = dict(os.environ, MUSICGEN_WATCHER_STATUS=status, MUSICGEN_WATCHER_REQUEST_ID=request_id)
    env.update({f"MUSICGEN_WATCHER_{key.upper()}": str(path) for key, path in paths.items()})
    try:
        result = subprocess.run(shlex.split(command), env=env, timeout=config.timeout, capture_output=True,
                                text=True, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("hook_failed", request_id=request_id, hook=command, error=str(exc))
        return
    if result.returncode != 0:
        log.warning("hook_failed", request_id=request_id, hook=command, exit_code=result.returncode,
                    stderr=result.stderr[-500:])
    else:
        log.info("hook_ran", request_id=request_id, hook=command)
