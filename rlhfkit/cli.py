"""`rlhfkit ...`: the command line. Each subcommand is a thin layer over the library."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _build_default(args: argparse.Namespace) -> int:
    from rlhfkit.tiny import build_info, default_model_path

    path = default_model_path(force=args.force, progress=not args.quiet)
    info = build_info(path)
    print(f"embedded default model: {path}")
    print(
        f"  parameters: {info['parameters']:,}   pretraining: {info['build_seconds']:.1f} s "
        f"on {info['train_tokens_seen']:,} tokens"
    )
    print(
        f"  eval loss: {info['eval_loss']:.3f} nats/token   "
        f"(unigram baseline {info['unigram_baseline_loss']:.3f}; held-out items only)"
    )
    print("  samples (temperature 1, held-out prompts):")
    for sample in info["samples"]:
        print(f"    > {sample['prompt']}\n      {sample['response']}")
    return 0


def _sample(args: argparse.Namespace) -> int:
    import pandas as pd

    from rlhfkit.tasks import load_task
    from rlhfkit.models import load_policy, load_tokenizer
    from rlhfkit.sampling import SamplingSettings, sample_candidates

    if args.out and Path(args.out).suffix not in (".jsonl", ".csv", ".parquet"):
        raise ValueError(f"--out {args.out}: expected a file ending in .jsonl, .csv or .parquet")
    if args.prompt:
        prompts = args.prompt
    else:
        task = load_task(args.task)
        prompts = task.eval_prompts[: args.n_prompts]
    config = SamplingSettings(
        k=1 if args.greedy else args.k,
        do_sample=not args.greedy,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        batch_size=args.batch_size,
    )
    tokenizer = load_tokenizer(args.model, trust_remote_code=args.trust_remote_code)
    model = load_policy(args.model, device=args.device, trust_remote_code=args.trust_remote_code)
    table = sample_candidates(model, tokenizer, prompts, config, progress=not args.quiet)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".csv":
            table.to_csv(out, index=False)
        elif out.suffix == ".parquet":
            table.to_parquet(out, index=False)
        else:
            table.to_json(out, orient="records", lines=True, force_ascii=False)
        print(f"wrote {len(table)} candidates to {out}")
    with pd.option_context("display.max_colwidth", 90, "display.width", 200):
        print(
            table[["prompt_index", "candidate", "n_tokens", "sum_logprob", "finish_reason", "response"]].to_string(
                index=False
            )
        )
    return 0


def _pipeline(args: argparse.Namespace) -> int:
    from rlhfkit.pipeline import PipelineSettings, run_pipeline

    options = dict(
        model=args.model,
        task=args.task,
        judge=args.judge,
        labels_from=args.labels_from,
        out_dir=args.out,
        seed=args.seed,
        report_to=[n.strip() for n in args.report_to.split(",")] if args.report_to else None,
    )
    if args.methods is not None:  # else the model's preset decides (smollm2-135m: ppo,dpo), or all three
        options["methods"] = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    if args.skip_sft is not None:
        options["skip_sft"] = args.skip_sft
    # A model with a preset (smollm2-135m) gets settings sized for it; any other model the defaults, as before.
    settings = PipelineSettings.for_model(quick=args.quick, **options)
    run_pipeline(settings, overwrite=args.overwrite)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlhfkit",
        description="A workbench for RLHF: SFT, preferences, reward models, PPO and DPO on a model you can run.",
    )
    parser.add_argument(
        "--threads",
        metavar="N",
        help="torch CPU threads per process (a number or 'auto'); "
        "default: $RLHFKIT_THREADS, else 1 for models under 20M parameters such as the embedded "
        "default (a second thread slows them down on a busy machine), else torch's default",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    build = sub.add_parser(
        "build-default",
        help="build (or find) the embedded default model and show it",
        description="Build the embedded default (a review corpus, a BPE tokenizer and a small "
        "Llama, about 2.5 minutes on a 2-core CPU) into the cache, or find the cached build, and print "
        "where it is, its eval loss and a few samples. Cache: $RLHFKIT_CACHE or ~/.cache/rlhfkit.",
    )
    build.add_argument("--force", action="store_true", help="rebuild even if a valid build is cached")
    build.add_argument("--quiet", action="store_true", help="no progress bar")
    build.set_defaults(func=_build_default)

    sample = sub.add_parser(
        "sample",
        help="sample K candidate responses per prompt",
        description="Sample K candidates per prompt from a model and print (and optionally "
        "save) a table with token counts, log-probabilities and finish reasons.",
    )
    sample.add_argument("--model", default="tiny", help="'tiny' (the embedded default), a local folder or a Hub id")
    sample.add_argument("--task", default="reviews", help="task whose eval prompts to use (default: reviews)")
    sample.add_argument("--prompt", action="append", help="a prompt to use instead of the task's (repeatable)")
    sample.add_argument("--n-prompts", type=int, default=4, help="how many of the task's eval prompts")
    sample.add_argument("--k", type=int, default=4, help="candidates per prompt")
    sample.add_argument("--greedy", action="store_true", help="greedy decoding (one candidate per prompt)")
    sample.add_argument("--temperature", type=float, default=1.0)
    sample.add_argument("--top-p", type=float, default=1.0)
    sample.add_argument("--top-k", type=int, default=0)
    sample.add_argument("--max-new-tokens", type=int, default=64)
    sample.add_argument("--batch-size", type=int, default=16, help="prompts per generate call")
    sample.add_argument("--seed", type=int, default=None, help="seed for reproducible samples")
    sample.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda if present)")
    sample.add_argument("--out", help="save the table (.jsonl, .csv or .parquet)")
    sample.add_argument("--trust-remote-code", action="store_true", help="allow the model's own code to run")
    sample.add_argument("--quiet", action="store_true", help="no progress bar")
    sample.set_defaults(func=_sample)

    pipeline = sub.add_parser(
        "pipeline",
        help="run the whole pipeline: SFT, labels, reward model, PPO/DPO/RLOO, evaluation, report",
        description="SFT -> K candidates per prompt -> simulated annotator (gold judge plus "
        "noise) -> reward model -> PPO, DPO and RLOO from the same SFT model -> evaluation -> "
        "OUT/report.html and OUT/summary.json. Each stage writes a run directory under OUT. "
        "OUT must be new, empty, or an earlier pipeline output (marked by OUT/rlhfkit.json): "
        "any other non-empty folder is refused (exit code 2), since rlhfkit never overwrites "
        "or deletes files it did not write. Run again with the same options to continue an "
        "earlier output (resume): stages it finished are reused, an interrupted stage resumes "
        "from its last checkpoint; evaluation and the report are redone. With other options "
        "it is refused unless --overwrite.",
    )
    pipeline.add_argument("--out", default="runs/pipeline", help="output folder (default: runs/pipeline)")
    pipeline.add_argument(
        "--model",
        default="tiny",
        help="'tiny' (the embedded default), 'smollm2-135m' (SmolLM2-135M-Instruct with settings sized for it on a "
        "CPU: LoRA, SFT skipped), a local folder or a Hub id",
    )
    pipeline.add_argument(
        "--skip-sft",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="no SFT: the starting model is the SFT policy and the reference (the smollm2-135m preset's default; "
        "--no-skip-sft runs a short SFT on the task's demonstrations there)",
    )
    pipeline.add_argument(
        "--task",
        default="reviews",
        help="task name, prompts file (.jsonl/.csv/.json/.parquet with a 'prompt' column, and 'completion' for SFT "
        "demonstrations) or dataset folder (default: reviews)",
    )
    pipeline.add_argument(
        "--judge",
        help="the gold judge, for a task without one or to replace its own: a builtin judge (vader, length) or "
        "module:function, a function f(prompts, responses) -> list of floats in a module Python can import (the "
        "current folder included)",
    )
    pipeline.add_argument(
        "--labels-from",
        metavar="SOURCE",
        help="who labels the preference pairs instead of the simulated annotator (gold judge plus noise): a label "
        "store (.sqlite) filled in the labeling widgets, a preferences file, or a judge (builtin name or "
        "module:function) as an AI labeller",
    )
    pipeline.add_argument(
        "--methods",
        help="comma-separated subset of ppo,dpo,rloo (default: all three; a model's preset may choose fewer, e.g. "
        "smollm2-135m runs ppo,dpo)",
    )
    pipeline.add_argument("--seed", type=int, default=0)
    pipeline.add_argument(
        "--quick",
        action="store_true",
        help="smoke-test budgets (about 2 minutes on a CPU for the embedded default)",
    )
    pipeline.add_argument(
        "--report-to",
        metavar="TRACKERS",
        help="also log every stage to these experiment trackers "
        "(comma-separated: tensorboard, wandb, trackio, mlflow, ..., or all); TensorBoard writes "
        "into OUT/<stage>/tensorboard",
    )
    pipeline.add_argument(
        "--overwrite",
        action="store_true",
        help="start over in an earlier pipeline output folder: delete rlhfkit's own files there "
        "(listed in OUT/rlhfkit.json) and run every stage again; files you added are kept",
    )
    pipeline.set_defaults(func=_pipeline)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.threads is not None:
        from rlhfkit.threads import ENV_VAR, parse_threads

        try:
            parse_threads(args.threads, "--threads")
        except ValueError as err:
            parser.error(str(err))
        # The environment carries the choice to every stage and to processes started from here (accelerate ranks).
        os.environ[ENV_VAR] = args.threads
    if getattr(args, "quiet", False):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    try:
        return args.func(args)
    except (OSError, ValueError) as err:  # bad input: one clear line, not a traceback
        print(f"rlhfkit {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
