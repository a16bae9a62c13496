"""The memory engine driven directly: storage, LRU eviction, limits, TTL, persistence."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from coffer.storage import errors
from coffer.storage.api import DeleteRequest, DeleteResult, EngineObserver
from coffer.storage.memory import MemoryEngine
from coffer.storage.memory.engine import OBJECT_OVERHEAD
from coffer.storage.memory.snapshot import snapshots
from coffer.storage.memory.wal import segments
from tests.engines import crash_memory, persistent_memory, put, read
from tests.helpers import chunks

T = TypeVar("T")
OWNER = "owner-id"


class Clock:
    """A wall clock the test moves by hand (the engine takes it as a parameter)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def run_with(engine: MemoryEngine, fn: Callable[[MemoryEngine], Awaitable[T]]) -> T:
    async def main() -> T:
        await engine.start()
        try:
            return await fn(engine)
        finally:
            await engine.close()

    return asyncio.run(main())


def test_buckets_objects_and_errors() -> None:
    async def scenario(e: MemoryEngine) -> None:
        await e.create_bucket("bkt", OWNER, "us-east-1")
        with pytest.raises(errors.BucketAlreadyOwnedByYou):
            await e.create_bucket("bkt", OWNER, "us-east-1")
        with pytest.raises(errors.BucketAlreadyExists):
            await e.create_bucket("bkt", "someone-else", "us-east-1")
        with pytest.raises(errors.NoSuchBucket):
            await put(e, "nope", "k", b"x")
        info = await put(e, "bkt", "dir/a", b"hello", headers={"content-type": "text/plain"})
        assert info.etag == hashlib.md5(b"hello").hexdigest()
        head = await e.head_object("bkt", "dir/a")
        assert (head.size, head.headers["content-type"]) == (5, "text/plain")
        assert await read(e, "bkt", "dir/a") == b"hello"
        with pytest.raises(errors.NoSuchKey):
            await e.head_object("bkt", "dir/b")
        with pytest.raises(errors.BucketNotEmpty):
            await e.delete_bucket("bkt")
        assert [b.name for b in await e.list_buckets(OWNER)] == ["bkt"]
        assert await e.list_buckets("someone-else") == []
        await e.delete_object("bkt", "dir/a")
        await e.delete_object("bkt", "dir/a")  # idempotent
        deleted = await e.delete_objects("bkt", [DeleteRequest("x"), DeleteRequest("y")])
        assert deleted == [DeleteResult(None, False)] * 2
        await e.delete_bucket("bkt")
        with pytest.raises(errors.NoSuchBucket):
            await e.get_bucket("bkt")
        assert e.stats.objects == 0 and e.stats.used_bytes == 0

    run_with(MemoryEngine(max_memory=1 << 30), scenario)


def test_checksums_verify_and_conditional_writes() -> None:
    async def scenario(e: MemoryEngine) -> None:
        await e.create_bucket("bkt", OWNER, "us-east-1")
        info = await put(e, "bkt", "k", b"abc", checksum_algorithms=("CRC32", "SHA256"), want_sha256=True)
        assert info.checksums["SHA256"] == hashlib.sha256(b"abc").digest()
        assert len(info.checksums["CRC32"]) == 4

        def refuse(_digests: Any) -> None:
            raise ValueError("bad digest")

        with pytest.raises(ValueError):
            await put(e, "bkt", "k", b"other", verify=refuse)
        assert await read(e, "bkt", "k") == b"abc"  # a refused body changes nothing
        assert e.stats.reserved_bytes == 0
        with pytest.raises(errors.PreconditionFailed):
            await put(e, "bkt", "k", b"new", if_none_match=True)
        with pytest.raises(errors.NoSuchKey):
            await put(e, "bkt", "absent", b"new", if_match="*")
        with pytest.raises(errors.PreconditionFailed):
            await put(e, "bkt", "k", b"new", if_match="0" * 32)
        await put(e, "bkt", "k", b"new", if_match=info.etag)
        assert await read(e, "bkt", "k") == b"new"

        # Many concurrent If-None-Match writers: exactly one wins.
        results = await asyncio.gather(
            *(put(e, "bkt", "race", bytes([i]) * 10, if_none_match=True) for i in range(20)),
            return_exceptions=True,
        )
        assert sum(1 for r in results if not isinstance(r, BaseException)) == 1
        assert all(isinstance(r, errors.PreconditionFailed) for r in results if isinstance(r, BaseException))

    run_with(MemoryEngine(max_memory=1 << 30), scenario)


