"""Our PPO: the math on hand-computed tensors, then short runs of the tiny model (score goes up; shared value head;
LoRA; two processes; interrupt and resume; NaN stop)."""

import math
import os
from pathlib import Path

import numpy as np
import pytest
from two_processes import launch_two_cpu_processes
import torch

from rlhfkit.judges import VaderJudge
from rlhfkit.runs import NonFiniteLossError, load
from rlhfkit.train import ppo
from rlhfkit.train.ppo import (
    METRIC_NAMES,
    AdaptiveKLController,
    PPOSettings,
    compute_gae,
    kl_penalty,
    policy_loss,
    train_ppo,
    value_loss,
    whiten,
)

# Budgets for the mechanics tests: a couple of cheap steps.
SMALL = dict(
    total_steps=2, batch_size=8, max_new_tokens=16, num_ppo_epochs=1, num_mini_batches=1, progress=False, device="cpu"
)


@pytest.fixture(scope="module")
def task():
    from rlhfkit.tiny import reviews_task

    return reviews_task()


# ---------------------------------------------------------------------------------------------------------------
# The math
# ---------------------------------------------------------------------------------------------------------------


def test_gae_and_returns_match_a_hand_calculation():
    # rewards r = (0, 0, 1), values V = (0.5, 0.6, 0.7), gamma 0.9, lambda 0.8 (gamma * lambda = 0.72):
    # delta_2 = 1 - 0.7 = 0.3                      A_2 = 0.3
    # delta_1 = 0.9 * 0.7 - 0.6 = 0.03             A_1 = 0.03 + 0.72 * 0.3 = 0.246
    # delta_0 = 0.9 * 0.6 - 0.5 = 0.04             A_0 = 0.04 + 0.72 * 0.246 = 0.21712
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.6, 0.7]])
    adv, ret = compute_gae(rewards, values, torch.ones(1, 3), gamma=0.9, lam=0.8)
    assert adv.tolist()[0] == pytest.approx([0.21712, 0.246, 0.3])
    assert ret.tolist()[0] == pytest.approx([0.71712, 0.846, 1.0])
    # A padded row (the response ended after 3 tokens) gives the same numbers, whatever sits in the padding.
    adv_p, ret_p = compute_gae(
        torch.tensor([[0.0, 0.0, 1.0, 5.0]]),
        torch.tensor([[0.5, 0.6, 0.7, 9.0]]),
        torch.tensor([[1.0, 1.0, 1.0, 0.0]]),
        gamma=0.9,
        lam=0.8,
    )
    assert adv_p.tolist()[0] == pytest.approx([0.21712, 0.246, 0.3, 0.0])
    assert ret_p.tolist()[0] == pytest.approx([0.71712, 0.846, 1.0, 0.0])
    # lambda = 1, gamma = 1: advantages are Monte-Carlo returns minus values.
    adv1, ret1 = compute_gae(rewards, values, torch.ones(1, 3), gamma=1.0, lam=1.0)
    assert ret1.tolist()[0] == pytest.approx([1.0, 1.0, 1.0])
    assert adv1.tolist()[0] == pytest.approx([0.5, 0.4, 0.3])


def test_kl_estimators():
    logp = torch.log(torch.tensor([[0.5, 0.25, 0.8]]))
    ref = torch.log(torch.tensor([[0.25, 0.5, 0.8]]))
    k1 = kl_penalty(logp, ref, "k1")
    assert k1.tolist()[0] == pytest.approx([math.log(2), -math.log(2), 0.0])
    # k1 summed over a response is the log-ratio of the whole sequence.
    assert float(k1.sum()) == pytest.approx(float(logp.sum() - ref.sum()))
    # k3 = (r - 1) - log r with r = pi_ref / pi: r = 0.5 -> -0.5 + log 2; r = 2 -> 1 - log 2; r = 1 -> 0.
    k3 = kl_penalty(logp, ref, "k3")
    assert k3.tolist()[0] == pytest.approx([-0.5 + math.log(2), 1 - math.log(2), 0.0])
    assert (kl_penalty(torch.randn(1000), torch.randn(1000), "k3") >= 0).all()
    # Both are unbiased estimates of KL(p || q) when tokens are sampled from p.
    p = torch.tensor([0.6, 0.3, 0.1])
    q = torch.tensor([0.2, 0.3, 0.5])
    exact = float((p * (p / q).log()).sum())
    tokens = torch.multinomial(p, 200_000, replacement=True, generator=torch.Generator().manual_seed(0))
    for estimator in ("k1", "k3"):
        estimate = float(kl_penalty(p.log()[tokens], q.log()[tokens], estimator).mean())
        assert estimate == pytest.approx(exact, abs=0.01)
    with pytest.raises(ValueError, match="k1.*k3"):
        kl_penalty(logp, ref, "k9")


