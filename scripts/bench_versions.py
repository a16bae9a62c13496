"""Listing cost with many versions: is a page of a 100,000 keys x 10 versions bucket as cheap as a
page of an unversioned one?

Seeds two buckets through the engine API (no HTTP: the seeding of a million versions would
dominate otherwise), then times listing pages of 1000:

- flat:  N keys, one null version each (versioning never configured);
- deep:  the same N keys with V versions each, written round by round (every key gets its
         second version after every key got its first), so noncurrent rows interleave.

It prints the median time of a page of ListObjectsV2 and of ListObjectVersions (flat and
deep) and of a delimiter listing. Results and the command: docs/benchmarks.md.

    python scripts/bench_versions.py --engine disk --keys 100000 --versions 10
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

from coffer.storage.api import VERSIONING_ENABLED, Engine
from coffer.storage.disk import DiskEngine
from coffer.storage.memory import MemoryEngine

PAGE = 1000


async def _empty() -> AsyncIterator[bytes]:
    return
    yield b""


async def seed(engine: Engine, bucket: str, keys: int, versions: int) -> float:
    started = time.perf_counter()
    names = [f"d{i % 10}/key-{i:08d}" for i in range(keys)]
    for _round in range(versions):
        for first in range(0, keys, 500):
            await asyncio.gather(
                *(engine.put_object(bucket, name, _empty(), headers={}) for name in names[first : first + 500])
            )
    return time.perf_counter() - started


async def pages(list_page: Callable[[str, str], Awaitable[tuple[str, str] | None]], count: int) -> list[float]:
    """Time ``count`` consecutive pages (or until the listing ends); ms per page. The same pages
    are listed once before, untimed: every row is measured with a warm cache, whatever its order."""
    for warm in (True, False):
        times = await _pages(list_page, count)
        if not warm:
            return times
    raise AssertionError("unreachable")


async def _pages(list_page: Callable[[str, str], Awaitable[tuple[str, str] | None]], count: int) -> list[float]:
    times: list[float] = []
    marker: tuple[str, str] | None = ("", "")
    while marker is not None and len(times) < count:
        started = time.perf_counter()
        marker = await list_page(*marker)
        times.append((time.perf_counter() - started) * 1000)
    return times


async def run(engine_name: str, keys: int, versions: int, page_count: int, root: Path) -> None:
    engine: Engine
    if engine_name == "disk":
        engine = DiskEngine(root / "data", fsync=False)
    else:
        engine = MemoryEngine(max_memory=16 << 30)
    await engine.start()
    try:
        await engine.create_bucket("flat", "bench", "us-east-1")
        await engine.create_bucket("deep", "bench", "us-east-1")
        await engine.put_bucket_versioning("deep", VERSIONING_ENABLED)
        flat_s = await seed(engine, "flat", keys, 1)
        deep_s = await seed(engine, "deep", keys, versions)
        print(f"seeded flat: {keys} objects in {flat_s:.1f}s; deep: {keys * versions} versions in {deep_s:.1f}s")

        def objects(bucket: str) -> Callable[[str, str], Awaitable[tuple[str, str] | None]]:
            async def page(after: str, _v: str) -> tuple[str, str] | None:
                got = await engine.list_objects(bucket, after=after, max_keys=PAGE)
                assert len(got.entries) == PAGE or not got.is_truncated
                return (got.next_marker or "", "") if got.is_truncated else None

            return page

        def version_pages(bucket: str) -> Callable[[str, str], Awaitable[tuple[str, str] | None]]:
            async def page(key_marker: str, version_marker: str) -> tuple[str, str] | None:
                got = await engine.list_object_versions(
                    bucket, key_marker=key_marker, version_id_marker=version_marker, max_keys=PAGE
                )
                assert len(got.entries) == PAGE or not got.is_truncated
                if not got.is_truncated:
                    return None
                return got.next_key_marker or "", got.next_version_id_marker or ""

            return page

        async def delimited(bucket: str) -> float:
            started = time.perf_counter()
            got = await engine.list_objects(bucket, delimiter="/", max_keys=PAGE)
            assert len(got.common_prefixes) == 10
            return (time.perf_counter() - started) * 1000

        rows = [
            ("ListObjectsV2 page, unversioned bucket", await pages(objects("flat"), page_count)),
            (f"ListObjectsV2 page, {versions} versions per key", await pages(objects("deep"), page_count)),
            ("ListObjectVersions page, unversioned bucket", await pages(version_pages("flat"), page_count)),
            (f"ListObjectVersions page, {versions} versions per key", await pages(version_pages("deep"), page_count)),
            ("delimiter listing (10 prefixes), unversioned", [await delimited("flat") for _ in range(5)]),
            (f"delimiter listing (10 prefixes), {versions} versions", [await delimited("deep") for _ in range(5)]),
        ]
        base = statistics.median(rows[0][1])
        print(f"\n{engine_name} engine, {keys} keys, pages of {PAGE} (median of {page_count} pages)")
        print(f"{'what':<52} {'median ms':>10} {'p90 ms':>8} {'vs flat':>8}")
        for name, times in rows:
            median = statistics.median(times)
            p90 = sorted(times)[int(len(times) * 0.9) - 1] if len(times) >= 10 else max(times)
            print(f"{name:<52} {median:>10.2f} {p90:>8.2f} {median / base:>7.2f}x")
    finally:
        await engine.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=("disk", "memory"), default="disk")
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--pages", type=int, default=50, help="pages timed per listing")
    parser.add_argument("--dir", type=Path, default=None, help="where the disk engine stores (default: a temp dir)")
    args = parser.parse_args()
    if args.dir is not None:
        asyncio.run(run(args.engine, args.keys, args.versions, args.pages, args.dir))
        return
    with tempfile.TemporaryDirectory(prefix="coffer-bench-versions-") as tmp:
        asyncio.run(run(args.engine, args.keys, args.versions, args.pages, Path(tmp)))


if __name__ == "__main__":
    main()