def test_large_body_ranges_across_chunks() -> None:
    data = os.urandom(3 * 1024 * 1024 + 12345)

    async def scenario(e: MemoryEngine) -> None:
        await e.create_bucket("bkt", OWNER, "us-east-1")
        info = await put(e, "bkt", "big", data, piece=100_000)
        assert info.etag == hashlib.md5(data).hexdigest()
        assert await read(e, "bkt", "big") == data
        mib = 1024 * 1024
        for start, end in [(0, 1), (mib - 5, mib + 5), (mib, 2 * mib), (len(data) - 7, len(data)), (5, 3 * mib)]:
            assert await read(e, "bkt", "big", start, end) == data[start:end]

    run_with(MemoryEngine(max_memory=1 << 30), scenario)


def test_lru_eviction_keeps_recently_used() -> None:
    size = 1000
    per_object = size + OBJECT_OVERHEAD + 2 * len("k00")
    engine = MemoryEngine(max_memory=10 * per_object)

    async def scenario(e: MemoryEngine) -> None:
        await e.create_bucket("bkt", OWNER, "us-east-1")
        for i in range(10):
            await put(e, "bkt", f"k{i:02d}", bytes([i]) * size)
        assert e.stats.evictions == 0
        await e.head_object("bkt", "k00")  # k00 becomes the most recently used
        for i in range(10, 13):
            await put(e, "bkt", f"k{i:02d}", bytes([i]) * size)
        assert e.stats.evictions == 3
        assert e.stats.evicted_bytes == 3 * size
        assert e.stats.used_bytes <= e.max_memory
        page = await e.list_objects("bkt")
        assert [x.key for x in page.entries] == ["k00", *(f"k{i:02d}" for i in range(4, 13))]
        for gone in ("k01", "k02", "k03"):
            with pytest.raises(errors.NoSuchKey):
                await e.head_object("bkt", gone)
        assert await read(e, "bkt", "k00") == bytes([0]) * size

    run_with(engine, scenario)


def test_expired_objects_are_reclaimed_before_live_ones_are_evicted() -> None:
    clock = Clock()
    per_object = 1000 + OBJECT_OVERHEAD + 2 * len("k0")
    engine = MemoryEngine(max_memory=4 * per_object + 100, reaper_interval=3600, clock=clock)  # + TTL metadata

    async def scenario(e: MemoryEngine) -> None:
        await e.create_bucket("bkt", OWNER, "us-east-1")
        await put(e, "bkt", "k0", b"0" * 1000)
        await put(e, "bkt", "k1", b"1" * 1000, headers={"x-amz-meta-ttl-seconds": "5"})
        await put(e, "bkt", "k2", b"2" * 1000, headers={"x-amz-meta-ttl-seconds": "5"})
        await put(e, "bkt", "k3", b"3" * 1000)
        clock.now += 10
        await put(e, "bkt", "k4", b"4" * 1000)
        await put(e, "bkt", "k5", b"5" * 1000)
        assert e.stats.evictions == 0 and e.stats.expired == 2
        assert [x.key for x in (await e.list_objects("bkt")).entries] == ["k0", "k3", "k4", "k5"]

    run_with(engine, scenario)


