"""What rlhfkit measured about a policy, named once: evaluation, the pipeline's summary.json, the comparison views,
reports and notebooks all read and write these names.

A policy's row (`EvaluationResult.to_dict()[name]`, `summary.json["policies"][name]`) holds the fields of
`POLICY_FIELDS`; an interval `x_ci` is `[lo, hi]` (the bootstrap interval of the field it follows), and a number
rlhfkit could not measure (no gold judge, no reward model) is None. Every number is "versus the reference policy",
which summary.json names in `"reference"` (the SFT model in the pipeline).

summary.json carries `"schema_version"`. `read_summary` reads any version and returns the current one, so a summary
written by an older rlhfkit still opens in the comparison views.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

__all__ = [
    "SCHEMA_VERSION",
    "POLICY_FIELDS",
    "SUMMARY_KEYS",
    "GOLD_FIELDS",
    "policy_rows",
    "read_summary",
    "upgrade_summary",
]

SCHEMA_VERSION = 2
"""2: one policy row for evaluation and the pipeline (`win_rate_vs_ref`, `win_rate_ci`), `schema_version` and
`reference` in summary.json. 1 (no `schema_version`): the pipeline renamed the win rate `win_rate_vs_sft`."""

POLICY_FIELDS: dict[str, str] = {
    "gold_reward_mean": "mean gold reward (the task's gold judge) of the policy's samples on held-out prompts",
    "gold_reward_ci": "bootstrap interval of gold_reward_mean, resampling prompts",
    "proxy_reward_mean": "mean reward-model score of the same samples (the proxy the policy was trained against)",
    "proxy_reward_ci": "bootstrap interval of proxy_reward_mean",
    "kl_to_ref": "sequence KL to the reference, nats: the k1 estimator on the policy's own samples",
    "kl_to_ref_ci": "bootstrap interval of kl_to_ref",
    "kl_k3": "the k3 estimator of the same KL (never negative per token), for comparison",
    "kl_estimator": "how kl_to_ref was estimated, in words",
    "win_rate_vs_ref": "gold-judged win rate against the reference's sample for the same prompt (ties 0.5)",
    "win_rate_ci": "bootstrap interval of win_rate_vs_ref",
    "distinct_1": "distinct unigrams / all unigrams of the responses",
    "distinct_2": "distinct bigrams / all bigrams of the responses",
    "mean_length": "mean response length in tokens",
    "mean_length_words": "mean response length in words",
    "eos_rate": "fraction of responses that ended by themselves (not cut at max_new_tokens)",
    "n_samples": "responses evaluated",
    "n_prompts": "held-out prompts they answer",
}

SUMMARY_KEYS = tuple(POLICY_FIELDS)
"""The keys of a policy row, in order."""

GOLD_FIELDS = ("gold_reward_mean", "gold_reward_ci", "win_rate_vs_ref", "win_rate_ci")
"""The fields that need a gold judge: None for a task without one."""

_RENAMED_IN_2 = {"win_rate_vs_sft": "win_rate_vs_ref", "win_rate_vs_sft_ci": "win_rate_ci"}


def upgrade_summary(summary: Mapping[str, Any]) -> dict:
    """`summary` (a summary.json's content, any schema version) in the current schema. Version 1's policy rows
    named the win rate `win_rate_vs_sft` / `win_rate_vs_sft_ci` and had no `reference` (it was the SFT model)."""
    out = dict(summary)
    version = out.get("schema_version", 1)
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"summary schema version {version} is newer than this rlhfkit reads ({SCHEMA_VERSION}): upgrade rlhfkit"
        )
    if version == 1:
        out["policies"] = {
            name: {_RENAMED_IN_2.get(key, key): value for key, value in row.items()}
            for name, row in out.get("policies", {}).items()
        }
        out.setdefault("reference", "sft")
    out["schema_version"] = SCHEMA_VERSION
    return out


def read_summary(path: str | Path) -> dict:
    """A summary.json (the file, or the folder holding it) in the current schema."""
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    return upgrade_summary(json.loads(path.read_text()))


def policy_rows(source: Any) -> dict[str, dict]:
    """`{policy: row}` from an `EvaluationResult`, a whole summary (its "policies", upgraded) or such rows
    themselves."""
    if hasattr(source, "to_dict") and not isinstance(source, Mapping):
        return dict(source.to_dict())
    if not isinstance(source, Mapping):
        raise TypeError(f"expected an EvaluationResult or a dict {{policy: row}}, got {type(source).__name__}")
    if "policies" in source and isinstance(source["policies"], Mapping):
        return dict(upgrade_summary(source)["policies"])
    return {name: {_RENAMED_IN_2.get(k, k): v for k, v in row.items()} for name, row in source.items()}
