"""The model cache: folders built once, verified on every use, rebuilt when broken.

    from rlhfkit.cache import build_once, cache_root

    folder = build_once(cache_root() / "my-model-3f2a", lambda staging: make_model_into(staging))

The cache folder is `$RLHFKIT_CACHE` if set, else `$XDG_CACHE_HOME/rlhfkit`, else `~/.cache/rlhfkit`. Each build
sits in its own sub-folder (named by a hash of what decides its contents) with a `manifest.json` listing the
sha256 of every file. The rules, shared by the embedded default (`rlhfkit.tiny.cache`) and GGUF conversions
(`rlhfkit.models`):

- a folder without a manifest, or whose files do not match it, is never used: it is deleted and built again;
- a build happens in a staging folder that is renamed into place only when complete, so nobody reads half of it;
- a file lock makes two processes (say, two `accelerate launch` ranks) build the same folder once: the second waits,
  then finds it complete;
- each build adds a line to `builds.log` in the cache folder, so rebuilds are visible.

Standard library only: any module, on any floor, can use it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

__all__ = [
    "BUILD_LOG",
    "MANIFEST",
    "build_once",
    "cache_root",
    "is_complete",
    "locked",
    "sha256_file",
    "write_manifest",
]

MANIFEST = "manifest.json"
BUILD_LOG = "builds.log"  # one line per build, so rebuilds are visible


def cache_root() -> Path:
    """The folder holding all cached builds."""
    if os.environ.get("RLHFKIT_CACHE"):
        return Path(os.environ["RLHFKIT_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rlhfkit"


def sha256_file(path: str | os.PathLike) -> str:
    """The hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p != folder / MANIFEST)


def write_manifest(folder: str | os.PathLike) -> None:
    """Write `folder`/manifest.json: the sha256 of every file in `folder` (sub-folders included), and each file's
    size and modification time (for `is_complete(..., trust_stat=True)`). Call it when the folder is complete."""
    folder = Path(folder)
    files, stats = {}, {}
    for path in _files(folder):
        name = path.relative_to(folder).as_posix()
        files[name] = sha256_file(path)
        stat = path.stat()
        stats[name] = [stat.st_size, stat.st_mtime_ns]
    (folder / MANIFEST).write_text(json.dumps({"files": files, "stat": stats}, indent=2))


def is_complete(folder: str | os.PathLike, *, trust_stat: bool = False) -> bool:
    """True when `folder` has a manifest and every file it lists exists with the recorded checksum.

    `trust_stat=True` skips hashing a file whose size and modification time are still those the manifest recorded
    (as git does for its index): for folders of hundreds of MB, where hashing would take seconds on every load. A
    file that was written to since is hashed, so truncation or any edit is still caught; only an edit that restores
    the recorded modification time would not be."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files, stats = manifest["files"], manifest.get("stat", {}) if trust_stat else {}
        if not files:
            return False
        for name, digest in files.items():
            path = folder / name
            stat = path.stat()
            if stats.get(name) == [stat.st_size, stat.st_mtime_ns]:
                continue
            if sha256_file(path) != digest:
                return False
        return True
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


@contextmanager
def locked(lock_path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (created if needed) for the duration of the block; other processes
    asking for the same lock wait."""
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_once(
    folder: str | os.PathLike,
    build: Callable[[Path], object],
    *,
    force: bool = False,
    trust_stat: bool = False,
) -> Path:
    """`folder` when it holds a complete build; otherwise `build(staging)` fills a new staging folder (which exists,
    empty, when it is called), a manifest is written, and the staging folder replaces `folder`. Under a file lock:
    a process that waited for another's build returns that build. A failed build leaves nothing behind, and a broken
    `folder` is only replaced once the new build is complete. `force=True` builds even over a complete folder;
    `trust_stat` is `is_complete`'s."""
    folder = Path(folder)
    if not force and is_complete(folder, trust_stat=trust_stat):
        return folder
    root = folder.parent
    with locked(root / f".{folder.name}.lock"):
        if not force and is_complete(folder, trust_stat=trust_stat):  # another process finished it while we waited
            return folder
        # Staging folders of builds that died (another pid's): nobody else can be building this name while we hold
        # the lock.
        for stale in root.glob(f".{folder.name}.building-*"):
            shutil.rmtree(stale, ignore_errors=True)
        staging = root / f".{folder.name}.building-{os.getpid()}"
        staging.mkdir(parents=True)
        try:
            build(staging)
            write_manifest(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        shutil.rmtree(folder, ignore_errors=True)  # a corrupt or forced-out build
        os.replace(staging, folder)
        with (root / BUILD_LOG).open("a") as log:
            log.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} built {folder.name} pid={os.getpid()}\n")
    return folder
