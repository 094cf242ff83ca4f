"""Reading attachments and writing results with soundfile (no ffmpeg, no torchcodec)."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import soundfile as sf

from . import files
from .errors import ErrorCode, RequestError
from .options import OPUS_RATES, AudioFormat, Normalize, SampleFormat, subtype_for

if TYPE_CHECKING:  # torch costs seconds to import; the daemon claims and reads requests before it has it
    import torch


@dataclass(frozen=True)
class Audio:
    """Samples as [channels, frames] float32 on the CPU, with their rate."""

    wav: torch.Tensor
    sample_rate: int

    @property
    def channels(self) -> int:
        return int(self.wav.shape[0])

    @property
    def frames(self) -> int:
        return int(self.wav.shape[-1])

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def read_audio(path: Path, *, field: str, max_bytes: int | None = None,
               max_seconds: float | None = None) -> Audio:
    """Read any file soundfile understands (wav, flac, ogg, mp3) as float32 [C, T]."""
    return decode_audio(read_bytes(path, field=field, max_bytes=max_bytes), path.name, field=field,
                        max_seconds=max_seconds)


def read_bytes(path: Path, *, field: str, max_bytes: int | None = None) -> bytes:
    """An attachment's bytes, refused (before reading) when larger than `max_bytes`."""
    size = path.stat().st_size
    if max_bytes is not None and size > max_bytes:
        raise RequestError(ErrorCode.attachment_too_large,
                           f"{path.name} is {size} bytes; attachments may be at most {max_bytes} bytes.", field=field)
    with open(path, "rb") as handle:
        return handle.read(max_bytes + 1 if max_bytes is not None else -1)


def decode_audio(data: bytes, name: str, *, field: str, max_seconds: float | None = None) -> Audio:
    """Decode an audio file's bytes (wav, flac, ogg, mp3) as float32 [C, T]."""
    try:
        info = sf.info(io.BytesIO(data))
        if max_seconds is not None and info.duration > max_seconds:
            raise RequestError(
                ErrorCode.attachment_too_large,
                f"{name} lasts {info.duration:.1f} s; attachments may last at most {max_seconds:g} s.",
                field=field,
            )
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        reason = exc.error_string if isinstance(exc, sf.LibsndfileError) else str(exc)
        raise RequestError(
            ErrorCode.unreadable_audio,
            f"{name} is not an audio file that can be read (wav, flac, ogg or mp3): {reason.rstrip('.')}.",
            field=field,
        ) from exc
    if samples.shape[0] == 0:
        raise RequestError(ErrorCode.unreadable_audio, f"{name} holds no audio.", field=field)
    import torch

    return Audio(torch.from_numpy(samples.T.copy()), int(rate))


def normalized(audio: Audio, strategy: Normalize) -> Audio:
    """Apply AudioCraft's own normalisation, as its `audio_write` does."""
    if strategy is Normalize.none:
        return audio  # normalize_audio asserts |x| < 1 here; soundfile clips PCM itself
    # Imported here: importing audiocraft costs seconds, which `validate` and `status` need not pay.
    from audiocraft.data.audio_utils import normalize_audio

    wav = normalize_audio(audio.wav, normalize=True, strategy=strategy.value,
                          sample_rate=audio.sample_rate)
    return Audio(wav, audio.sample_rate)


def for_format(audio: Audio, fmt: AudioFormat) -> Audio:
    """The audio as `fmt` can hold it: Opus takes no 32 kHz, so it is resampled to 48 kHz."""
    if fmt is not AudioFormat.opus or audio.sample_rate in OPUS_RATES:
        return audio
    import julius  # AudioCraft's own resampler

    return Audio(julius.resample_frac(audio.wav, audio.sample_rate, OPUS_RATES[-1]), OPUS_RATES[-1])


def write_temp_audio(audio: Audio, folder: Path, name: str, fmt: AudioFormat,
                     sample_format: SampleFormat = SampleFormat.pcm16, level: float | None = None) -> Path:
    """Write `audio` (as `for_format` gave it) to a fsynced temporary file in `folder`.

    `level` is libsndfile's compression level for the lossy formats. Publish the file with
    `files.link_no_clobber`.
    """
    subtype = subtype_for(fmt, sample_format)
    data = audio.wav.detach().cpu().float().numpy().T
    # Encode in memory, then write with plain file I/O: libsndfile reports a full disk only as
    # "System error", while Python raises OSError with its errno (ENOSPC, EACCES, EROFS).
    encoded = io.BytesIO()
    sf.write(encoded, data, audio.sample_rate, format=fmt.container, subtype=subtype, compression_level=level,
             bitrate_mode="CONSTANT" if fmt is AudioFormat.mp3 else None)
    return files.write_temp(folder, name, lambda tmp: tmp.write_bytes(encoded.getbuffer()))


def write_audio(audio: Audio, dest: Path, fmt: AudioFormat, sample_format: SampleFormat = SampleFormat.pcm16,
                level: float | None = None) -> Path:
    """Write `audio` atomically to `dest`, or `dest-1`, ... if taken; returns the final path."""
    tmp = write_temp_audio(audio, dest.parent, dest.name, fmt, sample_format, level)
    for name in files.candidates(dest.stem, dest.suffix):
        if files.link_no_clobber(tmp, dest.parent / name):
            return dest.parent / name
    raise AssertionError("unreachable")
