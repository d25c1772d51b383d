"""Agreement statistics against published worked examples, and AI / simulated annotators writing into a store."""

import math
import random

import pandas as pd
import pytest

from rlhfkit.judges import LengthJudge, SimulatedAnnotator
from rlhfkit.labeling import (
    LabelStore,
    agreement,
    agreement_with_judge,
    annotate_with_judge,
    cohen_kappa,
    krippendorff_alpha,
    position_bias,
    wilson_interval,
)


@pytest.fixture
def store(tmp_path):
    with LabelStore(tmp_path / "labels.db") as s:
        yield s


# -- the statistics -------------------------------------------------------------------------------------------


def table_to_labels(table):
    """A 2x2 contingency table {(label_1, label_2): count} as two annotators' label lists."""
    a, b = [], []
    for (x, y), count in table.items():
        a += [x] * count
        b += [y] * count
    return a, b


def test_cohen_kappa_worked_examples():
    # Wikipedia, "Cohen's kappa", worked example: 50 proposals, p_o = 0.7, p_e = 0.5, kappa = 0.4.
    a, b = table_to_labels({("yes", "yes"): 20, ("yes", "no"): 5, ("no", "yes"): 10, ("no", "no"): 15})
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    # Same article, "same percentages but different numbers": p_o = 0.6 in both, kappa 0.1304 and 0.2593.
    a, b = table_to_labels({("yes", "yes"): 45, ("yes", "no"): 15, ("no", "yes"): 25, ("no", "no"): 15})
    assert cohen_kappa(a, b) == pytest.approx(0.1304, abs=1e-4)
    a, b = table_to_labels({("yes", "yes"): 25, ("yes", "no"): 35, ("no", "yes"): 5, ("no", "no"): 35})
    assert cohen_kappa(a, b) == pytest.approx(0.2593, abs=1e-4)


def test_cohen_kappa_edge_cases():
    assert cohen_kappa(list("abcab"), list("abcab")) == 1.0
    assert cohen_kappa(["a", "b", None, "a"], ["a", "b", "b", float("nan")]) == 1.0  # missing pairs left out
    assert cohen_kappa(list("ab"), list("ba")) == pytest.approx(-1.0)
    assert math.isnan(cohen_kappa(["a"] * 5, ["a"] * 5))  # chance agreement is 1: undefined
    with pytest.raises(ValueError, match="3 labels from the first annotator but 2"):
        cohen_kappa([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="no item has labels from both"):
        cohen_kappa([1, None], [None, 2])


# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", example C: 4 observers, 12 units, values
# 1-5, missing data. Published nominal alpha: 0.743.
KRIPPENDORFF_C = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}


def test_krippendorff_alpha_worked_examples():
    units = [list(col) for col in zip(*KRIPPENDORFF_C.values())]
    assert krippendorff_alpha(units) == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(pd.DataFrame(KRIPPENDORFF_C)) == pytest.approx(0.743, abs=5e-4)  # NaN = missing
    # Same paper, example A: 2 observers, 10 units, binary data, alpha = 0.095.
    obs_1 = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    obs_2 = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    assert krippendorff_alpha(list(zip(obs_1, obs_2))) == pytest.approx(0.095, abs=5e-4)


def test_krippendorff_alpha_edge_cases():
    assert krippendorff_alpha([["a", "a", "a"], ["b", "b", None], ["c", "c", "c"]]) == 1.0
    assert math.isnan(krippendorff_alpha([["a", "a"], ["a", "a"]]))  # no variation: undefined
    assert math.isnan(krippendorff_alpha([["a", None], [None, "b"]]))  # nothing pairable
    with pytest.raises(ValueError, match="only level='nominal'"):
        krippendorff_alpha([[1, 2]], level="interval")


def test_wilson_interval_matches_newcombe_1998():
    # Newcombe (1998), Statistics in Medicine 17:857-872, Table I, method 3 (score interval without correction)
    for (successes, n), expected in {
        (81, 263): (0.2553, 0.3662),
        (15, 148): (0.0624, 0.1605),
        (0, 20): (0.0, 0.1611),
        (1, 29): (0.0061, 0.1718),
    }.items():
        assert wilson_interval(successes, n) == pytest.approx(expected, abs=5e-5)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


