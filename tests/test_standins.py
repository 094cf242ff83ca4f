"""The stand-ins: built fresh, then loaded by AudioCraft's unmodified loader.

huggingface_hub reads HF_HOME and HF_HUB_OFFLINE once, when it is imported, and this
process has already imported it for other roots. So the loading runs in one subprocess
started with standin_env(root), as production would be; the tests check what it reports.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SAMPLE_RATE
from watcher.testing._configs import HTDEMUCS_CHECKPOINT
from watcher.testing.standins import (
    STANDIN_MODELS,
    TINY_WINDOW_SECONDS,
    build_standins,
    main,
    standin_env,
    write_local_model,
)

CHANNELS = {"facebook/musicgen-small": 1, "facebook/musicgen-stereo-small": 2, "facebook/musicgen-melody": 1}

# Loads every stand-in and reports shapes and timings as one JSON line on stdout.
PROBE = r"""
import json, random, sys, time
import torch
from audiocraft.models import MusicGen

# Tiny models gain nothing from threads, and on a busy 2-core machine they spin against each other.
torch.set_num_threads(1)
models, local = json.loads(sys.argv[1]), sys.argv[2]
report = {}

def seed():
    torch.manual_seed(1234)
    random.seed(1234)  # demucs draws its random time shift from Python's random

def generate(model, call, twice=True):
    seed()
    start = time.perf_counter()
    wav = call()
    seconds = time.perf_counter() - start
    result = {"shape": list(wav.shape), "finite": bool(torch.isfinite(wav).all()), "gen_s": round(seconds, 2)}
    if twice:
        seed()
        result["deterministic"] = torch.equal(wav, call())
    return result

def load(name):
    start = time.perf_counter()
    model = MusicGen.get_pretrained(name, device="cpu")
    loaded = round(time.perf_counter() - start, 2)
    model.set_generation_params(duration=2)
    return model, {"load_s": loaded, "sample_rate": model.sample_rate,
                   "channels": model.audio_channels, "max_duration": model.max_duration,
                   "compression": type(model.compression_model).__name__}

for name in models:
    model, info = load(name)
    info["text"] = generate(model, lambda: model.generate(["a", "b"]))
    if name == "facebook/musicgen-melody":
        t = torch.arange(2 * 32000) / 32000
        melody = torch.sin(2 * torch.pi * 220 * t)[None]
        info["chroma"] = generate(model, lambda: model.generate_with_chroma(["a"], melody[None], 32000))
    if name == "facebook/musicgen-small":
        model.set_generation_params(duration=24, extend_stride=10)
        info["extended"] = generate(model, lambda: model.generate(["a"]), twice=False)
    report[name] = info

model, info = load(local)
info["text"] = generate(model, lambda: model.generate(["a", "b"]))
report["local"] = info
print(json.dumps(report))
"""


@pytest.fixture(scope="session")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh root with every stand-in, plus a local model folder."""
    path = tmp_path_factory.mktemp("standins")
    build_standins(path)
    write_local_model(path / "local")
    return path


