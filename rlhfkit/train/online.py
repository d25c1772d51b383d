"""Online RL from a reward: RLOO and GRPO through TRL.

    run = train_online("tiny", VaderJudge(), reviews_task(), OnlineSettings(algorithm="rloo"), "runs/rloo")

Each step samples `num_generations` responses for a few prompts from the current policy, scores them with the
reward, and pushes up the responses that beat their siblings:

- RLOO (Ahmadian et al. 2024): advantage = reward minus the mean reward of the other responses to the same prompt;
  the KL penalty is part of the reward: reward - beta * sum_t [log pi(y_t) - log pi_ref(y_t)] (k1 estimator).
- GRPO (Shao et al. 2024): advantage = reward standardised within the group; the KL is a separate loss term,
  beta * mean_t k3 with k3 = exp(ref - logp) - (ref - logp) - 1 (always >= 0).

The reward is a rlhfkit `Judge`, any callable `f(prompts, completions, **kw) -> list[float]` (TRL's reward
function signature), a builtin judge name ("vader", "length"), or a reward model: a folder (or Hub id) of a
sequence classifier, loaded with `rlhfkit.models.load_reward_model`.

Prompts are a list of strings or a Task (its train prompts). With a chat template, string prompts become
conversational so that they are rendered exactly as `rlhfkit.sampling.render_prompts` renders them; reward
callables still receive plain text (the prompt as written and the response's text).

Metrics: TRL's own names (`reward`, `reward_std`, `kl`, `rewards/<name>/mean`, `completions/mean_length`, `entropy`,
...) plus aliases every online method in rlhfkit shares:
  objective/scores       mean reward of the step's completions (TRL's `reward`, before any KL penalty)
  objective/kl           sequence-level KL estimate: TRL's per-token mean `kl` x mean completion length, i.e. the
                         summed KL per response (k1 for RLOO, k3 for GRPO; absent when beta = 0, where TRL loads
                         no reference)
  objective/rlhf_reward  objective/scores - beta * objective/kl
"""

from __future__ import annotations

import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from rlhfkit.data import Task
from rlhfkit.judges import Judge, as_judge
from rlhfkit.models import load_policy, load_reward_model, load_tokenizer, resolve_model
from rlhfkit.runs import Run, RunData, load
from rlhfkit.train.common import TrainSettings, finite_or_none, seed_adapter_init, train_into_run, trl_args
from rlhfkit.train.dpo import looks_rendered

__all__ = ["OnlineSettings", "train_online", "ALGORITHMS"]

ALGORITHMS = ("rloo", "grpo")
_BUILTIN_JUDGES = ("vader", "length")


@dataclass
class OnlineSettings(TrainSettings):
    """Settings of an RLOO or GRPO run. The defaults raise the VADER reward of the embedded default clearly within
    about a minute on a CPU; for a real model on a GPU lower `learning_rate` (1e-6 to 1e-5) and raise
    `max_completion_length` and `max_steps`. The fields every stage has (seed, device, lora, report_to,
    trl_overrides) come from `TrainSettings`; `trl_overrides` go to `trl.RLOOConfig` / `trl.GRPOConfig`, e.g.
    {"loss_type": "grpo", "scale_rewards": "none"} for GRPO, {"normalize_advantages": True} for RLOO."""

    algorithm: str = "rloo"
    """"rloo" (leave-one-out baseline, KL in the reward) or "grpo" (group-normalised advantages, KL in the loss)."""
    beta: float = 0.05
    """KL coefficient towards the starting policy. 0 = no KL term and no reference model (faster, but nothing
    holds the policy back and objective/kl is not logged)."""
    num_generations: int = 4
    """Responses sampled per prompt (at least 2: each is compared with its siblings)."""
    prompts_per_step: int = 8
    """Prompts per optimizer step; a step trains on prompts_per_step x num_generations responses."""
    max_completion_length: int = 48
    """Longest sampled response, in tokens."""
    temperature: float = 1.0
    """Sampling temperature of the responses (1.0 = the policy's own distribution, which the KL assumes)."""
    top_p: float = 1.0
    """Nucleus sampling threshold (1.0 = off)."""
    learning_rate: float = 3e-4
    """AdamW learning rate. High because the embedded default is tiny; a real model wants 1e-6 to 1e-5."""
    max_steps: int = 40
    """Optimizer steps (each one samples a fresh batch)."""
    num_iterations: int = 1
    """Optimizer passes over each sampled batch (TRL's mu; > 1 re-uses samples with PPO-style clipping)."""
    lr_scheduler_type: str = "constant"
    """Learning-rate schedule ("constant", "linear", "cosine", ...)."""
    chat: bool | None = None
    """Wrap string prompts in the chat template; None = when the tokenizer has one and the prompts are not
    already rendered."""
    samples_every: int = 10
    """Write sample completions (with their rewards) to samples.jsonl every this many steps, and at the last."""
    samples_per_log: int = 4
    """Completions written each time (one per prompt)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {self.algorithm!r}")
        if self.num_generations < 2:
            raise ValueError(
                f"num_generations must be at least 2 (each response is compared with its siblings), "
                f"got {self.num_generations}"
            )
        if self.beta < 0:
            raise ValueError(f"beta must be >= 0, got {self.beta}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.prompts_per_step < 1 or self.max_completion_length < 1 or self.max_steps < 1:
            raise ValueError("prompts_per_step, max_completion_length and max_steps must be >= 1")
        if self.samples_every < 1 or self.samples_per_log < 0:
            raise ValueError("samples_every must be >= 1 and samples_per_log >= 0")


# --- prompts and rewards ----------------------------------------------------------------------------------------


def _text(value: Any) -> str:
    """Prompt or completion as text: a message list gives its last message's content."""
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        return str(value[-1].get("content", ""))
    return str(value)


