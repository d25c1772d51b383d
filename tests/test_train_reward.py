"""Reward model through TRL's RewardTrainer: the Bradley-Terry loss, training on separable pairs, a judge that
scores exactly as the trainer tokenized, held-out metrics, and a NaN loss stopping the run."""

import copy
import math
import random

import pytest
import torch
from datasets import Dataset
from transformers import TrainerCallback
from trl import RewardConfig, RewardTrainer

from rlhfkit.judges import Judge, VaderJudge
from rlhfkit.models import load_reward_model
from rlhfkit.runs import NonFiniteLossError, load
from rlhfkit.train.reward import (
    REWARD_META,
    RewardModelJudge,
    RewardSettings,
    pairwise_accuracy,
    to_trl_preferences,
    train_reward_model,
)

LN2 = math.log(2.0)


def easy_pairs(n, seed):
    """Clearly separable pairs: a positive review (chosen) and a negative one (rejected) of the same item."""
    from rlhfkit.tiny import corpus

    rng = random.Random(seed)
    items, _ = corpus.split_items(corpus.all_items())
    rows = []
    for _ in range(n):
        item = rng.choice(items)
        rows.append(
            {
                "prompt": corpus.prompt_for(rng, item),
                "chosen": corpus.generate_review(rng, item, "positive"),
                "rejected": corpus.generate_review(rng, item, "negative"),
            }
        )
    return rows


def quick(**kw):
    base = dict(batch_size=16, save_steps=100, n_samples=4, trl_overrides={"disable_tqdm": True})
    base.update(kw)
    return RewardSettings(**base)


@pytest.fixture(scope="module")
def random_rm(tiny_path):
    """A reward model straight from the causal LM, its new score head scaled up so rewards are of order 1."""
    model = load_reward_model(tiny_path, device="cpu")
    with torch.no_grad():
        model.score.weight.mul_(50.0)
    return model


@pytest.fixture(scope="module")
def easy_run(tiny_path, tmp_path_factory):
    rows = easy_pairs(320, seed=0)
    run = train_reward_model(tiny_path, rows, quick(), tmp_path_factory.mktemp("rm") / "easy")
    return run, rows


def test_bradley_terry_loss_values():
    # TRL's RewardTrainer.compute_loss: -logsigmoid(r_chosen - r_rejected [- margin]).mean()
    def bt(chosen, rejected, margin=0.0):
        return float(-torch.nn.functional.logsigmoid(torch.tensor(chosen) - torch.tensor(rejected) - margin).mean())

    assert bt([0.0, 3.0], [0.0, 3.0]) == pytest.approx(0.6931, abs=1e-4)
    assert bt([1.0], [0.0]) == pytest.approx(math.log(1 + math.exp(-1.0)))
    assert bt([1.0], [0.0]) < LN2 < bt([0.0], [1.0])
    assert bt([2.0], [0.0], margin=2.0) == pytest.approx(LN2)  # a margin demands that much more separation


def test_first_logged_loss_of_a_zero_score_head_is_ln2(tiny_path, tmp_path):
    model = load_reward_model(tiny_path, device="cpu")
    torch.nn.init.zeros_(model.score.weight)  # every reward is exactly 0, so every pair sits at zero margin
    run = train_reward_model(
        model,
        easy_pairs(16, seed=1),
        quick(max_steps=1, n_samples=0),
        tmp_path / "ln2",
        eval_data=easy_pairs(6, seed=2),
    )
    first = run.metrics.dropna(subset=["loss"]).iloc[0]
    assert first["step"] == 1
    assert first["loss"] == pytest.approx(LN2, abs=1e-4)
    assert first["margin"] == 0 and first["accuracy"] == 0  # ties are not counted as correct
    # eval_data replaces the held-out split: all 16 pairs train, the 6 given ones evaluate.
    assert run.summary["n_train_pairs"] == 16 and run.summary["n_heldout_pairs"] == 6
    assert run.summary["heldout_source"] == "eval_data" and 0 <= run.summary["heldout_accuracy"] <= 1


class Snapshot(TrainerCallback):
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = {n: p.detach().clone() for n, p in model.named_parameters()}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.after = {n: p.detach().clone() for n, p in model.named_parameters()}


def test_lora_reward_model_trains_adapters_and_head_only(tiny_path, tmp_path):
    from rlhfkit.models import LoraSettings

    snap = Snapshot()
    run = train_reward_model(
        tiny_path,
        easy_pairs(16, seed=4),
        quick(max_steps=2, batch_size=8, heldout_fraction=0, n_samples=0, lora=LoraSettings(r=4, alpha=8, dropout=0.0)),
        tmp_path / "lora",
        callbacks=[snap],
    )
    changed = [n for n in snap.before if not torch.equal(snap.before[n], snap.after[n])]
    assert changed and all("lora_" in n or "score" in n for n in changed), changed
    assert any("score" in n for n in changed)
    # run/model is the merged classifier with the trained head; the judge loads it like any other.
    trained_head = next(v for n, v in snap.after.items() if "score" in n and "modules_to_save" in n)
    merged = load_reward_model(run.model_path, device="cpu")
    assert torch.equal(merged.score.weight, trained_head)
    assert (run.path / "adapter" / "adapter_config.json").exists()


