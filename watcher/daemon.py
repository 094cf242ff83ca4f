"""The watch-folder daemon: claim, validate, generate, publish, move; and recover after a crash."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import structlog

from . import files
from .audio import Audio, normalized, read_audio
from .config import Settings
from .errors import ErrorCode, FatalError, OutOfMemory, RequestError, TransientError, WatcherError
from .faults import FaultPoint, Faults
from .folders import Layout, write_json
from .hooks import run_hook
from .jobs import Generated, Job
from .lineup import Lineup
from .metrics import Metrics
from .models import ResolvedModel, resolve_model
from .pickup import Pickup
from .publish import Publisher
from .queue import Entry, batch_key, plan_next
from .requests import Request, attachments_of, decode_request, parse_request
from .results import done_sidecar, error_sidecar, now_iso
from .warmup import Warmup

if TYPE_CHECKING:
    from .engine import Engine

log = structlog.get_logger("watcher.daemon")


class Abandoned(Exception):
    """Raised from the progress callback when a stop's grace ran out: the work goes back."""


@dataclass
class Work:
    """A claimed request on its way through the engine."""

    claimed: Path
    queued_at: float
    attempt: int
    received: dict[str, Any] = field(default_factory=dict)
    request: Request | None = None
    model: ResolvedModel | None = None
    job: Job | None = None

    @property
    def request_id(self) -> str:
        return self.claimed.stem


