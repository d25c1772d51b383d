"""Tasks: what a policy is trained to do. `Task` holds train and eval prompts (never overlapping), demonstrations
for SFT and optionally a gold judge. `Task.from_files` and `Task.from_hub` build one from data, and
`task_from_source` picks between them for a path or a hub id.

Loading a task by name (``load_task("reviews")``) is the job of the task registry, `rlhfkit.tasks`, which sits
above the modules that define tasks; this module knows no task names.
"""

from __future__ import annotations

import dataclasses
import os
import random
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from rlhfkit.data.errors import DataValidationError, _check_text, _RowProblem
from rlhfkit.data.tables import _finish_table, _load_dataset, _looks_like_file, _require_columns, _Table, _table_from

if TYPE_CHECKING:  # pragma: no cover - typing only; datasets is imported lazily
    import datasets

__all__ = ["Task", "task_from_source"]


@dataclass
class Task:
    """What a policy is trained to do: prompts to train and evaluate on, demonstrations for SFT, and optionally a
    gold judge."""

    name: str
    train_prompts: list[str]
    eval_prompts: list[str]
    demonstrations: list[dict]  # {"prompt": str, "completion": str}
    gold_judge: Callable | None = None  # scores (prompts, responses) -> list[float]
    description: str = ""
    gold_criteria: dict[str, Callable] = dataclasses.field(default_factory=dict)
    """Gold judges of named criteria besides the overall one (e.g. {"positive": ..., "brief": ...}), for
    multi-criteria labels: simulated annotators label each criterion by its judge (`gold_for`)."""

    def __post_init__(self) -> None:
        if self.gold_judge is not None and not callable(self.gold_judge):
            raise TypeError(
                f"Task {self.name!r}: gold_judge is {type(self.gold_judge).__name__} (expected a Judge or a callable "
                "(prompts, responses) -> list[float])"
            )
        self.gold_criteria = dict(self.gold_criteria or {})
        for criterion, judge in self.gold_criteria.items():
            if not isinstance(criterion, str) or not criterion.strip() or criterion == "overall":
                raise ValueError(
                    f"Task {self.name!r}: gold_criteria key {criterion!r} (expected a criterion name other than "
                    f"'overall', which is gold_judge)"
                )
            if not callable(judge):
                raise TypeError(
                    f"Task {self.name!r}: gold_criteria[{criterion!r}] is {type(judge).__name__} (expected a Judge "
                    "or a callable (prompts, responses) -> list[float])"
                )
        self.train_prompts = list(self.train_prompts)
        self.eval_prompts = list(self.eval_prompts)
        self.demonstrations = [dict(d) if isinstance(d, dict) else d for d in self.demonstrations]
        for attr in ("train_prompts", "eval_prompts"):
            for i, p in enumerate(getattr(self, attr)):
                if not isinstance(p, str) or not p.strip():
                    raise ValueError(f"Task {self.name!r}: {attr}[{i}] is {p!r} (expected a non-empty string)")
        for i, demo in enumerate(self.demonstrations):
            if not isinstance(demo, dict):
                raise ValueError(f"Task {self.name!r}: demonstrations[{i}] is {type(demo).__name__} (expected a dict)")
            for key in ("prompt", "completion"):
                value = demo.get(key)
                if not isinstance(value, str) or not value.strip():
                    raise ValueError(
                        f"Task {self.name!r}: demonstrations[{i}][{key!r}] is {value!r} (expected a non-empty string)"
                    )
        # An eval prompt seen in training makes eval scores look better than they are.
        overlap = [p for p in dict.fromkeys(self.eval_prompts) if p in set(self.train_prompts)]
        if overlap:
            raise ValueError(
                f"Task {self.name!r}: {len(overlap)} prompt(s) appear in both train_prompts "
                f"and eval_prompts, e.g. {overlap[0]!r} (expected disjoint prompt sets)"
            )
        eval_set = set(self.eval_prompts)
        leaked = sum(d["prompt"] in eval_set for d in self.demonstrations)
        if leaked:
            warnings.warn(
                f"Task {self.name!r}: {leaked} demonstration(s) use eval prompts; "
                "SFT on them leaks eval data into training",
                stacklevel=3,
            )

    def gold_for(self, criterion: str = "overall") -> Callable:
        """The gold judge of `criterion`: `gold_judge` for "overall", else `gold_criteria[criterion]`."""
        if criterion == "overall" and self.gold_judge is not None:
            return self.gold_judge
        if criterion in self.gold_criteria:
            return self.gold_criteria[criterion]
        known = (["overall"] if self.gold_judge is not None else []) + list(self.gold_criteria)
        raise KeyError(f"task {self.name!r} has no gold judge for criterion {criterion!r}; it has {known}")

    def sft_dataset(self, conversational: bool = True) -> "datasets.Dataset":
        """Demonstrations as TRL prompt-completion rows.

        Conversational: ``{"prompt": [{"role": "user", ...}], "completion":
        [{"role": "assistant", ...}]}``; otherwise plain strings.
        """
        import datasets

        if not self.demonstrations:
            raise ValueError(f"Task {self.name!r} has no demonstrations for SFT")
        prompts = [d["prompt"] for d in self.demonstrations]
        completions = [d["completion"] for d in self.demonstrations]
        if conversational:
            prompts = [[{"role": "user", "content": p}] for p in prompts]
            completions = [[{"role": "assistant", "content": c}] for c in completions]
        return datasets.Dataset.from_dict({"prompt": prompts, "completion": completions})

    def summary(self) -> str:
        """One line: prompt counts, demonstrations, whether a gold judge is attached."""
        judge = type(self.gold_judge).__name__ if self.gold_judge is not None else "none"
        return (
            f"Task {self.name!r}: {len(self.train_prompts)} train prompts, "
            f"{len(self.eval_prompts)} eval prompts, {len(self.demonstrations)} "
            f"demonstrations, gold judge: {judge}"
        )

    @classmethod
    def from_files(
        cls,
        name: str,
        prompts: Any,
        demonstrations: Any = None,
        *,
        eval_prompts: Any = None,
        eval_fraction: float = 0.1,
        seed: int = 0,
        prompt_column: str = "prompt",
        completion_column: str = "completion",
        gold_judge: Callable | None = None,
        description: str = "",
    ) -> "Task":
        """Build a task from local files (``.jsonl``/``.json``/``.csv``/``.parquet``).

        ``prompts`` (and ``eval_prompts``) need a ``prompt_column``; ``demonstrations``
        need ``prompt_column`` and ``completion_column``. Lists of strings or dicts are
        accepted in place of paths. Prompts are deduplicated in file order; without
        ``eval_prompts`` a ``seed``-determined ``eval_fraction`` of them is held out.
        Bad rows raise ``DataValidationError`` naming file, row and field.
        """
        train = _read_prompts(prompts, prompt_column)
        if eval_prompts is not None:
            held_out = _read_prompts(eval_prompts, prompt_column)
        else:
            train, held_out = _split_prompts(train, eval_fraction, seed)
        demos = (
            []
            if demonstrations is None
            else _read_demonstrations(_table_from(demonstrations), prompt_column, completion_column)
        )
        return cls(name, train, held_out, demos, gold_judge=gold_judge, description=description)

    @classmethod
    def from_hub(
        cls,
        name: str,
        dataset_id: str,
        *,
        prompt_column: str = "prompt",
        completion_column: str | None = None,
        split: str = "train",
        eval_split: str | None = None,
        eval_fraction: float = 0.1,
        seed: int = 0,
        gold_judge: Callable | None = None,
        description: str = "",
    ) -> "Task":
        """Build a task from a hub dataset id (``datasets.load_dataset``) or a local dataset
        folder (a folder of data files, or a ``save_to_disk`` folder).

        Prompts come from ``prompt_column`` of ``split``; eval prompts from ``eval_split``
        or a seeded ``eval_fraction`` hold-out. With ``completion_column`` the rows also
        become demonstrations (only those whose prompt is a train prompt, so SFT never
        sees eval prompts).
        """
        table = _finish_table(dataset_id, list(enumerate(_load_dataset(dataset_id, split).to_list(), 1)))
        train = _prompts_from_table(table, prompt_column)
        if eval_split is not None:
            eval_table = _finish_table(
                f"{dataset_id}[{eval_split}]",
                list(enumerate(_load_dataset(dataset_id, eval_split).to_list(), 1)),
            )
            held_out = _prompts_from_table(eval_table, prompt_column)
            held_set = set(held_out)
            train = [p for p in train if p not in held_set]  # hub splits may share prompts
        else:
            train, held_out = _split_prompts(train, eval_fraction, seed)
        demos = []
        if completion_column is not None:
            train_set = set(train)
            demos = [
                d for d in _read_demonstrations(table, prompt_column, completion_column) if d["prompt"] in train_set
            ]
        return cls(name, train, held_out, demos, gold_judge=gold_judge, description=description)


