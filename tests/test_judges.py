"""Tests for rlhfkit.judges: the built-in judges, the TRL reward-function call shape, and simulated annotators."""

from __future__ import annotations

import math
import warnings

import pytest

from rlhfkit.judges import FunctionJudge, Judge, LengthJudge, SimulatedAnnotator, VaderJudge, as_judge

POSITIVE = "An absolutely wonderful film: brilliant acting, a delightful story, and I loved every minute of it."
NEGATIVE = "A terrible, boring mess. The acting was awful and I hated every painful minute of it."


def _number_at_end(prompt: str, response: str) -> float:
    """Deterministic judge: the score is the number the response ends with."""
    return float(response.split()[-1])


NUMBER_JUDGE = FunctionJudge(_number_at_end, name="number")


def _pairs(n: int, score_a: float = 1.0, score_b: float = 0.0):
    """n pairs in which response A always scores `score_a` and B `score_b` under NUMBER_JUDGE."""
    prompts = [f"prompt {i}" for i in range(n)]
    a = [f"answer A to {i} scores {score_a:g}" for i in range(n)]
    b = [f"answer B to {i} scores {score_b:g}" for i in range(n)]
    return prompts, a, b


def _tolerance(p: float, n: int, sds: float = 4.0) -> float:
    """`sds` binomial standard deviations of a proportion p estimated from n draws."""
    return sds * math.sqrt(p * (1 - p) / n)


def _fraction(rows, key, value=True) -> float:
    return sum(row[key] == value for row in rows) / len(rows)


# ----------------------------------------------------------------------------------------------- judges


def test_vader_prefers_positive_review_and_stays_in_range():
    judge = VaderJudge()
    pos, neg = judge(["Review the film."] * 2, [POSITIVE, NEGATIVE])
    assert pos > neg
    assert pos > 0.5 and neg < -0.5
    for score in (pos, neg):
        assert -1.0 <= score <= 1.0
    assert judge.name == judge.__name__ == "vader"


def test_judge_accepts_trl_reward_function_call_shape():
    judge = VaderJudge()
    prompts = ["Review the film.", "Review the tent."]
    scores = judge(
        prompts=prompts, completions=[POSITIVE, NEGATIVE], extra_column=["x", "y"], completion_ids=[[1, 2], [3]]
    )
    assert len(scores) == 2 and all(isinstance(s, float) for s in scores)
    assert scores[0] > scores[1]


def test_judge_accepts_conversational_prompts_and_completions():
    judge = VaderJudge()
    prompts = [[{"role": "user", "content": "Review the film."}]] * 2
    completions = [[{"role": "assistant", "content": POSITIVE}], [{"role": "assistant", "content": NEGATIVE}]]
    conversational = judge(prompts=prompts, completions=completions, extra_column=[1, 2])
    plain = judge(["Review the film."] * 2, [POSITIVE, NEGATIVE])
    assert conversational == plain
    assert conversational[0] > conversational[1]


def test_judge_rejects_a_response_of_the_wrong_type():
    with pytest.raises(TypeError, match="expected a response string"):
        LengthJudge()(["p"], [42])


def test_mismatched_lengths_raise_naming_the_judge():
    judge = FunctionJudge(_number_at_end, name="my_judge")
    with pytest.raises(ValueError, match="my_judge"):
        judge(["p1", "p2"], ["r 1"])


def test_nan_score_raises_naming_the_judge():
    judge = FunctionJudge(lambda p, r: float("nan"), name="nan_judge")
    with pytest.raises(ValueError, match=r"nan_judge.*non-finite"):
        judge(["p"], ["r"])
    inf_judge = FunctionJudge(lambda p, r: math.inf, name="inf_judge")
    with pytest.raises(ValueError, match="inf_judge"):
        inf_judge(["p"], ["r"])


def test_batched_judge_returning_wrong_count_raises():
    judge = FunctionJudge(lambda ps, rs: [1.0], name="short", batched=True)
    with pytest.raises(ValueError, match=r"short.*returned 1 scores for 2"):
        judge(["p", "q"], ["r", "s"])


def test_length_judge_words_chars_and_target():
    responses = ["one two three", "a b c d e f g", ""]
    assert LengthJudge()(["p"] * 3, responses) == [3.0, 7.0, 0.0]
    assert LengthJudge(unit="chars")(["p"] * 3, responses) == [13.0, 13.0, 0.0]
    target = LengthJudge(target=5)
    assert target(["p"] * 3, responses) == [-2.0, -2.0, -5.0]
    assert target(["p"], ["exactly five words right here"]) == [0.0]
    assert LengthJudge().name == "length_words"
    assert LengthJudge(unit="chars", target=10).name == "length_chars_target_10"
    with pytest.raises(ValueError, match="unit"):
        LengthJudge(unit="tokens")


