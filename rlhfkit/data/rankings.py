"""Rankings (InstructGPT style): K ranked responses to one prompt become K*(K-1)/2 preference pairs.

`ranking_to_pairs` expands one ranking; `rankings_to_preferences` turns records ``{"prompt", "responses",
"ranks", ...}`` (in memory or in a file) into `PreferenceData`. Ties are never turned into pairs: they are left
out and counted, or refused (``tie_policy="error"``).
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any

from rlhfkit.data.errors import DataValidationError, SkippedRow, _report_skips, _RowProblem, _text_value
from rlhfkit.data.preferences import PREFERENCE_COLUMNS, PreferenceData
from rlhfkit.data.tables import MEMORY, _dataset_from_rows, _require_columns, _table_from

__all__ = ["RankingPairs", "ranking_to_pairs", "rankings_to_preferences"]


TIE_POLICIES = ("skip", "error")


@dataclass
class RankingPairs:
    """Pairs from one ranking. ``n_pairs + n_ties == K*(K-1)//2`` always."""

    rows: list[dict]
    n_pairs: int
    n_ties: int


def ranking_to_pairs(
    prompt: str,
    responses: list[str],
    ranks: list[int],
    *,
    tie_policy: str = "skip",
    extra: dict | None = None,
    source: str = MEMORY,
    row: int | None = None,
) -> RankingPairs:
    """Expand one ranking into preference rows, one per pair of distinct ranks.

    ``ranks[i]`` is the rank of ``responses[i]`` (1 = best; equal ranks are ties).
    ``chosen`` is always the better-ranked response. Each row carries ``prompt``,
    ``chosen``, ``rejected``, ``rank_chosen``, ``rank_rejected`` and the keys of
    ``extra``. Tied pairs are left out and counted (``tie_policy="skip"``) or raise
    ``DataValidationError`` (``tie_policy="error"``). ``source``/``row`` locate errors.
    """
    if tie_policy not in TIE_POLICIES:
        raise ValueError(f"tie_policy must be one of {TIE_POLICIES}, not {tie_policy!r}")
    extra = dict(extra or {})
    reserved = {"prompt", "chosen", "rejected", "rank_chosen", "rank_rejected"} & set(extra)
    if reserved:
        raise ValueError(f"extra keys {sorted(reserved)} would overwrite pair columns")
    try:
        prompt = _text_value(prompt, "prompt")
        responses, ranks = _check_ranking(responses, ranks)
    except _RowProblem as problem:
        raise problem.at(source, row) from None

    rows, n_ties = [], 0
    for i in range(len(responses)):
        for j in range(i + 1, len(responses)):
            if ranks[i] == ranks[j]:
                if tie_policy == "error":
                    raise DataValidationError(
                        source,
                        row,
                        "ranks",
                        "tied ranks",
                        detail=f"responses {i + 1} and {j + 1} both have rank {ranks[i]}",
                        expected="distinct ranks (or tie_policy='skip')",
                    )
                n_ties += 1
                continue
            best, worst = (i, j) if ranks[i] < ranks[j] else (j, i)
            rows.append(
                {
                    "prompt": prompt,
                    "chosen": responses[best],
                    "rejected": responses[worst],
                    "rank_chosen": ranks[best],
                    "rank_rejected": ranks[worst],
                    **extra,
                }
            )
    return RankingPairs(rows=rows, n_pairs=len(rows), n_ties=n_ties)


def _check_ranking(responses: Any, ranks: Any) -> tuple[list[str], list[int]]:
    if not isinstance(responses, (list, tuple)):
        raise _RowProblem(
            "responses", "wrong type", detail=f"got {type(responses).__name__}", expected="a list of response strings"
        )
    if not isinstance(ranks, (list, tuple)):
        raise _RowProblem(
            "ranks", "wrong type", detail=f"got {type(ranks).__name__}", expected="a list of integer ranks"
        )
    if len(ranks) != len(responses):
        raise _RowProblem(
            "ranks",
            "length mismatch",
            detail=f"{len(ranks)} ranks for {len(responses)} responses",
            expected="one rank per response",
        )
    if len(responses) < 2:
        raise _RowProblem(
            "responses", "too few responses", detail=f"got {len(responses)}", expected="at least 2 responses to compare"
        )
    texts = [_text_value(r, "responses") for r in responses]
    for r in ranks:
        if isinstance(r, bool) or not isinstance(r, numbers.Integral) or r < 1:
            raise _RowProblem("ranks", "wrong type", detail=f"got {r!r}", expected="integer ranks >= 1 (1 = best)")
    ranks = [int(r) for r in ranks]
    seen: dict[str, int] = {}
    for text, rank in zip(texts, ranks):
        # The same text ranked twice differently would yield a chosen == rejected pair.
        if text in seen and seen[text] != rank:
            raise _RowProblem(
                "responses",
                "duplicate responses",
                detail=f"the same response has ranks {seen[text]} and {rank}",
                expected="distinct responses",
            )
        seen.setdefault(text, rank)
    return texts, ranks


def rankings_to_preferences(
    records: Any,
    *,
    source: str = MEMORY,
    tie_policy: str = "skip",
    strict: bool = True,
) -> PreferenceData:
    """Turn ranking records ``{"prompt", "responses", "ranks", ...extra}`` into pairs.

    ``records`` may also be a local file path (JSONL/JSON/Parquet). Extra keys are
    copied onto every pair. Tied pairs left out are totalled in ``PreferenceData.n_ties``.
    ``strict=False`` skips bad records with a warning, as in ``load_preferences``.
    """
    table = _table_from(records)
    if table.source == MEMORY:
        table.source = source
    if not table.items:
        raise DataValidationError(table.source, None, None, "no records", expected="at least one ranking")
    _require_columns(table, ("prompt", "responses", "ranks"))
    rows: list[dict] = []
    skipped: list[SkippedRow] = []
    n_ties = 0
    for rowno, item in table.items:
        try:
            if isinstance(item, DataValidationError):
                raise item
            for name in ("prompt", "responses", "ranks"):
                if name not in item:
                    raise DataValidationError(
                        table.source, rowno, name, "missing column", detail=f"this record has no {name!r} key"
                    )
            extra = {k: v for k, v in item.items() if k not in ("prompt", "responses", "ranks")}
            pairs = ranking_to_pairs(
                item["prompt"],
                item["responses"],
                item["ranks"],
                tie_policy=tie_policy,
                extra=extra,
                source=table.source,
                row=rowno,
            )
        except DataValidationError as err:
            if strict:
                raise
            skipped.append(SkippedRow(rowno, err.field, err.reason, str(err)))
            continue
        rows.extend(pairs.rows)
        n_ties += pairs.n_ties

    _report_skips(table.source, len(table.items), skipped)
    if not rows:
        raise DataValidationError(
            table.source,
            None,
            None,
            "no valid rows",
            detail=f"{n_ties} tied pairs and {len(skipped)} skipped records gave no pairs",
            expected="at least one pair of differently ranked responses",
        )
    extras = [c for c in table.columns if c not in ("prompt", "responses", "ranks")]
    columns = [*PREFERENCE_COLUMNS, "rank_chosen", "rank_rejected", *extras]
    return PreferenceData(
        dataset=_dataset_from_rows(rows, columns, table.source),
        source=table.source,
        format="standard",
        skipped=skipped,
        converted_from="ranking",
        n_ties=n_ties,
    )
