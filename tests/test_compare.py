"""Comparison views on synthetic inputs with known answers: the gold-vs-KL frontier, Gao et al.'s over-optimisation
fits, the best-of-n KL and estimator (against brute force over every subset), win rates between policies, and the
report's new sections (self-contained, model text escaped)."""

import html
import itertools
import math
import re

import numpy as np
import pandas as pd
import pytest

from rlhfkit.compare import (
    best_of_n,
    bon_kl,
    fit_overoptimization,
    frontier_figure,
    frontier_points,
    overoptimization_figure,
    overoptimization_fits,
    rl_overoptimization_points,
    win_rate_table,
    write_report,
)
from rlhfkit.runs import RunData

XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


# --- over-optimisation fits ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "form, curve",
    [
        ("bon", lambda d, a, b: d * (a - b * d)),
        ("rl", lambda d, a, b: d * (a - b * np.log(np.where(d > 0, d, 1.0)))),
    ],
)
def test_fit_recovers_known_coefficients(form, curve):
    d = np.linspace(0.0, 5.0, 26)  # includes d = 0, which carries no information and is skipped
    a, b = fit_overoptimization(d, curve(d, 0.8, 0.12), form)
    assert (a, b) == (pytest.approx(0.8, abs=1e-9), pytest.approx(0.12, abs=1e-9))
    # with noise the least-squares fit is still close
    rng = np.random.default_rng(0)
    d = np.repeat(np.linspace(0.2, 5.0, 25), 40)
    a, b = fit_overoptimization(d, curve(d, 0.8, 0.12) + rng.normal(0, 0.05, d.size), form)
    assert a == pytest.approx(0.8, abs=0.02) and b == pytest.approx(0.12, abs=0.01)


def test_fit_rejects_bad_input():
    with pytest.raises(ValueError, match="form must be one of"):
        fit_overoptimization([1, 2], [1, 2], "ppo")
    with pytest.raises(ValueError, match="at least two points with d > 0"):
        fit_overoptimization([0, 1], [0, 1], "bon")
    with pytest.raises(ValueError, match=">= 0"):
        fit_overoptimization([-1, 1, 2], [0, 1, 2], "rl")


