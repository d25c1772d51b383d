"""Honest evaluation of any set of policies against the SFT reference on a task's eval prompts.

For every policy (and for the reference itself) `evaluate_policies` samples responses on the same eval prompts,
at temperature 1 by default, so that rewards and KL are measured on the policy's own samples (drawn through
`sample_candidates` under a generation config built from EvalSettings alone, never the checkpoint's own
`generation_config`), then reports:

- gold reward (the task's gold judge) with a bootstrap confidence interval, and proxy reward (the reward model
  the policy was trained against) when one is given: the gap between the two is over-optimisation;
- sequence-level KL to the reference: per sample, the sum over response tokens (EOS included when generated)
  of log pi(y_t) - log pi_ref(y_t), i.e. the k1 estimator, averaged over samples; the k3 estimator beside it;
- win rate against the reference by the gold judge: the policy's sample for a prompt against the reference's
  sample for the same prompt, ties 0.5, with a bootstrap interval;
- distinct-1/2 of the responses, mean length in tokens and words, and the EOS rate (responses that ended by
  themselves rather than being cut at max_new_tokens).

The computations live in `rlhfkit.metrics.core`, shared with the `evaluate` modules that `load_metric` loads, so
the two routes cannot disagree.
"""

from __future__ import annotations

import gc
import math
import os
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from rlhfkit.judges import FunctionJudge, Judge
from rlhfkit._renamed import renamed
from rlhfkit.metrics import METRIC_MODULES, metric_path
from rlhfkit.metrics.core import (
    K1_ESTIMATOR,
    K3_ESTIMATOR,
    bootstrap_ci,
    distinct,
    pairwise_accuracy_stats,
    pairwise_outcomes,
    per_sample_kl,
    sequence_kl,
    win_rate,
)
from rlhfkit.models import load_reference, load_tokenizer
from rlhfkit.results import SUMMARY_KEYS
from rlhfkit.sampling import SamplingSettings, render_prompts, sample_candidates
from rlhfkit.threads import cpu_threads

__all__ = [
    "EvalSettings",
    "EvaluationResult",
    "evaluate_policies",
    "response_logprobs",
    "load_metric",
    "bootstrap_ci",
    "win_rate",
    "pairwise_accuracy_stats",
    "distinct",
    "sequence_kl",
    "per_sample_kl",
    "K1_ESTIMATOR",
    "K3_ESTIMATOR",
    "SUMMARY_KEYS",
    "METRIC_MODULES",
]


@dataclass
class EvalSettings:
    """How policies are evaluated. The defaults take seconds per policy for the embedded default on a CPU."""

    n_prompts: int | None = 128
    """Eval prompts used: the first n_prompts of task.eval_prompts, the same for every policy (None = all)."""
    samples_per_prompt: int = 1
    """Responses sampled per prompt and policy. Intervals resample whole prompts, so extra samples per prompt
    tighten them only as much as they really add information."""
    temperature: float = 1.0
    """Sampling temperature. Keep 1.0: KL and rewards are then measured on the policy's own distribution; at
    any other temperature the k1/k3 estimates are no longer unbiased estimates of KL(pi || pi_ref)."""
    max_new_tokens: int = 64
    """Longest response in tokens; responses cut here count against the EOS rate."""
    seed: int = 0
    """Base seed. Each policy samples with a seed derived from this and its name (stored in the samples'
    `seed` column), so policies get independent draws and reruns reproduce; bootstraps use this seed."""
    n_bootstrap: int = 1000
    """Bootstrap resamples behind every confidence interval."""
    confidence: float = 0.95
    """Confidence level of the intervals."""
    batch_size: int = 16
    """Prompts per generate call, and sequences per forward pass when scoring log-probabilities."""
    device: str | None = None
    """Device for policies given by name or path (None = CUDA when available, else CPU); model objects stay
    where they are."""
    dtype: str | None = None
    """Dtype for policies given by name or path (None = the loader's default: bf16 on a GPU, else fp32).
    Log-probabilities are always taken in fp32 from the logits."""

    def __post_init__(self) -> None:
        if self.n_prompts is not None and self.n_prompts < 1:
            raise ValueError(f"n_prompts must be at least 1 (or None for all eval prompts), got {self.n_prompts}")
        if self.samples_per_prompt < 1 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("samples_per_prompt, max_new_tokens and batch_size must be at least 1")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if self.n_bootstrap < 1:
            raise ValueError(f"n_bootstrap must be at least 1, got {self.n_bootstrap}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")


