"""Several criteria, one policy: a reward model per criterion, PPO against their weighted sum, and the frontier of
the gold criteria as the weights change.

    per-criterion labels in a label store (people in a PairwiseLabeler with criteria=[...], an LLM judge per
    criterion, or a simulated annotator per gold criterion)
    -> one reward model per criterion (`criterion_reward_models`), each on that criterion's judgments only
    -> for each weighting w: PPO from the SFT model against sum_c w_c * standardised RM_c (`CombinedJudge`,
       standardised on the SFT model's own samples so that the weights compare like with like)
    -> every policy sampled on held-out prompts and scored by each criterion's gold judge: the frontier.

When the criteria conflict (the reviews task's "positive" and "brief": longer reviews are more positive), moving the
weight from one to the other trades one gold criterion for the other; the frontier shows how much of one a unit of
the other costs, and whether some weighting beats both extremes on both.

The folder `out`: preferences-<criterion>.jsonl and reward-<criterion>/ per criterion, reference_samples.jsonl (the
SFT samples that standardise the reward models), ppo-<tag>/ per weighting (its tag names the weights), and
frontier.json, written last. Every training step is reused when finished and resumed when interrupted.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd

from rlhfkit import stages
from rlhfkit.evaluation import EvalSettings
from rlhfkit.runs import Manifest, RunData, atomic_write_text, check_ours_to_write, jsonable
from rlhfkit.train.ppo import PPOSettings
from rlhfkit.train.reward import RewardSettings

__all__ = ["CriteriaSettings", "criteria_frontier", "criterion_reward_models", "weights_tag"]

FRONTIER = "frontier.json"


def _default_weights() -> tuple[dict[str, float], ...]:
    return tuple({"positive": 1.0 - b, "brief": b} for b in (0.0, 0.25, 0.5, 0.75, 1.0))


@dataclass
class CriteriaSettings:
    """The weightings to train, and the budgets of each step. Defaults: the reviews task's two criteria, five
    weightings from all "positive" to all "brief"; minutes per weighting on the embedded default on a CPU."""

    weights: Sequence[Mapping[str, float]] = field(default_factory=_default_weights)
    """One PPO run per weighting: criterion -> weight (a criterion left out weighs 0)."""
    reward: RewardSettings = field(default_factory=RewardSettings)
    ppo: PPOSettings = field(default_factory=PPOSettings)
    evaluation: EvalSettings = field(default_factory=EvalSettings)
    n_reference: int = 128
    """SFT samples (one per train prompt) on which each reward model's mean and spread are measured."""
    seed: int = 0

    def __post_init__(self) -> None:
        self.weights = tuple(dict(w) for w in self.weights)
        if not self.weights:
            raise ValueError("CriteriaSettings.weights is empty (expected at least one weighting)")
        for i, w in enumerate(self.weights):
            if not w or not any(w.values()):
                raise ValueError(f"CriteriaSettings.weights[{i}] is {w} (expected a non-zero weight)")
        if self.n_reference < 2:
            raise ValueError(f"CriteriaSettings.n_reference is {self.n_reference} (expected at least 2)")

    @property
    def criteria(self) -> list[str]:
        """Every criterion some weighting uses, in order of first appearance."""
        return list(dict.fromkeys(c for w in self.weights for c, v in w.items() if v))


def weights_tag(weights: Mapping[str, float]) -> str:
    """A folder name for a weighting, e.g. "brief0.25-positive0.75" (criteria sorted, zeros left out)."""
    return "-".join(f"{c}{v:g}" for c, v in sorted(weights.items()) if v)


def criterion_reward_models(
    policy: str | os.PathLike,
    store,
    criteria: Sequence[str],
    settings: RewardSettings | None = None,
    out: str | os.PathLike = "runs/criteria",
    *,
    annotators: Sequence[str] | None = None,
    manifest: Manifest | None = None,
    echo: bool = True,
) -> dict[str, RunData]:
    """One reward model per criterion, from `policy`, on that criterion's judgments in `store` (a `LabelStore` or
    its path; `annotators` limits whose): out/preferences-<criterion>.jsonl and the run directory
    out/reward-<criterion>."""
    from rlhfkit.labeling.store import LabelStore

    out = Path(out)
    manifest = manifest or Manifest(out, "criteria")
    opened = store if isinstance(store, LabelStore) else LabelStore(store)
    runs = {}
    try:
        for criterion in criteria:
            rows, counts = opened.to_preferences(annotators=annotators, criterion=criterion)
            if not rows:
                raise ValueError(f"no preference judgments on criterion {criterion!r} in {opened.path} ({counts})")
            path = manifest.claim(f"preferences-{criterion}.jsonl")
            stages._write_jsonl_atomically(pd.DataFrame(rows), path)
            runs[criterion] = stages.reward_model(
                policy, path, settings, manifest.claim(f"reward-{criterion}"), echo=echo
            )
    finally:
        if opened is not store:
            opened.close()
    return runs


