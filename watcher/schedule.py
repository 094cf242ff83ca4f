"""Which complete requests run next: priority, age, name; the resident model; compatible batch-mates.

Pure logic over `Entry` values, so it is tested without files or models. `order` is the one place
the order of the line is written down; `status` and the daemon both use it.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from .options import Mode
from .requests import Request


def order(priority: int, mtime: float, name: str) -> tuple[int, float, str]:
    """The line's order: priority first (higher first), then oldest mtime, then name."""
    return (-priority, mtime, name)


@dataclass(frozen=True, slots=True)
class Entry:
    """A ready request in the inbox, as far as could be read without claiming it."""

    #: the file's name in the inbox
    name: str
    priority: int
    mtime: float
    #: the resolved model name, None when the request is invalid or names no model
    model: str | None
    #: equal keys may share one generate call; None runs alone (seeded, melody, invalid...)
    batch_key: Hashable | None
    #: time.monotonic() when the request became complete; its attachments may arrive until then + attachment_wait
    ready_at: float = 0.0

    def order(self) -> tuple[int, float, str]:
        return order(self.priority, self.mtime, self.name)


def batch_key(request: Request, model: str) -> Hashable | None:
    """Requests with equal keys may share one generate call: same model, mode, duration, sampling and
    normalisation (format is per output). Seeded, audio-conditioned and multi-take requests run alone."""
    if request.seed is not None or request.attachments or request.takes > 1:
        return None
    mode = Mode.text if request.prompt else Mode.unconditional
    return (model, mode, request.duration, request.sampling, request.normalize)


def plan_next(entries: Sequence[Entry], *, resident: str | None, max_batch: int, max_skips: int,
              skips: dict[str, int]) -> list[Entry]:
    """The next batch: its head, then batch-mates, never jumping past higher priority.

    Among the requests of the top priority, one for the resident model (or an invalid one) goes
    first, unless another has been passed over `max_skips` times already. `skips` is updated in place.
    """
    if not entries:
        return []
    ordered = sorted(entries, key=Entry.order)
    head = _pick_head(ordered, resident, max_skips, skips)
    batch = [head]
    skipped_priority: int | None = None
    for entry in ordered:
        if len(batch) >= max_batch or head.batch_key is None:
            break
        if entry is head:
            continue
        compatible = entry.batch_key == head.batch_key
        if compatible and (skipped_priority is None or entry.priority >= skipped_priority):
            batch.append(entry)
        elif skipped_priority is None or entry.priority > skipped_priority:
            skipped_priority = entry.priority
    for entry in batch:
        skips.pop(entry.name, None)
    return batch


def _pick_head(ordered: list[Entry], resident: str | None, max_skips: int, skips: dict[str, int]) -> Entry:
    top = [e for e in ordered if e.priority == ordered[0].priority]
    starving = [e for e in top if skips.get(e.name, 0) >= max_skips]
    if starving:
        return starving[0]
    # An invalid request (model None) costs no load: it fails at once, so it is never passed over.
    preferred = next((e for e in top if resident is not None and e.model in (resident, None)), top[0])
    for entry in top:
        if entry.order() < preferred.order():
            skips[entry.name] = skips.get(entry.name, 0) + 1
    return preferred