@dataclass
class EvaluationResult:
    """What `evaluate_policies` measured.

    `summary`: one row per policy, the reference first (its KL is 0 and its win rate 0.5 by construction);
    intervals are split into `*_ci_lo` / `*_ci_hi` columns. `samples`: one row per sampled response (policy,
    prompt_index, prompt, candidate, response, gold, proxy, kl_k1, kl_k3, n_tokens, n_words, finish_reason,
    sum_logprob, ref_sum_logprob, ref_gold, win, seed), where `win` is 1 / 0.5 / 0 against the reference's
    sample for the same prompt and candidate by the gold judge. Responses are untrusted model output: escape
    them before putting them into HTML.
    """

    summary: pd.DataFrame
    samples: pd.DataFrame
    settings: EvalSettings
    reference_name: str = "reference"

    def to_dict(self) -> dict[str, dict[str, Any]]:
        """`{policy: {key: value}}` with the keys in `SUMMARY_KEYS` (`rlhfkit.results`, the one policy-row schema);
        intervals as `[lo, hi]`, missing values
        (no proxy reward model, no gold judge) as None. JSON-serialisable."""
        out = {}
        for row in self.summary.to_dict("records"):
            entry = {}
            for key in SUMMARY_KEYS:
                if key.endswith("_ci"):
                    lo, hi = _none_if_nan(row[f"{key}_lo"]), _none_if_nan(row[f"{key}_hi"])
                    entry[key] = None if lo is None else [lo, hi]
                else:
                    entry[key] = _none_if_nan(row[key])
            out[row["policy"]] = entry
        return out

    def _repr_html_(self) -> str:  # notebooks show the summary table (pandas escapes the cells)
        return self.summary._repr_html_()


