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


# --- conclusions of notebooks 04-06 -------------------------------------------------------------------------------

__all__ += [
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
