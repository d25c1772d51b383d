"""The whole RLHF pipeline in one call: what `rlhfkit pipeline` and the quickstart notebook run.

    model -> SFT -> K candidates per prompt -> simulated annotator labels pairs -> reward model
          -> PPO, DPO and RLOO from the same SFT model -> evaluation -> report.html + summary.json

Each step is one call of `rlhfkit.stages` (the functions the notebooks call too); this module holds only what is
the pipeline's own: its settings, its output folder, which stage may be reused, and summary.json. Every stage
writes its own run directory under `out_dir`, so the dashboard and the comparison can read any of them, live or
after a restart. The numbers in summary.json are what the run measured; if a method does not beat SFT, the
summary table says so.

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

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from rlhfkit import stages
from rlhfkit.compare import summary_table
from rlhfkit.data import Task
from rlhfkit.evaluation import EvalSettings
from rlhfkit.models import SMOLLM2, LoraSettings, resolve_model
from rlhfkit.results import SCHEMA_VERSION, read_summary
from rlhfkit.runs import Manifest, check_ours_to_write, jsonable, remove_written
from rlhfkit.runs import load as load_run
from rlhfkit.tasks import load_task
from rlhfkit.threads import cpu_threads
from rlhfkit.train.dpo import DPOSettings
from rlhfkit.train.online import OnlineSettings
from rlhfkit.train.ppo import PPOSettings
from rlhfkit.train.reward import RewardModelJudge, RewardSettings
from rlhfkit.train.reward import pairwise_accuracy as reward_accuracy
from rlhfkit.train.sft import SFTSettings

__all__ = [
    "PipelineSettings",
    "run_pipeline",
    "open_output_folder",
    "METHODS",
    "PRESETS",
    "register_preset",
    "smollm2_preset",
]

METHODS = ("ppo", "dpo", "rloo")
SUMMARY, REPORT = "summary.json", "report.html"


@dataclass
class PipelineSettings:
    """The pipeline's knobs. Defaults run on the embedded default on a CPU in a few minutes. For a model with a
    preset (`PRESETS`: "smollm2-135m") take `PipelineSettings.for_model(name)`, which sizes every stage for it
    (LoRA, learning rates, budgets); for another real model change `model` (a Hub id or folder), `task`, and the
    stage budgets, or register a preset (`register_preset`)."""

    model: str = "tiny"
    """Starting model: "tiny" (the embedded default), a local folder or a Hub id."""
    task: str | Task = "reviews"
    """The task: a builtin name ("reviews"), a prompts file (JSONL/CSV/JSON/parquet with a "prompt" column, and a
    "completion" column for SFT demonstrations), a dataset folder or Hub id, or a `Task` object. Its gold judge
    labels the simulated preferences and scores the evaluation."""
    judge: str | None = None
    """The gold judge, when the task has none or to replace its own: a builtin judge ("vader", "length") or
    "module:function" (a `Judge`, or `fn(prompts, responses) -> list[float]`). Without any gold judge the pipeline
    needs `labels_from` and leaves out the numbers that need one (gold reward, win rate), saying so."""
    labels_from: str | None = None
    """Who labels the preference pairs instead of the simulated annotator (the gold judge plus `flip_rate` noise):
    a label store (.sqlite) people filled in the labeling widgets, a preferences file, or a judge (a builtin name or
    "module:function": an AI labeller)."""
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
    candidate_max_new_tokens: int | None = None
    """Longest labelled candidate (and check candidate); None keeps `SamplingSettings`' default."""
    skip_sft: bool = False
    """Skip SFT even when the task has demonstrations: the starting model itself is the SFT policy, the reference
    of every method and the "sft" row of the evaluation. For an instruct model, which already follows prompts."""
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

    def load_task(self) -> Task:
        """The task (`rlhfkit.tasks.load_task`), with `judge` as its gold judge when one is named."""
        return load_task(self.task, gold_judge=self.judge)

    def label_settings(self) -> stages.LabelSettings:
        """The labelling stage's settings, from this class's flat fields."""
        return stages.LabelSettings(
            n_prompts=self.n_label_prompts,
            k=self.k,
            max_pairs_per_prompt=self.max_pairs_per_prompt,
            temperature=self.candidate_temperature,
            flip_rate=self.flip_rate,
            n_check_prompts=self.n_rm_check_prompts,
            check_k=self.rm_check_k,
            max_new_tokens=self.candidate_max_new_tokens,
            seed=self.seed,
        )

    @classmethod
    def for_model(cls, model: str = "tiny", *, quick: bool = False, **overrides: Any) -> "PipelineSettings":
        """Settings sized for `model`: its preset (`PRESETS`, keyed by the short name, e.g. "smollm2-135m") when it
        has one, else the defaults (`quick`: `PipelineSettings.quick`). `overrides` are fields of this class and
        replace the preset's (a stage's settings object replaces the preset's object as a whole). A model without a
        preset (a folder, a Hub id, "tiny") gets exactly what `PipelineSettings(model=...)` gives."""
        preset = PRESETS.get(str(model))
        if preset is None:
            return cls.quick(model=model, **overrides) if quick else cls(model=model, **overrides)
        return cls(**{**preset(quick), "model": model, **overrides})

    @classmethod
    def quick(cls, **overrides: Any) -> "PipelineSettings":
        """A smoke-test budget (CI): every stage runs, each for a fraction of its default steps. A model with a
        preset gets the preset's own quick budget (`for_model(model, quick=True)`)."""
        if str(overrides.get("model")) in PRESETS:
            return cls.for_model(quick=True, **overrides)
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

    def resized(
        self,
        *,
        steps: Mapping[str, int] | None = None,
        label_prompts: int | None = None,
        check_prompts: int | None = None,
        eval_prompts: int | None = None,
        max_new_tokens: int | None = None,
    ) -> "PipelineSettings":
        """A copy with other budgets, for a smaller (or larger) run of the same recipe. `steps`: a stage's step
        budget by stage name ("sft", "reward", "ppo", "dpo", "rloo"; PPO's counts rollouts, the others optimizer
        steps). `label_prompts`, `check_prompts`, `eval_prompts`: the prompts whose candidates are labelled, that
        test the reward model, that the evaluation samples. `max_new_tokens`: the answer length everywhere answers
        are sampled (labelled and check candidates, PPO's and RLOO's rollouts, the stages' sample logs, the
        evaluation). None keeps a budget as it is."""
        unknown = set(steps or ()) - set(_STEP_FIELDS)
        if unknown:
            raise ValueError(f"resized: unknown stages {sorted(unknown)} in steps; choose from {list(_STEP_FIELDS)}")
        out = self
        for stage, value in (steps or {}).items():
            out = replace(out, **{stage: replace(getattr(out, stage), **{_STEP_FIELDS[stage]: int(value)})})
        counts = {"n_label_prompts": label_prompts, "n_rm_check_prompts": check_prompts}
        out = replace(out, **{name: int(v) for name, v in counts.items() if v is not None})
        if eval_prompts is not None:
            out = replace(out, evaluation=replace(out.evaluation, n_prompts=int(eval_prompts)))
        if max_new_tokens is not None:
            out = replace(out, candidate_max_new_tokens=int(max_new_tokens))
            for stage, name in _ANSWER_LENGTH_FIELDS:
                out = replace(out, **{stage: replace(getattr(out, stage), **{name: int(max_new_tokens)})})
        return out


