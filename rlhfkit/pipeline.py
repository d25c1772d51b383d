"""The whole RLHF pipeline in one call: what `rlhfkit pipeline` and the quickstart notebook run.

    model -> SFT -> K candidates per prompt -> simulated annotator labels pairs -> reward model
          -> PPO, DPO and RLOO from the same SFT model -> evaluation -> report.html + summary.json

Every stage writes its own run directory under `out_dir`, so the dashboard and the comparison can read any of
them, live or after a restart. The numbers in summary.json are what the run measured; if a method does not beat
SFT, the summary table says so.

The output folder follows the rule of `rlhfkit.runs`: nothing rlhfkit did not write is overwritten or deleted.
Its manifest (`out_dir/rlhfkit.json`) marks it as a pipeline output, with the settings, the stages finished so far
and the names rlhfkit wrote. `out_dir` must be new, empty, or such an output:

- a non-empty folder without the manifest is refused (FileExistsError naming the folder and what is in it);
- an earlier output with the same settings is continued (resume): finished stages are reused as they are, an
  interrupted training stage resumes from its last checkpoint, the rest run; evaluation, summary.json and
  report.html are always redone;
- an earlier output with other settings is refused unless `overwrite=True`, which deletes rlhfkit's own files
  there and starts over. Files you added to the folder (or to a stage's folder) are kept either way.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from rlhfkit.compare import (
    overoptimization_figure,
    overoptimization_fits,
    rl_overoptimization_points,
    summary_table,
    win_rate_table,
    write_report,
)
from rlhfkit.data import load_preferences, load_task
from rlhfkit.evaluation import EvalSettings, evaluate_policies
from rlhfkit.judges import SimulatedAnnotator
from rlhfkit.models import load_policy, load_tokenizer, resolve_model
from rlhfkit.runs import Manifest, check_ours_to_write, jsonable, read_manifest, remove_written
from rlhfkit.runs import load as load_run
from rlhfkit.sampling import SamplingSettings, candidate_pairs, sample_candidates
from rlhfkit.threads import cpu_threads
from rlhfkit.train.dpo import DPOSettings, train_dpo
from rlhfkit.train.online import OnlineSettings, train_online
from rlhfkit.train.ppo import PPOSettings, train_ppo
from rlhfkit.train.reward import RewardModelJudge, RewardSettings, pairwise_accuracy, train_reward_model
from rlhfkit.train.sft import SFTSettings, train_sft

__all__ = ["PipelineSettings", "run_pipeline", "open_output_folder", "METHODS"]

METHODS = ("ppo", "dpo", "rloo")
PREFERENCES, REWARD_CHECK, SUMMARY, REPORT = "preferences.jsonl", "reward_check.jsonl", "summary.json", "report.html"


@dataclass
class PipelineSettings:
    """The pipeline's knobs. Defaults run on the embedded default on a CPU in a few minutes; for a real model on
    a GPU change `model` (a Hub id or folder), `task`, and the stage budgets."""

    model: str = "tiny"
    """Starting model: "tiny" (the embedded default), a local folder or a Hub id."""
    task: str = "reviews"
    """Task name or prompts file; its gold judge labels pairs and scores the evaluation."""
    out_dir: str = "runs/pipeline"
    """Where every stage's run directory, report.html and summary.json go."""
    seed: int = 0
    """One seed for every stage."""
    methods: tuple[str, ...] = METHODS
    """Which RLHF methods to run after the reward model: any of "ppo", "dpo", "rloo"."""
    n_label_prompts: int = 1024
    """Train prompts whose SFT candidates are labelled into preference pairs (the embedded task has 1,024)."""
    k: int = 6
    """Candidates sampled per labelled prompt (each prompt gives up to k(k-1)/2 pairs)."""
    max_pairs_per_prompt: int | None = 15
    """Cap on pairs per prompt, so one prompt cannot dominate the preference data (None = all k(k-1)/2)."""
    candidate_temperature: float = 1.0
    """Sampling temperature for the labelled candidates (diversity makes informative pairs)."""
    flip_rate: float = 0.1
    """Label noise of the simulated annotator: probability of picking the gold-worse response."""
    n_rm_check_prompts: int = 128
    """Eval prompts whose candidates, paired and labelled by the gold judge without noise, test the reward model."""
    rm_check_k: int = 4
    """Candidates per check prompt (all k(k-1)/2 distinct pairs are scored; ties in gold reward are dropped)."""
    sft: SFTSettings = field(default_factory=SFTSettings)
    reward: RewardSettings = field(default_factory=RewardSettings)
    ppo: PPOSettings = field(default_factory=PPOSettings)
    dpo: DPOSettings = field(default_factory=lambda: DPOSettings(max_steps=72))
    """DPO is capped at 72 steps (2,304 pairs seen): one pass over the labelled pairs would take ~6x longer and
    only drives it further from SFT."""
    rloo: OnlineSettings = field(default_factory=OnlineSettings)
    evaluation: EvalSettings = field(default_factory=EvalSettings)
    report_to: str | list[str] | None = None
    """Experiment trackers for every training stage (each stage's `report_to`: "tensorboard", "wandb", a list,
    ...); None leaves each stage's own setting. TensorBoard writes into each stage's folder (OUT/sft/tensorboard,
    ...), so `tensorboard --logdir OUT` shows them side by side."""

    def __post_init__(self) -> None:
        if self.report_to is not None:
            for stage in ("sft", "reward", "ppo", "dpo", "rloo"):
                setattr(self, stage, replace(getattr(self, stage), report_to=self.report_to))

    @classmethod
    def quick(cls, **overrides: Any) -> "PipelineSettings":
        """A smoke-test budget (CI): every stage runs, each for a fraction of its default steps."""
        base = cls(**overrides)
        return replace(
            base,
            n_label_prompts=min(base.n_label_prompts, 256),
            k=min(base.k, 4),
            n_rm_check_prompts=min(base.n_rm_check_prompts, 48),
            sft=replace(base.sft, **_scaled_steps(base.sft, 0.35)),
            reward=replace(base.reward, **_scaled_steps(base.reward, 0.35)),
            ppo=replace(base.ppo, **_scaled_steps(base.ppo, 0.25)),
            dpo=replace(base.dpo, **_scaled_steps(base.dpo, 0.3)),
            rloo=replace(base.rloo, **_scaled_steps(base.rloo, 0.25)),
            evaluation=replace(base.evaluation, n_prompts=min(base.evaluation.n_prompts or 128, 48)),
        )