def test_put_larger_than_memory_is_refused_while_streaming() -> None:
    engine = MemoryEngine(max_memory=1024 * 1024)

    async def scenario(e: MemoryEngine) -> None:
        await e.create_bucket("bkt", OWNER, "us-east-1")
        await put(e, "bkt", "small", b"s" * 1000)
        sent: list[int] = []
        with pytest.raises(errors.EntityTooLarge) as caught:
            await e.put_object("bkt", "huge", chunks(b"h" * (64 * 1024 * 1024), sent=sent), headers={})
        assert "max_memory" in str(caught.value)
        # Refused as soon as the limit was crossed: not one piece more was pulled.
        assert sum(sent) <= e.max_memory + 65536
        assert e.stats.reserved_bytes == 0
        # A body that fits the limit evicts what it must and is stored.
        await put(e, "bkt", "fits", b"f" * (e.max_memory - 10_000))
        assert await e.head_object("bkt", "fits")
        with pytest.raises(errors.NoSuchKey):
            await e.head_object("bkt", "small")

    run_with(engine, scenario)


def test_max_object_size_and_bucket_limits() -> None:
    clock = Clock()
    engine = MemoryEngine(max_memory=1 << 30, max_object_size=100, max_buckets=2, max_objects_per_bucket=3, clock=clock)

    async def scenario(e: MemoryEngine) -> None:
        await e.create_bucket("one", OWNER, "us-east-1")
        await e.create_bucket("two", OWNER, "us-east-1")
        with pytest.raises(errors.TooManyBuckets):
            await e.create_bucket("three", OWNER, "us-east-1")
        with pytest.raises(errors.EntityTooLarge):
            await put(e, "one", "k", b"x" * 101)
        await put(e, "one", "k", b"x" * 100)
        await put(e, "one", "short", b"x", headers={"x-amz-meta-ttl-seconds": "5"})
        await put(e, "one", "k3", b"x")
        with pytest.raises(errors.QuotaExceeded):
            await put(e, "one", "k4", b"x")
        await put(e, "one", "k", b"overwrite is fine")
        clock.now += 6  # "short" expires: it no longer counts
        await put(e, "one", "k4", b"x")
        await e.delete_object("two", "nothing")
        await e.delete_bucket("two")
        await e.create_bucket("three", OWNER, "us-east-1")

    run_with(engine, scenario)


def test_ttl_expiry_default_and_reaper() -> None:
    clock = Clock()
    engine = MemoryEngine(max_memory=1 << 30, default_ttl=60, clock=clock)

    async def scenario(e: MemoryEngine) -> None:
        await e.create_bucket("bkt", OWNER, "us-east-1")
        await put(e, "bkt", "default", b"d")
        await put(e, "bkt", "short", b"s", headers={"x-amz-meta-ttl-seconds": "10"})
        await put(e, "bkt", "forever", b"f", headers={"x-amz-meta-ttl-seconds": "0"})
        await put(e, "bkt", "garbage-ttl", b"g", headers={"x-amz-meta-ttl-seconds": "soon"})  # default applies
        clock.now += 10
        # Invisible at once, before any reaper ran.
        with pytest.raises(errors.NoSuchKey):
            await e.head_object("bkt", "short")
        with pytest.raises(errors.NoSuchKey):
            await e.open_object("bkt", "short")
        with pytest.raises(errors.PreconditionFailed):
            await put(e, "bkt", "default", b"x", if_none_match=True)
        await put(e, "bkt", "short", b"again", if_none_match=True)  # an expired key is free
        listed = [x.key for x in (await e.list_objects("bkt")).entries]
        assert listed == ["default", "forever", "garbage-ttl", "short"]
        clock.now += 60
        listed = [x.key for x in (await e.list_objects("bkt")).entries]
        assert listed == ["forever"]
        assert e.stats.objects == 4  # still held until reaped
        assert await e.reap_expired() == 3
        assert e.stats.expired == 3 and e.stats.objects == 1
        await e.delete_object("bkt", "forever")
        await put(e, "bkt", "late", b"l", headers={"x-amz-meta-ttl-seconds": "1"})
        clock.now += 2
        await e.delete_bucket("bkt")  # only expired objects left: not "not empty"

    run_with(engine, scenario)


