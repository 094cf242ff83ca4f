"""The line of waiting requests: what pickup says is complete, read just enough to order and batch it.

Nothing here claims or fails a request: an invalid file still gets its place in line (priority 0)
and fails properly, with its error, once claimed. A request whose attachments are not complete yet
waits, up to `watch.attachment_wait` from the moment the request itself was complete.

The line is kept in order and updated only for the names pickup reports as changed, so a step
costs the same with ten requests waiting as with ten thousand (apart from one pass over the line).
"""

from __future__ import annotations

import bisect
import time
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass

import structlog

from .errors import TransientError, WatcherError
from .intake import Policy, check_fields
from .names import beside, is_request_name, request_id
from .pickup import Pickup
from .presets import Presets, merged
from .requests import attachments_of, decode_file
from .schedule import Entry, batch_key

log = structlog.get_logger("watcher.lineup")


@dataclass(slots=True)
class _Inspected:
    entry: Entry
    attachments: tuple[str, ...]


class Lineup:
    """Complete request files in the inbox, each read once per change pickup reports."""

    def __init__(self, pickup: Pickup, policy: Policy, presets: Presets, attachment_wait: float) -> None:
        self.pickup = pickup
        self.policy = policy
        self.presets = presets
        self.attachment_wait = attachment_wait
        self._index: dict[str, _Inspected] = {}
        self._order: list[Entry] = []  # the entries of _index, by Entry.order
        self._wanted: Counter[str] = Counter()  # attachment name -> requests in line that refer to it
        self._keys: dict[Hashable, Hashable] = {}  # one shared object per distinct batch key
        self._unreadable: set[str] = set()  # complete, but reading failed: tried again every step
        self._deferred: dict[str, float] = {}  # name -> time.monotonic() before which it is not offered

    def __bool__(self) -> bool:
        return bool(self._index)

    def eligible(self) -> list[Entry]:
        """Requests that may be claimed now, in order; one whose attachments are not complete waits (up to a limit)."""
        now = time.monotonic()
        for name in self.pickup.poll() | self._unreadable:
            old = self._drop(name)
            if is_request_name(name) and self.pickup.is_complete(name):
                self._inspect(name, old.entry.ready_at if old else now)
        return [entry for entry in self._order if self._may_go(entry, now)]

    def _may_go(self, entry: Entry, now: float) -> bool:
        if self._deferred and self._deferred.get(entry.name, 0.0) > now:
            return False
        attachments = self._index[entry.name].attachments
        arrived = all(self.pickup.is_complete(name) for name in attachments)
        return arrived or now - entry.ready_at >= self.attachment_wait

    def take(self, name: str) -> None:
        """Remove a request from the line: it is being claimed."""
        self._drop(name)
        self._deferred.pop(name, None)
        self.pickup.drop(name)

    def defer(self, name: str, seconds: float) -> None:
        """Keep a request in line but do not offer it for `seconds` (the share refused its claim)."""
        self._deferred[name] = time.monotonic() + seconds

    def attachments_for(self, name: str) -> tuple[str, ...]:
        """The attachment names the waiting request `name` refers to."""
        inspected = self._index.get(name)
        return inspected.attachments if inspected is not None else ()

    def attachments(self, *, excluding: str) -> set[str]:
        """Attachment names the waiting requests (but `excluding`) refer to."""
        own = Counter(self._index[excluding].attachments) if excluding in self._index else Counter[str]()
        return {name for name, count in self._wanted.items() if count > own[name]}

    def unread(self) -> set[str]:
        """Request names in the inbox that are not in line (still being written, or unreadable)."""
        return {name for name in self.pickup.names() - self._index.keys() if is_request_name(name)}

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

    def _inspect(self, name: str, ready_at: float) -> None:
        path = self.pickup.inbox / name
        limits = self.policy.limits
        priority, model, key = 0, None, None
        attachments: tuple[str, ...] = ()
        try:
            mtime = path.stat().st_mtime
            fields = decode_file(path.read_bytes()[: limits.request_bytes + 1], name, limits)
            attachments = tuple(beside(name, a) for a in attachments_of(fields))
            presets = self.presets.above(name)
            attachments = tuple(beside(name, a) for a in attachments_of(merged(presets, fields)))  # theirs too
            checked = check_fields(fields, self.policy, presets)
            priority, model = checked.request.priority, checked.model.name
            key = batch_key(checked.request, model)
        except TransientError:  # a preset above it still being written: look again next step
            self._unreadable.add(name)
            return
        except WatcherError:
            pass
        except FileNotFoundError:
            self.pickup.drop(name)
            return
        except OSError:
            self._unreadable.add(name)
            return
        log.info("discovered", request_id=request_id(name), priority=priority, model=model)
        if key is not None:
            key = self._keys.setdefault(key, key)
        entry = Entry(name, priority, mtime, model, key, ready_at)
        self._index[name] = _Inspected(entry, attachments)
        bisect.insort(self._order, entry, key=Entry.order)
        self._wanted.update(attachments)