def test_function_judge_per_item_and_batched():
    seen = []

    def per_item(prompt, response):
        seen.append((prompt, response))
        return len(prompt) + len(response)

    judge = FunctionJudge(per_item)
    assert judge(["ab", "c"], ["xyz", ""]) == [5.0, 1.0]
    assert seen == [("ab", "xyz"), ("c", "")]
    assert judge.name == "per_item"

    calls = []

    def batched(prompts, responses):
        calls.append((prompts, responses))
        return [float(r == "good") for r in responses]

    bjudge = FunctionJudge(batched, name="is_good", batched=True)
    assert bjudge(["p", "q", "r"], ["good", "bad", "good"]) == [1.0, 0.0, 1.0]
    assert len(calls) == 1 and calls[0] == (["p", "q", "r"], ["good", "bad", "good"])
    assert bjudge.__name__ == "is_good"


def test_as_judge_names_callables_and_errors():
    assert isinstance(as_judge("vader"), VaderJudge)
    length = as_judge("length")
    assert isinstance(length, LengthJudge) and length(["p"], ["a b"]) == [2.0]
    existing = LengthJudge(unit="chars")
    assert as_judge(existing) is existing

    wrapped = as_judge(_number_at_end)
    assert isinstance(wrapped, FunctionJudge) and isinstance(wrapped, Judge)
    assert wrapped.name == "_number_at_end"
    assert wrapped(["p"], ["score 2.5"]) == [2.5]

    with pytest.raises(ValueError, match=r"unknown judge 'sentiment'.*length.*vader"):
        as_judge("sentiment")
    with pytest.raises(TypeError):
        as_judge(3.0)


# ------------------------------------------------------------------------------------ simulated annotator


def test_rows_have_trl_columns_and_consistent_scores():
    prompts, a, b = _pairs(20)
    rows = SimulatedAnnotator(NUMBER_JUDGE, noise="none", seed=1).label_pairs(prompts, a, b)
    assert len(rows) == 20
    for prompt, ra, rb, row in zip(prompts, a, b, rows):
        assert set(row) >= {
            "prompt",
            "chosen",
            "rejected",
            "annotator",
            "chosen_position",
            "score_chosen",
            "score_rejected",
            "judge_tie",
            "agrees_with_judge",
        }
        assert row["prompt"] == prompt
        assert {row["chosen"], row["rejected"]} == {ra, rb}
        assert row["score_chosen"] == _number_at_end(prompt, row["chosen"])
        assert row["score_rejected"] == _number_at_end(prompt, row["rejected"])
        assert row["chosen_position"] in ("left", "right")
        assert row["annotator"] == "sim-number-exact"
        assert row["judge_tie"] is False


def test_noise_none_always_agrees_with_judge():
    prompts, a, b = _pairs(500)
    # Put the better response on both sides of the pair, so agreement is not an artifact of order.
    b = [f"answer B to {i} scores {2 if i % 2 else 0}" for i in range(500)]
    rows = SimulatedAnnotator(NUMBER_JUDGE, noise="none", seed=3).label_pairs(prompts, a, b)
    assert all(row["agrees_with_judge"] for row in rows)
    assert all(row["score_chosen"] > row["score_rejected"] for row in rows)
    assert all(row["chosen"] == (b[i] if i % 2 else a[i]) for i, row in enumerate(rows))


def test_flip_noise_agreement_matches_flip_rate():
    n, flip_rate = 3000, 0.2
    prompts, a, b = _pairs(n, score_a=10.0, score_b=-10.0)
    rows = SimulatedAnnotator(NUMBER_JUDGE, noise="flip", flip_rate=flip_rate, seed=123).label_pairs(prompts, a, b)
    assert len(rows) == n
    agreement = _fraction(rows, "agrees_with_judge")
    tol = _tolerance(1 - flip_rate, n)  # 4 sd of a binomial proportion: about 0.029 for n=3000
    assert tol < 0.03
    assert abs(agreement - (1 - flip_rate)) < tol, agreement
    # Flipped rows are exactly those whose chosen response scored lower.
    assert all(row["agrees_with_judge"] == (row["score_chosen"] > row["score_rejected"]) for row in rows)


