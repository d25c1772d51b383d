"""The conclusions notebooks 04-06 state, from numbers with known answers: each function's every verdict, and the
numbers its sentence carries. Rows follow `rlhfkit.results` (gold_reward_mean, gold_reward_ci, kl_to_ref, ...);
frontier points, over-optimisation points and win-rate tables come from the real `rlhfkit.compare` functions."""

import math

import numpy as np
import pandas as pd
import pytest

from rlhfkit import conclusions
from rlhfkit.compare import frontier_points, overoptimization_fits, rl_overoptimization_points, win_rate_table

SFT = {
    "gold_reward_mean": 0.30,
    "gold_reward_ci": [0.25, 0.35],
    "proxy_reward_mean": 0.0,
    "kl_to_ref": 0.0,
    "win_rate_vs_ref": 0.5,
    "win_rate_ci": [0.5, 0.5],
    "mean_length": 20.0,
    "eos_rate": 0.9,
}


def row(gold, lo, hi, kl, *, proxy=0.5, length=20.0, win=None, win_ci=None):
    return {
        "gold_reward_mean": gold,
        "gold_reward_ci": [lo, hi],
        "proxy_reward_mean": proxy,
        "kl_to_ref": kl,
        "win_rate_vs_ref": win,
        "win_rate_ci": win_ci,
        "mean_length": length,
        "eos_rate": 0.8,
    }


# --- kl_penalty_effect (notebook 04, section 4) -------------------------------------------------------------------


def test_kl_penalty_effect_a_larger_beta_kept_the_policy_closer_and_the_intervals_separate():
    low, high = row(0.50, 0.45, 0.55, 4.0, proxy=0.9), row(0.35, 0.30, 0.40, 1.0, proxy=0.4)
    found = conclusions.kl_penalty_effect(low, high, 0.05, 0.3, SFT)
    assert [c.verdict for c in found] == ["closer", "proxy", "separated", "exchange rate"]
    assert "with β = 0.3 1.00 nats: the 6x larger penalty kept it 4.0x closer." in found[0].text
    assert found[0].evidence == {"kl_low": 4.0, "kl_high": 1.0}
    # a baseline proxy of exactly 0 is a number, not a missing value
    assert found[1].text.endswith("+0.900 vs +0.400 (SFT +0.000).")
    assert "β = 0.05 reached more gold reward" in found[2].text
    assert found[3].evidence == {"gold_per_nat_low": pytest.approx(0.05), "gold_per_nat_high": pytest.approx(0.05)}


def test_kl_penalty_effect_not_closer_and_overlapping_intervals():
    low, high = row(0.40, 0.30, 0.50, 1.0), row(0.42, 0.32, 0.52, 1.5)
    found = conclusions.kl_penalty_effect(low, high, 0.1, 0.15, {**SFT, "proxy_reward_mean": None})
    assert [c.verdict for c in found] == ["not closer", "proxy", "indistinguishable", "exchange rate"]
    assert "the larger penalty did not keep it closer in this run" in found[0].text
    assert "(SFT +nan)" in found[1].text
    assert "not distinguishable on gold reward" in found[2].text
    assert found[3].evidence["gold_per_nat_low"] == pytest.approx(0.1)


def test_kl_penalty_effect_without_gold_or_proxy_says_what_is_missing():
    low, high = row(None, None, None, 2.0, proxy=None), row(None, None, None, 1.0, proxy=None)
    low["gold_reward_ci"] = high["gold_reward_ci"] = None
    found = conclusions.kl_penalty_effect(low, high, 0.05, 0.1, SFT)
    assert [c.verdict for c in found] == ["closer", "unmeasured"]
    assert "2x larger penalty" in found[0].text and "gold reward per β" in found[1].text


# --- reward_hacking and reward_hacking_course (notebook 04, section 5) ---------------------------------------------


