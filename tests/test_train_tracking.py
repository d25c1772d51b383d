"""Experiment trackers: every stage's `report_to` setting. TensorBoard event files are read back and compared with
the run's metrics.jsonl (same names under transformers' `train/` prefix, same steps, same values); the default
writes none; a bad value fails early naming the setting."""

import json
from pathlib import Path

import pytest
from two_processes import launch_two_cpu_processes

from rlhfkit.train.dpo import DPOSettings, train_dpo
from rlhfkit.train.online import OnlineSettings, train_online
from rlhfkit.train.ppo import METRIC_NAMES, PPOSettings, train_ppo
from rlhfkit.train.reward import RewardSettings, train_reward_model
from rlhfkit.train.sft import SFTSettings, train_sft
from rlhfkit.train.tracking import TRACKERS, report_to_names, tensorboard_dir

STAGE_SETTINGS = (SFTSettings, RewardSettings, DPOSettings, OnlineSettings, PPOSettings)


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
    # Every accepted name is a tracker of both transformers (the TRL stages) and accelerate (our PPO).
    from accelerate.utils import LoggerType
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    assert set(TRACKERS) <= set(INTEGRATION_TO_CALLBACK) & {str(t) for t in LoggerType}


def test_tensorboard_files_go_to_the_run_directory_unless_transformers_variable_says_otherwise(monkeypatch, tmp_path):
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    assert tensorboard_dir(tmp_path / "ppo") == tmp_path / "ppo" / "tensorboard"
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "all"))
    assert tensorboard_dir(tmp_path / "ppo") == tmp_path / "all"


@pytest.mark.parametrize("settings_cls", STAGE_SETTINGS, ids=lambda c: c.__name__)
def test_every_stage_refuses_an_unknown_or_missing_tracker_naming_the_setting(settings_cls, monkeypatch):
    assert settings_cls().report_to == "none"
    with pytest.raises(
        ValueError,
        match=r"^report_to: unknown tracker 'tensorbord'; expected 'none', 'all' or any "
        r"of tensorboard, wandb, trackio",
    ):
        settings_cls(report_to="tensorbord")
    with pytest.raises(ValueError, match=r"^report_to: \['none', 'tensorboard'\] mixes 'none' with other names"):
        settings_cls(report_to=["none", "tensorboard"])
    with pytest.raises(ValueError, match="^report_to: expected 'none', 'all', a tracker name or a list"):
        settings_cls(report_to=3)
    from transformers.integrations import integration_utils

    monkeypatch.setattr(integration_utils, "get_available_reporting_integrations", lambda: ["tensorboard"])
    with pytest.raises(ValueError, match=r"^report_to: the tracker 'wandb' is not installed; pip install wandb"):
        settings_cls(report_to=["tensorboard", "wandb"])


def test_pipeline_report_to_sets_every_training_stage():
    from rlhfkit.pipeline import PipelineSettings

    stages = ("sft", "reward", "ppo", "dpo", "rloo")
    assert [getattr(PipelineSettings(), s).report_to for s in stages] == ["none"] * 5
    quick = PipelineSettings.quick(report_to="tensorboard")
    assert [getattr(quick, s).report_to for s in stages] == ["tensorboard"] * 5
    assert quick.ppo.total_steps < PipelineSettings().ppo.total_steps  # the quick budgets are kept
    with pytest.raises(ValueError, match="^report_to: unknown tracker 'tb'"):
        PipelineSettings(report_to="tb")


def test_cli_pipeline_passes_report_to_and_refuses_a_bad_one(monkeypatch, capsys, tmp_path):
    from rlhfkit import cli, pipeline

    started = []
    monkeypatch.setattr(pipeline, "run_pipeline", lambda settings, **options: started.append(settings))
    assert cli.main(["pipeline", "--quick", "--out", str(tmp_path), "--report-to", "tensorboard"]) == 0
    assert started[0].sft.report_to == ["tensorboard"] and started[0].ppo.report_to == ["tensorboard"]
    assert cli.main(["pipeline", "--out", str(tmp_path), "--report-to", "tensorboard,tensorbord"]) == 2
    assert "rlhfkit pipeline: error: report_to: unknown tracker 'tensorbord'" in capsys.readouterr().err
    assert len(started) == 1


# ---------------------------------------------------------------------------------------------------------------
# TRL stages
# ---------------------------------------------------------------------------------------------------------------


def test_sft_writes_tensorboard_events_with_the_metrics_of_metrics_jsonl(tiny_path, task, tmp_path):
    settings = SFTSettings(
        max_steps=3,
        batch_size=8,
        learning_rate=1e-3,
        n_samples=0,
        report_to="tensorboard",
        trl_overrides={"disable_tqdm": True},
    )
    run = train_sft(tiny_path, task, settings, tmp_path / "sft")
    assert run.status["state"] == "finished"
    # In the run directory (not under checkpoints/, which a finished run deletes).
    assert event_files(run.path) and all(f.parent == run.path / "tensorboard" for f in event_files(run.path))
    scalars = tensorboard_scalars(run.path / "tensorboard")
    assert [step for step, _ in scalars["train/loss"]] == [1, 2, 3]
    assert_same_series(scalars, metrics_as_tracked(run.path))


