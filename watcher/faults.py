"""A test seam: make the daemon fail at a named point, to prove it recovers.

`MUSICGEN_WATCHER_FAULT=<point>[:<nth>][=<action>]` (several separated by commas), read once at start.
On the nth pass through `point` (default the first) the action happens:

- `kill` (the default): SIGKILL, as a power cut would;
- `errno:<NAME>`: the file operation there fails with that error (`errno:EBUSY`), as a share's would;
- `sleep:<seconds>`: it stalls, as a slow download or a hung disk would.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from dataclasses import dataclass
from enum import StrEnum

FAULT_ENV = "MUSICGEN_WATCHER_FAULT"


class FaultPoint(StrEnum):
    """Where a request's life can be cut short."""

    #: the request is about to be renamed into processing/ (an `errno` here is a claim the share refused)
    claim = "claim"
    #: the request was renamed into processing/
    after_claim = "after_claim"
    #: a model is about to load (a `sleep` here is a slow first download)
    model_load = "model_load"
    #: the engine is halfway through generating
    mid_generation = "mid_generation"
    #: the audio sits under a temporary name in the outbox
    after_audio_temp = "after_audio_temp"
    #: the audio has its final name, the sidecar does not exist yet
    after_audio_publish = "after_audio_publish"
    #: audio and sidecar are published, the request is still in processing/
    after_sidecar = "after_sidecar"
    #: just before the request moves to done/
    before_done_move = "before_done_move"
    #: the request is in done/, its bookkeeping not yet removed
    after_done_move = "after_done_move"


@dataclass
class _Fault:
    nth: int
    action: str
    argument: str
    passes: int = 0


class Faults:
    """Counts passes through the configured points and acts on the nth."""

    def __init__(self, spec: str | None) -> None:
        self._faults: dict[FaultPoint, _Fault] = {}
        for part in filter(None, (spec or "").split(",")):
            where, _, action = part.strip().partition("=")
            name, _, nth = where.partition(":")
            kind, _, argument = (action or "kill").partition(":")
            if kind not in ("kill", "errno", "sleep"):
                raise ValueError(f"{FAULT_ENV}: unknown action {kind!r}")
            self._faults[FaultPoint(name)] = _Fault(int(nth) if nth else 1, kind, argument)

    @classmethod
    def from_env(cls) -> Faults:
        return cls(os.environ.get(FAULT_ENV))

    def reach(self, point: FaultPoint, path: object = None) -> None:
        """Pass through `point`; on the configured pass, act (`path` names the file an errno concerns)."""
        fault = self._faults.get(point)
        if fault is None:
            return
        fault.passes += 1
        if fault.passes != fault.nth:
            return
        if fault.action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif fault.action == "sleep":
            time.sleep(float(fault.argument))
        else:
            code = getattr(errno, fault.argument)
            raise OSError(code, f"{os.strerror(code)} (injected at {point.value})", None if path is None else str(path))
