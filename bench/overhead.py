"""Daemon overhead: a batch through the daemon vs the same batch through AudioCraft alone.

Every side is one resident process with the model loaded, and the sides take turns batch by batch,
so that each pair is measured seconds apart rather than minutes (this VM drifts by a third between
minutes); the sides not running are stopped (SIGSTOP), so their idle threads take nothing from the
one that runs:

- bare: a worker (`--bare-worker`) that loads `MusicGen.get_pretrained(...)` itself and, per batch,
  generates a 1 s warm-up, then times `set_generation_params(duration=D)` + `generate(prompts)`:
  AudioCraft alone, none of our code;
- daemon: `python -m watcher run` with `engine.max_batch` = the largest batch and the model preloaded;
  per batch, a 1 s warm-up request, then the batch's requests (no seed, so they share a batch) dropped
  while it runs, so they are claimed together; timed from their `claimed` event to the last `moved`
  event (preparing, generating, normalising, writing and fsyncing the audio and sidecars, the moves
  to done/). The daemon's own `generate_seconds` (from the sidecars) shows where a difference goes:
  inside the generate call, or around it.

While the daemon runs, this script reads its log four times a second, not every 5 ms: the timings
come from the log's own timestamps, and a 5 ms poll woke this process 200 times a second, beside
the two OpenMP threads on a 2-core machine (the bare side, waited for on a pipe, had no such rival).

Every batch records how many cores *other* processes kept busy (/proc/stat minus the measured
processes); a pair above `--noise` cores is flagged. Ratio = daemon claimed→moved / bare generate
per batch size, summed over the rounds (target <= 1.05 at batch 1 and 4, 5 s of audio, full-size
stand-in), with the median of the pairs' own ratios.

With `--console`, a third side runs the daemon with the web console on and a client listening to
its Server-Sent Events the whole time, as an open browser tab would (target: console / daemon <= 1.02).
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import time
from pathlib import Path
from typing import IO, Any

import benchlib as bl

MODEL = "facebook/musicgen-small"
POLL = 0.25  # seconds between reads of the daemon's log while it generates


def bare_worker(duration: float) -> int:
    """Inside a subprocess whose environment points at the stand-ins: AudioCraft alone, one batch per
    line of stdin (`{"seed": .., "prompts": [..]}`), each after a 1 s warm-up, one timing per line of stdout."""
    import sys

    import torch
    from audiocraft.models import MusicGen

    model = MusicGen.get_pretrained(MODEL, device="cpu")
    print(json.dumps({"threads": torch.get_num_threads()}), flush=True)
    for line in sys.stdin:
        batch = json.loads(line)
        model.set_generation_params(duration=1.0)
        model.generate(["warm up"])  # as the daemon side's warm-up request, right before its batch
        model.set_generation_params(duration=duration)
        torch.manual_seed(batch["seed"])
        started = time.perf_counter()
        model.generate(batch["prompts"])
        print(json.dumps({"size": len(batch["prompts"]), "seconds": time.perf_counter() - started}), flush=True)
    return 0


class Bare:
    """The bare worker, resident: loads the model once, then generates each batch it is sent."""

    def __init__(self, env: dict[str, str], duration: float, log: Path) -> None:
        self._log = open(log, "wb")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen([bl.PYTHON, __file__, "--bare-worker", str(duration)], env=env, text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
                                     cwd=str(bl.REPO))
        self.threads = self._answer()["threads"]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"bare worker exited ({self.proc.wait()}); see {self._log.name}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(self, batch: dict[str, Any], tag: str) -> dict[str, Any]:
        stdin: IO[str] | None = self.proc.stdin
        assert stdin is not None
        noise = bl.Interference([self.pid])
        stdin.write(json.dumps(batch) + "\n")
        stdin.flush()
        return {**self._answer(), "threads": self.threads, "other_cores": noise.stop()}

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


class Daemon:
    """`musicgen-watcher run`, resident with the model preloaded; with `console`, the web console on
    and a client listening to its events."""

    def __init__(self, env: dict[str, str], base: Path, max_batch: int, duration: float, timeout: float,
                 console: bool) -> None:
        self.data = bl.DataRoot(base / "data")
        self.duration = duration
        self.timeout = timeout
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        config = bl.write_config(base / "config.toml", self.data, watch={"mode": "inotify"},
                                 engine={"device": "cpu", "preload": True, "max_batch": max_batch},
                                 web={"enabled": console, "port": port})
        self.process = bl.DaemonProcess(config, env, base / "daemon.log")
        self.process.wait_named("model_loaded", timeout)
        if console:
            bl.listen(f"http://127.0.0.1:{port}/api/events")

    @property
    def pid(self) -> int:
        return self.process.pid

    def run(self, batch: dict[str, Any], tag: str) -> dict[str, Any]:
        """Drop a seeded 1 s warm-up, then the batch while it runs; time the batch from claimed to the last moved."""
        daemon, data = self.process, self.data
        data.drop_renamed(f"{tag}-warmup.json", {"prompt": "warm up", "duration": 1, "seed": 1})
        daemon.wait_named("started", self.timeout, f"{tag}-warmup")
        ids = [f"{tag}-{i}" for i in range(len(batch["prompts"]))]
        for rid, prompt in zip(ids, batch["prompts"], strict=True):
            data.drop_renamed(f"{rid}.json", {"prompt": prompt, "duration": self.duration})
        noise = bl.Interference([daemon.pid])
        moved = [daemon.wait_named("moved", self.timeout, rid, poll=POLL) for rid in ids]
        claimed = [daemon.wait_named("claimed", 1, rid) for rid in ids]
        sidecars = [json.loads((data.outbox / f"{rid}.json").read_text()) for rid in ids]
        return {"size": len(ids), "seconds": max(map(bl.event_time, moved)) - min(map(bl.event_time, claimed)),
                "engine_seconds": sidecars[0]["timings"]["generate_seconds"],
                "batch_sizes": sorted({s["batch_size"] for s in sidecars}), "other_cores": noise.stop()}

    def close(self) -> None:
        try:
            self.process.stop()
        finally:
            self.process.kill()


Side = Bare | Daemon


def start_sides(args: argparse.Namespace, env: dict[str, str], work: Path, spec: dict[str, Any],
                timeout: float) -> dict[str, Side]:
    """Every side resident at once: bare, daemon and (with --console) console, in that order."""
    sides: dict[str, Side] = {}
    max_batch = max(len(b["prompts"]) for b in spec["batches"])
    try:
        sides["bare"] = Bare(env, spec["duration"], work / "bare.log")
        for name in ("daemon", *(["console"] if args.console else [])):
            with bl.paused(side.pid for side in sides.values()):
                sides[name] = Daemon(env, bl.fresh_dir(work / name), max_batch, spec["duration"], timeout,
                                     console=name == "console")
    except BaseException:
        for side in sides.values():
            side.close()
        raise
    return sides


def measure(args: argparse.Namespace, sides: dict[str, Side], spec: dict[str, Any]) -> list[dict[str, Any]]:
    """`--rounds` rounds; in each, every batch size on every side in turn, the others stopped. The order of
    the sides rotates from round to round, so each side runs first as often as the others."""
    names = list(sides)
    rounds = []
    for r in range(args.rounds):
        result: dict[str, Any] = {name: {"batches": []} for name in names}
        order = names[r % len(names):] + names[:r % len(names)]
        for n, batch in enumerate(spec["batches"]):
            for name in order:
                with bl.paused(side.pid for other, side in sides.items() if other != name):
                    result[name]["batches"].append(sides[name].run(batch, f"r{r + 1}b{n}"))
        rounds.append(result)
    return rounds


def report(rounds: list[dict[str, Any]], noise: float) -> tuple[list[list[Any]], dict[int, dict[str, float]]]:
    """Table rows, and per batch size: daemon / bare summed over every round, the median of the pairs'
    ratios, the same for the generate call alone, and how many pairs the daemon was the slower side in."""
    rows: list[list[Any]] = []
    pairs: dict[int, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    for r, result in enumerate(rounds):
        for bare, daemon in zip(result["bare"]["batches"], result["daemon"]["batches"], strict=True):
            size = bare["size"]
            pairs.setdefault(size, []).append((daemon, bare))
            clean = max(bare["other_cores"], daemon["other_cores"]) <= noise
            rows.append([r + 1, size, f"{daemon['seconds']:.2f}", f"{daemon['engine_seconds']:.2f}",
                         f"{bare['seconds']:.2f}", f"{daemon['seconds'] / bare['seconds']:.3f}",
                         f"{daemon['other_cores']:.2f} / {bare['other_cores']:.2f}", "yes" if clean else "**no**",
                         daemon["batch_sizes"]])
    summary = {size: _summary(both) for size, both in pairs.items()}
    for size, sums in summary.items():
        rows.append(["all", size, f"{sums['daemon_seconds']:.2f}", f"{sums['generate_seconds']:.2f}",
                     f"{sums['bare_seconds']:.2f}", f"**{sums['ratio']:.3f}** (median {sums['median']:.3f})",
                     "", "", f"daemon slower in {sums['daemon_slower']:g} of {sums['pairs']:g}"])
    return rows, summary


def _summary(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, float]:
    daemon = sum(d["seconds"] for d, _ in pairs)
    inside = sum(d["engine_seconds"] for d, _ in pairs)
    bare = sum(b["seconds"] for _, b in pairs)
    return {"daemon_seconds": daemon, "generate_seconds": inside, "bare_seconds": bare, "ratio": daemon / bare,
            "median": statistics.median(d["seconds"] / b["seconds"] for d, b in pairs),
            "generate_ratio": inside / bare, "pairs": len(pairs),
            "daemon_slower": sum(d["seconds"] > b["seconds"] for d, b in pairs)}


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


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    bl.add_size_options(parser, "smoke run: tiny, 2 s of audio")
    parser.add_argument("--batches", default="1,4", help="batch sizes to compare (default 1,4)")
    parser.add_argument("--duration", type=float, help="seconds of audio per request (default 5; --quick 2)")
    parser.add_argument("--rounds", type=int, default=1, help="run every batch size on every side this many times")
    parser.add_argument("--threads", type=int, help="torch threads on every side (default: cores full-size, 1 tiny)")
    parser.add_argument("--noise", type=float, default=0.1, help="flag pairs where other processes kept more cores "
                        "busy than this (default 0.1)")
    parser.add_argument("--console", action="store_true", help="also the daemon with the web console and a listener")
    bl.add_load_options(parser)
    parser.add_argument("--bare-worker", type=float, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def print_report(args: argparse.Namespace, info: dict[str, Any], phases: dict[str, dict[str, Any]],
                 rows: list[list[Any]], summary: dict[int, dict[str, float]], with_console: dict[int, float],
                 path: Path) -> None:
    print(bl.header_block(f"Daemon overhead vs AudioCraft alone ({'full-size' if args.full_size else 'tiny'} "
                          f"musicgen-small stand-in, {args.duration:g} s, batches {args.batches}, {args.threads} "
                          f"torch thread(s), {args.rounds} round(s))", info, phases))
    print()
    print(bl.table(["round", "batch", "daemon claimed→moved (s)", "of which generate (s)", "AudioCraft alone (s)",
                    "ratio", "other cores busy daemon / bare", f"clean (<= {args.noise:g})",
                    "daemon batch sizes"], rows))
    print("\n" + "; ".join(f"batch {size}: daemon / AudioCraft = {s['ratio']:.3f}, median of pairs "
                           f"{s['median']:.3f}, inside generate {s['generate_ratio']:.3f} (target <= 1.05)"
                           for size, s in summary.items()))
    if with_console:
        print("With the console on and a client listening to its events: " + "; ".join(
            f"batch {size}: console / daemon = {ratio:.3f} (target <= 1.02)" for size, ratio in with_console.items()))
    print(f"\nJSON: {path.relative_to(bl.REPO)}")


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.bare_worker is not None:
        return bare_worker(args.bare_worker)
    args.full_size = (not args.quick) if args.full_size is None else args.full_size
    args.duration = args.duration or (2.0 if args.quick else 5.0)
    args.threads = args.threads or bl.default_threads(args.full_size)
    sizes = [int(s) for s in args.batches.split(",")]
    spec = {"duration": args.duration, "batches": [
        {"seed": 1000 + n, "prompts": [bl.PROMPTS[(n + i) % len(bl.PROMPTS)] for i in range(size)]}
        for n, size in enumerate(sizes)]}
    _, env, work = bl.prepare("overhead", full_size=args.full_size, threads=args.threads)
    if not bl.quiet_enough(args, args.full_size):
        return 3
    info = bl.base_info()
    watch = bl.CpuWatch()
    sides = start_sides(args, env, work, spec, 3600.0 if args.full_size else 300.0)
    try:
        rounds = measure(args, sides, spec)
    finally:
        for side in sides.values():
            side.close()
    phases = {"whole run": watch.stop()}
    rows, summary = report(rounds, args.noise)
    with_console = console_ratios(rounds)
    path = bl.save_result("overhead", {**info, "benchmark": "overhead", "full_size": args.full_size, "spec": spec,
                                       "threads": args.threads, "phases": phases, "rounds": rounds,
                                       "summary": {str(k): v for k, v in summary.items()}, "target": "<= 1.05",
                                       "console_ratios": {str(k): v for k, v in with_console.items()}})
    print_report(args, info, phases, rows, summary, with_console, path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
