"""RLOO and GRPO through TRL: rewarded by a judge, a plain callable or a reward-model folder; the shared objective/*
metrics; samples; LoRA; and a seeded RLOO run that raises the VADER reward."""

import pytest
from safetensors.torch import load_file

from rlhfkit.judges import VaderJudge
from rlhfkit.models import LoraSettings, load_reward_model, load_tokenizer
from rlhfkit.tiny import reviews_task
from rlhfkit.train.online import OnlineSettings, train_online


PROMPTS = [
    "Write a short review of the film The Quiet Harbor.",
    "What did you think of the Lumo 2 kettle? Write a short review.",
    "Review the restaurant Rosa's Bistro in a few sentences.",
    "Share your opinion of the book A Hollow Bridge.",
]


def _fast(**kw) -> OnlineSettings:
    base = dict(
        max_steps=2,
        prompts_per_step=2,
        num_generations=2,
        max_completion_length=12,
        samples_every=1,
        samples_per_log=2,
        device="cpu",
    )
    return OnlineSettings(**{**base, **kw})


def _weights_changed(folder, base_folder) -> bool:
    new, old = load_file(str(folder / "model.safetensors")), load_file(str(base_folder / "model.safetensors"))
    shared = set(new) & set(old)
    assert shared, "no common tensors to compare"
    return any(not new[k].equal(old[k]) for k in shared)


@pytest.fixture(scope="module")
def reward_model_path(tiny_path, tmp_path_factory):
    """A (randomly initialised) sequence-classification reward model built from the tiny model, saved to disk."""
    folder = tmp_path_factory.mktemp("reward_model")
    load_reward_model(tiny_path, device="cpu").save_pretrained(folder)
    load_tokenizer(tiny_path).save_pretrained(folder)
    return folder


def test_settings_validate():
    with pytest.raises(ValueError, match="algorithm must be one of rloo, grpo"):
        OnlineSettings(algorithm="ppo")
    with pytest.raises(ValueError, match="num_generations must be at least 2"):
        OnlineSettings(num_generations=1)
    with pytest.raises(ValueError, match="beta must be >= 0"):
        OnlineSettings(beta=-0.1)


def test_bad_reward_and_prompts_fail_early(tiny_path, tmp_path):
    with pytest.raises(TypeError, match="reward must be a Judge"):
        train_online(tiny_path, 3.0, PROMPTS, _fast(), tmp_path / "a")
    with pytest.raises(ValueError, match=r"prompts\[1\] is an empty string"):
        train_online(tiny_path, VaderJudge(), ["Write a review.", "  "], _fast(), tmp_path / "b")
    with pytest.raises(TypeError, match="prompts must be a list"):
        train_online(tiny_path, VaderJudge(), "Write a review.", _fast(), tmp_path / "c")


@pytest.mark.parametrize("algorithm", ["rloo", "grpo"])
def test_judge_reward_trains_and_logs_shared_metrics(tiny_path, tmp_path, algorithm):
    run = train_online(tiny_path, VaderJudge(), PROMPTS, _fast(algorithm=algorithm), tmp_path / algorithm)
    assert run.status["state"] == "finished" and run.stage == algorithm
    assert _weights_changed(run.model_path, tiny_path)
    rows = run.metrics[run.metrics["reward"].notna()]
    assert rows.step.tolist() == [1, 2]
    # TRL's own names, as is, plus the aliases every online method shares.
    for key in (
        "reward",
        "kl",
        "completions/mean_length",
        "rewards/vader/mean",
        "objective/scores",
        "objective/kl",
        "objective/rlhf_reward",
    ):
        assert rows[key].notna().all(), key
    assert (rows["objective/scores"] == rows["reward"]).all()
    assert rows["objective/kl"].tolist() == pytest.approx((rows["kl"] * rows["completions/mean_length"]).tolist())
    assert rows["objective/kl"].iloc[0] == pytest.approx(0.0, abs=1e-4)  # policy == reference before any update
    assert rows["reward"].between(-1, 1).all()
    # Samples: one per prompt, plain text, with the reward that was used.
    samples = run.samples
    assert len(samples) == 4 and set(samples.step) == {1, 2}
    assert set(samples.prompt) <= set(PROMPTS)
    assert samples.response.map(lambda r: isinstance(r, str)).all()
    assert samples.reward.tolist() == pytest.approx(VaderJudge()(samples.prompt.tolist(), samples.response.tolist()))
    summary = run.summary
    for key in ("reward_before", "reward_after", "kl", "objective/kl", "steps", "seconds"):
        assert summary[key] is not None, key
    assert summary["steps"] == 2 and summary["algorithm"] == algorithm
    assert summary["kl_estimator"].startswith("k1" if algorithm == "rloo" else "k3")


