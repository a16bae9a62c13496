"""How fast `coffer fsck` verifies stored bodies (MB/s of object data).

Seeds a disk store through the engine API (no HTTP) with OBJECTS bodies of SIZE MiB, each
stored with an x-amz-checksum (CRC32 by default, as current AWS SDKs send; ``--checksum ''``
for none, then fsck compares the MD5 ETag), and runs fsck (``Fsck.run``, what the command
runs) ROUNDS times: the median rate over wall time, and MB per CPU-second (what the run
would reach with a core to itself; the benchmark machine is shared). Pieces of multipart
objects are checked exactly as single bodies are. The bodies were just written, so they
are in the page cache: the figure is what fsck's hashing costs, not the disk's read speed.

    python scripts/bench_fsck.py --objects 64 --size 8 --rounds 3 [--checksum ''] [--all-digests]
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
    parser.add_argument("--all-digests", action="store_true", help="as `coffer fsck --all-digests`")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="coffer-bench-fsck-") as tmp:
        root = Path(tmp) / "data"
        total = asyncio.run(seed(root, args.objects, args.size, args.checksum))
        rates, cpu_rates = [], []
        for _ in range(args.rounds):
            checker = Fsck(root, resume=False, all_digests=args.all_digests)
            checker.open()
            try:
                started, cpu = time.perf_counter(), time.process_time()
                report = checker.run()
                elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            finally:
                checker.close()
            assert report.complete and not report.problems and report.bytes == total, report.summary()
            rates.append(total / elapsed / 1e6)
            cpu_rates.append(total / cpu / 1e6)
        what = "all digests" if args.all_digests else "fastest digest"
        print(
            f"fsck: {args.objects} x {args.size} MiB ({total / MiB:.0f} MiB, checksum {args.checksum or 'none'},"
            f" {what}): median {statistics.median(rates):.0f} MB/s  all {[round(r) for r in rates]};"
            f" per CPU-second {statistics.median(cpu_rates):.0f} MB"
        )


if __name__ == "__main__":
    main()