def test_clipped_policy_loss_and_clipfrac():
    # eps = 0.2. Token 0: ratio 1.5, A = +1 -> max(-1.5, -1.2) = -1.2, clipped.
    # Token 1: ratio 1, A = -2 -> 2, not clipped.  Token 2: ratio 0.5, A = -1 -> max(0.5, 0.8) = 0.8, clipped.
    # Token 3 is padding. Loss = (-1.2 + 2 + 0.8) / 3, clipfrac = 2 / 3.
    old = torch.zeros(1, 4)
    logp = torch.log(torch.tensor([[1.5, 1.0, 0.5, 7.0]])).requires_grad_()
    adv = torch.tensor([[1.0, -2.0, -1.0, 100.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    loss, stats = policy_loss(logp, old, adv, mask, cliprange=0.2)
    assert float(loss.detach()) == pytest.approx(1.6 / 3)
    assert float(stats["clipfrac"]) == pytest.approx(2 / 3)
    assert float(stats["ratio"]) == pytest.approx(1.0)
    assert float(stats["approxkl"]) == pytest.approx(0.5 * (math.log(1.5) ** 2 + math.log(0.5) ** 2) / 3)
    loss.backward()
    # Clipped tokens (and padding) get no gradient; the unclipped one gets -A * ratio / n = 2 / 3.
    assert logp.grad.tolist()[0] == pytest.approx([0.0, 2 / 3, 0.0, 0.0])


def test_clipped_value_loss():
    # cliprange_value 0.2. Token 0: old 0, new 1, return 1 -> unclipped 0, clipped (0.2 - 1)^2 = 0.64, clipped.
    # Token 1: old 0, new 0.1, return 1 -> both 0.81, not counted as clipped.  Token 2 is padding.
    old = torch.zeros(1, 3)
    new = torch.tensor([[1.0, 0.1, 3.0]])
    returns = torch.tensor([[1.0, 1.0, -4.0]])
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    loss, clipfrac = value_loss(new, old, returns, mask, cliprange_value=0.2)
    assert float(loss) == pytest.approx(0.5 * (0.64 + 0.81) / 2)
    assert float(clipfrac) == pytest.approx(0.5)


def test_whitening_uses_only_the_masked_entries():
    values = torch.tensor([[1.0, 2.0, 3.0, 1000.0], [4.0, 5.0, -1000.0, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 1.0]])
    out = whiten(values, mask)
    kept = out[mask.bool()]
    assert float(kept.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(kept.std()) == pytest.approx(1.0, abs=1e-4)
    assert out[~mask.bool()].tolist() == [0.0, 0.0]
    # Same as whitening the six real numbers on their own.
    real = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0, 7.0])
    assert kept.tolist() == pytest.approx(((real - real.mean()) / real.std()).tolist(), abs=1e-5)
    # shift_mean=False keeps the mean and only scales.
    kept_scaled = whiten(values, mask, shift_mean=False)[mask.bool()]
    assert float(kept_scaled.mean()) == pytest.approx(float(real.mean()), abs=1e-5)


def test_adaptive_kl_controller_moves_beta_towards_the_target():
    up = AdaptiveKLController(0.1, target=6.0, horizon=1000)
    up.update(current_kl=12.0, n_steps=100)  # error clipped to +0.2: beta *= 1 + 0.2 * 100 / 1000
    assert up.value == pytest.approx(0.1 * 1.02)
    down = AdaptiveKLController(0.1, target=6.0, horizon=1000)
    down.update(current_kl=5.4, n_steps=100)  # error -0.1
    assert down.value == pytest.approx(0.1 * 0.99)
    state = up.state_dict()
    fresh = AdaptiveKLController(0.5, target=6.0, horizon=1000)
    fresh.load_state_dict(state)
    assert fresh.value == up.value


def test_settings_validate_and_accept_trl_names():
    settings = PPOSettings(trl_overrides={"response_length": 20, "lam": 0.9, "save_steps": 3})
    assert (settings.max_new_tokens, settings.lam, settings.save_every) == (20, 0.9, 3)
    with pytest.raises(ValueError, match="unknown setting 'bogus'"):
        PPOSettings(trl_overrides={"bogus": 1})
    with pytest.raises(ValueError, match="kl_estimator"):
        PPOSettings(kl_estimator="k2")
    with pytest.raises(ValueError, match="value_model"):
        PPOSettings(value_model="twin")


def test_rollout_logprobs_from_generate_match_a_forward_pass(task):
    # The PPO ratio's denominator: the logits generate() sampled from, tempered, must be the policy's own.
    from rlhfkit.models import load_policy, load_tokenizer, resolve_model

    path = resolve_model("tiny")
    policy, tokenizer = load_policy(path, device="cpu"), load_tokenizer(path, padding_side="left")
    settings = PPOSettings(**SMALL, temperature=0.7)
    torch.manual_seed(0)
    rollout = ppo._generate(
        policy,
        tokenizer,
        task.train_prompts[:16],
        settings,
        ppo._eos_ids(policy, tokenizer),
        torch.device("cpu"),
        with_logprobs=True,
    )
    recomputed, _, _ = ppo._forward(policy, rollout, slice(None), settings.temperature)
    inside = rollout.mask.bool()
    assert rollout.has_eos.any() and (~inside).any()  # some responses ended early: there is padding to skip
    assert torch.allclose(rollout.logprobs[inside], recomputed[inside], atol=1e-4)
    assert (rollout.logprobs[inside] < 0).all() and (rollout.logprobs[~inside] == 0).all()
    # Tempering matters: the untempered log-probs of the same tokens differ.
    untempered, _, _ = ppo._forward(policy, rollout, slice(None), 1.0)
    assert not torch.allclose(rollout.logprobs[inside], untempered[inside], atol=1e-2)


def test_rollouts_ignore_the_models_own_generation_config(task, tiny_model, meddling_model, tiny_tokenizer):
    # A checkpoint's generation_config (n-gram blocking, repetition penalty, min_new_tokens, top-k) must not reshape
    # what PPO samples: the recorded log-probs are the policy's, and EOS may come whenever the policy emits it.
    tokenizer = tiny_tokenizer
    settings = PPOSettings(**{**SMALL, "max_new_tokens": 40}, temperature=0.8)
    eos_ids = ppo._eos_ids(meddling_model, tokenizer)
    torch.manual_seed(0)
    meddled = ppo._generate(
        meddling_model, tokenizer, task.train_prompts[:16], settings, eos_ids, torch.device("cpu"), with_logprobs=True
    )
    torch.manual_seed(0)
    plain = ppo._generate(tiny_model, tokenizer, task.train_prompts[:16], settings, eos_ids, torch.device("cpu"))
    assert torch.equal(meddled.responses, plain.responses)
    recomputed, _, _ = ppo._forward(tiny_model, meddled, slice(None), settings.temperature)
    inside = meddled.mask.bool()
    assert (meddled.logprobs[inside] - recomputed[inside]).abs().max() < 1e-4
    lengths = meddled.mask.sum(1)
    assert (meddled.has_eos & (lengths < 24)).any()  # min_new_tokens=24 did not hold EOS back


# ---------------------------------------------------------------------------------------------------------------
# Runs of the tiny model
# ---------------------------------------------------------------------------------------------------------------


def _eval_score(model_path, prompts, seed=123):
    """Mean VADER score of seeded samples (temperature 1) on held-out prompts."""
    from rlhfkit.models import load_policy, load_tokenizer
    from rlhfkit.sampling import SamplingSettings, sample_candidates

    model = load_policy(model_path, device="cpu")
    table = sample_candidates(
        model,
        load_tokenizer(model_path),
        prompts,
        SamplingSettings(k=2, seed=seed, max_new_tokens=48, batch_size=64),
        progress=False,
    )
    return float(np.mean(VaderJudge()(table.prompt.tolist(), table.response.tolist())))


@pytest.mark.slow
def test_ppo_raises_the_vader_score(tmp_path, task, tiny_path):
    seen = []
    settings = PPOSettings(total_steps=16, progress=False, device="cpu", seed=0)
    run = train_ppo(
        "tiny",
        VaderJudge(),
        task.train_prompts,
        settings,
        run_dir=tmp_path / "ppo",
        callbacks=[lambda step, metrics, samples: seen.append((step, metrics, samples))],
    )
    scores = run.metrics["objective/scores"]
    # Rollout scores: the first steps sample the initial policy, the last ones the trained one.
    assert scores.iloc[-4:].mean() > scores.iloc[:3].mean() + 0.15, scores.tolist()
    # Held-out prompts, seeded sampling: the saved model beats the starting one.
    held_out = task.eval_prompts[:48]
    before, after = _eval_score(tiny_path, held_out), _eval_score(run.model_path, held_out)
    assert after > before + 0.15, (before, after)
    # What the run wrote.
    assert run.status["state"] == "finished"
    assert list(run.metrics["step"]) == list(range(1, 17))
    assert set(METRIC_NAMES) <= set(run.metrics.columns)
    assert run.metrics["episode"].iloc[-1] == 16 * 32
    assert (run.metrics["objective/kl"].iloc[1:] > 0).all()
    assert run.metrics["objective/kl_coef"].eq(0.05).all()
    assert run.config["kl_estimator"] == "k1" and run.config["value_model"] == "separate"
    assert {"prompt", "response", "score", "step"} <= set(run.samples.columns) and len(run.samples) == 16 * 4
    assert (run.model_path / "model.safetensors").exists() and (run.model_path / "tokenizer.json").exists()
    summary = run.summary
    assert summary["steps"] == 16 and summary["final_score"] > summary["initial_score"]
    assert summary["seconds_per_step"] > 0 and summary["kl_estimator"] == "k1"
    # Callbacks saw every step, with the same numbers that were logged.
    assert [s for s, _, _ in seen] == list(range(1, 17))
    assert seen[-1][1]["objective/scores"] == pytest.approx(scores.iloc[-1])
    assert seen[0][2] and seen[0][2][0]["response"] == run.samples.response.iloc[0]


def _weights(path):
    from safetensors.torch import load_file

    return load_file(str(Path(path) / "model.safetensors"))


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory, task):
    # Also exercises gradient accumulation, the k3 estimator, the adaptive beta and the missing-EOS penalty.
    settings = PPOSettings(
        **SMALL,
        value_model="shared",
        save_every=1,
        learning_rate=3e-3,
        gradient_accumulation_steps=2,
        kl_estimator="k3",
        target_kl=1.0,
        kl_horizon=100,
        missing_eos_penalty=0.5,
    )
    return train_ppo("tiny", "vader", task.train_prompts, settings, run_dir=tmp_path_factory.mktemp("shared"))


def test_shared_value_head_trains_the_policy_and_logs_every_metric(shared_run, tiny_path):
    assert shared_run.status["state"] == "finished"
    assert set(METRIC_NAMES) <= set(shared_run.metrics.columns)
    assert list(shared_run.metrics["step"]) == [1, 2]
    assert shared_run.config["kl_estimator"] == "k3" and shared_run.config["value_model"] == "shared"
    # Step 1 samples the starting policy, identical to the reference: KL 0 < target, so beta shrinks by
    # 20% * batch / horizon.
    assert shared_run.metrics["objective/kl"].iloc[0] == pytest.approx(0.0, abs=1e-6)
    assert shared_run.metrics["objective/kl_coef"].tolist() == pytest.approx([0.05, 0.05 * (1 - 0.2 * 8 / 100)])
    before, after = _weights(tiny_path), _weights(shared_run.model_path)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("layers.0.self_attn" in k for k in changed) and any("embed_tokens" in k for k in changed)
    # The value head is a head on the policy, kept in the checkpoint (not in the saved causal LM).
    checkpoint = _weights_of_checkpoint(shared_run.path)
    assert {"value_head.weight", "value_head.bias"} <= set(checkpoint)
    assert not any(k.startswith("value_model.") for k in checkpoint)


@pytest.mark.parametrize(
    "precision,device_dtype",
    [("no", None), ("bf16", None), ("bf16", torch.bfloat16)],
    ids=["fp32", "bf16-autocast", "bf16-autocast-bf16-device"],
)
def test_first_step_has_zero_kl_and_ratio_one_in_every_precision(tmp_path, task, monkeypatch, precision, device_dtype):
    # Step 1 samples the starting policy, identical to the reference: KL 0 and ratio 1 up to float error, in bf16
    # too. "bf16-device" makes the CPU pick bf16 for frozen weights as a GPU does.
    if device_dtype is not None:
        monkeypatch.setattr(ppo, "pick_dtype", lambda device, dtype=None: device_dtype)
    settings = PPOSettings(**{**SMALL, "total_steps": 1}, mixed_precision=precision)
    run = train_ppo("tiny", "vader", task.train_prompts, settings, run_dir=tmp_path / "first")
    first = run.metrics.iloc[0]  # one epoch, one minibatch: the update's numbers are its first minibatch's
    assert run.config["mixed_precision"] == precision
    assert abs(first["objective/kl"]) < 1e-5, first["objective/kl"]
    assert first["policy/clipfrac_avg"] == 0.0
    assert first["policy/approxkl_avg"] < 1e-10 and first["val/ratio"] == pytest.approx(1.0, abs=1e-6)


@pytest.fixture(scope="module")
def tempered_run(tmp_path_factory, task):
    """One step at temperature 0.7 with short responses (some cut without EOS) and a missing-EOS penalty; every
    sampled row goes to samples.jsonl, and the rollout is kept for the checks."""
    rollouts, generate = [], ppo._generate

    def keep(*args, **kwargs):
        rollouts.append(generate(*args, **kwargs))
        return rollouts[-1]

    settings = PPOSettings(
        **{**SMALL, "total_steps": 1, "max_new_tokens": 12}, temperature=0.7, missing_eos_penalty=0.5, num_samples=8
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ppo, "_generate", keep)
        run = train_ppo("tiny", "vader", task.train_prompts, settings, run_dir=tmp_path_factory.mktemp("tempered"))
    return run, rollouts[0]


def test_entropy_metrics_describe_the_tempered_distribution_that_was_sampled(tempered_run, tiny_model):
    run, rollout = tempered_run
    with torch.no_grad():
        _, _, logits = ppo._forward(tiny_model, rollout, slice(None), 0.7)
    tempered = float(ppo.masked_mean(ppo.entropy_from_logits(logits, 0.7), rollout.mask))
    untempered = float(ppo.masked_mean(ppo.entropy_from_logits(logits), rollout.mask))
    assert untempered - tempered > 0.1  # the two really differ at T = 0.7
    # One epoch, one minibatch: the update's forward pass is the rollout policy's.
    assert run.metrics["policy/entropy_avg"].iloc[0] == pytest.approx(tempered, abs=1e-4)
    sampled = float((-rollout.logprobs * rollout.mask).sum(1).mean())  # log-probs of what was sampled, tempered
    assert run.metrics["objective/entropy"].iloc[0] == pytest.approx(sampled, abs=1e-4)


def test_samples_log_the_judge_score_and_the_score_with_the_eos_penalty(tempered_run):
    run, rollout = tempered_run
    rows = run.samples
    assert len(rows) == 8 and (~rows.has_eos).any() and rows.has_eos.any()
    assert rows.has_eos.tolist() == rollout.has_eos.tolist()
    penalty = np.where(rows.has_eos, 0.0, 0.5)
    assert rows.score_with_eos_penalty.tolist() == pytest.approx((rows.score - penalty).tolist(), abs=1e-6)
    # Every response of the step is in the samples: objective/scores is the mean of the penalised score.
    assert run.metrics["objective/scores"].iloc[0] == pytest.approx(rows.score_with_eos_penalty.mean(), abs=1e-6)


def test_eos_count_is_the_eos_tokens_in_the_responses(tempered_run, tiny_tokenizer):
    run, rollout = tempered_run
    in_response = (rollout.responses == tiny_tokenizer.eos_token_id) & rollout.mask.bool()
    assert run.metrics["val/num_eos_tokens"].iloc[0] == int(in_response.sum()) == int(rollout.has_eos.sum())


def test_sampling_streams_of_seeds_and_processes_never_coincide():
    # seed + rank gave (seed s, process 1) the stream of (seed s + 1, process 0).
    seeds = [ppo._sampling_seed(s, rank, step) for s in range(40) for rank in range(8) for step in (0, 5, 10)]
    assert len(set(seeds)) == len(seeds)
    assert all(0 <= x < 2**64 for x in seeds)
    assert ppo._sampling_seed(3, 0, 0) == ppo._sampling_seed(3, 0, 0)  # reproducible


def test_gradient_accumulation_does_not_change_the_update(tmp_path, task):
    # Micro-batch losses are weighted by their share of the minibatch's tokens: 1 x 8 and 2 x 4 give one update.
    weights = []
    for steps in (1, 2):
        settings = PPOSettings(**{**SMALL, "num_ppo_epochs": 3}, gradient_accumulation_steps=steps, learning_rate=1e-3)
        run = train_ppo("tiny", "vader", task.train_prompts, settings, run_dir=tmp_path / f"accumulate-{steps}")
        weights.append(_weights(run.model_path))
    whole, accumulated = weights
    largest = max(float((whole[k] - accumulated[k]).abs().max()) for k in whole)
    assert largest < 2e-6, largest


def test_frozen_value_backbone_trains_only_the_value_head(tmp_path, task, tiny_path):
    settings = PPOSettings(**SMALL, train_value_backbone=False, save_every=1, learning_rate=3e-3)
    run = train_ppo("tiny", "vader", task.train_prompts, settings, run_dir=tmp_path / "frozen")
    assert run.status["state"] == "finished" and run.config["train_value_backbone"] is False
    assert run.config["value_learning_rate"] == pytest.approx(10 * 3e-3)  # a lone head gets 10x by default
    assert set(METRIC_NAMES) <= set(run.metrics.columns) and run.metrics["loss/value_avg"].notna().all()
    # Trainable: the whole policy and the value model's score head, none of the value backbone.
    checkpoint = _weights_of_checkpoint(run.path)
    assert [k for k in checkpoint if k.startswith("value_model.")] == ["value_model.score.weight"]
    assert any(k.startswith("policy.model.layers.0.") for k in checkpoint)
    before, after = _weights(tiny_path), _weights(run.model_path)
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("train_backbone", [True, False])
def test_shared_value_head_on_detached_features_leaves_the_policy_to_the_policy_loss(tiny_path, train_backbone):
    # value_model="shared" with train_value_backbone=False: the value loss reaches the head only, so it cannot
    # move the policy (on SmolLM2 with LoRA the shared head's value loss alone drifted PPO to KL 6).
    from rlhfkit.models import load_policy
    from rlhfkit.train.ppo import PolicyAndValue

    torch.manual_seed(0)
    model = PolicyAndValue(load_policy(str(tiny_path)), None, train_backbone)
    ids = torch.randint(5, 50, (2, 12))
    mask = torch.ones_like(ids)
    _, values = model(ids, mask, torch.arange(12).expand(2, 12))
    values.pow(2).sum().backward()
    assert model.value_head.weight.grad is not None and model.value_head.weight.grad.abs().sum() > 0
    policy_grads = [p.grad for p in model.policy.parameters() if p.grad is not None and p.grad.abs().sum() > 0]
    assert bool(policy_grads) is train_backbone


def test_lora_with_a_detached_shared_value_head_trains(tmp_path, task):
    # The shared head with LoRA reads detached features by default: a whole run, the head at 10x the policy's rate.
    from rlhfkit.models import LoraSettings

    settings = PPOSettings(**SMALL, lora=LoraSettings(r=4), value_model="shared", learning_rate=1e-3)
    run = train_ppo("tiny", "vader", task.train_prompts, settings, run_dir=tmp_path / "lora_detached")
    assert run.status["state"] == "finished" and run.config["value_model"] == "shared"
    assert run.config["value_learning_rate"] == pytest.approx(1e-2)
    assert run.metrics["loss/value_avg"].notna().all()


def _weights_of_checkpoint(run_path):
    from safetensors.torch import load_file

    (folder,) = sorted((Path(run_path) / "checkpoints").glob("step-*"))
    return load_file(str(folder / "trainable.safetensors"))


def test_lora_trains_only_the_adapter_and_value_head(tmp_path, task, tiny_path, monkeypatch):
    from rlhfkit.models import LoraSettings

    # The reference must come from the same weights with the adapter off: loading a second copy fails the test.
    def no_second_copy(*args, **kwargs):
        raise AssertionError("LoRA mode loaded a separate reference model")

    monkeypatch.setattr(ppo, "load_reference", no_second_copy)
    settings = PPOSettings(**SMALL, lora=LoraSettings(r=4, alpha=8, dropout=0.0), learning_rate=1e-2, save_every=1)
    run = train_ppo("tiny", VaderJudge(), task.train_prompts, settings, run_dir=tmp_path / "lora")
    # The default value function with LoRA: a separate model (here the policy's own weights, no value_model path
    # given) with its backbone frozen.
    assert run.status["state"] == "finished" and run.config["value_model"] == "separate"
    assert run.config["train_value_backbone"] is False and run.config["value_learning_rate"] == pytest.approx(0.1)
    assert set(METRIC_NAMES) <= set(run.metrics.columns)
    # Trainable = the policy's LoRA matrices + the value model's score head, nothing else.
    trainable = _weights_of_checkpoint(run.path)
    value_part = sorted(k for k in trainable if k.startswith("value_model."))
    assert value_part == ["value_model.score.weight"], value_part
    assert all("lora_" in k for k in trainable if k not in value_part), list(trainable)
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in trainable.items())  # B starts at 0: it moved
    # The saved model is a plain causal LM with the adapter merged: adapted layers changed, the rest did not.
    before, after = _weights(tiny_path), _weights(run.model_path)
    assert set(before) == set(after)
    assert not torch.equal(
        before["model.layers.0.self_attn.q_proj.weight"], after["model.layers.0.self_attn.q_proj.weight"]
    )
    assert torch.equal(before["model.embed_tokens.weight"], after["model.embed_tokens.weight"])
    assert torch.equal(before["model.norm.weight"], after["model.norm.weight"])
    assert (run.path / "adapter" / "adapter_model.safetensors").exists()


