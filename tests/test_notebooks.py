"""The notebook sequence: every notebook in notebooks/ runs top to bottom on smoke parameters, and what is committed
is clean (each .ipynb paired with its jupytext .py, no outputs, no execution counts).

Smoke parameters go into a cell inserted right after the cell tagged `parameters` (papermill's convention), so the
notebook's own defaults stay what a user runs. Every notebook must have an entry in SMOKE: a notebook the tests
would run on its full defaults (minutes each) or skip does not count as tested.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
jupytext = pytest.importorskip("jupytext")
pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

from jupyter_client.kernelspec import KernelSpecManager  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402
from nbclient import NotebookClient  # noqa: E402
from nbclient.exceptions import CellExecutionError  # noqa: E402

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
KERNEL_NAME = "rlhfkit-test"

# Smoke budgets per notebook (`OUT` is added by the test: a folder under tmp_path). Keep each notebook to about a
# minute on a busy two-core machine: every stage still runs, just for a few steps. LORA_R exercises the settings a
# real model uses (LoRA adapters) in 00 and 03; 01 keeps full fine-tuning.
SMOKE: dict[str, dict] = {
    "00_quickstart": {
        "LORA_R": 4,
        "N_LABEL_PROMPTS": 24,
        "K": 3,
        "SFT_STEPS": 6,
        "PPO_STEPS": 2,
        "PPO_BATCH_SIZE": 8,
        "DPO_STEPS": 3,
        "N_EVAL_PROMPTS": 8,
        "N_RM_CHECK_PROMPTS": 8,
        "N_SHOW": 2,
    },
    "01_sft": {"SFT_STEPS": 6, "N_DEMOS": 256, "N_HELDOUT": 3, "MAX_NEW_TOKENS": 16},
    "03_reward_model": {
        # Points at a folder that does not exist: the notebook must rebuild the SFT model it needs (and say so).
        "SFT_RUN": "{tmp}/missing_sft_run",
        "SFT_STEPS": 6,
        "LABELS": "{tmp}/no_labels.db",
        "LORA_R": 4,
        "N_PROMPTS": 16,
        "K": 3,
        "RM_STEPS": 6,
        "N_CHECK_PROMPTS": 8,
        "SWEEP_FLIP_RATES": [0.0, 0.4],
        "SWEEP_STEPS": 3,
        "MAX_NEW_TOKENS": 16,
    },
    # 02, 04, 05 and 06 point every earlier run they use at folders that do not exist, so each smoke run also
    # exercises its rebuild path (in CI nothing is there anyway).
    "02_preferences": {
        "SFT_RUN": "{tmp}/missing_sft_run",
        "SFT_STEPS": 6,
        "N_PROMPTS": 12,
        "K": 3,
        "N_RANK_PROMPTS": 3,
        "N_DIVERSITY_PROMPTS": 4,
        "DIVERSITY_K": 3,
        "TEMPERATURES": [0.5, 1.0],
        "MAX_NEW_TOKENS": 16,
        "LLM_JUDGE_PAIRS": 4,  # the real LLM judge (SmolLM2-135M), on 4 pairs
    },
    "04_ppo": {
        "SFT_RUN": "{tmp}/missing_sft_run",
        "RM_RUN": "{tmp}/missing_rm_run",
        "PREFERENCES": "{tmp}/none.jsonl",
        "SFT_STEPS": 6,
        "N_LABEL_PROMPTS": 12,
        "RM_STEPS": 4,
        "PPO_STEPS": 2,
        "BATCH_SIZE": 8,
        "MAX_NEW_TOKENS": 16,
        "HACK_STEPS": 3,
        "HACK_BATCH_SIZE": 8,
        "N_CHECK_PROMPTS": 6,
        "N_EVAL_PROMPTS": 8,
    },
    "05_dpo": {
        "SFT_RUN": "{tmp}/missing_sft_run",
        "PREFERENCES": "{tmp}/none.jsonl",
        "SFT_STEPS": 6,
        "N_LABEL_PROMPTS": 16,
        "DPO_STEPS": 2,
        "BATCH_SIZE": 8,
        "N_HELDOUT_PAIRS": 12,
        "N_EVAL_PROMPTS": 8,
        "MAX_NEW_TOKENS": 16,
        "LORA_R": 4,  # DPO with LoRA: the reference is the policy with its adapter disabled
    },
    "06_compare": {
        "SFT_RUN": "{tmp}/missing_sft_run",
        "RM_RUN": "{tmp}/missing_rm_run",
        "PREFERENCES": "{tmp}/none.jsonl",
        "PPO_RUNS": "{tmp}/no_ppo_runs",
        "DPO_RUNS": "{tmp}/no_dpo_runs",
        "SFT_STEPS": 6,
        "N_LABEL_PROMPTS": 12,
        "RM_STEPS": 4,
        "PPO_STEPS": 3,
        "PPO_BATCH_SIZE": 8,
        "DPO_LOSS_TYPES": ["sigmoid"],  # one of notebook 05's runs, trained here
        "DPO_STEPS": 2,
        "RLOO_STEPS": 2,
        "N_EVAL_PROMPTS": 8,
        "BON_PROMPTS": 4,
        "BON_K": 4,
        "MAX_NEW_TOKENS": 16,
        "N_SHOW": 2,
    },
    "08_rounds_and_criteria": {
        "SFT_RUN": "{tmp}/missing_sft_run",
        "SFT_STEPS": 6,
        "ROUNDS": 2,
        "PROMPTS_PER_ROUND": 6,
        "K": 3,
        "PAIRS_PER_PROMPT": 3,
        "RM_STEPS": 3,
        "PPO_STEPS": 2,
        "BATCH_SIZE": 8,
        "MAX_NEW_TOKENS": 16,
        "N_CHECK_PROMPTS": 6,
        "N_EVAL_PROMPTS": 6,
        "BRIEF_WEIGHTS": [0.0, 1.0],
        "CRITERIA_PROMPTS": 8,
        "CRITERIA_PPO_STEPS": 2,
    },
    # The real model (SmolLM2-135M-Instruct) through every stage, one or two steps each, on four prompts.
    "07_real_model": {
        "STEPS": {"reward": 1, "ppo": 1, "dpo": 2},
        "N_LABEL_PROMPTS": 4,
        "N_RM_CHECK_PROMPTS": 2,
        "N_EVAL_PROMPTS": 4,
        "MAX_NEW_TOKENS": 12,
        "N_SHOW": 2,
        "JUDGE_PAIRS": 4,
        "LIVE": False,
    },
}


def _real_model_run(out: Path) -> None:
    """07: the whole pipeline ran on SmolLM2-135M with LoRA and without SFT (the instruct model is the reference),
    every policy has a gold reward and a KL, the headless dashboards wrote their files, and the LLM judge
    labelled pairs in the study store."""
    from rlhfkit.labeling import LabelStore

    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["skip_sft"] is True and not (out / "sft").exists()
    assert set(summary["policies"]) == {"sft", "ppo", "dpo"} and summary["preferences"]["pairs"] >= 1
    for name in ("ppo", "dpo"):
        row = summary["policies"][name]
        assert row["gold_reward_mean"] is not None and row["kl_to_ref"] is not None, name
        assert (out / name / "adapter").is_dir(), f"{name}: no LoRA adapter saved"
    for stage in ("reward", "ppo", "dpo"):
        assert (out / stage / "dashboard.html").exists(), f"{stage}: the headless dashboard wrote nothing"
    with LabelStore(out / "judge_study.db") as store:
        assert any(name.startswith("llm-judge:") for name in store.annotators()), store.annotators()


AFTER_RUN = {"07_real_model": _real_model_run}
"""What a notebook's smoke run must have left in OUT, checked after it ran."""


