"""Iterated RLHF: rounds of labelling what the current policy writes, retraining the reward model, continuing PPO.

One round r (1, 2, ...):

    the current policy (the SFT model in round 1, round r-1's PPO policy after) samples K candidates for new train
    prompts -> pairs of them go into the label store, tagged with the round (item source "round-<r>")
    -> they are labelled: a simulated annotator or an AI judge writes its judgments into the store, or people
       label them in the widget (`run_rounds` then stops, saying how many are pending, and the next call goes on)
    -> a reward model is trained on every round's labels so far (afresh from the SFT model, or continued from
       round r-1's: `RoundSettings.reward_init`)
    -> PPO continues from the current policy against it, with the KL penalty to the unchanged reference (the SFT
       model), and its value model starting from the new reward model
    -> measured: the reward model's accuracy against gold on pairs of the current policy's samples, before
       (round r-1's reward model) and after retraining; the new policy's proxy and gold reward and KL on held-out
       prompts; and the over-optimisation gap (below).

Why rounds: a reward model trained on the SFT model's samples is tested, as the policy drifts, on text unlike
what it learned from, and PPO pushes exactly into those regions. New labels on the policy's own samples are what
InstructGPT, Llama 2 (five rounds) and Anthropic's online HH collected.

The folder `out` (one run directory per training step, see `rlhfkit.runs`):

    out/labels.sqlite             the label store (unless another is given): every round's pair items
    out/round-<r>/candidates.jsonl  the current policy's candidates on the round's train prompts
    out/round-<r>/check.jsonl     pairs of its candidates on eval prompts, labelled by the gold judge (no noise)
    out/round-<r>/preferences.jsonl  every round's labels so far, what the reward model trains on
    out/round-<r>/reward/  ppo/   the round's reward model and PPO runs
    out/round-<r>/round.json      written last: the round's measurements; its presence means the round is done

A stopped loop resumes where it was: finished rounds are read back, files already written are reused, an
interrupted training run resumes from its checkpoint, and the label store never asks for a label already given
(its items are deduplicated, and only items without a judgment are labelled or shown).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rlhfkit import stages
from rlhfkit.evaluation import EvalSettings
from rlhfkit.runs import Manifest, atomic_write_text, check_ours_to_write, jsonable
from rlhfkit.train.ppo import PPOSettings
from rlhfkit.train.reward import RewardSettings

__all__ = ["PEOPLE", "RoundSettings", "Rounds", "overoptimization_gap", "rounds_figure", "run_rounds"]

PEOPLE = "people"
"""`run_rounds(labeller=PEOPLE, annotator="alice")`: nobody labels automatically; each round waits for alice."""
ROUND_FILE, CANDIDATES, CHECK = "round.json", "candidates.jsonl", "check.jsonl"
_STORE = "labels.sqlite"


@dataclass
class RoundSettings:
    """How many rounds, what each labels and how much each trains. The defaults take minutes per round on the
    embedded default on a CPU."""

    rounds: int = 3
    """Rounds to run. A later call with more rounds continues from the last finished one."""
    prompts_per_round: int = 128
    """New train prompts per round (round r takes the r-th block of `task.train_prompts`): no prompt is labelled
    twice."""
    k: int = 4
    """Candidates sampled per prompt from the current policy."""
    max_pairs_per_prompt: int | None = 6
    """Cap on pairs per prompt (None = all k(k-1)/2)."""
    temperature: float = 1.0
    """Sampling temperature of the candidates."""
    max_new_tokens: int | None = None
    """Longest candidate; None keeps `SamplingSettings`' default."""
    flip_rate: float = 0.1
    """Label noise of the default labeller, a simulated annotator (the task's gold judge)."""
    n_check_prompts: int = 64
    """Eval prompts whose candidates from the current policy, labelled by the gold judge, test the reward models."""
    check_k: int = 4
    """Candidates per check prompt (all pairs; gold ties dropped)."""
    reward_init: str = "sft"
    """"sft": each round's reward model is trained afresh from the SFT model on all labels so far; "previous":
    round r's continues from round r-1's, on all labels so far."""
    reward: RewardSettings = field(default_factory=RewardSettings)
    ppo: PPOSettings = field(default_factory=lambda: PPOSettings(total_steps=100))
    """PPO per round: `total_steps` rollouts each round."""
    evaluation: EvalSettings = field(default_factory=lambda: EvalSettings(n_prompts=128))
    seed: int = 0
    """Base seed: round r samples, pairs and labels with seed + r, and trains with seed + r."""

    def __post_init__(self) -> None:
        for name in ("rounds", "prompts_per_round", "n_check_prompts"):
            if getattr(self, name) < 1:
                raise ValueError(f"RoundSettings.{name} is {getattr(self, name)} (expected at least 1)")
        for name in ("k", "check_k"):
            if getattr(self, name) < 2:
                raise ValueError(f"RoundSettings.{name} is {getattr(self, name)} (expected at least 2: pairs)")
        if self.max_pairs_per_prompt is not None and self.max_pairs_per_prompt < 1:
            raise ValueError(f"RoundSettings.max_pairs_per_prompt is {self.max_pairs_per_prompt} (expected >= 1)")
        if not 0.0 <= self.flip_rate <= 0.5:
            raise ValueError(f"RoundSettings.flip_rate is {self.flip_rate} (expected a probability in [0, 0.5])")
        if self.reward_init not in ("sft", "previous"):
            raise ValueError(f"RoundSettings.reward_init is {self.reward_init!r} (expected 'sft' or 'previous')")


