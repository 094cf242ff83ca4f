"""Writing a request into the inbox, as `submit` and the web console do it.

Attachments first, then the request, each under a hidden temporary name, then linked to a name that
was free, so nothing is ever replaced and the daemon never sees half a file. The request is checked
with the daemon's own `intake` first; a refused one leaves nothing behind.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import files
from .intake import Beside, Policy, check, prepare
from .presets import Presets
from .requests import require_plain_name


@dataclass(frozen=True)
class Upload:
    """An attachment to put beside the request: its file name and its bytes."""

    name: str
    data: bytes


def fresh_name() -> str:
    """A request name nobody else will pick: the time, then random hex."""
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]


def submit(inbox: Path, fields: dict[str, Any], policy: Policy, *, name: str | None = None,
           uploads: dict[str, Upload] | None = None) -> Path:
    """Check and write a request (and its uploaded attachments) into `inbox`; returns the request's path.

    Raises RequestError, with the daemon's code and message, for a request the daemon would fail.
    """
    stem = require_plain_name(name, "name", limit=policy.limits.name_chars) if name else fresh_name()
    inbox.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    fields = dict(fields)
    try:
        for field, upload in (uploads or {}).items():
            require_plain_name(upload.name, field, limit=policy.limits.name_chars)
            written.append(_publish_free(inbox, upload.name, upload.data))
            fields[field] = written[-1].name
        data = (json.dumps(fields, indent=2, ensure_ascii=False) + "\n").encode()
        name = f"{stem}.json"
        presets = Presets(inbox, policy.limits).above(name)
        if "melody" in fields or "continuation" in fields:
            prepare(data, name, policy, Beside(inbox), presets)  # reads the attachments as the daemon will
        else:
            check(data, name, policy, presets)
        return _publish_free(inbox, f"{stem}.json", data)
    except BaseException:
        for path in written:
            files.remove(path)
        raise


def _publish_free(folder: Path, name: str, data: bytes) -> Path:
    """Publish `data` as `name`, or `name-1`, `name-2`... whichever is free first."""
    stem, dot, suffix = name.rpartition(".")
    stem, suffix = (stem, f".{suffix}") if dot and stem else (name, "")
    tmp = files.write_temp(folder, name, lambda p: p.write_bytes(data))
    for candidate in files.candidates(stem, suffix):
        if files.link_no_clobber(tmp, folder / candidate):
            return folder / candidate
    raise AssertionError("unreachable")