_STEP_FIELDS = {
    "sft": "max_steps",
    "reward": "max_steps",
    "ppo": "total_steps",
    "dpo": "max_steps",
    "rloo": "max_steps",
}
"""Each stage's step budget, by the name of its field in that stage's settings."""
_ANSWER_LENGTH_FIELDS = (
    ("sft", "sample_max_new_tokens"),
    ("ppo", "max_new_tokens"),
    ("dpo", "sample_max_new_tokens"),
    ("rloo", "max_completion_length"),
    ("evaluation", "max_new_tokens"),
)
"""Where the stages' settings give the length of the answers they sample."""


# --- presets: settings sized for a real model --------------------------------------------------------------------

Preset = Callable[[bool], dict]
"""`preset(quick) -> {field: value}`: keyword arguments of `PipelineSettings` for one model (without `model`)."""


def smollm2_preset(quick: bool = False) -> dict[str, Any]:
    """SmolLM2-135M-Instruct (134.5 M parameters) on a CPU, with LoRA on every stage, PPO and DPO (RLOO on request:
    `methods`), sized so that the default run fits in 45 minutes on two CPU cores (measured: 31 minutes with PPO's
    earlier 2 x 1 epochs; 69 minutes with the current 4 x 2 on a machine about half as fast, below).

    - SFT is skipped (`skip_sft`): the instruct model already answers prompts, so it is the SFT policy and the
      reference. With `skip_sft=False` SFT runs a short LoRA pass on the task's demonstrations.
    - LoRA r=16, alpha=32 on all linear layers (~4.9 M trainable parameters, 3.6 %): full fine-tuning a 135M model
      costs ~10x the optimizer memory and step time on a CPU, and a LoRA policy shares its frozen base with the
      reference (the adapter disabled), so policy and reference are one copy of the model, not two (PPO holds a
      second one: its value model, below, which only runs forward).
    - Labels: 128 prompts x 4 candidates, at most 3 pairs per prompt (384 pairs). Measured on the reviews task
      (one seed, 93 held-out gold pairs): a reward model trained on 64 prompts x 6 pairs reached 0.548 (lr 2e-4)
      and 0.505 (lr 1e-3) held-out accuracy while ordering 80% of its own training pairs right: with few distinct
      answers it learns the answers, not what makes one better. The same number of pairs over twice the prompts
      reached 0.570 at lr 5e-4. Still weak: on this budget the reward model, not PPO, is the bottleneck.
    - Learning rates for LoRA, above full fine-tuning's because only the adapter moves and the budgets are tens of
      steps: 2e-4 (SFT), 5e-4 (reward model: its score head starts from scratch), 3e-4 (PPO, below), 1e-4 (RLOO),
      5e-4 (DPO). Measured: DPO at 1e-4 for 48 steps moved the policy by KL 0.6 nats with no change in gold reward
      (0.426 [0.285, 0.553] against 0.455 [0.325, 0.571] on 48 prompts).
    - PPO's value function is the reward model with its backbone frozen (`value_model="separate"`,
      `train_value_backbone=False`: only its score head trains, on hidden states computed once per rollout); 4
      epochs x 2 minibatches per rollout of 8 at learning rate 3e-4. Measured with the pipeline's own reward model
      (0.570 held-out accuracy) and evaluation (128 held-out prompts x 2, start 0.404 [0.342, 0.462]), one PPO seed
      each unless said:

      | value function | epochs x minibatches, lr | gold | win rate | KL |
      | --- | --- | --- | --- | --- |
      | frozen reward model | 2 x 1, 1e-4 (the preset before) | 0.448 [0.392, 0.503] | 0.525 | 0.56 |
      | frozen reward model | 4 x 2, 1e-4 | 0.469 [0.413, 0.520] | 0.516 | 3.7 |
      | frozen reward model | 4 x 2, 3e-4 (this preset) | 0.537 [0.475, 0.593] | 0.617 | 7.2 |
      | frozen reward model, PPO seed 1 | 4 x 2, 3e-4 (this preset) | 0.520 [0.456, 0.575] | 0.594 | 11.6 |
      | head on the LoRA policy, seed 0 | 4 x 2, 1e-4 | 0.540 [0.488, 0.586] | 0.600 | 6.4 |
      | head on the LoRA policy, seed 1 | 4 x 2, 1e-4 | 0.243 [0.186, 0.298] | 0.369 | 10.1 |
      | head on the LoRA policy, constant reward | 4 x 2, 1e-4 | 0.278 [0.216, 0.336] | 0.428 | 6.1 |
      | head on the LoRA policy's detached features | 4 x 2, 1e-4 | 0.449 [0.389, 0.505] | 0.506 | 5.7 |

      A head on the policy (`value_model="shared", train_value_backbone=True`) trains the policy's weights through
      the value loss: with nothing to learn (a constant reward) that alone moved the policy to KL 6 and lost gold,
      and two seeds ended 0.30 apart. Neither the head on detached features (`train_value_backbone=False`) nor the
      frozen reward model lets the value loss move the policy; with the latter PPO raises the reward model's score
      of its answers (0.088 at the start, 0.181 at 3e-4) and gold follows. Twice the labels (256 prompts, 96 reward
      model steps) gave a reward model of 0.624 accuracy and no better PPO at the earlier settings (0.441 with the
      head on the policy, 0.508 with the frozen value model, 64 prompts).
    - Evaluation on all 128 held-out prompts x 2 answers (intervals resample whole prompts): on 64 x 1 an
      interval spans about +-0.1, wider than the gain PPO makes here.
    - Budgets: 48 reward model steps, 24 PPO rollouts, 32 DPO steps. The default run with PPO at 2 x 1, 1e-4 took
      31 min 26 s on a quiet 2-core machine (torch's 2 threads; labels 179 s, reward model 274 s, PPO 420 s, DPO
      413 s, evaluation 571 s). With this preset a whole default run took 35 min 59 s and 40 min 48 s on that
      machine, alone (labels 173 and 184 s, reward model 286 and 303 s, PPO 636 and 650 s, DPO 434 and 597 s,
      evaluation 598 and 681 s), and 68 min 54 s on a slower 2-core machine (labels 330 s, reward model 538 s, PPO
      1167 s, DPO 879 s, evaluation 1165 s). Gold on 128 held-out prompts x 2 answers: start 0.404 [0.342,
      0.462], DPO 0.690 [0.643, 0.733], PPO 0.536 [0.475, 0.590] (both apart from the start; PPO's settings were
      chosen on these prompts). DPO for 48 steps instead of 32 reached 0.658 [0.560, 0.754] on 64 prompts: no
      better, 4 more minutes.
    - Responses up to 48 new tokens (a few sentences of review; sampling is most of every stage's time on a CPU
      and grows with it), batches of 8.

    `quick`: the same settings at a smoke-test budget (a few steps per stage, a few dozen prompts)."""
    lora = LoraSettings(r=16, alpha=32, dropout=0.05, target_modules="all-linear")
    tokens = 48
    steps = {"sft": 30, "reward": 48, "ppo": 24, "dpo": 32, "rloo": 16}
    if quick:
        steps = {"sft": 6, "reward": 8, "ppo": 3, "dpo": 8, "rloo": 3}
    return dict(
        skip_sft=True,
        methods=("ppo", "dpo"),
        n_label_prompts=16 if quick else 128,
        k=3 if quick else 4,
        max_pairs_per_prompt=3,
        n_rm_check_prompts=12 if quick else 32,
        rm_check_k=3,
        candidate_max_new_tokens=tokens,
        sft=SFTSettings(
            lora=lora,
            learning_rate=2e-4,
            max_steps=steps["sft"],
            batch_size=8,
            n_samples=4,
            sample_max_new_tokens=tokens,
            save_steps=10,
        ),
        reward=RewardSettings(
            lora=lora,
            learning_rate=5e-4,
            max_steps=steps["reward"],
            batch_size=8,
            eval_batch_size=16,
            n_samples=4,
            save_steps=16,
        ),
        ppo=PPOSettings(
            lora=lora,
            learning_rate=3e-4,
            total_steps=steps["ppo"],
            batch_size=8,
            num_ppo_epochs=4,
            num_mini_batches=2,
            value_model="separate",
            train_value_backbone=False,
            max_new_tokens=tokens,
            save_every=4,
            num_samples=2,
        ),
        dpo=DPOSettings(
            lora=lora,
            learning_rate=5e-4,
            max_steps=steps["dpo"],
            batch_size=8,
            n_samples=4,
            sample_max_new_tokens=tokens,
        ),
        rloo=OnlineSettings(
            lora=lora,
            learning_rate=1e-4,
            max_steps=steps["rloo"],
            prompts_per_step=4,
            num_generations=4,
            max_completion_length=tokens,
            samples_every=4,
            samples_per_log=2,
        ),
        evaluation=EvalSettings(
            n_prompts=24 if quick else None, samples_per_prompt=1 if quick else 2, max_new_tokens=tokens, batch_size=16
        ),
    )


