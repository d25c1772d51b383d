"""Where the embedded default lives on disk: built on first use, cached, verified, rebuilt when broken.

The cache rules are `rlhfkit.cache`'s (shared with GGUF conversions): the folder is `cache_root()`
(`$RLHFKIT_CACHE`, else `$XDG_CACHE_HOME/rlhfkit`, else `~/.cache/rlhfkit`); each build sits in a sub-folder named
by a version hash of the generator and its `TinySettings`, with a `manifest.json` listing the sha256 of every file.
A folder without a manifest, or whose files do not match it, is never used: it is deleted and rebuilt. Builds happen
in a temporary folder that is renamed into place only when complete, under a file lock, so two processes (say, two
`accelerate launch` ranks) never build the same thing twice or read half of it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

from rlhfkit.cache import BUILD_LOG, MANIFEST, build_once, cache_root, is_complete
from rlhfkit.tiny.build import TinySettings, build

__all__ = [
    "BUILD_LOG",
    "BUILD_VERSION",
    "MANIFEST",
    "build_info",
    "cache_root",
    "default_model_path",
    "is_complete",
    "version_hash",
]

# Bump when the corpus generator or the build changes in a way the config does not capture.
BUILD_VERSION = "1"


def version_hash(config: TinySettings) -> str:
    """A short hash of everything that decides the build."""
    payload = json.dumps({"build": BUILD_VERSION, "config": asdict(config)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def default_model_path(config: TinySettings | None = None, *, force: bool = False, progress: bool = True) -> Path:
    """The folder of the embedded default model and tokenizer, building it first if needed.

    `force=True` rebuilds even when a valid build is cached."""
    config = config or TinySettings()
    folder = cache_root() / f"tiny-{version_hash(config)}"
    return build_once(folder, lambda staging: build(config, staging, progress=progress), force=force)


def build_info(folder: Path) -> dict:
    """The report written by the build: eval loss, unigram baseline, timings, a few samples."""
    return json.loads((Path(folder) / "build_info.json").read_text())