@dataclass
class Rounds:
    """What `run_rounds` did: `rounds` (one dict of measurements per finished round, see `table`), `policy` (the
    folder of the newest policy), `store` (the label store's path), and `waiting`: None, or when people still
    have to label, {"round", "annotator", "pending", "store"}."""

    out: Path
    rounds: list[dict]
    policy: str
    store: Path
    waiting: dict | None = None

    def table(self) -> pd.DataFrame:
        """One row per finished round: labels used, reward model accuracy before / after retraining, the new
        policy's gold and proxy reward (with 95% intervals), KL to the reference, win rate, over-optimisation gap."""
        columns = [
            "round",
            "pairs_total",
            "rm_accuracy_before",
            "rm_accuracy_after",
            "gold_reward_mean",
            "gold_reward_ci_lo",
            "gold_reward_ci_hi",
            "proxy_reward_mean",
            "kl_to_ref",
            "win_rate_vs_ref",
            "overoptimization_gap",
        ]
        return pd.DataFrame([{c: r.get(c) for c in columns} for r in self.rounds], columns=columns)


def overoptimization_gap(policy_samples: pd.DataFrame, reference_samples: pd.DataFrame) -> float:
    """How much better the reward model thinks the policy got than the gold judge does, in ranks:

        gap = mean_i P_ref(proxy < proxy_i) - mean_i P_ref(gold < gold_i)

    where i runs over the policy's samples and P_ref is the fraction of the reference's samples (the same prompts)
    below, ties counting half. Each term is the policy's average percentile among the reference's samples, by
    the proxy and by gold; 0 means proxy and gold agree on how far the policy moved, > 0 that the proxy ranks it
    higher than gold does (over-optimisation). Rank-based, so proxy and gold need no common scale."""

    def percentile(values: np.ndarray, against: np.ndarray) -> float:
        against = np.sort(against)
        below = np.searchsorted(against, values, side="left")
        above = np.searchsorted(against, values, side="right")
        return float(np.mean((below + above) / 2.0 / len(against)))

    proxy = percentile(policy_samples["proxy"].to_numpy(float), reference_samples["proxy"].to_numpy(float))
    gold = percentile(policy_samples["gold"].to_numpy(float), reference_samples["gold"].to_numpy(float))
    return proxy - gold


