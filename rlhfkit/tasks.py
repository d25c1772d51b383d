"""The task registry: task names, and `load_task`, the one way to get a `Task` from a name, a path or a hub id.

    from rlhfkit.tasks import load_task, register_task, builtin_tasks

    task = load_task("reviews")                              # a registered name: its factory, called with the options
    task = load_task("prompts.jsonl", gold_judge=my_judge)   # a prompts file, a dataset folder or a hub dataset id
    register_task("my_task", make_my_task)                   # then load_task("my_task", **options) anywhere

Where it sits: above `rlhfkit.data` (``Task`` and the readers) and `rlhfkit.tiny` (the embedded reviews task), so
the data modules need not know which tasks exist and nothing is imported by a string. ``rlhfkit.data.load_task``
is this same function, re-exported for compatibility.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

from rlhfkit.data.errors import DataValidationError
from rlhfkit.data.tasks import Task, task_from_source
from rlhfkit.judges import FunctionJudge, Judge, as_judge

__all__ = ["TaskFactory", "builtin_tasks", "load_task", "register_task"]

TaskFactory = Callable[..., Task]
"""Builds a task: called with `load_task`'s options (e.g. ``n_train_prompts=64``), returns a `Task`."""


def _reviews(**options: Any) -> Task:
    """The embedded reviews task (`rlhfkit.tiny.task.reviews_task`)."""
    # rlhfkit.tiny's package also holds the model builder, which imports torch: import it when the name is used,
    # not whenever a task file is loaded.
    from rlhfkit.tiny.task import reviews_task

    return reviews_task(**options)


_REGISTRY: dict[str, TaskFactory | Task] = {"reviews": _reviews}


def register_task(name: str, factory: TaskFactory | Task, *, replace: bool = False) -> TaskFactory | Task:
    """Make ``load_task(name, **options)`` call ``factory(**options)`` (or return ``factory`` itself when it is a
    fixed `Task`, which takes no options). A registered name wins over a file or hub dataset of the same name.
    Registering a name twice raises ``ValueError`` unless ``replace=True``. Returns ``factory``."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a task name must be a non-empty string, not {name!r}")
    if not isinstance(factory, Task) and not callable(factory):
        raise TypeError(
            f"task {name!r}: the factory is {type(factory).__name__} (expected a Task or a callable returning one)"
        )
    if name in _REGISTRY and not replace:
        raise ValueError(f"task {name!r} is already registered (pass replace=True to replace it)")
    _REGISTRY[name] = factory
    return factory


def builtin_tasks() -> list[str]:
    """The names `load_task` knows, sorted: rlhfkit's own ("reviews") and those added with `register_task`."""
    return sorted(_REGISTRY)


def load_task(
    source: str | os.PathLike | Task, *, gold_judge: Judge | Callable | str | None = None, **options: Any
) -> Task:
    """A task from a registered name, a `Task`, a local file or folder, or a hub dataset id.

    * a registered name (see `builtin_tasks`) calls its factory with ``options``;
    * a `Task` is returned unchanged (it takes no options);
    * a local folder goes to ``Task.from_hub``, a prompts file (``.jsonl``/``.json``/``.csv``/``.parquet``) to
      ``Task.from_files``, anything else is a hub dataset id for ``Task.from_hub``, each with ``options``
      (see `rlhfkit.data.tasks.task_from_source`).

    ``gold_judge`` sets the task's gold judge whatever the source: a `Judge`, a callable
    ``(prompts, responses) -> list[float]`` or a builtin judge name ("vader", "length"). For a `Task` or a
    registered task it gives a copy with that judge; the original is left as it was.
    """
    judge = as_judge(gold_judge) if isinstance(gold_judge, str) else gold_judge
    if callable(judge) and not isinstance(judge, Judge):
        # A plain function is batched, as documented (and as TRL's reward functions are): wrapped once here so
        # that nothing downstream can take it for a per-item judge.
        judge = FunctionJudge(judge, name=getattr(judge, "__name__", None), batched=True)
    if judge is not None and not callable(judge):
        raise TypeError(
            f"gold_judge is {type(judge).__name__} (expected a Judge, a callable (prompts, responses) -> list[float] "
            "or a judge name)"
        )
    if isinstance(source, str) and source in _REGISTRY:
        task = _from_registry(source, options)
    elif isinstance(source, Task):
        task = task_from_source(source, **options)
    else:
        if judge is not None:
            options["gold_judge"] = judge
        return _from_data(source, options)
    return task if judge is None else dataclasses.replace(task, gold_judge=judge)


def _from_registry(name: str, options: dict) -> Task:
    factory = _REGISTRY[name]
    if isinstance(factory, Task):
        if options:
            raise TypeError(f"task {name!r} is a fixed Task and takes no options (got {sorted(options)})")
        return factory
    task = factory(**options)
    if not isinstance(task, Task):
        raise TypeError(f"task {name!r}: its factory returned {type(task).__name__}, not a Task")
    return task


def _from_data(source: str | os.PathLike, options: dict) -> Task:
    try:
        return task_from_source(source, **options)
    except DataValidationError as err:
        if err.reason != "could not load dataset id":
            raise
        known = ", ".join(builtin_tasks()) or "none"
        raise DataValidationError(
            str(source),
            None,
            None,
            "unknown task",
            detail=f"not a builtin task (known: {known}), not a local file, and the hub "
            f"dataset could not be loaded ({err.detail})",
            expected=err.expected,
        ) from err