# -- agreement in a store -------------------------------------------------------------------------------------


def pair_items(store, n):
    return store.add_pairs(
        [{"prompt": f"p{i}", "response_a": f"first {i}", "response_b": f"second {i}"} for i in range(n)]
    )


def test_agreement_between_annotators_in_a_store(store):
    ids = pair_items(store, 52)
    x, y = table_to_labels({("a", "a"): 20, ("a", "b"): 5, ("b", "a"): 10, ("b", "b"): 15})
    for item_id, cx, cy in zip(ids, x, y):
        # they saw the items in opposite orders: agreement is about the chosen response, not the side
        store.record(item_id, "x", choice=cx, display_order=[0, 1])
        store.record(item_id, "y", choice=cy, display_order=[1, 0])
    store.record(ids[50], "x", choice="skip")  # skips are missing labels
    store.record(ids[50], "y", choice="a")
    store.record(ids[51], "y", choice="tie")
    df = agreement(store)
    pair_row = df.iloc[0]
    assert (pair_row.annotator_a, pair_row.annotator_b, pair_row.n, pair_row.statistic) == ("x", "y", 50, "cohen_kappa")
    assert pair_row.observed == pytest.approx(0.7) and pair_row.value == pytest.approx(0.4)
    # with two coders and no missing values this table's alpha is also exactly 0.4
    assert df.attrs["alpha"] == pytest.approx(0.4) and df.iloc[-1].statistic == "krippendorff_alpha"
    assert df.attrs["annotators"] == ["x", "y"] and df.attrs["n_units"] == 50

    # a third annotator with gaps: every pairwise kappa and the overall alpha equal the direct computation
    for item_id in ids[:30]:
        store.record(item_id, "z", choice=random.Random(item_id).choice(["a", "b", "tie"]))
    df = agreement(store).set_index(["annotator_a", "annotator_b"])
    labels = store.judgments().query("choice != 'skip'").pivot(index="item_id", columns="annotator", values="choice")
    for p, q in [("x", "y"), ("x", "z"), ("y", "z")]:
        both = labels[[p, q]].dropna()
        assert df.loc[(p, q), "n"] == len(both)
        assert df.loc[(p, q), "value"] == pytest.approx(cohen_kappa(list(both[p]), list(both[q])))
    assert df.attrs["alpha"] == pytest.approx(krippendorff_alpha(labels))
    assert list(agreement(store, annotators=["y", "z"]).annotator_a) == ["y", "all"]
    with pytest.raises(ValueError, match="at least two annotators"):
        agreement(store, annotators=["x"])
    with pytest.raises(ValueError, match="'pair' or 'ranking'"):
        agreement(store, kind="demonstration")


def test_agreement_on_rankings_compares_every_two_candidates(store):
    (r1, r2) = store.add_rankings(
        [{"prompt": "p", "responses": ["u", "v", "w"]}, {"prompt": "q", "responses": ["u", "v", "w"]}]
    )
    store.record(r1, "x", ranking=[0, 1, 2])
    store.record(r1, "y", ranking=[0, 2, 1])  # agrees on (0,1) and (0,2), not on (1,2)
    store.record(r2, "x", ranking=[2, 1, 0])
    store.record(r2, "y", ranking=[2, 1, 0])
    df = agreement(store, kind="ranking")
    assert df.iloc[0].n == 6 and df.iloc[0].observed == pytest.approx(5 / 6)


def test_position_bias_counts(store):
    ids = pair_items(store, 14)
    left_won = [True] * 7 + [False] * 3
    for item_id, left in zip(ids, left_won):
        order = random.Random(item_id).choice([[0, 1], [1, 0]])
        chosen = order[0] if left else order[1]
        store.record(item_id, "ann", choice="ab"[chosen], display_order=order)
    store.record(ids[10], "ann", choice="tie", display_order=[0, 1])
    store.record(ids[11], "ann", choice="both_bad", display_order=[0, 1])
    store.record(ids[12], "ann", choice="skip")
    store.record(ids[13], "ann", choice="a")  # no display order recorded: cannot count
    report = position_bias(store, "ann")
    assert report == {
        "annotator": "ann",
        "left_wins": 7,
        "right_wins": 3,
        "n": 10,
        "left_rate": 0.7,
        "ci": pytest.approx((0.3968, 0.8922), abs=5e-5),
        "ties": 1,
        "both_bad": 1,
        "skipped": 1,
        "unknown_order": 1,
    }
    assert position_bias(store)["n"] == 10
    with pytest.raises(ValueError, match="no judgments by 'bob'"):
        position_bias(store, "bob")