def _read_prompts(source: Any, column: str) -> list[str]:
    if isinstance(source, (list, tuple)) and all(isinstance(p, str) for p in source):
        source = [{column: p} for p in source]
    return _prompts_from_table(_table_from(source), column)


def _prompts_from_table(table: _Table, column: str) -> list[str]:
    """Validated, deduplicated prompts in file order."""
    if not table.items:
        raise DataValidationError(table.source, None, None, "no records", expected="at least one prompt")
    _require_columns(table, (column,), hint=" (set prompt_column=)")
    prompts = []
    for rowno, item in table.items:
        if isinstance(item, DataValidationError):
            raise item
        try:
            prompts.append(_check_text(item, column))
        except _RowProblem as problem:
            raise problem.at(table.source, rowno) from None
    return list(dict.fromkeys(prompts))


def _read_demonstrations(table: _Table, prompt_column: str, completion_column: str) -> list[dict]:
    _require_columns(table, (prompt_column, completion_column), hint=" (set prompt_column=/completion_column=)")
    demos = []
    for rowno, item in table.items:
        if isinstance(item, DataValidationError):
            raise item
        try:
            demos.append(
                {"prompt": _check_text(item, prompt_column), "completion": _check_text(item, completion_column)}
            )
        except _RowProblem as problem:
            raise problem.at(table.source, rowno) from None
    return demos