def _labeller(labeller: Any, annotator: str | None, task, settings: RoundSettings) -> tuple[Any, str]:
    """(who labels: PEOPLE or a judge for `annotate_with_judge`, the annotator name the judgments are stored as)."""
    from rlhfkit.judges import SimulatedAnnotator
    from rlhfkit.labeling.ai import is_pairwise_judge, resolve_judge

    if labeller == PEOPLE:
        if not annotator:
            raise ValueError("run_rounds(labeller=PEOPLE) needs annotator=: the name people label under")
        return PEOPLE, annotator
    if labeller is None:
        if task.gold_judge is None:
            raise ValueError(
                f"task {task.name!r} has no gold judge to simulate labels from: pass labeller= (a judge, an "
                f"LLMJudge, or PEOPLE with annotator=)"
            )
        labeller = SimulatedAnnotator(task.gold_judge, noise="flip", flip_rate=settings.flip_rate, seed=settings.seed)
    if is_pairwise_judge(labeller):
        name = annotator or f"judge:{getattr(labeller, 'name', type(labeller).__name__)}"
    else:
        name = annotator or resolve_judge(labeller)[2]
    return labeller, name


def _round_prompts(task, settings: RoundSettings, r: int) -> list:
    first = (r - 1) * settings.prompts_per_round
    prompts = task.train_prompts[first : first + settings.prompts_per_round]
    if len(prompts) < settings.prompts_per_round:
        raise ValueError(
            f"round {r} needs train prompts {first + 1}-{first + settings.prompts_per_round}, but task {task.name!r} "
            f"has {len(task.train_prompts)}: lower RoundSettings.prompts_per_round or rounds"
        )
    return list(prompts)


def _sampled(policy: str, prompts: list, settings: RoundSettings, k: int, seed: int, path: Path, echo: bool):
    """The policy's candidates for `prompts`, read back from `path` when a run before this one wrote them."""
    from rlhfkit.sampling import SamplingSettings

    if path.exists():
        return pd.read_json(path, lines=True, dtype=False)
    sampling = SamplingSettings(k=k, temperature=settings.temperature, seed=seed)
    if settings.max_new_tokens is not None:
        sampling = replace(sampling, max_new_tokens=settings.max_new_tokens)
    table = stages.candidates(policy, prompts, sampling, progress=echo)
    table = table[["prompt_index", "prompt", "candidate", "response"]]
    stages._write_jsonl_atomically(table, path)
    return table


def _check_pairs(policy: str, task, settings: RoundSettings, seed: int, path: Path, echo: bool) -> pd.DataFrame:
    """Pairs of the policy's candidates on eval prompts, labelled by the gold judge without noise (ties dropped)."""
    from rlhfkit.judges import SimulatedAnnotator

    if path.exists():
        return pd.read_json(path, lines=True, dtype=False)
    prompts = list(task.eval_prompts[: settings.n_check_prompts])
    table = _sampled(policy, prompts, settings, settings.check_k, seed, path.with_name("check_candidates.jsonl"), echo)
    gold = SimulatedAnnotator(task.gold_judge, noise="none", seed=seed)
    check = stages.label_pairs(table, gold)
    check = check[~check.judge_tie][["prompt", "chosen", "rejected"]].reset_index(drop=True)
    stages._write_jsonl_atomically(check, path)
    return check


def _accuracy(reward_model_path: str | None, check: pd.DataFrame) -> float | None:
    from rlhfkit.train.reward import RewardModelJudge, pairwise_accuracy

    if reward_model_path is None or check.empty:
        return None
    return pairwise_accuracy(RewardModelJudge(reward_model_path), check.to_dict("records"))


def _pending_in_round(store, annotator: str, r: int) -> int:
    """Pair items of round r that `annotator` has not judged yet."""
    count, after = 0, None
    while True:
        batch = store.pending(annotator, "pair", limit=500, after_id=after)
        if not batch:
            return count
        count += sum(1 for item in batch if item["source"] == f"round-{r}")
        after = batch[-1]["id"]


