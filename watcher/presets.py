"""Per-folder presets: a `defaults.json` gives default request fields to the requests in its folder and below.

The nearest preset wins over those above it, and a request's own fields win over every preset. A
preset is checked as a request's fields are (known fields, right types, in range), without the rules
across fields that only a whole request can meet; a broken one fails every request that depends on
it with `invalid_preset`, naming the file.
"""

from __future__ import annotations

import posixpath
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ErrorCode, RequestError, TransientError
from .names import PRESET_NAME
from .requests import Limits, decode_request, validate_fields


@dataclass(frozen=True)
class Preset:
    """A preset file's fields; `name` is its path relative to the inbox (`trailers/defaults.json`)."""

    name: str
    fields: dict[str, Any]


def read_preset(path: Path, name: str, limits: Limits) -> Preset:
    """Read and check one preset file; a RequestError with `invalid_preset` names it when it is broken."""
    try:
        fields = decode_request(path.read_bytes(), limits)
        validate_fields(fields, limits)
    except RequestError as exc:
        raise RequestError(ErrorCode.invalid_preset, f"The preset {name} is broken: {exc.message}",
                           field=exc.field) from None
    except OSError as exc:
        raise RequestError(ErrorCode.invalid_preset, f"The preset {name} cannot be read: {exc.strerror}.") from None
    return Preset(name, fields)


def merged(presets: tuple[Preset, ...], own: dict[str, Any]) -> dict[str, Any]:
    """A request's fields over its presets' (outermost first, the nearest last)."""
    fields: dict[str, Any] = {}
    for preset in presets:
        fields.update(preset.fields)
    fields.update(own)
    return fields


class Presets:
    """The presets above requests under `root`, each file read again only when it changed."""

    def __init__(self, root: Path, limits: Limits, complete: Callable[[str], bool] | None = None) -> None:
        self.root = root
        self.limits = limits
        #: the daemon's completeness rule: a preset still being written is waited for, never read half
        self.complete = complete
        self._cache: dict[str, tuple[tuple[int, int], Preset | RequestError]] = {}
        self._lock = threading.Lock()  # the console reads presets beside the daemon's loop

    def above(self, name: str) -> tuple[Preset, ...]:
        """The presets that apply to the file `name` (relative to root), outermost first."""
        folder = posixpath.dirname(name)
        folders = [""] + ["/".join(folder.split("/")[: n + 1]) for n in range(folder.count("/") + 1)] if folder \
            else [""]
        found = []
        for part in folders:
            preset = self._read(posixpath.join(part, PRESET_NAME))
            if preset is not None:
                found.append(preset)
        return tuple(found)

    def _read(self, name: str) -> Preset | None:
        path = self.root / name
        try:
            stat = path.lstat()
        except OSError:
            return None
        if path.is_symlink():
            raise RequestError(ErrorCode.invalid_preset, f"The preset {name} is a link; it was refused.")
        if self.complete is not None and not self.complete(name):
            raise TransientError(ErrorCode.invalid_preset, f"The preset {name} is still being written.")
        key = (stat.st_mtime_ns, stat.st_size)
        with self._lock:
            cached = self._cache.get(name)
            if cached is None or cached[0] != key:
                try:
                    value: Preset | RequestError = read_preset(path, name, self.limits)
                except RequestError as exc:
                    value = exc
                cached = self._cache[name] = (key, value)
        if isinstance(cached[1], RequestError):
            raise cached[1]
        return cached[1]
