"""Pickup latency: from a finished write in the inbox to the daemon's `claimed` event.

One long-running daemon per scenario, model preloaded, tiny stand-in. Requests of 0.1 s of
audio are dropped one at a time, each after the previous one was moved to done/ plus a settle
time and a random 0-1 s (so drops do not lock onto the polling scans), alternating two writers:

- rename: write a hidden temporary (`.name.part`), then rename it into the inbox;
- direct: open `name.json` in the inbox, write, close.

Scenarios: inotify (settle 1 s), inotify back-to-back (settle 0, no random wait: the next request
is written as soon as the previous one is in done/), and polling with the default `poll_interval` 1 s and
`stable_seconds` 2 s (settle 1 s).

Latency = the `claimed` event's timestamp minus `time.time()` taken right after the rename or
the close (both wall clock, same machine). Target: p50 <= 100 ms with inotify.
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path
from typing import Any

import benchlib as bl

WRITERS = ("rename", "direct")


def measure_mode(env: dict[str, str], work: Path, name: str, mode: str, n: int, settle: float,
                 watch_extra: dict[str, Any]) -> dict[str, Any]:
    base = bl.fresh_dir(work / name)
    data = bl.DataRoot(base / "data")
    config = bl.write_config(base / "config.toml", data, watch={"mode": mode, **watch_extra},
                             engine={"device": "cpu", "preload": True, "max_batch": 1})
    daemon = bl.DaemonProcess(config, env, base / "daemon.log")
    samples: dict[str, list[float]] = {w: [] for w in WRITERS}
    jitter = random.Random(7)
    discovered: dict[str, list[float]] = {w: [] for w in WRITERS}
    try:
        watching = daemon.wait_named("watching", 120)
        daemon.wait_named("model_loaded", 120)
        time.sleep(1.0)
        for i in range(n * len(WRITERS)):
            writer = WRITERS[i % len(WRITERS)]
            rid = f"{writer}{i:03d}"
            fields = {"prompt": bl.PROMPTS[i % len(bl.PROMPTS)], "duration": 0.1, "seed": i}
            dropped = (data.drop_renamed if writer == "rename" else data.drop_direct)(f"{rid}.json", fields)
            claimed = daemon.wait_named("claimed", 60, rid)
            daemon.wait_named("moved", 120, rid)
            samples[writer].append(bl.event_time(claimed) - dropped)
            seen = [e for e in daemon.events if e.get("event") == "discovered" and e.get("request_id") == rid]
            if seen:
                discovered[writer].append(bl.event_time(seen[0]) - dropped)
            if settle:  # a random phase, so drops do not lock onto the polling scans
                time.sleep(settle + jitter.uniform(0, 1.0))
        daemon.stop()
    finally:
        daemon.kill()
    return {"mode": mode, "settle": settle, "actual_mode": watching.get("mode"), "watch": watch_extra,
            "claimed": {w: samples[w] for w in WRITERS},
            "discovered": {w: discovered[w] for w in WRITERS},
            "summary": {w: bl.summary(samples[w]) for w in WRITERS}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 requests per writer and mode")
    parser.add_argument("--requests", type=int, help="requests per writer and mode (default 20; --quick 5)")
    parser.add_argument("--settle", type=float, default=1.0,
                        help="seconds to wait after each done request, plus a random 0-1 s")
    parser.add_argument("--poll-interval", type=float, default=1.0, help="watch.poll_interval for polling")
    parser.add_argument("--stable-seconds", type=float, default=2.0, help="watch.stable_seconds (both modes)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the daemon")
    args = parser.parse_args(argv)
    n = args.requests or (5 if args.quick else 20)

    _, env, work = bl.prepare("pickup", full_size=False, threads=args.threads)
    info = bl.base_info()
    phases: dict[str, dict[str, Any]] = {}
    modes: dict[str, dict[str, Any]] = {}
    scenarios: list[tuple[str, str, float, dict[str, Any]]] = [
        ("inotify", "inotify", args.settle, {"stable_seconds": args.stable_seconds}),
        ("inotify back-to-back", "inotify", 0.0, {"stable_seconds": args.stable_seconds}),
        ("polling", "polling", args.settle,
         {"poll_interval": args.poll_interval, "stable_seconds": args.stable_seconds}),
    ]
    for name, mode, settle, extra in scenarios:
        watch = bl.CpuWatch()
        modes[name] = measure_mode(env, work, name.replace(" ", "-"), mode, n, settle, extra)
        phases[name] = watch.stop()

    rows = []
    for mode, res in modes.items():
        settings = ", ".join(f"{k} {v:g}" for k, v in {**res["watch"], "settle": res["settle"]}.items())
        for writer in WRITERS:
            s = res["summary"][writer]
            d = bl.summary(res["discovered"][writer])
            ms = [f"{v * 1000:.1f}" for v in (s["p50"], s["p95"], s["min"], s["max"], d["p50"])]
            rows.append([f"{mode} ({settings})", writer, s["n"], *ms])
    inotify_p50 = max(modes["inotify"]["summary"][w]["p50"] for w in WRITERS)
    polling_p50 = max(modes["polling"]["summary"][w]["p50"] for w in WRITERS)
    result = {**info, "benchmark": "pickup", "requests_per_writer": n, "phases": phases, "modes": modes,
              "ratio_polling_over_inotify_p50": polling_p50 / inotify_p50, "target": "inotify p50 <= 100 ms"}
    path = bl.save_result("pickup", result)
    print(bl.header_block(f"Pickup latency (tiny stand-in, 0.1 s requests, {n} per writer and mode)", info, phases))
    print()
    print(bl.table(["watch mode", "writer", "n", "p50 drop→claimed (ms)", "p95 (ms)", "min (ms)", "max (ms)",
                    "p50 drop→discovered (ms)"], rows))
    print()
    verdict = "met" if inotify_p50 <= 0.1 else "MISSED"
    back = max(modes["inotify back-to-back"]["summary"][w]["p50"] for w in WRITERS)
    print(f"inotify worst-writer p50 = {inotify_p50 * 1000:.1f} ms (target <= 100 ms: {verdict}); back-to-back "
          f"{back * 1000:.1f} ms; polling / inotify p50 = {polling_p50 / inotify_p50:.0f}x.")
    print(f"\nJSON: {path.relative_to(bl.REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