@pytest.mark.parametrize("algorithm", ["rloo", "grpo"])
def test_reward_model_folder_as_reward(tiny_path, reward_model_path, tmp_path, algorithm):
    run = train_online(tiny_path, str(reward_model_path), PROMPTS, _fast(algorithm=algorithm), tmp_path / "rm")
    assert _weights_changed(run.model_path, tiny_path)
    rows = run.metrics[run.metrics["reward"].notna()]
    assert len(rows) == 2
    assert rows["objective/scores"].notna().all() and rows["objective/kl"].notna().all()
    assert str(reward_model_path) in run.summary["reward"]


def test_plain_callable_gets_text_even_when_prompts_use_the_chat_template(tiny_path, tmp_path):
    seen = []

    def exclamations(prompts, completions, **kwargs):
        seen.append((prompts, completions, sorted(kwargs)))
        return [c.count("!") - 0.01 * len(c) for c in completions]

    run = train_online(tiny_path, exclamations, PROMPTS, _fast(max_steps=1), tmp_path / "fn")
    assert run.config["chat_format"] is True  # the prompts went through the chat template
    prompts, completions, kwargs = seen[0]
    assert all(isinstance(p, str) and p in PROMPTS for p in prompts)
    assert all(isinstance(c, str) for c in completions)
    assert "trainer_state" in kwargs  # TRL's extra keyword arguments still reach the callable
    assert "rewards/exclamations/mean" in run.metrics.columns


def test_reward_returning_the_wrong_number_of_scores_is_named(tiny_path, tmp_path):
    def broken(prompts, completions, **kwargs):
        return [1.0]

    with pytest.raises(ValueError, match="reward 'broken' returned 1 scores for 4 completions"):
        train_online(tiny_path, broken, PROMPTS, _fast(max_steps=1), tmp_path / "broken")


def test_lora_trains_the_adapter_and_saves_merged_weights(tiny_path, tmp_path):
    settings = _fast(lora=LoraSettings(r=4, alpha=8, dropout=0.0), learning_rate=1e-2)
    run = train_online(tiny_path, VaderJudge(), PROMPTS, settings, tmp_path / "lora")
    assert (run.path / "adapter" / "adapter_model.safetensors").exists()
    assert not (run.model_path / "adapter_config.json").exists()
    assert _weights_changed(run.model_path, tiny_path)
    assert run.metrics["objective/kl"].notna().any()  # the reference is the base with the adapter disabled


@pytest.mark.slow
def test_rloo_raises_the_vader_reward(tiny_path, tiny_model, tiny_tokenizer, tmp_path):
    from rlhfkit.sampling import SamplingSettings, sample_candidates

    task = reviews_task()
    # The starting policy's mean VADER score on training prompts, sampled the way RLOO samples.
    start = sample_candidates(
        tiny_model,
        tiny_tokenizer,
        task.train_prompts[:64],
        SamplingSettings(k=2, seed=0, max_new_tokens=48, batch_size=64),
        progress=False,
    )
    start_reward = sum(VaderJudge()(start.prompt.tolist(), start.response.tolist())) / len(start)

    run = train_online(
        tiny_path, VaderJudge(), task, OnlineSettings(max_steps=20, seed=0, device="cpu"), tmp_path / "rloo"
    )
    summary = run.summary
    # Seeds 0-5 ended 20 steps at a mean reward (last five steps) of 0.53 to 0.77, from about 0.34.
    assert summary["reward_after_mean5"] > start_reward + 0.1
    assert 0 < summary["objective/kl"] < 50
    assert run.samples.gold_score.notna().all()  # the task's gold judge scores the logged samples
