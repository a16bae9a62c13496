"""Versioning and Object Lock in the memory engine: what the shared conformance suite
(tests/test_engine_versioning.py) does not reach.

WAL replay and snapshots of versions, delete markers and locks compared state for
state; logs and snapshots written before versioning still replay; eviction takes a
key with every version; the write-side marks make conditional writes, deletes and
lock checks atomic; expired versions; the memory accounting of every version.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from coffer.storage import errors
from coffer.storage.api import (
    COMPLIANCE,
    GOVERNANCE,
    NULL_VERSION,
    VERSIONING_ENABLED,
    VERSIONING_SUSPENDED,
    CompletedPart,
    DeleteCondition,
    DeleteRequest,
    DeleteResult,
    ObjectLock,
    PartInfo,
    UploadInfo,
)
from coffer.storage.memory import MemoryEngine
from coffer.storage.memory.engine import OBJECT_OVERHEAD
from coffer.storage.memory.multipart import part_meta, upload_meta
from coffer.storage.memory.snapshot import write_snapshot
from coffer.storage.memory.versions import walk
from coffer.storage.memory.wal import (
    COMPLETE_UPLOAD,
    COMPLETED,
    CREATE_BUCKET,
    CREATE_UPLOAD,
    DELETE_OBJECT,
    PUT_OBJECT,
    PUT_PART,
    SET_TAGS,
    Record,
)
from tests.engines import crash_memory, persistent_memory, put, read, write_old_log

OWNER = "owner-id"
REGION = "us-east-1"
FAR = 4_000_000_000.0  # a retention date no test outlives (2096)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def check_accounting(e: MemoryEngine) -> None:
    """The engine's counters equal what its state holds, version by version."""
    used = data = objects = 0
    for bucket in e._buckets.values():
        live = 0
        for key in bucket.index.key_list():
            versions = list(walk(bucket.chain(key)))
            assert versions, key
            live += not versions[0].info.delete_marker
            for v in versions:
                used += v.charge
                if not v.info.delete_marker:
                    data += v.info.size
                    objects += 1
        assert bucket.live_keys == live
    parts = e.stats.part_bytes
    assert (e.stats.used_bytes - parts, e.stats.data_bytes, e.stats.objects) == (used, data, objects)
    assert len(e._lru) == sum(len(b.index) for b in e._buckets.values())


async def state(e: MemoryEngine) -> dict[str, Any]:
    """Everything a client can observe of versions, markers, locks and bucket states."""
    out: dict[str, Any] = {}
    for b in await e.list_buckets():
        page = await e.list_object_versions(b.name)
        assert not page.is_truncated
        rows = []
        for entry in page.entries:
            row: list[Any] = [entry.key, entry.version_id, entry.is_latest, entry.delete_marker, entry.etag]
            if not entry.delete_marker:
                info = await e.head_object(b.name, entry.key, version_id=entry.version_id)
                body = await read_version(e, b.name, entry.key, entry.version_id)
                row += [info.lock, info.tags, info.parts_count, body]
            rows.append(row)
        listed = [x.key for x in (await e.list_objects(b.name)).entries]
        out[b.name] = (b.versioning, b.object_lock, rows, listed)
    check_accounting(e)
    return out


async def read_version(e: MemoryEngine, bucket: str, key: str, version_id: str) -> bytes:
    opened = await e.open_object(bucket, key, version_id=version_id)
    return b"".join([piece async for piece in opened.stream()])


async def build(e: MemoryEngine) -> None:
    """Every kind of versioned change the log knows."""
    await e.create_bucket("ver", OWNER, REGION)
    await put(e, "ver", "k", b"null-before")  # a null version from before versioning
    await e.put_bucket_versioning("ver", VERSIONING_ENABLED)
    v1 = await put(e, "ver", "k", b"one", tags={"t": "1"})
    await put(e, "ver", "k", b"two")
    await e.delete_object("ver", "k")  # a delete marker
    await put(e, "ver", "gone", b"x")
    marker = await e.delete_object("ver", "gone")
    await e.delete_object("ver", "gone", version_id=marker.version_id)  # the marker removed again
    await e.put_object_tagging("ver", "k", {"t": "one"}, version_id=v1.version_id)
    await e.put_bucket_versioning("ver", VERSIONING_SUSPENDED)
    await put(e, "ver", "k", b"null-after")  # replaces the first null version, wherever it was
    await put(e, "ver", "s", b"s")
    await e.delete_object("ver", "s")  # a null delete marker replacing s's null version
    await e.create_bucket("locked", OWNER, REGION, object_lock=True)
    held = await put(e, "locked", "h", b"held", lock=ObjectLock(GOVERNANCE, FAR))
    await e.put_object_legal_hold("locked", "h", True, version_id=held.version_id)
    await put(e, "locked", "h", b"newer")
    await e.put_object_retention("locked", "h", COMPLIANCE, FAR + 10)
    await e.create_bucket("later", OWNER, REGION)
    await e.put_bucket_versioning("later", VERSIONING_ENABLED)
    await e.enable_object_lock("later")
    upload = await e.create_multipart_upload("later", "mp", headers={}, lock=ObjectLock(None, None, True))
    part = await e.upload_part("later", "mp", upload.upload_id, 1, _body(b"p" * 10))
    await e.complete_multipart_upload("later", "mp", upload.upload_id, [CompletedPart(1, part.etag)])


