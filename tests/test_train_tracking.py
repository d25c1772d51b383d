"""Experiment trackers: every stage's `report_to` setting. TensorBoard event files are read back and compared with
the run's metrics.jsonl (same names under transformers' `train/` prefix, same steps, same values); the default
writes none; a bad value fails early naming the setting."""

import json

import pytest

from rlhfkit.train.dpo import DPOSettings, train_dpo
from rlhfkit.train.online import OnlineSettings, train_online
from rlhfkit.train.reward import RewardSettings, train_reward_model
from rlhfkit.train.sft import SFTSettings, train_sft
from rlhfkit.train.tracking import report_to_names

STAGE_SETTINGS = (SFTSettings, RewardSettings, DPOSettings, OnlineSettings)


@pytest.fixture(scope="module")
def task():
    from rlhfkit.tiny import reviews_task

    return reviews_task()


def event_files(folder):
    return sorted(folder.rglob("events.out.tfevents.*"))


def tensorboard_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """{tag: [(step, value), ...]} of the scalars in the TensorBoard event files directly in `folder`."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def metrics_as_tracked(run_dir) -> dict[str, list[tuple[int, float]]]:
    """What trackers should have got: every numeric column of every metrics.jsonl row, as `train/<column>` at the
    row's step (transformers' naming; `eval_x` would be `eval/x`)."""
    out: dict[str, list] = {}
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        row = json.loads(line)
        for key, value in row.items():
            if key not in ("step", "time") and isinstance(value, (int, float)):
                out.setdefault(f"train/{key}", []).append((row["step"], float(value)))
    return out


def assert_same_series(scalars, expected):
    assert set(scalars) == set(expected)
    for tag, series in expected.items():
        assert [s for s, _ in scalars[tag]] == [s for s, _ in series], tag
        assert [v for _, v in scalars[tag]] == pytest.approx([v for _, v in series], rel=1e-5, abs=1e-6), tag


# ---------------------------------------------------------------------------------------------------------------
# The setting
# ---------------------------------------------------------------------------------------------------------------

def test_report_to_takes_trls_values_and_normalises_them():
    assert report_to_names("none") == [] and report_to_names(None) == [] and report_to_names(["none"]) == []
    assert report_to_names("tensorboard") == ["tensorboard"]
    assert report_to_names(("tensorboard", "tensorboard")) == ["tensorboard"]
    assert "tensorboard" in report_to_names("all")  # every installed tracker


@pytest.mark.parametrize("settings_cls", STAGE_SETTINGS, ids=lambda c: c.__name__)
def test_every_stage_refuses_an_unknown_or_missing_tracker_naming_the_setting(settings_cls, monkeypatch):
    assert settings_cls().report_to == "none"
    with pytest.raises(ValueError, match=r"^report_to: unknown tracker 'tensorbord'; expected 'none', 'all' or any "
                                         r"of tensorboard, wandb, trackio"):
        settings_cls(report_to="tensorbord")
    with pytest.raises(ValueError, match=r"^report_to: \['none', 'tensorboard'\] mixes 'none' with other names"):
        settings_cls(report_to=["none", "tensorboard"])
    with pytest.raises(ValueError, match="^report_to: expected 'none', 'all', a tracker name or a list"):
        settings_cls(report_to=3)
    from transformers.integrations import integration_utils

    monkeypatch.setattr(integration_utils, "get_available_reporting_integrations", lambda: ["tensorboard"])
    with pytest.raises(ValueError, match=r"^report_to: the tracker 'wandb' is not installed; pip install wandb"):
        settings_cls(report_to=["tensorboard", "wandb"])


# ---------------------------------------------------------------------------------------------------------------
# TRL stages
# ---------------------------------------------------------------------------------------------------------------

def test_sft_writes_tensorboard_events_with_the_metrics_of_metrics_jsonl(tiny_path, task, tmp_path):
    settings = SFTSettings(max_steps=3, batch_size=8, learning_rate=1e-3, n_samples=0, report_to="tensorboard",
                           trl_overrides={"disable_tqdm": True})
    run = train_sft(tiny_path, task, settings, tmp_path / "sft")
    assert run.status["state"] == "finished"
    # In the run directory (not under checkpoints/, which a finished run deletes).
    assert event_files(run.path) and all(f.parent == run.path / "tensorboard" for f in event_files(run.path))
    scalars = tensorboard_scalars(run.path / "tensorboard")
    assert [step for step, _ in scalars["train/loss"]] == [1, 2, 3]
    assert_same_series(scalars, metrics_as_tracked(run.path))


def test_sft_by_default_writes_no_event_files(tiny_path, task, tmp_path):
    run = train_sft(tiny_path, task, SFTSettings(max_steps=1, batch_size=4, n_samples=0,
                                                 trl_overrides={"disable_tqdm": True}), tmp_path / "sft")
    assert run.status["state"] == "finished" and not event_files(tmp_path)


@pytest.mark.parametrize("stage", ["reward", "dpo", "rloo"])
def test_other_trl_stages_send_metrics_jsonl_to_tensorboard(stage, tiny_path, task, tmp_path):
    folder = tmp_path / stage
    if stage == "reward":
        pairs = [{"prompt": d["prompt"], "chosen": d["completion"], "rejected": e["completion"]}
                 for d, e in zip(task.demonstrations[:16], task.demonstrations[16:32])]
        # No held-out pairs: the held-out evaluation runs after training and is not a tracked training step.
        run = train_reward_model(tiny_path, pairs, RewardSettings(max_steps=2, batch_size=8, heldout_fraction=0.0,
                                                                  n_samples=0, report_to="tensorboard"), folder)
    elif stage == "dpo":
        pairs = [{"prompt": d["prompt"], "chosen": d["completion"], "rejected": e["completion"]}
                 for d, e in zip(task.demonstrations[:8], task.demonstrations[8:16])]
        run = train_dpo(tiny_path, pairs, DPOSettings(max_steps=2, batch_size=4, warmup_steps=0, n_samples=0,
                                                      device="cpu", report_to=["tensorboard"]), folder)
    else:
        settings = OnlineSettings(max_steps=2, prompts_per_step=2, num_generations=2, max_completion_length=8,
                                  samples_per_log=0, device="cpu", report_to="tensorboard")
        run = train_online(tiny_path, "vader", task.train_prompts[:4], settings, folder)
    assert run.status["state"] == "finished"
    scalars = tensorboard_scalars(folder / "tensorboard")
    expected = metrics_as_tracked(folder)
    if stage == "rloo":  # the shared names rlhfkit adds to TRL's row reach the trackers too
        assert {"train/objective/scores", "train/objective/kl"} <= set(scalars)
    assert_same_series(scalars, expected)
