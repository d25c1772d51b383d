"""Conclusions stated from numbers: what the report, the pipeline's table and the notebooks say a run showed.

Each function takes measured rows (the policy rows of `rlhfkit.results`, or a run's samples) and returns a
`Conclusion`: a short machine-readable `verdict`, the sentence a reader sees (`text`, Markdown), and the numbers
it rests on (`evidence`). The rules live here, with tests, so that a notebook, the report and the command line
cannot say different things about the same numbers, and no notebook builds a verdict from f-strings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import pandas as pd

__all__ = [
    "Conclusion",
    "versus_baseline",
    "kl_penalty_effect",
    "reward_hacking",
    "unmeasured",
    "markdown",
    "reward_model_accuracy",
    "length_effect",
    "method_comparison",
    "sft_loss",
    "names_subject",
    "sft_answers",
    "sft_gold_change",
    "temperature_effect",
    "label_agreement",
    "position_bias_found",
    "llm_judge_quality",
    "loss_starts_at_ln2",
    "hard_pairs",
    "reward_gold_correlation",
    "annotator_noise_effect",
    "proxy_agreement",
    "flawed_proxy_check",
    "reward_hacking_course",
    "overoptimization_peak",
    "best_points",
    "frontier_comparison",
    "matched_kl",
    "head_to_head",
    "implicit_reward",
    "best_variant",
    "longer_answers",
]


@dataclass(frozen=True)
class Conclusion:
    """One conclusion: `verdict` (a short code such as "beats", "not shown"), `text` (a Markdown sentence with the
    numbers), `evidence` (the numbers by name)."""

    verdict: str
    text: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def _repr_markdown_(self) -> str:
        return self.text


def markdown(conclusions: Sequence[Conclusion | str]) -> str:
    """Conclusions (or plain sentences) as a Markdown bullet list."""
    return "\n".join(f"- {c.text if isinstance(c, Conclusion) else c}" for c in conclusions)


def _ci(row: Mapping, key: str) -> tuple[float | None, float | None]:
    value = row.get(key)
    return (None, None) if not value else (value[0], value[1])


def versus_baseline(
    row: Mapping, baseline_row: Mapping | None, *, name: str = "policy", baseline: str = "sft"
) -> Conclusion:
    """Whether a policy beats the baseline (the SFT model) on gold reward.

    "beats": the lower end of its gold-reward interval is above the baseline's mean, and its gold-judged win rate
    against the baseline has an interval above 0.5 (when it was measured). "above, not significant": its mean is
    higher but that test fails. "does not beat": its mean is not higher. "unmeasured": no gold judge (or no
    baseline row), so nothing can be said about gold reward."""
    if baseline_row is None or row.get("gold_reward_mean") is None or baseline_row.get("gold_reward_mean") is None:
        return Conclusion(
            "unmeasured",
            f"**{name}**: no gold reward measured against {baseline} (the task has no gold judge), so whether it "
            f"beats {baseline} cannot be said from these numbers.",
        )
    gold, base = row["gold_reward_mean"], baseline_row["gold_reward_mean"]
    lo, hi = _ci(row, "gold_reward_ci")
    win = row.get("win_rate_vs_ref")
    win_lo, win_hi = _ci(row, "win_rate_ci")
    evidence = {
        "gold": gold,
        "gold_ci": [lo, hi],
        "baseline_gold": base,
        "win_rate": win,
        "win_rate_ci": [win_lo, win_hi],
    }
    numbers = f"gold {gold:.3f} [{lo:.3f}, {hi:.3f}] vs {baseline} {base:.3f}"
    if win is not None and win_lo is not None:
        numbers += f", gold win rate against {baseline} {win:.2f} [{win_lo:.2f}, {win_hi:.2f}]"
    if lo > base and (win_lo is None or win_lo > 0.5):
        verdict, says = "beats", f"beats {baseline}: its gold interval is above {baseline}'s mean"
        if win_lo is not None:
            says += " and its win rate's interval is above 0.5"
    elif gold > base:
        verdict, says = "above, not significant", f"is above {baseline} on average, not significantly"
    else:
        verdict, says = "does not beat", f"does not beat {baseline} on gold reward"
    return Conclusion(verdict, f"**{name}** {says} ({numbers}).", evidence)


def kl_penalty_effect(
    low: Mapping, high: Mapping, beta_low: float, beta_high: float, baseline_row: Mapping
) -> list[Conclusion]:
    """What a larger KL coefficient did: two runs that differ only in beta (`low` trained with `beta_low`, `high`
    with `beta_high`), each a policy row, and the SFT row. Returns conclusions on KL, proxy reward, gold reward
    (whether the intervals separate) and gold gained per nat of KL."""
    out = []
    kl_lo, kl_hi = low["kl_to_ref"], high["kl_to_ref"]
    if kl_hi < kl_lo:
        closer = f": the {beta_high / beta_low:.3g}x larger penalty kept it {kl_lo / max(kl_hi, 1e-9):.1f}x closer."
        verdict = "closer"
    else:
        closer, verdict = ": the larger penalty did not keep it closer in this run.", "not closer"
    out.append(
        Conclusion(
            verdict,
            f"**KL.** With β = {beta_low:g} the policy ended {kl_lo:.2f} nats from SFT, with β = {beta_high:g} "
            f"{kl_hi:.2f} nats{closer}",
            {"kl_low": kl_lo, "kl_high": kl_hi},
        )
    )
    if low.get("proxy_reward_mean") is not None and high.get("proxy_reward_mean") is not None:
        base_proxy = baseline_row.get("proxy_reward_mean")
        out.append(
            Conclusion(
                "proxy",
                f"**Proxy reward** (the reward model, on held-out prompts): {low['proxy_reward_mean']:+.3f} vs "
                f"{high['proxy_reward_mean']:+.3f} (SFT {math.nan if base_proxy is None else base_proxy:+.3f}).",
            )
        )
    if low.get("gold_reward_mean") is None or high.get("gold_reward_mean") is None:
        out.append(unmeasured(["gold reward per β"]))
        return out
    (a_lo, a_hi), (b_lo, b_hi) = _ci(low, "gold_reward_ci"), _ci(high, "gold_reward_ci")
    a, b, base = low["gold_reward_mean"], high["gold_reward_mean"], baseline_row["gold_reward_mean"]
    overlap = not (a_lo > b_hi or b_lo > a_hi)
    if overlap:
        says = "The intervals overlap: on this budget the two βs are not distinguishable on gold reward."
    else:
        says = f"The intervals do not overlap: β = {beta_low if a > b else beta_high:g} reached more gold reward."
    out.append(
        Conclusion(
            "indistinguishable" if overlap else "separated",
            f"**Gold reward:** {a:.3f} [{a_lo:.3f}, {a_hi:.3f}] vs {b:.3f} [{b_lo:.3f}, {b_hi:.3f}] (SFT {base:.3f}). "
            + says,
        )
    )
    per_nat_low, per_nat_high = (a - base) / max(kl_lo, 1e-9), (b - base) / max(kl_hi, 1e-9)
    out.append(
        Conclusion(
            "exchange rate",
            f"**Gold per nat:** {per_nat_low:.3f} vs {per_nat_high:.3f} gold gained per nat of KL: the penalty "
            "trades reward for staying close, and the exchange rate is what notebook 06 compares across methods.",
            {"gold_per_nat_low": per_nat_low, "gold_per_nat_high": per_nat_high},
        )
    )
    return out


def _gold_in_steps(samples: pd.DataFrame, row, gold: str) -> tuple[float, float]:
    """Mean and standard error of the `gold` column over the samples of one bin of steps (`row.first_step` to
    `row.last_step`); the standard error is 0 for a bin of one sample."""
    part = samples.loc[samples["step"].between(row.first_step, row.last_step), gold]
    return float(part.mean()), float(part.std(ddof=1) / math.sqrt(len(part))) if len(part) > 1 else 0.0


def reward_hacking(
    samples: pd.DataFrame,
    bins: pd.DataFrame,
    *,
    gold: str = "gold",
    proxy: str = "proxy",
    baseline_gold: float | None = None,
) -> Conclusion:
    """Whether optimising a proxy hurt the gold reward: the proxy rose from the first bin of steps to the last
    while gold fell from its peak bin to the last bin by more than twice the standard error of that difference.

    `samples`: one row per training sample, with `step` and the `gold` column; `bins`: consecutive-step bins with
    `first_step`, `last_step`, `proxy` and `gold` means (`rlhfkit.compare.rl_overoptimization_points`, the
    baseline row with no `first_step` is ignored). `baseline_gold`: the starting policy's gold reward, which the
    verdict says gold fell below when it did. Verdicts: "shown", "not shown" (the proxy rose but gold did not
    fall clearly), "proxy did not rise", "no bins"."""
    bins = bins[bins["first_step"].notna()].reset_index(drop=True)
    if bins.empty:
        return Conclusion("no bins", "**Verdict: not shown.** No bins of training steps to compare.")
    peak = int(bins[gold].idxmax())
    (g_peak, se_peak), (g_last, se_last) = (_gold_in_steps(samples, bins.iloc[i], gold) for i in (peak, -1))
    drop, se_drop = g_peak - g_last, math.sqrt(se_peak**2 + se_last**2)
    proxy_rose = bool(bins.iloc[-1][proxy] > bins.iloc[0][proxy])
    gold_fell = peak < len(bins) - 1 and drop > 2 * se_drop
    evidence = {
        "proxy_first": float(bins.iloc[0][proxy]),
        "proxy_last": float(bins.iloc[-1][proxy]),
        "gold_peak": g_peak,
        "gold_peak_se": se_peak,
        "gold_last": g_last,
        "gold_last_se": se_last,
        "gold_drop": drop,
        "gold_drop_se": se_drop,
        "peak_steps": [int(bins.first_step[peak]), int(bins.last_step[peak])],
    }
    if proxy_rose and gold_fell:
        return Conclusion(
            "shown",
            f"**Verdict: reward hacking shown.** The proxy kept rising while gold fell {drop:.3f} from its peak "
            f"(more than twice the standard error of the difference, {se_drop:.3f})"
            + (
                f", to below the starting policy's {baseline_gold:.3f}."
                if baseline_gold is not None and g_last < baseline_gold
                else "."
            ),
            evidence,
        )
    if proxy_rose:
        return Conclusion(
            "not shown",
            "**Verdict: not shown in this run.** "
            f"The proxy rose, but gold's fall from its peak ({drop:+.3f}) is within "
            f"twice its standard error ({se_drop:.3f}), or gold peaked in the last bin.",
            evidence,
        )
    return Conclusion(
        "proxy did not rise",
        "**Verdict: not shown in this run.** The proxy itself did not rise: the optimiser did not move it on this "
        "budget.",
        evidence,
    )


def unmeasured(numbers: Sequence[str], reason: str = "the task has no gold judge") -> Conclusion:
    """A sentence naming the numbers a run could not give, and why."""
    return Conclusion("unmeasured", f"Not measured ({reason}): {', '.join(numbers)}.", {"numbers": list(numbers)})


# --- conclusions of notebooks 00-03 -------------------------------------------------------------------------------

_PROXY_TIERS = (
    (0.85, "good proxy", "A good proxy on these pairs."),
    (0.7, "usable proxy", "A usable but noisy proxy: PPO optimises its mistakes along with its signal."),
    (0.6, "weak proxy", "A weak proxy: much of what PPO optimises is the reward model's error."),
    (-math.inf, "near chance", "Little better than chance: do not optimise a policy against it."),
)


def _wilson(successes: float, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half / (1 + z * z / n), centre + half / (1 + z * z / n))


def reward_model_accuracy(accuracy: float | None, n_pairs: int, *, label_agreement: float | None = None) -> Conclusion:
    """How good a proxy a reward model is: `accuracy`, the fraction of `n_pairs` held-out pairs (labelled by the gold
    judge, without noise) it orders as the gold judge does, against chance (0.5, with a Wilson 95% interval) and,
    given `label_agreement` (how often the labels it learned from agreed with gold), against its own labels.

    Verdicts by accuracy: "good proxy" (0.85 or more), "usable proxy" (0.7), "weak proxy" (0.6), "near chance"
    (below); "unmeasured" without check pairs."""
    if accuracy is None or not n_pairs:
        return unmeasured(["the reward model's accuracy against gold"], "no held-out pairs labelled by a gold judge")
    verdict, says = next((v, s) for t, v, s in _PROXY_TIERS if accuracy >= t)
    lo, hi = _wilson(accuracy * n_pairs, n_pairs)
    chance = "above chance" if lo > 0.5 else "not distinguishable from chance on these pairs"
    text = (
        f"**Reward model.** It ranks {accuracy:.1%} of {n_pairs} held-out pairs the way the gold judge does "
        f"(95% interval [{lo:.1%}, {hi:.1%}]: {chance}"
    )
    if label_agreement is None:
        text += "). "
    elif accuracy > label_agreement:
        text += (
            f"; its labels agreed with gold on {label_agreement:.1%}). It ranks better than its own labels: "
            "averaging over many noisy pairs cancels part of the noise. "
        )
    else:
        text += (
            f"; its labels agreed with gold on {label_agreement:.1%}). It has not learned the judge as well as its "
            "labels describe it; more pairs or steps may help. "
        )
    evidence = {"accuracy": accuracy, "ci": [lo, hi], "n_pairs": n_pairs, "label_agreement": label_agreement}
    return Conclusion(verdict, text + says, evidence)


def length_effect(
    row: Mapping, baseline_row: Mapping, *, name: str = "policy", baseline: str = "sft", threshold: float = 0.2
) -> Conclusion:
    """Whether a policy's answers are much longer or shorter than the baseline's (policy rows of `rlhfkit.results`):
    "longer" / "shorter" when the mean length differs by more than `threshold` (a fraction), else "similar". A
    longer answer can hold more of what the gold judge rewards, so a gain may be partly length."""
    change = row["mean_length"] / baseline_row["mean_length"] - 1
    evidence = {
        "length_change": change,
        "eos_rate": row.get("eos_rate"),
        "baseline_eos_rate": baseline_row.get("eos_rate"),
    }
    if change > threshold:
        return Conclusion(
            "longer",
            f"**{name}**'s answers are {change:.0%} longer than {baseline}'s (EOS rate {row['eos_rate']:.2f} vs "
            f"{baseline_row['eos_rate']:.2f}): a longer answer can hold more of what the gold judge rewards, so part "
            "of any gain may be length.",
            evidence,
        )
    if change < -threshold:
        return Conclusion(
            "shorter",
            f"**{name}**'s answers are {-change:.0%} shorter than {baseline}'s: its gold reward is not bought with "
            "length.",
            evidence,
        )
    return Conclusion("similar", f"**{name}**'s answers are about as long as {baseline}'s ({change:+.0%}).", evidence)


def method_comparison(rows: Mapping[str, Mapping], methods: Sequence[str]) -> Conclusion | None:
    """The two methods (of `methods` present in `rows`, policy rows) with the highest gold reward, compared:
    "separated" when their gold intervals do not overlap, else "indistinguishable"; and whether the better one
    also moved less far from the reference (KL). None with fewer than two methods."""
    present = [m for m in methods if m in rows]
    if len(present) < 2:
        return None
    if any(rows[m].get("gold_reward_mean") is None for m in present):
        return unmeasured([f"gold reward of {', '.join(present)}"])
    a, b = sorted(present, key=lambda m: rows[m]["gold_reward_mean"], reverse=True)[:2]
    ra, rb = rows[a], rows[b]
    overlap = rb["gold_reward_ci"][1] >= ra["gold_reward_ci"][0]
    text = (
        f"**{a.upper()} vs {b.upper()}.** {a.upper()} has the higher gold reward ({ra['gold_reward_mean']:.3f} vs "
        f"{rb['gold_reward_mean']:.3f}) "
        + (
            "but the intervals overlap: on this budget the two are not distinguishable on gold reward. "
            if overlap
            else "and the intervals do not overlap. "
        )
        + f"{a.upper()} moved {ra['kl_to_ref']:.1f} nats from the reference, {b.upper()} {rb['kl_to_ref']:.1f}"
        + (
            f": {a.upper()} got at least as much reward for less drift."
            if ra["kl_to_ref"] <= rb["kl_to_ref"]
            else ": the two sit at different KL, so the fair comparison is at equal KL (notebook 06)."
        )
    )
    evidence = {"best": a, "second": b, "kl_best": ra["kl_to_ref"], "kl_second": rb["kl_to_ref"]}
    return Conclusion("indistinguishable" if overlap else "separated", text, evidence)


def sft_loss(summary: Mapping, heldout_before: float, heldout_after: float, n_heldout: int) -> Conclusion:
    """What SFT did to the loss: the training loss from the run's `summary` (`first_train_loss`, `train_loss`,
    `steps`) and the per-token loss on `n_heldout` held-out demonstrations before and after. "generalised" when the
    held-out loss fell, "did not generalise" when it did not, "unmeasured" without held-out demonstrations."""
    text = (
        f"**Loss.** The training loss went from {summary['first_train_loss']:.3f} at the first step to "
        f"{summary['train_loss']:.3f} at step {summary['steps']}"
    )
    evidence = {"heldout_before": heldout_before, "heldout_after": heldout_after, "n_heldout": n_heldout}
    if not n_heldout or math.isnan(heldout_before) or math.isnan(heldout_after):
        return Conclusion("unmeasured", text + "; no demonstrations were held out to test it on unseen text.", evidence)
    text += f"; on {n_heldout} held-out demonstrations from {heldout_before:.3f} to {heldout_after:.3f} nats per token"
    if heldout_after < heldout_before:
        return Conclusion(
            "generalised",
            text + " (the model learned the demonstrations' language, not just the batches it saw).",
            evidence,
        )
    return Conclusion(
        "did not generalise", text + ": no improvement on unseen text, so this run did not generalise.", evidence
    )


_NOT_NAMES = ("The", "A", "An", "I")


def names_subject(prompt: str, response: str) -> bool | None:
    """A rough check that an answer is about what was asked: it repeats at least half of the capitalised names in
    the prompt (words other than the first of a sentence, and not "The", "A", "An", "I"). None when the prompt
    has no such names."""
    import re

    sentences = re.split(r"(?<=[.?!])\s+", prompt)
    names = {w for s in sentences for w in re.findall(r"[A-Z][\w']+", s)[1:] if w not in _NOT_NAMES}
    return None if not names else sum(w in response for w in names) >= len(names) / 2


def _named_rate(frame: pd.DataFrame) -> tuple[float, int]:
    known = [v for v in map(names_subject, frame.prompt, frame.response) if v is not None]
    return (sum(known) / len(known) if known else math.nan), len(known)


def sft_answers(before: pd.DataFrame, after: pd.DataFrame) -> list[Conclusion]:
    """What SFT changed in the answers to the same held-out prompts (`before` and `after`: one row per prompt, with
    `prompt`, `response`, `finish_reason`, `n_tokens`): whether they answer what was asked ("names the subject"
    when at least half the answers after SFT name the prompt's subject, `names_subject`; "does not name the
    subject"; "no names" when no prompt has names) and whether they stop by themselves ("stops more" when the
    share ending with EOS rose, else "does not stop more")."""
    (rate_before, n_before), (rate_after, n_after) = _named_rate(before), _named_rate(after)
    text = (
        f"**Answering what was asked.** {before.response.nunique()} distinct answers to {len(before)} different "
        f"prompts before SFT, {after.response.nunique()} after (an answer that ignores its prompt repeats itself)."
    )
    if not n_after:
        topic = Conclusion("no names", text + " No prompt names a subject to check the answers against.")
    else:
        text += (
            f" Answers that name the prompt's subject: {rate_before:.0%} of {n_before} before, {rate_after:.0%} of "
            f"{n_after} after"
        )
        if rate_after >= 0.5:
            topic = Conclusion(
                "names the subject", text + ".", {"named_before": rate_before, "named_after": rate_after}
            )
        else:
            topic = Conclusion(
                "does not name the subject",
                text + ". The held-out items' names never appeared in training; a model this small does not learn to "
                "copy them, so read the table for whether the answers at least talk about the right kind of thing.",
                {"named_before": rate_before, "named_after": rate_after},
            )
    eos_before, eos_after = (float((f.finish_reason == "eos").mean()) for f in (before, after))
    stop_text = (
        f"**Stopping.** {eos_before:.0%} of the answers before SFT ended by themselves, {eos_after:.0%} after; mean "
        f"length {before.n_tokens.mean():.0f} → {after.n_tokens.mean():.0f} tokens."
    )
    evidence = {"eos_before": eos_before, "eos_after": eos_after}
    return [topic, Conclusion("stops more" if eos_after > eos_before else "does not stop more", stop_text, evidence)]


def sft_gold_change(before: Sequence[float], after: Sequence[float], demonstrations_mean: float) -> Conclusion:
    """The gold score of the same prompts' answers before and after SFT, paired: the mean difference with a normal
    95% interval. "within noise" when the interval holds 0, else "higher" / "lower"; `evidence["versus_demos"]`
    says whether the answers after SFT land "close" to (within 0.1), "above" or "below" the demonstrations' mean,
    which is where imitation alone should land."""
    before, after = pd.Series(list(before), dtype=float), pd.Series(list(after), dtype=float)
    paired = after - before
    diff = float(paired.mean())
    half = 1.96 * float(paired.std()) / math.sqrt(len(paired)) if len(paired) > 1 else math.nan
    gap = float(after.mean()) - demonstrations_mean
    where = "close" if abs(gap) < 0.1 else "above" if gap > 0 else "below"
    verdict = "within noise" if abs(diff) <= half else "higher" if diff > 0 else "lower"
    text = (
        f"**Gold score.** The mean gold score of the {len(after)} held-out answers went from {before.mean():.3f} to "
        f"{after.mean():.3f} ({diff:+.3f} ± {half:.3f}, a normal 95% interval of the paired difference; better on "
        f"{int((paired > 0).sum())}, worse on {int((paired < 0).sum())} prompts). "
        + ("The change is within noise. " if verdict == "within noise" else "")
        + f"The demonstrations average {demonstrations_mean:.3f}, and the SFT answers land "
        + {"close": "close to that", "above": "above it", "below": "below it"}[where]
        + ": SFT imitates the demonstrations, sentiment mix included; it does not aim at the gold judge."
    )
    return Conclusion(verdict, text, {"difference": diff, "half_width": half, "versus_demos": where})


def temperature_effect(sweep: pd.DataFrame, temperature: float, k: int) -> list[Conclusion]:
    """What the temperature sweep of notebook 02 shows (`sweep`: rows of `rlhfkit.compare.decoding_diversity` with
    `decoding` "greedy" or "sampled" and `temperature`), from its coldest to its hottest sampled row: diversity
    ("more diverse" when distinct-2 rose), its price ("less typical" when the log-probability per token fell), the
    quality spread within a prompt ("wider" / "not wider"), and what sampling the candidates at `temperature`
    means ("the policy's own distribution" at T = 1, else "another distribution")."""
    sampled = sweep[sweep.decoding == "sampled"].sort_values("temperature")
    greedy = sweep[sweep.decoding == "greedy"]
    lo, hi = sampled.iloc[0], sampled.iloc[-1]
    unique = "unique answers per prompt"
    text = (
        f"From T = {lo.temperature:g} to T = {hi.temperature:g}, distinct-2 went from {lo.distinct_2:.3f} to "
        f"{hi.distinct_2:.3f} and unique answers per prompt from {lo[unique]:.2f} to {hi[unique]:.2f} (of {k})"
    )
    if not greedy.empty:
        text += f"; greedy decoding has one answer per prompt and distinct-2 {greedy.iloc[0].distinct_2:.3f}"
    out = [Conclusion("more diverse" if hi.distinct_2 > lo.distinct_2 else "not more diverse", text + ".")]
    cheaper = hi["logprob/token"] < lo["logprob/token"]
    out.append(
        Conclusion(
            "less typical" if cheaper else "not less typical",
            f"The price: the answers' log-probability per token under the model went from {lo['logprob/token']:.2f} "
            f"to {hi['logprob/token']:.2f} nats"
            + (" (hotter samples are less typical of the model)." if cheaper else "."),
        )
    )
    spread = "gold spread within prompt"
    wider = hi[spread] > lo[spread]
    out.append(
        Conclusion(
            "wider" if wider else "not wider",
            f"Gold spread within a prompt went from {lo[spread]:.3f} to {hi[spread]:.3f}: "
            + (
                "hotter sampling gives pairs that differ more in quality."
                if wider
                else "on this model temperature did not widen the quality spread."
            ),
        )
    )
    at_t = sampled[sampled.temperature == temperature]
    if not at_t.empty:
        own = temperature == 1.0
        out.append(
            Conclusion(
                "the policy's own distribution" if own else "another distribution",
                f"We label candidates sampled at T = {temperature:g} ({at_t.iloc[0][unique]:.2f} unique of {k}): "
                + (
                    "the model's own distribution, the one PPO samples from, so the reward model is trained on the "
                    "answers it will have to judge."
                    if own
                    else "note that PPO samples at T = 1, so the reward model will judge answers from a different "
                    "distribution than it learned on."
                ),
            )
        )
    return out


def label_agreement(name: str, agreement: float, ci: Sequence[float], n: int, flip_rate: float) -> Conclusion:
    """A simulated annotator that flips the gold judge's preference with probability `flip_rate` should agree with
    gold on about 1 - flip_rate of the pairs: "as predicted" when that is inside its agreement's interval `ci`,
    else "off prediction". This agreement is also about the ceiling a reward model that only imitates these labels
    reaches."""
    predicted = 1 - flip_rate
    inside = ci[0] <= predicted <= ci[1]
    text = (
        f"**{name}** agrees with the gold judge on {agreement:.1%} of {n} pairs [{ci[0]:.3f}, {ci[1]:.3f}] (its flip "
        f"rate {flip_rate:g} predicts {predicted:.0%}: "
        + ("inside the interval)." if inside else "outside the interval: more or fewer flips than asked for).")
    )
    return Conclusion(
        "as predicted" if inside else "off prediction", text, {"agreement": agreement, "predicted": predicted}
    )


def position_bias_found(
    name: str, left_rate: float, ci: Sequence[float], *, bias: float | None = None, unbiased: tuple | None = None
) -> Conclusion:
    """Whether an annotator's labels show position bias: "detected" when the interval `ci` of its left-win rate
    excludes 0.5, else "not detected". With `bias` (it picks the left answer with that probability regardless of
    content) the text gives the predicted rate, bias + (1 - bias) / 2; `unbiased` = (name, left_rate) of an
    annotator without bias, for contrast."""
    detected = not ci[0] <= 0.5 <= ci[1]
    text = (
        f"**Position bias** ({name}): it chose the left answer {left_rate:.1%} of the time [{ci[0]:.3f}, {ci[1]:.3f}]"
    )
    if bias is not None:
        text += f" (the formula predicts {bias + (1 - bias) / 2:.1%})"
    text += (
        "; the interval excludes 0.5, so the bias is detectable from its labels alone, without knowing the truth."
        if detected
        else "; the interval still contains 0.5: too few labels to detect it."
    )
    if unbiased is not None:
        text += f" {unbiased[0]}, with no bias, chose left {unbiased[1]:.1%} of the time."
    return Conclusion("detected" if detected else "not detected", text, {"left_rate": left_rate, "ci": list(ci)})


def llm_judge_quality(
    name: str, agreement: float, ci: Sequence[float], n_decided: int, bias: Mapping, *, simulated: tuple | None = None
) -> Conclusion:
    """What an LLM judge's labels are worth: its agreement with the gold judge on the `n_decided` pairs it decided
    (interval `ci`), against chance, and its position bias from `bias` (`judge_position_bias`: how often it picked
    the response shown first, and on how many pairs its two orders disagreed). `simulated` = (name, agreement) of
    a simulated annotator on the same task, for contrast.

    Verdicts: "better than chance" (the interval is above 0.5), "chance level" (it contains 0.5), "worse than
    chance" (below 0.5), "no decisions" (every pair was a tie)."""
    first, disagree = bias.get("first_rate", math.nan), bias.get("disagree_rate", math.nan)
    position = (
        f"It picked the response shown first in {first:.1%} of its questions (0.5 = no position bias), and its two "
        f"orders disagreed on {disagree:.1%} of the pairs: there it preferred a position, not a response."
    )
    if not n_decided:
        return Conclusion(
            "no decisions",
            f"**{name}** decided none of its pairs (every one a tie). {position}",
            {"agreement": None, "n_decided": 0, **bias},
        )
    verdict = "better than chance" if ci[0] > 0.5 else "worse than chance" if ci[1] < 0.5 else "chance level"
    text = (
        f"**{name}** agrees with the gold judge on {agreement:.1%} of the {n_decided} pairs it decided "
        f"[{ci[0]:.3f}, {ci[1]:.3f}]: {verdict}. {position}"
    )
    if simulated is not None:
        text += f" {simulated[0]} agrees on {simulated[1]:.1%}."
    if verdict != "better than chance":
        text += " Its labels would teach a reward model little: a larger judge model is one setting away."
    return Conclusion(verdict, text, {"agreement": agreement, "ci": list(ci), "n_decided": n_decided, **bias})


