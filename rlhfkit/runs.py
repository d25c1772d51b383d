"""The run directory: what every training stage writes, and what the dashboard, evaluation and comparison read.

    run_dir/
      rlhfkit.json     the manifest: this is an rlhfkit run directory (stage, rlhfkit version) and the names rlhfkit
                       wrote in it
      config.json      every hyperparameter, the seed, package versions, the stage name
      status.json      "running", "finished", "interrupted" or "failed", with a message and the last step
      metrics.jsonl    one JSON row per logging step (TRL metric names), appended and flushed as training goes
      samples.jsonl    rows of {step, prompt, response, ...scores}
      summary.json     the final numbers the comparison reads
      model/           the trained model (safetensors) and its tokenizer (adapter/: a LoRA adapter alone)
      checkpoints/     resumable state of an unfinished run
      tensorboard/     TensorBoard event files, when the stage's report_to includes "tensorboard"
      dashboard.html   the live dashboard's figures, when it ran without a notebook
      .first-failure.json  which process of a multi-process run failed first, and why (while it fails)

Writes are append-only or atomic (write to a temporary name, then rename), so a killed process or an interrupted
kernel leaves every completed line and checkpoint readable. `load(path)` gives it all back as pandas frames.

The rule for every folder rlhfkit writes (run directories here, the pipeline's output folder in `rlhfkit.pipeline`):
nothing rlhfkit did not write is overwritten or deleted.

- Each such folder holds a manifest, `rlhfkit.json`, naming what kind of folder it is and every file or folder
  rlhfkit wrote in it. rlhfkit replaces or deletes only the names listed there; anything else you put in the folder
  (notes, your own data) is left alone. Folders rlhfkit writes whole (model/, adapter/, checkpoints/) are replaced
  whole: keep your own files outside them.
- A run starts only in a new or empty folder, or in an rlhfkit run directory. A non-empty folder without a manifest
  is refused (FileExistsError naming the folder and what is in it), and so is a run directory where one of the
  names above exists but was not written by rlhfkit.
- In an rlhfkit run directory, a finished or failed run is replaced by a new one; an unfinished one (running or
  interrupted) is continued with `resume=True`, or started over only with `overwrite=True`.
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

__all__ = [
    "Run",
    "atomic_write_text",
    "RunData",
    "load",
    "package_versions",
    "NonFiniteLossError",
    "MetricsCallback",
    "MANIFEST",
    "read_manifest",
    "folder_contents",
    "Manifest",
    "remove_written",
    "record_written",
    "jsonable",
    "name_list",
    "check_ours_to_write",
]

CONFIG, STATUS, METRICS, SAMPLES, SUMMARY = (
    "config.json",
    "status.json",
    "metrics.jsonl",
    "samples.jsonl",
    "summary.json",
)
MANIFEST = "rlhfkit.json"
FIRST_FAILURE = ".first-failure.json"
RUN_LAYOUT = (
    CONFIG,
    STATUS,
    METRICS,
    SAMPLES,
    SUMMARY,
    "model",
    "adapter",
    "checkpoints",
    "tensorboard",
    "dashboard.html",
    FIRST_FAILURE,
)
"""Every name a stage may write in its run directory: present but not written by rlhfkit, it stops a run."""
_IGNORED = {".DS_Store", "Thumbs.db", "desktop.ini", ".ipynb_checkpoints"}
"""Entries the operating system or Jupyter make on their own: they do not make a folder someone's."""


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


