"""The line of waiting requests: what pickup says is complete, read just enough to order and batch it.

Nothing here claims or fails a request: an invalid file still gets its place in line (priority 0)
and fails properly, with its error, once claimed.

The line is kept in order and updated only for the names pickup reports as changed, so a step
costs the same with ten requests waiting as with ten thousand (apart from one pass over the line).
"""

from __future__ import annotations

import bisect
import os
import time
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass

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
    entry: Entry
    first_seen: float
    attachments: tuple[str, ...]
    #: every attachment was there once: no need to look again
    arrived: bool


class Lineup:
    """Complete request files in the inbox, each read once per change pickup reports."""

    def __init__(self, pickup: Pickup, settings: Settings, resolve: Callable[[str], ResolvedModel]) -> None:
        self.pickup = pickup
        self.settings = settings
        self.limits = settings.request_limits
        self.resolve = resolve
        self._index: dict[str, _Inspected] = {}
        self._order: list[Entry] = []  # the entries of _index, by Entry.order
        self._wanted: Counter[str] = Counter()  # attachment name -> requests in line that refer to it
        self._keys: dict[Hashable, Hashable] = {}  # one shared object per distinct batch key
        self._unreadable: set[str] = set()  # complete, but reading failed: tried again every step

    def __contains__(self, name: object) -> bool:
        return name in self._index

    def __bool__(self) -> bool:
        return bool(self._index)

    def eligible(self) -> list[Entry]:
        """Requests that may be claimed now, in order; one whose attachment has not arrived waits (up to a limit)."""
        now = time.monotonic()
        for name in self.pickup.poll() | self._unreadable:
            old = self._drop(name)
            if self.pickup.is_ready(name):
                self._inspect(name, now, old.first_seen if old else now)
        wait = self.settings.watch.attachment_wait
        entries = []
        for entry in self._order:
            inspected = self._index[entry.name]
            if not inspected.arrived:
                inbox = self.pickup.inbox
                inspected.arrived = all(os.path.lexists(inbox / a) for a in inspected.attachments)
                if not inspected.arrived and now - inspected.first_seen < wait:
                    continue
            entries.append(entry)
        return entries

    def forget(self, name: str) -> None:
        """Drop a request that is being claimed."""
        self._drop(name)
        self.pickup.forget(name)

    def attachments(self, *, excluding: str) -> set[str]:
        """Attachment names the waiting requests (but `excluding`) refer to."""
        own = Counter(self._index[excluding].attachments) if excluding in self._index else Counter[str]()
        return {name for name, count in self._wanted.items() if count > own[name]}

    def unread(self) -> set[str]:
        """Request names in the inbox that are not in line (still being written, or unreadable)."""
        return self.pickup.known() - self._index.keys()

    def _drop(self, name: str) -> _Inspected | None:
        self._unreadable.discard(name)
        inspected = self._index.pop(name, None)
        if inspected is not None:
            entry = inspected.entry
            del self._order[bisect.bisect_left(self._order, entry.order(), key=Entry.order)]
            for attachment in inspected.attachments:
                self._wanted[attachment] -= 1
                if not self._wanted[attachment]:
                    del self._wanted[attachment]
            if not self._index:
                self._keys.clear()
        return inspected

    def _inspect(self, name: str, now: float, first_seen: float) -> None:
        path = self.pickup.inbox / name
        priority, model, key = 0, None, None
        attachments: tuple[str, ...] = ()
        try:
            mtime = path.stat().st_mtime
            fields = decode_request(path.read_bytes()[: self.limits.request_bytes + 1], self.limits)
            attachments = attachments_of(fields)
            request = validate_request(fields, self.limits)
            priority = request.priority
            model = self.resolve(request.model or self.settings.engine.default_model).name
            key = batch_key(request, model)
        except WatcherError:
            pass
        except FileNotFoundError:
            self.pickup.forget(name)
            return
        except OSError:
            self._unreadable.add(name)
            return
        log.info("discovered", request_id=path.stem, priority=priority, model=model)
        if key is not None:
            key = self._keys.setdefault(key, key)
        entry = Entry(name, priority, mtime, model, key)
        self._index[name] = _Inspected(entry, first_seen, attachments, arrived=not attachments)
        bisect.insort(self._order, entry, key=Entry.order)
        self._wanted.update(attachments)
