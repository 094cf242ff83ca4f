"""The result and error sidecars: what a person or a pipeline reads next to the audio."""

from __future__ import annotations

import importlib.metadata
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from . import __version__
from .errors import WatcherError

if TYPE_CHECKING:
    from .jobs import Generated


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


def done_sidecar(*, request_id: str, received: dict[str, Any], generated: Generated, audio_name: str,
                 output: str, output_requested: str, audio_format: str, sample_format: str, normalize: str,
                 queued_at: float, started_at: str, attempt: int, daemon_id: str) -> dict[str, Any]:
    """`outbox/<output>.json`, written after the audio, so its presence means the audio is complete."""
    audio = generated.audio
    return {
        "status": "done",
        "request_id": request_id,
        "request": received,
        "model": generated.model,
        "seed": generated.seed,
        "audio": audio_name,
        "output": output,
        "output_renamed": output != output_requested,
        "format": audio_format,
        "sample_format": sample_format,
        "normalize": normalize,
        "sample_rate": audio.sample_rate,
        "channels": audio.channels,
        "frames": audio.frames,
        "duration_seconds": round(audio.seconds, 6),
        "batch_size": generated.batch_size,
        "device": generated.device,
        "dtype": generated.dtype,
        "timings": {
            "queued_at": iso(queued_at),
            "started_at": started_at,
            "finished_at": now_iso(),
            "load_seconds": round(generated.load_seconds, 3),
            "generate_seconds": round(generated.generate_seconds, 3),
        },
        "attempt": attempt,
        "daemon": daemon_id,
        "versions": versions(),
    }


def error_sidecar(request_id: str, error: WatcherError) -> dict[str, Any]:
    """`failed/<name>.error.json`."""
    return {"status": "failed", "request_id": request_id, "error": error.as_dict(), "failed_at": now_iso(),
            "versions": versions()}
