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

from rlhfkit._renamed import renamed

__all__ = ["METRIC_MODULES", "metric_path"]

METRIC_MODULES = ("win_rate", "distinct_n", "sequence_kl", "pairwise_accuracy")
"""The names of rlhfkit's `evaluate` modules (not the metric names a training run logs, such as
`rlhfkit.train.ppo.METRIC_NAMES`)."""


def metric_path(name: str) -> Path:
    """The folder of one of rlhfkit's `evaluate` modules (pass it to `evaluate.load`)."""
    if name not in METRIC_MODULES:
        raise ValueError(f"unknown rlhfkit metric {name!r}; the metrics are {list(METRIC_MODULES)}")
    folder = Path(__file__).resolve().parent / name
    if not (folder / f"{name}.py").is_file():
        raise FileNotFoundError(f"the script of metric {name!r} is missing: expected {folder / (name + '.py')}")
    return folder


__getattr__ = renamed(__name__, {"METRIC_NAMES": "METRIC_MODULES"})  # the old name, for one release
