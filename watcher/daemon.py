"""The watch-folder daemon: one id per share, signals, recovery after a crash, and the loop.

The loop takes one step at a time: a held request whose pause is over, else the next batch from the
line (claimed by an atomic rename, prepared by `intake`, run by `batches`, ended by `outcomes`).
"""

from __future__ import annotations

import errno
import os
import posixpath
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from . import __version__, files
from .batches import Batches
from .completeness import being_written
from .config import Settings
from .errors import ErrorCode, FatalCode, FatalError, RequestError, TransientError
from .faults import FaultPoint, Faults
from .folders import Layout
from .hooks import Hooks
from .housekeeping import Sweeper
from .intake import Beside, Claimed, Policy, prepare
from .jsonl import BatchFiles, is_batch_name
from .lineup import Lineup
from .metrics import Metrics
from .names import is_tracked_name, request_id
from .notify import Notifier
from .outcomes import Outcomes, Retries
from .pickup import Pickup
from .presence import Heartbeat, Presence
from .presets import Presets
from .schedule import Entry, plan_next
from .stopping import Stop
from .warmup import Warmup

if TYPE_CHECKING:
    from .engine import Engine

log = structlog.get_logger("watcher.daemon")

#: how long a request whose claim the share refused (EBUSY...) waits before the next try
_CLAIM_RETRY = 1.0
#: how soon an attachment found still being written right before reading is looked at again
_ATTACHMENT_RETRY = 0.25


