"""What an online compaction of the metadata journal costs, and how long it pauses writes.

Seeds a disk store through the engine API (no HTTP) with KEYS objects of SIZE bytes (inline:
their bodies are in the journal), reopens it with a floor of 0 (compact at twice the last
snapshot; at first, twice the database file), overwrites random keys until COMPACTIONS
compactions have run, and prints each one's log line: the journal's length before and after,
the whole compaction's seconds (the snapshot is built on its own thread while writes go on)
and how long the writer was paused for the swap.

    python scripts/bench_journal_compaction.py --keys 20000 --size 1024 --compactions 3
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from coffer.storage.disk import DiskEngine
from coffer.storage.disk.journal import JOURNAL_NAME


async def _body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def run(root: Path, keys: int, size: int, compactions: int) -> None:
    data = os.urandom(size)
    engine = DiskEngine(root, fsync=False, journal_compact_min_bytes=1 << 40)  # seeding: no compaction
    await engine.start()
    try:
        await engine.create_bucket("bench", "owner", "us-east-1")
        for i in range(keys):
            await engine.put_object("bench", f"k{i}", _body(data), headers={})
    finally:
        await engine.close()
    engine = DiskEngine(root, fsync=False, journal_compact_min_bytes=0)
    await engine.start()
    try:
        started = time.perf_counter()
        writes = 0
        compactor = engine.meta.compactor  # type: ignore[attr-defined]
        while compactor.compactions < compactions:
            await engine.put_object("bench", f"k{random.randrange(keys)}", _body(data), headers={})
            writes += 1
        seconds = time.perf_counter() - started
        journal = (root / JOURNAL_NAME).stat().st_size
        print(f"{writes} PUTs of {size} B over {keys} keys in {seconds:.1f} s; journal now {journal} bytes")
    finally:
        await engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, default=20000)
    parser.add_argument("--size", type=int, default=1024, help="bytes per object (inline below 64 KiB)")
    parser.add_argument("--compactions", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("coffer.engine").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="coffer-bench-journal-") as tmp:
        asyncio.run(run(Path(tmp) / "data", args.keys, args.size, args.compactions))


if __name__ == "__main__":
    main()
