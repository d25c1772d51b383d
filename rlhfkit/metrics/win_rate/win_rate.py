"""Win rate of a policy against a reference, with a bootstrap confidence interval (an `evaluate` metric)."""

import datasets
import evaluate

from rlhfkit.metrics.core import win_rate

_DESCRIPTION = """\
Win rate: the share of paired comparisons in which the policy's response scores higher than the reference's
response to the same prompt (ties count 0.5), by any judge's scores. The confidence interval is a percentile
bootstrap over pairs. A policy compared with itself has a win rate of 0.5.
"""

_KWARGS_DESCRIPTION = """\
Args:
    policy_scores (list of float): the judge's score of the policy's response, one per pair.
    reference_scores (list of float): the judge's score of the reference's response to the same prompt.
    n_bootstrap (int, default 1000): bootstrap resamples for the interval.
    confidence (float, default 0.95): confidence level of the interval.
    seed (int, default 0): seed of the resampling.
Returns:
    win_rate (float), win_rate_ci ([lo, hi]), wins, ties, losses, n (int).
Examples:
    >>> metric = rlhfkit.evaluation.load_metric("win_rate")
    >>> metric.compute(policy_scores=[3, 1, 2, 2], reference_scores=[1, 2, 2, 0])["win_rate"]
    0.625
"""

_CITATION = """\
@article{efron1979bootstrap,
  author  = {Efron, Bradley},
  title   = {Bootstrap Methods: Another Look at the Jackknife},
  journal = {The Annals of Statistics},
  volume  = {7},
  number  = {1},
  pages   = {1--26},
  year    = {1979}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class WinRate(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "policy_scores": datasets.Value("float64"),
                    "reference_scores": datasets.Value("float64"),
                }
            ),
        )

    # **_ swallows the inputs of other modules when this one runs inside evaluate.combine([...]).
    def _compute(self, policy_scores, reference_scores, n_bootstrap=1000, confidence=0.95, seed=0, **_):
        return win_rate(policy_scores, reference_scores, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