class Daemon:
    """Runs until stopped (or, with `once`, until the inbox is drained)."""

    def __init__(self, settings: Settings, *, once: bool = False, engine: Engine | None = None) -> None:
        self.settings = settings
        self.once = once
        self.layout = Layout.from_settings(settings)
        self.policy = Policy.from_settings(settings)
        self.stop = Stop(settings.daemon.shutdown_grace)
        self.faults = Faults.from_env()
        self.pickup = Pickup(self.layout.inbox, settings.watch, self.stop.wake)
        self.presets = Presets(self.layout.inbox, self.policy.limits, complete=self.pickup.is_complete)
        self.lineup = Lineup(self.pickup, self.policy, self.presets, settings.watch.attachment_wait)
        self.metrics = Metrics(settings.metrics)
        self.hooks = Hooks(settings.hooks)
        self.retries = Retries(settings.engine.load_retry_max)
        self.notifier = Notifier(settings.notify, self.layout.notify_dir, self.metrics)
        self.outcomes = Outcomes(self.layout, self.policy.limits, self.faults, self.metrics, self.hooks,
                                 self.notifier, self.lineup, self.retries)
        self.warmup = Warmup(settings.engine, self.metrics, self.policy.resolve, self.faults, engine)
        self.presence = Presence(self.layout, settings.daemon.heartbeat_timeout)
        self.heartbeat = Heartbeat(self.presence, settings.daemon.heartbeat_interval, self._describe, self.stop.wake,
                                   self._export_metrics)
        self.batch_files = BatchFiles(self.layout, self.policy.limits.request_bytes)
        self.batches = Batches(lambda: self.warmup.engine, self.outcomes, self.stop, self.heartbeat, self.faults,
                               self.metrics, self.layout, settings.engine.max_batch)
        self.skips: dict[str, int] = {}
        self.last_active = time.monotonic()
        self._deferred: set[str] = set()  # claims the share refused, logged once each

    # -- lifecycle ------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until a signal (exit 0) or, with `once`, until drained.

        The umask and the signal handlers are set for the run and restored after it.
        """
        umask = os.umask(int(self.settings.daemon.umask, 8))
        try:
            with self.stop.installed():
                self.layout.create()
                self.presence.acquire()
                try:
                    with files.writing_as(f"daemon {self.layout.daemon_id}"):  # one process at a time holds the id
                        self._serve()
                finally:
                    self.presence.release()
        finally:
            os.umask(umask)
        log.info("stopped", daemon=self.layout.daemon_id)
        return 0

    def _serve(self) -> None:
        try:
            self.metrics.start()
        except OSError as exc:
            raise FatalError(FatalCode.port_unavailable,
                             f"metrics.port {self.settings.metrics.port} cannot be served: {exc.strerror}") from None
        console = None
        if self.settings.web.enabled:
            from .web.server import Console  # FastAPI and uvicorn: only when the console is on

            console = Console(self.settings)
            console.start()
        try:
            self._watch()
        finally:
            if console is not None:
                console.stop()

    def _watch(self) -> None:
        sweeper = Sweeper(self.layout, self.settings.retention)
        self.notifier.start()
        try:
            self._work(sweeper)
        finally:
            sweeper.stop()
            self.notifier.stop()

    def _work(self, sweeper: Sweeper) -> None:
        self._recover()
        sweeper.start()  # after recovery: a publication it finishes is not an old output to sweep
        self.pickup.start()
        # Read what waits in the inbox before the engine starts: its imports hold the interpreter
        # lock for milliseconds at a time, and a thread reading thousands of small files waits for
        # it after every system call (10,000 requests took 6 s to read instead of 0.6 s).
        self.lineup.eligible()
        self.warmup.start()
        self.heartbeat.start()
        try:
            self._loop()
            self.warmup.join()
            self.warmup.engine  # noqa: B018 - an engine that could not start is reported, even after --once
        finally:
            self.heartbeat.stop()
            self.pickup.stop()
            for claimed in self.retries.release():
                if not is_batch_name(claimed.name):  # a batch's lines are out already: it stays, recovered next start
                    self.outcomes.put_back(claimed)
            self.hooks.close()
            self.warmup.join()
            self.metrics.stop()

    def _loop(self) -> None:
        while not self.stop.requested:
            if self.heartbeat.failure is not None:
                raise self.heartbeat.failure
            if self.warmup.done:
                self.warmup.engine  # noqa: B018 - raises FatalError when the start failed (a broken install)
            self.heartbeat.touch()
            if self._step():
                self.last_active = time.monotonic()
                continue
            if self.once and self._drained():
                break
            self._maybe_unload()
            self.stop.wait(min(self.pickup.next_deadline(), self.retries.next_in(),
                               self.settings.daemon.heartbeat_interval))

    def _describe(self) -> dict[str, Any]:
        """What the heartbeat says besides who and when: for `status`, `health` and the console."""
        return {"version": __version__, "engine": "ready" if self.warmup.done else "starting",
                "device": self.warmup.device(), "model": self.warmup.resident}

    def _export_metrics(self) -> None:
        """On each heartbeat: what waits and what runs, counted from the folders (done/ and the outbox only grow)."""
        if self.metrics.exported:
            self.metrics.describe(daemon=self.layout.daemon_id, device=self.warmup.device(),
                                  model=self.warmup.resident)
            depths = self.layout.depths(("inbox", "processing"))
            self.metrics.export(depths["inbox"], depths["processing"])

    def _maybe_unload(self) -> None:
        idle = self.settings.engine.idle_unload
        since = max(self.last_active, self.warmup.loaded_at or 0.0)  # idle counts from the preload too
        if idle and self.warmup.done and self.warmup.resident and time.monotonic() - since > idle:
            engine = self.warmup.engine
            log.info("model_unloaded", model=engine.resident, idle_seconds=idle)
            engine.unload()
            self.metrics.observe_engine(engine.resident, engine.loads)

    # -- recovery -----------------------------------------------------------------------------

    def _recover(self) -> None:
        """Finish or re-queue what a crash left in our processing folder."""
        for path in self.layout.remove_orphans():
            log.info("removed_leftover", path=str(path))
        for name in self.layout.claimed_requests():
            path = self.layout.claim_dir / name
            attempts = self.layout.attempts(path)
            claimed = Claimed(path, name, path.stat().st_mtime, attempts)
            if self.outcomes.resume(claimed):
                continue
            if attempts >= self.settings.engine.max_attempts:
                self.outcomes.fail(claimed, RequestError(
                    ErrorCode.crashed_repeatedly,
                    f"The daemon stopped unexpectedly {attempts} times while running this request; "
                    "it was set aside so it cannot stop the daemon again."))
                continue
            log.info("recovered", request_id=claimed.request_id, attempts=attempts)
            self.retries.hold(claimed, 0.0, tried=False)

    # -- one step ---------------------------------------------------------------------------

    def _step(self) -> bool:
        """Run one batch if there is one; False when there was nothing to do."""
        for listed, summary in self.batch_files.finished():
            if self.outcomes.end_batch(listed, summary):
                self.batch_files.forget(listed)
        held = self.retries.due()
        if held is not None:
            if not self.outcomes.resume(held):
                held.attempt = self.layout.count_attempt(held.path)
                self._process([held])
            return True
        entries = self.lineup.eligible()
        batch = plan_next(entries, resident=self.warmup.resident, max_batch=self.settings.engine.max_batch,
                          max_skips=self.settings.engine.max_skips, skips=self.skips)
        claimed = [c for c in (self._claim(entry) for entry in batch) if c is not None]
        if claimed:
            self._process(claimed)
        return bool(batch)

    def _claim(self, entry: Entry) -> Claimed | None:
        """Claim a request, checking the completeness rule once more first; None when it is not to be had now."""
        name = entry.name
        wait_over = time.monotonic() - entry.ready_at >= self.settings.watch.attachment_wait
        if not self.pickup.confirm(name) or not (
                wait_over or all(self._attachment_complete(self.layout.inbox / a)
                                 for a in self.lineup.attachments_for(name))):
            return None  # written again since: back in line once complete
        path = self.layout.inbox / name
        try:
            self.faults.reach(FaultPoint.claim, path)
            dest = self.layout.claim(name)
        except OSError as exc:
            self.layout.check_present()  # the folders as a whole gone: that is fatal, one file is not
            self.lineup.defer(name, _CLAIM_RETRY)
            if name not in self._deferred:
                self._deferred.add(name)
                log.warning("claim_deferred", request_id=request_id(name), errno=errno.errorcode.get(exc.errno or 0),
                            error=str(exc), retry_in=_CLAIM_RETRY)
            return None
        self._deferred.discard(name)
        self.lineup.take(name)
        if dest is None:
            return None  # another daemon was faster
        attempt = self.layout.count_attempt(dest)
        log.info("claimed", request_id=request_id(name), attempt=attempt)
        self.faults.reach(FaultPoint.after_claim)
        return Claimed(dest, name, entry.mtime, attempt, entry.ready_at)

    def _attachment_complete(self, path: Path) -> bool:
        name = path.relative_to(self.layout.inbox).as_posix()
        if is_tracked_name(name):
            return self.pickup.confirm(name)
        return being_written(path) is not True  # a name pickup skips (x.part): only the kernel can tell

    def _process(self, claimed: list[Claimed]) -> None:
        """Prepare each claimed request (failing the bad ones), then run the rest through the engine."""
        ready = []
        wait = self.settings.watch.attachment_wait
        for item in claimed:
            if is_batch_name(item.name):
                self._expand(item)
                continue
            attachments = Beside(self.layout.inbox / posixpath.dirname(item.name), self._attachment_complete,
                                 item.ready_at + wait, wait)
            try:
                item.prepared = prepare(item.path.read_bytes(), item.name, self.policy, attachments,
                                        self.presets.above(item.name))
            except TransientError as exc:  # an attachment or a preset still being written
                self.outcomes.hold(item, exc, _ATTACHMENT_RETRY)
                continue
            except RequestError as exc:
                self.outcomes.fail(item, exc)
                continue
            model = item.prepared.model
            if model.aliased:
                log.warning("model_alias", request_id=item.request_id, requested=model.requested, using=model.name)
            ready.append(item)
        if ready:
            self.batches.run(ready)

    def _expand(self, claimed: Claimed) -> None:
        """A `.jsonl` batch: its lines go into the inbox as requests; it stays claimed until they end."""
        try:
            self.batch_files.expand(claimed)
        except RequestError as exc:
            self.outcomes.fail(claimed, exc)
            return
        except OSError as exc:
            self.outcomes.hold(claimed, TransientError(ErrorCode.output_failed, f"Could not expand the batch: {exc}."))
            return
        self.layout.uncount_attempt(claimed.path)  # expanded: waiting for its lines is no attempt that can crash

    def _drained(self) -> bool:
        """Nothing held, nothing ready, and nothing on its way but empty files.

        Requests held for a retry (the model could not be fetched) count as drained once tried:
        `--once` puts them back in the inbox for the next run rather than wait.
        """
        if not self.retries.all_tried() or self.batch_files or self.lineup.eligible():
            return False
        pending = [self.layout.inbox / name for name in self.pickup.pending()]
        waiting = [p for p in pending if p.exists() and p.stat().st_size > 0]
        return not waiting and not self.lineup