async def _body_gen(data: bytes) -> Any:
    yield data


def _body(data: bytes) -> Any:
    return _body_gen(data)


@pytest.mark.parametrize("snapshot_at", ["none", "end", "middle"])
def test_versions_markers_and_locks_replay_identically(tmp_path: Path, snapshot_at: str) -> None:
    async def first() -> dict[str, Any]:
        e = persistent_memory(tmp_path)
        await e.start()
        if snapshot_at == "middle":
            await e.create_bucket("early", OWNER, REGION, object_lock=True)
            await put(e, "early", "a", b"a", lock=ObjectLock(COMPLIANCE, FAR))
            await e.snapshot()
        await build(e)
        if snapshot_at == "end":
            await e.snapshot()
        seen = await state(e)
        crash_memory(e)  # no shutdown snapshot: the log (after any snapshot) must hold the rest
        return seen

    async def again() -> dict[str, Any]:
        e = persistent_memory(tmp_path)
        await e.start()
        try:
            return await state(e)
        finally:
            await e.close()  # a shutdown snapshot, read by the next open

    before = asyncio.run(first())
    assert asyncio.run(again()) == before
    assert asyncio.run(again()) == before  # from the shutdown snapshot
    rows = before["ver"][2]
    assert [r[0] for r in rows].count("k") == 4  # marker, two, one, null-after (null-before replaced)
    k_rows = [r for r in rows if r[0] == "k"]
    assert k_rows[0][:4] == ["k", NULL_VERSION, True, False] and k_rows[0][-1] == b"null-after"
    assert [r[-1] for r in k_rows[1:] if not r[3]] == [b"two", b"one"]
    assert before["ver"][:2] == (VERSIONING_SUSPENDED, False)
    assert before["locked"][:2] == (VERSIONING_ENABLED, True)
    assert before["later"][:2] == (VERSIONING_ENABLED, True)
    locks = [r[5] for r in before["locked"][2]]
    assert locks == [ObjectLock(COMPLIANCE, FAR + 10), ObjectLock(GOVERNANCE, FAR, True)]
    assert before["later"][2][0][5] == ObjectLock(None, None, True)