def criteria_frontier(
    policy: str | os.PathLike,
    task: Any,
    store,
    settings: CriteriaSettings | None = None,
    out: str | os.PathLike = "runs/criteria",
    *,
    annotators: Sequence[str] | None = None,
    echo: bool = True,
) -> pd.DataFrame:
    """Train the per-criterion reward models, one PPO run per weighting in `settings.weights`, and evaluate every
    policy with each criterion's gold judge (`task.gold_for`). Returns the frontier, one row per weighting plus the
    SFT model's: "policy", the weights, per criterion c "gold_<c>" with "gold_<c>_ci_lo" / "_hi" (bootstrap over
    prompts), "kl_to_ref"; also written to out/frontier.json."""
    from rlhfkit.judges import CombinedJudge
    from rlhfkit.metrics.core import bootstrap_ci
    from rlhfkit.sampling import SamplingSettings
    from rlhfkit.tasks import load_task
    from rlhfkit.threads import cpu_threads
    from rlhfkit.train.reward import RewardModelJudge

    settings = settings or CriteriaSettings()
    task = load_task(task) if isinstance(task, str) else task
    criteria = settings.criteria
    gold = {c: task.gold_for(c) for c in criteria}  # fails early, naming the criteria the task has
    out = Path(out)
    # The names this writes: one that is there but not rlhfkit's is refused, never overwritten.
    names = {FRONTIER, "reference_samples.jsonl", *(f"ppo-{weights_tag(w)}" for w in settings.weights)}
    names |= {f"{kind}-{c}{ext}" for c in criteria for kind, ext in (("preferences", ".jsonl"), ("reward", ""))}
    check_ours_to_write(out, "criteria", "criteria folder", names)
    manifest = Manifest(out, "criteria")
    with cpu_threads(model=str(policy)):
        rms = criterion_reward_models(
            policy,
            store,
            criteria,
            replace(settings.reward, seed=settings.seed),
            out,
            annotators=annotators,
            manifest=manifest,
            echo=echo,
        )
        judges = {c: RewardModelJudge(str(run.model_path)) for c, run in rms.items()}
        reference_path = out / "reference_samples.jsonl"
        if reference_path.exists():
            reference = pd.read_json(reference_path, lines=True, dtype=False)
        else:
            prompts = task.train_prompts[: settings.n_reference]
            sampling = SamplingSettings(k=1, seed=settings.seed, max_new_tokens=settings.ppo.max_new_tokens)
            reference = stages.candidates(policy, prompts, sampling, progress=echo)[["prompt", "response"]]
            stages._write_jsonl_atomically(reference, manifest.claim(reference_path.name))
        pairs = (reference.prompt.tolist(), reference.response.tolist())

        runs = {}
        for weights in settings.weights:
            tag = weights_tag(weights)
            reward = CombinedJudge(judges, weights, reference=pairs)
            heaviest = max((c for c in weights if weights[c]), key=lambda c: abs(weights[c]))
            runs[tag] = stages.ppo(
                policy,
                reward,
                task.train_prompts,
                replace(settings.ppo, seed=settings.seed),
                manifest.claim(f"ppo-{tag}"),
                reward_model_path=str(rms[heaviest].model_path),  # a separate value model starts from it
                echo=echo,
            )
        result = stages.evaluate(
            runs, task, replace(settings.evaluation, seed=settings.seed), reference=policy, progress=echo
        )

    samples, by_policy = result.samples, result.to_dict()
    rows = []
    for name in ["sft", *runs]:
        frame = samples[samples.policy == name]
        weights = {} if name == "sft" else dict(settings.weights[list(runs).index(name)])
        row = {"policy": name, **{f"w_{c}": weights.get(c, 0.0) for c in criteria}}
        for c in criteria:
            scores = gold[c](frame.prompt.tolist(), frame.response.tolist())
            lo, hi = bootstrap_ci(
                scores, n=settings.evaluation.n_bootstrap, seed=settings.seed, groups=frame.prompt_index.tolist()
            )
            row.update({f"gold_{c}": float(sum(scores) / len(scores)), f"gold_{c}_ci_lo": lo, f"gold_{c}_ci_hi": hi})
        row["kl_to_ref"] = by_policy[name]["kl_to_ref"]
        row["mean_words"] = float(frame.response.str.split().str.len().mean())
        rows.append(row)
    frontier = pd.DataFrame(rows)
    record = {"criteria": criteria, "settings": asdict(settings), "frontier": frontier.to_dict("records")}
    atomic_write_text(manifest.claim(FRONTIER), json.dumps(jsonable(record), indent=2))
    return frontier
