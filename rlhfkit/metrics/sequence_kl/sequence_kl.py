"""Sequence-level KL divergence of a policy from a reference, estimated on the policy's samples (an `evaluate`
metric)."""

import datasets
import evaluate

from rlhfkit.metrics.core import sequence_kl

_DESCRIPTION = """\
Sequence-level KL(pi || pi_ref), estimated on responses sampled from the policy pi. Inputs are, per sample, the
response's log-probability under the policy and under the reference: either one number (the sum over response
tokens, EOS included when generated) or the list of per-token log-probabilities. With d = log pi - log pi_ref:
kl_k1 is the mean over samples of the sum of d (the k1 estimator: unbiased, single samples can be negative);
kl_k3 is the mean of the sum over tokens of (r - 1) - log r with r = exp(-d) (the k3 estimator: unbiased and
never negative; from summed inputs it is taken on the whole sequence's ratio).
"""

_KWARGS_DESCRIPTION = """\
Args:
    policy_logprobs (list of float, or list of lists of float): each sample's log-probability under the policy.
    ref_logprobs (same shape): the same tokens' log-probabilities under the reference.
Returns:
    kl_k1 (float), kl_k3 (float), kl_estimator (str, names the estimator of kl_k1), n (int).
Examples:
    >>> metric = rlhfkit.evaluation.load_metric("sequence_kl")
    >>> metric.compute(policy_logprobs=[[-1.0, -2.0]], ref_logprobs=[[-1.5, -2.0]])["kl_k1"]
    0.5
"""

_CITATION = """\
@misc{schulman2020klapprox,
  author       = {Schulman, John},
  title        = {Approximating KL Divergence},
  year         = {2020},
  howpublished = {\\url{http://joschu.net/blog/kl-approx.html}}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class SequenceKL(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            # Either one summed log-prob per sample or the per-token lists; evaluate picks the matching format.
            features=[
                datasets.Features(
                    {
                        "policy_logprobs": datasets.Value("float64"),
                        "ref_logprobs": datasets.Value("float64"),
                    }
                ),
                datasets.Features(
                    {
                        "policy_logprobs": datasets.Sequence(datasets.Value("float64")),
                        "ref_logprobs": datasets.Sequence(datasets.Value("float64")),
                    }
                ),
            ],
        )

    # **_ swallows the inputs of other modules when this one runs inside evaluate.combine([...]).
    def _compute(self, policy_logprobs, ref_logprobs, **_):
        return sequence_kl(policy_logprobs, ref_logprobs)