def test_logs_and_snapshots_written_before_versioning_still_replay(tmp_path: Path) -> None:
    """Records as the code before versioning wrote them: no version fields anywhere."""
    bucket = {"name": "old", "created": 1.0, "owner": OWNER, "region": REGION}

    def obj(key: str, body: bytes, tags: dict[str, str] | None = None) -> list[Any]:
        meta: list[Any] = [
            "old",
            key,
            len(body),
            "e" * 32,
            2.0,
            "null",
            "STANDARD",
            OWNER,
            {},
            {},
            "FULL_OBJECT",
            None,
            [],
        ]
        if tags:
            meta.append(tags)
        return meta

    upload = UploadInfo("old", "mp", "up1", 3.0, OWNER, checksum_algorithm=None)
    snap = [
        Record(CREATE_BUCKET, {**bucket, "config": {}}),
        Record(PUT_OBJECT, obj("a", b"aaa"), (b"aaa",)),
        Record(PUT_OBJECT, obj("b", b"bb", {"x": "y"}), (b"bb",)),
        Record(PUT_OBJECT, obj("c", b"c"), (b"c",)),
        Record(
            COMPLETED,
            {
                "u": "done1",
                "at": 2_000_000_000.0,
                "b": "old",
                "k": "z",
                "s": 1,
                "e": "f" * 32 + "-1",
                "m": 2.0,
                "sc": "STANDARD",
                "h": {},
                "c": {},
                "ct": "COMPOSITE",
                "n": 1,
                "t": {},
            },
        ),
    ]
    write_snapshot(tmp_path, 1, snap, fsync=False)
    part = PartInfo(1, 4, "d" * 32, 3.0, {})
    log = [
        Record(PUT_OBJECT, obj("a", b"AAAA"), (b"AAAA",)),  # an overwrite
        Record(SET_TAGS, {"b": "old", "k": "a", "t": {"v": "2"}}),  # no version: the current object
        Record(DELETE_OBJECT, {"b": "old", "k": "c"}),  # no version: the key
        Record(CREATE_UPLOAD, upload_meta(upload)),
        Record(PUT_PART, part_meta("up1", part), (b"pppp",)),
        Record(COMPLETE_UPLOAD, {"u": "up1", "o": [*obj("mp", b"pppp")[:12], [[1, 0, 4, "d" * 32, {}]]]}),
    ]
    write_old_log(tmp_path, log)

    async def scenario() -> None:
        e = persistent_memory(tmp_path)
        await e.start()
        try:
            b = await e.get_bucket("old")
            assert (b.versioning, b.object_lock) == (None, False)
            page = await e.list_object_versions("old")
            assert [(x.key, x.version_id, x.is_latest) for x in page.entries] == [
                ("a", NULL_VERSION, True),
                ("b", NULL_VERSION, True),
                ("mp", NULL_VERSION, True),
            ]
            a = await e.head_object("old", "a")
            assert (a.size, a.tags, a.lock, a.delete_marker) == (4, {"v": "2"}, ObjectLock(), False)
            assert (await e.head_object("old", "b")).tags == {"x": "y"}
            assert await read(e, "old", "mp") == b"pppp"
            assert (await e.head_object("old", "mp")).parts_count == 1
            assert e.uploads._completed["done1"][0].parts_count == 1
            check_accounting(e)
            # Written on after the old records, and read back again.
            await e.put_bucket_versioning("old", VERSIONING_ENABLED)
            v = await put(e, "old", "a", b"new")
            await e.snapshot()
        finally:
            await e.close()
        e = persistent_memory(tmp_path)
        await e.start()
        try:
            assert [x.version_id for x in (await e.list_object_versions("old", prefix="a")).entries] == [
                v.version_id,
                NULL_VERSION,
            ]
            assert e.uploads._completed["done1"][0].etag == "f" * 32 + "-1"
        finally:
            await e.close()

    asyncio.run(scenario())


def test_eviction_takes_a_key_with_all_its_versions_and_survives_restart(tmp_path: Path) -> None:
    body = 10_000
    per_version = body + 2 + OBJECT_OVERHEAD

    def limited() -> MemoryEngine:
        return MemoryEngine(
            max_memory=5 * per_version + 100, persistence_dir=tmp_path, fsync=False, snapshot_interval=0
        )

    async def first() -> None:
        # Room for about 5 versions: the versioned key holds 3 and a marker.
        e = limited()
        await e.start()
        await e.create_bucket("bkt", OWNER, REGION)
        await e.put_bucket_versioning("bkt", VERSIONING_ENABLED)
        for i in range(3):
            await put(e, "bkt", "a", bytes([i]) * body)
        await e.delete_object("bkt", "a")
        await put(e, "bkt", "b", b"b" * body)
        await e.head_object("bkt", "b")
        await put(e, "bkt", "c", b"c" * body)  # over the limit: "a" (least recently used) goes whole
        page = await e.list_object_versions("bkt")
        assert [x.key for x in page.entries] == ["b", "c"]
        with pytest.raises(errors.NoSuchKey):
            await e.head_object("bkt", "a")
        assert e.stats.evictions == 3
        check_accounting(e)
        crash_memory(e)

    async def second() -> None:
        e = limited()
        await e.start()
        try:
            page = await e.list_object_versions("bkt")
            assert [x.key for x in page.entries] == ["b", "c"]  # no older version of "a" came back
            check_accounting(e)
        finally:
            await e.close()

    asyncio.run(first())
    asyncio.run(second())