@pytest.mark.slow
def test_reward_model_learns_separable_pairs(easy_run):
    run, rows = easy_run
    assert run.status["state"] == "finished" and run.stage == "reward"
    assert run.summary["heldout_accuracy"] > 0.8
    assert run.summary["n_heldout_pairs"] == 32 and run.summary["n_train_pairs"] == 288
    chosen, rejected = run.summary["rewards_chosen"], run.summary["rewards_rejected"]
    assert chosen["mean"] > rejected["mean"]
    assert chosen["q05"] <= chosen["q25"] <= chosen["median"] <= chosen["q75"] <= chosen["q95"]
    assert {"loss", "accuracy", "margin", "mean_reward"} <= set(run.metrics.columns)
    final = run.metrics.dropna(subset=["eval_accuracy"]).iloc[-1]
    assert final["eval_accuracy"] == pytest.approx(run.summary["heldout_accuracy"])
    assert run.config["n_heldout"] == 32 and run.config["chat"] is True
    assert len(run.samples) == 8 and set(run.samples["label"]) == {"chosen", "rejected"}
    assert (run.model_path / REWARD_META).exists()
    # The saved model scores as the run reported: the judge reads the chat setting saved beside it.
    judge = RewardModelJudge(run.model_path)
    assert judge.chat is True and judge.max_length == 256
    held = run.samples[run.samples.pair == 0].set_index("label")
    again = judge([held.prompt["chosen"]] * 2, [held.response["chosen"], held.response["rejected"]])
    assert again == pytest.approx([held.reward["chosen"], held.reward["rejected"]], abs=1e-5)
    assert pairwise_accuracy(judge, rows[:40]) > 0.8  # the training pairs themselves


def test_judge_scores_exactly_what_the_trainer_tokenized(random_rm, tiny_tokenizer, tmp_path):
    judge = RewardModelJudge(random_rm, tiny_tokenizer)
    assert isinstance(judge, Judge) and judge.chat is True
    # Pairs of varied lengths (so the batch pads), one with a margin, fed to a RewardTrainer the way training did.
    sample = [dict(r, margin=m) for r, m in zip(easy_pairs(4, seed=7), [0.0, 0.5, 1.0, 0.0])]
    sample[2]["chosen"] = "Fine."
    trl_rows = to_trl_preferences(sample, chat=True)
    args = RewardConfig(
        output_dir=str(tmp_path / "t"),
        use_cpu=True,
        bf16=False,
        report_to="none",
        activation_checkpointing=False,
        center_rewards_coefficient=0.01,
        max_length=256,
    )
    model = judge.model
    trainer = RewardTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(trl_rows),
        processing_class=copy.deepcopy(tiny_tokenizer),
    )
    tokenized = [trainer.train_dataset[i] for i in range(len(sample))]
    for row, tok in zip(sample, tokenized):
        assert judge.encode(row["prompt"], row["chosen"]) == tok["chosen_ids"]
        assert judge.encode(row["prompt"], row["rejected"]) == tok["rejected_ids"]
    assert tiny_tokenizer.decode(tokenized[0]["chosen_ids"]) == (
        f"<|user|>{sample[0]['prompt']}<|end|><|assistant|>{sample[0]['chosen']}<|end|>"
    )

    batch = trainer.data_collator(tokenized)
    model.eval()
    with torch.no_grad():
        loss, outputs = trainer.compute_loss(model, dict(batch), return_outputs=True)
    trainer_chosen, trainer_rejected = outputs.logits.squeeze(-1).chunk(2)
    prompts = [r["prompt"] for r in sample]
    ours_chosen = judge(prompts, [r["chosen"] for r in sample])
    ours_rejected = judge(prompts, [r["rejected"] for r in sample])
    assert ours_chosen == pytest.approx(trainer_chosen.tolist(), abs=1e-5)
    assert ours_rejected == pytest.approx(trainer_rejected.tolist(), abs=1e-5)
    # ...and TRL's loss is Bradley-Terry with the margin, plus the centering term.
    c, r = torch.tensor(ours_chosen), torch.tensor(ours_rejected)
    expected = -torch.nn.functional.logsigmoid(c - r - batch["margin"]).mean() + 0.01 * ((c + r) ** 2).mean()
    assert float(loss) == pytest.approx(float(expected), abs=1e-5)
    # Conversational input (what TRL's reward_funcs hand over) scores the same as strings.
    as_messages = judge(
        [[{"role": "user", "content": p}] for p in prompts],
        [[{"role": "assistant", "content": x["chosen"]}] for x in sample],
    )
    assert as_messages == pytest.approx(ours_chosen, abs=1e-6)


