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
        closer = f": the {beta_high / beta_low:.0f}x larger penalty kept it {kl_lo / max(kl_hi, 1e-9):.1f}x closer."
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
        out.append(
            Conclusion(
                "proxy",
                f"**Proxy reward** (the reward model, on held-out prompts): {low['proxy_reward_mean']:+.3f} vs "
                f"{high['proxy_reward_mean']:+.3f} (SFT {baseline_row.get('proxy_reward_mean') or math.nan:+.3f}).",
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


def reward_hacking(
    samples: pd.DataFrame, bins: pd.DataFrame, *, gold: str = "gold", proxy: str = "proxy"
) -> Conclusion:
    """Whether optimising a proxy hurt the gold reward: the proxy rose from the first bin of steps to the last
    while gold fell from its peak bin to the last bin by more than twice the standard error of that difference.

    `samples`: one row per training sample, with `step` and the `gold` column; `bins`: consecutive-step bins with
    `first_step`, `last_step`, `proxy` and `gold` means (`rlhfkit.compare.rl_overoptimization_points`, the
    baseline row with no `first_step` is ignored). Verdicts: "shown", "not shown" (the proxy rose but gold did not
    fall clearly), "proxy did not rise"."""
    bins = bins[bins["first_step"].notna()].reset_index(drop=True)
    if bins.empty:
        return Conclusion("proxy did not rise", "**Verdict: not shown.** No bins of training steps to compare.")

    def mean_and_se(row) -> tuple[float, float]:
        part = samples.loc[samples["step"].between(row.first_step, row.last_step), gold]
        return float(part.mean()), float(part.std(ddof=1) / math.sqrt(max(len(part), 1))) if len(part) > 1 else 0.0

    peak = int(bins[gold].idxmax())
    (g_peak, se_peak), (g_last, se_last) = mean_and_se(bins.iloc[peak]), mean_and_se(bins.iloc[-1])
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
            f"(more than twice the standard error of the difference, {se_drop:.3f}).",
            evidence,
        )
    if proxy_rose:
        return Conclusion(
            "not shown",
            f"**Verdict: not shown in this run.** The proxy rose, but gold's fall from its peak ({drop:+.3f}) is within "
            f"twice its standard error ({se_drop:.3f}), or gold peaked in the last bin.",
            evidence,
        )
    return Conclusion(
        "proxy did not rise",
        "**Verdict: not shown in this run.** The proxy itself did not rise: the optimiser did not move it on this budget.",
        evidence,
    )


def unmeasured(numbers: Sequence[str], reason: str = "the task has no gold judge") -> Conclusion:
    """A sentence naming the numbers a run could not give, and why."""
    return Conclusion("unmeasured", f"Not measured ({reason}): {', '.join(numbers)}.", {"numbers": list(numbers)})
