"""Metrics for comparing policies: pure functions (`rlhfkit.metrics.core`) and, in the sub-folders, the same
computations as local `evaluate` modules, loadable offline:

    from rlhfkit.evaluation import load_metric
    win_rate = load_metric("win_rate")            # == evaluate.load(str(metric_path("win_rate")))
    win_rate.compute(policy_scores=[...], reference_scores=[...])

Each sub-folder holds `<name>/<name>.py` (the layout `evaluate.load(folder)` expects) and an `__init__.py` so
the script ships in the wheel as an ordinary module.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["METRIC_NAMES", "metric_path"]

METRIC_NAMES = ("win_rate", "distinct_n", "sequence_kl", "pairwise_accuracy")


def metric_path(name: str) -> Path:
    """The folder of one of rlhfkit's `evaluate` modules (pass it to `evaluate.load`)."""
    if name not in METRIC_NAMES:
        raise ValueError(f"unknown rlhfkit metric {name!r}; the metrics are {list(METRIC_NAMES)}")
    folder = Path(__file__).resolve().parent / name
    if not (folder / f"{name}.py").is_file():
        raise FileNotFoundError(f"the script of metric {name!r} is missing: expected {folder / (name + '.py')}")
    return folder
