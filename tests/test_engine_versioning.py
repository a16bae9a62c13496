"""Versioning and Object Lock: the storage API contract (coffer/storage/api.py), run against every engine.

No HTTP here: these tests call the engine the server calls. Each test runs once per
engine kind of tests/engines.py; the persistent ones are also reopened.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

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
    Engine,
    ObjectInfo,
    ObjectLock,
    VersionEntry,
)
from coffer.storage.versioning import is_valid_version_id, new_version_id
from tests.engines import ENGINE_OWNER, EngineKind, keys_of, put, read
from tests.helpers import chunks

OWNER = ENGINE_OWNER  # owns the plain and versioned buckets (conftest.py)
REGION = "us-east-1"
FUTURE = time.time() + 30 * 86400  # a retention date no test outlives
PAST = time.time() - 86400


@pytest.fixture
def locked(engine: Engine, aio: asyncio.Runner) -> str:
    aio.run(engine.create_bucket("locked", OWNER, REGION, object_lock=True))
    return "locked"


async def versions(engine: Engine, bucket: str, **kwargs: str | int) -> list[tuple[str, str, bool, bool]]:
    """(key, version id, is latest, is delete marker) of every version, in listing order."""
    page = await engine.list_object_versions(bucket, max_keys=1000, **kwargs)  # type: ignore[arg-type]
    assert not page.is_truncated
    return [(e.key, e.version_id, e.is_latest, e.delete_marker) for e in page.entries]


async def read_version(engine: Engine, bucket: str, key: str, version_id: str) -> bytes:
    opened = await engine.open_object(bucket, key, version_id=version_id)
    return b"".join([piece async for piece in opened.stream()])


# ---------------------------------------------------------------------- version ids


def test_version_ids_are_unique_and_time_ordered() -> None:
    ids = [new_version_id(1_700_000_000 + i / 1000) for i in range(1000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(is_valid_version_id(v) and len(v) == 32 for v in ids)
    assert is_valid_version_id(NULL_VERSION)
    for bad in ("", "NULL", "x" * 32, ids[0].upper(), ids[0] + "0", "../etc"):
        assert not is_valid_version_id(bad)


# ---------------------------------------------------------------------- bucket state


async def test_versioning_states(engine: Engine, plain: str) -> None:
    assert (await engine.get_bucket(plain)).versioning is None
    assert (await engine.put_bucket_versioning(plain, VERSIONING_ENABLED)).versioning == VERSIONING_ENABLED
    assert (await engine.get_bucket(plain)).versioning == VERSIONING_ENABLED
    await engine.put_bucket_versioning(plain, VERSIONING_SUSPENDED)
    info = await engine.get_bucket(plain)
    assert (info.versioning, info.object_lock) == (VERSIONING_SUSPENDED, False)
    with pytest.raises(errors.NoSuchBucket):
        await engine.put_bucket_versioning("missing", VERSIONING_ENABLED)


async def test_object_lock_bucket_state(engine: Engine, locked: str, plain: str) -> None:
    info = await engine.get_bucket(locked)
    assert (info.versioning, info.object_lock) == (VERSIONING_ENABLED, True)
    with pytest.raises(errors.InvalidBucketState):
        await engine.put_bucket_versioning(locked, VERSIONING_SUSPENDED)
    await engine.put_bucket_versioning(locked, VERSIONING_ENABLED)  # re-enabling is harmless
    # Lock on an existing bucket needs versioning Enabled.
    with pytest.raises(errors.InvalidBucketState):
        await engine.enable_object_lock(plain)
    await engine.put_bucket_versioning(plain, VERSIONING_SUSPENDED)
    with pytest.raises(errors.InvalidBucketState):
        await engine.enable_object_lock(plain)
    await engine.put_bucket_versioning(plain, VERSIONING_ENABLED)
    assert (await engine.enable_object_lock(plain)).object_lock
    assert (await engine.get_bucket(plain)).object_lock


# ---------------------------------------------------------------------- unversioned buckets


async def test_unversioned_bucket_has_only_null_versions(engine: Engine, plain: str) -> None:
    first = await put(engine, plain, "k", b"one")
    second = await put(engine, plain, "k", b"two")
    assert first.version_id == second.version_id == NULL_VERSION
    assert await versions(engine, plain) == [("k", NULL_VERSION, True, False)]
    assert await read_version(engine, plain, "k", NULL_VERSION) == b"two"
    assert (await engine.head_object(plain, "k", version_id=NULL_VERSION)).etag == second.etag
    with pytest.raises(errors.NoSuchVersion):
        await engine.head_object(plain, "k", version_id=new_version_id())
    assert await engine.delete_object(plain, "k") == DeleteResult(None, False)
    assert await versions(engine, plain) == []
    with pytest.raises(errors.NoSuchKey) as caught:
        await engine.head_object(plain, "k")
    assert caught.value.marker is None


# ---------------------------------------------------------------------- enabled


async def test_each_put_adds_a_version(engine: Engine, versioned: str) -> None:
    v1 = await put(engine, versioned, "k", b"first")
    v2 = await put(engine, versioned, "k", b"second body")
    assert v1.version_id != v2.version_id
    assert is_valid_version_id(v1.version_id) and v1.version_id != NULL_VERSION
    assert v1.version_id < v2.version_id  # time-ordered ids
    latest = await engine.head_object(versioned, "k")
    assert (latest.version_id, latest.size) == (v2.version_id, len(b"second body"))
    old = await engine.head_object(versioned, "k", version_id=v1.version_id)
    assert (old.version_id, old.etag, old.size) == (v1.version_id, v1.etag, 5)
    assert await read_version(engine, versioned, "k", v1.version_id) == b"first"
    assert await read(engine, versioned, "k") == b"second body"
    assert await keys_of(engine, versioned) == ["k"]
    assert await versions(engine, versioned) == [
        ("k", v2.version_id, True, False),
        ("k", v1.version_id, False, False),
    ]


async def test_large_versions_keep_their_bodies(engine: Engine, versioned: str) -> None:
    bodies = [bytes([i]) * 200_000 for i in range(3)]
    infos = [await put(engine, versioned, "big", body) for body in bodies]
    for info, body in zip(infos, bodies, strict=True):
        assert await read_version(engine, versioned, "big", info.version_id) == body
    opened = await engine.open_object(versioned, "big", version_id=infos[0].version_id)
    assert b"".join([p async for p in opened.stream(1000, 1010)]) == bodies[0][1000:1010]


async def test_delete_adds_a_marker(engine: Engine, versioned: str) -> None:
    v1 = await put(engine, versioned, "k", b"data")
    result = await engine.delete_object(versioned, "k")
    assert result.delete_marker and is_valid_version_id(result.version_id or "")
    assert result.version_id != v1.version_id
    with pytest.raises(errors.NoSuchKey) as caught:
        await engine.head_object(versioned, "k")
    marker = caught.value.marker
    assert marker is not None and marker.delete_marker and marker.version_id == result.version_id
    with pytest.raises(errors.NoSuchKey):
        await engine.open_object(versioned, "k")
    with pytest.raises(errors.MethodNotAllowed) as refused:
        await engine.head_object(versioned, "k", version_id=result.version_id)
    assert refused.value.marker is not None and refused.value.marker.version_id == result.version_id
    with pytest.raises(errors.MethodNotAllowed):
        await engine.open_object(versioned, "k", version_id=result.version_id)
    # The data is still there by version; the key is gone from listings.
    assert await read_version(engine, versioned, "k", v1.version_id) == b"data"
    assert await keys_of(engine, versioned) == []
    assert await versions(engine, versioned) == [
        ("k", result.version_id, True, True),
        ("k", v1.version_id, False, False),
    ]
    # A second delete adds a second marker.
    again = await engine.delete_object(versioned, "k")
    assert again.delete_marker and again.version_id != result.version_id
    assert len(await versions(engine, versioned)) == 3


async def test_removing_the_marker_restores_the_object(engine: Engine, versioned: str) -> None:
    v1 = await put(engine, versioned, "k", b"data")
    marker = await engine.delete_object(versioned, "k")
    assert marker.version_id is not None
    removed = await engine.delete_object(versioned, "k", version_id=marker.version_id)
    assert removed == DeleteResult(marker.version_id, True)
    assert (await engine.head_object(versioned, "k")).version_id == v1.version_id
    assert await keys_of(engine, versioned) == ["k"]
    assert await versions(engine, versioned) == [("k", v1.version_id, True, False)]


async def test_deleting_a_version_for_good(
    engine: Engine, engine_kind: EngineKind, engine_root: Path, versioned: str
) -> None:
    v1 = await put(engine, versioned, "k", b"a" * 5000)
    v2 = await put(engine, versioned, "k", b"b" * 5000)
    v3 = await put(engine, versioned, "k", b"c" * 5000)
    # A noncurrent one: the latest stays.
    assert await engine.delete_object(versioned, "k", version_id=v2.version_id) == DeleteResult(v2.version_id, False)
    assert (await engine.head_object(versioned, "k")).version_id == v3.version_id
    with pytest.raises(errors.NoSuchVersion):
        await engine.head_object(versioned, "k", version_id=v2.version_id)
    # The latest: the next newest becomes latest.
    await engine.delete_object(versioned, "k", version_id=v3.version_id)
    latest = await engine.head_object(versioned, "k")
    assert latest.version_id == v1.version_id
    assert await read(engine, versioned, "k") == b"a" * 5000
    assert await versions(engine, versioned) == [("k", v1.version_id, True, False)]
    # Deleting what does not exist succeeds and changes nothing.
    ghost = new_version_id()
    assert await engine.delete_object(versioned, "k", version_id=ghost) == DeleteResult(ghost, False)
    assert await engine.delete_object(versioned, "nokey", version_id=ghost) == DeleteResult(ghost, False)
    await engine.delete_object(versioned, "k", version_id=v1.version_id)
    assert await versions(engine, versioned) == []
    with pytest.raises(errors.NoSuchKey) as caught:
        await engine.head_object(versioned, "k")
    assert caught.value.marker is None
    if engine_kind.files is not None:
        # Every version's body is gone with it (no orphan files).
        assert [f for f in engine_kind.files(engine_root) if "/blobs/" in f] == []


async def test_missing_versions(engine: Engine, versioned: str) -> None:
    await put(engine, versioned, "k", b"x")
    for key in ("k", "absent"):
        with pytest.raises(errors.NoSuchVersion):
            await engine.head_object(versioned, key, version_id=new_version_id())
        with pytest.raises(errors.NoSuchVersion):
            await engine.open_object(versioned, key, version_id=NULL_VERSION)
        with pytest.raises(errors.NoSuchVersion):
            await engine.put_object_tagging(versioned, key, {"a": "b"}, version_id=new_version_id())


# ---------------------------------------------------------------------- suspended and null versions


async def test_suspended_writes_replace_the_null_version(engine: Engine, versioned: str) -> None:
    v1 = await put(engine, versioned, "k", b"enabled")
    await engine.put_bucket_versioning(versioned, VERSIONING_SUSPENDED)
    n1 = await put(engine, versioned, "k", b"null one")
    assert n1.version_id == NULL_VERSION
    n2 = await put(engine, versioned, "k", b"null two")
    assert n2.version_id == NULL_VERSION
    assert await versions(engine, versioned) == [
        ("k", NULL_VERSION, True, False),
        ("k", v1.version_id, False, False),
    ]
    assert await read_version(engine, versioned, "k", NULL_VERSION) == b"null two"
    assert await read_version(engine, versioned, "k", v1.version_id) == b"enabled"
    # Deleting the key in a suspended bucket: a null delete marker replaces the null version.
    assert await engine.delete_object(versioned, "k") == DeleteResult(NULL_VERSION, True)
    assert await versions(engine, versioned) == [
        ("k", NULL_VERSION, True, True),
        ("k", v1.version_id, False, False),
    ]
    with pytest.raises(errors.NoSuchKey) as caught:
        await engine.head_object(versioned, "k")
    assert caught.value.marker is not None and caught.value.marker.version_id == NULL_VERSION


async def test_null_version_keeps_its_place_in_history(engine: Engine, plain: str) -> None:
    n = await put(engine, plain, "k", b"from before versioning")
    await engine.put_bucket_versioning(plain, VERSIONING_ENABLED)
    v2 = await put(engine, plain, "k", b"v2")
    v3 = await put(engine, plain, "k", b"v3")
    assert await versions(engine, plain) == [
        ("k", v3.version_id, True, False),
        ("k", v2.version_id, False, False),
        ("k", NULL_VERSION, False, False),
    ]
    assert await read_version(engine, plain, "k", NULL_VERSION) == b"from before versioning"
    assert (await engine.head_object(plain, "k", version_id=NULL_VERSION)).etag == n.etag
    # Suspended: the new null version replaces the old one and becomes the newest.
    await engine.put_bucket_versioning(plain, VERSIONING_SUSPENDED)
    await put(engine, plain, "k", b"new null")
    assert await versions(engine, plain) == [
        ("k", NULL_VERSION, True, False),
        ("k", v3.version_id, False, False),
        ("k", v2.version_id, False, False),
    ]
    # Removing the null version for good: v3 is latest again.
    await engine.delete_object(plain, "k", version_id=NULL_VERSION)
    assert (await engine.head_object(plain, "k")).version_id == v3.version_id


# ---------------------------------------------------------------------- other operations by version


async def test_tagging_by_version(engine: Engine, versioned: str) -> None:
    v1 = await put(engine, versioned, "k", b"1", tags={"gen": "one"})
    v2 = await put(engine, versioned, "k", b"2")
    tagged = await engine.put_object_tagging(versioned, "k", {"old": "yes"}, version_id=v1.version_id)
    assert (tagged.version_id, tagged.tags) == (v1.version_id, {"old": "yes"})
    assert (await engine.head_object(versioned, "k", version_id=v1.version_id)).tags == {"old": "yes"}
    assert (await engine.head_object(versioned, "k")).tags == {}
    latest = await engine.put_object_tagging(versioned, "k", {"new": "yes"})
    assert latest.version_id == v2.version_id
    assert (await engine.head_object(versioned, "k", version_id=v1.version_id)).tags == {"old": "yes"}
    marker = await engine.delete_object(versioned, "k")
    with pytest.raises(errors.NoSuchKey):
        await engine.put_object_tagging(versioned, "k", {"a": "b"})
    with pytest.raises(errors.MethodNotAllowed):
        await engine.put_object_tagging(versioned, "k", {"a": "b"}, version_id=marker.version_id)


async def test_copy_from_a_version(engine: Engine, versioned: str) -> None:
    v1 = await put(engine, versioned, "src", b"old body", headers={"content-type": "text/old"})
    await put(engine, versioned, "src", b"new body")
    seen: list[ObjectInfo] = []
    copied = await engine.copy_object(
        versioned, "src", versioned, "dst", headers=None, src_version_id=v1.version_id, check_source=seen.append
    )
    assert [s.version_id for s in seen] == [v1.version_id]
    assert is_valid_version_id(copied.version_id) and copied.version_id != NULL_VERSION
    assert await read(engine, versioned, "dst") == b"old body"
    assert (await engine.head_object(versioned, "dst")).headers == {"content-type": "text/old"}
    # Restoring an old version over the key: a new latest version with the old content.
    restored = await engine.copy_object(versioned, "src", versioned, "src", headers=None, src_version_id=v1.version_id)
    assert await read(engine, versioned, "src") == b"old body"
    assert len(await versions(engine, versioned, prefix="src")) == 3
    assert restored.version_id == (await engine.head_object(versioned, "src")).version_id
    # Delete markers are no copy source.
    marker = await engine.delete_object(versioned, "src")
    with pytest.raises(errors.NoSuchKey):
        await engine.copy_object(versioned, "src", versioned, "x", headers=None)
    with pytest.raises(errors.InvalidRequest):
        await engine.copy_object(versioned, "src", versioned, "x", headers=None, src_version_id=marker.version_id)
    with pytest.raises(errors.NoSuchVersion):
        await engine.copy_object(versioned, "src", versioned, "x", headers=None, src_version_id=new_version_id())


async def test_copy_into_an_unversioned_bucket(engine: Engine, versioned: str, plain: str) -> None:
    v1 = await put(engine, versioned, "src", b"v1")
    await put(engine, versioned, "src", b"v2")
    copied = await engine.copy_object(versioned, "src", plain, "dst", headers=None, src_version_id=v1.version_id)
    assert copied.version_id == NULL_VERSION
    assert await read(engine, plain, "dst") == b"v1"


async def test_multipart_completion_adds_a_version(engine: Engine, versioned: str) -> None:
    v1 = await put(engine, versioned, "mp", b"before")
    upload = await engine.create_multipart_upload(versioned, "mp", headers={})
    part = await engine.upload_part(versioned, "mp", upload.upload_id, 1, chunks(b"part body"))
    done = await engine.complete_multipart_upload(versioned, "mp", upload.upload_id, [CompletedPart(1, part.etag)])
    assert is_valid_version_id(done.version_id) and done.version_id not in (NULL_VERSION, v1.version_id)
    assert (await engine.head_object(versioned, "mp")).version_id == done.version_id
    assert await read_version(engine, versioned, "mp", v1.version_id) == b"before"
    assert await read_version(engine, versioned, "mp", done.version_id) == b"part body"
    parts = await engine.list_object_parts(versioned, "mp", version_id=done.version_id)
    assert [p.part_number for p in parts.parts] == [1]


async def test_upload_part_copy_from_a_version(engine: Engine, versioned: str) -> None:
    v1 = await put(engine, versioned, "src", b"0123456789")
    await put(engine, versioned, "src", b"abcdefghij")
    upload = await engine.create_multipart_upload(versioned, "dst", headers={})
    part = await engine.upload_part_copy(
        versioned, "dst", upload.upload_id, 1, versioned, "src", src_range=(2, 5), src_version_id=v1.version_id
    )
    await engine.complete_multipart_upload(versioned, "dst", upload.upload_id, [CompletedPart(1, part.etag)])
    assert await read(engine, versioned, "dst") == b"2345"


async def test_conditions_see_a_marker_as_no_object(engine: Engine, versioned: str) -> None:
    await put(engine, versioned, "k", b"data")
    await engine.delete_object(versioned, "k")
    with pytest.raises(errors.NoSuchKey):
        await put(engine, versioned, "k", b"x", if_match="*")
    created = await put(engine, versioned, "k", b"new", if_none_match=True)
    with pytest.raises(errors.PreconditionFailed):
        await put(engine, versioned, "k", b"x", if_none_match=True)
    with pytest.raises(errors.PreconditionFailed):
        await engine.delete_object(versioned, "k", DeleteCondition(if_match='"nope"'))
    result = await engine.delete_object(versioned, "k", DeleteCondition(if_match=f'"{created.etag}"'))
    assert result.delete_marker
    with pytest.raises(errors.NoSuchKey):
        await engine.delete_object(versioned, "k", DeleteCondition(if_match="*"))


async def test_delete_objects_by_version(engine: Engine, versioned: str) -> None:
    a1 = await put(engine, versioned, "a", b"a1")
    a2 = await put(engine, versioned, "a", b"a2")
    await put(engine, versioned, "b", b"b1")
    ghost = new_version_id()
    results = await engine.delete_objects(
        versioned,
        [
            DeleteRequest("a", a1.version_id),
            DeleteRequest("b"),
            DeleteRequest("c", ghost),
            DeleteRequest("a", condition=DeleteCondition(if_match='"wrong"')),
        ],
    )
    assert results[0] == DeleteResult(a1.version_id, False)
    assert isinstance(results[1], DeleteResult) and results[1].delete_marker
    assert results[2] == DeleteResult(ghost, False)
    assert isinstance(results[3], errors.PreconditionFailed)
    assert await versions(engine, versioned) == [
        ("a", a2.version_id, True, False),
        ("b", results[1].version_id, True, True),
        ("b", (await versions(engine, versioned, prefix="b"))[1][1], False, False),
    ]
    assert await engine.delete_objects(versioned, []) == []


async def test_delete_bucket_needs_every_version_gone(engine: Engine, versioned: str) -> None:
    v1 = await put(engine, versioned, "k", b"x")
    marker = await engine.delete_object(versioned, "k")
    with pytest.raises(errors.BucketNotEmpty):
        await engine.delete_bucket(versioned)
    await engine.delete_object(versioned, "k", version_id=v1.version_id)
    with pytest.raises(errors.BucketNotEmpty):  # a lone delete marker still counts
        await engine.delete_bucket(versioned)
    await engine.delete_object(versioned, "k", version_id=marker.version_id)
    await engine.delete_bucket(versioned)


async def test_stats_count_every_version(engine: Engine, versioned: str) -> None:
    before = await engine.storage_stats()
    await put(engine, versioned, "k", b"12345")
    await put(engine, versioned, "k", b"1234567")
    await engine.delete_object(versioned, "k")
    stats = await engine.storage_stats()
    assert stats.objects - before.objects == 2
    assert stats.bytes - before.bytes == 12


async def test_concurrent_versioned_puts_keep_every_version(engine: Engine, versioned: str) -> None:
    infos = await asyncio.gather(*(put(engine, versioned, "k", str(i).encode() * 100) for i in range(20)))
    ids = [i.version_id for i in infos]
    assert len(set(ids)) == 20
    listed = await versions(engine, versioned)
    assert sorted(v[1] for v in listed) == sorted(ids)
    assert [v[2] for v in listed] == [True] + [False] * 19
    latest = await engine.head_object(versioned, "k")
    assert latest.version_id == listed[0][1]


# ---------------------------------------------------------------------- listing


async def test_list_objects_skips_noncurrent_and_deleted(engine: Engine, versioned: str) -> None:
    for key in ("a", "b", "c", "d/1", "d/2"):
        await put(engine, versioned, key, b"v1")
        await put(engine, versioned, key, b"v2")
    await engine.delete_object(versioned, "b")
    await engine.delete_object(versioned, "d/2")
    assert await keys_of(engine, versioned) == ["a", "c", "d/1"]
    page = await engine.list_objects(versioned, delimiter="/")
    assert ([e.key for e in page.entries], page.common_prefixes) == (["a", "c"], ["d/"])
    page = await engine.list_objects(versioned, max_keys=1, after="a")
    assert [e.key for e in page.entries] == ["c"] and page.is_truncated


async def _fill(engine: Engine, bucket: str) -> list[tuple[str, str, bool, bool]]:
    """Keys with 1-3 versions, some deleted, some under prefixes; returns the expected full listing."""
    expected: list[tuple[str, str, bool, bool]] = []
    for n, key in enumerate(["a", "b/1", "b/2", "c", "d/x/1", "e", "é"]):
        ids = [(await put(engine, bucket, key, f"{key}{i}".encode())).version_id for i in range(1 + n % 3)]
        rows = [(key, v, False, False) for v in ids]
        if n % 2:
            marker = await engine.delete_object(bucket, key)
            assert marker.version_id is not None
            rows.append((key, marker.version_id, False, True))
        rows.reverse()
        rows[0] = (rows[0][0], rows[0][1], True, rows[0][3])
        expected += rows
    return expected


async def test_list_versions_in_order(engine: Engine, versioned: str) -> None:
    expected = await _fill(engine, versioned)
    assert await versions(engine, versioned) == expected
    page = await engine.list_object_versions(versioned)
    entry = page.entries[0]
    assert isinstance(entry, VersionEntry)
    assert (entry.key, entry.size, entry.owner, entry.storage_class) == ("a", 2, OWNER, "STANDARD")
    assert entry.etag and entry.last_modified > 0
    markers = [e for e in page.entries if e.delete_marker]
    assert markers and all(e.size == 0 for e in markers)
    assert await versions(engine, versioned, prefix="b/") == [e for e in expected if e[0].startswith("b/")]


@pytest.mark.parametrize("page_size", [1, 2, 3, 5])
async def test_list_versions_pages(engine: Engine, versioned: str, page_size: int) -> None:
    expected = await _fill(engine, versioned)
    got: list[tuple[str, str, bool, bool]] = []
    key_marker, version_marker = "", ""
    for _ in range(100):
        page = await engine.list_object_versions(
            versioned, key_marker=key_marker, version_id_marker=version_marker, max_keys=page_size
        )
        assert len(page.entries) <= page_size
        got += [(e.key, e.version_id, e.is_latest, e.delete_marker) for e in page.entries]
        if not page.is_truncated:
            break
        assert page.next_key_marker is not None
        key_marker, version_marker = page.next_key_marker, page.next_version_id_marker or ""
    assert got == expected


@pytest.mark.parametrize("page_size", [1, 2, 4])
async def test_list_versions_pages_with_delimiter(engine: Engine, versioned: str, page_size: int) -> None:
    expected = await _fill(engine, versioned)
    top = [e for e in expected if "/" not in e[0]]
    got: list[tuple[str, str, bool, bool]] = []
    prefixes: list[str] = []
    key_marker, version_marker = "", ""
    for _ in range(100):
        page = await engine.list_object_versions(
            versioned, delimiter="/", key_marker=key_marker, version_id_marker=version_marker, max_keys=page_size
        )
        assert len(page.entries) + len(page.common_prefixes) <= page_size
        got += [(e.key, e.version_id, e.is_latest, e.delete_marker) for e in page.entries]
        prefixes += page.common_prefixes
        if not page.is_truncated:
            break
        assert page.next_key_marker is not None
        key_marker, version_marker = page.next_key_marker, page.next_version_id_marker or ""
    assert got == top
    assert prefixes == ["b/", "d/"]


async def test_list_versions_markers(engine: Engine, versioned: str) -> None:
    expected = await _fill(engine, versioned)
    # key-marker alone: strictly after every version of that key.
    assert await versions(engine, versioned, key_marker="b/2") == [e for e in expected if e[0] > "b/2"]
    # With a version-id marker: the older versions of that key come first.
    c_rows = [e for e in expected if e[0] == "c"]
    assert len(c_rows) >= 2
    after = await versions(engine, versioned, key_marker="c", version_id_marker=c_rows[0][1])
    assert after == c_rows[1:] + [e for e in expected if e[0] > "c"]
    empty = await engine.list_object_versions(versioned, max_keys=0)
    assert (empty.entries, empty.is_truncated) == ([], False)


# ---------------------------------------------------------------------- object lock


async def test_lock_is_stored_with_the_version(engine: Engine, locked: str) -> None:
    lock = ObjectLock(GOVERNANCE, FUTURE, True)
    info = await put(engine, locked, "k", b"x", lock=lock)
    assert info.lock == lock
    head = await engine.head_object(locked, "k", version_id=info.version_id)
    assert head.lock.mode == GOVERNANCE and head.lock.legal_hold
    assert head.lock.retain_until == pytest.approx(FUTURE)
    plain = await put(engine, locked, "k", b"y")
    assert (await engine.head_object(locked, "k")).lock == ObjectLock()
    assert plain.version_id != info.version_id


async def test_governance_blocks_version_deletes_unless_bypassed(engine: Engine, locked: str) -> None:
    info = await put(engine, locked, "k", b"x", lock=ObjectLock(GOVERNANCE, FUTURE))
    with pytest.raises(errors.ObjectLocked):
        await engine.delete_object(locked, "k", version_id=info.version_id)
    results = await engine.delete_objects(locked, [DeleteRequest("k", info.version_id)])
    assert isinstance(results[0], errors.ObjectLocked)
    # Deleting the key (a delete marker) stays allowed.
    marker = await engine.delete_object(locked, "k")
    assert marker.delete_marker
    await engine.delete_object(locked, "k", version_id=marker.version_id)
    result = await engine.delete_object(locked, "k", version_id=info.version_id, bypass_governance=True)
    assert result == DeleteResult(info.version_id, False)
    assert await versions(engine, locked) == []


async def test_compliance_is_never_bypassed(engine: Engine, locked: str) -> None:
    info = await put(engine, locked, "k", b"x", lock=ObjectLock(COMPLIANCE, FUTURE))
    with pytest.raises(errors.ObjectLocked):
        await engine.delete_object(locked, "k", version_id=info.version_id, bypass_governance=True)
    results = await engine.delete_objects(locked, [DeleteRequest("k", info.version_id)], bypass_governance=True)
    assert isinstance(results[0], errors.ObjectLocked)
    with pytest.raises(errors.ObjectLocked):
        await engine.put_object_retention(
            locked, "k", COMPLIANCE, FUTURE - 3600, version_id=info.version_id, bypass_governance=True
        )
    with pytest.raises(errors.ObjectLocked):
        await engine.put_object_retention(locked, "k", GOVERNANCE, FUTURE + 3600, bypass_governance=True)
    with pytest.raises(errors.ObjectLocked):
        await engine.put_object_retention(locked, "k", None, None, bypass_governance=True)
    extended = await engine.put_object_retention(locked, "k", COMPLIANCE, FUTURE + 3600)
    assert extended.lock.retain_until == pytest.approx(FUTURE + 3600)
    assert (await engine.head_object(locked, "k")).lock.retain_until == pytest.approx(FUTURE + 3600)


async def test_expired_retention_no_longer_protects(engine: Engine, locked: str) -> None:
    info = await put(engine, locked, "k", b"x", lock=ObjectLock(COMPLIANCE, PAST))
    assert await engine.delete_object(locked, "k", version_id=info.version_id) == DeleteResult(info.version_id, False)


async def test_retention_changes(engine: Engine, locked: str) -> None:
    info = await put(engine, locked, "k", b"x")
    assert (await engine.put_object_retention(locked, "k", GOVERNANCE, FUTURE)).lock.mode == GOVERNANCE
    # Shortening or removing GOVERNANCE needs the bypass.
    with pytest.raises(errors.ObjectLocked):
        await engine.put_object_retention(locked, "k", GOVERNANCE, FUTURE - 60)
    with pytest.raises(errors.ObjectLocked):
        await engine.put_object_retention(locked, "k", None, None)
    await engine.put_object_retention(locked, "k", GOVERNANCE, FUTURE + 60)  # extending needs nothing
    shorter = await engine.put_object_retention(locked, "k", GOVERNANCE, FUTURE - 60, bypass_governance=True)
    assert shorter.lock.retain_until == pytest.approx(FUTURE - 60)
    # GOVERNANCE -> COMPLIANCE is a mode change: needs the bypass too.
    await engine.put_object_retention(
        locked, "k", COMPLIANCE, FUTURE, version_id=info.version_id, bypass_governance=True
    )
    assert (await engine.head_object(locked, "k")).lock.mode == COMPLIANCE
    # Retention on a version that does not exist, or a delete marker.
    with pytest.raises(errors.NoSuchVersion):
        await engine.put_object_retention(locked, "k", GOVERNANCE, FUTURE, version_id=new_version_id())
    marker = await engine.delete_object(locked, "k")
    with pytest.raises(errors.MethodNotAllowed):
        await engine.put_object_retention(locked, "k", GOVERNANCE, FUTURE, version_id=marker.version_id)


async def test_retention_removed_with_bypass(engine: Engine, locked: str) -> None:
    info = await put(engine, locked, "k", b"x", lock=ObjectLock(GOVERNANCE, FUTURE))
    removed = await engine.put_object_retention(locked, "k", None, None, bypass_governance=True)
    assert (removed.lock.mode, removed.lock.retain_until) == (None, None)
    await engine.delete_object(locked, "k", version_id=info.version_id)


async def test_legal_hold(engine: Engine, engine_kind: EngineKind, engine_root: Path, locked: str) -> None:
    info = await put(engine, locked, "k", b"x")
    assert info.lock.legal_hold is None  # never placed
    held = await engine.put_object_legal_hold(locked, "k", True)
    assert held.lock.legal_hold and held.version_id == info.version_id
    with pytest.raises(errors.ObjectLocked):
        await engine.delete_object(locked, "k", version_id=info.version_id, bypass_governance=True)
    await engine.put_object_legal_hold(locked, "k", False, version_id=info.version_id)
    assert (await engine.head_object(locked, "k")).lock.legal_hold is False  # removed, remembered as OFF
    if engine_kind.persistent:
        await engine.close()
        again = engine_kind.make(engine_root)
        await again.start()
        try:
            assert (await again.head_object(locked, "k")).lock.legal_hold is False
            assert (await put(again, locked, "other", b"y")).lock.legal_hold is None
            assert (await again.head_object(locked, "other")).lock.legal_hold is None
        finally:
            await again.close()
        return
    await engine.delete_object(locked, "k", version_id=info.version_id)


async def test_lock_operations_need_a_lock_bucket(engine: Engine, versioned: str) -> None:
    await put(engine, versioned, "k", b"x")
    with pytest.raises(errors.InvalidRequest):
        await engine.put_object_retention(versioned, "k", GOVERNANCE, FUTURE)
    with pytest.raises(errors.InvalidRequest):
        await engine.put_object_legal_hold(versioned, "k", True)


async def test_multipart_and_copy_carry_the_lock_asked_for(engine: Engine, locked: str) -> None:
    lock = ObjectLock(GOVERNANCE, FUTURE, False)
    upload = await engine.create_multipart_upload(locked, "mp", headers={}, lock=lock)
    assert upload.lock == lock
    assert (await engine.get_upload(locked, "mp", upload.upload_id)).lock == lock
    part = await engine.upload_part(locked, "mp", upload.upload_id, 1, chunks(b"body"))
    done = await engine.complete_multipart_upload(locked, "mp", upload.upload_id, [CompletedPart(1, part.etag)])
    assert (await engine.head_object(locked, "mp", version_id=done.version_id)).lock.mode == GOVERNANCE
    with pytest.raises(errors.ObjectLocked):
        await engine.delete_object(locked, "mp", version_id=done.version_id)
    # A copy gets the lock it asks for, never the source's.
    copied = await engine.copy_object(locked, "mp", locked, "copy", headers=None)
    assert (await engine.head_object(locked, "copy", version_id=copied.version_id)).lock == ObjectLock()
    held = await engine.copy_object(locked, "mp", locked, "held", headers=None, lock=ObjectLock(legal_hold=True))
    assert (await engine.head_object(locked, "held", version_id=held.version_id)).lock.legal_hold


async def test_concurrent_retention_changes_and_deletes(engine: Engine, locked: str) -> None:
    """A version delete racing a retention change: either the delete lands first, or the
    version is protected and the delete fails; never a deleted version with a lock applied."""
    for round_ in range(10):
        info = await put(engine, locked, f"k{round_}", b"x")
        outcomes = await asyncio.gather(
            engine.put_object_retention(locked, f"k{round_}", COMPLIANCE, FUTURE, version_id=info.version_id),
            engine.delete_object(locked, f"k{round_}", version_id=info.version_id),
            return_exceptions=True,
        )
        retained, deleted = outcomes
        if isinstance(deleted, DeleteResult):
            assert isinstance(retained, errors.NoSuchVersion)
            with pytest.raises(errors.NoSuchVersion):
                await engine.head_object(locked, f"k{round_}", version_id=info.version_id)
        else:
            assert isinstance(deleted, errors.ObjectLocked)
            head = await engine.head_object(locked, f"k{round_}", version_id=info.version_id)
            assert head.lock.mode == COMPLIANCE


# ---------------------------------------------------------------------- persistence


async def test_versions_survive_reopen(
    engine: Engine, engine_kind: EngineKind, engine_root: Path, versioned: str, locked: str
) -> None:
    if not engine_kind.persistent:
        pytest.skip("engine keeps nothing across restarts")
    expected = await _fill(engine, versioned)
    info = await put(engine, locked, "k", b"locked", lock=ObjectLock(COMPLIANCE, FUTURE, True))
    await engine.create_bucket("susp", OWNER, REGION)
    await engine.put_bucket_versioning("susp", VERSIONING_ENABLED)
    s1 = await put(engine, "susp", "k", b"s1")
    await engine.put_bucket_versioning("susp", VERSIONING_SUSPENDED)
    await put(engine, "susp", "k", b"null")
    tagged = expected[-1]
    await engine.close()

    again = engine_kind.make(engine_root)
    await again.start()
    try:
        assert await versions(again, versioned) == expected
        assert (await again.get_bucket(versioned)).versioning == VERSIONING_ENABLED
        lock_bucket = await again.get_bucket(locked)
        assert (lock_bucket.versioning, lock_bucket.object_lock) == (VERSIONING_ENABLED, True)
        head = await again.head_object(locked, "k", version_id=info.version_id)
        assert (head.lock.mode, head.lock.legal_hold) == (COMPLIANCE, True)
        assert head.lock.retain_until == pytest.approx(FUTURE)
        with pytest.raises(errors.ObjectLocked):
            await again.delete_object(locked, "k", version_id=info.version_id, bypass_governance=True)
        assert (await again.get_bucket("susp")).versioning == VERSIONING_SUSPENDED
        assert await versions(again, "susp") == [
            ("k", NULL_VERSION, True, False),
            ("k", s1.version_id, False, False),
        ]
        assert await read_version(again, "susp", "k", NULL_VERSION) == b"null"
        assert tagged[0] == "é"
        # New versions after a restart sort after the old ones and are unique.
        newer = await put(again, versioned, "a", b"after restart")
        listed = await versions(again, versioned, prefix="a")
        assert listed[0] == ("a", newer.version_id, True, False)
        assert len({v[1] for v in listed}) == len(listed)
        # A removed version stays removed after another restart.
        await again.delete_object(versioned, "a", version_id=newer.version_id)
        await again.close()
        third = engine_kind.make(engine_root)
        await third.start()
        try:
            assert await versions(third, versioned) == expected
        finally:
            await third.close()
    finally:
        await again.close()


async def test_a_lock_needs_a_lock_bucket(engine: Engine, versioned: str) -> None:
    """A version locked in a bucket without Object Lock would protect nothing (a later null
    write replaces a null version): every write that asks for a lock is refused there."""
    await put(engine, versioned, "src", b"x")
    held = ObjectLock(legal_hold=True)
    with pytest.raises(errors.InvalidRequest):
        await put(engine, versioned, "k", b"x", lock=held)
    with pytest.raises(errors.InvalidRequest):
        await engine.copy_object(versioned, "src", versioned, "k", headers=None, lock=ObjectLock(GOVERNANCE, FUTURE))
    with pytest.raises(errors.InvalidRequest):
        await engine.create_multipart_upload(versioned, "k", headers={}, lock=held)
    assert [v[0] for v in await versions(engine, versioned)] == ["src"]
