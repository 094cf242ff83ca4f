"""Notifications against a real HTTP server on 127.0.0.1: retried, signed, never blocking, never lost."""

from __future__ import annotations

import hashlib
import hmac
import json
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conftest import DataRoot, StartDaemon, wait_for

SECRET = "a-shared-secret-for-signing"


@dataclass
class Receiver:
    """What the server got: each request's path, headers and JSON body; `fail_first` answers 500 that many times
    per request id; `hang` makes it accept and never answer."""

    url: str
    received: list[dict[str, Any]] = field(default_factory=list)
    attempts: dict[str, int] = field(default_factory=dict)
    fail_first: int = 0
    hang: bool = False

    def accepted(self, path: str = "/hook") -> list[dict[str, Any]]:
        return [r for r in self.received if r["status"] == 200 and r["path"] == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver("")
    stop = threading.Event()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if state.hang:
                stop.wait(30)
                return
            value = json.loads(body)
            key = str(value.get("request_id", value.get("title")))
            state.attempts[key] = state.attempts.get(key, 0) + 1
            status = 500 if state.attempts[key] <= state.fail_first else 200
            state.received.append({"path": self.path, "headers": dict(self.headers), "raw": body, "json": value,
                                   "status": status})
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield state
    stop.set()
    server.shutdown()
    server.server_close()
    thread.join()


def test_webhooks_are_retried_signed_and_carry_the_sidecar(data: DataRoot, start_daemon: StartDaemon,
                                                           receiver: Receiver) -> None:
    receiver.fail_first = 2
    daemon = start_daemon(notify={"urls": [f"{receiver.url}/hook"], "secret": SECRET, "backoff": 0.2,
                                  "apprise": [f"json://{receiver.url.removeprefix('http://')}/apprise"]})
    data.drop("ok.json", {"prompt": "x", "duration": 0.2, "metadata": {"job": 7}})
    data.drop("bad.json", {"prompt": "x", "durration": 1, "metadata": {"job": 8}})
    wait_for(lambda: len(receiver.accepted()) == 2 and len(receiver.accepted("/apprise")) == 2, timeout=60,
             what="both webhooks and both Apprise messages accepted")
    assert daemon.stop() == 0
    by_id = {r["json"]["request_id"]: r for r in receiver.accepted()}
    assert by_id["ok"]["json"] == data.sidecar("ok") and by_id["ok"]["json"]["metadata"] == {"job": 7}
    assert by_id["bad"]["json"] == data.error("bad") and by_id["bad"]["json"]["metadata"] == {"job": 8}
    assert receiver.attempts["ok"] == receiver.attempts["bad"] == 3  # failed twice, then accepted
    for hit in by_id.values():  # a receiver checks the signature as it would a GitHub webhook's
        expected = "sha256=" + hmac.new(SECRET.encode(), hit["raw"], hashlib.sha256).hexdigest()
        assert hmac.compare_digest(hit["headers"]["X-Musicgen-Signature"], expected)
        assert hit["headers"]["X-Musicgen-Event"] == hit["json"]["status"]
    titles = sorted(r["json"]["title"] for r in receiver.accepted("/apprise"))
    assert titles == ["musicgen-watcher: bad failed", "musicgen-watcher: ok is done"]
    assert len(daemon.events("notified")) == 4 and len(daemon.events("notify_failed")) == 8  # 2 per delivery
    assert not list((data.processing / "test" / ".notify").glob("*.json"))


def test_a_receiver_that_hangs_does_not_slow_the_queue(data: DataRoot, start_daemon: StartDaemon,
                                                       receiver: Receiver) -> None:
    receiver.hang = True
    daemon = start_daemon(notify={"urls": [f"{receiver.url}/hook"], "timeout": 3, "retries": 1, "backoff": 0.2})
    for i in range(3):
        data.drop(f"r{i}.json", {"prompt": "x", "duration": 0.2})
    for i in range(3):
        assert data.wait_ended(f"r{i}") == "done"
    wait_for(lambda: len(daemon.events("notify_gave_up")) >= 1, timeout=60, what="the first delivery given up")
    moved = [e["timestamp"] for e in daemon.events("moved")]
    gave_up = daemon.events("notify_gave_up")[0]["timestamp"]
    assert len(moved) == 3 and max(moved) < gave_up  # every request was done while the first try still hung
    assert daemon.stop() == 0


def test_a_delivery_pending_at_a_kill_is_sent_after_the_restart(data: DataRoot, start_daemon: StartDaemon,
                                                                receiver: Receiver) -> None:
    receiver.fail_first = 1000
    notify = {"urls": [f"{receiver.url}/hook"], "backoff": 0.5}
    daemon = start_daemon(notify=notify)
    data.drop("kept.json", {"prompt": "x", "duration": 0.2})
    wait_for(lambda: len(daemon.events("notify_failed")) >= 1, what="a failed try")
    pending = list((data.processing / "test" / ".notify").glob("*.json"))
    assert len(pending) == 1 and pending[0].name.startswith("done-kept-") and pending[0].name.endswith("-0.json")
    daemon.stop(signal.SIGKILL)
    receiver.fail_first = 0
    receiver.attempts.clear()
    restarted = start_daemon(notify=notify)
    wait_for(lambda: len(receiver.accepted()) == 1, timeout=60, what="the delivery after the restart")
    assert receiver.accepted()[0]["json"] == data.sidecar("kept")
    assert restarted.stop() == 0
    assert not list((data.processing / "test" / ".notify").glob("*.json"))