def test_concurrent_conditional_writes_and_deletes_see_pending_versions(tmp_path: Path) -> None:
    async def scenario() -> None:
        e = persistent_memory(tmp_path)
        await e.start()
        try:
            await e.create_bucket("bkt", OWNER, REGION)
            await e.put_bucket_versioning("bkt", VERSIONING_ENABLED)
            await put(e, "bkt", "k", b"old")
            await e.delete_object("bkt", "k")  # latest is a marker: If-None-Match * may write
            outcomes = await asyncio.gather(
                *(put(e, "bkt", "k", bytes([i]), if_none_match=True) for i in range(5)), return_exceptions=True
            )
            won = [o for o in outcomes if not isinstance(o, BaseException)]
            assert len(won) == 1
            assert all(isinstance(o, errors.PreconditionFailed) for o in outcomes if o not in won)
            # Two conditional deletes of the same ETag: the first adds a marker, the second sees it.
            etag = won[0].etag  # type: ignore[union-attr]
            cond = DeleteCondition(if_match=f'"{etag}"')
            first, second = await asyncio.gather(
                e.delete_object("bkt", "k", cond), e.delete_object("bkt", "k", cond), return_exceptions=True
            )
            assert isinstance(first, DeleteResult) and first.delete_marker
            assert isinstance(second, errors.NoSuchKey)
            # A legal hold logged but not yet durable already protects its version.
            v = await put(e, "bkt", "h", b"h")
            await e.put_bucket_versioning("bkt", VERSIONING_ENABLED)
            await e.enable_object_lock("bkt")
            hold, delete = await asyncio.gather(
                e.put_object_legal_hold("bkt", "h", True, version_id=v.version_id),
                e.delete_object("bkt", "h", version_id=v.version_id),
                return_exceptions=True,
            )
            assert not isinstance(hold, BaseException) and isinstance(delete, errors.ObjectLocked)
            # A pending retention is what the next retention change is checked against.
            w = await put(e, "bkt", "r", b"r")
            set_it, shorten = await asyncio.gather(
                e.put_object_retention("bkt", "r", COMPLIANCE, FAR, version_id=w.version_id),
                e.put_object_retention("bkt", "r", COMPLIANCE, FAR - 100, version_id=w.version_id),
                return_exceptions=True,
            )
            assert not isinstance(set_it, BaseException) and isinstance(shorten, errors.ObjectLocked)
            # DeleteObjects of one version twice: the second finds it gone (pending), still a success.
            x = await put(e, "bkt", "x", b"x")
            results = await e.delete_objects(
                "bkt", [DeleteRequest("x", x.version_id), DeleteRequest("x", x.version_id)]
            )
            assert results == [DeleteResult(x.version_id, False), DeleteResult(x.version_id, False)]
            assert (await e.list_object_versions("bkt", prefix="x")).entries == []
            check_accounting(e)
        finally:
            await e.close()

    asyncio.run(scenario())


def test_quota_counts_keys_whose_latest_is_an_object() -> None:
    async def scenario() -> None:
        e = MemoryEngine(max_memory=1 << 30, max_objects_per_bucket=2)
        await e.start()
        try:
            await e.create_bucket("bkt", OWNER, REGION)
            await e.put_bucket_versioning("bkt", VERSIONING_ENABLED)
            await put(e, "bkt", "a", b"1")
            await put(e, "bkt", "a", b"2")  # versions of one key count once
            await put(e, "bkt", "b", b"1")
            with pytest.raises(errors.QuotaExceeded):
                await put(e, "bkt", "c", b"1")
            await e.delete_object("bkt", "a")  # its latest is a marker: no longer counted
            await put(e, "bkt", "c", b"1")
            with pytest.raises(errors.QuotaExceeded):
                await put(e, "bkt", "a", b"3")  # "a" would count again
        finally:
            await e.close()

    asyncio.run(scenario())


def test_expired_versions_are_invisible_and_the_reaper_promotes_the_next() -> None:
    clock = Clock()

    async def scenario() -> None:
        e = MemoryEngine(max_memory=1 << 30, reaper_interval=3600, clock=clock)
        await e.start()
        try:
            await e.create_bucket("bkt", OWNER, REGION)
            await e.put_bucket_versioning("bkt", VERSIONING_ENABLED)
            old = await put(e, "bkt", "k", b"old")
            await put(e, "bkt", "k", b"short", headers={"x-amz-meta-ttl-seconds": "5"})
            clock.now += 10
            assert (await e.head_object("bkt", "k")).version_id == old.version_id
            assert await read(e, "bkt", "k") == b"old"
            page = await e.list_object_versions("bkt")
            assert [(x.version_id, x.is_latest) for x in page.entries] == [(old.version_id, True)]
            assert [x.key for x in (await e.list_objects("bkt")).entries] == ["k"]
            assert await e.reap_expired() == 1
            assert e._buckets["bkt"].index.get(b"k").info.version_id == old.version_id  # type: ignore[union-attr]
            check_accounting(e)
            # A null version that expires leaves the older versions alone.
            await e.put_bucket_versioning("bkt", VERSIONING_SUSPENDED)
            await put(e, "bkt", "k", b"n", headers={"x-amz-meta-ttl-seconds": "5"})
            clock.now += 10
            assert await read(e, "bkt", "k") == b"old"
            await e.reap_expired()
            check_accounting(e)
            await e.delete_object("bkt", "k", version_id=old.version_id)
            await e.delete_bucket("bkt")
            assert e.stats.used_bytes == 0 and e.stats.objects == 0
        finally:
            await e.close()

    asyncio.run(scenario())


