"""When and with what a result was made: timestamps and versions, as sidecars and heartbeats record them."""

from __future__ import annotations

import importlib.metadata
from datetime import UTC, datetime
from functools import cache

from . import __version__


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")


@cache
def versions() -> dict[str, str]:
    """The versions a result was made with."""
    out = {"musicgen_watcher": __version__}
    for dist in ("audiocraft", "torch"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[dist] = "unknown"
    return out
