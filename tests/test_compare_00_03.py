"""The tables and figures notebooks 00-03 take from `rlhfkit.compare` (its section "figures for notebooks 00-03"),
on small inputs with known answers."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from rlhfkit.labeling import annotator_table
from rlhfkit.compare import (
    accuracy_by_gold_gap,
    annotator_figure,
    before_after_table,
    decoding_diversity,
    logprob_per_token,
    noise_sweep_figure,
    reward_check_figure,
    temperature_sweep_figure,
)

XSS = '<img src=x onerror="window.__pwned=1">'


def _candidates() -> pd.DataFrame:
    """Two prompts, three candidates each, as `rlhfkit.stages.candidates` returns them."""
    return pd.DataFrame(
        {
            "prompt_index": [0, 0, 0, 1, 1, 1],
            "prompt": ["p0"] * 3 + ["p1"] * 3,
            "response": ["good film", "good film", "bad film", "a b", "a c", "a d"],
            "sum_logprob": [-4.0, -4.0, -9.0, -2.0, -3.0, -5.0],
            "n_tokens": [2, 2, 2, 2, 2, 4],
            "finish_reason": ["eos", "eos", "eos", "eos", "eos", "length"],
        }
    )


def _lengths(prompts, responses):
    """A judge for the tests: characters per response."""
    return [float(len(r)) for r in responses]


def test_logprob_per_token_counts_the_eos_token():
    assert logprob_per_token(_candidates()).tolist() == pytest.approx([-4 / 3, -4 / 3, -3.0, -2 / 3, -1.0, -5 / 4])


def test_decoding_diversity_row():
    row = decoding_diversity(_candidates(), _lengths, decoding="sampled", temperature=0.7)
    assert row["decoding"] == "sampled" and row["temperature"] == 0.7
    assert row["unique answers per prompt"] == pytest.approx(2.5)  # 2 distinct of 3, 3 of 3
    assert row["distinct_1"] == pytest.approx(7 / 12) and row["distinct_2"] == pytest.approx(5 / 6)
    assert row["gold mean"] == pytest.approx(35 / 6)  # the judge scores characters: 9, 9, 8 and 3, 3, 3
    assert row["gold spread within prompt"] == pytest.approx((1 / 3) ** 0.5 / 2)  # sd 0.577 and 0, averaged
    assert row["EOS rate"] == pytest.approx(5 / 6) and row["mean tokens"] == pytest.approx(14 / 6)
    assert row["logprob/token"] == pytest.approx(logprob_per_token(_candidates()).mean())


def test_temperature_sweep_figure_has_a_trace_per_measure():
    rows = [decoding_diversity(_candidates(), _lengths, decoding="greedy", temperature=0.0)]
    rows += [decoding_diversity(_candidates(), _lengths, decoding="sampled", temperature=t) for t in (0.5, 1.0)]
    fig = temperature_sweep_figure(pd.DataFrame(rows), 3)
    assert [t.name for t in fig.data] == [
        "unique answers per prompt",
        "distinct_1",
        "distinct_2",
        "gold mean",
        "gold spread within prompt",
    ]
    assert list(fig.data[0].x) == [0.5, 1.0]  # greedy has one answer per prompt by construction: not drawn there
    assert "of 3" in fig.layout.annotations[0].text


def test_annotator_table_and_figure(tmp_path):
    from rlhfkit.judges import FunctionJudge, SimulatedAnnotator
    from rlhfkit.labeling import LabelStore, annotate_with_judge

    judge = FunctionJudge(_lengths, name="length", batched=True)

    pairs = [{"prompt": f"review {i}", "response_a": "a" * (i + 2), "response_b": "b" * 2} for i in range(1, 41)]
    with LabelStore(tmp_path / "labels.db") as store:
        store.add_pairs(pairs)
        annotate_with_judge(store, SimulatedAnnotator(judge, noise="none", name="exact"), progress=False)
        left = SimulatedAnnotator(judge, noise="none", position_bias=1.0, name=f"left{XSS}")
        annotate_with_judge(store, left, progress=False)
        trust = annotator_table(store, judge).set_index("annotator")
    assert trust.loc["exact", "agrees with gold"] == 1.0 and trust.loc["exact", "pairs decided"] == 40
    assert trust.loc[f"left{XSS}", "left wins"] == 1.0 and trust.loc[f"left{XSS}", "biased?"]
    lo, hi = trust.loc["exact", "gold 95% CI"]
    assert 0.9 < lo < hi == 1.0
    fig = annotator_figure(trust.reset_index())
    assert len(fig.data) == 2 and XSS not in fig.to_json()  # names are untrusted: escaped for plotly


def _check() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "prompt": ["p"] * 6,
            "chosen": list("abcdef"),
            "rejected": list("ghijkl"),
            "score_chosen": [0.11, 0.12, 0.5, 0.6, 0.9, 1.0],
            "score_rejected": [0.1, 0.1, 0.2, 0.2, 0.1, 0.1],
            "rm_chosen": [0.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            "rm_rejected": [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
        }
    )


def test_accuracy_by_gold_gap_smallest_difference_first():
    table = accuracy_by_gold_gap(_check())
    assert table["RM accuracy"].tolist() == [0.5, 1.0, 1.0] and table["pairs"].tolist() == [2, 2, 2]
    one_bin = accuracy_by_gold_gap(_check().assign(score_chosen=0.5, score_rejected=0.1))
    assert len(one_bin) == 1 and one_bin["RM accuracy"].iloc[0] == pytest.approx(5 / 6)


def test_reward_check_and_noise_sweep_figures():
    fig = reward_check_figure(_check())
    assert [t.type for t in fig.data] == ["histogram", "histogram", "scatter"]
    assert len(fig.data[2].x) == 12  # distinct answers
    sweep = pd.DataFrame(
        {"flip rate": [0.0, 0.5], "label agreement with gold": [1.0, 0.5], "RM accuracy vs gold": [0.9, 0.52]}
    ).assign(steps=60)
    fig = noise_sweep_figure(sweep)
    assert list(fig.data[0].y) == [0.9, 0.52] and "60 steps each" in fig.data[0].name


def test_before_after_table():
    samples = pd.DataFrame(
        {
            "model": ["before", "before", "after", "after"],
            "prompt": ["Review the book The Lantern of Dublin.", "Review the blender."] * 2,
            "response": ["I went into The Endless River.", "ok", "The Lantern of Dublin was lovely.", XSS],
            "finish_reason": ["length", "length", "eos", "eos"],
            "gold": [0.1, 0.2, 0.61234, 0.0],
        }
    )
    table = before_after_table(samples)
    assert list(table.columns) == [
        "prompt",
        "before SFT",
        "finish before",
        "names it before",
        "gold before",
        "after SFT",
        "finish after",
        "names it after",
        "gold after",
    ]
    assert table["names it before"].tolist() == [False, None] and table["names it after"].tolist() == [True, None]
    assert table["gold after"].tolist() == [0.612, 0.0] and table["after SFT"][1] == XSS  # raw text, for cells
    assert math.isclose(table["gold before"][0], 0.1)
