"""The reward model: a sequence classifier with one output, trained on preference pairs with TRL's `RewardTrainer`
(Bradley-Terry: loss = -log sigmoid(r(chosen) - r(rejected) - margin)), and `RewardModelJudge`, the scorer used
everywhere a reward model is applied afterwards (sampling, PPO/RLOO rewards, evaluation).

    run = train_reward_model(sft_run.model_path, prefs)        # prefs: PreferenceData, Dataset or list of dicts
    run.summary["heldout_accuracy"]
    judge = RewardModelJudge(run.model_path)
    judge(prompts, responses) -> list[float]

How a (prompt, response) pair becomes tokens, read from TRL 1.16's `RewardTrainer._prepare_dataset`:

- conversational rows (message lists): TRL renders `prompt + chosen` through the chat template
  (`apply_chat_template(..., tokenize=True)`, no generation prompt) and appends nothing; the template's own
  end-of-turn token (`<|end|>` for the embedded default) ends the sequence.
- standard rows (strings): TRL appends the EOS token to `chosen`/`rejected` (unless already there) and tokenizes
  the plain string `prompt + chosen` with `tokenizer(text)`. It does *not* use the chat template, so a model
  trained that way would score differently from how the policy actually sees its prompts.

Our choice: when the tokenizer has a chat template (and `RewardSettings.chat` is not False), standard rows are
converted to conversational (the prompt becomes one user turn, each response one assistant turn) before TRL sees
them, so the reward model is trained on exactly the text the policy is sampled from, and `RewardModelJudge`
renders pairs the same way. Without a template the plain TRL path is used, EOS included. The choice is saved next
to the model (`rlhfkit_reward.json`), and the judge reads it. Sequences are right-padded, as TRL's collator does,
and the reward is read at the last non-pad token.

Length: TRL does not truncate; it *drops* training pairs longer than `max_length` (we count and report them). The
judge scores every pair it is given; one longer than the limit keeps its last `max_length` tokens (the reward is
read at the final token) and a warning says how many were cut.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
import warnings
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from rlhfkit.data import PreferenceData, load_preferences
from rlhfkit.judges import Judge
from rlhfkit.models import LoraSettings, load_reward_model, load_tokenizer, pick_device, resolve_model
from rlhfkit.runs import Run, RunData, load
from rlhfkit.train.common import TrainSettings, finite_or_none, seed_adapter_init, train_into_run, trl_args

__all__ = [
    "RewardSettings",
    "train_reward_model",
    "RewardModelJudge",
    "pairwise_accuracy",
    "to_trl_preferences",
    "REWARD_META",
]

REWARD_META = "rlhfkit_reward.json"  # how the model renders pairs, saved beside its weights


@dataclass
class RewardSettings(TrainSettings):
    """Settings of reward-model training. Defaults fit the embedded default on a CPU (2,000 pairs in about 15 s on
    two cores, reaching ~0.86-0.90 pairwise accuracy against VADER on pairs of reviews of held-out items with
    different sentiments, from labels with 10% flips); for a real model on a GPU lower the learning rate (~1e-5
    full, ~1e-4 LoRA). The fields every stage has (seed, device, lora, report_to, trl_overrides) come from
    `TrainSettings`; `trl_overrides` go to `trl.RewardConfig`, e.g. {"eval_strategy": "steps", "eval_steps": 20}."""

    max_steps: int = -1
    """Optimizer steps; -1 trains for `epochs`."""
    epochs: float = 1.0
    """Passes over the training pairs (used when max_steps is -1)."""
    learning_rate: float = 1e-3
    """Peak learning rate; 1e-3 suits the 1M-parameter default."""
    batch_size: int = 32
    """Pairs per device per optimizer step (each pair is two sequences)."""
    gradient_accumulation_steps: int = 1
    """Batches whose gradients add up to one optimizer step."""
    max_length: int | None = 256
    """Longest tokenized prompt + response. TRL drops longer training pairs (counted in the summary); the judge
    keeps the last max_length tokens. None = no limit. 256 is the embedded default's context length."""
    lr_scheduler_type: str = "cosine"
    """Learning-rate schedule after warm-up."""
    warmup_steps: float = 0.05
    """Warm-up: a number of steps, or a fraction of all steps when below 1."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    center_rewards_coefficient: float | None = 0.01
    """Adds coefficient * mean((r_chosen + r_rejected)^2) to the loss, keeping rewards centred on zero
    (Eisenstein et al. 2023); None turns it off."""
    heldout_fraction: float = 0.1
    """Share of the pairs held out for evaluation when no eval_data is given (split by prompt, by the seed)."""
    chat: bool | None = None
    """Render pairs through the chat template (standard rows become user/assistant turns). None = when the
    tokenizer has a template. False = TRL's plain `prompt + response + EOS` text."""
    eval_batch_size: int = 64
    """Sequences per forward pass when scoring held-out pairs."""
    n_samples: int = 8
    """Held-out pairs written to samples.jsonl with their rewards (0 = none)."""
    save_steps: int = 50
    """Steps between resumable checkpoints (run_dir/checkpoints)."""
    keep_checkpoints: bool = False
    """Keep the resumable checkpoints after a successful run."""