def test_delete_bucket_drops_every_version_from_the_accounting() -> None:
    async def scenario() -> None:
        e = MemoryEngine(max_memory=1 << 30)
        await e.start()
        try:
            await e.create_bucket("bkt", OWNER, REGION)
            await e.put_bucket_versioning("bkt", VERSIONING_ENABLED)
            versions = [await put(e, "bkt", "k", bytes([i]) * 100) for i in range(3)]
            marker = await e.delete_object("bkt", "k")
            with pytest.raises(errors.BucketNotEmpty):
                await e.delete_bucket("bkt")
            for v in versions:
                await e.delete_object("bkt", "k", version_id=v.version_id)
            with pytest.raises(errors.BucketNotEmpty):  # the marker alone keeps it
                await e.delete_bucket("bkt")
            assert await e.delete_object("bkt", "k", version_id=marker.version_id) == DeleteResult(
                marker.version_id, True
            )
            await e.delete_bucket("bkt")
            assert (e.stats.used_bytes, e.stats.data_bytes, e.stats.objects) == (0, 0, 0)
            assert not e._lru
        finally:
            await e.close()

    asyncio.run(scenario())


def test_a_lock_needs_a_bucket_with_object_lock() -> None:
    async def scenario() -> None:
        e = MemoryEngine(max_memory=1 << 30)
        await e.start()
        try:
            await e.create_bucket("bkt", OWNER, REGION)
            with pytest.raises(errors.InvalidRequest):
                await put(e, "bkt", "k", b"x", lock=ObjectLock(legal_hold=True))
            with pytest.raises(errors.InvalidRequest):
                await e.put_object_legal_hold("bkt", "k", True)
            assert (await e.list_object_versions("bkt")).entries == []
            assert e.stats.reserved_bytes == 0
        finally:
            await e.close()

    asyncio.run(scenario())


def test_a_new_version_shares_the_older_chain() -> None:
    """Writes must not copy a key's versions (that made each put O(versions))."""

    async def scenario() -> None:
        e = MemoryEngine(max_memory=1 << 30)
        await e.start()
        try:
            await e.create_bucket("bkt", OWNER, REGION)
            await e.put_bucket_versioning("bkt", VERSIONING_ENABLED)
            for i in range(3):
                await put(e, "bkt", "k", bytes([i]))
            bucket = e._buckets["bkt"]
            before = bucket.older[b"k"]
            await put(e, "bkt", "k", b"new")
            assert bucket.older[b"k"].next is before
            await e.delete_object("bkt", "k")  # a marker is put in front the same way
            assert bucket.older[b"k"].next.next is before  # type: ignore[union-attr]
        finally:
            await e.close()

    asyncio.run(scenario())


def test_an_upload_lock_survives_restart_and_goes_to_the_object(tmp_path: Path) -> None:
    async def scenario() -> None:
        e = persistent_memory(tmp_path)
        await e.start()
        await e.create_bucket("bkt", OWNER, REGION, object_lock=True)
        upload = await e.create_multipart_upload("bkt", "mp", headers={}, lock=ObjectLock(GOVERNANCE, FAR))
        part = await e.upload_part("bkt", "mp", upload.upload_id, 1, _body(b"data"))
        crash_memory(e)
        e = persistent_memory(tmp_path)
        await e.start()
        try:
            assert (await e.get_upload("bkt", "mp", upload.upload_id)).lock == ObjectLock(GOVERNANCE, FAR)
            done = await e.complete_multipart_upload("bkt", "mp", upload.upload_id, [CompletedPart(1, part.etag)])
            assert done.lock == ObjectLock(GOVERNANCE, FAR)
            with pytest.raises(errors.ObjectLocked):
                await e.delete_object("bkt", "mp", version_id=done.version_id)
            # A retried Complete gets the same answer (its version is still the latest).
            again = await e.complete_multipart_upload("bkt", "mp", upload.upload_id, [CompletedPart(1, part.etag)])
            assert again.version_id == done.version_id
        finally:
            await e.close()

    asyncio.run(scenario())
