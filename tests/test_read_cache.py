"""The disk engine's read cache: hot objects skip SQLite, and no read ever sees a stale row."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from coffer.storage import errors
from coffer.storage.disk import DiskEngine
from tests.helpers import chunks


async def _read(engine: DiskEngine, key: str) -> bytes:
    opened = await engine.open_object("bkt", key)
    if opened.data is not None:
        return opened.data
    return b"".join([piece async for piece in opened.stream()])


def _run(tmp_path: Path, scenario, **options) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        engine = DiskEngine(tmp_path, fsync=False, inline_threshold=1024, read_cache_bytes=1 << 20, **options)
        await engine.start()
        try:
            await engine.create_bucket("bkt", "owner", "us-east-1")
            await scenario(engine)
        finally:
            await engine.close()

    asyncio.run(main())


def test_hits_skip_sqlite_and_writes_invalidate(tmp_path: Path) -> None:
    async def scenario(engine: DiskEngine) -> None:
        await engine.put_object("bkt", "k", chunks(b"one"), headers={})
        assert await _read(engine, "k") == b"one"
        queries = engine.meta.reader()
        statements: list[str] = []
        queries.set_trace_callback(statements.append)
        try:
            assert await _read(engine, "k") == b"one"
            assert (await engine.head_object("bkt", "k")).size == 3
            assert statements == []  # served from the cache
            await engine.put_object("bkt", "k", chunks(b"two!"), headers={})
            assert await _read(engine, "k") == b"two!"  # the commit emptied the cache
            assert (await engine.head_object("bkt", "k")).size == 4
            await engine.delete_object("bkt", "k")
            with pytest.raises(errors.NoSuchKey):
                await _read(engine, "k")
            with pytest.raises(errors.NoSuchKey):
                await engine.head_object("bkt", "k")
        finally:
            queries.set_trace_callback(None)

    _run(tmp_path, scenario)


def test_file_backed_objects_are_cached_and_replaced(tmp_path: Path) -> None:
    async def scenario(engine: DiskEngine) -> None:
        await engine.put_object("bkt", "f", chunks(b"a" * 5000), headers={})
        assert await _read(engine, "f") == b"a" * 5000
        assert await _read(engine, "f") == b"a" * 5000
        await engine.put_object("bkt", "f", chunks(b"b" * 6000), headers={})
        assert await _read(engine, "f") == b"b" * 6000

    _run(tmp_path, scenario)


def test_expired_object_leaves_the_cache(tmp_path: Path) -> None:
    async def scenario(engine: DiskEngine) -> None:
        await engine.put_object("bkt", "brief", chunks(b"x"), headers={"x-amz-meta-ttl-seconds": "1"})
        assert await _read(engine, "brief") == b"x"  # cached, with its expiry
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                await _read(engine, "brief")
            except errors.NoSuchKey:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("a cached object outlived its TTL")
        with pytest.raises(errors.NoSuchKey):
            await engine.head_object("bkt", "brief")

    _run(tmp_path, scenario, reaper_interval=3600)


def test_row_read_during_a_commit_is_not_kept(tmp_path: Path) -> None:
    """A reader tags its row with the generation from before its read: a commit landing in
    between (as from the writer thread) makes that row unusable."""

    async def scenario(engine: DiskEngine) -> None:
        await engine.put_object("bkt", "k", chunks(b"old"), headers={})
        cache = engine.cache
        assert cache is not None
        before = engine.meta.generation
        record, _info, _ = engine.meta.read(lambda c: engine._lookup(c, "bkt", "k", body=True, part_number=None))
        await engine.put_object("bkt", "k", chunks(b"new"), headers={})  # commits: generation moves on
        cache.put(before, "bkt", "k", record)  # the stale record arrives late
        assert cache.get("bkt", "k") is None
        assert await _read(engine, "k") == b"new"

    _run(tmp_path, scenario)


def test_cache_stays_within_its_budget(tmp_path: Path) -> None:
    async def scenario(engine: DiskEngine) -> None:
        for i in range(300):
            await engine.put_object("bkt", f"k{i}", chunks(bytes([i % 256]) * 1000), headers={})
        for i in range(300):
            assert await _read(engine, f"k{i}") == bytes([i % 256]) * 1000
        cache = engine.cache
        assert cache is not None
        assert 0 < cache._bytes <= cache.limit
        # The most recently read objects are the ones kept.
        assert cache.get("bkt", "k299") is not None
        assert cache.get("bkt", "k0") is None

    async def main() -> None:
        engine = DiskEngine(tmp_path, fsync=False, inline_threshold=1024, read_cache_bytes=256 * 1024)
        await engine.start()
        try:
            await engine.create_bucket("bkt", "owner", "us-east-1")
            await scenario(engine)
        finally:
            await engine.close()

    asyncio.run(main())


@pytest.mark.server
def test_two_workers_never_serve_each_others_stale_rows(tmp_path: Path) -> None:
    """A worker cannot see another's commits in its own cache, so with several workers it has none."""
    from tests.server_process import ServerProcess

    server = ServerProcess(tmp_path / "data", "--fsync", "never", "--workers", "2").start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="bkt")
        for version in (b"first", b"second", b"third"):
            s3.put_object(Bucket="bkt", Key="k", Body=version)
            for _ in range(12):  # fresh clients: connections spread over both workers
                # (retries: see docs/operations.md, "Known issues", on rare resets with two workers)
                fresh = server.client(retries={"max_attempts": 3, "mode": "standard"})
                assert fresh.get_object(Bucket="bkt", Key="k")["Body"].read() == version
    finally:
        server.stop()
