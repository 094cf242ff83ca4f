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
    #: MPEG layer III, constant bit rate (320 kbps unless told otherwise)
    mp3 = "mp3"
    #: Ogg Opus at 48 kHz (the model's audio is resampled: Opus takes no 32 kHz)
    opus = "opus"

    @property
    def lossy(self) -> bool:
        """Whether the format is compressed with a bit rate rather than stored as samples."""
        return self in (AudioFormat.ogg, AudioFormat.mp3, AudioFormat.opus)

    @property
    def container(self) -> str:
        """libsndfile's name for the file format."""
        return "OGG" if self is AudioFormat.opus else self.value.upper()

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


_LOSSY_SUBTYPES = {AudioFormat.ogg: "VORBIS", AudioFormat.mp3: "MPEG_LAYER_III", AudioFormat.opus: "OPUS"}

#: the sample rates Opus takes; anything else is resampled to the last
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)

#: MP3 bit rates (kbps) and the libsndfile compression level that gives each at constant bit rate,
#: measured on libsndfile 1.2.2 (it takes a level between 0 and 1, not a bit rate; tests check the table)
MP3_LEVELS = {320: 0.05, 256: 0.2, 224: 0.33, 192: 0.45, 160: 0.55, 128: 0.65, 112: 0.72, 96: 0.78,
              80: 0.83, 64: 0.88, 56: 0.915, 48: 0.945, 40: 0.975, 32: 0.995}
#: the Opus bit rates (kbps) libsndfile's level spans: 0 gives the highest, 1 the lowest
OPUS_KBPS = (6, 256)


def compression_level(fmt: AudioFormat, kbps: int) -> float:
    """The libsndfile compression level for `kbps` in an MP3 or Opus file, or a RequestError."""
    if fmt is AudioFormat.mp3:
        if kbps not in MP3_LEVELS:
            raise RequestError(ErrorCode.invalid_request, f"MP3 bit rates are {', '.join(map(str, MP3_LEVELS))} "
                               f"kbps; {kbps} is not one of them.", field="bitrate")
        return MP3_LEVELS[kbps]
    if fmt is AudioFormat.opus:
        low, high = OPUS_KBPS
        if not low <= kbps <= high:
            raise RequestError(ErrorCode.invalid_request, f"Opus bit rates are {low} to {high} kbps; {kbps} is "
                               "outside them.", field="bitrate")
        return (high - kbps) / (high - low)
    raise RequestError(ErrorCode.invalid_request, f"A bit rate applies to mp3 and opus, not {fmt.value}.",
                       field="bitrate")


def subtype_for(fmt: AudioFormat, sample_format: SampleFormat) -> str:
    """The soundfile subtype, or a RequestError for pairs a container cannot hold (lossy ones take none)."""
    if fmt.lossy:
        return _LOSSY_SUBTYPES[fmt]
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
