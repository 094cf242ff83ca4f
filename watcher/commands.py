"""The subcommands behind `musicgen-watcher`, one function each, taking the parsed arguments.

The heavy imports (torch, audiocraft) happen inside the commands that need them, so `submit`,
`status`, `schema` and `models` answer at once.
"""

from __future__ import annotations

import argparse
import json
import posixpath
import sys
from pathlib import Path
from typing import Any

from .config import load_settings
from .errors import RequestError
from .folders import FOLDER_NAMES, Layout, space_left, writable_problem
from .intake import Beside, Policy, prepare
from .jsonl import is_batch_name, line_stem, lines_of
from .models import ALIASES, CATALOG
from .names import PRESET_NAME
from .overview import daemons, running, waiting
from .presets import Presets, read_preset
from .requests import preset_schema, request_schema
from .submission import Upload
from .submission import submit as submit_request


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def generate(args: argparse.Namespace) -> int:
    from .oneshot import generate as one_shot

    print(one_shot(args.fields, args.output, device=args.device, request_file=args.request))
    return 0


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
    print_json(preset_schema() if args.preset else request_schema())
    return 0


def validate(args: argparse.Namespace) -> int:
    """Check request files (and presets, `defaults.json`, and `.jsonl` batches line by line) as the daemon would,
    without generating.

    Attachments are looked for beside each file; presets above it, up to the inbox when the file is in it.
    """
    settings = load_settings(args.config)
    policy = Policy.from_settings(settings)
    inbox = settings.folder("inbox").resolve()
    bad = 0
    for path in args.files:
        root = inbox if path.resolve().is_relative_to(inbox) else path.parent.resolve()
        name = path.resolve().relative_to(root).as_posix()
        problems = _problems(path, name, Presets(root, policy.limits), policy)
        bad += bool(problems)
        for problem in problems or ["ok"]:
            print(f"ok: {path}" if problem == "ok" else f"invalid: {path}: {problem}")
    return 1 if bad else 0


def _problems(path: Path, name: str, presets: Presets, policy: Policy) -> list[str]:
    """What is wrong with one file, as the daemon would say it (a line number first, in a batch)."""
    try:
        data = path.read_bytes()
        if path.name == PRESET_NAME:
            read_preset(path, name, policy.limits)
            return []
        if not is_batch_name(name):
            prepare(data, name, policy, Beside(path.parent), presets.above(name))
            return []
        found = []
        for number, line in lines_of(data, policy.limits.request_bytes):
            line_name = posixpath.join(posixpath.dirname(name), f"{line_stem(line, f'{path.stem}-{number}')}.json")
            try:
                prepare(line.encode(), line_name, policy, Beside(path.parent), presets.above(line_name))
            except RequestError as exc:
                found.append(f"line {number}: {_verdict(exc)}")
        return found
    except RequestError as exc:
        return [_verdict(exc)]
    except OSError as exc:
        return [f"cannot be read: {exc.strerror}"]


def _verdict(error: RequestError) -> str:
    field = f" ({error.field})" if error.field else ""
    return f"{error.code.value}{field}: {error.message}"


def submit(args: argparse.Namespace) -> int:
    """Write a request (and the attachment files it names) into the inbox; print its path."""
    settings = load_settings(args.config)
    inbox: Path = args.inbox or settings.folder("inbox")
    fields = dict(args.fields)
    uploads = {}
    for field in ("melody", "continuation"):
        if field in fields:
            path = Path(fields.pop(field))
            if path.parent.resolve() == inbox.resolve():
                fields[field] = path.name  # already in the inbox: refer to it
            else:
                uploads[field] = Upload(path.name, path.read_bytes())
    print(submit_request(inbox, fields, Policy.from_settings(settings), name=args.name, uploads=uploads))
    return 0


def health(args: argparse.Namespace) -> int:
    """Exit 0 when the daemon's heartbeat is fresh and its folders are writable (Docker's HEALTHCHECK).

    Nothing is written: probe files every 30 s would keep a NAS's disks awake.
    """
    settings = load_settings(args.config)
    layout = Layout.from_settings(settings)
    problems = [f"{folder} is not writable: {why}" for folder in layout.folders if (why := writable_problem(folder))]
    problems += [f"{folder} has no space left" for folder in (layout.outbox,) if space_left(folder) == 0]
    mine = next((d for d in daemons(layout) if d.id == layout.daemon_id), None)
    limit = settings.daemon.heartbeat_timeout
    if mine is None:
        problems.append(f"no heartbeat at {layout.heartbeat}: the daemon is not running")
    elif not mine.healthy(limit):
        problems.append(f"the daemon's heartbeat is {mine.age:.0f} s old (limit {limit:g} s)")
    for problem in problems:
        print(f"unhealthy: {problem}")
    if mine is not None and not problems:
        beat = mine.beat
        print(f"healthy: daemon {mine.id}, heartbeat {mine.age:.1f} s old, {beat.get('state', '?')}, "
              f"device {beat.get('device') or 'starting'}, model {beat.get('model') or 'none'}")
    return 1 if problems else 0


def selftest(args: argparse.Namespace) -> int:
    """Prove an install without downloading anything: stand-in models, one request, the real daemon path."""
    from .selftest import selftest as check

    problems = check(load_settings(args.config).engine.device)
    for problem in problems:
        print(json.dumps({"selftest": "failed", "problem": problem}) if not sys.stdout.isatty()
              else f"selftest FAILED: {problem}")
    return 1 if problems else 0


def status(args: argparse.Namespace) -> int:
    """Counts per folder, the daemons, what is running, and what is next."""
    settings = load_settings(args.config)
    layout = Layout.from_settings(settings)
    counts = layout.depths()
    timeout = settings.daemon.heartbeat_timeout
    report = {
        "folders": {name: {"path": str(settings.folder(name)), "count": counts[name]} for name in FOLDER_NAMES},
        "daemons": [d.as_dict(timeout) for d in daemons(layout)],
        "running": running(layout),
        "next": [w.as_dict() for w in waiting(layout, settings.request_limits, settings.watch.depth)[:20]],
    }
    if args.json:
        print_json(report)
        return 0
    _print_status(report)
    return 0


def _print_status(report: dict[str, Any]) -> None:
    print("folders:")
    for name, folder in report["folders"].items():
        print(f"  {name:10} {folder['count']:6}  {folder['path']}")
    print("daemons:" if report["daemons"] else "daemons: none has a heartbeat")
    for d in report["daemons"]:
        state = d.get("state", "?") if d["healthy"] else "not responding"
        print(f"  {d['id']}  {state}, device {d.get('device') or 'starting'}, model {d.get('model') or 'none'}, "
              f"heartbeat {d['heartbeat_age']:.0f} s ago")
    print("running:" if report["running"] else "running: nothing")
    for state in report["running"]:
        print(f"  {state['id']}  {state['progress'] * 100:5.1f}%  since {state['started_at'] or '(preparing)'}"
              f"  on {state['daemon']}")
    print("next:" if report["next"] else "next: nothing waiting")
    for item in report["next"][:5]:
        missing = f"  waiting for {', '.join(item['missing'])}" if item["missing"] else ""
        print(f"  {item['name']}  priority {item['priority']}{missing}")
