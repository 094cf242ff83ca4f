"""Workflows on the folders: retention, requests as plain text, presets in subfolders, batches and takes."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from tests.conftest import DataRoot, RunOnce
from watcher.config import RetentionConfig
from watcher.folders import Layout
from watcher.housekeeping import sweep

DAY = 86400.0


def aged(path: Path, days: float, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    stamp = time.time() - days * DAY
    os.utime(path, (stamp, stamp))
    return path


def test_retention_sweeps_what_is_old_and_nothing_else(data: DataRoot, run_once: RunOnce) -> None:
    old = [aged(data.done / "old.json", 3), aged(data.done / "trailers" / "old.json", 3),
           aged(data.failed / "old.json", 8), aged(data.failed / "old.error.json", 8),
           aged(data.outbox / "old.wav", 3), aged(data.outbox / "old.json", 3)]
    kept = [aged(data.done / "recent.json", 0.5), aged(data.failed / "recent.json", 6),
            aged(data.inbox / "ancient.txt", 100), aged(data.outbox / "recent.wav", 1.5)]
    data.drop("fresh.json", {"prompt": "x", "duration": 0.2})
    result = run_once(retention={"done_days": 2, "failed_days": 7, "outbox_days": 2})
    assert [p for p in old if p.exists()] == []
    assert all(p.exists() for p in kept)
    assert data.where("fresh") == "done" and (data.outbox / "fresh.wav").exists()  # done now: not old
    logged = {json.loads(line)["path"] for line in result.stderr.splitlines() if '"retention_deleted"' in line}
    assert logged == {str(p) for p in old}


def test_retention_spares_an_output_still_being_published(data: DataRoot) -> None:
    layout = Layout(data.inbox, data.processing, data.outbox, data.done, data.failed, "test")
    publishing = aged(data.outbox / "late.wav", 30)
    aged(data.processing / "test" / ".late.json.journal", 30,
         json.dumps({"audio": "late.wav", "sidecar": "late.json", "content": {}}).encode())
    other = aged(data.outbox / "other.wav", 30)
    deleted = sweep(layout, RetentionConfig(outbox_days=1), time.time())
    assert [path for path, _ in deleted] == [other]
    assert publishing.exists() and (data.processing / "test" / ".late.json.journal").exists()