class Daemon:
    """Runs until stopped (or, with `once`, until the inbox is drained)."""

    def __init__(self, settings: Settings, *, once: bool = False, engine: Engine | None = None) -> None:
        self.settings = settings
        self.once = once
        self.layout = Layout.from_settings(settings)
        self.wake = threading.Event()
        self.pickup = Pickup(self.layout.inbox, settings.watch, self.wake)
        self.lineup = Lineup(self.pickup, settings, self._resolve)
        self.faults = Faults.from_env()
        self.limits = settings.request_limits
        self.held: list[Work] = []
        self.retry_at: dict[str, float] = {}
        self.backoff: dict[str, float] = {}
        self.skips: dict[str, int] = {}
        self.stop_requested = False
        self.hard_stop = False
        self.stop_deadline = float("inf")
        self.last_active = time.monotonic()
        self._last_heartbeat = 0.0
        self.metrics = Metrics(settings.metrics)
        self.warmup = Warmup(settings.engine, self.metrics, self._resolve, engine)
        self.publisher = Publisher(self.layout, self.faults)

    # -- lifecycle ------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until a signal (exit 0) or, with `once`, until drained."""
        os.umask(int(self.settings.daemon.umask, 8))
        self.layout.create()
        lock = self.layout.lock()
        try:
            self.metrics.start()
        except OSError as exc:
            raise FatalError(f"metrics.port {self.settings.metrics.port} cannot be served: {exc.strerror}") from None
        self._install_signals()
        self._recover()
        self.pickup.start()
        # Read what waits in the inbox before the engine starts: its imports hold the interpreter
        # lock for milliseconds at a time, and a thread reading thousands of small files waits for
        # it after every system call (10,000 requests took 6 s to read instead of 0.6 s).
        self.lineup.eligible()
        self.warmup.start()
        try:
            while not self.stop_requested:
                if self.warmup.done:
                    self.warmup.engine  # noqa: B018 - raises FatalError when the start failed (a broken install)
                self._heartbeat()
                if self._step():
                    self.last_active = time.monotonic()
                    continue
                if self.once and self._drained():
                    break
                self._maybe_unload()
                self.wake.wait(timeout=min(self.pickup.next_deadline(), self._next_retry(),
                                           self.settings.daemon.heartbeat_interval))
                self.wake.clear()
        finally:
            self.pickup.stop()
        for work in self.held:
            self._put_back(work)
        os.close(lock)
        log.info("stopped", daemon=self.layout.daemon_id)
        return 0

    def _install_signals(self) -> None:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            if self.stop_requested:
                self.hard_stop = True
            else:
                self.stop_requested = True
                self.stop_deadline = time.monotonic() + self.settings.daemon.shutdown_grace
            self.wake.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    # -- the engine, started in the background ---------------------------------------------

    @property
    def engine(self) -> Engine:
        """The engine; waits until it has started (see `Warmup`)."""
        return self.warmup.engine

    @property
    def resident(self) -> str | None:
        return self.warmup.resident

    def _maybe_unload(self) -> None:
        idle = self.settings.engine.idle_unload
        since = max(self.last_active, self.warmup.loaded_at or 0.0)  # idle counts from the preload too
        if idle and self.warmup.done and self.resident and time.monotonic() - since > idle:
            log.info("model_unloaded", model=self.engine.resident, idle_seconds=idle)
            self.engine.unload()
            self.metrics.observe_engine(self.engine.resident, self.engine.loads)

    def _heartbeat(self) -> None:
        now = time.monotonic()
        if now - self._last_heartbeat >= self.settings.daemon.heartbeat_interval:
            self._last_heartbeat = now
            beat = {"daemon": self.layout.daemon_id, "pid": os.getpid(), "at": now_iso(),
                    "model": self.resident}
            files.replace_atomic(self.layout.heartbeat, json.dumps(beat).encode())
            if self.metrics.exported:  # counting done/ and the outbox lists folders that only grow
                self.metrics.export(self.layout.depths())

    # -- recovery -----------------------------------------------------------------------------

    def _recover(self) -> None:
        """Finish or re-queue what a crash left in our processing folder."""
        for path in self.layout.remove_orphans():
            log.info("removed_leftover", path=str(path))
        for claimed in self.layout.claimed_requests():
            attempts = self.layout.attempts(claimed)
            work = Work(claimed, claimed.stat().st_mtime, attempts)
            if self._resume_publication(work):
                continue
            if attempts >= self.settings.engine.max_attempts:
                self._fail(work, RequestError(
                    ErrorCode.crashed_repeatedly,
                    f"The daemon stopped unexpectedly {attempts} times while running this request; "
                    "it was set aside so it cannot stop the daemon again."))
                continue
            log.info("recovered", request_id=work.request_id, attempts=attempts)
            self.held.append(work)

    def _resume_publication(self, work: Work) -> bool:
        """Finish a publication whose audio is already out; True when there was one."""
        journal = self.publisher.pending(work.claimed)
        if journal is None:
            return False
        log.info("resumed_publication", request_id=work.request_id, audio=journal["audio"])
        self._complete_publication(work, journal)
        return True

    # -- choosing and claiming -------------------------------------------------------------

    def _step(self) -> bool:
        """Run one batch if there is one; False when there was nothing to do."""
        now = time.monotonic()
        ready_held = [w for w in self.held if self.retry_at.get(w.claimed.name, 0.0) <= now]
        if ready_held:
            work = ready_held[0]
            self.held.remove(work)
            if not self._resume_publication(work):
                work.attempt = self.layout.count_attempt(work.claimed)
                self._process([work])
            return True
        entries = self.lineup.eligible()
        batch = plan_next(entries, resident=self.resident, max_batch=self.settings.engine.max_batch,
                          max_skips=self.settings.engine.max_skips, skips=self.skips)
        works = [w for w in (self._claim(e) for e in batch) if w is not None]
        if works:
            self._process(works)
        return bool(batch)

    def _claim(self, entry: Entry) -> Work | None:
        self.lineup.forget(entry.name)
        claimed = self.layout.claim(self.layout.inbox / entry.name)
        if claimed is None:
            return None
        attempt = self.layout.count_attempt(claimed)
        log.info("claimed", request_id=claimed.stem, attempt=attempt)
        self.faults.reach(FaultPoint.after_claim)
        return Work(claimed, entry.mtime, attempt)

    # -- running --------------------------------------------------------------------------

    def _process(self, works: list[Work]) -> None:
        prepared = []
        for work in works:
            try:
                self._prepare(work)
                prepared.append(work)
            except RequestError as exc:
                self._fail(work, exc)
        groups: dict[Any, list[Work]] = {}
        for work in prepared:
            assert work.request is not None and work.model is not None
            key = batch_key(work.request, work.model.name)
            groups.setdefault(key if key is not None else id(work), []).append(work)
        for group in groups.values():
            if self.hard_stop or (self.stop_requested and time.monotonic() > self.stop_deadline):
                for work in group:
                    self._put_back(work)
                continue
            try:
                self._generate(group)
            except FatalError:  # the engine could not start: nothing runs here, so nothing stays claimed
                for work in (w for g in groups.values() for w in g if w.claimed.exists()):
                    self._put_back(work)
                raise
            except Exception as exc:  # a bug must cost one request, not the daemon
                log.exception("internal_error", request_ids=[w.request_id for w in group])
                for work in group:
                    if work.claimed.exists():
                        self._fail(work, RequestError(ErrorCode.generation_failed,
                                                      f"Internal error: {type(exc).__name__}: {exc}"))

    def _prepare(self, work: Work) -> None:
        """Read and validate the claimed file, resolve its model, read its attachments."""
        received, request = parse_request(work.claimed.read_bytes(), self.limits)
        work.received, work.request = received, request
        work.model = self._resolve(request.model or self.settings.engine.default_model)
        if request.melody is not None:
            work.model.check_melody()
        melody = self._attachment(request.melody, "melody")
        continuation = self._attachment(request.continuation, "continuation")
        work.job = Job(prompt=request.prompt, melody=melody, continuation=continuation)

    def _attachment(self, name: str | None, field_name: str) -> Audio | None:
        if name is None:
            return None
        path = self.layout.inbox / name
        if not os.path.lexists(path):
            raise RequestError(ErrorCode.missing_attachment,
                               f"The {field_name} file {name} did not arrive in the inbox within "
                               f"{self.settings.watch.attachment_wait:g} s.", field=field_name)
        if path.is_symlink() and not path.resolve().is_relative_to(self.layout.inbox.resolve()):
            raise RequestError(ErrorCode.unsafe_name,
                               f"The {field_name} file {name} is a link leading outside the inbox; it was refused.",
                               field=field_name)
        return read_audio(path, field=field_name, max_bytes=self.settings.limits.attachment_bytes,
                          max_seconds=self.settings.limits.attachment_seconds)

    def _resolve(self, requested: str) -> ResolvedModel:
        return resolve_model(requested, allowed=self.settings.engine.allowed_models,
                             model_dirs=self.settings.engine.model_dirs)

    def _generate(self, works: list[Work], *, oom_retried: bool = False) -> None:
        first = works[0]
        assert first.request is not None and first.model is not None
        request = first.request
        engine = self.engine  # waits while the engine starts: "started" means generating
        started_at = now_iso()
        for work in works:
            log.info("started", request_id=work.request_id, model=first.model.name, duration=request.duration,
                     batch_size=len(works))
        progress = _Progress(self, works, started_at)
        try:
            outputs = engine.generate(first.model, [w.job for w in works if w.job is not None],
                                      duration=request.duration, sampling=request.sampling,
                                      seed=request.seed, progress=progress)
        except Abandoned:
            for work in works:
                self._put_back(work)
            return
        except OutOfMemory as exc:
            if len(works) > 1:
                half = len(works) // 2
                log.warning("out_of_memory", batch_size=len(works), retry_with=half)
                self._generate(works[:half])
                self._generate(works[half:])
            elif not oom_retried:
                log.warning("out_of_memory", batch_size=1, retry_with=1)
                self._generate(works, oom_retried=True)
            else:
                self._fail(works[0], exc)
            return
        except TransientError as exc:
            for work in works:
                self._hold(work, exc)
            return
        except RequestError as exc:
            if len(works) > 1:  # one bad request never fails its batch-mates
                for work in works:
                    self._generate([work])
            else:
                self._fail(works[0], exc)
            return
        finally:
            self.metrics.observe_engine(self.engine.resident, self.engine.loads)
        self.metrics.generation_seconds.observe(outputs[0].generate_seconds)
        self.metrics.batch_size.observe(len(works))
        for work, generated in zip(works, outputs, strict=True):
            self._publish(work, generated, started_at)

    # -- publishing -----------------------------------------------------------------------

    def _publish(self, work: Work, generated: Generated, started_at: str) -> None:
        request = work.request
        assert request is not None
        fmt = request.format or self.settings.output.format
        sample_format = request.sample_format or self.settings.output.sample_format
        stem = request.output or work.request_id
        normalize = request.normalize or self.settings.output.normalize

        def sidecar(base: str, audio_name: str) -> dict[str, Any]:
            return done_sidecar(
                request_id=work.request_id, received=work.received, generated=generated, audio_name=audio_name,
                output=base, output_requested=stem, audio_format=fmt.value, sample_format=sample_format.value,
                normalize=normalize.value, queued_at=work.queued_at, started_at=started_at,
                attempt=work.attempt, daemon_id=self.layout.daemon_id)

        try:
            audio = normalized(generated.audio, normalize)
            journal = self.publisher.deliver(work.claimed, audio, stem, fmt, sample_format, sidecar)
        except RequestError as exc:  # a sample format the container cannot hold
            self._fail(work, exc)
            return
        except OSError as exc:
            self._fail(work, RequestError(ErrorCode.output_failed,
                                          f"The audio could not be written to the outbox: {exc.strerror or exc}."))
            return
        self._complete_publication(work, journal)

    def _complete_publication(self, work: Work, journal: dict[str, Any]) -> None:
        """Write the sidecar if it is not there yet, then move the request to done/."""
        try:
            final = self.publisher.complete(work.claimed, journal, self._attachments(work), self._still_needed(work))
        except OSError as exc:
            self._hold(work, TransientError(ErrorCode.output_failed, f"Could not finish publishing: {exc}."))
            return
        content = journal["content"]
        log.info("finished", request_id=work.request_id, audio=journal["audio"], model=content["model"],
                 seconds=content["timings"]["generate_seconds"], batch_size=content["batch_size"])
        log.info("moved", request_id=work.request_id, to=str(final))
        self.metrics.requests.labels("done", "").inc()
        self.metrics.audio_seconds.inc(content["duration_seconds"])
        run_hook(self.settings.hooks, "done", work.request_id, {
            "request": final, "audio": self.layout.outbox / journal["audio"],
            "sidecar": self.layout.outbox / journal["sidecar"]})

    # -- endings ------------------------------------------------------------------------------

    def _attachments(self, work: Work) -> tuple[str, ...]:
        if work.request is not None:
            return work.request.attachments
        try:
            return attachments_of(decode_request(work.claimed.read_bytes(), self.limits))
        except (WatcherError, OSError):
            return ()

    def _still_needed(self, work: Work) -> set[str]:
        """Attachment names other requests, waiting or running anywhere, still refer to."""
        needed: set[str] = set()
        needed.update(self.lineup.attachments(excluding=work.claimed.name))
        others = [self.layout.inbox / name for name in self.lineup.unread()]
        others += [p for p in self.layout.processing.glob("*/*.json") if p != work.claimed]
        for path in others:
            try:
                needed.update(attachments_of(decode_request(path.read_bytes(), self.limits)))
            except (WatcherError, OSError):
                continue
        return needed

    def _fail(self, work: Work, error: WatcherError) -> None:
        log.warning("failed", request_id=work.request_id, error_code=error.code.value, message=error.message,
                    field=error.field)
        try:
            base = files.free_stem(self.layout.failed, work.request_id, (".json", ".error.json"))
            error_file = write_json(self.layout.failed, f"{base}.error.json", error_sidecar(work.request_id, error))
            final = self.layout.finish(work.claimed, self.layout.failed, self._attachments(work),
                                       self._still_needed(work))
        except OSError as exc:
            self._hold(work, TransientError(ErrorCode.output_failed, f"Could not move to failed/: {exc}."))
            return
        log.info("moved", request_id=work.request_id, to=str(final))
        self.metrics.requests.labels("failed", error.code.value).inc()
        run_hook(self.settings.hooks, "failed", work.request_id, {"request": final, "error": error_file})

    def _hold(self, work: Work, error: TransientError) -> None:
        """Keep a claimed request in line and retry it later, with a growing pause."""
        delay = min(self.backoff.get(work.claimed.name, 2.5) * 2, self.settings.engine.load_retry_max)
        self.backoff[work.claimed.name] = delay
        self.retry_at[work.claimed.name] = time.monotonic() + delay
        self.layout.uncount_attempt(work.claimed)
        log.warning("retry_later", request_id=work.request_id, error_code=error.code.value, message=error.message,
                    retry_in=delay)
        self.held.append(work)

    def _next_retry(self) -> float:
        if not self.held:
            return float("inf")
        return max(0.0, min(self.retry_at.get(w.claimed.name, 0.0) for w in self.held) - time.monotonic())

    def _put_back(self, work: Work) -> None:
        final = self.layout.put_back(work.claimed)
        log.info("put_back", request_id=work.request_id, to=str(final))

    def _drained(self) -> bool:
        """Nothing held, nothing ready, and nothing on its way but empty files.

        Requests held for a retry (the model could not be fetched) count as drained once tried:
        `--once` puts them back in the inbox for the next run rather than wait.
        """
        if any(w.claimed.name not in self.retry_at for w in self.held) or self.lineup.eligible():
            return False
        pending = [self.layout.inbox / name for name in self.pickup.pending()]
        waiting = [p for p in pending if p.exists() and p.stat().st_size > 0]
        return not waiting and not self.lineup


class _Progress:
    """The engine's progress callback: status files, heartbeat, the mid-generation fault, stops."""

    def __init__(self, daemon: Daemon, works: Iterable[Work], started_at: str) -> None:
        self.daemon = daemon
        self.works = list(works)
        self.started_at = started_at
        self.last_write = 0.0
        self.mid_reached = False

    def __call__(self, value: float) -> None:
        daemon = self.daemon
        if value < 1.0 and (daemon.hard_stop or
                            (daemon.stop_requested and time.monotonic() > daemon.stop_deadline)):
            raise Abandoned
        if value >= 0.5 and not self.mid_reached:
            self.mid_reached = True
            daemon.faults.reach(FaultPoint.mid_generation)
        now = time.monotonic()
        if now - self.last_write >= 1.0 or value >= 1.0:
            self.last_write = now
            daemon._heartbeat()
            for work in self.works:
                status = {"request_id": work.request_id, "progress": round(value, 4),
                          "started_at": self.started_at, "daemon": daemon.layout.daemon_id,
                          "batch_size": len(self.works)}
                files.replace_atomic(daemon.layout.status_file(work.claimed), json.dumps(status).encode())
            log.info("progress", request_ids=[w.request_id for w in self.works], progress=round(value, 3))
