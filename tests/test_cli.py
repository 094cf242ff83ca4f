"""The one-shot CLI as a subprocess, as the original Docker tool was used."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import soundfile as sf

from tests.conftest import SAMPLE_RATE, DataRoot, cli, config_file, daemon_env, write_wav


def test_original_usage_writes_a_wav(standins: Path, tmp_path: Path) -> None:
    out = tmp_path / "out" / "output.wav"
    result = cli("--prompt", "dark cinematic music", "--duration", "1", "--output", str(out), "--seed", "1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(out)
    info = sf.info(str(out))
    assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
    assert abs(info.frames - SAMPLE_RATE) <= 640


def test_existing_output_is_not_overwritten(standins: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.flac"
    out.write_bytes(b"precious")
    result = cli("generate", "--prompt", "x", "--duration", "0.5", "--output", str(out), "--model",
                 "facebook/musicgen-small-stereo")
    assert result.returncode == 0, result.stderr
    assert out.read_bytes() == b"precious"
    info = sf.info(str(tmp_path / "x-1.flac"))
    assert (info.format, info.channels) == ("FLAC", 2)
    assert "facebook/musicgen-stereo-small" in result.stderr  # the alias warning names the real id


def test_melody_on_a_melody_model(standins: Path, tmp_path: Path) -> None:
    hum = write_wav(tmp_path / "hum.wav", 1.5)
    result = cli("--model", "facebook/musicgen-melody", "--prompt", "x", "--melody", str(hum), "--duration",
                 "1", "--output", str(tmp_path / "m.wav"))
    assert result.returncode == 0, result.stderr
    assert sf.info(str(tmp_path / "m.wav")).channels == 1


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr
    return lines[0]


def test_bad_inputs_are_one_readable_line(standins: Path, tmp_path: Path) -> None:
    out = str(tmp_path / "o.wav")
    noise = tmp_path / "noise.wav"
    noise.write_text("this is not audio")
    cases = {
        ("--model", "musicgen-huge", "--prompt", "x", "--output", out): "unknown_model",
        ("--prompt", "x", "--melody", str(write_wav(tmp_path / "h.wav", 1)), "--output", out): "unsupported_mode",
        ("--model", "facebook/musicgen-melody", "--prompt", "x", "--melody", str(noise), "--output", out):
            "unreadable_audio",
        ("--prompt", "x", "--duration", "0", "--output", out): "invalid_request",
    }
    for args, code in cases.items():
        result = cli(*args)
        assert result.returncode == 1, (args, result.stderr)
        assert one_error_line(result).startswith(f"error: {code}: "), result.stderr
    assert "facebook/musicgen-small" in one_error_line(cli(*next(iter(cases))))


def test_models_and_schema(tmp_path: Path) -> None:
    listing = cli("models")
    assert listing.returncode == 0 and "facebook/musicgen-stereo-melody-large" in listing.stdout
    schema = json.loads(cli("schema").stdout)
    assert schema["additionalProperties"] is False and "prompt" in schema["properties"]


def test_command_line_errors_are_one_line_with_a_documented_code(data: DataRoot) -> None:
    config = config_file(data)
    escape = cli("submit", "--config", str(config), "--prompt", "x", "--name", "../x")
    assert escape.returncode == 1
    assert one_error_line(escape) == ("error: unsafe_name: Field 'name': '../x' is not a plain file name: it "
                                      "contains a path separator.")
    assert not any(data.inbox.iterdir())
    unreadable = cli("submit", "--config", str(config), "--prompt", "x", "--continuation", "/nonexistent.wav")
    assert unreadable.returncode == 1 and one_error_line(unreadable).startswith("error: No such file or directory")
    loud = cli("status", env={**daemon_env(), "MUSICGEN_WATCHER_LOG_LEVEL": "loud"})
    assert loud.returncode == 2 and "MUSICGEN_WATCHER_LOG_LEVEL must be one of debug" in one_error_line(loud)
    overlap = config_file(data, folders={"outbox": str(data.inbox)})
    refused = cli("run", "--config", str(overlap))
    assert refused.returncode == 2
    assert "folders.inbox and folders.outbox are the same folder" in one_error_line(refused)


def test_a_closed_pipe_is_one_line(tmp_path: Path) -> None:
    """`musicgen-watcher schema | head -c0`: the reader went away before the first write."""
    read, write = os.pipe()
    os.close(read)
    result = subprocess.run([sys.executable, "-m", "watcher", "schema"], stdout=write, stderr=subprocess.PIPE,
                            text=True, timeout=60, env=daemon_env())
    os.close(write)
    assert result.returncode == 141
    assert one_error_line(result) == "error: broken pipe: the reader of the output went away"


def test_status_as_json_and_global_options_first(data: DataRoot) -> None:
    config = config_file(data)
    data.drop("waiting.json", {"prompt": "x", "priority": 3, "melody": "hum.wav",
                               "model": "facebook/musicgen-melody"})
    result = cli("--config", str(config), "status", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["folders"]["inbox"]["count"] == 1 and report["daemons"] == [] and report["running"] == []
    [waiting] = report["next"]
    assert (waiting["request_id"], waiting["priority"], waiting["missing"]) == ("waiting", 3, ["hum.wav"])
