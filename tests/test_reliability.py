"""Crash safety, signals, several daemons, a full disk, other devices, and a corpus of bad input."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import soundfile as sf

from tests.conftest import (
    SAMPLE_RATE,
    DataRoot,
    RunOnce,
    StartDaemon,
    cli,
    config_file,
    daemon_env,
    wait_for,
    write_wav,
)
from watcher.faults import FaultPoint


def published(data: DataRoot) -> dict[str, list[str]]:
    """request_id -> the audio files whose sidecars name it."""
    out: dict[str, list[str]] = {}
    for sidecar in data.outbox.glob("*.json"):
        value = json.loads(sidecar.read_text())
        out.setdefault(value["request_id"], []).append(value["audio"])
    return out


def user_visible_leftovers(data: DataRoot) -> list[Path]:
    """Temporaries or partial files anywhere a user looks."""
    return [p for folder in (data.inbox, data.outbox, data.done, data.failed) for p in folder.iterdir()
            if p.name.startswith(".") or p.name.endswith((".tmp", ".part"))]


def test_kill_at_every_point_then_recover(data: DataRoot, standins: Path) -> None:
    names = [f"job{i}" for i in range(len(FaultPoint) + 2)]
    takes = {name: 1 + i % 2 for i, name in enumerate(names)}  # every other one asks for two takes
    for name in names:
        data.drop(f"{name}.json", {"prompt": name, "duration": 0.5, "seed": 1, "takes": takes[name]})
    # One crash at each point in turn; each restart first recovers what the last one left, so the
    # same request may die several times: allow that many attempts (the poison test covers the limit).
    for point in FaultPoint:
        config = config_file(data, engine={"max_batch": 1, "max_attempts": 10})
        result = cli("run", "--once", "--config", str(config), env=daemon_env(MUSICGEN_WATCHER_FAULT=point.value))
        assert result.returncode == -signal.SIGKILL, (point, result.stderr[-2000:])
    for _ in range(3):
        result = cli("run", "--once", "--config", str(config_file(data)))
        assert result.returncode == 0, result.stderr[-2000:]
        if not data.listing("inbox") and not list(data.processing.glob("*/*.json")):
            break
    assert data.listing("failed") == []
    assert sorted(data.listing("done")) == sorted(f"{n}.json" for n in names)
    outputs = published(data)
    assert sorted(outputs) == sorted(names)
    expected = {name: [name] if takes[name] == 1 else [f"{name}-1", f"{name}-2"] for name in names}
    for name, audio in outputs.items():
        assert sorted(audio) == [f"{base}.wav" for base in expected[name]], (name, audio)  # exactly once each
        for file in audio:
            info = sf.info(str(data.outbox / file))
            assert (info.samplerate, info.frames) == (SAMPLE_RATE, SAMPLE_RATE // 2)
    assert sorted(p.name for p in data.outbox.iterdir()) == sorted(
        f"{base}.{e}" for bases in expected.values() for base in bases for e in ("wav", "json"))
    assert user_visible_leftovers(data) == []
    assert sorted(p.name for p in (data.processing / "test").iterdir()) == [".heartbeat", ".lock"]


def test_a_poison_request_is_set_aside(data: DataRoot, standins: Path) -> None:
    data.drop("poison.json", {"prompt": "x", "duration": 0.5})
    config = config_file(data, engine={"max_attempts": 2})
    for _ in range(2):
        result = cli("run", "--once", "--config", str(config), env=daemon_env(MUSICGEN_WATCHER_FAULT="mid_generation"))
        assert result.returncode == -signal.SIGKILL
    assert data.where("poison") == "processing/test"
    assert cli("run", "--once", "--config", str(config)).returncode == 0
    assert data.where("poison") == "failed"
    assert data.error("poison")["error"]["code"] == "crashed_repeatedly"


def long_request(data: DataRoot, name: str = "long") -> bytes:
    body = json.dumps({"prompt": "a long piece", "duration": 60, "extend_stride": 10}).encode()
    data.drop(f"{name}.json", body)
    return body


def wait_running(data: DataRoot, name: str) -> None:
    wait_for(lambda: (data.processing / "test" / f"{name}.status.json").exists(), what=f"{name} to start")


def test_sigterm_lets_the_running_request_finish(data: DataRoot, start_daemon: StartDaemon) -> None:
    daemon = start_daemon(daemon={"shutdown_grace": 120})
    data.drop("song.json", {"prompt": "x", "duration": 8})
    wait_running(data, "song")
    data.drop("next.json", {"prompt": "y", "duration": 0.5})
    assert daemon.stop(signal.SIGTERM, timeout=120) == 0
    assert data.where("song") == "done"
    assert data.where("next") == "inbox"  # no new work was claimed after the signal


def test_grace_runs_out_and_the_request_goes_back_untouched(data: DataRoot, start_daemon: StartDaemon) -> None:
    daemon = start_daemon(daemon={"shutdown_grace": 0.5})
    body = long_request(data)
    wait_running(data, "long")
    assert daemon.stop(signal.SIGTERM, timeout=60) == 0
    assert data.where("long") == "inbox"
    assert (data.inbox / "long.json").read_bytes() == body
    assert data.listing("outbox") == [] and user_visible_leftovers(data) == []
    assert sorted(p.name for p in (data.processing / "test").iterdir()) == [".heartbeat", ".lock"]


def test_second_signal_stops_at_once(data: DataRoot, start_daemon: StartDaemon) -> None:
    daemon = start_daemon(daemon={"shutdown_grace": 600})
    long_request(data)
    wait_running(data, "long")
    daemon.proc.send_signal(signal.SIGTERM)
    daemon.proc.send_signal(signal.SIGINT)
    assert daemon.proc.wait(timeout=60) == 0
    assert data.where("long") == "inbox"


def test_two_daemons_share_one_inbox(data: DataRoot, standins: Path) -> None:
    names = [f"r{i:02}" for i in range(40)]
    for name in names:
        data.drop(f"{name}.json", {"prompt": name, "duration": 0.1})
    procs = []
    for daemon_id in ("gpu0", "gpu1"):
        config = config_file(data, daemon={"id": daemon_id}, engine={"threads": 1, "max_batch": 2})
        config = config.rename(config.with_name(f"{daemon_id}.toml"))
        procs.append(subprocess.Popen([*cli_args("run", "--once", "--config", str(config))], env=daemon_env(),
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    logs = [p.communicate(timeout=600)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [log[-2000:] for log in logs]
    assert sorted(data.listing("done")) == [f"{n}.json" for n in names]
    outputs = published(data)
    assert sorted(outputs) == names and all(len(v) == 1 for v in outputs.values())
    by_daemon = {json.loads((data.outbox / f"{n}.json").read_text())["daemon"] for n in names}
    assert by_daemon == {"gpu0", "gpu1"}  # both did work


def cli_args(*args: str) -> list[str]:
    import sys

    return [sys.executable, "-m", "watcher", *args]


Mount = Callable[[Path, str], Path]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Mount]:
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}); needs root")
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_full_disk_fails_cleanly_and_keeps_serving(data: DataRoot, run_once: RunOnce, tmpfs: Mount) -> None:
    outbox = tmpfs(data.root / "outbox", "48k")
    data.drop("big.json", {"prompt": "x", "duration": 2, "priority": 1})  # 128 KB of PCM16: does not fit
    data.drop("small.json", {"prompt": "y", "duration": 0.2})  # 13 KB: fits
    run_once(folders={"outbox": str(outbox)})
    assert data.where("big") == "failed" and data.where("small") == "done"
    error = data.error("big")["error"]
    assert error["code"] == "output_failed" and "No space left" in error["message"]
    assert sorted(p.name for p in outbox.iterdir()) == ["small.json", "small.wav"]  # nothing partial


def test_folders_on_other_devices(data: DataRoot, run_once: RunOnce, tmpfs: Mount) -> None:
    done = tmpfs(data.root / "done", "4m")
    failed = tmpfs(data.root / "failed", "4m")
    write_wav(data.inbox / "hum.wav", 1.0)
    data.drop("ok.json", {"prompt": "x", "duration": 1.5, "continuation": "hum.wav"})
    data.drop("bad.json", {"prompt": "x", "durration": 1})
    run_once(folders={"done": str(done), "failed": str(failed)})
    assert sorted(p.name for p in done.iterdir()) == ["hum.wav", "ok.json"]
    assert sorted(p.name for p in failed.iterdir()) == ["bad.error.json", "bad.json"]
    assert data.listing("inbox") == [] and user_visible_leftovers(data) == []


def test_model_download_failure_stays_in_line(data: DataRoot, start_daemon: StartDaemon) -> None:
    daemon = start_daemon()
    data.drop("medium.json", {"prompt": "x", "model": "facebook/musicgen-medium", "duration": 0.2})
    data.drop("small.json", {"prompt": "x", "duration": 0.2})
    wait_for(lambda: (data.done / "small.json").exists(), what="the other request")
    assert data.where("medium") == "processing/test"
    assert daemon.stop() == 0
    events = daemon.events()
    retries = [e for e in events if e["event"] == "retry_later"]
    assert retries and retries[0]["error_code"] == "model_unavailable" and retries[0]["request_id"] == "medium"
    assert data.where("medium") == "inbox" and data.listing("failed") == []
