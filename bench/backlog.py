"""Backlog: 10,000 small requests queued before the daemon starts.

Daemon runs one after the other in this run, tiny stand-in, `engine.preload = true`, inotify
mode, requests of 0.05 s of audio written before start and dated back (as a backlog left while
the daemon was down would be). Python's bytecode is cached (as in the Docker image) except in
the first run, which shows what a start costs without it on this machine:

- empty: an empty inbox; the daemon's RSS after preload (VmRSS from /proc/<pid>/status,
  sampled every 50 ms for a few seconds once `model_loaded` was logged) is the baseline;
- small backlog (10 requests, the control): the same sampling for the whole window; its peak
  shows what generating and publishing tiny requests costs by itself;
- backlog (10,000 requests): time from process start, from the `watching` event and from the
  `model_loaded` event to the first `claimed` event, and from process start to the first
  `finished` event; the peak RSS over the window (30 s after `model_loaded`), after which the
  daemon gets SIGTERM. Also how many requests it finished by then, and the mean time per finished
  request (from the first `claimed`, or `model_loaded` if later, to the last `moved`, divided by
  the number done) next to the 10-request control's.

The daemon imports torch and AudioCraft and preloads the model on a second thread while it scans
the inbox, reads the backlog and claims the first batch, so the first claim may come before
`model_loaded` (a negative "after `model_loaded`"); the first `finished` cannot. Files found by the
startup scan get no event, so the daemon claims them once it has seen them unchanged for
`watch.stable_seconds` (2 s by default): the first claim comes at least that long after `watching`.

Targets: <= 2 s to the first claim; <= 50 MB RSS growth (backlog peak minus empty baseline).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import benchlib as bl


def run_daemon(env: dict[str, str], work: Path, name: str, count: int, window: float) -> dict[str, Any]:
    base = bl.fresh_dir(work / name)
    data = bl.DataRoot(base / "data")
    requests = [(f"r{i:05d}.json", {"prompt": bl.PROMPTS[i % len(bl.PROMPTS)], "duration": 0.05})
                for i in range(count)]
    written = time.monotonic()
    data.prefill(requests)
    write_seconds = time.monotonic() - written
    config = bl.write_config(base / "config.toml", data, watch={"mode": "inotify"},
                             engine={"device": "cpu", "preload": True})
    daemon = bl.DaemonProcess(config, env, base / "daemon.log")
    try:
        samples, hwm = sample_rss(daemon, min(window, 5.0) if count == 0 else window)
        code = daemon.stop()
    finally:
        daemon.kill()
    timeline = event_timeline(daemon)
    return {"name": name, "requests": count, "write_seconds": write_seconds, "exit_code": code, **timeline,
            "done_in_window": len(list(data.done.glob("*.json"))),
            **rss_figures(samples, hwm, timeline["loaded_after_start"])}


def sample_rss(daemon: bl.DaemonProcess, window: float) -> tuple[list[tuple[float, int]], int]:
    """VmRSS every 50 ms until `window` seconds after `model_loaded`: ((seconds since start, kB) samples, VmHWM kB)."""
    samples: list[tuple[float, int]] = []
    hwm = 0
    deadline = time.monotonic() + 300  # imports and preload first; the window starts after them
    loaded = False
    while time.monotonic() < deadline:
        rss = daemon.rss_kb()
        if rss is None:
            break
        samples.append((time.time() - daemon.started_wall, rss[0]))
        hwm = max(hwm, rss[1])
        daemon.poll_events()
        if not loaded and daemon.named("model_loaded"):
            loaded = True
            deadline = time.monotonic() + window
        time.sleep(0.05)
    return samples, hwm


def event_timeline(daemon: bl.DaemonProcess) -> dict[str, Any]:
    """From the daemon's log: its first `watching`, `model_loaded`, `claimed` and `finished` after process
    start (seconds, None if never logged), and the mean time per request it moved."""
    start = daemon.started_wall

    def first(event: str) -> float | None:
        found = daemon.named(event)
        return bl.event_time(found[0]) if found else None

    watching, loaded, claimed = first("watching"), first("model_loaded"), first("claimed")
    finished = first("finished")
    moved = [bl.event_time(e) for e in daemon.named("moved")]
    # From the later of the first claim and the preload: the first batch is claimed while the engine starts.
    began = max(claimed, loaded) if claimed is not None and loaded is not None else claimed
    return {
        "watching_after_start": None if watching is None else watching - start,
        "loaded_after_start": None if loaded is None else loaded - start,
        "claim_after_start": None if claimed is None else claimed - start,
        "claim_after_watching": None if claimed is None or watching is None else claimed - watching,
        "claim_after_loaded": None if claimed is None or loaded is None else claimed - loaded,
        "finished_after_start": None if finished is None else finished - start,
        "discovered_events": len(daemon.named("discovered")),
        "discovered_before_first_claim": sum(1 for e in daemon.events[:first_claim_index(daemon.events)]
                                             if e.get("event") == "discovered"),
        "seconds_per_done_request": (max(moved) - began) / len(moved) if moved and began is not None else None,
    }


def rss_figures(samples: list[tuple[float, int]], hwm: int, loaded_after_start: float | None) -> dict[str, Any]:
    """The RSS samples taken from `model_loaded` on (none if it never came): their median and peak."""
    after_load = [kb for t, kb in samples if loaded_after_start is not None and t >= loaded_after_start]
    return {
        "window_seconds": samples[-1][0] - loaded_after_start if samples and loaded_after_start is not None else 0.0,
        "rss_after_load_median_kb": sorted(after_load)[len(after_load) // 2] if after_load else None,
        "rss_peak_kb": max((kb for _, kb in samples), default=None),
        "rss_peak_after_load_kb": max(after_load, default=None),
        "vm_hwm_kb": hwm, "rss_samples": samples,
    }


def first_claim_index(events: list[bl.Event]) -> int:
    return next((i for i, e in enumerate(events) if e.get("event") == "claimed"), len(events))


def s_ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 1000:.1f}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1,000 requests, 10 s window")
    parser.add_argument("--requests", type=int, help="backlog size (default 10000; --quick 1000)")
    parser.add_argument("--window", type=float,
                        help="seconds to watch the daemon after preload (default 30; --quick 10)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads in the daemon")
    return parser.parse_args(argv)


def run_all(standins: Path, env: dict[str, str], work: Path, count: int, window: float,
            threads: int) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The four daemon runs, one after the other: (runs, the CPU load during each), by run name."""
    phases: dict[str, dict[str, Any]] = {}
    runs: dict[str, dict[str, Any]] = {}
    cold_env = bl.run_env(standins, threads, bytecode_cache=False)
    for name, n, run_env in (("empty, no bytecode cache", 0, cold_env), ("empty", 0, env),
                             ("small backlog", 10, env), ("backlog", count, env)):
        watch = bl.CpuWatch()
        runs[name] = run_daemon(run_env, work, name.replace(" ", "-").replace(",", ""), n, window)
        phases[name] = watch.stop()
    return runs, phases


