"""Generation and output options shared by the request contract, the engine and the writer.

Kept free of torch and audiocraft, so commands that only read requests start at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


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


@dataclass(frozen=True)
class Sampling:
    """Every argument of `set_generation_params` but duration, with AudioCraft's defaults."""

    top_k: int = 250
    top_p: float = 0.0
    temperature: float = 1.0
    cfg_coef: float = 3.0
    two_step_cfg: bool = False
    extend_stride: float = 18.0
