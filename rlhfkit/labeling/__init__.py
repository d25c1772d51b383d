"""Preference labeling: the label store, agreement statistics, AI annotators, an LLM judge (and the notebook
widgets).

These modules import only the standard library at import time (pandas and datasets load on first use), so a
labeling process that only needs the store starts fast.
"""

from rlhfkit.labeling.store import CHOICES, KINDS, OVERALL, LabelStore, LabelStoreError, SchemaVersionError
from rlhfkit.labeling.agreement import (
    agreement,
    agreement_by_criterion,
    agreement_with_judge,
    annotator_table,
    cohen_kappa,
    krippendorff_alpha,
    position_bias,
    wilson_interval,
)
from rlhfkit.labeling.ai import annotate_with_judge
from rlhfkit.labeling.llm_judge import LLMJudge, judge_position_bias, stored_judge_rows

__all__ = [
    "CHOICES",
    "KINDS",
    "OVERALL",
    "LabelStore",
    "LabelStoreError",
    "SchemaVersionError",
    "agreement",
    "agreement_by_criterion",
    "agreement_with_judge",
    "annotator_table",
    "cohen_kappa",
    "krippendorff_alpha",
    "position_bias",
    "wilson_interval",
    "annotate_with_judge",
    "LLMJudge",
    "judge_position_bias",
    "stored_judge_rows",
]

# The widgets (helper B): imported on first use, because `import anywidget` costs ~0.7 s and processes that only
# write to the store (AI annotators, the crash test's writers) should not pay it.
_WIDGETS = ("PairwiseLabeler", "RankingLabeler", "DemonstrationWriter")
__all__ += list(_WIDGETS)


def __getattr__(name):
    if name in _WIDGETS:
        from rlhfkit.labeling import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
