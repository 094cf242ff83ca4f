"""Noticing complete request files in the inbox: inotify events, polling, and periodic rescans."""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import structlog
from watchdog.events import (
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

from .config import WatchConfig, WatchMode

log = structlog.get_logger("watcher.pickup")

_JUNK_NAMES = frozenset({".ds_store", "thumbs.db", "desktop.ini"})
_JUNK_SUFFIXES = (".tmp", ".part", "~")


def is_request_name(name: str) -> bool:
    """Whether a file name in the inbox is a request: `*.json`, not hidden, temporary or system junk."""
    lowered = name.lower()
    return (
        lowered.endswith(".json")
        and not name.startswith((".", "._", "@"))
        and lowered not in _JUNK_NAMES
        and not lowered.endswith(_JUNK_SUFFIXES)
    )


@dataclass(slots=True)
class _Seen:
    size: int
    mtime_ns: int
    since: float
    writing: bool = False
    ready: bool = False


class _Events(FileSystemEventHandler):
    """Runs on the observer's thread: hands events over and wakes the main loop."""

    def __init__(self, events: queue.SimpleQueue[FileSystemEvent], wake: threading.Event) -> None:
        self.events = events
        self.wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            self.events.put(event)
            self.wake.set()


class Pickup:
    """Tracks the inbox and says which requests are complete.

    A request is complete on an inotify close-after-write or rename-in; otherwise (polling,
    the startup scan, rescans) once its size and mtime held still for `stable_seconds`.
    A zero-byte file never is.
    """

    def __init__(self, inbox: Path, config: WatchConfig, wake: threading.Event) -> None:
        self.inbox = inbox
        self.config = config
        self.wake = wake
        self._events: queue.SimpleQueue[FileSystemEvent] = queue.SimpleQueue()
        self._seen: dict[str, _Seen] = {}
        self._pending: set[str] = set()  # seen, not complete
        self._changed: set[str] = set()  # for the next `poll`
        self._observer: BaseObserver | None = None
        self._next_scan = 0.0
        self.mode = WatchMode.polling

    def start(self) -> None:
        """Start watching; `auto` falls back to polling where inotify cannot start."""
        if self.config.mode is not WatchMode.polling:
            observer = InotifyObserver(generate_full_events=True)
            # Only the kinds handled below: the kernel then does not report our own reads of the inbox
            # (open, close-without-write), which would otherwise cost an event each and slow reading.
            observer.schedule(_Events(self._events, self.wake), str(self.inbox), recursive=False,
                              event_filter=[FileCreatedEvent, FileModifiedEvent, FileClosedEvent,
                                            FileDeletedEvent, FileMovedEvent])
            try:
                observer.start()
            except OSError as exc:
                if self.config.mode is WatchMode.inotify:
                    raise
                log.warning("inotify_unavailable", error=str(exc), fallback="polling")
            else:
                self._observer = observer
                self.mode = WatchMode.inotify
        now = time.monotonic()
        self._scan(now, startup=True)
        polling = self.mode is WatchMode.polling
        self._next_scan = now + (self.config.poll_interval if polling else self.config.rescan_interval)
        log.info("watching", inbox=str(self.inbox), mode=self.mode.value)

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None

    def poll(self) -> set[str]:
        """Drain events and scan when due; the names whose completeness changed since the last poll.

        A name comes back when it became complete, stopped being complete (written again), changed
        size or mtime while complete, or left the inbox. Only the changed names cost work here, so a
        step costs the same with ten requests waiting as with ten thousand.
        """
        now = time.monotonic()
        while True:
            try:
                self._on_event(self._events.get_nowait(), now)
            except queue.Empty:
                break
        if now >= self._next_scan:
            self._scan(now, startup=False)
            polling = self.mode is WatchMode.polling
            self._next_scan = now + (self.config.poll_interval if polling else self.config.rescan_interval)
        else:
            for name in self.pending():
                self._observe(name, now)
        changed, self._changed = self._changed, set()
        return changed

    def is_ready(self, name: str) -> bool:
        """Whether the request `name` is complete (as of the last poll)."""
        seen = self._seen.get(name)
        return seen is not None and seen.ready

    def known(self) -> set[str]:
        """Every request name in the inbox, complete or not (as of the last poll)."""
        return set(self._seen)

    def pending(self) -> list[str]:
        """Request names seen but not yet complete (still being written, or zero bytes)."""
        return sorted(self._pending)

    def forget(self, name: str) -> None:
        """Stop tracking a request that was claimed or vanished."""
        if self._seen.pop(name, None) is not None:
            self._changed.add(name)
        self._pending.discard(name)

    def next_deadline(self) -> float:
        """Seconds until `poll` may have news without an event."""
        wait = self._next_scan - time.monotonic()
        if self._pending:
            wait = min(wait, 0.25)
        return max(0.0, wait)

    def _on_event(self, event: FileSystemEvent, now: float) -> None:
        src = Path(os.fsdecode(event.src_path))
        if isinstance(event, FileMovedEvent):
            if src.parent == self.inbox:
                self.forget(src.name)
            dest = Path(os.fsdecode(event.dest_path))
            if dest.parent == self.inbox and is_request_name(dest.name):
                self._observe(dest.name, now, complete=True)
            return
        if src.parent != self.inbox or not is_request_name(src.name):
            return
        if isinstance(event, FileDeletedEvent):
            self.forget(src.name)
        elif isinstance(event, FileClosedEvent):
            self._observe(src.name, now, complete=True)
        elif isinstance(event, (FileCreatedEvent, FileModifiedEvent)):
            self._observe(src.name, now, writing=True)

    def _observe(self, name: str, now: float, *, complete: bool = False, writing: bool = False,
                 startup: bool = False) -> None:
        try:
            stat = (self.inbox / name).stat()
        except FileNotFoundError:
            self.forget(name)
            return
        seen = self._seen.get(name)
        before = None if seen is None else (seen.size, seen.mtime_ns, seen.ready)
        if seen is None or (seen.size, seen.mtime_ns) != (stat.st_size, stat.st_mtime_ns):
            seen = _Seen(stat.st_size, stat.st_mtime_ns, now, writing=seen.writing if seen else False)
            self._seen[name] = seen
        if writing:
            seen.writing, seen.ready = True, False
        if complete:
            seen.writing = False
        held = now - seen.since
        # A writer we saw open the file gets a close event; without one, wait out a rescan too.
        needed = max(self.config.stable_seconds, self.config.rescan_interval) if seen.writing \
            else self.config.stable_seconds
        # At start, on a local disk, an mtime older than the window counts as having held still.
        aged = startup and self.mode is WatchMode.inotify and \
            time.time() - stat.st_mtime_ns / 1e9 >= self.config.stable_seconds
        if stat.st_size > 0 and (complete or held >= needed or aged):
            seen.ready = True
        if seen.ready:
            self._pending.discard(name)
        else:
            self._pending.add(name)
        if (seen.size, seen.mtime_ns, seen.ready) != before:
            self._changed.add(name)

    def _scan(self, now: float, *, startup: bool) -> None:
        try:
            names = {e.name for e in os.scandir(self.inbox) if is_request_name(e.name) and e.is_file()}
        except FileNotFoundError:
            names = set()
        for gone in set(self._seen) - names:
            self.forget(gone)
        for name in names:
            self._observe(name, now, startup=startup)
