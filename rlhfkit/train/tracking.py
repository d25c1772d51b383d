"""Experiment trackers (TensorBoard, Weights & Biases, Trackio, MLflow, ...): the `report_to` setting that every
training stage has, and how each stage honours it.

- Values are transformers' / TRL's: "none" (the default: the run directory only), "all" (every supported tracker
  that is installed), one name, or a list of names. Only trackers that both transformers (behind the TRL stages)
  and accelerate (behind our PPO) support are accepted, so a value means the same in every stage.
  `report_to_names` is the one place that checks and normalises it.
- What a tracker receives is the run's metrics.jsonl: every numeric column of a row, at the row's `step`, under
  transformers' names (`train/<column>`, e.g. `train/loss`, `train/objective/kl`; `eval_x` becomes `eval/x`).
  The TRL stages log through transformers' own tracker callbacks (`TrainingArguments.report_to`); our PPO logs
  through accelerate's tracker API (`Accelerator(log_with=...)`, `init_trackers`, `log(..., step=)`).
- TensorBoard event files go to `run_dir/tensorboard` in every stage (`$TENSORBOARD_LOGGING_DIR` overrides it, as
  in transformers), so `tensorboard --logdir runs/` shows every stage of a pipeline side by side. Other trackers
  keep their own settings (`WANDB_PROJECT`, `MLFLOW_TRACKING_URI`, ...); the tracked run is named after the run
  directory ("sft", "ppo", ...).
- Only the main process logs.
- Not tracked: the reward stage's held-out evaluation row, computed after training has ended (it is in
  metrics.jsonl and summary.json).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = [
    "TRACKERS",
    "report_to_names",
    "tensorboard_dir",
    "claim_tracker_folder",
    "send_trainer_trackers_to_run",
    "accelerate_trackers",
    "start_accelerate_trackers",
    "tracker_metrics",
]

TRACKERS = ("tensorboard", "wandb", "trackio", "mlflow", "comet_ml", "clearml", "dvclive", "swanlab")
"""Trackers every stage can report to (supported by both transformers' callbacks and accelerate's trackers)."""

_PACKAGES = {"comet_ml": "comet-ml"}  # pip names that differ from the tracker's name

DEFAULT_PROJECT = "huggingface"
"""The tracker project when none is configured (transformers' default for W&B and Trackio, so that PPO lands in the
same project as the TRL stages); `$WANDB_PROJECT` overrides it."""


def report_to_names(value: Any, field: str = "report_to") -> list[str]:
    """The trackers `value` names, as a list (empty for "none"); raises ValueError naming `field` for an unknown
    name or a tracker that is not installed."""
    if value is None or value == "none":
        return []
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{field}: expected 'none', 'all', a tracker name or a list of names, got {value!r}")
    names = list(dict.fromkeys(names))  # in order, without repeats
    expected = f"expected 'none', 'all' or any of {', '.join(TRACKERS)}"
    if ("none" in names or "all" in names) and len(names) > 1:
        raise ValueError(
            f"{field}: {value!r} mixes {'none' if 'none' in names else 'all'!r} with other names; {expected}"
        )
    if names == ["none"]:
        return []
    unknown = [n for n in names if n not in TRACKERS and n != "all"]
    if unknown:
        raise ValueError(f"{field}: unknown tracker {unknown[0]!r}; {expected}")
    from transformers.integrations.integration_utils import get_available_reporting_integrations

    installed = set(get_available_reporting_integrations())
    if names == ["all"]:
        return [n for n in TRACKERS if n in installed]
    missing = [n for n in names if n not in installed]
    if missing:
        raise ValueError(
            f"{field}: the tracker {missing[0]!r} is not installed; pip install "
            f"{_PACKAGES.get(missing[0], missing[0])}, or leave it out"
        )
    return names


def tensorboard_dir(run_path: str | os.PathLike) -> Path:
    """Where a run's TensorBoard event files go: `run_dir/tensorboard`, or `$TENSORBOARD_LOGGING_DIR` when set."""
    override = os.environ.get("TENSORBOARD_LOGGING_DIR")
    return Path(os.path.expanduser(override)) if override else Path(run_path) / "tensorboard"


def claim_tracker_folder(run, report_to: Any) -> None:
    """List `run_dir/tensorboard` in the run's manifest before TensorBoard writes there, so rlhfkit knows the
    folder as its own (a `$TENSORBOARD_LOGGING_DIR` elsewhere is the user's choice, not part of the run)."""
    if "tensorboard" in report_to_names(report_to) and not os.environ.get("TENSORBOARD_LOGGING_DIR"):
        run.claim("tensorboard")


def tracker_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """A metrics.jsonl row as trackers get it in every stage: numeric columns under transformers' names."""
    from transformers.integrations.integration_utils import rewrite_logs

    return rewrite_logs({k: v for k, v in metrics.items() if isinstance(v, (int, float))})


# --- TRL stages: transformers' tracker callbacks --------------------------------------------------------------


def send_trainer_trackers_to_run(trainer, run_path: str | os.PathLike) -> None:
    """Point a Trainer's tracker callbacks (made from `args.report_to`) at the run: TensorBoard writes into
    `tensorboard_dir(run_path)` instead of transformers' default under `output_dir` (the run's checkpoints, deleted
    after a successful run), and the trackers move behind every other callback, so they see each log row complete
    (with the names rlhfkit's callbacks add), as metrics.jsonl does."""
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK, TensorBoardCallback

    kinds = tuple(INTEGRATION_TO_CALLBACK.values())
    for callback in [cb for cb in trainer.callback_handler.callbacks if isinstance(cb, kinds)]:
        if isinstance(callback, TensorBoardCallback) and callback.tb_writer is None:
            callback.logging_dir = str(tensorboard_dir(run_path))
        trainer.remove_callback(callback)
        trainer.add_callback(callback)


# --- our own loops (PPO): accelerate's tracker API ------------------------------------------------------------


def accelerate_trackers(report_to: Any, run_path: str | os.PathLike) -> list:
    """`Accelerator(log_with=...)` for `report_to`: TensorBoard as a tracker that writes into the run's
    `tensorboard_dir`, the others by name."""
    from accelerate.tracking import TensorBoardTracker

    return [
        TensorBoardTracker("", tensorboard_dir(run_path)) if name == "tensorboard" else name
        for name in report_to_names(report_to)
    ]


def start_accelerate_trackers(accelerator, run_path: str | os.PathLike, config: dict[str, Any]) -> None:
    """Start the accelerator's trackers (main process only) for the run in `run_path`, with `config` as the run's
    hyperparameters. TensorBoard gets them as text in the run's own event file, as transformers does for the TRL
    stages (accelerate's `add_hparams` would write two extra sub-runs)."""
    if not accelerator.log_with:
        return
    name = Path(run_path).resolve().name
    accelerator.init_trackers(
        os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
        init_kwargs={
            "wandb": {"name": name},
            "trackio": {"name": name},
            "mlflow": {"run_name": name},
            "swanlab": {"experiment_name": name},
        },
    )
    for tracker in accelerator.trackers:  # empty on the other processes
        if tracker.name == "tensorboard":
            tracker.writer.add_text("config", json.dumps(config, indent=2, default=str))
        else:
            tracker.store_init_configuration(_scalars(config))


def _scalars(config: dict[str, Any]) -> dict[str, bool | int | float | str]:
    """Hyperparameters as trackers store them: scalars as they are, anything else (None, lists, nested settings)
    as its JSON text."""
    return {
        key: value if isinstance(value, (bool, int, float, str)) else json.dumps(value, default=str)
        for key, value in config.items()
    }
