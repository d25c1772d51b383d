"""The embedded default's build and pipeline on a quiet machine and beside one busy process, side by side.

Each arm runs the real command (`rlhfkit [--threads T] build-default --force` into a fresh cache, or
`rlhfkit [--threads T] pipeline [--quick] --out <fresh folder>`) as its own process, once alone and once while a
second Python process burns one core (`while True: pass`), alternating quiet and busy so that drift in the
machine's speed hits both. Prints and saves (bench/results/threads_under_load[_quick].json) wall seconds, the pipeline's
seconds per stage, and busy / quiet ratios. `--threads auto` gives torch's own default (one thread per core), the
setting before rlhfkit chose threads itself.

    python bench/threads_under_load.py [--jobs build,pipeline] [--threads rule,auto] [--quick] [--repeats 1]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
CLI = [sys.executable, "-m", "rlhfkit.cli"]


def busy_process() -> subprocess.Popen:
    """A competing process: one core busy, as another user's job would be."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def run_once(job: str, threads: str, quick: bool, busy: bool) -> dict:
    """One timed run of `job` in a fresh folder; returns its wall time (and the pipeline's stage seconds)."""
    with tempfile.TemporaryDirectory(prefix="rlhfkit-bench-") as scratch:
        env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
        thread_args = [] if threads == "rule" else ["--threads", threads]
        if job == "build":
            env["RLHFKIT_CACHE"] = str(Path(scratch) / "cache")
            command = CLI + thread_args + ["build-default", "--force", "--quiet"]
        else:  # the pipeline on the caller's cached embedded default (built beforehand, not timed)
            command = (
                CLI + thread_args + ["pipeline", "--out", str(Path(scratch) / "out")] + (["--quick"] if quick else [])
            )
        competitor = busy_process() if busy else None
        started = time.perf_counter()
        try:
            done = subprocess.run(command, env=env, capture_output=True, text=True)
        finally:
            if competitor is not None:
                competitor.kill()
                competitor.wait()
        wall = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        row = {"job": job, "threads": threads, "busy": busy, "wall_s": round(wall, 1)}
        if job == "pipeline":
            summary = json.loads((Path(scratch) / "out" / "summary.json").read_text())
            row["stage_s"] = summary["seconds"]
            # What the run measured, so a thread setting can be checked not to change the results.
            row["gold_reward"] = {name: p["gold_reward_mean"] for name, p in summary["policies"].items()}
            row["reward_model_accuracy"] = summary["reward_model"]["heldout_accuracy"]
        return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", default="build,pipeline", help="any of build, pipeline")
    parser.add_argument(
        "--threads",
        default="rule",
        help="comma-separated: rule (rlhfkit's choice), auto (torch's default), or a number",
    )
    parser.add_argument("--quick", action="store_true", help="the pipeline's smoke budget instead of the default")
    parser.add_argument("--repeats", type=int, default=1, help="quiet/busy pairs per job and thread setting")
    args = parser.parse_args()
    load_before = os.getloadavg()  # other work on the machine skews "quiet": say how much there was

    if "pipeline" in args.jobs:  # the pipeline's own runs use the cached build: make sure it exists first
        subprocess.run(
            CLI + ["build-default", "--quiet"],
            check=True,
            capture_output=True,
            env=dict(os.environ, HF_HUB_OFFLINE="1"),
        )
    rows = []
    for job in [j.strip() for j in args.jobs.split(",") if j.strip()]:
        for threads in [t.strip() for t in args.threads.split(",") if t.strip()]:
            for repeat in range(args.repeats):
                # Alternate which comes first, so a slow stretch of the machine does not always land on one side.
                for busy in (False, True) if repeat % 2 == 0 else (True, False):
                    row = run_once(job, threads, args.quick, busy)
                    rows.append(row)
                    print(
                        f"{job:8s} threads={threads:5s} {'busy ' if busy else 'quiet'} {row['wall_s']:7.1f} s"
                        + (f"  stages {row['stage_s']}" if "stage_s" in row else ""),
                        flush=True,
                    )

    print("\njob       threads  quiet s (median)  busy s (median)  busy / quiet")
    ratios = {}
    for job in sorted({r["job"] for r in rows}):
        for threads in sorted({r["threads"] for r in rows if r["job"] == job}):
            quiet = statistics.median(
                r["wall_s"] for r in rows if (r["job"], r["threads"], r["busy"]) == (job, threads, False)
            )
            busy = statistics.median(
                r["wall_s"] for r in rows if (r["job"], r["threads"], r["busy"]) == (job, threads, True)
            )
            ratios[f"{job}/{threads}"] = round(busy / quiet, 2)
            print(f"{job:9s} {threads:7s} {quiet:16.1f} {busy:16.1f} {busy / quiet:13.2f}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"threads_under_load{'_quick' if args.quick else ''}.json"
    out.write_text(
        json.dumps(
            {
                "machine": platform.platform(),
                "cpus": os.cpu_count(),
                "quick": args.quick,
                "load_before": load_before,
                "rows": rows,
                "busy_over_quiet": ratios,
            },
            indent=2,
        )
    )
    print(f"load average before the runs: {load_before[0]:.2f}; saved {out}")


if __name__ == "__main__":
    main()