def _launch_two_processes(run_dir, *args):
    """tests/ppo_two_process_script.py under `accelerate launch` with two CPU processes (hard timeout)."""
    script = Path(__file__).parent / "ppo_two_process_script.py"
    return launch_two_cpu_processes(script, run_dir, *args, env={"RLHFKIT_CACHE": os.environ["RLHFKIT_CACHE"]})


@pytest.mark.slow
def test_two_processes_with_accelerate_launch(tmp_path, shared_run):
    run_dir = tmp_path / "two"
    done = _launch_two_processes(run_dir)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for rank in (0, 1):  # a wrong set-up silently starts one process per rank: make sure there were two
        assert f"rank={rank} num_processes=2 done steps=2" in done.stdout, done.stdout
    run = load(run_dir)
    assert run.config["num_processes"] == 2 and run.summary["num_processes"] == 2
    assert run.status["state"] == "finished" and list(run.metrics["step"]) == [1, 2]
    assert set(run.metrics.columns) == set(shared_run.metrics.columns)
    assert run.metrics["episode"].tolist() == [8, 16]  # 4 prompts per process per step
    assert (run.model_path / "model.safetensors").exists()
    # Only the main process wrote: one row per step, one set of samples per step.
    assert len(run.samples) == 2 * 4


@pytest.mark.slow
def test_a_failing_process_is_named_in_the_status_not_its_peers_lost_connection(tmp_path):
    run_dir = tmp_path / "two"
    done = _launch_two_processes(run_dir, "judge-fails-on-rank-1")
    assert done.returncode != 0, done.stdout[-3000:]
    status = load(run_dir).status
    assert status["state"] == "failed", status
    assert "the judge broke on process 1" in status["message"] and "process 1" in status["message"], status
    assert status["rank"] == 1 and status["step"] == 1