def _source(notebook) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source.strip()) for cell in notebook.cells]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_clean_and_paired(path):
    notebook = nbformat.read(path, as_version=4)
    for i, cell in enumerate(notebook.cells):
        if cell.cell_type == "code":
            assert not cell.outputs, f"{path.name} cell {i} has outputs: clear them before committing"
            assert cell.execution_count is None, f"{path.name} cell {i} has an execution count: clear it"
    assert "widgets" not in notebook.metadata, f"{path.name} carries widget state: clear it before committing"
    assert notebook.metadata.get("jupytext", {}).get("formats") == "ipynb,py:percent", (
        f"{path.name} is not paired (jupytext --set-formats ipynb,py:percent {path.name})"
    )
    script = path.with_suffix(".py")
    assert script.exists(), f"{path.name} has no paired {script.name}"
    assert _source(jupytext.read(path)) == _source(jupytext.read(script)), (
        f"{path.name} and {script.name} differ: run `jupytext --sync notebooks/{path.name}`"
    )
    tags = [cell.metadata.get("tags", []) for cell in notebook.cells]
    assert sum("parameters" in t for t in tags) == 1, f"{path.name} needs exactly one cell tagged 'parameters'"


OPENING_CELL = """from rlhfkit import stages
from rlhfkit.notebook import setup

out_dir, device, task, gold = setup(OUT, TASK, device=DEVICE, threads=THREADS, model=MODEL)"""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_opens_the_same_way_parameters_first_and_stays_short(path):
    """Every notebook: its first code cell is the parameters cell, the next code cell is the same opening cell
    (the stage layer and the shared set-up), and it keeps to about 250 lines of code (the recipes live in the
    library; a notebook keeps the teaching)."""
    code = [cell for cell in nbformat.read(path, as_version=4).cells if cell.cell_type == "code"]
    assert "parameters" in code[0].metadata.get("tags", []), f"{path.name}: the parameters cell must come first"
    assert code[1].source.strip() == OPENING_CELL, f"{path.name}: the second code cell must be the opening cell"
    lines = [
        line for cell in code for line in cell.source.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    assert len(lines) <= 250, f"{path.name}: {len(lines)} lines of code (keep a notebook under about 250)"


def test_every_notebook_has_a_script_and_smoke_parameters():
    scripts = {p.stem for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.py")}
    assert scripts == {p.stem for p in NOTEBOOKS}, "every notebooks/NN_*.py must be paired with an .ipynb"
    missing = [p.stem for p in NOTEBOOKS if p.stem not in SMOKE]
    assert not missing, f"add smoke parameters for {missing} to SMOKE in tests/test_notebooks.py"


@pytest.fixture(scope="module")
def kernel_dir(tmp_path_factory, tiny_path) -> Path:
    """A kernelspec whose interpreter is this venv's python, offline, one torch thread, the suite's model cache."""
    root = tmp_path_factory.mktemp("kernels")
    spec = root / KERNEL_NAME
    spec.mkdir()
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "rlhfkit tests",
                "language": "python",
                "env": {
                    "HF_HUB_OFFLINE": "1",
                    "RLHFKIT_CACHE": os.environ["RLHFKIT_CACHE"],
                    "OMP_NUM_THREADS": "1",
                    "TOKENIZERS_PARALLELISM": "false",
                    "TQDM_DISABLE": "1",
                    "PYDEVD_DISABLE_FILE_VALIDATION": "1",
                },
            }
        )
    )
    return root


