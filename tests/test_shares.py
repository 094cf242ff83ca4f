"""Over a real Samba share: the daemon takes nothing before its writer is done with it.

Debian's smbd serves the daemon's inbox on 127.0.0.1 (the daemon runs on the host that serves the
share, as the README advises) and smbprotocol uploads the way NAS clients do: slowly, in chunks, with
pauses longer than `stable_seconds`, empty first then filled, stalled longer than a rescan, or as a
`.part` renamed in. Each request must end in done/ with the whole attachment: the sidecar's frames and
sha256 are those of the uploaded file.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import DaemonProcess, DataRoot, running_daemon, wav_bytes
from tests.samba import SambaShare, samba_available

pytestmark = pytest.mark.skipif(not samba_available(), reason="needs Debian's samba (.ci/run installs it)")

PAUSE = 0.8  # longer than stable_seconds below: a writer that pauses is not done
WATCH = {"stable_seconds": 0.5, "rescan_interval": 1.0, "poll_interval": 0.2, "attachment_wait": 60}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> DataRoot:
    return DataRoot(tmp_path_factory.mktemp("share") / "data")


@pytest.fixture(scope="module")
def share(root: DataRoot) -> Iterator[SambaShare]:
    with SambaShare.serve(root.inbox) as served:
        yield served


@pytest.fixture(scope="module")
def daemon(standins: Path, root: DataRoot, share: SambaShare) -> Iterator[DaemonProcess]:
    with running_daemon(root, watch=WATCH) as running:
        yield running
    assert running.events("failed") == []


def upload_json(share: SambaShare, name: str, fields: dict[str, Any]) -> None:
    share.upload(name, json.dumps(fields).encode())


def assert_whole(root: DataRoot, request_id: str, uploaded: bytes) -> None:
    """Ended in done/, and the sidecar records the attachment as uploaded: every frame, the same bytes."""
    assert root.wait_ended(request_id) == "done", root.error(request_id)
    [attachment] = root.sidecar(request_id)["attachments"]
    assert attachment["sha256"] == hashlib.sha256(uploaded).hexdigest()
    assert attachment["bytes"] == len(uploaded)
    assert attachment["frames"] == (len(uploaded) - 44) // 2  # mono PCM16 after a 44-byte header


def continuation(name: str, attachment: str) -> dict[str, Any]:
    return {"prompt": name, "continuation": attachment, "duration": 3}


def test_melody_uploaded_in_chunks_after_its_request(root: DataRoot, share: SambaShare,
                                                     daemon: DaemonProcess) -> None:
    hum = wav_bytes(2.5)
    upload_json(share, "trailer.json", {"prompt": "trailer", "model": "facebook/musicgen-melody",
                                        "melody": "hum.wav", "duration": 1})
    share.upload("hum.wav", hum, chunk=len(hum) // 5, pause=PAUSE)
    assert_whole(root, "trailer", hum)


def test_melody_first_then_its_request(root: DataRoot, share: SambaShare, daemon: DaemonProcess) -> None:
    clip = wav_bytes(2.0)
    uploading = threading.Thread(target=share.upload, args=("first.wav", clip), kwargs={
        "chunk": len(clip) // 5, "pause": PAUSE})
    uploading.start()  # the attachment was there first, and is still arriving when its request lands
    upload_json(share, "second.json", continuation("second", "first.wav"))
    uploading.join()
    assert_whole(root, "second", clip)


def test_created_empty_then_filled(root: DataRoot, share: SambaShare, daemon: DaemonProcess) -> None:
    clip = wav_bytes(2.0)
    upload_json(share, "copied.json", continuation("copied", "copied.wav"))
    share.upload("copied.wav", clip, chunk=len(clip) // 4, pause=PAUSE, create_empty_first=True)  # as cp does
    assert_whole(root, "copied", clip)


def test_a_request_upload_that_stalls_longer_than_a_rescan(root: DataRoot, share: SambaShare,
                                                           daemon: DaemonProcess) -> None:
    body = json.dumps({"prompt": "stalled " + "x" * 400, "duration": 0.5}).encode()
    with share.open_for_write("stalled.json") as handle:
        handle.write(body[:100])
        threading.Event().wait(3 * WATCH["rescan_interval"])
        assert root.where("stalled") == "inbox"
        handle.write(body[100:])
    assert root.wait_ended("stalled") == "done", root.error("stalled")


def test_a_part_file_renamed_in(root: DataRoot, share: SambaShare, daemon: DaemonProcess) -> None:
    clip = wav_bytes(2.0)
    share.upload("renamed.wav.part", clip, chunk=len(clip) // 3, pause=PAUSE)
    share.rename("renamed.wav.part", "renamed.wav")
    share.upload("renamed.json.part", json.dumps(continuation("renamed", "renamed.wav")).encode())
    share.rename("renamed.json.part", "renamed.json")
    assert_whole(root, "renamed", clip)