PRESETS: dict[str, Preset] = {SMOLLM2: smollm2_preset}
"""Settings presets by model short name (`PipelineSettings.for_model`, `rlhfkit pipeline --model NAME`)."""


def register_preset(name: str, preset: Preset, *, replace: bool = False) -> Preset:
    """Make `PipelineSettings.for_model(name)` (and `rlhfkit pipeline --model name`) use `preset(quick)`, a function
    returning keyword arguments of `PipelineSettings`. Registering a name twice raises ValueError unless
    `replace=True`. Returns `preset`."""
    if name in PRESETS and not replace:
        raise ValueError(f"a preset for {name!r} is already registered (pass replace=True to replace it)")
    PRESETS[name] = preset
    return preset


def _scaled_steps(settings: Any, factor: float) -> dict[str, int]:
    """The settings' step budget (whichever of these fields it has) scaled by `factor`, at least 2."""
    out = {}
    for name in ("max_steps", "total_steps", "steps"):
        value = getattr(settings, name, None)
        if isinstance(value, int) and value > 0:
            out[name] = max(2, int(value * factor))
    return out


# --- the output folder ------------------------------------------------------------------------------------------


def _task_record(task: str | Task) -> Any:
    """A task as the manifest and summary.json store it: its name, or for a `Task` object what identifies it (name,
    sizes, gold judge, and a hash of its prompts and demonstrations)."""
    if not isinstance(task, Task):
        return str(task)
    digest = hashlib.sha256(
        json.dumps([task.train_prompts, task.eval_prompts, task.demonstrations], sort_keys=True).encode()
    ).hexdigest()[:16]
    judge = None if task.gold_judge is None else getattr(task.gold_judge, "name", type(task.gold_judge).__name__)
    return {
        "name": task.name,
        "train_prompts": len(task.train_prompts),
        "eval_prompts": len(task.eval_prompts),
        "demonstrations": len(task.demonstrations),
        "gold_judge": judge,
        "sha256": digest,
    }


