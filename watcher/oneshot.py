"""The original one-shot CLI: one prompt into one file, then exit.

It goes through the same `intake` as the daemon, so a request file given with `--request` gets the
same verdict here as in the inbox.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import structlog

from .errors import FatalCode, FatalError
from .intake import Beside, Given, Policy, prepare
from .options import AudioFormat
from .presets import Presets
from .requests import decode_file

log = structlog.get_logger("watcher.oneshot")

#: the one-shot CLI runs what its user names: any local model folder is allowed
POLICY = Policy(model_dirs=(Path("/"),))


def generate(fields: dict[str, Any], output: Path, *, device: str = "auto", request_file: Path | None = None) -> Path:
    """Generate one file from request fields (over a request file's, if given); returns the path written.

    `melody` and `continuation` in `fields` are paths; in a request file, names beside it.
    """
    paths: dict[str, Path] = {name: Path(fields[name]) for name in ("melody", "continuation") if name in fields}
    fields = {**fields, **{name: path.name for name, path in paths.items()}}  # the contract's plain names
    folder = request_file.parent if request_file is not None else Path.cwd()
    data = _request_bytes(fields, request_file, output)
    name = request_file.name if request_file is not None else f"{output.stem}.json"
    presets = Presets(folder, POLICY.limits).above(name) if request_file is not None else ()
    prepared = prepare(data, name, POLICY, Given(paths, Beside(folder)), presets)
    if prepared.model.aliased:
        log.warning("model_alias", requested=prepared.model.requested, using=prepared.model.name)
    # Imported only now: a bad argument is reported at once, without importing torch and audiocraft.
    from .audio import for_format, normalized, write_audio
    from .engine import DeviceUnavailable, Engine

    fmt = prepared.output.format
    dest = output if output.suffix.lower() == f".{fmt.value}" else output.with_name(f"{output.name}.{fmt.value}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = Engine(device)
    except DeviceUnavailable as exc:
        raise FatalError(FatalCode.invalid_config, f"--device: {exc}") from None
    request = prepared.request
    with ProgressBar() as progress:
        generated = engine.generate(prepared.model, [prepared.job], duration=request.duration,
                                    sampling=request.sampling, seed=request.seed, progress=progress)[0]
    how = prepared.output
    final = write_audio(for_format(normalized(generated.audio, how.normalize), fmt), dest, fmt, how.sample_format,
                        how.level)
    if final != dest:
        log.warning("output_exists", requested=str(dest), written=str(final))
    log.info("generated", output=str(final), model=generated.model, seed=generated.seed,
             seconds=round(generated.generate_seconds, 2), device=generated.device)
    return final


def _request_bytes(fields: dict[str, Any], request_file: Path | None, output: Path) -> bytes:
    """The request as the daemon would read it: the file's own bytes, or its fields with the options on top.

    Without a prompt the original tool generated unconditionally; without a format, `--output`'s
    suffix says which.
    """
    received = decode_file(data := request_file.read_bytes(), request_file.name, POLICY.limits) if request_file \
        else {}
    merged = {**received, **fields}
    if request_file is None:
        merged.setdefault("prompt", "")
    suffix = output.suffix.lower().lstrip(".")
    if "format" not in merged and suffix in AudioFormat.__members__:
        merged["format"] = suffix
    return data if request_file and merged == received else json.dumps(merged).encode()


class ProgressBar:
    """A tqdm bar with the time left on a terminal; progress log events otherwise."""

    def __enter__(self) -> ProgressBar:
        self.tty = sys.stderr.isatty()
        self.last = -1
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=1000, unit="‰", file=sys.stderr, bar_format="{l_bar}{bar}| {elapsed}<{remaining}")
        return self

    def __call__(self, value: float) -> None:
        if self.tty:
            self.bar.update(int(value * 1000) - self.bar.n)
        elif int(value * 10) > self.last:
            self.last = int(value * 10)
            log.info("progress", progress=round(value, 2))

    def __exit__(self, *exc: object) -> None:
        if self.tty:
            self.bar.close()
