"""Mixed models: a queue alternating two models, with and without the daemon's residency preference.

Twelve requests, same priority, 0.1 s of audio each, alternating facebook/musicgen-small and
facebook/musicgen-stereo-small (tiny stand-ins), written before start and dated back in that
order, then drained with `python -m watcher run --once` (musicgen-small preloaded) under:

- `engine.max_skips = 0`: the oldest request always goes first, so the model switches on
  every request (no residency preference);
- `engine.max_skips = 8` (the default): a request for the resident model may jump ahead of
  one for the other model up to 8 times.

Each pair runs with `engine.max_batch = 1` (only the skip policy decides) and with the default
`4` (same-model requests also batch together). Loads are counted from the sidecars: one per
batch whose `timings.load_seconds > 0` (the preload is counted separately).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import benchlib as bl

MODELS = ("facebook/musicgen-small", "facebook/musicgen-stereo-small")


def run_once(env: dict[str, str], work: Path, max_skips: int, max_batch: int, count: int,
             duration: float) -> dict[str, Any]:
    base = bl.fresh_dir(work / f"skips{max_skips}-batch{max_batch}")
    data = bl.DataRoot(base / "data")
    requests = [(f"m{i:02d}.json", {"prompt": bl.PROMPTS[i % len(bl.PROMPTS)], "duration": duration,
                                    "model": MODELS[i % 2]}) for i in range(count)]
    data.prefill(requests)
    config = bl.write_config(base / "config.toml", data, watch={"mode": "inotify"},
                             engine={"device": "cpu", "preload": True, "max_skips": max_skips,
                                     "max_batch": max_batch, "default_model": MODELS[0]})
    daemon = bl.DaemonProcess(config, env, base / "daemon.log", once=True)
    try:
        code = daemon.wait(300)
    finally:
        daemon.kill()
    sidecars = data.sidecars()
    if code != 0 or len(sidecars) != count:
        raise RuntimeError(f"skips={max_skips} batch={max_batch}: exit {code}, {len(sidecars)}/{count} done; "
                           f"log {daemon.log_path}")
    batches: dict[str, dict[str, Any]] = {}
    for s in sidecars:
        batch = batches.setdefault(s["timings"]["started_at"], {"model": s["model"], "size": s["batch_size"],
                                                                 "load_seconds": s["timings"]["load_seconds"]})
        assert batch["model"] == s["model"]
    ordered = [batches[k] for k in sorted(batches)]
    loads = [b for b in ordered if b["load_seconds"] > 0]
    # Independently, from the log: model switches between consecutive `started` batches.
    started = [e for e in daemon.events if e.get("event") == "started"]
    preload = daemon.named("model_loaded")
    resident = preload[0]["model"] if preload else None
    switches = 0
    for event in started:
        if event["model"] != resident:
            switches += 1
            resident = event["model"]
    claimed = {e["request_id"]: i for i, e in enumerate(daemon.named("claimed"))}
    displacement = max(abs(claimed[f"m{i:02d}"] - i) for i in range(count))
    moved = [bl.event_time(e) for e in daemon.named("moved")]
    first = max([min(bl.event_time(e) for e in daemon.named("claimed")), *(bl.event_time(e) for e in preload[:1])])
    queued = {s["request_id"]: s for s in sidecars}
    waits = [bl.event_time(e) - first for e in daemon.named("moved")]
    return {"max_skips": max_skips, "max_batch": max_batch, "exit_code": code,
            # every load a request needs logs model_loading first; the preload logs model_loaded alone
            "preloads": len(preload) - len(daemon.named("model_loading")), "loads_from_sidecars": len(loads),
            "load_seconds_total": sum(b["load_seconds"] for b in loads),
            "switches_from_log": switches, "batches": ordered,
            "model_sequence": "".join("S" if b["model"] == MODELS[0] else "T" for b in ordered),
            "claim_order": [e["request_id"] for e in daemon.named("claimed")],
            "max_displacement": displacement, "seconds": max(moved) - first,
            "longest_wait_seconds": max(waits), "sidecar_ids": sorted(queued)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run: 6 requests, max_batch 1 only")
    parser.add_argument("--requests", type=int, help="queue length (default 12; --quick 6)")
    parser.add_argument("--duration", type=float, default=0.1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the daemon")
    args = parser.parse_args(argv)
    count = args.requests or (6 if args.quick else 12)

    _, env, work = bl.prepare("mixed_models", full_size=False, threads=args.threads)
    info = bl.base_info()
    phases: dict[str, dict[str, Any]] = {}
    runs: list[dict[str, Any]] = []
    for max_batch in (1,) if args.quick else (1, 4):
        for max_skips in (0, 8):
            watch = bl.CpuWatch()
            runs.append(run_once(env, work, max_skips, max_batch, count, args.duration))
            phases[f"max_skips={max_skips}, max_batch={max_batch}"] = watch.stop()

    rows = [[r["max_skips"], r["max_batch"], r["preloads"], r["loads_from_sidecars"], r["switches_from_log"],
             r["load_seconds_total"], r["model_sequence"], r["max_displacement"], r["seconds"]] for r in runs]
    ratios = {}
    for max_batch in sorted({r["max_batch"] for r in runs}):
        no_pref = next(r for r in runs if r["max_batch"] == max_batch and r["max_skips"] == 0)
        pref = next(r for r in runs if r["max_batch"] == max_batch and r["max_skips"] == 8)
        ratios[max_batch] = (no_pref["loads_from_sidecars"], pref["loads_from_sidecars"])
    result = {**info, "benchmark": "mixed_models", "requests": count, "duration": args.duration,
              "threads": args.threads, "phases": phases, "runs": runs,
              "loads_skips0_vs_skips8": {str(k): v for k, v in ratios.items()}}
    path = bl.save_result("mixed_models", result)
    print(bl.header_block(f"Mixed models ({count} requests alternating small / stereo-small, tiny stand-ins, "
                          f"{args.duration:g} s each)", info, phases))
    print()
    print(bl.table(["max_skips", "max_batch", "preloads", "loads during requests (sidecars)",
                    "model switches (log)", "seconds loading", "batch models in order (S=small, T=stereo)",
                    "max queue-order displacement", "first claimed (or preload) → last moved (s)"], rows))
    print()
    print("Loads, max_skips=0 vs max_skips=8: " + "; ".join(
        f"max_batch={b}: {a} vs {p}" + (f" ({a / p:.0f}x fewer)" if p else "") for b, (a, p) in ratios.items()) + ".")
    print(f"\nJSON: {path.relative_to(bl.REPO)}")
    print(json.dumps({"claim_orders": {f"{r['max_skips']}/{r['max_batch']}": r["claim_order"] for r in runs}}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