def loss_starts_at_ln2(first_loss: float, tolerance: float = 0.1) -> Conclusion:
    """A reward model's first logged pairwise loss against ln 2, the loss at zero margin (a fresh score head gives
    both answers of a pair about the same reward): "at ln 2" within `tolerance`, else "away from ln 2"."""
    near = abs(first_loss - math.log(2)) < tolerance
    text = f"**The loss starts at ln 2.** The first logged loss was {first_loss:.3f} (ln 2 = {math.log(2):.3f}): " + (
        "the untrained head gave both answers of a pair about the same reward, as expected."
        if near
        else "further from ln 2 than expected: the new head's initial scores already differ between answers."
    )
    return Conclusion("at ln 2" if near else "away from ln 2", text, {"first_loss": first_loss})


def hard_pairs(by_gap: pd.DataFrame) -> Conclusion | None:
    """Whether pairs the gold judge scores nearly alike are harder for the reward model (`by_gap`: the table of
    `rlhfkit.compare.accuracy_by_gold_gap`, smallest gold difference first): "harder when close" when accuracy on
    the first bin is below the last, else "not harder". None with fewer than two bins."""
    if len(by_gap) < 2:
        return None
    first, last = float(by_gap["RM accuracy"].iloc[0]), float(by_gap["RM accuracy"].iloc[-1])
    text = (
        f"**Hard pairs.** Accuracy is {first:.1%} on the pairs with the smallest gold difference and {last:.1%} on "
        "those with the largest"
    )
    if first < last:
        return Conclusion(
            "harder when close", text + ": close calls are where the reward model errs.", {"first": first, "last": last}
        )
    return Conclusion(
        "not harder", text + ": on these pairs close calls were not harder.", {"first": first, "last": last}
    )


