"""The LLM judge: both orders, ties, probabilities mapped back; as an annotator in a label store; as the labeller of
the preference stage. The logic runs on a stub model whose answer logits the test sets; the plumbing on the
embedded default (a tiny model, so its verdicts mean nothing: only their form is checked)."""

import json
import math
import re
from types import SimpleNamespace

import pytest
import torch

from rlhfkit import stages
from rlhfkit.judges import SimulatedAnnotator
from rlhfkit.labeling import LabelStore, LLMJudge, annotate_with_judge, judge_position_bias, stored_judge_rows
from rlhfkit.labeling.llm_judge import answer_token_ids

GOOD, BAD = "The soup was great and the staff were kind.", "The soup was cold."


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


class StubModel(torch.nn.Module):
    """Reads each question back through the tokenizer and answers with fixed logits: the first label gets
    `position_bias` + the first response's quality, the second label the second's; every other token far below.
    A response's quality is `quality` when it contains "great" (or, with `by_length`, `quality` per character)."""

    def __init__(self, tokenizer, *, position_bias=0.0, quality=0.0, by_length=False):
        super().__init__()
        self.tokenizer, self.position_bias, self.quality, self.by_length = tokenizer, position_bias, quality, by_length
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # gives the judge a device to read
        self.first_ids = answer_token_ids(tokenizer, "A")
        self.second_ids = answer_token_ids(tokenizer, "B")
        self.calls = 0

    def score(self, response: str) -> float:
        if self.by_length:
            return self.quality * len(response)
        return self.quality if "great" in response else 0.0

    def forward(self, input_ids, attention_mask=None, **_):
        self.calls += 1
        logits = torch.full((len(input_ids), input_ids.shape[1], len(self.tokenizer)), -30.0)
        for row, ids in enumerate(input_ids):
            text = self.tokenizer.decode(ids[attention_mask[row].bool()])
            first, second = re.search(r"Response A: (.*?)\n\nResponse B: (.*?)\n\n", text, re.S).groups()
            logits[row, -1, self.first_ids] = self.position_bias + self.score(first)
            logits[row, -1, self.second_ids] = self.score(second)
        return SimpleNamespace(logits=logits)


def stub_judge(tokenizer, **kwargs):
    options = {k: kwargs.pop(k) for k in list(kwargs) if k in ("position_bias", "quality", "by_length")}
    return LLMJudge(StubModel(tokenizer, **options), tokenizer, "more positive about the item", **kwargs)


# --- both orders -------------------------------------------------------------------------------------------------


def test_a_judge_that_prefers_a_position_calls_every_pair_a_tie(tiny_tokenizer):
    judge = stub_judge(tiny_tokenizer, position_bias=3.0)
    rows = judge.compare(["Review the cafe."] * 2, [GOOD, BAD], [BAD, GOOD])
    for row in rows:
        assert row["choice"] == "tie"
        assert row["p_first_a_first"] == pytest.approx(sigmoid(3.0), abs=1e-6)
        assert row["p_first_b_first"] == pytest.approx(sigmoid(3.0), abs=1e-6)
        assert row["p_a"] == pytest.approx(0.5, abs=1e-6) and row["answer_mass"] == pytest.approx(1.0, abs=1e-6)
    bias = judge_position_bias(rows)
    assert bias["first_rate"] == bias["tie_rate"] == bias["disagree_rate"] == 1.0
    assert bias["mean_p_first"] == pytest.approx(sigmoid(3.0), abs=1e-6)


def test_a_consistent_judge_picks_the_better_response_in_either_slot(tiny_tokenizer):
    judge = stub_judge(tiny_tokenizer, quality=2.0)
    rows = judge.compare(["Review the cafe."] * 2, [GOOD, BAD], [BAD, GOOD])
    assert [r["choice"] for r in rows] == ["a", "b"]
    # a = GOOD: P(first better) is high with a first and low with b first; mapped back, P(a better) = sigmoid(2).
    assert rows[0]["p_first_a_first"] == pytest.approx(sigmoid(2.0), abs=1e-6)
    assert rows[0]["p_first_b_first"] == pytest.approx(sigmoid(-2.0), abs=1e-6)
    assert rows[0]["p_a"] == pytest.approx(sigmoid(2.0), abs=1e-6)
    assert rows[1]["p_a"] == pytest.approx(sigmoid(-2.0), abs=1e-6)
    assert judge_position_bias(rows)["first_rate"] == 0.5 and judge_position_bias(rows)["tie_rate"] == 0.0


