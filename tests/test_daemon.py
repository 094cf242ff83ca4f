"""The daemon as a subprocess on real folders, watched by a real watchdog observer."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import soundfile as sf

from tests.conftest import SAMPLE_RATE, DataRoot, RunOnce, StartDaemon, cli, config_file, wait_for, write_wav


def read_back(path: Path) -> tuple[int, int, int]:
    info = sf.info(str(path))
    return info.samplerate, info.channels, info.frames


def test_requests_end_in_done_with_audio_and_sidecar(data: DataRoot, run_once: RunOnce) -> None:
    data.drop("trailer.json", {"prompt": "epic trailer", "duration": 1, "seed": 5})
    data.drop("wide.json", {"prompt": "pads", "duration": 0.5, "model": "facebook/musicgen-stereo-small",
                            "format": "flac", "output": "pads-take1", "normalize": "peak"})
    run_once(output={"normalize": "rms"})
    assert data.listing("done") == ["trailer.json", "wide.json"]
    assert data.listing("inbox") == [] and data.listing("failed") == []
    assert data.listing("outbox") == ["pads-take1.flac", "pads-take1.json", "trailer.json", "trailer.wav"]
    assert read_back(data.outbox / "trailer.wav") == (SAMPLE_RATE, 1, SAMPLE_RATE)
    rate, channels, frames = read_back(data.outbox / "pads-take1.flac")
    assert (rate, channels) == (SAMPLE_RATE, 2) and abs(frames - SAMPLE_RATE / 2) <= 640
    sidecar = data.sidecar("trailer")
    assert sidecar["status"] == "done" and sidecar["request_id"] == "trailer"
    assert sidecar["request"] == {"prompt": "epic trailer", "duration": 1, "seed": 5}
    assert sidecar["model"] == "facebook/musicgen-small" and sidecar["seed"] == 5
    assert (sidecar["sample_rate"], sidecar["channels"], sidecar["frames"]) == (SAMPLE_RATE, 1, SAMPLE_RATE)
    assert sidecar["duration_seconds"] == 1.0 and sidecar["audio"] == "trailer.wav"
    assert sidecar["device"] == "cpu" and sidecar["dtype"] == "float32"
    assert set(sidecar["timings"]) == {"queued_at", "started_at", "finished_at", "load_seconds", "generate_seconds"}
    assert set(sidecar["versions"]) == {"musicgen_watcher", "audiocraft", "torch"}
    assert data.sidecar("pads-take1")["model"] == "facebook/musicgen-stereo-small"
    assert (sidecar["normalize"], data.sidecar("pads-take1")["normalize"]) == ("rms", "peak")  # config, request
    assert sorted(p.name for p in (data.processing / "test").iterdir()) == [".heartbeat", ".lock"]  # no leftovers


def test_mp3_and_opus_with_metadata(data: DataRoot, run_once: RunOnce) -> None:
    """MP3 at constant bit rates, Opus resampled to 48 kHz, and a pipeline's metadata passed through."""
    mine = {"job": "A-17", "take": [1, 2]}
    data.drop("loud.json", {"prompt": "x", "duration": 2, "format": "mp3", "metadata": mine})
    data.drop("small.json", {"prompt": "x", "duration": 2, "format": "mp3", "bitrate": 128})
    data.drop("voice.json", {"prompt": "x", "duration": 2, "format": "opus", "model": "facebook/musicgen-stereo-small"})
    data.drop("broken.json", {"prompt": "x", "format": "mp3", "bitrate": 100, "metadata": mine})
    run_once()
    for name, kbps in (("loud", 320), ("small", 128)):
        rate, channels, frames = read_back(data.outbox / f"{name}.mp3")
        assert (rate, channels) == (SAMPLE_RATE, 1) and abs(frames - 2 * SAMPLE_RATE) <= 1152  # one MP3 frame
        assert kbps <= (data.outbox / f"{name}.mp3").stat().st_size * 8 / 2 / 1000 <= kbps * 1.05
        assert data.sidecar(name)["bitrate"] == kbps and "resampled_from" not in data.sidecar(name)
    rate, channels, frames = read_back(data.outbox / "voice.opus")
    assert (rate, channels) == (48000, 2) and abs(frames - 2 * 48000) <= 960  # one 20 ms Opus frame
    sidecar = data.sidecar("voice")
    assert (sidecar["format"], sidecar["sample_rate"], sidecar["resampled_from"], sidecar["bitrate"]) == (
        "opus", 48000, SAMPLE_RATE, 128)
    assert sidecar["frames"] == 2 * 48000
    assert data.sidecar("loud")["metadata"] == mine and "metadata" not in data.sidecar("small")
    error = data.error("broken")
    assert error["error"]["field"] == "bitrate" and error["metadata"] == mine


