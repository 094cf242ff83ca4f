"""Acting on finished requests: retry a failed one, delete a result or a failure, sweep old ones away.

The web console and the retention sweep call these; they move and remove files through `files`,
like every other change to the folders.
"""

from __future__ import annotations

import json
import posixpath
import threading
import time
from pathlib import Path

import structlog

from . import files
from .config import RetentionConfig
from .errors import WatcherError
from .folders import Layout
from .names import REQUEST_SUFFIXES, is_tracked_name, is_tracked_part
from .requests import Limits, attachments_of, decode_file

log = structlog.get_logger("watcher.housekeeping")


def _read(path: Path, limits: Limits) -> dict[str, object]:
    try:
        return decode_file(path.read_bytes(), path.name, limits)
    except (WatcherError, OSError):
        return {}


def _failed_request(layout: Layout, base: str) -> Path:
    """`failed/<base>.json` or `.txt`: the request a failure kept (`base` relative to failed/, no suffix)."""
    for suffix in REQUEST_SUFFIXES:
        path = layout.failed / f"{base}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(layout.failed / f"{base}.json")


def retry_failed(layout: Layout, base: str, limits: Limits) -> Path:
    """Move a failed request (and the attachments beside it) back to its folder in the inbox; its new path.

    The request keeps its name, or takes the next free one; its attachments go first, so the daemon
    never sees the request before them. An attachment the inbox already holds is not replaced.
    """
    request = _failed_request(layout, base)
    folder = posixpath.dirname(base)
    inbox = layout.inbox / folder
    inbox.mkdir(parents=True, exist_ok=True)
    for name in attachments_of(_read(request, limits)):
        source = layout.failed / folder / name
        if source.is_file() and not (inbox / name).exists():
            files.move_no_clobber(source, inbox)
    final = files.move_no_clobber(request, inbox, suffix_from=request.suffix)
    files.remove(layout.failed / f"{base}.error.json")
    return final


def delete_failed(layout: Layout, base: str) -> None:
    """Remove a failed request and its error file."""
    for suffix in (*REQUEST_SUFFIXES, ".error.json"):
        files.remove(layout.failed / f"{base}{suffix}")


def delete_done(layout: Layout, sidecar_name: str) -> None:
    """Remove a result: its audio and sidecar, and its request in done/ when that is the one it answered."""
    sidecar_path = layout.outbox / sidecar_name
    try:
        sidecar = json.loads(sidecar_path.read_bytes())
    except (OSError, ValueError):
        sidecar = {}
    audio = sidecar.get("audio") if isinstance(sidecar, dict) else None
    if isinstance(audio, str) and "/" not in audio and is_tracked_part(audio):
        files.remove(sidecar_path.parent / audio)
    request_id = sidecar.get("request_id") if isinstance(sidecar, dict) else None
    if isinstance(request_id, str) and is_tracked_name(request_id):  # never a path that leaves done/
        for suffix in REQUEST_SUFFIXES:
            answered = layout.done / f"{request_id}{suffix}"
            if answered.is_file() and _read(answered, Limits(request_bytes=1 << 20)) == sidecar.get("request"):
                files.remove(answered)
    files.remove(sidecar_path)


def sweep(layout: Layout, retention: RetentionConfig, now: float) -> list[tuple[Path, float]]:
    """Delete files in done/, failed/ and the outbox (subfolders too) older than their folder's limit.

    Never the inbox or processing/, never our own temporaries, and never an output a journal in
    processing/ still names (a publication finishing). Returns each deleted file with its age in days.
    """
    protected = _still_publishing(layout)
    deleted = []
    for folder, days in ((layout.done, retention.done_days), (layout.failed, retention.failed_days),
                         (layout.outbox, retention.outbox_days)):
        if not days or not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            try:
                age = (now - path.lstat().st_mtime) / 86400
            except OSError:
                continue
            if age >= days and not path.is_dir() and not files.is_temp(path) and path not in protected:
                files.remove(path)
                deleted.append((path, age))
    return deleted


def _still_publishing(layout: Layout) -> set[Path]:
    return {layout.outbox / o[key] for o in layout.journaled_outputs() for key in ("audio", "sidecar") if key in o}


class Sweeper:
    """The retention sweep on a thread of its own: at start, then every `retention.interval` seconds."""

    def __init__(self, layout: Layout, retention: RetentionConfig) -> None:
        self.layout = layout
        self.retention = retention
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)

    def start(self) -> None:
        if self.retention.enabled:
            self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:  # the first sweep runs even when a stop comes at once (`run --once` on an empty inbox)
            for path, age in sweep(self.layout, self.retention, time.time()):
                log.info("retention_deleted", path=str(path), age_days=round(age, 2))
            if self._stopped.wait(self.retention.interval):
                return
