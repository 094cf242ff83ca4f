"""`musicgen-watcher`: the daemon, its helpers, and the original one-shot CLI."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from . import __version__
from .errors import FatalError, WatcherError

log = structlog.get_logger("watcher.cli")

SUBCOMMANDS = ("generate", "run", "models", "schema", "validate", "submit", "status", "health", "selftest")

#: request fields settable from the command line: (option, type, help)
_REQUEST_OPTIONS: tuple[tuple[str, type, str], ...] = (
    ("prompt", str, "what to generate; leave out for unconditional generation"),
    ("duration", float, "seconds of audio (default 8)"),
    ("melody", str, "an audio file whose melody to follow (melody models only)"),
    ("continuation", str, "an audio file to continue; it counts inside the duration"),
    ("seed", int, "the same seed gives the same audio"),
    ("format", str, "wav, flac or ogg"),
    ("sample_format", str, "pcm16 (default), pcm24 or float"),
    ("normalize", str, "peak (default), loudness, rms, clip or none"),
    ("top_k", int, "sampling: top k (default 250)"),
    ("top_p", float, "sampling: top p, 0 = use top k (default 0)"),
    ("temperature", float, "sampling temperature (default 1.0)"),
    ("cfg_coef", float, "classifier-free guidance (default 3.0)"),
    ("extend_stride", float, "seconds to advance per window beyond 30 s (default 18)"),
)


def _add_request_options(parser: argparse.ArgumentParser) -> None:
    for name, kind, text in _REQUEST_OPTIONS:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, help=text)
    parser.add_argument("--two-step-cfg", dest="two_step_cfg", action="store_true", default=None,
                        help="run the two guidance passes separately")
    parser.add_argument("--model", help="model id, alias or model folder (default facebook/musicgen-small)")


def _request_fields(args: argparse.Namespace) -> dict[str, Any]:
    names = [name for name, _, _ in _REQUEST_OPTIONS] + ["two_step_cfg", "model"]
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="musicgen-watcher",
        description="Turn JSON request files dropped in a folder into music with MusicGen.")
    parser.add_argument("--version", action="version", version=f"musicgen-watcher {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    gen = sub.add_parser("generate", help="generate one file now (the original CLI; the default command)")
    _add_request_options(gen)
    gen.add_argument("--output", required=True, type=Path, help="the audio file to write")
    gen.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1 ...")

    run = sub.add_parser("run", help="run the watch-folder daemon")
    run.add_argument("--config", type=Path, help="TOML config (default $MUSICGEN_WATCHER_CONFIG)")
    run.add_argument("--once", action="store_true", help="process everything present, then exit")

    sub.add_parser("models", help="list the model catalog")
    sub.add_parser("schema", help="print the JSON Schema of a request file")

    val = sub.add_parser("validate", help="check request files without generating")
    val.add_argument("files", nargs="+", type=Path)
    val.add_argument("--config", type=Path)

    submit = sub.add_parser("submit", help="write a request into the inbox atomically")
    _add_request_options(submit)
    submit.add_argument("--output", help="base name of the output file")
    submit.add_argument("--priority", type=int)
    submit.add_argument("--name", help="request name (file stem); default a fresh unique one")
    where = submit.add_mutually_exclusive_group()
    where.add_argument("--inbox", type=Path)
    where.add_argument("--config", type=Path)

    status = sub.add_parser("status", help="folder counts, the running request, the next in line")
    status.add_argument("--config", type=Path)

    health = sub.add_parser("health", help="exit non-zero if the daemon's heartbeat is stale or a folder is unwritable")
    health.add_argument("--config", type=Path)

    selftest = sub.add_parser("selftest", help="prove the install: stand-in models, one request, no downloads")
    selftest.add_argument("--config", type=Path, help="only engine.device is read from it")
    return parser


def _with_default_command(argv: list[str]) -> list[str]:
    """`musicgen-watcher --prompt ... --output ...` means `generate`, as the original tool did."""
    if argv and argv[0] not in SUBCOMMANDS and argv[0].startswith("--") and argv[0] not in ("--help", "--version"):
        return ["generate", *argv]
    return argv


def drop_privileges() -> None:
    """NAS-style `PUID`/`PGID`: when started as root, become that user before touching any file."""
    if os.geteuid() != 0:
        return
    if os.environ.get("PGID"):
        os.setgroups([])
        os.setgid(int(os.environ["PGID"]))
    if os.environ.get("PUID"):
        os.setuid(int(os.environ["PUID"]))


def main(argv: Sequence[str] | None = None) -> int:
    from .logs import configure

    drop_privileges()
    args = build_parser().parse_args(_with_default_command(list(sys.argv[1:] if argv is None else argv)))
    configure(os.environ.get("MUSICGEN_WATCHER_LOG_LEVEL", "info"))
    if args.command is None:
        build_parser().print_help()
        return 2
    from . import commands

    try:
        return int(getattr(commands, args.command)(args))
    except WatcherError as exc:
        print(f"error: {exc.code.value}: {exc.message}", file=sys.stderr)
        return 1
    except FatalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))