def test_every_error_code_lands_in_failed(data: DataRoot, run_once: RunOnce, tmp_path: Path) -> None:
    (data.inbox / "noise.wav").write_text("not audio at all")
    write_wav(data.inbox / "hum.wav", 1.0)
    cases: dict[str, tuple[dict[str, Any] | bytes, str, str | None]] = {
        "badjson": (b'{"prompt": "x",', "invalid_json", None),
        "utf16": (json.dumps({"prompt": "x"}).encode("utf-16"), "invalid_json", None),
        "typo": ({"prompt": "x", "durration": 3}, "invalid_request", "durration"),
        "huge": ({"prompt": "x", "duration": 10_000}, "invalid_request", "duration"),
        "nomodel": ({"prompt": "x", "model": "facebook/musicgen-xl"}, "unknown_model", "model"),
        "refused": ({"prompt": "x", "model": "evil/pickle"}, "model_not_allowed", "model"),
        "late": ({"prompt": "x", "model": "facebook/musicgen-melody", "melody": "never.wav"},
                 "missing_attachment", "melody"),
        "noise": ({"prompt": "x", "model": "facebook/musicgen-melody", "melody": "noise.wav"},
                  "unreadable_audio", "melody"),
        "nomelody": ({"prompt": "x", "melody": "hum.wav"}, "unsupported_mode", "melody"),
        "nan": ({"prompt": "x", "duration": 0.5, "temperature": 1e-45}, "generation_failed", None),
        "escape": ({"prompt": "x", "output": "../../etc/x"}, "unsafe_name", "output"),
    }
    for name, (body, _, _) in cases.items():
        data.drop(f"{name}.json", body)
    run_once()
    for name, (_, code, field) in cases.items():
        assert data.where(name) == "failed"
        error = data.error(name)
        assert error["status"] == "failed" and error["request_id"] == name
        assert error["error"]["code"] == code, (name, error)
        assert error["error"].get("field") == field, (name, error)
        assert error["error"]["message"].endswith("."), error
    assert data.listing("outbox") == []
    assert "noise.wav" in data.listing("failed") and "hum.wav" in data.listing("failed")


def test_nothing_is_ever_overwritten(data: DataRoot, run_once: RunOnce) -> None:
    data.outbox.mkdir(parents=True)
    data.done.mkdir(parents=True)
    (data.outbox / "song.wav").write_bytes(b"older song")
    (data.done / "song.json").write_bytes(b"older request")
    data.drop("song.json", {"prompt": "x", "duration": 0.5})
    run_once()
    assert (data.outbox / "song.wav").read_bytes() == b"older song"
    assert (data.done / "song.json").read_bytes() == b"older request"
    assert data.listing("done") == ["song-1.json", "song.json"]
    sidecar = data.sidecar("song-1")
    assert sidecar["audio"] == "song-1.wav" and sidecar["output_renamed"] is True
    assert read_back(data.outbox / "song-1.wav")[0] == SAMPLE_RATE


def test_priority_then_age_then_name(data: DataRoot, run_once: RunOnce) -> None:
    for i, (name, priority) in enumerate([("a-low", 0), ("b-high", 5), ("c-low", 0), ("d-mid", 1)]):
        path = data.drop(f"{name}.json", {"prompt": name, "duration": 0.2, "priority": priority})
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    result = run_once(engine={"max_batch": 1})
    claimed = [json.loads(line)["request_id"] for line in result.stderr.splitlines()
               if line.startswith("{") and json.loads(line)["event"] == "claimed"]
    assert claimed == ["b-high", "d-mid", "a-low", "c-low"]


def test_compatible_requests_share_a_batch(data: DataRoot, run_once: RunOnce) -> None:
    for i in range(3):
        data.drop(f"r{i}.json", {"prompt": f"take {i}", "duration": 0.5})
    data.drop("seeded.json", {"prompt": "alone", "duration": 0.5, "seed": 1})
    run_once(engine={"max_batch": 4})
    sidecars = {f"r{i}": data.sidecar(f"r{i}") for i in range(3)}
    assert {s["batch_size"] for s in sidecars.values()} == {3}
    assert len({s["seed"] for s in sidecars.values()}) == 1
    assert data.sidecar("seeded")["batch_size"] == 1 and data.sidecar("seeded")["seed"] == 1


def test_junk_is_ignored(data: DataRoot, run_once: RunOnce) -> None:
    junk = [".hidden.json", "x.json.tmp", "y.json.part", "z.json~", "._mac.json", ".DS_Store", "Thumbs.db",
            "desktop.ini", "notes.md", "x.status.json", "x.error.json"]
    for name in junk:
        (data.inbox / name).write_text('{"prompt": "x"}')
    for folder in ("@eaDir", ".Trash", "Thumbs.db.part"):  # a NAS's index, a hidden folder, a folder in junk's name
        (data.inbox / folder).mkdir()
        (data.inbox / folder / "nested.json").write_text('{"prompt": "x"}')
    data.drop("real.json", {"prompt": "x", "duration": 0.2})
    run_once()
    assert data.listing("done") == ["real.json"]
    assert data.listing("inbox") == sorted([*junk, "@eaDir", ".Trash", "Thumbs.db.part"])
    assert data.listing("failed") == []


