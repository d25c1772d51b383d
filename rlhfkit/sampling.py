"""Sample K candidate responses per prompt: the raw material of preference labeling.

`sample_candidates` batches prompts with left padding, decodes greedily or stochastically (temperature, top-p,
top-k), and returns one row per candidate with its token count, its log-probability and why it stopped. The
log-probability is under the model's own distribution (temperature 1, no truncation): the quantity RLHF's KL
terms are made of, whatever decoding settings drew the sample.

Every sample rlhfkit draws (here, in PPO's rollouts, in evaluation) goes through `generate_neutral`: generate()
under a generation config built from our own settings alone. A checkpoint's `generation_config.json` (repetition
penalties, `no_repeat_ngram_size`, `min_new_tokens`, suppressed or biased tokens ...) would otherwise reshape the
sampled distribution away from the model's own, and every log-prob, ratio and KL computed on those samples as
"the policy's" would be wrong.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import pandas as pd
import torch

from rlhfkit._renamed import renamed
from rlhfkit.threads import cpu_threads

__all__ = [
    "SamplingSettings",
    "render_prompts",
    "sample_candidates",
    "candidate_pairs",
    "neutral_generation_config",
    "generate_neutral",
]


@dataclass
class SamplingSettings:
    """How candidates are drawn."""

    k: int = 4
    """Candidates per prompt."""
    do_sample: bool = True
    """Stochastic decoding; False means greedy (then k must be 1, since greedy repeats itself)."""
    temperature: float = 1.0
    """Softmax temperature for stochastic decoding: below 1 sharpens, above 1 flattens."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p (1.0 = off)."""
    top_k: int = 0
    """Keep only the k most likely tokens (0 = off)."""
    max_new_tokens: int = 64
    """Longest response, in tokens; a response cut here has finish_reason "length"."""
    batch_size: int = 16
    """Prompts per generate call (each expands to k sequences)."""
    seed: int | None = None
    """Seed for reproducible sampling; None draws fresh randomness each call."""
    chat: bool | None = None
    """Wrap string prompts in the tokenizer's chat template; None = when the tokenizer has one."""

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be at least 1, got {self.k}")
        if not self.do_sample and self.k > 1:
            raise ValueError(
                f"greedy decoding returns the same response every time; use k=1 with "
                f"do_sample=False, or do_sample=True for {self.k} different candidates"
            )
        if self.do_sample and self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 for sampling, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0 or self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("top_k must be >= 0, max_new_tokens and batch_size >= 1")


