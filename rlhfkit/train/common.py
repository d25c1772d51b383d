"""What every TRL-backed stage shares: the settings every stage has (`TrainSettings`), device-aware TRL arguments,
running a trainer into a run directory so that an interrupt keeps a resumable checkpoint and a NaN loss stops the
run with a clear message, and saving the trained model (a LoRA adapter and the merged model) into the run.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from transformers.trainer_callback import ProgressCallback

from rlhfkit.models import LoraSettings
from rlhfkit.runs import MetricsCallback, NonFiniteLossError, Run
from rlhfkit.threads import cpu_threads
from rlhfkit.train.tracking import claim_tracker_folder, report_to_names, send_trainer_trackers_to_run

__all__ = ["TrainSettings", "trl_args", "train_into_run", "last_checkpoint", "save_model"]


@dataclass(kw_only=True)
class TrainSettings:
    """The settings every TRL-backed stage has (`SFTSettings`, `RewardSettings`, `DPOSettings`, `OnlineSettings`
    add their own to these). Keyword-only; in `dataclasses.fields` (and config.json) they come first."""

    seed: int = 0
    """Seed of everything random in the stage: initialisation (a new score head, LoRA matrices), the order of the
    data, the held-out split and sampling."""
    device: str | None = None
    """"cpu", "cuda", "cuda:1", ...; None = CUDA when available, else the CPU."""
    lora: LoraSettings | None = None
    """Train a LoRA adapter instead of all weights (None = full fine-tuning); a reward model trains its score head
    too. Where the stage has a reference (DPO, RLOO/GRPO), it is the base with the adapter disabled. run_dir/adapter
    then holds the adapter alone and run_dir/model the merged model, a plain model folder (see `save_model`)."""
    report_to: str | list[str] = "none"
    """Experiment trackers that also get this run's metrics (TRL's names): "tensorboard", "wandb", "trackio",
    "mlflow", ..., a list of them, "all" (every installed one) or "none". TensorBoard writes into
    run_dir/tensorboard; see `rlhfkit.train.tracking`."""
    trl_overrides: dict = field(default_factory=dict)
    """Any other field of the stage's TRL config (`trl.SFTConfig`, `trl.RewardConfig`, `trl.DPOConfig`,
    `trl.RLOOConfig` / `trl.GRPOConfig`), passed through as is and applied last, e.g. {"logging_steps": 5}."""

    def __post_init__(self) -> None:
        name = type(self).__name__
        if isinstance(self.seed, bool) or not isinstance(self.seed, numbers.Integral):
            raise ValueError(f"{name}.seed must be an integer, got {self.seed!r}")
        if self.device is not None and not isinstance(self.device, (str, torch.device)):
            raise ValueError(
                f"{name}.device must be a device name such as 'cpu' or 'cuda:0', or None; got {self.device!r}"
            )
        if self.lora is not None and not isinstance(self.lora, LoraSettings):
            raise ValueError(
                f"{name}.lora must be a rlhfkit.models.LoraSettings or None, got {type(self.lora).__name__}"
            )
        report_to_names(self.report_to)  # an unknown or missing tracker fails here, before any model loads
        if not isinstance(self.trl_overrides, Mapping):
            raise ValueError(
                f"{name}.trl_overrides must be a dict of TRL config fields, got {type(self.trl_overrides).__name__}"
            )


def trl_args(config_cls, run: Run, *, seed: int, device: str | None = None, **fields: Any):
    """A TRL `*Config` for this machine: on a CUDA device bf16 where supported, on the CPU fp32 with `use_cpu`;
    no activation checkpointing (TRL's default costs time and buys nothing on models this small; pass
    `activation_checkpointing=True` for big ones); checkpoints under the run's `checkpoints/`; logging every step
    unless told otherwise, so the metrics stream and the NaN guard see every step. `report_to` (a field like any
    other, default "none") is checked and normalised by `rlhfkit.train.tracking.report_to_names`; trackers name
    the run after the run directory."""
    on_gpu = torch.cuda.is_available() and (device is None or str(device).startswith("cuda"))
    defaults = dict(
        output_dir=str(run.checkpoint_path),
        seed=seed,
        use_cpu=not on_gpu,
        bf16=bool(on_gpu and torch.cuda.is_bf16_supported()),
        activation_checkpointing=False,
        logging_steps=1,
        # transformers hides a NaN/inf step loss from the logs by default (it logs the window's average instead);
        # the NaN guard must see it.
        logging_nan_inf_filter=False,
        save_strategy="steps",
        save_steps=50,
        save_total_limit=2,
        report_to="none",
        run_name=run.path.resolve().name,
        disable_tqdm=False,
        dataloader_num_workers=0,
    )
    defaults.update(fields)
    defaults["report_to"] = report_to_names(defaults["report_to"])
    return config_cls(**defaults)


def seed_adapter_init(seed: int) -> None:
    """Seed every generator before a LoRA adapter is created (by us or inside a TRL trainer). Its A matrices start
    random, and they are made before the trainer seeds anything: without this, a LoRA run's numbers depended on
    what ran earlier in the same process (a notebook kernel). Called only on the LoRA path, so full fine-tuning
    draws exactly what it did before."""
    from transformers import set_seed

    set_seed(seed)


def last_checkpoint(run: Run) -> str | None:
    """The newest complete trainer checkpoint of a run, if any."""
    from transformers.trainer_utils import get_last_checkpoint

    folder = run.checkpoint_path
    return get_last_checkpoint(str(folder)) if folder.exists() else None


def save_model(model, tokenizer, run: Run):
    """Save a trained model into the run: `run/model` holds its weights (safetensors) and the tokenizer. A LoRA
    model (a peft model) is first saved as it is, the adapter alone (plus tokenizer) in `run/adapter`, then merged
    into its base, in place, so that `run/model` is a plain model folder every later stage loads without peft.
    Returns the model as saved in `run/model` (for LoRA the merged one: use it, not the peft model, afterwards).
    Writes nothing on a process whose run is not enabled (accelerate's non-main processes)."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        run.save_model(model, tokenizer, name="adapter")
        model = model.merge_and_unload()
    run.save_model(model, tokenizer)
    return model


def train_into_run(trainer, run: Run, *, resume: bool = False, tokenizer=None):
    """Train, then save the final model into `run/model` (and a LoRA adapter into `run/adapter`: see `save_model`)
    and return it as saved (LoRA merged). Trackers named by `args.report_to` get every metrics.jsonl row
    (TensorBoard into `run/tensorboard`, see `rlhfkit.train.tracking`).

    - Ctrl-C / a kernel interrupt: the current state is saved as a trainer checkpoint (weights, optimizer,
      scheduler, RNG), the run is marked "interrupted", and KeyboardInterrupt is re-raised; calling the stage
      again with `resume=True` continues from there.
    - A NaN or infinite loss: training stops at that step without saving it, the run is marked "failed" and
      NonFiniteLossError names the last good checkpoint.
    """
    guard = MetricsCallback(run)
    trainer.add_callback(guard)
    send_trainer_trackers_to_run(trainer, run.path)
    claim_tracker_folder(run, trainer.args.report_to)
    _keep_bar_drop_log_prints(trainer)
    checkpoint = last_checkpoint(run) if resume else None
    device = next(trainer.model.parameters()).device
    try:
        with cpu_threads(model=trainer.model, device=device):
            trainer.train(resume_from_checkpoint=checkpoint)
    except KeyboardInterrupt:
        trainer._save_checkpoint(trainer.model, trial=None)  # the same format resume_from_checkpoint reads
        run.set_status(
            "interrupted",
            "stopped by KeyboardInterrupt; call again with resume=True to continue",
            step=trainer.state.global_step,
            checkpoint=last_checkpoint(run),
        )
        raise
    if guard.non_finite is not None:
        step, key, value = guard.non_finite
        good = last_checkpoint(run)
        message = (
            f"{key} became {value} at step {step}; training stopped. Last good checkpoint: "
            f"{good or 'none (the loss was not finite before the first save)'}. Lower the learning rate "
            f"or check the data."
        )
        run.set_status("failed", message, step=step, checkpoint=good)
        raise NonFiniteLossError(message)
    return save_model(trainer.model, tokenizer if tokenizer is not None else trainer.processing_class, run)


class _BarOnly(ProgressCallback):
    """transformers' progress bar without its per-step print of the log dict (the numbers are in metrics.jsonl)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        pass


def _keep_bar_drop_log_prints(trainer) -> None:
    """With logging_steps=1 the bar's log prints bury the bar: swap in the same bar without them."""
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(_BarOnly())


def finite_or_none(value: Any) -> float | None:
    """A metric as a float, or None when missing or not finite (JSON has no NaN)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
