"""Judges score responses; simulated annotators turn a judge into noisy pairwise choices.

A judge maps (prompt, response) to a float, batched: `judge(prompts, responses) -> list[float]`. That is also the
signature TRL's RLOO and GRPO trainers accept as a reward function, so any judge here can reward them directly.
Built in: `VaderJudge` (sentiment; the reviews task's gold judge), `LengthJudge`, `FunctionJudge` around any
user callable, and `CombinedJudge`, a weighted sum of several (one reward model per criterion, say).

A `SimulatedAnnotator` asks a judge which of two responses is better, then adds the imperfections of people:
label noise (a flip rate, or Bradley-Terry sampling with a temperature) and position bias (picking whichever
response is shown first). It records which response was shown on the left, so position bias can be measured the
same way as for human labels.
"""

from __future__ import annotations

import math
import os
import random
import warnings
from dataclasses import dataclass
from typing import Any, Callable, Sequence

__all__ = ["Judge", "VaderJudge", "LengthJudge", "FunctionJudge", "CombinedJudge", "as_judge", "SimulatedAnnotator"]


def _text(value: Any) -> str:
    """A response as text: TRL passes conversational completions as message lists; take the last content."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        return str(value[-1].get("content", ""))
    raise TypeError(f"expected a response string or a list of messages, got {type(value).__name__}")


class Judge:
    """Base class: subclasses implement `score(prompts, responses) -> list[float]`."""

    name = "judge"

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        raise NotImplementedError

    def __call__(self, prompts: Sequence[Any], completions: Sequence[Any], **_: Any) -> list[float]:
        """Score a batch. Extra keyword arguments (TRL passes dataset columns) are ignored."""
        if len(prompts) != len(completions):
            raise ValueError(f"judge {self.name!r}: {len(prompts)} prompts but {len(completions)} responses")
        prompts_ = [_text(p) for p in prompts]
        responses = [_text(c) for c in completions]
        scores = [float(s) for s in self.score(prompts_, responses)]
        if len(scores) != len(responses):
            raise ValueError(f"judge {self.name!r} returned {len(scores)} scores for {len(responses)} responses")
        bad = [i for i, s in enumerate(scores) if not math.isfinite(s)]
        if bad:
            raise ValueError(
                f"judge {self.name!r} returned a non-finite score for response {bad[0]}: "
                f"{scores[bad[0]]} (expected a finite number)"
            )
        return scores

    @property
    def __name__(self) -> str:  # TRL names reward columns after reward_func.__name__
        return self.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


class VaderJudge(Judge):
    """VADER's compound sentiment of the response, in [-1, 1]; the prompt is ignored. Offline and fast."""

    name = "vader"

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        return [self._analyzer.polarity_scores(r)["compound"] for r in responses]


class LengthJudge(Judge):
    """Length of the response in words (or characters). With `target`, the score is minus the distance to it,
    so the best response has exactly the target length."""

    def __init__(self, unit: str = "words", target: float | None = None) -> None:
        if unit not in ("words", "chars"):
            raise ValueError(f"unit must be 'words' or 'chars', got {unit!r}")
        self.unit, self.target = unit, target
        self.name = f"length_{unit}" if target is None else f"length_{unit}_target_{target:g}"

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        lengths = [len(r.split()) if self.unit == "words" else len(r) for r in responses]
        if self.target is None:
            return [float(n) for n in lengths]
        return [-abs(n - self.target) for n in lengths]


class FunctionJudge(Judge):
    """Any callable as a judge: `fn(prompt, response) -> float`, or with `batched=True`,
    `fn(prompts, responses) -> list[float]` (for example a reward model's scorer or an LLM-as-judge)."""

    def __init__(self, fn: Callable, name: str | None = None, batched: bool = False) -> None:
        self.fn, self.batched = fn, batched
        self.name = name or getattr(fn, "__name__", "function")

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        if self.batched:
            return list(self.fn(list(prompts), list(responses)))
        return [self.fn(p, r) for p, r in zip(prompts, responses)]