def _prompt_dataset(prompts: Task | Sequence, tokenizer, chat: bool | None):
    """A TRL prompt-only dataset, and whether string prompts were wrapped into chat messages."""
    import datasets

    if isinstance(prompts, Task):
        prompts = prompts.train_prompts
    if isinstance(prompts, (str, bytes)) or not isinstance(prompts, Sequence):
        raise TypeError(
            f"prompts must be a list of strings (or of message lists) or a Task, got {type(prompts).__name__}"
        )
    prompts = list(prompts)
    if not prompts:
        raise ValueError("prompts is empty; expected at least one prompt")
    for i, p in enumerate(prompts):
        if isinstance(p, str):
            if not p.strip():
                raise ValueError(f"prompts[{i}] is an empty string (expected an instruction)")
        elif not (isinstance(p, list) and p and all(isinstance(m, dict) and "content" in m for m in p)):
            raise TypeError(
                f"prompts[{i}] is {type(p).__name__} {str(p)[:60]!r}; expected a string or a list of "
                f"{{'role', 'content'}} messages"
            )
    strings = all(isinstance(p, str) for p in prompts)
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if chat is None:
        chat = strings and has_template and not any(looks_rendered(p, tokenizer) for p in prompts)
    if chat and strings:
        if not has_template:
            raise ValueError("chat=True but the tokenizer has no chat template; pass chat=False")
        return datasets.Dataset.from_dict({"prompt": [[{"role": "user", "content": p}] for p in prompts]}), True
    return datasets.Dataset.from_dict({"prompt": prompts}), False


class _TextReward:
    """A reward callable that receives plain text when rlhfkit wrapped the prompts into chat messages, and whose
    output is checked: one finite number (or None, "no score") per completion."""

    def __init__(self, fn: Callable, name: str, to_text: bool) -> None:
        self.fn, self.to_text = fn, to_text
        self.__name__ = name  # TRL names the metric rewards/<name>/mean after this

    def __call__(self, prompts, completions, **kwargs):
        if self.to_text:
            prompts = [_text(p) for p in prompts]
            completions = [_text(c) for c in completions]
        scores = list(self.fn(prompts, completions, **kwargs))
        if len(scores) != len(completions):
            raise ValueError(
                f"reward {self.__name__!r} returned {len(scores)} scores for {len(completions)} "
                f"completions (expected one per completion)"
            )
        for i, s in enumerate(scores):
            if s is not None and not (isinstance(s, (int, float)) and math.isfinite(s)):
                raise ValueError(
                    f"reward {self.__name__!r} returned {s!r} for completion {i} "
                    f"(expected a finite number, or None for 'no score')"
                )
        return scores


