"""The original one-shot CLI: one prompt, one file, then exit."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import structlog

from .cli import _request_fields
from .models import DEFAULT_ALLOWED, DEFAULT_MODEL, resolve_model
from .options import AudioFormat, Normalize, SampleFormat
from .requests import Limits, validate_request

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
    if request.melody:
        model.check_melody()
    # Imported only now: a bad argument is reported at once, without importing torch and audiocraft.
    from .audio import normalized, read_audio, write_audio
    from .engine import Engine
    from .jobs import Job

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
    final = write_audio(normalized(generated.audio, request.normalize or Normalize.peak), dest, fmt,
                        request.sample_format or SampleFormat.pcm16)
    if final != dest:
        log.warning("output_exists", requested=str(dest), written=str(final))
    log.info("generated", output=str(final), model=generated.model, seed=generated.seed,
             seconds=round(generated.generate_seconds, 2), device=generated.device)
    print(final)
    return 0


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
