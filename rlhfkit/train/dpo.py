"""DPO and its variants: optimise a policy directly on preference pairs, with no reward model and no RL loop.

    run = train_dpo("tiny", prefs, DPOSettings(loss_type="ipo"), "runs/dpo-ipo", task=reviews_task())

Training goes through TRL's `DPOTrainer`. The loss variants people compare are TRL's `loss_type` values; for a pair
with implicit reward margin m = beta * [(log pi(y_w) - log pi_ref(y_w)) - (log pi(y_l) - log pi_ref(y_l))]:

  sigmoid   -log sigmoid(m)                              the DPO paper; ln 2 = 0.693 when policy == reference
  hinge     max(0, 1 - m)                                SLiC; 1.0 at step 0
  ipo       (h / tokens - 1 / (2 beta))^2                IPO, with TRL's per-token average of each log ratio h
                                                         (beta is IPO's tau); 1 / (4 beta^2) at step 0
  robust    [-(1-e) log sigmoid(m) + e log sigmoid(-m)] / (1 - 2e)
                                                         robust DPO for labels flipped with probability e =
                                                         `label_smoothing`; ln 2 at step 0 for any e
  ...       and every other TRL 1.16 variant (see LOSS_TYPES): exo_pair, nca_pair, bco_pair, sppo_hard, aot,
            aot_unpaired, apo_zero, apo_down, discopop, sft, sigmoid_norm.

The reference policy. TRL rebuilds it from `model.config._name_or_path`, so rlhfkit always loads both models from a
folder on disk (or a Hub id): the reference defaults to the policy's own starting point. With LoRA no second model is
loaded at all: the reference is the same network with its adapter switched off.

Prompts and the chat template. When the tokenizer has a chat template and the pairs are plain strings whose prompts
are raw instructions (no special tokens, no "Human:/Assistant:" transcript), the pairs are turned into
conversational rows, so that training renders the prompt exactly the way `rlhfkit.sampling.render_prompts` does when
the policy is sampled. `DPOSettings.chat` forces either way.

The run directory gets TRL's metrics per step (`loss`, `rewards/chosen`, `rewards/rejected`, `rewards/accuracies`,
`rewards/margins`, `logps/*`, ...), samples of the policy on eval prompts before and after training (scored by the
gold judge when there is one), the trained model, and a summary.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from rlhfkit.data import PreferenceData, Task, load_preferences
from rlhfkit.models import load_policy, load_reference, load_tokenizer, resolve_model
from rlhfkit.runs import Run, RunData, load
from rlhfkit.train.common import TrainSettings, finite_or_none, seed_adapter_init, train_into_run, trl_args

__all__ = ["DPOSettings", "train_dpo", "LOSS_TYPES", "prepare_preferences", "looks_rendered", "log_policy_samples"]

# TRL 1.16's DPO loss names (trl/trainer/dpo_config.py), in the order its docs list them.
LOSS_TYPES = (
    "sigmoid",
    "hinge",
    "ipo",
    "exo_pair",
    "nca_pair",
    "robust",
    "bco_pair",
    "sppo_hard",
    "aot",
    "aot_unpaired",
    "apo_zero",
    "apo_down",
    "discopop",
    "sft",
    "sigmoid_norm",
)
# label_smoothing when left as None: the values the papers recommend (robust DPO: flip rate 0.1; EXO: 1e-3).
_DEFAULT_SMOOTHING = {"robust": 0.1, "exo_pair": 1e-3}
SUMMARY_METRICS = ("loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected")


@dataclass
class DPOSettings(TrainSettings):
    """Settings of a DPO run. The defaults train the embedded default on a CPU in well under a minute; for a real
    model on a GPU lower `learning_rate` (5e-7 to 5e-6 is usual) and raise `max_length`. The fields every stage
    has (seed, device, lora, report_to, trl_overrides) come from `TrainSettings`; `trl_overrides` go to
    `trl.DPOConfig`, e.g. {"precompute_ref_log_probs": True}."""

    loss_type: str | list[str] = "sigmoid"
    """TRL's loss variant: "sigmoid" (DPO), "ipo", "hinge", "robust", or any name in LOSS_TYPES. A list combines
    several, weighted by `trl_overrides={"loss_weights": [...]}` (equal weights otherwise)."""
    beta: float = 0.1
    """Strength of the pull towards the reference: higher beta keeps the policy closer. For "ipo" it is IPO's
    tau, and the loss at step 0 is 1 / (4 beta^2)."""
    label_smoothing: float | None = None
    """For "robust": the assumed probability that a label is flipped, in [0, 0.5); for "exo_pair": EXO's epsilon
    (> 0). None takes the recommended value (robust 0.1, exo_pair 1e-3, otherwise 0)."""
    learning_rate: float = 5e-4
    """AdamW learning rate. High because the embedded default is tiny; a real model wants 5e-7 to 5e-6."""
    epochs: float = 1.0
    """Passes over the preference pairs (ignored when `max_steps` > 0)."""
    max_steps: int = -1
    """Stop after this many optimizer steps; -1 = run `epochs` full passes."""
    batch_size: int = 32
    """Preference pairs per device per forward pass (each pair is a chosen and a rejected sequence)."""
    gradient_accumulation_steps: int = 1
    """Forward passes per optimizer step; the effective batch is batch_size x this x number of devices."""
    lr_scheduler_type: str = "linear"
    """Learning-rate schedule after warm-up ("linear", "cosine", "constant", ...)."""
    warmup_steps: float = 0.1
    """Learning-rate warm-up from 0: a whole number of steps, or a float in [0, 1) as a fraction of all steps."""
    max_length: int | None = 256
    """Longest prompt + response in tokens; longer sequences are cut at the end. None = no limit."""
    chat: bool | None = None
    """Turn plain-string pairs into conversational rows so the prompt goes through the chat template. None = when
    the tokenizer has a template and the prompts are raw instructions (not already rendered)."""
    n_samples: int = 16
    """Eval prompts the policy answers before and after training (written to samples.jsonl with gold scores when a
    gold judge is known); 0 = none."""
    sample_max_new_tokens: int = 64
    """Longest sampled response, in tokens."""
    sample_temperature: float = 1.0
    """Temperature of those samples (1.0 = the policy's own distribution, what gold-reward comparisons use)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        names = [self.loss_type] if isinstance(self.loss_type, str) else list(self.loss_type)
        if not names:
            raise ValueError("loss_type is empty; expected one of " + ", ".join(LOSS_TYPES))
        for name in names:
            if name not in LOSS_TYPES:
                raise ValueError(f"unknown DPO loss_type {name!r}; expected one of {', '.join(LOSS_TYPES)}")
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        smoothing = self.resolved_label_smoothing()
        if "robust" in names and not 0.0 <= smoothing < 0.5:
            raise ValueError(
                f"label_smoothing for the 'robust' loss is a flip probability and must be in [0, 0.5), got {smoothing}"
            )
        if "exo_pair" in names and not smoothing > 0:
            raise ValueError(
                f"label_smoothing for the 'exo_pair' loss must be > 0 (the EXO paper uses 1e-3), got {smoothing}"
            )
        if self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError("batch_size and gradient_accumulation_steps must be >= 1")
        if self.n_samples < 0:
            raise ValueError(f"n_samples must be >= 0, got {self.n_samples}")

    def loss_names(self) -> list[str]:
        return [self.loss_type] if isinstance(self.loss_type, str) else list(self.loss_type)

    def resolved_label_smoothing(self) -> float:
        if self.label_smoothing is not None:
            return float(self.label_smoothing)
        return max((_DEFAULT_SMOOTHING.get(name, 0.0) for name in self.loss_names()), default=0.0)


# --- data -------------------------------------------------------------------------------------------------------


def looks_rendered(prompt: str, tokenizer) -> bool:
    """A string prompt that already carries a conversation format: the tokenizer's special tokens (a rendered chat
    template) or an HH-RLHF style "Human: ... Assistant:" transcript. Such prompts must not be wrapped again."""
    specials = [t for t in getattr(tokenizer, "all_special_tokens", []) if len(t) > 1]
    if any(t in prompt for t in specials):
        return True
    stripped = prompt.rstrip()
    return stripped.endswith("Assistant:") or "\n\nHuman:" in prompt


def prepare_preferences(data: Any, tokenizer, chat: bool | None = None) -> tuple["Any", str]:
    """Validated preference pairs as a `datasets.Dataset` with only `prompt`, `chosen`, `rejected`, and a note of
    their format. `data`: a PreferenceData, a datasets.Dataset, a list of dicts, a DataFrame or a file (anything
    `rlhfkit.data.load_preferences` reads). Plain-string pairs become conversational when `chat` is True, or when
    `chat` is None, the tokenizer has a chat template and no prompt is already rendered."""
    prefs = data if isinstance(data, PreferenceData) else load_preferences(data)
    dataset = prefs.dataset.select_columns(["prompt", "chosen", "rejected"])
    if prefs.format != "standard":
        return dataset, prefs.format
    has_template = bool(getattr(tokenizer, "chat_template", None))
    if chat is None:
        if not has_template:
            return dataset, "standard"
        rendered = [i for i, p in enumerate(dataset["prompt"]) if looks_rendered(p, tokenizer)]
        if rendered:
            warnings.warn(
                f"{prefs.source}: {len(rendered)} of {len(dataset)} prompts are already rendered (row "
                f"{rendered[0]}: {dataset[rendered[0]]['prompt'][:60]!r}); training on the strings as "
                f"they are, without the chat template. Pass chat=True or chat=False to decide.",
                stacklevel=3,
            )
            return dataset, "standard"
        chat = True
    if not chat:
        return dataset, "standard"
    if not has_template:
        raise ValueError("chat=True but the tokenizer has no chat template; pass chat=False or a tokenizer with one")

    def to_messages(row):
        return {
            "prompt": [{"role": "user", "content": row["prompt"]}],
            "chosen": [{"role": "assistant", "content": row["chosen"]}],
            "rejected": [{"role": "assistant", "content": row["rejected"]}],
        }

    return dataset.map(to_messages, desc="chat format"), "conversational (converted from standard strings)"


def _model_path(model: Any, what: str) -> str:
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(
            f"{what} must be a model name, a folder or a Hub id (a string or Path), got "
            f"{type(model).__name__}: TRL rebuilds models from their path, so save an in-memory model "
            f"with save_pretrained(folder) and pass the folder"
        )
    return resolve_model(model)


# --- samples ----------------------------------------------------------------------------------------------------


def log_policy_samples(
    run: Run,
    step: int,
    model,
    tokenizer,
    prompts: Sequence[str],
    *,
    gold_judge: Callable | None,
    max_new_tokens: int,
    temperature: float,
    seed: int,
    when: str,
) -> float | None:
    """Sample one response per prompt, score it with the gold judge if any, append the rows to samples.jsonl and
    return the mean gold score (None without a judge or prompts)."""
    from rlhfkit.sampling import SamplingSettings, sample_candidates

    if not prompts:
        return None
    table = sample_candidates(
        model,
        tokenizer,
        list(prompts),
        SamplingSettings(k=1, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed, batch_size=64),
        progress=False,
    )
    rows = [
        {
            "when": when,
            "prompt": r.prompt,
            "response": r.response,
            "n_tokens": int(r.n_tokens),
            "finish_reason": r.finish_reason,
        }
        for r in table.itertuples()
    ]
    mean = None
    if gold_judge is not None:
        scores = list(gold_judge(table["prompt"].tolist(), table["response"].tolist()))
        for row, score in zip(rows, scores):
            row["gold_score"] = float(score)
        mean = sum(scores) / len(scores)
    run.log_samples(step, rows)
    return mean


def _last_logged(history: list[dict], keys: Sequence[str]) -> dict:
    """The most recent logged value of each key (training rows only, not the final summary row)."""
    out: dict[str, Any] = {}
    for row in reversed(history):
        for key in keys:
            if key not in out and key in row:
                out[key] = finite_or_none(row[key])
    return out


# --- the stage --------------------------------------------------------------------------------------------------


def train_dpo(
    model: str | os.PathLike,
    data: Any,
    settings: DPOSettings | None = None,
    run_dir: str | os.PathLike = "runs/dpo",
    *,
    reference: str | os.PathLike | None = None,
    task: Task | None = None,
    eval_prompts: Sequence[str] | None = None,
    gold_judge: Callable | None = None,
    resume: bool = False,
    callbacks: Sequence = (),
) -> RunData:
    """Train `model` (a name, folder or Hub id) with DPO on preference pairs `data` and return the run.

    `reference`: the frozen policy the loss measures log-ratios against; None = the same folder as `model` (with
    LoRA: the base with the adapter disabled, so no second model is loaded). `task`, `eval_prompts`, `gold_judge`:
    where the before/after samples come from and how they are scored (a Task supplies both). `resume=True`
    continues an interrupted run from its last checkpoint. `callbacks`: extra transformers TrainerCallbacks (the
    live dashboard).

    Writes config.json, metrics.jsonl (TRL's names), samples.jsonl, model/ (LoRA merged into full weights, the
    adapter alone in adapter/) and summary.json: the last logged loss, rewards/accuracies, rewards/margins,
    rewards/chosen, rewards/rejected, steps, seconds, and the samples' mean gold score before and after."""
    from trl import DPOConfig, DPOTrainer

    settings = settings or DPOSettings()
    policy_path = _model_path(model, "model")
    reference_path = policy_path if reference is None else _model_path(reference, "reference")
    if eval_prompts is None and task is not None:
        eval_prompts = task.eval_prompts
    if gold_judge is None and task is not None:
        gold_judge = task.gold_judge
    sample_prompts = list(eval_prompts or [])[: settings.n_samples]

    tokenizer = load_tokenizer(policy_path)
    dataset, data_format = prepare_preferences(data, tokenizer, settings.chat)

    run = Run(
        run_dir,
        stage="dpo",
        seed=settings.seed,
        resume=resume,
        config={
            "model": policy_path,
            "reference": reference_path,
            "settings": settings,
            "pairs": len(dataset),
            "data_format": data_format,
        },
    )
    started = time.time()
    policy = load_policy(policy_path, device=settings.device)
    lora = settings.lora is not None
    ref_model = None
    if not lora or reference_path != policy_path:
        # Loaded here, from disk, rather than left to TRL: the same loader (device, dtype, frozen) as everywhere.
        ref_model = load_reference(reference_path, device=settings.device)
    reference_note = (
        "the policy's base with the LoRA adapter disabled (no second model)" if ref_model is None else reference_path
    )

    sampling = dict(
        gold_judge=gold_judge,
        max_new_tokens=settings.sample_max_new_tokens,
        temperature=settings.sample_temperature,
        seed=settings.seed,
    )
    gold_before = None
    if sample_prompts and not (resume and not load(run.path).samples.empty):
        gold_before = log_policy_samples(run, 0, policy, tokenizer, sample_prompts, when="before", **sampling)

    fields = dict(
        loss_type=settings.loss_names(),
        beta=settings.beta,
        label_smoothing=settings.resolved_label_smoothing(),
        learning_rate=settings.learning_rate,
        num_train_epochs=settings.epochs,
        max_steps=settings.max_steps,
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.gradient_accumulation_steps,
        lr_scheduler_type=settings.lr_scheduler_type,
        warmup_steps=settings.warmup_steps,
        max_length=settings.max_length,
        report_to=settings.report_to,
    )
    fields.update(settings.trl_overrides)
    args = trl_args(DPOConfig, run, seed=settings.seed, device=settings.device, **fields)
    if lora:
        seed_adapter_init(settings.seed)  # DPOTrainer makes the adapter before it seeds anything
    trainer = DPOTrainer(
        model=policy,
        ref_model=ref_model,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        peft_config=settings.lora.to_peft("CAUSAL_LM") if lora else None,
        callbacks=list(callbacks),
    )
    trained = train_into_run(trainer, run, resume=resume, tokenizer=tokenizer)  # with LoRA: merged

    steps = trainer.state.global_step
    gold_after = None
    if sample_prompts:
        gold_after = log_policy_samples(run, steps, trained, tokenizer, sample_prompts, when="after", **sampling)

    summary = {
        **_last_logged(trainer.state.log_history, SUMMARY_METRICS),
        "train_loss": _last_logged(trainer.state.log_history, ["train_loss"]).get("train_loss"),
        "steps": steps,
        "seconds": round(time.time() - started, 2),
        "loss_type": settings.loss_type,
        "beta": settings.beta,
        "label_smoothing": settings.resolved_label_smoothing(),
        "pairs": len(dataset),
        "data_format": data_format,
        "reference": reference_note,
        "lora": lora,
    }
    if sample_prompts:
        summary.update(
            {"samples/n": len(sample_prompts), "samples/gold_before": gold_before, "samples/gold_after": gold_after}
        )
    run.finish(summary)
    return load(run.path)