def jsonable(value: Any) -> Any:
    """Config values as JSON: dataclasses become dicts, paths and other objects their str()."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to a temporary file beside `path`, then rename it over `path`: a reader (or a run killed
    mid-write) sees the old text or the new, never half of it."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def _rlhfkit_version() -> str:
    from rlhfkit import __version__

    return __version__


def name_list(names: list[str], limit: int = 8) -> str:
    """Folder entries for an error message: the first `limit` names, then how many more."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_ours_to_write(
    folder: str | os.PathLike, kind: str, what: str, names: Any, *, found: list[str] | None = None
) -> dict | None:
    """The rule of the module's docstring for a folder rlhfkit is about to write as a `kind` folder ("run",
    "pipeline"; `what` names it in messages) holding `names`: returns its manifest (None for a new or empty folder)
    and raises FileExistsError, naming the folder and what is in it, when the folder is not rlhfkit's to write."""
    folder = Path(folder)
    found = folder_contents(folder) if found is None else found
    existing = read_manifest(folder)
    if found and existing is None:
        raise FileExistsError(
            f"{folder} is not empty and is not an rlhfkit {what} (no {MANIFEST}): found {name_list(found)}. rlhfkit "
            f"never overwrites or deletes files it did not write: choose a new or empty folder, or move these files "
            f"away"
        )
    if existing is not None and existing.get("kind") != kind:
        raise FileExistsError(
            f"{folder} is an rlhfkit {existing.get('kind')} folder, not a {what}: choose a folder of its own"
        )
    owned = set(existing["files"]) if existing else set()
    foreign = [name for name in found if name in names and name not in owned]
    if foreign:
        raise FileExistsError(
            f"{folder} holds {name_list(foreign)}, which rlhfkit did not write and rlhfkit would "
            f"overwrite: move them out of the folder or choose another one"
        )
    return existing


def read_manifest(folder: str | os.PathLike) -> dict | None:
    """The manifest (`rlhfkit.json`) of a folder rlhfkit wrote, or None when it has none (or an unreadable one)."""
    data = _read_json(Path(folder) / MANIFEST)
    if isinstance(data, dict) and data.get("written_by") == "rlhfkit" and isinstance(data.get("files", []), list):
        return data
    return None


