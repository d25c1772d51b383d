"""The README's "Your own task" example, run as written: a prompts file, a judge named `module:function` on the
command line, and the same task as a `Task` object in Python."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _example_blocks() -> tuple[str, str]:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("**Your own task.**") :]
    bash = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    python = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    return bash, python


@pytest.mark.slow
def test_the_readme_own_task_example_runs_as_written(tmp_path):
    bash, python = _example_blocks()
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(["bash", "-c", bash], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads((tmp_path / "runs" / "my_task" / "summary.json").read_text())
    assert summary["settings"]["task"] == "my_prompts.jsonl" and summary["settings"]["judge"] == "my_judges:warmth"
    assert set(summary["policies"]) == {"sft", "dpo"} and summary["not_measured"] == []
    for row in summary["policies"].values():  # the named judge scored the evaluation
        assert row["gold_reward_mean"] is not None and row["gold_reward_ci"] is not None
    assert "sft" in summary["seconds"]  # the completion column became SFT demonstrations
    assert (tmp_path / "runs" / "my_task" / "report.html").exists()

    script = tmp_path / "example.py"
    script.write_text(python + "\nimport json; print(json.dumps(summary['settings']['task']))\n")
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    task_record = json.loads(done.stdout.strip().splitlines()[-1])
    assert task_record["name"] == "my_prompts" and task_record["gold_judge"] == "warmth"
    py_summary = json.loads((tmp_path / "runs" / "my_task_py" / "summary.json").read_text())
    # The same prompts, demonstrations, judge and seed by either route: the same numbers.
    for name in ("sft", "dpo"):
        assert py_summary["policies"][name] == summary["policies"][name], name


@pytest.mark.slow
def test_the_readme_stage_layer_example_runs_and_a_second_run_reuses_every_step(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### The stage layer") :]
    (tmp_path / "example.py").write_text(re.search(r"```python\n(.*?)```", section, re.S).group(1))
    first = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert (tmp_path / "runs" / "mine" / "report.html").exists()
    weights = (tmp_path / "runs" / "mine" / "ppo" / "model" / "model.safetensors").stat().st_mtime_ns
    again = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    for step in ("sft", "label", "reward", "ppo", "dpo"):
        assert f"[{step}] reused" in again.stdout, step
    assert (tmp_path / "runs" / "mine" / "ppo" / "model" / "model.safetensors").stat().st_mtime_ns == weights