def _reward_function(reward: Any, *, device, to_text: bool):
    """(reward_funcs entry, its tokenizer or None, a description) for TRL."""
    import torch

    if isinstance(reward, torch.nn.Module):
        return reward, None, f"reward model {getattr(reward.config, '_name_or_path', type(reward).__name__)}"
    if isinstance(reward, str) and reward in _BUILTIN_JUDGES and not Path(reward).exists():
        reward = as_judge(reward)
    if isinstance(reward, (str, os.PathLike)):
        path = resolve_model(reward)
        config = Path(path) / "config.json"
        if config.exists() and "SequenceClassification" not in config.read_text():
            warnings.warn(
                f"{path} is not a sequence classifier: its reward head will be freshly initialised, so "
                f"its scores mean nothing. Train a reward model first (rlhfkit.train.reward).",
                stacklevel=3,
            )
        model = load_reward_model(path, device=device)
        model.eval()
        model.requires_grad_(False)
        return model, load_tokenizer(path, padding_side="right"), f"reward model {path}"
    if isinstance(reward, Judge):
        return _TextReward(reward, reward.name, to_text), None, f"judge {reward.name}"
    if callable(reward):
        name = getattr(reward, "__name__", type(reward).__name__)
        return _TextReward(reward, name, to_text), None, f"function {name}"
    raise TypeError(
        f"reward must be a Judge, a callable f(prompts, completions, **kw) -> list[float], a builtin "
        f"judge name {_BUILTIN_JUDGES} or a reward model folder, got {type(reward).__name__}"
    )


# --- logging ----------------------------------------------------------------------------------------------------


def _callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


class _OnlineLogCallback(_callback_base()):
    """Adds the shared objective/* aliases to each log row (before the run's MetricsCallback writes it) and writes
    a few of the step's completions, with their rewards, to samples.jsonl."""

    def __init__(self, run: Run, beta: float, settings: OnlineSettings, gold_judge: Callable | None) -> None:
        self.run, self.beta, self.settings, self.gold_judge = run, beta, settings, gold_judge
        self.trainer = None  # set once the trainer exists: its buffer of the latest completions is read

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs or "reward" not in logs:
            return
        scores = finite_or_none(logs.get("reward"))
        logs["objective/scores"] = scores
        kl, length = finite_or_none(logs.get("kl")), finite_or_none(logs.get("completions/mean_length"))
        if kl is not None and length is not None:
            logs["objective/kl"] = kl * length
            if scores is not None:
                logs["objective/rlhf_reward"] = scores - self.beta * logs["objective/kl"]
        step = state.global_step
        if step == 1 or step % self.settings.samples_every == 0 or step >= state.max_steps:
            self._write_samples(step)

    def _write_samples(self, step: int) -> None:
        buffer = getattr(self.trainer, "_logs", None)
        if not buffer or not buffer.get("prompt") or not self.settings.samples_per_log:
            return
        prompts, completions = list(buffer["prompt"]), list(buffer["completion"])
        rewards = {name: list(values) for name, values in buffer["rewards"].items()}
        advantages = list(buffer["advantages"])
        picks = list(range(0, len(prompts), self.settings.num_generations))[: self.settings.samples_per_log]
        rows = []
        for i in picks:
            row = {"prompt": _text(prompts[i]), "response": _text(completions[i])}
            for name, values in rewards.items():
                row["reward" if len(rewards) == 1 else f"reward/{name}"] = finite_or_none(values[i])
            row["advantage"] = finite_or_none(advantages[i]) if i < len(advantages) else None
            rows.append(row)
        if self.gold_judge is not None and rows:
            gold = self.gold_judge([r["prompt"] for r in rows], [r["response"] for r in rows])
            for row, score in zip(rows, gold):
                row["gold_score"] = float(score)
        self.run.log_samples(step, rows)


def _reward_summary(history: list[dict]) -> dict:
    """First and last logged mean reward (and means over up to 5 steps at each end, less noisy), last KL."""
    rows = [r for r in history if "reward" in r and finite_or_none(r["reward"]) is not None]
    if not rows:
        return {}
    rewards = [float(r["reward"]) for r in rows]
    k = min(5, len(rewards))
    out = {
        "reward_before": rewards[0],
        "reward_after": rewards[-1],
        "reward_before_mean5": sum(rewards[:k]) / k,
        "reward_after_mean5": sum(rewards[-k:]) / k,
    }
    last = rows[-1]
    if "kl" in last:
        out["kl"] = finite_or_none(last["kl"])
        length = finite_or_none(last.get("completions/mean_length"))
        if out["kl"] is not None and length is not None:
            out["objective/kl"] = out["kl"] * length
    out["completions/mean_length"] = finite_or_none(last.get("completions/mean_length"))
    return out