def test_background_reaper_runs_without_blocking() -> None:
    clock = Clock()
    engine = MemoryEngine(max_memory=1 << 30, reaper_interval=0.01, clock=clock)

    async def scenario(e: MemoryEngine) -> None:
        await e.create_bucket("bkt", OWNER, "us-east-1")
        for i in range(2500):
            await put(e, "bkt", f"k{i}", b"v", headers={"x-amz-meta-ttl-seconds": "1"})
        clock.now += 5
        for _ in range(1000):
            if e.stats.objects == 0:
                break
            await asyncio.sleep(0.01)
        assert e.stats.objects == 0 and e.stats.expired == 2500

    run_with(engine, scenario)


# ---------------------------------------------------------------------- persistence


def test_recovery_from_wal_snapshot_and_shutdown(tmp_path: Path) -> None:
    big = os.urandom(2 * 1024 * 1024 + 5)

    async def first() -> None:
        e = persistent_memory(tmp_path)
        await e.start()
        await e.create_bucket("bkt", OWNER, "eu-west-1")
        await e.create_bucket("gone", OWNER, "us-east-1")
        await put(e, "bkt", "a", b"alpha", headers={"content-type": "text/plain", "x-amz-meta-x": "1"})
        await put(e, "bkt", "big", big, checksum_algorithms=("CRC64NVME",))
        await e.snapshot()
        await put(e, "bkt", "b", b"beta")
        await put(e, "bkt", "a", b"alpha2")
        await e.delete_bucket("gone")
        await put(e, "bkt", "c", b"gamma")
        await e.delete_object("bkt", "c")
        crash_memory(e)

    async def second() -> dict[str, Any]:
        e = persistent_memory(tmp_path)
        await e.start()
        result = {
            "buckets": [(b.name, b.region) for b in await e.list_buckets()],
            "keys": [x.key for x in (await e.list_objects("bkt")).entries],
            "a": await read(e, "bkt", "a"),
            "big": await read(e, "bkt", "big"),
            "big_info": await e.head_object("bkt", "big"),
        }
        await e.close()  # writes a shutdown snapshot
        return result

    asyncio.run(first())
    got = asyncio.run(second())
    assert got["buckets"] == [("bkt", "eu-west-1")]
    assert got["keys"] == ["a", "b", "big"]
    assert got["a"] == b"alpha2"
    assert got["big"] == big
    assert got["big_info"].etag == hashlib.md5(big).hexdigest()
    assert "CRC64NVME" in got["big_info"].checksums
    # The shutdown snapshot folded the log: one snapshot, and only the (empty) segment after it.
    snaps = snapshots(tmp_path)
    assert len(snaps) == 1
    assert [seq for seq, _ in segments(tmp_path)] == [snaps[0][0]]
    again = asyncio.run(second())
    assert again["keys"] == ["a", "b", "big"] and again["big"] == big


def test_bucket_tags_survive_wal_replay_and_snapshot(tmp_path: Path) -> None:
    """Bucket tags (the "tagging" configuration document) come back from the log alone and from a
    snapshot; a deleted bucket's tags come back from neither."""

    async def tag_and_crash(snapshot_first: bool) -> None:
        e = persistent_memory(tmp_path)
        await e.start()
        if snapshot_first:
            await e.create_bucket("bkt", OWNER, "us-east-1")
            await e.create_bucket("gone", OWNER, "us-east-1")
            await e.put_bucket_config("bkt", "tagging", {"a": "1", "b": ""})
            await e.put_bucket_config("gone", "tagging", {"g": "1"})
            await e.snapshot()  # the snapshot holds them; the log after it is empty
        else:
            await e.put_bucket_config("bkt", "tagging", {"c": "3", "é": "ü"})  # only in the log
            await e.delete_bucket("gone")
            await e.create_bucket("gone", OWNER, "us-east-1")
        crash_memory(e)

    async def tags() -> tuple[Any, Any]:
        e = persistent_memory(tmp_path)
        await e.start()
        try:
            return await e.get_bucket_config("bkt", "tagging"), await e.get_bucket_config("gone", "tagging")
        finally:
            crash_memory(e)

    asyncio.run(tag_and_crash(snapshot_first=True))
    assert asyncio.run(tags()) == ({"a": "1", "b": ""}, {"g": "1"})  # from the snapshot
    asyncio.run(tag_and_crash(snapshot_first=False))
    assert asyncio.run(tags()) == ({"c": "3", "é": "ü"}, None)  # the snapshot, then the log replayed


