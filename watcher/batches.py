"""One batch through the engine: group compatible requests, generate, halve on out-of-memory,
retry one by one after a bad request, report progress, give the batch back on a stop.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING

import structlog

from . import files
from .about import now_iso
from .errors import ErrorCode, FatalError, OutOfMemory, RequestError, TransientError
from .faults import FaultPoint, Faults
from .folders import Layout
from .intake import Claimed, Prepared
from .jobs import Generated, Job
from .metrics import Metrics
from .outcomes import Outcomes
from .presence import Heartbeat
from .schedule import batch_key
from .stopping import Stop

if TYPE_CHECKING:
    from .engine import Engine

log = structlog.get_logger("watcher.batches")


class Abandoned(Exception):
    """Raised from the progress callback when a stop's grace ran out: the batch goes back."""


class Batches:
    """Runs claimed, prepared requests through the engine and hands each result to `Outcomes`."""

    def __init__(self, engine: Callable[[], Engine], outcomes: Outcomes, stop: Stop, heartbeat: Heartbeat,
                 faults: Faults, metrics: Metrics, layout: Layout, max_batch: int) -> None:
        self.max_batch = max_batch
        self.engine = engine  # waits while the engine starts
        self.outcomes = outcomes
        self.stop = stop
        self.heartbeat = heartbeat
        self.faults = faults
        self.metrics = metrics
        self.layout = layout

    def run(self, claimed: list[Claimed]) -> None:
        """Generate every request in `claimed` (prepared), in groups that may share a generate call."""
        groups: dict[Hashable, list[Claimed]] = {}
        for item in claimed:
            prepared = _prepared(item)
            key = batch_key(prepared.request, prepared.model.name)
            groups.setdefault(key if key is not None else id(item), []).append(item)
        for group in groups.values():
            if self.stop.abandon:
                for item in group:
                    self.outcomes.put_back(item)
                continue
            try:
                self.generate(group)
            except FatalError:  # the engine could not start: nothing runs here, so nothing stays claimed
                for item in (i for g in groups.values() for i in g if i.path.exists()):
                    self.outcomes.put_back(item)
                raise
            except Exception as exc:  # a bug must cost one batch, not the daemon
                log.exception("internal_error", request_ids=[i.request_id for i in group])
                for item in group:
                    if item.path.exists():
                        self.outcomes.fail(item, RequestError(ErrorCode.generation_failed,
                                                              f"Internal error: {type(exc).__name__}: {exc}."))

    def generate(self, group: list[Claimed], *, oom_retried: bool = False) -> None:
        """One generate call for `group`; out of memory halves it, then retries alone once."""
        first = _prepared(group[0])
        request, model = first.request, first.model
        with self.heartbeat.doing("loading"):  # the engine may still be starting: imports, then the preload
            engine = self.engine()
        try:
            load_seconds = self._load(engine, group)
            started_at = now_iso()
            for item in group:
                log.info("started", request_id=item.request_id, model=model.name, duration=request.duration,
                         batch_size=len(group))
            jobs = [_prepared(i).job for i in group for _ in range(_prepared(i).request.takes)]
            with self.heartbeat.doing("generating"):
                outputs = self._run(engine, group, jobs, started_at)
        except Abandoned:
            for item in group:
                self.outcomes.put_back(item)
            return
        except OutOfMemory as exc:
            self._out_of_memory(group, exc, oom_retried)
            return
        except TransientError as exc:
            for item in group:
                self.outcomes.hold(item, exc)
            return
        except RequestError as exc:
            if len(group) > 1:  # one bad request never fails its batch-mates
                for item in group:
                    self.generate([item])
            else:
                self.outcomes.fail(group[0], exc)
            return
        finally:
            self.metrics.observe_engine(engine.resident, engine.loads)
        self.metrics.generation_seconds.observe(outputs[0].generate_seconds)
        self.metrics.batch_size.observe(len(jobs))
        made = iter(dataclasses.replace(generated, load_seconds=load_seconds) for generated in outputs)
        for item in group:  # each request its own takes, in order
            self.outcomes.publish(item, [next(made) for _ in range(_prepared(item).request.takes)], started_at)

    def _run(self, engine: Engine, group: list[Claimed], jobs: list[Job], started_at: str) -> list[Generated]:
        """The generate calls for `jobs`: one, or, for more takes than `engine.max_batch`, one per slice of
        that many, seeded one after the other from the request's seed (or one chosen here)."""
        request, model = _prepared(group[0]).request, _prepared(group[0]).model
        slices = [jobs[n:n + self.max_batch] for n in range(0, len(jobs), self.max_batch)]
        seed = request.seed if request.seed is not None or len(slices) == 1 else secrets.randbelow(2**31)
        outputs: list[Generated] = []
        for n, part in enumerate(slices):
            progress = Progress(self, group, started_at, (n, len(slices)))
            outputs += engine.generate(model, part, duration=request.duration, sampling=request.sampling,
                                       seed=None if seed is None else seed + n, progress=progress)
        return outputs

    def _load(self, engine: Engine, group: list[Claimed]) -> float:
        model = _prepared(group[0]).model
        if engine.resident == model.name:
            return 0.0
        with self.heartbeat.doing("loading"):
            log.info("model_loading", model=model.name, request_ids=[i.request_id for i in group])
            self.faults.reach(FaultPoint.model_load)
            seconds = engine.load(model)
        log.info("model_loaded", model=model.name, seconds=round(seconds, 3), device=engine.device)
        return seconds

    def _out_of_memory(self, group: list[Claimed], exc: OutOfMemory, retried: bool) -> None:
        if len(group) > 1:
            half = len(group) // 2
            log.warning("out_of_memory", batch_size=len(group), retry_with=half)
            self.generate(group[:half])
            self.generate(group[half:])
        elif not retried:
            log.warning("out_of_memory", batch_size=1, retry_with=1)
            self.generate(group, oom_retried=True)
        else:  # transient no more: halving and the retry alone did not help
            self.outcomes.fail(group[0], RequestError(ErrorCode.out_of_memory, exc.message))


def _prepared(claimed: Claimed) -> Prepared:
    assert claimed.prepared is not None, "prepare a request before generating it"
    return claimed.prepared


class Progress:
    """The engine's progress callback: status files, heartbeat, the mid-generation fault, stops."""

    def __init__(self, batches: Batches, group: list[Claimed], started_at: str, part: tuple[int, int] = (0, 1)) -> None:
        self.batches = batches
        self.group = group
        self.started_at = started_at
        self.part = part  # (n, of): the slice of a request's takes this call makes
        self.last_write = 0.0
        self.mid_reached = False

    def __call__(self, value: float) -> None:
        value = (self.part[0] + value) / self.part[1]
        batches = self.batches
        batches.heartbeat.touch()
        if value < 1.0 and batches.stop.abandon:
            raise Abandoned
        if value >= 0.5 and not self.mid_reached:
            self.mid_reached = True
            batches.faults.reach(FaultPoint.mid_generation)
        now = time.monotonic()
        if now - self.last_write >= 1.0 or value >= 1.0:
            self.last_write = now
            for item in self.group:
                status = {"request_id": item.request_id, "progress": round(value, 4),
                          "started_at": self.started_at, "daemon": batches.layout.daemon_id,
                          "batch": [i.request_id for i in self.group], "batch_size": len(self.group)}
                files.replace_atomic(batches.layout.status_file(item.path), json.dumps(status).encode())
            log.info("progress", request_ids=[i.request_id for i in self.group], progress=round(value, 3))
