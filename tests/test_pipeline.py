"""The main job end to end (quick budgets), and the report's escaping of model text."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from rlhfkit.compare import summary_table, write_report
from rlhfkit.runs import RunData

XSS = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=2">'


def _summary(gold_sft=0.2, gold_ppo=0.6, ppo_win_ci=(0.6, 0.8)):
    def row(gold, kl, win_ci):
        return {
            "gold_reward_mean": gold,
            "gold_reward_ci": [gold - 0.05, gold + 0.05],
            "proxy_reward_mean": gold,
            "kl_to_ref": kl,
            "win_rate_vs_sft": sum(win_ci) / 2,
            "win_rate_vs_sft_ci": list(win_ci),
            "mean_length": 20.0,
        }

    return {"sft": row(gold_sft, 0.0, (0.5, 0.5)), "ppo": row(gold_ppo, 3.0, ppo_win_ci)}


def test_report_escapes_model_text_and_is_self_contained(tmp_path):
    samples = pd.DataFrame(
        [
            {"policy": "sft", "prompt": "Review <b>X</b>", "response": XSS, "gold": 0.1, "proxy": 0.2},
            {"policy": "ppo", "prompt": "Review <b>X</b>", "response": "Great & <i>fun</i>", "gold": 0.9, "proxy": 1.0},
        ]
    )
    metrics = pd.DataFrame({"step": [0, 1], "objective/scores": [0.1, 0.5], "objective/kl": [0.0, 1.0]})
    run = RunData(path=tmp_path, stage="ppo", config={}, status={}, summary={}, metrics=metrics, samples=pd.DataFrame())
    path = write_report(
        tmp_path / "report.html", title="t <script>", summary=_summary(), runs={"ppo": run}, samples=samples
    )
    page = path.read_text()
    assert "window.__pwned" in page  # the text is there, as text ...
    assert "<script>window.__pwned" not in page and "<img src=x" not in page  # ... never as markup
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    assert "Great &amp; &lt;i&gt;fun&lt;/i&gt;" in page and "Review &lt;b&gt;X&lt;/b&gt;" in page
    assert "plotly" in page.lower() and not re.search(r'<script[^>]+src="http', page)  # plotly.js inlined


def test_summary_table_says_when_a_method_does_not_beat_sft():
    assert summary_table(_summary(0.2, 0.6)).verdict.tolist() == ["", "beats sft"]
    assert summary_table(_summary(0.6, 0.2, (0.2, 0.4))).verdict.tolist() == ["", "does NOT beat sft"]
    assert summary_table(_summary(0.6, 0.62, (0.45, 0.6))).verdict.tolist() == ["", "above sft, not significantly"]
    # A gold CI above SFT is not enough when the paired win rate is not clearly above one half.
    assert summary_table(_summary(0.2, 0.6, (0.4, 0.6))).verdict.tolist() == ["", "above sft, not significantly"]


@pytest.mark.slow
def test_quick_pipeline_writes_report_and_summary(tmp_path):
    out = tmp_path / "pipeline"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "rlhfkit"), "pipeline", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    for policy in ("sft", "ppo", "dpo", "rloo"):
        row = summary["policies"][policy]
        for key in (
            "gold_reward_mean",
            "gold_reward_ci",
            "proxy_reward_mean",
            "kl_to_ref",
            "win_rate_vs_ref",
            "mean_length",
        ):
            assert row[key] is not None, (policy, key)
        assert row["gold_reward_ci"][0] <= row["gold_reward_mean"] <= row["gold_reward_ci"][1]
    assert summary["policies"]["sft"]["kl_to_ref"] == 0
    assert summary["schema_version"] == 2 and summary["reference"] == "sft" and summary["not_measured"] == []
    # Even the smoke budget moves gold reward the right way (seed 0: sft 0.28, ppo 0.60, dpo 0.70 when written).
    for method in ("ppo", "dpo"):
        assert summary["policies"][method]["gold_reward_mean"] > summary["policies"]["sft"]["gold_reward_mean"]
    assert 0.5 < summary["reward_model"]["heldout_accuracy"] <= 1
    assert set(summary["seconds"]) >= {"sft", "label", "reward", "ppo", "dpo", "rloo", "evaluation"}
    page = (out / "report.html").read_text()
    assert "Samples side by side" in page and "Gold reward against KL" in page
    assert "reward model held-out accuracy" in result.stdout
    for stage in ("sft", "reward", "ppo", "dpo", "rloo"):
        assert (out / stage / "model" / "model.safetensors").exists(), stage
    from rlhfkit.runs import read_manifest

    manifest = read_manifest(out)  # what the pipeline wrote, so that a rerun can tell its files from a user's
    assert manifest["kind"] == "pipeline"
    assert set(manifest["stages"]) == {"sft", "label", "reward", "ppo", "dpo", "rloo"}
    assert set(manifest["files"]) == {
        "sft",
        "preferences.jsonl",
        "reward_check.jsonl",
        "reward",
        "ppo",
        "dpo",
        "rloo",
        "summary.json",
        "report.html",
    }


def test_the_value_model_rule_is_decided_once_on_the_ppo_settings():
    # The value function is a separate model (started from the reward model by stages.ppo) unless "shared" is
    # asked for; its backbone trains without LoRA (as TRL did) and stays frozen with LoRA, where a head on the
    # LoRA policy lost gold reward and a frozen reward model won it (bench/ppo_vs_trl.py on both models).
    from rlhfkit.models import LoraSettings
    from rlhfkit.train.ppo import PPOSettings

    lora = LoraSettings(r=4)
    assert PPOSettings().separate_value_model and PPOSettings().trains_value_backbone
    assert PPOSettings(lora=lora).separate_value_model and not PPOSettings(lora=lora).trains_value_backbone
    assert PPOSettings(lora=lora, train_value_backbone=True).trains_value_backbone
    assert not PPOSettings(train_value_backbone=False).trains_value_backbone
    assert not PPOSettings(value_model="shared").separate_value_model
    assert not PPOSettings(lora=lora, value_model="shared").separate_value_model
    with pytest.raises(ValueError, match="train_value_backbone must be True, False or None, got 'no'"):
        PPOSettings(train_value_backbone="no")


# --- the output folder: only rlhfkit's own files are ever replaced; an earlier output is continued ---------------


def _tiny_settings(out, **overrides):
    """The whole pipeline at a budget of seconds: DPO only, 2 steps per stage, a handful of prompts."""
    from rlhfkit.evaluation import EvalSettings
    from rlhfkit.pipeline import PipelineSettings
    from rlhfkit.train.dpo import DPOSettings
    from rlhfkit.train.reward import RewardSettings
    from rlhfkit.train.sft import SFTSettings

    quiet = {"disable_tqdm": True}
    return PipelineSettings(
        out_dir=str(out),
        methods=("dpo",),
        n_label_prompts=8,
        k=3,
        n_rm_check_prompts=4,
        rm_check_k=2,
        sft=SFTSettings(max_steps=2, batch_size=4, n_samples=0, device="cpu", trl_overrides=quiet),
        reward=RewardSettings(max_steps=2, batch_size=4, n_samples=0, device="cpu", trl_overrides=quiet),
        dpo=DPOSettings(max_steps=2, batch_size=4, n_samples=0, device="cpu", trl_overrides=quiet),
        evaluation=EvalSettings(n_prompts=4, max_new_tokens=16, n_bootstrap=20, device="cpu"),
        **overrides,
    )


class _InterruptAtFirstStep:
    """A TrainerCallback that stops training like Ctrl-C after its first step."""

    def __new__(cls):
        from transformers import TrainerCallback

        class Interrupt(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                raise KeyboardInterrupt

        return Interrupt()


def test_an_interrupted_pipeline_continues_from_its_finished_stages(tmp_path, tiny_path, capsys):
    from rlhfkit.pipeline import run_pipeline
    from rlhfkit.runs import load, read_manifest

    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(_tiny_settings(out), echo=True, callbacks={"reward": [_InterruptAtFirstStep()]})
    manifest = read_manifest(out)
    assert manifest["kind"] == "pipeline" and set(manifest["stages"]) == {"sft", "label"}
    assert load(out / "reward").status["state"] == "interrupted"
    sft_model = (out / "sft" / "model" / "model.safetensors").stat().st_mtime_ns
    preferences = (out / "preferences.jsonl").read_text()
    capsys.readouterr()

    summary = run_pipeline(_tiny_settings(out), echo=True)  # the same settings: continued
    printed = capsys.readouterr().out
    assert "[sft] reused" in printed and "[label] reused" in printed and "[reward] resuming" in printed
    assert "[sft] ..." not in printed and "[label] ..." not in printed
    assert (out / "sft" / "model" / "model.safetensors").stat().st_mtime_ns == sft_model
    assert (out / "preferences.jsonl").read_text() == preferences
    assert load(out / "reward").status["state"] == "finished" and load(out / "reward").summary["steps"] == 2
    assert summary["reused_stages"] == ["sft", "label"] and set(summary["policies"]) == {"sft", "dpo"}
    assert set(read_manifest(out)["stages"]) == {"sft", "label", "reward", "dpo"}
    assert set(read_manifest(out)["files"]) == {
        "sft",
        "preferences.jsonl",
        "reward_check.jsonl",
        "reward",
        "dpo",
        "summary.json",
        "report.html",
    }


def test_an_earlier_output_with_other_settings_is_replaced_only_with_overwrite_and_added_files_survive(
    tmp_path, tiny_path
):
    from rlhfkit.pipeline import run_pipeline
    from rlhfkit.runs import read_manifest

    out = tmp_path / "out"
    run_pipeline(_tiny_settings(out), echo=False)
    (out / "my notes.txt").write_text("keep me")
    (out / "sft" / "my plot.png").write_bytes(b"png")
    first_summary = (out / "summary.json").read_text()
    with pytest.raises(FileExistsError, match="other settings \\(seed: 0 then, 1 now\\).*--overwrite"):
        run_pipeline(_tiny_settings(out, seed=1), echo=False)
    assert (out / "summary.json").read_text() == first_summary

    summary = run_pipeline(_tiny_settings(out, seed=1), echo=False, overwrite=True)
    assert summary["reused_stages"] == [] and summary["settings"]["seed"] == 1
    assert read_manifest(out)["settings"]["seed"] == 1
    assert (out / "my notes.txt").read_text() == "keep me"
    assert (out / "sft" / "my plot.png").read_bytes() == b"png"
    assert (out / "sft" / "model" / "model.safetensors").exists()


def test_a_task_without_a_gold_judge_runs_what_needs_none_and_says_what_it_cannot_measure(tmp_path, tiny_path):
    from rlhfkit.data import Task
    from rlhfkit.pipeline import run_pipeline

    prompts = [f"Write a short review of product number {i}." for i in range(12)]
    task = Task("no judge", prompts[:9], prompts[9:], [])  # no demonstrations either: SFT is skipped
    pairs = [{"prompt": p, "chosen": "Great, I loved it.", "rejected": "Awful."} for p in prompts[:9]]
    (tmp_path / "mine.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    with pytest.raises(ValueError, match="has no gold judge, so nothing can label preferences: name one with --judge"):
        run_pipeline(_tiny_settings(tmp_path / "refused", task=task), echo=False)

    summary = run_pipeline(_tiny_settings(tmp_path / "out", task=task, labels_from=str(tmp_path / "mine.jsonl")))
    assert set(summary["policies"]) == {"sft", "dpo"} and "sft" not in summary["runs"]
    assert summary["settings"]["task"]["name"] == "no judge" and summary["settings"]["task"]["gold_judge"] is None
    for row in summary["policies"].values():
        assert row["gold_reward_mean"] is None and row["win_rate_vs_ref"] is None
        assert row["proxy_reward_mean"] is not None and row["kl_to_ref"] is not None
    assert summary["reward_model"]["heldout_accuracy"] is None and summary["preferences"]["pairs"] == 9
    assert "gold reward" in summary["not_measured"]
    assert "no gold judge" in (tmp_path / "out" / "report.html").read_text()
