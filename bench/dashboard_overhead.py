"""What the live dashboard costs: the same training run with and without `rlhfkit.live.Dashboard`, side by side in
one process.

Stages (each on the embedded default, 1 torch thread, the same seed in every run):

  ppo   our PPO (rlhfkit.train.ppo), VADER as the reward, the dashboard as its plain callback
  sft   TRL's SFTTrainer (rlhfkit.train.sft): ~0.1 s steps, the hardest case for a per-step callback
  dpo   TRL's DPOTrainer (rlhfkit.train.dpo) on VADER-split demonstration pairs (optional)

Arms per stage:

  none      no dashboard
  headless  Dashboard(live=False): records every step, writes run_dir/dashboard.html at the end (the CLI, nbclient)
  live      Dashboard(live=True): FigureWidgets and the sample table updated while training, throttled (defaults:
            min_interval 1 s, budget 5%). No front end is attached in a script, so the widget messages go to a
            comm that drops them: this measures everything the kernel does (building traces, plotly's validation,
            serialising the state), not the browser's rendering, which runs in another process.

Each repeat runs every arm once, in an order that rotates from repeat to repeat (so machine noise and warm-up do
not favour one arm); one untimed warm-up run per stage comes first. Measured per run: wall seconds and process CPU
seconds of the stage call (model loading and saving included, identical across arms; with one torch thread the
CPU seconds are less sensitive to other processes on a shared machine than wall seconds), and the seconds spent
inside the dashboard (`Dashboard.seconds`: recording, drawing, writing the file). Reported per stage and arm:
median wall and CPU seconds, the overhead ratios median(arm) / median(none) - 1 for both, and the dashboard's own
share of the run's wall time (median and worst), the direct measurement that machine noise cannot blur.

The first FigureWidget in a process imports plotly's renderers (nbformat, jsonschema, ...): a one-time cost per
kernel, which displaying any plotly figure in a notebook pays as well. It is measured first, on its own, and
reported as `one_time_widget_import_seconds`; the runs after it measure what every training run costs.
Prints a table and saves bench/results/dashboard_overhead.json.

    python bench/dashboard_overhead.py [--stages ppo,sft] [--repeats 3] [--ppo-steps 8] [--sft-steps 100]
                                       [--dpo-steps 24]

`--preset notebook` measures instead what a notebook user waits for on notebook 04's own PPO run (its settings:
24 steps of 32 prompts, 48 new tokens, learning rate 2e-4, beta 0.05, 16 samples logged per step, 1 torch
thread), each run in a FRESH process, so the live arm pays the first FigureWidget of a kernel (plotly's renderer
imports) inside its timing, the way the notebook's first dashboard does. The reward is VADER and the value model
starts from the policy (notebook 04 uses notebook 03's reward model for both; `--reward-model PATH` does that).
Per run: wall and CPU seconds from creating the dashboard to the end of its `with` block (the stage call inside
it), `Dashboard.seconds` (time the training thread spent in the dashboard, first widget included), and for the
live arm the CPU seconds of the background thread that imports plotly's widget stack. Reported: the dashboard's
own share of the run (target <= 3%) and the wall and CPU overhead against runs without it. Saves
bench/results/dashboard_overhead_notebook.json.

    python bench/dashboard_overhead.py --preset notebook [--repeats 3] [--arms none,live] [--reward-model PATH]
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

ARMS = ("none", "headless", "live")
TARGET = 0.05
NOTEBOOK_TARGET = 0.03


def make_stage(name: str, args):
    """A function run(callbacks, run_dir) -> None for the stage, with everything it needs built once."""
    from rlhfkit.judges import VaderJudge
    from rlhfkit.tiny import default_model_path, reviews_task

    task, model = reviews_task(), str(default_model_path(progress=False))
    if name == "ppo":
        from rlhfkit.train.ppo import PPOSettings, train_ppo

        settings = PPOSettings(
            total_steps=args.ppo_steps, progress=False, device="cpu", save_every=10_000, seed=0, cpu_threads=1
        )
        judge = VaderJudge()
        return lambda callbacks, run_dir: train_ppo(
            model, judge, task.train_prompts, settings, run_dir, callbacks=callbacks
        )
    quiet = {"save_strategy": "no"}
    if name == "sft":
        from rlhfkit.train.sft import SFTSettings, train_sft

        settings = SFTSettings(max_steps=args.sft_steps, n_samples=4, device="cpu", seed=0, trl_overrides=quiet)
        return lambda callbacks, run_dir: train_sft(model, task, settings, run_dir, callbacks=callbacks)
    if name == "dpo":
        from rlhfkit.train.dpo import DPOSettings, train_dpo

        demos = task.demonstrations
        scores = VaderJudge()([d["prompt"] for d in demos], [d["completion"] for d in demos])
        good = [d for d, s in zip(demos, scores) if s > 0.3]
        bad = [d for d, s in zip(demos, scores) if s < -0.3]
        pairs = [
            {"prompt": g["prompt"], "chosen": g["completion"], "rejected": b["completion"]} for g, b in zip(good, bad)
        ]
        settings = DPOSettings(max_steps=args.dpo_steps, n_samples=4, device="cpu", seed=0, trl_overrides=quiet)
        return lambda callbacks, run_dir: train_dpo(model, pairs, settings, run_dir, task=task, callbacks=callbacks)
    raise SystemExit(f"unknown stage {name!r}; choose from ppo, sft, dpo")


def timed_run(stage_fn, arm: str, run_dir: Path) -> dict:
    from rlhfkit.live import Dashboard

    shutil.rmtree(run_dir, ignore_errors=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    dash = None
    if arm == "none":
        stage_fn([], run_dir)
    else:
        # As a user would write it for our PPO (a context manager); TRL stages close it at on_train_end.
        with Dashboard(run_dir=run_dir, live=arm == "live") as dash:
            stage_fn([dash], run_dir)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    out = {"wall": wall, "cpu": cpu, "dashboard_seconds": dash.seconds if dash else 0.0}
    if dash is not None:
        out["points"] = sum(len(s[0]) for r in dash._runs for s in r.series.values())
        out["wrote_file"] = (run_dir / "dashboard.html").exists()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default="ppo,sft")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--ppo-steps", type=int, default=8)
    parser.add_argument("--sft-steps", type=int, default=100)
    parser.add_argument("--dpo-steps", type=int, default=24)
    parser.add_argument(
        "--preset",
        choices=["notebook"],
        default=None,
        help="notebook: notebook 04's PPO run, each run in a fresh process (see the docstring)",
    )
    parser.add_argument("--arms", default="none,live", help="arms of --preset notebook")
    parser.add_argument("--reward-model", default=None, help="--preset notebook: a reward model run's model folder")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)  # one run of --preset notebook
    parser.add_argument("--run-dir", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.child:
        return notebook_child(args)
    if args.preset == "notebook":
        return notebook_main(args)

    work = Path(tempfile.mkdtemp(prefix="dashboard_overhead-"))
    load_before = os.getloadavg()
    start = time.perf_counter()
    import plotly.graph_objects as go

    go.FigureWidget()  # the one-time import (see the docstring), measured on its own
    import_seconds = time.perf_counter() - start
    print(f"one-time FigureWidget import: {import_seconds:.2f} s", flush=True)
    results = {}
    try:
        for stage in args.stages.split(","):
            stage_fn = make_stage(stage, args)
            print(f"[{stage}] warm-up run (untimed)", flush=True)
            timed_run(stage_fn, "none", work / f"{stage}-warmup")
            runs = {arm: [] for arm in ARMS}
            for repeat in range(args.repeats):
                order = ARMS[repeat % len(ARMS) :] + ARMS[: repeat % len(ARMS)]  # rotate the order
                if repeat % 2:
                    order = order[::-1]
                for arm in order:
                    r = timed_run(stage_fn, arm, work / f"{stage}-{arm}")
                    r["repeat"] = repeat
                    runs[arm].append(r)
                    print(
                        f"[{stage}] repeat {repeat} {arm:8s} wall {r['wall']:7.2f} s  cpu {r['cpu']:7.2f} s  "
                        f"dashboard {r['dashboard_seconds']:.3f} s",
                        flush=True,
                    )
            results[stage] = summarise(runs)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    report = {
        "what": "wall time of a training stage with and without the live dashboard, same process, alternating order",
        "target_overhead": TARGET,
        "one_time_widget_import_seconds": import_seconds,
        "settings": vars(args),
        "machine": {
            "torch_threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "live_note": "no front end attached: widget messages are serialised and dropped by a comm with no peer; "
        "browser rendering happens in another process and is not measured",
        "stages": results,
    }
    out = Path(__file__).parent / "results" / "dashboard_overhead.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print()
    print(
        f"{'stage':6s} {'arm':9s} {'wall s':>7s} {'wall +':>7s} {'cpu s':>7s} {'cpu +':>7s} {'own share':>10s} "
        f"{'worst own':>10s}"
    )
    for stage, arms in results.items():
        for arm, row in arms.items():
            print(
                f"{stage:6s} {arm:9s} {row['median_wall']:7.2f} {row.get('overhead_ratio', 0):+7.1%} "
                f"{row['median_cpu']:7.2f} {row.get('cpu_overhead_ratio', 0):+7.1%} "
                f"{row.get('own_share_median', 0):10.2%} {row.get('own_share_max', 0):10.2%}"
            )
    worst = max(row.get("own_share_max", 0) for arms in results.values() for row in arms.values())
    print(f"\nworst dashboard share of a run's wall time: {worst:.2%} (target <= {TARGET:.0%}); saved {out}")


# --- --preset notebook: notebook 04's PPO run, one fresh process per run --------------------------------------------


def notebook_settings():
    """notebook 04's `ppo_settings(KL_COEFS[0])` with its defaults (PPO_STEPS 24, BATCH_SIZE 32, LEARNING_RATE 2e-4,
    MAX_NEW_TOKENS 48, SEED 0, num_samples 16, no LoRA: a separate value model) on a CPU with 1 torch thread."""
    from rlhfkit.train.ppo import PPOSettings

    return PPOSettings(
        total_steps=24,
        batch_size=32,
        learning_rate=2e-4,
        kl_coef=0.05,
        max_new_tokens=48,
        seed=0,
        device="cpu",
        value_model="separate",
        num_samples=16,
        cpu_threads=1,
    )


def notebook_child(args) -> None:
    """One run in this fresh process; prints one JSON line."""
    import threading

    from rlhfkit.judges import VaderJudge
    from rlhfkit.tiny import default_model_path, reviews_task
    from rlhfkit.train.ppo import train_ppo

    task, model = reviews_task(), str(default_model_path(progress=False))
    if args.reward_model:
        from rlhfkit.train.reward import RewardModelJudge

        reward, value_model = RewardModelJudge(args.reward_model, device="cpu"), args.reward_model
    else:
        reward, value_model = VaderJudge(), None
    settings, run_dir = notebook_settings(), Path(args.run_dir)
    shutil.rmtree(run_dir, ignore_errors=True)
    start, cpu_start = time.perf_counter(), time.process_time()
    dash = None
    if args.child == "none":
        train_ppo(model, reward, task.train_prompts, settings, run_dir, reference=model, value_model=value_model)
    else:
        from rlhfkit.live import Dashboard

        # As notebook 04 writes it (live=True: a script has no front end; nothing is displayed, widget messages
        # are dropped by a comm without a peer).
        with Dashboard(run_dir=run_dir, title="PPO bench", live=args.child == "live") as dash:
            train_ppo(
                model,
                reward,
                task.train_prompts,
                settings,
                run_dir,
                reference=model,
                value_model=value_model,
                callbacks=[dash],
            )
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    helper = [t for t in threading.enumerate() if t.name.startswith("rlhfkit")]
    out = {
        "arm": args.child,
        "wall": wall,
        "cpu": cpu,
        "dashboard_seconds": dash.seconds if dash else 0.0,
        "helper_threads_alive_at_end": len(helper),
        "widget_import_cpu": getattr(sys.modules.get("rlhfkit.live"), "_plot_import_cpu", None),
        "steps": settings.total_steps,
        "loadavg": os.getloadavg(),
    }
    print("RESULT " + json.dumps(out), flush=True)


def notebook_main(args) -> None:
    arms = tuple(args.arms.split(","))
    work = Path(tempfile.mkdtemp(prefix="dashboard_overhead_nb-"))
    load_before = os.getloadavg()
    runs: dict[str, list[dict]] = {arm: [] for arm in arms}
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]),
    )
    print(
        f"notebook 04's PPO run (24 steps x 32 prompts, 48 new tokens, 1 torch thread), a fresh process per run; "
        f"load average {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} on {os.cpu_count()} cores",
        flush=True,
    )
    try:
        for repeat in range(args.repeats):
            order = arms if repeat % 2 == 0 else arms[::-1]
            for arm in order:
                command = [sys.executable, __file__, "--child", arm, "--run-dir", str(work / arm)]
                if args.reward_model:
                    command += ["--reward-model", args.reward_model]
                done = subprocess.run(command, capture_output=True, text=True, env=env)
                line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
                if line is None:
                    raise SystemExit(f"run {arm} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
                r = json.loads(line[len("RESULT ") :])
                r["repeat"] = repeat
                runs[arm].append(r)
                extra = (
                    f"  widget import (background) cpu {r['widget_import_cpu']:.2f} s"
                    if r.get("widget_import_cpu") is not None
                    else ""
                )
                print(
                    f"[notebook] repeat {repeat} {arm:8s} wall {r['wall']:7.2f} s  cpu {r['cpu']:7.2f} s  "
                    f"dashboard {r['dashboard_seconds']:6.3f} s ({r['dashboard_seconds'] / r['wall']:.2%}){extra}  "
                    f"load {r['loadavg'][0]:.2f}",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = summarise(runs) if "none" in runs else {}
    report = {
        "what": "notebook 04's PPO run with and without the live dashboard, a fresh process per run (first widget "
        "included), alternating order",
        "target_own_share": NOTEBOOK_TARGET,
        "settings": vars(args),
        "machine": {
            "cpu_count": os.cpu_count(),
            "load_average_before": load_before,
            "load_average_after": os.getloadavg(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "runs": runs,
        "summary": summary,
    }
    out = Path(__file__).parent / "results" / "dashboard_overhead_notebook.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print()
    for arm, row in summary.items():
        if arm == "none":
            print(f"notebook none     wall {row['median_wall']:7.2f} s  cpu {row['median_cpu']:7.2f} s")
        else:
            print(
                f"notebook {arm:8s} wall {row['median_wall']:7.2f} s ({row['overhead_ratio']:+.1%})  cpu "
                f"{row['median_cpu']:7.2f} s ({row['cpu_overhead_ratio']:+.1%})  own share median "
                f"{row['own_share_median']:.2%}, worst {row['own_share_max']:.2%} (target <= {NOTEBOOK_TARGET:.0%})"
            )
    after = os.getloadavg()
    print(
        f"load average before {load_before[0]:.2f}, after {after[0]:.2f} (1 min) on {os.cpu_count()} cores; saved {out}"
    )


def summarise(runs: dict[str, list[dict]]) -> dict:
    base = statistics.median(r["wall"] for r in runs["none"])
    base_cpu = statistics.median(r["cpu"] for r in runs["none"])
    out = {}
    for arm, rows in runs.items():
        median, median_cpu = statistics.median(r["wall"] for r in rows), statistics.median(r["cpu"] for r in rows)
        row = {
            "median_wall": median,
            "median_cpu": median_cpu,
            "walls": [r["wall"] for r in rows],
            "cpus": [r["cpu"] for r in rows],
        }
        if arm != "none":
            shares = [r["dashboard_seconds"] / r["wall"] for r in rows]
            row.update(
                {
                    "overhead_ratio": median / base - 1,
                    "cpu_overhead_ratio": median_cpu / base_cpu - 1,
                    "dashboard_seconds": [r["dashboard_seconds"] for r in rows],
                    "own_share_median": statistics.median(shares),
                    "own_share_max": max(shares),
                    "points_recorded": rows[-1].get("points"),
                    "wrote_dashboard_html": all(r.get("wrote_file") for r in rows) if arm == "headless" else None,
                }
            )
        out[arm] = row
    return out


if __name__ == "__main__":
    main()
