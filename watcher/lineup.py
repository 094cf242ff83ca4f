"""The line of waiting requests: what pickup says is complete, read just enough to order and batch it.

Nothing here claims or fails a request: an invalid file still gets its place in line (priority 0)
and fails properly, with its error, once claimed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from .config import Settings
from .errors import WatcherError
from .models import ResolvedModel
from .pickup import Pickup
from .queue import Entry, batch_key
from .requests import attachments_of, decode_request, validate_request

log = structlog.get_logger("watcher.lineup")


@dataclass(slots=True)
class _Inspected:
    size: int
    mtime_ns: int
    first_seen: float
    entry: Entry
    attachments: tuple[str, ...]


class Lineup:
    """Complete request files in the inbox, each read once per change of size or mtime."""

    def __init__(self, pickup: Pickup, settings: Settings, resolve: Callable[[str], ResolvedModel]) -> None:
        self.pickup = pickup
        self.settings = settings
        self.limits = settings.request_limits
        self.resolve = resolve
        self._index: dict[str, _Inspected] = {}

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __bool__(self) -> bool:
        return bool(self._index)

    def eligible(self) -> list[Entry]:
        """Requests that may be claimed now; one whose attachment has not arrived waits (up to a limit)."""
        now = time.monotonic()
        ready = self.pickup.ready()
        for gone in set(self._index) - {p.name for p in ready}:
            del self._index[gone]
        entries = []
        for path in ready:
            inspected = self._inspect(path, now)
            if inspected is None:
                continue
            inbox = self.pickup.inbox
            missing = [a for a in inspected.attachments if not os.path.lexists(inbox / a)]
            if missing and now - inspected.first_seen < self.settings.watch.attachment_wait:
                continue
            entries.append(inspected.entry)
        return entries

    def forget(self, name: str) -> None:
        """Drop a request that is being claimed."""
        self._index.pop(name, None)
        self.pickup.forget(name)

    def attachments(self, *, excluding: str) -> set[str]:
        """Attachment names the waiting requests (but `excluding`) refer to."""
        return {a for name, seen in self._index.items() if name != excluding for a in seen.attachments}

    def _inspect(self, path: Path, now: float) -> _Inspected | None:
        try:
            stat = path.stat()
        except FileNotFoundError:
            self.pickup.forget(path.name)
            return None
        known = self._index.get(path.name)
        if known and (known.size, known.mtime_ns) == (stat.st_size, stat.st_mtime_ns):
            return known
        priority, model, key = 0, None, None
        attachments: tuple[str, ...] = ()
        try:
            fields = decode_request(path.read_bytes()[: self.limits.request_bytes + 1], self.limits)
            attachments = attachments_of(fields)
            request = validate_request(fields, self.limits)
            priority = request.priority
            model = self.resolve(request.model or self.settings.engine.default_model).name
            key = batch_key(request, model)
        except WatcherError:
            pass
        except OSError:
            return None
        log.info("discovered", request_id=path.stem, priority=priority, model=model)
        inspected = _Inspected(stat.st_size, stat.st_mtime_ns, known.first_seen if known else now,
                               Entry(path, priority, stat.st_mtime, model, key), attachments)
        self._index[path.name] = inspected
        return inspected