def run_rounds(
    policy: str | os.PathLike,
    task: Any = "reviews",
    settings: RoundSettings | None = None,
    out: str | os.PathLike = "runs/rounds",
    *,
    labeller: Any = None,
    annotator: str | None = None,
    store: str | os.PathLike | None = None,
    echo: bool = True,
) -> Rounds:
    """Run rounds 1..`settings.rounds` (see the module docstring) from `policy`, the SFT model and the fixed
    reference of every round, on `task` (a `Task` or a name `rlhfkit.tasks.load_task` knows), into `out`.

    labeller: None (a simulated annotator: the task's gold judge with `settings.flip_rate` noise), a judge
      (`annotate_with_judge` takes it: a `Judge`, a builtin name, a batched callable, an `LLMJudge`), or `PEOPLE`:
      the round's pairs wait for `annotator` to label them in a `PairwiseLabeler` on `store`; the call then returns
      with `waiting` set, and calling again (same arguments) continues once they are labelled.
    annotator: the name judgments are stored (and read back) under; default the labeller's own name.
    store: the label store's path (default `out/labels.sqlite`).

    Returns `Rounds`; a call after every round finished reads them back without training. CPU threads follow
    `rlhfkit.threads` for the whole loop, as in `run_pipeline`."""
    from rlhfkit.threads import cpu_threads

    with cpu_threads(model=str(policy)):
        return _run_rounds(policy, task, settings, out, labeller=labeller, annotator=annotator, store=store, echo=echo)


