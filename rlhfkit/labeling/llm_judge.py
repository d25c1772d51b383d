"""An instruct model as a pairwise judge (AI feedback): which of two responses better fits a stated criterion.

`LLMJudge` shows the model a prompt, two responses and a question ("Which response is <criterion>? Answer A or
B."), through its chat template when it has one, and reads the probability of the two answer tokens at the next
position: no text is generated and nothing is parsed. Models prefer a position as much as a response, so every
pair is asked in both orders, a first then b first:

- p_first_a_first, p_first_b_first: P(the response shown first is better) in each order, the raw numbers (the
  two answer tokens' probabilities renormalised to sum to 1), kept for every pair so position bias can be measured;
- p_a = (p_first_a_first + 1 - p_first_b_first) / 2: the preference for a, averaged over the two orders;
- choice: "a" or "b" when both orders prefer the same response, "tie" when they disagree (each order preferring
  a position rather than a response). With ``on_disagreement="average"`` a disagreement goes to the side p_a
  leans to instead (a tie only at exactly 0.5): a small model that always prefers one position calls every pair
  a tie under the first rule, while its averaged probabilities may still say something.

It labels like any other annotator: `annotate_with_judge(store, judge)` writes its choices (ties as "tie") into a
label store, and `rlhfkit.stages.label_preferences(..., labels_from=judge)` makes preference pairs with it. Both
find it by its two methods, which any other pairwise judge may implement too:

- ``compare(prompts, responses_a, responses_b) -> list[dict]``: one row per pair with "choice" ("a", "b" or
  "tie") and whatever numbers explain it (the store keeps them as the judgment's rationale);
- ``prefer(prompts, responses_a, responses_b) -> list[dict]``: preference rows in `SimulatedAnnotator.label_pairs`'
  format (prompt, chosen, rejected, annotator, chosen_position, score_chosen, score_rejected, judge_tie,
  agrees_with_judge).

This module imports only the standard library at import time; torch and transformers load when a judge is made.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Sequence

__all__ = ["LLMJudge", "DEFAULT_TEMPLATE", "ANSWER_LABELS", "judge_position_bias", "stored_judge_rows"]

DEFAULT_TEMPLATE = (
    "Here is a request and two responses to it.\n\n"
    "Request: {prompt}\n\n"
    "Response {first_label}: {first}\n\n"
    "Response {second_label}: {second}\n\n"
    "Which response is {criterion}? Answer with {first_label} or {second_label} only."
)
"""The question asked, a user message: `{prompt}`, `{first}` and `{second}` (the responses in the order shown),
`{first_label}` and `{second_label}` (the answer labels, e.g. "A" and "B") and `{criterion}`."""

ANSWER_LABELS = (("A", "B"), ("1", "2"))
"""Answer labels tried in order when none are given: the first pair whose labels are each one token."""


def _text(value: Any) -> str:
    """A prompt or response as text (a message list: its last message's content)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        return str(value[-1].get("content", ""))
    raise TypeError(f"expected a string or a list of messages, got {type(value).__name__}")


def answer_token_ids(tokenizer, label: str) -> list[int]:
    """The ids of the single tokens that spell `label` as a next token: the label itself and with a leading space
    (BPE vocabularies often hold both); those that take more than one token are left out."""
    ids = []
    for spelling in (label, " " + label):
        encoded = tokenizer.encode(spelling, add_special_tokens=False)
        if len(encoded) == 1 and encoded[0] not in ids:
            ids.append(encoded[0])
    return ids


class LLMJudge:
    """Ask an instruct model which of two responses is better for `criterion`, in both orders.

    model: a causal LM module (its tokenizer then goes in `tokenizer`), or a name or path that
      `rlhfkit.models.load_policy` loads (with its tokenizer, on `device` in `dtype`).
    criterion: what "better" means, completing "Which response is ...?" (e.g. "more positive about the item").
    name: the annotator name its judgments are stored under (default "llm-judge:<model folder name>").
    labels: the two answer labels, e.g. ("A", "B"); None picks the first of `ANSWER_LABELS` whose labels each
      encode as one token. The probability of a label is summed over its single-token spellings ("A", " A").
    template: the question (see `DEFAULT_TEMPLATE`). system: an optional system message.
    chat: wrap the question in the tokenizer's chat template (None = when it has one); without a template the
      question is followed by "\\n\\nAnswer:" and the answer prefix.
    answer_prefix: text the answer starts with, after the assistant turn opens; the label comes next. The
      default "Response" makes the next token the label itself ("Response A"): an instruct model asked to answer
      with a letter otherwise often starts with "The" or "Response", and little probability is left on the labels
      (`answer_mass` in `compare`'s rows shows how much is).
    on_disagreement: "tie" (the orders disagree: a tie) or "average" (the side the averaged probability p_a
      leans to; a tie only when p_a is exactly 0.5).
    batch_size: questions per forward pass (each pair is two questions).
    device, dtype: where a model given by name is loaded (default: a GPU when there is one); a module is moved to
      `device` when one is given, else it stays where it is.

    Deterministic: one forward pass per question under torch.no_grad(), no sampling.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        criterion: str = "the better response to the request",
        *,
        name: str | None = None,
        labels: tuple[str, str] | None = None,
        template: str = DEFAULT_TEMPLATE,
        system: str | None = None,
        chat: bool | None = None,
        answer_prefix: str = "Response",
        on_disagreement: str = "tie",
        batch_size: int = 8,
        device: Any = None,
        dtype: Any = None,
        trust_remote_code: bool = False,
    ) -> None:
        if not isinstance(criterion, str) or not criterion.strip():
            raise ValueError(f"LLMJudge: criterion must be a non-empty string, got {criterion!r}")
        if on_disagreement not in ("tie", "average"):
            raise ValueError(f"LLMJudge: on_disagreement must be 'tie' or 'average', got {on_disagreement!r}")
        if batch_size < 1:
            raise ValueError(f"LLMJudge: batch_size must be at least 1, got {batch_size}")
        for field in ("prompt", "first", "second", "criterion", "first_label", "second_label"):
            if "{" + field + "}" not in template:
                raise ValueError(f"LLMJudge: the template has no {{{field}}} placeholder")
        if isinstance(model, (str, os.PathLike)):
            from rlhfkit.models import load_policy, load_tokenizer

            source = str(model)
            model = load_policy(source, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
            tokenizer = tokenizer or load_tokenizer(source, trust_remote_code=trust_remote_code)
        else:
            if tokenizer is None:
                raise ValueError("LLMJudge: a model module needs its tokenizer (pass tokenizer=)")
            if device is not None:
                model.to(device)
            source = str(getattr(getattr(model, "config", None), "_name_or_path", "") or "model")
        if tokenizer.pad_token is None:  # batches are padded; the pad token's value never reaches the answer
            if tokenizer.eos_token is None:
                raise ValueError("LLMJudge: the tokenizer has neither a pad nor an eos token; set one before use")
            tokenizer.pad_token = tokenizer.eos_token
        self.model, self.tokenizer = model, tokenizer
        self.criterion, self.template, self.system = criterion, template, system
        self.chat = bool(getattr(tokenizer, "chat_template", None)) if chat is None else chat
        self.answer_prefix, self.batch_size, self.on_disagreement = answer_prefix, batch_size, on_disagreement
        self.name = name or f"llm-judge:{Path(source.rstrip('/')).name or source}"
        self.labels, self.answer_ids = self._pick_labels(labels)

    def _pick_labels(self, labels: tuple[str, str] | None) -> tuple[tuple[str, str], tuple[list[int], list[int]]]:
        tried = [tuple(labels)] if labels is not None else list(ANSWER_LABELS)
        for first, second in tried:
            ids = answer_token_ids(self.tokenizer, first), answer_token_ids(self.tokenizer, second)
            if ids[0] and ids[1] and not set(ids[0]) & set(ids[1]):
                return (first, second), ids
        raise ValueError(
            f"LLMJudge: none of the answer labels {tried} are single, distinct tokens for this tokenizer; pass "
            f"labels=(first, second) that are (check with tokenizer.encode(label, add_special_tokens=False))"
        )

    def describe(self) -> dict:
        """What decides this judge's answers (for a manifest): model, criterion, labels and the question."""
        return {
            "name": self.name,
            "model": str(getattr(getattr(self.model, "config", None), "_name_or_path", "")),
            "criterion": self.criterion,
            "labels": list(self.labels),
            "template": self.template,
            "system": self.system,
            "chat": self.chat,
            "answer_prefix": self.answer_prefix,
            "on_disagreement": self.on_disagreement,
        }

    def __repr__(self) -> str:
        return f"LLMJudge(name={self.name!r}, criterion={self.criterion!r}, labels={self.labels})"

    # -- the questions ----------------------------------------------------------------------------------------

    def question(self, prompt: Any, first: Any, second: Any) -> str:
        """The exact text the model reads for one order: the question, in the chat template when there is one,
        ending where the answer token goes."""
        content = self.template.format(
            prompt=_text(prompt),
            first=_text(first),
            second=_text(second),
            criterion=self.criterion,
            first_label=self.labels[0],
            second_label=self.labels[1],
        )
        if self.chat:
            messages = ([{"role": "system", "content": self.system}] if self.system else []) + [
                {"role": "user", "content": content}
            ]
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return text + self.answer_prefix
        text = (self.system + "\n\n" if self.system else "") + content + "\n\nAnswer:"
        return text + (" " + self.answer_prefix if self.answer_prefix else "")

    def p_first(self, texts: Sequence[str]) -> list[tuple[float, float]]:
        """For each question: (P(first label | the two labels), the probability mass on the two labels)."""
        import torch

        from rlhfkit.threads import cpu_threads

        model, tokenizer = self.model, self.tokenizer
        device = next(model.parameters()).device
        first_ids = torch.tensor(self.answer_ids[0], device=device)
        second_ids = torch.tensor(self.answer_ids[1], device=device)
        keeps_last = _accepts(model, "logits_to_keep")
        takes_positions = _accepts(model, "position_ids")
        # Longest first, in batches of similar length: less padding; the result does not depend on the order.
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: list[tuple[float, float]] = [(math.nan, math.nan)] * len(texts)
        was_training, old_side = model.training, tokenizer.padding_side
        model.eval()
        tokenizer.padding_side = "left"  # every question's answer position is the last one
        try:
            with torch.no_grad(), cpu_threads(model=model, device=device):
                for start in range(0, len(order), self.batch_size):
                    batch = order[start : start + self.batch_size]
                    # The chat template already wrote any special tokens the model expects.
                    enc = tokenizer(
                        [texts[i] for i in batch], return_tensors="pt", padding=True, add_special_tokens=False
                    ).to(device)
                    kwargs = dict(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
                    if takes_positions:  # left padding: positions count real tokens only, as generate() does
                        kwargs["position_ids"] = (enc["attention_mask"].cumsum(-1) - 1).clamp(min=0)
                    if keeps_last:
                        kwargs["logits_to_keep"] = 1
                    logits = model(**kwargs).logits[:, -1].float()
                    logprobs = logits.log_softmax(-1)
                    first = logprobs[:, first_ids].logsumexp(-1)
                    second = logprobs[:, second_ids].logsumexp(-1)
                    p = torch.sigmoid(first - second)
                    mass = torch.logaddexp(first, second).exp()
                    for row, i in enumerate(batch):
                        out[i] = (float(p[row]), float(mass[row]))
        finally:
            tokenizer.padding_side = old_side
            model.train(was_training)
        return out

    # -- the pairwise-judge interface -------------------------------------------------------------------------

    def compare(self, prompts: Sequence[Any], responses_a: Sequence[Any], responses_b: Sequence[Any]) -> list[dict]:
        """Judge each pair in both orders. One row per pair: "p_first_a_first" and "p_first_b_first" (P(the first
        shown is better) with a first, with b first), "p_a" (their average mapped to a: P(a is better)),
        "answer_mass" (the mean probability the model put on the two labels at all: low means it wanted to say
        something else), and "choice": "a"/"b" when both orders prefer that response, else "tie"."""
        if not len(prompts) == len(responses_a) == len(responses_b):
            raise ValueError(
                f"{self.name}: needs equally many prompts and responses, got {len(prompts)}, {len(responses_a)} "
                f"and {len(responses_b)}"
            )
        texts = [self.question(p, a, b) for p, a, b in zip(prompts, responses_a, responses_b)]
        texts += [self.question(p, b, a) for p, a, b in zip(prompts, responses_a, responses_b)]
        answers = self.p_first(texts)
        n = len(prompts)
        return [pair_row(*answers[i], *answers[n + i], on_disagreement=self.on_disagreement) for i in range(n)]

    def prefer(self, prompts: Sequence[Any], responses_a: Sequence[Any], responses_b: Sequence[Any]) -> list[dict]:
        """Preference rows as `SimulatedAnnotator.label_pairs` makes them: prompt, chosen, rejected, annotator,
        chosen_position ("both": the judge saw each response in each position), score_chosen and score_rejected
        (P(chosen is better) averaged over the orders, and 1 minus it), judge_tie (True when the orders
        disagreed; chosen is then the one the average leans to), agrees_with_judge (True: the judge is its own
        judge), plus the raw numbers: p_first_chosen_first, p_first_rejected_first (P(first is better) in the
        order showing the chosen / the rejected first) and answer_mass. Pairs of identical responses are
        skipped with a warning that counts them, as `label_pairs` does."""
        if not len(prompts) == len(responses_a) == len(responses_b):
            raise ValueError(
                f"{self.name}: needs equally many prompts and responses, got {len(prompts)}, {len(responses_a)} "
                f"and {len(responses_b)}"
            )
        keep = [i for i in range(len(prompts)) if responses_a[i] != responses_b[i]]
        if len(keep) < len(prompts):
            warnings.warn(
                f"{self.name}: skipped {len(prompts) - len(keep)} of {len(prompts)} pairs whose two responses are "
                f"identical",
                stacklevel=2,
            )
        prompts = [prompts[i] for i in keep]
        responses_a = [responses_a[i] for i in keep]
        responses_b = [responses_b[i] for i in keep]
        rows = []
        for prompt, a, b, judged in zip(
            prompts, responses_a, responses_b, self.compare(prompts, responses_a, responses_b)
        ):
            a_wins = judged["choice"] == "a" or (judged["choice"] == "tie" and judged["p_a"] >= 0.5)
            p_chosen = judged["p_a"] if a_wins else 1.0 - judged["p_a"]
            rows.append(
                {
                    "prompt": prompt,
                    "chosen": a if a_wins else b,
                    "rejected": b if a_wins else a,
                    "annotator": self.name,
                    "chosen_position": "both",
                    "score_chosen": p_chosen,
                    "score_rejected": 1.0 - p_chosen,
                    "judge_tie": judged["choice"] == "tie",
                    "agrees_with_judge": True,
                    "p_first_chosen_first": judged["p_first_a_first" if a_wins else "p_first_b_first"],
                    "p_first_rejected_first": judged["p_first_b_first" if a_wins else "p_first_a_first"],
                    "answer_mass": judged["answer_mass"],
                }
            )
        return rows

    @staticmethod
    def rationale(row: dict) -> str:
        """A `compare` row's numbers as the JSON text the label store keeps beside the choice."""
        keys = ("p_first_a_first", "p_first_b_first", "p_a", "answer_mass")
        return json.dumps({k: round(float(row[k]), 6) for k in keys})


def pair_row(
    p_first_a_first: float,
    mass_a_first: float,
    p_first_b_first: float,
    mass_b_first: float,
    *,
    on_disagreement: str = "tie",
) -> dict:
    """One pair's verdict from its two orders (see the module docstring)."""
    p_a = (p_first_a_first + (1.0 - p_first_b_first)) / 2.0
    # When the orders agree, p_a is on their side of 0.5; when they disagree, it holds what is left of a preference
    # once the position's pull, which adds to one response in each order, roughly cancels.
    if _orders_agree(p_first_a_first, p_first_b_first) or (on_disagreement == "average" and p_a != 0.5):
        choice = "a" if p_a > 0.5 else "b"
    else:
        choice = "tie"  # each order preferred a position, not a response (or one was undecided)
    return {
        "p_first_a_first": p_first_a_first,
        "p_first_b_first": p_first_b_first,
        "p_a": p_a,
        "answer_mass": (mass_a_first + mass_b_first) / 2.0,
        "choice": choice,
    }


def _orders_agree(p_first_a_first: float, p_first_b_first: float) -> bool:
    """Whether the two orders prefer the same response (a in both, or b in both)."""
    return (p_first_a_first > 0.5 and p_first_b_first < 0.5) or (p_first_a_first < 0.5 and p_first_b_first > 0.5)


def judge_position_bias(rows: Sequence[dict]) -> dict:
    """Position bias of a pairwise judge from its `compare` rows: "n" pairs, "first_rate_a_first" and
    "first_rate_b_first" (how often each order picked the position shown first), "first_rate" (over both orders;
    0.5 for a judge without position bias), "mean_p_first" (mean P(first is better) over both orders),
    "tie_rate" (pairs called a tie), "disagree_rate" (pairs whose orders disagreed) and "mean_answer_mass"."""
    n = len(rows)
    if n == 0:
        return {"n": 0}
    firsts_a = sum(r["p_first_a_first"] > 0.5 for r in rows)
    firsts_b = sum(r["p_first_b_first"] > 0.5 for r in rows)
    return {
        "n": n,
        "first_rate_a_first": firsts_a / n,
        "first_rate_b_first": firsts_b / n,
        "first_rate": (firsts_a + firsts_b) / (2 * n),
        "mean_p_first": sum(r["p_first_a_first"] + r["p_first_b_first"] for r in rows) / (2 * n),
        "tie_rate": sum(r["choice"] == "tie" for r in rows) / n,
        "disagree_rate": sum(not _orders_agree(r["p_first_a_first"], r["p_first_b_first"]) for r in rows) / n,
        "mean_answer_mass": sum(r["answer_mass"] for r in rows) / n,
    }


def stored_judge_rows(store, annotator: str) -> list[dict]:
    """An LLM judge's pair judgments read back from a label store as `compare` rows (its choice and the numbers
    `LLMJudge.rationale` stored), e.g. for `judge_position_bias` after `annotate_with_judge`. Judgments of
    `annotator` without those numbers (another kind of annotator) are left out."""
    rows = []
    for judgment in store.judgments(annotator=annotator, kind="pair").itertuples():
        try:
            numbers = json.loads(judgment.rationale or "")
        except json.JSONDecodeError:
            continue
        if isinstance(numbers, dict) and {"p_first_a_first", "p_first_b_first", "answer_mass"} <= numbers.keys():
            rows.append({**numbers, "choice": judgment.choice, "item_id": judgment.item_id})
    return rows


def _accepts(model: Any, argument: str) -> bool:
    """Whether the model's forward names `argument` (a **kwargs catch-all does not count)."""
    import inspect

    inner = getattr(model, "module", model)  # through a DDP wrapper
    inner = inner.get_base_model() if hasattr(inner, "get_base_model") else inner  # and a peft one: it passes them on
    try:
        return argument in inspect.signature(inner.forward).parameters
    except (TypeError, ValueError, AttributeError):
        return False