def test_agreement_with_judge_counts_and_excludes(store):
    rows = [
        {"prompt": f"p{i}", "response_a": "one two three four" + f" {i}", "response_b": f"short {i}"} for i in range(10)
    ]
    rows.append({"prompt": "even", "response_a": "two words", "response_b": "also two"})  # the judge ties
    ids = store.add_pairs(rows)
    choices = ["a"] * 6 + ["b"] * 2 + ["tie", "skip"]  # 6 of 8 decided pairs pick the longer response
    for item_id, choice in zip(ids, choices):
        store.record(item_id, "ann", choice=choice)
    store.record(ids[10], "ann", choice="a")
    result = agreement_with_judge(store, LengthJudge(), "ann")
    assert {
        k: result[k] for k in ("judge", "agreement", "n", "matches", "judge_ties", "ties", "both_bad", "skipped")
    } == {
        "judge": "length_words",
        "agreement": 0.75,
        "n": 8,
        "matches": 6,
        "judge_ties": 1,
        "ties": 1,
        "both_bad": 0,
        "skipped": 1,
    }
    assert result["ci"] == pytest.approx(wilson_interval(6, 8))
    with pytest.raises(ValueError, match="no judgments by 'bob'"):
        agreement_with_judge(store, "length", "bob")


# -- AI and simulated annotators ------------------------------------------------------------------------------

POSITIVE = [
    "I loved this film, wonderful acting",
    "A great and delightful book",
    "Excellent food, happy visit",
    "Brilliant, fun and beautiful",
]
NEGATIVE = [
    "I hated this film, awful acting",
    "A terrible and boring book",
    "Disgusting food, sad visit",
    "Horrible, dull and ugly",
]


def sentiment_pairs(store, n, seed=0):
    """n pairs, one positive and one negative response each, the positive one at a random stored position."""
    rng = random.Random(seed)
    rows, positive_is_a = [], []
    for i in range(n):
        good, bad = f"{rng.choice(POSITIVE)} ({i})", f"{rng.choice(NEGATIVE)} ({i})"
        a_good = rng.random() < 0.5
        rows.append(
            {"prompt": f"Review {i}:", "response_a": good if a_good else bad, "response_b": bad if a_good else good}
        )
        positive_is_a.append(a_good)
    return store.add_pairs(rows), positive_is_a


def test_vader_annotates_the_store_as_its_own_annotator(store):
    ids, positive_is_a = sentiment_pairs(store, 120)
    assert annotate_with_judge(store, "vader", progress=False) == 120
    assert store.annotators() == ["judge:vader"]
    table = store.judgments(annotator="judge:vader").set_index("item_id")
    assert [table.loc[i, "choice"] for i in ids] == ["a" if a else "b" for a in positive_is_a]
    assert table.rationale.str.startswith("vader scores: ").all()
    # it saw each item in the store's display order for its name, so its position bias can be measured: none
    assert [table.loc[i, "display_order"] for i in ids] == [store.display_order(i, "judge:vader") for i in ids]
    report = position_bias(store, "judge:vader")
    assert report["n"] == 120 and report["ci"][0] < 0.5 < report["ci"][1]
    assert annotate_with_judge(store, "vader", progress=False) == 0  # nothing pending any more
    assert agreement_with_judge(store, "vader", "judge:vader")["agreement"] == 1.0