def test_interrupt_then_resume_continues_the_same_run(tmp_path, task):
    settings = PPOSettings(**{**SMALL, "total_steps": 4}, save_every=100)

    def interrupt_at_2(step, metrics, samples):
        if step == 2:
            raise KeyboardInterrupt

    run_dir = tmp_path / "interrupted"
    with pytest.raises(KeyboardInterrupt):
        train_ppo("tiny", VaderJudge(), task.train_prompts, settings, run_dir=run_dir, callbacks=[interrupt_at_2])
    run = load(run_dir)
    assert run.status["state"] == "interrupted" and run.status["step"] == 2
    assert Path(run.status["checkpoint"]).name == "step-000002"
    saved = {p.name for p in Path(run.status["checkpoint"]).iterdir()}
    assert {"trainable.safetensors", "optimizer.pt", "rng.pt", "state.json"} <= saved
    assert run.model_path is None

    resumed = train_ppo("tiny", VaderJudge(), task.train_prompts, settings, run_dir=run_dir, resume=True)
    assert resumed.status["state"] == "finished"
    assert list(resumed.metrics["step"]) == [1, 2, 3, 4]
    assert resumed.metrics["episode"].tolist() == [8, 16, 24, 32]
    assert resumed.summary["steps"] == 4 and resumed.model_path is not None

    # Weights, optimizer, prompt order and random streams all came back: the same as a run never interrupted.
    straight = train_ppo("tiny", VaderJudge(), task.train_prompts, settings, run_dir=tmp_path / "straight")
    for name in ("objective/scores", "objective/kl", "loss/policy_avg"):
        assert resumed.metrics[name].tolist() == pytest.approx(straight.metrics[name].tolist(), abs=1e-4), name