def reward_gold_correlation(check: pd.DataFrame) -> Conclusion:
    """How the reward model's scores rank answers against the gold judge's, over the distinct answers of held-out
    pairs (`check`: `chosen`, `rejected`, their gold scores `score_chosen`, `score_rejected` and reward-model
    scores `rm_chosen`, `rm_rejected`): Spearman's rank correlation. "ranks with gold" when it is positive, else
    "does not rank with gold"."""
    scores = pd.concat(
        [
            pd.DataFrame({"response": check.chosen, "rm": check.rm_chosen, "gold": check.score_chosen}),
            pd.DataFrame({"response": check.rejected, "rm": check.rm_rejected, "gold": check.score_rejected}),
        ]
    ).drop_duplicates("response")
    rho = float(scores.rm.rank().corr(scores.gold.rank()))
    text = (
        f"**Rewards vs gold.** Spearman correlation {rho:.2f} over {len(scores)} answers; mean reward "
        f"{check.rm_chosen.mean():+.2f} for gold-chosen and {check.rm_rejected.mean():+.2f} for gold-rejected answers."
    )
    return Conclusion(
        "ranks with gold" if rho > 0 else "does not rank with gold", text, {"spearman": rho, "answers": len(scores)}
    )


def annotator_noise_effect(sweep: pd.DataFrame, n_check: int) -> Conclusion | None:
    """What annotator noise cost the reward model (`sweep`: one row per flip rate with "flip rate", "label agreement
    with gold" and "RM accuracy vs gold", measured on `n_check` held-out pairs), from the lowest flip rate to the
    highest: "no clear decline" (accuracy fell by less than 2 points), "costs less than labels" (it fell less than
    the labels' own agreement), "costs as much as labels". The text also flags a non-monotone curve and how far
    the accuracy at flip rate 0.5 (no information) is from chance. None with fewer than two points."""
    if len(sweep) < 2:
        return None
    sweep = sweep.sort_values("flip rate")
    acc, agree = sweep["RM accuracy vs gold"].tolist(), sweep["label agreement with gold"].tolist()
    flips = sweep["flip rate"].tolist()
    drop, label_drop = acc[0] - acc[-1], agree[0] - agree[-1]
    se = 100 * math.sqrt(0.25 / n_check)  # points, near 50% (a lower bound: check pairs share prompts)
    if drop < 0.02:
        verdict, says = "no clear decline", "The sweep shows no clear decline. "
    elif drop < label_drop:
        verdict, says = "costs less than labels", "Noise costs the RM accuracy, but less than it costs the labels. "
    else:
        verdict, says = (
            "costs as much as labels",
            "Noise costs the RM as much accuracy as it costs the labels, or more. ",
        )
    text = (
        f"**Noise.** From flip rate {flips[0]:g} to {flips[-1]:g}, accuracy against gold went from {acc[0]:.1%} to "
        f"{acc[-1]:.1%} ({100 * drop:.1f} points lost) while the labels' own agreement with gold fell from "
        f"{agree[0]:.1%} to {agree[-1]:.1%}. " + says
    )
    bumps = [(flips[i], flips[i + 1]) for i in range(len(acc) - 1) if acc[i + 1] > acc[i] + 0.01]
    if bumps:
        a, b = bumps[0]
        text += (
            f"The curve is not monotone (higher at {b:g} than at {a:g}): each point is one training run, and on "
            f"{n_check} check pairs one accuracy has a standard error of at least {se:.1f} points. "
        )
    if 0.5 in flips:
        at_half = acc[flips.index(0.5)]
        z = abs(at_half - 0.5) * 100 / se
        text += (
            f"At flip rate 0.5 the labels carry no information, and the RM's {at_half:.1%} is {z:.1f} of those "
            "standard errors from chance"
            + (
                ": the check pairs share prompts and answers, so the real uncertainty is larger; rerun with another "
                "SEED before reading anything into it."
                if z >= 2
                else "."
            )
        )
    return Conclusion(verdict, text.strip(), {"drop": drop, "label_drop": label_drop, "non_monotone": bool(bumps)})


