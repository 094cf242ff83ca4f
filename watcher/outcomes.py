"""Every way a claimed request ends: published to the outbox and done/, failed, held for a retry, put back.

Each ending is logged, counted in the metrics and, for done and failed, handed to the hooks. A share
refusing a move (EBUSY, ESTALE...) never loses the request: it stays claimed and is tried again.
"""

from __future__ import annotations

import dataclasses
import json
import posixpath
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from . import files
from .audio import Audio, for_format, normalized
from .errors import ErrorCode, RequestError, TransientError, WatcherError
from .faults import FaultPoint, Faults
from .folders import Layout, journal_outputs
from .hooks import Hooks
from .intake import Claimed
from .jobs import Generated
from .lineup import Lineup
from .metrics import Metrics
from .names import beside
from .notify import Notifier
from .publish import Publisher, SidecarFor, Take
from .requests import Limits, attachments_of, decode_file
from .sidecars import done_sidecar, error_sidecar

log = structlog.get_logger("watcher.outcomes")

#: the first pause before retrying a request whose attempt failed for a reason outside it; it doubles
_FIRST_RETRY = 5.0


@dataclass
class _Held:
    claimed: Claimed
    at: float
    #: False for a request recovered after a crash, not tried again yet
    tried: bool


class Retries:
    """Claimed requests held in processing/ for a later try, each with a growing pause."""

    def __init__(self, max_delay: float) -> None:
        self.max_delay = max_delay
        self._held: dict[str, _Held] = {}  # by request name (relative to the inbox: a/intro.json, b/intro.json)
        self._delays: dict[str, float] = {}  # the same, dropped when the request ends

    def __bool__(self) -> bool:
        return bool(self._held)

    def hold(self, claimed: Claimed, delay: float | None = None, *, tried: bool = True) -> float:
        """Keep `claimed` for a later try, after `delay` or the next pause in its backoff; returns the pause."""
        name = claimed.name
        if delay is None:
            delay = min(self._delays.get(name, _FIRST_RETRY / 2) * 2, self.max_delay)
            self._delays[name] = delay
        self._held[name] = _Held(claimed, time.monotonic() + delay, tried)
        return delay

    def due(self) -> Claimed | None:
        """The first held request whose pause is over, taken out of the hold."""
        now = time.monotonic()
        for name, held in self._held.items():
            if held.at <= now:
                del self._held[name]
                return held.claimed
        return None

    def next_in(self) -> float:
        """Seconds until a held request is due."""
        return max(0.0, min((h.at for h in self._held.values()), default=float("inf")) - time.monotonic())

    def all_tried(self) -> bool:
        """Whether every held request has been tried since the daemon started (`--once` may stop then)."""
        return all(held.tried for held in self._held.values())

    def release(self) -> list[Claimed]:
        """Every held request, no longer held."""
        out = [held.claimed for held in self._held.values()]
        self._held.clear()
        return out

    def ended(self, claimed: Claimed) -> None:
        self._delays.pop(claimed.name, None)


