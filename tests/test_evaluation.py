"""Evaluation: bootstrap intervals, win rate, distinct-n, KL estimators, response log-probs, the local `evaluate`
modules, and evaluate_policies on the embedded default (the reference against itself, a resampled copy, a copy
loaded from disk, and a copy with a sharpened lm_head)."""

import copy
import json
import math
import socket

import evaluate
import numpy as np
import pytest
import torch

from rlhfkit.data import Task
from rlhfkit.evaluation import (
    SUMMARY_KEYS,
    EvalSettings,
    bootstrap_ci,
    distinct,
    evaluate_policies,
    load_metric,
    pairwise_accuracy_stats,
    per_sample_kl,
    response_logprobs,
    sequence_kl,
    win_rate,
)
from rlhfkit.judges import FunctionJudge
from rlhfkit.metrics import METRIC_MODULES, metric_path
from rlhfkit.metrics.core import K1_ESTIMATOR, distinct_n
from rlhfkit.sampling import SamplingSettings, render_prompts, sample_candidates
from rlhfkit.tiny import reviews_task

REQUIRED_KEYS = {
    "gold_reward_mean",
    "gold_reward_ci",
    "proxy_reward_mean",
    "kl_to_ref",
    "kl_estimator",
    "win_rate_vs_ref",
    "win_rate_ci",
    "distinct_1",
    "distinct_2",
    "mean_length",
    "eos_rate",
    "n_samples",
}


def words(prompt, response):
    return float(len(response.split()))


@pytest.fixture(scope="module")
def length_task():
    """The reviews task's eval prompts, judged by a gold judge that favours longer responses."""
    base = reviews_task()
    return Task(
        "reviews-length",
        base.train_prompts[:4],
        base.eval_prompts[:24],
        [],
        gold_judge=FunctionJudge(words, name="words"),
    )


@pytest.fixture(scope="module")
def sharp_model(tiny_model):
    """A changed policy: the tiny model with its output logits scaled by 1.5 (a sharper distribution)."""
    model = copy.deepcopy(tiny_model)
    with torch.no_grad():
        model.lm_head.weight.mul_(1.5)
    return model


SETTINGS = EvalSettings(n_prompts=24, max_new_tokens=32, n_bootstrap=400, batch_size=24, seed=3)


@pytest.fixture(scope="module")
def evaluated(tiny_model, tiny_tokenizer, tiny_path, sharp_model, length_task):
    def chars(prompts, responses):  # a plain batched callable as the proxy reward model
        return [float(len(r)) for r in responses]

    # A re-tokenization warning may come (it depends on what was sampled); it does not change what is tested.
    return evaluate_policies(
        {"same": tiny_model, "from_path": str(tiny_path), "sharp": sharp_model},
        length_task,
        reference=tiny_model,
        tokenizer=tiny_tokenizer,
        reward_model=chars,
        settings=SETTINGS,
        progress=False,
    )


# ---------------------------------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------------------------------


def test_bootstrap_ci_covers_the_true_mean_with_the_normal_width():
    sd, n = 2.0, 20_000
    values = np.random.default_rng(123).normal(5.0, sd, n)
    lo, hi = bootstrap_ci(values, np.mean, n=1000, confidence=0.95, seed=0)
    assert lo < 5.0 < hi
    expected = 2 * 1.96 * sd / math.sqrt(n)
    assert (hi - lo) == pytest.approx(expected, rel=0.15)
    # Seeded: the same call gives the same interval; a different statistic goes through the loop path.
    assert bootstrap_ci(values, np.mean, n=1000, seed=0) == (lo, hi)
    med_lo, med_hi = bootstrap_ci(values[:2000], lambda v: float(np.median(v)), n=200)
    assert med_lo < 5.0 < med_hi