def test_torn_tail_is_discarded(tmp_path: Path) -> None:
    async def first() -> None:
        e = persistent_memory(tmp_path)
        await e.start()
        await e.create_bucket("bkt", OWNER, "us-east-1")
        for i in range(5):
            await put(e, "bkt", f"k{i}", f"value {i}".encode())
        crash_memory(e)

    asyncio.run(first())
    (_seq, path), *_ = segments(tmp_path)
    intact = path.stat().st_size
    with open(path, "ab") as f:  # a record cut short by the crash: header promises more than is there
        f.write(b"\x40\x00\x00\x00\x00\x00\x00\x00\x12\x34\x56\x78partial")
    # And flip a byte of the last whole record: its CRC no longer matches.
    raw = bytearray(path.read_bytes())
    raw[intact - 2] ^= 0xFF
    path.write_bytes(bytes(raw))

    async def second() -> list[str]:
        e = persistent_memory(tmp_path)
        await e.start()
        keys = [x.key for x in (await e.list_objects("bkt")).entries]
        crash_memory(e)
        return keys

    assert asyncio.run(second()) == ["k0", "k1", "k2", "k3"]
    assert path.stat().st_size < intact  # truncated at the last intact record
    assert asyncio.run(second()) == ["k0", "k1", "k2", "k3"]


def test_recovery_drops_expired_and_respects_evictions(tmp_path: Path) -> None:
    clock = Clock()
    per_object = 1000 + OBJECT_OVERHEAD + 4

    async def first() -> None:
        e = persistent_memory(tmp_path, clock=clock)
        e.max_memory = 3 * per_object
        await e.start()
        await e.create_bucket("bkt", OWNER, "us-east-1")
        await put(e, "bkt", "ttl", b"t" * 10, headers={"x-amz-meta-ttl-seconds": "30"})
        for i in range(4):
            await put(e, "bkt", f"k{i}", bytes([i]) * 1000)
        assert e.stats.evictions == 2
        crash_memory(e)

    async def second() -> tuple[list[str], int]:
        clock.now += 31
        e = persistent_memory(tmp_path, clock=clock)
        await e.start()
        keys = [x.key for x in (await e.list_objects("bkt")).entries]
        objects = e.stats.objects
        crash_memory(e)
        return keys, objects

    asyncio.run(first())
    assert asyncio.run(second()) == (["k1", "k2", "k3"], 3)


def test_group_commit_shares_writes(tmp_path: Path) -> None:
    engine = MemoryEngine(
        max_memory=1 << 30, persistence_dir=tmp_path, fsync=True, wal_batch_interval=0.05, snapshot_interval=0
    )

    async def scenario(e: MemoryEngine) -> tuple[int, int]:
        await e.create_bucket("bkt", OWNER, "us-east-1")
        before = (e.stats.wal.records, e.stats.wal.batches)
        await asyncio.gather(*(put(e, "bkt", f"k{i}", b"v" * 100) for i in range(64)))
        return e.stats.wal.records - before[0], e.stats.wal.batches - before[1]

    records, batches = run_with(engine, scenario)
    assert records == 64
    assert batches < records


