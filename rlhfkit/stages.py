"""The steps of RLHF, one public function each: what `run_pipeline`, `rlhfkit pipeline` and every notebook call.

    sft -> candidates -> label_preferences -> reward_model -> ppo / dpo / online (RLOO, GRPO) -> evaluate -> report

Every step has the same shape: `step(inputs, settings, out, *, reuse=True, ...) -> what it produced`, where `out`
is the step's own folder (a run directory, see `rlhfkit.runs`, for a training step). With `reuse=True` (the
default) a finished result already in `out` is returned as it is, and an interrupted training run resumes from its
last checkpoint; otherwise, or when there is nothing to reuse, the step runs, first removing rlhfkit's own files of
an earlier attempt there (never anyone else's: a folder rlhfkit did not write is refused). So a notebook that
points at another notebook's folder reuses its run, and re-running a cell after a crash continues where it stopped.

The recipes that used to be written out in the pipeline and again in notebooks live here once: how candidates
are drawn and paired, how preferences are labelled (simulated from a gold judge with noise, by an AI judge, or by
people through a `LabelStore`), which value model PPO starts from.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, is_dataclass, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import pandas as pd

from rlhfkit.runs import Manifest, RunData, check_ours_to_write, jsonable, read_manifest, remove_written
from rlhfkit.runs import load as load_run

__all__ = [
    "LabelSettings",
    "Labels",
    "finished_run",
    "settings_differences",
    "resumable_run",
    "sft",
    "candidates",
    "label_pairs",
    "label_preferences",
    "labels_done",
    "reward_model",
    "ppo",
    "dpo",
    "online",
    "evaluate",
    "report",
]


def say(message: str, echo: bool) -> None:
    """Print one progress line when `echo` is on (the stages, the pipeline and the rounds all report this way)."""
    if echo:
        print(message, flush=True)


# --- reuse, resume or run ---------------------------------------------------------------------------------------


def finished_run(path: str | os.PathLike) -> bool:
    """Whether `path` is an rlhfkit run directory whose run finished and saved a model (`model/` or `adapter/`)."""
    path = Path(path)
    if read_manifest(path) is None or not (path / "config.json").exists():
        return False
    run = load_run(path)
    return run.status.get("state") == "finished" and run.model_path is not None


def resumable_run(path: str | os.PathLike) -> bool:
    """Whether `path` holds an unfinished run (interrupted, or killed while running) with a checkpoint to continue."""
    path = Path(path)
    if read_manifest(path) is None or not (path / "config.json").exists():
        return False
    checkpoints = path / "checkpoints"
    state = load_run(path).status.get("state")
    return state in ("running", "interrupted") and checkpoints.is_dir() and any(checkpoints.iterdir())


# Settings that say where or how a run is logged, not what it learns: a finished run is reused whatever they were.
_NOT_COMPARED = ("device", "report_to")


def settings_differences(run_dir: str | os.PathLike, settings: Any, model: Any = None) -> list[str]:
    """How the finished run in `run_dir` differs from what is asked now: each setting (a dataclass such as
    `SFTSettings`) whose recorded value is another (a setting left None, "decide for me", matches what was
    decided), and the starting model when `model` is a path or name, as
    "name: then -> now". Empty when they agree."""
    config = load_run(run_dir).config
    now = jsonable(asdict(settings)) if is_dataclass(settings) else {}
    differ = [
        f"{key}: {config[key]!r} then, {value!r} now"
        for key, value in now.items()
        # None asks the trainer to decide (chat template or not, the value model, ...): it records what it decided
        if key in config
        and key not in _NOT_COMPARED
        and value is not None
        and json.dumps(config[key]) != json.dumps(value)
    ]
    if isinstance(model, (str, os.PathLike)) and isinstance(config.get("model"), str) and config["model"] != str(model):
        differ.append(f"model: {config['model']!r} then, {str(model)!r} now")
    return differ


def _training_step(
    name: str,
    out: str | os.PathLike,
    train: Callable[[bool], RunData],
    *,
    reuse: bool,
    echo: bool,
    settings: Any = None,
    model: Any = None,
) -> RunData:
    """Reuse a finished run in `out` trained with the same settings from the same model, resume an interrupted one,
    or train afresh (`train(resume)`); a finished run with other settings is replaced, saying what differed."""
    out = Path(out)
    if reuse and finished_run(out):
        differ = settings_differences(out, settings, model) if settings is not None else []
        if not differ:
            say(f"[{name}] reused: the finished run in {out} (reuse=False trains a new one)", echo)
            return load_run(out)
        say(f"[{name}] the finished run in {out} had other settings ({'; '.join(differ[:4])}): training anew", echo)
    resume = reuse and resumable_run(out)
    if resume:
        say(f"[{name}] resuming the interrupted run in {out}", echo)
    elif read_manifest(out) is not None:
        remove_written(out)
    return train(resume)


# --- training steps ---------------------------------------------------------------------------------------------


def sft(
    model: str | os.PathLike,
    task,
    settings=None,
    out: str | os.PathLike = "runs/sft",
    *,
    reuse: bool = True,
    callbacks: Sequence = (),
    echo: bool = True,
) -> RunData:
    """Supervised fine-tuning of `model` ("tiny", a folder or a Hub id) on the task's demonstrations, into the run
    directory `out` (`rlhfkit.train.sft.train_sft` with `settings`, an `SFTSettings`)."""
    from rlhfkit.models import resolve_model
    from rlhfkit.train.sft import train_sft

    start = resolve_model(model)
    return _training_step(
        "sft",
        out,
        lambda resume: train_sft(start, task, settings, out, resume=resume, callbacks=callbacks),
        reuse=reuse,
        echo=echo,
        settings=settings,
        model=start,
    )


def reward_model(
    model: str | os.PathLike,
    preferences,
    settings=None,
    out: str | os.PathLike = "runs/reward",
    *,
    reuse: bool = True,
    callbacks: Sequence = (),
    echo: bool = True,
) -> RunData:
    """A reward model initialised from `model` (usually the SFT model) and trained on `preferences` (anything
    `rlhfkit.data.load_preferences` reads, or `Labels`), into the run directory `out`."""
    from rlhfkit.train.reward import train_reward_model

    data = preferences.preferences if isinstance(preferences, Labels) else preferences
    return _training_step(
        "reward",
        out,
        lambda resume: train_reward_model(model, data, settings, out, resume=resume, callbacks=callbacks),
        reuse=reuse,
        echo=echo,
        settings=settings,
        model=model,
    )


def ppo(
    policy: str | os.PathLike,
    reward: Any,
    prompts: Sequence,
    settings=None,
    out: str | os.PathLike = "runs/ppo",
    *,
    reference: str | os.PathLike | None = None,
    reward_model_path: str | os.PathLike | None = None,
    reuse: bool = True,
    callbacks: Sequence = (),
    echo: bool = True,
) -> RunData:
    """PPO from `policy` (the SFT model, also the frozen reference of the KL penalty unless `reference` names
    another: a later round of `rlhfkit.rounds` continues from its policy with the SFT model as reference) against
    `reward` (a reward model's judge or path, or any `fn(prompts, responses) -> scores`), on `prompts`, into `out`.

    The value model follows `PPOSettings.separate_value_model`, decided there once: a separate network started
    from the reward model (`reward_model_path`, or `reward` itself when it is a path), or a value head on the
    policy's backbone."""
    from rlhfkit.train.ppo import PPOSettings, train_ppo

    settings = settings or PPOSettings()
    value_from = None
    if settings.separate_value_model:
        value_from = reward_model_path or (reward if isinstance(reward, (str, os.PathLike)) else None)
        if value_from is None:
            raise ValueError(
                "PPO with a separate value model starts it from the reward model: pass reward_model_path= (the "
                "reward model's folder), or use PPOSettings(value_model='shared')"
            )
        value_from = str(value_from)
    return _training_step(
        "ppo",
        out,
        lambda resume: train_ppo(
            policy,
            reward,
            prompts,
            settings,
            out,
            reference=policy if reference is None else reference,
            value_model=value_from,
            resume=resume,
            callbacks=callbacks,
        ),
        reuse=reuse,
        echo=echo,
        settings=settings.decided(),  # compared as decided: see PPOSettings.decided
        model=policy,
    )


def dpo(
    policy: str | os.PathLike,
    preferences,
    settings=None,
    out: str | os.PathLike = "runs/dpo",
    *,
    task=None,
    reuse: bool = True,
    callbacks: Sequence = (),
    echo: bool = True,
) -> RunData:
    """DPO (or a variant, by `DPOSettings.loss_type`) from `policy`, which is also the reference, on `preferences`
    (anything `load_preferences` reads, or `Labels`), into `out`. With `task`, the samples it logs while training
    are scored by the task's gold judge."""
    from rlhfkit.train.dpo import train_dpo

    data = preferences.preferences if isinstance(preferences, Labels) else preferences
    return _training_step(
        "dpo",
        out,
        lambda resume: train_dpo(
            policy, data, settings, out, reference=policy, task=task, resume=resume, callbacks=callbacks
        ),
        reuse=reuse,
        echo=echo,
        settings=settings,
        model=policy,
    )


def online(
    policy: str | os.PathLike,
    reward: Any,
    prompts,
    settings=None,
    out: str | os.PathLike = "runs/rloo",
    *,
    gold_judge: Callable | None = None,
    reuse: bool = True,
    callbacks: Sequence = (),
    echo: bool = True,
) -> RunData:
    """RLOO or GRPO (TRL, by `OnlineSettings.algorithm`) from `policy` against `reward` on `prompts`, into `out`."""
    from rlhfkit.train.online import train_online

    return _training_step(
        "online",
        out,
        lambda resume: train_online(
            policy, reward, prompts, settings, out, gold_judge=gold_judge, resume=resume, callbacks=callbacks
        ),
        reuse=reuse,
        echo=echo,
        settings=settings,
        model=policy,
    )


# --- candidates and labels --------------------------------------------------------------------------------------


def candidates(policy, prompts: Sequence, sampling=None, *, tokenizer=None, progress: bool = True) -> pd.DataFrame:
    """`sampling.k` candidate responses per prompt from `policy` (a loaded model, or a folder / name to load), one
    row each (`rlhfkit.sampling.sample_candidates`), without the empty ones: an empty response is not something a
    person could prefer. `table.attrs["dropped_empty"]` counts them."""
    from rlhfkit.models import load_policy, load_tokenizer
    from rlhfkit.sampling import sample_candidates

    if isinstance(policy, (str, os.PathLike)):
        tokenizer = tokenizer or load_tokenizer(str(policy))
        policy = load_policy(str(policy))
    if tokenizer is None:
        raise ValueError("candidates: pass tokenizer= with a loaded model")
    table = sample_candidates(policy, tokenizer, list(prompts), sampling, progress=progress)
    empty = table.response.str.strip() == ""
    kept = table[~empty].reset_index(drop=True)
    kept.attrs["dropped_empty"] = int(empty.sum())
    kept.attrs["sampled"] = int(len(table))
    return kept


def label_pairs(
    table: pd.DataFrame, annotator, *, max_pairs_per_prompt: int | None = None, seed: int = 0
) -> pd.DataFrame:
    """Pair the candidates of each prompt (`rlhfkit.sampling.candidate_pairs`, at most `max_pairs_per_prompt` per
    prompt) and let `annotator` choose in each pair: a `SimulatedAnnotator` (its `label_pairs`) or a pairwise judge
    with a ``prefer(prompts, responses_a, responses_b)`` method returning rows of the same format (an `LLMJudge`).
    One row per pair: prompt, chosen, rejected, chosen_position, the judge's scores, `agrees_with_judge`,
    `judge_tie`, ..."""
    from rlhfkit.sampling import candidate_pairs

    pairs = candidate_pairs(table, max_pairs_per_prompt, seed=seed)
    ask = annotator.prefer if _is_pairwise_labeller(annotator) else annotator.label_pairs
    return pd.DataFrame(
        ask([p["prompt"] for p in pairs], [p["response_a"] for p in pairs], [p["response_b"] for p in pairs])
    )


def _is_pairwise_labeller(labeller: Any) -> bool:
    """A judge that decides between two responses itself: ``prefer(prompts, responses_a, responses_b) -> rows``
    as `SimulatedAnnotator.label_pairs` makes them (e.g. `rlhfkit.labeling.llm_judge.LLMJudge`)."""
    from rlhfkit.judges import Judge, SimulatedAnnotator

    return not isinstance(labeller, (Judge, str, SimulatedAnnotator)) and callable(getattr(labeller, "prefer", None))


@dataclass
class LabelSettings:
    """How the SFT model's candidates become preference pairs, and the held-out pairs that test the reward model."""

    n_prompts: int = 1024
    """Train prompts whose candidates are labelled (the first n_prompts of task.train_prompts)."""
    k: int = 6
    """Candidates sampled per prompt (each prompt gives up to k(k-1)/2 pairs)."""
    max_pairs_per_prompt: int | None = 15
    """Cap on pairs per prompt, so one prompt cannot dominate the preference data (None = all k(k-1)/2)."""
    temperature: float = 1.0
    """Sampling temperature of the candidates (diversity makes informative pairs)."""
    flip_rate: float = 0.1
    """Label noise of the simulated annotator: probability of picking the gold-worse response."""
    n_check_prompts: int = 128
    """Eval prompts whose candidates, labelled by the gold judge without noise, test the reward model (0 = none)."""
    check_k: int = 4
    """Candidates per check prompt (all k(k-1)/2 pairs; ties in gold reward are dropped)."""
    max_new_tokens: int | None = None
    """Longest candidate; None keeps `SamplingSettings`' default."""
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("n_prompts", "k", "check_k"):
            if getattr(self, name) < (2 if name.endswith("k") else 1):
                raise ValueError(f"LabelSettings.{name} is {getattr(self, name)} (expected at least 2 for k, 1 else)")
        if self.n_check_prompts < 0:
            raise ValueError(f"LabelSettings.n_check_prompts is {self.n_check_prompts} (expected 0 or more)")
        if not 0.0 <= self.flip_rate <= 0.5:
            raise ValueError(f"LabelSettings.flip_rate is {self.flip_rate} (expected a probability in [0, 0.5])")


PREFERENCES, REWARD_CHECK = "preferences.jsonl", "reward_check.jsonl"


@dataclass
class Labels:
    """What `label_preferences` produced: `preferences` (validated `PreferenceData`, what the reward model and DPO
    train on), `labelled` (the labeller's rows with its scores and, for a simulated annotator, whether it agreed
    with the gold judge), `check` (held-out pairs labelled by the gold judge without noise; empty without one),
    `source` (who labelled), `folder` (where preferences.jsonl and reward_check.jsonl are), `dropped_empty`
    (empty candidates left out) and `ties` (pairs a pairwise judge called a tie, left out of the preferences)."""

    preferences: Any
    labelled: pd.DataFrame
    check: pd.DataFrame
    source: str
    folder: Path
    dropped_empty: int = 0
    ties: int = 0

    @property
    def agreement_with_gold(self) -> float | None:
        """Fraction of pairs where the labeller chose as the gold judge does (None when not known). A pairwise
        judge's rows carry `agrees_with_gold` (the task's gold judge scores both responses); a simulated
        annotator's `agrees_with_judge` is agreement with the judge it simulates."""
        if self.labelled.empty:
            return None
        for column in ("agrees_with_gold", "agrees_with_judge"):
            if column in self.labelled:
                return float(self.labelled[column].mean())
        return None


def labels_done(out: str | os.PathLike) -> bool:
    """Whether `out` holds finished labels (reward_check.jsonl is written last, each file whole or not at all)."""
    return (Path(out) / PREFERENCES).exists() and (Path(out) / REWARD_CHECK).exists()


def _labeller(labels_from: Any, task, settings: LabelSettings):
    """(kind, what) for `label_preferences`' `labels_from`: ("file", path) for collected labels, ("store", store)
    for a LabelStore, else ("annotator", a SimulatedAnnotator or a pairwise judge with a `prefer` method)."""
    from rlhfkit.judges import SimulatedAnnotator, as_judge

    if labels_from is None:
        if task.gold_judge is None:
            raise ValueError(
                f"task {task.name!r} has no gold judge to simulate labels from: give labels_from= a judge (an AI "
                f"labeller: a Judge, a builtin name or 'module:function'), a LabelStore or a preferences file"
            )
        return "annotator", SimulatedAnnotator(
            task.gold_judge, noise="flip", flip_rate=settings.flip_rate, seed=settings.seed
        )
    if isinstance(labels_from, SimulatedAnnotator) or _is_pairwise_labeller(labels_from):
        return "annotator", labels_from
    if hasattr(labels_from, "to_preferences"):
        return "store", labels_from
    if isinstance(labels_from, (str, os.PathLike)) and Path(labels_from).exists():
        path = Path(labels_from)
        if path.suffix in (".sqlite", ".db", ".sqlite3"):
            from rlhfkit.labeling import LabelStore

            return "store", LabelStore(path)
        return "file", path
    judge = as_judge(labels_from)
    return "annotator", SimulatedAnnotator(judge, noise="none", seed=settings.seed)


def _decided_pairs(labelled: pd.DataFrame, task, source: str, echo: bool) -> tuple[pd.DataFrame, int]:
    """A pairwise judge's rows without its ties (a preference pair needs a winner), with the gold judge's view of
    each pair when the task has one; and how many ties were left out."""
    tied = labelled.judge_tie.astype(bool) if "judge_tie" in labelled else pd.Series(False, index=labelled.index)
    ties = int(tied.sum())
    labelled = labelled[~tied].reset_index(drop=True)
    if ties:
        say(f"  {source} called {ties} of {ties + len(labelled)} pairs a tie: left out of the preferences", echo)
    if labelled.empty:
        raise ValueError(
            f"{source} called every one of its {ties} pairs a tie (its two orders disagreed: it preferred a "
            f"position, not a response), so there are no preferences to train on. A larger judge model, or "
            f"on_disagreement='average' (decide by the probability averaged over both orders), may decide some."
        )
    if task.gold_judge is not None:
        prompts = labelled.prompt.tolist()
        labelled["gold_chosen"] = task.gold_judge(prompts, labelled.chosen.tolist())
        labelled["gold_rejected"] = task.gold_judge(prompts, labelled.rejected.tolist())
        labelled["agrees_with_gold"] = labelled.gold_chosen >= labelled.gold_rejected
    return labelled, ties


def _write_jsonl_atomically(frame: pd.DataFrame, path: Path) -> None:
    partial = path.with_name(path.name + ".partial")
    frame.to_json(partial, orient="records", lines=True, force_ascii=False)
    os.replace(partial, path)


def label_preferences(
    policy: str | os.PathLike,
    task,
    settings: LabelSettings | None = None,
    out: str | os.PathLike = "runs/labels",
    *,
    labels_from: Any = None,
    reuse: bool = True,
    echo: bool = True,
    manifest: Manifest | None = None,
) -> Labels:
    """Preference pairs for the reward model and DPO, written to `out/preferences.jsonl`, and held-out check pairs
    to `out/reward_check.jsonl`.

    Who labels, by `labels_from`:
    - None: a simulated annotator, the task's gold judge with `settings.flip_rate` label noise, choosing between
      candidates of `policy` (the SFT model) on train prompts;
    - a `SimulatedAnnotator`, a `Judge`, a builtin judge name or "module:function" (an AI labeller, no noise added):
      the same, with that labeller;
    - a pairwise judge with a ``prefer(prompts, responses_a, responses_b)`` method, such as
      `rlhfkit.labeling.llm_judge.LLMJudge`: the same, with the pairs it calls a tie left out (counted in
      `Labels.ties`); with a gold judge, its rows also get `gold_chosen`, `gold_rejected` and `agrees_with_gold`;
    - a `LabelStore` (or its .sqlite file): the judgments people made in the labeling widgets;
    - a preferences file (JSONL/CSV/JSON/parquet): pairs collected elsewhere.
    The check pairs are candidates of `policy` on eval prompts labelled by the gold judge without noise (none
    without a gold judge). `manifest`: the manifest of a folder `out` belongs to (the pipeline's), which then
    records the two files; else `out` gets its own."""
    from rlhfkit.data import load_preferences
    from rlhfkit.judges import SimulatedAnnotator
    from rlhfkit.sampling import SamplingSettings

    settings = settings or LabelSettings()
    out = Path(out)
    kind, labeller = _labeller(labels_from, task, settings)
    source = {"annotator": getattr(labeller, "name", "annotator"), "store": "label store", "file": str(labeller)}[kind]
    # What these labels are made of: reused only when the same (the pipeline checks its own settings instead).
    made_of = {"settings": asdict(settings), "policy": str(policy), "labels_from": source, "task": task.name}
    pairwise = kind == "annotator" and _is_pairwise_labeller(labeller)
    if pairwise and callable(getattr(labeller, "describe", None)):
        made_of["labeller"] = labeller.describe()  # its criterion and question, not only its name
    made_of = jsonable(made_of)
    own_folder = manifest is None
    if own_folder:
        earlier = check_ours_to_write(out, "labels", "labels folder", {PREFERENCES, REWARD_CHECK})
        manifest = Manifest(out, "labels")
        if reuse and labels_done(out) and (earlier or {}).get("made_of") != made_of:
            say(f"[label] the labels in {out} were made with other settings, sources or policy: labelling anew", echo)
            reuse = False
    if reuse and labels_done(out):
        say(f"[label] reused: the labels in {out} (reuse=False labels again)", echo)
        labelled, check = (pd.read_json(out / name, lines=True, dtype=False) for name in (PREFERENCES, REWARD_CHECK))
        return Labels(load_preferences(out / PREFERENCES), labelled, check, source, out)
    sampling = SamplingSettings(k=settings.k, temperature=settings.temperature, seed=settings.seed)
    if settings.max_new_tokens is not None:
        sampling = replace(sampling, max_new_tokens=settings.max_new_tokens)
    needs_candidates = kind == "annotator" or (task.gold_judge is not None and settings.n_check_prompts > 0)
    model = tokenizer = None
    if needs_candidates:
        from rlhfkit.models import load_policy, load_tokenizer

        model, tokenizer = load_policy(str(policy)), load_tokenizer(str(policy))
    dropped = ties = 0
    if kind == "annotator":
        table = candidates(
            model, task.train_prompts[: settings.n_prompts], sampling, tokenizer=tokenizer, progress=echo
        )
        dropped = table.attrs["dropped_empty"]
        if dropped:
            say(f"  dropped {dropped} empty candidates of {table.attrs['sampled']}", echo)
        labelled = label_pairs(table, labeller, max_pairs_per_prompt=settings.max_pairs_per_prompt, seed=settings.seed)
        if pairwise:
            labelled, ties = _decided_pairs(labelled, task, source, echo)
    elif kind == "store":
        rows, counts = labeller.to_preferences()
        if not rows:
            raise ValueError(f"the label store {labeller.path} has no preference judgments yet ({counts})")
        labelled = pd.DataFrame(rows)
    else:
        labelled = load_preferences(labeller).dataset.to_pandas()
    check = pd.DataFrame(columns=["prompt", "chosen", "rejected"])
    if task.gold_judge is not None and settings.n_check_prompts > 0:
        check_sampling = replace(sampling, k=settings.check_k, seed=settings.seed + 1)
        check_table = candidates(
            model, task.eval_prompts[: settings.n_check_prompts], check_sampling, tokenizer=tokenizer, progress=echo
        )
        gold = SimulatedAnnotator(task.gold_judge, noise="none", seed=settings.seed)
        check = label_pairs(check_table, gold)
        check = check[~check.judge_tie]
    _write_jsonl_atomically(labelled, manifest.claim(PREFERENCES))
    _write_jsonl_atomically(check, manifest.claim(REWARD_CHECK))  # written last: both present = labels complete
    if own_folder:
        manifest.update(made_of=made_of)  # after the files: a crash before leaves the earlier record, not a false one
    return Labels(load_preferences(out / PREFERENCES), labelled, check, source, out, dropped, ties)


# --- evaluation -------------------------------------------------------------------------------------------------


def evaluate(
    policies: Mapping[str, Any],
    task,
    settings=None,
    *,
    reference: Any,
    reference_name: str = "sft",
    reward_model: Any = None,
    progress: bool = True,
):
    """Every policy and the reference sampled on the task's held-out prompts and measured side by side
    (`rlhfkit.evaluation.evaluate_policies`): gold and proxy reward, KL to the reference, gold win rate, diversity,
    length; the rows follow `rlhfkit.results`. Policies may be run directories (`RunData`) or model folders."""
    from rlhfkit.evaluation import evaluate_policies

    return evaluate_policies(
        {name: str(run.model_path) if isinstance(run, RunData) else run for name, run in policies.items()},
        task,
        reference=str(reference.model_path) if isinstance(reference, RunData) else reference,
        reference_name=reference_name,
        reward_model=reward_model,
        settings=settings,
        progress=progress,
    )


# --- report -----------------------------------------------------------------------------------------------------


def report(
    path: str | os.PathLike,
    evaluation,
    runs: Mapping[str, RunData],
    *,
    title: str,
    gold_judge: Callable | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """report.html at `path` (self-contained, model text escaped; `rlhfkit.compare.write_report`): the summary table
    with verdicts, gold win rates between every pair of policies, training curves of `runs`, gold reward against KL,
    PPO's over-optimisation curves (when `runs` has "ppo" and there is a gold judge) and samples side by side."""
    from rlhfkit.compare import win_rate_table, write_report

    rows = evaluation.to_dict()
    reference = rows.get(evaluation.reference_name)
    settings = evaluation.settings
    return write_report(
        path,
        title=title,
        summary=rows,
        runs=dict(runs),
        samples=evaluation.samples,
        extra=dict(extra) if extra else None,
        win_rates=win_rate_table(evaluation.samples, n_bootstrap=settings.n_bootstrap, seed=settings.seed)
        if gold_judge is not None
        else None,
        **_overoptimization_view(runs.get("ppo"), reference, gold_judge),
    )


def _overoptimization_view(ppo_run, sft_row: dict | None, gold_judge) -> dict:
    """The report's over-optimisation section, from data the pipeline already has: the samples PPO logged while
    training (proxy score and k1 KL per sample; the gold judge scores them here) in bins of steps, measured from
    SFT's evaluation row (d = 0). Empty when there is no PPO run or too little to fit."""
    from rlhfkit import compare as _compare

    if (
        ppo_run is None
        or ppo_run.samples.empty
        or sft_row is None
        or gold_judge is None
        or sft_row.get("proxy_reward_mean") is None
    ):
        return {}
    points = _compare.rl_overoptimization_points(
        ppo_run.samples, gold_judge=gold_judge, baseline=(sft_row["proxy_reward_mean"], sft_row["gold_reward_mean"])
    )
    if (points.d > 0).sum() < 2:
        return {}
    figure = "Over-optimisation: PPO's proxy and gold reward against sqrt(KL)"
    table = "Over-optimisation fit (Gao et al. 2022), PPO"
    return {
        "figures": {figure: _compare.overoptimization_figure(rl=points)},
        "tables": {table: _compare.overoptimization_fits(points, "rl")},
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
