"""Out of GPU memory: halve the batch, retry once alone, then fail with out_of_memory.

CUDA's allocator is the only source of a real OutOfMemoryError, and CI has no GPU, so this one test
drives the real daemon (in-process, real folders and watchdog) with an engine whose generate call
runs out of memory above a batch size. Every other daemon test uses the real engine.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from tests.conftest import DataRoot, InProcess
from watcher.audio import Audio
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


def test_batch_is_halved_until_it_fits(data: DataRoot, in_process: InProcess) -> None:
    for i in range(4):
        data.drop(f"r{i}.json", {"prompt": f"take {i}", "duration": 0.1})
    engine = SmallMemoryEngine(fits=1)
    assert in_process(engine, engine={"max_batch": 4, "preload": False}) == 0
    assert engine.calls == [4, 2, 1, 1, 2, 1, 1]
    assert sorted(data.listing("done")) == [f"r{i}.json" for i in range(4)]
    assert {data.sidecar(f"r{i}")["batch_size"] for i in range(4)} == {1}


def test_one_that_never_fits_fails_after_one_retry(data: DataRoot, in_process: InProcess) -> None:
    data.drop("huge.json", {"prompt": "huge", "duration": 0.1})
    data.drop("fine.json", {"prompt": "fine", "duration": 0.1, "seed": 3})
    engine = SmallMemoryEngine(fits=4)
    assert in_process(engine, engine={"max_batch": 4, "preload": False}) == 0
    assert engine.calls == [1, 1, 1]  # huge, huge again, then fine
    assert data.where("huge") == "failed" and data.where("fine") == "done"
    assert data.error("huge")["error"]["code"] == "out_of_memory"