def _run_rounds(policy, task, settings, out, *, labeller, annotator, store, echo) -> Rounds:
    from rlhfkit.labeling.ai import annotate_with_judge
    from rlhfkit.labeling.store import LabelStore
    from rlhfkit.models import resolve_model
    from rlhfkit.sampling import candidate_pairs
    from rlhfkit.tasks import load_task
    from rlhfkit.train.reward import RewardModelJudge

    settings = settings or RoundSettings()
    task = load_task(task) if isinstance(task, str) else task
    if task.gold_judge is None:
        raise ValueError(
            f"task {task.name!r} has no gold judge: rounds measure each reward model and policy against one"
        )
    who, annotator = _labeller(labeller, annotator, task, settings)
    out = Path(out)
    # The names this loop writes: one that is there but not rlhfkit's is refused, never overwritten.
    names = {f"round-{r}" for r in range(1, settings.rounds + 1)} | (set() if store is not None else {_STORE})
    check_ours_to_write(out, "rounds", "rounds folder", names)
    manifest = Manifest(out, "rounds")
    reference = resolve_model(policy)
    store_path = Path(store) if store is not None else manifest.claim(_STORE)
    current, previous_rm = reference, None
    finished: list[dict] = []

    with LabelStore(store_path) as labels:
        for r in range(1, settings.rounds + 1):
            folder = out / f"round-{r}"
            seed = settings.seed + r
            if (folder / ROUND_FILE).exists():  # finished earlier: read back
                done = json.loads((folder / ROUND_FILE).read_text())
                _check_same_settings(done, settings, folder)
                finished.append(done)
                current, previous_rm = done["policy"], done["reward_model"]
                continue
            manifest.claim(folder.name)
            folder.mkdir(parents=True, exist_ok=True)
            stages.say(f"[round {r}] candidates of {current}", echo)

            # 1. The current policy's candidates on the round's new prompts, paired, into the store.
            table = _sampled(
                current, _round_prompts(task, settings, r), settings, settings.k, seed, folder / CANDIDATES, echo
            )
            pairs = candidate_pairs(table, settings.max_pairs_per_prompt, seed=seed)
            item_ids = labels.add_pairs([{**p, "meta": {"round": r}} for p in pairs], source=f"round-{r}")

            # 2. Labels: written by the labeller, or waited for.
            if who == PEOPLE:
                pending = _pending_in_round(labels, annotator, r)
                if pending:
                    stages.say(
                        f"[round {r}] {pending} of {len(item_ids)} pairs wait for {annotator!r} in {store_path}: "
                        f"label them (PairwiseLabeler({str(store_path)!r}, {annotator!r})), then run again",
                        echo,
                    )
                    waiting = {"round": r, "annotator": annotator, "pending": pending, "store": str(store_path)}
                    return Rounds(out, finished, str(current), store_path, waiting)
            else:
                annotate_with_judge(labels, who, annotator, seed=seed, progress=echo)
            rows, counts = labels.to_preferences(annotators=[annotator])
            so_far = {f"round-{i}" for i in range(1, r + 1)}
            rows = [row for row in rows if row["item_source"] in so_far]
            if not rows:
                raise ValueError(f"round {r}: no preferences by {annotator!r} in {store_path} yet ({counts})")
            stages._write_jsonl_atomically(pd.DataFrame(rows), folder / stages.PREFERENCES)

            # 3. Reward model on every round's labels; its accuracy on the current policy's samples.
            check = _check_pairs(current, task, settings, seed, folder / CHECK, echo)
            accuracy_before = _accuracy(previous_rm, check)
            init = previous_rm if settings.reward_init == "previous" and previous_rm else reference
            rm_run = stages.reward_model(
                init,
                folder / stages.PREFERENCES,
                replace(settings.reward, seed=seed),
                folder / "reward",
                echo=echo,
            )
            rm_path = str(rm_run.model_path)
            accuracy_after = _accuracy(rm_path, check)

            # 4. PPO from the current policy; the reference stays the SFT model.
            rm_judge = RewardModelJudge(rm_path)
            ppo_run = stages.ppo(
                current,
                rm_judge,
                task.train_prompts,
                replace(settings.ppo, seed=seed),
                folder / "ppo",
                reference=reference,
                reward_model_path=rm_path,
                echo=echo,
            )

            # 5. The new policy on held-out prompts, against the reference, scored by this round's reward model.
            name = f"round-{r}"
            result = stages.evaluate(
                {name: ppo_run},
                task,
                replace(settings.evaluation, seed=settings.seed),
                reference=reference,
                reference_name="sft",
                reward_model=rm_judge,
                progress=echo,
            )
            row = result.to_dict()[name]
            samples = result.samples
            gap = overoptimization_gap(samples[samples.policy == name], samples[samples.policy == "sft"])
            done = {
                "round": r,
                "policy": str(ppo_run.model_path),
                "reward_model": rm_path,
                "pairs_new": len(item_ids),
                "pairs_total": len(rows),
                "annotator": annotator,
                "rm_accuracy_before": accuracy_before,
                "rm_accuracy_after": accuracy_after,
                "check_pairs": len(check),
                "gold_reward_mean": row["gold_reward_mean"],
                "gold_reward_ci_lo": row["gold_reward_ci"][0],
                "gold_reward_ci_hi": row["gold_reward_ci"][1],
                "proxy_reward_mean": row["proxy_reward_mean"],
                "kl_to_ref": row["kl_to_ref"],
                "win_rate_vs_ref": row["win_rate_vs_ref"],
                "overoptimization_gap": gap,
                "sft_gold_reward_mean": result.to_dict()["sft"]["gold_reward_mean"],
                "settings": asdict(settings),
            }
            atomic_write_text(folder / ROUND_FILE, json.dumps(jsonable(done), indent=2))  # in the claimed folder
            stages.say(
                f"[round {r}] done: reward model accuracy on the policy's samples "
                f"{_fmt(accuracy_before)} -> {_fmt(accuracy_after)}; gold {row['gold_reward_mean']:.3f}, "
                f"proxy {row['proxy_reward_mean']:.3f}, KL {row['kl_to_ref']:.2f}, gap {gap:+.3f}",
                echo,
            )
            finished.append(done)
            current, previous_rm = done["policy"], rm_path
    return Rounds(out, finished, str(current), store_path)


