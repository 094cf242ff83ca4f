"""Audio in and out with soundfile: formats, AudioCraft's normalisation, atomic never-overwriting writes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import soundfile as sf
import torch

from tests.conftest import write_wav
from watcher.audio import Audio, normalized, read_audio, write_audio
from watcher.errors import ErrorCode, RequestError
from watcher.options import AudioFormat, Normalize, SampleFormat

RATE = 32000


def tone(channels: int = 1, seconds: float = 0.5, peak: float = 0.25) -> Audio:
    t = torch.arange(int(RATE * seconds)) / RATE
    wav = peak * torch.sin(2 * math.pi * 440 * t)
    return Audio(wav.repeat(channels, 1), RATE)


@pytest.mark.parametrize(("fmt", "sample_format", "subtype"), [
    (AudioFormat.wav, SampleFormat.pcm16, "PCM_16"),
    (AudioFormat.wav, SampleFormat.pcm24, "PCM_24"),
    (AudioFormat.wav, SampleFormat.float, "FLOAT"),
    (AudioFormat.flac, SampleFormat.pcm24, "PCM_24"),
    (AudioFormat.ogg, SampleFormat.pcm16, "VORBIS"),
])
def test_formats_read_back(tmp_path: Path, fmt: AudioFormat, sample_format: SampleFormat, subtype: str) -> None:
    path = write_audio(tone(channels=2), tmp_path / f"out.{fmt.value}", fmt, sample_format)
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype) == (RATE, 2, subtype)
    assert info.frames == RATE // 2
    assert [p.name for p in tmp_path.iterdir()] == [f"out.{fmt.value}"]  # no temporary left


def test_flac_cannot_hold_float() -> None:
    with pytest.raises(RequestError) as caught:
        write_audio(tone(), Path("/nonexistent/x.flac"), AudioFormat.flac, SampleFormat.float)
    assert (caught.value.code, caught.value.field) == (ErrorCode.invalid_request, "sample_format")


def test_existing_file_is_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "x.wav").write_bytes(b"mine")
    first = write_audio(tone(), tmp_path / "x.wav", AudioFormat.wav)
    second = write_audio(tone(), tmp_path / "x.wav", AudioFormat.wav)
    assert (first.name, second.name) == ("x-1.wav", "x-2.wav")
    assert (tmp_path / "x.wav").read_bytes() == b"mine"


def test_normalisation_is_audiocrafts() -> None:
    quiet = tone(peak=0.1)
    peak = normalized(quiet, Normalize.peak).wav.abs().max().item()
    assert peak == pytest.approx(10 ** (-1 / 20), rel=1e-4)  # 1 dB below full scale
    loud = Audio(quiet.wav * 30, RATE)
    assert normalized(loud, Normalize.clip).wav.abs().max().item() == pytest.approx(10 ** (-1 / 20), rel=1e-4)
    assert torch.equal(normalized(quiet, Normalize.none).wav, quiet.wav)
    rms = normalized(quiet, Normalize.rms).wav.pow(2).mean().sqrt().item()
    assert rms == pytest.approx(10 ** (-18 / 20), rel=1e-3)
    assert normalized(quiet, Normalize.loudness).wav.abs().max().item() > 0.1


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG", "MP3"])
def test_reads_what_soundfile_reads(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"in.{fmt.lower()}"
    source = tone(channels=2, seconds=1.0)
    sf.write(str(path), source.wav.numpy().T, 44100, format=fmt)
    audio = read_audio(path, field="melody")
    assert audio.channels == 2 and audio.sample_rate == 44100
    assert audio.frames == pytest.approx(RATE, abs=2000)  # mp3 pads a little


def test_limits_and_junk(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "long.wav", 3.0)
    with pytest.raises(RequestError) as caught:
        read_audio(path, field="melody", max_seconds=2)
    assert (caught.value.code, caught.value.field) == (ErrorCode.attachment_too_large, "melody")
    with pytest.raises(RequestError) as caught:
        read_audio(path, field="melody", max_bytes=100)
    assert caught.value.code is ErrorCode.attachment_too_large
    (tmp_path / "text.wav").write_text("hello")
    with pytest.raises(RequestError) as caught:
        read_audio(tmp_path / "text.wav", field="continuation")
    assert (caught.value.code, caught.value.field) == (ErrorCode.unreadable_audio, "continuation")


def test_mp3_bitrates_are_what_the_table_says() -> None:
    """libsndfile takes a compression level, not a bit rate: the table maps one to the other (measured on noise)."""
    import io

    import numpy as np

    from watcher.options import MP3_LEVELS

    noise = (np.random.default_rng(0).standard_normal(4 * 32000) * 0.2).astype(np.float32)
    for kbps, level in MP3_LEVELS.items():
        encoded = io.BytesIO()
        sf.write(encoded, noise, 32000, format="MP3", subtype="MPEG_LAYER_III", compression_level=level,
                 bitrate_mode="CONSTANT")
        measured = len(encoded.getvalue()) * 8 / 4 / 1000
        assert kbps <= measured <= kbps * 1.04, (kbps, measured)  # the frames' headers add a little
