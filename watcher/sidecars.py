"""The result and error sidecars: what a person or a pipeline reads next to the audio.

Field names here are a contract: the README's sidecar table lists them, and pipelines parse them.
"""

from __future__ import annotations

from typing import Any

from .about import iso, now_iso, versions
from .audio import Audio
from .errors import WatcherError
from .intake import Claimed
from .jobs import Generated


def done_sidecar(claimed: Claimed, generated: Generated, audio: Audio, *, base: str, started_at: str,
                 daemon_id: str, take: tuple[int, int] = (1, 1)) -> dict[str, Any]:
    """`outbox/<base>.json`, written after the audio, so its presence means the audio is complete.

    `audio` is the audio as written (resampled for Opus); `generated` what the model made; `take` is
    (n, of), for a request that asked for several takes.
    """
    prepared = claimed.prepared
    assert prepared is not None, "only a prepared request is generated"
    output = prepared.output
    return {
        "status": "done",
        "request_id": claimed.request_id,
        "request": prepared.checked.received,
        "model": generated.model,
        "seed": generated.seed,
        "audio": f"{base}.{output.format.value}",
        "output": base,
        "output_renamed": base != output.stem,
        "format": output.format.value,
        "sample_format": output.sample_format.value,
        "normalize": output.normalize.value,
        **({"bitrate": output.bitrate} if output.bitrate is not None else {}),
        "sample_rate": audio.sample_rate,
        **({"resampled_from": generated.audio.sample_rate}
           if audio.sample_rate != generated.audio.sample_rate else {}),
        "channels": audio.channels,
        "frames": audio.frames,
        "duration_seconds": round(audio.seconds, 6),
        "attachments": [attachment.record() for attachment in prepared.attachments],
        **({"take": take[0], "takes": take[1]} if take[1] > 1 else {}),
        "batch_size": generated.batch_size,
        "device": generated.device,
        "dtype": generated.dtype,
        "timings": {
            "queued_at": iso(claimed.queued_at),
            "started_at": started_at,
            "finished_at": now_iso(),
            "load_seconds": round(generated.load_seconds, 3),
            "generate_seconds": round(generated.generate_seconds, 3),
        },
        "attempt": claimed.attempt,
        "daemon": daemon_id,
        **({"presets": list(prepared.checked.presets)} if prepared.checked.presets else {}),
        **_metadata(prepared.checked.received),
        "versions": versions(),
    }


def _metadata(received: dict[str, Any]) -> dict[str, Any]:
    """A request's own `metadata`, passed through unchanged (when it has one that is an object)."""
    metadata = received.get("metadata")
    return {"metadata": metadata} if isinstance(metadata, dict) else {}


def error_sidecar(request_id: str, error: WatcherError, received: dict[str, Any]) -> dict[str, Any]:
    """`failed/<name>.error.json`; `received` is the request as far as it could be decoded."""
    return {"status": "failed", "request_id": request_id, "error": error.as_dict(), "failed_at": now_iso(),
            **_metadata(received), "versions": versions()}
