"""Shared helpers for the benchmark scripts: stand-ins, configs, the daemon as a subprocess, reports.

The scripts in this folder import this module by name (`python bench/<script>.py` puts `bench/`
first on `sys.path`). Nothing here imports torch, huggingface_hub or audiocraft: the measured work
always runs in subprocesses started with the stand-ins' environment, because huggingface_hub reads
HF_HOME and HF_HUB_OFFLINE once, when it is first imported.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import resource
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watcher import config as watcher_config
from watcher import submission
from watcher.intake import Policy

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
CACHE = RESULTS / "cache"
PYTHON = sys.executable

Event = dict[str, Any]


# -- machine, load, report ---------------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What the numbers were measured on (torch's version from metadata: no torch import here)."""
    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = "unknown"
    return {"node": platform.node(), "cpu": cpu_model(), "cores": os.cpu_count(), "torch": torch_version,
            "device": "cpu", "python": platform.python_version()}


def loadavg() -> tuple[float, float, float]:
    return os.getloadavg()


def fmt_load(load: Sequence[float]) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def command_line() -> str:
    rel = os.path.relpath(sys.argv[0], Path.cwd())
    return shlex.join([".venv/bin/python" if Path(PYTHON).parent.parent == REPO / ".venv" else PYTHON,
                       rel, *sys.argv[1:]])


def _busy_jiffies() -> tuple[int, int]:
    """(busy, total) CPU jiffies over all cores, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    total = sum(fields[:8])
    return total - idle, total


def _own_cpu_seconds() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


class CpuWatch:
    """How busy the machine was with *other* processes while a phase ran.

    All CPU time on the machine (/proc/stat) minus this script's and its waited-for children's
    (getrusage), divided by the wall time: the average number of cores someone else kept busy.
    Only meaningful once every child started in the phase has been waited for.
    """

    def __init__(self) -> None:
        self.hz = os.sysconf("SC_CLK_TCK")
        self.start_wall = time.monotonic()
        self.start_busy, _ = _busy_jiffies()
        self.start_own = _own_cpu_seconds()
        self.start_load = loadavg()

    def stop(self) -> dict[str, Any]:
        wall = time.monotonic() - self.start_wall
        busy, _ = _busy_jiffies()
        machine_cpu = (busy - self.start_busy) / self.hz
        own = _own_cpu_seconds() - self.start_own
        return {"wall_seconds": round(wall, 3), "own_cpu_seconds": round(own, 2),
                "other_cpu_cores": round(max(0.0, machine_cpu - own) / wall, 2) if wall > 0 else 0.0,
                "load_start": [round(x, 2) for x in self.start_load],
                "load_end": [round(x, 2) for x in loadavg()]}


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (all its threads), from /proc/<pid>/stat; 0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def listen(url: str) -> threading.Thread:
    """A client reading the console's event stream until the daemon goes away, as an open browser tab does."""
    def read() -> None:
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=3600) as stream:
            while stream.readline():
                pass

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def cpu_share(pid: int, seconds: float) -> float:
    """The share of one core a process used over the next `seconds` (all its threads)."""
    start = process_cpu_seconds(pid)
    time.sleep(seconds)
    return (process_cpu_seconds(pid) - start) / seconds


@contextlib.contextmanager
def paused(pids: Iterable[int]) -> Iterator[None]:
    """Stop the processes `pids` (SIGSTOP) while the block runs, so they take no CPU from it."""
    stopped = []
    try:
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
            stopped.append(pid)
        yield
    finally:
        for pid in stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


class Interference:
    """Cores other processes kept busy during an interval, excluding this process and `pids`.

    Unlike CpuWatch it needs no child to have been waited for: the watched processes' CPU is
    read live from /proc. Use it around one job.
    """

    def __init__(self, pids: Sequence[int] = ()) -> None:
        self.pids = list(pids)
        self.hz = os.sysconf("SC_CLK_TCK")
        self.wall = time.monotonic()
        self.busy, _ = _busy_jiffies()
        self.own = self._own()

    def _own(self) -> float:
        me = resource.getrusage(resource.RUSAGE_SELF)
        return me.ru_utime + me.ru_stime + sum(process_cpu_seconds(pid) for pid in self.pids)

    def stop(self) -> float:
        wall = time.monotonic() - self.wall
        busy, _ = _busy_jiffies()
        other = (busy - self.busy) / self.hz - (self._own() - self.own)
        return round(max(0.0, other) / wall, 3) if wall > 0 else 0.0


