"""What the folders say right now: the daemons, what runs, what waits and in which order.

Read-only, and from the folders alone, so it works beside any number of daemons on one share:
`status`, `health` and the web console show the same thing.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any

from .errors import RequestError
from .folders import Layout
from .names import beside, is_request_name, request_id
from .pickup import files_in
from .presets import Presets, merged
from .requests import Limits, attachments_of, decode_file
from .schedule import order


@dataclass(frozen=True)
class DaemonState:
    """A daemon as its heartbeat describes it."""

    id: str
    age: float
    beat: dict[str, Any]

    def healthy(self, timeout: float) -> bool:
        return self.age <= timeout

    def as_dict(self, timeout: float) -> dict[str, Any]:
        return {"id": self.id, "heartbeat_age": round(self.age, 1), "healthy": self.healthy(timeout), **self.beat}


def daemons(layout: Layout) -> list[DaemonState]:
    """Every daemon that has a heartbeat under processing/."""
    found = []
    for beat in sorted(layout.processing.glob("*/.heartbeat")):
        try:
            age = time.time() - beat.stat().st_mtime
            value = json.loads(beat.read_bytes())
        except (OSError, ValueError):
            continue
        found.append(DaemonState(beat.parent.name, age, value if isinstance(value, dict) else {}))
    return found


def running(layout: Layout) -> list[dict[str, Any]]:
    """Every daemon's claimed requests (in subfolders too): id, daemon, and, once started, what its status file
    says (progress, started_at, batch)."""
    out = []
    claim_dirs = sorted(d for d in layout.processing.iterdir() if d.is_dir()) if layout.processing.is_dir() else []
    for claim_dir in claim_dirs:
        for name in Layout.requests_in(claim_dir):
            item: dict[str, Any] = {"id": request_id(name), "name": name, "daemon": claim_dir.name, "progress": 0.0,
                                    "started_at": None, "batch": [request_id(name)]}
            try:
                status = json.loads(Layout.status_file(claim_dir / name).read_bytes())
            except (OSError, ValueError):
                status = None
            if isinstance(status, dict):
                item.update({key: status[key] for key in ("progress", "started_at", "batch") if key in status})
            out.append(item)
    return out


@dataclass(frozen=True)
class Waiting:
    """A request in the inbox, as far as its file says."""

    request_id: str
    name: str
    priority: int
    mtime: float
    model: str | None
    duration: float | None
    attachments: tuple[str, ...]
    #: attachments not in the inbox (yet)
    missing: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def waiting(layout: Layout, limits: Limits, max_depth: int) -> list[Waiting]:
    """The requests in the inbox (and its subfolders), in the order they will be taken (priority, age, name).

    Each request's fields are read over its folder's presets, as the daemon reads them.
    """
    try:
        present = files_in(layout.inbox, max_depth)
    except OSError:
        return []
    presets = Presets(layout.inbox, limits)
    found = []
    for name in sorted(n for n in present if is_request_name(n)):
        path = layout.inbox / name
        fields: dict[str, Any] = {}
        try:
            mtime = path.stat().st_mtime
            fields = merged(presets.above(name), decode_file(path.read_bytes()[: limits.request_bytes + 1], name,
                                                             limits))
        except FileNotFoundError:
            continue
        except (RequestError, OSError):
            mtime = time.time()
        priority = fields.get("priority", 0)
        priority = priority if isinstance(priority, int) and not isinstance(priority, bool) else 0
        model, duration = fields.get("model"), fields.get("duration")
        attachments = tuple(beside(name, a) for a in attachments_of(fields))
        found.append(Waiting(request_id(name), name, priority, mtime, model if isinstance(model, str) else None,
                             float(duration) if isinstance(duration, int | float) else None,
                             attachments, tuple(a for a in attachments if a not in present)))
    return sorted(found, key=lambda w: order(w.priority, w.mtime, w.name))
