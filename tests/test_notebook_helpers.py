"""The notebooks' set-up helpers: paths relative to the project folder, finished runs, and the common set-up."""

import json
from pathlib import Path

import pytest
import torch

from rlhfkit.notebook import NotebookSetup, finished_run, project_path, setup, sft_run_or_train
from rlhfkit.runs import Run


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A project folder with a notebooks/ folder in it, and a home folder of its own for `~`."""
    (tmp_path / "project" / "notebooks").mkdir(parents=True)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    return tmp_path / "project"


@pytest.mark.parametrize("cwd", ["project", "notebooks"])
def test_project_path_is_relative_to_the_project_folder_from_either_working_directory(project, monkeypatch, cwd):
    monkeypatch.chdir(project if cwd == "project" else project / "notebooks")
    assert project_path("runs/notebooks/01_sft/sft") == project / "runs" / "notebooks" / "01_sft" / "sft"
    assert project_path(Path("runs")) == project / "runs"


def test_project_path_keeps_absolute_paths_and_expands_home(project, tmp_path, monkeypatch):
    monkeypatch.chdir(project / "notebooks")
    elsewhere = tmp_path / "elsewhere" / "run"
    assert project_path(elsewhere) == elsewhere
    assert project_path(str(elsewhere)) == elsewhere
    assert project_path("~/runs/x") == tmp_path / "home" / "runs" / "x"


def test_project_path_outside_notebooks_is_the_working_directory(project, monkeypatch):
    other = project / "runs"
    other.mkdir()
    monkeypatch.chdir(other)  # only a folder named notebooks/ stands for its parent
    assert project_path("a") == other / "a"


def test_finished_run_needs_a_finished_status_and_a_model(tmp_path):
    assert not finished_run(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    assert not finished_run(tmp_path / "plain")  # a folder, but not a run directory

    running = Run(tmp_path / "running", stage="sft", config={"steps": 1}, seed=0)
    running.model_path.mkdir()  # a model saved mid-run (a checkpoint) does not make the run finished
    assert not finished_run(running.path)

    no_model = Run(tmp_path / "no_model", stage="sft", config={"steps": 1}, seed=0)
    no_model.finish({"loss": 0.5})
    assert not finished_run(no_model.path)

    done = Run(tmp_path / "done", stage="sft", config={"steps": 1}, seed=0)
    done.model_path.mkdir()  # what Run.save_model leaves (the files in it are not looked at)
    done.finish({"loss": 0.5})
    assert finished_run(done.path) and finished_run(str(done.path))

    failed = Run(tmp_path / "failed", stage="sft", config={"steps": 1}, seed=0)
    failed.model_path.mkdir()
    failed.set_status("failed", "loss was nan")
    assert not finished_run(failed.path)


def _prompts_file(folder: Path) -> Path:
    path = folder / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": f"Write review number {i}."}) + "\n" for i in range(10)))
    return path


def test_setup_without_a_gold_judge_says_why_the_notebook_needs_one(tmp_path):
    prompts = _prompts_file(tmp_path)
    with pytest.raises(ValueError, match=r"task '.*prompts\.jsonl' has no gold judge: the simulated annotators"):
        setup(tmp_path / "out", str(prompts), device="cpu", purpose="the simulated annotators need one")


def test_setup_returns_folder_device_task_and_prints_them(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    threads = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)  # leave the suite's own setting alone
    prompts = _prompts_file(tmp_path)

    result = setup("out", str(prompts), device="cpu", model="some/hub-model", need_gold=False)
    assert isinstance(result, NotebookSetup)
    out_dir, device, task, gold = result
    assert out_dir == tmp_path / "out" and not out_dir.exists()  # named, not created
    assert device == torch.device("cpu") and gold is None
    assert len(task.train_prompts) + len(task.eval_prompts) == 10
    assert threads == []  # not the embedded default and no THREADS: torch's own default
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        task.summary(),
        f"device: cpu, torch threads: {torch.get_num_threads()}, output folder: {tmp_path / 'out'}",
    ]

    setup("out", str(prompts), device="cpu", model="tiny", need_gold=False)
    setup("out", str(prompts), device="cpu", threads=3, model="some/hub-model", need_gold=False)
    assert threads == [1, 3]  # one thread for the embedded default, else what THREADS asks


def test_sft_run_or_train_reuses_a_finished_run_and_otherwise_trains_into_the_output_folder(
    tmp_path, monkeypatch, capsys
):
    import rlhfkit.train.sft as sft_module
    from rlhfkit.train.sft import SFTSettings

    calls = []
    monkeypatch.setattr(sft_module, "train_sft", lambda *args, **kwargs: calls.append(args) or "trained")
    settings = SFTSettings(max_steps=7)

    done = Run(tmp_path / "done", stage="sft", config={"steps": 1}, seed=0)
    done.model_path.mkdir()
    done.finish({"loss": 0.5})
    reused = sft_run_or_train(done.path, tmp_path / "out", model="some/model", task="task", settings=settings)
    assert reused.path == done.path and calls == []
    assert capsys.readouterr().out == f"SFT model: notebook 01's, {done.path / 'model'}\n"

    running = Run(tmp_path / "running", stage="sft", config={"steps": 1}, seed=0)
    assert (
        sft_run_or_train(running.path, tmp_path / "out", model="some/model", task="task", settings=settings)
        == "trained"
    )
    assert calls == [("some/model", "task", settings, tmp_path / "out" / "sft")]
    assert "(its state is 'running'): training one here. Run notebook 01 first" in capsys.readouterr().out

    sft_run_or_train(tmp_path / "missing", tmp_path / "out", model="some/model", task="task", settings=settings)
    assert "(no run there)" in capsys.readouterr().out and len(calls) == 2
