"""PPO for RLHF, our own (TRL deleted its PPOTrainer in 1.13), in one file you can read top to bottom.

Each step of `train_ppo`, whose loop shows them in this order (`_set_up` does everything before the first step;
`_PPOLoop` holds the state carried from step to step and a method per step):

  1. Rollout     sample one response per prompt from the current policy (chat-templated, left padded, temperature),
                 cut it after the first EOS, and record per-token log-probs of the policy (from the logits it
                 sampled from) and of the frozen reference, and the value estimates (a frozen value backbone's
                 hidden states are kept for the update, which then trains only its head).
  2. Scoring     score each (prompt, response) with `reward_fn`; the score goes on the last response token, every
                 token pays -beta * KL_t (k1 or k3 estimator).
  3. Advantages  GAE(gamma, lambda) over the response tokens; returns = advantages + values; whitened advantages.
  4. Update      several PPO epochs over shuffled minibatches: clipped policy loss + vf_coef * clipped value loss,
                 gradient clipping, optional gradient accumulation.
  5. Logging     TRL's metric names into the run's metrics.jsonl (averaged over processes) and the trackers,
                 samples; beta is fixed or follows an adaptive controller of the measured KL.
  6. Checkpoint  every `save_every` steps (weights, optimizer, beta, random state); then the callbacks.

The pure math (`compute_gae`, `whiten`, `kl_penalty`, `policy_loss`, `value_loss`, `AdaptiveKLController`) sits in
small functions above the loop so that tests check it on hand-computed tensors. Everything runs on `accelerate`:
one process, or `accelerate launch --num_processes N` (each process rolls out its share of the prompts; DDP averages
the gradients). On a CUDA device with bf16 the forward passes run under bf16 autocast with no change to the code.

Notation: P = prompt length (left padded), R = response length (right padded after EOS), B = responses.
A response token y_t is predicted from the logits at position P - 1 + t; the value V(s_t) is read at that position
too, i.e. it is the value of the state *before* y_t is generated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from rlhfkit.models import (
    LoraSettings,
    load_policy,
    load_reference,
    load_reward_model,
    load_tokenizer,
    pick_dtype,
    resolve_model,
)
from rlhfkit.runs import FIRST_FAILURE, METRICS, SAMPLES, NonFiniteLossError, Run, RunData, load
from rlhfkit.sampling import generate_neutral, neutral_generation_config, render_prompts
from rlhfkit.threads import choose_threads
from rlhfkit.train.common import save_model
from rlhfkit.train.tracking import (
    accelerate_trackers,
    claim_tracker_folder,
    report_to_names,
    start_accelerate_trackers,
    tracker_metrics,
)

__all__ = [
    "PPOSettings",
    "train_ppo",
    "compute_gae",
    "whiten",
    "masked_mean",
    "masked_var",
    "kl_penalty",
    "policy_loss",
    "value_loss",
    "entropy_from_logits",
    "AdaptiveKLController",
    "FixedKLController",
    "METRIC_NAMES",
]

# The metric names written to metrics.jsonl every step (TRL's names, so users' habits and tools carry over).
# "objective/entropy" is the sampled responses' summed -log pi (tempered) averaged over responses;
# "policy/entropy_avg" the per-token entropy of the tempered distribution during the update; "val/num_eos_tokens"
# the EOS tokens in the step's responses over all processes (TRL's meaning; each response is cut after its first
# EOS, so it is also the number of responses that ended by themselves).
METRIC_NAMES = (
    "objective/kl",
    "objective/entropy",
    "objective/non_score_reward",
    "objective/rlhf_reward",
    "objective/scores",
    "objective/kl_coef",
    "policy/approxkl_avg",
    "policy/clipfrac_avg",
    "loss/policy_avg",
    "loss/value_avg",
    "val/clipfrac_avg",
    "policy/entropy_avg",
    "val/ratio",
    "val/ratio_var",
    "val/num_eos_tokens",
    "lr",
    "episode",
)


# ================================================================================================================
# Settings
# ================================================================================================================


@dataclass
class PPOSettings:
    """Hyperparameters of `train_ppo`. The defaults raise the VADER score of the embedded default model on the
    reviews task within about a minute on a laptop CPU; for a real model on a GPU change the budgets
    (total_steps, batch_size, max_new_tokens) and the learning rate (1e-6 .. 1e-5 for full fine-tuning)."""

    total_steps: int = 24
    """PPO iterations: each one is a rollout of `batch_size` prompts followed by the update on it."""
    batch_size: int = 32
    """Prompts (one response each) per step, over all processes together; must divide by the number of processes."""
    num_ppo_epochs: int = 4
    """Passes of the update over each rollout batch (with a fresh shuffle each pass)."""
    num_mini_batches: int = 1
    """Optimizer steps per PPO epoch: each process's share of the batch is split into this many minibatches."""
    gradient_accumulation_steps: int = 1
    """Forward/backward passes per minibatch (the minibatch is split into this many micro-batches whose gradients
    add up before one optimizer step): trade speed for memory without changing the update. Each micro-batch's
    loss is weighted by its share of the minibatch's response tokens, so the gradient is that of the minibatch's
    token mean, as without accumulation (up to float rounding)."""
    learning_rate: float = 2e-4
    """AdamW learning rate for the policy and the value model (right for the 1M-parameter embedded default; real
    models want ~1e-6 to 1e-5, or ~1e-5 to 1e-4 with LoRA)."""
    value_learning_rate: float | None = None
    """AdamW learning rate for the value function (its head, or the whole separate value model). None = the
    policy's `learning_rate`, or 10x that when its backbone does not train (`trains_value_backbone`): a lone linear
    head on frozen features moves too little at the policy's rate to track the returns (measured with
    bench/ppo_vs_trl.py and a weaker reward model, 3 seeds each: gold at matched KL 0.65 at 1x, 0.70 at 10x and at
    50x)."""
    anneal_lr: bool = False
    """Decay the learning rates linearly to zero over `total_steps`."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this before each optimizer step."""
    max_new_tokens: int = 48
    """Longest response in tokens; a response cut here has no EOS (see `missing_eos_penalty`)."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts. Log-probs of the policy and the reference are taken from the same
    tempered distribution (logits / temperature), so the importance ratio and the KL match what was sampled."""
    kl_coef: float = 0.05
    """beta: weight of the per-token KL penalty -beta * KL_t (the initial value when `target_kl` is set)."""
    kl_estimator: str = "k1"
    """Per-token KL estimator: "k1" = log pi - log pi_ref (unbiased, can be negative per token), or
    "k3" = (r - 1) - log r with r = pi_ref / pi (unbiased, never negative, lower variance)."""
    target_kl: float | None = None
    """Adaptive beta (Ziegler et al. 2019): the sequence KL to aim for; None keeps beta fixed at `kl_coef`."""
    kl_horizon: int = 10000
    """Adaptive beta's horizon in episodes: beta moves by at most 20% * batch / horizon per step."""
    missing_eos_penalty: float | None = None
    """A positive number subtracted from the score of responses that hit `max_new_tokens` without ending in EOS
    (TRL's convention); None = no penalty. Set it when rewarding with a reward model: the reward model receives
    the decoded text, and a chat-template reward model closes the turn after it as it did for every training
    pair, so on its own it scores a cut-off response as if it had ended."""
    gamma: float = 1.0
    """Discount factor of GAE over response tokens."""
    lam: float = 0.95
    """lambda of GAE: 1 = Monte-Carlo returns, 0 = one-step TD."""
    whiten_rewards: bool = False
    """Scale the per-token rewards to unit variance (without shifting their mean) before GAE."""
    cliprange: float = 0.2
    """epsilon of the clipped policy objective: the ratio pi / pi_old is clipped to [1 - eps, 1 + eps]."""
    cliprange_value: float = 0.2
    """Value predictions may move at most this far from their rollout-time values before the loss is clipped."""
    vf_coef: float = 0.1
    """Weight of the value loss in the total loss."""
    value_model: str | None = None
    """"separate": a separate model (a sequence classifier: backbone + scalar head) initialised from the
    `value_model` path given to train_ppo (default the policy's path; a reward model's path is a good start: its
    score head already predicts the reward). "shared": a scalar head on the policy's own last hidden state, no
    second model in memory. None = "separate"; `separate_value_model` says which one a run uses. What the value
    function starts from matters most. On SmolLM2-135M with LoRA, 24 rollouts of 8, 4 epochs x 2 minibatches,
    gold on 128 held-out prompts x 2 from a start of 0.404 [0.342, 0.462]: a shared head whose value loss trains
    the policy's adapter, with a constant reward (nothing to learn), moved the policy to KL 6.1 and gold 0.278;
    with a reward model its two seeds ended at 0.540 (KL 6.4) and 0.243 (KL 10.1); the head on detached features
    at 0.449 (KL 5.7); the reward model as a frozen-backbone separate value model at 0.469 (KL 3.7)
    (`rlhfkit.pipeline.smollm2_preset`). bench/ppo_vs_trl.py, gold at matched KL: on the embedded default (4
    seeds) the frozen reward model 0.794, the shared head 0.424 and 0.393 detached; on SmolLM2 with LoRA (one
    seed, start 0.510) the frozen reward model 0.599, the shared head 0.366, TRL 1.12 0.583."""
    train_value_backbone: bool | None = None
    """False: the value loss trains the value function's scalar head only. With a separate value model its
    backbone is frozen and its hidden states are computed once per rollout, so the PPO epochs run one backbone
    instead of two (0.93 vs 1.43 s/step on the embedded default, 29.95 vs 41.68 s/step on SmolLM2 with LoRA:
    bench/ppo_vs_trl.py); the value function is then a linear read-out of the value model's features, which is
    what a reward model's score head already is, so it starts as a sound baseline when the value model is the
    reward model. With `value_model="shared"` the head reads the policy's hidden states detached, and the value
    loss cannot move the policy. True trains the whole value function (as TRL's PPOTrainer did): a separate value
    model's backbone (with its own adapter under LoRA), or, shared, the policy's own weights through the value
    loss. None = False with LoRA (a LoRA run trains an adapter because the model is too big to train whole; a
    second trained backbone would double that cost, and the value loss must not move the policy's adapter: see
    `value_model`), True without (full fine-tuning, as TRL did). `trains_value_backbone` says which one a run
    uses."""
    logprobs_from_generate: bool | None = None
    """Take the rollout's log-probs from the logits generate() saw while sampling (as TRL's PPOTrainer did) instead
    of running the policy over the rollout once more. Saves a forward pass per step, but holds every sampled
    position's logits (batch x max_new_tokens x vocabulary) until the rollout ends, and the first PPO ratio is then 1
    only up to float rounding (KV-cached vs full-sequence kernels). None = from generate when the policy runs in
    fp32 (fp32 weights, no autocast) and those logits take at most 256 MiB (per process), else the extra forward
    pass: under bf16/fp16 the two kernels round apart (measured on the CPU in bf16: sequence KL -0.013 at step 1
    with policy == reference, where it must be 0). With value_model="shared" they always come from the forward
    pass that computes the values."""
    save_every: int = 10
    """Save a resumable checkpoint (weights, optimizer, beta, RNG) every this many steps; the last good one is
    what a NaN stop, or a Ctrl-C in the middle of an update, falls back to."""
    sample_every: int = 1
    """Write a few rows to samples.jsonl every this many steps: prompt, response, score (reward_fn's),
    score_with_eos_penalty (the one optimised: score minus `missing_eos_penalty` when cut without EOS), has_eos,
    kl (sequence k1/k3 per `kl_estimator`) and n_tokens."""
    num_samples: int = 4
    """Rows written each time samples are logged."""
    mixed_precision: str | None = None
    """"no", "bf16" or "fp16" autocast; None = bf16 on a CUDA device that supports it, else "no". Trained weights
    stay fp32 (the frozen base of a LoRA model takes the device's dtype). The reference is held in the policy's
    own weight dtype (fp32 for full fine-tuning, the base's dtype with LoRA) and runs under the same autocast, so
    policy and reference log-probs come from the same precision and the KL is 0 while the two are equal."""
    cpu_threads: int | None = None
    """torch threads per process while training on the CPU (restored afterwards). None follows
    `rlhfkit.threads`: $RLHFKIT_THREADS if set, else 1 for a policy under 20M parameters, where handing tiny matrix
    products between threads costs more than it saves (measured on a busy 2-core machine: 4 s/step with 1 thread
    vs 34 s/step with 2), else torch's own setting."""
    progress: bool = True
    """Show a progress bar (main process only)."""
    seed: int = 0
    """Seed for the value head, the prompt order, sampling and minibatch shuffles (each process samples from its
    own stream, seeded with a hash of (seed, process index))."""
    device: str | None = None
    """None = accelerate's choice (a GPU when there is one); "cpu" forces the CPU."""
    lora: LoraSettings | None = None
    """Train a LoRA adapter instead of all weights; the reference is then the same model with the adapter disabled
    (no second copy in memory), and the saved model has the adapter merged in."""
    report_to: str | list[str] = "none"
    """Experiment trackers that also get each metrics.jsonl row, at its step (TRL's names): "tensorboard", "wandb",
    "trackio", "mlflow", ..., a list of them, "all" (every installed one) or "none". TensorBoard writes into
    run_dir/tensorboard; see `rlhfkit.train.tracking`."""
    trl_overrides: dict = field(default_factory=dict)
    """Settings under TRL PPOConfig names (there is no TRL config to forward to: TRL has no PPO any more), applied
    over the fields above, e.g. {"response_length": 64, "lam": 0.9, "kl_coef": 0.1}. Unknown names raise."""

    def __post_init__(self) -> None:
        if self.trl_overrides:
            for key, value in self.trl_overrides.items():
                name = _TRL_NAMES.get(key, key if key in _FIELD_NAMES else None)
                if name is None or name == "trl_overrides":
                    raise ValueError(
                        f"trl_overrides: unknown setting {key!r}; expected a PPOSettings field or one "
                        f"of TRL's names {sorted(_TRL_NAMES)}"
                    )
                setattr(self, name, value)
        report_to_names(self.report_to)  # an unknown or missing tracker fails here, before any model loads
        if self.kl_estimator not in ("k1", "k3"):
            raise ValueError(f"kl_estimator must be 'k1' or 'k3', got {self.kl_estimator!r}")
        if self.value_model not in (None, "separate", "shared"):
            raise ValueError(f"value_model must be 'separate', 'shared' or None, got {self.value_model!r}")
        if self.train_value_backbone not in (None, True, False):
            raise ValueError(f"train_value_backbone must be True, False or None, got {self.train_value_backbone!r}")
        positive = (
            "total_steps",
            "batch_size",
            "num_ppo_epochs",
            "num_mini_batches",
            "gradient_accumulation_steps",
            "max_new_tokens",
            "save_every",
            "sample_every",
            "kl_horizon",
        )
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ValueError(f"cpu_threads must be at least 1 (or None), got {self.cpu_threads}")
        if self.value_learning_rate is not None and self.value_learning_rate <= 0:
            raise ValueError(
                f"value_learning_rate must be > 0 (or None for learning_rate), got {self.value_learning_rate}"
            )
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.target_kl is not None and self.target_kl <= 0:
            raise ValueError(f"target_kl must be > 0 (or None for a fixed beta), got {self.target_kl}")

    @property
    def separate_value_model(self) -> bool:
        """Whether the value function is a separate network (True) or a head on the policy (False); the one place
        this is decided. True: a sequence classifier (backbone + scalar head) started from the `value_model` path
        given to train_ppo (default the policy's own path; a trained reward model is a good start). False: a scalar
        head on the policy's last hidden state, sharing the policy's backbone; train_ppo then takes no value_model
        path. `value_model="separate"` or `"shared"` decides; None means separate."""
        return (self.value_model or "separate") == "separate"

    @property
    def trains_value_backbone(self) -> bool:
        """Whether the value loss trains the value function's backbone (True) or its scalar head only (False); the
        one place this is decided. `train_value_backbone` decides; None means False with LoRA, True without."""
        if self.train_value_backbone is None:
            return self.lora is None
        return self.train_value_backbone

    def decided(self) -> PPOSettings:
        """These settings with the value function's Nones replaced by what they decide: what a run records, and
        what a finished run is compared with (a run made when None meant another value function is another run)."""
        return dataclasses.replace(
            self,
            value_model="separate" if self.separate_value_model else "shared",
            train_value_backbone=self.trains_value_backbone,
        )


