"""Shared fixtures: tiny random-weight stand-ins behind the real loading path, and the daemon.

The stand-ins live where production code looks for real weights: a Hugging Face cache
(HF_HOME, offline) and a torch hub folder (TORCH_HOME). huggingface_hub reads those variables
when it is imported, so they are set here, before any test module imports audiocraft.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

STANDINS = Path(os.environ.get("MUSICGEN_WATCHER_TEST_STANDINS") or tempfile.mkdtemp(prefix="mgw-standins-"))
STANDIN_ENV = {
    "HF_HOME": str(STANDINS / "huggingface"),
    "HF_HUB_CACHE": str(STANDINS / "huggingface" / "hub"),
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TORCH_HOME": str(STANDINS / "torch"),
}
os.environ.update(STANDIN_ENV)
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # library bars in this process: noise in the output

import tqdm  # noqa: E402

tqdm.tqdm.monitor_interval = 0  # no monitor thread: it would outlive the test that first drew a bar

from watcher.config import load_settings, write_config  # noqa: E402
from watcher.testing.standins import SAMPLE_RATE, build_standins, standin_env  # noqa: E402

if TYPE_CHECKING:
    from watcher.engine import Engine

__all__ = ["SAMPLE_RATE"]


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread running, as watchdog's own suite does."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 10
    while (leaked := [t for t in threading.enumerate() if t not in before and t.is_alive()]) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not leaked, f"threads left running: {leaked}"


@pytest.fixture(scope="session")
def standins() -> Path:
    """Build the tiny stand-ins once per session (about 14 MB, seconds)."""
    assert standin_env(STANDINS) == STANDIN_ENV
    if not (STANDINS / "huggingface" / "hub" / "models--facebook--musicgen-melody").is_dir():
        build_standins(STANDINS)
    return STANDINS


def wav_bytes(seconds: float, *, rate: int = SAMPLE_RATE, channels: int = 1, subtype: str = "PCM_16") -> bytes:
    """A sine tone as WAV bytes, as a user's hummed melody or a clip to continue."""
    import io

    import numpy as np
    import soundfile as sf

    t = np.arange(int(seconds * rate)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 220 * t)
    out = io.BytesIO()
    sf.write(out, np.stack([tone] * channels, axis=1), rate, format="WAV", subtype=subtype)
    return out.getvalue()


def write_wav(path: Path, seconds: float, *, rate: int = SAMPLE_RATE, channels: int = 1) -> Path:
    """A sine tone in a WAV file."""
    path.write_bytes(wav_bytes(seconds, rate=rate, channels=channels))
    return path


class DataRoot:
    """A daemon's data root, with the questions a user asks of it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        for name in ("inbox", "processing", "outbox", "done", "failed"):
            setattr(self, name, root / name)
        self.inbox.mkdir(parents=True, exist_ok=True)

    inbox: Path
    processing: Path
    outbox: Path
    done: Path
    failed: Path

    def drop(self, name: str, fields: dict[str, Any] | bytes | str) -> Path:
        """Write a request the way a careful pipeline does: a hidden temporary, then a rename."""
        if isinstance(fields, dict):
            fields = json.dumps(fields)
        data = fields.encode() if isinstance(fields, str) else fields
        tmp = self.inbox / f".{name}.part"
        tmp.write_bytes(data)
        path = self.inbox / name
        tmp.rename(path)
        return path

    def listing(self, folder: str) -> list[str]:
        path = getattr(self, folder)
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []

    def error(self, request_id: str) -> dict[str, Any]:
        value: dict[str, Any] = json.loads((self.failed / f"{request_id}.error.json").read_text())
        return value

    def sidecar(self, output: str) -> dict[str, Any]:
        value: dict[str, Any] = json.loads((self.outbox / f"{output}.json").read_text())
        return value

    def where(self, request_id: str) -> str:
        """The one folder a request ended in."""
        found = [f for f in ("inbox", "done", "failed") if (getattr(self, f) / f"{request_id}.json").exists()]
        found += [f"processing/{p.parent.name}" for p in self.processing.glob(f"*/{request_id}.json")]
        assert len(found) == 1, f"{request_id} is in {found}"
        return found[0]


    def wait_ended(self, request_id: str, timeout: float = 120) -> str:
        """Wait until the request is in done/ or failed/; which one."""
        wait_for(lambda: any((getattr(self, f) / f"{request_id}.json").exists() for f in ("done", "failed")),
                 timeout=timeout, what=f"{request_id} to end")
        return self.where(request_id)


@pytest.fixture
def data(tmp_path: Path) -> DataRoot:
    return DataRoot(tmp_path / "data")


def config_file(data: DataRoot, **sections: dict[str, Any]) -> Path:
    """A TOML config for tests: fast pickup, CPU, the data root under tmp."""
    base: dict[str, dict[str, Any]] = {
        "folders": {"root": str(data.root)},
        "watch": {"stable_seconds": 0.3, "poll_interval": 0.1, "attachment_wait": 2},
        "engine": {"device": "cpu"},
        "daemon": {"id": "test", "shutdown_grace": 20, "heartbeat_interval": 0.5},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return write_config(data.root.parent / "config.toml", base)


def daemon_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICGEN_WATCHER_")}
    env.update(STANDIN_ENV, **extra)
    return env


def cli(*args: str, timeout: float = 300, env: dict[str, str] | None = None,
        **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run `python -m watcher ARGS` as a user would, with the stand-ins as the model cache."""
    return subprocess.run([sys.executable, "-m", "watcher", *args], capture_output=True, text=True,
                          timeout=timeout, env=env or daemon_env(), **kwargs)


