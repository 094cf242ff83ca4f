"""Generation and output options shared by the request contract, the engine and the writer.

Kept free of torch and audiocraft, so commands that only read requests start at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .errors import ErrorCode, RequestError


class AudioFormat(StrEnum):
    """Output containers."""

    #: RIFF WAVE, PCM16 unless told otherwise
    wav = "wav"
    #: lossless FLAC
    flac = "flac"
    #: Ogg Vorbis
    ogg = "ogg"


class SampleFormat(StrEnum):
    """Sample encodings for WAV (FLAC takes pcm16/pcm24; Ogg is always Vorbis)."""

    #: 16-bit integer PCM
    pcm16 = "pcm16"
    #: 24-bit integer PCM
    pcm24 = "pcm24"
    #: 32-bit float
    float = "float"


class Normalize(StrEnum):
    """Strategies of AudioCraft's `normalize_audio`, plus none."""

    #: scale so the peak sits 1 dB below full scale (AudioCraft's default)
    peak = "peak"
    #: loudness to -14 LUFS (ITU-R BS.1770)
    loudness = "loudness"
    #: RMS with 18 dB headroom
    rms = "rms"
    #: clip at the peak headroom, no scaling
    clip = "clip"
    #: write the model's samples as they are
    none = "none"


_SUBTYPES = {
    (AudioFormat.wav, SampleFormat.pcm16): "PCM_16",
    (AudioFormat.wav, SampleFormat.pcm24): "PCM_24",
    (AudioFormat.wav, SampleFormat.float): "FLOAT",
    (AudioFormat.flac, SampleFormat.pcm16): "PCM_16",
    (AudioFormat.flac, SampleFormat.pcm24): "PCM_24",
}


def subtype_for(fmt: AudioFormat, sample_format: SampleFormat) -> str:
    """The soundfile subtype, or a RequestError for pairs a container cannot hold (Ogg is always Vorbis)."""
    if fmt is AudioFormat.ogg:
        return "VORBIS"
    try:
        return _SUBTYPES[(fmt, sample_format)]
    except KeyError:
        raise RequestError(
            ErrorCode.invalid_request, f"{fmt.value} cannot hold {sample_format.value} samples.",
            field="sample_format",
        ) from None


class Mode(StrEnum):
    """How a job conditions the model."""

    #: text prompt only
    text = "text"
    #: text plus a melody's chroma (`generate_with_chroma`)
    melody = "melody"
    #: continue an audio prompt, optionally steered by text (`generate_continuation`)
    continuation = "continuation"
    #: neither text nor audio (`generate_unconditional`)
    unconditional = "unconditional"


@dataclass(frozen=True)
class Sampling:
    """Every argument of `set_generation_params` but duration, with AudioCraft's defaults."""

    top_k: int = 250
    top_p: float = 0.0
    temperature: float = 1.0
    cfg_coef: float = 3.0
    two_step_cfg: bool = False
    extend_stride: float = 18.0