def _smoke_cell(name: str, out: Path, tmp: Path):
    overrides = {"OUT": str(out)}
    for key, value in SMOKE[name].items():
        overrides[key] = value.format(tmp=tmp) if isinstance(value, str) else value
    lines = [
        "# Smoke parameters injected by tests/test_notebooks.py",
        "import sys",
        "import torch",
        f"assert sys.executable == {sys.executable!r}, sys.executable  # the project's interpreter",
        "torch.set_num_threads(1)",
    ]
    lines += [f"{key} = {value!r}" for key, value in overrides.items()]
    return nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": ["injected-parameters"]})


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path, kernel_dir):
    if path.stem not in SMOKE:
        pytest.fail(f"no smoke parameters for {path.name}: add them to SMOKE in tests/test_notebooks.py")
    notebook = nbformat.read(path, as_version=4)
    index = next(i for i, c in enumerate(notebook.cells) if "parameters" in c.metadata.get("tags", []))
    notebook.cells.insert(index + 1, _smoke_cell(path.stem, tmp_path / "out", tmp_path))

    manager = KernelManager(
        kernel_name=KERNEL_NAME,
        kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)], ensure_native_kernel=False),
    )
    client = NotebookClient(
        notebook,
        km=manager,
        timeout=600,
        startup_timeout=120,
        allow_errors=False,
        resources={"metadata": {"path": str(NOTEBOOKS_DIR)}},
    )
    started = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as error:
        failed = next(
            (
                i
                for i, c in enumerate(notebook.cells)
                if c.cell_type == "code" and any(o.get("output_type") == "error" for o in c.get("outputs", []))
            ),
            None,
        )
        where = f"cell {failed}:\n{notebook.cells[failed].source[:1500]}" if failed is not None else "unknown cell"
        message = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # the traceback without terminal colours
        pytest.fail(f"{path.name} failed in {where}\n\n{message}", pytrace=False)
    finally:
        # nbclient shuts down only kernels it started itself; this one is ours (a leaked kernel keeps ~1 GB and
        # wakes up now and then until the whole suite ends).
        if manager.has_kernel:
            manager.shutdown_kernel(now=True)
    seconds = time.perf_counter() - started
    print(f"{path.name}: {seconds:.1f} s on smoke parameters")
    assert (tmp_path / "out").exists(), f"{path.name} wrote nothing under OUT: does it use the OUT parameter?"
    if path.stem in AFTER_RUN:
        AFTER_RUN[path.stem](tmp_path / "out")
