"""The metric computations themselves, as pure numpy functions.

`rlhfkit.evaluation.evaluate_policies` and the `evaluate` modules in the sibling folders (win_rate, distinct_n,
sequence_kl, pairwise_accuracy) both call these, so a number can never differ between the two routes.

`pairwise_accuracy_stats` (scores in, ties count 0.5, a bootstrap interval out) is not
`rlhfkit.train.reward.pairwise_accuracy` (a judge and preference rows in, ties count as wrong, one float out).
Nothing here imports torch or the rest of rlhfkit (only its helper for renamed names, `rlhfkit._renamed`).
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np

from rlhfkit._renamed import renamed

__all__ = [
    "K1_ESTIMATOR",
    "K3_ESTIMATOR",
    "bootstrap_ci",
    "pairwise_outcomes",
    "win_rate",
    "pairwise_accuracy_stats",
    "distinct_n",
    "distinct",
    "per_sample_kl",
    "sequence_kl",
]

K1_ESTIMATOR = "k1 (sum of per-token log-ratios on policy samples)"
K3_ESTIMATOR = "k3 (sum of per-token (r - 1) - log r, r = pi_ref / pi, on policy samples)"

# Resampling is vectorised in chunks of at most this many drawn values, so a large sample stays within memory.
_CHUNK_VALUES = 4_000_000


def _finite_array(values: Iterable[float], name: str) -> np.ndarray:
    array = np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float).ravel()
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(f"{name}[{bad[0]}] is {array[bad[0]]} (expected finite numbers)")
    return array


def _apply(statistic: Callable, samples: np.ndarray) -> np.ndarray:
    """`statistic` of each row; vectorised when the statistic takes `axis` (np.mean, np.median, ...)."""
    try:
        result = np.asarray(statistic(samples, axis=1), dtype=float)
        if result.shape == (samples.shape[0],):
            return result
    except TypeError:
        pass
    return np.array([float(statistic(row)) for row in samples])


def bootstrap_ci(
    values: Sequence[float],
    statistic: Callable = np.mean,
    n: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    groups: Sequence[Any] | None = None,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval `(lo, hi)` of `statistic(values)`.

    Draws `n` resamples of the values with replacement (seeded: the same inputs give the same interval) and
    returns the (1 - confidence) / 2 and (1 + confidence) / 2 quantiles of the statistic over them. With
    `groups` (one label per value, e.g. the prompt each sample answers), whole groups are resampled instead of
    single values: a cluster bootstrap, the honest choice when several values share a prompt and so are not
    independent.
    """
    x = _finite_array(values, "values")
    if x.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n < 1:
        raise ValueError(f"n (the number of bootstrap resamples) must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    stats = np.empty(n)
    clusters = _clusters(x, groups)
    if clusters is None:
        chunk = max(1, _CHUNK_VALUES // x.size)
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            stats[start : start + m] = _apply(statistic, x[rng.integers(0, x.size, size=(m, x.size))])
    elif len({len(c) for c in clusters}) == 1:
        matrix = np.stack(clusters)  # equal group sizes: resample rows of a (groups, size) matrix
        chunk = max(1, _CHUNK_VALUES // x.size)
        for start in range(0, n, chunk):
            m = min(chunk, n - start)
            picked = matrix[rng.integers(0, len(clusters), size=(m, len(clusters)))]
            stats[start : start + m] = _apply(statistic, picked.reshape(m, -1))
    else:
        for i in range(n):
            picked = rng.integers(0, len(clusters), size=len(clusters))
            stats[i] = float(statistic(np.concatenate([clusters[j] for j in picked])))
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(stats, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _clusters(x: np.ndarray, groups: Sequence[Any] | None) -> list[np.ndarray] | None:
    """Values split by group label, in order of first appearance; None when every value is its own group."""
    if groups is None:
        return None
    labels = list(groups)
    if len(labels) != x.size:
        raise ValueError(f"groups has {len(labels)} labels for {x.size} values (expected one label per value)")
    index: dict[Any, list[int]] = {}
    for i, label in enumerate(labels):
        index.setdefault(label, []).append(i)
    if len(index) == x.size:
        return None
    return [x[ids] for ids in index.values()]


def pairwise_outcomes(
    scores_a: Sequence[float], scores_b: Sequence[float], names: tuple[str, str] = ("scores_a", "scores_b")
) -> np.ndarray:
    """Per pair: 1.0 when a scores higher than b, 0.5 on a tie, 0.0 when lower."""
    a, b = _finite_array(scores_a, names[0]), _finite_array(scores_b, names[1])
    if a.size != b.size:
        raise ValueError(f"{names[0]} has {a.size} scores but {names[1]} has {b.size} (expected one pair each)")
    if a.size == 0:
        raise ValueError(f"{names[0]} and {names[1]} are empty (expected at least one pair)")
    return np.where(a > b, 1.0, np.where(a == b, 0.5, 0.0))


def win_rate(
    policy_scores: Sequence[float],
    reference_scores: Sequence[float],
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    groups: Sequence[Any] | None = None,
) -> dict:
    """Share of pairs in which the policy's response scores higher than the reference's (ties count 0.5),
    with a percentile bootstrap CI over pairs (or over `groups` of pairs, e.g. prompts)."""
    outcomes = pairwise_outcomes(policy_scores, reference_scores, ("policy_scores", "reference_scores"))
    lo, hi = bootstrap_ci(outcomes, np.mean, n_bootstrap, confidence, seed, groups)
    return {
        "win_rate": float(outcomes.mean()),
        "win_rate_ci": [lo, hi],
        "wins": int((outcomes == 1.0).sum()),
        "ties": int((outcomes == 0.5).sum()),
        "losses": int((outcomes == 0.0).sum()),
        "n": int(outcomes.size),
    }


def pairwise_accuracy_stats(
    chosen_scores: Sequence[float],
    rejected_scores: Sequence[float],
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """How often a scorer (a reward model) ranks the chosen response above the rejected one (ties count 0.5,
    so a constant scorer gets 0.5, not 1.0), with a bootstrap CI, and the mean margin chosen - rejected."""
    outcomes = pairwise_outcomes(chosen_scores, rejected_scores, ("chosen_scores", "rejected_scores"))
    margins = _finite_array(chosen_scores, "chosen_scores") - _finite_array(rejected_scores, "rejected_scores")
    lo, hi = bootstrap_ci(outcomes, np.mean, n_bootstrap, confidence, seed)
    return {
        "accuracy": float(outcomes.mean()),
        "accuracy_ci": [lo, hi],
        "mean_margin": float(margins.mean()),
        "ties": int((outcomes == 0.5).sum()),
        "n": int(outcomes.size),
    }


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct-n (Li et al., 2016): distinct n-grams / all n-grams, pooled over the texts. Words are split on
    whitespace; n-grams never span two texts. 0.0 when the texts hold no n-gram at all."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    seen: set[tuple[str, ...]] = set()
    total = 0
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__} (expected a string)")
        words = text.split()
        grams = [tuple(words[j : j + n]) for j in range(len(words) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else 0.0


def distinct(texts: Sequence[str], orders: int | Sequence[int] = (1, 2)) -> dict:
    """`{"distinct_1": ..., "distinct_2": ...}` for each n in `orders`."""
    orders = [orders] if isinstance(orders, int) else list(orders)
    return {f"distinct_{n}": distinct_n(texts, n) for n in orders}


def per_sample_kl(policy_logprobs: Sequence[Any], ref_logprobs: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Sequence-level KL estimates for each sample drawn from the policy: `(k1, k3)` arrays.

    Each item is either one number (the response's summed log-probability) or a sequence of per-token
    log-probabilities, under the policy and under the reference. With d = log pi - log pi_ref:
    k1 = sum of d (unbiased for KL(pi || pi_ref) on the policy's own samples, can be negative per sample);
    k3 = sum of (r - 1) - log r with r = exp(-d) per token (also unbiased, never negative). Given only sums, k3
    is taken on the whole sequence's ratio instead, which is unbiased too but noisier.
    """
    if len(policy_logprobs) != len(ref_logprobs):
        raise ValueError(
            f"{len(policy_logprobs)} policy log-prob entries but {len(ref_logprobs)} reference "
            f"entries (expected one per sample)"
        )
    k1, k3 = np.empty(len(policy_logprobs)), np.empty(len(policy_logprobs))
    for i, (p, r) in enumerate(zip(policy_logprobs, ref_logprobs)):
        p = np.asarray(p, dtype=float)
        r = np.asarray(r, dtype=float)
        if p.shape != r.shape:
            raise ValueError(
                f"sample {i}: {p.size} policy log-probs but {r.size} reference log-probs (expected "
                f"the same tokens scored by both models)"
            )
        if not (np.isfinite(p).all() and np.isfinite(r).all()):
            raise ValueError(f"sample {i}: non-finite log-probability (expected finite numbers)")
        d = p - r
        k1[i] = d.sum()
        # expm1(-d) + d is (r - 1) - log r; clip the rounding error of tiny values so it is never below 0.
        k3[i] = np.maximum(np.expm1(-d) + d, 0.0).sum()
    return k1, k3


def sequence_kl(policy_logprobs: Sequence[Any], ref_logprobs: Sequence[Any]) -> dict:
    """Mean sequence-level KL(pi || pi_ref) over samples from the policy, by the k1 and k3 estimators."""
    k1, k3 = per_sample_kl(policy_logprobs, ref_logprobs)
    if k1.size == 0:
        raise ValueError("sequence_kl needs at least one sample")
    return {"kl_k1": float(k1.mean()), "kl_k3": float(k3.mean()), "kl_estimator": K1_ESTIMATOR, "n": int(k1.size)}


__getattr__ = renamed(__name__, {"pairwise_accuracy": "pairwise_accuracy_stats"})  # the old name, for one release
