"""The comparison helpers notebooks 04-06 use: a proxy's pairwise agreement with gold, an RL run's proxy and gold
step by step, and a reward on preference pairs (synthetic inputs with known answers; untrusted names escaped)."""

import math

import numpy as np
import pandas as pd
import pytest

from rlhfkit.compare import pairwise_agreement, proxy_gold_steps_figure, reward_pairs_figure

XSS = "<b>bold</b> $x$"


def test_pairwise_agreement_counts_pairs_of_the_same_prompt_with_different_gold():
    candidates = pd.DataFrame(
        {
            "prompt_index": [0, 0, 0, 1, 1, 2, 2],
            "gold": [0.1, 0.5, 0.9, 0.3, 0.3, 0.2, 0.8],
            "good": [1.0, 2.0, 3.0, 5.0, 1.0, 0.0, 1.0],  # orders every decided pair as gold does
            "bad": [3.0, 2.0, 1.0, 0.0, 0.0, 1.0, 0.0],  # orders every one the other way
            "tied": [1.0, 1.0, 2.0, 0.0, 0.0, 1.0, 1.0],  # ties on (0.1, 0.5) and on prompt 2
        }
    )
    # prompt 0 gives 3 pairs, prompt 1 none (gold ties), prompt 2 one: 4 pairs in all
    assert pairwise_agreement(candidates, "good") == (1.0, 4)
    assert pairwise_agreement(candidates, "bad") == (0.0, 4)
    assert pairwise_agreement(candidates, "tied") == (pytest.approx((0.5 + 1 + 1 + 0.5) / 4), 4)
    # another grouping column and gold column
    renamed = candidates.rename(columns={"prompt_index": "prompt", "gold": "judge"})
    assert pairwise_agreement(renamed, "good", gold="judge", by="prompt") == (1.0, 4)
    agreement, pairs = pairwise_agreement(candidates[candidates.prompt_index == 1], "good")
    assert math.isnan(agreement) and pairs == 0


def rl_samples(steps=10, per_step=4):
    rows = []
    for step in range(1, steps + 1):
        for i in range(per_step):
            rows.append(
                {
                    "step": step,
                    "response": " ".join(["word"] * (12 - step)),
                    "score": 0.1 * step + 0.01 * i,
                    "gold": 0.5 - 0.02 * step,
                    "kl": 0.3 * step,
                }
            )
    return pd.DataFrame(rows)


def test_proxy_gold_steps_figure_draws_means_and_moving_averages_per_step():
    samples = rl_samples()
    fig = proxy_gold_steps_figure(samples, window=4, proxy_name=XSS, gold_name="gold (never seen)")
    names = [trace.name for trace in fig.data]
    assert names == [
        None,
        "&lt;b&gt;bold&lt;/b&gt; &#36;x&#36;",
        None,
        "gold (never seen)",
        "words per answer",
        "KL (nats)",
    ]
    raw_proxy, proxy_line, raw_gold, gold_line, words, kl = fig.data
    assert list(raw_proxy.x) == list(range(1, 11)) and raw_proxy.y[0] == pytest.approx(0.115)
    assert raw_proxy.opacity == 0.35 and raw_proxy.showlegend is False
    # a 4-step moving average (fewer steps at the start)
    assert proxy_line.y[0] == pytest.approx(0.115) and proxy_line.y[3] == pytest.approx(0.265)
    assert gold_line.y[-1] == pytest.approx(np.mean([0.5 - 0.02 * s for s in (7, 8, 9, 10)]))
    assert words.y[0] == 11 and kl.y[0] == pytest.approx(0.3)
    assert (raw_gold.yaxis, gold_line.yaxis, kl.yaxis) == ("y2", "y2", "y4")  # gold and KL on the right axes
    assert "&lt;b&gt;" in fig.layout.annotations[0].text  # the subplot title names the proxy, escaped


def test_reward_pairs_figure_histograms_and_rank_correlation_with_gold():
    chosen, rejected = [0.5, 0.7, 0.9], [0.1, 0.2, 0.3]
    fig = reward_pairs_figure(chosen, rejected, [3.0, 4.0, 5.0], [0.0, 1.0, 2.0], name=XSS, axis_title="beta * log")
    hist_chosen, hist_rejected, scatter = fig.data
    assert list(hist_chosen.x) == chosen and list(hist_rejected.x) == rejected
    assert list(scatter.x) == [3.0, 4.0, 5.0, 0.0, 1.0, 2.0] and list(scatter.y) == chosen + rejected
    titles = [a.text for a in fig.layout.annotations]
    assert titles[1].endswith("against gold (Spearman 1.00)") and titles[0].startswith("&lt;b&gt;bold")
    assert fig.layout.xaxis.title.text == "beta * log" and fig.layout.barmode == "overlay"
    reversed_gold = reward_pairs_figure(chosen, rejected, [0.0, -1.0, -2.0], [3.0, 2.0, 1.0])
    assert reversed_gold.layout.annotations[1].text == "reward against gold (Spearman -1.00)"
