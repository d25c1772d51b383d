"""The run directory: written as training goes, read back after a crash or a restart."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass

import pytest
from transformers import AutoModelForCausalLM

from rlhfkit import runs


@dataclass
class _Settings:
    learning_rate: float = 1e-3
    steps: int = 10


def test_run_writes_config_metrics_samples_and_reads_them_back(tmp_path):
    run = runs.Run(tmp_path / "r", stage="demo", config=_Settings(), seed=7)
    for step in range(3):
        run.log(step, {"loss": 1.0 / (step + 1), "objective/kl": 0.1 * step})
    run.log_samples(2, [{"prompt": "p", "response": "<b>hi</b>", "score": 0.5}])
    run.finish({"final_loss": 1 / 3})
    data = runs.load(tmp_path / "r")
    assert data.stage == "demo" and data.config == {"learning_rate": 1e-3, "steps": 10}
    assert json.loads((tmp_path / "r" / "config.json").read_text())["seed"] == 7
    assert {"torch", "transformers", "trl", "python"} <= set(data.versions)
    assert data.metrics.step.tolist() == [0, 1, 2]
    assert data.metrics["objective/kl"].tolist() == pytest.approx([0.0, 0.1, 0.2])
    assert data.samples.response.tolist() == ["<b>hi</b>"] and data.samples.step.tolist() == [2]
    assert data.status["state"] == "finished" and data.summary == {"final_loss": pytest.approx(1 / 3)}


def test_resume_appends_and_a_fresh_run_starts_clean(tmp_path):
    run = runs.Run(tmp_path, stage="s", config={})
    run.log(0, {"loss": 1.0})
    run.set_status("interrupted")
    runs.Run(tmp_path, stage="s", config={}, resume=True).log(1, {"loss": 0.5})
    assert runs.load(tmp_path).metrics.step.tolist() == [0, 1]
    with pytest.raises(FileExistsError, match="unfinished run \\(running\\)"):
        runs.Run(tmp_path, stage="s", config={})
    runs.Run(tmp_path, stage="s", config={}, overwrite=True).log(0, {"loss": 2.0})
    assert runs.load(tmp_path).metrics.loss.tolist() == [2.0]


def test_a_run_still_marked_running_is_not_overwritten(tmp_path):
    runs.Run(tmp_path, stage="s", config={})
    with pytest.raises(FileExistsError, match="pass resume=True to continue it, overwrite=True to start over"):
        runs.Run(tmp_path, stage="s", config={})


def test_disabled_run_writes_nothing(tmp_path):
    run = runs.Run(tmp_path / "r", stage="s", config={}, enabled=False)
    run.log(0, {"loss": 1.0})
    run.finish({})
    assert not (tmp_path / "r").exists()


def test_killed_writer_loses_no_acknowledged_row(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from rlhfkit.runs import Run
        run = Run({str(tmp_path)!r}, stage="s", config={{}})
        step = 0
        while True:
            run.log(step, {{"loss": float(step)}})
            print(step, flush=True)   # acknowledged only after the row is on disk
            step += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    acknowledged = [int(proc.stdout.readline()) for _ in range(50)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    steps = runs.load(tmp_path).metrics.step.tolist()
    assert steps[: len(acknowledged)] == acknowledged  # every acknowledged row, in order
    assert runs.load(tmp_path).status["state"] == "running"  # a crash is visible as a run that never finished


def test_torn_last_line_is_ignored(tmp_path):
    run = runs.Run(tmp_path, stage="s", config={})
    run.log(0, {"loss": 1.0})
    with (tmp_path / "metrics.jsonl").open("a") as f:
        f.write('{"step": 1, "loss"')  # a write cut off by a crash
    assert runs.load(tmp_path).metrics.step.tolist() == [0]


def test_save_model_is_atomic_and_loadable(tmp_path, tiny_model, tiny_tokenizer):
    run = runs.Run(tmp_path, stage="s", config={})
    first = run.save_model(tiny_model, tiny_tokenizer)
    second = run.save_model(tiny_model, tiny_tokenizer)  # replacing an existing copy
    assert first == second == run.model_path and (first / "model.safetensors").exists()
    assert AutoModelForCausalLM.from_pretrained(first).config.model_type == "llama"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_load_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a run directory: config.json"):
        runs.load(tmp_path)


# --- whose files: a run writes only into a new folder, an empty one, or a run directory of its own -----------------


def _listing(folder):
    return {p.name: p.read_text() for p in folder.iterdir() if p.is_file()}


def test_a_folder_holding_someone_elses_files_is_refused_and_left_untouched(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 0, "my": "own numbers"}\n')
    (tmp_path / "notes.txt").write_text("mine")
    before = _listing(tmp_path)
    for kwargs in ({}, {"resume": True}, {"overwrite": True}):
        with pytest.raises(
            FileExistsError,
            match=f"{tmp_path} is not empty and is not an rlhfkit run directory.*found metrics.jsonl, notes.txt",
        ):
            runs.Run(tmp_path, stage="s", config={}, **kwargs)
    assert _listing(tmp_path) == before


def test_an_empty_folder_or_one_with_only_system_litter_is_taken(tmp_path):
    (tmp_path / ".DS_Store").write_text("finder")
    runs.Run(tmp_path, stage="s", config={}).finish({})
    assert runs.load(tmp_path).status["state"] == "finished" and (tmp_path / ".DS_Store").read_text() == "finder"


def test_the_manifest_lists_what_the_run_wrote_and_a_new_run_keeps_the_users_extra_files(
    tmp_path, tiny_model, tiny_tokenizer
):
    run = runs.Run(tmp_path, stage="sft", config={}, seed=1)
    run.log(0, {"loss": 1.0})
    run.log_samples(0, [{"prompt": "p", "response": "r"}])
    run.save_model(tiny_model, tiny_tokenizer)
    run.checkpoint_path.mkdir()
    run.finish({"loss": 1.0})
    manifest = runs.read_manifest(tmp_path)
    assert manifest["kind"] == "run" and manifest["stage"] == "sft" and manifest["rlhfkit_version"]
    assert set(manifest["files"]) == {
        "config.json",
        "status.json",
        "metrics.jsonl",
        "samples.jsonl",
        "model",
        "checkpoints",
        "summary.json",
    }
    (tmp_path / "notes.txt").write_text("what I saw")
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "loss.png").write_bytes(b"png")

    runs.Run(tmp_path, stage="dpo", config={}).log(0, {"loss": 2.0})  # a finished run is replaced ...
    assert runs.load(tmp_path).metrics.loss.tolist() == [2.0] and runs.load(tmp_path).samples.empty
    assert runs.read_manifest(tmp_path)["stage"] == "dpo"
    assert (tmp_path / "notes.txt").read_text() == "what I saw"  # ... and the user's files stay
    assert (tmp_path / "plots" / "loss.png").read_bytes() == b"png"

    assert runs.remove_written(tmp_path) == ["notes.txt", "plots"]  # rlhfkit's own files go, the user's stay
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt", "plots", "rlhfkit.json"]


def test_a_run_file_name_that_rlhfkit_did_not_write_stops_a_new_run(tmp_path):
    runs.Run(tmp_path, stage="s", config={}).finish({})  # logged no samples
    (tmp_path / "samples.jsonl").write_text('{"mine": 1}\n')
    with pytest.raises(FileExistsError, match="holds samples.jsonl, which rlhfkit did not write"):
        runs.Run(tmp_path, stage="s", config={}, overwrite=True)
    assert (tmp_path / "samples.jsonl").read_text() == '{"mine": 1}\n'


def test_a_pipeline_folder_is_not_taken_as_a_run_directory(tmp_path):
    runs.Manifest(tmp_path, "pipeline").claim("summary.json")
    with pytest.raises(FileExistsError, match="is an rlhfkit pipeline folder, not a run directory"):
        runs.Run(tmp_path, stage="s", config={})


def _stage_call(stage, tiny_path, folder, resume):
    """Each training stage, called with a budget it never reaches (it must refuse the folder first)."""
    prompts = ["Write a short review of the film The Quiet Harbor.", "Write a short review of the book Dust."]
    pairs = [{"prompt": p, "chosen": "Great, I loved it.", "rejected": "Bad."} for p in prompts] * 2
    if stage == "sft":
        from rlhfkit.train.sft import SFTSettings, train_sft

        demos = [{"prompt": p, "completion": "Great, I loved it."} for p in prompts]
        return train_sft(tiny_path, demos, SFTSettings(max_steps=1, n_samples=0, device="cpu"), folder, resume=resume)
    if stage == "reward":
        from rlhfkit.train.reward import RewardSettings, train_reward_model

        return train_reward_model(tiny_path, pairs, RewardSettings(max_steps=1, device="cpu"), folder, resume=resume)
    if stage == "dpo":
        from rlhfkit.train.dpo import DPOSettings, train_dpo

        return train_dpo(tiny_path, pairs, DPOSettings(max_steps=1, n_samples=0, device="cpu"), folder, resume=resume)
    if stage == "rloo":
        from rlhfkit.judges import VaderJudge
        from rlhfkit.train.online import OnlineSettings, train_online

        return train_online(
            tiny_path, VaderJudge(), prompts, OnlineSettings(max_steps=1, device="cpu"), folder, resume=resume
        )
    from rlhfkit.judges import VaderJudge
    from rlhfkit.train.ppo import PPOSettings, train_ppo

    return train_ppo(
        tiny_path,
        VaderJudge(),
        prompts,
        PPOSettings(total_steps=1, batch_size=2, device="cpu", progress=False),
        folder,
        resume=resume,
    )


@pytest.mark.parametrize("stage", ["sft", "reward", "dpo", "rloo", "ppo"])
def test_every_training_stage_refuses_a_folder_with_someone_elses_metrics(stage, tiny_path, tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 0, "loss": 0.5}\n')
    for resume in (False, True):
        with pytest.raises(FileExistsError, match="not an rlhfkit run directory.*found metrics.jsonl"):
            _stage_call(stage, tiny_path, tmp_path, resume)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl"]
    assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 0, "loss": 0.5}\n'
