"""The engine on the stand-ins, through AudioCraft's unmodified loading and generation code."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import SAMPLE_RATE, write_wav
from watcher.audio import read_audio
from watcher.engine import Engine
from watcher.errors import ErrorCode, RequestError
from watcher.jobs import Job
from watcher.models import ResolvedModel, resolve_model
from watcher.options import Sampling
from watcher.testing.standins import TINY_WINDOW_SECONDS, write_local_model

FRAME = SAMPLE_RATE // 50  # one EnCodec frame


@pytest.fixture(scope="module")
def engine(standins: Path) -> Engine:
    return Engine("cpu")


def model(name: str) -> ResolvedModel:
    return resolve_model(name)


def frames_ok(wav: torch.Tensor, seconds: float) -> bool:
    return abs(wav.shape[-1] - seconds * SAMPLE_RATE) <= FRAME


def test_text_to_music_mono(engine: Engine) -> None:
    [out] = engine.generate(model("facebook/musicgen-small"), [Job(prompt="calm piano")], duration=1.0)
    assert out.audio.sample_rate == SAMPLE_RATE
    assert out.audio.channels == 1
    assert frames_ok(out.audio.wav, 1.0)
    assert out.device == "cpu" and out.dtype == "float32" and out.batch_size == 1
    assert out.load_seconds > 0 and out.generate_seconds > 0


def test_stereo_follows_the_model(engine: Engine) -> None:
    [out] = engine.generate(model("facebook/musicgen-stereo-small"), [Job(prompt="wide pads")], duration=1.0)
    assert out.audio.channels == 2 and frames_ok(out.audio.wav, 1.0)


def test_swapping_releases_and_reloads(engine: Engine) -> None:
    engine.generate(model("facebook/musicgen-small"), [Job(prompt="a")], duration=0.5)
    loads = engine.loads
    [again] = engine.generate(model("facebook/musicgen-small"), [Job(prompt="b")], duration=0.5)
    assert engine.loads == loads and again.load_seconds == 0.0
    engine.generate(model("facebook/musicgen-stereo-small"), [Job(prompt="c")], duration=0.5)
    assert engine.loads == loads + 1 and engine.resident == "facebook/musicgen-stereo-small"


def test_same_seed_same_audio_different_seed_differs(engine: Engine) -> None:
    small = model("facebook/musicgen-small")
    a = engine.generate(small, [Job(prompt="x")], duration=1.0, seed=7)[0].audio.wav
    b = engine.generate(small, [Job(prompt="x")], duration=1.0, seed=7)[0].audio.wav
    c = engine.generate(small, [Job(prompt="x")], duration=1.0, seed=8)[0].audio.wav
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_seed_is_chosen_and_reported_when_not_given(engine: Engine) -> None:
    small = model("facebook/musicgen-small")
    first = engine.generate(small, [Job(prompt="x")], duration=0.5)[0]
    again = engine.generate(small, [Job(prompt="x")], duration=0.5, seed=first.seed)[0]
    assert torch.equal(first.audio.wav, again.audio.wav)


def test_batch_is_one_call_with_one_output_each(engine: Engine) -> None:
    outs = engine.generate(model("facebook/musicgen-small"), [Job(prompt=p) for p in "abc"], duration=1.0, seed=3)
    assert len(outs) == 3 and {o.batch_size for o in outs} == {3} and {o.seed for o in outs} == {3}
    assert all(frames_ok(o.audio.wav, 1.0) for o in outs)


def test_unconditional(engine: Engine) -> None:
    [out] = engine.generate(model("facebook/musicgen-small"), [Job()], duration=1.0)
    assert frames_ok(out.audio.wav, 1.0)


def test_melody_on_a_melody_model(engine: Engine, tmp_path: Path) -> None:
    melody = read_audio(write_wav(tmp_path / "hum.wav", 2.0, rate=44100, channels=2), field="melody")
    [out] = engine.generate(model("facebook/musicgen-melody"), [Job(prompt="x", melody=melody)], duration=1.0)
    assert out.audio.channels == 1 and frames_ok(out.audio.wav, 1.0)


def test_melody_on_a_text_model_is_unsupported(engine: Engine, tmp_path: Path) -> None:
    melody = read_audio(write_wav(tmp_path / "hum.wav", 1.0), field="melody")
    with pytest.raises(RequestError) as caught:
        engine.generate(model("facebook/musicgen-small"), [Job(prompt="x", melody=melody)], duration=1.0)
    assert caught.value.code is ErrorCode.unsupported_mode
    assert "musicgen-melody" in caught.value.message


def test_continuation_counts_inside_the_duration(engine: Engine, tmp_path: Path) -> None:
    clip = read_audio(write_wav(tmp_path / "clip.wav", 1.0), field="continuation")
    [out] = engine.generate(model("facebook/musicgen-small"), [Job(prompt="more", continuation=clip)], duration=2.0)
    assert frames_ok(out.audio.wav, 2.0)
    [bare] = engine.generate(model("facebook/musicgen-small"), [Job(continuation=clip)], duration=2.0)
    assert frames_ok(bare.audio.wav, 2.0)


def test_continuation_longer_than_duration_is_refused(engine: Engine, tmp_path: Path) -> None:
    clip = read_audio(write_wav(tmp_path / "clip.wav", 3.0), field="continuation")
    with pytest.raises(RequestError) as caught:
        engine.generate(model("facebook/musicgen-small"), [Job(continuation=clip)], duration=2.0)
    assert (caught.value.code, caught.value.field) == (ErrorCode.invalid_request, "continuation")


def test_beyond_the_window_extends_with_monotonic_progress(engine: Engine) -> None:
    seen: list[float] = []
    duration = TINY_WINDOW_SECONDS + 4
    [out] = engine.generate(model("facebook/musicgen-small"), [Job(prompt="long")], duration=duration,
                            sampling=Sampling(extend_stride=10), progress=seen.append)
    assert frames_ok(out.audio.wav, duration)
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert len(seen) > 100 and seen[-2] > 0.9  # progress spans both windows, not each window alone


def test_local_folder_with_full_encodec_weights(engine: Engine, tmp_path: Path) -> None:
    folder = write_local_model(tmp_path / "mine")
    local = resolve_model(str(folder), model_dirs=[tmp_path])
    [out] = engine.generate(local, [Job(prompt="x")], duration=0.5)
    assert out.audio.sample_rate == SAMPLE_RATE and frames_ok(out.audio.wav, 0.5)


def test_broken_model_folder_is_model_load_failed(engine: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "state_dict.bin").write_bytes(b"not a checkpoint")
    (folder / "compression_state_dict.bin").write_bytes(b"not either")
    with pytest.raises(RequestError) as caught:
        engine.generate(resolve_model(str(folder), model_dirs=[tmp_path]), [Job(prompt="x")], duration=0.5)
    assert caught.value.code is ErrorCode.model_load_failed


def test_model_missing_from_the_offline_cache_is_transient(engine: Engine) -> None:
    from watcher.errors import TransientError

    with pytest.raises(TransientError) as caught:
        engine.generate(model("facebook/musicgen-large"), [Job(prompt="x")], duration=0.5)
    assert caught.value.code is ErrorCode.model_unavailable