def test_fits_measure_from_the_starting_policy():
    d = np.array([0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
    points = pd.DataFrame({"d": d, "gold": 0.3 + d * (0.5 - 0.2 * d), "proxy": 0.3 + d * (0.9 - 0.05 * d)})
    fits = overoptimization_fits(points, "bon").set_index("reward")
    assert fits.loc["gold", ["a", "b"]].tolist() == pytest.approx([0.5, 0.2])
    assert fits.loc["proxy", ["a", "b"]].tolist() == pytest.approx([0.9, 0.05])
    assert fits.loc["gold", "start"] == pytest.approx(0.3) and fits.loc["gold", "n_points"] == 5
    with pytest.raises(ValueError, match="no point at d = 0"):
        overoptimization_fits(points[points.d > 0], "bon")


# --- best-of-n ----------------------------------------------------------------------------------------------------


def test_best_of_n_kl_formula():
    assert bon_kl(1) == 0.0
    assert bon_kl(2) == pytest.approx(math.log(2) - 0.5)
    assert bon_kl(16) == pytest.approx(math.log(16) - 15 / 16)
    values = bon_kl(np.array([1, 2, 4, 8, 64]))
    assert np.all(np.diff(values) > 0) and values[-1] < math.log(64)
    with pytest.raises(ValueError, match="at least 1"):
        bon_kl(0)


def _brute_force_best_of_n(samples: pd.DataFrame, n: int) -> tuple[float, float]:
    """Mean over prompts of the average, over every n-subset, of (proxy, gold) of the proxy-best response, ties
    broken uniformly at random."""
    proxies, golds = [], []
    for _, frame in samples.groupby("prompt"):
        p, g = frame.proxy.to_numpy(), frame.gold.to_numpy()
        picks = []
        for subset in itertools.combinations(range(len(p)), n):
            best = max(p[list(subset)])
            tied = [i for i in subset if p[i] == best]
            picks.append((best, np.mean(g[tied])))
        proxies.append(np.mean([x for x, _ in picks]))
        golds.append(np.mean([y for _, y in picks]))
    return float(np.mean(proxies)), float(np.mean(golds))


def test_best_of_n_unbiased_estimator_equals_every_subset_averaged():
    rng = np.random.default_rng(1)
    rows = []
    for prompt in range(6):
        k = 6 if prompt % 2 else 7  # prompts may have different numbers of samples
        proxy = rng.integers(0, 4, size=k).astype(float)  # coarse: many ties
        for p, g in zip(proxy, rng.normal(size=k)):
            rows.append({"prompt": f"p{prompt}", "proxy": p, "gold": g})
    samples = pd.DataFrame(rows)
    table = best_of_n(samples, [1, 2, 3, 6])
    for row in table.itertuples():
        proxy, gold = _brute_force_best_of_n(samples, row.n)
        assert row.proxy == pytest.approx(proxy) and row.gold == pytest.approx(gold)
        assert row.kl == pytest.approx(bon_kl(row.n)) and row.d == pytest.approx(math.sqrt(bon_kl(row.n)))
    # n = 1 is the plain mean; the proxy of the pick only grows with n
    assert table.proxy.iloc[0] == pytest.approx(samples.groupby("prompt").proxy.mean().mean())
    assert table.proxy.is_monotonic_increasing
    with pytest.raises(ValueError, match="smallest prompt has k = 6"):
        best_of_n(samples, [7])


def test_best_of_n_points_fit_the_bon_form():
    """Gold = proxy - 0.3 proxy^2 over normal proxies: best-of-n gold first rises, then falls (over-optimisation),
    and the figure shows the fitted coefficients."""
    rng = np.random.default_rng(0)
    proxy = rng.normal(size=(200, 32))
    samples = pd.DataFrame(
        {
            "prompt_index": np.repeat(np.arange(200), 32),
            "proxy": proxy.ravel(),
            "gold": (proxy - 0.3 * proxy**2).ravel(),
        }
    )
    points = best_of_n(samples, [1, 2, 4, 8, 16, 32])
    assert points.n_prompts.eq(200).all()
    gold = points.gold.to_numpy()
    assert gold[2] > gold[0] and gold[-1] < gold.max()
    fits = overoptimization_fits(points, "bon").set_index("reward")
    assert fits.loc["gold", "a"] > 0 and fits.loc["gold", "b"] > 0  # a rise, then a fall
    fig = overoptimization_figure(bon=points)
    a, b = fits.loc["gold", ["a", "b"]]
    assert any(f"a = {a:.3f}, b = {b:.3f}" in t.name for t in fig.data)


# --- RL over-optimisation points from a run's samples ----------------------------------------------------------------


def test_rl_points_bin_steps_and_score_gold_with_the_judge():
    steps = np.repeat(np.arange(1, 13), 4)  # 12 steps, 4 samples each
    samples = pd.DataFrame(
        {
            "step": steps,
            "kl": steps * 0.5,
            "score": steps * 0.1,
            "prompt": "p",
            "response": [f"r{i}" for i in range(len(steps))],
        }
    )
    judge_calls = []

    def judge(prompts, responses):
        judge_calls.append(len(responses))
        return [0.01 * int(r[1:]) for r in responses]

    points = rl_overoptimization_points(samples, n_bins=4, gold_judge=judge, baseline=(0.0, -0.1))
    assert judge_calls == [48]
    assert points.d.iloc[0] == 0 and points.gold.iloc[0] == -0.1  # the baseline row
    assert points.first_step.iloc[1:].tolist() == [1, 4, 7, 10] and points.last_step.iloc[1:].tolist() == [3, 6, 9, 12]
    assert points.kl.iloc[1:].tolist() == pytest.approx([1.0, 2.5, 4.0, 5.5])
    assert points.d.iloc[1:].tolist() == pytest.approx(np.sqrt([1.0, 2.5, 4.0, 5.5]).tolist())
    assert points.proxy.iloc[1] == pytest.approx(0.2) and points.n_samples.iloc[1:].eq(12).all()
    overoptimization_fits(points, "rl")  # fits from the baseline
    with pytest.raises(ValueError, match="gold_judge"):
        rl_overoptimization_points(samples.drop(columns="response"), n_bins=2)


def test_rl_form_fit_through_points_made_from_it():
    d = np.sqrt(np.array([0.0, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0]))
    gold = 0.2 + d * (0.6 - 0.25 * np.log(np.where(d > 0, d, 1.0)))
    points = pd.DataFrame(
        {
            "d": d,
            "kl": d**2,
            "gold": gold,
            "proxy": 0.2 + 0.7 * d,
            "first_step": [None, 1, 2, 3, 4, 5, 6],
            "last_step": [None, 1, 2, 3, 4, 5, 6],
        }
    )
    fits = overoptimization_fits(points, "rl").set_index("reward")
    assert fits.loc["gold", ["a", "b"]].tolist() == pytest.approx([0.6, 0.25])
    assert fits.loc["proxy", ["a", "b"]].tolist() == pytest.approx([0.7, 0.0], abs=1e-9)
    fig = overoptimization_figure(rl=points, rl_label="PPO")
    assert "PPO" in fig.layout.annotations[0].text
    assert any("gold fit (rl): a = 0.600, b = 0.250" == t.name for t in fig.data)


# --- frontier -----------------------------------------------------------------------------------------------------


def _row(gold, kl):
    return {"gold_reward_mean": gold, "gold_reward_ci": [gold - 0.05, gold + 0.05], "kl_to_ref": kl}


def test_frontier_points_group_by_method_start_at_sft_and_mark_the_upper_envelope():
    evaluation = {
        "sft": _row(0.2, 0.0),
        "ppo/kl=0.1/step=10": _row(0.4, 2.0),
        "ppo/kl=0.1/step=20": _row(0.35, 4.0),  # more KL, less gold: not on the frontier
        "ppo/kl=0.02/step=20": _row(0.6, 6.0),
        "dpo/beta=0.1": _row(0.5, 3.0),
        "dpo/beta=0.5": _row(0.1, 1.0),  # below SFT: not on the frontier
    }
    points = frontier_points(evaluation)
    ppo = points[points.method == "ppo"]
    assert ppo.policy.tolist() == ["sft", "ppo/kl=0.1/step=10", "ppo/kl=0.1/step=20", "ppo/kl=0.02/step=20"]
    assert ppo.kl.tolist() == [0.0, 2.0, 4.0, 6.0] and ppo.on_frontier.tolist() == [True, True, False, True]
    dpo = points[points.method == "dpo"]
    assert dpo.kl.tolist() == [0.0, 1.0, 3.0] and dpo.on_frontier.tolist() == [True, False, True]
    assert dpo.gold_lo.tolist() == pytest.approx([0.15, 0.05, 0.45])
    fig = frontier_figure(points)  # relative: SFT at the origin
    lines = {t.name: t for t in fig.data}
    assert list(lines["ppo frontier"].x) == [0.0, 2.0, 6.0]
    assert list(lines["ppo frontier"].y) == pytest.approx([0.0, 0.2, 0.4])
    assert list(frontier_figure(points, relative=False).data[1].y) == pytest.approx([0.2, 0.4, 0.6])
    # method names by a dict, the reference named explicitly
    named = frontier_points(
        {"base": _row(0.2, 0.0), "a": _row(0.3, 1.0), "b": _row(0.4, 2.0)},
        method_of={"a": "rloo", "b": "rloo"},
        reference="base",
    )
    assert named.method.unique().tolist() == ["rloo"] and named.on_frontier.all()
    with pytest.raises(ValueError, match="no row for the reference 'sft'"):
        frontier_points({"ppo": _row(0.3, 1.0)})


# --- win rates ----------------------------------------------------------------------------------------------------


def test_win_rate_table_pairs_responses_to_the_same_prompt():
    prompts = np.arange(40)
    samples = pd.concat(
        [
            pd.DataFrame({"policy": "sft", "prompt_index": prompts, "candidate": 0, "gold": 0.0}),
            pd.DataFrame({"policy": "ppo", "prompt_index": prompts, "candidate": 0, "gold": 1.0}),
            # wins on even prompts, ties on odd ones against sft
            pd.DataFrame({"policy": "dpo", "prompt_index": prompts, "candidate": 0, "gold": (prompts % 2 == 0) * 1.0}),
        ]
    )
    table = win_rate_table(samples, n_bootstrap=200).set_index(["policy", "opponent"])
    assert len(table) == 6
    assert table.loc[("ppo", "sft"), ["win_rate", "ci_lo", "ci_hi"]].tolist() == [1.0, 1.0, 1.0]
    assert table.loc[("sft", "ppo"), "win_rate"] == 0.0
    row = table.loc[("dpo", "sft")]
    assert row.win_rate == 0.75 and (row.wins, row.ties, row.losses, row.n) == (20, 20, 0, 40)
    assert row.ci_lo < 0.75 < row.ci_hi
    for (a, b), r in table.iterrows():
        assert r.win_rate + table.loc[(b, a), "win_rate"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no 'gold' column"):
        win_rate_table(samples.drop(columns="gold"))


# --- the report -----------------------------------------------------------------------------------------------------


def test_report_sections_are_self_contained_and_escape_model_text(tmp_path):
    summary = {
        name: {
            "gold_reward_mean": g,
            "gold_reward_ci": [g - 0.05, g + 0.05],
            "proxy_reward_mean": g,
            "kl_to_ref": kl,
            "win_rate_vs_sft": 0.5,
            "win_rate_vs_sft_ci": [0.4, 0.6],
            "mean_length": 9.0,
        }
        for name, g, kl in (("sft", 0.2, 0.0), ("ppo", 0.5, 3.0))
    }
    samples = pd.DataFrame(
        [
            {
                "policy": "sft",
                "prompt_index": 0,
                "candidate": 0,
                "prompt": "Review <b>X</b>",
                "response": XSS,
                "gold": 0.1,
                "proxy": 0.2,
            },
            {
                "policy": "ppo",
                "prompt_index": 0,
                "candidate": 0,
                "prompt": "Review <b>X</b>",
                "response": "Great & fun",
                "gold": 0.9,
                "proxy": 1.0,
            },
        ]
    )
    metrics = pd.DataFrame({"step": [1, 2], "objective/scores": [0.1, 0.5], "objective/kl": [0.0, 1.0]})
    run = RunData(path=tmp_path, stage="ppo", config={}, status={}, summary={}, metrics=metrics, samples=pd.DataFrame())
    d = np.array([0.0, 1.0, 2.0, 3.0])
    rl_points = pd.DataFrame({"d": d, "kl": d**2, "gold": [0.2, 0.5, 0.6, 0.55], "proxy": [0.2, 0.7, 1.1, 1.4]})
    path = write_report(
        tmp_path / "report.html",
        title="t",
        summary=summary,
        runs={"ppo": run},
        samples=samples,
        win_rates=win_rate_table(samples, n_bootstrap=50),
        figures={
            "Over-optimisation <i>": overoptimization_figure(rl=rl_points),
            "Frontier": frontier_figure(frontier_points(summary)),
        },
        tables={
            "Fitted coefficients": overoptimization_fits(rl_points, "rl"),
            "Worst samples": samples[["policy", "response"]],
        },
        notes={"Fitted coefficients": "least squares <on> R - R(0)"},
    )
    page = path.read_text()
    assert "Win rates (gold judge)" in page and "1.000 [1.000, 1.000]" in page
    assert "Over-optimisation &lt;i&gt;" in page and "Fitted coefficients" in page and "Frontier" in page
    assert "least squares &lt;on&gt; R - R(0)" in page
    assert "window.__pwned" in page  # the model text is there, as text ...
    assert "<script>window.__pwned" not in page and "<img src=x" not in page  # ... never as markup
    assert page.count("plotly.js v") <= 1 and not re.search(r'<script[^>]+src="http', page)
    # plotly.js inlined once: one very long script, the rest are small newPlot calls
    scripts = re.findall(r"<script[^>]*>(.*?)</script>", page, flags=re.S)
    assert sum(len(s) > 1_000_000 for s in scripts) == 1
    # older callers (pipeline, tests) still work without the new sections
    plain = write_report(tmp_path / "plain.html", title="t", summary=summary, runs={"ppo": run}, samples=samples)
    assert "Win rates" not in plain.read_text()


def test_pipeline_report_gets_ppo_overoptimization_from_its_logged_samples(tmp_path):
    from rlhfkit.stages import _overoptimization_view

    steps = np.repeat(np.arange(1, 13), 4)
    samples = pd.DataFrame(
        {
            "step": steps,
            "prompt": "p",
            "response": [f"{s} words" for s in steps],
            "score": 0.1 * steps,
            "kl": 0.4 * (steps - 1),
        }
    )
    run = RunData(path=tmp_path, stage="ppo", config={}, status={}, summary={}, metrics=pd.DataFrame(), samples=samples)
    gold = lambda prompts, responses: [0.02 * int(r.split()[0]) for r in responses]  # noqa: E731
    view = _overoptimization_view(run, {"proxy_reward_mean": 0.05, "gold_reward_mean": 0.01}, gold)
    (figure,), (table,) = view["figures"], view["tables"]
    assert set(view["notes"]) == {figure, table}
    fits = view["tables"][table]
    assert fits.reward.tolist() == ["proxy", "gold"] and fits.start.tolist() == [0.05, 0.01]
    assert _overoptimization_view(None, {"proxy_reward_mean": 0.0, "gold_reward_mean": 0.0}, gold) == {}
    empty = RunData(
        path=tmp_path, stage="ppo", config={}, status={}, summary={}, metrics=pd.DataFrame(), samples=pd.DataFrame()
    )
    assert _overoptimization_view(empty, {"proxy_reward_mean": 0.0, "gold_reward_mean": 0.0}, gold) == {}


def test_report_figures_show_policy_and_run_names_as_written(tmp_path):
    """A policy (and run) named with a link, an image with a handler, quotes, an ampersand and TeX: its tables
    escape it once as HTML, its figures once for plotly's own markup, and a browser shows the name as text."""
    from plotly_in_chromium import look_at

    from rlhfkit.compare import gold_vs_kl_figure, training_curves_figure
    from rlhfkit.figures import plotly_text

    name = '<a href="https://x">x</a> "q" & <img src=x onerror=window.__pwned=1> $x$'
    summary = {
        p: {
            "gold_reward_mean": g,
            "gold_reward_ci": [g - 0.05, g + 0.05],
            "proxy_reward_mean": g,
            "kl_to_ref": kl,
            "win_rate_vs_sft": 0.5,
            "win_rate_vs_sft_ci": [0.4, 0.6],
            "mean_length": 9.0,
        }
        for p, g, kl in (("sft", 0.2, 0.0), (name, 0.5, 3.0))
    }
    samples = pd.DataFrame(
        [
            {"policy": p, "prompt_index": 0, "candidate": 0, "prompt": "p", "response": "r", "gold": 0.1, "proxy": 0.2}
            for p in summary
        ]
    )
    metrics = pd.DataFrame({"step": [1, 2, 3], "objective/scores": [0.1, 0.5, 0.6], "objective/kl": [0.0, 1.0, 1.5]})
    run = RunData(path=tmp_path, stage="ppo", config={}, status={}, summary={}, metrics=metrics, samples=pd.DataFrame())
    rl_points = pd.DataFrame(
        {"d": [0.0, 1.0, 2.0], "kl": [0.0, 1.0, 4.0], "gold": [0.2, 0.5, 0.6], "proxy": [0.2, 0.7, 1.1]}
    )
    # the figures' JSON: escaped for plotly, quotes left as they are
    curves = training_curves_figure({name: run})
    assert {t.name for t in curves.data} == {
        plotly_text(f"{name} objective/scores"),
        plotly_text(f"{name} objective/kl"),
    }
    assert curves.layout.xaxis.dtick == 1 and curves.layout.yaxis.title.text  # whole steps, titled axes
    point = [t for t in gold_vs_kl_figure(summary).data if t.name != "sft"][0]
    assert point.name == point.text[0] == plotly_text(name) and '"q"' in point.name and "&quot;" not in point.name
    path = write_report(
        tmp_path / "report.html",
        title="t",
        summary=summary,
        runs={name: run},
        samples=samples,
        figures={
            "Over-optimisation": overoptimization_figure(rl=rl_points, rl_label=name),
            "Frontier": frontier_figure(frontier_points(summary, method_of=lambda p: p)),
        },
    )
    page = path.read_text()
    assert f"<td>{html.escape(name)}</td>" in page  # tables: escaped once as HTML
    seen = look_at(path)
    assert seen["plots"] == 4
    assert seen["pwned"] is None and seen["links"] == 0 and seen["images"] == 0 and seen["page_images"] == 0
    texts = seen["texts"]
    assert name in texts  # gold-vs-KL's label and legend entry
    assert f"{name} objective/scores" in texts and f"{name} snapshots" in texts  # curves' and frontier's legends
    assert f"{name}: R(d) = d (a - b log d)" in texts  # the over-optimisation panel's title
    assert not any("&quot;" in t or "&amp;" in t or "&lt;" in t for t in texts)
    assert seen["page_text"].count(name) >= 3  # the summary table and the samples side by side, as text