def add_size_options(parser: argparse.ArgumentParser, quick_help: str) -> None:
    """--full-size / --tiny / --quick, shared by the scripts that can use either stand-in."""
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--full-size", dest="full_size", action="store_true", default=None,
                      help="real-sized musicgen-small stand-in (default unless --quick)")
    size.add_argument("--tiny", dest="full_size", action="store_false", help="tiny stand-in")
    parser.add_argument("--quick", action="store_true", help=quick_help)


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """--max-load / --max-wait, shared by the full-size scripts (see `quiet_enough`)."""
    parser.add_argument("--max-load", type=float, default=None,
                        help="wait for the 1-min load average to drop under this before measuring "
                             "(default 1.0 full-size, off for tiny; 0 = off)")
    parser.add_argument("--max-wait", type=float, default=600, help="seconds to wait for --max-load, then give up")


def quiet_enough(args: argparse.Namespace, full_size: bool) -> bool:
    """Wait as --max-load / --max-wait say (by default: under 1.0 for full size, not at all for tiny)."""
    max_load = args.max_load if args.max_load is not None else (1.0 if full_size else 0.0)
    return wait_for_quiet(max_load, args.max_wait)


def wait_for_quiet(max_load: float, max_wait: float) -> bool:
    """Wait until the 1-minute load average is under max_load; False (saying how to rerun) if it never was."""
    if max_load <= 0 or max_load == float("inf"):
        return True
    deadline = time.monotonic() + max_wait
    while True:
        load = loadavg()[0]
        if load < max_load:
            return True
        if time.monotonic() >= deadline:
            print(f"load average stayed >= {max_load} for {max_wait:g} s; not measuring. Run later:\n"
                  f"  {command_line()}", file=sys.stderr)
            return False
        print(f"# load average {load:.2f} >= {max_load}: waiting (up to {deadline - time.monotonic():.0f} s more)",
              file=sys.stderr, flush=True)
        time.sleep(20)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}" if abs(value) < 100 else f"{value:.1f}"
        return str(value)

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def header_block(title: str, info: dict[str, Any], phases: dict[str, dict[str, Any]]) -> str:
    m = info["machine"]
    rows: list[tuple[str, str]] = [
        ("machine", f"{m['node']}: {m['cpu']}, {m['cores']} cores, torch {m['torch']}, device {m['device']}"),
        ("date", info["date"]),
        ("command", f"`{info['command']}`"),
        ("commit", info.get("commit", "unknown")),
    ]
    for name, phase in phases.items():
        rows.append((f"load avg 1/5/15 min, {name}",
                     f"{fmt_load(phase['load_start'])} at start, {fmt_load(phase['load_end'])} at end; "
                     f"other processes kept {phase['other_cpu_cores']:.2f} cores busy on average "
                     f"over {phase['wall_seconds']:.0f} s"))
    return f"### {title}\n\n" + table(["", ""], rows)


def save_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"{name}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return path


def base_info() -> dict[str, Any]:
    return {"machine": machine(), "date": utc_now(), "command": command_line(), "commit": git_state()}


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, q in 0..100."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    return {"n": len(values), "p50": percentile(values, 50), "p95": percentile(values, 95),
            "min": min(values) if values else float("nan"), "max": max(values) if values else float("nan"),
            "mean": statistics.fmean(values) if values else float("nan")}


# -- stand-ins and environment ------------------------------------------------------------------


def ensure_standins(full_size: bool) -> Path:
    """Build (once) and return a stand-in root under bench/results/cache/.

    Tiny: every model, ~15 MB, ~15 s. Full size: musicgen-small only (real-sized LM, T5-base and
    EnCodec), ~2.7 GB, ~30 s plus imports.
    """
    root = CACHE / ("standins-full" if full_size else "standins-tiny")
    marker = root / ".bench-complete"
    if marker.exists():
        return root
    root.mkdir(parents=True, exist_ok=True)
    cmd = [PYTHON, "-m", "watcher.testing.standins", str(root)]
    if full_size:
        cmd += ["--full-size", "--model", "facebook/musicgen-small"]
    print(f"# building stand-ins: {shlex.join(cmd)}", file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=clean_env())
    marker.write_text("ok\n")
    return root