class CombinedJudge(Judge):
    """A weighted sum of judges, one per criterion (e.g. a reward model for "helpful" and one for "harmless"):

        score(x, y) = sum_c  w_c * (s_c(x, y) - mean_c) / std_c

    Reward models of different criteria have unrelated scales (a Bradley-Terry score is defined up to a shift and
    a scale), so each is standardised by the mean and standard deviation of its scores on `reference` (prompts and
    responses, e.g. the SFT model's samples), measured once here; the weights then say how much one standard
    deviation of each criterion is worth. Without `reference` the raw scores are summed.

    `judges`: criterion -> a judge or callable ``(prompts, responses) -> scores``; `weights`: criterion -> weight
    (finite, not all zero; a criterion left out weighs 0)."""

    def __init__(
        self,
        judges: dict[str, Callable],
        weights: dict[str, float],
        *,
        reference: tuple[Sequence[str], Sequence[str]] | None = None,
    ) -> None:
        unknown = sorted(set(weights) - set(judges))
        if unknown:
            raise ValueError(f"CombinedJudge: weights for {unknown}, which have no judge; judges: {sorted(judges)}")
        bad = {c: w for c, w in weights.items() if not isinstance(w, (int, float)) or not math.isfinite(w)}
        if bad:
            raise ValueError(f"CombinedJudge: weights must be finite numbers, got {bad}")
        if not any(weights.values()):
            raise ValueError(f"CombinedJudge: every weight is 0 ({dict(weights)}): nothing would be rewarded")
        self.judges = {c: as_judge(j) if not isinstance(j, Judge) else j for c, j in judges.items() if weights.get(c)}
        self.weights = {c: float(weights[c]) for c in self.judges}
        self.scale = {c: (0.0, 1.0) for c in self.judges}
        if reference is not None:
            prompts, responses = list(reference[0]), list(reference[1])
            if len(responses) < 2:
                raise ValueError("CombinedJudge: reference needs at least 2 responses to measure each judge's spread")
            for c, judge in self.judges.items():
                scores = judge(prompts, responses)
                mean = sum(scores) / len(scores)
                std = math.sqrt(sum((s - mean) ** 2 for s in scores) / (len(scores) - 1))
                if std == 0.0:
                    raise ValueError(
                        f"CombinedJudge: judge of {c!r} gives every reference response the same score {mean}: it "
                        f"cannot be standardised (give more varied reference responses)"
                    )
                self.scale[c] = (mean, std)
        self.name = "combined(" + ", ".join(f"{c}={w:g}" for c, w in self.weights.items()) + ")"

    def score(self, prompts: Sequence[str], responses: Sequence[str]) -> list[float]:
        total = [0.0] * len(responses)
        for c, judge in self.judges.items():
            mean, std = self.scale[c]
            for i, s in enumerate(judge(prompts, responses)):
                total[i] += self.weights[c] * (s - mean) / std
        return total


BUILTIN_JUDGES = {"vader": VaderJudge, "length": LengthJudge}


def as_judge(judge: Judge | Callable | str) -> Judge:
    """A `Judge` from a judge, a per-item callable `fn(prompt, response) -> float`, or a name: a builtin judge
    ("vader", "length") or "module:attribute", where the attribute is a `Judge`, a `Judge` class (made with no
    arguments) or a batched function `fn(prompts, responses) -> list[float]` (TRL's reward-function signature).
    The module is imported as Python imports any other: from the working directory or an installed package."""
    if isinstance(judge, Judge):
        return judge
    if isinstance(judge, str):
        if ":" in judge:
            return _imported_judge(judge)
        if judge not in BUILTIN_JUDGES:
            raise ValueError(
                f"unknown judge {judge!r}; builtin judges are {sorted(BUILTIN_JUDGES)}, or name your own as "
                f"'module:function'"
            )
        return BUILTIN_JUDGES[judge]()
    if callable(judge):
        return FunctionJudge(judge)
    raise TypeError(f"cannot use {type(judge).__name__} as a judge: expected a Judge, a name or a callable")


def _imported_judge(spec: str) -> Judge:
    """The judge named by "module:attribute" (see `as_judge`)."""
    import importlib
    import sys

    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(f"judge {spec!r}: expected 'module:function' (e.g. 'my_judges:politeness')")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # a console script's sys.path lacks the working directory python -m has
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"judge {spec!r}: cannot import module {module_name!r} ({err})") from err
    try:
        target = getattr(module, attribute)
    except AttributeError:
        raise ValueError(f"judge {spec!r}: module {module_name!r} has no attribute {attribute!r}") from None
    if isinstance(target, type) and issubclass(target, Judge):
        return target()
    if isinstance(target, Judge):
        return target
    if callable(target):
        return FunctionJudge(target, name=attribute, batched=True)
    raise ValueError(f"judge {spec!r}: {attribute} is a {type(target).__name__}, not a Judge or a function")


