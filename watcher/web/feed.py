"""Lifecycle events for the console, read from the folders: `discovered`, `claimed`, `progress`, `done`, `failed`.

Every daemon on the share moves the same files, so the events come from comparing what the folders
hold once a second, not from this daemon's own work: a request another daemon runs is seen too. The
folders are only read while a browser (or script) listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from .board import Board

_INTERVAL = 1.0


@dataclass
class _Snapshot:
    waiting: set[str] = field(default_factory=set)
    running: dict[str, float] = field(default_factory=dict)
    done: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)


class Feed:
    """Looks at the folders while anyone listens, and hands each listener the changes as events."""

    def __init__(self, board: Board) -> None:
        self.board = board
        self._listeners: set[asyncio.Queue[dict[str, Any]]] = set()
        self._last: _Snapshot | None = None

    def _look(self) -> _Snapshot:
        board = self.board
        done, _ = board.done(limit=50)
        failed, _ = board.failed(limit=50)
        return _Snapshot(board.waiting_ids(), {r["id"]: r["progress"] for r in board.running()},
                         {d["id"] for d in done}, {f["id"] for f in failed})

    async def run(self) -> None:
        """Look once a second while anyone listens (started with the app, cancelled with it)."""
        while True:
            if self._listeners:
                now = await asyncio.to_thread(self._look)
                if self._last is not None:
                    for event in _changes(self._last, now):
                        for queue in list(self._listeners):
                            with contextlib.suppress(asyncio.QueueFull):  # a listener that stopped reading
                                queue.put_nowait(event)
                self._last = now
            else:
                self._last = None
            await asyncio.sleep(_INTERVAL)

    async def stream(self) -> AsyncIterator[str]:
        """Server-Sent Events for one listener, until it goes away."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1000)
        self._listeners.add(queue)
        try:
            yield ": listening\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=15)
                except TimeoutError:
                    yield ": keep-alive\n\n"
                    continue
                yield f"event: {event['event']}\ndata: {json.dumps(event)}\n\n"
        finally:
            with contextlib.suppress(KeyError):
                self._listeners.remove(queue)


def _changes(before: _Snapshot, now: _Snapshot) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = [{"event": "discovered", "id": i} for i in sorted(now.waiting - before.waiting)]
    for request_id, progress in sorted(now.running.items()):
        if request_id not in before.running:
            events.append({"event": "claimed", "id": request_id})
        if progress != before.running.get(request_id, 0.0):
            events.append({"event": "progress", "id": request_id, "progress": progress})
    events += [{"event": "done", "id": i} for i in sorted(now.done - before.done)]
    events += [{"event": "failed", "id": i} for i in sorted(now.failed - before.failed)]
    return events
