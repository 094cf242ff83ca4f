"""Ordering, batching and residency: pure queue logic (the daemon tests cover the same paths for real)."""

from __future__ import annotations

from watcher.schedule import Entry, plan_next


def entry(name: str, priority: int = 0, mtime: float = 0.0, model: str | None = "a", key: object = "k") -> Entry:
    return Entry(name, priority, mtime, model, key)


def names(batch: list[Entry]) -> list[str]:
    return [e.name for e in batch]


def plan(entries: list[Entry], *, resident: str | None = None, max_batch: int = 1, max_skips: int = 8,
         skips: dict[str, int] | None = None) -> list[str]:
    return names(plan_next(entries, resident=resident, max_batch=max_batch, max_skips=max_skips,
                           skips={} if skips is None else skips))


def test_priority_then_age_then_name() -> None:
    entries = [entry("c", 0, 1.0), entry("b", 0, 1.0), entry("old", 0, 0.5), entry("urgent", 5, 9.0)]
    assert plan(entries) == ["urgent"]
    assert plan(entries[:3]) == ["old"]
    assert plan(entries[:2]) == ["b"]


def test_compatible_requests_share_a_batch() -> None:
    entries = [entry(f"r{i}", mtime=i) for i in range(6)]
    assert plan(entries, max_batch=4) == ["r0", "r1", "r2", "r3"]


def test_unbatchable_runs_alone() -> None:
    assert plan([entry("seeded", key=None), entry("b", mtime=1)], max_batch=4) == ["seeded"]


def test_batch_never_jumps_past_higher_priority() -> None:
    entries = [entry("head", 9), entry("other", 5, key="x"), entry("low", 1), entry("same", 5, mtime=1)]
    # "low" would overtake "other" (priority 5): it must wait; "same" (5) may join.
    assert plan(entries, max_batch=4) == ["head", "same"]


def test_resident_model_is_preferred_but_bounded() -> None:
    entries = [entry("first", model="b", mtime=0), entry("second", model="a", mtime=1)]
    skips: dict[str, int] = {}
    assert plan(entries, resident="a", skips=skips) == ["second"]
    assert skips == {"first": 1}
    skips["first"] = 8
    assert plan(entries, resident="a", skips=skips) == ["first"]
    assert "first" not in skips


def test_preference_stays_within_the_top_priority() -> None:
    entries = [entry("high", 3, model="b"), entry("resident", 0, model="a")]
    assert plan(entries, resident="a") == ["high"]


def test_an_invalid_request_is_not_passed_over_for_the_resident_model() -> None:
    entries = [entry("invalid", model=None, key=None), entry("resident", model="a", mtime=1)]
    assert plan(entries, resident="a") == ["invalid"]
