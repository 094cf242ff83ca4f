"""Operations: health, metrics, hooks, selftest, one daemon per id, residency and idle unload."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

from tests.conftest import DataRoot, RunOnce, StartDaemon, cli, config_file, wait_for


def metric(text: str, name: str) -> float:
    """The value of one sample line, e.g. `musicgen_watcher_requests_total{error_code="",outcome="done"}`."""
    for line in text.splitlines():
        if line.startswith(name + " ") or (line.startswith(name + "{") and line.split(" ")[0] == name):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics:\n{text}")


def test_health_metrics_and_hooks_on_a_running_daemon(data: DataRoot, start_daemon: StartDaemon,
                                                      tmp_path: Path) -> None:
    config = config_file(data)
    assert cli("health", "--config", str(config)).returncode == 1  # no daemon yet
    hook_log = tmp_path / "hooks.log"
    hook = f"{sys.executable} -c \"import os; open({str(hook_log)!r}, 'a').write(" \
           f"os.environ['MUSICGEN_WATCHER_STATUS'] + ' ' + os.environ['MUSICGEN_WATCHER_REQUEST_ID'] + ' ' + " \
           f"os.environ.get('MUSICGEN_WATCHER_AUDIO', os.environ.get('MUSICGEN_WATCHER_ERROR', '')) + '\\\\n')\""
    textfile = tmp_path / "musicgen.prom"
    daemon = start_daemon(metrics={"port": 19417, "address": "127.0.0.1", "textfile": str(textfile)},
                          hooks={"on_done": hook, "on_failed": "/nonexistent/hook"})
    data.drop("ok.json", {"prompt": "x", "duration": 0.4})
    data.drop("bad.json", {"prompt": "x", "durration": 1})
    wait_for(lambda: (data.done / "ok.json").exists() and (data.failed / "bad.json").exists(), what="both ends")
    wait_for(lambda: hook_log.exists(), what="the on_done hook")
    healthy = cli("health", "--config", str(config))
    assert healthy.returncode == 0 and healthy.stdout.startswith("healthy"), healthy.stdout
    served = urllib.request.urlopen("http://127.0.0.1:19417/metrics", timeout=10).read().decode()
    assert metric(served, 'musicgen_watcher_requests_total{error_code="",outcome="done"}') == 1
    assert metric(served, 'musicgen_watcher_requests_total{error_code="invalid_request",outcome="failed"}') == 1
    assert metric(served, "musicgen_watcher_audio_seconds_total") == 0.4
    assert metric(served, 'musicgen_watcher_model_resident{model="facebook/musicgen-small"}') == 1
    assert metric(served, 'musicgen_watcher_model_loads_total{model="facebook/musicgen-small"}') == 1
    assert metric(served, "musicgen_watcher_batch_size_count") == 1
    assert metric(served, "musicgen_watcher_requests_waiting") == 0
    assert metric(served, "musicgen_watcher_requests_running") == 0
    info = 'musicgen_watcher_info{daemon="test",device="cpu",model="facebook/musicgen-small",version="0.1.0"}'
    assert metric(served, info) == 1
    assert metric(served, "process_resident_memory_bytes") > 0 and "python_info{" in served
    done = 'musicgen_watcher_requests_total{error_code="",outcome="done"} 1.0'
    # The textfile is rewritten every heartbeat: wait for one written after the request reached done/.
    wait_for(lambda: textfile.exists() and done in textfile.read_text().splitlines(), what="the textfile")
    assert daemon.stop() == 0
    assert hook_log.read_text() == f"done ok {data.outbox / 'ok.wav'}\n"
    events = daemon.events()
    assert any(e["event"] == "hook_failed" and e["request_id"] == "bad" for e in events)  # logged, not fatal
    (data.processing / "test" / ".heartbeat").unlink()
    assert "not running" in cli("health", "--config", str(config)).stdout


def test_one_daemon_per_id(data: DataRoot, start_daemon: StartDaemon) -> None:
    first = start_daemon()
    wait_for(lambda: (data.processing / "test" / ".heartbeat").exists(), what="first daemon")
    second = cli("run", "--config", str(config_file(data)))
    assert second.returncode == 1
    assert "another daemon with id 'test' is running" in second.stderr
    assert first.stop() == 0


def test_one_daemon_per_id_across_hosts(data: DataRoot, standins: Path) -> None:
    """A share's locks may not reach another host: the owner record beside a fresh heartbeat does."""
    claim_dir = data.processing / "test"
    claim_dir.mkdir(parents=True)
    owner = {"host": "nas-other-host", "pid": 4242, "boot_id": "another-boot", "started_at": "2026-11-27T00:00:00Z"}
    (claim_dir / ".owner").write_text(json.dumps(owner))
    (claim_dir / ".heartbeat").write_text(json.dumps({"daemon": "test", **owner}))
    refused = cli("run", "--once", "--config", str(config_file(data)))
    assert refused.returncode == 1
    assert "error: already_running: another daemon with id 'test'" in refused.stderr
    assert "pid 4242 on host 'nas-other-host'" in refused.stderr

    stale = time.time() - 3600  # that host stopped beating an hour ago: take over
    os.utime(claim_dir / ".heartbeat", (stale, stale))
    data.drop("r.json", {"prompt": "x", "duration": 0.2})
    taken = cli("run", "--once", "--config", str(config_file(data)))
    assert taken.returncode == 0, taken.stderr[-2000:]
    [took_over] = [json.loads(line) for line in taken.stderr.splitlines() if '"took_over"' in line]
    assert took_over["previous"]["host"] == "nas-other-host"
    assert data.where("r") == "done"
    assert not (claim_dir / ".owner").exists()  # given up at a clean stop


