"""The CPU-thread rule: explicit request > enclosing explicit choice > RLHFKIT_THREADS > 1 for small models."""

import os

import pytest
import torch

from rlhfkit.threads import ENV_VAR, choose_threads, cpu_threads, parse_threads


@pytest.fixture()
def torch_threads():
    """Restore torch's thread count whatever a test does."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_small_model_on_cpu_gets_one_thread_and_a_large_one_keeps_torch_default(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert choose_threads(model=torch.nn.Linear(10, 10)) == 1
    assert choose_threads(model=135_000_000) is None
    assert choose_threads(model=None) is None  # unknown size: no opinion
    assert choose_threads(model=1000, device="cuda") is None  # GPU work: the CPU setting is not ours to change


def test_environment_variable_overrides_the_size_rule(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "2")
    assert choose_threads(model=1000) == 2
    monkeypatch.setenv(ENV_VAR, "auto")
    assert choose_threads(model=1000) is None
    monkeypatch.setenv(ENV_VAR, "two")
    with pytest.raises(
        ValueError, match="RLHFKIT_THREADS: expected a whole number of threads >= 1 or 'auto', got 'two'"
    ):
        choose_threads(model=1000)


def test_explicit_request_beats_environment_and_reaches_nested_blocks(monkeypatch, torch_threads):
    monkeypatch.setenv(ENV_VAR, "1")
    torch.set_num_threads(1)
    with cpu_threads(2) as outer:
        assert outer == torch.get_num_threads() == 2
        # A stage inside (which asks for nothing itself) keeps the enclosing explicit choice, even for a tiny model.
        with cpu_threads(model=1000) as inner:
            assert inner == 2
    assert torch.get_num_threads() == 1  # restored


def test_block_restores_previous_setting_after_an_error(monkeypatch, torch_threads):
    monkeypatch.delenv(ENV_VAR, raising=False)
    torch.set_num_threads(2)
    with pytest.raises(RuntimeError):
        with cpu_threads(model=1000):
            assert torch.get_num_threads() == 1
            raise RuntimeError("boom")
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("bad", [0, -1, 1.5, "x"])
def test_bad_thread_counts_are_refused_with_the_source_named(bad):
    with pytest.raises(ValueError, match="threads: expected a whole number"):
        parse_threads(bad, "threads")


def test_cli_threads_option_reaches_the_environment_and_refuses_nonsense(monkeypatch, capsys):
    from rlhfkit import cli

    monkeypatch.setenv(ENV_VAR, "auto")  # so that teardown restores the variable the CLI sets
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--threads", "0", "build-default"])
    assert exit_info.value.code == 2
    assert "--threads: expected a whole number of threads >= 1 or 'auto', got '0'" in capsys.readouterr().err

    seen = {}
    monkeypatch.setattr(cli, "_build_default", lambda args: seen.setdefault("env", os.environ.get(ENV_VAR)) and 0)
    assert cli.main(["--threads", "2", "build-default"]) == 0
    assert seen["env"] == "2"
    assert choose_threads(model=1000) == 2  # every stage in this process, and processes it starts, follow it


def test_pipeline_runs_the_embedded_default_on_one_thread_between_stages_too(monkeypatch, torch_threads):
    from rlhfkit import pipeline

    monkeypatch.delenv(ENV_VAR, raising=False)
    torch.set_num_threads(2)
    seen = []
    monkeypatch.setattr(pipeline, "_run_stages", lambda settings, **kw: seen.append(torch.get_num_threads()) or {})
    pipeline.run_pipeline(pipeline.PipelineSettings(model="tiny"))
    monkeypatch.setenv(ENV_VAR, "2")
    pipeline.run_pipeline(pipeline.PipelineSettings(model="tiny"))
    assert seen == [1, 2]  # the rule, then the user's choice
    assert torch.get_num_threads() == 2  # the caller's setting is back afterwards