def hacking_run(gold_per_step, proxy_per_step, *, per_step=12, noise=0.02):
    """Samples of an RL run, `per_step` a step, whose gold and proxy have exactly the given means per step (each
    sample `noise` above or below it, alternately), and whose answers shrink from 10 words to 1 as the steps go."""
    rows = []
    steps = len(gold_per_step)
    for step, (g, p) in enumerate(zip(gold_per_step, proxy_per_step), start=1):
        words = max(1, round(10 - 9 * (step - 1) / max(steps - 1, 1)))
        for i in range(per_step):
            rows.append(
                {
                    "step": step,
                    "prompt": "p",
                    "response": " ".join(["good"] * words),
                    "score": p + noise * (-1) ** i,
                    "gold": g + noise * (-1) ** i,
                    "kl": 0.5 * step,
                }
            )
    return pd.DataFrame(rows)


def bins_of(samples, n_bins=4, baseline=(0.0, 0.3)):
    return rl_overoptimization_points(samples, proxy="score", gold="gold", baseline=baseline, n_bins=n_bins)


def test_reward_hacking_shown_when_the_proxy_rises_and_gold_falls_clearly_from_its_peak():
    samples = hacking_run([0.4, 0.5, 0.6, 0.6, 0.4, 0.3, 0.1, 0.0], [1, 2, 3, 4, 5, 6, 7, 8])
    points = bins_of(samples)
    verdict = conclusions.reward_hacking(samples, points, baseline_gold=0.3)
    assert verdict.verdict == "shown"
    assert verdict.evidence["peak_steps"] == [3, 4]
    assert verdict.evidence["gold_peak"] == pytest.approx(0.6, abs=0.01)
    assert verdict.evidence["gold_last"] == pytest.approx(0.05, abs=0.01)
    assert verdict.evidence["gold_drop"] > 2 * verdict.evidence["gold_drop_se"]
    assert verdict.text.endswith(", to below the starting policy's 0.300.")
    # without the baseline, or when gold ends above it, the sentence just ends
    assert conclusions.reward_hacking(samples, points).text.endswith(").")
    assert conclusions.reward_hacking(samples, points, baseline_gold=-1.0).text.endswith(").")


def test_reward_hacking_not_shown_when_gold_does_not_fall_clearly_or_peaks_last():
    flat = hacking_run([0.50, 0.52, 0.51, 0.50, 0.51, 0.50, 0.50, 0.51], range(1, 9), noise=0.1)
    assert conclusions.reward_hacking(flat, bins_of(flat)).verdict == "not shown"
    rising = hacking_run([0.1 * s for s in range(8)], range(1, 9))
    verdict = conclusions.reward_hacking(rising, bins_of(rising))
    assert verdict.verdict == "not shown" and verdict.evidence["peak_steps"] == [7, 8]
    assert "or gold peaked in the last bin" in verdict.text


def test_reward_hacking_proxy_did_not_rise_and_no_bins():
    falling = hacking_run([0.6, 0.5, 0.4, 0.3], [4, 3, 2, 1])
    assert conclusions.reward_hacking(falling, bins_of(falling)).verdict == "proxy did not rise"
    only_baseline = bins_of(falling).iloc[:1]
    assert conclusions.reward_hacking(falling, only_baseline).verdict == "no bins"


def test_reward_hacking_course_describes_proxy_words_and_gold_with_standard_errors():
    samples = hacking_run([0.4, 0.5, 0.6, 0.6, 0.4, 0.3, 0.1, 0.0], [1, 2, 3, 4, 5, 6, 7, 8], noise=0.0)
    proxy, gold = conclusions.reward_hacking_course(samples, bins_of(samples), baseline_gold=0.3)
    assert proxy.verdict == "rising" and proxy.evidence["words"] == [10.0, 1.0]
    assert proxy.text == (
        "**Proxy:** +1.500 in the first bin of steps, +7.500 in the last (rising), at KL 3.8 nats; answers went "
        "from 10.0 to 1.0 words."
    )
    assert gold.verdict == "gold course"
    assert gold.text == (
        "**Gold:** 0.300 for SFT; 0.450 in the first bin, highest 0.600 ± 0.000 (standard error) in steps 3-4, "
        "0.050 ± 0.010 in the last bin."
    )
    falling = hacking_run([0.6, 0.5], [2, 1])
    assert conclusions.reward_hacking_course(falling, bins_of(falling, 2), baseline_gold=0.3)[0].verdict == "not rising"
    assert conclusions.reward_hacking_course(falling, bins_of(falling).iloc[:1], baseline_gold=0.3)[0].verdict == (
        "no bins"
    )