@dataclass
class SimulatedAnnotator:
    """A judge made into an imperfect pairwise annotator.

    Each pair is shown in a random order (recorded as `chosen_position`). The annotator's preference comes from
    the judge's scores, then:
    - `noise="flip"`: the better response by the judge, flipped with probability `flip_rate`;
    - `noise="bradley_terry"`: A wins with probability sigmoid((score_A - score_B) / temperature);
    - `noise="none"`: always the better response by the judge.
    Finally, with probability `position_bias` the annotator ignores content and picks the left response.
    Judge ties (equal scores) are decided by a fair coin and flagged in `judge_tie`.
    """

    judge: Judge | Callable | str
    noise: str = "flip"
    flip_rate: float = 0.1
    temperature: float = 0.1
    position_bias: float = 0.0
    seed: int = 0
    name: str | None = None

    def __post_init__(self) -> None:
        self.judge = as_judge(self.judge)
        if self.noise not in ("none", "flip", "bradley_terry"):
            raise ValueError(f"noise must be 'none', 'flip' or 'bradley_terry', got {self.noise!r}")
        for field_name in ("flip_rate", "position_bias"):
            value = getattr(self, field_name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{field_name} must be in [0, 1], got {value}")
        if self.noise == "bradley_terry" and self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 for Bradley-Terry noise, got {self.temperature}")
        if self.name is None:
            detail = {"none": "exact", "flip": f"flip{self.flip_rate:g}", "bradley_terry": f"bt{self.temperature:g}"}[
                self.noise
            ]
            bias = f"-pos{self.position_bias:g}" if self.position_bias else ""
            self.name = f"sim-{self.judge.name}-{detail}{bias}"
        self._rng = random.Random(self.seed)

    def _prefers_a(self, score_a: float, score_b: float) -> bool:
        if self.noise == "bradley_terry":
            z = max(-60.0, min(60.0, (score_a - score_b) / self.temperature))
            return self._rng.random() < 1.0 / (1.0 + math.exp(-z))
        prefers_a = score_a > score_b if score_a != score_b else self._rng.random() < 0.5
        if self.noise == "flip" and self._rng.random() < self.flip_rate:
            prefers_a = not prefers_a
        return prefers_a

    def label_pairs(self, prompts: Sequence[str], responses_a: Sequence[str], responses_b: Sequence[str]) -> list[dict]:
        """Preference rows in TRL's format (`prompt`, `chosen`, `rejected`) plus `annotator`, `chosen_position`
        ("left"/"right"), the judge's scores of both responses, `judge_tie`, and `agrees_with_judge` (False where
        noise or position bias went against the judge; True on judge ties). Pairs of identical responses cannot
        express a preference:
        they are skipped with a warning that counts them."""
        if not len(prompts) == len(responses_a) == len(responses_b):
            raise ValueError(
                f"label_pairs needs equally many prompts and responses, got {len(prompts)}, "
                f"{len(responses_a)} and {len(responses_b)}"
            )
        keep = [i for i in range(len(prompts)) if responses_a[i] != responses_b[i]]
        if len(keep) < len(prompts):
            warnings.warn(
                f"{self.name}: skipped {len(prompts) - len(keep)} of {len(prompts)} pairs whose two "
                f"responses are identical",
                stacklevel=2,
            )
        prompts = [prompts[i] for i in keep]
        responses_a = [responses_a[i] for i in keep]
        responses_b = [responses_b[i] for i in keep]
        scores_a = self.judge(prompts, responses_a)
        scores_b = self.judge(prompts, responses_b)
        rows = []
        for prompt, a, b, sa, sb in zip(prompts, responses_a, responses_b, scores_a, scores_b):
            a_left = self._rng.random() < 0.5
            if self.position_bias and self._rng.random() < self.position_bias:
                prefers_a = a_left
            else:
                prefers_a = self._prefers_a(sa, sb)
            chosen, rejected, s_chosen, s_rejected = (a, b, sa, sb) if prefers_a else (b, a, sb, sa)
            rows.append(
                {
                    "prompt": prompt,
                    "chosen": chosen,
                    "rejected": rejected,
                    "annotator": self.name,
                    "chosen_position": "left" if prefers_a == a_left else "right",
                    "score_chosen": s_chosen,
                    "score_rejected": s_rejected,
                    "judge_tie": sa == sb,
                    "agrees_with_judge": s_chosen >= s_rejected,
                }
            )
        return rows
