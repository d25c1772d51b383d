"""Load policies, references and reward models by Hub id, local path, or a short name for the embedded default.

Every loader goes through the same path a Hub id takes (`from_pretrained`), so a local folder, a Hub model and
the embedded default behave alike. `trust_remote_code` is off unless the caller turns it on. Device and dtype
default to CUDA + bf16 when a GPU with bf16 is present, else CPU + fp32; both can be overridden.
"""

from __future__ import annotations

import importlib
import logging
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch

__all__ = [
    "DEFAULT_MODEL",
    "LoraSettings",
    "pick_device",
    "pick_dtype",
    "resolve_model",
    "load_tokenizer",
    "load_policy",
    "load_reference",
    "load_reward_model",
]

DEFAULT_MODEL = "tiny"
# Short names for models the project builds itself, resolved lazily ("module:function" returning a folder) so
# this low-floor module does not import the builder.
_SHORT_NAMES = {
    "tiny": "rlhfkit.tiny.cache:default_model_path",
    "rlhfkit/tiny": "rlhfkit.tiny.cache:default_model_path",
}


@dataclass
class LoraSettings:
    """LoRA adapter settings (passed to peft). Only the adapter trains; the base stays frozen."""

    r: int = 16
    """Rank of the low-rank update."""
    alpha: int = 32
    """Scaling numerator: the update is scaled by alpha / r."""
    dropout: float = 0.05
    """Dropout on the adapter's input."""
    target_modules: str | list[str] = "all-linear"
    """Which linear layers get adapters; "all-linear" covers attention and MLP projections."""
    modules_to_save: list[str] = field(default_factory=list)
    """Extra modules trained in full and saved with the adapter (e.g. ["score"] for a reward head)."""

    def to_peft(self, task_type: str = "CAUSAL_LM"):
        from peft import LoraConfig

        return LoraConfig(
            r=self.r,
            lora_alpha=self.alpha,
            lora_dropout=self.dropout,
            target_modules=self.target_modules,
            modules_to_save=self.modules_to_save or None,
            task_type=task_type,
        )


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """`device` if given (e.g. "cpu", "cuda:1"), else CUDA when available, else CPU."""
    if device is not None and str(device) != "auto":
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(device: torch.device, dtype: str | torch.dtype | None = None) -> torch.dtype:
    """`dtype` if given ("bf16", "fp16", "fp32" or a torch dtype), else bf16 on a GPU that supports it, else fp32."""
    if dtype is not None and str(dtype) != "auto":
        if isinstance(dtype, torch.dtype):
            return dtype
        names = {
            "bf16": torch.bfloat16,
            "bfloat16": torch.bfloat16,
            "fp16": torch.float16,
            "float16": torch.float16,
            "fp32": torch.float32,
            "float32": torch.float32,
        }
        if dtype not in names:
            raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(names)}")
        return names[dtype]
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def resolve_model(name_or_path: str | os.PathLike) -> str:
    """A short name ("tiny") becomes the folder of the built model; a path or Hub id is returned unchanged."""
    name = str(name_or_path)
    if name in _SHORT_NAMES:
        module, attr = _SHORT_NAMES[name].split(":")
        return str(getattr(importlib.import_module(module), attr)())
    return name


def _from_pretrained(loader, name: str, kind: str, **kwargs):
    """Call a transformers loader, turning the offline failure into a message that says what to do."""
    try:
        return loader.from_pretrained(name, **kwargs)
    except OSError as err:
        if Path(name).exists():
            raise
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise OSError(
            f"could not load the {kind} {name!r}: it is not a local folder, and the Hub "
            f"{'is switched off (HF_HUB_OFFLINE=1)' if offline else 'could not be reached or has no such model'}. "
            f"Pass a local folder, a Hub id that is reachable, or {DEFAULT_MODEL!r} for the embedded default."
        ) from err


@contextmanager
def _quiet_weight_loading():
    """Hold back transformers' "Loading weights" bars and its LOAD REPORT while a model loads.

    Yields the list that collects the held-back report records: `_load_model` re-emits them unless the load was
    what rlhfkit expected (a new score head), so nothing unexpected goes unreported.
    """
    from transformers.utils import logging as hf_logging

    held: list[logging.LogRecord] = []

    def hold_report(record: logging.LogRecord) -> bool:
        # "newly initialized": older transformers word the same report so
        if "LOAD REPORT" in str(record.msg) or "newly initialized" in str(record.msg):
            held.append(record)
            return False
        return True

    def no_loading_bar(factory, args, kwargs):
        if kwargs.get("desc") == "Loading weights":
            kwargs = {**kwargs, "disable": True}
        return previous_hook(factory, args, kwargs) if previous_hook else factory(*args, **kwargs)

    report_logger = logging.getLogger("transformers.modeling_utils")
    report_logger.addFilter(hold_report)
    set_hook = getattr(hf_logging, "set_tqdm_hook", None)  # older transformers have no hook: their bars stay
    previous_hook = set_hook(no_loading_bar) if set_hook else None
    try:
        yield held
    finally:
        report_logger.removeFilter(hold_report)
        if set_hook:
            set_hook(previous_hook)


