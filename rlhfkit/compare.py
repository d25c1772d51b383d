"""Comparing methods: training curves, gold reward against KL, frontiers over sweeps, over-optimisation, win
rates, samples side by side, and the HTML report.

- Frontier (the DPO paper's IMDb experiment, Rafailov et al. 2023, Fig. 2 left): gold reward against sequence KL to
  the SFT reference for snapshots of sweeps (PPO KL coefficients, DPO betas, RLOO), one curve per method, SFT at the
  origin. `frontier_points` takes an evaluation of the snapshots, `frontier_figure` draws it.
- Over-optimisation (Gao et al. 2022, "Scaling Laws for Reward Model Overoptimization"): proxy (reward model) and
  gold reward against d = sqrt(KL) for best-of-n (KL = log n - (n-1)/n) and for RL, with the paper's forms fitted
  by least squares: best-of-n R(d) = d (a - b d), RL R(d) = d (a - b log d), R measured from the starting policy.
- Win rates by the gold judge between every pair of policies, with cluster-bootstrap intervals over prompts.

Model text and policy / run names are untrusted: escaped once for where they go, `html.escape` in the report's
HTML tables and headings, `rlhfkit.figures.plotly_text` in figure titles, legends and hover text (plotly draws its
own markup there: `<a href>` would be a link, and html.escape's `&quot;` would show as "&quot;").
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from rlhfkit.conclusions import versus_baseline
from rlhfkit.figures import plotly_text, step_axis
from rlhfkit.metrics.core import win_rate
from rlhfkit.results import policy_rows
from rlhfkit.runs import RunData

__all__ = [
    "training_curves_figure",
    "gold_vs_kl_figure",
    "samples_side_by_side",
    "summary_table",
    "write_report",
    "frontier_points",
    "frontier_figure",
    "bon_kl",
    "best_of_n",
    "fit_overoptimization",
    "overoptimization_fits",
    "rl_overoptimization_points",
    "overoptimization_figure",
    "win_rate_table",
    "logprob_per_token",
    "decoding_diversity",
    "temperature_sweep_figure",
    "annotator_table",
    "annotator_figure",
    "accuracy_by_gold_gap",
    "reward_check_figure",
    "noise_sweep_figure",
    "before_after_table",
    "pairwise_agreement",
    "proxy_gold_steps_figure",
    "reward_pairs_figure",
]

METHOD_COLORS = {"sft": "#7f7f7f", "ppo": "#1f77b4", "dpo": "#d62728", "rloo": "#2ca02c", "grpo": "#9467bd"}


def _color(name: str) -> str:
    return METHOD_COLORS.get(name, "#8c564b")


def training_curves_figure(runs: dict[str, RunData]):
    """Reward and KL while training, one line per method: the score (reward model or judge) and sequence KL of
    the online methods' samples, and DPO's implicit reward margin (DPO samples nothing while it trains)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=(
            "score of samples (objective/scores)",
            "KL to reference (objective/kl)",
            "DPO implicit reward margin",
        ),
    )
    last_step = None
    for name, run in runs.items():
        metrics = run.metrics
        if metrics.empty:
            continue
        for col, key in ((1, "objective/scores"), (2, "objective/kl"), (3, "rewards/margins")):
            if key in metrics:
                rows = metrics[["step", key]].dropna()
                fig.add_trace(
                    go.Scatter(
                        x=rows.step,
                        y=rows[key],
                        mode="lines",
                        name=plotly_text(f"{name} {key}"),
                        line=dict(color=_color(name)),
                        legendgroup=name,
                    ),
                    row=1,
                    col=col,
                )
                last_step = max(last_step or 0, int(rows.step.max())) if not rows.empty else last_step
    fig.update_xaxes(**step_axis(last_step))
    for col, title in ((1, "score"), (2, "KL, nats per response"), (3, "chosen - rejected")):
        fig.update_yaxes(title_text=title, row=1, col=col)
    fig.update_layout(height=360, margin=dict(t=40, b=40, l=40, r=10), legend=dict(orientation="h", y=-0.25))
    return fig