def render_prompts(tokenizer, prompts: Sequence[Any], chat: bool | None = None) -> list[str]:
    """Prompts as the exact text the model sees: message lists always go through the chat template; strings do
    when `chat` is True, or when `chat` is None and the tokenizer has a template."""
    use_chat = bool(getattr(tokenizer, "chat_template", None)) if chat is None else chat
    rendered = []
    for prompt in prompts:
        if isinstance(prompt, list) or use_chat:
            messages = prompt if isinstance(prompt, list) else [{"role": "user", "content": prompt}]
            rendered.append(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
        else:
            rendered.append(prompt)
    return rendered


def _prompt_text(prompt: Any) -> str:
    return prompt if isinstance(prompt, str) else str(prompt[-1]["content"])


def neutral_generation_config(
    *,
    max_new_tokens: int,
    eos_token_id: int | list[int],
    pad_token_id: int | None,
    do_sample: bool = True,
    temperature: float = 1.0,
    top_p: float = 1.0,
    top_k: int = 0,
    num_return_sequences: int = 1,
    output_logits: bool = False,
):
    """A `transformers.GenerationConfig` that holds these settings and nothing else: every other logits processor
    (repetition penalties, n-gram blocking, minimum lengths, bad or suppressed tokens, sequence biases, forced
    tokens, typical/epsilon/eta sampling) is off. Sampling with it draws from softmax(logits / temperature),
    truncated only by the given top_k / top_p (0 / 1.0 = off). Use it through `generate_neutral`."""
    from transformers import GenerationConfig

    sampling = dict(temperature=temperature, top_p=top_p, top_k=top_k) if do_sample else {}
    return GenerationConfig(
        do_sample=do_sample,
        **sampling,
        max_new_tokens=max_new_tokens,
        min_new_tokens=0,
        num_beams=1,
        num_return_sequences=num_return_sequences,
        eos_token_id=eos_token_id,
        pad_token_id=pad_token_id,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        typical_p=1.0,
        epsilon_cutoff=0.0,
        eta_cutoff=0.0,
        use_cache=True,
        output_logits=output_logits,
        return_dict_in_generate=True,
    )


def _generating_module(model):
    """The transformers model whose generate() runs (through a peft or DDP wrapper)."""
    model = getattr(model, "module", model)
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@torch.no_grad()
def generate_neutral(model, config, **inputs):
    """`model.generate(**inputs)` under `config` (from `neutral_generation_config`) alone. generate() fills every
    field a given config leaves unset from the model's own `generation_config`, so that config is swapped out for
    the call (and put back afterwards)."""
    inner = _generating_module(model)
    own = inner.generation_config
    inner.generation_config = config
    try:
        return model.generate(**inputs, generation_config=config)
    finally:
        inner.generation_config = own


@torch.no_grad()
def sample_candidates(
    model, tokenizer, prompts: Sequence[Any], config: SamplingSettings | None = None, progress: bool = True
) -> pd.DataFrame:
    """K candidates for every prompt, one row each: prompt_index, prompt, candidate, response, response_ids (the
    sampled token ids, EOS excluded), n_tokens (excluding EOS), sum_logprob (including EOS when generated),
    finish_reason ("eos" or "length"), and the
    decoding settings."""
    from tqdm.auto import tqdm

    config = config or SamplingSettings()
    if not prompts:
        raise ValueError("sample_candidates needs at least one prompt")
    texts = render_prompts(tokenizer, prompts, config.chat)
    eos_ids = _eos_ids(model, tokenizer)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    old_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    rows: list[dict] = []
    settings = {k: v for k, v in asdict(config).items() if k not in ("k", "batch_size", "chat")}
    rng_devices = [device] if device.type == "cuda" else []
    generation = neutral_generation_config(
        do_sample=config.do_sample,
        temperature=config.temperature,
        top_p=config.top_p,
        top_k=config.top_k,
        max_new_tokens=config.max_new_tokens,
        num_return_sequences=config.k,
        eos_token_id=eos_ids,
        pad_token_id=tokenizer.pad_token_id,
        output_logits=True,
    )
    try:
        with (
            torch.random.fork_rng(devices=rng_devices, enabled=config.seed is not None),
            cpu_threads(model=model, device=device),
        ):
            if config.seed is not None:
                torch.manual_seed(config.seed)
            starts = range(0, len(texts), config.batch_size)
            for start in tqdm(starts, desc="sampling", disable=not progress, leave=False):
                batch = texts[start : start + config.batch_size]
                # Our rendered prompts already carry any special tokens the template adds.
                enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
                out = generate_neutral(model, generation, **enc)
                new_tokens = out.sequences[:, enc["input_ids"].shape[1] :]
                logprobs = torch.stack(out.logits, dim=1).float().log_softmax(-1)
                token_logprobs = logprobs.gather(-1, new_tokens.unsqueeze(-1)).squeeze(-1)
                for row, tokens in enumerate(new_tokens):
                    prompt_index = start + row // config.k
                    rows.append(
                        _candidate_row(
                            tokenizer,
                            tokens,
                            token_logprobs[row],
                            eos_ids,
                            prompt_index,
                            _prompt_text(prompts[prompt_index]),
                            row % config.k,
                            settings,
                        )
                    )
    finally:
        tokenizer.padding_side = old_side
        model.train(was_training)
    return pd.DataFrame(rows)


def _eos_ids(model, tokenizer) -> list[int]:
    """Every token that ends a response: the tokenizer's EOS and any the generation config adds."""
    ids = {tokenizer.eos_token_id}
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(configured if isinstance(configured, list) else [configured])
    return sorted(i for i in ids if i is not None)


def _candidate_row(
    tokenizer,
    tokens: torch.Tensor,
    token_logprobs: torch.Tensor,
    eos_ids: list[int],
    prompt_index: int,
    prompt: str,
    candidate: int,
    settings: dict,
) -> dict:
    is_eos = torch.isin(tokens, torch.tensor(eos_ids, device=tokens.device))
    if is_eos.any():
        end = int(is_eos.nonzero()[0])
        finish, n_scored = "eos", end + 1  # the EOS token's probability belongs to the sequence
    else:
        end = n_scored = len(tokens)
        finish = "length"
    return {
        "prompt_index": prompt_index,
        "prompt": prompt,
        "candidate": candidate,
        "response": tokenizer.decode(tokens[:end], skip_special_tokens=True),
        # The exact sampled ids: decoding drops special tokens a model may emit mid-response, so re-tokenizing the
        # text is not always the same sequence (KL and log-prob computations should use these).
        "response_ids": tokens[:end].tolist(),
        "n_tokens": end,
        "sum_logprob": float(token_logprobs[:n_scored].sum()),
        "finish_reason": finish,
        **settings,
    }


def candidate_pairs(table: pd.DataFrame, max_pairs_per_prompt: int | None = None, seed: int = 0) -> list[dict]:
    """Unordered pairs of distinct responses to the same prompt from a `sample_candidates` table, as
    {"prompt", "response_a", "response_b"}: all K(K-1)/2 per prompt, or a seeded random subset of at most
    `max_pairs_per_prompt`. Identical responses are never paired (they cannot express a preference)."""
    import itertools
    import random

    rng = random.Random(seed)
    pairs = []
    for _, group in table.groupby("prompt_index", sort=True):
        responses = list(dict.fromkeys(group.response))  # distinct, in candidate order
        combos = list(itertools.combinations(responses, 2))
        if max_pairs_per_prompt is not None and len(combos) > max_pairs_per_prompt:
            combos = rng.sample(combos, max_pairs_per_prompt)
        prompt = group.prompt.iloc[0]
        pairs.extend({"prompt": prompt, "response_a": a, "response_b": b} for a, b in combos)
    return pairs


__getattr__ = renamed(__name__, {"SamplingConfig": "SamplingSettings"})  # the old name, for one release
