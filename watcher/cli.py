"""`musicgen-watcher`: the parser and the dispatch to `commands`, nothing else.

Exit codes: 0 done; 1 a request, file or run-time error; 2 a usage or configuration error;
130 interrupted (Ctrl-C); 141 the reader of the output went away (`schema | head`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import __version__
from .errors import FatalCode, FatalError, WatcherError
from .options import AudioFormat, Normalize, SampleFormat

SUBCOMMANDS = ("generate", "run", "models", "schema", "validate", "submit", "status", "health", "selftest")
LOG_LEVEL_ENV = "MUSICGEN_WATCHER_LOG_LEVEL"
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

#: request fields settable from the command line: (option, type, help, choices)
_REQUEST_OPTIONS: tuple[tuple[str, type, str, tuple[str, ...] | None], ...] = (
    ("prompt", str, "what to generate; leave out for unconditional generation", None),
    ("duration", float, "seconds of audio (default 8)", None),
    ("melody", str, "an audio file whose melody to follow (melody models only)", None),
    ("continuation", str, "an audio file to continue; it counts inside the duration", None),
    ("seed", int, "the same seed gives the same audio", None),
    ("format", str, "the audio format (default wav)", tuple(AudioFormat)),
    ("sample_format", str, "pcm16 (default), pcm24 or float", tuple(SampleFormat)),
    ("normalize", str, "peak (default), loudness, rms, clip or none", tuple(Normalize)),
    ("top_k", int, "sampling: top k (default 250)", None),
    ("top_p", float, "sampling: top p, 0 = use top k (default 0)", None),
    ("temperature", float, "sampling temperature (default 1.0)", None),
    ("cfg_coef", float, "classifier-free guidance (default 3.0)", None),
    ("extend_stride", float, "seconds to advance per window beyond 30 s (default 18)", None),
)
_FIELD_NAMES = (*(name for name, *_ in _REQUEST_OPTIONS), "two_step_cfg", "model", "priority", "output_name")


def _add_request_options(parser: argparse.ArgumentParser) -> None:
    for name, kind, text, choices in _REQUEST_OPTIONS:
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, type=kind, help=text, choices=choices)
    parser.add_argument("--two-step-cfg", dest="two_step_cfg", action="store_true", default=None,
                        help="run the two guidance passes separately")
    parser.add_argument("--model", help="model id, alias or model folder (default facebook/musicgen-small)")


def _add_config(parser: argparse.ArgumentParser, default: object) -> None:
    parser.add_argument("--config", type=Path, default=default, metavar="FILE",
                        help="TOML config file (default $MUSICGEN_WATCHER_CONFIG); also accepted before the command")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="musicgen-watcher",
        description="Turn JSON request files dropped in a folder into music with MusicGen.",
        epilog="exit codes: 0 done, 1 error, 2 usage or configuration error, 130 interrupted, 141 broken pipe")
    parser.add_argument("--version", action="version", version=f"musicgen-watcher {__version__}")
    _add_config(parser, None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, text: str, *, config: bool = True) -> argparse.ArgumentParser:
        added = sub.add_parser(name, help=text, description=text)
        if config:
            _add_config(added, argparse.SUPPRESS)  # the global --config stays unless given here
        return added

    gen = command("generate", "generate one file now (the original CLI; the default command)", config=False)
    _add_request_options(gen)
    gen.add_argument("--output", required=True, type=Path, help="the audio file to write")
    gen.add_argument("--request", type=Path, metavar="FILE",
                     help="a request file to render (its attachments beside it); options given here override it")
    gen.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1 ...")

    run = command("run", "run the watch-folder daemon")
    run.add_argument("--once", action="store_true", help="process everything present, then exit")

    command("models", "list the model catalog", config=False)
    schema = command("schema", "print the JSON Schema of a request file", config=False)
    schema.add_argument("--preset", action="store_true", help="the schema of a folder's defaults.json instead")

    val = command("validate", "check request files as the daemon would, without generating")
    val.add_argument("files", nargs="+", type=Path)

    submit = command("submit", "write a request (and its attachment files) into the inbox atomically")
    _add_request_options(submit)
    submit.add_argument("--output", dest="output_name", help="base name of the output file")
    submit.add_argument("--priority", type=int, help="higher goes first (default 0)")
    submit.add_argument("--name", help="the request's name (file stem); default a fresh unique one")
    submit.add_argument("--inbox", type=Path, metavar="DIR", help="the inbox to write to (default folders.inbox)")

    status = command("status", "folder counts, the daemons, what runs, what is next")
    status.add_argument("--json", action="store_true", help="print it as one JSON object")
    command("health", "exit non-zero if the daemon's heartbeat is stale or a folder is unwritable")
    command("selftest", "prove the install: stand-in models, one request, no downloads")
    return parser


def with_default_command(argv: list[str]) -> list[str]:
    """`musicgen-watcher --prompt ... --output ...` means `generate`, as the original tool did.

    Global options (`--config FILE`) may come first: the command is the first word after them.
    """
    i = 0
    while i < len(argv) and (argv[i] == "--config" or argv[i].startswith("--config=")):
        i += 1 if "=" in argv[i] else 2
    if i < len(argv) and argv[i] not in SUBCOMMANDS and argv[i].startswith("--") \
            and argv[i] not in ("--help", "--version"):
        return [*argv[:i], "generate", *argv[i:]]
    return argv


def request_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The request fields given on the command line (`submit --output` is the request's `output`)."""
    fields = {name: getattr(args, name) for name in _FIELD_NAMES if getattr(args, name, None) is not None}
    if "output_name" in fields:
        fields["output"] = fields.pop("output_name")
    return fields


def drop_privileges() -> None:
    """NAS-style `PUID`/`PGID`: when started as root, become that user before touching any file."""
    import structlog

    log = structlog.get_logger("watcher.cli")
    puid, pgid = os.environ.get("PUID"), os.environ.get("PGID")
    if not (puid or pgid):
        return
    if os.geteuid() != 0:
        log.warning("puid_ignored", puid=puid, pgid=pgid, uid=os.geteuid(),
                    reason="PUID/PGID apply only when the container starts as root")
        return
    os.setgroups([])
    os.setgid(int(pgid or puid or 0))  # PUID alone: the group of the same number, not root's
    if puid:
        os.setuid(int(puid))


def main(argv: Sequence[str] | None = None) -> int:
    from .baked import use_baked_models
    from .logs import configure

    use_baked_models(os.environ)  # before anything imports huggingface_hub, transformers or torch

    level = os.environ.get(LOG_LEVEL_ENV, "info").lower()
    if level not in LOG_LEVELS:
        print(f"error: {FatalCode.invalid_config.value}: {LOG_LEVEL_ENV} must be one of {', '.join(LOG_LEVELS)} "
              f"(got {level!r})", file=sys.stderr)
        return 2
    configure(level)
    args = build_parser().parse_args(with_default_command(list(sys.argv[1:] if argv is None else argv)))
    if args.command is None:
        build_parser().print_help()
        return 2
    args.fields = request_fields(args)
    from . import commands

    try:
        drop_privileges()
        return int(getattr(commands, args.command)(args))
    except WatcherError as exc:
        print(f"error: {exc.code.value}: {exc.message}", file=sys.stderr)
        return 1
    except FatalError as exc:
        print(f"error: {exc.code.value}: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python would report the pipe again at exit
        print("error: broken pipe: the reader of the output went away", file=sys.stderr)
        return 141
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