def _check_same_settings(done: dict, settings: RoundSettings, folder: Path) -> None:
    """A finished round is read back only when it was made with the settings asked for now (the number of rounds
    aside: asking for more continues the loop); otherwise continuing would mix two experiments silently."""

    def comparable(record: dict) -> dict:
        return {k: v for k, v in json.loads(json.dumps(jsonable(record))).items() if k != "rounds"}

    before, now = comparable(done.get("settings", {})), comparable(asdict(settings))
    differ = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    if differ:
        raise ValueError(
            f"{folder} was made with other settings ({', '.join(differ)} differ): continuing would mix two "
            f"experiments. Use a new folder for these settings, or the settings that folder was made with"
        )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


_FIGURE_PANELS = (
    ("gold_reward_mean", "gold reward of the policy (held-out prompts)"),
    ("rm_accuracy_after", "reward model accuracy vs gold, on the policy's samples"),
    ("overoptimization_gap", "over-optimisation gap (proxy minus gold percentile)"),
    ("kl_to_ref", "KL to the reference (SFT)"),
)


def rounds_figure(per_round: dict[str, list[dict]], *, title: str = "RLHF rounds"):
    """A 2 x 2 plotly figure of what rounds change: gold reward, reward model accuracy (after retraining, solid;
    before, dotted), over-optimisation gap and KL, by round, one line per arm.

    `per_round`: arm name -> one dict per round of {measure: {"mean": m, "ci95": [lo, hi]}} (intervals may be
    NaN, e.g. for one seed), as bench/rounds.py writes it; `Rounds.table()` rows become that with
    `{arm: [{k: {"mean": v} for k, v in row.items()} for row in rounds.table().to_dict("records")]}`. An arm of
    one round is drawn as a point at the last round of the longest arm (the same total budget)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from rlhfkit.figures import plotly_text

    fig = make_subplots(rows=2, cols=2, subplot_titles=[plotly_text(t) for _, t in _FIGURE_PANELS])
    last = max(len(rounds) for rounds in per_round.values())
    colors = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728")
    for i, (arm, rounds) in enumerate(per_round.items()):
        x = list(range(1, len(rounds) + 1)) if len(rounds) > 1 else [last]
        for panel, (measure, _) in enumerate(_FIGURE_PANELS):
            row, col = divmod(panel, 2)
            series = [("", measure)] + ([("before retraining", "rm_accuracy_before")] if panel == 1 else [])
            for suffix, key in series:
                points = [r.get(key) or {} for r in rounds]
                mean = [p.get("mean") for p in points]
                if all(m is None for m in mean):
                    continue
                lo = [(p.get("ci95") or [None, None])[0] for p in points]
                hi = [(p.get("ci95") or [None, None])[1] for p in points]
                has_ci = all(v is not None and v == v for v in lo + hi)
                fig.add_trace(
                    go.Scatter(
                        x=x,
                        y=mean,
                        mode="lines+markers",
                        name=plotly_text(f"{arm} {suffix}".strip()),
                        legendgroup=plotly_text(f"{arm}{suffix}"),
                        showlegend=panel == 0 or bool(suffix),
                        line=dict(color=colors[i % len(colors)], dash="dot" if suffix else "solid"),
                        error_y=dict(
                            type="data",
                            symmetric=False,
                            array=[h - m for h, m in zip(hi, mean)],
                            arrayminus=[m - lo_ for m, lo_ in zip(mean, lo)],
                        )
                        if has_ci
                        else None,
                    ),
                    row=row + 1,
                    col=col + 1,
                )
    fig.update_xaxes(title_text="round", tickmode="linear", dtick=1)
    fig.update_layout(title=plotly_text(title), height=640, template="plotly_white")
    return fig
