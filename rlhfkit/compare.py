"""Comparing methods: training curves, gold reward against KL, samples side by side, and the HTML report.

Everything that shows model text escapes it first (`html.escape`), in tables and in plot hover text alike:
model outputs are untrusted.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import pandas as pd

from rlhfkit.runs import RunData

__all__ = ["training_curves_figure", "gold_vs_kl_figure", "samples_side_by_side", "summary_table",
           "write_report"]

METHOD_COLORS = {"sft": "#7f7f7f", "ppo": "#1f77b4", "dpo": "#d62728", "rloo": "#2ca02c", "grpo": "#9467bd"}


def _color(name: str) -> str:
    return METHOD_COLORS.get(name, "#8c564b")


def training_curves_figure(runs: dict[str, RunData]):
    """Reward and KL while training, one line per method: the score (reward model or judge) and sequence KL of
    the online methods' samples, and DPO's implicit reward margin (DPO samples nothing while it trains)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=3, subplot_titles=(
        "score of samples (objective/scores)", "KL to reference (objective/kl)", "DPO implicit reward margin"))
    for name, run in runs.items():
        metrics = run.metrics
        if metrics.empty:
            continue
        for col, key in ((1, "objective/scores"), (2, "objective/kl"), (3, "rewards/margins")):
            if key in metrics:
                rows = metrics[["step", key]].dropna()
                fig.add_trace(go.Scatter(x=rows.step, y=rows[key], mode="lines", name=f"{name} {key}",
                                         line=dict(color=_color(name)), legendgroup=name), row=1, col=col)
    fig.update_xaxes(title_text="step")
    fig.update_layout(height=360, margin=dict(t=40, b=40, l=40, r=10), legend=dict(orientation="h", y=-0.25))
    return fig


def gold_vs_kl_figure(summary: dict[str, dict]):
    """Gold reward (with its CI) against sequence KL to the reference, one point per policy; SFT sits at KL 0."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for name, row in summary.items():
        lo, hi = row["gold_reward_ci"]
        fig.add_trace(go.Scatter(
            x=[row["kl_to_ref"]], y=[row["gold_reward_mean"]], mode="markers+text", text=[name],
            textposition="top center", name=name, marker=dict(size=12, color=_color(name)),
            error_y=dict(type="data", symmetric=False, array=[hi - row["gold_reward_mean"]],
                         arrayminus=[row["gold_reward_mean"] - lo])))
    fig.update_layout(height=360, xaxis_title="KL(policy || SFT), nats per response (k1, on policy samples)",
                      yaxis_title="gold reward (mean, 95% CI)", margin=dict(t=30, b=40, l=50, r=10))
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
    """The headline numbers per policy, with a verdict on whether each beats the baseline on gold reward (its
    CI above the baseline's mean and its gold-judged win rate CI above 0.5)."""
    rows = []
    base = summary.get(baseline)
    for name, row in summary.items():
        verdict = ""
        if base is not None and name != baseline:
            lo = row["gold_reward_ci"][0]
            win_lo = (row.get("win_rate_vs_sft_ci") or [None])[0]
            if lo > base["gold_reward_mean"] and (win_lo is None or win_lo > 0.5):
                verdict = f"beats {baseline}"
            elif row["gold_reward_mean"] > base["gold_reward_mean"]:
                verdict = f"above {baseline}, not significantly"
            else:
                verdict = f"does NOT beat {baseline}"
        rows.append({
            "policy": name,
            "gold reward": row["gold_reward_mean"],
            "gold 95% CI": f"[{row['gold_reward_ci'][0]:.3f}, {row['gold_reward_ci'][1]:.3f}]",
            "proxy reward": row.get("proxy_reward_mean"),
            "KL to SFT": row["kl_to_ref"],
            "win rate vs SFT": row.get("win_rate_vs_sft"),
            "mean length": row.get("mean_length"),
            "verdict": verdict,
        })
    return pd.DataFrame(rows)


def _table_html(frame: pd.DataFrame) -> str:
    """An HTML table with every cell escaped (numbers formatted, text escaped)."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.3f}"
        return html.escape("" if value is None else str(value))

    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; text-align: left; }
td { white-space: pre-wrap; max-width: 28em; }
th { background: #f4f4f4; }
.note { color: #555; font-size: 0.9em; }
"""


def write_report(path: str | Path, *, title: str, summary: dict[str, dict], runs: dict[str, RunData],
                 samples: pd.DataFrame, extra: dict[str, Any] | None = None) -> Path:
    """A self-contained HTML report (plotly.js inlined once): summary table, training curves, gold reward vs
    KL, samples side by side. All model text is escaped."""
    path = Path(path)
    policies = list(summary)
    curves = training_curves_figure(runs).to_html(full_html=False, include_plotlyjs=True)
    frontier = gold_vs_kl_figure(summary).to_html(full_html=False, include_plotlyjs=False)
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
<h2>Training curves</h2>
{curves}
<h2>Gold reward against KL to the SFT model</h2>
{frontier}
<h2>Samples side by side</h2>
{_table_html(samples_side_by_side(samples, policies))}
{extra_html}
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