_ADDED_FIELDS = {"candidate_max_new_tokens": None, "skip_sft": False}
"""Fields added after outputs were written: left out of the record at their defaults, so an earlier output (whose
manifest lacks them) is still recognised as the same settings and continued, and summary.json stays as it was."""


def _settings_record(settings: PipelineSettings, *, keep_out_dir: bool = False) -> dict:
    """The settings as JSON values (a `Task` as `_task_record`). Without `out_dir` unless `keep_out_dir`: the same
    job may be named by another path to the same folder."""
    values = {
        f.name: getattr(settings, f.name)
        for f in fields(settings)
        if not (f.name in _ADDED_FIELDS and getattr(settings, f.name) == _ADDED_FIELDS[f.name])
    }
    values["task"] = _task_record(settings.task)
    record = json.loads(json.dumps(jsonable({k: asdict(v) if is_dataclass(v) else v for k, v in values.items()})))
    if not keep_out_dir:
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
    planned = {stages.PREFERENCES, stages.REWARD_CHECK, SUMMARY, REPORT, "sft", "reward", *settings.methods}
    existing = check_ours_to_write(out, "pipeline", "pipeline output folder", planned)
    owned = set(existing["files"]) if existing else set()
    record = _settings_record(settings)
    finished: dict = {}
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
            finished = dict(existing.get("stages") or {})
    manifest = Manifest(out, "pipeline")
    manifest.update(settings=record, stages=finished)
    return manifest


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
        return _run_stages(settings, echo=echo, callbacks=callbacks or {}, overwrite=overwrite)


