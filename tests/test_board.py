"""The console's board over real folders: done and failed pages follow every change, in subfolders too.

The board keeps its lists and reads a directory again only when it changed; these tests change the
folders in each way a share does (new files, new subfolders, removals, a second change behind the
same coarse timestamp) and check the pages a user would see. The console tests cover the same code
over HTTP in a real browser.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from watcher.folders import Layout
from watcher.requests import Limits
from watcher.web.board import Board


def board_on(root: Path) -> Board:
    layout = Layout(root / "inbox", root / "processing", root / "outbox", root / "done", root / "failed", "d1")
    for folder in (layout.inbox, layout.processing, layout.outbox, layout.done, layout.failed):
        folder.mkdir(parents=True, exist_ok=True)
    return Board(layout, Limits(), depth=4, heartbeat_timeout=30)


def finish(outbox: Path, name: str, at: float) -> None:
    """A result as the daemon leaves it: the audio and its sidecar, finished at `at`."""
    sidecar = outbox / f"{name}.json"
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    (outbox / f"{name}.wav").write_bytes(b"RIFF")
    sidecar.write_text(json.dumps({"status": "done", "request_id": name, "audio": f"{Path(name).name}.wav"}))
    os.utime(sidecar, (at, at))


def done_ids(board: Board, limit: int = 50) -> list[str]:
    return [item["id"] for item in board.done(limit)[0]]


def test_done_pages_follow_new_results_subfolders_and_removals(tmp_path: Path) -> None:
    board = board_on(tmp_path)
    outbox = board.layout.outbox
    now = time.time()
    finish(outbox, "first", now - 30)
    finish(outbox, "second", now - 20)
    (outbox / "second.status.json").write_text("{}")  # bookkeeping, not a result
    assert done_ids(board) == ["second", "first"]

    finish(outbox, "album/third", now - 10)  # a new subfolder
    assert done_ids(board) == ["album/third", "second", "first"]
    for folder in (outbox, outbox / "album"):  # long settled: read again only when their mtime moves
        os.utime(folder, (now - 60, now - 60))
    assert done_ids(board) == ["album/third", "second", "first"]
    finish(outbox, "album/fourth", now - 5)  # a new file in a known subfolder
    assert done_ids(board) == ["album/fourth", "album/third", "second", "first"]
    page, cursor = board.done(limit=2)
    assert [item["id"] for item in page] == ["album/fourth", "album/third"]
    assert [item["id"] for item in board.done(limit=2, cursor=cursor)[0]] == ["second", "first"]

    (outbox / "first.json").unlink()
    shutil.rmtree(outbox / "album")
    assert done_ids(board) == ["second"]
    assert board.find("album/third") is None
    assert board.counts()["done"] == 1


def test_a_change_behind_the_same_coarse_timestamp_is_still_seen(tmp_path: Path) -> None:
    """File systems with 2-second timestamps (SMB, FAT) can change a folder without moving its mtime."""
    board = board_on(tmp_path)
    outbox = board.layout.outbox
    finish(outbox, "one", time.time() - 5)
    assert done_ids(board) == ["one"]
    mtime_ns = outbox.stat().st_mtime_ns
    finish(outbox, "two", time.time())
    os.utime(outbox, ns=(mtime_ns, mtime_ns))  # the folder's mtime did not move
    assert done_ids(board) == ["two", "one"]


def test_failed_pages_list_errors_and_the_first_page_is_ready_after_warming(tmp_path: Path) -> None:
    board = board_on(tmp_path)
    failed = board.layout.failed
    for n, name in enumerate(("broken", "late/wrong")):
        (failed / name).parent.mkdir(parents=True, exist_ok=True)
        (failed / f"{name}.json").write_text("{")
        error = {"request_id": name, "error": {"code": "invalid_json", "message": "Not JSON."}}
        (failed / f"{name}.error.json").write_text(json.dumps(error))
        os.utime(failed / f"{name}.error.json", (time.time() - 10 + n, time.time() - 10 + n))
    board.warm()
    items, cursor = board.failed()
    assert [(i["id"], i["error"]["code"]) for i in items] == [("late/wrong", "invalid_json"),
                                                             ("broken", "invalid_json")]
    assert cursor is None


def test_a_request_is_found_by_id_in_the_state_it_is_in(tmp_path: Path) -> None:
    board = board_on(tmp_path)
    finish(board.layout.outbox, "old", time.time() - 10)
    (board.layout.inbox / "old.json").write_text(json.dumps({"prompt": "again", "duration": 1}))  # resubmitted
    (board.layout.inbox / "other.json").write_text(json.dumps({"prompt": "other", "duration": 1}))
    found = board.find("old")
    assert found is not None and found["state"] == "waiting" and found["request"]["prompt"] == "again"
    (board.layout.inbox / "old.json").unlink()
    found = board.find("old")
    assert found is not None and found["state"] == "done" and found["sidecar"]["request_id"] == "old"
    assert board.find("missing") is None
