"""Every storage engine the conformance suite runs against.

Adding an engine is one entry in ``ENGINES``: a factory building it on a
directory (ignored by engines that keep nothing on disk) and what it promises.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from coffer.storage.api import Engine
from coffer.storage.disk import DiskEngine
from coffer.storage.memory import MemoryEngine


@dataclass(frozen=True)
class EngineKind:
    make: Callable[[Path], Engine]
    # Data survives close() + a new engine on the same directory.
    persistent: bool = False
    # Files the engine holds outside its metadata (bodies in flight or published),
    # to prove failed and replaced writes leave nothing behind. None: no files.
    files: Callable[[Path], list[str]] | None = None


def _disk_files(root: Path) -> list[str]:
    found = []
    for sub in ("tmp", "blobs"):
        for dirpath, _dirs, names in os.walk(root / sub):
            found += [os.path.join(dirpath, n) for n in names]
    return sorted(found)


ENGINES: dict[str, EngineKind] = {
    # A small inline threshold so tests reach both the inline and the file path cheaply.
    "disk": EngineKind(lambda root: DiskEngine(root, fsync=False, inline_threshold=1024), True, _disk_files),
    # The same with its read cache on (what one-worker servers run): every read contract must hold.
    "disk-cached": EngineKind(
        lambda root: DiskEngine(root, fsync=False, inline_threshold=1024, read_cache_bytes=1 << 20), True, _disk_files
    ),
    "memory": EngineKind(lambda root: MemoryEngine(max_memory=1 << 30)),
    # Snapshot + write-ahead log under the directory: survives close() and a new engine.
    "memory-wal": EngineKind(
        lambda root: MemoryEngine(max_memory=1 << 30, persistence_dir=root / "memory", fsync=False), True
    ),
}
