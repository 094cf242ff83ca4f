"""What the engine takes and gives: a job per output, a generated result, a progress callback.

Kept apart from `engine` so the daemon can prepare jobs before torch and AudioCraft are imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .audio import Audio
from .errors import ErrorCode, RequestError
from .options import Mode

#: called with the overall progress, 0..1, monotonic across extension windows
ProgressCallback = Callable[[float], None]


@dataclass(frozen=True)
class Job:
    """One output's conditioning. Jobs in one batch must share a mode.

    A melody and a continuation together is refused by the request contract (`requests`), so a Job
    never holds both.
    """

    prompt: str | None = None
    melody: Audio | None = None
    continuation: Audio | None = None

    @property
    def mode(self) -> Mode:
        if self.melody is not None:
            return Mode.melody
        if self.continuation is not None:
            return Mode.continuation
        return Mode.text if self.prompt else Mode.unconditional


def check_continuation(continuation: Audio, duration: float, window: float | None = None) -> None:
    """A continuation counts inside the duration (and the model's window): refuse one that fills it."""
    limit = duration if window is None else min(duration, window)
    if continuation.seconds >= limit:
        raise RequestError(ErrorCode.invalid_request,
                           f"The continuation prompt lasts {continuation.seconds:.1f} s; it counts inside the "
                           f"duration and must be shorter than {limit:g} s.", field="continuation")


@dataclass(frozen=True)
class Generated:
    """One output with what its sidecar reports."""

    audio: Audio
    model: str
    seed: int
    device: str
    dtype: str
    load_seconds: float
    generate_seconds: float
    batch_size: int