def gold_vs_kl_figure(summary: dict[str, dict]):
    """Gold reward (with its CI) against sequence KL to the reference, one point per policy; SFT sits at KL 0."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, row in policy_rows(summary).items():
        if row.get("gold_reward_mean") is None:  # no gold judge: nothing to place on this axis
            continue
        lo, hi = row["gold_reward_ci"]
        fig.add_trace(
            go.Scatter(
                x=[row["kl_to_ref"]],
                y=[row["gold_reward_mean"]],
                mode="markers+text",
                text=[plotly_text(name)],
                textposition="top center",
                name=plotly_text(name),
                marker=dict(size=12, color=_color(name)),
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=[hi - row["gold_reward_mean"]],
                    arrayminus=[row["gold_reward_mean"] - lo],
                ),
            )
        )
    fig.update_layout(
        height=360,
        xaxis_title="KL(policy || SFT), nats per response (k1, on policy samples)",
        yaxis_title="gold reward (mean, 95% CI)",
        margin=dict(t=30, b=40, l=50, r=10),
    )
    return fig


def samples_side_by_side(samples: pd.DataFrame, policies: list[str], n_prompts: int = 8) -> pd.DataFrame:
    """One row per prompt, one column per policy with its response and gold/proxy scores (raw text; escape it
    before showing it as HTML)."""
    rows = []
    for prompt in list(dict.fromkeys(samples.prompt))[:n_prompts]:
        row: dict[str, Any] = {"prompt": prompt}
        for policy in policies:
            match = samples[(samples.policy == policy) & (samples.prompt == prompt)]
            if not match.empty:
                first = match.iloc[0]
                row[policy] = first.response
                row[f"{policy} gold"] = first.gold
                row[f"{policy} proxy"] = first.get("proxy")
        rows.append(row)
    return pd.DataFrame(rows)


def summary_table(summary: dict[str, dict], baseline: str = "sft") -> pd.DataFrame:
    """The headline numbers per policy, with a verdict on whether each beats the baseline on gold reward
    (`rlhfkit.conclusions.versus_baseline`: its CI above the baseline's mean and its gold-judged win rate CI above
    0.5). `summary`: policy rows (`rlhfkit.results`), or a whole summary.json's content."""
    rows = policy_rows(summary)
    base = rows.get(baseline)
    words = {
        "beats": f"beats {baseline}",
        "above, not significant": f"above {baseline}, not significantly",
        "does not beat": f"does NOT beat {baseline}",
        "unmeasured": "no gold judge",
    }
    table = []
    for name, row in rows.items():
        verdict = "" if name == baseline or base is None else words[versus_baseline(row, base, name=name).verdict]
        gold_ci = row.get("gold_reward_ci")
        table.append(
            {
                "policy": name,
                "gold reward": row.get("gold_reward_mean"),
                "gold 95% CI": f"[{gold_ci[0]:.3f}, {gold_ci[1]:.3f}]" if gold_ci else "",
                "proxy reward": row.get("proxy_reward_mean"),
                "KL to SFT": row["kl_to_ref"],
                "win rate vs SFT": row.get("win_rate_vs_ref"),
                "mean length": row.get("mean_length"),
                "verdict": verdict,
            }
        )
    return pd.DataFrame(table)


# ---------------------------------------------------------------------------------------------------------------
# Gold reward against KL: one frontier per method over a sweep of snapshots
# ---------------------------------------------------------------------------------------------------------------


def frontier_points(
    evaluation: Any, *, method_of: Mapping[str, str] | Callable[[str], str] | None = None, reference: str | None = None
) -> pd.DataFrame:
    """Points of the gold-reward-vs-KL frontier from an evaluation of snapshots.

    `evaluation`: `rlhfkit.evaluation.evaluate_policies(...)` run on the snapshots of every sweep (e.g. saved every
    N steps of PPO with kl_coef 0.02/0.05/0.1, DPO with beta 0.05/0.1/0.5, RLOO), or its `to_dict()`. `method_of`
    names each snapshot's method: a dict, a function, or by default the part of the policy name before the first
    "/" (name snapshots "ppo/kl=0.05/step=20", "dpo/beta=0.1/step=40", ...). `reference` is the SFT row (default
    the evaluation's reference_name, else "sft"): every method's curve starts from it, at KL 0.

    Returns one row per point: method, policy, kl (k1 sequence KL to the reference, on the policy's own samples),
    gold, gold_lo, gold_hi (bootstrap CI), and `on_frontier`: True for the reference and for every point whose gold
    reward is above that of every point of its method at lower KL (the upper envelope the curve follows)."""
    rows = policy_rows(evaluation)
    reference = reference or getattr(evaluation, "reference_name", None) or "sft"
    if reference not in rows:
        raise ValueError(
            f"the evaluation has no row for the reference {reference!r} (rows: {sorted(rows)}); pass "
            f"reference= the name of the SFT row"
        )
    if method_of is None:
        method_of = lambda name: name.split("/", 1)[0]  # noqa: E731
    elif isinstance(method_of, Mapping):
        mapping = method_of
        method_of = lambda name: mapping.get(name, name)  # noqa: E731

    def point(method: str, policy: str, row: dict, kl: float | None = None) -> dict:
        ci = row.get("gold_reward_ci") or [math.nan, math.nan]
        if row.get("gold_reward_mean") is None:
            raise ValueError(f"policy {policy!r} has no gold reward (the task needs a gold judge)")
        return {
            "method": method,
            "policy": policy,
            "kl": float(row["kl_to_ref"] if kl is None else kl),
            "gold": float(row["gold_reward_mean"]),
            "gold_lo": float(ci[0]),
            "gold_hi": float(ci[1]),
        }

    by_method: dict[str, list[dict]] = {}
    for name, row in rows.items():
        if name != reference:
            by_method.setdefault(method_of(name), []).append(point(method_of(name), name, row))
    out = []
    for method, points in by_method.items():
        points = [point(method, reference, rows[reference], kl=0.0)] + sorted(points, key=lambda p: p["kl"])
        best = -math.inf
        for p in points:
            p["on_frontier"] = p["gold"] > best
            best = max(best, p["gold"])
        out.extend(points)
    return pd.DataFrame(out, columns=["method", "policy", "kl", "gold", "gold_lo", "gold_hi", "on_frontier"])


