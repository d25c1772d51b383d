"""Data for RLHF: tasks, prompt sets, demonstrations and preference pairs.

This package sits on the lowest floor of rlhfkit: it imports only the standard library (pandas, pyarrow and
``datasets`` load when first used), never other rlhfkit modules. One concept per module:

- `rlhfkit.data.errors`       ``DataValidationError`` (every problem names source, row and field), ``SkippedRow``,
                              and the value checks (text, messages, margin, missing values) the loaders share.
- `rlhfkit.data.tables`       ``read_records`` / ``write_jsonl``: local JSONL, JSON, CSV, Parquet, plus in-memory
                              lists, DataFrames, ``datasets.Dataset``, dataset folders and hub ids, read into rows.
- `rlhfkit.data.preferences`  ``load_preferences`` -> ``PreferenceData`` in TRL's preference format, with the
                              importers for HH-RLHF transcripts, message-list pairs and UltraFeedback's layout.
- `rlhfkit.data.rankings`     ``ranking_to_pairs`` / ``rankings_to_preferences`` (InstructGPT style).
- `rlhfkit.data.tasks`        ``Task`` (prompts, demonstrations, gold judge), built from files or a hub dataset.

Every public name is importable from here, e.g. ``from rlhfkit.data import load_preferences, Task``. ``load_task``
lives one floor up in `rlhfkit.tasks` (the task registry, which knows the task names, the embedded "reviews" task
among them); its old name here still works for one release, with a DeprecationWarning, and importing rlhfkit.data
never imports a higher floor.
"""

from rlhfkit.data.errors import DataValidationError, SkippedRow
from rlhfkit.data.preferences import PreferenceData, load_preferences
from rlhfkit.data.rankings import RankingPairs, ranking_to_pairs, rankings_to_preferences
from rlhfkit.data.tables import read_records, write_jsonl
from rlhfkit.data.tasks import Task

__all__ = [
    "DataValidationError",
    "SkippedRow",
    "PreferenceData",
    "load_preferences",
    "RankingPairs",
    "ranking_to_pairs",
    "rankings_to_preferences",
    "Task",
    "read_records",
    "write_jsonl",
]


def __getattr__(name: str):
    if name == "load_task":  # moved up to the task registry, above this floor; the old name for one release
        import warnings

        from rlhfkit.tasks import load_task

        warnings.warn(
            "rlhfkit.data.load_task moved to rlhfkit.tasks.load_task (the task registry); the old name will be "
            "removed in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        return load_task
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