# --- conclusions of notebooks 04-06 -------------------------------------------------------------------------------


def _interval(lo: float, hi: float, digits: int = 3) -> str:
    return f"[{lo:.{digits}f}, {hi:.{digits}f}]"


def proxy_agreement(agreement: float, n_pairs: int, *, weak_below: float = 0.7) -> Conclusion:
    """How good a proxy the reward model is where the optimisers start: `agreement`, the share of `n_pairs` pairs
    of the SFT model's answers (same prompt, different gold scores) it orders as the gold judge does
    (`rlhfkit.compare.pairwise_agreement`). Verdicts: "weak" (below `weak_below`), "reasonable", "unmeasured" (no
    such pairs)."""
    evidence = {"agreement": agreement, "n_pairs": n_pairs}
    if not n_pairs or math.isnan(agreement):
        return Conclusion(
            "unmeasured",
            "**The proxy.** No pairs of SFT answers with different gold scores to check the reward model on.",
            evidence,
        )
    weak = agreement < weak_below
    return Conclusion(
        "weak" if weak else "reasonable",
        f"**The proxy.** The reward model orders {agreement:.1%} of {n_pairs} pairs of SFT answers as the gold judge "
        "does: "
        + (
            "a weak proxy, which caps what optimising it can gain on gold."
            if weak
            else "a reasonable proxy on the SFT model's answers."
        ),
        evidence,
    )