# Two minibatches per step, so that a step's update can be cut between its optimizer steps.
RESUMABLE = dict(SMALL, total_steps=3, num_mini_batches=2)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, task):
    return train_ppo(
        "tiny",
        VaderJudge(),
        task.train_prompts,
        PPOSettings(**RESUMABLE, save_every=1),
        run_dir=tmp_path_factory.mktemp("uninterrupted"),
    )


def _adam_steps(checkpoint):
    state = torch.load(Path(checkpoint) / "optimizer.pt", weights_only=False)["state"]
    return {int(s["step"]) for s in state.values()}


def _assert_same_run(resumed, straight, from_step):
    assert list(resumed.metrics["step"]) == [1, 2, 3] and resumed.status["state"] == "finished"
    later = resumed.metrics["step"] >= from_step
    for name in ("objective/scores", "objective/kl", "loss/policy_avg", "loss/value_avg", "policy/approxkl_avg"):
        assert resumed.metrics[name][later].tolist() == pytest.approx(
            straight.metrics[name][later].tolist(), rel=1e-6, abs=1e-7
        ), name
    before, after = _weights(straight.model_path), _weights(resumed.model_path)
    assert all(torch.allclose(before[k], after[k], rtol=0, atol=1e-7) for k in before)
    assert _adam_steps(Path(resumed.path) / "checkpoints" / "step-000003") == {6}  # 3 steps x 2 minibatches


