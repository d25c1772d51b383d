"""Build the embedded default: a byte-level BPE tokenizer and a small Llama trained from scratch on the review corpus.

The result is an ordinary Hugging Face model folder (safetensors + tokenizer files + chat template), so
`AutoModelForCausalLM.from_pretrained(path)` and `AutoTokenizer.from_pretrained(path)` load it like any model.
The build is deterministic for a given `TinySettings`; it runs on one torch thread (see `rlhfkit.threads`).
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from rlhfkit._renamed import renamed
from rlhfkit.threads import cpu_threads
from rlhfkit.tiny import corpus

PAD, EOS = "<|pad|>", "<|end|>"
ROLE_TOKENS = ("<|system|>", "<|user|>", "<|assistant|>")

# The chat template: one special token opens each turn, <|end|> closes it. Assistant turns are wrapped in
# {% generation %} so TRL's assistant-only loss can find them, and a prompt rendered with
# add_generation_prompt=True is always a prefix of the same prompt with its answer.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "<|assistant|>{% generation %}{{ message['content'] }}<|end|>{% endgeneration %}"
    "{%- else -%}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)


@dataclass(frozen=True)
class TinySettings:
    """Everything that decides the embedded default. Changing any field changes the cache key."""

    seed: int = 0
    """Seed for the corpus, the initial weights and the data order."""
    n_train_docs: int = 30000
    """Pretraining documents (reviews of train items), generated once and seen about once."""
    n_eval_docs: int = 600
    """Held-out documents (reviews of eval items) for the reported eval loss."""
    chat_fraction: float = 0.3
    """Share of documents written as an instruction turn followed by the review, as modern pretraining mixes
    include some instruction data; the rest are bare reviews."""
    vocab_size: int = 2048
    """Byte-level BPE vocabulary size, special tokens included."""
    hidden_size: int = 128
    """Width of the model."""
    num_layers: int = 4
    """Transformer blocks."""
    num_heads: int = 4
    """Attention heads (head dimension = hidden_size / num_heads)."""
    intermediate_size: int = 384
    """Width of the SwiGLU feed-forward layer."""
    max_position_embeddings: int = 256
    """Longest sequence the model handles (prompt plus response)."""
    block_size: int = 128
    """Tokens per packed training sequence."""
    batch_size: int = 32
    """Sequences per optimizer step."""
    steps: int = 240
    """Optimizer steps of pretraining."""
    learning_rate: float = 4e-3
    """Peak learning rate (linear warm-up, cosine decay to a tenth)."""
    warmup_steps: int = 10
    """Steps of linear learning-rate warm-up."""


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer trained on `texts`, wrapped as a transformers fast tokenizer with pad/eos and
    the chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS, *ROLE_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=PAD,
        eos_token=EOS,
        additional_special_tokens=list(ROLE_TOKENS),
        model_max_length=None,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def make_documents(config: TinySettings) -> tuple[list[str], list[str]]:
    """Train and eval documents as text with the special tokens written out.

    Eval documents only review held-out items, so the eval loss measures generalisation to unseen names."""
    rng = random.Random(config.seed)
    train_items, eval_items = corpus.split_items(corpus.all_items())

    def doc(item: corpus.Item) -> str:
        review = corpus.generate_review(rng, item, rng.choice(corpus.SENTIMENTS))
        if rng.random() < config.chat_fraction:
            return f"<|user|>{corpus.prompt_for(rng, item)}{EOS}<|assistant|>{review}{EOS}"
        return review + EOS

    train = [doc(rng.choice(train_items)) for _ in range(config.n_train_docs)]
    held_out = [doc(rng.choice(eval_items)) for _ in range(config.n_eval_docs)]
    return train, held_out


def _pack(tokenizer, docs: list[str], block_size: int) -> torch.Tensor:
    """Concatenate the documents' tokens and cut them into blocks (the remainder is dropped)."""
    ids: list[int] = []
    for encoded in tokenizer(docs, add_special_tokens=False)["input_ids"]:
        ids.extend(encoded)
    n_blocks = len(ids) // block_size
    return torch.tensor(ids[: n_blocks * block_size]).view(n_blocks, block_size)


