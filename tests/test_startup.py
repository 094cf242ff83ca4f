"""Start-up: the daemon serves the folders while torch and AudioCraft import and the model preloads."""

from __future__ import annotations

import json
import os
import time

import pytest

from tests.conftest import DataRoot, InProcess, RunOnce
from watcher.engine import Engine
from watcher.errors import FatalError
from watcher.models import ResolvedModel


def test_invalid_request_fails_while_the_model_is_still_loading(data: DataRoot, run_once: RunOnce) -> None:
    broken = data.drop("broken.json", "{not json")
    data.drop("fine.json", {"prompt": "lofi beat", "duration": 0.1})
    old = time.time() - 60
    os.utime(broken, (old, old))  # the oldest: first in line
    result = run_once(engine={"preload": True})
    events = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    order = [(e["event"], e.get("request_id")) for e in events if e["event"] in ("moved", "model_loaded")]
    assert order == [("moved", "broken"), ("model_loaded", None), ("moved", "fine")]
    assert data.where("broken") == "failed" and data.error("broken")["error"]["code"] == "invalid_json"
    assert data.where("fine") == "done" and data.sidecar("fine")["timings"]["load_seconds"] == 0


class BrokenEngine(Engine):
    """An install whose engine cannot start (a broken CUDA driver, say): loading raises."""

    def load(self, model: ResolvedModel) -> float:
        raise RuntimeError("CUDA driver initialization failed")


def test_an_engine_that_cannot_start_stops_the_daemon_and_leaves_the_request(data: DataRoot,
                                                                              in_process: InProcess) -> None:
    request = data.drop("r.json", {"prompt": "lofi beat", "duration": 0.1})
    before = request.read_bytes()
    with pytest.raises(FatalError, match="The engine could not start: RuntimeError: CUDA driver"):
        in_process(BrokenEngine("cpu"), engine={"preload": True})
    assert data.where("r") == "inbox"
    assert (data.inbox / "r.json").read_bytes() == before