def test_bradley_terry_lower_temperature_agrees_more():
    n = 2000
    prompts, a, b = _pairs(n, score_a=1.0, score_b=0.0)
    agreement = {}
    for temperature in (0.5, 2.0):
        annotator = SimulatedAnnotator(NUMBER_JUDGE, noise="bradley_terry", temperature=temperature, seed=5)
        assert annotator.name == f"sim-number-bt{temperature:g}"
        rows = annotator.label_pairs(prompts, a, b)
        agreement[temperature] = _fraction(rows, "agrees_with_judge")
        expected = 1 / (1 + math.exp(-1.0 / temperature))  # sigmoid(score gap / temperature)
        assert abs(agreement[temperature] - expected) < _tolerance(expected, n), (temperature, agreement)
    assert agreement[0.5] > agreement[2.0] + 0.15


def test_full_position_bias_always_picks_left():
    n = 1000
    prompts, a, b = _pairs(n)
    rows = SimulatedAnnotator(NUMBER_JUDGE, noise="none", position_bias=1.0, seed=7).label_pairs(prompts, a, b)
    assert all(row["chosen_position"] == "left" for row in rows)
    # Content is ignored, and the left response is random, so agreement is a coin flip.
    agreement = _fraction(rows, "agrees_with_judge")
    assert abs(agreement - 0.5) < _tolerance(0.5, n)


def test_partial_position_bias_left_rate():
    n, bias = 3000, 0.4
    prompts, a, b = _pairs(n)
    annotator = SimulatedAnnotator(NUMBER_JUDGE, noise="none", position_bias=bias, seed=11)
    assert annotator.name == "sim-number-exact-pos0.4"
    rows = annotator.label_pairs(prompts, a, b)
    # Biased picks are always left; unbiased picks follow content, which is on the left half the time.
    expected_left = 0.5 + bias * 0.5
    left = _fraction(rows, "chosen_position", "left")
    assert abs(left - expected_left) < _tolerance(expected_left, n), left
    # Agreement: unbiased picks always agree, biased picks agree when the better one happened to be left.
    expected_agree = (1 - bias) + bias * 0.5
    assert abs(_fraction(rows, "agrees_with_judge") - expected_agree) < _tolerance(expected_agree, n)


def test_left_right_order_is_randomised():
    n = 3000
    prompts, a, b = _pairs(n)
    rows = SimulatedAnnotator(NUMBER_JUDGE, noise="none", seed=13).label_pairs(prompts, a, b)
    # A is always better and noise is off, so A is always chosen: chosen_position says where A was shown.
    assert all(row["agrees_with_judge"] and row["chosen"] == a[i] for i, row in enumerate(rows))
    a_left = _fraction(rows, "chosen_position", "left")
    assert abs(a_left - 0.5) < _tolerance(0.5, n), a_left
    positions = [row["chosen_position"] for row in rows]
    # Not a fixed alternation either: some runs of equal positions.
    assert any(positions[i] == positions[i + 1] for i in range(n - 1))


def test_same_seed_same_rows_different_seed_different_rows():
    prompts, a, b = _pairs(300, score_a=1.0, score_b=0.5)

    def run(seed):
        return SimulatedAnnotator(
            NUMBER_JUDGE, noise="bradley_terry", temperature=0.5, position_bias=0.2, seed=seed
        ).label_pairs(prompts, a, b)

    first, again, other = run(42), run(42), run(43)
    assert first == again
    assert first != other
    assert [r["chosen_position"] for r in first] != [r["chosen_position"] for r in other]


def test_judge_ties_are_flagged_and_decided_by_coin():
    n = 1000
    prompts = [f"p{i}" for i in range(n)]
    a = [f"first {i} 1" for i in range(n)]
    b = [f"second {i} 1" for i in range(n)]
    rows = SimulatedAnnotator(NUMBER_JUDGE, noise="none", seed=2).label_pairs(prompts, a, b)
    assert all(row["judge_tie"] for row in rows)
    chose_a = sum(row["chosen"] == a[i] for i, row in enumerate(rows)) / n
    assert abs(chose_a - 0.5) < _tolerance(0.5, n)


def test_identical_pairs_are_skipped_with_counting_warning():
    prompts = ["p0", "p1", "p2", "p3", "p4"]
    a = ["same 1", "x 1", "same 2", "y 1", "z 3"]
    b = ["same 1", "x 0", "same 2", "y 2", "z 1"]
    annotator = SimulatedAnnotator(NUMBER_JUDGE, noise="none", seed=0)
    with pytest.warns(UserWarning, match=r"skipped 2 of 5 pairs"):
        rows = annotator.label_pairs(prompts, a, b)
    assert [row["prompt"] for row in rows] == ["p1", "p3", "p4"]
    assert [row["chosen"] for row in rows] == ["x 1", "y 2", "z 3"]


