"""Pairwise accuracy of a reward model on preference pairs (an `evaluate` metric)."""

import datasets
import evaluate

from rlhfkit.metrics.core import pairwise_accuracy_stats

_DESCRIPTION = """\
Pairwise accuracy: how often a scorer (typically a reward model) gives the chosen response of a preference pair
a higher score than the rejected one. Ties count 0.5, so a constant scorer gets 0.5. Also returns the mean
margin (chosen - rejected) and a percentile bootstrap interval of the accuracy.
"""

_KWARGS_DESCRIPTION = """\
Args:
    chosen_scores (list of float): the score of each pair's chosen response.
    rejected_scores (list of float): the score of each pair's rejected response.
    n_bootstrap (int, default 1000): bootstrap resamples for the interval.
    confidence (float, default 0.95): confidence level of the interval.
    seed (int, default 0): seed of the resampling.
Returns:
    accuracy (float), accuracy_ci ([lo, hi]), mean_margin (float), ties (int), n (int).
Examples:
    >>> metric = rlhfkit.evaluation.load_metric("pairwise_accuracy")
    >>> metric.compute(chosen_scores=[1.0, 0.2, 0.5], rejected_scores=[0.0, 0.4, 0.5])["accuracy"]
    0.5
"""

_CITATION = """\
@inproceedings{ouyang2022training,
  title     = {Training language models to follow instructions with human feedback},
  author    = {Ouyang, Long and Wu, Jeff and Jiang, Xu and Almeida, Diogo and Wainwright, Carroll L. and
               Mishkin, Pamela and Zhang, Chong and Agarwal, Sandhini and Slama, Katarina and Ray, Alex and
               others},
  booktitle = {Advances in Neural Information Processing Systems},
  year      = {2022}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class PairwiseAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "chosen_scores": datasets.Value("float64"),
                    "rejected_scores": datasets.Value("float64"),
                }
            ),
        )

    # **_ swallows the inputs of other modules when this one runs inside evaluate.combine([...]).
    def _compute(self, chosen_scores, rejected_scores, n_bootstrap=1000, confidence=0.95, seed=0, **_):
        return pairwise_accuracy_stats(
            chosen_scores, rejected_scores, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed
        )