def frontier_figure(points: pd.DataFrame, *, relative: bool = True):
    """Gold reward against KL to SFT, one curve per method: every snapshot as a marker (with its CI), the line
    along the method's upper envelope. `relative=True` plots gold minus SFT's gold, so SFT sits at the origin."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for method, group in points.groupby("method", sort=False):
        base = group[group.kl == 0].gold.iloc[0] if relative and (group.kl == 0).any() else 0.0
        group = group.sort_values("kl")
        color = _color(method)
        fig.add_trace(
            go.Scatter(
                x=group.kl,
                y=group.gold - base,
                mode="markers",
                name=plotly_text(f"{method} snapshots"),
                legendgroup=method,
                marker=dict(color=color, size=7, opacity=0.6),
                text=[plotly_text(p) for p in group.policy],
                hovertemplate="%{text}<br>KL %{x:.2f}<br>gold %{y:.3f}<extra></extra>",
                error_y=dict(
                    type="data",
                    symmetric=False,
                    array=group.gold_hi - group.gold,
                    thickness=1,
                    arrayminus=group.gold - group.gold_lo,
                ),
            )
        )
        front = group[group.on_frontier]
        fig.add_trace(
            go.Scatter(
                x=front.kl,
                y=front.gold - base,
                mode="lines",
                name=plotly_text(f"{method} frontier"),
                legendgroup=method,
                line=dict(color=color, width=2),
            )
        )
    fig.update_layout(
        height=380,
        margin=dict(t=30, b=40, l=60, r=10),
        xaxis_title="KL(policy || SFT), nats per response (k1, on policy samples)",
        yaxis_title="gold reward gain over SFT" if relative else "gold reward",
    )
    return fig


# ---------------------------------------------------------------------------------------------------------------
# Over-optimisation (Gao et al. 2022): proxy and gold reward against d = sqrt(KL), best-of-n and RL
# ---------------------------------------------------------------------------------------------------------------

FORMS = {
    "bon": ("d (a - b d)", lambda d: np.stack([d, -d * d], axis=1)),
    "rl": ("d (a - b log d)", lambda d: np.stack([d, -d * np.log(np.where(d > 0, d, 1.0))], axis=1)),
}


def bon_kl(n: int | np.ndarray) -> float | np.ndarray:
    """KL(best-of-n || base policy) = log n - (n - 1) / n (Stiennon et al. 2020; Gao et al. 2022): 0 for n = 1.
    Exact when the proxy never ties; otherwise an upper bound."""
    n = np.asarray(n, dtype=float)
    if (n < 1).any():
        raise ValueError(f"n must be at least 1, got {n.tolist()}")
    out = np.log(n) - (n - 1.0) / n
    return float(out) if out.ndim == 0 else out


def _best_of_n_weights(k: int, n: int) -> np.ndarray:
    """P(the i-th lowest of k values is the highest of a uniformly drawn n-subset) = C(i-1, n-1) / C(k, n)."""
    total = math.comb(k, n)
    return np.array([math.comb(i - 1, n - 1) / total for i in range(1, k + 1)])


def best_of_n(
    samples: pd.DataFrame, ns: Sequence[int], *, group: str | None = None, proxy: str = "proxy", gold: str = "gold"
) -> pd.DataFrame:
    """Expected proxy and gold reward of best-of-n sampling: draw n of a prompt's responses, keep the one the proxy
    (reward model) scores highest.

    Estimator: the unbiased one over all k >= n samples of each prompt (as in Nakano et al. 2021 and Gao et al.
    2022), not resampling: with the k samples sorted by proxy, the i-th lowest is the pick of a uniformly random
    n-subset with probability C(i-1, n-1) / C(k, n); proxy ties are broken at random, so tied samples share their
    mean gold. The expectation over every subset is exact for the samples at hand; prompts are averaged equally.

    `samples`: one row per response with `proxy` and `gold` columns (e.g. `evaluate_policies(...).samples` of the
    SFT policy with `samples_per_prompt=k`), grouped by `group` (default "prompt_index" when present, else
    "prompt"). Returns one row per n: n, kl (`bon_kl(n)`), d = sqrt(kl), proxy, gold, n_prompts."""
    group = group or ("prompt_index" if "prompt_index" in samples else "prompt")
    for column in (group, proxy, gold):
        if column not in samples:
            raise ValueError(f"samples have no {column!r} column (columns: {list(samples.columns)})")
    ns = [int(n) for n in ns]
    sizes = samples.groupby(group, sort=False).size()
    if min(ns) < 1 or max(ns) > sizes.min():
        raise ValueError(
            f"best_of_n needs 1 <= n <= k for every prompt; n up to {max(ns)} was asked but the "
            f"smallest prompt has k = {int(sizes.min())} samples"
        )
    rows = []
    for n in ns:
        proxies, golds = [], []
        for _, frame in samples.groupby(group, sort=False):
            frame = frame.sort_values(proxy, kind="stable")
            p = frame[proxy].to_numpy(dtype=float)
            g = frame[gold].to_numpy(dtype=float)
            g = pd.Series(g).groupby(p).transform("mean").to_numpy()  # tied proxies: a random pick among them
            w = _best_of_n_weights(len(p), n)
            proxies.append(float(w @ p))
            golds.append(float(w @ g))
        kl = bon_kl(n)
        rows.append(
            {
                "n": n,
                "kl": kl,
                "d": math.sqrt(kl),
                "proxy": float(np.mean(proxies)),
                "gold": float(np.mean(golds)),
                "n_prompts": len(golds),
            }
        )
    return pd.DataFrame(rows)


def fit_overoptimization(d: Sequence[float], reward: Sequence[float], form: str) -> tuple[float, float]:
    """Least-squares (a, b) of Gao et al.'s functional form through the origin: "bon" R(d) = d (a - b d), "rl"
    R(d) = d (a - b log d). `reward` is measured from the starting policy (R = 0 at d = 0). Both forms are linear in
    (a, b), so this is ordinary least squares on the features (d, -d^2) or (d, -d log d)."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {sorted(FORMS)}, got {form!r}")
    d, r = np.asarray(d, dtype=float), np.asarray(reward, dtype=float)
    if d.shape != r.shape or d.ndim != 1:
        raise ValueError(f"d and reward must be 1-D and of equal length, got {d.shape} and {r.shape}")
    if (d < 0).any() or not np.isfinite(d).all() or not np.isfinite(r).all():
        raise ValueError("d must be >= 0 and every value finite")
    keep = d > 0  # points at the origin carry no information about (a, b)
    if keep.sum() < 2:
        raise ValueError(f"fitting two coefficients needs at least two points with d > 0, got {int(keep.sum())}")
    (a, b), *_ = np.linalg.lstsq(FORMS[form][1](d[keep]), r[keep], rcond=None)
    return float(a), float(b)