def default_threads(full_size: bool) -> int:
    """Torch threads for the measured processes.

    Full size: every core (that is what a deployment uses; run it on a quiet machine). Tiny: one.
    On this 2-core machine, with another process busy, two OpenMP threads that spin-wait for each
    other make a tiny-model generate call 10-40x slower (0.2 s -> 9 s), which would drown what the
    tiny benchmarks measure (pickup, queueing, memory) in noise.
    """
    return (os.cpu_count() or 1) if full_size else 1


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MUSICGEN_WATCHER_")}


def run_env(standins: Path, threads: int | None = None, *, bytecode_cache: bool = True) -> dict[str, str]:
    """The environment of every measured subprocess: stand-ins, offline, JSON logs, fixed threads.

    With bytecode_cache, compiled modules are kept in bench/results/cache/pycache
    (PYTHONPYCACHEPREFIX), as the Docker image does with UV_COMPILE_BYTECODE=1. Without it, and
    with this machine's PYTHONDONTWRITEBYTECODE=1 and a venv that holds no .pyc files, every
    process start compiles torch, transformers and audiocraft from source again (~9 s here).
    """
    from watcher.testing.standins import standin_env  # light: imports no heavy library at module level

    env = clean_env()
    env.update(standin_env(standins))
    env["PYTHONUNBUFFERED"] = "1"
    env["MUSICGEN_WATCHER_LOG_LEVEL"] = "info"
    if bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(CACHE / "pycache")
    if threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(threads)
    return env


def prepare(name: str, *, full_size: bool, threads: int | None) -> tuple[Path, dict[str, str], Path]:
    """What each daemon benchmark does first: the stand-ins (built once), the measured processes'
    environment with its bytecode cache filled, and an empty bench/results/work/<name>/."""
    standins = ensure_standins(full_size)
    env = run_env(standins, threads)
    warm_imports(env)
    return standins, env, fresh_dir(RESULTS / "work" / name)


