"""How many CPU threads torch uses: one rule for every entry point (CLI, pipeline, stages, build, notebooks).

Why a rule at all: torch's default is one thread per core. For small models (the embedded default has about a
million parameters) each matrix product is too small to split well, and when any other process is busy on the
machine the OpenMP threads wait on each other: on a shared 2-core machine the embedded default's training steps
took 4-9 s with 2 threads beside one busy process, against ~0.6 s with 1 thread. One thread per process for small
models costs little on a quiet machine and holds up on a busy one (`bench/threads_under_load.py` measures both).

The number of threads, first match wins:
  1. an explicit request (a `threads=` argument, `PPOSettings.cpu_threads`, `PipelineSettings.threads`,
     `rlhfkit --threads N`), which also holds for everything called inside it;
  2. the environment variable `RLHFKIT_THREADS` (a whole number >= 1, or "auto" for torch's own default);
  3. 1 for a model under `SMALL_MODEL_PARAMETERS` on the CPU;
  4. otherwise torch's own setting is left alone.

Only CPU work is affected; `cpu_threads` restores torch's previous setting when its block ends.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Iterator

import torch

__all__ = ["ENV_VAR", "SMALL_MODEL_PARAMETERS", "choose_threads", "cpu_threads", "parse_threads"]

ENV_VAR = "RLHFKIT_THREADS"
SMALL_MODEL_PARAMETERS = 20_000_000
"""Below this many parameters one thread per process is the default on the CPU (the embedded default has ~1 M;
a 135 M model keeps torch's default)."""

# An explicit choice made by an enclosing block (e.g. the pipeline's), seen by the stages it calls.
_explicit: ContextVar[int | None] = ContextVar("rlhfkit_threads", default=None)


def parse_threads(value: Any, source: str = ENV_VAR) -> int | None:
    """A thread count from user input: a whole number >= 1, or None / "" / "auto" for no choice."""
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "auto")):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or (isinstance(value, float) and value != number):
        raise ValueError(f"{source}: expected a whole number of threads >= 1 or 'auto', got {value!r}")
    return number


def _parameters(model: Any) -> int | None:
    if model is None:
        return None
    if isinstance(model, str):  # only the embedded default's name tells its size; any other name or path does not
        return 1 if model == "tiny" else None
    if isinstance(model, int):
        return model
    try:
        return sum(p.numel() for p in model.parameters())
    except AttributeError:
        return None


def choose_threads(requested: int | None = None, *, model: Any = None, device: Any = "cpu") -> int | None:
    """The torch thread count the rule above gives, or None to leave torch's setting alone.

    `model` is a module, a parameter count, or "tiny" (the embedded default); None or any other name means the
    size is unknown, and only rules 1 and 2 apply. `device` is where the work runs (anything not CPU gets None)."""
    if torch.device(device).type != "cpu":
        return None
    for candidate, source in ((requested, "threads"), (_explicit.get(), "threads")):
        if candidate is not None:
            return parse_threads(candidate, source)
    if os.environ.get(ENV_VAR, "").strip():
        return parse_threads(os.environ[ENV_VAR])  # "auto" gives None: torch's default
    parameters = _parameters(model)
    if parameters is not None and parameters < SMALL_MODEL_PARAMETERS:
        return 1
    return None


@contextmanager
def cpu_threads(requested: int | None = None, *, model: Any = None, device: Any = "cpu") -> Iterator[int]:
    """Run the block with `choose_threads(...)` torch threads and restore the previous setting afterwards.

    An explicit `requested` count also applies to every `cpu_threads` block nested inside this one, so the
    pipeline's choice reaches each stage. Yields the thread count in force."""
    threads = choose_threads(requested, model=model, device=device)
    before = torch.get_num_threads()
    token = _explicit.set(parse_threads(requested, "threads")) if requested is not None else None
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        if token is not None:
            _explicit.reset(token)
        torch.set_num_threads(before)
