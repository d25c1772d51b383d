"""How far labels can be trusted: agreement between annotators, with a judge, and position bias.

- `cohen_kappa(a, b)`: two annotators' labels on the same items, corrected for chance agreement.
- `krippendorff_alpha(data)`: any number of annotators, missing labels allowed (nominal level).
- `agreement(store)`: pairwise kappa for every two annotators in a label store, plus alpha over all of them.
- `agreement_with_judge(store, judge, annotator)`: how often an annotator picks what a judge scores higher.
- `position_bias(store)`: how often the response shown on the left wins (0.5 when position does not matter).

Pair labels are compared as stored ("a"/"b" = candidate 0/1, "tie", "both_bad"), never as screen sides, so two
annotators who saw an item in different orders still agree when they chose the same response. Skips are missing.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from typing import Any, Hashable, Iterable, Sequence

from rlhfkit.data.errors import _is_missing

__all__ = [
    "cohen_kappa",
    "krippendorff_alpha",
    "agreement",
    "agreement_by_criterion",
    "agreement_with_judge",
    "position_bias",
    "wilson_interval",
    "annotator_table",
]

_Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: int, n: int, z: float = _Z95) -> tuple[float, float]:
    """Wilson score interval for a proportion (95% by default); (nan, nan) when n == 0. Unlike the normal
    approximation it stays inside [0, 1] and behaves at rates near 0 or 1 and for small n."""
    if n == 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def cohen_kappa(a: Sequence[Hashable], b: Sequence[Hashable]) -> float:
    """Cohen's kappa between two annotators' labels on the same items: (p_o - p_e) / (1 - p_e), where p_o is the
    observed agreement and p_e the agreement expected from each annotator's own label frequencies.

    Items where either label is missing (None/NaN) are left out. 1 = perfect agreement, 0 = chance level,
    negative = worse than chance. NaN when chance agreement is already 1 (both gave one and the same label to
    everything), where kappa is undefined."""
    if len(a) != len(b):
        raise ValueError(f"cohen_kappa: {len(a)} labels from the first annotator but {len(b)} from the second")
    pairs = [(x, y) for x, y in zip(a, b) if not _is_missing(x) and not _is_missing(y)]
    if not pairs:
        raise ValueError("cohen_kappa: no item has labels from both annotators")
    n = len(pairs)
    p_o = sum(x == y for x, y in pairs) / n
    count_a, count_b = Counter(x for x, _ in pairs), Counter(y for _, y in pairs)
    p_e = sum(count_a[c] * count_b[c] for c in count_a) / (n * n)
    if p_e == 1.0:
        return math.nan
    return (p_o - p_e) / (1 - p_e)


def krippendorff_alpha(data: Any, level: str = "nominal") -> float:
    """Krippendorff's alpha for nominal labels: 1 - D_o / D_e (observed over expected disagreement).

    `data` is reliability data with one row per item (unit) and one column per annotator: a list of lists or a
    pandas DataFrame, with None/NaN where an annotator gave no label. Items with fewer than two labels cannot be
    compared and are left out. Returns NaN when no two labels can be paired or when every label is the same
    (no variation: alpha is undefined)."""
    if level != "nominal":
        raise ValueError(
            f"krippendorff_alpha: only level='nominal' is implemented (labels are categories), got {level!r}"
        )
    rows = data.itertuples(index=False) if hasattr(data, "itertuples") else data
    # Coincidence matrix: every ordered pair of labels within an item, weighted 1 / (labels in item - 1).
    coincidence: dict[tuple, float] = defaultdict(float)
    for row in rows:
        values = [v for v in row if not _is_missing(v)]
        m = len(values)
        if m < 2:
            continue
        for i, j in itertools.permutations(range(m), 2):
            coincidence[values[i], values[j]] += 1.0 / (m - 1)
    totals: dict[Hashable, float] = defaultdict(float)
    for (c, _), weight in coincidence.items():
        totals[c] += weight
    n = sum(totals.values())
    if n <= 1:
        return math.nan
    observed = sum(w for (c, k), w in coincidence.items() if c != k)
    expected = sum(totals[c] * totals[k] for c in totals for k in totals if c != k) / (n - 1)
    if expected == 0:
        return math.nan
    return 1.0 - observed / expected


def _units(store, kind: str, annotators: Iterable[str] | None, criterion: str) -> tuple[dict, list[str]]:
    """{unit: {annotator: label}} from the store's active judgments on `criterion`. A pair item is one unit
    labelled with the stored choice; a ranking of K is K(K-1)/2 units (one per two candidates) labelled with the
    better one."""
    if kind not in ("pair", "ranking"):
        raise ValueError(f"agreement is measured on 'pair' or 'ranking' judgments, not {kind!r}")
    df = store.judgments(kind=kind, criterion=criterion)
    if annotators is not None:
        annotators = [annotators] if isinstance(annotators, str) else list(annotators)
        df = df[df.annotator.isin(annotators)]
    units: dict[Hashable, dict[str, Hashable]] = defaultdict(dict)
    for j in df.itertuples(index=False):
        if j.choice == "skip":
            continue
        if kind == "pair":
            units[j.item_id][j.annotator] = j.choice
        else:
            rank = {pos: r for r, pos in enumerate(j.ranking)}
            for x, y in itertools.combinations(sorted(rank), 2):
                units[(j.item_id, x, y)][j.annotator] = x if rank[x] < rank[y] else y
    names = sorted(annotators) if annotators is not None else sorted(set(df.annotator))
    return units, names


def agreement(store, annotators: Iterable[str] | None = None, kind: str = "pair", *, criterion: str = "overall"):
    """Agreement between annotators in a `LabelStore`, as a pandas DataFrame.

    One row per two annotators: "annotator_a", "annotator_b", "n" (items both labelled), "observed" (fraction of
    those with the same label), "statistic" = "cohen_kappa" and its "value"; then one last row over everyone
    (annotator_a = annotator_b = "all"): "n" = items with at least two labels, "statistic" =
    "krippendorff_alpha". ``df.attrs`` holds "alpha", "kind", "annotators" and "n_units".

    kind="pair" compares choices (skips left out); kind="ranking" compares every two candidates of a ranked item.
    Judgments on one `criterion` only ("overall" unless given; `agreement_by_criterion` does every one).
    `annotators` defaults to everyone with judgments of that kind; at least two are needed."""
    import pandas as pd

    units, names = _units(store, kind, annotators, criterion)
    if len(names) < 2:
        raise ValueError(
            f"agreement needs at least two annotators with {kind} judgments on {criterion!r}; found {names}"
        )
    rows = []
    for x, y in itertools.combinations(names, 2):
        shared = [u for u in units.values() if x in u and y in u]
        a, b = [u[x] for u in shared], [u[y] for u in shared]
        rows.append(
            {
                "annotator_a": x,
                "annotator_b": y,
                "n": len(shared),
                "observed": sum(p == q for p, q in zip(a, b)) / len(shared) if shared else math.nan,
                "statistic": "cohen_kappa",
                "value": cohen_kappa(a, b) if shared else math.nan,
            }
        )
    matrix = [[u.get(name) for name in names] for u in units.values()]
    alpha = krippendorff_alpha(matrix)
    pairable = [u for u in units.values() if sum(name in u for name in names) >= 2]
    agree = [_pairwise_agreement([u[name] for name in names if name in u]) for u in pairable]
    rows.append(
        {
            "annotator_a": "all",
            "annotator_b": "all",
            "n": len(pairable),
            "observed": sum(agree) / len(agree) if agree else math.nan,
            "statistic": "krippendorff_alpha",
            "value": alpha,
        }
    )
    df = pd.DataFrame(rows, columns=["annotator_a", "annotator_b", "n", "observed", "statistic", "value"])
    df.attrs.update(alpha=alpha, kind=kind, annotators=names, n_units=len(pairable), criterion=criterion)
    return df


def agreement_by_criterion(store, annotators: Iterable[str] | None = None, kind: str = "pair"):
    """`agreement` for every criterion in the store that at least two annotators judged: one DataFrame, its
    rows those of `agreement` with a first column "criterion" (the store's order: "overall" first). Criteria with
    fewer than two annotators are left out and listed in ``df.attrs["left_out"]``."""
    import pandas as pd

    tables, left_out = [], []
    for criterion in store.criteria():
        names = set(store.judgments(kind=kind, criterion=criterion).annotator)
        if annotators is not None:
            names &= {annotators} if isinstance(annotators, str) else set(annotators)
        if len(names) < 2:
            left_out.append(criterion)
            continue
        table = agreement(store, annotators, kind, criterion=criterion)
        table.insert(0, "criterion", criterion)
        tables.append(table)
    columns = ["criterion", "annotator_a", "annotator_b", "n", "observed", "statistic", "value"]
    df = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=columns)
    df.attrs.update(kind=kind, left_out=left_out)
    return df


def _pairwise_agreement(labels: list) -> float:
    """Fraction of the pairs of labels on one item that agree."""
    pairs = list(itertools.combinations(labels, 2))
    return sum(p == q for p, q in pairs) / len(pairs)


def agreement_with_judge(store, judge, annotator: str, *, kind: str = "pair", criterion: str = "overall") -> dict:
    """How often `annotator`'s preferences match a judge's: the fraction of their decided comparisons where they
    chose the response the judge scores higher.

    `judge` is anything `annotate_with_judge` accepts (a Judge, a builtin name such as "vader", a batched
    callable ``f(prompts, responses) -> scores``; a SimulatedAnnotator stands for its noiseless judge).
    kind="pair" uses pair choices; kind="ranking" every two candidates of each ranking. Left out and counted:
    the annotator's ties, both-bad and skips, and comparisons the judge scores equal ("judge_ties"). Only
    judgments on `criterion` count ("overall" unless given): compare a criterion with the judge of that criterion.

    Returns {"annotator", "judge", "agreement", "ci" (Wilson 95%), "n", "matches", "judge_ties", "ties",
    "both_bad", "skipped"}; agreement is NaN when n == 0."""
    from rlhfkit.labeling.ai import resolve_judge

    if kind not in ("pair", "ranking"):
        raise ValueError(f"agreement_with_judge compares 'pair' or 'ranking' judgments, not {kind!r}")
    scorer, _, _ = resolve_judge(judge)
    df = store.judgments(annotator=annotator, kind=kind, criterion=criterion)
    if df.empty and annotator not in store.annotators():
        raise ValueError(f"no judgments by {annotator!r}; annotators in this store: {store.annotators()}")
    out = {
        "annotator": annotator,
        "judge": scorer.name,
        "agreement": math.nan,
        "ci": (math.nan, math.nan),
        "n": 0,
        "matches": 0,
        "judge_ties": 0,
        "ties": int((df.choice == "tie").sum()),
        "both_bad": int((df.choice == "both_bad").sum()),
        "skipped": int((df.choice == "skip").sum()),
    }
    decided = df[df.choice.isin(["a", "b"])] if kind == "pair" else df[df.choice != "skip"]
    if decided.empty:
        return out
    items = {it["id"]: it for it in store.items(sorted(set(decided.item_id)))}
    flat = [(item_id, pos) for item_id in items for pos in range(len(items[item_id]["candidates"]))]
    scores = dict(
        zip(flat, scorer([items[i]["prompt"] for i, _ in flat], [items[i]["candidates"][p] for i, p in flat]))
    )
    for j in decided.itertuples(index=False):
        if kind == "pair":
            comparisons = [(0, 1) if j.choice == "a" else (1, 0)]  # (preferred, other)
        else:
            comparisons = [
                (j.ranking[r1], j.ranking[r2]) for r1, r2 in itertools.combinations(range(len(j.ranking)), 2)
            ]
        for better, worse in comparisons:
            s_better, s_worse = scores[j.item_id, better], scores[j.item_id, worse]
            if s_better == s_worse:
                out["judge_ties"] += 1
                continue
            out["n"] += 1
            out["matches"] += s_better > s_worse
    if out["n"]:
        out["agreement"] = out["matches"] / out["n"]
        out["ci"] = wilson_interval(out["matches"], out["n"])
    return out


def position_bias(store, annotator: str | None = None, *, criterion: str = "overall") -> dict:
    """How often the response shown on the left wins a pair comparison, from the recorded display order.

    Returns {"annotator", "left_wins", "right_wins", "n", "left_rate", "ci" (Wilson 95% interval of left_rate),
    "ties", "both_bad", "skipped", "unknown_order"}. An unbiased annotator's left_rate is near 0.5, and 0.5 is
    inside the interval; ties, both-bad, skips and judgments recorded without a display order are left out and
    counted. `annotator=None` pools everyone. Judgments on `criterion` only ("overall" unless given)."""
    df = store.judgments(annotator=annotator, kind="pair", criterion=criterion)
    if annotator is not None and df.empty and annotator not in store.annotators():
        raise ValueError(f"no judgments by {annotator!r}; annotators in this store: {store.annotators()}")
    out = {
        "annotator": annotator,
        "left_wins": 0,
        "right_wins": 0,
        "n": 0,
        "left_rate": math.nan,
        "ci": (math.nan, math.nan),
        "ties": int((df.choice == "tie").sum()),
        "both_bad": int((df.choice == "both_bad").sum()),
        "skipped": int((df.choice == "skip").sum()),
        "unknown_order": 0,
    }
    for j in df[df.choice.isin(["a", "b"])].itertuples(index=False):
        if j.display_order is None:
            out["unknown_order"] += 1
            continue
        chosen = 0 if j.choice == "a" else 1
        out["left_wins" if j.display_order[0] == chosen else "right_wins"] += 1
    out["n"] = out["left_wins"] + out["right_wins"]
    if out["n"]:
        out["left_rate"] = out["left_wins"] / out["n"]
        out["ci"] = wilson_interval(out["left_wins"], out["n"])
    return out


def annotator_table(store, judge, annotators: Sequence[str] | None = None, *, criterion: str = "overall"):
    """How far each annotator of a label store can be trusted (pair labels): how many pairs they decided, their
    agreement with `judge` (the gold judge) and its Wilson 95% interval, the pairs they called a tie, and how often
    the answer shown on the left won, with its interval and whether that interval excludes 0.5 ("biased?"). A
    pandas DataFrame, one row per annotator. Judgments on `criterion` only ("overall" unless given)."""
    import pandas as pd

    rows = []
    for name in store.annotators() if annotators is None else annotators:
        with_gold = agreement_with_judge(store, judge, name, criterion=criterion)
        bias = position_bias(store, name, criterion=criterion)
        rows.append(
            {
                "annotator": name,
                "pairs decided": with_gold["n"],
                "agrees with gold": with_gold["agreement"],
                "gold 95% CI": tuple(round(x, 3) for x in with_gold["ci"]),
                "ties": with_gold["ties"],
                "left wins": bias["left_rate"],
                "left 95% CI": tuple(round(x, 3) for x in bias["ci"]),
                "biased?": not bias["ci"][0] <= 0.5 <= bias["ci"][1],
            }
        )
    return pd.DataFrame(rows)
