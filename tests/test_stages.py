"""The stage layer (rlhfkit.stages), the result schema (rlhfkit.results) and judges named on the command line."""

import json
import sys

import pandas as pd
import pytest

from rlhfkit import stages
from rlhfkit.results import SCHEMA_VERSION, SUMMARY_KEYS, policy_rows, read_summary, upgrade_summary
from rlhfkit.runs import Run, read_manifest

# --- reuse, resume or run -----------------------------------------------------------------------------------------


def _finished(path, step_count=1):
    run = Run(path, stage="sft", config={"steps": step_count}, seed=0)
    run.claim("model").mkdir()
    (run.model_path / "model.safetensors").write_bytes(b"weights")
    run.finish({"steps": step_count})
    return run


def test_a_training_step_reuses_a_finished_run_unless_told_not_to(tmp_path, capsys):
    out = tmp_path / "sft"
    _finished(out)
    calls = []

    def train(resume):
        calls.append(resume)
        return "trained"

    reused = stages._training_step("sft", out, train, reuse=True, echo=True)
    assert reused.path == out and calls == []
    assert f"[sft] reused: the finished run in {out}" in capsys.readouterr().out

    (out / "my notes.txt").write_text("mine")
    assert stages._training_step("sft", out, train, reuse=False, echo=False) == "trained" and calls == [False]
    assert not (out / "model").exists()  # rlhfkit's files of the earlier run are gone ...
    assert (out / "my notes.txt").read_text() == "mine"  # ... anyone else's stay


