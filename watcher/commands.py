"""The subcommands behind `musicgen-watcher`, one function each."""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import structlog

from . import files
from .audio import AudioFormat, normalized, read_audio, write_audio
from .cli import _request_fields, print_json
from .config import Settings, load_settings
from .engine import Engine, Job
from .errors import ErrorCode, RequestError
from .folders import FOLDER_NAMES, STATUS_SUFFIX
from .models import ALIASES, CATALOG, DEFAULT_ALLOWED, DEFAULT_MODEL, resolve_model
from .pickup import is_request_name
from .requests import Limits, decode_request, parse_request, request_schema, validate_request

log = structlog.get_logger("watcher.cli")


def generate(args: argparse.Namespace) -> int:
    """The original one-shot CLI: one prompt, one file, then exit."""
    fields = _request_fields(args)
    fields.setdefault("prompt", "")  # no prompt: unconditional generation
    output: Path = args.output
    if "format" not in fields and output.suffix.lower().lstrip(".") in AudioFormat.__members__:
        fields["format"] = output.suffix.lower().lstrip(".")
    for name in ("melody", "continuation"):  # the contract's plain names are inbox-relative
        fields[name] = Path(fields[name]).name if name in fields else None
    paths = {k: Path(getattr(args, k)) for k in ("melody", "continuation") if getattr(args, k)}
    request = validate_request({k: v for k, v in fields.items() if v is not None}, Limits())
    model = resolve_model(request.model or DEFAULT_MODEL, allowed=DEFAULT_ALLOWED, model_dirs=(Path("/"),))
    if model.melody is False and request.melody:
        raise RequestError(ErrorCode.unsupported_mode, f"{model.requested} does not take a melody; use a melody "
                           "model such as facebook/musicgen-melody.", field="melody")
    job = Job(prompt=request.prompt,
              melody=read_audio(paths["melody"], field="melody") if "melody" in paths else None,
              continuation=read_audio(paths["continuation"], field="continuation")
              if "continuation" in paths else None)
    fmt = request.format or AudioFormat.wav
    dest = output if output.suffix.lower() == f".{fmt.value}" else output.with_name(f"{output.name}.{fmt.value}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    engine = Engine(args.device)
    with _progress_bar() as progress:
        generated = engine.generate(model, [job], duration=request.duration, sampling=request.sampling,
                                    seed=request.seed, progress=progress)[0]
    final = write_audio(normalized(generated.audio, request.normalize), dest, fmt,
                        request.sample_format or _default_sample_format())
    if final != dest:
        log.warning("output_exists", requested=str(dest), written=str(final))
    log.info("generated", output=str(final), model=generated.model, seed=generated.seed,
             seconds=round(generated.generate_seconds, 2), device=generated.device)
    print(final)
    return 0


def _default_sample_format() -> Any:
    from .audio import SampleFormat

    return SampleFormat.pcm16


class _progress_bar:
    """A tqdm bar with the time left on a terminal; progress log events otherwise."""

    def __enter__(self) -> Any:
        self.tty = sys.stderr.isatty()
        self.last = -1
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=1000, unit="‰", file=sys.stderr, bar_format="{l_bar}{bar}| {elapsed}<{remaining}")
        return self.update

    def update(self, value: float) -> None:
        if self.tty:
            self.bar.update(int(value * 1000) - self.bar.n)
        elif int(value * 10) > self.last:
            self.last = int(value * 10)
            log.info("progress", progress=round(value, 2))

    def __exit__(self, *exc: object) -> None:
        if self.tty:
            self.bar.close()


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
    _, request = parse_request(path.read_bytes(), settings.request_limits)
    model = resolve_model(request.model or settings.engine.default_model,
                          allowed=settings.engine.allowed_models, model_dirs=settings.engine.model_dirs)
    if model.melody is False and request.melody is not None:
        raise RequestError(ErrorCode.unsupported_mode, f"{model.requested} does not take a melody.",
                           field="melody")
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


def status(args: argparse.Namespace) -> int:
    """Counts per folder, what is running, and what is next."""
    settings = load_settings(args.config)
    folders = {name: settings.folder(name) for name in FOLDER_NAMES}
    counts = Counter({name: _count(folder, name) for name, folder in folders.items()})
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


def _count(folder: Path, name: str) -> int:
    if not folder.is_dir():
        return 0
    if name == "processing":
        return sum(1 for p in folder.glob("*/*.json") if not p.name.endswith(STATUS_SUFFIX))
    if name == "outbox":
        return sum(1 for p in folder.iterdir() if p.suffix in {f".{f.value}" for f in AudioFormat})
    return sum(1 for p in folder.iterdir() if is_request_name(p.name) and not p.name.endswith(".error.json"))


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
