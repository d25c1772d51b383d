"""Three rounds of RLHF against one with the same labels and PPO steps, on the embedded default, over several seeds.

Both arms start from the same SFT model (the embedded default after the pipeline's SFT stage, trained once and
cached in bench/.cache/rounds/sft) and use `rlhfkit.rounds.run_rounds` with a simulated annotator (VADER plus 10%
flips, the pipeline's default labeller):

  rounds  --rounds R rounds, each labelling --prompts-per-round new prompts (k candidates of the current policy,
          at most --pairs-per-prompt pairs each), retraining the reward model from the SFT model on every label so
          far, and continuing PPO for --ppo-steps rollouts
  one     one round with R times the prompts (so the same number of labels, all from the SFT model) and R times
          the PPO steps

Per round and seed: the reward model's accuracy against gold (VADER, no noise) on pairs of the current policy's
samples on held-out prompts, before retraining (the previous round's reward model) and after; the new policy's
gold and proxy reward and KL to SFT on held-out prompts; and the over-optimisation gap (the policy's percentile
among SFT's samples by the reward model minus its percentile by gold; > 0: the reward model thinks it improved
more than it did). The summary compares the last round of `rounds` with `one` (mean over seeds, 95% t-interval
over seeds, and each seed's value), and prints how long each arm took.

    python bench/rounds.py [--seeds 3] [--rounds 3] [--prompts-per-round 128] [--ppo-steps 8] [--threads 1]

Saves bench/results/rounds.json (every round of every seed) and bench/results/rounds.html (the figure).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import statistics
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE, RESULTS = HERE / ".cache" / "rounds", HERE / "results"
MEASURES = ("rm_accuracy_before", "rm_accuracy_after", "gold_reward_mean", "proxy_reward_mean", "kl_to_ref")
MEASURES += ("win_rate_vs_ref", "overoptimization_gap")


# Student t's 97.5% quantile by degrees of freedom (1-10), for intervals over a few seeds; 1.96 beyond.
T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds: mean +- t(0.975, n - 1) * sd / sqrt(n)."""
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return mean, math.nan, math.nan
    half = (T975[n - 2] if n - 1 <= len(T975) else 1.96) * statistics.stdev(values) / math.sqrt(n)
    return mean, mean - half, mean + half


def sft_model(threads: int) -> str:
    """The pipeline's SFT stage on the embedded default, once (reused from the cache after)."""
    from rlhfkit import stages
    from rlhfkit.pipeline import PipelineSettings
    from rlhfkit.tasks import load_task
    from rlhfkit.threads import cpu_threads

    with cpu_threads(threads):
        run = stages.sft("tiny", load_task("reviews"), PipelineSettings().sft, CACHE / "sft", echo=False)
    return str(run.model_path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prompts-per-round", type=int, default=128)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--pairs-per-prompt", type=int, default=6)
    parser.add_argument("--ppo-steps", type=int, default=8, help="PPO rollouts per round (of 32 responses)")
    parser.add_argument("--eval-prompts", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 on a shared 2-core machine)")
    parser.add_argument("--keep", action="store_true", help="keep each run's folder in bench/.cache/rounds")
    args = parser.parse_args()

    import torch

    from rlhfkit.evaluation import EvalSettings
    from rlhfkit.pipeline import PipelineSettings
    from rlhfkit.rounds import RoundSettings, rounds_figure, run_rounds
    from rlhfkit.tasks import load_task
    from rlhfkit.threads import cpu_threads

    sft = sft_model(args.threads)
    task = load_task("reviews")
    defaults = PipelineSettings()
    base = RoundSettings(
        rounds=args.rounds,
        prompts_per_round=args.prompts_per_round,
        k=args.k,
        max_pairs_per_prompt=args.pairs_per_prompt,
        reward=defaults.reward,
        ppo=replace(defaults.ppo, total_steps=args.ppo_steps, progress=False),
        evaluation=EvalSettings(n_prompts=args.eval_prompts),
    )
    arms = {
        "rounds": base,
        "one": replace(
            base,
            rounds=1,
            prompts_per_round=args.rounds * args.prompts_per_round,
            ppo=replace(base.ppo, total_steps=args.rounds * args.ppo_steps),
        ),
    }
    runs, seconds = {name: [] for name in arms}, {name: [] for name in arms}
    for seed in range(args.seeds):
        for name, settings in arms.items():
            out = CACHE / f"{name}-seed{seed}"
            shutil.rmtree(out, ignore_errors=True)
            start = time.perf_counter()
            with cpu_threads(args.threads):
                done = run_rounds(sft, task, replace(settings, seed=seed), out, echo=False)
            seconds[name].append(time.perf_counter() - start)
            runs[name].append([{k: r[k] for k in ("round", "pairs_total", *MEASURES)} for r in done.rounds])
            print(f"seed {seed} {name}: {seconds[name][-1]:.0f} s", flush=True)
            for r in done.rounds:
                print("   ", {k: round(r[k], 3) if isinstance(r[k], float) else r[k] for k in ("round", *MEASURES)})
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)

    def over_seeds(arm: str, round_index: int) -> dict:
        table = {}
        for measure in MEASURES:
            values = [seed_rounds[round_index][measure] for seed_rounds in runs[arm]]
            if any(v is None for v in values):
                continue
            mean, lo, hi = t_interval(values)
            table[measure] = {"mean": mean, "ci95": [lo, hi], "per_seed": values}
        return table

    per_round = {arm: [over_seeds(arm, i) for i in range(len(runs[arm][0]))] for arm in arms}
    last = {arm: per_round[arm][-1] for arm in arms}
    differences = {}
    for measure in MEASURES:
        if measure in last["rounds"] and measure in last["one"]:
            diffs = [a - b for a, b in zip(last["rounds"][measure]["per_seed"], last["one"][measure]["per_seed"])]
            mean, lo, hi = t_interval(diffs)
            differences[measure] = {"mean": mean, "ci95": [lo, hi], "per_seed": diffs}
    result = {
        "what": f"{args.rounds} rounds of RLHF against one round with the same labels and PPO steps, embedded default",
        "conditions": {
            "settings": vars(args),
            "labeller": "simulated annotator: VADER with 10% flipped labels",
            "reward_model": "retrained each round from the SFT model on every label so far (RoundSettings default)",
            "labels_per_arm": runs["one"][0][-1]["pairs_total"],
            "machine": {"cpu_threads": args.threads, "python": platform.python_version(), "torch": torch.__version__},
        },
        "seconds": {arm: {"median": statistics.median(s), "per_seed": s} for arm, s in seconds.items()},
        "per_round": per_round,
        "last_round": last,
        "rounds_minus_one": differences,
        "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rounds.json").write_text(json.dumps(result, indent=2))
    rounds_figure(per_round, title=result["what"]).write_html(RESULTS / "rounds.html", include_plotlyjs=True)

    print(f"\nmean over {args.seeds} seeds [95% t-interval]; last round of 'rounds' against 'one'")
    for measure in MEASURES:
        cells = []
        for arm in ("rounds", "one"):
            m = last[arm].get(measure)
            cells.append(f"{m['mean']:.3f} [{m['ci95'][0]:.3f}, {m['ci95'][1]:.3f}]" if m else "-")
        d = differences.get(measure)
        diff = f"{d['mean']:+.3f} [{d['ci95'][0]:+.3f}, {d['ci95'][1]:+.3f}]" if d else "-"
        print(f"{measure:22s} rounds {cells[0]:28s} one {cells[1]:28s} difference {diff}")
    print(f"saved {RESULTS / 'rounds.json'} and rounds.html")


if __name__ == "__main__":
    main()