def overoptimization_fits(points: pd.DataFrame, form: str) -> pd.DataFrame:
    """Fit `form` ("bon" or "rl") to the proxy and the gold column of `points` (columns d, proxy, gold; one row
    at d = 0, the starting policy, from which rewards are measured). One row per reward: reward, form, a, b,
    start (the reward at d = 0), n_points."""
    origin = points[points.d == 0]
    if origin.empty:
        raise ValueError(
            "no point at d = 0: rewards are measured from the starting policy, so include its row "
            "(best_of_n includes n = 1; rl_overoptimization_points takes baseline=)"
        )
    rows = []
    for reward in ("proxy", "gold"):
        start = float(origin[reward].iloc[0])
        a, b = fit_overoptimization(points.d, points[reward] - start, form)
        rows.append(
            {
                "reward": reward,
                "form": f"R(d) = {FORMS[form][0]}",
                "a": a,
                "b": b,
                "start": start,
                "n_points": int((points.d > 0).sum()),
            }
        )
    return pd.DataFrame(rows)


def rl_overoptimization_points(
    samples: pd.DataFrame,
    *,
    n_bins: int = 6,
    kl: str = "kl",
    proxy: str = "score",
    gold: str = "gold",
    gold_judge: Callable | None = None,
    baseline: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Over-optimisation points of an RL run from the samples it logged while training (our PPO's samples.jsonl
    rows: step, prompt, response, score = the proxy reward, kl = the sample's k1 sequence KL to the reference).

    The logged steps are split into `n_bins` consecutive groups of steps; per group: kl (mean), d = sqrt(kl)
    (0 if the mean is negative, which k1 allows on few samples), proxy and gold (means), n_samples, first_step,
    last_step. Gold scores come from the `gold` column, or from `gold_judge(prompts, responses)` when given.
    `baseline` = (proxy, gold) of the starting policy adds the d = 0 row the fits measure from (e.g. the SFT row
    of an evaluation: the starting policy's rewards on the same kind of prompts)."""
    frame = samples.copy()
    if gold_judge is not None:
        frame[gold] = [float(x) for x in gold_judge(frame.prompt.tolist(), frame.response.tolist())]
    for column in ("step", kl, proxy, gold):
        if column not in frame:
            raise ValueError(
                f"samples have no {column!r} column (columns: {list(frame.columns)}); pass gold_judge= "
                f"to score gold rewards"
            )
    steps = np.array(sorted(frame.step.unique()))
    if len(steps) < 1 or n_bins < 1:
        raise ValueError(f"need at least one logged step and n_bins >= 1 (steps: {len(steps)}, n_bins: {n_bins})")
    rows = []
    if baseline is not None:
        rows.append(
            {
                "kl": 0.0,
                "d": 0.0,
                "proxy": float(baseline[0]),
                "gold": float(baseline[1]),
                "n_samples": None,
                "first_step": None,
                "last_step": None,
            }
        )
    for chunk in np.array_split(steps, min(n_bins, len(steps))):
        part = frame[frame.step.isin(chunk)]
        mean_kl = float(part[kl].mean())
        rows.append(
            {
                "kl": mean_kl,
                "d": math.sqrt(max(mean_kl, 0.0)),
                "proxy": float(part[proxy].mean()),
                "gold": float(part[gold].mean()),
                "n_samples": len(part),
                "first_step": int(chunk[0]),
                "last_step": int(chunk[-1]),
            }
        )
    return pd.DataFrame(rows)


def overoptimization_figure(bon: pd.DataFrame | None = None, rl: pd.DataFrame | None = None, *, rl_label: str = "PPO"):
    """Proxy and gold reward against d = sqrt(KL), one panel per method given (best-of-n, RL): the measured points
    and Gao et al.'s fitted curves, with the fitted coefficients in the legend. Points need a d = 0 row."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = [(f"best-of-n: R(d) = {FORMS['bon'][0]}", bon, "bon"), (f"{rl_label}: R(d) = {FORMS['rl'][0]}", rl, "rl")]
    panels = [p for p in panels if p[1] is not None]
    if not panels:
        raise ValueError("overoptimization_figure needs best-of-n points, RL points, or both")
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[plotly_text(t) for t, _, _ in panels])
    colors = {"proxy": "#1f77b4", "gold": "#ff7f0e"}
    for col, (_, points, form) in enumerate(panels, start=1):
        fits = overoptimization_fits(points, form).set_index("reward")
        grid = np.linspace(0.0, float(points.d.max()) * 1.05, 80)
        hover = _point_labels(points)
        for reward in ("proxy", "gold"):
            a, b, start = fits.loc[reward, ["a", "b", "start"]]
            curve = start + FORMS[form][1](grid) @ np.array([a, b])
            fig.add_trace(
                go.Scatter(
                    x=points.d,
                    y=points[reward],
                    mode="markers",
                    name=f"{reward} ({form})",
                    legendgroup=f"{form}-{reward}",
                    marker=dict(color=colors[reward], size=8),
                    text=hover,
                    hovertemplate="%{text}<br>d %{x:.2f}<br>%{y:.3f}<extra></extra>",
                ),
                row=1,
                col=col,
            )
            fig.add_trace(
                go.Scatter(
                    x=grid,
                    y=curve,
                    mode="lines",
                    legendgroup=f"{form}-{reward}",
                    name=f"{reward} fit ({form}): a = {a:.3f}, b = {b:.3f}",
                    line=dict(color=colors[reward], dash="dash"),
                ),
                row=1,
                col=col,
            )
    fig.update_xaxes(title_text="d = sqrt(KL to the starting policy)")
    fig.update_yaxes(title_text="reward", row=1, col=1)
    fig.update_layout(height=400, margin=dict(t=40, b=40, l=60, r=10), legend=dict(orientation="h", y=-0.2))
    return fig


def _point_labels(points: pd.DataFrame) -> list[str]:
    """Hover text of over-optimisation points: "n = 4" for best-of-n, "steps 5-8" (or "start") for RL."""
    if "n" in points:
        return [f"n = {n}" for n in points.n]
    if "first_step" in points:
        return [
            "start" if pd.isna(a) else f"steps {int(a)}-{int(b)}" for a, b in zip(points.first_step, points.last_step)
        ]
    return [""] * len(points)


# ---------------------------------------------------------------------------------------------------------------
# Win rates between policies (gold judge), with bootstrap intervals
# ---------------------------------------------------------------------------------------------------------------


def win_rate_table(
    samples: pd.DataFrame,
    *,
    policies: Sequence[str] | None = None,
    judge: str = "gold",
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> pd.DataFrame:
    """How often each policy's response beats each other policy's response to the same prompt by the `judge`
    column (the gold judge's score; ties count 0.5), for every ordered pair of policies.

    `samples`: `evaluate_policies(...).samples` (policy, prompt_index, candidate, gold, ...): responses are paired
    by (prompt_index, candidate), or by prompt when those columns are missing. Intervals are percentile bootstraps
    that resample whole prompts. Returns rows: policy, opponent, win_rate, ci_lo, ci_hi, wins, ties, losses, n."""
    keys = ["prompt_index", "candidate"] if {"prompt_index", "candidate"} <= set(samples.columns) else ["prompt"]
    for column in ("policy", judge, *keys):
        if column not in samples:
            raise ValueError(f"samples have no {column!r} column (columns: {list(samples.columns)})")
    policies = list(policies) if policies is not None else list(dict.fromkeys(samples.policy))
    scores = {p: samples[samples.policy == p].set_index(keys)[judge] for p in policies}
    rows = []
    for a in policies:
        for b in policies:
            if a == b:
                continue
            pair = pd.concat([scores[a].rename("a"), scores[b].rename("b")], axis=1, join="inner").dropna()
            if pair.empty:
                raise ValueError(f"policies {a!r} and {b!r} have no responses to the same prompts to compare")
            groups = pair.index.get_level_values(0) if isinstance(pair.index, pd.MultiIndex) else pair.index
            result = win_rate(
                pair.a, pair.b, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed, groups=list(groups)
            )
            rows.append(
                {
                    "policy": a,
                    "opponent": b,
                    "win_rate": result["win_rate"],
                    "ci_lo": result["win_rate_ci"][0],
                    "ci_hi": result["win_rate_ci"][1],
                    "wins": result["wins"],
                    "ties": result["ties"],
                    "losses": result["losses"],
                    "n": result["n"],
                }
            )
    return pd.DataFrame(rows)


def _win_rate_matrix(table: pd.DataFrame) -> pd.DataFrame:
    """Rows: policy; columns: opponent; cells "win rate [lo, hi]"."""
    policies = list(dict.fromkeys([*table.policy, *table.opponent]))
    cells = {
        (r.policy, r.opponent): f"{r.win_rate:.3f} [{r.ci_lo:.3f}, {r.ci_hi:.3f}]"
        for r in table.itertuples(index=False)
    }
    return pd.DataFrame([{"policy": a, **{f"vs {b}": cells.get((a, b), "") for b in policies}} for a in policies])


def _table_html(frame: pd.DataFrame) -> str:
    """An HTML table with every cell escaped (numbers formatted, text escaped)."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}"
        return html.escape("" if value is None else str(value))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>" for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }
td { white-space: pre-wrap; max-width: 28em; }
th { background: #f4f4f4; }
.note { color: #555; font-size: 0.9em; }
"""


def write_report(
    path: str | Path,
    *,
    title: str,
    summary: dict[str, dict],
    runs: dict[str, RunData],
    samples: pd.DataFrame,
    extra: dict[str, Any] | None = None,
    win_rates: pd.DataFrame | None = None,
    figures: Mapping[str, Any] | None = None,
    tables: Mapping[str, pd.DataFrame] | None = None,
    notes: Mapping[str, str] | None = None,
) -> Path:
    """A self-contained HTML report (plotly.js inlined once): summary table, win rates, training curves, gold
    reward vs KL, any further figures and tables, samples side by side. All model text is escaped.

    Optional sections: `win_rates` (a `win_rate_table`, shown as a policy x opponent matrix), `figures`
    ({heading: plotly figure}, e.g. `frontier_figure(...)`, `overoptimization_figure(...)`), `tables`
    ({heading: DataFrame}, e.g. `overoptimization_fits(...)`; cells escaped), `notes` ({heading: plain text shown
    under that figure's or table's heading, escaped})."""
    path = Path(path)
    policies = list(summary)
    notes = notes or {}
    curves = training_curves_figure(runs).to_html(full_html=False, include_plotlyjs=True)
    if any(row.get("gold_reward_mean") is not None for row in policy_rows(summary).values()):
        frontier = gold_vs_kl_figure(summary).to_html(full_html=False, include_plotlyjs=False)
    else:
        frontier = '<p class="note">Not measured: the task has no gold judge.</p>'

    def section(heading: str, body: str) -> str:
        note = f'<p class="note">{html.escape(notes[heading])}</p>' if heading in notes else ""
        return f"<h2>{html.escape(heading)}</h2>\n{note}\n{body}\n"

    win_html = ""
    if win_rates is not None and not win_rates.empty:
        win_html = section(
            "Win rates (gold judge)",
            _table_html(_win_rate_matrix(win_rates))
            + (
                '<p class="note">Row policy against column policy: the share of prompts on which the row\'s sample '
                "gets the higher gold score (ties count one half), with a 95% bootstrap interval over prompts.</p>"
            ),
        )
    more = "".join(
        section(heading, fig.to_html(full_html=False, include_plotlyjs=False))
        for heading, fig in (figures or {}).items()
    )
    more += "".join(section(heading, _table_html(frame)) for heading, frame in (tables or {}).items())
    extra_html = ""
    if extra:
        extra_html = "<h2>Run facts</h2><pre>" + html.escape(json.dumps(extra, indent=2)) + "</pre>"
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{html.escape(title)}</h1>
<h2>Summary</h2>
{_table_html(summary_table(summary))}
<p class="note">Gold reward: the task's gold judge on samples for held-out prompts (temperature 1), mean with a
bootstrap 95% CI. KL: sum over response tokens of log pi - log pi_SFT on the policy's own samples (k1).
"beats sft" needs the gold CI above SFT's mean and the win-rate CI above 0.5.</p>
{win_html}
<h2>Training curves</h2>
{curves}
<h2>Gold reward against KL to the SFT model</h2>
{frontier}
{more}
<h2>Samples side by side</h2>
{_table_html(samples_side_by_side(samples, policies))}
{extra_html}
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


# --- figures for notebooks 00-03 ----------------------------------------------------------------------------------


def logprob_per_token(table: pd.DataFrame) -> pd.Series:
    """Each candidate's mean log-probability per token under the model that sampled it, at T = 1 (a table of
    `rlhfkit.stages.candidates`): `sum_logprob` over the response's tokens, the EOS token included when it ended
    by itself. How typical the model finds its own answer."""
    return table.sum_logprob / (table.n_tokens + (table.finish_reason == "eos"))


def decoding_diversity(table: pd.DataFrame, judge: Callable, *, decoding: str, temperature: float) -> dict:
    """One row of a decoding sweep (notebook 02) over a candidates table (`rlhfkit.stages.candidates`): unique
    answers per prompt, distinct-1 and distinct-2, the `judge`'s mean score and its spread within a prompt (pairs
    that differ in quality are what teaches a reward model), `logprob_per_token`, EOS rate and mean tokens."""
    from rlhfkit.metrics.core import distinct

    table = table.assign(gold=judge(table.prompt.tolist(), table.response.tolist()))
    per_prompt = table.groupby("prompt_index")
    return {
        "decoding": decoding,
        "temperature": temperature,
        "unique answers per prompt": per_prompt.response.nunique().mean(),
        **distinct(table.response.tolist(), (1, 2)),
        "gold mean": table.gold.mean(),
        "gold spread within prompt": per_prompt.gold.std().fillna(0).mean(),
        "logprob/token": logprob_per_token(table).mean(),
        "EOS rate": (table.finish_reason == "eos").mean(),
        "mean tokens": table.n_tokens.mean(),
    }


def temperature_sweep_figure(sweep: pd.DataFrame, k: int):
    """Rows of `decoding_diversity` against temperature (greedy at 0): unique answers per prompt (of `k`), distinct-n,
    and the gold score's mean and spread within a prompt."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = (f"unique answers per prompt (of {k})", "distinct-n", "gold: mean and spread within a prompt")
    fig = make_subplots(rows=1, cols=3, subplot_titles=titles)
    sampled = sweep[sweep.decoding == "sampled"]
    panels = ((1, sampled, ("unique answers per prompt",)), (2, sweep, ("distinct_1", "distinct_2")))
    for col, rows, keys in (*panels, (3, sweep, ("gold mean", "gold spread within prompt"))):
        for key in keys:
            fig.add_trace(go.Scatter(x=rows.temperature, y=rows[key], mode="lines+markers", name=key), row=1, col=col)
    fig.update_xaxes(title_text="temperature (0 = greedy)")
    fig.update_layout(height=340, margin=dict(t=40, b=40, l=40, r=10), legend=dict(orientation="h", y=-0.25))
    return fig


def annotator_figure(trust: pd.DataFrame):
    """Bars per annotator (an `annotator_table`): agreement with the gold judge, and the share of left answers
    chosen, with 0.5 (no position bias) marked."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = ("agreement with the gold judge", "share of left answers chosen")
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles)
    names = [plotly_text(n) for n in trust.annotator]
    for col, key in enumerate(("agrees with gold", "left wins"), start=1):
        fig.add_trace(go.Bar(x=names, y=trust[key], showlegend=False), row=1, col=col)
    fig.add_hline(y=0.5, line_dash="dot", row=1, col=2, annotation_text="no bias")
    fig.update_layout(height=340, margin=dict(t=40, b=80, l=40, r=10))
    return fig


def accuracy_by_gold_gap(check: pd.DataFrame, bins: int = 3) -> pd.DataFrame:
    """A reward model's accuracy on gold-labelled pairs (`check`: `score_chosen`, `score_rejected` from the gold
    judge, `rm_chosen`, `rm_rejected` from the reward model) in `bins` quantile bins of the gold difference,
    smallest first: pairs the gold judge scores nearly alike are the hard ones."""
    gap = check.score_chosen - check.score_rejected
    correct = check.rm_chosen > check.rm_rejected
    binned = pd.qcut(gap, q=max(1, min(bins, gap.nunique())), duplicates="drop").rename("gold difference")
    table = correct.groupby(binned, observed=True).agg(["mean", "size"])
    return table.rename(columns={"mean": "RM accuracy", "size": "pairs"})


def reward_check_figure(check: pd.DataFrame, judge_name: str = "gold score"):
    """The reward model on gold-labelled pairs (`check` as in `accuracy_by_gold_gap`): histograms of its reward for
    the gold-chosen and gold-rejected answers, and its reward against the gold score, one point per distinct
    answer."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    titles = ("RM reward: gold-chosen vs gold-rejected", "RM reward against gold score")
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles)
    fig.add_trace(go.Histogram(x=check.rm_chosen, name="chosen", opacity=0.6, nbinsx=30), row=1, col=1)
    fig.add_trace(go.Histogram(x=check.rm_rejected, name="rejected", opacity=0.6, nbinsx=30), row=1, col=1)
    answers = pd.concat(
        [
            pd.DataFrame({"response": check[side], "rm": check[f"rm_{side}"], "gold": check[f"score_{side}"]})
            for side in ("chosen", "rejected")
        ]
    ).drop_duplicates("response")
    marker = dict(size=5, opacity=0.5)
    fig.add_trace(
        go.Scatter(x=answers.gold, y=answers.rm, mode="markers", marker=marker, showlegend=False), row=1, col=2
    )
    fig.update_layout(barmode="overlay", height=360, margin=dict(t=40, b=40, l=40, r=10))
    fig.update_xaxes(title_text="RM reward", row=1, col=1)
    fig.update_xaxes(title_text=plotly_text(judge_name), row=1, col=2)
    fig.update_yaxes(title_text="RM reward", row=1, col=2)
    return fig


def noise_sweep_figure(sweep: pd.DataFrame):
    """Reward models trained on labels with more and more flips (`sweep`: "flip rate", "RM accuracy vs gold",
    "label agreement with gold", "steps"): each one's accuracy on gold-labelled pairs, beside the labels' own
    agreement with gold, and chance."""
    import plotly.graph_objects as go

    fig = go.Figure()
    name = f"RM accuracy vs gold ({sweep.steps.max()} steps each)"
    fig.add_trace(go.Scatter(x=sweep["flip rate"], y=sweep["RM accuracy vs gold"], mode="lines+markers", name=name))
    agreement = sweep["label agreement with gold"]
    dash = dict(dash="dash")
    label = "labels' agreement with gold"
    fig.add_trace(go.Scatter(x=sweep["flip rate"], y=agreement, mode="lines+markers", name=label, line=dash))
    fig.add_hline(y=0.5, line_dash="dot", annotation_text="chance")
    fig.update_layout(
        height=340,
        xaxis_title="annotator flip rate",
        yaxis_title="accuracy on gold-labelled pairs",
        margin=dict(t=30, b=40, l=50, r=10),
    )
    return fig


def before_after_table(samples: pd.DataFrame) -> pd.DataFrame:
    """An SFT run's held-out answers before and after training side by side (`samples` of the run: `model`
    "before" / "after", `prompt`, `response`, `finish_reason`, `gold` when scored): one row per prompt, with
    whether each answer ended by itself and whether it names the prompt's subject
    (`rlhfkit.conclusions.names_subject`). Raw text: show it as table cells, never as HTML."""
    from rlhfkit.conclusions import names_subject

    out = pd.DataFrame()
    for when in ("before", "after"):
        rows = samples[samples.model == when].reset_index(drop=True)
        out["prompt"] = rows.prompt
        out[f"{when} SFT"] = rows.response
        out[f"finish {when}"] = rows.finish_reason
        out[f"names it {when}"] = [names_subject(p, r) for p, r in zip(rows.prompt, rows.response)]
        if "gold" in rows:
            out[f"gold {when}"] = rows.gold.round(3)
    return out


# --- figures for notebooks 04-06 ----------------------------------------------------------------------------------


def pairwise_agreement(
    candidates: pd.DataFrame, score: str, *, gold: str = "gold", by: str = "prompt_index"
) -> tuple[float, int]:
    """How often the `score` column (a reward model, a proxy) orders two answers to the same prompt as the `gold`
    column does: over every pair of rows with the same `by` value and different gold scores, the share in which
    the gold-better answer also has the higher score (a tie in `score` counts one half). Returns (agreement,
    pairs); the agreement is NaN when no pair has different gold scores."""
    outcomes: list[np.ndarray] = []
    for _, group in candidates.groupby(by, sort=False):
        g, s = group[gold].to_numpy(dtype=float), group[score].to_numpy(dtype=float)
        i, j = np.triu_indices(len(group), k=1)
        keep = g[i] != g[j]
        sign = np.sign(s[i] - s[j])[keep] * np.sign(g[i] - g[j])[keep]
        outcomes.append((sign + 1) / 2)  # 1 agrees, 0 disagrees, 0.5 a tie in score
    hits = np.concatenate(outcomes) if outcomes else np.empty(0)
    return (float(hits.mean()) if hits.size else math.nan), int(hits.size)


def proxy_gold_steps_figure(
    samples: pd.DataFrame,
    *,
    proxy: str = "score",
    gold: str = "gold",
    kl: str = "kl",
    window: int = 4,
    proxy_name: str = "proxy",
    gold_name: str = "gold",
):
    """An RL run's logged samples step by step (one row per sample: step, response, the `proxy` score it was
    trained on, `gold`, `kl` to the reference). Left: proxy (left axis) and gold (right axis), each step's mean as
    a faint point and a `window`-step moving average as a line; the two are on different scales, what matters is
    their direction. Right: words per answer and KL to the reference (nats)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    frame = samples.assign(words=samples.response.str.split().str.len())
    per_step = frame.groupby("step")[[proxy, gold, kl, "words"]].mean()
    smooth = per_step.rolling(window, min_periods=1).mean()
    fig = make_subplots(
        rows=1,
        cols=2,
        specs=[[{"secondary_y": True}, {"secondary_y": True}]],
        subplot_titles=(f"{plotly_text(proxy_name)} (left axis) and gold (right axis)", "words per answer and KL"),
    )
    for key, name, color, secondary in ((proxy, proxy_name, "#1f77b4", False), (gold, gold_name, "#ff7f0e", True)):
        points = go.Scatter(x=per_step.index, y=per_step[key], mode="markers", marker=dict(color=color, size=4))
        fig.add_trace(points.update(opacity=0.35, showlegend=False), row=1, col=1, secondary_y=secondary)
        line = go.Scatter(x=smooth.index, y=smooth[key], mode="lines", name=plotly_text(name), line=dict(color=color))
        fig.add_trace(line, row=1, col=1, secondary_y=secondary)
    for key, name, color, secondary in (
        ("words", "words per answer", "#2ca02c", False),
        (kl, "KL (nats)", "#9467bd", True),
    ):
        line = go.Scatter(x=smooth.index, y=smooth[key], mode="lines", name=name, line=dict(color=color))
        fig.add_trace(line, row=1, col=2, secondary_y=secondary)
    fig.update_xaxes(**step_axis(per_step.index.max()))
    fig.update_layout(height=360, margin=dict(t=40, b=40, l=50, r=50), legend=dict(orientation="h", y=-0.25))
    return fig


def reward_pairs_figure(
    chosen: Sequence[float],
    rejected: Sequence[float],
    gold_chosen: Sequence[float],
    gold_rejected: Sequence[float],
    *,
    name: str = "reward",
    axis_title: str | None = None,
):
    """A reward (a reward model's, or DPO's implicit one) on preference pairs. Left: histograms of the chosen and the
    rejected answers' rewards, overlaid. Right: every answer's reward against its gold score, with the Spearman rank
    correlation in the title."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    reward = pd.Series(np.concatenate([chosen, rejected]), dtype=float)
    golds = pd.Series(np.concatenate([gold_chosen, gold_rejected]), dtype=float)
    spearman = reward.rank().corr(golds.rank())  # Pearson on ranks
    label = plotly_text(name)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=(f"{label}: chosen vs rejected", f"{label} against gold (Spearman {spearman:.2f})"),
    )
    fig.add_trace(go.Histogram(x=list(chosen), name="chosen", opacity=0.6, nbinsx=30), row=1, col=1)
    fig.add_trace(go.Histogram(x=list(rejected), name="rejected", opacity=0.6, nbinsx=30), row=1, col=1)
    scatter = go.Scatter(x=golds, y=reward, mode="markers", showlegend=False, marker=dict(size=4, opacity=0.5))
    fig.add_trace(scatter, row=1, col=2)
    fig.update_layout(barmode="overlay", height=340, margin=dict(t=40, b=40, l=40, r=10))
    fig.update_xaxes(title_text=plotly_text(axis_title or name), row=1, col=1)
    fig.update_xaxes(title_text="gold score", row=1, col=2)
    fig.update_yaxes(title_text=label, row=1, col=2)
    return fig
