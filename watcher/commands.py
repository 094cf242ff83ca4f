"""The subcommands behind `musicgen-watcher`, one function each.

The heavy imports (torch, audiocraft) happen inside the commands that need them, so
`submit`, `status`, `schema` and `models` answer at once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import structlog

from . import files
from .cli import _request_fields, print_json
from .config import Settings, load_settings, write_config
from .errors import ErrorCode, RequestError
from .folders import FOLDER_NAMES, STATUS_SUFFIX, Layout, unwritable
from .models import ALIASES, CATALOG, resolve_model
from .pickup import is_request_name
from .requests import Limits, decode_request, parse_request, request_schema, validate_request

log = structlog.get_logger("watcher.cli")


def generate(args: argparse.Namespace) -> int:
    from .oneshot import generate as one_shot

    return one_shot(args)


def run(args: argparse.Namespace) -> int:
    from .daemon import Daemon

    return Daemon(load_settings(args.config), once=args.once).run()


def models(args: argparse.Namespace) -> int:
    for info in CATALOG.values():
        print(info.describe())
    print("\naliases (from the original CLI's README):")
    for alias, real in ALIASES.items():
        print(f"  {alias} -> {real}")
    return 0


def schema(args: argparse.Namespace) -> int:
    print_json(request_schema())
    return 0


def validate(args: argparse.Namespace) -> int:
    """Check request files as the daemon would, without generating."""
    settings = load_settings(args.config)
    bad = 0
    for path in args.files:
        try:
            check_request_file(path, settings)
            print(f"ok: {path}")
        except RequestError as exc:
            bad += 1
            field = f" ({exc.field})" if exc.field else ""
            print(f"invalid: {path}: {exc.code.value}{field}: {exc.message}")
        except OSError as exc:
            bad += 1
            print(f"invalid: {path}: cannot be read: {exc.strerror}")
    return 1 if bad else 0


def check_request_file(path: Path, settings: Settings) -> None:
    """The checks a request passes before generation: JSON, fields, model, attachments."""
    from .audio import read_audio  # torch: only when there is a request to check

    _, request = parse_request(path.read_bytes(), settings.request_limits)
    model = resolve_model(request.model or settings.engine.default_model,
                          allowed=settings.engine.allowed_models, model_dirs=settings.engine.model_dirs)
    if request.melody is not None:
        model.check_melody()
    for name, field in ((request.melody, "melody"), (request.continuation, "continuation")):
        if name is not None:
            attachment = path.parent / name
            if not attachment.exists():
                raise RequestError(ErrorCode.missing_attachment, f"The {field} file {name} is not beside the "
                                   "request.", field=field)
            read_audio(attachment, field=field, max_bytes=settings.limits.attachment_bytes,
                       max_seconds=settings.limits.attachment_seconds)


def submit(args: argparse.Namespace) -> int:
    """Write a request into the inbox: hidden temporary name, then one rename."""
    inbox: Path = args.inbox or load_settings(args.config).folder("inbox")
    fields = _request_fields(args)
    for name in ("output", "priority"):
        if getattr(args, name) is not None:
            fields[name] = getattr(args, name)
    validate_request(fields, Limits(max_duration=float("inf")))
    stem = args.name or time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
    data = (json.dumps(fields, indent=2, ensure_ascii=False) + "\n").encode()
    inbox.mkdir(parents=True, exist_ok=True)
    tmp = files.write_temp(inbox, f"{stem}.json", lambda p: p.write_bytes(data))
    for name in files.candidates(stem, ".json"):
        if files.link_no_clobber(tmp, inbox / name):
            print(inbox / name)
            return 0
    raise AssertionError("unreachable")


def health(args: argparse.Namespace) -> int:
    """Exit 0 when the daemon's heartbeat is fresh and every folder is writable (Docker's HEALTHCHECK)."""
    settings = load_settings(args.config)
    layout = Layout.from_settings(settings)
    problems = [f"{folder} is not writable: {why}" for folder in layout.folders if (why := unwritable(folder))]
    try:
        age = time.time() - layout.heartbeat.stat().st_mtime
        limit = settings.daemon.heartbeat_timeout
        if age > limit:
            problems.append(f"the daemon's heartbeat is {age:.0f} s old (limit {limit:g} s)")
    except FileNotFoundError:
        problems.append(f"no heartbeat at {layout.heartbeat}: the daemon is not running")
    for problem in problems:
        print(f"unhealthy: {problem}")
    if not problems:
        print(f"healthy: daemon {settings.daemon.id}, heartbeat {age:.1f} s old")
    return 1 if problems else 0


def selftest(args: argparse.Namespace) -> int:
    """Prove an install without downloading anything: stand-in models, one request, the real daemon path."""
    import soundfile as sf

    from .standins import SAMPLE_RATE, build_standins, standin_env

    device = load_settings(args.config).engine.device
    with tempfile.TemporaryDirectory(prefix="musicgen-watcher-selftest-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        build_standins(root / "models", models=("facebook/musicgen-small",))
        built = time.perf_counter() - started
        config = write_config(root / "config.toml", {
            "folders": {"root": str(root / "data")}, "engine": {"device": device},
            "daemon": {"id": "selftest"}, "watch": {"stable_seconds": 0.1}})
        inbox = root / "data" / "inbox"
        inbox.mkdir(parents=True)
        (inbox / "selftest.json").write_text(json.dumps({"prompt": "selftest", "duration": 1, "seed": 1}))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MUSICGEN_WATCHER_")}
        env.update(standin_env(root / "models"))
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "watcher", "run", "--once", "--config", str(config)],
                                env=env, capture_output=True, text=True, check=False)
        ran = time.perf_counter() - started
        audio, sidecar_path = root / "data" / "outbox" / "selftest.wav", root / "data" / "outbox" / "selftest.json"
        problems = []
        if result.returncode != 0:
            problems.append(f"the daemon exited {result.returncode}: {result.stderr.strip()[-2000:]}")
        elif not (root / "data" / "done" / "selftest.json").exists() or not sidecar_path.exists():
            failed = list((root / "data" / "failed").glob("*.error.json"))
            problems.append("the request did not end in done/: "
                            + (failed[0].read_text() if failed else result.stderr.strip()[-2000:]))
        else:
            info = sf.info(str(audio))
            if (info.samplerate, info.channels) != (SAMPLE_RATE, 1) or abs(info.frames - SAMPLE_RATE) > 640:
                problems.append(f"the WAV is {info.samplerate} Hz x {info.channels} ch x {info.frames} frames")
        for problem in problems:
            print(f"selftest FAILED: {problem}")
        if problems:
            return 1
        sidecar = json.loads(sidecar_path.read_text())
        print("selftest passed: one request went inbox -> processing -> outbox -> done")
        for key, value in (("device", sidecar["device"]), ("dtype", sidecar["dtype"]),
                           *sidecar["versions"].items(), ("build stand-ins s", f"{built:.1f}"),
                           ("daemon run s", f"{ran:.1f}"), ("model load s", sidecar["timings"]["load_seconds"]),
                           ("generate s", sidecar["timings"]["generate_seconds"])):
            print(f"  {key:18} {value}")
    return 0


def status(args: argparse.Namespace) -> int:
    """Counts per folder, what is running, and what is next."""
    settings = load_settings(args.config)
    folders = {name: settings.folder(name) for name in FOLDER_NAMES}
    counts = Layout.from_settings(settings).depths()
    print("folders:")
    for name in FOLDER_NAMES:
        print(f"  {name:10} {counts[name]:6}  {folders[name]}")
    running = sorted(folders["processing"].glob(f"*/*{STATUS_SUFFIX}"))
    print("running:" if running else "running: nothing")
    for path in running:
        try:
            state = json.loads(path.read_bytes())
            print(f"  {state['request_id']}  {state['progress'] * 100:5.1f}%  since {state['started_at']}"
                  f"  on {state['daemon']}")
        except (OSError, ValueError, KeyError):
            continue
    upcoming = _next_in_line(folders["inbox"], settings)
    print("next:" if upcoming else "next: nothing waiting")
    for priority, name in upcoming[:5]:
        print(f"  {name}  priority {priority}")
    return 0


def _next_in_line(inbox: Path, settings: Settings) -> list[tuple[int, str]]:
    entries: list[tuple[int, float, str]] = []
    if inbox.is_dir():
        for path in inbox.iterdir():
            if not is_request_name(path.name) or not path.is_file():
                continue
            try:
                priority = decode_request(path.read_bytes(), settings.request_limits).get("priority", 0)
            except (RequestError, OSError):
                priority = 0
            priority = priority if isinstance(priority, int) else 0
            entries.append((-priority, path.stat().st_mtime, path.name))
    return [(-p, name) for p, _, name in sorted(entries)]