def test_interrupt_between_minibatches_keeps_the_last_completed_step(tmp_path, task, monkeypatch, uninterrupted):
    calls = []

    def policy_loss_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:  # step 2's second minibatch: its first optimizer step has already been taken
            raise KeyboardInterrupt
        return policy_loss(*args, **kwargs)

    monkeypatch.setattr(ppo, "policy_loss", policy_loss_then_interrupt)
    run_dir = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        train_ppo("tiny", VaderJudge(), task.train_prompts, PPOSettings(**RESUMABLE, save_every=1), run_dir=run_dir)
    monkeypatch.undo()
    run = load(run_dir)
    assert run.status["state"] == "interrupted" and "partial update is discarded" in run.status["message"]
    # The checkpoint is step 1 as it was completed (2 optimizer steps), not step 1 plus part of step 2.
    assert Path(run.status["checkpoint"]).name == "step-000001"
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-000001"]
    assert _adam_steps(run.status["checkpoint"]) == {2}
    resumed = train_ppo(
        "tiny", VaderJudge(), task.train_prompts, PPOSettings(**RESUMABLE, save_every=1), run_dir=run_dir, resume=True
    )
    _assert_same_run(resumed, uninterrupted, from_step=2)


def test_interrupt_in_a_rollout_saves_the_completed_step_with_its_random_state(tmp_path, task, uninterrupted):
    calls = []

    def judge_then_interrupt(prompts, responses):
        calls.append(1)
        if len(calls) == 2:  # step 2's rollout has sampled (and drawn random numbers) but nothing was updated
            raise KeyboardInterrupt
        return VaderJudge()(prompts, responses)

    run_dir = tmp_path / "cut"
    settings = PPOSettings(**RESUMABLE, save_every=100)  # the interrupt itself has to write the checkpoint
    with pytest.raises(KeyboardInterrupt):
        train_ppo("tiny", judge_then_interrupt, task.train_prompts, settings, run_dir=run_dir)
    run = load(run_dir)
    assert run.status["state"] == "interrupted" and Path(run.status["checkpoint"]).name == "step-000001"
    assert _adam_steps(run.status["checkpoint"]) == {2}
    resumed = train_ppo(
        "tiny", VaderJudge(), task.train_prompts, PPOSettings(**RESUMABLE, save_every=1), run_dir=run_dir, resume=True
    )
    _assert_same_run(resumed, uninterrupted, from_step=2)


