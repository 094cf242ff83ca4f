"""Noticing files in the inbox and knowing which are complete: inotify events, polling, rescans.

Every file in the inbox but junk is tracked, requests, presets and attachments alike, in subfolders
too (`watch.recursive`, down to `watch.max_depth`), and each is judged by the one rule in
`completeness`. A file is named by its path relative to the inbox (`names`). A file not complete yet
is looked at again when it could have become complete: at once when an event names it,
`stable_seconds` after it last changed, every quarter second while someone writes it. Folders that
are links are never entered: nothing outside the inbox is taken.
"""

from __future__ import annotations

import heapq
import os
import posixpath
import queue
import threading
import time
from pathlib import Path

import structlog
from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers.api import BaseObserver
from watchdog.observers.inotify import InotifyObserver

from .completeness import Rule, Sighting, being_written, is_complete, lease_scope, leases_work
from .config import WatchConfig, WatchMode
from .errors import FatalCode, FatalError
from .names import is_request_name, is_tracked_name, is_tracked_part

log = structlog.get_logger("watcher.pickup")

#: how often a file someone is writing is asked about again
_BUSY_RECHECK = 0.25


def files_in(folder: Path, max_depth: int) -> set[str]:
    """The tracked files under `folder`, as names relative to it, `max_depth` folders deep at most.

    Folders that are links are not entered; hidden and junk folders (`@eaDir`) are skipped.
    """
    found: set[str] = set()
    pending: list[tuple[Path, str, int]] = [(folder, "", 0)]
    while pending:
        current, prefix, depth = pending.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    if not is_tracked_part(entry.name):
                        continue
                    if entry.is_file():
                        found.add(prefix + entry.name)
                    elif depth < max_depth and entry.is_dir(follow_symlinks=False):
                        pending.append((Path(entry.path), f"{prefix}{entry.name}/", depth + 1))
        except OSError:
            if current == folder:
                raise  # the inbox itself: the caller decides
            continue  # a subfolder we may not read (a root-owned #recycle), or one that went away: skipped
    return found


class _Events(FileSystemEventHandler):
    """Runs on the observer's thread: hands events over and wakes the main loop."""

    def __init__(self, events: queue.SimpleQueue[FileSystemEvent], wake: threading.Event) -> None:
        self.events = events
        self.wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        if not event.is_directory or isinstance(event, (DirCreatedEvent, DirMovedEvent)):
            self.events.put(event)
            self.wake.set()