# --- data --------------------------------------------------------------------------------------------------------


def _user(prompt: Any) -> list[dict]:
    return prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]


def _assistant(response: Any) -> list[dict]:
    return response if isinstance(response, list) else [{"role": "assistant", "content": response}]


def _preference_data(data: Any) -> PreferenceData:
    """Validated preference pairs from PreferenceData, a datasets.Dataset, a list of dicts, a DataFrame or a file."""
    return data if isinstance(data, PreferenceData) else load_preferences(data)


def to_trl_preferences(data: Any, *, chat: bool) -> list[dict]:
    """Preference rows exactly as they are handed to TRL's RewardTrainer: with `chat`, standard string rows become
    conversational (prompt -> one user turn, chosen/rejected -> one assistant turn each); extra columns and
    `margin` are kept. Without `chat`, conversational rows are an error (they need a chat template)."""
    prefs = _preference_data(data)
    rows = prefs.dataset.to_list()
    if prefs.format == "conversational":
        if not chat:
            raise ValueError(
                f"{prefs.source}: the pairs are conversational (message lists) but the chat template "
                f"is off (chat=False, or the tokenizer has none); pass string pairs or use a model "
                f"whose tokenizer has a chat template"
            )
        return rows
    if not chat:
        return rows
    for row in rows:
        row["prompt"] = _user(row["prompt"])
        row["chosen"] = _assistant(row["chosen"])
        row["rejected"] = _assistant(row["rejected"])
    return rows