def _scaled_steps(settings: Any, factor: float) -> dict[str, int]:
    """The settings' step budget (whichever of these fields it has) scaled by `factor`, at least 2."""
    out = {}
    for name in ("max_steps", "total_steps", "steps"):
        value = getattr(settings, name, None)
        if isinstance(value, int) and value > 0:
            out[name] = max(2, int(value * factor))
    return out


def _separate_value(ppo: PPOSettings) -> bool:
    """Whether PPO uses a separate value model (started from the reward model); with LoRA the default is a head
    on the policy's shared backbone, which takes no value-model path."""
    return (ppo.value_model or ("shared" if ppo.lora is not None else "separate")) == "separate"


# --- the output folder ------------------------------------------------------------------------------------------


def _settings_record(settings: PipelineSettings) -> dict:
    """The settings as the manifest stores them (JSON values), without `out_dir`: the same job may be named by
    another path to the same folder."""
    record = json.loads(json.dumps(jsonable(asdict(settings))))
    record.pop("out_dir", None)
    return record


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def _differences(before: dict | None, now: dict) -> list[str]:
    old, new = _flatten(before or {}), _flatten(now)
    return [
        f"{key}: {old.get(key, '(none)')!r} then, {new.get(key, '(none)')!r} now"
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]


def open_output_folder(settings: PipelineSettings, *, overwrite: bool = False) -> Manifest:
    """Take `settings.out_dir` for the pipeline under the rule of the module's docstring, and return its manifest
    (with `stages`, the stages an earlier run of the same settings finished). Raises FileExistsError, naming the
    folder and what is in it, when the folder is not the pipeline's to write."""
    out = Path(settings.out_dir)
    planned = {PREFERENCES, REWARD_CHECK, SUMMARY, REPORT, "sft", "reward", *settings.methods}
    existing = check_ours_to_write(out, "pipeline", "pipeline output folder", planned)
    owned = set(existing["files"]) if existing else set()
    record = _settings_record(settings)
    stages: dict = {}
    if existing is not None and owned:
        if overwrite:
            remove_written(out)
        else:
            differ = _differences(existing.get("settings"), record)
            if differ:
                raise FileExistsError(
                    f"{out} holds an earlier rlhfkit pipeline run with other settings ({'; '.join(differ[:6])}"
                    f"{'; ...' if len(differ) > 6 else ''}). Run with the same settings to continue it, with "
                    f"--overwrite (overwrite=True) to replace rlhfkit's files there by a new run (files you added "
                    f"are kept), or choose another output folder"
                )
            stages = dict(existing.get("stages") or {})
    manifest = Manifest(out, "pipeline")
    manifest.update(settings=record, stages=stages)
    return manifest


