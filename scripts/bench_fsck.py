"""How fast `coffer fsck` verifies stored bodies (MB/s of object data).

Seeds a disk store through the engine API (no HTTP) with OBJECTS bodies of SIZE MiB, each
stored with an x-amz-checksum (CRC32 by default, as current AWS SDKs send) so fsck checks
MD5 and that checksum, plus one multipart-sized body made of pieces is not needed: pieces
are checked exactly as single bodies are. Then runs fsck (``Fsck.run``, what the command
runs) ROUNDS times and prints the median rate. The bodies were just written, so they are
in the page cache: the figure is what fsck's hashing costs, not the disk's read speed.

    python scripts/bench_fsck.py --objects 64 --size 8 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

from coffer.storage.disk import DiskEngine
from coffer.storage.disk.fsck import Fsck

MiB = 1024 * 1024


async def _body(data: bytes) -> AsyncIterator[bytes]:
    for at in range(0, len(data), MiB):
        yield data[at : at + MiB]


async def seed(root: Path, objects: int, size: int, algorithm: str) -> int:
    engine = DiskEngine(root, fsync=False)
    await engine.start()
    try:
        await engine.create_bucket("bench", "owner", "us-east-1")
        data = os.urandom(size * MiB)
        for i in range(objects):
            await engine.put_object(
                "bench", f"obj-{i}", _body(data), headers={}, checksum_algorithms=(algorithm,) if algorithm else ()
            )
    finally:
        await engine.close()
    return objects * size * MiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=64)
    parser.add_argument("--size", type=int, default=8, help="MiB per object")
    parser.add_argument("--checksum", default="CRC32", help="x-amz-checksum algorithm stored with each body ('' none)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="coffer-bench-fsck-") as tmp:
        root = Path(tmp) / "data"
        total = asyncio.run(seed(root, args.objects, args.size, args.checksum))
        rates = []
        for _ in range(args.rounds):
            checker = Fsck(root, resume=False)
            checker.open()
            try:
                started = time.perf_counter()
                report = checker.run()
                elapsed = time.perf_counter() - started
            finally:
                checker.close()
            assert report.complete and not report.problems and report.bytes == total, report.summary()
            rates.append(total / elapsed / 1e6)
        print(
            f"fsck: {args.objects} x {args.size} MiB ({total / MiB:.0f} MiB, checksum {args.checksum or 'none'}):"
            f" median {statistics.median(rates):.0f} MB/s  all {[round(r) for r in rates]}"
        )


if __name__ == "__main__":
    main()
