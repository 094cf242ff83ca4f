"""`musicgen-watcher selftest`: prove an install without downloading anything.

Builds tiny stand-in models in a temporary folder, runs one request through the real daemon as a
subprocess on the configured device, and checks the WAV it wrote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import soundfile as sf

from . import files
from .config import write_config
from .testing.standins import SAMPLE_RATE, build_standins, standin_env


def selftest(device: str) -> list[str]:
    """Run the check; returns what went wrong (nothing when it passed), and prints the figures."""
    with tempfile.TemporaryDirectory(prefix="musicgen-watcher-selftest-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        build_standins(root / "models", models=("facebook/musicgen-small",))
        built = time.perf_counter() - started
        config = write_config(root / "config.toml", {
            "folders": {"root": str(root / "data")}, "engine": {"device": device, "preload": False},
            "daemon": {"id": "selftest"}, "watch": {"stable_seconds": 0.1}})
        inbox = root / "data" / "inbox"
        inbox.mkdir(parents=True)
        files.publish(inbox, "selftest.json", json.dumps({"prompt": "selftest", "duration": 1, "seed": 1}).encode())
        env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICGEN_WATCHER_")}
        env.update(standin_env(root / "models"))
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "watcher", "run", "--once", "--config", str(config)],
                                env=env, capture_output=True, text=True, check=False)
        ran = time.perf_counter() - started
        problems = _problems(root / "data", result)
        if not problems:
            _report(json.loads((root / "data" / "outbox" / "selftest.json").read_text()), built, ran)
        return problems


def _problems(data: Path, result: subprocess.CompletedProcess[str]) -> list[str]:
    if result.returncode != 0:
        return [f"the daemon exited {result.returncode}: {result.stderr.strip()[-2000:]}"]
    if not (data / "done" / "selftest.json").exists() or not (data / "outbox" / "selftest.json").exists():
        failed = list((data / "failed").glob("*.error.json"))
        return ["the request did not end in done/: " + (failed[0].read_text() if failed else
                                                         result.stderr.strip()[-2000:])]
    info = sf.info(str(data / "outbox" / "selftest.wav"))
    if (info.samplerate, info.channels) != (SAMPLE_RATE, 1) or abs(info.frames - SAMPLE_RATE) > 640:
        return [f"the WAV is {info.samplerate} Hz x {info.channels} ch x {info.frames} frames"]
    return []


def _report(sidecar: dict[str, object], built: float, ran: float) -> None:
    """The figures: aligned lines on a terminal, one JSON object otherwise (a container's log, a script)."""
    timings = sidecar["timings"]
    assert isinstance(timings, dict) and isinstance(sidecar["versions"], dict)
    figures = {"device": sidecar["device"], "dtype": sidecar["dtype"], **sidecar["versions"],
               "build_standins_seconds": round(built, 1), "daemon_run_seconds": round(ran, 1),
               "model_load_seconds": timings["load_seconds"], "generate_seconds": timings["generate_seconds"]}
    if not sys.stdout.isatty():
        print(json.dumps({"selftest": "passed", **figures}))
        return
    print("selftest passed: one request went inbox -> processing -> outbox -> done")
    for key, value in figures.items():
        print(f"  {key:22} {value}")