def _finished_run(path: Path) -> bool:
    if read_manifest(path) is None or not (path / "config.json").exists():
        return False
    run = load_run(path)
    return run.status.get("state") == "finished" and run.model_path is not None


def _resumable_run(path: Path) -> bool:
    """An unfinished run (interrupted, or killed while running) that left a checkpoint to continue from."""
    if read_manifest(path) is None or not (path / "config.json").exists():
        return False
    checkpoints = path / "checkpoints"
    return (
        load_run(path).status.get("state") in ("running", "interrupted")
        and checkpoints.is_dir()
        and any(checkpoints.iterdir())
    )


def _print(message: str, echo: bool) -> None:
    if echo:
        print(message, flush=True)


def run_pipeline(
    settings: PipelineSettings | None = None,
    *,
    echo: bool = True,
    callbacks: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> dict:
    """Run every stage and write `out_dir/report.html` and `out_dir/summary.json`; returns the summary.

    `out_dir` must be new, empty, or an earlier output of the pipeline: one with the same settings is continued
    (finished stages reused, an interrupted one resumed from its checkpoint); one with other settings is refused
    unless `overwrite=True`, which replaces rlhfkit's own files there. A folder holding anything else is refused
    (FileExistsError): see the module's docstring. `callbacks` maps a stage name ("sft", "reward", "ppo", "dpo",
    "rloo") to callbacks passed to that stage (the live dashboard in a notebook).

    CPU threads follow `rlhfkit.threads` for the whole run, the sampling and labelling between stages included
    (one thread for the embedded default; `RLHFKIT_THREADS` or `rlhfkit --threads N` to choose)."""
    settings = settings or PipelineSettings()
    with cpu_threads(model=settings.model):
        return _run_stages(settings, echo=echo, callbacks=callbacks, overwrite=overwrite)


def _run_stages(settings: PipelineSettings, *, echo: bool, callbacks: dict[str, Any] | None, overwrite: bool) -> dict:
    """`run_pipeline`'s body, once the thread count is set."""
    unknown = set(settings.methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    callbacks = callbacks or {}
    out = Path(settings.out_dir)
    manifest = open_output_folder(settings, overwrite=overwrite)
    finished = manifest.data["stages"]
    if finished:
        _print(
            f"continuing the pipeline in {out}: stages finished earlier ({', '.join(finished)}) are reused "
            f"(--overwrite starts over)",
            echo,
        )
    seconds: dict[str, float] = {}
    reused: list[str] = []
    redone = False  # once a stage upstream is (re)done, nothing downstream of it may be reused

    def record(name: str) -> None:
        finished[name] = {"seconds": seconds[name], "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
        manifest.update(stages=finished)

    def reuse(name: str) -> bool:
        if name in finished and not redone:
            seconds[name] = finished[name].get("seconds", 0.0)
            reused.append(name)
            _print(f"[{name}] reused: finished earlier", echo)
            return True
        return False

    def stage(name: str, train: Callable[[bool], Any], *, upstream: bool) -> Any:
        """A training stage in `out/name`: reused when finished earlier, resumed when interrupted with a
        checkpoint, else run afresh (rlhfkit's files of an earlier attempt removed, anyone else's kept)."""
        nonlocal redone
        path = out / name
        if _finished_run(path) and reuse(name):
            return load_run(path)
        redone = redone or upstream
        resume = _resumable_run(path)
        if resume:
            _print(f"[{name}] resuming the interrupted run in {path}", echo)
        elif read_manifest(path) is not None:
            remove_written(path)
        manifest.claim(name)
        run = timed(name, lambda: train(resume))
        record(name)
        return run

    def timed(name: str, fn: Callable[[], Any]) -> Any:
        _print(f"[{name}] ...", echo)
        start = time.perf_counter()
        result = fn()
        seconds[name] = round(time.perf_counter() - start, 2)
        _print(f"[{name}] done in {seconds[name]:.1f} s", echo)
        return result

    # 1. The starting model and the task.
    base = timed("model", lambda: resolve_model(settings.model))
    task = load_task(settings.task)

    # 2. Supervised fine-tuning on the task's demonstrations.
    sft_run = stage(
        "sft",
        lambda resume: train_sft(
            base,
            task,
            replace(settings.sft, seed=settings.seed),
            out / "sft",
            resume=resume,
            callbacks=callbacks.get("sft", ()),
        ),
        upstream=True,
    )
    sft_path = str(sft_run.model_path)
    tokenizer = load_tokenizer(sft_path)

    # 3. Candidates from the SFT model, labelled by a noisy simulated annotator into preference pairs.
    def label() -> tuple[pd.DataFrame, pd.DataFrame]:
        policy = load_policy(sft_path)
        sampling = SamplingSettings(k=settings.k, temperature=settings.candidate_temperature, seed=settings.seed)
        train_table = sample_candidates(
            policy, tokenizer, task.train_prompts[: settings.n_label_prompts], sampling, progress=echo
        )
        # An empty response is not a preference a person could state; drop it before pairing (counted).
        empty = train_table.response.str.strip() == ""
        if empty.any():
            _print(f"  dropped {int(empty.sum())} empty candidates of {len(train_table)}", echo)
        pairs = candidate_pairs(train_table[~empty], settings.max_pairs_per_prompt, seed=settings.seed)
        annotator = SimulatedAnnotator(task.gold_judge, noise="flip", flip_rate=settings.flip_rate, seed=settings.seed)
        labelled = pd.DataFrame(
            annotator.label_pairs(
                [p["prompt"] for p in pairs], [p["response_a"] for p in pairs], [p["response_b"] for p in pairs]
            )
        )
        # Held-out check pairs: eval prompts, labelled by the gold judge itself (no noise, ties dropped).
        check_sampling = replace(sampling, k=settings.rm_check_k, seed=settings.seed + 1)
        check_table = sample_candidates(
            policy, tokenizer, task.eval_prompts[: settings.n_rm_check_prompts], check_sampling, progress=echo
        )
        check_pairs = candidate_pairs(check_table[check_table.response.str.strip() != ""])
        gold = SimulatedAnnotator(task.gold_judge, noise="none", seed=settings.seed)
        check = pd.DataFrame(
            gold.label_pairs(
                [p["prompt"] for p in check_pairs],
                [p["response_a"] for p in check_pairs],
                [p["response_b"] for p in check_pairs],
            )
        )
        return labelled, check[~check.judge_tie]

    if (out / PREFERENCES).exists() and (out / REWARD_CHECK).exists() and reuse("label"):
        labelled, gold_check = (
            pd.read_json(out / name, lines=True, dtype=False) for name in (PREFERENCES, REWARD_CHECK)
        )
    else:
        redone = True
        labelled, gold_check = timed("label", label)
        labelled.to_json(manifest.claim(PREFERENCES), orient="records", lines=True, force_ascii=False)
        gold_check.to_json(manifest.claim(REWARD_CHECK), orient="records", lines=True, force_ascii=False)
        record("label")
    preferences = load_preferences(out / PREFERENCES)  # validated, as a user's file would be
    _print(
        f"  {len(preferences)} preference pairs; annotator agrees with the gold judge on "
        f"{labelled.agrees_with_judge.mean():.1%}",
        echo,
    )

    # 4. Reward model on the preferences, initialised from the SFT model.
    rm_run = stage(
        "reward",
        lambda resume: train_reward_model(
            sft_path,
            preferences,
            replace(settings.reward, seed=settings.seed),
            out / "reward",
            resume=resume,
            callbacks=callbacks.get("reward", ()),
        ),
        upstream=True,
    )
    rm_path = str(rm_run.model_path)
    reward_judge = RewardModelJudge(rm_path)
    rm_gold_accuracy = pairwise_accuracy(reward_judge, gold_check.to_dict("records"))
    _print(
        f"  reward model: held-out accuracy against gold preferences {rm_gold_accuracy:.3f} on {len(gold_check)} pairs",
        echo,
    )

    # 5. The RLHF methods, each from the same SFT model.
    method_runs = {}
    if "ppo" in settings.methods:
        method_runs["ppo"] = stage(
            "ppo",
            lambda resume: train_ppo(
                sft_path,
                reward_judge,
                task.train_prompts,
                replace(settings.ppo, seed=settings.seed),
                out / "ppo",
                reference=sft_path,
                value_model=rm_path if _separate_value(settings.ppo) else None,
                resume=resume,
                callbacks=callbacks.get("ppo", ()),
            ),
            upstream=False,
        )
    if "dpo" in settings.methods:
        method_runs["dpo"] = stage(
            "dpo",
            lambda resume: train_dpo(
                sft_path,
                preferences,
                replace(settings.dpo, seed=settings.seed),
                out / "dpo",
                reference=sft_path,
                resume=resume,
                callbacks=callbacks.get("dpo", ()),
            ),
            upstream=False,
        )
    if "rloo" in settings.methods:
        method_runs["rloo"] = stage(
            "rloo",
            lambda resume: train_online(
                sft_path,
                reward_judge,
                task.train_prompts,
                replace(settings.rloo, seed=settings.seed),
                out / "rloo",
                resume=resume,
                callbacks=callbacks.get("rloo", ()),
            ),
            upstream=False,
        )

    # 6. Evaluation on held-out prompts: gold and proxy reward, KL to SFT, win rate, diversity, length.
    # SFT is the reference: its row is measured once (KL 0, win rate 0.5 by definition), not sampled twice.
    policies = {name: str(run.model_path) for name, run in method_runs.items()}
    result = timed(
        "evaluation",
        lambda: evaluate_policies(
            policies,
            task,
            reference=sft_path,
            reference_name="sft",
            reward_model=reward_judge,
            settings=replace(settings.evaluation, seed=settings.seed),
        ),
    )
    per_policy = result.to_dict()

    # 7. Summary and report.
    summary = {
        "policies": {
            name: {
                "gold_reward_mean": row["gold_reward_mean"],
                "gold_reward_ci": row["gold_reward_ci"],
                "proxy_reward_mean": row["proxy_reward_mean"],
                "kl_to_ref": row["kl_to_ref"],
                "kl_estimator": row["kl_estimator"],
                "win_rate_vs_sft": row["win_rate_vs_ref"],
                "win_rate_vs_sft_ci": row["win_rate_ci"],
                "mean_length": row["mean_length"],
                "distinct_2": row["distinct_2"],
                "eos_rate": row["eos_rate"],
                "n_samples": row["n_samples"],
            }
            for name, row in per_policy.items()
        },
        "reward_model": {
            "heldout_accuracy": rm_gold_accuracy,
            "heldout_pairs": len(gold_check),
            "heldout_labels": "gold judge, no noise, eval prompts",
            "train_summary": rm_run.summary,
        },
        "preferences": {
            "pairs": len(preferences),
            "flip_rate": settings.flip_rate,
            "annotator_agreement_with_gold": float(labelled.agrees_with_judge.mean()),
        },
        "seconds": {**seconds, "total": round(sum(seconds.values()), 2)},
        "reused_stages": reused,
        "settings": asdict(settings),
        "runs": {
            "sft": str(out / "sft"),
            "reward": str(out / "reward"),
            **{name: str(out / name) for name in method_runs},
        },
    }
    manifest.claim(SUMMARY).write_text(json.dumps(summary, indent=2, default=str))
    runs_for_report = {"sft": sft_run, **method_runs}
    write_report(
        manifest.claim(REPORT),
        title=f"rlhfkit pipeline: {settings.task} on {settings.model}",
        summary=summary["policies"],
        runs=runs_for_report,
        samples=result.samples,
        extra={"reward_model": summary["reward_model"], "seconds": summary["seconds"]},
        win_rates=win_rate_table(result.samples, n_bootstrap=settings.evaluation.n_bootstrap, seed=settings.seed),
        **_overoptimization_view(method_runs.get("ppo"), per_policy.get("sft"), task.gold_judge),
    )
    if echo:
        print_summary(summary)
        if reused:
            print(f"reused from the earlier run in {out} (seconds as measured then): {', '.join(reused)}")
        print(f"report: {out / REPORT}\nsummary: {out / SUMMARY}")
    return summary


def _overoptimization_view(ppo_run, sft_row: dict | None, gold_judge) -> dict:
    """The report's over-optimisation section, from data the pipeline already has: the samples PPO logged while
    training (proxy score and k1 KL per sample; the gold judge scores them here) in bins of steps, measured from
    SFT's evaluation row (d = 0). Empty when there is no PPO run or too little to fit."""
    if (
        ppo_run is None
        or ppo_run.samples.empty
        or sft_row is None
        or gold_judge is None
        or sft_row.get("proxy_reward_mean") is None
    ):
        return {}
    points = rl_overoptimization_points(
        ppo_run.samples, gold_judge=gold_judge, baseline=(sft_row["proxy_reward_mean"], sft_row["gold_reward_mean"])
    )
    if (points.d > 0).sum() < 2:
        return {}
    figure = "Over-optimisation: PPO's proxy and gold reward against sqrt(KL)"
    table = "Over-optimisation fit (Gao et al. 2022), PPO"
    return {
        "figures": {figure: overoptimization_figure(rl=points)},
        "tables": {table: overoptimization_fits(points, "rl")},
        "notes": {
            figure: "Points: PPO's logged training samples (train prompts) in bins of consecutive steps; "
            "proxy = the reward model's score PPO optimised, gold = the task's gold judge, KL = k1 "
            "sequence KL to SFT of each sample. d = 0 is SFT's evaluation row (held-out prompts). "
            "Dashed: R(d) = d (a - b log d) fitted by least squares to each reward minus its value "
            "at d = 0. Few samples per bin: read the trend, not single points.",
            table: "a: initial slope per unit of sqrt(KL); b > 0 means the reward bends down as KL grows; "
            "start: the reward at d = 0.",
        },
    }


def print_summary(summary: dict) -> None:
    """The summary as a plain-text table, with the verdict per method."""
    table = summary_table(summary["policies"])
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))
    rm = summary["reward_model"]
    print(
        f"reward model held-out accuracy vs gold preferences: {rm['heldout_accuracy']:.3f} "
        f"({rm['heldout_pairs']} pairs)"
    )
    print("seconds per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in summary["seconds"].items()))


def reload_runs(out_dir: str | Path) -> dict:
    """The run directories of a finished pipeline, read back (for notebooks after a restart)."""
    summary = json.loads((Path(out_dir) / "summary.json").read_text())
    return {name: load_run(path) for name, path in summary["runs"].items()}
