"""Daemon overhead: a batch through the daemon vs the same batch through AudioCraft alone.

Side by side in one run, with the same stand-in, thread count, prompts and duration, at batch 1 and
batch 4 (`--batches`):

- bare: a worker process loads `MusicGen.get_pretrained(...)` itself and times
  `set_generation_params(duration=D)` + `generate(prompts)`: AudioCraft alone, none of our code;
- daemon: `python -m watcher run` with `engine.max_batch = N` and the model preloaded; N requests
  (no seed, so they may share a batch) are dropped while a short warm-up request runs, so they are
  claimed together; timed from their `claimed` event to the last `moved` event (preparing,
  generating, normalising, writing and fsyncing the audio and sidecars, the moves to done/).

Both sides generate a 1 s warm-up first. Every pair records how many cores *other* processes kept
busy (/proc/stat minus the measured processes); a pair above `--noise` cores is flagged.

Ratio = daemon claimed→moved / bare generate, per batch size (target <= 1.05 at batch 1 and 4, 5 s
of audio, full-size stand-in). The daemon's own `generate_seconds` (from the sidecars) shows where
a difference goes: inside the generate call, or around it.

With `--console`, a third side runs the daemon with the web console on and a client listening to
its Server-Sent Events the whole time, as an open browser tab would (target: console / daemon <= 1.02).
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import benchlib as bl

MODEL = "facebook/musicgen-small"


def bare_worker(spec_json: str) -> int:
    """Inside a subprocess whose environment points at the stand-ins: AudioCraft alone, timed."""
    spec = json.loads(spec_json)
    import torch
    from audiocraft.models import MusicGen

    model = MusicGen.get_pretrained(MODEL, device="cpu")
    model.set_generation_params(duration=1.0)
    model.generate(["warm up"])
    rows = []
    for batch in spec["batches"]:
        noise = bl.Interference()
        model.set_generation_params(duration=spec["duration"])
        torch.manual_seed(batch["seed"])
        started = time.perf_counter()
        model.generate(batch["prompts"])
        rows.append({"size": len(batch["prompts"]), "seconds": time.perf_counter() - started,
                     "other_cores": noise.stop()})
    print(json.dumps({"threads": torch.get_num_threads(), "batches": rows}))
    return 0


def run_bare(env: dict[str, str], spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    cmd = [bl.PYTHON, __file__, "--bare-worker", json.dumps(spec)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, cwd=str(bl.REPO))
    if proc.returncode != 0:
        raise RuntimeError(f"bare worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def daemon_batch(daemon: bl.DaemonProcess, data: bl.DataRoot, batch: dict[str, Any], tag: str, duration: float,
                 timeout: float) -> dict[str, Any]:
    """Drop a seeded 1 s warm-up, then the batch while it runs; time the batch from claimed to the last moved."""
    data.drop_renamed(f"{tag}-warmup.json", {"prompt": "warm up", "duration": 1, "seed": 1})
    daemon.wait_named("started", timeout, f"{tag}-warmup")
    ids = [f"{tag}-{i}" for i in range(len(batch["prompts"]))]
    for rid, prompt in zip(ids, batch["prompts"], strict=True):
        data.drop_renamed(f"{rid}.json", {"prompt": prompt, "duration": duration})
    noise = bl.Interference([daemon.pid])
    moved = [daemon.wait_named("moved", timeout, rid) for rid in ids]
    claimed = [daemon.wait_named("claimed", 1, rid) for rid in ids]
    sidecars = [json.loads((data.outbox / f"{rid}.json").read_text()) for rid in ids]
    return {"size": len(ids), "seconds": max(map(bl.event_time, moved)) - min(map(bl.event_time, claimed)),
            "engine_seconds": sidecars[0]["timings"]["generate_seconds"],
            "batch_sizes": sorted({s["batch_size"] for s in sidecars}), "other_cores": noise.stop()}


def run_daemon(env: dict[str, str], spec: dict[str, Any], work: Path, timeout: float,
               console: bool = False) -> dict[str, Any]:
    rows = []
    for n, batch in enumerate(spec["batches"]):
        base = bl.fresh_dir(work / f"batch{n}")
        data = bl.DataRoot(base / "data")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        config = bl.write_config(base / "config.toml", data, watch={"mode": "inotify"},
                                 engine={"device": "cpu", "preload": True, "max_batch": len(batch["prompts"])},
                                 web={"enabled": console, "port": port})
        daemon = bl.DaemonProcess(config, env, base / "daemon.log")
        try:
            daemon.wait_named("model_loaded", timeout)
            if console:
                bl.listen(f"http://127.0.0.1:{port}/api/events")
            rows.append(daemon_batch(daemon, data, batch, f"b{n}", spec["duration"], timeout))
            daemon.stop()
        finally:
            daemon.kill()
    return {"batches": rows}


def measure(args: argparse.Namespace, env: dict[str, str], work: Path, spec: dict[str, Any],
            timeout: float) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Alternate the two sides `--rounds` times (bare first in odd rounds, daemon first in even ones)."""
    rounds, phases = [], {}
    sides = ["bare", "daemon", *(["console"] if args.console else [])]
    for r in range(args.rounds):
        result: dict[str, Any] = {}
        for side in (sides if r % 2 == 0 else sides[::-1]):
            watch = bl.CpuWatch()
            result[side] = run_bare(env, spec, timeout) if side == "bare" else \
                run_daemon(env, spec, work / f"round{r + 1}-{side}", timeout, console=side == "console")
            phases[f"round {r + 1} {side}"] = watch.stop()
        rounds.append(result)
    return rounds, phases