def test_simulated_position_bias_shows_in_position_bias(store, tmp_path):
    sentiment_pairs(store, 200)
    sim = SimulatedAnnotator("vader", noise="none", position_bias=0.8, seed=123)
    state = sim._rng.getstate()
    assert annotate_with_judge(store, sim, progress=False, seed=7) == 200
    assert sim._rng.getstate() == state  # the caller's annotator is not consumed
    report = position_bias(store, sim.name)
    # picks the left response 80% of the time blindly, and half of the rest by content: 0.9 expected
    assert report["n"] == 200 and abs(report["left_rate"] - 0.9) < 0.06 and report["ci"][0] > 0.8
    assert store.annotators() == ["sim-vader-exact-pos0.8"]  # stored under the simulated annotator's name
    # reproducible: the same seed into another store gives the same choices
    with LabelStore(tmp_path / "again.db") as other:
        sentiment_pairs(other, 200)
        annotate_with_judge(other, sim, progress=False, seed=7)
        assert list(other.judgments().choice) == list(store.judgments().choice)
    # agreement of the biased annotator with the gold judge is what the bias predicts (0.8 * 0.5 + 0.2 = 0.6)
    assert agreement_with_judge(store, "vader", sim.name)["agreement"] == pytest.approx(0.6, abs=0.08)


def test_human_ai_and_mixed_labels_are_one_call_each(store):
    ids, positive_is_a = sentiment_pairs(store, 40)
    for k, (item_id, a_good) in enumerate(zip(ids, positive_is_a)):
        right = "a" if a_good else "b"
        store.record(
            item_id,
            "ann",
            choice=right if k % 10 else ("b" if right == "a" else "a"),
            display_order=store.display_order(item_id, "ann"),
        )
    annotate_with_judge(store, "vader", progress=False, limit=30)
    assert store.progress("judge:vader", "pair")["done"] == 30
    row = agreement(store).iloc[0]
    assert (row.annotator_a, row.annotator_b, row.n) == ("ann", "judge:vader", 30)
    assert row.observed == pytest.approx(27 / 30)  # ann disagrees on items 0, 10, 20
    assert len(store.export(annotators=["ann"])) == 40
    assert len(store.export(annotators=["judge:vader"])) == 30
    mixed = store.export(annotators=["ann", "judge:vader"])
    assert len(mixed) == 70 and set(mixed["annotator"]) == {"ann", "judge:vader"}


def test_rankings_by_judge_scores(store):
    rows = [
        {
            "prompt": f"p{i}",
            "responses": [f"It was fine, okay ({i})", f"{NEGATIVE[i % 4]} ({i})", f"{POSITIVE[i % 4]} ({i})"],
        }
        for i in range(8)
    ]
    store.add_rankings(rows)
    assert annotate_with_judge(store, "vader", kind="ranking", progress=False) == 8
    assert all(r == [2, 0, 1] for r in store.judgments().ranking)  # positive > neutral > negative
    prefs, counts = store.to_preferences()
    assert counts["rankings"] == 8 and len(prefs) == 24  # 3 pairs per ranking of 3
    noisy = SimulatedAnnotator("vader", noise="bradley_terry", temperature=0.05)
    assert annotate_with_judge(store, noisy, kind="ranking", progress=False) == 8
    assert agreement_with_judge(store, "vader", noisy.name, kind="ranking")["n"] == 24


def test_callable_judges_and_errors(store, tmp_path):
    sentiment_pairs(store, 10)

    def longest(prompts, responses):
        return [len(r) for r in responses]

    assert annotate_with_judge(store, longest, progress=False) == 10
    assert "judge:longest" in store.annotators()
    assert annotate_with_judge(store, LengthJudge(), annotator="words", progress=False, limit=4) == 4
    assert store.progress("words", "pair")["done"] == 4
    with pytest.raises(TypeError, match="must be batched.*FunctionJudge"):
        annotate_with_judge(store, lambda prompt, response: len(response), progress=False)
    with pytest.raises(ValueError, match="demonstrations need written text"):
        annotate_with_judge(store, "vader", kind="demonstration")
    with pytest.raises(ValueError, match="unknown judge 'gpt'"):
        annotate_with_judge(store, "gpt")
    store.close()
    assert annotate_with_judge(tmp_path / "labels.db", "vader", progress=False) == 10  # a path works too