# --- proxies checked against gold before optimising (notebooks 04 and 06) ------------------------------------------


def test_proxy_agreement_weak_reasonable_unmeasured():
    weak = conclusions.proxy_agreement(0.62, 180)
    assert weak.verdict == "weak" and "orders 62.0% of 180 pairs" in weak.text and "caps" in weak.text
    assert conclusions.proxy_agreement(0.81, 180).verdict == "reasonable"
    assert conclusions.proxy_agreement(0.81, 180, weak_below=0.9).verdict == "weak"
    assert conclusions.proxy_agreement(math.nan, 0).verdict == "unmeasured"


def test_flawed_proxy_check_visible_hidden_and_a_weak_reward_model():
    visible = conclusions.flawed_proxy_check(0.60, 0.80)
    assert visible.verdict == "visible" and "visible in that number already" in visible.text
    assert "weak proxy" not in visible.text
    hidden = conclusions.flawed_proxy_check(0.78, 0.80)
    assert hidden.verdict == "hidden" and "would not have caught it" in hidden.text
    weak = conclusions.flawed_proxy_check(0.58, 0.60)
    assert weak.verdict == "hidden" and "The reward model itself is a weak proxy" in weak.text


# --- over-optimisation fits (notebooks 04 and 06) -------------------------------------------------------------------


def curve_points(form, a, b, d_max, proxy=(1.0, 0.0)):
    d = np.linspace(0.0, d_max, 6)
    shape = (lambda d: d * (a - b * d)) if form == "bon" else (lambda d: d * (a - b * np.log(np.where(d > 0, d, 1))))
    return pd.DataFrame({"d": d, "gold": 0.3 + shape(d), "proxy": d * (proxy[0] - proxy[1] * d)})


@pytest.mark.parametrize(
    "form, a, b, d_max, verdict, peak",
    [
        ("bon", 0.5, 0.2, 2.0, "peak inside", 1.25),  # d* = a / 2b
        ("bon", 0.5, 0.2, 1.0, "peak beyond", 1.25),
        ("bon", -0.2, 0.1, 2.0, "falls from start", 0.0),
        ("bon", 0.5, -0.1, 2.0, "no bend", None),
        ("rl", 0.5, 0.5, 3.0, "peak inside", 1.0),  # d* = exp(a/b - 1)
        ("rl", 1.0, 0.5, 2.0, "peak beyond", math.e),
        ("rl", 0.5, -0.2, 2.0, "no bend", None),
    ],
)
def test_overoptimization_peak_every_verdict(form, a, b, d_max, verdict, peak):
    points = curve_points(form, a, b, d_max)
    found = conclusions.overoptimization_peak(overoptimization_fits(points, form), points, form, label=form)
    assert found.verdict == verdict
    assert found.evidence["a"] == pytest.approx(a) and found.evidence["b"] == pytest.approx(b)
    assert found.evidence["d_peak"] == (None if peak is None else pytest.approx(peak))
    assert f"gold fit a = {a:.3f}, b = {b:.3f}" in found.text and "5 points" in found.text
    assert "not a clock" not in found.text


def test_overoptimization_peak_says_when_kl_did_not_grow_over_the_steps():
    points = curve_points("rl", 0.5, 0.5, 3.0).assign(
        first_step=[None, 1, 3, 5, 7, 9], last_step=[None, 2, 4, 6, 8, 10]
    )
    monotone = conclusions.overoptimization_peak(overoptimization_fits(points, "rl"), points, "rl", label="PPO")
    assert "not a clock" not in monotone.text
    shuffled = points.copy()
    shuffled.loc[1:, ["d", "gold", "proxy"]] = shuffled.loc[1:, ["d", "gold", "proxy"]].iloc[::-1].to_numpy()
    found = conclusions.overoptimization_peak(overoptimization_fits(shuffled, "rl"), shuffled, "rl", label="PPO")
    assert found.verdict == "peak inside" and "d is not a clock for this run" in found.text


# --- the frontier across methods (notebook 06) ----------------------------------------------------------------------