@pytest.fixture(scope="session")
def report(root: Path) -> dict[str, Any]:
    """Load and generate with each stand-in in a process that starts with standin_env(root)."""
    env = {**os.environ, **standin_env(root)}
    args = [json.dumps(list(STANDIN_MODELS)), str(root / "local")]
    done = subprocess.run([sys.executable, "-c", PROBE, *args], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    value: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return value


def repo(root: Path, repo_id: str) -> Path:
    return root / "huggingface" / "hub" / ("models--" + repo_id.replace("/", "--"))


def test_env_points_at_root(tmp_path: Path) -> None:
    env = standin_env(tmp_path)
    assert env["HF_HOME"] == str(tmp_path / "huggingface")
    assert env["HF_HUB_CACHE"] == str(tmp_path / "huggingface" / "hub")
    assert env["TORCH_HOME"] == str(tmp_path / "torch")
    assert env["HF_HUB_OFFLINE"] == env["TRANSFORMERS_OFFLINE"] == "1"


@pytest.mark.parametrize("repo_id", [*STANDIN_MODELS, "t5-base", "facebook/encodec_32khz"])
def test_hub_cache_layout(root: Path, repo_id: str) -> None:
    folder = repo(root, repo_id)
    commit = (folder / "refs" / "main").read_text()
    files = list((folder / "snapshots" / commit).iterdir())
    assert len(commit) == 40 and files
    for file in files:
        target = file.readlink()
        assert target.parent == Path("..", "..", "blobs")
        assert hashlib.sha256(file.read_bytes()).hexdigest() == target.name


def test_htdemucs_checkpoint(root: Path) -> None:
    assert (root / "torch" / "hub" / "checkpoints" / HTDEMUCS_CHECKPOINT).is_file()


def test_checkpoints_carry_real_configs(root: Path) -> None:
    import torch
    from omegaconf import OmegaConf

    def load(repo_id: str, name: str) -> dict[str, Any]:
        folder = repo(root, repo_id)
        commit = (folder / "refs" / "main").read_text()
        package: dict[str, Any] = torch.load(folder / "snapshots" / commit / name)
        return package

    for repo_id in STANDIN_MODELS:
        cfg = OmegaConf.create(load(repo_id, "state_dict.bin")["xp.cfg"])
        assert cfg.dataset.segment_duration == TINY_WINDOW_SECONDS
        assert cfg.conditioners.description.t5.name == "t5-base"
        assert "merge_text_conditions_p" in cfg.conditioners.args
    stereo = OmegaConf.create(load("facebook/musicgen-stereo-small", "state_dict.bin")["xp.cfg"])
    assert stereo.codebooks_pattern.delay.delays == [0, 0, 1, 1, 2, 2, 3, 3]
    assert OmegaConf.to_container(stereo.interleave_stereo_codebooks) == {"use": True, "per_timestep": False}
    melody = OmegaConf.create(load("facebook/musicgen-melody", "state_dict.bin")["xp.cfg"])
    assert melody.conditioners.self_wav.model == "chroma_stem"
    # EnCodec in both forms: a reference to the hub model, and full AudioCraft weights.
    assert load("facebook/musicgen-small", "compression_state_dict.bin")["pretrained"] == "facebook/encodec_32khz"
    for repo_id in ("facebook/musicgen-stereo-small", "facebook/musicgen-melody"):
        assert {"best_state", "xp.cfg"} <= load(repo_id, "compression_state_dict.bin").keys()


def test_builds_are_reproducible_and_cli_prints_env(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path), "--model", "facebook/musicgen-stereo-small"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"export {key}={value}" for key, value in standin_env(tmp_path).items()]
    for repo_id in ("t5-base", "facebook/musicgen-stereo-small"):
        assert (repo(tmp_path, repo_id) / "refs" / "main").read_text() == (
            repo(root, repo_id) / "refs" / "main"
        ).read_text()
    assert not repo(tmp_path, "facebook/musicgen-small").exists()


def test_rejects_unknown_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="musicgen-large"):
        build_standins(tmp_path, models=["facebook/musicgen-large"])


@pytest.mark.parametrize("model", STANDIN_MODELS)
def test_generates_through_real_loader(report: dict[str, Any], model: str) -> None:
    info = report[model]
    assert info["sample_rate"] == SAMPLE_RATE
    assert info["channels"] == CHANNELS[model]
    assert info["max_duration"] == TINY_WINDOW_SECONDS
    assert info["text"]["shape"] == [2, CHANNELS[model], 2 * SAMPLE_RATE]
    assert info["text"]["finite"] and info["text"]["deterministic"]


def test_encodec_in_both_forms(report: dict[str, Any]) -> None:
    assert report["facebook/musicgen-small"]["compression"] == "HFEncodecCompressionModel"
    assert report["facebook/musicgen-stereo-small"]["compression"] == "InterleaveStereoCompressionModel"
    assert report["facebook/musicgen-melody"]["compression"] == "EncodecModel"


def test_melody_through_demucs(report: dict[str, Any]) -> None:
    chroma = report["facebook/musicgen-melody"]["chroma"]
    assert chroma["shape"] == [1, 1, 2 * SAMPLE_RATE]
    assert chroma["finite"] and chroma["deterministic"]


def test_extends_beyond_window(report: dict[str, Any]) -> None:
    extended = report["facebook/musicgen-small"]["extended"]
    assert extended["shape"] == [1, 1, 24 * SAMPLE_RATE]
    assert extended["finite"]


def test_local_model_folder(report: dict[str, Any]) -> None:
    local = report["local"]
    assert local["compression"] == "EncodecModel"
    assert local["max_duration"] == TINY_WINDOW_SECONDS
    assert local["text"]["shape"] == [2, 1, 2 * SAMPLE_RATE]
