"""The conclusions notebooks 00-03 state from their numbers (`rlhfkit.conclusions`, the section "conclusions of
notebooks 00-03"): real numbers in, the verdict out, every branch of each rule.

The numbers are from runs of the notebooks (smoke and default budgets) unless a test says otherwise."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from rlhfkit.conclusions import (
    Conclusion,
    annotator_noise_effect,
    hard_pairs,
    label_agreement,
    length_effect,
    llm_judge_quality,
    loss_starts_at_ln2,
    markdown,
    method_comparison,
    names_subject,
    position_bias_found,
    reward_gold_correlation,
    reward_model_accuracy,
    sft_answers,
    sft_gold_change,
    sft_loss,
    temperature_effect,
)

# Policy rows of a quickstart run (00, smoke budget): SFT, PPO and DPO.
SFT = {
    "gold_reward_mean": 0.290,
    "gold_reward_ci": [-0.046, 0.622],
    "kl_to_ref": 0.0,
    "mean_length": 26.625,
    "eos_rate": 1.0,
}
PPO = {
    "gold_reward_mean": 0.348,
    "gold_reward_ci": [0.142, 0.557],
    "kl_to_ref": 0.004,
    "mean_length": 23.875,
    "eos_rate": 1.0,
}
DPO = {
    "gold_reward_mean": 0.453,
    "gold_reward_ci": [0.292, 0.596],
    "kl_to_ref": -0.0,
    "mean_length": 35.75,
    "eos_rate": 0.88,
}


# --- 00: the reward model, length, methods against each other ----------------------------------------------------


@pytest.mark.parametrize(
    ("accuracy", "verdict"),
    [(0.906, "good proxy"), (0.781, "usable proxy"), (0.646, "weak proxy"), (0.478, "near chance")],
)
def test_reward_model_accuracy_tiers(accuracy, verdict):
    said = reward_model_accuracy(accuracy, 48)
    assert isinstance(said, Conclusion) and said.verdict == verdict
    assert f"{accuracy:.1%}" in said.text and "48 held-out pairs" in said.text


def test_reward_model_accuracy_against_chance_and_its_labels():
    # 0.906 of 384 pairs: far above chance, and above labels that agreed with gold on 89.6%.
    strong = reward_model_accuracy(0.906, 384, label_agreement=0.896)
    assert strong.evidence["ci"][0] > 0.5 and "above chance" in strong.text
    assert "better than its own labels" in strong.text
    # 0.604 of 48 pairs (a smoke run): its interval holds 0.5, and it is below its labels' 91.7%.
    weak = reward_model_accuracy(0.604, 48, label_agreement=0.917)
    lo, hi = weak.evidence["ci"]
    assert lo < 0.5 < hi and "not distinguishable from chance" in weak.text
    assert "has not learned the judge as well as its labels" in weak.text


def test_reward_model_accuracy_without_check_pairs_is_unmeasured():
    assert reward_model_accuracy(None, 0).verdict == "unmeasured"


def test_length_effect_longer_shorter_similar():
    longer = length_effect(DPO, SFT, name="DPO")
    assert longer.verdict == "longer" and "34% longer" in longer.text and "EOS rate 0.88 vs 1.00" in longer.text
    assert length_effect(PPO, SFT, name="PPO").verdict == "similar"  # 10% shorter: within the 20% threshold
    short = {**PPO, "mean_length": 16.0}
    said = length_effect(short, SFT, name="PPO")
    assert said.verdict == "shorter" and "40% shorter" in said.text


def test_method_comparison_overlapping_and_separated_intervals():
    said = method_comparison({"sft": SFT, "ppo": PPO, "dpo": DPO}, ["ppo", "dpo"])
    assert said.verdict == "indistinguishable" and said.evidence["best"] == "dpo"
    assert "DPO got at least as much reward for less drift" in said.text
    apart = {**PPO, "gold_reward_mean": 0.120, "gold_reward_ci": [0.05, 0.19], "kl_to_ref": 0.2}
    said = method_comparison({"ppo": apart, "dpo": {**DPO, "kl_to_ref": 1.5}}, ["ppo", "dpo"])
    assert said.verdict == "separated" and "do not overlap" in said.text
    assert "fair comparison is at equal KL" in said.text


def test_method_comparison_needs_two_methods():
    assert method_comparison({"sft": SFT, "ppo": PPO}, ["ppo", "dpo"]) is None
    gold_less = {**PPO, "gold_reward_mean": None}
    assert method_comparison({"ppo": gold_less, "dpo": DPO}, ["ppo", "dpo"]).verdict == "unmeasured"


# --- 01: what SFT changed ----------------------------------------------------------------------------------------


def test_sft_loss_generalised_or_not():
    # Default budget (200 steps): held-out loss 2.231 -> 1.012. Smoke budget (6 steps): 1.392 -> 2.987.
    summary = {"first_train_loss": 2.26, "train_loss": 0.98, "steps": 200}
    said = sft_loss(summary, 2.231, 1.012, 100)
    assert said.verdict == "generalised" and "100 held-out demonstrations" in said.text
    smoke = {"first_train_loss": 1.381, "train_loss": 3.184, "steps": 6}
    assert sft_loss(smoke, 1.392, 2.987, 100).verdict == "did not generalise"
    assert sft_loss(smoke, math.nan, math.nan, 0).verdict == "unmeasured"


def test_names_subject():
    prompt = "Write a short review of the book The Lantern of Dublin."
    assert names_subject(prompt, "The Lantern of Dublin was a delight.") is True
    assert names_subject(prompt, "I went into The Endless River with mixed feelings.") is False
    assert names_subject("Review the blender in a few sentences.", "It was fine.") is None


def _answers(responses, prompts, finish, tokens):
    return pd.DataFrame({"prompt": prompts, "response": responses, "finish_reason": finish, "n_tokens": tokens})


PROMPTS = [
    "Write a short review of the book The Lantern of Dublin.",
    "Review the book A Paper Summer in a few sentences.",
    "Share your opinion of the book Lanterns of the Northern Sea.",
]
BEFORE = _answers(
    ["I went into The Endless River with mixed feelings."] * 2 + ["I went into The Endless River with high hopes."],
    PROMPTS,
    ["length"] * 3,
    [16, 16, 16],
)


def test_sft_answers_on_topic_and_stopping():
    after = _answers(
        ["The Lantern of Dublin was a delight.", "A Paper Summer was dull.", "friend agreed it was messy."],
        PROMPTS,
        ["eos", "eos", "length"],
        [9, 7, 16],
    )
    topic, stopping = sft_answers(BEFORE, after)
    assert topic.verdict == "names the subject" and "67% of 3 after" in topic.text
    assert stopping.verdict == "stops more" and "67% after" in stopping.text
    # A smoke run's answers after 6 steps: no names copied, and fewer answers ended by themselves than before.
    off = _answers(["friend agreed it was bad."] * 3, PROMPTS, ["length"] * 3, [16] * 3)
    before_eos = BEFORE.assign(finish_reason=["eos", "length", "length"])
    topic, stopping = sft_answers(before_eos, off)
    assert topic.verdict == "does not name the subject" and "does not learn to copy them" in topic.text
    assert stopping.verdict == "does not stop more"
    unnamed = ["Review the blender in a few sentences."] * 3
    topic, _ = sft_answers(BEFORE.assign(prompt=unnamed), off.assign(prompt=unnamed))
    assert topic.verdict == "no names"


def test_sft_gold_change():
    # Smoke run: 0.341 -> 0.557 on 3 prompts, +0.215 +- 0.322: within noise; demonstrations average 0.354.
    said = sft_gold_change([0.226, 0.572, 0.226], [0.599, 0.459, 0.612], 0.354)
    assert said.verdict == "within noise" and said.evidence["versus_demos"] == "above"
    assert "The change is within noise" in said.text
    higher = sft_gold_change([0.1, 0.2, 0.0, 0.1], [0.35, 0.42, 0.31, 0.36], 0.354)
    assert higher.verdict == "higher" and higher.evidence["versus_demos"] == "close"
    lower = sft_gold_change([0.5, 0.6, 0.4, 0.5], [0.1, 0.15, 0.05, 0.12], 0.354)
    assert lower.verdict == "lower" and lower.evidence["versus_demos"] == "below"


# --- 02: decoding and annotators ---------------------------------------------------------------------------------


def _sweep(spread_hot: float, logprob_hot: float) -> pd.DataFrame:
    rows = [
        ("greedy", 0.0, 1.0, 0.31, 0.40, -0.45),
        ("sampled", 0.5, 1.67, 0.44, 0.12, -0.71),
        ("sampled", 1.0, 3.0, 0.61, spread_hot, logprob_hot),
    ]
    columns = ["decoding", "temperature", "unique answers per prompt", "distinct_2", "gold spread within prompt"]
    return pd.DataFrame(rows, columns=[*columns, "logprob/token"])


def test_temperature_effect_both_ways():
    diversity, price, spread, chosen = temperature_effect(_sweep(0.21, -1.52), 1.0, 3)
    assert diversity.verdict == "more diverse" and "greedy decoding has one answer per prompt" in diversity.text
    assert price.verdict == "less typical" and spread.verdict == "wider"
    assert chosen.verdict == "the policy's own distribution"
    _, price, spread, chosen = temperature_effect(_sweep(0.05, -0.5), 0.5, 3)
    assert price.verdict == "not less typical" and spread.verdict == "not wider"
    assert chosen.verdict == "another distribution" and "PPO samples at T = 1" in chosen.text
    assert len(temperature_effect(_sweep(0.05, -0.5), 0.7, 3)) == 3  # 0.7 was not swept: nothing to say about it


def test_label_agreement_as_predicted_or_not():
    said = label_agreement("sim-vader-flip0.1", 0.904, (0.876, 0.926), 480, 0.1)
    assert said.verdict == "as predicted" and "predicts 90%" in said.text
    said = label_agreement("sim-vader-flip0.1", 1.0, (0.875, 1.0), 27, 0.1)  # a smoke run: no flip among 27
    assert said.verdict == "as predicted"
    assert label_agreement("sim-vader-flip0.1", 0.62, (0.57, 0.67), 480, 0.1).verdict == "off prediction"


def test_position_bias_found_or_not():
    said = position_bias_found("sim-vader-flip0.1-pos0.3", 0.652, (0.608, 0.693), bias=0.3, unbiased=("sim", 0.49))
    assert said.verdict == "detected" and "predicts 65.0%" in said.text and "sim, with no bias" in said.text
    said = position_bias_found("sim-vader-flip0.1-pos0.3", 0.630, (0.442, 0.785), bias=0.3)
    assert said.verdict == "not detected" and "too few labels" in said.text


def test_llm_judge_quality_against_chance_with_its_position_bias():
    bias = {"n": 64, "first_rate": 0.992, "disagree_rate": 1.0}
    said = llm_judge_quality("llm-judge:smollm2", 0.556, (0.468, 0.639), 63, bias, simulated=("sim", 0.9))
    assert said.verdict == "chance level" and "99.2%" in said.text and "100.0% of the pairs" in said.text
    assert "sim agrees on 90.0%" in said.text and "larger judge model" in said.text
    said = llm_judge_quality("judge", 0.81, (0.72, 0.88), 80, {"first_rate": 0.55, "disagree_rate": 0.1})
    assert said.verdict == "better than chance" and "larger judge model" not in said.text
    assert llm_judge_quality("judge", 0.3, (0.2, 0.42), 80, bias).verdict == "worse than chance"
    said = llm_judge_quality("judge", math.nan, (math.nan, math.nan), 0, bias)
    assert said.verdict == "no decisions" and said.evidence["n_decided"] == 0


# --- 03: the reward model ----------------------------------------------------------------------------------------


def test_loss_starts_at_ln2():
    assert loss_starts_at_ln2(0.6912).verdict == "at ln 2"
    assert loss_starts_at_ln2(0.93).verdict == "away from ln 2"


def test_hard_pairs():
    by_gap = pd.DataFrame({"RM accuracy": [0.74, 0.91, 0.98], "pairs": [128, 127, 128]})
    assert hard_pairs(by_gap).verdict == "harder when close"
    smoke = pd.DataFrame({"RM accuracy": [0.857, 0.375, 0.833], "pairs": [7, 8, 6]})
    assert hard_pairs(smoke).verdict == "not harder"
    assert hard_pairs(smoke.head(1)) is None


def _check(rm_chosen, rm_rejected):
    return pd.DataFrame(
        {
            "chosen": ["a", "b", "c", "d"],
            "rejected": ["e", "f", "g", "h"],
            "score_chosen": [0.8, 0.6, 0.5, 0.9],
            "score_rejected": [0.1, 0.2, -0.3, 0.4],
            "rm_chosen": rm_chosen,
            "rm_rejected": rm_rejected,
        }
    )


def test_reward_gold_correlation():
    said = reward_gold_correlation(_check([1.2, 0.7, 0.4, 1.5], [-0.8, -0.1, -1.2, 0.2]))
    assert said.verdict == "ranks with gold" and said.evidence["spearman"] > 0.8 and "8 answers" in said.text
    said = reward_gold_correlation(_check([-1.2, -0.7, -0.4, -1.5], [0.8, 0.1, 1.2, -0.2]))
    assert said.verdict == "does not rank with gold"


def _noise(accuracies, agreements=(1.0, 0.71, 0.5), flips=(0.0, 0.3, 0.5)):
    return pd.DataFrame(
        {"flip rate": flips, "label agreement with gold": agreements, "RM accuracy vs gold": accuracies, "steps": 60}
    )


def test_annotator_noise_effect_branches():
    # A default run: accuracy 0.88 -> 0.71 -> 0.52 while the labels fell 1.0 -> 0.5: less than the labels.
    said = annotator_noise_effect(_noise([0.88, 0.71, 0.52]), 384)
    assert said.verdict == "costs less than labels" and "0.5 the labels carry no information" in said.text
    assert not said.evidence["non_monotone"]
    said = annotator_noise_effect(_noise([0.95, 0.5, 0.40], agreements=(1.0, 0.8, 0.6)), 384)
    assert said.verdict == "costs as much as labels"
    # The smoke run: 0.667 at flip 0, 0.714 at 0.4 on 21 pairs: no decline, and not monotone.
    said = annotator_noise_effect(_noise([0.667, 0.714], agreements=(1.0, 0.708), flips=(0.0, 0.4)), 21)
    assert said.verdict == "no clear decline" and said.evidence["non_monotone"] and "not monotone" in said.text
    assert annotator_noise_effect(_noise([0.88], agreements=(1.0,), flips=(0.0,)), 384) is None


def test_annotator_noise_effect_flags_a_far_from_chance_point_at_half():
    said = annotator_noise_effect(_noise([0.9, 0.8, 0.7]), 384)  # 0.7 at flip 0.5: 7.8 standard errors
    assert "rerun with another SEED" in said.text


def test_markdown_lists_conclusions_and_sentences():
    text = markdown([loss_starts_at_ln2(0.6912), "Next: PPO (04)."])
    assert text.startswith("- **The loss starts at ln 2.**") and text.endswith("- Next: PPO (04).")