_FIELD_NAMES = {f.name for f in dataclasses.fields(PPOSettings)}
_TRL_NAMES = {
    "response_length": "max_new_tokens",
    "lam": "lam",
    "gamma": "gamma",
    "kl_coef": "kl_coef",
    "kl_estimator": "kl_estimator",
    "cliprange": "cliprange",
    "cliprange_value": "cliprange_value",
    "vf_coef": "vf_coef",
    "num_ppo_epochs": "num_ppo_epochs",
    "num_mini_batches": "num_mini_batches",
    "whiten_rewards": "whiten_rewards",
    "missing_eos_penalty": "missing_eos_penalty",
    "temperature": "temperature",
    "learning_rate": "learning_rate",
    "max_grad_norm": "max_grad_norm",
    "weight_decay": "weight_decay",
    "gradient_accumulation_steps": "gradient_accumulation_steps",
    "seed": "seed",
    "save_steps": "save_every",
}


# ================================================================================================================
# The math: masked statistics, KL estimators, GAE, the clipped losses, the KL controllers
# ================================================================================================================


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `values` where `mask` is 1 (over everything, or along `dim`)."""
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum().clamp(min=1)
    return (values * mask).sum(dim) / mask.sum(dim).clamp(min=1)


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of `values` where `mask` is 1 (with Bessel's correction unless `unbiased=False`)."""
    mean = masked_mean(values, mask)
    var = masked_mean((values - mean) ** 2, mask)
    n = mask.sum()
    if unbiased and n > 1:
        var = var * n / (n - 1)
    return var


def whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True, eps: float = 1e-8) -> torch.Tensor:
    """Scale to mean 0 and standard deviation 1 over the masked entries only (keep the mean if `shift_mean` is
    False); entries outside the mask become 0."""
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    out = (values - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask.to(values.dtype)


def kl_penalty(logp: torch.Tensor, ref_logp: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(pi || pi_ref) from log-probs of sampled tokens (http://joschu.net/blog/kl-approx.html):
    "k1" = log pi - log pi_ref, whose sum over a response is the sequence's log-ratio; "k3" = (r - 1) - log r with
    r = pi_ref / pi, never negative. Both are unbiased when the tokens are sampled from pi."""
    if estimator == "k1":
        return logp - ref_logp
    if estimator == "k3":
        log_r = ref_logp - logp
        return torch.expm1(log_r) - log_r
    raise ValueError(f"unknown KL estimator {estimator!r}; expected 'k1' or 'k3'")


def compute_gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation over response tokens (B x R tensors; `mask` is a prefix of ones per row).

    delta_t = r_t + gamma * V_{t+1} - V_t (V after the last token is 0: the episode ends there),
    A_t = delta_t + gamma * lam * A_{t+1}, returns_t = A_t + V_t. Entries outside the mask are 0."""
    mask = mask.to(values.dtype)
    rewards, values = rewards * mask, values * mask
    advantages = torch.zeros_like(values)
    last = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        next_value = values[:, t + 1] if t + 1 < values.shape[1] else torch.zeros_like(last)
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        last = delta + gamma * lam * last
        advantages[:, t] = last
    advantages = advantages * mask
    return advantages, (advantages + values) * mask


def policy_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, cliprange: float = 0.2
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO's clipped surrogate: mean over masked tokens of max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps)).
    Returns the loss and detached stats: "clipfrac" (share of tokens where the clipped term is the larger one, i.e.
    gets no gradient), "approxkl" (0.5 * mean squared log-ratio) and "ratio" (mean ratio)."""
    log_ratio = logp - old_logp
    ratio = torch.exp(log_ratio)
    unclipped = -advantages * ratio
    clipped = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.max(unclipped, clipped), mask)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((clipped > unclipped).float(), mask),
            "approxkl": 0.5 * masked_mean(log_ratio**2, mask),
            "ratio": masked_mean(ratio, mask),
        }
    return loss, stats


def value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange_value: float = 0.2,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Clipped value loss: 0.5 * mean over masked tokens of max((V - G)^2, (V_clip - G)^2), where V_clip stays
    within `cliprange_value` of the rollout-time value. Returns the loss and the clip fraction."""
    clipped_values = old_values + torch.clamp(values - old_values, -cliprange_value, cliprange_value)
    loss_unclipped = (values - returns) ** 2
    loss_clipped = (clipped_values - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(loss_unclipped, loss_clipped), mask)
    with torch.no_grad():
        clipfrac = masked_mean((loss_clipped > loss_unclipped).float(), mask)
    return loss, clipfrac


def entropy_from_logits(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Entropy H = -sum_v p_v log p_v of p = softmax(logits / temperature) at every position (in nats): the
    distribution that is sampled at that temperature."""
    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    return -(logp.exp() * logp).sum(-1)


class FixedKLController:
    """beta stays at its initial value."""

    def __init__(self, kl_coef: float) -> None:
        self.value = float(kl_coef)

    def update(self, current_kl: float, n_steps: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = float(state["value"])


class AdaptiveKLController(FixedKLController):
    """Ziegler et al. (2019): beta <- beta * (1 + clip(KL / target - 1, -0.2, 0.2) * n_steps / horizon), so beta
    grows while the measured sequence KL is above the target and shrinks while it is below."""

    def __init__(self, kl_coef: float, target: float, horizon: int) -> None:
        super().__init__(kl_coef)
        self.target, self.horizon = float(target), int(horizon)

    def update(self, current_kl: float, n_steps: int) -> None:
        error = float(np.clip(current_kl / self.target - 1.0, -0.2, 0.2))
        self.value *= 1.0 + error * n_steps / self.horizon


# ================================================================================================================
# Models: the policy and its value function in one module (so DDP syncs both), the reference, the optimizer
# ================================================================================================================


class PolicyAndValue(nn.Module):
    """The policy and the value function behind one forward pass: (token logits, per-position values).
    "shared": a linear head on the policy's last hidden state (detached when `train_value_backbone` is False, so
    the value loss trains the head alone); "separate": a sequence classifier's backbone and
    score head applied at every position (not only the last, as in its own forward). With `train_value_backbone`
    False the separate backbone is frozen: its hidden states are computed once per rollout (`value_hidden`) and
    handed back to `forward`, which then applies only the head."""

    def __init__(
        self, policy: nn.Module, value_model: nn.Module | None = None, train_value_backbone: bool = True
    ) -> None:
        super().__init__()
        self.policy = policy
        if value_model is None:
            hidden = policy.config.get_text_config().hidden_size
            self.value_head = nn.Linear(hidden, 1)
            nn.init.normal_(self.value_head.weight, std=1.0 / math.sqrt(hidden + 1))
            nn.init.zeros_(self.value_head.bias)
            self.value_model = None
        else:
            self.value_head = None
            self.value_model = value_model
            backbone, head = _value_parts(value_model)  # fail now, not mid-training, if there is no usable head
            if not train_value_backbone:
                backbone.requires_grad_(False)
                head.float().requires_grad_(True)  # the one trained part stays fp32 like every trained weight
        self.train_value_backbone = train_value_backbone

    @torch.no_grad()
    def value_hidden(self, input_ids, attention_mask, position_ids) -> torch.Tensor:
        """The separate value model's last hidden states at every position (no gradient)."""
        backbone, _ = _value_parts(self.value_model)
        return backbone(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state

    def values_from_hidden(self, hidden: torch.Tensor) -> torch.Tensor:
        """The separate value model's score head on given hidden states."""
        _, head = _value_parts(self.value_model)
        return head(hidden.to(head.weight.dtype)).squeeze(-1).float()

    def forward(
        self, input_ids, attention_mask, position_ids, logits_to_keep: int = 0, value_hidden: torch.Tensor | None = None
    ):
        """`logits_to_keep` > 0: token logits for the last that many positions only (the response), which saves
        the language-model head and softmax on the prompt. Values cover every position, or exactly the positions
        of `value_hidden` when the frozen value backbone's hidden states are given."""
        shared = self.value_head is not None
        out = self.policy(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            output_hidden_states=shared,
            use_cache=False,
            **_keep(self.policy, logits_to_keep),
        )
        if shared:
            hidden = out.hidden_states[-1]
            if not self.train_value_backbone:  # the value loss trains the head only, never the policy's weights
                hidden = hidden.detach()
            values = self.value_head(hidden).squeeze(-1).float()
        elif value_hidden is not None:
            values = self.values_from_hidden(value_hidden)
        else:
            backbone, head = _value_parts(self.value_model)
            hidden = backbone(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
            ).last_hidden_state
            values = head(hidden).squeeze(-1).float()
        return out.logits, values


def _keep(model: nn.Module, logits_to_keep: int) -> dict:
    """{"logits_to_keep": n} when the model's forward takes it (most decoder LMs in transformers), else {}: the
    caller slices full logits either way, so this only saves work."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return {"logits_to_keep": logits_to_keep} if logits_to_keep > 0 and _takes_logits_to_keep(type(inner)) else {}


@functools.lru_cache(maxsize=None)
def _takes_logits_to_keep(model_class: type) -> bool:
    return "logits_to_keep" in inspect.signature(model_class.forward).parameters


def _value_parts(value_model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(backbone, scalar head) of a sequence classifier, looking through a peft wrapper."""
    inner = value_model.get_base_model() if hasattr(value_model, "get_base_model") else value_model
    backbone = getattr(inner, getattr(inner, "base_model_prefix", "model"), None)
    head = getattr(inner, "score", None) or getattr(inner, "classifier", None)
    if backbone is None or head is None:
        raise ValueError(
            f"value model {type(inner).__name__} has no backbone + 'score' head; expected an "
            f"AutoModelForSequenceClassification-style decoder (e.g. LlamaForSequenceClassification)"
        )
    return backbone, head


def _trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters by name (tied weights once), for checkpoints."""
    return {name: p.detach().contiguous().cpu() for name, p in model.named_parameters() if p.requires_grad}


def _eos_ids(model, tokenizer) -> list[int]:
    """Every token that ends a response: the tokenizer's EOS and any the generation config adds."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    ids.discard(None)
    if not ids:
        raise ValueError("the tokenizer has no EOS token; PPO needs one to know where a response ends")
    return sorted(ids)


# ================================================================================================================
# Rollout: sample, cut at EOS, score log-probs and values without gradients
# ================================================================================================================


@dataclass
class Rollout:
    """One step's experience on this process (B responses, R response positions)."""

    prompts: list  # the prompts as given (strings or message lists)
    query_response: torch.Tensor  # B x (P + R) token ids, pad after EOS
    attention_mask: torch.Tensor  # B x (P + R)
    position_ids: torch.Tensor  # B x (P + R)
    context_length: int  # P
    responses: torch.Tensor  # B x R
    mask: torch.Tensor  # B x R, 1 on response tokens up to and including EOS
    has_eos: torch.Tensor  # B
    texts: list[str]  # decoded responses
    logprobs: torch.Tensor = None  # B x R, policy at rollout time
    ref_logprobs: torch.Tensor = None  # B x R
    values: torch.Tensor = None  # B x R
    scores: torch.Tensor = None  # B
    value_hidden: torch.Tensor = None  # B x R x H, the frozen value backbone's hidden states at the value positions


def _token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, temperature: float) -> torch.Tensor:
    """log p(token) under softmax(logits / temperature), in fp32."""
    logits = logits.float() / temperature
    picked = torch.gather(logits, -1, tokens.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def _wants_generate_logprobs(settings: PPOSettings, local_batch: int, vocab_size: int, runs_in_fp32: bool) -> bool:
    """Whether the rollout log-probs come from generate()'s logits (see PPOSettings.logprobs_from_generate)."""
    if settings.logprobs_from_generate is not None:
        return settings.logprobs_from_generate
    return runs_in_fp32 and local_batch * settings.max_new_tokens * vocab_size * 4 <= 256 * 2**20


@torch.no_grad()
def _generate(
    policy, tokenizer, prompts: list, settings: PPOSettings, eos_ids: list[int], device, with_logprobs: bool = False
) -> Rollout:
    """Sample one response per prompt (KV-cached HF generate, pure temperature sampling: no top-k/top-p and none of
    the model's own generation_config, so the sampling distribution is exactly the one PPO's ratios assume) and cut
    each response after its first EOS.
    `with_logprobs`: fill `Rollout.logprobs` from the raw logits generate() sampled from (0 after the cut)."""
    texts = render_prompts(tokenizer, prompts)
    enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
    # From our settings alone: the model's own generation_config must not reshape what the policy samples.
    config = neutral_generation_config(
        do_sample=True,
        temperature=settings.temperature,
        max_new_tokens=settings.max_new_tokens,
        eos_token_id=eos_ids,
        pad_token_id=tokenizer.pad_token_id,
        output_logits=with_logprobs,
    )
    out = generate_neutral(policy, config, **enc)
    context_length = enc["input_ids"].shape[1]
    responses = out.sequences[:, context_length:]
    is_eos = torch.isin(responses, torch.tensor(eos_ids, device=responses.device))
    has_eos = is_eos.any(1)
    length = torch.where(
        has_eos, is_eos.int().argmax(1) + 1, torch.full_like(has_eos, responses.shape[1], dtype=torch.long)
    )
    mask = torch.arange(responses.shape[1], device=responses.device)[None, :] < length[:, None]
    responses = responses.masked_fill(~mask, tokenizer.pad_token_id)
    attention_mask = torch.cat([enc["attention_mask"], mask.long()], dim=1)
    position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)
    logprobs = None
    if with_logprobs:  # raw logits (before the temperature warper), tempered here as in every other log-prob
        logprobs = _token_logprobs(torch.stack(out.logits, 1), responses, settings.temperature)
        logprobs = logprobs.masked_fill(~mask, 0.0)
    decoded = tokenizer.batch_decode(responses, skip_special_tokens=True)
    return Rollout(
        prompts=list(prompts),
        query_response=torch.cat([enc["input_ids"], responses], 1),
        attention_mask=attention_mask,
        position_ids=position_ids,
        context_length=context_length,
        responses=responses,
        mask=mask.float(),
        has_eos=has_eos,
        texts=decoded,
        logprobs=logprobs,
    )


def _forward(model, rollout: Rollout, index, temperature: float):
    """(response log-probs, response values or None, response logits) for the rows `index` of a rollout, from
    a PolicyAndValue (possibly DDP-wrapped) or a plain causal LM (the reference). Logits are computed only where
    they predict response tokens (positions p-1 .. end-1), not over the prompt."""
    p = rollout.context_length
    keep = rollout.query_response.shape[1] - p + 1
    cached_hidden = rollout.value_hidden is not None
    if isinstance(accelerate_unwrap(model), PolicyAndValue):
        extra = {"logits_to_keep": keep}
        if cached_hidden:  # frozen value backbone: its hidden states at the response positions, from the rollout
            extra["value_hidden"] = rollout.value_hidden[index]
    else:
        extra = {"use_cache": False, **_keep(model, keep)}
    out = model(
        input_ids=rollout.query_response[index],
        attention_mask=rollout.attention_mask[index],
        position_ids=rollout.position_ids[index],
        **extra,
    )
    logits, values = out if isinstance(out, tuple) else (out.logits, None)
    logits = logits[:, -keep:-1]
    if values is not None and not cached_hidden:
        values = values[:, p - 1 : -1]
    return _token_logprobs(logits, rollout.responses[index], temperature), values, logits


def accelerate_unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper."""
    return getattr(model, "module", model)


def _prompt_text(prompt: Any) -> str:
    return prompt if isinstance(prompt, str) else str(prompt[-1]["content"])


# ================================================================================================================
# Checkpoints: resumable state under run_dir/checkpoints/step-NNNNNN
# ================================================================================================================


def _rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint (state.json is written last)."""
    done = sorted(p for p in folder.glob("step-*") if (p / "state.json").exists()) if folder.exists() else []
    return done[-1] if done else None


def _save_checkpoint(folder: Path, step: int, model: nn.Module, optimizer, state: dict, rng_states: list[dict]) -> Path:
    """Write a checkpoint atomically (a staging folder renamed into place) and drop older ones."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:06d}"
    staging = folder / f".step-{step:06d}.saving-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    save_file(_trainable_state(model), str(staging / "trainable.safetensors"))
    torch.save(optimizer.state_dict(), staging / "optimizer.pt")
    torch.save(rng_states, staging / "rng.pt")
    (staging / "state.json").write_text(json.dumps(state, indent=2))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(staging, final)
    for old in folder.glob("step-*"):
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _first_failure(run_path: Path, rank: int, message: str) -> dict:
    """{"rank", "message"} of the run's first failure over all processes. The first process to fail creates
    FIRST_FAILURE (exclusively, so only one can); a process that fails later, usually because that peer vanished
    from under a collective ("Connection closed by peer"), reads the cause from there instead of giving its own."""
    path = run_path / FIRST_FAILURE
    record = {"rank": rank, "message": message}
    try:
        with open(path, "x", encoding="utf-8") as f:
            json.dump(record, f)
    except FileExistsError:
        for _ in range(50):  # the first process may still be writing it
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                time.sleep(0.01)
    return record


def _drop_rows_after(run_path: Path, step: int) -> None:
    """On resume, forget metrics/samples logged after the checkpoint (they will be produced again), so step
    numbers stay continuous."""
    for name in (METRICS, SAMPLES):
        path = run_path / name
        if not path.exists():
            continue
        kept = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                if int(json.loads(line).get("step", 0)) <= step:
                    kept.append(line)
            except (ValueError, AttributeError):
                continue  # a torn line from a killed process
        tmp = path.with_name(f".{name}.tmp-{os.getpid()}")
        tmp.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(tmp, path)


# ================================================================================================================
# Scoring and advantages: per-token rewards (score on the last token, -beta * KL on every token), GAE
# ================================================================================================================


def _token_rewards(rollout: Rollout, beta: float, settings: PPOSettings):
    """Per-token rewards of a scored rollout: r_t = -beta * KL_t on every response token, plus the score on the last
    one (scaled to unit variance, mean kept, when `whiten_rewards`). Returns (KL_t, -beta * KL_t, r_t), B x R each,
    0 outside the response."""
    mask = rollout.mask
    kl = kl_penalty(rollout.logprobs, rollout.ref_logprobs, settings.kl_estimator) * mask
    non_score_reward = -beta * kl
    rewards = non_score_reward.clone()
    last = (mask.sum(1).long() - 1).clamp(min=0)
    rewards[torch.arange(len(last), device=mask.device), last] += rollout.scores
    if settings.whiten_rewards:
        rewards = whiten(rewards, mask, shift_mean=False)
    return kl, non_score_reward, rewards


def _advantages(rollout: Rollout, rewards: torch.Tensor, settings: PPOSettings):
    """(rollout-time values, whitened GAE advantages, returns), B x R each, 0 outside the response."""
    values = rollout.values * rollout.mask
    advantages, returns = compute_gae(rewards, values, rollout.mask, settings.gamma, settings.lam)
    return values, whiten(advantages, rollout.mask), returns


# ================================================================================================================
# Set-up: the inputs, the accelerator and batch sizes, the run directory, the models, the optimizer, the state to
# resume from
# ================================================================================================================


def _checked_inputs(prompts: Sequence[Any], reward_fn) -> tuple[list, Callable]:
    """The prompts as a list and the reward function as a callable (a builtin judge's name becomes the judge)."""
    prompts = list(prompts)
    if not prompts:
        raise ValueError("train_ppo needs at least one prompt")
    for i, p in enumerate(prompts):
        if not (isinstance(p, str) and p.strip()) and not (isinstance(p, list) and p):
            raise ValueError(f"prompt {i}: expected a non-empty string or a list of chat messages, got {p!r:.80}")
    if isinstance(reward_fn, str):
        from rlhfkit.judges import as_judge

        reward_fn = as_judge(reward_fn)
    if not callable(reward_fn):
        raise TypeError(
            f"reward_fn must be callable as reward_fn(prompts, responses) -> list[float], got "
            f"{type(reward_fn).__name__}"
        )
    return prompts, reward_fn


def _value_learning_rate(settings: PPOSettings, value_model_path) -> float:
    """The value function's learning rate (see PPOSettings.value_learning_rate), once the value settings and a
    value model path given to train_ppo have been checked against each other."""
    if not settings.separate_value_model and value_model_path is not None:
        raise ValueError(
            "a value_model path was given but settings.value_model is 'shared' (a head on the policy);"
            " use value_model='separate' to start the value function from that model"
        )
    lone_head = not settings.trains_value_backbone  # a head on frozen (or detached) features
    return settings.value_learning_rate or settings.learning_rate * (10 if lone_head else 1)


def _batch_sizes(settings: PPOSettings, world: int) -> tuple[int, int, int]:
    """Responses per process, per minibatch and per micro-batch of each step."""
    if settings.batch_size % world:
        raise ValueError(f"batch_size {settings.batch_size} does not divide among {world} processes; use a multiple")
    local_batch = settings.batch_size // world
    if local_batch % settings.num_mini_batches:
        raise ValueError(
            f"each process's {local_batch} responses do not split into num_mini_batches="
            f"{settings.num_mini_batches} equal minibatches"
        )
    mini_batch = local_batch // settings.num_mini_batches
    if mini_batch % settings.gradient_accumulation_steps:
        raise ValueError(
            f"minibatches of {mini_batch} do not split into gradient_accumulation_steps="
            f"{settings.gradient_accumulation_steps} equal micro-batches"
        )
    return local_batch, mini_batch, mini_batch // settings.gradient_accumulation_steps


def _make_accelerator(settings: PPOSettings, log_with: list = ()):
    """An Accelerator for this run: DDP tolerant of parameters without gradient in a pass (the reference and
    value heads), bf16 autocast on a capable GPU, the experiment trackers in `log_with`."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedDataParallelKwargs

    # Without a GPU the CPU is the device; saying so explicitly also makes `accelerate launch --num_processes N`
    # start N CPU processes (with cpu=False accelerate silently falls back to one process per rank).
    cpu = (settings.device is not None and str(settings.device) == "cpu") or not torch.cuda.is_available()
    precision = settings.mixed_precision
    if precision is None:
        on_gpu = torch.cuda.is_available() and not cpu
        precision = "bf16" if on_gpu and torch.cuda.is_bf16_supported() else "no"
    kwargs = dict(
        cpu=cpu,
        mixed_precision=precision,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
        log_with=list(log_with) or None,
    )
    try:
        return Accelerator(**kwargs)
    except ValueError as err:
        # A single process that made an Accelerator before (an earlier run in this notebook or test session) with
        # other settings: start afresh. Under `accelerate launch` the error is real and is raised.
        if "already been initialized" not in str(err) or AcceleratorState().num_processes > 1:
            raise
        AcceleratorState._reset_state(reset_partial_state=True)
        return Accelerator(**kwargs)


def _sampling_seed(seed: int, rank: int, step: int) -> int:
    """The seed of process `rank`'s random stream when a run starts after `step` (0, or a checkpoint made by another
    number of processes): a 64-bit hash of the triple (numpy's SeedSequence), so that no two (seed, rank, step)
    share a stream the way seed + rank did ((s, rank 1) was (s + 1, rank 0))."""
    return int(np.random.SeedSequence([seed % 2**64, rank, step]).generate_state(1, np.uint64)[0])


def _prompt_indices(n_prompts: int, start: int, count: int, seed: int) -> list[int]:
    """Indices of `count` prompts from position `start` of an endless sequence of seeded shuffles (a new shuffle
    for every pass over the prompts). Depends only on (seed, start), so a resumed run sees the same prompts."""
    out, cache = [], {}
    for i in range(start, start + count):
        epoch = i // n_prompts
        if epoch not in cache:
            gen = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
            cache[epoch] = torch.randperm(n_prompts, generator=gen).tolist()
        out.append(cache[epoch][i % n_prompts])
    return out


def _open_run(run_path: Path, settings: PPOSettings, checkpoint: Path | None, resume: bool, accelerator, config: dict):
    """The run directory, written by the main process only: continued from `checkpoint` (the rows logged after it
    are dropped, to be produced again), or started afresh, also when resume=True finds nothing to resume from."""
    run = Run(
        run_path,
        stage="ppo",
        seed=settings.seed,
        resume=checkpoint is not None,
        overwrite=resume and checkpoint is None,
        enabled=accelerator.is_main_process,
        config=config,
    )
    if accelerator.is_main_process:
        if checkpoint is not None:
            _drop_rows_after(run_path, int(json.loads((checkpoint / "state.json").read_text())["step"]))
        else:  # a fresh run in a reused folder must never fall back to an older run's checkpoint
            shutil.rmtree(run.checkpoint_path, ignore_errors=True)
        run.claim(FIRST_FAILURE).unlink(missing_ok=True)  # an older run's; listed as ours before any process writes it
        claim_tracker_folder(run, settings.report_to)
    accelerator.wait_for_everyone()
    return run


def _load_models(settings: PPOSettings, device, policy_path: str, reference_path: str | None, value_path: str):
    """(tokenizer, the policy, PolicyAndValue, the reference or None). No reference is loaded when `reference_path`
    is None: with LoRA it is the policy with its adapter disabled."""
    # Same seed on every process while building, so a fresh value head starts identical everywhere (DDP would
    # broadcast rank 0's anyway).
    torch.manual_seed(settings.seed)
    # Trained weights in fp32 under autocast; frozen weights (a LoRA base, a frozen value backbone) in the device's
    # dtype. The reference takes the policy's own dtype: the same weights at another precision would make the KL
    # non-zero before the policy has moved (k1 0.022 at step 1 with a bf16 reference of an fp32 policy).
    frozen_dtype = pick_dtype(device)
    policy_dtype = frozen_dtype if settings.lora is not None else torch.float32
    tokenizer = load_tokenizer(policy_path, padding_side="left")
    policy_model = load_policy(policy_path, device=device, lora=settings.lora, dtype=policy_dtype)
    value = None
    if settings.separate_value_model:
        # A frozen backbone takes the device's dtype and no adapter (nothing of it trains).
        value_lora = settings.lora if settings.trains_value_backbone else None
        value = load_reward_model(
            value_path,
            device=device,
            lora=value_lora,
            role="value",
            dtype=torch.float32 if value_lora is None and settings.trains_value_backbone else frozen_dtype,
        )
        value.config.pad_token_id = tokenizer.pad_token_id
    model = PolicyAndValue(policy_model, value, settings.trains_value_backbone).to(device)
    model.eval()  # dropout off: the PPO ratio must be 1 before the first update
    ref_model = load_reference(reference_path, device=device, dtype=policy_dtype) if reference_path else None
    return tokenizer, policy_model, model, ref_model


def _kl_controller(settings: PPOSettings) -> FixedKLController:
    if settings.target_kl is not None:
        return AdaptiveKLController(settings.kl_coef, settings.target_kl, settings.kl_horizon)
    return FixedKLController(settings.kl_coef)


def _restore(checkpoint: Path, model: PolicyAndValue, kl_ctl: FixedKLController, state: dict, device) -> list[dict]:
    """Load a checkpoint's trained weights into `model`, its counters into `state` and its beta into `kl_ctl`;
    return every process's saved random state."""
    from safetensors.torch import load_file

    saved = load_file(str(checkpoint / "trainable.safetensors"), device=str(device))
    missing = set(_trainable_state(model)) - set(saved)
    if missing:
        raise ValueError(
            f"checkpoint {checkpoint} does not match these settings: it lacks {sorted(missing)[:3]}"
            f" (was it made with another value_model / lora setting?)"
        )
    model.load_state_dict(saved, strict=False)
    state.update(json.loads((checkpoint / "state.json").read_text()))
    kl_ctl.load_state_dict(state["kl_controller"])
    # Python's and numpy's RNG states are plain Python objects (pickled by this module into the run's own folder),
    # hence weights_only=False.
    return torch.load(checkpoint / "rng.pt", weights_only=False)


def _optimizer(model: PolicyAndValue, settings: PPOSettings, value_lr: float) -> torch.optim.AdamW:
    """AdamW with two parameter groups, the policy's weights and the value function's, each with its own learning
    rate (kept as "base_lr" for annealing)."""
    value_part = model.value_head if model.value_head is not None else model.value_model
    value_ids = {id(p) for p in value_part.parameters()}
    groups = [
        {
            "params": [p for p in model.parameters() if p.requires_grad and id(p) not in value_ids],
            "base_lr": settings.learning_rate,
        },
        {"params": [p for p in value_part.parameters() if p.requires_grad], "base_lr": value_lr},
    ]
    return torch.optim.AdamW([{**g, "lr": g["base_lr"]} for g in groups], weight_decay=settings.weight_decay, eps=1e-5)


def _seed_sampling(seed: int, rank: int, step: int, rng_states: list[dict] | None) -> None:
    """Sampling randomness differs per process; a resumed process continues its own random stream."""
    if rng_states is not None and rank < len(rng_states):
        _set_rng_state(rng_states[rank])
    else:
        seed = _sampling_seed(seed, rank, step)
        random.seed(seed), np.random.seed(seed % 2**32), torch.manual_seed(seed)


def _set_up(
    policy, reward_fn, prompts: list, settings: PPOSettings, run_dir, *, reference, value_model, resume, callbacks
) -> _PPOLoop:
    """Everything before the first step: accelerator, run directory, models, optimizer, resumed state, random
    streams, threads and the progress bar."""
    from tqdm.auto import tqdm

    value_lr = _value_learning_rate(settings, value_model)
    accelerator = _make_accelerator(settings, log_with=accelerate_trackers(settings.report_to, run_dir))
    world = accelerator.num_processes
    local_batch, mini_batch, micro_batch = _batch_sizes(settings, world)

    policy_path = resolve_model(policy)
    reference_path = resolve_model(reference) if reference is not None else policy_path
    value_path = resolve_model(value_model) if value_model is not None else policy_path
    device = accelerator.device
    run_path = Path(run_dir)
    checkpoint = _latest_checkpoint(run_path / "checkpoints") if resume else None
    # With LoRA the reference is the policy's own base (adapter disabled), unless another one is named.
    own_reference = settings.lora is None or reference_path != policy_path
    config = {
        **dataclasses.asdict(settings.decided()),
        "value_learning_rate": value_lr,
        "policy_path": policy_path,
        "reference_path": reference_path if own_reference else "policy with the LoRA adapter disabled",
        "value_model_path": value_path if settings.separate_value_model else None,
        "reward_fn": getattr(reward_fn, "name", getattr(reward_fn, "__name__", repr(reward_fn))),
        "num_prompts": len(prompts),
        "num_processes": world,
        "mixed_precision": accelerator.mixed_precision,
    }
    run = _open_run(run_path, settings, checkpoint, resume, accelerator, config)

    tokenizer, policy_model, model, ref_model = _load_models(
        settings, device, policy_path, reference_path if own_reference else None, value_path
    )
    eos_ids = _eos_ids(policy_model, tokenizer)
    # The shared head needs the policy's forward pass over the rollout anyway (for the values): its log-probs come
    # from there.
    runs_in_fp32 = accelerator.mixed_precision == "no" and all(
        p.dtype == torch.float32 for p in policy_model.parameters()
    )
    logprobs_from_generate = settings.separate_value_model and _wants_generate_logprobs(
        settings, local_batch, policy_model.config.get_text_config().vocab_size, runs_in_fp32
    )

    kl_ctl = _kl_controller(settings)
    state = {"step": 0, "episode": 0, "initial_score": None, "seconds": 0.0}
    rng_states = _restore(checkpoint, model, kl_ctl, state, device) if checkpoint is not None else None
    optimizer = _optimizer(model, settings, value_lr)
    if checkpoint is not None:
        optimizer.load_state_dict(torch.load(checkpoint / "optimizer.pt", map_location=device, weights_only=False))
    model, optimizer = accelerator.prepare(model, optimizer)
    _seed_sampling(settings.seed, accelerator.process_index, state["step"], rng_states)

    threads_before = torch.get_num_threads()  # restored by _PPOLoop.close
    threads = choose_threads(settings.cpu_threads, model=policy_model, device=device)
    if threads is not None:
        torch.set_num_threads(threads)
    first_step = state["step"] + 1
    bar = tqdm(
        range(first_step, settings.total_steps + 1),
        desc="ppo",
        disable=not (settings.progress and accelerator.is_main_process),
        initial=first_step - 1,
        total=settings.total_steps,
    )
    return _PPOLoop(
        settings=settings,
        prompts=prompts,
        reward_fn=reward_fn,
        callbacks=list(callbacks),
        accelerator=accelerator,
        run=run,
        tokenizer=tokenizer,
        model=model,
        unwrapped=accelerator.unwrap_model(model),
        ref_model=ref_model,
        optimizer=optimizer,
        kl_ctl=kl_ctl,
        state=state,
        eos_ids=eos_ids,
        logprobs_from_generate=logprobs_from_generate,
        local_batch=local_batch,
        mini_batch=mini_batch,
        micro_batch=micro_batch,
        bar=bar,
        threads_before=threads_before,
        saved_step=state["step"] if checkpoint is not None else None,
    )


# ================================================================================================================
# The loop's steps, and the state it carries from step to step
# ================================================================================================================


@dataclass(eq=False)
class _PPOLoop:
    """What the loop carries from step to step (made by `_set_up`), and one method per step of `train_ppo`'s loop."""

    settings: PPOSettings
    prompts: list
    reward_fn: Callable
    callbacks: list
    accelerator: Any
    run: Run
    tokenizer: Any
    model: nn.Module  # PolicyAndValue, prepared by accelerate (DDP-wrapped with several processes)
    unwrapped: PolicyAndValue
    ref_model: nn.Module | None  # None with LoRA: the policy with its adapter disabled
    optimizer: torch.optim.Optimizer
    kl_ctl: FixedKLController
    state: dict  # what a checkpoint saves: step (the last completed), episode, initial_score, seconds
    eos_ids: list[int]
    logprobs_from_generate: bool
    local_batch: int  # responses per process per step
    mini_batch: int  # responses per optimizer step
    micro_batch: int  # responses per forward/backward pass
    bar: Any  # the progress bar over the steps still to run
    threads_before: int  # torch's thread count before the run, restored at the end
    saved_step: int | None  # the step of the newest checkpoint this run wrote or resumed from
    # What an interrupt may save: the last completed step, with the random state it ended with. Once an update has
    # begun, the weights and the optimizer hold part of a step, and nothing of that may be saved.
    rng_at_step_end: dict = field(default_factory=_rng_state)
    update_begun: bool = False
    steps_run: int = 0
    last_metrics: dict = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    @property
    def world(self) -> int:
        return self.accelerator.num_processes

    @property
    def rank(self) -> int:
        return self.accelerator.process_index

    @property
    def device(self):
        return self.accelerator.device

    def gather(self, values) -> torch.Tensor:
        """All processes' values (equal-sized per process) gathered into one tensor."""
        return self.accelerator.gather(torch.as_tensor(values, dtype=torch.float32, device=self.device).reshape(-1))

    def start_trackers(self) -> None:
        start_accelerate_trackers(self.accelerator, self.run.path, dataclasses.asdict(self.settings))

    def anneal_learning_rate(self, step: int) -> float:
        """Set this step's learning rates (decayed linearly with `anneal_lr`); return the policy's."""
        decay = (1 - (step - 1) / self.settings.total_steps) if self.settings.anneal_lr else 1.0
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * decay
        return self.optimizer.param_groups[0]["lr"]

    # --- 1. rollout ----------------------------------------------------------------------------------------------

    @torch.no_grad()
    def rollout(self, step: int) -> Rollout:
        """This process's share of the step's prompts, one response each, with the log-probs of the policy and the
        reference and the values (computed micro-batch by micro-batch, without gradients)."""
        settings = self.settings
        indices = _prompt_indices(
            len(self.prompts), (step - 1) * settings.batch_size, settings.batch_size, settings.seed
        )
        prompts = [self.prompts[i] for i in indices[self.rank * self.local_batch : (self.rank + 1) * self.local_batch]]
        with self.accelerator.autocast():
            ro = _generate(
                self.unwrapped.policy,
                self.tokenizer,
                prompts,
                settings,
                self.eos_ids,
                self.device,
                with_logprobs=self.logprobs_from_generate,
            )
            chunks = [slice(i, i + self.micro_batch) for i in range(0, self.local_batch, self.micro_batch)]
            logps, refs, vals, hiddens = zip(*(self._logprobs_and_values(ro, chunk) for chunk in chunks))
            ro.logprobs, ro.ref_logprobs, ro.values = torch.cat(logps), torch.cat(refs), torch.cat(vals)
            ro.value_hidden = None if hiddens[0] is None else torch.cat(hiddens)
        return ro

    def _logprobs_and_values(self, ro: Rollout, chunk: slice):
        """(policy log-probs, reference log-probs, values, the frozen value backbone's hidden states or None) of the
        rollout's rows `chunk` (no gradients: called from `rollout`)."""
        unwrapped, temperature = self.unwrapped, self.settings.temperature
        hidden = None
        if not self.settings.separate_value_model:  # one pass gives the log-probs and the values
            logp, values, _ = _forward(unwrapped, ro, chunk, temperature)
        else:
            p = ro.context_length
            hidden = unwrapped.value_hidden(ro.query_response[chunk], ro.attention_mask[chunk], ro.position_ids[chunk])
            hidden = hidden[:, p - 1 : -1]
            values = unwrapped.values_from_hidden(hidden)
            if self.settings.trains_value_backbone:
                hidden = None  # the backbone trains: the update computes its hidden states afresh
            if self.logprobs_from_generate:
                logp = ro.logprobs[chunk]
            else:
                logp, _, _ = _forward(unwrapped.policy, ro, chunk, temperature)
        if self.ref_model is not None:
            ref_logp, _, _ = _forward(self.ref_model, ro, chunk, temperature)
        else:
            with unwrapped.policy.disable_adapter():  # LoRA: the reference is the base model
                ref_logp, _, _ = _forward(unwrapped.policy, ro, chunk, temperature)
        return logp, ref_logp, values, hidden

    # --- 2. scoring ----------------------------------------------------------------------------------------------

    def score(self, ro: Rollout) -> list[float]:
        """Score each (prompt, response) with reward_fn; `ro.scores` gets the scores PPO optimises (minus
        `missing_eos_penalty` for a response cut without EOS). Returns reward_fn's own scores."""
        raw_scores = self.reward_fn(list(ro.prompts), list(ro.texts))
        if len(raw_scores) != len(ro.texts):
            raise ValueError(
                f"reward_fn returned {len(raw_scores)} scores for {len(ro.texts)} responses "
                f"(expected one float per response)"
            )
        scores = torch.tensor([float(s) for s in raw_scores], dtype=torch.float32, device=self.device)
        if self.settings.missing_eos_penalty is not None:
            scores = scores - self.settings.missing_eos_penalty * (~ro.has_eos).float()
        ro.scores = scores
        return raw_scores

    # --- 4. update -----------------------------------------------------------------------------------------------

    def update(self, step: int, ro: Rollout, values, advantages, returns) -> dict[str, list[torch.Tensor]]:
        """`num_ppo_epochs` passes over the rollout, each in freshly shuffled minibatches, one optimizer step per
        minibatch. Returns the per-micro-batch statistics."""
        stats = {k: [] for k in ("approxkl", "clipfrac", "pg_loss", "vf_loss", "vf_clipfrac", "entropy", "ratio")}
        for _epoch in range(self.settings.num_ppo_epochs):
            order = torch.randperm(self.local_batch, device=self.device)
            for start in range(0, self.local_batch, self.mini_batch):
                self._optimizer_step(
                    step, ro, values, advantages, returns, order[start : start + self.mini_batch], stats
                )
        return stats

    def _optimizer_step(self, step: int, ro: Rollout, values, advantages, returns, mini, stats: dict) -> None:
        """One optimizer step on the minibatch `mini`, its gradient added up over `gradient_accumulation_steps`
        micro-batches: a micro-batch's token-mean loss is weighted by its share of the minibatch's response tokens,
        so the micro-batches add up to the minibatch's token mean."""
        n_tokens = ro.mask[mini].sum()
        for k, start in enumerate(range(0, self.mini_batch, self.micro_batch)):
            idx = mini[start : start + self.micro_batch]
            m = ro.mask[idx]
            is_last = k == self.settings.gradient_accumulation_steps - 1
            # Gradients are synchronised across processes only on the last micro-batch.
            with self.accelerator.no_sync(self.model) if not is_last else contextlib.nullcontext():
                loss, logits, micro_stats = self._loss(step, ro, idx, values, advantages, returns)
                self.accelerator.backward(loss * (m.sum() / n_tokens))
            with torch.no_grad():
                entropy = entropy_from_logits(logits.detach(), self.settings.temperature)
                for key, value in {**micro_stats, "entropy": masked_mean(entropy, m)}.items():
                    stats[key].append(value)
        self.accelerator.clip_grad_norm_(self.model.parameters(), self.settings.max_grad_norm)
        self.update_begun = True  # from here until the step is logged the weights are mid-step
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _loss(self, step: int, ro: Rollout, idx, values, advantages, returns):
        """(clipped policy loss + vf_coef * clipped value loss, the logits, the detached statistics) of the
        micro-batch `idx`, from one forward pass. Raises _NonFinite on every process when the loss is not finite on
        any of them."""
        settings, m = self.settings, ro.mask[idx]
        with self.accelerator.autocast():  # one forward pass gives logits and values
            logp, vpred, logits = _forward(self.model, ro, idx, settings.temperature)
            pg_loss, pg = policy_loss(logp, ro.logprobs[idx], advantages[idx], m, settings.cliprange)
            vf_loss, vf_clipfrac = value_loss(vpred * m, values[idx], returns[idx], m, settings.cliprange_value)
            loss = pg_loss + settings.vf_coef * vf_loss
        # Every process must agree to stop, or DDP would wait forever for the others.
        if self.gather([float(torch.isfinite(loss))]).min() < 1:
            raise _NonFinite(step, loss, ro.scores)
        stats = {"pg_loss": pg_loss.detach(), "vf_loss": vf_loss.detach(), "vf_clipfrac": vf_clipfrac}
        return loss, logits, {**stats, "approxkl": pg["approxkl"], "clipfrac": pg["clipfrac"], "ratio": pg["ratio"]}

    # --- 5. logging ----------------------------------------------------------------------------------------------

    def log(self, step: int, ro: Rollout, raw_scores, kl, non_score_reward, beta: float, lr: float, stats: dict):
        """The step's metrics (TRL's names, averaged over processes) into metrics.jsonl and the trackers, and every
        `sample_every` steps a few rows into samples.jsonl. Returns (metrics, the sample rows written)."""
        settings, mask, scores = self.settings, ro.mask, ro.scores
        seq_kl = kl.sum(1)
        local = {
            "objective/kl": seq_kl.mean(),
            "objective/entropy": (-ro.logprobs * mask).sum(1).mean(),
            "objective/non_score_reward": non_score_reward.sum(1).mean(),
            "objective/rlhf_reward": non_score_reward.sum(1).mean() + scores.mean(),
            "objective/scores": scores.mean(),
            "objective/response_length": mask.sum(1).mean(),
            **{
                name: torch.stack(stats[key]).mean()
                for name, key in (
                    ("policy/approxkl_avg", "approxkl"),
                    ("policy/clipfrac_avg", "clipfrac"),
                    ("loss/policy_avg", "pg_loss"),
                    ("loss/value_avg", "vf_loss"),
                    ("val/clipfrac_avg", "vf_clipfrac"),
                    ("policy/entropy_avg", "entropy"),
                    ("val/ratio", "ratio"),
                )
            },
        }
        names = list(local)
        gathered = self.gather([float(local[n]) for n in names]).reshape(self.world, len(names))
        metrics = dict(zip(names, gathered.mean(0).tolist()))
        ratios = self.gather([float(r) for r in stats["ratio"]])
        metrics["val/ratio_var"] = float(ratios.var(correction=1 if ratios.numel() > 1 else 0))
        eos_tokens = torch.isin(ro.responses, torch.tensor(self.eos_ids, device=self.device)) & mask.bool()
        metrics["val/num_eos_tokens"] = int(self.gather([float(eos_tokens.sum())]).sum())
        metrics["objective/kl_coef"] = beta
        self.state["episode"] += settings.batch_size
        metrics["lr"], metrics["episode"] = lr, self.state["episode"]
        if self.state["initial_score"] is None:
            self.state["initial_score"] = metrics["objective/scores"]
        self.run.log(step, metrics)
        self.accelerator.log(tracker_metrics(metrics), step=step)  # main process only, like run.log
        samples = []
        if step % settings.sample_every == 0:
            seq_kl_list = seq_kl.tolist()
            # "score" is reward_fn's; "score_with_eos_penalty" the one optimised (and averaged into
            # objective/scores): minus missing_eos_penalty for a response cut without EOS.
            scores_list, has_eos = scores.tolist(), ro.has_eos.tolist()
            samples = [
                {
                    "prompt": _prompt_text(ro.prompts[i]),
                    "response": ro.texts[i],
                    "score": float(raw_scores[i]),
                    "score_with_eos_penalty": scores_list[i],
                    "has_eos": has_eos[i],
                    "kl": seq_kl_list[i],
                    "n_tokens": int(mask[i].sum()),
                }
                for i in range(min(settings.num_samples, self.local_batch))
            ]
            self.run.log_samples(step, samples)
        return metrics, samples

    # --- 6. checkpoint -------------------------------------------------------------------------------------------

    def end_step(self, step: int, metrics: dict, samples: list[dict]) -> None:
        """The step is complete: count it, checkpoint it every `save_every` steps, then call the callbacks."""
        self.steps_run += 1
        self.state["step"] = step
        self.rng_at_step_end, self.update_begun = _rng_state(), False
        self.state["seconds"] += time.perf_counter() - self.started
        self.started = time.perf_counter()
        self.bar.set_postfix(score=f"{metrics['objective/scores']:.3f}", kl=f"{metrics['objective/kl']:.2f}")
        if step % self.settings.save_every == 0:
            self.save(step, rng=self.rng_at_step_end)
            self.saved_step = step
        if self.accelerator.is_main_process:
            for cb in self.callbacks:
                cb(step, dict(metrics), list(samples))
        self.last_metrics = metrics

    def save(self, step: int, collective: bool = True, rng: dict | None = None) -> Path | None:
        """Checkpoint the current state (with `rng` as this process's random state, default the current one);
        `collective` gathers every process's RNG (not possible on an interrupt, when other processes may be
        elsewhere)."""
        from accelerate.utils import gather_object

        rng = rng or _rng_state()
        rngs = gather_object([rng]) if collective and self.world > 1 else [rng]
        path = None
        if self.accelerator.is_main_process:
            path = _save_checkpoint(
                self.run.checkpoint_path,
                step,
                self.unwrapped,
                self.optimizer,
                {**self.state, "step": step, "kl_controller": self.kl_ctl.state_dict(), "num_processes": self.world},
                rngs,
            )
        if collective:
            self.accelerator.wait_for_everyone()
        return path or _latest_checkpoint(self.run.checkpoint_path)

    # --- interrupts, failures, the end ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def failures_recorded(self):
        """Around the steps: an interrupt, a non-finite loss or any other error is written into the run's status
        (see train_ppo's docstring) and raised again."""
        state, run = self.state, self.run
        try:
            yield
        except KeyboardInterrupt:
            if not self.update_begun and state["step"] > 0 and state["step"] != self.saved_step:
                path = self.save(state["step"], collective=False, rng=self.rng_at_step_end)  # the completed step
            else:  # mid-update (a partial step is never saved) or nothing new since the last checkpoint
                path = _latest_checkpoint(run.checkpoint_path)
            resumes_at = int(json.loads((path / "state.json").read_text())["step"]) if path else 0
            lost = (
                f" Step {state['step'] + 1} was stopped in its update; its partial update is discarded."
                if self.update_begun
                else ""
            )
            run.set_status(
                "interrupted",
                f"stopped by KeyboardInterrupt.{lost} Call again with resume=True to "
                f"continue after step {resumes_at}" + ("" if path else " (from the start: no checkpoint)"),
                step=state["step"],
                checkpoint=path,
            )
            raise
        except _NonFinite as bad:
            good = _latest_checkpoint(run.checkpoint_path)
            hint = (
                " The reward function returned non-finite scores."
                if not torch.isfinite(bad.scores).all()
                else " Lower the learning rate or check the reward function."
            )
            message = (
                f"loss became {bad.value} at step {bad.step}; training stopped before that update. Last good "
                f"checkpoint: {good or 'none (the loss was not finite before the first save)'}.{hint}"
            )
            run.set_status("failed", message, step=bad.step, checkpoint=good)
            raise NonFiniteLossError(message) from None
        except Exception as err:
            message = f"{type(err).__name__}: {err}"
            if self.world == 1:
                run.set_status(
                    "failed", message, step=state["step"], checkpoint=_latest_checkpoint(run.checkpoint_path)
                )
                raise
            # Several processes: a failure on one makes its peers fail too, in their next collective. Record the
            # first cause, from whichever process saw it (the launcher may stop the main process before it writes).
            first = _first_failure(run.path, self.rank, message)
            if self.accelerator.is_main_process or first["rank"] == self.rank:
                run.set_status(
                    "failed",
                    f"process {first['rank']} of {self.world} failed: {first['message']}",
                    any_process=True,
                    step=state["step"],
                    rank=first["rank"],
                    checkpoint=_latest_checkpoint(run.checkpoint_path),
                )
            raise

    def finish(self) -> None:
        """The final model (main process) and the summary; callbacks with a close() are closed."""
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            save_model(self.unwrapped.policy, self.tokenizer, self.run)  # with LoRA: adapter/ and the merged model/
            done, state, last = self.steps_run > 0, self.state, self.last_metrics
            self.run.finish(
                {
                    "steps": state["step"],
                    "episodes": state["episode"],
                    "initial_score": state["initial_score"],
                    "final_score": last["objective/scores"] if done else None,
                    "final_kl": last["objective/kl"] if done else None,
                    "kl_estimator": self.settings.kl_estimator,
                    "final_kl_coef": self.kl_ctl.value,
                    "seconds": state["seconds"],
                    "seconds_per_step": state["seconds"] / state["step"] if state["step"] else None,
                    "num_processes": self.world,
                }
            )
            for cb in self.callbacks:  # the end of training, for callbacks that want one (the dashboard saves plots)
                close = getattr(cb, "close", None)
                if callable(close):
                    close()
        self.accelerator.wait_for_everyone()

    def close(self) -> None:
        """Free the prepared objects before tearing down the process group (avoids a hang at exit under gloo), and
        give torch its threads back."""
        self.bar.close()
        self.model = self.optimizer = self.unwrapped = self.ref_model = None
        self.accelerator.free_memory()
        self.accelerator.end_training()
        torch.set_num_threads(self.threads_before)


class _NonFinite(Exception):
    """Internal: a non-finite loss was seen by some process at `step`."""

    def __init__(self, step: int, loss: torch.Tensor, scores: torch.Tensor) -> None:
        super().__init__(step)
        self.step, self.value, self.scores = step, float(loss.detach()), scores


# ================================================================================================================
# The training loop
# ================================================================================================================


def train_ppo(
    policy: str | os.PathLike,
    reward_fn: Callable[[list, list], list[float]] | str,
    prompts: Sequence[Any],
    settings: PPOSettings | None = None,
    run_dir: str | os.PathLike = "runs/ppo",
    *,
    reference: str | os.PathLike | None = None,
    value_model: str | os.PathLike | None = None,
    resume: bool = False,
    callbacks: Sequence[Callable[[int, dict, list[dict]], Any]] = (),
) -> RunData:
    """Optimise `policy` (name or path) with PPO against `reward_fn(prompts, responses) -> list[float]` (any
    rlhfkit Judge, a reward model's scorer, or a builtin judge name such as "vader"), with a KL penalty to
    `reference` (default: the policy's own starting weights). Returns the run read back (`rlhfkit.runs.load`).

    - `value_model`: path of the separate value model's initial weights (default the policy's path; a trained
      reward model is a good start). Not allowed with `settings.value_model="shared"`.
    - `callbacks`: `cb(step, metrics, samples)` called on the main process after every step (`samples` holds the
      rows written to samples.jsonl at that step, else []). Raising KeyboardInterrupt from one stops the run like
      Ctrl-C does. A callback with a `close()` method is closed when training finishes (the live dashboard then
      draws what is pending, or writes dashboard.html when headless).
    - Ctrl-C / KeyboardInterrupt marks the run "interrupted" and re-raises. Between updates (in a rollout, in a
      callback) it first checkpoints the last completed step with the random state that step ended with; in the
      middle of an update it saves nothing (the weights then hold part of a step) and the newest checkpoint stays
      as it was. `resume=True` continues from the newest checkpoint with continuous step numbers, exactly as an
      uninterrupted run would (starts afresh when there is none).
    - A NaN or infinite loss stops the run before the bad update, marks it "failed" and raises NonFiniteLossError
      naming the last good checkpoint (saved every `settings.save_every` steps).
    - Any other error marks the run "failed" with its cause; with several processes, the cause of the first
      process that failed and its index (not a peer's "Connection closed" that followed).
    - At the end: run_dir/model (policy weights as safetensors + tokenizer; LoRA merged) and summary.json.
    """
    settings = settings or PPOSettings()
    prompts, reward_fn = _checked_inputs(prompts, reward_fn)
    loop = _set_up(
        policy,
        reward_fn,
        prompts,
        settings,
        run_dir,
        reference=reference,
        value_model=value_model,
        resume=resume,
        callbacks=callbacks,
    )
    try:
        with loop.failures_recorded():
            loop.start_trackers()
            for step in loop.bar:
                lr = loop.anneal_learning_rate(step)
                # 1. rollout: this process's share of the step's prompts, with log-probs and values
                rollout = loop.rollout(step)
                # 2. scoring: reward_fn's score on the last token, -beta * KL on every token
                raw_scores = loop.score(rollout)
                beta = loop.kl_ctl.value
                kl, non_score_reward, rewards = _token_rewards(rollout, beta, settings)
                # 3. advantages: GAE over the response tokens, whitened
                values, advantages, returns = _advantages(rollout, rewards, settings)
                # 4. update: PPO epochs over shuffled minibatches
                stats = loop.update(step, rollout, values, advantages, returns)
                # 5. logging: metrics averaged over processes, samples, trackers; the adaptive beta follows the KL
                metrics, samples = loop.log(step, rollout, raw_scores, kl, non_score_reward, beta, lr, stats)
                loop.kl_ctl.update(metrics["objective/kl"], settings.batch_size)
                # 6. checkpoint every save_every steps, then the callbacks
                loop.end_step(step, metrics, samples)
        loop.finish()
    finally:
        loop.close()
    return load(loop.run.path)