def test_probabilities_are_averaged_over_the_orders_after_mapping_back(tiny_tokenizer):
    # Position pull 0.5, content 1: both orders still prefer GOOD; the average cancels the pull.
    (row,) = stub_judge(tiny_tokenizer, position_bias=0.5, quality=1.0).compare(["p"], [GOOD], [BAD])
    assert row["p_first_a_first"] == pytest.approx(sigmoid(1.5), abs=1e-6)
    assert row["p_first_b_first"] == pytest.approx(sigmoid(-0.5), abs=1e-6)
    assert row["p_a"] == pytest.approx((sigmoid(1.5) + sigmoid(0.5)) / 2, abs=1e-6) and row["choice"] == "a"
    # Pull 2, content 1: each order prefers the first slot, a tie; "average" goes with what is left (GOOD).
    (tied,) = stub_judge(tiny_tokenizer, position_bias=2.0, quality=1.0).compare(["p"], [BAD], [GOOD])
    assert tied["choice"] == "tie" and tied["p_a"] == pytest.approx((sigmoid(1.0) + sigmoid(-3.0)) / 2, abs=1e-6)
    judge = stub_judge(tiny_tokenizer, position_bias=2.0, quality=1.0, on_disagreement="average")
    (averaged,) = judge.compare(["p"], [BAD], [GOOD])
    assert averaged["choice"] == "b" and averaged["p_a"] == pytest.approx(tied["p_a"])


def test_prefer_rows_have_the_simulated_annotators_format(tiny_tokenizer):
    judge = stub_judge(tiny_tokenizer, position_bias=0.5, quality=1.0, batch_size=3)
    with pytest.warns(UserWarning, match="skipped 1 of 4 pairs whose two responses are identical"):
        rows = judge.prefer(["p1", "p2", "p3", "p4"], [GOOD, BAD, BAD, GOOD], [BAD, GOOD, "Meh.", GOOD])
    simulated = SimulatedAnnotator("vader").label_pairs(["p"], [GOOD], [BAD])
    assert set(simulated[0]) <= set(rows[0])
    assert [(r["chosen"], r["rejected"]) for r in rows[:2]] == [(GOOD, BAD), (GOOD, BAD)]
    assert not rows[0]["judge_tie"] and rows[0]["annotator"] == judge.name and rows[0]["chosen_position"] == "both"
    assert rows[0]["score_chosen"] == pytest.approx((sigmoid(1.5) + sigmoid(0.5)) / 2, abs=1e-6)
    assert rows[0]["score_chosen"] + rows[0]["score_rejected"] == pytest.approx(1.0)
    # The raw numbers, by the order that showed the chosen response first: the same for either input order.
    for row in rows[:2]:
        assert row["p_first_chosen_first"] == pytest.approx(sigmoid(1.5), abs=1e-6)
        assert row["p_first_rejected_first"] == pytest.approx(sigmoid(-0.5), abs=1e-6)
    assert rows[2]["judge_tie"]  # neither contains "great": only the position pulls, so the orders disagree


def test_labels_are_single_tokens_chosen_by_the_tokenizer(tiny_tokenizer):
    judge = stub_judge(tiny_tokenizer)
    assert judge.labels == ("A", "B")
    assert all(len(ids) >= 1 for ids in judge.answer_ids) and not set(judge.answer_ids[0]) & set(judge.answer_ids[1])
    question = judge.question("Review the cafe.", GOOD, BAD)
    assert "<|assistant|>" in question and question.endswith("Response")  # the chat template, then the answer start
    assert "more positive about the item" in question and question.index(GOOD) < question.index(BAD)
    plain = stub_judge(tiny_tokenizer, chat=False, system="Judge fairly.").question("Review the cafe.", GOOD, BAD)
    assert plain.startswith("Judge fairly.\n\nHere is") and plain.endswith("only.\n\nAnswer: Response")
    with pytest.raises(ValueError, match="single, distinct tokens"):
        stub_judge(tiny_tokenizer, labels=("Zebraquantum", "Xylophonic"))
    with pytest.raises(ValueError, match="needs its tokenizer"):
        LLMJudge(StubModel(tiny_tokenizer))


# --- the embedded default as the judge ---------------------------------------------------------------------------


def test_a_real_model_answers_the_same_in_any_batch(tiny_model, tiny_tokenizer):
    prompts = ["Review the cafe.", "Give a brief review of the film The Quiet Garden.", "Review a kettle."]
    a = [GOOD, "A slow, long and rather dull film with a fine score.", "Fine."]
    b = [BAD, "Loved it.", "It broke on the second day and the lid leaks."]
    one = LLMJudge(tiny_model, tiny_tokenizer, batch_size=1).compare(prompts, a, b)
    was_training = tiny_model.training
    tiny_model.train()
    try:
        many = LLMJudge(tiny_model, tiny_tokenizer, batch_size=8).compare(prompts, a, b)  # left-padded together
        assert tiny_model.training  # put back as it was (it judged in eval mode: same numbers as above)
    finally:
        tiny_model.train(was_training)
    for x, y in zip(one, many):
        assert x["choice"] == y["choice"]
        for key in ("p_first_a_first", "p_first_b_first", "p_a", "answer_mass"):
            assert 0.0 <= x[key] <= 1.0 and x[key] == pytest.approx(y[key], abs=1e-5)
    assert not any(p.grad is not None for p in tiny_model.parameters())