class Outcomes:
    """Ends requests: the only place that moves a claimed request out of processing/."""

    def __init__(self, layout: Layout, limits: Limits, faults: Faults, metrics: Metrics, hooks: Hooks,
                 notifier: Notifier, lineup: Lineup, retries: Retries) -> None:
        self.layout = layout
        self.limits = limits
        self.metrics = metrics
        self.hooks = hooks
        self.notifier = notifier
        self.lineup = lineup
        self.retries = retries
        self.faults = faults
        self.publisher = Publisher(layout, faults)

    def publish(self, claimed: Claimed, generated: list[Generated], started_at: str) -> None:
        """Write the audio and sidecar of each take to the outbox, then move the request to done/."""
        prepared = claimed.prepared
        assert prepared is not None
        output = prepared.output
        takes = []
        try:
            for n, made in enumerate(generated, start=1):
                audio = for_format(normalized(made.audio, output.normalize), output.format)
                stem = output.stem if len(generated) == 1 else f"{output.stem}-{n}"
                takes.append(Take(audio, dataclasses.replace(output, stem=stem),
                                  self._sidecar(claimed, made, audio, started_at, (n, len(generated)))))
            journal = self.publisher.deliver(claimed.path, takes)
        except RequestError as exc:  # a sample format the container cannot hold
            self.fail(claimed, exc)
            return
        except OSError as exc:
            self.fail(claimed, RequestError(ErrorCode.output_failed,
                                            f"The audio could not be written to the outbox: {exc.strerror or exc}."))
            return
        self._complete(claimed, journal)

    def _sidecar(self, claimed: Claimed, made: Generated, audio: Audio, started_at: str,
                 take: tuple[int, int]) -> SidecarFor:
        def sidecar(base: str) -> dict[str, Any]:
            return done_sidecar(claimed, made, audio, base=base, started_at=started_at,
                                daemon_id=self.layout.daemon_id, take=take)

        return sidecar

    def resume(self, claimed: Claimed) -> bool:
        """Finish a publication that was under way at a crash; False when there was none."""
        journal = self.publisher.pending(claimed.path)
        if journal is None:
            return False
        log.info("resumed_publication", request_id=claimed.request_id,
                 audio=[o["audio"] for o in journal_outputs(journal)])
        self._complete(claimed, journal)
        return True

    def _complete(self, claimed: Claimed, journal: dict[str, Any]) -> None:
        """Write the sidecars that are not there yet, then move the request to done/."""
        published = journal_outputs(journal)
        try:
            self.publisher.name_outputs(claimed.path, journal)
            self.faults.reach(FaultPoint.after_audio_publish)
            for entry in published:
                self.notifier.enqueue("done", posixpath.splitext(entry["sidecar"])[0], entry["content"],
                                      claimed.path)
            final = self.publisher.complete(claimed.path, claimed.name, journal, self._attachments(claimed),
                                            self._still_needed(claimed))
        except OSError as exc:
            self.hold(claimed, TransientError(ErrorCode.output_failed, f"Could not finish publishing: {exc}."))
            return
        for entry in published:
            content = entry["content"]
            log.info("finished", request_id=claimed.request_id, audio=entry["audio"], model=content["model"],
                     seconds=content["timings"]["generate_seconds"], batch_size=content["batch_size"])
            self.metrics.audio_seconds.inc(content["duration_seconds"])
            self.hooks.run("done", claimed.request_id, {
                "request": final, "audio": self.layout.outbox / entry["audio"],
                "sidecar": self.layout.outbox / entry["sidecar"]})
        self._ended(claimed, final, "done")

    def fail(self, claimed: Claimed, error: WatcherError) -> None:
        """Move the request (and attachments nobody else needs) to failed/, beside its error."""
        log.warning("failed", request_id=claimed.request_id, error_code=error.code.value, message=error.message,
                    field=error.field)
        try:
            folder = self.layout.failed / posixpath.dirname(claimed.name)
            folder.mkdir(parents=True, exist_ok=True)
            base = files.free_stem(folder, posixpath.basename(claimed.request_id), (claimed.path.suffix, ".error.json"))
            content = error_sidecar(claimed.request_id, error, claimed.received(self.limits))
            data = json.dumps(content, indent=2, ensure_ascii=False) + "\n"
            error_file = files.publish(folder, f"{base}.error.json", data.encode())
            self.notifier.enqueue("failed", posixpath.join(posixpath.dirname(claimed.name), base), content,
                                  claimed.path)
            final = self.layout.finish(claimed.path, claimed.name, self.layout.failed, self._attachments(claimed),
                                       self._still_needed(claimed), base=base)  # beside its error, same name
        except OSError as exc:
            self.hold(claimed, TransientError(ErrorCode.output_failed, f"Could not move to failed/: {exc}."))
            return
        self._ended(claimed, final, "failed", error.code.value)
        self.hooks.run("failed", claimed.request_id, {"request": final, "error": error_file})

    def end_batch(self, claimed: Claimed, summary: dict[str, Any]) -> bool:
        """Move a `.jsonl` batch whose lines have all ended to done/ (its summary in the outbox), or to failed/
        (the summary as its error) when every line failed."""
        folder = posixpath.dirname(claimed.name)
        stem = posixpath.basename(claimed.request_id)
        data = (json.dumps(summary, indent=2, ensure_ascii=False) + "\n").encode()
        done = summary["status"] == "done"
        target = self.layout.outbox / folder if done else self.layout.failed / folder
        try:
            target.mkdir(parents=True, exist_ok=True)
            suffixes = (".batch.json",) if done else (claimed.path.suffix, ".error.json")
            base = _summary_written(target, stem, suffixes, claimed.request_id)  # by a try that could not move it
            if base is None:
                base = files.free_stem(target, stem, suffixes)
                files.publish(target, f"{base}{suffixes[-1]}", data)
            final = self.layout.finish(claimed.path, claimed.name, self.layout.done if done else self.layout.failed,
                                       (), set(), base=None if done else base)
        except OSError as exc:
            log.warning("batch_not_moved", request_id=claimed.request_id, error=str(exc))  # tried again next step
            return False
        log.info("batch_finished", request_id=claimed.request_id, done=summary["done"], failed=summary["failed"])
        self._ended(claimed, final, "done" if done else "failed", "" if done else ErrorCode.batch_failed.value)
        return True

    def hold(self, claimed: Claimed, error: TransientError, delay: float | None = None) -> None:
        """Keep the request claimed and try it again later; the attempt does not count as a crash."""
        self.layout.uncount_attempt(claimed.path)
        pause = self.retries.hold(claimed, delay)
        log.warning("retry_later", request_id=claimed.request_id, error_code=error.code.value,
                    message=error.message, retry_in=round(pause, 3))

    def put_back(self, claimed: Claimed) -> None:
        """Return the request to the inbox untouched (a stop); left claimed if the share refuses."""
        try:
            final = self.layout.put_back(claimed.path, claimed.name)
        except OSError as exc:
            log.warning("put_back_failed", request_id=claimed.request_id, error=str(exc))
            return
        self.retries.ended(claimed)
        log.info("put_back", request_id=claimed.request_id, to=str(final))

    def _ended(self, claimed: Claimed, final: Path, outcome: str, code: str = "") -> None:
        self.retries.ended(claimed)
        log.info("moved", request_id=claimed.request_id, to=str(final))
        self.metrics.requests.labels(outcome, code).inc()

    def _attachments(self, claimed: Claimed) -> tuple[str, ...]:
        """The request's attachments, named relative to the inbox."""
        return tuple(beside(claimed.name, a) for a in claimed.attachment_names(self.limits))

    def _still_needed(self, claimed: Claimed) -> set[str]:
        """Attachments (relative to the inbox) other requests, waiting or running anywhere, still refer to."""
        needed = self.lineup.attachments(excluding=claimed.name)
        others = [(name, self.layout.inbox / name) for name in self.lineup.unread()]
        for claim_dir in (p for p in self.layout.processing.iterdir() if p.is_dir()):
            others += [(name, claim_dir / name) for name in Layout.requests_in(claim_dir)]
        for name, path in others:
            if path == claimed.path:
                continue
            try:
                needed.update(beside(name, a) for a in attachments_of(decode_file(path.read_bytes(), name,
                                                                                   self.limits)))
            except (WatcherError, OSError):
                continue
        return needed


def _summary_written(folder: Path, stem: str, suffixes: tuple[str, ...], request_id: str) -> str | None:
    """The base name of a batch summary already written for `request_id`, or None."""
    for base in files.candidates(stem, ""):
        path = folder / f"{base}{suffixes[-1]}"
        if not path.exists():
            return None
        try:
            summary = json.loads(path.read_bytes())
        except (OSError, ValueError):
            continue
        if isinstance(summary, dict) and summary.get("request_id") == request_id and "lines" in summary:
            return base
    return None
