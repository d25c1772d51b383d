"""The frontier of two conflicting gold criteria on the embedded default: "positive" (VADER) against "brief" (minus
the word count), as the weight of PPO's combined reward moves from one criterion to the other.

From the pipeline's SFT model (trained once, cached in bench/.cache/rounds/sft, shared with bench/rounds.py):
--prompts train prompts x --k candidates, at most --pairs-per-prompt pairs each, go into a label store; one
simulated annotator per criterion labels every pair on its criterion (that criterion's gold judge, --flip-rate of
the labels flipped); `rlhfkit.criteria.criteria_frontier` then trains a reward model per criterion and one PPO run
per weighting (brief weight 0, 0.25, 0.5, 0.75, 1; --ppo-steps rollouts of 32 each), and scores every policy with
both gold judges on the held-out prompts (bootstrap 95% intervals over prompts).

    python bench/criteria_frontier.py [--seed 0] [--prompts 256] [--ppo-steps 24] [--threads 1]

Prints the frontier and saves bench/results/criteria_frontier.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
CACHE, RESULTS = HERE / ".cache" / "criteria", HERE / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--pairs-per-prompt", type=int, default=6)
    parser.add_argument("--flip-rate", type=float, default=0.1)
    parser.add_argument("--ppo-steps", type=int, default=24)
    parser.add_argument("--eval-prompts", type=int, default=128)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 on a shared 2-core machine)")
    args = parser.parse_args()

    import torch

    from rounds import sft_model  # bench/rounds.py: the same cached SFT model

    from rlhfkit import stages
    from rlhfkit.criteria import CriteriaSettings, criteria_frontier
    from rlhfkit.evaluation import EvalSettings
    from rlhfkit.judges import SimulatedAnnotator
    from rlhfkit.labeling import LabelStore, annotate_with_judge
    from rlhfkit.pipeline import PipelineSettings
    from rlhfkit.sampling import SamplingSettings, candidate_pairs
    from rlhfkit.tasks import load_task
    from rlhfkit.threads import cpu_threads

    start = time.perf_counter()
    sft = sft_model(args.threads)
    task = load_task("reviews")
    shutil.rmtree(CACHE, ignore_errors=True)
    CACHE.mkdir(parents=True)
    store_path = CACHE / "labels.sqlite"
    with cpu_threads(args.threads):
        sampling = SamplingSettings(k=args.k, seed=args.seed)
        table = stages.candidates(sft, task.train_prompts[: args.prompts], sampling, progress=False)
        with LabelStore(store_path) as store:
            store.add_pairs(candidate_pairs(table, args.pairs_per_prompt, seed=args.seed))
            for criterion in ("positive", "brief"):
                annotator = SimulatedAnnotator(
                    task.gold_for(criterion), noise="flip", flip_rate=args.flip_rate, seed=args.seed
                )
                annotate_with_judge(store, annotator, "sim", criterion=criterion, seed=args.seed, progress=False)
            pairs = store.count("pair")
        defaults = PipelineSettings()
        settings = CriteriaSettings(
            reward=defaults.reward,
            ppo=replace(defaults.ppo, total_steps=args.ppo_steps, progress=False),
            evaluation=EvalSettings(n_prompts=args.eval_prompts),
            seed=args.seed,
        )
        frontier = criteria_frontier(sft, task, store_path, settings, CACHE / "run", echo=False)
    seconds = time.perf_counter() - start

    result = {
        "what": "gold frontier of 'positive' (VADER) against 'brief' (-words) as PPO's weights move, embedded default",
        "conditions": {
            "settings": vars(args),
            "pairs": pairs,
            "labels": f"one simulated annotator per criterion, its gold judge with {args.flip_rate:.0%} flips",
            "machine": {"cpu_threads": args.threads, "python": platform.python_version(), "torch": torch.__version__},
        },
        "seconds": seconds,
        "frontier": frontier.to_dict("records"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "criteria_frontier.json").write_text(json.dumps(result, indent=2))
    columns = ["policy", "w_brief", "gold_positive", "gold_positive_ci_lo", "gold_positive_ci_hi"]
    columns += ["gold_brief", "gold_brief_ci_lo", "gold_brief_ci_hi", "mean_words", "kl_to_ref"]
    print(frontier[columns].round(3).to_string(index=False))
    print(f"{pairs} pairs, {seconds:.0f} s; saved {RESULTS / 'criteria_frontier.json'}")


if __name__ == "__main__":
    main()