def _split_heldout(rows: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """Deterministic train/held-out split. Pairs sharing a prompt stay on one side (no prompt leaks into the
    held-out set) when there are enough distinct prompts; otherwise rows are split individually."""
    if fraction <= 0 or len(rows) < 2:
        return rows, []
    if not 0 < fraction < 1:
        raise ValueError(f"heldout_fraction must be in [0, 1), got {fraction}")
    rng = random.Random(seed)
    keys = [json.dumps(r["prompt"], sort_keys=True) for r in rows]
    groups = list(dict.fromkeys(keys))
    target = max(1, round(fraction * len(rows)))
    if len(groups) >= 10:
        sizes = Counter(keys)
        rng.shuffle(groups)
        chosen_groups, count = set(), 0
        for key in groups:
            if count >= target:
                break
            chosen_groups.add(key)
            count += sizes[key]
        held = [r for r, k in zip(rows, keys) if k in chosen_groups]
        train = [r for r, k in zip(rows, keys) if k not in chosen_groups]
    else:
        order = list(range(len(rows)))
        rng.shuffle(order)
        held_idx = set(order[:target])
        held = [r for i, r in enumerate(rows) if i in held_idx]
        train = [r for i, r in enumerate(rows) if i not in held_idx]
    return train, held


def _dataset(rows: list[dict]):
    import datasets

    return datasets.Dataset.from_list(rows)


# --- the judge ---------------------------------------------------------------------------------------------------


class RewardModelJudge(Judge):
    """Scores (prompt, response) pairs with a trained reward model, tokenized exactly as `RewardTrainer` tokenized
    its training pairs (see the module docstring): through the chat template when the model was trained that way,
    otherwise plain `prompt + response + EOS`; right padding; the reward at the last non-pad token.

    `model_or_path`: a run's `model` folder (or any sequence classifier with one output), or a loaded model.
    `chat` / `max_length` default to what was saved with the model (`rlhfkit_reward.json`), else chat when the
    tokenizer has a template and no limit beyond the model's context length. Prompts may be strings or message
    lists; responses strings or assistant message lists. Scores are floats (TRL's reward_funcs signature).

    A response is text, so whether generation stopped at EOS or was cut by a length limit is not visible here:
    both get the end-of-turn (or EOS) token that every training pair had. Penalise cut responses where that is
    known (`PPOSettings.missing_eos_penalty`)."""

    def __init__(
        self,
        model_or_path,
        tokenizer=None,
        *,
        batch_size: int = 32,
        device=None,
        chat: bool | None = None,
        max_length: int | None = None,
        name: str = "reward_model",
    ) -> None:
        meta: dict = {}
        if isinstance(model_or_path, (str, os.PathLike)):
            path = resolve_model(model_or_path)
            meta_file = Path(path) / REWARD_META
            if meta_file.is_file():
                meta = json.loads(meta_file.read_text())
            self.model = load_reward_model(path, device=device)
            tokenizer = tokenizer if tokenizer is not None else load_tokenizer(path)
        else:
            self.model = model_or_path
            if device is not None:
                self.model.to(pick_device(device))
            if tokenizer is None:
                tokenizer = load_tokenizer(self.model.name_or_path)
        if getattr(self.model.config, "num_labels", 1) != 1:
            raise ValueError(f"a reward model has one output; this model has num_labels={self.model.config.num_labels}")
        self.model.eval()
        self.tokenizer = tokenizer
        has_template = bool(getattr(tokenizer, "chat_template", None))
        self.chat = chat if chat is not None else meta.get("chat", has_template)
        if self.chat and not has_template:
            raise ValueError("chat=True but the tokenizer has no chat template")
        context = getattr(self.model.config, "max_position_embeddings", None)
        limits = [x for x in (max_length if max_length is not None else meta.get("max_length"), context) if x]
        self.max_length = min(limits) if limits else None
        self.batch_size = batch_size
        self.name = name
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = tokenizer.pad_token_id

    # Exactly RewardTrainer's tokenization (trl/trainer/reward_trainer.py, tokenize_fn / add_eos).
    def encode(self, prompt: Any, response: Any) -> list[int]:
        """Token ids of one (prompt, response) pair, before any truncation."""
        if self.chat:
            result = self.tokenizer.apply_chat_template(
                _user(prompt) + _assistant(response), tools=None, tokenize=True, return_dict=True
            )
            return list(result["input_ids"])
        if not isinstance(prompt, str) or not isinstance(response, str):
            raise TypeError("this reward model reads plain text (chat=False): pass string prompts and responses")
        eos = self.tokenizer.eos_token
        if not response.endswith(eos):
            response = response + eos
        return list(self.tokenizer(text=prompt + response)["input_ids"])

    @torch.no_grad()
    def rewards(self, prompts: Sequence[Any], responses: Sequence[Any]) -> list[float]:
        """Raw rewards for aligned prompts and responses (strings or message lists), batched."""
        if len(prompts) != len(responses):
            raise ValueError(f"{self.name}: {len(prompts)} prompts but {len(responses)} responses")
        ids = [self.encode(p, r) for p, r in zip(prompts, responses)]
        cut = 0
        if self.max_length:
            cut = sum(len(x) > self.max_length for x in ids)
            ids = [x[-self.max_length :] for x in ids]  # keep the end: the reward is read at the final token
        if cut:
            warnings.warn(
                f"{self.name}: {cut} of {len(ids)} sequences were longer than {self.max_length} tokens "
                f"and kept only their last {self.max_length} (such pairs were never seen in training)",
                stacklevel=3,
            )
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id
        out = [0.0] * len(ids)
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths together: less padding
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            width = max(len(ids[i]) for i in batch)
            input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, i in enumerate(batch):  # right padding, as TRL's DataCollatorForPreference
                input_ids[row, : len(ids[i])] = torch.tensor(ids[i])
                mask[row, : len(ids[i])] = 1
            logits = self.model(input_ids=input_ids.to(device), attention_mask=mask.to(device), use_cache=False).logits
            for row, i in enumerate(batch):
                out[i] = float(logits[row, 0].float())
        return out

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return self.rewards(prompts, responses)

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **_: Any) -> list[float]:
        """Score a batch; message lists are kept whole (the base Judge would reduce them to their last text)."""
        scores = self.rewards(list(prompts), list(completions))
        bad = [i for i, s in enumerate(scores) if not math.isfinite(s)]
        if bad:
            raise ValueError(
                f"{self.name} returned a non-finite reward for response {bad[0]}: {scores[bad[0]]} "
                f"(expected a finite number; the model's weights may contain NaN)"
            )
        return scores


def pairwise_accuracy(judge, rows: Any) -> float:
    """Fraction of preference rows where `judge` scores `chosen` strictly above `rejected` (ties count as wrong).
    `rows`: PreferenceData, a datasets.Dataset, a list of dicts or anything `load_preferences` reads; `judge`: a
    RewardModelJudge or any judge / callable `judge(prompts, responses) -> list[float]`."""
    if isinstance(rows, PreferenceData):
        rows = rows.dataset.to_list()
    elif not isinstance(rows, list):
        rows = _preference_data(rows).dataset.to_list()
    if not rows:
        raise ValueError("pairwise_accuracy needs at least one preference row")
    prompts = [r["prompt"] for r in rows]
    chosen = judge(prompts, [r["chosen"] for r in rows])
    rejected = judge(prompts, [r["rejected"] for r in rows])
    return sum(c > r for c, r in zip(chosen, rejected)) / len(rows)


