"""Out of GPU memory: halve the batch, retry once alone, then fail with out_of_memory.

CUDA's allocator is the only source of a real OutOfMemoryError, and CI has no GPU, so this one test
drives the real daemon (in-process, real folders and watchdog) with an engine whose generate call
runs out of memory above a batch size. Every other daemon test uses the real engine.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from typing import Any

import torch

from tests.conftest import DataRoot, config_file
from watcher.audio import Audio
from watcher.config import load_settings
from watcher.daemon import Daemon
from watcher.engine import Engine
from watcher.errors import OutOfMemory
from watcher.jobs import Generated, Job, ProgressCallback
from watcher.models import ResolvedModel
from watcher.options import Sampling


class SmallMemoryEngine(Engine):
    """Generates silence, and runs out of memory for batches over `fits` or prompts marked 'huge'."""

    def __init__(self, fits: int) -> None:
        super().__init__("cpu")
        self.fits = fits
        self.calls: list[int] = []

    def load(self, model: ResolvedModel) -> float:
        self._name = model.name
        return 0.0

    def generate(self, model: ResolvedModel, jobs: Sequence[Job], *, duration: float,
                 sampling: Sampling = Sampling(), seed: int | None = None,
                 progress: ProgressCallback | None = None) -> list[Generated]:
        self.calls.append(len(jobs))
        if len(jobs) > self.fits or any(job.prompt == "huge" for job in jobs):
            raise OutOfMemory(f"The GPU ran out of memory generating a batch of {len(jobs)}.")
        audio = Audio(torch.zeros(1, int(duration * 32000)), 32000)
        return [Generated(audio, model.name, seed or 1, "cuda", "float16", 0.0, 0.1, len(jobs)) for _ in jobs]


def run(data: DataRoot, engine: SmallMemoryEngine, **sections: dict[str, Any]) -> None:
    settings = load_settings(config_file(data, engine={"max_batch": 4, "preload": False}, **sections))
    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        assert Daemon(settings, once=True, engine=engine).run() == 0
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)


def test_batch_is_halved_until_it_fits(data: DataRoot) -> None:
    for i in range(4):
        data.drop(f"r{i}.json", {"prompt": f"take {i}", "duration": 0.1})
    engine = SmallMemoryEngine(fits=1)
    run(data, engine)
    assert engine.calls == [4, 2, 1, 1, 2, 1, 1]
    assert sorted(data.listing("done")) == [f"r{i}.json" for i in range(4)]
    assert {data.sidecar(f"r{i}")["batch_size"] for i in range(4)} == {1}


def test_one_that_never_fits_fails_after_one_retry(data: DataRoot) -> None:
    data.drop("huge.json", {"prompt": "huge", "duration": 0.1})
    data.drop("fine.json", {"prompt": "fine", "duration": 0.1, "seed": 3})
    engine = SmallMemoryEngine(fits=4)
    run(data, engine)
    assert engine.calls == [1, 1, 1]  # huge, huge again, then fine
    assert data.where("huge") == "failed" and data.where("fine") == "done"
    assert data.error("huge")["error"]["code"] == "out_of_memory"
