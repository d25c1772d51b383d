"""Shared test set-up: offline, a project-local model cache, and the embedded default built once per session."""

import os
from pathlib import Path

# Tests never reach a hub; the embedded default is cached inside the checkout unless the caller chose a cache.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("RLHFKIT_CACHE", str(Path(__file__).resolve().parents[1] / ".cache" / "rlhfkit"))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

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
