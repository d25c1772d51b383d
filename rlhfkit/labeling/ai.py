"""AI feedback and simulated annotators: a judge labels the store's items as an annotator of its own.

Its judgments sit beside the humans' in the same store, so human-vs-AI agreement (`agreement`), position bias
(`position_bias`) and training on human, AI or mixed labels (`store.export(annotators=[...])`) are one call each.

Two kinds of judge label here: a scoring judge (a `Judge`, a builtin name, a batched callable, a
`SimulatedAnnotator`) scores each response and the higher score wins; a pairwise judge, such as
`rlhfkit.labeling.llm_judge.LLMJudge`, is asked about the two responses together through its
``compare(prompts, responses_a, responses_b)`` method and may answer "tie".
"""

from __future__ import annotations

import dataclasses
import math
import random
from typing import Any, Callable

from rlhfkit.judges import FunctionJudge, Judge, SimulatedAnnotator, as_judge

__all__ = ["annotate_with_judge", "is_pairwise_judge", "resolve_judge"]


def is_pairwise_judge(judge: Any) -> bool:
    """Whether `judge` decides between two responses itself: it has ``compare(prompts, responses_a,
    responses_b) -> [{"choice": "a" | "b" | "tie", ...}]`` (as `LLMJudge` does)."""
    return not isinstance(judge, (Judge, str, SimulatedAnnotator)) and callable(getattr(judge, "compare", None))


def _checked_batched(fn: Callable) -> Callable:
    """Wrap a batched callable so a per-item function passed by mistake fails with a message that says so."""

    def score(prompts: list[str], responses: list[str]) -> list[float]:
        out = fn(prompts, responses)
        if isinstance(out, (str, bytes)) or not hasattr(out, "__len__") or len(out) != len(responses):
            raise TypeError(
                f"judge {getattr(fn, '__name__', fn)!r} must be batched, f(prompts, responses) -> one "
                f"score per response ({len(responses)} here), but returned {type(out).__name__}; wrap "
                f"a per-item function f(prompt, response) -> float in rlhfkit.judges.FunctionJudge(f)"
            )
        return list(out)

    return score


def resolve_judge(judge: Any) -> tuple[Judge, SimulatedAnnotator | None, str]:
    """(scoring Judge, the SimulatedAnnotator or None, default annotator name) for anything usable as a judge:
    a `Judge` ("judge:<name>"), a builtin name such as "vader" ("judge:vader"), a batched callable
    ``f(prompts, responses) -> scores`` (TRL's reward-function signature; "judge:<function name>"), or a
    `SimulatedAnnotator` (scored by its judge, named as the simulated annotator)."""
    if isinstance(judge, SimulatedAnnotator):
        return judge.judge, judge, judge.name
    if isinstance(judge, (Judge, str)):
        scorer = as_judge(judge)
    elif callable(judge):
        scorer = FunctionJudge(_checked_batched(judge), name=getattr(judge, "__name__", "function"), batched=True)
    else:
        raise TypeError(
            f"cannot use {type(judge).__name__} as a judge: expected a Judge, a builtin name, a "
            f"batched callable f(prompts, responses) or a SimulatedAnnotator"
        )
    return scorer, None, f"judge:{scorer.name}"


def annotate_with_judge(
    store,
    judge: Any,
    annotator: str | None = None,
    *,
    kind: str = "pair",
    limit: int | None = None,
    seed: int = 0,
    batch_size: int = 256,
    progress: bool = True,
    criterion: str = "overall",
) -> int:
    """Label the items of `kind` that `annotator` has not judged yet on `criterion` with a judge; returns how many
    were written.

    store: a `LabelStore` or the path of one.
    judge: see `resolve_judge`. A plain judge picks the candidate it scores higher (equal scores: "tie") and
      ranks candidates by score (equal scores keep candidate order); its rationale records the scores. A
      `SimulatedAnnotator` adds its noise and position bias, seeing each item in the store's `display_order`
      for its name, so its position bias shows in `position_bias()` exactly as a person's would. A pairwise
      judge (`is_pairwise_judge`, e.g. an `LLMJudge`) labels pairs only: its choice ("a", "b" or "tie") is
      stored with its numbers as the rationale (an `LLMJudge`'s: JSON with P(first is better) in each order)
      and no display order, since it saw both orders; its position bias is in those numbers
      (`rlhfkit.labeling.llm_judge.judge_position_bias`), not in `position_bias()`.
    annotator: the name its judgments are stored under (default: "judge:<judge name>" or the simulated
      annotator's name).
    kind: "pair" or "ranking". limit: at most this many items (in id order). seed: seeds the simulated
      annotator's randomness (replacing its own seed, so a rerun repeats). Judgments are committed in batches of
      `batch_size`; a rerun after an interruption continues with the items still pending.
    criterion: the store's criterion the judgments answer ("overall" unless given): run one judge per criterion
      (e.g. the gold judge of helpfulness as "helpful", another as "brief") to label a multi-criteria store
      headless. An `LLMJudge`'s own criterion is the question it is asked; this is the name it is filed under.
    """
    from rlhfkit.labeling.store import LabelStore

    if not isinstance(store, LabelStore):
        with LabelStore(store) as opened:
            return annotate_with_judge(
                opened,
                judge,
                annotator,
                kind=kind,
                limit=limit,
                seed=seed,
                batch_size=batch_size,
                progress=progress,
                criterion=criterion,
            )
    if kind not in ("pair", "ranking"):
        raise ValueError(
            f"annotate_with_judge: a judge can label 'pair' or 'ranking' items, not {kind!r} "
            f"(demonstrations need written text)"
        )
    if is_pairwise_judge(judge):
        if kind != "pair":
            raise ValueError(
                f"annotate_with_judge: {getattr(judge, 'name', type(judge).__name__)} compares two responses; it "
                f"labels 'pair' items, not {kind!r}"
            )
        return _annotate_pairwise(
            store, judge, annotator, limit=limit, batch_size=batch_size, progress=progress, criterion=criterion
        )
    scorer, sim, default_name = resolve_judge(judge)
    name = annotator or default_name
    if sim is not None:
        sim = dataclasses.replace(sim, seed=seed)  # our own copy: the caller's object and its random state stay
    rng = random.Random(seed)
    todo = store.pending(
        name, kind, limit=limit if limit is not None else max(store.count(kind), 1), criteria=(criterion,)
    )

    from tqdm.auto import tqdm

    written = 0
    with tqdm(total=len(todo), desc=f"{name} labeling", unit="item", disable=not progress) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            flat = [(it, pos) for it in batch for pos in range(len(it["candidates"]))]
            scores = scorer([it["prompt"] for it, _ in flat], [it["candidates"][p] for it, p in flat])
            records, k = [], 0
            for it in batch:
                s = scores[k : k + len(it["candidates"])]
                k += len(it["candidates"])
                record = {
                    "item_id": it["id"],
                    "annotator": name,
                    "criterion": criterion,
                    "display_order": it["display_order"],
                    "rationale": f"{scorer.name} scores: " + ", ".join(f"{x:.4g}" for x in s),
                }
                if kind == "pair":
                    record["choice"] = _pair_choice(s, it["display_order"], sim)
                else:
                    record["ranking"] = _ranking(s, it["display_order"], sim, rng)
                records.append(record)
            written += len(store.record_many(records))
            bar.update(len(batch))
    return written