def test_sft_by_default_writes_no_event_files(tiny_path, task, tmp_path):
    run = train_sft(
        tiny_path,
        task,
        SFTSettings(max_steps=1, batch_size=4, n_samples=0, trl_overrides={"disable_tqdm": True}),
        tmp_path / "sft",
    )
    assert run.status["state"] == "finished" and not event_files(tmp_path)


@pytest.mark.parametrize("stage", ["reward", "dpo", "rloo"])
def test_other_trl_stages_send_metrics_jsonl_to_tensorboard(stage, tiny_path, task, tmp_path):
    folder = tmp_path / stage
    if stage == "reward":
        pairs = [
            {"prompt": d["prompt"], "chosen": d["completion"], "rejected": e["completion"]}
            for d, e in zip(task.demonstrations[:16], task.demonstrations[16:32])
        ]
        # No held-out pairs: the held-out evaluation runs after training and is not a tracked training step.
        run = train_reward_model(
            tiny_path,
            pairs,
            RewardSettings(max_steps=2, batch_size=8, heldout_fraction=0.0, n_samples=0, report_to="tensorboard"),
            folder,
        )
    elif stage == "dpo":
        pairs = [
            {"prompt": d["prompt"], "chosen": d["completion"], "rejected": e["completion"]}
            for d, e in zip(task.demonstrations[:8], task.demonstrations[8:16])
        ]
        run = train_dpo(
            tiny_path,
            pairs,
            DPOSettings(
                max_steps=2, batch_size=4, warmup_steps=0, n_samples=0, device="cpu", report_to=["tensorboard"]
            ),
            folder,
        )
    else:
        settings = OnlineSettings(
            max_steps=2,
            prompts_per_step=2,
            num_generations=2,
            max_completion_length=8,
            samples_per_log=0,
            device="cpu",
            report_to="tensorboard",
        )
        run = train_online(tiny_path, "vader", task.train_prompts[:4], settings, folder)
    assert run.status["state"] == "finished"
    scalars = tensorboard_scalars(folder / "tensorboard")
    expected = metrics_as_tracked(folder)
    if stage == "rloo":  # the shared names rlhfkit adds to TRL's row reach the trackers too
        assert {"train/objective/scores", "train/objective/kl"} <= set(scalars)
    assert_same_series(scalars, expected)


# ---------------------------------------------------------------------------------------------------------------
# Our PPO
# ---------------------------------------------------------------------------------------------------------------

PPO_SMALL = dict(
    total_steps=2, batch_size=8, max_new_tokens=12, num_ppo_epochs=1, num_mini_batches=1, progress=False, device="cpu"
)


def test_ppo_writes_tensorboard_events_with_the_metrics_of_metrics_jsonl(task, tmp_path):
    run = train_ppo(
        "tiny", "vader", task.train_prompts, PPOSettings(**PPO_SMALL, report_to="tensorboard"), run_dir=tmp_path / "ppo"
    )
    assert run.status["state"] == "finished"
    # The same place as the TRL stages: one event file directly in run_dir/tensorboard, the settings as text.
    assert [f.parent for f in event_files(run.path)] == [run.path / "tensorboard"]
    scalars = tensorboard_scalars(run.path / "tensorboard")
    assert {f"train/{name}" for name in METRIC_NAMES} <= set(scalars)
    assert [step for step, _ in scalars["train/objective/kl"]] == [1, 2]
    assert_same_series(scalars, metrics_as_tracked(run.path))


def test_ppo_by_default_writes_no_event_files(task, tmp_path):
    run = train_ppo(
        "tiny", "vader", task.train_prompts, PPOSettings(**{**PPO_SMALL, "total_steps": 1}), run_dir=tmp_path / "ppo"
    )
    assert run.status["state"] == "finished" and not event_files(tmp_path)


TWO_PROCESS_SCRIPT = """
import sys
from accelerate import PartialState
from rlhfkit.tiny import reviews_task
from rlhfkit.train.ppo import PPOSettings, train_ppo

settings = PPOSettings(total_steps=2, batch_size=8, max_new_tokens=12, num_ppo_epochs=1, num_mini_batches=1,
                       progress=False, device="cpu", report_to="tensorboard")
train_ppo("tiny", "vader", reviews_task().train_prompts[:64], settings, run_dir=sys.argv[1])
print(f"rank={PartialState().process_index} num_processes={PartialState().num_processes}", flush=True)
"""


@pytest.mark.slow
def test_ppo_on_two_processes_logs_each_step_once_from_the_main_process(tmp_path):
    script = tmp_path / "two.py"
    script.write_text(TWO_PROCESS_SCRIPT)
    done = launch_two_cpu_processes(
        script, tmp_path / "two", env={"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "rank=1 num_processes=2" in done.stdout, done.stdout  # two processes really ran
    assert len(event_files(tmp_path / "two")) == 1
    scalars = tensorboard_scalars(tmp_path / "two" / "tensorboard")
    assert scalars["train/episode"] == [(1, 8.0), (2, 16.0)]
    assert_same_series(scalars, metrics_as_tracked(tmp_path / "two"))