def flawed_proxy_check(
    flawed: float, reward_model: float, *, visible_margin: float = 0.05, weak_below: float = 0.65
) -> Conclusion:
    """Whether a check before optimising would have caught a proxy's flaw: `flawed` and `reward_model` are the
    shares of pairs of SFT answers the flawed proxy and the reward model order as gold does. Verdicts: "visible"
    (the flawed proxy agrees less by more than `visible_margin`), "hidden". The text adds that the reward model is
    itself weak when it agrees on less than `weak_below`."""
    visible = flawed < reward_model - visible_margin
    text = (
        f"**Before optimising**, the flawed proxy ordered {flawed:.1%} of SFT answer pairs as gold does, the reward "
        f"model {reward_model:.1%}: "
        + (
            "the flaw is visible in that number already, if you look."
            if visible
            else "the flaw barely shows on the SFT model's own answers, so a held-out check would not have caught it."
        )
    )
    if reward_model < weak_below:
        text += " (The reward model itself is a weak proxy on these answers; notebook 03 measures it against gold.)"
    return Conclusion("visible" if visible else "hidden", text, {"flawed": flawed, "reward_model": reward_model})


def reward_hacking_course(
    samples: pd.DataFrame,
    bins: pd.DataFrame,
    *,
    baseline_gold: float,
    gold: str = "gold",
    proxy: str = "proxy",
    baseline: str = "SFT",
) -> list[Conclusion]:
    """What the proxy, the answers and gold did over an RL run on a proxy: proxy in the first and last bin of steps
    (with the KL reached and the answers' length in words at the first and last step), then gold from `baseline`
    (its gold reward `baseline_gold`) through the first bin, the peak bin and the last bin, with standard errors.
    `samples` and `bins` as for `reward_hacking` (`samples` also with `response`). Verdicts: "rising" /
    "not rising" (the proxy), "gold course"."""
    bins = bins[bins["first_step"].notna()].reset_index(drop=True)
    if bins.empty:
        return [Conclusion("no bins", "No bins of training steps to describe.")]
    first, last = bins.iloc[0], bins.iloc[-1]
    words = samples["response"].str.split().str.len()
    words_first = float(words[samples["step"] == samples["step"].min()].mean())
    words_last = float(words[samples["step"] == samples["step"].max()].mean())
    rising = bool(last[proxy] > first[proxy])
    peak = int(bins[gold].idxmax())
    (g_peak, se_peak), (g_last, se_last) = (_gold_in_steps(samples, bins.iloc[i], gold) for i in (peak, -1))
    return [
        Conclusion(
            "rising" if rising else "not rising",
            f"**Proxy:** {first[proxy]:+.3f} in the first bin of steps, {last[proxy]:+.3f} in the last "
            f"({'rising' if rising else 'not rising'}), at KL {last['kl']:.1f} nats; answers went from "
            f"{words_first:.1f} to {words_last:.1f} words.",
            {"proxy_first": float(first[proxy]), "proxy_last": float(last[proxy]), "words": [words_first, words_last]},
        ),
        Conclusion(
            "gold course",
            f"**Gold:** {baseline_gold:.3f} for {baseline}; {first[gold]:.3f} in the first bin, highest {g_peak:.3f} ± "
            f"{se_peak:.3f} (standard error) in steps {int(bins.first_step[peak])}-{int(bins.last_step[peak])}, "
            f"{g_last:.3f} ± {se_last:.3f} in the last bin.",
            {"baseline": baseline_gold, "first": float(first[gold]), "peak": g_peak, "last": g_last},
        ),
    ]


