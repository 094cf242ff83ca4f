"""Batching: throughput of 8 compatible queued requests with engine.max_batch 1 vs 4.

Eight requests with the same parameters and no seed (so the daemon may batch them) are written
into an empty inbox and dated back, as a backlog would be; then `python -m watcher run --once`
drains it, once with `engine.max_batch = 1` and once with `4`, one after the other in this run.
Each is timed from the first `claimed` event, or the `model_loaded` event if that came later, to the
last `moved` event, which leaves out process start-up and the model preload (the daemon claims its
first batch while the engine is still starting, so it may claim before the preload is done).

Ratio = time(max_batch=1) / time(max_batch=4) (target >= 2 on this CPU).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import benchlib as bl


def run_once(env: dict[str, str], work: Path, max_batch: int, requests: list[tuple[str, dict[str, Any]]],
             timeout: float) -> dict[str, Any]:
    base = bl.fresh_dir(work / f"max_batch_{max_batch}")
    data = bl.DataRoot(base / "data")
    data.prefill(requests)
    config = bl.write_config(base / "config.toml", data, watch={"mode": "inotify"},
                             engine={"device": "cpu", "preload": True, "max_batch": max_batch})
    daemon = bl.DaemonProcess(config, env, base / "daemon.log", once=True)
    try:
        code = daemon.wait(timeout)
    finally:
        daemon.kill()
    claimed = [bl.event_time(e) for e in daemon.named("claimed")]
    moved = [bl.event_time(e) for e in daemon.named("moved")]
    sidecars = data.sidecars()
    batches = sorted({(s["timings"]["started_at"], s["batch_size"]) for s in sidecars})
    done = len(list(data.done.glob("*.json")))
    if code != 0 or done != len(requests):
        raise RuntimeError(f"max_batch={max_batch}: exit {code}, {done}/{len(requests)} done; log {daemon.log_path}")
    loaded = daemon.named("model_loaded")
    wall = max(moved) - max([min(claimed), *(bl.event_time(e) for e in loaded[:1])])
    return {"max_batch": max_batch, "exit_code": code, "done": done, "seconds": wall,
            "batch_sizes": [size for _, size in batches],
            "generate_seconds": sum({s["timings"]["started_at"]: s["timings"]["generate_seconds"]
                                     for s in sidecars}.values()),
            "loads_during_requests": len({s["timings"]["started_at"] for s in sidecars
                                          if s["timings"]["load_seconds"] > 0}),
            "preload_seconds": loaded[0].get("seconds") if loaded else None,
            "process_seconds": max(moved) - daemon.started_wall}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    bl.add_size_options(parser, "smoke run: tiny stand-in, 8 x 2 s")
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--duration", type=float, help="seconds of audio per request (default 5; --quick 2)")
    parser.add_argument("--batch", type=int, default=4, help="the batched max_batch to compare with 1")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: cores full-size, 1 tiny)")
    bl.add_load_options(parser)
    return parser.parse_args(argv)


def report_rows(runs: list[dict[str, Any]], requests: int, duration: float) -> list[list[Any]]:
    """One row per max_batch: batch sizes run, wall seconds, per request, audio per wall second, generate, loads."""
    audio = requests * duration
    return [[run["max_batch"], " ".join(str(b) for b in run["batch_sizes"]), run["seconds"],
             run["seconds"] / requests, audio / run["seconds"], run["generate_seconds"],
             run["loads_during_requests"]] for run in runs]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    full_size = (not args.quick) if args.full_size is None else args.full_size
    duration = args.duration or (2.0 if args.quick else 5.0)
    threads = args.threads or bl.default_threads(full_size)
    timeout = 3600.0 if full_size else 600.0
    _, env, work = bl.prepare("batching", full_size=full_size, threads=threads)
    prompt = bl.PROMPTS[0]
    requests = [(f"req{i:02d}.json", {"prompt": prompt, "duration": duration}) for i in range(args.requests)]
    if not bl.quiet_enough(args, full_size):
        return 3

    info = bl.base_info()
    phases: dict[str, dict[str, Any]] = {}
    runs: dict[int, dict[str, Any]] = {}
    for max_batch in (1, args.batch):
        watch = bl.CpuWatch()
        runs[max_batch] = run_once(env, work, max_batch, requests, timeout)
        phases[f"max_batch={max_batch}"] = watch.stop()

    one, many = runs[1], runs[args.batch]
    ratio = one["seconds"] / many["seconds"]
    result = {**info, "benchmark": "batching", "full_size": full_size, "requests": args.requests,
              "duration": duration, "threads": threads, "phases": phases, "runs": runs,
              "ratio_batch1_over_batchN": ratio, "target": ">= 2"}
    path = bl.save_result("batching", result)
    size_name = "full-size" if full_size else "tiny"
    print(bl.header_block(f"Batching ({size_name} musicgen-small stand-in, {args.requests} x {duration:g} s, "
                          f"{threads} torch thread{'s' if threads > 1 else ''})", info, phases))
    print()
    print(bl.table(["max_batch", "batch sizes run", "first claimed (or preload) → last moved (s)", "s per request",
                    "audio s per wall s", "sum of engine.generate (s)", "loads during requests"],
                   report_rows([one, many], args.requests, duration)))
    print()
    print(f"Ratio time(max_batch=1) / time(max_batch={args.batch}) = **{ratio:.2f}x** (target >= 2). "
          f"Preload {one['preload_seconds']} s / {many['preload_seconds']} s, excluded.")
    print(f"\nJSON: {path.relative_to(bl.REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
