"""The storage API contract (coffer/storage/api.py), run against every engine directly.

No HTTP here: these tests call the engine object the server would call. Engines
come from tests/engines.py; each test runs once per engine kind.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from coffer.storage import errors
from coffer.storage.api import (
    CompletedPart,
    DeleteCondition,
    DeleteRequest,
    DeleteResult,
    Engine,
    ObjectInfo,
    PutDigests,
)
from tests.checksum_reference import reference_checksums
from tests.engines import EngineKind, keys_of, put, read
from tests.helpers import chunks

OWNER = "owner-1"
REGION = "us-east-1"
ALL_ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
SMALL = b"small body " * 10  # stored inline by the disk engine under test
LARGE = os.urandom(300_000)  # several chunks, stored as a file
MEDIUM = os.urandom(5000)  # stored as a file, small enough for the bitwise reference CRCs


@pytest.fixture
def bucket(engine: Engine, aio: asyncio.Runner) -> str:
    aio.run(engine.create_bucket("bkt", OWNER, REGION))
    return "bkt"


def leftover_files(kind: EngineKind, root: Path) -> list[str]:
    return kind.files(root) if kind.files is not None else []


def test_reference_crcs_match_published_check_values() -> None:
    sums = reference_checksums(b"123456789")
    assert sums["CRC32C"].hex() == "e3069283"
    assert sums["CRC64NVME"].hex() == "ae8b14860a799888"


# ---------------------------------------------------------------------- buckets


async def test_bucket_create_get_list(engine: Engine) -> None:
    info = await engine.create_bucket("one", OWNER, "eu-west-1")
    assert (info.name, info.owner, info.region) == ("one", OWNER, "eu-west-1")
    await engine.create_bucket("two", "someone-else", REGION)
    got = await engine.get_bucket("one")
    assert (got.name, got.owner, got.region) == ("one", OWNER, "eu-west-1")
    assert got.created == pytest.approx(info.created)
    assert [b.name for b in await engine.list_buckets()] == ["one", "two"]
    assert [b.name for b in await engine.list_buckets(OWNER)] == ["one"]


async def test_bucket_exists_and_owned(engine: Engine) -> None:
    await engine.create_bucket("taken", OWNER, REGION)
    with pytest.raises(errors.BucketAlreadyOwnedByYou):
        await engine.create_bucket("taken", OWNER, REGION)
    with pytest.raises(errors.BucketAlreadyExists):
        await engine.create_bucket("taken", "another-owner", REGION)
    assert (await engine.get_bucket("taken")).owner == OWNER


async def test_missing_bucket_everywhere(engine: Engine) -> None:
    with pytest.raises(errors.NoSuchBucket):
        await engine.get_bucket("nope")
    with pytest.raises(errors.NoSuchBucket):
        await engine.delete_bucket("nope")
    with pytest.raises(errors.NoSuchBucket):
        await put(engine, "nope", "k", b"x")
    with pytest.raises(errors.NoSuchBucket):
        await engine.head_object("nope", "k")
    with pytest.raises(errors.NoSuchBucket):
        await engine.open_object("nope", "k")
    with pytest.raises(errors.NoSuchBucket):
        await engine.delete_object("nope", "k")
    with pytest.raises(errors.NoSuchBucket):
        await engine.delete_objects("nope", [DeleteRequest("k")])
    with pytest.raises(errors.NoSuchBucket):
        await engine.list_objects("nope")


async def test_delete_bucket_only_when_empty(engine: Engine, bucket: str) -> None:
    await put(engine, bucket, "k", b"x")
    with pytest.raises(errors.BucketNotEmpty):
        await engine.delete_bucket(bucket)
    await engine.delete_object(bucket, "k")
    await engine.delete_bucket(bucket)
    with pytest.raises(errors.NoSuchBucket):
        await engine.get_bucket(bucket)
    # The name is free again.
    await engine.create_bucket(bucket, "new-owner", REGION)
    assert await keys_of(engine, bucket) == []


# ---------------------------------------------------------------------- objects


@pytest.mark.parametrize("data", [b"", SMALL, LARGE], ids=["empty", "inline", "file"])
async def test_put_head_open_round_trip(engine: Engine, bucket: str, data: bytes) -> None:
    headers = {"content-type": "text/plain", "x-amz-meta-colour": "blue"}
    info = await put(engine, bucket, "dir/obj", data, headers=headers, storage_class="STANDARD_IA")
    assert info.size == len(data)
    assert info.etag == hashlib.md5(data).hexdigest()
    head = await engine.head_object(bucket, "dir/obj")
    assert (head.key, head.bucket, head.size, head.etag) == ("dir/obj", bucket, len(data), info.etag)
    assert head.headers == headers
    assert head.storage_class == "STANDARD_IA"
    assert head.last_modified == pytest.approx(info.last_modified)
    assert await read(engine, bucket, "dir/obj") == data
    opened = await engine.open_object(bucket, "dir/obj")
    assert opened.info.etag == info.etag and opened.info.headers == headers


@pytest.mark.parametrize("data", [SMALL, LARGE], ids=["inline", "file"])
async def test_stream_ranges(engine: Engine, bucket: str, data: bytes) -> None:
    await put(engine, bucket, "r", data)
    n = len(data)
    for start, end in [(0, 1), (0, n), (10, n // 2), (n - 1, n), (5, 5), (n // 3, None), (0, None)]:
        assert await read(engine, bucket, "r", start, end) == data[start:end], (start, end)


async def test_stream_chunks_are_bounded(engine: Engine, bucket: str) -> None:
    """Bodies stream in pieces, never as one buffer of the whole object."""
    data = os.urandom(5 * 1024 * 1024)
    await put(engine, bucket, "big", data)
    opened = await engine.open_object(bucket, "big")
    pieces = [piece async for piece in opened.stream()]
    assert b"".join(pieces) == data
    assert max(len(p) for p in pieces) < len(data)


async def test_missing_key(engine: Engine, bucket: str) -> None:
    with pytest.raises(errors.NoSuchKey):
        await engine.head_object(bucket, "nothing")
    with pytest.raises(errors.NoSuchKey):
        await engine.open_object(bucket, "nothing")


@pytest.mark.parametrize(
    ("first", "second"),
    [(LARGE, SMALL), (SMALL, LARGE), (LARGE, LARGE[::-1]), (SMALL, b"")],
    ids=["file-to-inline", "inline-to-file", "file-to-file", "inline-to-empty"],
)
async def test_overwrite_replaces_whole(
    engine: Engine, engine_kind: EngineKind, engine_root: Path, bucket: str, first: bytes, second: bytes
) -> None:
    await put(engine, bucket, "k", first, headers={"x-amz-meta-v": "1", "content-type": "a/b"})
    info = await put(engine, bucket, "k", second, headers={"x-amz-meta-v": "2"})
    head = await engine.head_object(bucket, "k")
    assert head.headers == {"x-amz-meta-v": "2"}  # metadata replaced, not merged
    assert (head.size, head.etag) == (len(second), info.etag)
    assert await read(engine, bucket, "k") == second
    assert await keys_of(engine, bucket) == ["k"]
    # The replaced body is reclaimed: at most the new one remains.
    assert len(leftover_files(engine_kind, engine_root)) <= 1


async def test_checksums_computed(engine: Engine, bucket: str) -> None:
    data = MEDIUM
    seen: list[PutDigests] = []
    info = await put(
        engine, bucket, "c", data, checksum_algorithms=ALL_ALGORITHMS, want_sha256=True, verify=seen.append
    )
    expected = reference_checksums(data)
    assert info.checksums == expected
    assert (await engine.head_object(bucket, "c")).checksums == expected
    assert (await engine.head_object(bucket, "c")).checksum_type == "FULL_OBJECT"
    [digests] = seen
    assert digests.size == len(data)
    assert digests.md5 == hashlib.md5(data).digest()
    assert digests.checksums == expected
    assert digests.sha256 == hashlib.sha256(data).digest()


@pytest.mark.parametrize("algorithm", ALL_ALGORITHMS)
async def test_each_checksum_alone(engine: Engine, bucket: str, algorithm: str) -> None:
    info = await put(engine, bucket, "one", MEDIUM, checksum_algorithms=(algorithm,))
    assert info.checksums == {algorithm: reference_checksums(MEDIUM)[algorithm]}
    assert (await engine.head_object(bucket, "one")).checksums == info.checksums


class Rejected(Exception):
    pass


def _reject(digests: PutDigests) -> None:
    raise Rejected(digests.size)


@pytest.mark.parametrize("data", [SMALL, LARGE, LARGE * 5], ids=["inline", "file", "multi-chunk"])
async def test_verify_raising_stores_nothing(
    engine: Engine, engine_kind: EngineKind, engine_root: Path, bucket: str, data: bytes
) -> None:
    with pytest.raises(Rejected):
        await put(engine, bucket, "bad", data, verify=_reject)
    with pytest.raises(errors.NoSuchKey):
        await engine.head_object(bucket, "bad")
    assert await keys_of(engine, bucket) == []
    assert leftover_files(engine_kind, engine_root) == []
    await engine.delete_bucket(bucket)  # nothing hidden keeps it non-empty


async def test_verify_raising_keeps_previous_version(
    engine: Engine, engine_kind: EngineKind, engine_root: Path, bucket: str
) -> None:
    await put(engine, bucket, "k", LARGE)
    files = leftover_files(engine_kind, engine_root)
    with pytest.raises(Rejected):
        await put(engine, bucket, "k", LARGE[::-1], verify=_reject)
    assert await read(engine, bucket, "k") == LARGE
    assert leftover_files(engine_kind, engine_root) == files


async def test_body_failing_midway_stores_nothing(
    engine: Engine, engine_kind: EngineKind, engine_root: Path, bucket: str
) -> None:
    """A client that disconnects mid-body: the iterator raises, nothing is stored."""

    async def broken() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield os.urandom(1024 * 1024)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        await engine.put_object(bucket, "half", broken(), headers={})
    with pytest.raises(errors.NoSuchKey):
        await engine.head_object(bucket, "half")
    assert leftover_files(engine_kind, engine_root) == []


async def test_delete_object(engine: Engine, engine_kind: EngineKind, engine_root: Path, bucket: str) -> None:
    await put(engine, bucket, "a", LARGE)
    await put(engine, bucket, "b", SMALL)
    await engine.delete_object(bucket, "a")
    await engine.delete_object(bucket, "a")  # idempotent
    await engine.delete_object(bucket, "never-existed")
    with pytest.raises(errors.NoSuchKey):
        await engine.head_object(bucket, "a")
    assert await keys_of(engine, bucket) == ["b"]
    assert leftover_files(engine_kind, engine_root) == []


async def test_delete_objects(engine: Engine, engine_kind: EngineKind, engine_root: Path, bucket: str) -> None:
    for key in ("a", "b", "c", "d"):
        await put(engine, bucket, key, LARGE if key in "ab" else SMALL)
    results = await engine.delete_objects(bucket, [DeleteRequest(k) for k in ("a", "c", "missing", "a")])
    assert results == [DeleteResult(None, False)] * 4
    assert await keys_of(engine, bucket) == ["b", "d"]
    if engine_kind.files is not None:
        assert len(leftover_files(engine_kind, engine_root)) == 1  # only b's body
    assert await engine.delete_objects(bucket, []) == []


# ---------------------------------------------------------------------- conditional deletes


def _conditions(info: ObjectInfo) -> dict[str, tuple[DeleteCondition, DeleteCondition]]:
    """For an object: each kind of delete condition, as (one that holds, one that does not)."""
    return {
        "etag": (DeleteCondition(if_match=info.etag), DeleteCondition(if_match='"0123"')),
        "quoted-etag-in-list": (
            DeleteCondition(if_match=f'"0123", "{info.etag}"'),
            DeleteCondition(if_match='"0123", W/"4567"'),
        ),
        "any": (DeleteCondition(if_match="*"), DeleteCondition(if_match="*", size=info.size + 1)),
        # Last-Modified has whole seconds: a time within the same second holds.
        "last-modified": (
            DeleteCondition(last_modified=float(int(info.last_modified)) + 0.5),
            DeleteCondition(last_modified=info.last_modified - 1),
        ),
        "size": (DeleteCondition(size=info.size), DeleteCondition(size=info.size + 1)),
        "all": (
            DeleteCondition(if_match=info.etag, last_modified=info.last_modified, size=info.size),
            DeleteCondition(if_match=info.etag, last_modified=info.last_modified, size=0),
        ),
    }


@pytest.mark.parametrize("body", [SMALL, LARGE], ids=["inline", "file"])
async def test_conditional_delete_object(
    engine: Engine, engine_kind: EngineKind, engine_root: Path, bucket: str, body: bytes
) -> None:
    for name in _conditions(await put(engine, bucket, "probe", body)):
        info = await put(engine, bucket, name, body)
        holds, fails = _conditions(info)[name]
        with pytest.raises(errors.PreconditionFailed):
            await engine.delete_object(bucket, name, fails)
        assert await read(engine, bucket, name) == body, name  # still there, whole
        await engine.delete_object(bucket, name, holds)
        with pytest.raises(errors.NoSuchKey):
            await engine.head_object(bucket, name)
    await engine.delete_object(bucket, "probe")
    assert await keys_of(engine, bucket) == []
    assert leftover_files(engine_kind, engine_root) == []


async def test_conditional_delete_of_a_missing_key(engine: Engine, bucket: str) -> None:
    """As S3: If-Match needs an object (404 NoSuchKey); time and size alone hold for a missing key (a no-op)."""
    for condition in (DeleteCondition(if_match="*"), DeleteCondition(if_match='"0123"', size=0)):
        with pytest.raises(errors.NoSuchKey):
            await engine.delete_object(bucket, "missing", condition)
    await engine.delete_object(bucket, "missing", DeleteCondition(size=5))
    await engine.delete_object(bucket, "missing", DeleteCondition(last_modified=0.0, size=0))
    with pytest.raises(errors.NoSuchBucket):
        await engine.delete_object("nope", "k", DeleteCondition(if_match="*"))


async def test_conditional_delete_objects(
    engine: Engine, engine_kind: EngineKind, engine_root: Path, bucket: str
) -> None:
    infos = {key: await put(engine, bucket, key, LARGE if key in "ab" else SMALL) for key in "abcdef"}
    keys = ["a", "b", "c", "d", "e", "f", "missing", "gone-anyway"]
    conditions = [
        DeleteCondition(if_match=infos["a"].etag),  # holds
        DeleteCondition(if_match=infos["c"].etag),  # another object's ETag
        DeleteCondition(size=len(SMALL)),  # holds
        DeleteCondition(last_modified=infos["d"].last_modified - 5),
        None,  # unconditional
        DeleteCondition(last_modified=infos["f"].last_modified, size=len(SMALL)),  # holds
        DeleteCondition(if_match="*"),  # If-Match on a missing key
        DeleteCondition(size=1),  # size alone on a missing key holds
    ]
    results = await engine.delete_objects(
        bucket, [DeleteRequest(k, condition=c) for k, c in zip(keys, conditions, strict=True)]
    )
    kinds = [type(r).__name__ if not isinstance(r, DeleteResult) else None for r in results]
    assert kinds == [None, "PreconditionFailed", None, "PreconditionFailed", None, None, "NoSuchKey", None]
    assert await keys_of(engine, bucket) == ["b", "d"]
    assert await read(engine, bucket, "b") == LARGE
    if engine_kind.files is not None:
        assert len(leftover_files(engine_kind, engine_root)) == 1  # only b's body


async def test_conditional_deletes_racing_conditional_puts(engine: Engine, bucket: str) -> None:
    """Deletes and PUTs all conditional on the same ETag: exactly one of them wins, whatever the interleaving."""

    async def deleter(key: str, etag: str, delay: int) -> str:
        for _ in range(delay):
            await asyncio.sleep(0)
        try:
            await engine.delete_object(bucket, key, DeleteCondition(if_match=etag))
            return "deleted"
        except (errors.PreconditionFailed, errors.NoSuchKey):
            return "refused"

    async def writer(key: str, etag: str, data: bytes) -> str:
        try:
            await engine.put_object(bucket, key, chunks(data, 1024, pause=True), headers={}, if_match=etag)
            return "put"
        except (errors.PreconditionFailed, errors.NoSuchKey, errors.ConditionalRequestConflict):
            return "refused"

    for round_ in range(3):
        key = f"race-{round_}"
        etag = (await put(engine, bucket, key, b"original %d" % round_)).etag
        bodies = [bytes([i]) * (3000 + i) for i in range(8)]
        outcomes = await asyncio.gather(
            *(deleter(key, etag, round_ * 4 + i) for i in range(8)), *(writer(key, etag, b) for b in bodies)
        )
        winners = [o for o in outcomes if o != "refused"]
        assert len(winners) == 1, outcomes
        if winners == ["deleted"]:
            assert key not in await keys_of(engine, bucket)
        else:
            assert await read(engine, bucket, key) in bodies


async def test_open_survives_concurrent_delete(engine: Engine, bucket: str) -> None:
    """A reader that opened an object keeps reading it whole after a delete or overwrite."""
    await put(engine, bucket, "k", LARGE)
    opened = await engine.open_object(bucket, "k")
    await engine.delete_object(bucket, "k")
    assert b"".join([p async for p in opened.stream()]) == LARGE


async def test_concurrent_puts_to_one_key(
    engine: Engine, engine_kind: EngineKind, engine_root: Path, bucket: str
) -> None:
    bodies = [bytes([i]) * (200_000 + i * 7919) for i in range(6)] + [bytes([100 + i]) * 50 for i in range(4)]

    async def one(data: bytes) -> None:
        await engine.put_object(bucket, "contended", chunks(data, 16384, pause=True), headers={})

    await asyncio.gather(*(one(b) for b in bodies))
    got = await read(engine, bucket, "contended")
    assert got in bodies  # exactly one writer's body, whole
    head = await engine.head_object(bucket, "contended")
    assert (head.size, head.etag) == (len(got), hashlib.md5(got).hexdigest())
    assert await keys_of(engine, bucket) == ["contended"]
    assert len(leftover_files(engine_kind, engine_root)) <= 1  # the losers' bodies are reclaimed


async def test_concurrent_puts_to_many_keys(engine: Engine, bucket: str) -> None:
    bodies = {f"k{i:03d}": os.urandom(100 + i * 997) for i in range(60)}
    await asyncio.gather(*(put(engine, bucket, k, v) for k, v in bodies.items()))
    assert await keys_of(engine, bucket) == sorted(bodies)
    for key, data in bodies.items():
        assert await read(engine, bucket, key) == data


# ---------------------------------------------------------------------- listing


async def test_listing_basics(engine: Engine, bucket: str) -> None:
    keys = ["a", "a/b", "a/c/d", "a/c/e", "b", "b/x", "c", "é", "z", "😀", "\uffff"]
    for key in keys:
        await put(engine, bucket, key, b"x")
    by_bytes = sorted(keys, key=lambda k: k.encode())
    assert await keys_of(engine, bucket) == by_bytes

    page = await engine.list_objects(bucket, prefix="a/")
    assert [e.key for e in page.entries] == ["a/b", "a/c/d", "a/c/e"]
    assert (page.common_prefixes, page.is_truncated) == ([], False)

    page = await engine.list_objects(bucket, delimiter="/")
    assert [e.key for e in page.entries] == [k for k in by_bytes if "/" not in k]
    assert page.common_prefixes == ["a/", "b/"]

    page = await engine.list_objects(bucket, prefix="a/", delimiter="/")
    assert [e.key for e in page.entries] == ["a/b"]
    assert page.common_prefixes == ["a/c/"]

    page = await engine.list_objects(bucket, after="b")
    assert [e.key for e in page.entries] == by_bytes[by_bytes.index("b") + 1 :]

    entry = (await engine.list_objects(bucket, prefix="z")).entries[0]
    assert (entry.key, entry.size, entry.etag) == ("z", 1, hashlib.md5(b"x").hexdigest())
    assert entry.storage_class == "STANDARD" and entry.owner == OWNER


async def test_listing_pages(engine: Engine, bucket: str) -> None:
    for key in ["a/1", "a/2", "b", "c/1", "d"]:
        await put(engine, bucket, key, b"")
    items: list[str] = []
    after = ""
    pages = 0
    while True:
        page = await engine.list_objects(bucket, delimiter="/", after=after, max_keys=2)
        pages += 1
        got = [e.key for e in page.entries] + page.common_prefixes
        assert 0 < len(got) <= 2
        items += sorted(got)
        if not page.is_truncated:
            break
        assert page.next_marker == max(got)
        after = page.next_marker
    assert items == ["a/", "b", "c/", "d"]
    assert pages == 2
    # A marker inside a common prefix does not return that prefix again.
    page = await engine.list_objects(bucket, delimiter="/", after="a/1")
    assert ([e.key for e in page.entries], page.common_prefixes) == (["b", "d"], ["c/"])


async def test_listing_max_keys_zero(engine: Engine, bucket: str) -> None:
    await put(engine, bucket, "a", b"")
    page = await engine.list_objects(bucket, max_keys=0)
    assert (page.entries, page.common_prefixes, page.is_truncated) == ([], [], False)


async def test_listing_multichar_delimiter(engine: Engine, bucket: str) -> None:
    for key in ["x--y--z", "x--w", "x-y", "q"]:
        await put(engine, bucket, key, b"")
    page = await engine.list_objects(bucket, delimiter="--")
    assert [e.key for e in page.entries] == ["q", "x-y"]
    assert page.common_prefixes == ["x--"]
    page = await engine.list_objects(bucket, prefix="x--", delimiter="--")
    assert [e.key for e in page.entries] == ["x--w"]
    assert page.common_prefixes == ["x--y--"]


# ---------------------------------------------------------------------- persistence


async def test_reopen_persists(engine: Engine, engine_kind: EngineKind, engine_root: Path, bucket: str) -> None:
    if not engine_kind.persistent:
        pytest.skip("engine keeps nothing across restarts")
    await engine.create_bucket("other", OWNER, "eu-central-1")
    await put(engine, bucket, "small", SMALL, headers={"content-type": "text/x"}, checksum_algorithms=("CRC32",))
    await put(engine, bucket, "large", LARGE, storage_class="GLACIER")
    await put(engine, bucket, "gone", LARGE)
    await engine.delete_object(bucket, "gone")
    await engine.close()

    again = engine_kind.make(engine_root)
    await again.start()
    try:
        assert [(b.name, b.region) for b in await again.list_buckets()] == [(bucket, REGION), ("other", "eu-central-1")]
        assert await keys_of(again, bucket) == ["large", "small"]
        small = await again.head_object(bucket, "small")
        assert small.headers == {"content-type": "text/x"}
        assert small.checksums == {"CRC32": reference_checksums(SMALL)["CRC32"]}
        assert (await again.head_object(bucket, "large")).storage_class == "GLACIER"
        assert await read(again, bucket, "small") == SMALL
        assert await read(again, bucket, "large") == LARGE
        with pytest.raises(errors.NoSuchKey):
            await again.head_object(bucket, "gone")
    finally:
        await again.close()
        # The fixture closes `engine` once more: closing twice must be harmless.


# ---------------------------------------------------------------------- bucket tags

# The server keeps a bucket's tags as its "tagging" configuration document (coffer/server/tagging.py).
BUCKET_TAGS = {"cost-centre": "42", "empty": "", "team": "storage", "é": "ü"}


async def test_bucket_tags_document(engine: Engine, engine_kind: EngineKind, engine_root: Path, bucket: str) -> None:
    assert await engine.get_bucket_config(bucket, "tagging") is None
    await engine.put_bucket_config(bucket, "tagging", {"old": "1"})
    await engine.put_bucket_config(bucket, "tagging", BUCKET_TAGS)  # replaced whole
    await engine.put_bucket_config(bucket, "cors", [{"origins": ["*"]}])
    await engine.create_bucket("cleared", OWNER, REGION)
    await engine.put_bucket_config("cleared", "tagging", {"a": "1"})
    await engine.put_bucket_config("cleared", "tagging", None)
    # Deleting a bucket drops its tags: a new bucket of the same name has none.
    await engine.create_bucket("dropped", OWNER, REGION)
    await engine.put_bucket_config("dropped", "tagging", {"a": "1"})
    await engine.delete_bucket("dropped")
    with pytest.raises(errors.NoSuchBucket):
        await engine.put_bucket_config("dropped", "tagging", {"a": "1"})
    await engine.create_bucket("dropped", OWNER, REGION)

    async def check(eng: Engine) -> None:
        got = await eng.get_bucket_config(bucket, "tagging")
        assert got == BUCKET_TAGS and list(got) == list(BUCKET_TAGS)  # the order the server stored
        assert await eng.get_bucket_config(bucket, "cors") == [{"origins": ["*"]}]
        assert await eng.get_bucket_config("cleared", "tagging") is None
        assert await eng.get_bucket_config("dropped", "tagging") is None
        with pytest.raises(errors.NoSuchBucket):
            await eng.get_bucket_config("nope", "tagging")

    await check(engine)
    if not engine_kind.persistent:
        return
    await engine.close()
    again = engine_kind.make(engine_root)
    await again.start()
    try:
        await check(again)
    finally:
        await again.close()


# ---------------------------------------------------------------------- tagging


async def test_tags_stored_with_put_and_replaced(engine: Engine, bucket: str) -> None:
    put_info = await put(engine, bucket, "k", LARGE, tags={"a": "1", "b": ""})
    assert put_info.tags == {"a": "1", "b": ""}
    head = await engine.head_object(bucket, "k")
    assert head.tags == {"a": "1", "b": ""}
    updated = await engine.put_object_tagging(bucket, "k", {"c": "3"})
    assert updated.tags == {"c": "3"}
    after = await engine.head_object(bucket, "k")
    # Only the tags change: body, ETag, Last-Modified and the rest stay.
    assert after.tags == {"c": "3"}
    assert (after.etag, after.last_modified, after.size, after.checksums) == (
        head.etag,
        head.last_modified,
        head.size,
        head.checksums,
    )
    assert await read(engine, bucket, "k") == LARGE
    assert (await engine.open_object(bucket, "k")).info.tags == {"c": "3"}
    await engine.put_object_tagging(bucket, "k", {})
    assert (await engine.head_object(bucket, "k")).tags == {}
    assert (await put(engine, bucket, "plain", SMALL)).tags == {}


async def test_tagging_a_missing_object(engine: Engine, bucket: str) -> None:
    with pytest.raises(errors.NoSuchKey):
        await engine.put_object_tagging(bucket, "nope", {"a": "1"})
    with pytest.raises(errors.NoSuchBucket):
        await engine.put_object_tagging("no-such-bucket", "k", {"a": "1"})


async def test_read_after_retag_sees_new_tags(engine: Engine, bucket: str) -> None:
    """A read cache (disk-cached) must never answer with the tags from before an update."""
    await put(engine, bucket, "hot", SMALL, tags={"v": "1"})
    for i in range(2, 5):
        assert (await engine.open_object(bucket, "hot")).info.tags == {"v": str(i - 1)}
        await engine.put_object_tagging(bucket, "hot", {"v": str(i)})
        assert (await engine.head_object(bucket, "hot")).tags == {"v": str(i)}


async def test_overwrite_takes_the_new_puts_tags(engine: Engine, bucket: str) -> None:
    await put(engine, bucket, "k", SMALL, tags={"old": "1"})
    await engine.put_object_tagging(bucket, "k", {"old": "2"})
    await put(engine, bucket, "k", MEDIUM, tags={"new": "1"})
    assert (await engine.head_object(bucket, "k")).tags == {"new": "1"}
    await put(engine, bucket, "k", SMALL)
    assert (await engine.head_object(bucket, "k")).tags == {}


async def test_retag_racing_puts_never_mixes_versions(engine: Engine, bucket: str) -> None:
    """Each update applies to whatever object is current at that instant: the final
    object's tags are either its own put's or a later retag's, never a replaced object's."""
    await put(engine, bucket, "k", SMALL, tags={"put": "0"})

    async def writer(i: int) -> None:
        await engine.put_object(
            bucket, "k", chunks(bytes([i]) * (2000 + i), 512, pause=True), headers={}, tags={"put": str(i)}
        )

    async def retag(i: int) -> None:
        await asyncio.sleep(0)
        try:
            await engine.put_object_tagging(bucket, "k", {"retag": str(i)})
        except errors.NoSuchKey:
            pass

    await asyncio.gather(*(writer(i) for i in range(1, 6)), *(retag(i) for i in range(1, 6)))
    got = await read(engine, bucket, "k")
    tags = (await engine.head_object(bucket, "k")).tags
    assert tags == {"put": str(got[0])} or set(tags) == {"retag"}
    # A final put always wins over earlier retags.
    await put(engine, bucket, "k", SMALL, tags={"put": "last"})
    assert (await engine.head_object(bucket, "k")).tags == {"put": "last"}


async def test_copy_tags_copy_or_replace(engine: Engine, bucket: str) -> None:
    await put(engine, bucket, "src", LARGE, tags={"s": "1"})
    copied = await engine.copy_object(bucket, "src", bucket, "same", headers=None)
    assert copied.tags == {"s": "1"}
    assert (await engine.head_object(bucket, "same")).tags == {"s": "1"}
    await engine.copy_object(bucket, "src", bucket, "new", headers=None, tags={"d": "2"})
    assert (await engine.head_object(bucket, "new")).tags == {"d": "2"}
    await engine.copy_object(bucket, "src", bucket, "none", headers=None, tags={})
    assert (await engine.head_object(bucket, "none")).tags == {}
    # Copy onto itself with new tags: the body stays.
    await engine.copy_object(bucket, "src", bucket, "src", headers={"content-type": "a/b"}, tags={"x": "y"})
    assert (await engine.head_object(bucket, "src")).tags == {"x": "y"}
    assert await read(engine, bucket, "src") == LARGE


async def test_multipart_upload_tags_apply_at_completion(engine: Engine, bucket: str) -> None:
    upload = await engine.create_multipart_upload(bucket, "mp", headers={}, tags={"m": "1", "n": "2"})
    assert (await engine.get_upload(bucket, "mp", upload.upload_id)).tags == {"m": "1", "n": "2"}
    part = await engine.upload_part(bucket, "mp", upload.upload_id, 1, chunks(MEDIUM))
    info = await engine.complete_multipart_upload(bucket, "mp", upload.upload_id, [CompletedPart(1, part.etag)])
    assert info.tags == {"m": "1", "n": "2"}
    assert (await engine.head_object(bucket, "mp")).tags == {"m": "1", "n": "2"}
    await engine.put_object_tagging(bucket, "mp", {"m": "3"})
    assert await read(engine, bucket, "mp") == MEDIUM
    assert (await engine.head_object(bucket, "mp")).parts_count == 1


async def test_tags_survive_restart(engine: Engine, engine_kind: EngineKind, engine_root: Path, bucket: str) -> None:
    if not engine_kind.persistent:
        pytest.skip("engine keeps nothing across restarts")
    await put(engine, bucket, "put", SMALL, tags={"a": "1"})
    await put(engine, bucket, "retagged", LARGE, tags={"a": "1"})
    await engine.put_object_tagging(bucket, "retagged", {"b": "2", "é": "ü"})
    await put(engine, bucket, "cleared", SMALL, tags={"a": "1"})
    await engine.put_object_tagging(bucket, "cleared", {})
    upload = await engine.create_multipart_upload(bucket, "open-upload", headers={}, tags={"u": "1"})
    done = await engine.create_multipart_upload(bucket, "mp", headers={}, tags={"m": "1"})
    part = await engine.upload_part(bucket, "mp", done.upload_id, 1, chunks(MEDIUM))
    await engine.complete_multipart_upload(bucket, "mp", done.upload_id, [CompletedPart(1, part.etag)])
    await engine.close()

    again = engine_kind.make(engine_root)
    await again.start()
    try:
        assert (await again.head_object(bucket, "put")).tags == {"a": "1"}
        assert (await again.head_object(bucket, "retagged")).tags == {"b": "2", "é": "ü"}
        assert await read(again, bucket, "retagged") == LARGE
        assert (await again.head_object(bucket, "cleared")).tags == {}
        assert (await again.head_object(bucket, "mp")).tags == {"m": "1"}
        assert (await again.get_upload(bucket, "open-upload", upload.upload_id)).tags == {"u": "1"}
        # Retagging after recovery works on the recovered object.
        await again.put_object_tagging(bucket, "put", {"c": "3"})
        assert (await again.head_object(bucket, "put")).tags == {"c": "3"}
    finally:
        await again.close()