def overoptimization_peak(fits: pd.DataFrame, points: pd.DataFrame, form: str, *, label: str) -> Conclusion:
    """Where the fitted gold curve of Gao et al.'s form peaks, against the range of KL measured.

    `fits`: `rlhfkit.compare.overoptimization_fits(points, form)`; `points`: its points (column d = sqrt(KL), one
    row at d = 0), best-of-n (`form="bon"`, peak at d* = a / 2b) or RL (`form="rl"`, d* = exp(a/b - 1)).
    Verdicts: "no bend" (gold's b <= 0), "falls from start" (best-of-n with a <= 0), "peak inside" (d* within
    the measured d), "peak beyond". For RL points in bins of steps the text adds when KL did not grow from bin to
    bin (then d is not a clock for the run)."""
    rows = fits.set_index("reward")
    a, b = float(rows.loc["gold", "a"]), float(rows.loc["gold", "b"])
    d_max = float(points.d.max())
    text = (
        f"**Over-optimisation, {label}**: proxy fit a = {rows.loc['proxy', 'a']:.3f}, b = {rows.loc['proxy', 'b']:.3f};"
        f" gold fit a = {a:.3f}, b = {b:.3f}. "
    )
    peak = None if b <= 0 else max(a / (2 * b), 0.0) if form == "bon" else math.exp(a / b - 1)
    if peak is None:
        verdict, says = (
            "no bend",
            "The fitted gold curve does not bend down: no over-optimisation visible in this range.",
        )
    elif peak == 0:
        verdict = "falls from start"
        says = "The fitted gold curve falls from the start: selecting by the proxy did not raise gold at all."
    elif peak < d_max:
        verdict = "peak inside"
        says = (
            f"The fitted gold curve peaks at d = {peak:.2f} (KL {peak**2:.1f} nats), inside the measured range "
            f"(up to d = {d_max:.2f}): past it, more proxy reward bought less gold."
        )
    else:
        verdict = "peak beyond"
        says = (
            f"The fitted gold curve would peak at d = {peak:.2f} (KL {peak**2:.1f} nats), beyond the measured "
            f"range (d up to {d_max:.2f}): bending, but no decline observed yet."
        )
    text += says + f" {len(points) - 1} points: a two-parameter fit to so few points is indicative only."
    if "first_step" in points:
        binned = points[points.first_step.notna()]
        if not (binned.d.diff().dropna() >= 0).all():
            text += (
                " KL did not grow monotonically over the steps here (a shorter answer has fewer tokens to sum KL "
                "over), so d is not a clock for this run and the fit describes it loosely."
            )
    return Conclusion(verdict, text, {"a": a, "b": b, "d_peak": peak, "d_max": d_max})