def _annotate_pairwise(
    store, judge: Any, annotator: str | None, *, limit, batch_size: int, progress: bool, criterion: str
) -> int:
    """`annotate_with_judge` for a pairwise judge (see there)."""
    name = annotator or getattr(judge, "name", None) or type(judge).__name__
    todo = store.pending(
        name, "pair", limit=limit if limit is not None else max(store.count("pair"), 1), criteria=(criterion,)
    )
    explain = getattr(judge, "rationale", None)
    # A model judges slowly: commit (and show progress) after each of its own batches, not every `batch_size`.
    step = max(1, min(batch_size, getattr(judge, "batch_size", batch_size)))

    from tqdm.auto import tqdm

    written = 0
    with tqdm(total=len(todo), desc=f"{name} labeling", unit="item", disable=not progress) as bar:
        for start in range(0, len(todo), step):
            batch = todo[start : start + step]
            rows = judge.compare(
                [it["prompt"] for it in batch],
                [it["candidates"][0] for it in batch],
                [it["candidates"][1] for it in batch],
            )
            if len(rows) != len(batch):
                raise ValueError(f"{name}: compare() returned {len(rows)} rows for {len(batch)} pairs")
            records = []
            for it, row in zip(batch, rows):
                if row.get("choice") not in ("a", "b", "tie"):
                    raise ValueError(
                        f"{name}: compare() returned choice {row.get('choice')!r} for item {it['id']} "
                        f"(expected 'a', 'b' or 'tie')"
                    )
                records.append(
                    {
                        "item_id": it["id"],
                        "annotator": name,
                        "criterion": criterion,
                        "choice": row["choice"],
                        "rationale": explain(row) if callable(explain) else None,
                    }
                )
            written += len(store.record_many(records))
            bar.update(len(batch))
    return written


def _pair_choice(scores: list[float], display_order: list[int], sim: SimulatedAnnotator | None) -> str:
    score_a, score_b = scores
    if sim is None:
        return "a" if score_a > score_b else "b" if score_b > score_a else "tie"
    # As SimulatedAnnotator.label_pairs decides, but with the store's display order instead of its own coin.
    a_left = display_order[0] == 0
    if sim.position_bias and sim._rng.random() < sim.position_bias:
        prefers_a = a_left
    else:
        prefers_a = sim._prefers_a(score_a, score_b)
    return "a" if prefers_a else "b"


def _ranking(
    scores: list[float], display_order: list[int], sim: SimulatedAnnotator | None, rng: random.Random
) -> list[int]:
    """Candidate positions best first: by score, with a simulated annotator's noise when there is one."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    if sim is None:
        return order
    if sim.position_bias and rng.random() < sim.position_bias:
        return list(display_order)  # ignores content: ranks as shown, top first
    if sim.noise == "bradley_terry":
        # Plackett-Luce sampling (Gumbel-perturbed scores): for two candidates it is exactly Bradley-Terry.
        keys = [s / sim.temperature - math.log(-math.log(rng.random() or 1e-300)) for s in scores]
        return sorted(range(len(scores)), key=lambda i: -keys[i])
    if sim.noise == "flip" and len(order) > 1 and rng.random() < sim.flip_rate:
        i = rng.randrange(len(order) - 1)  # one mistake: two neighbours swapped
        order[i], order[i + 1] = order[i + 1], order[i]
    return order
