"""Tests for the `rlhfkit` command line, run as a user would: the installed console script in a subprocess."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

RLHFKIT = Path(sys.executable).parent / "rlhfkit"
PROMPT = "Write a short review of the film The Quiet Harbor."
SAMPLE_COLUMNS = {"prompt", "response", "n_tokens", "sum_logprob", "finish_reason", "temperature"}


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["HF_HUB_OFFLINE"] = "1"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    # The model is tiny: one thread is as fast, and avoids oversubscribing a busy CI machine.
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def rlhfkit(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(RLHFKIT), *args], env=_env(), capture_output=True, text=True, timeout=timeout)


def _ok(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    return result


def test_console_script_is_installed():
    assert RLHFKIT.exists(), f"no rlhfkit console script next to {sys.executable}"


def test_top_level_help():
    out = _ok(rlhfkit("--help")).stdout
    assert "usage: rlhfkit" in out
    assert "build-default" in out and "sample" in out


def test_no_command_is_an_error():
    result = rlhfkit()
    assert result.returncode != 0
    assert "usage: rlhfkit" in result.stderr


def test_build_default_help():
    out = _ok(rlhfkit("build-default", "--help")).stdout
    for option in ("--force", "--quiet", "RLHFKIT_CACHE"):
        assert option in out


def test_sample_help():
    out = _ok(rlhfkit("sample", "--help")).stdout
    for option in (
        "--model",
        "--task",
        "--prompt",
        "--n-prompts",
        "--k",
        "--greedy",
        "--temperature",
        "--top-p",
        "--top-k",
        "--max-new-tokens",
        "--batch-size",
        "--seed",
        "--device",
        "--out",
        "--trust-remote-code",
        "--quiet",
    ):
        assert option in out, option


def test_build_default_prints_a_loadable_model_that_beats_unigram(tiny_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = _ok(rlhfkit("build-default", "--quiet")).stdout
    match = re.search(r"embedded default model: (.+)", out)
    assert match, out
    folder = Path(match.group(1).strip())
    assert folder.is_dir()
    assert folder.resolve() == Path(tiny_path).resolve()
    assert Path(os.environ["RLHFKIT_CACHE"]).resolve() in folder.resolve().parents

    loss = re.search(r"eval loss: ([0-9.]+) nats/token\s+\(unigram baseline ([0-9.]+)", out)
    assert loss, out
    eval_loss, baseline = float(loss.group(1)), float(loss.group(2))
    assert 0 < eval_loss < baseline

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    ids = tokenizer("Write a short review of the book A Hollow Bridge.")["input_ids"]
    assert len(ids) > 0
    assert model.config.vocab_size >= len(tokenizer) - 1
    assert sum(p.numel() for p in model.parameters()) > 0


@pytest.fixture(scope="module")
def sampled(tmp_path_factory):
    """Two runs of the same seeded `rlhfkit sample` command, each saved to its own JSONL file."""
    folder = tmp_path_factory.mktemp("sample")
    tables = []
    for run in ("first", "second"):
        out = folder / f"{run}.jsonl"
        result = _ok(
            rlhfkit(
                "sample", "--prompt", PROMPT, "--k", "3", "--seed", "7", "--quiet", "--device", "cpu", "--out", str(out)
            )
        )
        assert f"wrote 3 candidates to {out}" in result.stdout
        tables.append(pd.read_json(out, lines=True))
    return tables


def test_sample_writes_candidates(sampled):
    table = sampled[0]
    assert len(table) == 3
    assert SAMPLE_COLUMNS <= set(table.columns)
    assert (table["prompt"] == PROMPT).all()
    assert sorted(table["candidate"]) == [0, 1, 2]
    assert (table["temperature"] == 1.0).all()
    assert set(table["finish_reason"]) <= {"eos", "length"}
    assert (table["n_tokens"] > 0).all() and (table["n_tokens"] <= 64).all()
    assert (table["sum_logprob"] < 0).all()
    assert table["response"].map(lambda r: isinstance(r, str) and r.strip() != "").all()


def test_sample_same_seed_is_reproducible(sampled):
    first, second = sampled
    assert list(first["response"]) == list(second["response"])
    assert first["sum_logprob"].tolist() == pytest.approx(second["sum_logprob"].tolist(), abs=1e-4)


def test_sample_greedy_gives_one_candidate(tmp_path):
    out = tmp_path / "greedy.csv"
    result = _ok(
        rlhfkit(
            "sample",
            "--prompt",
            PROMPT,
            "--greedy",
            "--k",
            "3",
            "--max-new-tokens",
            "24",
            "--quiet",
            "--device",
            "cpu",
            "--out",
            str(out),
        )
    )
    assert "wrote 1 candidates" in result.stdout
    table = pd.read_csv(out)
    assert len(table) == 1
    assert SAMPLE_COLUMNS <= set(table.columns)
    assert table["candidate"].tolist() == [0]
    assert not bool(table["do_sample"].iloc[0])
    assert table["n_tokens"].iloc[0] <= 24


def test_sample_unknown_model_offline_fails_cleanly():
    result = rlhfkit("sample", "--model", "no-such-org/no-such-model-xyz", "--prompt", PROMPT, "--quiet")
    assert result.returncode != 0
    assert "HF_HUB_OFFLINE" in result.stderr
    assert "no-such-org/no-such-model-xyz" in result.stderr
    assert "Traceback" not in result.stderr


def test_sample_invalid_k_is_a_clean_error():
    result = rlhfkit("sample", "--prompt", PROMPT, "--k", "0", "--quiet")
    assert result.returncode == 2
    assert "rlhfkit sample: error: k must be at least 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_sample_refuses_an_unknown_output_format(tmp_path):
    result = rlhfkit("sample", "--prompt", "Hi", "--k", "1", "--out", str(tmp_path / "x.txt"), "--quiet")
    assert result.returncode == 2
    assert "x.txt: expected a file ending in .jsonl, .csv or .parquet" in result.stderr
    assert not (tmp_path / "x.txt").exists()


def test_pipeline_help_names_overwrite_and_how_an_earlier_output_is_continued():
    out = " ".join(_ok(rlhfkit("pipeline", "--help")).stdout.split())
    assert "--overwrite" in out and "rlhfkit.json" in out and "continue an earlier output" in out


def test_pipeline_refuses_a_folder_holding_the_users_own_files(tmp_path):
    (tmp_path / "preferences.jsonl").write_text('{"prompt": "mine", "chosen": "a", "rejected": "b"}\n')
    for extra in ([], ["--overwrite"]):
        result = rlhfkit("pipeline", "--quick", "--out", str(tmp_path), *extra)
        assert result.returncode == 2, result.stderr
        assert (
            f"rlhfkit pipeline: error: {tmp_path} is not empty and is not an rlhfkit pipeline output folder"
            in result.stderr
        )
        assert "found preferences.jsonl" in result.stderr and "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preferences.jsonl"]
    assert (tmp_path / "preferences.jsonl").read_text() == '{"prompt": "mine", "chosen": "a", "rejected": "b"}\n'


def test_pipeline_refuses_an_earlier_output_with_other_options_unless_overwrite(tmp_path):
    from rlhfkit.pipeline import PipelineSettings, open_output_folder

    manifest = open_output_folder(PipelineSettings.quick(out_dir=str(tmp_path)))  # as `--quick` left it
    manifest.claim("summary.json").write_text("{}")
    result = rlhfkit("pipeline", "--out", str(tmp_path), "--methods", "dpo")
    assert result.returncode == 2, result.stderr
    assert f"{tmp_path} holds an earlier rlhfkit pipeline run with other settings" in result.stderr
    assert "methods: ['ppo', 'dpo', 'rloo'] then, ['dpo'] now" in result.stderr and "--overwrite" in result.stderr
    assert (tmp_path / "summary.json").read_text() == "{}"


def test_pipeline_names_a_judge_it_cannot_import_and_a_task_without_any_labeller(tmp_path):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(f'{{"prompt": "Say something kind, number {i}."}}\n' for i in range(10)))
    missing = rlhfkit(
        "pipeline", "--task", str(prompts), "--judge", "no_such_judges:kind", "--out", str(tmp_path / "a")
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "judge 'no_such_judges:kind': cannot import module 'no_such_judges'" in missing.stderr
    unlabelled = rlhfkit("pipeline", "--task", str(prompts), "--out", str(tmp_path / "b"))
    assert unlabelled.returncode == 2
    assert "has no gold judge, so nothing can label preferences: name one with --judge" in unlabelled.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()  # refused before writing anything