def test_plain_text_judge_matches_trls_standard_tokenization(random_rm, tiny_tokenizer, tmp_path):
    # Without a chat template TRL appends EOS to plain prompt + response text; the judge must do the same.
    plain = copy.deepcopy(tiny_tokenizer)
    plain.chat_template = None
    judge = RewardModelJudge(random_rm, plain)
    assert judge.chat is False
    sample = easy_pairs(3, seed=8)
    sample[1]["chosen"] += plain.eos_token  # already terminated: not doubled
    args = RewardConfig(
        output_dir=str(tmp_path / "p"), use_cpu=True, bf16=False, report_to="none", activation_checkpointing=False
    )
    trainer = RewardTrainer(
        model=judge.model, args=args, train_dataset=Dataset.from_list(sample), processing_class=plain
    )
    tokenized = [trainer.train_dataset[i] for i in range(len(sample))]
    assert [judge.encode(r["prompt"], r["chosen"]) for r in sample] == [t["chosen_ids"] for t in tokenized]
    assert tokenized[1]["chosen_ids"][-1] == plain.eos_token_id and tokenized[1]["chosen_ids"][-2] != plain.eos_token_id
    with torch.no_grad():
        logits = judge.model(**trainer.data_collator(tokenized)).logits.squeeze(-1)
    prompts = [r["prompt"] for r in sample]
    scores = judge(prompts, [r["chosen"] for r in sample]) + judge(prompts, [r["rejected"] for r in sample])
    assert scores == pytest.approx(logits.tolist(), abs=1e-5)


def test_pairwise_accuracy_of_any_judge(random_rm, tiny_tokenizer):
    rows = easy_pairs(24, seed=9)
    flipped = [dict(r, chosen=r["rejected"], rejected=r["chosen"]) for r in rows]
    assert pairwise_accuracy(VaderJudge(), rows) > 0.9
    assert pairwise_accuracy(VaderJudge(), flipped) < 0.1
    assert pairwise_accuracy(lambda prompts, responses: [0.0] * len(responses), rows) == 0  # ties are wrong
    judge = RewardModelJudge(random_rm, tiny_tokenizer)
    assert pairwise_accuracy(judge, rows) == pytest.approx(1 - pairwise_accuracy(judge, flipped))


class PoisonAt(TrainerCallback):
    """Sets a weight to NaN after optimizer step `step`, so the next step's loss is NaN."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == self.step:
            with torch.no_grad():
                model.score.weight.fill_(float("nan"))


def test_nan_loss_stops_with_the_last_good_checkpoint(tiny_path, tmp_path):
    folder = tmp_path / "nan"
    settings = quick(max_steps=6, batch_size=4, save_steps=2, heldout_fraction=0, n_samples=0)
    with pytest.raises(NonFiniteLossError, match=r"loss became nan at step 4.*checkpoint-2"):
        train_reward_model(tiny_path, easy_pairs(24, seed=2), settings, folder, callbacks=[PoisonAt(3)])
    run = load(folder)
    assert run.status["state"] == "failed" and "checkpoint-2" in run.status["message"]
    assert run.status["checkpoint"].endswith("checkpoint-2")
    assert run.model_path is None
    assert (folder / "checkpoints" / "checkpoint-2").exists()


def test_preference_rows_are_converted_and_split_deterministically():
    rows = to_trl_preferences(
        [{"prompt": "Review X.", "chosen": "Great.", "rejected": "Bad.", "margin": 1.0}], chat=True
    )
    assert rows == [
        {
            "prompt": [{"role": "user", "content": "Review X."}],
            "chosen": [{"role": "assistant", "content": "Great."}],
            "rejected": [{"role": "assistant", "content": "Bad."}],
            "margin": 1.0,
        }
    ]
    conversational = [
        {
            "prompt": [{"role": "user", "content": "a"}],
            "chosen": [{"role": "assistant", "content": "b"}],
            "rejected": [{"role": "assistant", "content": "c"}],
        }
    ]
    with pytest.raises(ValueError, match="conversational .* chat template"):
        to_trl_preferences(conversational, chat=False)
    from rlhfkit.train.reward import _split_heldout

    pairs = easy_pairs(200, seed=3)
    train, held = _split_heldout(pairs, 0.1, seed=0)
    again, held_again = _split_heldout(pairs, 0.1, seed=0)
    assert held == held_again and 15 <= len(held) <= 25 and len(train) + len(held) == 200
    assert not {r["prompt"] for r in held} & {r["prompt"] for r in train}
    assert _split_heldout(pairs, 0.1, seed=1)[1] != held