def _split_prompts(prompts: list[str], eval_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Deterministic hold-out: the same prompts, fraction and seed give the same split."""
    if not 0 <= eval_fraction < 1:
        raise ValueError(f"eval_fraction must be in [0, 1), not {eval_fraction!r}")
    n_eval = round(len(prompts) * eval_fraction)
    if eval_fraction > 0 and len(prompts) >= 2:
        n_eval = min(max(n_eval, 1), len(prompts) - 1)  # keep both sides non-empty
    order = list(range(len(prompts)))
    random.Random(seed).shuffle(order)
    held = set(order[:n_eval])
    train = [p for i, p in enumerate(prompts) if i not in held]
    held_out = [p for i, p in enumerate(prompts) if i in held]
    return train, held_out


def task_from_source(source: Task | str | os.PathLike, **kwargs: Any) -> Task:
    """A task from data: everything `rlhfkit.tasks.load_task` accepts except a registered task name.

    * a `Task` is returned unchanged (it takes no options);
    * a local folder (a ``save_to_disk`` folder or a folder of data files, as ``str`` or
      ``Path`` alike) goes to ``Task.from_hub(name=<folder name>, dataset_id=path, **kwargs)``;
    * an existing file (or a name ending in ``.jsonl``/``.json``/``.csv``/``.parquet``)
      goes to ``Task.from_files(name=<file stem>, prompts=path, **kwargs)``;
    * anything else to ``Task.from_hub(name=id, dataset_id=id, **kwargs)``.
    """
    if isinstance(source, Task):
        if kwargs:
            raise TypeError(
                f"load_task got a Task object ({source.name!r}), which takes no options (got {sorted(kwargs)})"
            )
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(
            f"cannot load a task from {type(source).__name__} (expected a Task, a task name, a file or folder path, "
            "or a hub dataset id)"
        )
    key = str(source)
    if Path(key).is_dir():
        return Task.from_hub(Path(key).name, key, **kwargs)
    if isinstance(source, os.PathLike) or _looks_like_file(key):
        return _task_from_file(key, **kwargs)
    return Task.from_hub(key, key, **kwargs)


def _task_from_file(path: str, **kwargs: Any) -> Task:
    """`Task.from_files` on one file; when the file also has a completion column (and no separate demonstrations
    are given), its rows whose prompt is a train prompt become the SFT demonstrations, so that one file with
    "prompt" and "completion" is a whole task and SFT never sees an eval prompt."""
    task = Task.from_files(Path(path).stem, path, **kwargs)
    completion = kwargs.get("completion_column", "completion")
    if kwargs.get("demonstrations") is not None or not Path(path).is_file():
        return task
    table = _table_from(path)
    if completion not in table.columns:
        return task
    train = set(task.train_prompts)
    rows = _read_demonstrations(table, kwargs.get("prompt_column", "prompt"), completion)
    return dataclasses.replace(task, demonstrations=[d for d in rows if d["prompt"] in train])