def test_resident_model_is_preferred_and_unloaded_when_idle(data: DataRoot, start_daemon: StartDaemon) -> None:
    for i in range(6):
        data.drop(f"m{i}.json", {"prompt": "x", "duration": 0.1, "priority": 1,
                                 "model": "facebook/musicgen-stereo-small" if i % 2 else "facebook/musicgen-small"})
    daemon = start_daemon(engine={"max_batch": 1, "idle_unload": 1})
    wait_for(lambda: len(data.listing("done")) == 6, what="all six")
    wait_for(lambda: False if daemon.proc.poll() else _unloaded(data), timeout=30, what="idle unload")
    assert daemon.stop() == 0
    events = daemon.events()
    loads = [json.loads((data.outbox / f"m{i}.json").read_text())["timings"]["load_seconds"] > 0 for i in range(6)]
    assert sum(loads) == 1  # preloaded small, then one swap to stereo: not a reload per request
    assert any(e["event"] == "model_unloaded" for e in events)


def _unloaded(data: DataRoot) -> bool:
    beat = json.loads((data.processing / "test" / ".heartbeat").read_text())
    return beat["model"] is None and beat["state"] == "idle"  # not a swap between two models


def test_selftest(standins: Path) -> None:
    result = cli("selftest")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)  # off a terminal, one JSON object
    assert report["selftest"] == "passed" and report["device"] == "cpu" and report["generate_seconds"] > 0
    assert all(json.loads(line) for line in result.stderr.splitlines())


def test_every_log_line_is_json_and_hooks_never_block(data: DataRoot, run_once: RunOnce, tmp_path: Path) -> None:
    """A run that loads two models, fails a request, warns, and has a hook that sleeps 10 s after each success."""
    data.drop("first.json", {"prompt": "x", "duration": 0.2, "priority": 1})
    data.drop("aliased.json", {"prompt": "x", "duration": 0.2, "model": "facebook/musicgen-small-stereo"})
    data.drop("broken.json", "{not json")
    result = run_once(hooks={"on_done": f"{sys.executable} -c 'import time; time.sleep(10)'", "timeout": 30},
                      engine={"device": "auto"})  # no GPU here: the daemon says so
    events = [json.loads(line) for line in result.stderr.splitlines()]  # every line, or this raises
    assert all(isinstance(e, dict) and "event" in e and "level" in e and "timestamp" in e for e in events)
    names = {e["event"] for e in events}
    assert {"no_gpu", "model_alias", "failed", "model_loaded"} <= names
    assert any(e.get("logger") == "py.warnings" and e["level"] == "warning" for e in events)  # a library's warning
    moved = {e["request_id"]: datetime.fromisoformat(e["timestamp"]) for e in events if e["event"] == "moved"}
    assert (moved["aliased"] - moved["first"]).total_seconds() < 10  # first's hook was still sleeping
    assert data.where("first") == data.where("aliased") == "done"


def test_a_device_that_is_not_there_is_a_config_error(data: DataRoot, standins: Path) -> None:
    config = config_file(data, engine={"device": "cuda"})
    result = cli("--config", str(config), "run", "--once")  # the global option before the command
    assert result.returncode == 2
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert line.startswith("error: invalid_config: engine.device: cuda was asked for, but torch sees no CUDA GPU")


def folder_times(data: DataRoot) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (data.root, *data.root.rglob("*")) if p.is_dir()}


def test_health_stays_true_while_loading_and_not_while_stuck(data: DataRoot, start_daemon: StartDaemon) -> None:
    config = config_file(data)
    data.processing.mkdir(parents=True)
    before = folder_times(data)
    assert cli("health", "--config", str(config)).returncode == 1
    assert folder_times(data) == before  # health wrote nothing, not even a probe file it removed again
    daemon = start_daemon({"MUSICGEN_WATCHER_FAULT": "model_load=sleep:8,mid_generation=sleep:8"},
                          engine={"preload": False}, daemon={"heartbeat_interval": 0.3, "heartbeat_timeout": 2})
    data.drop("slow.json", {"prompt": "x", "duration": 0.5})
    wait_for(lambda: daemon.events("model_loading") != [], what="the load to start")
    loading = time.monotonic()
    while time.monotonic() - loading < 5:  # an eight-second load: well past the two-second heartbeat timeout
        health = cli("health", "--config", str(config))
        assert health.returncode == 0 and ", loading, device cpu" in health.stdout, health.stdout
    wait_for(lambda: cli("health", "--config", str(config)).returncode == 1, timeout=60,
             what="health to notice the loop stuck mid-generation")
    assert data.wait_ended("slow") == "done"
    wait_for(lambda: cli("health", "--config", str(config)).returncode == 0, timeout=30, what="health again")
    assert daemon.stop() == 0