class _Progress:
    """The pipeline's record of its stages: timing, what was reused, and the rule that once a stage upstream is
    (re)done nothing downstream of it may be reused or resumed. Finished stages go into the output's manifest."""

    def __init__(self, manifest: Manifest, echo: bool) -> None:
        self.manifest, self.echo = manifest, echo
        self.finished: dict = manifest.data["stages"]
        self.seconds: dict[str, float] = {}
        self.reused: list[str] = []
        self.redone = False

    def run(
        self,
        name: str,
        step: Callable[[bool], Any],
        *,
        done: Callable[[], bool] | None = None,
        upstream: bool = True,
        always: bool = False,
    ) -> Any:
        """`step(reuse)`, timed. `done()` says whether the stage's result is already there to reuse (a reused stage
        keeps the seconds it took when it ran); `always`: a step redone every time (loading the model, evaluation),
        not recorded as finished."""
        reuse = not always and not self.redone
        if reuse and done is not None and done():
            result = step(True)
            self.seconds[name] = self.finished.get(name, {}).get("seconds", 0.0)
            self.reused.append(name)
            return result
        stages.say(f"[{name}] ...", self.echo)
        start = time.perf_counter()
        result = step(reuse)
        self.seconds[name] = round(time.perf_counter() - start, 2)
        stages.say(f"[{name}] done in {self.seconds[name]:.1f} s", self.echo)
        if not always:
            self.redone = self.redone or upstream
            self.finished[name] = {"seconds": self.seconds[name], "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
            self.manifest.update(stages=self.finished)
        return result


def _run_stages(settings: PipelineSettings, *, echo: bool, callbacks: dict[str, Any], overwrite: bool) -> dict:
    """`run_pipeline`'s body, once the thread count is set: the stages of `rlhfkit.stages`, in order."""
    unknown = set(settings.methods) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; choose from {METHODS}")
    task = settings.load_task()
    if task.gold_judge is None and settings.labels_from is None:
        raise ValueError(
            f"task {task.name!r} has no gold judge, so nothing can label preferences: name one with --judge (a "
            f"builtin judge or module:function; PipelineSettings.judge), or give labels people or an AI judge made "
            f"with --labels-from (a label store, a preferences file or a judge; PipelineSettings.labels_from)"
        )
    out = Path(settings.out_dir)
    manifest = open_output_folder(settings, overwrite=overwrite)
    progress = _Progress(manifest, echo)
    if progress.finished:
        stages.say(
            f"continuing the pipeline in {out}: stages finished earlier ({', '.join(progress.finished)}) are "
            f"reused (--overwrite starts over)",
            echo,
        )

    def stage_dir(name: str) -> Path:
        manifest.claim(name)
        return out / name

    def seeded(stage_settings):
        return replace(stage_settings, seed=settings.seed)

    # 1. The starting model and the task.
    base = progress.run("model", lambda reuse: resolve_model(settings.model), always=True)

    # 2. Supervised fine-tuning on the task's demonstrations (none, or skip_sft: the starting model is the reference).
    sft_run = None
    if task.demonstrations and not settings.skip_sft:
        sft_run = progress.run(
            "sft",
            done=lambda: stages.finished_run(out / "sft"),
            step=lambda reuse: stages.sft(
                base,
                task,
                seeded(settings.sft),
                stage_dir("sft"),
                reuse=reuse,
                callbacks=callbacks.get("sft", ()),
                echo=echo,
            ),
        )
        sft_path = str(sft_run.model_path)
    else:
        sft_path = base
        why = "skip_sft is set" if task.demonstrations else f"task {task.name!r} has no demonstrations"
        stages.say(f"{why}: SFT skipped, {settings.model} is the SFT policy and the reference", echo)

    # 3. Preference pairs on the SFT model's candidates (a noisy simulated annotator by default), and held-out
    # pairs labelled by the gold judge that test the reward model.
    labels = progress.run(
        "label",
        done=lambda: stages.labels_done(out),
        step=lambda reuse: stages.label_preferences(
            sft_path,
            task,
            settings.label_settings(),
            out,
            labels_from=settings.labels_from,
            reuse=reuse,
            echo=echo,
            manifest=manifest,
        ),
    )
    agreement = labels.agreement_with_gold
    stages.say(
        f"  {len(labels.preferences)} preference pairs"
        + (
            f"; annotator agrees with the gold judge on {agreement:.1%}"
            if agreement is not None
            else f" from {labels.source}"
        ),
        echo,
    )

    # 4. Reward model on the preferences, initialised from the SFT model.
    rm_run = progress.run(
        "reward",
        done=lambda: stages.finished_run(out / "reward"),
        step=lambda reuse: stages.reward_model(
            sft_path,
            labels,
            seeded(settings.reward),
            stage_dir("reward"),
            reuse=reuse,
            callbacks=callbacks.get("reward", ()),
            echo=echo,
        ),
    )
    rm_path = str(rm_run.model_path)
    reward_judge = RewardModelJudge(rm_path)
    rm_gold_accuracy = reward_accuracy(reward_judge, labels.check.to_dict("records")) if len(labels.check) else None
    if rm_gold_accuracy is not None:
        stages.say(
            f"  reward model: held-out accuracy against gold preferences {rm_gold_accuracy:.3f} "
            f"on {len(labels.check)} pairs",
            echo,
        )

    # 5. The RLHF methods, each from the same SFT model.
    method_runs = {}
    if "ppo" in settings.methods:
        method_runs["ppo"] = progress.run(
            "ppo",
            done=lambda: stages.finished_run(out / "ppo"),
            step=lambda reuse: stages.ppo(
                sft_path,
                reward_judge,
                task.train_prompts,
                seeded(settings.ppo),
                stage_dir("ppo"),
                reward_model_path=rm_path,
                reuse=reuse,
                callbacks=callbacks.get("ppo", ()),
                echo=echo,
            ),
            upstream=False,
        )
    if "dpo" in settings.methods:
        method_runs["dpo"] = progress.run(
            "dpo",
            done=lambda: stages.finished_run(out / "dpo"),
            step=lambda reuse: stages.dpo(
                sft_path,
                labels,
                seeded(settings.dpo),
                stage_dir("dpo"),
                reuse=reuse,
                callbacks=callbacks.get("dpo", ()),
                echo=echo,
            ),
            upstream=False,
        )
    if "rloo" in settings.methods:
        method_runs["rloo"] = progress.run(
            "rloo",
            done=lambda: stages.finished_run(out / "rloo"),
            step=lambda reuse: stages.online(
                sft_path,
                reward_judge,
                task.train_prompts,
                seeded(settings.rloo),
                stage_dir("rloo"),
                reuse=reuse,
                callbacks=callbacks.get("rloo", ()),
                echo=echo,
            ),
            upstream=False,
        )

    # 6. Evaluation on held-out prompts: gold and proxy reward, KL to SFT, win rate, diversity, length.
    # SFT is the reference: its row is measured once (KL 0, win rate 0.5 by definition), not sampled twice.
    result = progress.run(
        "evaluation",
        lambda reuse: stages.evaluate(
            method_runs,
            task,
            seeded(settings.evaluation),
            reference=sft_path,
            reference_name="sft",
            reward_model=reward_judge,
        ),
        always=True,  # cheap, and it reads every run as it is now
    )

    # 7. Summary and report.
    summary = {
        "schema_version": SCHEMA_VERSION,
        "reference": "sft",
        "policies": result.to_dict(),
        "reward_model": {
            "heldout_accuracy": rm_gold_accuracy,
            "heldout_pairs": len(labels.check),
            "heldout_labels": "gold judge, no noise, eval prompts",
            "train_summary": rm_run.summary,
        },
        "preferences": {
            "pairs": len(labels.preferences),
            "source": labels.source,
            "flip_rate": settings.flip_rate if settings.labels_from is None else None,
            "annotator_agreement_with_gold": agreement,
        },
        "not_measured": _not_measured(task),
        "seconds": {**progress.seconds, "total": round(sum(progress.seconds.values()), 2)},
        "reused_stages": progress.reused,
        "settings": _settings_record(settings, keep_out_dir=True),
        "runs": {
            **({"sft": str(out / "sft")} if sft_run else {}),
            "reward": str(out / "reward"),
            **{name: str(out / name) for name in method_runs},
        },
    }
    manifest.claim(SUMMARY).write_text(json.dumps(summary, indent=2, default=str))
    stages.report(
        manifest.claim(REPORT),
        result,
        {**({"sft": sft_run} if sft_run else {}), **method_runs},
        title=f"rlhfkit pipeline: {task.name} on {settings.model}",
        gold_judge=task.gold_judge,
        extra={"reward_model": summary["reward_model"], "seconds": summary["seconds"]},
    )
    if echo:
        print_summary(summary)
        if progress.reused:
            print(f"reused from the earlier run in {out} (seconds as measured then): {', '.join(progress.reused)}")
        print(f"report: {out / REPORT}\nsummary: {out / SUMMARY}")
    return summary


def _not_measured(task) -> list[str]:
    """The numbers a task without a gold judge cannot give (the summary says so instead of leaving gaps)."""
    if task.gold_judge is not None:
        return []
    return [
        "gold reward",
        "gold win rate against SFT",
        "whether a method beats SFT",
        "the reward model's accuracy against gold preferences",
        "over-optimisation (proxy against gold)",
    ]


def print_summary(summary: dict) -> None:
    """The summary as a plain-text table, with the verdict per method."""
    table = summary_table(summary["policies"])
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print(table.to_string(index=False))
    rm = summary["reward_model"]
    if rm["heldout_accuracy"] is not None:
        print(
            f"reward model held-out accuracy vs gold preferences: {rm['heldout_accuracy']:.3f} "
            f"({rm['heldout_pairs']} pairs)"
        )
    if summary.get("not_measured"):
        print(f"not measured (the task has no gold judge): {', '.join(summary['not_measured'])}")
    print("seconds per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in summary["seconds"].items()))


def reload_runs(out_dir: str | Path) -> dict:
    """The run directories of a finished pipeline, read back (for notebooks after a restart)."""
    return {name: load_run(path) for name, path in read_summary(out_dir)["runs"].items()}