def _best_per_method(points: pd.DataFrame, reference: str) -> pd.DataFrame:
    """The point of highest gold of each method (frontier points without the reference), indexed by method."""
    trained = points[points.policy != reference]
    return trained.sort_values("gold").groupby("method").tail(1).set_index("method")


def best_points(points: pd.DataFrame, baseline_row: Mapping, *, reference: str = "sft") -> list[Conclusion]:
    """Each method's best point on gold reward among its trained policies: `points` from
    `rlhfkit.compare.frontier_points`, `baseline_row` the reference's policy row. Verdict: the method's name."""
    base_lo, base_hi = _ci(baseline_row, "gold_reward_ci")
    out = []
    for method, p in _best_per_method(points, reference).iterrows():
        n = int(((points.method == method) & (points.policy != reference)).sum())
        out.append(
            Conclusion(
                method,
                f"**{method.upper()}**: best gold of its {n} point(s) {p.gold:.3f} {_interval(p.gold_lo, p.gold_hi)} "
                f"({p.policy}, KL {p.kl:.1f} nats) vs {reference.upper()} {baseline_row['gold_reward_mean']:.3f}"
                + (f" {_interval(base_lo, base_hi)}." if base_lo is not None else "."),
                {"policy": p.policy, "gold": p.gold, "kl": p.kl},
            )
        )
    return out


def frontier_comparison(points: pd.DataFrame, baseline_row: Mapping, *, reference: str = "sft") -> Conclusion:
    """Which method reached the highest gold reward (best points, as `best_points`) and whether its interval lies
    above the runner-up's, with gold gained per nat of KL at each best point. Verdicts: "separated",
    "not separated", "one method" (nothing to compare)."""
    best = _best_per_method(points, reference)
    if len(best) < 2:
        return Conclusion(
            "one method", f"**Frontier.** Only {', '.join(best.index) or 'no method'}: nothing to compare."
        )
    ordered = best.sort_values("gold", ascending=False)
    (top_name, top), (second_name, second) = list(ordered.iterrows())[:2]
    separated = bool(top.gold_lo > second.gold_hi)
    base = baseline_row["gold_reward_mean"]
    per_nat = {method: (p.gold - base) / max(p.kl, 1e-9) for method, p in best.iterrows()}
    text = f"**Frontier.** {top_name.upper()} reached the highest gold reward " + (
        f"and its interval lies above {second_name.upper()}'s."
        if separated
        else f"but its interval overlaps {second_name.upper()}'s ({top.gold:.3f} vs {second.gold:.3f}): the sweep "
        "does not separate them."
    )
    text += (
        " (Best points are picked on this evaluation, which flatters every method a little.) Per nat of KL: "
        + ", ".join(f"{m.upper()} {v:.3f}" for m, v in per_nat.items())
        + " gold gained per nat at each best point."
    )
    return Conclusion("separated" if separated else "not separated", text, {"best": top_name, "per_nat": per_nat})


