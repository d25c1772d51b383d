"""What a notebook's set-up cell needs: paths relative to the project folder, finished runs, device, task, gold judge.

    from rlhfkit.notebook import finished_run, project_path, setup

    out_dir, device, task, gold = setup(OUT, TASK, device=DEVICE, threads=THREADS, model=MODEL)
    sft_dir = project_path(SFT_RUN)          # "runs/..." means the same folder wherever Jupyter was started
    if finished_run(sft_dir): ...            # reuse an earlier notebook's run, else train one
    sft_run = sft_run_or_train(SFT_RUN, out_dir, model=MODEL, task=task, settings=SFTSettings(...))

Every notebook in notebooks/ starts this way, so a relative path in a parameter cell (`OUT`, `SFT_RUN`, ...) names
the same folder whether the kernel runs in notebooks/ or in the project folder, and one notebook finds another's
runs. torch, the task loader and the run reader are imported when first used, so importing this module is cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

if TYPE_CHECKING:
    import torch

    from rlhfkit.data import Task

__all__ = [
    "NotebookSetup",
    "earlier_run_or",
    "finished_run",
    "project_path",
    "setup",
    "sft_run_or_train",
    "earlier_labels_or",
    "reward_run_or_train",
]


def project_path(path: str | Path) -> Path:
    """`path` relative to the project folder, with `~` expanded; an absolute path is returned unchanged.

    The project folder is the parent of the kernel's working directory when that is `notebooks/` (Jupyter started
    in the project and the notebook opened from there), else the working directory itself."""
    path = Path(path).expanduser()
    if path.is_absolute():
        return path
    cwd = Path.cwd()
    root = cwd.parent if cwd.name == "notebooks" else cwd
    return root / path


def _run_state(path: Path) -> str | None:
    """The run's status ("finished", "running", ...), or None when `path` is not a run directory."""
    from rlhfkit.runs import load as load_run

    return load_run(path).status.get("state") if (path / "config.json").exists() else None


def finished_run(path: str | Path) -> bool:
    """Whether `path` is a run directory whose status is "finished" and which holds a saved model (`model/`).

    A missing folder, a folder that is not a run, and a run still running, interrupted or failed all give False."""
    path = Path(path)
    return _run_state(path) == "finished" and (path / "model").exists()


def earlier_run_or(earlier: str | Path, train: Callable[[], Any], *, what: str, made_by: str = "an earlier notebook"):
    """The finished run at `earlier` (another notebook's run folder, through `project_path`) when there is one;
    otherwise `train()` (a call of `rlhfkit.stages` that trains one into this notebook's folder), saying why.
    Returns the run (`rlhfkit.runs.RunData`)."""
    from rlhfkit.runs import load as load_run

    path = project_path(earlier)
    if finished_run(path):
        run = load_run(path)
        print(f"{what}: {made_by}'s, {run.model_path}")
        return run
    state = _run_state(path)
    reason = "no run there" if state is None else f"its state is {state!r}" if state != "finished" else "no model/"
    print(f"no finished {what} at {path} ({reason}): training one here. Run {made_by} first to reuse its run instead.")
    return train()


def sft_run_or_train(sft_run: str | Path, out_dir: Path, *, model: str, task, settings):
    """Notebook 01's SFT run at `sft_run` (through `project_path`) when it finished with a model; otherwise train
    one with `settings` (an `SFTSettings`) from `model` on `task` into `out_dir / "sft"`, saying why. Returns the
    run (`rlhfkit.runs.RunData`)."""
    from rlhfkit import stages

    return earlier_run_or(
        sft_run,
        lambda: stages.sft(model, task, settings, Path(out_dir) / "sft", echo=False),
        what="SFT model",
        made_by="notebook 01",
    )