def test_the_judge_labels_a_store_like_any_annotator(tmp_path, tiny_model, tiny_tokenizer):
    judge = LLMJudge(tiny_model, tiny_tokenizer, "more positive about the item", batch_size=4)
    with LabelStore(tmp_path / "labels.db") as store:
        rows = [{"prompt": f"Review product {i}.", "response_a": GOOD, "response_b": BAD} for i in range(5)]
        ids = store.add_pairs(rows)
        assert annotate_with_judge(store, judge, progress=False) == 5
        assert annotate_with_judge(store, judge, progress=False) == 0  # nothing pending any more
        judged = store.judgments(annotator=judge.name)
        assert sorted(judged.item_id) == sorted(ids) and set(judged.choice) <= {"a", "b", "tie"}
        numbers = json.loads(judged.rationale.iloc[0])
        p_a = (numbers["p_first_a_first"] + 1 - numbers["p_first_b_first"]) / 2
        assert numbers["p_a"] == pytest.approx(p_a, abs=1e-5)

        # A position-biased judge's ties are stored as ties, under the name given.
        biased = stub_judge(tiny_tokenizer, position_bias=3.0)
        assert annotate_with_judge(store, biased, "biased", progress=False) == 5
        assert set(store.judgments(annotator="biased").choice) == {"tie"}
        # Read back from the store, its numbers give the same position bias as the rows it was asked for.
        stored = stored_judge_rows(store, "biased")
        asked = biased.compare([r["prompt"] for r in rows], [GOOD] * 5, [BAD] * 5)
        assert len(stored) == 5 and {r["choice"] for r in stored} == {"tie"}
        assert judge_position_bias(stored)["first_rate"] == judge_position_bias(asked)["first_rate"] == 1.0
        annotate_with_judge(store, SimulatedAnnotator(lambda p, r: float(len(r)), seed=0), "sim", progress=False)
        assert stored_judge_rows(store, "sim") == []  # a plain annotator's rationale holds no judge numbers
        with pytest.raises(ValueError, match="labels 'pair' items"):
            annotate_with_judge(store, biased, kind="ranking", progress=False)


# --- the preference stage ----------------------------------------------------------------------------------------


def _small_task():
    from rlhfkit.tiny.task import reviews_task

    return reviews_task(n_train_prompts=6, n_eval_prompts=3, n_demonstrations=10)


SMALL = stages.LabelSettings(n_prompts=4, k=3, n_check_prompts=2, check_k=2, max_new_tokens=12)


def test_label_preferences_with_an_llm_judge(tmp_path, tiny_path, tiny_model, tiny_tokenizer):
    task = _small_task()
    judge = LLMJudge(tiny_model, tiny_tokenizer, "more positive about the item", on_disagreement="average")
    labels = stages.label_preferences(tiny_path, task, SMALL, tmp_path / "llm", labels_from=judge, echo=False)
    assert labels.source == judge.name and len(labels.preferences) == len(labels.labelled) > 0
    assert {"p_first_chosen_first", "p_first_rejected_first", "gold_chosen", "agrees_with_gold"} <= set(
        labels.labelled.columns
    )
    gold = labels.labelled.gold_chosen >= labels.labelled.gold_rejected
    assert labels.agreement_with_gold == pytest.approx(gold.mean())

    # A judge that prefers longer answers, pulled towards the first slot: its ties are left out and counted.
    pulled = stub_judge(tiny_tokenizer, position_bias=1.0, quality=0.2, by_length=True)  # ties: 5 characters or less
    decided = stages.label_preferences(tiny_path, task, SMALL, tmp_path / "stub", labels_from=pulled, echo=False)
    assert not decided.labelled.judge_tie.any() and decided.ties > 0
    assert all(len(r.chosen) > len(r.rejected) + 5 for r in decided.labelled.itertuples())

    biased = stub_judge(tiny_tokenizer, position_bias=3.0)
    with pytest.raises(ValueError, match="called every one of its .* pairs a tie"):
        stages.label_preferences(tiny_path, task, SMALL, tmp_path / "biased", labels_from=biased, echo=False)