def unigram_cross_entropy(train_blocks: torch.Tensor, eval_blocks: torch.Tensor, vocab_size: int) -> float:
    """Cross-entropy (nats/token) of an add-one-smoothed unigram model fitted on the train tokens, on the eval
    tokens a causal LM predicts (all but the first of each block): the baseline the model must beat."""
    counts = torch.bincount(train_blocks.flatten(), minlength=vocab_size).double() + 1.0
    log_probs = (counts / counts.sum()).log()
    return float(-log_probs[eval_blocks[:, 1:].flatten()].mean())


@torch.no_grad()
def eval_loss(model, blocks: torch.Tensor, batch_size: int = 32) -> float:
    """Mean next-token cross-entropy (nats/token) over the blocks."""
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(blocks), batch_size):
        batch = blocks[start : start + batch_size]
        n = batch[:, 1:].numel()
        total += float(model(input_ids=batch, labels=batch).loss) * n
        count += n
    return total / count


def build(config: TinySettings, out_dir: Path, progress: bool = True) -> dict:
    """Train the tokenizer and the model and save both into `out_dir`. Returns the build report, which is also
    written to `out_dir/build_info.json`."""
    from tqdm.auto import tqdm
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    started = time.perf_counter()
    torch.manual_seed(config.seed)
    train_docs, eval_docs = make_documents(config)
    tokenizer = train_tokenizer(train_docs, config.vocab_size)
    train_blocks = _pack(tokenizer, train_docs, config.block_size)
    eval_blocks = _pack(tokenizer, eval_docs, config.block_size)

    model_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(model_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01, betas=(0.9, 0.95))

    def lr_at(step: int) -> float:
        if step < config.warmup_steps:
            return config.learning_rate * (step + 1) / config.warmup_steps
        progress_ = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        return config.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress_)))

    order = torch.randperm(len(train_blocks), generator=torch.Generator().manual_seed(config.seed))
    model.train()
    bar = tqdm(range(config.steps), desc="pretraining the tiny default", disable=not progress)
    with cpu_threads(model=model) as threads:
        for step in bar:
            # Walk the shuffled blocks in order, wrapping around if the steps ask for more than one epoch.
            index = order[(torch.arange(config.batch_size) + step * config.batch_size) % len(order)]
            batch = train_blocks[index]
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step % 10 == 0 or step == config.steps - 1:
                bar.set_postfix(loss=f"{loss.item():.3f}")
    train_seconds = time.perf_counter() - started

    report = {
        "config": asdict(config),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_tokens_seen": config.steps * config.batch_size * config.block_size,
        "eval_loss": eval_loss(model, eval_blocks),
        "unigram_baseline_loss": unigram_cross_entropy(train_blocks, eval_blocks, len(tokenizer)),
        "build_seconds": train_seconds,
        "torch_threads": threads,
    }
    model.generation_config = GenerationConfig(
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        max_new_tokens=64,
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
    )
    report["samples"] = _samples(model, tokenizer, config.seed)

    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    (out_dir / "build_info.json").write_text(json.dumps(report, indent=2))
    return report


@torch.no_grad()
def _samples(model, tokenizer, seed: int, n: int = 4) -> list[dict]:
    """A few stochastic answers to held-out prompts, kept in the build report to show what the model writes."""
    rng = random.Random(seed + 1)
    _, eval_items = corpus.split_items(corpus.all_items())
    prompts = [corpus.prompt_for(rng, item) for item in rng.sample(eval_items, n)]
    torch.manual_seed(seed)
    model.eval()
    out = []
    for prompt in prompts:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)
        generated = model.generate(**ids, max_new_tokens=64, do_sample=True, top_k=0, top_p=1.0)
        response = tokenizer.decode(generated[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)
        out.append({"prompt": prompt, "response": response})
    return out


__getattr__ = renamed(__name__, {"TinyConfig": "TinySettings"})  # the old name, for one release