def earlier_labels_or(preferences: str | Path, policy, task, settings, out: str | Path, *, made_by="notebook 02"):
    """Preference labels (`rlhfkit.stages.Labels`, written into `out` by `stages.label_preferences`): the pairs in
    the file `preferences` (`made_by`'s export, through `project_path`) when it exists, else a simulated
    annotator's (the task's gold judge with `settings.flip_rate` label noise) over `policy`'s candidates on
    `settings.n_prompts` train prompts, saying which. Labels already complete in `out` are reused, as the stage
    does."""
    from rlhfkit import stages

    path, out = project_path(preferences), Path(out)
    found = path.exists()
    reused = (out / stages.PREFERENCES).exists() and (out / stages.REWARD_CHECK).exists()
    labels = stages.label_preferences(policy, task, settings, out, labels_from=path if found else None, echo=False)
    source = (
        f"{made_by}'s export ({path})"
        if found
        else f"a simulated annotator (gold judge, {settings.flip_rate:.0%} flips) over the SFT model's candidates, "
        f"since {path} is missing"
    )
    print(f"{len(labels.preferences)} preference pairs from {source}" + (f", reused from {out}" if reused else ""))
    return labels


def reward_run_or_train(rm_run: str | Path, out_dir: Path, policy, task, *, preferences, labels, settings):
    """Notebook 03's reward model at `rm_run` (through `project_path`) when it finished with a model; otherwise one
    trained with `settings` (a `RewardSettings`) from `policy` (the SFT model's folder) into `out_dir / "reward"`,
    on `earlier_labels_or(preferences, policy, task, labels, out_dir / "labels")`. Returns the run."""
    from rlhfkit import stages

    def train():
        pairs = earlier_labels_or(preferences, policy, task, labels, Path(out_dir) / "labels")
        return stages.reward_model(policy, pairs, settings, Path(out_dir) / "reward")

    return earlier_run_or(rm_run, train, what="reward model", made_by="notebook 03")


class NotebookSetup(NamedTuple):
    """What `setup` returns; unpack it as `out_dir, device, task, gold = setup(...)`."""

    out_dir: Path  # the notebook's output folder (OUT), relative to the project folder; not created here
    device: torch.device
    task: Task
    gold: Callable | None  # the task's gold judge (None only with need_gold=False)


def setup(
    out: str | Path,
    task: str | Path,
    device: str | None = None,
    threads: int | None = None,
    model: str | None = None,
    *,
    need_gold: bool = True,
    purpose: str = "this notebook measures every policy against one",
) -> NotebookSetup:
    """A notebook's common set-up: output folder, device, torch threads, task and gold judge.

    - `out` goes through `project_path`.
    - `device`: None picks CUDA when present, else CPU (`rlhfkit.models.pick_device`).
    - `threads`: torch CPU threads for this kernel. None follows `rlhfkit.threads`' rule: `RLHFKIT_THREADS` if
      set, else 1 for the embedded default (`model == "tiny"`), whose matrices are too small to gain from a
      second thread, else torch's own default. Only a CPU device changes the setting.
    - `task` is loaded with `rlhfkit.tasks.load_task`. With `need_gold` a task without a gold judge raises
      ValueError("task ... has no gold judge: <purpose>"): `purpose` says why the notebook needs one.

    Prints the task's summary and a line with the device, the torch threads and the output folder."""
    import torch

    from rlhfkit.tasks import load_task
    from rlhfkit.models import pick_device
    from rlhfkit.threads import choose_threads

    out_dir = project_path(out)
    device = pick_device(device)
    chosen = choose_threads(threads, model=model, device=device)
    if chosen is not None:
        torch.set_num_threads(chosen)
    loaded = load_task(task)
    if need_gold and loaded.gold_judge is None:
        raise ValueError(f"task {task!r} has no gold judge: {purpose}")
    print(loaded.summary())
    print(f"device: {device}, torch threads: {torch.get_num_threads()}, output folder: {out_dir}")
    return NotebookSetup(out_dir, device, loaded, loaded.gold_judge)
