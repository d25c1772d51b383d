"""Where the embedded default lives on disk: built on first use, cached, verified, rebuilt when broken.

The cache folder is `$RLHFKIT_CACHE` if set, else `$XDG_CACHE_HOME/rlhfkit`, else `~/.cache/rlhfkit`. Each build
sits in a sub-folder named by a version hash of the generator and its `TinySettings`, with a `manifest.json` listing
the sha256 of every file. A folder without a manifest, or whose files do not match it, is never used: it is
deleted and rebuilt. Builds happen in a temporary folder that is renamed into place only when complete, under a
file lock, so two processes (say, two `accelerate launch` ranks) never build the same thing twice or read half of it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from rlhfkit.tiny.build import TinySettings, build

# Bump when the corpus generator or the build changes in a way the config does not capture.
BUILD_VERSION = "1"
MANIFEST = "manifest.json"
BUILD_LOG = "builds.log"  # one line per build, so rebuilds are visible


def cache_root() -> Path:
    """The folder holding all cached builds."""
    if os.environ.get("RLHFKIT_CACHE"):
        return Path(os.environ["RLHFKIT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rlhfkit"


def version_hash(config: TinySettings) -> str:
    """A short hash of everything that decides the build."""
    payload = json.dumps({"build": BUILD_VERSION, "config": asdict(config)}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_manifest(folder: Path) -> None:
    files = {p.name: _sha256(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}
    (folder / MANIFEST).write_text(json.dumps({"files": files}, indent=2))


def is_complete(folder: Path) -> bool:
    """True when `folder` has a manifest and every file it lists exists with the recorded checksum."""
    try:
        files = json.loads((folder / MANIFEST).read_text())["files"]
        return bool(files) and all(_sha256(folder / name) == digest for name, digest in files.items())
    except (OSError, ValueError, KeyError, TypeError):
        return False


@contextmanager
def _locked(lock_path: Path):
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def default_model_path(config: TinySettings | None = None, *, force: bool = False, progress: bool = True) -> Path:
    """The folder of the embedded default model and tokenizer, building it first if needed.

    `force=True` rebuilds even when a valid build is cached."""
    config = config or TinySettings()
    root = cache_root()
    folder = root / f"tiny-{version_hash(config)}"
    if not force and is_complete(folder):
        return folder
    with _locked(root / f".{folder.name}.lock"):
        if not force and is_complete(folder):  # another process finished it while we waited
            return folder
        staging = root / f".{folder.name}.building-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        build(config, staging, progress=progress)
        _write_manifest(staging)
        shutil.rmtree(folder, ignore_errors=True)  # a corrupt or forced-out build
        os.replace(staging, folder)
        with (root / BUILD_LOG).open("a") as log:
            log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} built {folder.name} pid={os.getpid()}\n")
    return folder


def build_info(folder: Path) -> dict:
    """The report written by the build: eval loss, unigram baseline, timings, a few samples."""
    return json.loads((Path(folder) / "build_info.json").read_text())
