"""The helpers notebooks 04-06 rebuild a missing earlier result with: preference labels from notebook 02's export or
a simulated annotator, and notebook 03's reward model or one trained on them (through `rlhfkit.stages`)."""

import json

import pytest

from rlhfkit import stages
from rlhfkit.data import load_task
from rlhfkit.notebook import earlier_labels_or, reward_run_or_train
from rlhfkit.runs import Run

PAIRS = [
    {"prompt": "Review the film Storm.", "chosen": "A wonderful film.", "rejected": "A dull film."},
    {"prompt": "Review the book Rain.", "chosen": "I loved it.", "rejected": "I hated it."},
]


@pytest.fixture
def export(tmp_path):
    path = tmp_path / "preferences.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in PAIRS))
    return path


def test_earlier_labels_or_reads_the_export_when_it_exists_and_reuses_its_labels(tmp_path, export, capsys):
    settings = stages.LabelSettings(n_prompts=4, k=2, n_check_prompts=0)
    task = load_task("reviews")
    labels = earlier_labels_or(export, "no/model/needed", task, settings, tmp_path / "labels")
    assert labels.preferences.dataset.select_columns(["prompt", "chosen", "rejected"]).to_list() == PAIRS
    assert (tmp_path / "labels" / stages.PREFERENCES).exists()
    assert capsys.readouterr().out == f"2 preference pairs from notebook 02's export ({export})\n"
    again = earlier_labels_or(export, "no/model/needed", task, settings, tmp_path / "labels")
    assert len(again.preferences) == 2
    assert capsys.readouterr().out.endswith(f", reused from {tmp_path / 'labels'}\n")


def test_earlier_labels_or_simulates_an_annotator_without_the_export(tmp_path, tiny_path, capsys):
    settings = stages.LabelSettings(n_prompts=3, k=3, n_check_prompts=0, max_new_tokens=12, flip_rate=0.2)
    missing = tmp_path / "missing.jsonl"
    labels = earlier_labels_or(missing, tiny_path, load_task("reviews"), settings, tmp_path / "labels")
    assert 0 < len(labels.preferences) <= 9 and labels.agreement_with_gold is not None
    assert capsys.readouterr().out == (
        f"{len(labels.preferences)} preference pairs from a simulated annotator (gold judge, 20% flips) over the SFT "
        f"model's candidates, since {missing} is missing\n"
    )


def test_reward_run_or_train_reuses_notebook_03s_run_and_otherwise_trains_on_the_labels(
    tmp_path, export, monkeypatch, capsys
):
    import rlhfkit.train.reward as reward_module
    from rlhfkit.train.reward import RewardSettings

    calls = []
    monkeypatch.setattr(
        reward_module, "train_reward_model", lambda *args, **kwargs: calls.append((args, kwargs)) or "trained"
    )
    settings, labels = RewardSettings(max_steps=3), stages.LabelSettings(n_check_prompts=0)
    task = load_task("reviews")

    done = Run(tmp_path / "done", stage="reward", config={}, seed=0)
    done.model_path.mkdir()
    done.finish({"heldout_accuracy": 0.8})
    reused = reward_run_or_train(
        done.path, tmp_path / "out", "sft", task, preferences=export, labels=labels, settings=settings
    )
    assert reused.path == done.path and calls == []
    assert capsys.readouterr().out == f"reward model: notebook 03's, {done.path / 'model'}\n"

    trained = reward_run_or_train(
        tmp_path / "none", tmp_path / "out", "sft", task, preferences=export, labels=labels, settings=settings
    )
    assert trained == "trained"
    (policy, pairs, used, out), kwargs = calls[0]
    assert (policy, used, out, kwargs["resume"]) == ("sft", settings, tmp_path / "out" / "reward", False)
    assert pairs.dataset.select_columns(["prompt", "chosen", "rejected"]).to_list() == PAIRS
    printed = capsys.readouterr().out
    assert "no finished reward model at" in printed and "Run notebook 03 first" in printed
    assert f"2 preference pairs from notebook 02's export ({export})" in printed