def test_no_warning_without_identical_pairs():
    prompts, a, b = _pairs(10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SimulatedAnnotator(NUMBER_JUDGE, seed=0).label_pairs(prompts, a, b)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"flip_rate": 1.5}, "flip_rate"),
        ({"flip_rate": -0.1}, "flip_rate"),
        ({"position_bias": 1.2}, "position_bias"),
        ({"noise": "gaussian"}, "noise"),
        ({"noise": "bradley_terry", "temperature": 0.0}, "temperature"),
    ],
)
def test_invalid_annotator_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimulatedAnnotator(NUMBER_JUDGE, **kwargs)


def test_unknown_judge_name_in_annotator_raises():
    with pytest.raises(ValueError, match="unknown judge"):
        SimulatedAnnotator("gold")


def test_label_pairs_length_mismatch_raises():
    with pytest.raises(ValueError, match="equally many"):
        SimulatedAnnotator(NUMBER_JUDGE).label_pairs(["p", "q"], ["a 1", "b 1"], ["c 0"])


def test_annotator_with_builtin_judge_name():
    annotator = SimulatedAnnotator("length", noise="none", seed=0)
    assert annotator.name == "sim-length_words-exact"
    rows = annotator.label_pairs(["p", "q"], ["one two three", "x"], ["one", "x y"])
    assert [row["chosen"] for row in rows] == ["one two three", "x y"]


# --- several criteria ------------------------------------------------------------------------------------------


def test_combined_judge_standardises_each_criterion_on_the_reference_then_weighs_them():
    from rlhfkit.judges import CombinedJudge

    words = LengthJudge("words")  # 1, 2, 3, 4 words on the reference: mean 2.5, sd 1.29
    double = FunctionJudge(lambda p, r: 10.0 * len(r), name="chars_x10")
    reference = (["p"] * 4, ["a", "a b", "a b c", "a b c d"])
    combined = CombinedJudge({"words": words, "chars": double}, {"words": 1.0, "chars": -0.5}, reference=reference)
    sd_words = math.sqrt(sum((n - 2.5) ** 2 for n in (1, 2, 3, 4)) / 3)
    chars = [10.0 * len(r) for r in reference[1]]
    mean_c = sum(chars) / 4
    sd_c = math.sqrt(sum((c - mean_c) ** 2 for c in chars) / 3)
    got = combined(["p"], ["a b c d e"])[0]
    assert got == pytest.approx((5 - 2.5) / sd_words - 0.5 * (10.0 * 9 - mean_c) / sd_c)
    assert combined.name == "combined(words=1, chars=-0.5)"
    # Without a reference the raw scores are summed; a criterion weighed 0 is not scored at all.
    raw = CombinedJudge({"words": words, "chars": double}, {"words": 2.0, "chars": 0.0})
    assert raw(["p"], ["a b c"]) == [6.0] and list(raw.judges) == ["words"]


def test_combined_judge_refuses_weights_it_cannot_use():
    from rlhfkit.judges import CombinedJudge

    words = LengthJudge("words")
    with pytest.raises(ValueError, match=r"weights for \['brief'\], which have no judge"):
        CombinedJudge({"words": words}, {"brief": 1.0})
    with pytest.raises(ValueError, match="every weight is 0"):
        CombinedJudge({"words": words}, {"words": 0.0})
    with pytest.raises(ValueError, match="finite"):
        CombinedJudge({"words": words}, {"words": float("nan")})
    with pytest.raises(ValueError, match="same score"):
        CombinedJudge({"words": words}, {"words": 1.0}, reference=(["p", "p"], ["a b", "c d"]))


def test_the_reviews_task_has_two_gold_criteria_that_pull_apart():
    from rlhfkit.tiny import reviews_task

    task = reviews_task(n_train_prompts=4, n_eval_prompts=2, n_demonstrations=2)
    assert task.gold_for() is task.gold_judge and set(task.gold_criteria) == {"positive", "brief"}
    short, long = "A good film.", "A good film: wonderful acting, a lovely score, and a happy, delightful ending."
    prompts = ["Review Night Harbor."] * 2
    positive = task.gold_for("positive")(prompts, [short, long])
    brief = task.gold_for("brief")(prompts, [short, long])
    assert positive[1] > positive[0] and brief[1] < brief[0]  # the longer review: more positive, less brief
    with pytest.raises(
        KeyError, match=r"no gold judge for criterion 'honest'; it has \['overall', 'positive', 'brief'\]"
    ):
        task.gold_for("honest")
