"""Acting on finished requests: retry a failed one, delete a result or a failure.

The web console calls these; they move and remove files through `files`, like every other change
to the folders.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import files
from .errors import WatcherError
from .folders import Layout
from .requests import Limits, attachments_of, decode_request


def _read(path: Path, limits: Limits) -> dict[str, object]:
    try:
        return decode_request(path.read_bytes(), limits)
    except (WatcherError, OSError):
        return {}


def retry_failed(layout: Layout, base: str, limits: Limits) -> Path:
    """Move `failed/<base>.json` (and the attachments beside it) back to the inbox; returns its new path.

    The request keeps its name, or takes the next free one; its attachments go first, so the daemon
    never sees the request before them. An attachment the inbox already holds is not replaced.
    """
    request = layout.failed / f"{base}.json"
    for name in attachments_of(_read(request, limits)):
        source = layout.failed / name
        if source.is_file() and not (layout.inbox / name).exists():
            files.move_no_clobber(source, layout.inbox)
    final = files.move_no_clobber(request, layout.inbox, suffix_from=".json")
    files.remove(layout.failed / f"{base}.error.json")
    return final


def delete_failed(layout: Layout, base: str) -> None:
    """Remove a failed request and its error file."""
    files.remove(layout.failed / f"{base}.json")
    files.remove(layout.failed / f"{base}.error.json")


def delete_done(layout: Layout, sidecar_name: str) -> None:
    """Remove a result: its audio and sidecar, and its request in done/ when that is the one it answered."""
    sidecar_path = layout.outbox / sidecar_name
    try:
        sidecar = json.loads(sidecar_path.read_bytes())
    except (OSError, ValueError):
        sidecar = {}
    audio = sidecar.get("audio") if isinstance(sidecar, dict) else None
    if isinstance(audio, str) and "/" not in audio and not audio.startswith("."):
        files.remove(layout.outbox / audio)
    request_id = sidecar.get("request_id") if isinstance(sidecar, dict) else None
    if isinstance(request_id, str) and "/" not in request_id:
        answered = layout.done / f"{request_id}.json"
        if answered.is_file() and _read(answered, Limits(request_bytes=1 << 20)) == sidecar.get("request"):
            files.remove(answered)
    files.remove(sidecar_path)
