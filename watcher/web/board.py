"""The console's view of the folders: what waits, runs, is done and failed, as the files say.

Every daemon on the share writes the same folders, so the board shows all of them, and never
holds a state of its own the folders could contradict. Lists of done and failed requests are kept
in memory and a directory is read again only when it changed (its mtime), so a page of results
costs about the same with ten thousand of them as with ten. A name from a URL is only ever looked
up in these lists: no path is built from it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..folders import STATUS_SUFFIX, Layout
from ..names import is_request_name, is_tracked_name, is_tracked_part, request_id
from ..overview import daemons, running, waiting
from ..pickup import files_in
from ..requests import Limits

#: a page of done or failed requests at most
MAX_PAGE = 200
#: a directory whose mtime is this close to the time it was read is read again (seconds): file systems that
#: keep coarse timestamps (SMB, FAT: 2 s) can hide a second change behind the same mtime
_TIMESTAMP_SLACK = 2.0
_ERROR_SUFFIX = ".error.json"


@dataclass(frozen=True, slots=True)
class Listed:
    """One finished request as its folder lists it: newest first by the time it ended."""

    id: str
    mtime_ns: int
    #: the file the id stands for: the sidecar in the outbox, or the error file in failed/
    name: str

    @property
    def cursor(self) -> str:
        return f"{self.mtime_ns}.{self.id}"


@dataclass(frozen=True, slots=True)
class _Read:
    """One directory of a listing as last read: its mtime, when it was read, what it held."""

    mtime_ns: int
    read_at: float
    items: list[Listed]
    subfolders: list[str]

    def settled(self) -> bool:
        """Whether the mtime this read saw is old enough to trust: no second change can hide behind it."""
        return self.read_at - self.mtime_ns / 1e9 > _TIMESTAMP_SLACK


class _Listing:
    """The files of one folder (and its subfolders) ending in `suffix`, newest first.

    A directory is read again only when its mtime moved, or while its mtime is too recent to trust;
    otherwise a page costs one stat per directory, not one per file.
    """

    def __init__(self, folder: Path, suffix: str) -> None:
        self.folder = folder
        self.suffix = suffix
        self._dirs: dict[str, _Read] = {}  # by name relative to the folder ("" for the folder itself)
        self._items: list[Listed] = []
        self._by_id: dict[str, Listed] = {}
        self._lock = threading.Lock()

    def items(self) -> list[Listed]:
        with self._lock:
            changed, seen, pending = False, set(), [""]
            while pending:
                rel = pending.pop()
                try:
                    mtime_ns = (self.folder / rel).stat().st_mtime_ns
                except OSError:
                    continue
                seen.add(rel)
                known = self._dirs.get(rel)
                if known is None or known.mtime_ns != mtime_ns or not known.settled():
                    fresh = self._read(rel, mtime_ns)
                    changed = changed or known is None or fresh.items != known.items
                    self._dirs[rel] = known = fresh
                pending.extend(known.subfolders)
            for gone in self._dirs.keys() - seen:
                del self._dirs[gone]
                changed = True
            if changed:
                every = [item for read in self._dirs.values() for item in read.items]
                self._items = sorted(every, key=lambda i: (i.mtime_ns, i.id), reverse=True)
                self._by_id = {item.id: item for item in self._items}
            return self._items

    def get(self, item_id: str) -> Listed | None:
        self.items()
        return self._by_id.get(item_id)

    def _read(self, rel: str, mtime_ns: int) -> _Read:
        read_at = time.time()
        items, subfolders = [], []
        try:
            with os.scandir(self.folder / rel) as entries:
                for entry in entries:
                    name = f"{rel}/{entry.name}" if rel else entry.name
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if is_tracked_part(entry.name):  # nothing under a hidden or junk folder is listed
                                subfolders.append(name)
                        elif self._listed(name):
                            items.append(Listed(name.removesuffix(self.suffix), entry.stat().st_mtime_ns, name))
                    except OSError:
                        continue  # gone since the directory was read
        except OSError:
            pass
        return _Read(mtime_ns, read_at, items, subfolders)

    def _listed(self, name: str) -> bool:
        if not name.endswith(self.suffix) or not is_tracked_name(name):
            return False
        return self.suffix != ".json" or not name.endswith((_ERROR_SUFFIX, STATUS_SUFFIX))


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


class Board:
    """Reads the folders of one share for the console and its API."""

    def __init__(self, layout: Layout, limits: Limits, depth: int, heartbeat_timeout: float) -> None:
        self.layout = layout
        self.limits = limits
        self.depth = depth
        self.heartbeat_timeout = heartbeat_timeout
        self._done = _Listing(layout.outbox, ".json")
        self._failed = _Listing(layout.failed, _ERROR_SUFFIX)

    def warm(self) -> None:
        """Read the done and failed folders once, so that the first page asked for is as quick as the next."""
        self._done.items()
        self._failed.items()

    # -- the four states ---------------------------------------------------------------------

    def waiting(self) -> list[dict[str, Any]]:
        """The inbox in the order it will be taken, with each request's place in line."""
        return [{"id": w.request_id, "state": "waiting", "position": n, **w.as_dict()}
                for n, w in enumerate(waiting(self.layout, self.limits, self.depth), start=1)]

    def running(self) -> list[dict[str, Any]]:
        """Every daemon's claimed requests, with progress, elapsed and estimated seconds once started."""
        now = time.time()
        return [{"state": "running", **item, **_times(item, now)} for item in running(self.layout)]

    def done(self, limit: int = 20, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """A page of results, newest first, from each sidecar; and the cursor of the next page."""
        page, following = _page(self._done.items(), limit, cursor)
        return [self._done_item(item) for item in page], following

    def failed(self, limit: int = 20, cursor: str | None = None) -> tuple[list[dict[str, Any]], str | None]:
        """A page of failed requests, newest first, with their errors; and the next page's cursor."""
        page, following = _page(self._failed.items(), limit, cursor)
        return [self._failed_item(item) for item in page], following

    def waiting_ids(self) -> set[str]:
        """The ids of the requests in the inbox, from their names alone (cheap: nothing is read)."""
        try:
            return {request_id(n) for n in files_in(self.layout.inbox, self.depth) if is_request_name(n)}
        except OSError:
            return set()

    def counts(self) -> dict[str, int]:
        return {"waiting": len(self.waiting_ids()), "running": len(self.running()),
                "done": len(self._done.items()), "failed": len(self._failed.items())}

    def daemons(self) -> list[dict[str, Any]]:
        return [d.as_dict(self.heartbeat_timeout) for d in daemons(self.layout)]

    # -- one request --------------------------------------------------------------------------

    def find(self, request_id: str) -> dict[str, Any] | None:
        """A request by id, wherever it is: running, waiting, done (its sidecar) or failed."""
        for item in self.running():
            if item["id"] == request_id:
                return item
        if request_id in self.waiting_ids():  # names alone: the whole line is read only for one that waits
            for item in self.waiting():
                if item["id"] == request_id:
                    return {**item, "request": _read_json(self.layout.inbox / item["name"])}
        done = self._done.get(request_id)
        if done is not None:
            return self._done_item(done)
        failed = self._failed.get(request_id)
        return self._failed_item(failed) if failed is not None else None

    def audio(self, request_id: str) -> Path | None:
        """The audio file of a done request, as its sidecar names it (a plain name in the outbox)."""
        done = self._done.get(request_id)
        sidecar = _read_json(self.layout.outbox / done.name) if done is not None else None
        audio = sidecar.get("audio") if sidecar else None
        if done is None or not isinstance(audio, str) or "/" in audio or not is_tracked_part(audio):
            return None
        path = (self.layout.outbox / done.name).parent / audio
        return path if path.is_file() else None

    def done_entry(self, request_id: str) -> Listed | None:
        return self._done.get(request_id)

    def failed_entry(self, request_id: str) -> Listed | None:
        return self._failed.get(request_id)

    def _done_item(self, item: Listed) -> dict[str, Any]:
        sidecar = _read_json(self.layout.outbox / item.name) or {}
        return {"id": item.id, "state": "done", "request_id": sidecar.get("request_id", item.id),
                "sidecar": sidecar, "audio_url": f"api/requests/{quote(item.id)}/audio", "cursor": item.cursor}

    def _failed_item(self, item: Listed) -> dict[str, Any]:
        error = _read_json(self.layout.failed / item.name) or {}
        request = _read_json(self.layout.failed / f"{item.id}.json")  # a .txt request shows as its error alone
        return {"id": item.id, "state": "failed", "request_id": error.get("request_id", item.id),
                "error": error.get("error", {}), "failed_at": error.get("failed_at"), "request": request,
                "cursor": item.cursor}


def _page(items: list[Listed], limit: int, cursor: str | None) -> tuple[list[Listed], str | None]:
    """Items after `cursor` (an item's `cursor`), `limit` of them, and the cursor of the next page."""
    limit = max(1, min(limit, MAX_PAGE))
    start = 0
    if cursor:
        mtime, _, item_id = cursor.partition(".")
        key = (int(mtime) if mtime.isdigit() else 0, item_id)
        start = next((n for n, i in enumerate(items) if (i.mtime_ns, i.id) < key), len(items))
    page = items[start:start + limit]
    more = start + limit < len(items)
    return page, page[-1].cursor if page and more else None


def _times(status: dict[str, Any], now: float) -> dict[str, float | None]:
    """Seconds since a request started, and an estimate of those left from its progress so far."""
    from datetime import datetime

    try:
        elapsed = now - datetime.fromisoformat(str(status["started_at"])).timestamp()
    except (KeyError, ValueError):
        return {"elapsed": None, "remaining": None}  # claimed, not started yet
    progress = float(status.get("progress", 0.0))
    remaining = elapsed * (1 - progress) / progress if progress > 0.01 else None
    return {"elapsed": round(elapsed, 1), "remaining": None if remaining is None else round(remaining, 1)}