def _none_if_nan(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def load_metric(name: str, **kwargs: Any):
    """One of rlhfkit's `evaluate` modules ("win_rate", "distinct_n", "sequence_kl", "pairwise_accuracy"),
    loaded from its folder inside the package: `evaluate.load(str(folder))`, so it works offline (the Hub's
    metric scripts, `evaluate.load("accuracy")`, do not). Results are kept in memory unless you pass
    `keep_in_memory=False`; other keyword arguments go to `evaluate.load`."""
    import evaluate

    kwargs.setdefault("keep_in_memory", True)
    return evaluate.load(str(metric_path(name)), **kwargs)


# ---------------------------------------------------------------------------------------------------------------
# Log-probabilities of given responses
# ---------------------------------------------------------------------------------------------------------------


def _response_ids(tokenizer, response: str | Sequence[int], index: int) -> list[int]:
    if isinstance(response, str):
        return tokenizer(response, add_special_tokens=False)["input_ids"]
    if isinstance(response, torch.Tensor):
        response = response.tolist()
    try:
        return [int(t) for t in response]
    except (TypeError, ValueError):
        raise TypeError(
            f"responses[{index}] is {type(response).__name__} (expected a string or a list of token ids)"
        ) from None


@torch.no_grad()
def response_logprobs(
    model,
    tokenizer,
    prompts: Sequence[Any],
    responses: Sequence[str | Sequence[int]],
    eos_mask: Sequence[bool] | None = None,
    *,
    batch_size: int = 16,
    chat: bool | None = None,
) -> list[torch.Tensor]:
    """Per-token log-probabilities log p(y_t | x, y_<t) of each response under `model`, one 1-D float32 CPU
    tensor per response.

    Prompts are rendered exactly as `sample_candidates` renders them (chat template for strings when the
    tokenizer has one, `chat` to force either way) and tokenized without extra special tokens; a response is a
    string (tokenized the same way) or its token ids. Where `eos_mask[i]` is true the EOS token is appended and
    scored too, as in a sampled sequence that ended by itself. Batches are right-padded, so every real token
    keeps the position it had when generated; log-softmax is taken in fp32 at the model's full temperature.
    """
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses (expected one response each)")
    if eos_mask is not None and len(eos_mask) != len(responses):
        raise ValueError(f"eos_mask has {len(eos_mask)} entries for {len(responses)} responses")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not len(prompts):
        return []
    texts = render_prompts(tokenizer, prompts, chat)
    prompt_ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    sequences = []
    for i, (p_ids, response) in enumerate(zip(prompt_ids, responses)):
        if not p_ids:
            raise ValueError(f"prompts[{i}] renders to no tokens; the first response token needs a context")
        r_ids = _response_ids(tokenizer, response, i)
        if eos_mask is not None and eos_mask[i]:
            if tokenizer.eos_token_id is None:
                raise ValueError("eos_mask asks for an EOS token but the tokenizer has none")
            r_ids = r_ids + [tokenizer.eos_token_id]
        sequences.append((list(p_ids), r_ids))

    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    was_training = model.training
    model.eval()  # dropout off: the log-probabilities must be the model's, not a noisy draw
    results: list[torch.Tensor] = []
    try:
        for start in range(0, len(sequences), batch_size):
            batch = sequences[start : start + batch_size]
            length = max(len(p) + len(r) for p, r in batch)
            input_ids = torch.full((len(batch), length), pad_id, dtype=torch.long)
            attention = torch.zeros((len(batch), length), dtype=torch.long)
            for row, (p, r) in enumerate(batch):
                input_ids[row, : len(p) + len(r)] = torch.tensor(p + r, dtype=torch.long)
                attention[row, : len(p) + len(r)] = 1
            logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
            logits = logits[:, :-1].float()
            targets = input_ids[:, 1:].to(logits.device)
            # log_softmax gathered at the targets, without materialising a second (batch, length, vocab) tensor
            picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
            picked = picked.cpu()
            for row, (p, r) in enumerate(batch):
                results.append(picked[row, len(p) - 1 : len(p) - 1 + len(r)].clone())
            del logits, picked
    finally:
        model.train(was_training)
    return results


# ---------------------------------------------------------------------------------------------------------------
# Evaluating policies
# ---------------------------------------------------------------------------------------------------------------


def _batched_judge(judge: Any, role: str) -> Judge:
    """A Judge as is; any other callable is taken to be batched, `f(prompts, responses) -> list[float]`."""
    if isinstance(judge, Judge):
        return judge
    if callable(judge):
        return FunctionJudge(judge, name=getattr(judge, "__name__", role), batched=True)
    raise TypeError(
        f"{role} is {type(judge).__name__}: expected an rlhfkit Judge (e.g. "
        f"rlhfkit.train.reward.RewardModelJudge for a trained reward model) or a callable "
        f"f(prompts, responses) -> list[float]"
    )


def _policy_seed(seed: int, name: str) -> int:
    """A seed per policy from the base seed and the policy's name: independent draws, stable across reruns and
    across the order of the policies dict."""
    return zlib.crc32(f"{seed}:{name}".encode()) & 0x7FFFFFFF


def _is_spec(model: Any) -> bool:
    return isinstance(model, (str, os.PathLike))


def _vocab_size(model) -> int | None:
    return getattr(getattr(model, "config", None), "vocab_size", None)


def evaluate_policies(
    policies: Mapping[str, Any],
    task,
    *,
    reference: Any,
    reward_model: Any = None,
    tokenizer=None,
    settings: EvalSettings | None = None,
    reference_name: str = "reference",
    progress: bool = True,
) -> EvaluationResult:
    """Sample every policy and the reference on the task's eval prompts and measure them side by side.

    `policies` maps a name to a model: a name ("tiny"), a local folder or Hub id (loaded frozen, one at a time,
    and freed after use), a training run (`rlhfkit.runs.RunData` or its directory: the model it saved), or a
    model object (used where it is). `reference` is the SFT model, given any of the same ways.
    `reward_model` is the proxy scorer: any rlhfkit Judge or callable `f(prompts, responses) -> list[float]`.
    `tokenizer` defaults to the reference's when the reference is a name or path; all models must share it.
    Returns an `EvaluationResult` (summary table, per-sample table, `to_dict()`).
    """
    from tqdm.auto import tqdm

    settings = settings or EvalSettings()
    if not isinstance(policies, Mapping):
        raise TypeError(f"policies must be a dict {{name: model or path}}, got {type(policies).__name__}")
    if reference_name in policies:
        raise ValueError(
            f"a policy is named {reference_name!r}, the name of the reference's row; rename it or pass reference_name="
        )
    for name in policies:
        if not isinstance(name, str) or not name:
            raise ValueError(f"policy names must be non-empty strings, got {name!r}")
    if settings.temperature != 1.0:
        warnings.warn(
            f"sampling at temperature {settings.temperature}: rewards describe the tempered policy, and "
            f"the KL estimates are no longer unbiased for KL(pi || pi_ref) (they need the policy's own "
            f"samples, temperature 1.0)",
            stacklevel=2,
        )
    prompts = list(task.eval_prompts if settings.n_prompts is None else task.eval_prompts[: settings.n_prompts])
    if not prompts:
        raise ValueError(f"task {getattr(task, 'name', '?')!r} has no eval prompts to evaluate on")
    gold_judge = None if task.gold_judge is None else _batched_judge(task.gold_judge, "the task's gold judge")
    proxy_judge = None if reward_model is None else _batched_judge(reward_model, "reward_model")
    if gold_judge is None:
        warnings.warn(
            f"task {getattr(task, 'name', '?')!r} has no gold judge: gold reward and win rate are left empty",
            stacklevel=2,
        )
    reference = _model_source(reference, "reference")
    policies = {name: _model_source(spec, f"policy {name!r}") for name, spec in policies.items()}
    if tokenizer is None:
        if not _is_spec(reference):
            raise ValueError(
                "pass tokenizer= when the reference is a model object (it is loaded from the "
                "reference's folder only when the reference is given by name or path)"
            )
        tokenizer = load_tokenizer(reference)

    ref_model = _load(reference, settings)
    # Sampling and scoring on the CPU follow rlhfkit.threads (one thread for small models), like the stages.
    with cpu_threads(model=ref_model, device=next(ref_model.parameters()).device):
        ref_vocab = _vocab_size(ref_model)
        evaluator = _Evaluator(prompts, tokenizer, ref_model, gold_judge, proxy_judge, settings, progress)
        ref_frame, ref_lps = evaluator.sample_and_score(reference_name, ref_model)
        frames, rows = [], []
        ref_frame = evaluator.finish(ref_frame, ref_lps, ref_lps, ref_frame)
        frames.append(ref_frame)
        rows.append(evaluator.summarize(reference_name, ref_frame))

        for name, spec in tqdm(policies.items(), desc="evaluating policies", disable=not progress, leave=False):
            same = spec is reference or (_is_spec(spec) and _is_spec(reference) and str(spec) == str(reference))
            model = ref_model if same else _load(spec, settings)
            try:
                vocab = _vocab_size(model)
                if vocab is not None and ref_vocab is not None and vocab != ref_vocab:
                    raise ValueError(
                        f"policy {name!r} has a vocabulary of {vocab} tokens but the reference has "
                        f"{ref_vocab}: KL needs both to score the same tokens (same tokenizer)"
                    )
                frame, policy_lps = evaluator.sample_and_score(name, model)
                # The same model scores its own samples once, so a policy identical to the reference has KL exactly 0.
                ref_lps_on_policy = policy_lps if model is ref_model else evaluator.logprobs(ref_model, frame)
                frame = evaluator.finish(frame, policy_lps, ref_lps_on_policy, ref_frame)
            finally:
                if model is not ref_model and _is_spec(spec):
                    del model  # loaded here: free it before the next policy
                    gc.collect()
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
            frames.append(frame)
            rows.append(evaluator.summarize(name, frame))
        if evaluator.retokenized:
            counts = ", ".join(f"{name} {n} of {total}" for name, (n, total) in evaluator.retokenized.items())
            warnings.warn(
                f"some responses re-tokenize to a different number of tokens than were sampled (decoding "
                f"drops special tokens a model emits mid-response): {counts}; the KL of those samples is "
                f"measured on the re-tokenized text",
                stacklevel=2,
            )
    return EvaluationResult(
        summary=pd.DataFrame(rows),
        samples=pd.concat(frames, ignore_index=True),
        settings=settings,
        reference_name=reference_name,
    )


def _model_source(model: Any, role: str) -> Any:
    """A model object as is; a run (an `rlhfkit.runs.RunData`, or a run directory) becomes the folder of the
    model it saved; a name or path stays a name or path."""
    if isinstance(model, torch.nn.Module):
        return model
    if hasattr(model, "model_path") and hasattr(model, "path"):  # rlhfkit.runs.RunData
        if model.model_path is None:
            raise ValueError(f"{role}: the run at {model.path} has no saved model (expected {model.path}/model)")
        return str(model.model_path)
    if isinstance(model, (str, os.PathLike)):
        folder = Path(model)
        if (folder / "model" / "config.json").is_file() and not any(folder.glob("*.safetensors")):
            return str(folder / "model")  # a run directory: its trained model lives in model/
        return model
    raise TypeError(f"{role} is {type(model).__name__}: expected a model name, a path, a run or a model object")


def _load(model: Any, settings: EvalSettings):
    if _is_spec(model):
        return load_reference(model, device=settings.device, dtype=settings.dtype)
    return model


class _Evaluator:
    """The steps shared by the reference and every policy: sample, score, summarise."""

    def __init__(self, prompts, tokenizer, ref_model, gold_judge, proxy_judge, settings, progress):
        self.prompts, self.tokenizer, self.ref_model = prompts, tokenizer, ref_model
        self.gold_judge, self.proxy_judge = gold_judge, proxy_judge
        self.settings, self.progress = settings, progress
        self.retokenized: dict[str, tuple[int, int]] = {}

    def sample_and_score(self, name: str, model):
        s = self.settings
        config = SamplingSettings(
            k=s.samples_per_prompt,
            do_sample=True,
            temperature=s.temperature,
            max_new_tokens=s.max_new_tokens,
            batch_size=s.batch_size,
            seed=_policy_seed(s.seed, name),
        )
        table = sample_candidates(model, self.tokenizer, self.prompts, config, progress=self.progress)
        frame = pd.DataFrame(
            {
                "policy": name,
                "prompt_index": table["prompt_index"],
                "prompt": table["prompt"],
                "candidate": table["candidate"],
                "response": table["response"],
                "n_tokens": table["n_tokens"],
                "n_words": [len(r.split()) for r in table["response"]],
                "finish_reason": table["finish_reason"],
                "sum_logprob_sampled": table["sum_logprob"],
                "seed": config.seed,
            }
        )
        # Exact sampled token ids when sampling provides them; otherwise the decoded text is re-tokenized.
        if "response_ids" in table:
            frame["response_ids"] = table["response_ids"]
        lps = self.logprobs(model, frame)
        self._check_tokens(name, frame, lps)
        prompts, responses = frame["prompt"].tolist(), frame["response"].tolist()
        frame["gold"] = self.gold_judge(prompts, responses) if self.gold_judge is not None else np.nan
        frame["proxy"] = self.proxy_judge(prompts, responses) if self.proxy_judge is not None else np.nan
        return frame, lps

    def logprobs(self, model, frame: pd.DataFrame) -> list[torch.Tensor]:
        responses = frame["response_ids"].tolist() if "response_ids" in frame else frame["response"].tolist()
        # Prompts by index, so message-list prompts render exactly as they did for sampling.
        prompts = [self.prompts[i] for i in frame["prompt_index"]]
        return response_logprobs(
            model,
            self.tokenizer,
            prompts,
            responses,
            (frame["finish_reason"] == "eos").tolist(),
            batch_size=self.settings.batch_size,
        )

    def _check_tokens(self, name: str, frame: pd.DataFrame, lps: list[torch.Tensor]) -> None:
        """Re-tokenized text can differ from the sampled tokens (decoding drops special tokens a model emits
        mid-response); the KL of such a sample is then measured on the re-tokenized sequence. Count them, so
        that evaluate_policies can say so rather than hide it."""
        scored = np.array([len(t) for t in lps]) - (frame["finish_reason"] == "eos").to_numpy()
        differs = int((scored != frame["n_tokens"].to_numpy()).sum())
        if differs:
            self.retokenized[name] = (differs, len(frame))

    def finish(self, frame: pd.DataFrame, policy_lps, ref_lps, ref_frame: pd.DataFrame) -> pd.DataFrame:
        """Add per-sample KL and the outcome against the reference's sample for the same prompt and candidate."""
        k1, k3 = per_sample_kl([t.double().numpy() for t in policy_lps], [t.double().numpy() for t in ref_lps])
        frame["kl_k1"], frame["kl_k3"] = k1, k3
        frame["sum_logprob"] = [float(t.double().sum()) for t in policy_lps]
        frame["ref_sum_logprob"] = [float(t.double().sum()) for t in ref_lps]
        if self.gold_judge is not None:
            keyed = ref_frame.set_index(["prompt_index", "candidate"])["gold"]
            frame["ref_gold"] = keyed.loc[list(zip(frame["prompt_index"], frame["candidate"]))].to_numpy()
            frame["win"] = pairwise_outcomes(frame["gold"], frame["ref_gold"], ("policy gold", "reference gold"))
        else:
            frame["ref_gold"] = frame["win"] = np.nan
        columns = [
            "policy",
            "prompt_index",
            "prompt",
            "candidate",
            "response",
            "gold",
            "proxy",
            "kl_k1",
            "kl_k3",
            "n_tokens",
            "n_words",
            "finish_reason",
            "sum_logprob",
            "ref_sum_logprob",
            "ref_gold",
            "win",
            "seed",
        ]
        return frame[columns]

    def summarize(self, name: str, frame: pd.DataFrame) -> dict:
        s = self.settings
        groups = frame["prompt_index"].to_numpy()  # intervals resample prompts, not single samples

        def mean_ci(column: str) -> tuple[float, float, float]:
            values = frame[column].to_numpy(dtype=float)
            if np.isnan(values).all():
                return math.nan, math.nan, math.nan
            lo, hi = bootstrap_ci(values, np.mean, s.n_bootstrap, s.confidence, s.seed, groups)
            return float(values.mean()), lo, hi

        gold, gold_lo, gold_hi = mean_ci("gold")
        proxy, proxy_lo, proxy_hi = mean_ci("proxy")
        kl, kl_lo, kl_hi = mean_ci("kl_k1")
        if frame["win"].isna().all():
            win, win_lo, win_hi = math.nan, math.nan, math.nan
        else:
            wins = win_rate(
                frame["gold"],
                frame["ref_gold"],
                n_bootstrap=s.n_bootstrap,
                confidence=s.confidence,
                seed=s.seed,
                groups=groups,
            )
            win, (win_lo, win_hi) = wins["win_rate"], wins["win_rate_ci"]
        return {
            "policy": name,
            "gold_reward_mean": gold,
            "gold_reward_ci_lo": gold_lo,
            "gold_reward_ci_hi": gold_hi,
            "proxy_reward_mean": proxy,
            "proxy_reward_ci_lo": proxy_lo,
            "proxy_reward_ci_hi": proxy_hi,
            "kl_to_ref": kl,
            "kl_to_ref_ci_lo": kl_lo,
            "kl_to_ref_ci_hi": kl_hi,
            "kl_k3": float(frame["kl_k3"].mean()),
            "kl_estimator": K1_ESTIMATOR,
            "win_rate_vs_ref": win,
            "win_rate_ci_lo": win_lo,
            "win_rate_ci_hi": win_hi,
            **distinct(frame["response"].tolist(), (1, 2)),
            "mean_length": float(frame["n_tokens"].mean()),
            "mean_length_words": float(frame["n_words"].mean()),
            "eos_rate": float((frame["finish_reason"] == "eos").mean()),
            "n_samples": int(len(frame)),
            "n_prompts": int(frame["prompt_index"].nunique()),
        }


__getattr__ = renamed(__name__, {"pairwise_accuracy": "pairwise_accuracy_stats", "METRIC_NAMES": "METRIC_MODULES"})
