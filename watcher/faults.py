"""A test seam: kill the daemon with SIGKILL at a named point, to prove crash recovery.

Set `MUSICGEN_WATCHER_FAULT=<point>[:<nth>]` before start; it is read once, at start.
"""

from __future__ import annotations

import os
import signal
from enum import StrEnum

FAULT_ENV = "MUSICGEN_WATCHER_FAULT"


class FaultPoint(StrEnum):
    """Where a request's life can be cut short."""

    #: the request was renamed into processing/
    after_claim = "after_claim"
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


class Faults:
    """Counts passes through the configured point and dies on the nth."""

    def __init__(self, spec: str | None) -> None:
        self.point: FaultPoint | None = None
        self.nth = 1
        self.count = 0
        if spec:
            name, _, nth = spec.partition(":")
            self.point = FaultPoint(name)
            self.nth = int(nth) if nth else 1

    @classmethod
    def from_env(cls) -> Faults:
        return cls(os.environ.get(FAULT_ENV))

    def reach(self, point: FaultPoint) -> None:
        if point is self.point:
            self.count += 1
            if self.count == self.nth:
                os.kill(os.getpid(), signal.SIGKILL)
