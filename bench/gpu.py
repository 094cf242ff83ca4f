"""GPU throughput: seconds per 30 s of audio for the musicgen-small architecture at batch 1, 4 and 8.

Runs the engine directly (no daemon) in a worker subprocess with the full-size musicgen-small
stand-in (real-sized LM, T5-base and EnCodec, random weights: the same compute as the real
model), on `--device` (default cuda). For each batch size: one warm-up call of 1 s, then one
timed call of `--duration` (30) s, with `torch.cuda.synchronize()` around it, and the peak GPU
memory (`max_memory_allocated` and `max_memory_reserved`, reset before each call).

Not yet run on a GPU: written and smoke-tested on CPU (`--quick --device cpu`) only.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
from typing import Any

import benchlib as bl

MODEL = "facebook/musicgen-small"


def worker(spec_json: str) -> int:
    spec = json.loads(spec_json)
    import torch

    from watcher.engine import Engine
    from watcher.jobs import Job
    from watcher.models import resolve_model

    engine = Engine(spec["device"])
    model = resolve_model(MODEL)
    load = engine.load(model)
    cuda = engine.device.startswith("cuda")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    rows = []
    for batch in spec["batches"]:
        jobs = [Job(prompt=bl.PROMPTS[i % len(bl.PROMPTS)]) for i in range(batch)]
        engine.generate(model, jobs, duration=1.0, seed=1)  # warm-up (kernels, allocator)
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        sync()
        started = time.perf_counter()
        engine.generate(model, jobs, duration=spec["duration"], seed=2)
        sync()
        seconds = time.perf_counter() - started
        rows.append({"batch": batch, "seconds": seconds,
                     "seconds_per_30s_audio_per_item": seconds / batch * 30 / spec["duration"],
                     "seconds_per_30s_audio_batch": seconds * 30 / spec["duration"],
                     "max_allocated_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
                     "max_reserved_gib": torch.cuda.max_memory_reserved() / 2**30 if cuda else None})
    gpu = torch.cuda.get_device_name() if cuda else None
    print(json.dumps({"load_seconds": load, "dtype": engine.dtype, "gpu": gpu, "rows": rows}))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    bl.add_size_options(parser, "smoke run: tiny stand-in, 2 s of audio")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--duration", type=float, help="seconds of audio per call (default 30; --quick 2)")
    parser.add_argument("--batches", default="1,4,8", help="comma-separated batch sizes")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker)

    full_size = (not args.quick) if args.full_size is None else args.full_size
    duration = args.duration or (2.0 if args.quick else 30.0)
    batches = [int(b) for b in args.batches.split(",")]
    standins = bl.ensure_standins(full_size)
    env = bl.run_env(standins, bl.default_threads(full_size) if args.device == "cpu" else None)
    info = bl.base_info()
    info["machine"]["device"] = args.device
    watch = bl.CpuWatch()
    spec = {"device": args.device, "duration": duration, "batches": batches}
    proc = subprocess.run([bl.PYTHON, __file__, "--worker", json.dumps(spec)], env=env, capture_output=True,
                          text=True, cwd=str(bl.REPO), timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(f"worker failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    phases = {"run": watch.stop()}
    info["machine"]["gpu"] = out["gpu"]
    result = {**info, "benchmark": "gpu", "full_size": full_size, "duration": duration, "phases": phases, **out}
    path = bl.save_result("gpu", result)

    def gib(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.2f}"

    rows = [[r["batch"], r["seconds"], r["seconds_per_30s_audio_batch"], r["seconds_per_30s_audio_per_item"],
             gib(r["max_allocated_gib"]), gib(r["max_reserved_gib"])] for r in out["rows"]]
    size_name = "full-size" if full_size else "tiny"
    print(bl.header_block(f"GPU throughput ({size_name} musicgen-small stand-in, {duration:g} s per call, "
                          f"{args.device} {out['gpu'] or ''}, {out['dtype']})", info, phases))
    print()
    print(bl.table(["batch", "seconds", "s per 30 s of audio (whole batch)", "s per 30 s of audio per item",
                    "peak allocated (GiB)", "peak reserved (GiB)"], rows))
    print(f"\nModel load {out['load_seconds']:.1f} s (excluded). JSON: {path.relative_to(bl.REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