def test_a_training_step_resumes_an_interrupted_run_with_a_checkpoint(tmp_path):
    out = tmp_path / "reward"
    run = Run(out, stage="reward", config={}, seed=0)
    (out / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    run.set_status("interrupted", "stopped")
    assert stages.resumable_run(out) and not stages.finished_run(out)
    calls = []
    stages._training_step("reward", out, lambda resume: calls.append(resume), reuse=True, echo=False)
    stages._training_step("reward", out, lambda resume: calls.append(resume), reuse=False, echo=False)
    assert calls == [True, False]  # reuse=False starts over


def test_a_training_step_refuses_a_folder_rlhfkit_did_not_write(tmp_path):
    out = tmp_path / "sft"
    out.mkdir()
    (out / "thesis.tex").write_text("mine")
    from rlhfkit.train.sft import SFTSettings

    with pytest.raises(FileExistsError, match="thesis.tex"):
        stages.sft("tiny", _small_task(), SFTSettings(max_steps=1), out, echo=False)
    assert (out / "thesis.tex").read_text() == "mine"


# --- labels -------------------------------------------------------------------------------------------------------


def _small_task():
    from rlhfkit.tiny.task import reviews_task

    return reviews_task(n_train_prompts=6, n_eval_prompts=3, n_demonstrations=10)


SMALL = stages.LabelSettings(n_prompts=4, k=3, n_check_prompts=3, check_k=2, max_new_tokens=12)


def test_simulated_labels_are_written_reused_and_validated(tmp_path, tiny_path, capsys):
    task = _small_task()
    labels = stages.label_preferences(tiny_path, task, SMALL, tmp_path / "labels", echo=False)
    assert labels.source == "simulated" or "vader" in labels.source.lower() or labels.source
    assert len(labels.preferences) == len(labels.labelled) > 0
    assert 0.0 <= labels.agreement_with_gold <= 1.0
    assert {"prompt", "chosen", "rejected"} <= set(labels.check.columns) and not labels.check.judge_tie.any()
    assert read_manifest(tmp_path / "labels")["kind"] == "labels"
    written = (tmp_path / "labels" / "preferences.jsonl").read_text()

    again = stages.label_preferences(tiny_path, task, SMALL, tmp_path / "labels", echo=True)
    assert "[label] reused" in capsys.readouterr().out
    assert (tmp_path / "labels" / "preferences.jsonl").read_text() == written
    assert again.labelled.equals(pd.read_json(tmp_path / "labels" / "preferences.jsonl", lines=True, dtype=False))


def test_labels_from_a_judge_a_file_or_a_label_store(tmp_path, tiny_path):
    from rlhfkit.labeling import LabelStore

    task = _small_task()
    by_length = stages.label_preferences(tiny_path, task, SMALL, tmp_path / "ai", labels_from="length", echo=False)
    longer = [len(r.chosen.split()) >= len(r.rejected.split()) for r in by_length.labelled.itertuples()]
    assert all(longer)  # the AI labeller (no noise) always prefers the longer response

    pairs = [
        {"prompt": "Review a film.", "chosen": "A warm, funny film.", "rejected": "Bad."},
        {"prompt": "Review a cafe.", "chosen": "Lovely coffee.", "rejected": "Cold and slow."},
    ]
    (tmp_path / "mine.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    from_file = stages.label_preferences(
        tiny_path, task, SMALL, tmp_path / "file", labels_from=tmp_path / "mine.jsonl", echo=False
    )
    assert from_file.preferences.dataset["chosen"] == [p["chosen"] for p in pairs]

    store = LabelStore(tmp_path / "labels.db")
    (item,) = store.add_pairs([{"prompt": "Review a film.", "response_a": "Great!", "response_b": "Dull."}])
    store.record(item, "ana", choice="a")
    from_store = stages.label_preferences(
        tiny_path, task, SMALL, tmp_path / "people", labels_from=tmp_path / "labels.db", echo=False
    )
    assert from_store.source == "label store" and from_store.preferences.dataset["chosen"] == ["Great!"]


def test_labels_need_a_gold_judge_or_another_labeller(tmp_path, tiny_path):
    from rlhfkit.data import Task

    task = Task("mine", ["Say hi.", "Say bye."], ["Say thanks."], [])
    with pytest.raises(ValueError, match="no gold judge to simulate labels from: give labels_from="):
        stages.label_preferences(tiny_path, task, SMALL, tmp_path / "labels", echo=False)


# --- the result schema --------------------------------------------------------------------------------------------


def test_a_version_1_summary_reads_in_the_current_schema(tmp_path):
    old = {"policies": {"sft": {"gold_reward_mean": 0.3, "win_rate_vs_sft": 0.5, "win_rate_vs_sft_ci": [0.5, 0.5]}}}
    (tmp_path / "summary.json").write_text(json.dumps(old))
    new = read_summary(tmp_path)
    assert new["schema_version"] == SCHEMA_VERSION and new["reference"] == "sft"
    assert new["policies"]["sft"] == {"gold_reward_mean": 0.3, "win_rate_vs_ref": 0.5, "win_rate_ci": [0.5, 0.5]}
    assert policy_rows(old) == new["policies"] == policy_rows(old["policies"])
    with pytest.raises(ValueError, match="newer than this rlhfkit reads"):
        upgrade_summary({"schema_version": SCHEMA_VERSION + 1, "policies": {}})


def test_evaluation_rows_carry_exactly_the_schema_fields():
    from rlhfkit import evaluation

    assert evaluation.SUMMARY_KEYS is SUMMARY_KEYS
    assert {"win_rate_vs_ref", "win_rate_ci", "gold_reward_ci", "kl_to_ref"} <= set(SUMMARY_KEYS)


# --- judges named by the user ---------------------------------------------------------------------------------------


def test_a_judge_named_module_function_is_imported_from_the_working_folder(tmp_path, monkeypatch):
    from rlhfkit.judges import Judge, as_judge

    (tmp_path / "my_judges_for_test.py").write_text(
        "def exclaim(prompts, responses):\n    return [float(r.count('!')) for r in responses]\nnot_callable = 3\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    judge = as_judge("my_judges_for_test:exclaim")
    assert isinstance(judge, Judge) and judge(["p", "p"], ["a!", "b!!!"]) == [1.0, 3.0]
    with pytest.raises(ValueError, match="has no attribute 'nope'"):
        as_judge("my_judges_for_test:nope")
    with pytest.raises(ValueError, match="cannot import module 'no_such_module_here'"):
        as_judge("no_such_module_here:f")
    with pytest.raises(ValueError, match="not a Judge or a function"):
        as_judge("my_judges_for_test:not_callable")
    with pytest.raises(ValueError, match="builtin judges are \\['length', 'vader'\\], or name your own"):
        as_judge("vaderr")


def test_a_finished_run_with_other_settings_or_another_start_is_trained_anew(tmp_path, capsys):
    from dataclasses import asdict

    from rlhfkit.train.sft import SFTSettings

    out = tmp_path / "sft"
    run = Run(out, stage="sft", config={"model": "/models/a", **asdict(SFTSettings(max_steps=5))}, seed=0)
    run.claim("model").mkdir()
    run.finish({})
    calls = []
    same = stages._training_step(
        "sft",
        out,
        calls.append,
        reuse=True,
        echo=True,
        settings=SFTSettings(max_steps=5, device="cpu"),
        model="/models/a",
    )
    assert same.path == out and calls == []  # the device is where, not what: still the same run
    assert stages.settings_differences(out, SFTSettings(max_steps=7), "/models/b") == [
        "max_steps: 5 then, 7 now",
        "model: '/models/a' then, '/models/b' now",
    ]
    capsys.readouterr()
    stages._training_step("sft", out, calls.append, reuse=True, echo=True, settings=SFTSettings(max_steps=7))
    assert calls == [False]
    assert "had other settings (max_steps: 5 then, 7 now): training anew" in capsys.readouterr().out


def test_a_ppo_run_is_compared_with_the_value_function_its_settings_decide(tmp_path, capsys, monkeypatch):
    # A LoRA run finished when value_model=None meant a head on the policy (recorded as "shared") is not reused
    # by settings that leave it None today (a separate value model with its backbone frozen).
    from dataclasses import asdict

    from rlhfkit.models import LoraSettings
    from rlhfkit.runs import jsonable
    from rlhfkit.train import ppo as ppo_module

    settings = ppo_module.PPOSettings(lora=LoraSettings(r=4), total_steps=2)
    out = tmp_path / "ppo"
    then = {**asdict(settings), "value_model": "shared", "train_value_backbone": True}
    run = Run(out, stage="ppo", config={"model": "/models/a", **jsonable(then)}, seed=0)
    run.claim("model").mkdir()
    run.finish({})
    calls = []
    monkeypatch.setattr(ppo_module, "train_ppo", lambda *args, **kwargs: calls.append(kwargs["value_model"]))
    stages.ppo("/models/a", "vader", ["a prompt"], settings, out, reward_model_path="/models/rm")
    assert calls == ["/models/rm"]
    assert (
        "had other settings (value_model: 'shared' then, 'separate' now; train_value_backbone: True then, False now)"
        in capsys.readouterr().out
    )


def test_labels_made_with_other_settings_are_made_anew(tmp_path, tiny_path, capsys):
    from dataclasses import replace

    task = _small_task()
    stages.label_preferences(tiny_path, task, SMALL, tmp_path / "labels", echo=False)
    more = stages.label_preferences(tiny_path, task, replace(SMALL, n_prompts=5), tmp_path / "labels", echo=True)
    assert "made with other settings, sources or policy: labelling anew" in capsys.readouterr().out
    assert more.labelled.prompt.nunique() == 5
    stages.label_preferences(tiny_path, task, replace(SMALL, n_prompts=5), tmp_path / "labels", echo=True)
    assert "[label] reused" in capsys.readouterr().out
