"""The embedded default: corpus, task, tokenizer, model quality and the cache."""

import json
import multiprocessing
import random
import statistics

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlhfkit.judges import VaderJudge
from rlhfkit.tiny import TinySettings, build_info, corpus, reviews_task
from rlhfkit.tiny.build import _pack, eval_loss, make_documents
from rlhfkit.tiny.cache import MANIFEST, default_model_path, is_complete, version_hash


def test_corpus_is_deterministic_and_varied():
    def reviews(seed):
        rng = random.Random(seed)
        items = corpus.all_items()
        return [corpus.generate_review(rng, rng.choice(items), rng.choice(corpus.SENTIMENTS)) for _ in range(300)]

    assert reviews(3) == reviews(3)
    assert reviews(3) != reviews(4)
    train_docs, _ = make_documents(TinySettings())
    sentences = {s for doc in train_docs for s in corpus.sentence_split(doc.split("<|assistant|>")[-1][:-7])}
    assert len(sentences) > 20_000, len(sentences)
    assert {item.domain for item in corpus.all_items()} == {"film", "book", "restaurant", "product"}


def test_gold_judge_orders_the_sentiments():
    rng = random.Random(0)
    items = corpus.all_items()
    judge = VaderJudge()
    means = {}
    for sentiment in corpus.SENTIMENTS:
        texts = [corpus.generate_review(rng, rng.choice(items), sentiment) for _ in range(400)]
        means[sentiment] = statistics.mean(judge(["p"] * len(texts), texts))
    assert means["positive"] > means["mixed"] + 0.2 > means["negative"] + 0.4, means


def test_reviews_task_keeps_eval_items_unseen():
    task = reviews_task()
    assert len(task.train_prompts) == 1024 and len(task.eval_prompts) == 128
    assert not set(task.train_prompts) & set(task.eval_prompts)
    _, eval_items = corpus.split_items(corpus.all_items())
    eval_names = {item.label for item in eval_items}
    seen = " ".join(task.train_prompts + [d["prompt"] for d in task.demonstrations])
    assert not [name for name in eval_names if f"{name}." in seen or f"{name}?" in seen]
    assert reviews_task().eval_prompts == task.eval_prompts  # deterministic
    scores = task.gold_judge([d["prompt"] for d in task.demonstrations], [d["completion"] for d in task.demonstrations])
    assert min(scores) < -0.5 and max(scores) > 0.9  # demonstrations span the reward range


def test_tokenizer_has_pad_eos_and_a_prefix_consistent_chat_template(tiny_path):
    tok = AutoTokenizer.from_pretrained(tiny_path)
    assert tok.pad_token == "<|pad|>" and tok.eos_token == "<|end|>" and tok.pad_token_id != tok.eos_token_id
    text = "The soup was lovely, but the service was slow!"
    assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    prompt = [{"role": "user", "content": "Write a short review of the film The Quiet Harbor."}]
    head = tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    full = tok.apply_chat_template(prompt + [{"role": "assistant", "content": "Great."}], tokenize=False)
    assert full.startswith(head) and full.endswith("Great.<|end|>")
    mask = tok.apply_chat_template(
        prompt + [{"role": "assistant", "content": "Great."}], return_dict=True, return_assistant_tokens_mask=True
    )["assistant_masks"]
    assert 0 < sum(mask) < len(mask)


def test_model_loads_like_any_model_and_beats_the_unigram_baseline(tiny_path):
    info = build_info(tiny_path)
    assert info["eval_loss"] < 0.4 * info["unigram_baseline_loss"], info
    # The saved weights are the trained ones: recompute the eval loss from disk.
    model = AutoModelForCausalLM.from_pretrained(tiny_path)
    tok = AutoTokenizer.from_pretrained(tiny_path)
    assert model.config.model_type == "llama"
    assert (tiny_path / "model.safetensors").exists()
    config = TinySettings()
    _, eval_docs = make_documents(config)
    assert eval_loss(model, _pack(tok, eval_docs, config.block_size)) == pytest.approx(info["eval_loss"], abs=1e-3)
    assert len(info["samples"]) == 4 and all(len(s["response"].split()) >= 3 for s in info["samples"])


TINY = dict(
    n_train_docs=200,
    n_eval_docs=40,
    steps=3,
    batch_size=4,
    block_size=32,
    vocab_size=400,
    hidden_size=32,
    num_heads=2,
    intermediate_size=64,
    num_layers=1,
)


def _build_in(cache):
    import os

    os.environ["RLHFKIT_CACHE"] = str(cache)
    return str(default_model_path(TinySettings(**TINY), progress=False))


def test_cache_rebuilds_a_missing_or_corrupt_build(tmp_path, monkeypatch):
    monkeypatch.setenv("RLHFKIT_CACHE", str(tmp_path))
    config = TinySettings(**TINY)
    path = default_model_path(config, progress=False)
    assert path.name == f"tiny-{version_hash(config)}" and is_complete(path)
    assert version_hash(TinySettings(**{**TINY, "seed": 1})) != version_hash(config)
    first = (path / "model.safetensors").read_bytes()

    # A truncated weight file fails the checksum: the build is redone, never half-used.
    (path / "model.safetensors").write_bytes(first[: len(first) // 2])
    assert not is_complete(path)
    assert default_model_path(config, progress=False) == path and is_complete(path)
    assert (path / "model.safetensors").read_bytes() == first  # deterministic rebuild

    # A folder without a manifest (an interrupted copy, say) is not trusted either.
    (path / MANIFEST).unlink()
    assert default_model_path(config, progress=False) == path and is_complete(path)
    AutoModelForCausalLM.from_pretrained(path)
    assert not list(tmp_path.glob(".*building*"))  # no staging folders left behind


def test_concurrent_first_use_builds_once(tmp_path):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        paths = pool.map(_build_in, [tmp_path, tmp_path])
    assert paths[0] == paths[1]
    manifest = json.loads((tmp_path / paths[0].split("/")[-1] / MANIFEST).read_text())
    assert "model.safetensors" in manifest["files"]
    folders = [p.name for p in tmp_path.iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert folders == [paths[0].split("/")[-1]]
    assert len((tmp_path / "builds.log").read_text().splitlines()) == 1  # the second process waited and reused it


def test_the_old_name_tiny_config_still_works_and_warns():
    import rlhfkit.tiny.build

    with pytest.warns(DeprecationWarning, match=r"rlhfkit\.tiny\.TinyConfig was renamed rlhfkit\.tiny\.TinySettings"):
        from rlhfkit.tiny import TinyConfig
    assert TinyConfig is TinySettings
    with pytest.warns(DeprecationWarning, match=r"rlhfkit\.tiny\.build\.TinyConfig was renamed"):
        assert rlhfkit.tiny.build.TinyConfig is TinySettings
