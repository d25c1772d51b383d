"""The real-model pipeline on one CUDA device in bf16: per-stage seconds, peak GPU memory per stage, generation
tokens/s and PPO's first-minibatch ratio and clip fraction. Run through bench/gpu_check.sh (see bench/GPU.md).

    python bench/gpu_check.py --model-dir PATH [--out runs/gpu_check] [--dry-run]

`--model-dir` is the converted SmolLM2-135M-Instruct folder (a plain safetensors folder, copied from a machine that
converted it: `python -c "from rlhfkit.models import resolve_model; print(resolve_model('smollm2-135m'))"`); the short
name "smollm2-135m" is pointed at it, so the pipeline takes the model's preset (LoRA on every stage) and no GGUF
reader is needed. SFT runs (the preset skips it on a CPU) so that its memory is measured too. `--dry-run` prints the
settings and the plan without CUDA or training.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STAGES = ("sft", "label_preferences", "reward_model", "ppo", "dpo", "online", "evaluate")
"""The `rlhfkit.stages` functions the pipeline calls, wrapped to time them and record their peak GPU memory."""


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", help="converted SmolLM2-135M-Instruct folder (default: resolve the short name)")
    parser.add_argument("--out", default="runs/gpu_check", help="pipeline output folder (replaced if it is one)")
    parser.add_argument("--methods", default="ppo,dpo,rloo", help="comma-separated subset of ppo,dpo,rloo")
    parser.add_argument("--skip-sft", action="store_true", help="skip SFT as the CPU preset does (no SFT memory)")
    parser.add_argument("--gen-prompts", type=int, default=64, help="prompts for the generation throughput test")
    parser.add_argument("--dry-run", action="store_true", help="print the settings and plan; no CUDA, no training")
    args = parser.parse_args(argv)
    if args.model_dir is not None and not (Path(args.model_dir) / "config.json").is_file():
        parser.error(f"--model-dir {args.model_dir}: no config.json there (expected the converted model folder)")
    return args


def build_settings(args: argparse.Namespace):
    from rlhfkit.models import SMOLLM2
    from rlhfkit.pipeline import PipelineSettings

    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    settings = PipelineSettings.for_model(SMOLLM2, out_dir=args.out, methods=methods, skip_sft=args.skip_sft)
    quiet = {"disable_tqdm": True}
    # device None: CUDA when present, and bf16 there (rlhfkit.train.common, rlhfkit.models.pick_dtype); PPO's
    # own loop takes bf16 autocast from mixed_precision.
    return replace(
        settings,
        sft=replace(settings.sft, trl_overrides=quiet),
        reward=replace(settings.reward, trl_overrides=quiet),
        dpo=replace(settings.dpo, trl_overrides=quiet),
        rloo=replace(settings.rloo, trl_overrides=quiet),
        ppo=replace(settings.ppo, mixed_precision="bf16", progress=False),
    )


def require_cuda() -> None:
    try:
        import torch
    except ImportError:
        sys.exit("gpu_check: torch is not installed")
    if not torch.cuda.is_available():
        sys.exit(
            "gpu_check: no CUDA device (torch.cuda.is_available() is False): this check measures GPU memory and "
            "speed and runs only on a machine with an NVIDIA GPU and a CUDA build of torch"
        )
    if not torch.cuda.is_bf16_supported():
        sys.exit(f"gpu_check: {torch.cuda.get_device_name()} does not support bf16, which this check measures")


def instrument(record: dict) -> None:
    """Wrap the pipeline's stages (seconds, peak memory each, reset at its start) and PPO's policy loss (the first
    minibatch's ratio and clip fraction)."""
    import torch

    from rlhfkit import stages
    from rlhfkit.train import ppo as ppo_module

    def wrap(name, fn):
        @functools.wraps(fn)
        def timed(*a, **kw):
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            start = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                torch.cuda.synchronize()
                record["stages"][name] = {
                    "seconds": round(time.perf_counter() - start, 1),
                    "peak_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
                }

        return timed

    for name in STAGES:
        setattr(stages, name, wrap(name, getattr(stages, name)))

    loss = ppo_module.policy_loss

    @functools.wraps(loss)
    def first_policy_loss(*a, **kw):
        out = loss(*a, **kw)
        if "ppo_first_minibatch" not in record:
            record["ppo_first_minibatch"] = {k: float(v) for k, v in out[1].items()}
        return out

    ppo_module.policy_loss = first_policy_loss


def generation_speed(model_path: str, prompts: list[str], max_new_tokens: int) -> dict:
    import torch

    from rlhfkit.models import load_policy, load_tokenizer
    from rlhfkit.sampling import SamplingSettings, sample_candidates

    tokenizer, model = load_tokenizer(model_path), load_policy(model_path)
    config = SamplingSettings(k=1, max_new_tokens=max_new_tokens, seed=0, batch_size=len(prompts))
    sample_candidates(model, tokenizer, prompts[:4], replace(config, batch_size=4), progress=False)  # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    table = sample_candidates(model, tokenizer, prompts, config, progress=False)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tokens = int(table["n_tokens"].sum())
    return {
        "prompts": len(prompts),
        "batch": len(prompts),
        "tokens": tokens,
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 1),
        "dtype": str(next(model.parameters()).dtype),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    settings = build_settings(args)
    print(f"settings: model {settings.model} (preset), methods {settings.methods}, skip_sft {settings.skip_sft}")
    for stage in ("sft", "reward", "ppo", "dpo", "rloo"):
        s = asdict(getattr(settings, stage))
        steps = s.get("max_steps", s.get("total_steps"))
        print(
            f"  {stage}: lr {s['learning_rate']:g}, steps {steps}, lora r={s['lora']['r']} alpha={s['lora']['alpha']}"
        )
    if args.dry_run:
        print(
            f"dry run: would write {args.out}, measure {len(STAGES)} stages and generation on "
            f"{args.gen_prompts} prompts"
        )
        return 0

    require_cuda()
    import torch

    from rlhfkit.models import SMOLLM2, register_model, resolve_model
    from rlhfkit.pipeline import run_pipeline
    from rlhfkit.tasks import load_task

    if args.model_dir:
        folder = str(Path(args.model_dir).resolve())
        register_model(SMOLLM2, lambda: folder, replace=True)
    model_path = resolve_model(SMOLLM2)
    print(f"device: {torch.cuda.get_device_name()}, torch {torch.__version__}, model {model_path}")

    record: dict = {"device": torch.cuda.get_device_name(), "model": model_path, "stages": {}}
    instrument(record)
    start = time.perf_counter()
    summary = run_pipeline(settings, echo=True, overwrite=True)
    record["pipeline_seconds"] = round(time.perf_counter() - start, 1)
    record["pipeline_stage_seconds"] = summary["seconds"]

    ppo_metrics = Path(args.out) / "ppo" / "metrics.jsonl"
    if ppo_metrics.is_file():
        first = json.loads(ppo_metrics.read_text().splitlines()[0])
        keys = ("step", "val/ratio", "val/ratio_var", "policy/clipfrac_avg", "policy/approxkl_avg", "objective/kl")
        record["ppo_step1_metrics"] = {k: first.get(k) for k in keys}

    task = load_task(settings.task)
    record["generation"] = generation_speed(
        model_path, task.eval_prompts[: args.gen_prompts], settings.evaluation.max_new_tokens
    )

    print("\n=== gpu check ===")
    print(f"device: {record['device']}   pipeline: {record['pipeline_seconds']} s")
    print(f"{'stage':<20}{'seconds':>10}{'peak GiB':>12}")
    for name, row in record["stages"].items():
        print(f"{name:<20}{row['seconds']:>10}{row['peak_gib']:>12}")
    gen = record["generation"]
    print(f"generation: {gen['tokens']} tokens in {gen['seconds']} s = {gen['tokens_per_s']} tokens/s ({gen['dtype']})")
    if "ppo_first_minibatch" in record:
        first = record["ppo_first_minibatch"]
        print(f"PPO first minibatch: ratio {first['ratio']:.4f}, clip fraction {first['clipfrac']:.4f}")
    if "ppo_step1_metrics" in record:
        print(f"PPO step 1 (metrics.jsonl, averaged over its minibatches): {record['ppo_step1_metrics']}")
    from rlhfkit.runs import read_manifest, record_written

    out = Path(args.out) / "gpu_check.json"
    # The output folder is the pipeline's (rlhfkit.json lists what rlhfkit wrote): never replace someone else's file.
    if out.exists() and out.name not in (read_manifest(args.out) or {}).get("files", []):
        print(f"{out} exists and was not written by rlhfkit: move it away to keep these figures", file=sys.stderr)
        return 1
    record_written(args.out, out.name)
    out.write_text(json.dumps(record, indent=2))
    print(f"written: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
