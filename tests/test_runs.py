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