def report(rounds: list[dict[str, Any]], noise: float) -> tuple[list[list[Any]], dict[int, float]]:
    """Table rows, and the ratio daemon / bare per batch size over every round."""
    rows: list[list[Any]] = []
    totals: dict[int, list[float]] = {}
    for r, result in enumerate(rounds):
        for bare, daemon in zip(result["bare"]["batches"], result["daemon"]["batches"], strict=True):
            size = bare["size"]
            clean = max(bare["other_cores"], daemon["other_cores"]) <= noise
            sums = totals.setdefault(size, [0.0, 0.0])
            sums[0] += daemon["seconds"]
            sums[1] += bare["seconds"]
            rows.append([r + 1, size, f"{daemon['seconds']:.2f}", f"{daemon['engine_seconds']:.2f}",
                         f"{bare['seconds']:.2f}", f"{daemon['seconds'] / bare['seconds']:.3f}",
                         f"{daemon['other_cores']:.2f} / {bare['other_cores']:.2f}", "yes" if clean else "**no**",
                         daemon["batch_sizes"]])
    ratios = {size: d / b for size, (d, b) in totals.items()}
    for size, ratio in ratios.items():
        rows.append(["all", size, f"{totals[size][0]:.2f}", "", f"{totals[size][1]:.2f}", f"**{ratio:.3f}**",
                     "", "", ""])
    return rows, ratios


def console_ratios(rounds: list[dict[str, Any]]) -> dict[int, float]:
    """Per batch size: the daemon with the console on and a listener, over the daemon alone."""
    totals: dict[int, list[float]] = {}
    for result in rounds:
        if "console" not in result:
            return {}
        for plain, console in zip(result["daemon"]["batches"], result["console"]["batches"], strict=True):
            sums = totals.setdefault(plain["size"], [0.0, 0.0])
            sums[0] += console["seconds"]
            sums[1] += plain["seconds"]
    return {size: c / d for size, (c, d) in totals.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    bl.add_size_options(parser, "smoke run: tiny, 2 s of audio")
    parser.add_argument("--batches", default="1,4", help="batch sizes to compare (default 1,4)")
    parser.add_argument("--duration", type=float, help="seconds of audio per request (default 5; --quick 2)")
    parser.add_argument("--rounds", type=int, default=1, help="alternate the two sides this many times")
    parser.add_argument("--threads", type=int, help="torch threads on both sides (default: cores full-size, 1 tiny)")
    parser.add_argument("--noise", type=float, default=0.1, help="flag pairs where other processes kept more cores "
                        "busy than this (default 0.1)")
    parser.add_argument("--console", action="store_true", help="also the daemon with the web console and a listener")
    bl.add_load_options(parser)
    parser.add_argument("--bare-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.bare_worker:
        return bare_worker(args.bare_worker)
    full_size = (not args.quick) if args.full_size is None else args.full_size
    duration = args.duration or (2.0 if args.quick else 5.0)
    threads = args.threads or bl.default_threads(full_size)
    sizes = [int(s) for s in args.batches.split(",")]
    spec = {"duration": duration, "batches": [
        {"seed": 1000 + n, "prompts": [bl.PROMPTS[(n + i) % len(bl.PROMPTS)] for i in range(size)]}
        for n, size in enumerate(sizes)]}
    _, env, work = bl.prepare("overhead", full_size=full_size, threads=threads)
    if not bl.quiet_enough(args, full_size):
        return 3
    info = bl.base_info()
    rounds, phases = measure(args, env, work, spec, 3600.0 if full_size else 300.0)
    rows, ratios = report(rounds, args.noise)
    with_console = console_ratios(rounds)
    path = bl.save_result("overhead", {**info, "benchmark": "overhead", "full_size": full_size, "spec": spec,
                                       "threads": threads, "phases": phases, "rounds": rounds,
                                       "ratios": {str(k): v for k, v in ratios.items()}, "target": "<= 1.05",
                                       "console_ratios": {str(k): v for k, v in with_console.items()}})
    print(bl.header_block(f"Daemon overhead vs AudioCraft alone ({'full-size' if full_size else 'tiny'} "
                          f"musicgen-small stand-in, {duration:g} s, batches {args.batches}, {threads} torch "
                          f"thread(s), {args.rounds} round(s))", info, phases))
    print()
    print(bl.table(["round", "batch", "daemon claimed→moved (s)", "of which generate (s)", "AudioCraft alone (s)",
                    "ratio", "other cores busy daemon / bare", f"clean (<= {args.noise:g})",
                    "daemon batch sizes"], rows))
    print("\n" + "; ".join(f"batch {size}: daemon / AudioCraft = {ratio:.3f} (target <= 1.05)"
                           for size, ratio in ratios.items()))
    if with_console:
        print("With the console on and a client listening to its events: " + "; ".join(
            f"batch {size}: console / daemon = {ratio:.3f} (target <= 1.02)" for size, ratio in with_console.items()))
    print(f"\nJSON: {path.relative_to(bl.REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