def test_stats_probe_bucket_config_and_shutdown(tmp_path: Path) -> None:
    class Recorder(EngineObserver):
        def __init__(self) -> None:
            self.commits = 0
            self.evictions: list[tuple[int, int]] = []

        def committed(self, operations: int, seconds: float) -> None:
            self.commits += operations

        def evicted(self, objects: int, nbytes: int) -> None:
            self.evictions.append((objects, nbytes))

    async def first() -> None:
        e = persistent_memory(tmp_path)
        e.max_memory = 3 * (1000 + OBJECT_OVERHEAD + 2 * len("k0"))
        observer = e.observer = Recorder()
        await e.start()
        await e.create_bucket("bkt", OWNER, "us-east-1")
        await e.put_bucket_config("bkt", "cors", {"rules": [{"origins": ["*"]}]})
        await e.put_bucket_config("bkt", "other", {"x": 1})
        await e.put_bucket_config("bkt", "other", None)
        with pytest.raises(TypeError):
            await e.put_bucket_config("bkt", "bad", {"not json": object()})
        for i in range(4):
            await put(e, "bkt", f"k{i}", b"v" * 1000)
        stats = await e.storage_stats()
        assert (stats.buckets, stats.objects, stats.bytes, stats.multipart_uploads) == (1, 3, 3000, 0)
        assert observer.evictions == [(1, 1000)]
        assert observer.commits >= 7
        probe = await e.probe()
        assert probe.readable and probe.writable and probe.free_bytes is not None, probe
        await e.close()
        with pytest.raises(errors.ServiceUnavailable):  # nothing is acknowledged that is not logged
            await put(e, "bkt", "late", b"x")

    async def second() -> None:
        e = persistent_memory(tmp_path)
        await e.start()
        assert await e.get_bucket_config("bkt", "cors") == {"rules": [{"origins": ["*"]}]}
        assert await e.get_bucket_config("bkt", "other") is None
        with pytest.raises(errors.NoSuchBucket):
            await e.get_bucket_config("nope", "cors")
        assert [x.key for x in (await e.list_objects("bkt")).entries] == ["k1", "k2", "k3"]
        await e.close()

    asyncio.run(first())
    asyncio.run(second())

    async def volatile(e: MemoryEngine) -> None:
        probe = await e.probe()
        assert (probe.readable, probe.writable, probe.free_bytes) == (True, True, None)

    run_with(MemoryEngine(max_memory=1 << 20), volatile)


def test_tags_recovered_from_wal_records_and_snapshot(tmp_path: Path) -> None:
    """Tag updates are their own log records (SET_TAGS): replayed after a crash, folded into snapshots."""

    async def first() -> None:
        e = persistent_memory(tmp_path)
        await e.start()
        await e.create_bucket("bkt", OWNER, "us-east-1")
        await put(e, "bkt", "snap", b"in the snapshot", tags={"s": "1"})
        await e.snapshot()
        await e.put_object_tagging("bkt", "snap", {"s": "2"})  # logged after the snapshot
        await put(e, "bkt", "a", b"alpha", tags={"k": "v"})
        await e.put_object_tagging("bkt", "a", {"k": "w", "x": ""})
        await put(e, "bkt", "b", b"beta", tags={"k": "v"})
        await e.put_object_tagging("bkt", "b", {})
        await put(e, "bkt", "b", b"beta2", tags={"new": "1"})  # a later put wins over the retag
        await put(e, "bkt", "gone", b"g", tags={"k": "v"})
        await e.delete_object("bkt", "gone")
        crash_memory(e)

    async def second() -> dict[str, Any]:
        e = persistent_memory(tmp_path)
        await e.start()
        try:
            return {
                key: ((await e.head_object("bkt", key)).tags, await read(e, "bkt", key)) for key in ("snap", "a", "b")
            }
        finally:
            await e.close()  # a shutdown snapshot: the next start reads the tags from it

    asyncio.run(first())
    expected = {
        "snap": ({"s": "2"}, b"in the snapshot"),
        "a": ({"k": "w", "x": ""}, b"alpha"),
        "b": ({"new": "1"}, b"beta2"),
    }
    assert asyncio.run(second()) == expected
    assert asyncio.run(second()) == expected


def test_retag_charges_tag_bytes() -> None:
    async def go(e: MemoryEngine) -> tuple[int, int, int]:
        await e.create_bucket("bkt", OWNER, "us-east-1")
        await put(e, "bkt", "k", b"x" * 100)
        before = e.stats.used_bytes
        await e.put_object_tagging("bkt", "k", {"key": "v" * 200})
        tagged = e.stats.used_bytes
        await e.put_object_tagging("bkt", "k", {})
        return before, tagged, e.stats.used_bytes

    before, tagged, cleared = run_with(MemoryEngine(max_memory=1 << 20), go)
    assert tagged == before + len("key") + 200
    assert cleared == before