# --- the stage --------------------------------------------------------------------------------------------------


def train_online(
    model: str | os.PathLike,
    reward: Any,
    prompts: Task | Sequence,
    settings: OnlineSettings | None = None,
    run_dir: str | os.PathLike = "runs/rloo",
    *,
    gold_judge: Callable | None = None,
    resume: bool = False,
    callbacks: Sequence = (),
) -> RunData:
    """Train `model` (a name, folder or Hub id) with RLOO or GRPO to maximise `reward` on `prompts`; return the run.

    `reward`: a Judge, a callable `f(prompts, completions, **kw) -> list[float]`, "vader"/"length", or a reward
    model folder. `prompts`: strings, message lists, or a Task (its train prompts; its gold judge then also scores
    the logged samples unless `gold_judge` is given). `resume=True` continues an interrupted run from its last
    checkpoint. `callbacks`: extra transformers TrainerCallbacks (the live dashboard).

    Writes config.json, metrics.jsonl (TRL's names plus objective/scores, objective/kl, objective/rlhf_reward),
    samples.jsonl, model/ (LoRA merged into full weights, the adapter alone in adapter/) and summary.json: reward
    before/after (first and last logged mean reward), KL, steps and seconds."""
    from trl import GRPOConfig, GRPOTrainer, RLOOConfig, RLOOTrainer

    settings = settings or OnlineSettings()
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            f"model must be a model name, a folder or a Hub id (a string or Path), got "
            f"{type(model).__name__}: TRL rebuilds the reference from the model's path, so save an "
            f"in-memory model with save_pretrained(folder) and pass the folder"
        )
    if gold_judge is None and isinstance(prompts, Task):
        gold_judge = prompts.gold_judge
    policy_path = resolve_model(model)
    tokenizer = load_tokenizer(policy_path)
    dataset, wrapped = _prompt_dataset(prompts, tokenizer, settings.chat)
    reward_func, reward_tokenizer, reward_note = _reward_function(reward, device=settings.device, to_text=wrapped)

    run = Run(
        run_dir,
        stage=settings.algorithm,
        seed=settings.seed,
        resume=resume,
        config={
            "model": policy_path,
            "reward": reward_note,
            "settings": settings,
            "prompts": len(dataset),
            "chat_format": wrapped,
        },
    )
    started = time.time()
    policy = load_policy(policy_path, device=settings.device)

    batch = settings.prompts_per_step * settings.num_generations
    fields = dict(
        beta=settings.beta,
        num_generations=settings.num_generations,
        max_completion_length=settings.max_completion_length,
        temperature=settings.temperature,
        top_p=settings.top_p,
        learning_rate=settings.learning_rate,
        max_steps=settings.max_steps,
        num_iterations=settings.num_iterations,
        lr_scheduler_type=settings.lr_scheduler_type,
        # One optimizer step per generation batch: every step samples fresh responses from the current policy.
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=1,
        steps_per_generation=1,
        disable_dropout=True,
        use_vllm=False,
        report_to=settings.report_to,
    )
    fields.update(settings.trl_overrides)
    config_cls, trainer_cls = (RLOOConfig, RLOOTrainer) if settings.algorithm == "rloo" else (GRPOConfig, GRPOTrainer)
    args = trl_args(config_cls, run, seed=settings.seed, device=settings.device, **fields)

    logger = _OnlineLogCallback(run, args.beta, settings, gold_judge)
    if settings.lora is not None:
        seed_adapter_init(settings.seed)  # the trainer makes the adapter before it seeds anything
    trainer = trainer_cls(
        model=policy,
        reward_funcs=reward_func,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        reward_processing_classes=reward_tokenizer,
        peft_config=settings.lora.to_peft("CAUSAL_LM") if settings.lora is not None else None,
        # Ours first, so the aliases are in each row before the dashboard and the run's metrics stream see it.
        callbacks=[logger, *callbacks],
    )
    logger.trainer = trainer
    train_into_run(trainer, run, resume=resume, tokenizer=tokenizer)

    summary = {
        **_reward_summary(trainer.state.log_history),
        "steps": trainer.state.global_step,
        "seconds": round(time.time() - started, 2),
        "algorithm": settings.algorithm,
        "beta": args.beta,
        "reward": reward_note,
        "kl_estimator": ("k1 (RLOO)" if settings.algorithm == "rloo" else "k3 (GRPO)") if args.beta else None,
    }
    run.finish(summary)
    return load(run.path)
