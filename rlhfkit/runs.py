"""The run directory: what every training stage writes, and what the dashboard, evaluation and comparison read.

    run_dir/
      config.json      every hyperparameter, the seed, package versions, the stage name
      status.json      "running", "finished", "interrupted" or "failed", with a message and the last step
      metrics.jsonl    one JSON row per logging step (TRL metric names), appended and flushed as training goes
      samples.jsonl    rows of {step, prompt, response, ...scores}
      model/           the trained model (safetensors) and its tokenizer
      checkpoints/     resumable state of an unfinished run
      tensorboard/     TensorBoard event files, when the stage's report_to includes "tensorboard"

Writes are append-only or atomic (write to a temporary name, then rename), so a killed process or an interrupted
kernel leaves every completed line and checkpoint readable. `load(path)` gives it all back as pandas frames.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["Run", "RunData", "load", "package_versions", "NonFiniteLossError", "MetricsCallback"]

CONFIG, STATUS, METRICS, SAMPLES, SUMMARY = "config.json", "status.json", "metrics.jsonl", "samples.jsonl", "summary.json"


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the run stopped and kept its last good checkpoint."""


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages a result depends on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("rlhfkit", "torch", "transformers", "trl", "peft", "accelerate", "datasets"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _jsonable(value: Any) -> Any:
    """Config values as JSON: dataclasses become dicts, paths and other objects their str()."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


class Run:
    """A run directory being written by one training stage.

    `Run(path, stage="ppo", config=cfg, seed=0)` creates the folder and writes `config.json`. With
    `resume=True` an existing run is continued: its metrics and samples are kept and new rows are appended.
    An unfinished run (running or interrupted) is never started over by accident: that takes `overwrite=True`.
    Only the main process should write; pass `enabled=False` on the others (accelerate's non-main ranks)."""

    def __init__(self, path: str | os.PathLike, *, stage: str, config: Any = None, seed: int | None = None,
                 resume: bool = False, overwrite: bool = False, enabled: bool = True) -> None:
        self.path = Path(path)
        self.stage = stage
        self.enabled = enabled
        if not enabled:
            return
        if self.path.exists() and any(self.path.iterdir()) and not resume:
            status = _read_json(self.path / STATUS) or {}
            if status.get("state") in ("running", "interrupted") and not overwrite:
                raise FileExistsError(f"{self.path} holds an unfinished run ({status['state']}); pass resume=True "
                                      f"to continue it, overwrite=True to start over, or choose another folder")
        self.path.mkdir(parents=True, exist_ok=True)
        if not resume:
            for name in (METRICS, SAMPLES, SUMMARY):  # a fresh run in a reused folder starts clean
                (self.path / name).unlink(missing_ok=True)
        _atomic_write_text(self.path / CONFIG, json.dumps({
            "stage": stage, "seed": seed, "config": _jsonable(config), "versions": package_versions(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }, indent=2))
        self.set_status("running")

    # --- status ---------------------------------------------------------------------------------------------

    def set_status(self, state: str, message: str = "", *, any_process: bool = False, **extra: Any) -> None:
        """Record the run's state: "running", "finished", "interrupted" or "failed". `any_process=True` writes it
        even from a process that does not write otherwise (one that failed where the main process did not)."""
        if self.enabled or any_process:
            _atomic_write_text(self.path / STATUS, json.dumps(
                {"state": state, "message": message, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **_jsonable(extra)},
                indent=2))

    def finish(self, summary: dict | None = None) -> None:
        """Mark the run finished and write its summary (final numbers the comparison reads)."""
        if self.enabled:
            if summary is not None:
                _atomic_write_text(self.path / SUMMARY, json.dumps(_jsonable(summary), indent=2))
            self.set_status("finished")

    # --- streams --------------------------------------------------------------------------------------------

    def _append(self, name: str, rows: list[dict]) -> None:
        with (self.path / name).open("a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(_jsonable(row), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())  # an acknowledged row survives a killed process

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        """Append one row of metrics for a training step."""
        if self.enabled:
            self._append(METRICS, [{"step": int(step), "time": time.time(), **metrics}])

    def log_samples(self, step: int, rows: list[dict]) -> None:
        """Append sample rows (prompt, response, scores, ...) taken at a training step."""
        if self.enabled and rows:
            self._append(SAMPLES, [{"step": int(step), **row} for row in rows])

    # --- models ---------------------------------------------------------------------------------------------

    def save_model(self, model, tokenizer=None, name: str = "model") -> Path:
        """Save a model (safetensors) and tokenizer under `name`, atomically: the old copy stays until the new
        one is complete."""
        final = self.path / name
        if not self.enabled:
            return final
        staging = self.path / f".{name}.saving-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        model.save_pretrained(staging, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(staging)
        old = self.path / f".{name}.old-{os.getpid()}"
        if final.exists():
            os.replace(final, old)
        os.replace(staging, final)
        shutil.rmtree(old, ignore_errors=True)
        return final

    @property
    def model_path(self) -> Path:
        return self.path / "model"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoints"


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _read_jsonl(path: Path) -> pd.DataFrame:
    """Rows of a JSONL stream; a torn last line (a process killed mid-write) is ignored."""
    rows = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return pd.DataFrame(rows)


@dataclass
class RunData:
    """A run directory read back: config, status, summary, and the metrics and samples streams as frames."""

    path: Path
    stage: str
    config: dict
    status: dict
    summary: dict
    metrics: pd.DataFrame
    samples: pd.DataFrame
    versions: dict = field(default_factory=dict)

    @property
    def model_path(self) -> Path | None:
        folder = self.path / "model"
        return folder if folder.exists() else None


def load(path: str | os.PathLike) -> RunData:
    """Read a run directory, finished or not."""
    path = Path(path)
    config = _read_json(path / CONFIG)
    if config is None:
        raise FileNotFoundError(f"{path} is not a run directory: {CONFIG} is missing or unreadable")
    return RunData(
        path=path,
        stage=config.get("stage", ""),
        config=config.get("config") or {},
        status=_read_json(path / STATUS) or {},
        summary=_read_json(path / SUMMARY) or {},
        metrics=_read_jsonl(path / METRICS),
        samples=_read_jsonl(path / SAMPLES),
        versions=config.get("versions", {}),
    )


def _metrics_callback_base():
    from transformers import TrainerCallback

    return TrainerCallback


class MetricsCallback(_metrics_callback_base()):
    """Streams a transformers/TRL Trainer's logs into a `Run`'s metrics.jsonl and stops training on a NaN or
    infinite loss (the trainer's last saved checkpoint is then the last good one)."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.non_finite: tuple[int, str, float] | None = None

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not logs:
            return
        numbers = {k: v for k, v in logs.items() if isinstance(v, (int, float))}
        if state.is_world_process_zero:
            self.run.log(state.global_step, {"epoch": state.epoch, **numbers})
        for key, value in numbers.items():
            if "loss" in key and isinstance(value, float) and not math.isfinite(value):
                self.non_finite = (state.global_step, key, value)
                control.should_training_stop = True
                control.should_save = False
        return control
