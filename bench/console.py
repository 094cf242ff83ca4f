"""The web console with 10,000 done results: how fast the page and the API answer.

A data root is filled with N finished requests (a sidecar and a small WAV each in the outbox, the
request in done/), the daemon is started on it with the console on (tiny stand-ins, no preload), and
each call is timed over real HTTP, side by side in one run: the page, the first page of done
results, a later page by cursor, one request by id, the status, the audio of one result. Calls start
once the daemon is ready (its engine imported: until then the import holds the interpreter). The
first call of each kind is reported apart: the console reads the folders once as it starts; later
calls read again only a directory that changed (target: every call, the slowest included, under
200 ms with 10,000 done). Then the idle daemon's CPU is measured without and then with a client
reading `/api/events`, as an open browser tab does: the console's own cost beside generation.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import time
import urllib.request
from typing import Any

import benchlib as bl


def fill(data: bl.DataRoot, count: int) -> None:
    """`count` finished requests, oldest first, with sidecars as the daemon writes them."""
    data.outbox.mkdir(parents=True, exist_ok=True)
    data.done.mkdir(parents=True, exist_ok=True)
    wav = bl.REPO / "bench" / "results" / "cache" / "tiny.wav"
    if not wav.exists():
        import numpy as np
        import soundfile as sf

        sf.write(str(wav), np.zeros(3200, dtype=np.float32), 32000)
    audio = wav.read_bytes()
    base = time.time() - count
    for n in range(count):
        name = f"r{n:05d}"
        request = {"prompt": f"piece {n}", "duration": 0.1}
        sidecar = {"status": "done", "request_id": name, "request": request, "model": "facebook/musicgen-small",
                   "seed": n, "audio": f"{name}.wav", "output": name, "format": "wav", "duration_seconds": 0.1,
                   "timings": {"generate_seconds": 0.1, "load_seconds": 0.0, "finished_at": "2026-11-27"}}
        for path, content in ((data.outbox / f"{name}.wav", audio),
                              (data.outbox / f"{name}.json", json.dumps(sidecar).encode()),
                              (data.done / f"{name}.json", json.dumps(request).encode())):
            path.write_bytes(content)
            os.utime(path, (base + n, base + n))


def timed(url: str) -> tuple[float, bytes]:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=60) as response:
        body: bytes = response.read()
    return (time.perf_counter() - started) * 1000, body


def measure(base: str, count: int, repeats: int) -> dict[str, dict[str, Any]]:
    first_page = json.loads(timed(f"{base}/api/requests?state=done&limit=20")[1])
    cursor = first_page["next_cursor"]
    one = f"r{count // 2:05d}"
    calls = {"page /": "/", "done, first page": "/api/requests?state=done&limit=20",
             "done, a later page": f"/api/requests?state=done&limit=20&cursor={cursor}",
             "one request by id": f"/api/requests/{one}", "status": "/api/status",
             "audio of one result": f"/api/requests/{one}/audio"}
    results = {}
    for label, path in calls.items():
        samples = [timed(base + path)[0] for _ in range(repeats)]
        results[label] = bl.summary(samples)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--done", type=int, default=10_000, help="finished requests in the folders (default 10,000)")
    parser.add_argument("--repeats", type=int, default=30, help="calls of each kind (default 30)")
    parser.add_argument("--idle-seconds", type=float, default=20,
                        help="seconds to measure the idle daemon's CPU, without and then with a listener (default 20)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 500 done, 5 calls each, 5 s of CPU each")
    args = parser.parse_args(argv)
    count, repeats = (500, 5) if args.quick else (args.done, args.repeats)
    if args.quick:
        args.idle_seconds = 5
    _, env, work = bl.prepare("console", full_size=False, threads=1)
    data = bl.DataRoot(work / "data")
    fill(data, count)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = bl.write_config(work / "config.toml", data, engine={"device": "cpu", "preload": False},
                             web={"enabled": True, "port": port})
    daemon = bl.DaemonProcess(config, env, work / "daemon.log")
    watch = bl.CpuWatch()
    try:
        daemon.wait_named("console", 120)
        daemon.wait_named("engine_ready", 120)
        base = f"http://127.0.0.1:{port}"
        cold = {"page /": timed(base + "/")[0], "done, first page": timed(f"{base}/api/requests?state=done")[0]}
        results = measure(base, count, repeats)
        idle = bl.cpu_share(daemon.pid, args.idle_seconds)
        bl.listen(f"{base}/api/events")
        listening = bl.cpu_share(daemon.pid, args.idle_seconds)
        daemon.stop()
    finally:
        daemon.kill()
    phases = {"console": watch.stop()}
    info = bl.base_info()
    path = bl.save_result("console", {**info, "done": count, "repeats": repeats, "cold_ms": cold, "ms": results,
                                      "idle_core_share": {"no listener": idle, "a listener": listening},
                                      "phases": phases, "target": "every paged call < 200 ms"})
    print(bl.header_block(f"Web console with {count:,} done results ({repeats} calls each, over HTTP)", info,
                          phases))
    print()
    print(bl.table(["call", "first (ms)", "p50 (ms)", "p95 (ms)", "max (ms)"],
                   [[label, cold.get(label, ""), r["p50"], r["p95"], r["max"]] for label, r in results.items()]))
    worst = max(max(r["max"] for r in results.values()), *cold.values())
    print(f"\nSlowest: {worst:.1f} ms (target < 200 ms with 10,000 done: {'met' if worst < 200 else 'MISSED'}).")
    print(f"The idle daemon used {idle:.1%} of one core without a listener, {listening:.1%} with a client "
          f"reading /api/events ({args.idle_seconds:g} s each, {count:,} done): the console's own cost while a "
          f"browser tab is open is {max(0.0, listening - idle):.1%} of one core.")
    print(f"\nJSON: {path.relative_to(bl.REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