RunOnce = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def run_once(standins: Path, data: DataRoot) -> RunOnce:
    """`musicgen-watcher run --once` on `data`: runs until the inbox is drained, then returns; it must exit 0."""

    def run(**sections: dict[str, Any]) -> subprocess.CompletedProcess[str]:
        result = cli("run", "--once", "--config", str(config_file(data, **sections)))
        assert result.returncode == 0, result.stderr[-3000:]
        return result

    return run


InProcess = Callable[..., int]


@pytest.fixture
def in_process(standins: Path, data: DataRoot) -> Iterator[InProcess]:
    """The daemon in this process with `--once`, for tests that give it their own engine.

    The daemon sets a umask and signal handlers while it runs; this checks it gives both back.
    """
    from watcher.daemon import Daemon

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    umask = os.umask(0o022)
    os.umask(umask)

    def run(given: Engine | None = None, **sections: dict[str, Any]) -> int:
        return Daemon(load_settings(config_file(data, **sections)), once=True, engine=given).run()

    yield run
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers, "signal handlers were not restored"
    assert os.umask(umask) == umask, "the umask was not restored"


class DaemonProcess:
    """The daemon as a long-running subprocess, for watching, signals and crashes; its log goes to a file."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.log = config.with_name(f"daemon-{time.monotonic_ns()}.log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "watcher", "run", "--config", str(config)],
                                         stdout=subprocess.DEVNULL, stderr=log, env=env)

    def lines(self) -> list[str]:
        """The log so far."""
        return self.log.read_text().splitlines()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """The log events so far (every line is a JSON object), or those named `name`."""
        events = [json.loads(line) for line in self.lines()]
        return [e for e in events if name is None or e["event"] == name]

    def stop(self, sig: int = 15, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


StartDaemon = Callable[..., DaemonProcess]


@contextmanager
def running_daemon(data: DataRoot, **sections: dict[str, Any]) -> Iterator[DaemonProcess]:
    """A daemon on `data` for a whole test module: started and ready, then stopped (it must exit 0)."""
    daemon = DaemonProcess(config_file(data, **sections), daemon_env())
    try:
        wait_for(lambda: daemon.proc.poll() is not None or any(e["event"] == "watching" for e in daemon.events()),
                 what="the daemon to watch")
        assert daemon.proc.poll() is None, daemon.lines()[-20:]
        yield daemon
    finally:
        code = daemon.stop()
    assert code == 0, daemon.lines()[-20:]


@pytest.fixture
def start_daemon(standins: Path, data: DataRoot) -> Iterator[StartDaemon]:
    started: list[DaemonProcess] = []

    def start(extra_env: dict[str, str] | None = None, **sections: dict[str, Any]) -> DaemonProcess:
        daemon = DaemonProcess(config_file(data, **sections), daemon_env(**(extra_env or {})))
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()


def wait_for(condition: Callable[[], bool], timeout: float = 120, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)
