"""Supervised fine-tuning (SFT) on demonstrations, through TRL's `SFTTrainer`.

    run = train_sft("tiny", reviews_task())            # about half a minute on two CPU cores
    run.summary["train_loss"], run.samples[["prompt", "response", "gold"]]

The data are prompt-completion pairs: a `rlhfkit.data.Task` (its demonstrations), a `datasets.Dataset` or a list of
dicts with `prompt` and `completion` (strings or message lists). The loss covers the completion only (TRL's
`completion_only_loss`): the model learns to answer, not to write prompts.

How the text is built (checked in tests/test_train_sft.py on a tokenized example). When the tokenizer has a chat
template, string rows are turned into one user turn and one assistant turn first, so training sees exactly the text
that `rlhfkit.sampling` feeds the model later (it renders string prompts through the template). TRL then tokenizes
`prompt` with `add_generation_prompt=True` and `prompt + completion` without it; the embedded default's template
renders the first as a prefix of the second (`<|user|>...<|end|><|assistant|>`), and the assistant turn ends with
`<|end|>`, the EOS token, which is inside the completion mask: the model learns to stop. Without a chat template
(or with `conversational=False`), TRL appends the EOS token to each completion itself.

With `settings.lora` only a LoRA adapter trains; `run_dir/model` then holds the merged model (a plain model folder
every later stage can load) and `run_dir/adapter` the adapter alone.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from rlhfkit.data import DataValidationError, Task
from rlhfkit.models import load_policy, load_tokenizer, resolve_model
from rlhfkit.runs import Run, RunData, load
from rlhfkit.train.common import TrainSettings, finite_or_none, seed_adapter_init, train_into_run, trl_args

__all__ = ["SFTSettings", "train_sft", "sft_rows"]


@dataclass
class SFTSettings(TrainSettings):
    """Settings of supervised fine-tuning. The defaults fit the embedded default on a CPU (about 20 s on two
    cores); for a real model on a GPU change the model and a few budgets (steps, learning rate, batch size).
    The fields every stage has (seed, device, lora, report_to, trl_overrides) come from `TrainSettings`;
    `trl_overrides` go to `trl.SFTConfig`, e.g. {"packing": True} or {"logging_steps": 5}."""

    max_steps: int = 200
    """Optimizer steps; -1 trains for `epochs` instead."""
    epochs: float = 1.0
    """Passes over the data, used only when max_steps is -1."""
    learning_rate: float = 3e-3
    """Peak learning rate. 3e-3 suits the 1M-parameter default (measured: 1e-3 learns the format more slowly,
    5e-3 first pushes the loss far above where it started); full fine-tuning of real models wants ~1e-5 to
    2e-5, LoRA ~1e-4 to 2e-4."""
    batch_size: int = 16
    """Sequences per device per optimizer step (times gradient_accumulation_steps)."""
    gradient_accumulation_steps: int = 1
    """Batches whose gradients add up to one optimizer step."""
    max_length: int | None = 256
    """Longest tokenized prompt + completion; longer ones are cut at the end (TRL's keep_start). None = no limit.
    256 is the embedded default's context length."""
    lr_scheduler_type: str = "cosine"
    """Learning-rate schedule after warm-up (any transformers scheduler name)."""
    warmup_steps: float = 0.1
    """Warm-up length: a number of steps, or a fraction of all steps when below 1."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    completion_only_loss: bool = True
    """Loss on completion tokens only (the prompt is context, not a target)."""
    conversational: bool | None = None
    """Render rows through the tokenizer's chat template. None = when the tokenizer has one. False trains on plain
    `prompt + completion + EOS` text; sample such a model with `SamplingSettings(chat=False)`."""
    n_samples: int = 8
    """Held-out prompts answered by the model before and after training and written to samples.jsonl (0 = none)."""
    sample_temperature: float = 0.0
    """Temperature of those samples; 0 = greedy."""
    sample_max_new_tokens: int = 96
    """Longest sample, in tokens."""
    sample_prompts: list[str] | None = None
    """Prompts for the samples; None = the task's eval prompts, or for plain data the first training prompts
    (marked held_out=False in samples.jsonl)."""
    save_steps: int = 50
    """Steps between resumable checkpoints (run_dir/checkpoints)."""
    keep_checkpoints: bool = False
    """Keep the resumable checkpoints after a successful run (they hold optimizer state: large for big models)."""


# --- data --------------------------------------------------------------------------------------------------------


def _is_messages(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(m, dict) and "role" in m for m in value)


def sft_rows(data: Task | Any, *, chat: bool) -> tuple[list[dict], str]:
    """Validated prompt-completion rows (plus a short description of the source) from a Task, a
    `datasets.Dataset` or a list of dicts. With `chat`, string prompts/completions become user/assistant turns
    so that training renders them through the chat template exactly as sampling does."""
    if isinstance(data, Task):
        rows = data.sft_dataset(conversational=chat).to_list()
        source = f"task {data.name!r} ({len(rows)} demonstrations)"
    else:
        try:
            import datasets

            is_dataset = isinstance(data, datasets.Dataset)
        except ImportError:  # pragma: no cover - datasets is a dependency
            is_dataset = False
        if is_dataset:
            rows = data.to_list()
        elif isinstance(data, (list, tuple)):
            rows = list(data)
        else:
            raise TypeError(
                f"train_sft data must be a rlhfkit.data.Task, a datasets.Dataset or a list of dicts with "
                f"'prompt' and 'completion', got {type(data).__name__}"
            )
        source = f"{'dataset' if is_dataset else 'list'} ({len(rows)} rows)"
    if not rows:
        raise DataValidationError("<memory>", None, None, "no rows", expected="at least one prompt-completion pair")
    out = []
    for i, row in enumerate(rows, start=1):
        if not isinstance(row, dict):
            raise DataValidationError(
                "<memory>",
                i,
                None,
                f"a {type(row).__name__}, not a dict",
                expected="a dict with 'prompt' and 'completion'",
            )
        clean = {}
        for key, role in (("prompt", "user"), ("completion", "assistant")):
            value = row.get(key)
            if isinstance(value, str):
                if not value.strip():
                    raise DataValidationError("<memory>", i, key, "empty text", expected="a non-empty string")
                clean[key] = [{"role": role, "content": value}] if chat else value
            elif _is_messages(value):
                if not chat:
                    raise DataValidationError(
                        "<memory>",
                        i,
                        key,
                        "message list without a chat template",
                        expected="a string (the tokenizer has no chat template, or conversational=False was set)",
                    )
                clean[key] = [{"role": str(m["role"]), "content": str(m.get("content", ""))} for m in value]
            else:
                raise DataValidationError(
                    "<memory>",
                    i,
                    key,
                    "missing" if value is None else f"wrong type {type(value).__name__}",
                    expected="a non-empty string or a list of {role, content} messages",
                )
        out.append(clean)
    return out, source


def _prompt_of(row_prompt: Any) -> str | list:
    """A training prompt in the form `sample_candidates` takes (a string for one user turn)."""
    if isinstance(row_prompt, list) and len(row_prompt) == 1 and row_prompt[0]["role"] == "user":
        return row_prompt[0]["content"]
    return row_prompt


# --- samples -----------------------------------------------------------------------------------------------------


def _sample_rows(
    model, tokenizer, prompts: list, settings: SFTSettings, chat: bool, gold, held_out: bool, label: str
) -> list[dict]:
    """Greedy (or seeded stochastic) answers to `prompts`, with the gold judge's score when there is one."""
    from rlhfkit.sampling import SamplingSettings, sample_candidates

    greedy = settings.sample_temperature <= 0
    config = SamplingSettings(
        k=1,
        do_sample=not greedy,
        temperature=settings.sample_temperature if not greedy else 1.0,
        max_new_tokens=settings.sample_max_new_tokens,
        seed=settings.seed,
        chat=chat,
    )
    table = sample_candidates(model, tokenizer, prompts, config, progress=False)
    rows = [
        {
            "model": label,
            "prompt": r.prompt,
            "response": r.response,
            "n_tokens": int(r.n_tokens),
            "finish_reason": r.finish_reason,
            "held_out": held_out,
        }
        for r in table.itertuples()
    ]
    if gold is not None:
        scores = gold([r["prompt"] for r in rows], [r["response"] for r in rows])
        for row, score in zip(rows, scores):
            row["gold"] = float(score)
    return rows


def _sample_summary(rows: list[dict]) -> dict:
    if not rows:
        return {}
    out = {
        "samples_eos_rate": sum(r["finish_reason"] == "eos" for r in rows) / len(rows),
        "samples_mean_tokens": sum(r["n_tokens"] for r in rows) / len(rows),
    }
    if "gold" in rows[0]:
        out["samples_mean_gold"] = sum(r["gold"] for r in rows) / len(rows)
    return out


# --- the stage ---------------------------------------------------------------------------------------------------


def train_sft(
    model: str | os.PathLike | Any,
    data: Task | Any,
    settings: SFTSettings | None = None,
    run_dir: str | os.PathLike = "runs/sft",
    *,
    resume: bool = False,
    callbacks: Sequence = (),
) -> RunData:
    """Fine-tune `model` (a name such as "tiny", a folder, a Hub id, or an already loaded causal LM) on the
    prompt-completion pairs of `data` and write the run into `run_dir`:

    config.json, metrics.jsonl (TRL's names: loss, mean_token_accuracy, entropy, learning_rate, ...),
    samples.jsonl (answers to held-out prompts before and after training, with the gold score when the task has a
    gold judge), model/ (safetensors + tokenizer), summary.json (final train loss, mean token accuracy, steps,
    seconds, sample statistics).

    `resume=True` continues an interrupted run from its last checkpoint. `callbacks` are extra transformers
    TrainerCallbacks (e.g. the live dashboard). A NaN/inf loss raises `rlhfkit.runs.NonFiniteLossError`; a
    KeyboardInterrupt leaves a resumable checkpoint and is re-raised. Returns `rlhfkit.runs.load(run_dir)`."""
    from trl import SFTConfig, SFTTrainer

    settings = settings or SFTSettings()
    if isinstance(model, (str, os.PathLike)):
        name = resolve_model(model)
        tokenizer = load_tokenizer(name)
        policy = load_policy(name, device=settings.device)
    else:  # an in-memory model: its tokenizer comes from where it was loaded
        name = getattr(model, "name_or_path", None) or getattr(model.config, "_name_or_path", "")
        tokenizer = load_tokenizer(name)
        policy = model
    chat = (
        bool(getattr(tokenizer, "chat_template", None)) if settings.conversational is None else settings.conversational
    )
    if chat and not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"conversational=True but the tokenizer of {name!r} has no chat template; pass "
            f"conversational=False (plain prompt + completion + EOS text) or a model with a template"
        )
    rows, source = sft_rows(data, chat=chat)
    import datasets

    dataset = datasets.Dataset.from_list(rows)

    run = Run(
        run_dir,
        stage="sft",
        seed=settings.seed,
        resume=resume,
        config={"model": str(name), "data": source, "chat": chat, **asdict(settings)},
    )
    if not resume:  # an earlier run's checkpoints must never be resumed into this one, nor its adapter kept
        shutil.rmtree(run.checkpoint_path, ignore_errors=True)
        shutil.rmtree(run.path / "adapter", ignore_errors=True)

    # Prompts for before/after samples: held out when the task has them.
    gold = getattr(data, "gold_judge", None) if isinstance(data, Task) else None
    if settings.sample_prompts is not None:
        sample_prompts, held_out = list(settings.sample_prompts)[: settings.n_samples], True
    elif isinstance(data, Task) and data.eval_prompts:
        sample_prompts, held_out = data.eval_prompts[: settings.n_samples], True
    else:
        seen: list = []
        for row in rows:
            prompt = _prompt_of(row["prompt"])
            if prompt not in seen:
                seen.append(prompt)
            if len(seen) >= settings.n_samples:
                break
        sample_prompts, held_out = seen, False
    if settings.n_samples > 0 and sample_prompts and not resume:
        run.log_samples(0, _sample_rows(policy, tokenizer, sample_prompts, settings, chat, gold, held_out, "before"))

    if settings.lora is not None:
        from peft import get_peft_model

        seed_adapter_init(settings.seed)
        policy = get_peft_model(policy, settings.lora.to_peft("CAUSAL_LM"))
    fields = dict(
        max_steps=settings.max_steps,
        num_train_epochs=settings.epochs,
        learning_rate=settings.learning_rate,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        max_length=settings.max_length,
        lr_scheduler_type=settings.lr_scheduler_type,
        warmup_steps=settings.warmup_steps,
        weight_decay=settings.weight_decay,
        completion_only_loss=settings.completion_only_loss,
        save_steps=settings.save_steps,
        report_to=settings.report_to,
    )
    fields.update(settings.trl_overrides)
    args = trl_args(SFTConfig, run, seed=settings.seed, device=settings.device, **fields)
    trainer = SFTTrainer(
        model=policy, args=args, train_dataset=dataset, processing_class=tokenizer, callbacks=list(callbacks)
    )
    started = time.perf_counter()
    trained = train_into_run(trainer, run, resume=resume, tokenizer=tokenizer)  # with LoRA: merged
    seconds = time.perf_counter() - started

    after = []
    if settings.n_samples > 0 and sample_prompts:
        after = _sample_rows(trained, tokenizer, sample_prompts, settings, chat, gold, held_out, "after")
        run.log_samples(trainer.state.global_step, after)

    history = [h for h in trainer.state.log_history if "loss" in h]
    last = history[-1] if history else {}
    # TRL's own average over the whole run (logged once at the end), the fallback when no step was logged
    train_loss_mean = next((h["train_loss"] for h in reversed(trainer.state.log_history) if "train_loss" in h), None)
    summary = {
        "train_loss": finite_or_none(last.get("loss", train_loss_mean)),
        "mean_token_accuracy": finite_or_none(last.get("mean_token_accuracy")),
        "train_loss_mean": finite_or_none(train_loss_mean),
        "first_train_loss": finite_or_none(history[0].get("loss")) if history else None,
        "steps": trainer.state.global_step,
        "epochs": finite_or_none(trainer.state.epoch),
        "seconds": seconds,
        "n_examples": len(trainer.train_dataset),
        "lora": settings.lora is not None,
        **_sample_summary(after),
    }
    run.finish(summary)
    if not settings.keep_checkpoints:
        shutil.rmtree(run.checkpoint_path, ignore_errors=True)
    return load(run.path)