def test_non_finite_loss_stops_with_the_last_good_checkpoint(tmp_path, task):
    calls = []

    def reward_nan_from_step_3(prompts, responses):
        calls.append(len(responses))
        return [float("nan") if len(calls) >= 3 else 0.5] * len(responses)

    settings = PPOSettings(**{**SMALL, "total_steps": 5}, save_every=2)
    run_dir = tmp_path / "nan"
    with pytest.raises(NonFiniteLossError, match="step 3") as err:
        train_ppo("tiny", reward_nan_from_step_3, task.train_prompts, settings, run_dir=run_dir)
    good = run_dir / "checkpoints" / "step-000002"
    assert str(good) in str(err.value) and "non-finite scores" in str(err.value)
    assert (good / "state.json").exists()
    run = load(run_dir)
    assert run.status["state"] == "failed" and run.status["step"] == 3
    assert list(run.metrics["step"]) == [1, 2] and run.model_path is None


def test_bad_inputs_fail_early_with_a_clear_message(tmp_path, task):
    with pytest.raises(ValueError, match="at least one prompt"):
        train_ppo("tiny", "vader", [], PPOSettings(**SMALL), run_dir=tmp_path / "a")
    with pytest.raises(ValueError, match="prompt 1"):
        train_ppo("tiny", "vader", ["fine", ""], PPOSettings(**SMALL), run_dir=tmp_path / "b")
    with pytest.raises(ValueError, match="shared"):
        train_ppo(
            "tiny",
            "vader",
            ["fine"],
            PPOSettings(**SMALL, value_model="shared"),
            run_dir=tmp_path / "c",
            value_model="tiny",
        )
    with pytest.raises(ValueError, match="returned 1 scores for 8 responses"):
        train_ppo("tiny", lambda p, r: [0.0], task.train_prompts, PPOSettings(**SMALL), run_dir=tmp_path / "d")
    assert load(tmp_path / "d").status["state"] == "failed"
