"""Every storage engine the conformance suite runs against, and helpers that drive an engine directly.

Adding an engine is one entry in ``ENGINES``: a factory building it on a
directory (ignored by engines that keep nothing on disk) and what it promises.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coffer.storage.api import Engine, ObjectInfo
from coffer.storage.disk import DiskEngine
from coffer.storage.memory import MemoryEngine
from tests.helpers import chunks

# The owner of the buckets the ``plain`` and ``versioned`` fixtures (conftest.py) create.
ENGINE_OWNER = "owner-1"


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


async def put(
    engine: Engine,
    bucket: str,
    key: str,
    data: bytes,
    *,
    piece: int = 65536,
    headers: dict[str, str] | None = None,
    **kwargs: Any,
) -> ObjectInfo:
    """PutObject of ``data`` in ``piece``-byte chunks (no headers unless given)."""
    return await engine.put_object(
        bucket, key, chunks(data, piece), headers={} if headers is None else headers, **kwargs
    )


async def read(engine: Engine, bucket: str, key: str, start: int = 0, end: int | None = None) -> bytes:
    """The object's bytes ``start:end``, streamed."""
    opened = await engine.open_object(bucket, key)
    return b"".join([piece async for piece in opened.stream(start, end)])


async def keys_of(engine: Engine, bucket: str) -> list[str]:
    page = await engine.list_objects(bucket, max_keys=1000)
    return [e.key for e in page.entries]


def blob_files(root: Path) -> set[str]:
    """Names of the disk engine's published blob files under ``root``."""
    return {p.name for p in (root / "blobs").rglob("*") if p.is_file()}


def persistent_memory(directory: Path, **kwargs: Any) -> MemoryEngine:
    """A memory engine with snapshot + WAL under ``directory`` (no periodic snapshots: tests take them)."""
    return MemoryEngine(max_memory=1 << 30, persistence_dir=directory, fsync=False, snapshot_interval=0, **kwargs)


def crash_memory(engine: MemoryEngine) -> None:
    """Stop a persistent memory engine the way kill -9 would: no shutdown snapshot, nothing flushed beyond the WAL."""
    assert engine._wal is not None
    engine._wal.close()
    engine._wal = None
    for task in engine._tasks:
        task.cancel()


def write_old_log(directory: Path, records: list[Any]) -> None:
    """Write ``records`` (wal.Record) as the first log segment of ``directory``, as an older
    Coffer would have: how replay of earlier record formats is tested."""
    from coffer.storage.memory.wal import encode_meta, segment_path, write_record

    with open(segment_path(directory, 1), "wb") as out:
        for record in records:
            record.raw = encode_meta(record.meta)
            write_record(out, record)