def folder_contents(folder: str | os.PathLike) -> list[str]:
    """The names in `folder` that make it someone's: everything but the manifest and what the operating system or
    Jupyter add on their own (.DS_Store, .ipynb_checkpoints, ...). Empty for a folder that does not exist."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name != MANIFEST and p.name not in _IGNORED)


class Manifest:
    """The `rlhfkit.json` of a folder rlhfkit writes: its kind ("run", "pipeline", ...), details (stage, settings,
    ...), the rlhfkit version, and `files`, the names rlhfkit wrote there. A name is claimed (`claim`) before it is
    first written, so a killed process never leaves an unlisted file of its own; only claimed names are ever
    replaced or deleted (`remove`). Nothing is written until `save()` or the first `claim`."""

    def __init__(self, folder: str | os.PathLike, kind: str, **details: Any) -> None:
        self.folder = Path(folder)
        old = read_manifest(self.folder) or {}
        self.data = {
            "written_by": "rlhfkit",
            "note": "rlhfkit replaces or deletes only the names listed in 'files'; everything else here is left alone",
            "kind": kind,
            "rlhfkit_version": _rlhfkit_version(),
            "created": old.get("created") or time.strftime("%Y-%m-%dT%H:%M:%S"),
            **{
                k: v
                for k, v in old.items()
                if k not in ("written_by", "note", "kind", "rlhfkit_version", "created", "files")
            },
            **jsonable(details),
            "files": list(old.get("files", [])),
        }

    @property
    def files(self) -> list[str]:
        return list(self.data["files"])

    def owns(self, name: str) -> bool:
        return name in self.data["files"]

    def update(self, **details: Any) -> None:
        self.data.update(jsonable(details))
        self.save()

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.folder / MANIFEST, json.dumps(self.data, indent=2))

    def claim(self, name: str) -> Path:
        """Record `name` as written by rlhfkit (before writing it) and return its path."""
        if name not in self.data["files"]:
            self.data["files"].append(name)
            self.save()
        return self.folder / name

    def remove(self, name: str) -> None:
        """Delete `name` if rlhfkit wrote it (a listed folder with its own manifest is cleaned the same way: only
        what rlhfkit wrote inside goes); a name rlhfkit did not write is left alone."""
        if not self.owns(name):
            return
        path = self.folder / name
        if path.is_symlink() or path.is_file():
            path.unlink()
        elif path.is_dir():
            if read_manifest(path) is not None and remove_written(path):
                return  # someone's files are left inside: the folder (and its manifest) stays, still rlhfkit's
            shutil.rmtree(path)
        self.data["files"].remove(name)
        self.save()


def remove_written(folder: str | os.PathLike) -> list[str]:
    """Delete what rlhfkit wrote in `folder` (the names its manifest lists) and keep everything else; the manifest
    stays, listing nothing. Returns the names left (not rlhfkit's). A folder without a manifest is not touched."""
    data = read_manifest(folder)
    if data is not None:
        manifest = Manifest(folder, data.get("kind", ""))
        for name in manifest.files:
            manifest.remove(name)
    return folder_contents(folder)


def record_written(folder: str | os.PathLike, name: str) -> None:
    """Record that rlhfkit wrote `name` into `folder`, when `folder` is one of rlhfkit's (has a manifest)."""
    data = read_manifest(folder)
    if data is not None:
        Manifest(folder, data.get("kind", "")).claim(name)


class Run:
    """A run directory being written by one training stage.

    `Run(path, stage="ppo", config=cfg, seed=0)` creates the folder (or takes a new or empty one), writes the
    manifest and `config.json`. A non-empty folder that is not an rlhfkit run directory is refused
    (FileExistsError), and so is a run directory holding one of the run's file names that rlhfkit did not write;
    see the module's docstring for the rule. With `resume=True` an existing run is continued: its metrics and
    samples are kept and new rows are appended. An unfinished run (running or interrupted) is never started over by
    accident: that takes `overwrite=True`, which replaces rlhfkit's own files only. Only the main process should
    write; pass `enabled=False` on the others (accelerate's non-main ranks)."""

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        stage: str,
        config: Any = None,
        seed: int | None = None,
        resume: bool = False,
        overwrite: bool = False,
        enabled: bool = True,
    ) -> None:
        self.path = Path(path)
        self.stage = stage
        self.enabled = enabled
        self.manifest: Manifest | None = None
        if not enabled:
            return
        found = folder_contents(self.path)
        existing = check_ours_to_write(self.path, "run", "run directory", RUN_LAYOUT, found=found)
        if found and not resume:
            status = _read_json(self.path / STATUS) or {}
            if status.get("state") in ("running", "interrupted") and not overwrite:
                raise FileExistsError(
                    f"{self.path} holds an unfinished run ({status['state']}); pass resume=True "
                    f"to continue it, overwrite=True to start over, or choose another folder"
                )
        self.manifest = Manifest(self.path, "run", stage=stage)
        self.manifest.save()
        if not resume:
            for name in (METRICS, SAMPLES, SUMMARY):  # a fresh run in a reused folder starts clean
                self.manifest.remove(name)
        self._write(
            CONFIG,
            json.dumps(
                {
                    "stage": stage,
                    "seed": seed,
                    "config": jsonable(config),
                    "versions": package_versions(),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                },
                indent=2,
            ),
        )
        self.set_status("running")

    def claim(self, name: str) -> Path:
        """The path of `name` in the run directory, recorded in the manifest as rlhfkit's: call it before writing
        anything there yourself (the Run's own methods do)."""
        if self.manifest is not None:
            return self.manifest.claim(name)
        return self.path / name

    def _write(self, name: str, text: str) -> None:
        atomic_write_text(self.claim(name), text)

    # --- status ---------------------------------------------------------------------------------------------

    def set_status(self, state: str, message: str = "", *, any_process: bool = False, **extra: Any) -> None:
        """Record the run's state: "running", "finished", "interrupted" or "failed". `any_process=True` writes it
        even from a process that does not write otherwise (one that failed where the main process did not)."""
        if self.enabled or any_process:
            self._write(
                STATUS,
                json.dumps(
                    {"state": state, "message": message, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), **jsonable(extra)},
                    indent=2,
                ),
            )

    def finish(self, summary: dict | None = None) -> None:
        """Mark the run finished and write its summary (final numbers the comparison reads)."""
        if self.enabled:
            if summary is not None:
                self._write(SUMMARY, json.dumps(jsonable(summary), indent=2))
            self.set_status("finished")

    # --- streams --------------------------------------------------------------------------------------------

    def _append(self, name: str, rows: list[dict]) -> None:
        with self.claim(name).open("a", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(jsonable(row), ensure_ascii=False) + "\n")
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
        self.claim(name)
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
        """Where trainers write resumable checkpoints (recorded as rlhfkit's)."""
        return self.claim("checkpoints")


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