def warm_imports(env: dict[str, str]) -> float:
    """Import the daemon's modules once in env (fills the bytecode cache); returns the seconds it took."""
    started = time.monotonic()
    subprocess.run([PYTHON, "-c", "import watcher.daemon, watcher.engine, watcher.cli"], env=env, check=True,
                   cwd=str(REPO), stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def git_state() -> str:
    """The commit measured, and whether watcher/ had uncommitted changes."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=str(REPO), capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "watcher"], cwd=str(REPO),
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in watcher/" if dirty else "")


# -- data roots and configs ----------------------------------------------------------------------


@dataclass
class DataRoot:
    root: Path

    def __post_init__(self) -> None:
        self.inbox.mkdir(parents=True, exist_ok=True)

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @property
    def done(self) -> Path:
        return self.root / "done"

    @property
    def failed(self) -> Path:
        return self.root / "failed"

    def drop_renamed(self, name: str, fields: dict[str, Any]) -> float:
        """A careful writer: hidden temporary, then rename. Returns time.time() right after the rename."""
        tmp = self.inbox / f".{name}.part"
        tmp.write_bytes(json.dumps(fields).encode())
        os.rename(tmp, self.inbox / name)
        return time.time()

    def drop_direct(self, name: str, fields: dict[str, Any]) -> float:
        """A plain writer: open the final name, write, close. Returns time.time() right after the close."""
        with open(self.inbox / name, "wb") as fh:
            fh.write(json.dumps(fields).encode())
        return time.time()

    def drop_submitted(self, name: str, fields: dict[str, Any], policy: Policy) -> float:
        """As `musicgen-watcher submit` writes: checked, hidden temporary, fsync, linked to the name.

        Returns time.time() right after `submit` returned (after its fsync of the inbox).
        """
        path = submission.submit(self.inbox, fields, policy, name=name.removesuffix(".json"))
        stamp = time.time()
        if path.name != name:
            raise RuntimeError(f"submit wrote {path.name}: {name} was taken")
        return stamp

    def prefill(self, requests: Sequence[tuple[str, dict[str, Any]]], age_seconds: float = 120.0) -> None:
        """Write requests directly, then date them back in queue order (oldest first).

        As a backlog left while the daemon was down would be. The daemon's startup scan finds them
        with no event, so it takes each once it has seen it unchanged for `watch.stable_seconds`
        (the age of an mtime does not count).
        """
        base = time.time() - age_seconds
        for i, (name, fields) in enumerate(requests):
            path = self.inbox / name
            path.write_bytes(json.dumps(fields).encode())
            stamp = base + i * 0.001
            os.utime(path, (stamp, stamp))

    def sidecars(self) -> list[dict[str, Any]]:
        out = []
        for path in sorted(self.outbox.glob("*.json")):
            out.append(json.loads(path.read_text()))
        return out


def write_config(path: Path, data: DataRoot, **sections: dict[str, Any]) -> Path:
    base: dict[str, dict[str, Any]] = {
        "folders": {"root": str(data.root)},
        "engine": {"device": "cpu"},
        "daemon": {"id": "bench"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    return watcher_config.write_config(path, base)


# -- the daemon as a subprocess -------------------------------------------------------------------


def event_time(event: Event) -> float:
    """The epoch seconds of a structlog `timestamp` (ISO, UTC)."""
    return datetime.fromisoformat(str(event["timestamp"])).timestamp()


@dataclass
class DaemonProcess:
    """`python -m watcher run --config FILE [--once]`, its JSON-lines stderr going to a file we tail."""

    config: Path
    env: dict[str, str]
    log_path: Path
    once: bool = False
    started_wall: float = 0.0
    events: list[Event] = field(default_factory=list)

    def __post_init__(self) -> None:
        cmd = [PYTHON, "-m", "watcher", "run", "--config", str(self.config)]
        if self.once:
            cmd.append("--once")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.started_wall = time.time()
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self._log, env=self.env,
                                     cwd=str(REPO))
        self._reader = open(self.log_path, "rb")  # noqa: SIM115 - closed in stop()
        self._partial = b""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll_events(self) -> list[Event]:
        """Parse the log lines written since the last call."""
        chunk = self._reader.read()
        if not chunk:
            return []
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        new = []
        for line in lines:
            if line.startswith(b"{"):
                try:
                    new.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        self.events.extend(new)
        return new

    def wait_event(self, match: Callable[[Event], bool], timeout: float, what: str = "event",
                   poll: float = 0.005) -> Event:
        """Wait for the first new-or-old event that matches, reading the log every `poll` seconds.

        Timings come from the events' own timestamps, so `poll` only sets how soon this returns: a
        benchmark that measures generation passes a long one, so that its own wake-ups (200 a second
        at 5 ms) do not compete with the measured process for the cores.
        """
        for event in self.events:
            if match(event):
                return event
        deadline = time.monotonic() + timeout
        while True:
            for event in self.poll_events():
                if match(event):
                    return event
            if self.proc.poll() is not None:
                for event in self.poll_events():
                    if match(event):
                        return event
                raise RuntimeError(f"daemon exited ({self.proc.returncode}) before {what}; log {self.log_path}:\n"
                                   + self.tail())
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}; log {self.log_path}:\n"
                                   + self.tail())
            time.sleep(poll)

    def wait_named(self, name: str, timeout: float, request_id: str | None = None, poll: float = 0.005) -> Event:
        def match(event: Event) -> bool:
            return event.get("event") == name and (request_id is None or event.get("request_id") == request_id)

        return self.wait_event(match, timeout, f"{name} {request_id or ''}".strip(), poll)

    def rss_kb(self) -> tuple[int, int] | None:
        """(VmRSS, VmHWM) in kB, or None once the process is gone."""
        try:
            text = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        values = {}
        for line in text.splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
        if "VmRSS" not in values:
            return None
        return values["VmRSS"], values.get("VmHWM", 0)

    def wait(self, timeout: float) -> int:
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"daemon did not finish within {timeout:g} s; log {self.log_path}:\n"
                               + self.tail()) from None
        self.poll_events()
        self._close()
        return code

    def stop(self, timeout: float = 60) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close()

    def _close(self) -> None:
        for fh in (self._log, self._reader):
            if not fh.closed:
                fh.close()

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def named(self, name: str) -> list[Event]:
        return [e for e in self.events if e.get("event") == name]


def fresh_dir(path: Path) -> Path:
    """An empty folder (removing an earlier run's)."""
    import shutil

    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


PROMPTS = (
    "lofi hip hop with a dusty piano loop and mellow drums for studying",
    "epic cinematic trailer music with a big orchestra choir and taiko drums",
    "smooth jazz trio with upright bass brushed snare and a warm saxophone solo",
    "eighties synthwave with arpeggiated bass gated reverb drums and neon leads",
    "acoustic folk tune with fingerpicked guitar harmonica and a gentle voice",
    "deep house groove at one hundred twenty four bpm with a rolling bassline",
    "calm classical piece for string quartet with violin viola and cello",
    "funky disco track with slap bass wah guitar strings and four on the floor",
)