def test_late_attachment_is_waited_for(data: DataRoot, start_daemon: StartDaemon) -> None:
    daemon = start_daemon(watch={"attachment_wait": 30})
    data.drop("follow.json", {"prompt": "x", "model": "facebook/musicgen-melody", "melody": "hum.wav",
                              "duration": 0.5})
    data.drop("other.json", {"prompt": "meanwhile", "duration": 0.2})
    wait_for(lambda: (data.done / "other.json").exists(), what="other request to go ahead")
    assert data.where("follow") == "inbox"
    write_wav(data.inbox / ".hum.wav.part", 1.0).rename(data.inbox / "hum.wav")
    wait_for(lambda: (data.done / "follow.json").exists(), what="melody request once its melody arrived")
    assert data.listing("done") == ["follow.json", "hum.wav", "other.json"]
    assert daemon.stop() == 0


def test_slow_copy_is_never_picked_up_half_written(data: DataRoot, start_daemon: StartDaemon) -> None:
    daemon = start_daemon(watch={"stable_seconds": 0.3})
    wait_for(lambda: (data.processing / "test" / ".heartbeat").exists(), what="daemon start")
    body = json.dumps({"prompt": "slowly copied " + "x" * 200, "duration": 0.2}).encode()
    with open(data.inbox / "slow.json", "wb") as handle:
        for i in range(0, len(body), 40):
            handle.write(body[i:i + 40])
            handle.flush()
            time.sleep(0.5)  # longer than stable_seconds: only the close says it is complete
        assert data.where("slow") == "inbox"
    wait_for(lambda: (data.done / "slow.json").exists(), what="slow request after close")
    assert json.loads((data.done / "slow.json").read_bytes())["duration"] == 0.2
    assert daemon.stop() == 0


def test_rename_in_is_picked_up_at_once(data: DataRoot, start_daemon: StartDaemon, tmp_path: Path) -> None:
    daemon = start_daemon(watch={"stable_seconds": 60, "rescan_interval": 600})
    wait_for(lambda: (data.processing / "test" / ".heartbeat").exists(), what="daemon start")
    outside = tmp_path / "staging.json"
    outside.write_text(json.dumps({"prompt": "x", "duration": 0.2}))
    outside.rename(data.inbox / "moved.json")
    wait_for(lambda: (data.done / "moved.json").exists(), timeout=30, what="renamed-in request")
    assert daemon.stop() == 0


def test_polling_mode_and_startup_scan(data: DataRoot, start_daemon: StartDaemon) -> None:
    data.drop("early.json", {"prompt": "x", "duration": 0.2})
    daemon = start_daemon(watch={"mode": "polling", "poll_interval": 0.2})
    wait_for(lambda: (data.done / "early.json").exists(), what="startup scan")
    with open(data.inbox / "polled.json", "w") as handle:
        handle.write('{"prompt": "x",')
        handle.flush()
        time.sleep(0.1)  # shorter than stable_seconds
        handle.write('"duration": 0.2}')
    wait_for(lambda: (data.done / "polled.json").exists(), what="polled request")
    assert daemon.stop() == 0
    assert data.listing("failed") == []


def test_validate_submit_status(data: DataRoot, standins: Path) -> None:
    config = config_file(data)
    good = data.root.parent / "good.json"
    good.write_text(json.dumps({"prompt": "x"}))
    bad = data.root.parent / "bad.json"
    bad.write_text(json.dumps({"prompt": "x", "durration": 3}))
    result = cli("validate", "--config", str(config), str(good), str(bad))
    assert result.returncode == 1
    assert f"ok: {good}" in result.stdout
    assert f"invalid: {bad}: invalid_request (durration): " in result.stdout
    assert cli("validate", "--config", str(config), str(good)).returncode == 0

    submitted = cli("submit", "--config", str(config), "--prompt", "lofi", "--duration", "3", "--priority", "2",
                    "--name", "mine")
    assert submitted.returncode == 0, submitted.stderr
    path = Path(submitted.stdout.strip())
    assert path == data.inbox / "mine.json"
    assert json.loads(path.read_text()) == {"prompt": "lofi", "duration": 3.0, "priority": 2}
    assert [p.name for p in data.inbox.iterdir()] == ["mine.json"]  # no temporary left behind
    refused = cli("submit", "--inbox", str(data.inbox), "--prompt", "x", "--duration", "-1")
    assert refused.returncode == 1 and "error: invalid_request" in refused.stderr

    status = cli("status", "--config", str(config))
    assert status.returncode == 0
    assert "inbox" in status.stdout and "mine.json  priority 2" in status.stdout