class Pickup:
    """Tracks the files of the inbox and says which are complete."""

    def __init__(self, inbox: Path, config: WatchConfig, wake: threading.Event) -> None:
        self.inbox = inbox
        self.config = config
        self.wake = wake
        self._events: queue.SimpleQueue[FileSystemEvent] = queue.SimpleQueue()
        self._seen: dict[str, Sighting] = {}
        self._complete: set[str] = set()
        self._due: list[tuple[float, str]] = []  # (when to look again, name): a heap
        self._next_look: dict[str, float] = {}  # name -> its live entry in _due; other entries are stale
        self._changed: set[str] = set()  # for the next `poll`
        self._observer: BaseObserver | None = None
        self._next_scan = 0.0
        self._depth = config.depth
        self._real_inbox = os.path.realpath(inbox)
        self.mode = WatchMode.polling
        self.leases = False
        self.rule = Rule.stability

    def start(self) -> None:
        """Start watching; `auto` falls back to polling where inotify cannot start."""
        if self.config.mode is not WatchMode.polling:
            self._start_inotify()
        self.leases = leases_work(self.inbox)
        self.rule = Rule.of(events=self.mode is WatchMode.inotify, leases=self.leases)
        self._scan(time.monotonic())
        log.info("watching", inbox=str(self.inbox), mode=self.mode.value, completeness=self.rule.value,
                 leases=lease_scope() if self.leases else "refused by this file system")

    def _start_inotify(self) -> None:
        observer = InotifyObserver(generate_full_events=True)
        # Only the kinds handled below: the kernel then does not report our own reads of the inbox
        # (open, close-without-write), which would otherwise cost an event each and slow reading.
        observer.schedule(_Events(self._events, self.wake), str(self.inbox), recursive=self.config.recursive,
                          event_filter=[FileCreatedEvent, FileModifiedEvent, FileClosedEvent,
                                        FileDeletedEvent, FileMovedEvent, DirCreatedEvent, DirMovedEvent])
        try:
            observer.start()
        except OSError as exc:
            if self.config.mode is WatchMode.inotify:
                raise FatalError(FatalCode.folder_unusable, f"inotify cannot watch {self.inbox}: {exc}") from None
            log.warning("inotify_unavailable", error=str(exc), fallback="polling")
        else:
            self._observer = observer
            self.mode = WatchMode.inotify

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def poll(self) -> set[str]:
        """Drain events, scan when due, look again at what is due; the names whose completeness changed.

        A name comes back when it became complete, stopped being complete, changed while complete,
        or left the inbox. Only changed names cost work, so a step costs the same with ten files
        waiting as with ten thousand.
        """
        now = time.monotonic()
        while True:
            try:
                self._on_event(self._events.get_nowait(), now)
            except queue.Empty:
                break
        if now >= self._next_scan:
            self._scan(now)
        while self._due and self._due[0][0] <= now:
            due, name = heapq.heappop(self._due)
            if self._next_look.get(name) == due:
                del self._next_look[name]
                if name in self._seen and name not in self._complete:
                    self._observe(name, now)
        changed, self._changed = self._changed, set()
        return changed

    def is_complete(self, name: str) -> bool:
        """Whether `name` is complete (as of the last look)."""
        return name in self._complete

    def confirm(self, name: str) -> bool:
        """Look at `name` again now, right before it is claimed or read: is it still complete?"""
        self._observe(name, time.monotonic())
        return name in self._complete

    def names(self) -> set[str]:
        """Every tracked file in the inbox, complete or not (as of the last look)."""
        return set(self._seen)

    def pending(self) -> list[str]:
        """Request names seen but not complete yet."""
        return sorted(n for n in self._seen if n not in self._complete and is_request_name(n))

    def drop(self, name: str) -> None:
        """Stop tracking a file that was claimed, moved away or deleted."""
        if self._seen.pop(name, None) is not None:
            self._changed.add(name)
        self._complete.discard(name)
        self._next_look.pop(name, None)

    def next_deadline(self) -> float:
        """Seconds until `poll` may have news without an event."""
        while self._due and self._next_look.get(self._due[0][1]) != self._due[0][0]:
            heapq.heappop(self._due)  # stale
        wait = self._next_scan - time.monotonic()
        if self._due:
            wait = min(wait, self._due[0][0] - time.monotonic())
        return max(0.0, wait)

    def _name(self, raw: bytes | str) -> str | None:
        """The tracked name of an event's path, or None (outside the inbox, too deep, junk)."""
        try:
            name = Path(os.fsdecode(raw)).relative_to(self.inbox).as_posix()
        except ValueError:
            return None
        return name if name.count("/") <= self._depth and is_tracked_name(name) else None

    def _on_event(self, event: FileSystemEvent, now: float) -> None:
        if isinstance(event, (DirCreatedEvent, DirMovedEvent)):
            self._next_scan = now  # a folder moved in brings files no event names: look at them all
            return
        src = self._name(event.src_path)
        if isinstance(event, FileMovedEvent):
            if src is not None:
                self.drop(src)
            dest = self._name(event.dest_path)
            if dest is not None:
                self._observe(dest, now, closed=True)
            return
        if src is None:
            return
        if isinstance(event, FileDeletedEvent):
            self.drop(src)
        elif isinstance(event, FileClosedEvent):
            self._observe(src, now, closed=True)
        elif isinstance(event, FileModifiedEvent):
            self._observe(src, now, written=True)
        elif isinstance(event, FileCreatedEvent):
            self._observe(src, now, evented=True)

    def _inside(self, name: str) -> bool:
        """Whether no folder on the way to `name` is a link (an event can come through one)."""
        folder = posixpath.dirname(name)
        return not folder or os.path.realpath(self.inbox / folder) == f"{self._real_inbox}/{folder}"

    def _observe(self, name: str, now: float, *, closed: bool = False, written: bool = False,
                 evented: bool = False) -> None:
        path = self.inbox / name
        try:
            stat = path.stat()
        except OSError:
            self.drop(name)
            return
        if not path.is_file() or not self._inside(name) or (is_request_name(name) and path.is_symlink()):
            self.drop(name)  # a request that is a link could read any file as a prompt: never taken
            return
        seen = self._seen.get(name)
        if seen is None or not seen.same_file(stat):
            seen = self._seen[name] = Sighting(stat.st_size, stat.st_mtime_ns, stat.st_ino, since=now)
            self._changed.add(name)
        if closed:
            seen.closed, seen.written = True, False
        if written:
            seen.written, seen.closed = True, False
        seen.evented = seen.evented or closed or written or evented
        writers = being_written(path) if self.leases else None
        age = time.time() - stat.st_mtime
        complete = is_complete(seen, now=now, age=age, writers=writers, stable_seconds=self.config.stable_seconds,
                               empty_wait=self.config.attachment_wait)
        if complete != (name in self._complete):
            self._changed.add(name)
            (self._complete.add if complete else self._complete.discard)(name)
        if not complete:
            self._look_again(name, seen, now, age, writers)

    def _look_again(self, name: str, seen: Sighting, now: float, age: float, writers: bool | None) -> None:
        if writers:
            due = now + _BUSY_RECHECK
        elif seen.size == 0:
            due = now + max(_BUSY_RECHECK, self.config.attachment_wait - age)
        elif seen.written and not seen.closed:
            return  # its close event will come (a rescan looks too)
        else:
            due = max(seen.since + self.config.stable_seconds, now + 0.01)
        if due < self._next_look.get(name, float("inf")):
            self._next_look[name] = due
            heapq.heappush(self._due, (due, name))

    def _scan(self, now: float) -> None:
        polling = self.mode is WatchMode.polling
        self._next_scan = now + (self.config.poll_interval if polling else self.config.rescan_interval)
        try:
            names = files_in(self.inbox, self._depth)
        except FileNotFoundError:
            if self.inbox.is_dir():  # a subfolder went away while it was read: look again next time
                return
            raise FatalError(FatalCode.folder_unusable, f"the inbox {self.inbox} is gone") from None
        except OSError as exc:  # a share hiccup: look again at the next scan
            log.warning("scan_failed", inbox=str(self.inbox), error=str(exc))
            return
        for gone in set(self._seen) - names:
            self.drop(gone)
        for name in names:
            self._observe(name, now)
