"""Batched, left-padded sampling against one prompt at a time, side by side in one run.

Same model (the embedded default), same prompts, same K, same response length; only the batch size differs.
Prints and saves (bench/results/sampling_batching.json) candidates per second for each and their ratio.

    python bench/sampling_batching.py [--prompts 32] [--k 4] [--max-new-tokens 48] [--repeats 3]
"""

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from rlhfkit.models import load_policy, load_tokenizer
from rlhfkit.sampling import SamplingSettings, sample_candidates
from rlhfkit.tasks import load_task


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--k", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per arm, interleaved; the median counts")
    args = parser.parse_args()

    tokenizer, model = load_tokenizer("tiny"), load_policy("tiny")
    prompts = load_task("reviews").eval_prompts[: args.prompts]
    arms = {"batched": args.batch_size, "one_at_a_time": 1}
    seconds = {name: [] for name in arms}
    tokens = {}
    sample_candidates(model, tokenizer, prompts[:2], SamplingSettings(k=args.k, seed=0), progress=False)  # warm-up
    for _ in range(args.repeats):
        for name, batch_size in arms.items():  # interleaved, so machine noise hits both arms alike
            config = SamplingSettings(k=args.k, max_new_tokens=args.max_new_tokens, batch_size=batch_size, seed=0)
            start = time.perf_counter()
            table = sample_candidates(model, tokenizer, prompts, config, progress=False)
            seconds[name].append(time.perf_counter() - start)
            tokens[name] = int(table.n_tokens.sum())
    median = {name: sorted(s)[len(s) // 2] for name, s in seconds.items()}
    n = len(prompts) * args.k
    result = {
        "what": "sampling K candidates per prompt on the embedded default",
        "settings": vars(args),
        "machine": {
            "cpu_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "seconds_median": median,
        "seconds_all": seconds,
        "candidates_per_second": {name: n / s for name, s in median.items()},
        "generated_tokens": tokens,
        "speedup_batched_over_one_at_a_time": median["one_at_a_time"] / median["batched"],
    }
    out = Path(__file__).parent / "results" / "sampling_batching.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    for name in arms:
        print(f"{name:>14}: {median[name]:6.2f} s  {n / median[name]:7.1f} candidates/s  ({tokens[name]} tokens)")
    print(f"speed-up of batching: {result['speedup_batched_over_one_at_a_time']:.2f}x   (saved to {out})")


if __name__ == "__main__":
    main()