COLUMNS = ["run", "queued", "`watching` after start (s)", "`model_loaded` after start (s)",
           "first claim after start (s)", "after `watching` (s)",
           "after `model_loaded` (s)", "first `finished` after start (s)",
           "RSS after load, median (MB)", "peak RSS after load (MB)",
           "growth vs empty (MB)", "VmHWM (MB)", "done in window", "ms per done request"]


def report_rows(runs: dict[str, dict[str, Any]], baseline: int | None) -> list[list[Any]]:
    """One row per run, in COLUMNS' order; RSS growth is against `baseline` (the empty run's median, kB)."""
    rows = []
    for name, run in runs.items():
        def s(key: str, run: dict[str, Any] = run) -> str:
            value = run[key]
            return "n/a" if value is None else f"{value:.3f}"

        peak = run["rss_peak_after_load_kb"]
        growth = None if peak is None or baseline is None else (peak - baseline) / 1024
        rows.append([name, run["requests"], s("watching_after_start"), s("loaded_after_start"),
                     s("claim_after_start"), s("claim_after_watching"), s("claim_after_loaded"),
                     s("finished_after_start"),
                     f"{(run['rss_after_load_median_kb'] or 0) / 1024:.1f}", f"{(peak or 0) / 1024:.1f}",
                     "n/a" if growth is None else f"{growth:+.1f}", f"{run['vm_hwm_kb'] / 1024:.1f}",
                     f"{run['done_in_window']} in {run['window_seconds']:.0f} s",
                     s_ms(run["seconds_per_done_request"])])
    return rows


def print_verdict(big: dict[str, Any], count: int, growth_mb: float, control_mb: float) -> None:
    t_start, t_watch, t_load, t_done = (
        float("nan") if big[k] is None else big[k]
        for k in ("claim_after_start", "claim_after_watching", "claim_after_loaded", "finished_after_start"))
    print(f"First claim {t_start:.2f} s after process start, {t_watch:.2f} s after `watching`, {t_load:.2f} s after "
          f"`model_loaded` (target <= 2 s: {'met' if t_watch <= 2.0 else 'MISSED'} from `watching`, "
          f"{'met' if t_start <= 2.0 else 'MISSED'} from process start); first request finished "
          f"{t_done:.2f} s after process start; "
          f"{big['discovered_before_first_claim']:,} `discovered` events logged before it. "
          f"RSS growth with {count:,} queued: "
          f"{growth_mb:+.1f} MB ({control_mb:+.1f} MB with 10 queued; target <= 50 MB: "
          f"{'met' if growth_mb <= 50 else 'MISSED'}). Writing the backlog took {big['write_seconds']:.1f} s.")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    count = args.requests or (1000 if args.quick else 10_000)
    window = args.window or (10.0 if args.quick else 30.0)
    standins, env, work = bl.prepare("backlog", full_size=False, threads=args.threads)
    info = bl.base_info()
    runs, phases = run_all(standins, env, work, count, window, args.threads)

    baseline = runs["empty"]["rss_after_load_median_kb"]
    big = runs["backlog"]
    small = runs["small backlog"]
    growth_mb = ((big["rss_peak_after_load_kb"] or 0) - (baseline or 0)) / 1024
    control_mb = ((small["rss_peak_after_load_kb"] or 0) - (baseline or 0)) / 1024
    result = {**info, "benchmark": "backlog", "requests": count, "window": window, "threads": args.threads,
              "phases": phases, "runs": runs, "rss_growth_mb": growth_mb, "rss_growth_small_backlog_mb": control_mb,
              "targets": {"first_claim_seconds": 2.0, "rss_growth_mb": 50}}
    path = bl.save_result("backlog", result)
    print(bl.header_block(f"Backlog of {count:,} queued requests (tiny stand-in, preload, inotify)", info, phases))
    print()
    print(bl.table(COLUMNS, report_rows(runs, baseline)))
    print()
    print_verdict(big, count, growth_mb, control_mb)
    print(f"\nJSON: {path.relative_to(bl.REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