def _distribution(values: list[float]) -> dict:
    t = torch.tensor(values, dtype=torch.float64)
    q = torch.quantile(t, torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=torch.float64)).tolist()
    return {
        "mean": float(t.mean()),
        "std": float(t.std()) if len(values) > 1 else 0.0,
        "min": float(t.min()),
        "q05": q[0],
        "q25": q[1],
        "median": q[2],
        "q75": q[3],
        "q95": q[4],
        "max": float(t.max()),
    }


def _quiet_new_head():
    """Silences transformers' load report about the new score head (and the unused LM head): expected here."""
    try:
        from trl.trainer.reward_trainer import suppress_seqcls_warning

        return suppress_seqcls_warning()
    except ImportError:  # pragma: no cover - a TRL without it only prints more
        import contextlib

        return contextlib.nullcontext()


def _text_of(value: Any) -> str:
    return value if isinstance(value, str) else str(value[-1].get("content", ""))


# --- the stage ---------------------------------------------------------------------------------------------------


def train_reward_model(
    model: str | os.PathLike | Any,
    data: Any,
    settings: RewardSettings | None = None,
    run_dir: str | os.PathLike = "runs/reward",
    *,
    resume: bool = False,
    callbacks: Sequence = (),
    eval_data: Any = None,
) -> RunData:
    """Train a reward model on preference pairs and write the run into `run_dir`.

    `model`: a causal LM (usually the SFT model's folder; its language-model head is replaced by a new one-output
    score head), "tiny", a Hub id, or an already loaded sequence classifier with one output. `data`: PreferenceData,
    a datasets.Dataset or list of dicts in TRL's preference format (standard strings or conversational; optional
    `margin`). Held out: `eval_data` if given, else `settings.heldout_fraction` of the pairs.

    Writes config.json, metrics.jsonl (TRL's names: loss, accuracy, margin, mean_reward, ...; the held-out
    evaluation at the end as eval_accuracy, eval_margin, ...), samples.jsonl (a few held-out pairs with their
    rewards), model/ (safetensors, tokenizer and rlhfkit_reward.json) and summary.json (held-out pairwise accuracy,
    reward distribution of chosen and rejected responses, final loss, steps, seconds). Returns
    `rlhfkit.runs.load(run_dir)`; score with `RewardModelJudge(run.model_path)`."""
    from trl import RewardConfig, RewardTrainer

    settings = settings or RewardSettings()
    if isinstance(model, (str, os.PathLike)):
        name = resolve_model(model)
        tokenizer = load_tokenizer(name)
        # The score head is initialised from the seed (transformers draws it at load time).
        torch.manual_seed(settings.seed)
        with _quiet_new_head():
            reward_model = load_reward_model(name, device=settings.device, lora=settings.lora)
    else:
        reward_model = model
        name = getattr(model, "name_or_path", None) or getattr(model.config, "_name_or_path", "")
        tokenizer = load_tokenizer(name)
        if settings.lora is not None:
            from peft import get_peft_model

            lora = LoraSettings(
                **{**settings.lora.__dict__, "modules_to_save": settings.lora.modules_to_save or ["score"]}
            )
            seed_adapter_init(settings.seed)
            reward_model = get_peft_model(reward_model, lora.to_peft("SEQ_CLS"))
    has_template = bool(getattr(tokenizer, "chat_template", None))
    chat = has_template if settings.chat is None else settings.chat
    if chat and not has_template:
        raise ValueError(f"chat=True but the tokenizer of {name!r} has no chat template; pass chat=False")

    rows = to_trl_preferences(data, chat=chat)
    if eval_data is not None:
        train_rows, heldout_rows = rows, to_trl_preferences(eval_data, chat=chat)
    else:
        train_rows, heldout_rows = _split_heldout(rows, settings.heldout_fraction, settings.seed)
    if not train_rows:
        raise ValueError(
            "no preference pairs left to train on after holding out; lower heldout_fraction or pass eval_data"
        )

    run = Run(
        run_dir,
        stage="reward",
        seed=settings.seed,
        resume=resume,
        config={
            "model": str(name),
            **asdict(settings),
            "chat": chat,
            "n_pairs": len(rows),
            "n_train": len(train_rows),
            "n_heldout": len(heldout_rows),
            "eval_data": eval_data is not None,
        },
    )
    if not resume:  # an earlier run's checkpoints must never be resumed into this one, nor its adapter kept
        shutil.rmtree(run.checkpoint_path, ignore_errors=True)
        shutil.rmtree(run.path / "adapter", ignore_errors=True)

    fields = dict(
        max_steps=settings.max_steps,
        num_train_epochs=settings.epochs,
        learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size,
        per_device_eval_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        max_length=settings.max_length,
        lr_scheduler_type=settings.lr_scheduler_type,
        warmup_steps=settings.warmup_steps,
        weight_decay=settings.weight_decay,
        center_rewards_coefficient=settings.center_rewards_coefficient,
        save_steps=settings.save_steps,
        report_to=settings.report_to,
    )
    fields.update(settings.trl_overrides)
    args = trl_args(RewardConfig, run, seed=settings.seed, device=settings.device, **fields)
    uses_trl_eval = args.eval_strategy != "no"
    trainer = RewardTrainer(
        model=reward_model,
        args=args,
        train_dataset=_dataset(train_rows),
        eval_dataset=_dataset(heldout_rows) if uses_trl_eval and heldout_rows else None,
        processing_class=tokenizer,
        callbacks=list(callbacks),
    )
    dropped = len(train_rows) - len(trainer.train_dataset)
    if dropped:  # TRL filters these silently; say so
        warnings.warn(
            f"{dropped} of {len(train_rows)} training pairs are longer than max_length="
            f"{settings.max_length} tokens and were left out by TRL's RewardTrainer",
            stacklevel=2,
        )
    started = time.perf_counter()
    trained = train_into_run(trainer, run, resume=resume, tokenizer=tokenizer)  # with LoRA: merged
    seconds = time.perf_counter() - started

    meta = {
        "chat": chat,
        "max_length": settings.max_length,
        "trl_tokenization": "conversational" if chat else "standard (prompt + response + eos)",
    }
    (run.model_path / REWARD_META).write_text(json.dumps(meta, indent=2))

    step = trainer.state.global_step
    history = [h for h in trainer.state.log_history if "loss" in h]
    last = history[-1] if history else {}
    summary: dict[str, Any] = {
        "train_loss": finite_or_none(last.get("loss")),
        "train_accuracy": finite_or_none(last.get("accuracy")),
        "first_train_loss": finite_or_none(history[0].get("loss")) if history else None,
        "steps": step,
        "epochs": finite_or_none(trainer.state.epoch),
        "seconds": seconds,
        "n_train_pairs": len(trainer.train_dataset),
        "n_dropped_too_long": dropped,
        "n_heldout_pairs": len(heldout_rows),
        "heldout_source": "eval_data" if eval_data is not None else f"{settings.heldout_fraction:g} of the pairs",
        "chat": chat,
        "lora": settings.lora is not None,
        "heldout_accuracy": None,
    }
    if heldout_rows:
        judge = RewardModelJudge(
            trained, tokenizer, batch_size=settings.eval_batch_size, chat=chat, max_length=settings.max_length
        )
        prompts = [r["prompt"] for r in heldout_rows]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*kept only their last.*")
            chosen = judge(prompts, [r["chosen"] for r in heldout_rows])
            rejected = judge(prompts, [r["rejected"] for r in heldout_rows])
        margins = [c - r for c, r in zip(chosen, rejected)]
        accuracy = sum(m > 0 for m in margins) / len(margins)
        summary.update(
            {
                "heldout_accuracy": accuracy,
                "heldout_margin_mean": sum(margins) / len(margins),
                "rewards_chosen": _distribution(chosen),
                "rewards_rejected": _distribution(rejected),
            }
        )
        run.log(
            step,
            {
                "eval_accuracy": accuracy,
                "eval_margin": summary["heldout_margin_mean"],
                "eval_mean_reward": (sum(chosen) + sum(rejected)) / (2 * len(chosen)),
                "eval_min_reward": min(chosen + rejected),
                "eval_max_reward": max(chosen + rejected),
            },
        )
        samples = []
        for i, row in enumerate(heldout_rows[: settings.n_samples]):
            for role, reward in (("chosen", chosen[i]), ("rejected", rejected[i])):
                samples.append(
                    {
                        "pair": i,
                        "prompt": _text_of(row["prompt"]),
                        "response": _text_of(row[role]),
                        "label": role,
                        "reward": reward,
                    }
                )
        run.log_samples(step, samples)
    run.finish(summary)
    if not settings.keep_checkpoints:
        shutil.rmtree(run.checkpoint_path, ignore_errors=True)
    return load(run.path)