def matched_kl(points: pd.DataFrame, *, reference: str = "sft") -> Conclusion:
    """Methods compared at matched KL: each method's best gold among its points within the largest KL every method
    reached (the smallest of the methods' largest KLs). Verdicts: the best method there, or "one method"."""
    trained = points[points.policy != reference]
    methods = list(dict.fromkeys(trained.method))
    if len(methods) < 2:
        return Conclusion(
            "one method", f"**At matched KL.** Only {', '.join(methods) or 'no method'}: nothing to compare."
        )
    budget = float(trained.groupby("method").kl.max().min())
    matched = trained[trained.kl <= budget].sort_values("gold").groupby("method").tail(1)
    matched = matched.sort_values("gold", ascending=False)
    missing = sorted(set(methods) - set(matched.method))
    text = f"**At matched KL** (≤ {budget:.1f} nats, the largest KL every method reached): " + ", ".join(
        f"{r.method.upper()} {r.gold:.3f} {_interval(r.gold_lo, r.gold_hi)} at {r.kl:.1f}" for r in matched.itertuples()
    )
    text += f"; {', '.join(missing).upper()} has no point that close to {reference.upper()}." if missing else "."
    return Conclusion(str(matched.method.iloc[0]), text, {"kl_budget": budget, "missing": missing})


def head_to_head(wins: pd.DataFrame, order: Sequence[str], *, reference: str = "sft") -> list[Conclusion]:
    """Each pair of policies in `order` (the reference left out), from a `rlhfkit.compare.win_rate_table`: the
    first one's gold win rate against the second with its interval. Verdicts: "wins" (interval above 0.5),
    "loses" (below), "no significant difference"."""
    position = {name: i for i, name in enumerate(order)}
    out = []
    for row in wins.itertuples(index=False):
        pair = (row.policy, row.opponent)
        if reference in pair or not set(pair) <= set(position) or position[row.policy] > position[row.opponent]:
            continue
        verdict = "wins" if row.ci_lo > 0.5 else "loses" if row.ci_hi < 0.5 else "no significant difference"
        says = {"wins": f"{row.policy} wins", "loses": f"{row.opponent} wins"}.get(verdict, verdict)
        out.append(
            Conclusion(
                verdict,
                f"**{row.policy} vs {row.opponent}**: win rate {row.win_rate:.2f} {_interval(row.ci_lo, row.ci_hi)} "
                f"over {row.n} prompts: {says}.",
                {"win_rate": row.win_rate, "ci": [row.ci_lo, row.ci_hi], "n": row.n},
            )
        )
    return out


def implicit_reward(
    accuracy_vs_gold: float,
    accuracy_vs_labels: float,
    *,
    labels_vs_gold: float,
    n_pairs: int,
    steps: int,
    loss_type: str = "sigmoid",
) -> Conclusion:
    """DPO's implicit reward beta log(pi / pi_ref) used as a reward model on `n_pairs` held-out pairs: the share
    it orders as the annotator labelled them and as the gold judge does (beside the labels' own agreement with
    gold). Verdicts: "usable" (at least 0.65 against gold), "weak" (above 0.55), "chance"."""
    verdict = "usable" if accuracy_vs_gold >= 0.65 else "weak" if accuracy_vs_gold > 0.55 else "chance"
    says = {
        "usable": "the policy learned a usable reward model without ever training one.",
        "weak": "better than chance, but a weak reward model.",
        "chance": "no better than chance on held-out pairs at this budget.",
    }[verdict]
    return Conclusion(
        verdict,
        f"**Implicit reward.** After {steps} steps of {loss_type} DPO, $\\beta \\log \\pi/\\pi_\\text{{ref}}$ ranks "
        f"{accuracy_vs_labels:.1%} of {n_pairs} held-out pairs as the annotator did and {accuracy_vs_gold:.1%} as "
        f"the gold judge does (the labels themselves agree with gold on {labels_vs_gold:.1%}): {says}",
        {"vs_gold": accuracy_vs_gold, "vs_labels": accuracy_vs_labels, "labels_vs_gold": labels_vs_gold},
    )


def best_variant(
    rows: Mapping[str, Mapping], baseline_row: Mapping, names: Sequence[str], *, what: str = "variant"
) -> Conclusion:
    """Which of several variants of one method (policy rows `rows[name]` for `names`, e.g. DPO's losses) reached
    the highest gold reward, whether its interval separates it from the others, and what it paid in KL: gold
    gained over the baseline per nat of KL for each; `what` names a variant in the text ("loss"). Verdicts:
    "separated", "not separated", "one variant"."""
    if len(names) < 2:
        return Conclusion("one variant", f"**Which {what}?** Only {', '.join(names) or 'none'}: nothing to compare.")
    best = max(names, key=lambda v: rows[v]["gold_reward_mean"])
    others = [v for v in names if v != best]
    overlapping = [v for v in others if rows[v]["gold_reward_ci"][1] >= rows[best]["gold_reward_ci"][0]]
    base = baseline_row["gold_reward_mean"]
    per_nat = {v: (rows[v]["gold_reward_mean"] - base) / max(rows[v]["kl_to_ref"], 1e-9) for v in names}
    kls = [rows[v]["kl_to_ref"] for v in others]
    text = f"**Which {what}?** {best} has the highest gold reward; " + (
        f"its interval overlaps those of {', '.join(overlapping)}, so on this budget the data do not separate them."
        if overlapping
        else f"its interval is above every other {what}'s."
    )
    text += (
        f" It sits at {rows[best]['kl_to_ref']:.1f} nats of KL, the others at {min(kls):.1f}-{max(kls):.1f}: gold per "
        "nat is "
        + ", ".join(f"{v} {per_nat[v]:.3f}" for v in names)
        + ". A higher reward bought with much more drift is not the better trade (notebook 06 compares methods at "
        "matched KL)."
    )
    return Conclusion(
        "not separated" if overlapping else "separated", text, {"best": best, "overlapping": overlapping, **per_nat}
    )


def longer_answers(
    rows: Mapping[str, Mapping], baseline_row: Mapping, *, factor: float = 1.2, baseline: str = "sft"
) -> Conclusion:
    """Policies whose answers are at least `factor` times as long (mean tokens) as the baseline's: where the gold
    judge rewards more of a good thing, part of their gain may be length. Verdicts: "longer", "similar"."""
    base = baseline_row["mean_length"]
    longer = [name for name, row in rows.items() if name != baseline and row["mean_length"] > factor * base]
    eos = baseline_row.get("eos_rate")
    about = f"{base:.0f} tokens" + (f", EOS rate {eos:.2f}" if eos is not None else "")
    if not longer:
        return Conclusion(
            "similar", f"**Length.** No policy answers {factor - 1:.0%} longer than {baseline} ({about}) or more."
        )
    return Conclusion(
        "longer",
        f"**Length.** {', '.join(longer)} answer at least {factor - 1:.0%} longer than {baseline} ({about}): where "
        "the gold judge rewards more of a good thing, part of the gain may be length alone.",
        {"longer": longer},
    )