def _load_model(loader, name: str, kind: str, *, new_head_expected: bool = False, **kwargs):
    """`_from_pretrained` for weights, without transformers' bars; returns (model, whether a new head was made).

    transformers' load report is shown only when something unexpected happened: any missing, unexpected or
    mismatched key, except (with `new_head_expected`) a task head missing from a checkpoint of another head, e.g.
    a sequence classifier's `score` from a causal LM that brought an `lm_head`.
    """
    with _quiet_weight_loading() as held:
        model, info = _from_pretrained(loader, name, kind, output_loading_info=True, **kwargs)
    backbone = getattr(model, "base_model_prefix", "")
    missing, unexpected = set(info["missing_keys"]), set(info["unexpected_keys"])
    in_head = {key for key in missing | unexpected if backbone and not key.startswith(backbone + ".")}
    new_head = bool(missing & in_head)
    expected = new_head_expected and new_head and in_head == missing | unexpected and not info["mismatched_keys"]
    if not expected:
        for record in held:
            logging.getLogger(record.name).handle(record)
    return model, new_head


def _say(line: str) -> None:
    """One plain line about what a load did (not a warning: nothing is wrong), from the main process only."""
    if os.environ.get("RANK", "0") == "0":
        print(line, flush=True)


def load_tokenizer(
    name_or_path: str | os.PathLike = DEFAULT_MODEL, *, padding_side: str = "left", trust_remote_code: bool = False
):
    """The model's tokenizer, with a pad token (the EOS token if the model has none) and the given padding side
    (left, for batched generation)."""
    from transformers import AutoTokenizer

    name = resolve_model(name_or_path)
    tokenizer = _from_pretrained(AutoTokenizer, name, "tokenizer", trust_remote_code=trust_remote_code)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"tokenizer of {name!r} has neither a pad nor an eos token; set one before use")
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_policy(
    name_or_path: str | os.PathLike = DEFAULT_MODEL,
    *,
    device=None,
    dtype=None,
    lora: LoraSettings | None = None,
    trust_remote_code: bool = False,
):
    """A causal LM ready to train or sample. With `lora`, a peft model whose base is frozen; calling
    `model.disable_adapter()` as a context manager then gives the reference policy from the same weights."""
    from transformers import AutoModelForCausalLM

    name = resolve_model(name_or_path)
    device = pick_device(device)
    model, _ = _load_model(
        AutoModelForCausalLM, name, "policy", dtype=pick_dtype(device, dtype), trust_remote_code=trust_remote_code
    )
    model.to(device)
    if lora is not None:
        from peft import get_peft_model

        model = get_peft_model(model, lora.to_peft("CAUSAL_LM"))
    return model


def load_reference(
    name_or_path: str | os.PathLike = DEFAULT_MODEL, *, device=None, dtype=None, trust_remote_code: bool = False
):
    """A frozen copy of a causal LM (eval mode, no gradients): the KL anchor of RLHF."""
    model = load_policy(name_or_path, device=device, dtype=dtype, trust_remote_code=trust_remote_code)
    model.eval()
    model.requires_grad_(False)
    return model


def load_reward_model(
    name_or_path: str | os.PathLike = DEFAULT_MODEL,
    *,
    device=None,
    dtype=None,
    lora: LoraSettings | None = None,
    trust_remote_code: bool = False,
    role: str = "reward",
):
    """A sequence classifier with one output (the reward). From a causal LM checkpoint the score head is new and
    random: expected before reward training, so transformers' report of it is replaced by one line saying so.
    `role="value"` (PPO's value model) words that line for a value head."""
    from transformers import AutoModelForSequenceClassification

    if role not in ("reward", "value"):
        raise ValueError(f"role must be 'reward' or 'value', not {role!r}")
    name = resolve_model(name_or_path)
    device = pick_device(device)
    model, new_head = _load_model(
        AutoModelForSequenceClassification,
        name,
        "reward model",
        new_head_expected=True,
        num_labels=1,
        dtype=pick_dtype(device, dtype),
        trust_remote_code=trust_remote_code,
    )
    if role == "value":
        _say(
            f"value head initialised randomly on {name} (it has no score head); PPO trains it"
            if new_head
            else f"value head initialised from the reward model {name}"
        )
    else:
        _say(
            f"score head of {name} initialised randomly (a causal LM has none): train it before using its rewards"
            if new_head
            else f"reward model {name}: trained score head loaded"
        )
    if model.config.pad_token_id is None:
        # Sequence classifiers find the last real token through pad_token_id; take it from the tokenizer.
        model.config.pad_token_id = load_tokenizer(name, trust_remote_code=trust_remote_code).pad_token_id
    model.to(device)
    if lora is not None:
        from peft import get_peft_model

        lora = LoraSettings(**{**lora.__dict__, "modules_to_save": lora.modules_to_save or ["score"]})
        model = get_peft_model(model, lora.to_peft("SEQ_CLS"))
    return model