def evaluation(**policies):
    return {"sft": SFT, **policies}


def test_best_points_and_a_frontier_whose_top_method_is_separated():
    rows = evaluation(
        **{
            "ppo/beta=0.05": row(0.60, 0.55, 0.65, 6.0),
            "ppo/beta=0.3": row(0.45, 0.40, 0.50, 2.0),
            "dpo/sigmoid": row(0.40, 0.35, 0.45, 1.0),
        }
    )
    points = frontier_points(rows, reference="sft")
    best = conclusions.best_points(points, SFT)
    assert [c.verdict for c in best] == ["dpo", "ppo"]  # ascending gold, as the points are sorted
    assert best[1].text == (
        "**PPO**: best gold of its 2 point(s) 0.600 [0.550, 0.650] (ppo/beta=0.05, KL 6.0 nats) vs SFT 0.300 "
        "[0.250, 0.350]."
    )
    frontier = conclusions.frontier_comparison(points, SFT)
    assert (
        frontier.verdict == "separated"
        and "PPO reached the highest gold reward and its interval lies above DPO's" in frontier.text
    )
    assert frontier.evidence["per_nat"] == {"dpo": pytest.approx(0.1), "ppo": pytest.approx(0.05)}
    assert "DPO 0.100, PPO 0.050 gold gained per nat" in frontier.text


def test_frontier_not_separated_and_one_method():
    rows = evaluation(**{"ppo/a": row(0.50, 0.40, 0.60, 3.0), "rloo/a": row(0.48, 0.38, 0.58, 2.0)})
    frontier = conclusions.frontier_comparison(frontier_points(rows, reference="sft"), SFT)
    assert frontier.verdict == "not separated" and "overlaps RLOO's (0.500 vs 0.480)" in frontier.text
    alone = frontier_points(evaluation(**{"ppo/a": row(0.5, 0.4, 0.6, 3.0)}), reference="sft")
    assert conclusions.frontier_comparison(alone, SFT).verdict == "one method"
    assert conclusions.matched_kl(alone).verdict == "one method"
    assert conclusions.best_points(alone, {**SFT, "gold_reward_ci": None})[0].text.endswith("vs SFT 0.300.")


def test_matched_kl_compares_within_the_largest_kl_every_method_reached():
    rows = evaluation(
        **{
            "ppo/a": row(0.70, 0.65, 0.75, 8.0),
            "ppo/b": row(0.40, 0.35, 0.45, 1.5),
            "dpo/a": row(0.45, 0.40, 0.50, 2.0),
            "rloo/a": row(0.50, 0.45, 0.55, 3.0),
        }
    )
    found = conclusions.matched_kl(frontier_points(rows, reference="sft"))
    assert found.verdict == "dpo" and found.evidence == {"kl_budget": 2.0, "missing": ["rloo"]}
    assert found.text == (
        "**At matched KL** (≤ 2.0 nats, the largest KL every method reached): DPO 0.450 [0.400, 0.500] at 2.0, "
        "PPO 0.400 [0.350, 0.450] at 1.5; RLOO has no point that close to SFT."
    )
    rows["rloo/b"] = row(0.30, 0.25, 0.35, 0.5)
    everyone = conclusions.matched_kl(frontier_points(rows, reference="sft"))
    assert everyone.evidence["missing"] == [] and everyone.text.endswith("RLOO 0.300 [0.250, 0.350] at 0.5.")


