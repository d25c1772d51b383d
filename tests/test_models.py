"""Loading by path through the same code a Hub id takes, for several architectures; LoRA; device/dtype."""

import logging
import sys
import warnings

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

from rlhfkit.models import (
    LoraSettings,
    load_policy,
    load_reference,
    load_reward_model,
    load_tokenizer,
    pick_device,
    pick_dtype,
    resolve_model,
)
from rlhfkit.sampling import SamplingSettings, sample_candidates


def _save_random(kind, folder, tiny_tokenizer, chat_template=True):
    """A randomly initialised model of another architecture, saved with a tokenizer like a Hub download."""
    torch.manual_seed(0)
    vocab = len(tiny_tokenizer)
    if kind == "gpt2":
        model = GPT2LMHeadModel(
            GPT2Config(
                vocab_size=vocab,
                n_embd=32,
                n_layer=2,
                n_head=2,
                n_positions=128,
                eos_token_id=tiny_tokenizer.eos_token_id,
                bos_token_id=None,
            )
        )
    else:
        model = Qwen2ForCausalLM(
            Qwen2Config(
                vocab_size=vocab,
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=2,
                num_key_value_heads=1,
                intermediate_size=64,
                max_position_embeddings=128,
                eos_token_id=tiny_tokenizer.eos_token_id,
            )
        )
    model.save_pretrained(folder)
    tok = load_tokenizer(tiny_tokenizer.name_or_path)
    if not chat_template:
        tok.chat_template = None
        tok.pad_token = None  # like GPT-2's own tokenizer: no pad token
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind,chat", [("gpt2", False), ("qwen2", True)])
def test_other_architectures_load_and_sample(kind, chat, tmp_path, tiny_tokenizer):
    folder = _save_random(kind, tmp_path / kind, tiny_tokenizer, chat_template=chat)
    tok = load_tokenizer(folder)
    assert tok.pad_token is not None and tok.padding_side == "left"
    model = load_policy(folder)
    assert model.config.model_type == kind and next(model.parameters()).dtype == torch.float32
    prompts = ["Write a short review of the film The Quiet Harbor.", "Review the Lumo kettle."]
    table = sample_candidates(model, tok, prompts, SamplingSettings(k=2, max_new_tokens=8, seed=0), progress=False)
    assert len(table) == 4 and set(table.prompt) == set(prompts)
    assert (table.n_tokens <= 8).all() and table.sum_logprob.lt(0).all()
    reward_model = load_reward_model(folder)
    enc = tok(prompts, return_tensors="pt", padding=True)
    assert reward_model(**enc).logits.shape == (2, 1)


def test_short_name_resolves_to_the_embedded_default(tiny_path):
    assert resolve_model("tiny") == str(tiny_path)
    assert resolve_model("some-org/some-model") == "some-org/some-model"
    assert load_policy("tiny").config.model_type == "llama"


def test_unreachable_hub_id_fails_with_a_clear_message():
    with pytest.raises(OSError, match="HF_HUB_OFFLINE=1.*'tiny'"):
        load_policy("no-such-org/no-such-model")
    with pytest.raises(OSError, match="not a local folder"):
        load_tokenizer("no-such-org/no-such-model")


def test_device_and_dtype_choice():
    assert pick_device("cpu").type == "cpu"
    assert pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_dtype(torch.device("cpu")) == torch.float32
    assert pick_dtype(torch.device("cpu"), "bf16") == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        pick_dtype(torch.device("cpu"), "fp8")
    assert next(load_policy("tiny", dtype="bf16").parameters()).dtype == torch.bfloat16


def test_lora_trains_only_the_adapter_and_disabling_it_gives_the_base(tiny_path):
    base = load_reference(tiny_path)
    assert not any(p.requires_grad for p in base.parameters())
    model = load_policy(tiny_path, lora=LoraSettings(r=4, alpha=8))
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    assert 0 < trainable < 0.1 * total
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    # Make the adapter non-trivial, then check that disabling it recovers the base exactly.
    for name, param in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)
    with torch.no_grad():
        with model.disable_adapter():
            off = model(ids).logits
        on = model(ids).logits
        ref = base(ids).logits
    assert torch.allclose(off, ref, atol=1e-5) and not torch.allclose(on, ref, atol=1e-3)


def test_reward_model_with_lora_trains_its_score_head(tiny_path):
    model = load_reward_model(tiny_path, lora=LoraSettings(r=4))
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert any("score" in n for n in trainable) and any("lora_" in n for n in trainable)


# ---------------------------------------------------------------------------
# What a load shows: one line of ours for an expected new head, transformers' report only when something is off
# ---------------------------------------------------------------------------


def _save_causal_lm(folder):
    """A small Llama whose lm_head is its own weight (not tied), so a classifier loaded from it drops one."""
    torch.manual_seed(0)
    LlamaForCausalLM(
        LlamaConfig(
            vocab_size=64,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            pad_token_id=0,
            tie_word_embeddings=False,
        )
    ).save_pretrained(folder)
    return folder


@pytest.fixture
def shown(capsys, monkeypatch):
    """Everything a load prints, as a notebook shows it: stdout, stderr (bars) and transformers' log handler."""
    for handler in logging.getLogger("transformers").handlers:
        if type(handler) is logging.StreamHandler:  # not pytest's own capture handlers
            monkeypatch.setattr(handler, "stream", sys.stderr)  # the handler keeps the stderr of its creation

    def read():
        out, err = capsys.readouterr()
        return out + err

    read()
    return read


def test_reward_model_from_a_causal_lm_says_its_head_is_new_without_transformers_noise(tmp_path, shown):
    lm = _save_causal_lm(tmp_path / "lm")
    shown()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_reward_model(lm)
        text = shown()
        load_reward_model(lm, role="value")
        value_text = shown()
    assert "Loading weights" not in text + value_text and "LOAD REPORT" not in text + value_text
    assert (
        text == f"score head of {lm} initialised randomly (a causal LM has none): train it before using its rewards\n"
    )
    assert value_text == f"value head initialised randomly on {lm} (it has no score head); PPO trains it\n"
    assert not [w for w in caught if "initiali" in str(w.message)]
    load_policy(lm)
    assert shown() == ""


def test_reward_model_from_a_reward_model_folder_says_its_head_was_loaded(tmp_path, shown):
    load_reward_model(_save_causal_lm(tmp_path / "lm")).save_pretrained(tmp_path / "rm")
    shown()
    load_reward_model(tmp_path / "rm")
    assert shown() == f"reward model {tmp_path / 'rm'}: trained score head loaded\n"
    load_reward_model(tmp_path / "rm", role="value")
    assert shown() == f"value head initialised from the reward model {tmp_path / 'rm'}\n"


def test_a_load_missing_backbone_weights_is_still_reported(tmp_path, shown):
    from safetensors.torch import load_file, save_file

    folder = _save_causal_lm(tmp_path / "lm")
    weights = load_file(folder / "model.safetensors")
    del weights["model.layers.0.mlp.up_proj.weight"]
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    shown()
    load_reward_model(folder)
    text = shown()
    assert "LOAD REPORT" in text and "model.layers.0.mlp.up_proj.weight" in text and "MISSING" in text
    assert "score head of" in text  # the head is still new, and said so
    load_policy(folder)
    text = shown()
    assert "LOAD REPORT" in text and "model.layers.0.mlp.up_proj.weight" in text
