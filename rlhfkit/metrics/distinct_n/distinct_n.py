"""Distinct-n diversity of generated texts (an `evaluate` metric)."""

import datasets
import evaluate

from rlhfkit.metrics.core import distinct

_DESCRIPTION = """\
Distinct-n: the number of distinct n-grams divided by the total number of n-grams, pooled over all predictions
(words split on whitespace; n-grams never span two predictions). 1.0 means no n-gram repeats; a policy that
collapses onto one answer drives it towards 0. 0.0 when the predictions hold no n-gram at all.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of str): generated texts.
    orders (int or list of int, default [1, 2]): the n of each distinct-n to compute.
Returns:
    distinct_1, distinct_2, ... (float), one per order.
Examples:
    >>> metric = rlhfkit.evaluation.load_metric("distinct_n")
    >>> metric.compute(predictions=["a b a b"])
    {'distinct_1': 0.5, 'distinct_2': 0.6666666666666666}
"""

_CITATION = """\
@inproceedings{li-etal-2016-diversity,
  title     = {A Diversity-Promoting Objective Function for Neural Conversation Models},
  author    = {Li, Jiwei and Galley, Michel and Brockett, Chris and Gao, Jianfeng and Dolan, Bill},
  booktitle = {Proceedings of the 2016 Conference of the North American Chapter of the Association for
               Computational Linguistics: Human Language Technologies},
  year      = {2016}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class DistinctN(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("string")}),
        )

    # **_ swallows the inputs of other modules when this one runs inside evaluate.combine([...]).
    def _compute(self, predictions, orders=(1, 2), **_):
        return distinct(predictions, orders)