def test_bootstrap_ci_edge_cases_and_cluster_resampling():
    assert bootstrap_ci([0.7]) == (0.7, 0.7)
    with pytest.raises(ValueError, match=r"values\[1\] is nan"):
        bootstrap_ci([1.0, float("nan")])
    with pytest.raises(ValueError, match="at least one value"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci([1.0, 2.0], confidence=1.5)
    with pytest.raises(ValueError, match="one label per value"):
        bootstrap_ci([1.0, 2.0], groups=[0])
    # Four copies of each value are not four times the evidence: resampling whole groups keeps the width of the
    # original sample, while treating the copies as independent halves it.
    base = np.random.default_rng(0).normal(0, 1, 200)
    copies, groups = np.repeat(base, 4), np.repeat(np.arange(200), 4)
    naive = np.diff(bootstrap_ci(copies, n=500))[0]
    clustered = np.diff(bootstrap_ci(copies, n=500, groups=groups))[0]
    alone = np.diff(bootstrap_ci(base, n=500))[0]
    assert clustered == pytest.approx(alone, rel=0.15)
    assert clustered > 1.6 * naive
    # Unequal group sizes take the general path and still cover the mean.
    lo, hi = bootstrap_ci([1.0, 2.0, 3.0, 4.0, 5.0], n=300, groups=["a", "a", "b", "c", "c"])
    assert lo <= 3.0 <= hi


def test_win_rate_matches_a_hand_calculation():
    # Outcomes: 3>1 win, 1<2 loss, 2=2 tie, 2>0 win -> (1 + 0 + 0.5 + 1) / 4.
    result = win_rate([3, 1, 2, 2], [1, 2, 2, 0], n_bootstrap=500)
    assert result["win_rate"] == 0.625
    assert (result["wins"], result["ties"], result["losses"], result["n"]) == (2, 1, 1, 4)
    lo, hi = result["win_rate_ci"]
    assert 0.0 <= lo <= 0.625 <= hi <= 1.0
    # The same scores from a judge that favours longer responses.
    judge = FunctionJudge(words)
    policy = ["a b c", "a", "a b", "x y"]
    reference = ["a", "a b", "c d", ""]
    prompts = ["p"] * 4
    assert win_rate(judge(prompts, policy), judge(prompts, reference))["win_rate"] == 0.625
    # Against identical scores every pair ties: exactly 0.5, with no uncertainty.
    same = win_rate([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert same["win_rate"] == 0.5 and same["win_rate_ci"] == [0.5, 0.5]
    with pytest.raises(ValueError, match="policy_scores has 2 scores but reference_scores has 3"):
        win_rate([1, 2], [1, 2, 3])


def test_pairwise_accuracy_stats_counts_ties_as_half():
    result = pairwise_accuracy_stats([1.0, 0.2, 0.5, 3.0], [0.0, 0.4, 0.5, 1.0])
    assert result["accuracy"] == pytest.approx((1 + 0 + 0.5 + 1) / 4)
    assert result["mean_margin"] == pytest.approx((1.0 - 0.2 + 0.0 + 2.0) / 4)
    assert result["ties"] == 1 and result["n"] == 4
    assert pairwise_accuracy_stats([0.0] * 5, [0.0] * 5)["accuracy"] == 0.5  # a constant scorer knows nothing


def test_old_metric_names_still_work_and_warn():
    import rlhfkit.evaluation
    import rlhfkit.metrics
    import rlhfkit.metrics.core

    for module in (rlhfkit.evaluation, rlhfkit.metrics.core):
        with pytest.warns(DeprecationWarning, match="pairwise_accuracy was renamed .*pairwise_accuracy_stats"):
            assert module.pairwise_accuracy is pairwise_accuracy_stats
    for module in (rlhfkit.evaluation, rlhfkit.metrics):
        with pytest.warns(DeprecationWarning, match="METRIC_NAMES was renamed .*METRIC_MODULES"):
            assert module.METRIC_NAMES is METRIC_MODULES


def test_distinct_n_on_hand_made_strings():
    assert distinct(["a b a b"]) == {"distinct_1": 0.5, "distinct_2": 2 / 3}
    assert distinct(["a b", "a b"]) == {"distinct_1": 0.5, "distinct_2": 0.5}
    assert distinct(["a b c", "d"]) == {"distinct_1": 1.0, "distinct_2": 1.0}  # no bigram spans two texts
    assert distinct(["x x x x"], orders=[1, 2, 3]) == {"distinct_1": 0.25, "distinct_2": 1 / 3, "distinct_3": 0.5}
    assert distinct_n(["", "  "], 1) == 0.0 and distinct_n(["a"], 2) == 0.0
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        distinct_n(["a", 3], 1)


def test_sequence_kl_estimators():
    # A sample scored identically by both models: both estimators are exactly 0.
    same = sequence_kl([[-1.0, -2.5], [-0.3]], [[-1.0, -2.5], [-0.3]])
    assert same["kl_k1"] == 0.0 and same["kl_k3"] == 0.0 and same["kl_estimator"] == K1_ESTIMATOR
    # d = log pi - log pi_ref = [0.5, 0]: k1 = 0.5, k3 = (e^-0.5 - 1) + 0.5.
    k1, k3 = per_sample_kl([[-1.0, -2.0]], [[-1.5, -2.0]])
    assert k1[0] == pytest.approx(0.5) and k3[0] == pytest.approx(math.exp(-0.5) - 1 + 0.5)
    # k1 can be negative per sample, k3 never.
    rng = np.random.default_rng(0)
    policy = [rng.normal(-2, 1, size=int(n)) for n in rng.integers(1, 20, 50)]
    ref = [p + rng.normal(0, 0.5, size=p.shape) for p in policy]
    k1, k3 = per_sample_kl(policy, ref)
    assert (k1 < 0).any() and (k3 >= 0).all()
    # Summed inputs give the same k1.
    assert sequence_kl([p.sum() for p in policy], [r.sum() for r in ref])["kl_k1"] == pytest.approx(k1.mean())
    with pytest.raises(ValueError, match="sample 0: 2 policy log-probs but 1 reference"):
        per_sample_kl([[-1.0, -2.0]], [[-1.0]])


# ---------------------------------------------------------------------------------------------------------------
# Response log-probabilities
# ---------------------------------------------------------------------------------------------------------------


def test_response_logprobs_equal_a_direct_forward_pass(tiny_model, tiny_tokenizer):
    prompts = reviews_task().eval_prompts[:3]
    table = sample_candidates(
        tiny_model, tiny_tokenizer, prompts, SamplingSettings(k=2, seed=5, max_new_tokens=24), progress=False
    )
    eos = (table.finish_reason == "eos").tolist()
    row_prompts = [prompts[i] for i in table.prompt_index]
    batched = response_logprobs(
        tiny_model, tiny_tokenizer, row_prompts, table.response.tolist(), eos, batch_size=4
    )  # mixed lengths in one batch: padding must not matter
    assert len(batched) == len(table)
    for row, lps in zip(table.itertuples(), batched):
        prompt_ids = tiny_tokenizer(render_prompts(tiny_tokenizer, [row.prompt])[0], add_special_tokens=False)[
            "input_ids"
        ]
        response_ids = tiny_tokenizer(row.response, add_special_tokens=False)["input_ids"]
        response_ids += [tiny_tokenizer.eos_token_id] if row.finish_reason == "eos" else []
        ids = torch.tensor([prompt_ids + response_ids])
        with torch.no_grad():
            direct = tiny_model(ids).logits[0, :-1].log_softmax(-1)
        expected = direct.gather(-1, ids[0, 1:, None])[:, 0][len(prompt_ids) - 1 :]
        assert lps.shape == expected.shape
        torch.testing.assert_close(lps, expected, atol=1e-4, rtol=1e-4)
        if len(response_ids) - (row.finish_reason == "eos") == row.n_tokens:  # the text re-tokenized exactly
            assert float(lps.sum()) == pytest.approx(row.sum_logprob, abs=1e-3)
    # Token ids give the same numbers as the text they encode.
    ids = [tiny_tokenizer(r, add_special_tokens=False)["input_ids"] for r in table.response]
    by_ids = response_logprobs(tiny_model, tiny_tokenizer, row_prompts, ids, eos, batch_size=16)
    for a, b in zip(batched, by_ids):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="3 prompts but 2 responses"):
        response_logprobs(tiny_model, tiny_tokenizer, prompts, ["a", "b"])


# ---------------------------------------------------------------------------------------------------------------
# The evaluate modules
# ---------------------------------------------------------------------------------------------------------------


def test_metric_modules_load_offline_from_the_package_and_agree_with_the_functions(monkeypatch):
    # Offline for real: evaluate's own switch (it ignores HF_HUB_OFFLINE) and no socket may connect.
    monkeypatch.setattr(evaluate.config, "HF_EVALUATE_OFFLINE", True)

    def no_network(*args, **kwargs):
        raise OSError("network access attempted while loading a local metric")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    modules = {name: load_metric(name) for name in METRIC_MODULES}
    for name, module in modules.items():
        assert isinstance(module, evaluate.Metric) and module.name == name
        assert module.description and module.inputs_description
    assert "Efron" in modules["win_rate"].citation and "Li, Jiwei" in modules["distinct_n"].citation
    # A path to the script itself loads too.
    by_file = evaluate.load(str(metric_path("distinct_n") / "distinct_n.py"), keep_in_memory=True)

    policy, reference = [0.3, 0.9, 0.1, 0.5, 0.5], [0.2, 0.4, 0.6, 0.5, 0.1]
    assert modules["win_rate"].compute(policy_scores=policy, reference_scores=reference, n_bootstrap=300) == win_rate(
        policy, reference, n_bootstrap=300
    )
    texts = ["a b a b", "the cat sat", "the cat ran"]
    assert modules["distinct_n"].compute(predictions=texts) == distinct(texts)
    assert by_file.compute(predictions=texts, orders=[1, 3]) == distinct(texts, [1, 3])
    chosen, rejected = [1.0, 0.2, 0.5, 2.0], [0.0, 0.4, 0.5, 1.0]
    assert modules["pairwise_accuracy"].compute(
        chosen_scores=chosen, rejected_scores=rejected
    ) == pairwise_accuracy_stats(chosen, rejected)
    pol_tokens, ref_tokens = [[-1.0, -2.0, -0.5], [-0.2]], [[-1.5, -2.0, -0.1], [-0.9]]
    per_token = modules["sequence_kl"].compute(policy_logprobs=pol_tokens, ref_logprobs=ref_tokens)
    assert per_token == pytest.approx(sequence_kl(pol_tokens, ref_tokens))
    summed = modules["sequence_kl"].compute(policy_logprobs=[-3.5, -0.2], ref_logprobs=[-3.6, -0.9])
    assert summed == pytest.approx(sequence_kl([-3.5, -0.2], [-3.6, -0.9]))
    assert summed["kl_k1"] == pytest.approx(per_token["kl_k1"])

    # evaluate.combine runs modules with different inputs side by side.
    combined = evaluate.combine([modules["win_rate"], modules["distinct_n"]])
    result = combined.compute(predictions=texts, policy_scores=policy, reference_scores=reference)
    assert result["win_rate"] == win_rate(policy, reference)["win_rate"]
    assert result["distinct_2"] == distinct(texts)["distinct_2"]
    both = evaluate.combine([load_metric("win_rate"), load_metric("pairwise_accuracy")])
    result = both.compute(
        policy_scores=policy, reference_scores=reference, chosen_scores=chosen, rejected_scores=rejected
    )
    assert result["win_rate"] == 0.7 and result["accuracy"] == 0.625  # (3 + 0.5) / 5 and 2.5 / 4

    with pytest.raises(ValueError, match="unknown rlhfkit metric 'accuracy'"):
        load_metric("accuracy")


# ---------------------------------------------------------------------------------------------------------------
# evaluate_policies
# ---------------------------------------------------------------------------------------------------------------


def test_summary_has_every_key_for_every_policy(evaluated):
    assert evaluated.summary.policy.tolist() == ["reference", "same", "from_path", "sharp"]
    as_dict = evaluated.to_dict()
    assert list(as_dict) == ["reference", "same", "from_path", "sharp"]
    for name, entry in as_dict.items():
        assert REQUIRED_KEYS <= set(entry) and set(SUMMARY_KEYS) == set(entry), name
        assert entry["kl_estimator"] == "k1 (sum of per-token log-ratios on policy samples)"
        assert entry["n_samples"] == 24 and entry["n_prompts"] == 24
        for key in ("gold_reward_ci", "win_rate_ci", "proxy_reward_ci", "kl_to_ref_ci"):
            lo, hi = entry[key]
            assert lo <= hi
    json.dumps(as_dict)  # plain Python values, ready for a report
    assert set(evaluated.samples.columns) >= {
        "policy",
        "prompt",
        "response",
        "gold",
        "proxy",
        "kl_k1",
        "kl_k3",
        "n_tokens",
        "finish_reason",
    }


def test_kl_is_exactly_zero_for_the_reference_and_positive_for_a_changed_policy(
    evaluated, tiny_model, tiny_tokenizer, sharp_model
):
    rows = evaluated.summary.set_index("policy")
    samples = evaluated.samples
    for name in ("reference", "same"):  # the reference's own model scores both sides
        assert rows.loc[name, "kl_to_ref"] == 0.0 and rows.loc[name, "kl_k3"] == 0.0
        assert (samples[samples.policy == name].kl_k1 == 0.0).all()
    assert rows.loc["from_path", "kl_to_ref"] == pytest.approx(0.0, abs=1e-6)  # same weights, loaded again
    sharp = samples[samples.policy == "sharp"]
    assert rows.loc["sharp", "kl_to_ref"] > 0.5 and rows.loc["sharp", "kl_k3"] > 0.5
    assert rows.loc["sharp", "kl_to_ref_ci_lo"] > 0
    assert (sharp.kl_k3 >= 0).all()
    # The per-sample KL is the sum of per-token log-ratios, recomputed here from scratch.
    head = sharp.head(4)
    eos = (head.finish_reason == "eos").tolist()
    pol = response_logprobs(sharp_model, tiny_tokenizer, head.prompt.tolist(), head.response.tolist(), eos)
    ref = response_logprobs(tiny_model, tiny_tokenizer, head.prompt.tolist(), head.response.tolist(), eos)
    expected = [float((p.double() - r.double()).sum()) for p, r in zip(pol, ref)]
    assert head.kl_k1.tolist() == pytest.approx(expected, abs=1e-4)


def test_evaluation_samples_ignore_the_policys_own_generation_config(
    tiny_model, meddling_model, tiny_tokenizer, length_task
):
    # KL and rewards are measured on the policy's own samples: a checkpoint's generation_config (n-gram blocking,
    # repetition penalty, min_new_tokens, top-k) must not change what is drawn.
    settings = EvalSettings(n_prompts=12, max_new_tokens=32, n_bootstrap=50, batch_size=12, seed=7)
    runs = [
        evaluate_policies(
            {"policy": model},
            length_task,
            reference=tiny_model,
            tokenizer=tiny_tokenizer,
            settings=settings,
            progress=False,
        ).samples
        for model in (tiny_model, meddling_model)
    ]
    plain, meddled = (frame[frame.policy == "policy"] for frame in runs)
    assert meddled.response.tolist() == plain.response.tolist()
    assert meddled.n_tokens.tolist() == plain.n_tokens.tolist()
    assert meddled.kl_k1.tolist() == pytest.approx(plain.kl_k1.tolist(), abs=1e-6)
    assert ((meddled.finish_reason == "eos") & (meddled.n_tokens < 24)).any()


def test_win_rates_match_the_samples_and_a_resampled_copy_is_a_coin_flip(evaluated):
    rows = evaluated.summary.set_index("policy")
    assert rows.loc["reference", "win_rate_vs_ref"] == 0.5
    assert (rows.loc["reference", "win_rate_ci_lo"], rows.loc["reference", "win_rate_ci_hi"]) == (0.5, 0.5)
    # The same model drew different samples (its own seed): about 0.5, and the interval says how unsure that is.
    lo, hi = rows.loc["same", "win_rate_ci_lo"], rows.loc["same", "win_rate_ci_hi"]
    assert lo < 0.5 < hi and hi - lo > 0.2
    # Hand calculation with the longer-is-better gold judge, prompt by prompt.
    samples = evaluated.samples
    reference = samples[samples.policy == "reference"].set_index("prompt_index").response
    for name in ("same", "from_path", "sharp"):
        mine = samples[samples.policy == name].set_index("prompt_index").response
        outcomes = [
            1.0
            if len(mine[i].split()) > len(reference[i].split())
            else 0.5
            if len(mine[i].split()) == len(reference[i].split())
            else 0.0
            for i in mine.index
        ]
        assert rows.loc[name, "win_rate_vs_ref"] == pytest.approx(np.mean(outcomes)), name


def test_rewards_lengths_and_eos_rate_match_the_sampled_table(evaluated, sharp_model, tiny_tokenizer, length_task):
    rows = evaluated.summary.set_index("policy")
    samples = evaluated.samples
    for name, frame in samples.groupby("policy"):
        assert rows.loc[name, "gold_reward_mean"] == pytest.approx(frame.response.str.split().str.len().mean())
        assert rows.loc[name, "proxy_reward_mean"] == pytest.approx(frame.response.str.len().mean())
        assert (
            rows.loc[name, "gold_reward_ci_lo"]
            <= rows.loc[name, "gold_reward_mean"]
            <= rows.loc[name, "gold_reward_ci_hi"]
        )
        assert rows.loc[name, "distinct_1"] == distinct(frame.response.tolist())["distinct_1"]
    # Sampling the sharp policy again with the recorded seed reproduces its table exactly.
    sharp = samples[samples.policy == "sharp"]
    config = SamplingSettings(
        k=1, seed=int(sharp.seed.iloc[0]), max_new_tokens=SETTINGS.max_new_tokens, batch_size=SETTINGS.batch_size
    )
    table = sample_candidates(sharp_model, tiny_tokenizer, length_task.eval_prompts[:24], config, progress=False)
    assert table.response.tolist() == sharp.response.tolist()
    assert rows.loc["sharp", "eos_rate"] == pytest.approx((table.finish_reason == "eos").mean())
    assert rows.loc["sharp", "mean_length"] == pytest.approx(table.n_tokens.mean())
    assert rows.loc["sharp", "mean_length_words"] == pytest.approx(table.response.str.split().str.len().mean())
    assert 0 < rows.loc["sharp", "eos_rate"] <= 1
    assert sharp.n_tokens.max() <= SETTINGS.max_new_tokens
    assert (sharp[sharp.finish_reason == "length"].n_tokens == SETTINGS.max_new_tokens).all()


def test_bad_inputs_fail_with_a_clear_message(tiny_model, tiny_tokenizer, length_task):
    with pytest.raises(ValueError, match="a policy is named 'reference'"):
        evaluate_policies({"reference": tiny_model}, length_task, reference=tiny_model, tokenizer=tiny_tokenizer)
    with pytest.raises(ValueError, match="pass tokenizer="):
        evaluate_policies({}, length_task, reference=tiny_model)
    with pytest.raises(TypeError, match="reward_model is int"):
        evaluate_policies({}, length_task, reference=tiny_model, tokenizer=tiny_tokenizer, reward_model=3)
    with pytest.raises(ValueError, match="n_prompts must be at least 1"):
        EvalSettings(n_prompts=0)
    with pytest.raises(TypeError, match="policy 'x' is int: expected a model name, a path, a run"):
        evaluate_policies({"x": 3}, length_task, reference=tiny_model, tokenizer=tiny_tokenizer)


def test_a_run_directory_evaluates_the_model_it_saved(tmp_path, tiny_path, length_task):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_path, run / "model")
    (run / "config.json").write_text(json.dumps({"stage": "sft", "seed": 0}))  # the run's settings, not a model
    result = evaluate_policies(
        {"sft_run": run},
        length_task,
        reference=str(tiny_path),
        settings=EvalSettings(n_prompts=4, max_new_tokens=8, n_bootstrap=50),
        progress=False,
    )
    row = result.to_dict()["sft_run"]
    assert row["n_samples"] == 4 and row["kl_to_ref"] == pytest.approx(0.0, abs=1e-6)