def test_head_to_head_keeps_each_pair_once_in_order_and_leaves_out_the_reference():
    rng = np.random.default_rng(0)
    n = 60
    base = rng.normal(0, 1, n)
    samples = pd.concat(
        [
            pd.DataFrame({"policy": name, "prompt_index": range(n), "candidate": 0, "gold": base + shift})
            for name, shift in (("sft", 0.0), ("ppo", 2.0), ("dpo", 0.0), ("rloo", -2.0))
        ]
    )
    samples["gold"] += rng.normal(0, 0.05, len(samples))
    order = ["sft", "ppo", "dpo", "rloo"]
    found = conclusions.head_to_head(win_rate_table(samples, policies=order, n_bootstrap=200), order)
    pairs = [(c.evidence["n"], c.text.split("**")[1]) for c in found]
    assert pairs == [(60, "ppo vs dpo"), (60, "ppo vs rloo"), (60, "dpo vs rloo")]
    assert [c.verdict for c in found] == ["wins", "wins", "wins"]
    assert found[0].text.endswith("over 60 prompts: ppo wins.")
    backwards = conclusions.head_to_head(win_rate_table(samples, policies=order, n_bootstrap=200), order[::-1])
    assert [c.verdict for c in backwards] == ["loses", "loses", "loses"]
    assert [c.text.split("**")[1] for c in backwards] == ["dpo vs ppo", "rloo vs ppo", "rloo vs dpo"]
    assert backwards[0].text.endswith(": ppo wins.")
    even = samples[samples.policy.isin(["sft", "dpo"])].assign(policy=lambda s: s.policy.replace("sft", "twin"))
    tie = conclusions.head_to_head(win_rate_table(even, n_bootstrap=200), ["twin", "dpo"])
    assert [c.verdict for c in tie] == ["no significant difference"]
    assert tie[0].text.endswith("no significant difference.")


# --- DPO: the implicit reward and the losses (notebook 05) ----------------------------------------------------------


@pytest.mark.parametrize("vs_gold, verdict", [(0.72, "usable"), (0.65, "usable"), (0.6, "weak"), (0.55, "chance")])
def test_implicit_reward_verdicts(vs_gold, verdict):
    found = conclusions.implicit_reward(vs_gold, 0.7, labels_vs_gold=0.9, n_pairs=200, steps=40)
    assert found.verdict == verdict
    assert found.text.startswith(
        f"**Implicit reward.** After 40 steps of sigmoid DPO, $\\beta \\log \\pi/\\pi_\\text{{ref}}$ ranks 70.0% of "
        f"200 held-out pairs as the annotator did and {vs_gold:.1%} as the gold judge does (the labels themselves "
        "agree with gold on 90.0%)"
    )


def test_best_variant_separated_not_separated_and_one():
    rows = {
        "dpo-sigmoid": row(0.60, 0.55, 0.65, 3.0),
        "dpo-ipo": row(0.40, 0.35, 0.45, 1.0),
        "dpo-hinge": row(0.50, 0.45, 0.52, 2.0),
    }
    names = list(rows)
    found = conclusions.best_variant(rows, SFT, names, what="loss")
    assert found.verdict == "separated" and found.evidence["best"] == "dpo-sigmoid"
    assert found.text.startswith("**Which loss?** dpo-sigmoid has the highest gold reward; its interval is above every")
    assert "It sits at 3.0 nats of KL, the others at 1.0-2.0: gold per nat is dpo-sigmoid 0.100, dpo-ipo 0.100" in (
        found.text
    )
    rows["dpo-hinge"] = row(0.58, 0.50, 0.66, 2.0)
    found = conclusions.best_variant(rows, SFT, names)
    assert found.verdict == "not separated" and found.evidence["overlapping"] == ["dpo-hinge"]
    assert "overlaps those of dpo-hinge" in found.text
    assert conclusions.best_variant(rows, SFT, ["dpo-ipo"]).verdict == "one variant"


def test_longer_answers():
    rows = {"sft": SFT, "a": row(0.5, 0.4, 0.6, 1.0, length=25.0), "b": row(0.5, 0.4, 0.6, 1.0, length=24.0)}
    found = conclusions.longer_answers(rows, SFT)
    assert found.verdict == "longer" and found.evidence == {"longer": ["a"]}
    assert found.text.startswith("**Length.** a answer at least 20% longer than sft (20 tokens, EOS rate 0.90)")
    similar = conclusions.longer_answers({"sft": SFT, "b": rows["b"]}, {**SFT, "eos_rate": None})
    assert similar.verdict == "similar" and "(20 tokens)" in similar.text


def test_conclusions_render_as_a_markdown_list():
    found = [conclusions.proxy_agreement(0.8, 10), "a plain sentence"]
    assert conclusions.markdown(found) == f"- {found[0].text}\n- a plain sentence"
    assert found[0]._repr_markdown_() == found[0].text
