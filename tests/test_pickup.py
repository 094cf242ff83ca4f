"""Picking up on local disks: the completeness rule against the writers users run.

One daemon serves the module with `stable_seconds` at 30 s: what it takes within the tests, it took
on its writer's close, a move, or a link it saw made, confirmed by a read lease, never by waiting out
stability. Rescans run every second, and must not take a file mid-write either.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import DaemonProcess, DataRoot, StartDaemon, cli, config_file, running_daemon, wait_for, wav_bytes
from watcher.completeness import Sighting, being_written, is_complete

WATCH = {"stable_seconds": 30, "rescan_interval": 1.0, "attachment_wait": 60}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> DataRoot:
    return DataRoot(tmp_path_factory.mktemp("local") / "data")


@pytest.fixture(scope="module")
def daemon(standins: Path, root: DataRoot) -> Iterator[DaemonProcess]:
    with running_daemon(root, watch=WATCH) as running:
        yield running
    assert running.events("failed") == []


def staged(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def big_wav() -> bytes:
    """20 MB of WAV that is only 3.4 s long: 8 channels of 32-bit float at 192 kHz."""
    return wav_bytes(3.4, rate=192_000, channels=8, subtype="FLOAT")


def test_cp_of_a_request_and_a_20_mb_wav(root: DataRoot, daemon: DaemonProcess, tmp_path: Path) -> None:
    wav = big_wav()
    assert len(wav) > 20_000_000
    request = staged(tmp_path, "a-cp.json", json.dumps({"prompt": "x", "continuation": "z-cp.wav",
                                                         "duration": 4}).encode())
    subprocess.run(["cp", str(request), str(staged(tmp_path, "z-cp.wav", wav)), str(root.inbox)], check=True)
    assert root.wait_ended("a-cp") == "done", root.error("a-cp")
    [attachment] = root.sidecar("a-cp")["attachments"]
    assert attachment["sha256"] == hashlib.sha256(wav).hexdigest()
    assert (attachment["sample_rate"], attachment["channels"], attachment["frames"]) == (192_000, 8, 652_800)


def test_rsync_inplace_writes_the_wav_slowly(root: DataRoot, daemon: DaemonProcess, tmp_path: Path) -> None:
    wav = wav_bytes(2.0, rate=48_000, channels=2)  # 384 KB at 128 KB/s: three seconds of writing
    request = staged(tmp_path, "a-rs.json", json.dumps({"prompt": "x", "continuation": "z-rs.wav",
                                                         "duration": 3}).encode())
    subprocess.run(["rsync", "--inplace", "--bwlimit=128", str(request), str(staged(tmp_path, "z-rs.wav", wav)),
                    f"{root.inbox}/"], check=True)
    assert root.wait_ended("a-rs") == "done", root.error("a-rs")
    [attachment] = root.sidecar("a-rs")["attachments"]
    assert attachment["sha256"] == hashlib.sha256(wav).hexdigest() and attachment["frames"] == 96_000


def test_submit_is_taken_on_its_link(root: DataRoot, daemon: DaemonProcess) -> None:
    """`submit` links a finished file into place: inotify says only "created", the lease says nobody writes it."""
    result = cli("submit", "--inbox", str(root.inbox), "--prompt", "lofi", "--duration", "0.2", "--name", "quick")
    assert result.returncode == 0, result.stderr
    submitted = time.monotonic()
    wait_for(lambda: not (root.inbox / "quick.json").exists(), timeout=WATCH["stable_seconds"] / 3,
             what="the submitted request to be claimed without waiting out stable_seconds")
    assert time.monotonic() - submitted < WATCH["stable_seconds"]
    assert root.wait_ended("quick") == "done"


def test_a_writer_busy_when_the_daemon_starts(data: DataRoot, start_daemon: StartDaemon) -> None:
    """Its mtime is old, and it held still for longer than stable_seconds: the lease still says it is written."""
    body = json.dumps({"prompt": "written across a restart " + "x" * 200, "duration": 0.2}).encode()
    with open(data.inbox / "early.json", "wb") as handle:
        handle.write(body[:50])
        handle.flush()
        old = time.time() - 3600
        os.utime(data.inbox / "early.json", (old, old))
        daemon = start_daemon(watch={"stable_seconds": 0.3, "rescan_interval": 0.5})
        wait_for(lambda: daemon.events("watching") != [], what="the daemon to watch")
        time.sleep(2.0)  # several rescans and stability windows
        assert data.where("early") == "inbox"
        handle.write(body[50:])
    assert data.wait_ended("early") == "done", data.error("early")
    assert daemon.stop() == 0


def test_the_rule() -> None:
    """The rule as a table: closed, linked, written, held still, empty, and what the lease says."""
    def seen(size: int = 10, **flags: bool) -> Sighting:
        return Sighting(size, 1, 1, since=0.0, **flags)

    def rule(s: Sighting, writers: bool | None, now: float = 1.0, age: float = 100.0) -> bool:
        return is_complete(s, now=now, age=age, writers=writers, stable_seconds=2.0, empty_wait=60.0)

    assert rule(seen(closed=True), None) and rule(seen(closed=True), False)
    assert not rule(seen(closed=True), True)  # closed, but reopened for writing
    assert rule(seen(evented=True), False)  # linked into place: no close event, nobody writes it
    assert not rule(seen(evented=True), None)  # ... but without a lease only stability can tell
    assert not rule(seen(written=True, evented=True), None, now=100.0)  # written, no close: wait for it
    assert not rule(seen(), None, now=1.9) and rule(seen(), None, now=2.0)  # two observations 2 s apart
    assert not rule(seen(), True, now=100.0)
    assert not rule(seen(0, closed=True), False, age=59.0) and rule(seen(0, closed=True), False, age=60.0)


def test_being_written_asks_the_kernel(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(b"data")
    assert being_written(path) is False
    with open(path, "ab"):
        assert being_written(path) is True
    writer = subprocess.Popen(["sh", "-c", f"exec 3>>{path}; exec sleep 5"])
    try:
        wait_for(lambda: being_written(path) is True, timeout=5, what="another process's writer")
    finally:
        writer.kill()
        writer.wait()
    assert being_written(path) is False
    assert being_written(tmp_path / "missing") is None
    (tmp_path / "link").symlink_to(path)
    assert being_written(tmp_path / "link") is None  # not followed: only stability decides for links


def test_injected_ebusy_on_claim_is_deferred(data: DataRoot, standins: Path) -> None:
    """A share refusing a rename (EBUSY while another client holds the file) costs a retry, not the daemon."""
    from tests.conftest import daemon_env

    data.drop("busy.json", {"prompt": "x", "duration": 0.2})
    result = cli("run", "--once", "--config", str(config_file(data)),
                 env=daemon_env(MUSICGEN_WATCHER_FAULT="claim:1=errno:EBUSY"))
    assert result.returncode == 0, result.stderr[-2000:]
    events = [json.loads(line) for line in result.stderr.splitlines()]
    deferred = [e for e in events if e["event"] == "claim_deferred"]
    assert len(deferred) == 1 and deferred[0]["errno"] == "EBUSY" and deferred[0]["request_id"] == "busy"
    assert data.where("busy") == "done"


def test_losing_the_inbox_stops_the_daemon(data: DataRoot, start_daemon: StartDaemon) -> None:
    daemon = start_daemon(watch={"rescan_interval": 0.5})
    wait_for(lambda: daemon.events("watching") != [], what="the daemon to watch")
    shutil.rmtree(data.inbox)
    assert daemon.proc.wait(timeout=30) == 1
    assert "folder_unusable" in daemon.lines()[-1] or "is gone" in "\n".join(daemon.lines()[-5:])


def test_a_preset_still_being_written_is_waited_for(data: DataRoot, start_daemon: StartDaemon) -> None:
    folder = data.inbox / "jingles"
    folder.mkdir()
    preset = json.dumps({"duration": 0.3, "format": "flac"}).encode()
    with open(folder / "defaults.json", "wb") as handle:
        handle.write(preset[:10])  # half a preset: read now, it would fail every request below it
        handle.flush()
        daemon = start_daemon(watch={"stable_seconds": 0.3})
        (folder / "short.txt").write_text("a short jingle")
        wait_for(lambda: daemon.events("watching") != [], what="the daemon to watch")
        time.sleep(2.0)  # several looks at the request, each finding its preset still being written
        assert data.listing("failed") == [] and (folder / "short.txt").exists()
        handle.write(preset[10:])
    wait_for(lambda: (data.done / "jingles" / "short.txt").exists() or (data.failed / "jingles").exists(),
             what="the request to end")
    assert (data.done / "jingles" / "short.txt").exists(), data.listing("failed")
    sidecar = json.loads((data.outbox / "jingles" / "short.json").read_text())
    assert sidecar["presets"] == ["jingles/defaults.json"] and sidecar["format"] == "flac"
    assert daemon.stop() == 0


def test_retries_of_two_requests_with_one_name(data: DataRoot, start_daemon: StartDaemon) -> None:
    """a/x and b/x both wait for a model that cannot be fetched: both are held, both go back at a stop."""
    for folder in ("a", "b"):
        (data.inbox / folder).mkdir()
        (data.inbox / folder / "x.json").write_text(json.dumps({"prompt": "x", "model": "facebook/musicgen-medium"}))
    daemon = start_daemon(engine={"preload": False})
    wait_for(lambda: len(daemon.events("retry_later")) >= 2, timeout=90, what="both held")
    assert daemon.stop() == 0
    assert (data.inbox / "a" / "x.json").exists() and (data.inbox / "b" / "x.json").exists()
