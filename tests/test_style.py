"""One formatting style for the whole checkout: `ruff format` at the settings in pyproject.toml ([tool.ruff])."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _ruff() -> str:
    beside_python = Path(sys.executable).with_name("ruff")
    found = str(beside_python) if beside_python.exists() else shutil.which("ruff")
    if found is None:
        pytest.fail("ruff is not installed: it is in requirements.lock and the dev extra (make setup installs it)")
    return found


def test_every_python_file_is_formatted_as_ruff_format_would():
    done = subprocess.run(
        [_ruff(), "format", "--check", "--diff", "."], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, (
        "files differ from `ruff format` (run `.venv/bin/ruff format .` in the project folder):\n"
        + done.stdout[-4000:]
        + done.stderr[-2000:]
    )


def test_no_line_is_longer_than_the_formatters_120_columns():
    done = subprocess.run(
        [_ruff(), "check", "--output-format", "concise", "."], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, "lines over 120 columns (comments and strings too):\n" + done.stdout[-4000:]
