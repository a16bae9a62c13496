"""Bodies the server stores transformed (encrypted, issue 12): the storage API contract
(coffer/storage/api.py: Encoding, LogicalBody, ObjectInfo.encoding/stored_size), run against
every engine kind of tests/engines.py; the persistent ones are also reopened.

The engine stores the bytes it receives and reports what ``Encoding.logical`` says; it never
looks inside the document. These tests "encode" with a reversible toy transform that makes
the stored body longer than the logical one (a 16-byte header and trailer around XORed bytes),
so stored and logical coordinates differ.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from coffer.storage import errors
from coffer.storage.api import (
    VERSIONING_ENABLED,
    Encoding,
    Engine,
    LogicalBody,
    ObjectInfo,
    PutDigests,
)
from coffer.storage.disk import records
from coffer.storage.memory import MemoryEngine
from coffer.storage.memory.codec import object_from, object_meta
from tests.engines import ENGINE_OWNER, EngineKind, crash_memory, persistent_memory, put, read, write_old_log

OWNER = ENGINE_OWNER
REGION = "us-east-1"
DOC: dict[str, Any] = {"alg": "toy", "key-id": "k1", "iv": "00" * 12}
SMALL = b"small body"  # inline in the disk engine (threshold 1024 in tests/engines.py)
LARGE = bytes(range(256)) * 1200  # 300 KiB: a blob file in the disk engine
HUGE = bytes(range(251)) * 5000  # ~1.2 MiB: several memory engine chunks (1 MiB each)


_XOR = bytes(b ^ 0x5A for b in range(256))


def encode(data: bytes) -> bytes:
    return b"H" * 16 + data.translate(_XOR) + b"T" * 16


@dataclass
class Toy:
    """An Encoding for ``data`` that records what the engine handed its callbacks."""

    data: bytes
    fail: bool = False
    calls: list[str] = field(default_factory=list)
    seen: list[PutDigests] = field(default_factory=list)

    @property
    def stored(self) -> bytes:
        return encode(self.data)

    @property
    def logical_body(self) -> LogicalBody:
        return LogicalBody(len(self.data), hashlib.md5(self.data).hexdigest(), {"CRC32": b"\x01\x02\x03\x04"})

    def verify(self, digests: PutDigests) -> None:
        self.calls.append("verify")
        self.seen.append(digests)

    def logical(self, digests: PutDigests) -> LogicalBody:
        self.calls.append("logical")
        self.seen.append(digests)
        if self.fail:
            raise errors.BadDigest("the toy refuses")
        return self.logical_body

    def encoding(self, document: dict[str, Any] | None = None) -> Encoding:
        return Encoding(dict(DOC if document is None else document), self.logical)


async def put_encoded(engine: Engine, bucket: str, key: str, toy: Toy, **kwargs: Any) -> ObjectInfo:
    return await put(engine, bucket, key, toy.stored, encoding=toy.encoding(), verify=toy.verify, **kwargs)


async def read_range(
    engine: Engine, bucket: str, key: str, start: int = 0, end: int | None = None, **kwargs: Any
) -> tuple[ObjectInfo, bytes]:
    opened = await engine.open_object(bucket, key, **kwargs)
    try:
        return opened.info, b"".join([piece async for piece in opened.stream(start, end)])
    finally:
        opened.close()


def _files(kind: EngineKind, root: Path) -> list[str]:
    return kind.files(root) if kind.files is not None else []


def assert_logical(info: ObjectInfo, toy: Toy) -> None:
    logical = toy.logical_body
    assert (info.size, info.etag, info.checksums) == (logical.size, logical.etag, logical.checksums)
    assert info.checksum_type == "FULL_OBJECT"
    assert (info.encoding, info.stored_size) == (DOC, len(toy.stored))


async def assert_serves(engine: Engine, bucket: str, key: str, toy: Toy, **kwargs: Any) -> None:
    """Reads report the logical body and stream the stored bytes, in stored coordinates."""
    stored = toy.stored
    assert_logical(await engine.head_object(bucket, key, **kwargs), toy)
    info, whole = await read_range(engine, bucket, key, **kwargs)
    assert_logical(info, toy)
    assert whole == stored  # end defaults to stored_size, not size
    n = len(stored)
    for start, end in ((0, 5), (3, 40), (n - 20, n), (len(toy.data), n), (max(len(toy.data) - 1, 0), n - 1), (n, n)):
        assert (await read_range(engine, bucket, key, start, end, **kwargs))[1] == stored[start:end]
    # From an offset to the (default) end: the stored bytes past the logical size too.
    assert (await read_range(engine, bucket, key, n - 17, **kwargs))[1] == stored[n - 17 :]


# ---------------------------------------------------------------------- put, head, open, list


@pytest.mark.parametrize("data", [SMALL, LARGE, HUGE, b""], ids=["inline", "file", "chunks", "empty"])
async def test_put_reports_the_logical_body_and_serves_the_stored_bytes(
    engine: Engine, plain: str, data: bytes
) -> None:
    toy = Toy(data)
    info = await put_encoded(engine, plain, "k", toy, tags={"t": "1"}, headers={"content-type": "a/b"})
    assert_logical(info, toy)
    assert (info.tags, info.headers) == ({"t": "1"}, {"content-type": "a/b"})
    # verify first, then logical, both with the stored bytes' size (not hashed: nobody reads it).
    assert toy.calls == ["verify", "logical"]
    for digests in toy.seen:
        assert (digests.size, digests.md5, digests.checksums) == (len(toy.stored), b"", {})
    await assert_serves(engine, plain, "k", toy)
    await assert_serves(engine, plain, "k", toy)  # again: the disk-cached kind answers from its cache
    listed = (await engine.list_objects(plain)).entries
    assert [(e.key, e.size, e.etag) for e in listed] == [("k", len(data), toy.logical_body.etag)]
    versions = (await engine.list_object_versions(plain)).entries
    assert [(e.key, e.size, e.etag) for e in versions] == [("k", len(data), toy.logical_body.etag)]


async def test_put_without_encoding_is_unchanged(engine: Engine, plain: str) -> None:
    info = await put(engine, plain, "k", LARGE)
    assert (info.encoding, info.stored_size, info.size) == (None, None, len(LARGE))
    head = await engine.head_object(plain, "k")
    assert (head.encoding, head.stored_size, head.etag) == (None, None, hashlib.md5(LARGE).hexdigest())
    assert await read(engine, plain, "k") == LARGE


async def test_part_number_one_of_an_encoded_object(engine: Engine, plain: str) -> None:
    for key, data in (("small", SMALL), ("large", LARGE)):
        toy = Toy(data)
        await put_encoded(engine, plain, key, toy)
        head = await engine.head_object(plain, key, part_number=1)
        assert_logical(head, toy)
        assert head.part is not None and (head.part.part_number, head.part.offset) == (1, 0)
        info, whole = await read_range(engine, plain, key, part_number=1)
        assert_logical(info, toy)
        assert whole == toy.stored
        with pytest.raises(errors.InvalidPart):
            await engine.head_object(plain, key, part_number=2)


@pytest.mark.parametrize("data", [SMALL, LARGE], ids=["inline", "file"])
async def test_logical_raising_stores_nothing(
    engine: Engine, engine_kind: EngineKind, engine_root: Path, plain: str, data: bytes
) -> None:
    before = _files(engine_kind, engine_root)
    toy = Toy(data, fail=True)
    with pytest.raises(errors.BadDigest):
        await put_encoded(engine, plain, "k", toy)
    assert toy.calls == ["verify", "logical"]
    with pytest.raises(errors.NoSuchKey):
        await engine.head_object(plain, "k")
    assert (await engine.list_objects(plain)).entries == []
    assert _files(engine_kind, engine_root) == before
    # Over an existing version: that one stays as it was.
    await put(engine, plain, "k", b"old")
    before = _files(engine_kind, engine_root)
    with pytest.raises(errors.BadDigest):
        await put_encoded(engine, plain, "k", Toy(data, fail=True))
    head = await engine.head_object(plain, "k")
    assert (head.size, head.encoding, head.stored_size) == (3, None, None)
    assert await read(engine, plain, "k") == b"old"
    assert _files(engine_kind, engine_root) == before


async def test_verify_raising_never_calls_logical(engine: Engine, plain: str) -> None:
    toy = Toy(SMALL)

    def refuse(_digests: PutDigests) -> None:
        raise errors.BadDigest("no")

    with pytest.raises(errors.BadDigest):
        await put(engine, plain, "k", toy.stored, encoding=toy.encoding(), verify=refuse)
    assert toy.calls == []
    with pytest.raises(errors.NoSuchKey):
        await engine.head_object(plain, "k")


async def test_encoded_and_plain_versions_side_by_side(engine: Engine, versioned: str) -> None:
    first = await put(engine, versioned, "k", b"plain one")
    toy = Toy(LARGE)
    second = await put_encoded(engine, versioned, "k", toy)
    small = Toy(SMALL)
    third = await put_encoded(engine, versioned, "k", small)
    fourth = await put(engine, versioned, "k", b"plain four")
    await assert_serves(engine, versioned, "k", toy, version_id=second.version_id)
    await assert_serves(engine, versioned, "k", small, version_id=third.version_id)
    for plain_version, data in ((first, b"plain one"), (fourth, b"plain four")):
        info, body = await read_range(engine, versioned, "k", version_id=plain_version.version_id)
        assert (info.encoding, info.stored_size, body) == (None, None, data)
    latest, body = await read_range(engine, versioned, "k")
    assert (latest.version_id, latest.encoding, body) == (fourth.version_id, None, b"plain four")
    listed = (await engine.list_object_versions(versioned)).entries
    assert [(e.version_id, e.size) for e in listed] == [
        (fourth.version_id, 10),
        (third.version_id, len(SMALL)),
        (second.version_id, len(LARGE)),
        (first.version_id, 9),
    ]
    # Deleting the plain latest makes the encoded one latest: served as stored.
    await engine.delete_object(versioned, "k", version_id=fourth.version_id)
    await assert_serves(engine, versioned, "k", small)
    assert [(e.key, e.size) for e in (await engine.list_objects(versioned)).entries] == [("k", len(SMALL))]


# ---------------------------------------------------------------------- metadata changes keep the encoding


async def test_tagging_and_acl_keep_the_encoding(engine: Engine, plain: str, versioned: str) -> None:
    for bucket in (plain, versioned):
        for key, data in (("small", SMALL), ("large", LARGE)):
            toy = Toy(data)
            info = await put_encoded(engine, bucket, key, toy)
            await read_range(engine, bucket, key)  # fill the disk engine's read cache
            tagged = await engine.put_object_tagging(bucket, key, {"a": "b"})
            assert_logical(tagged, toy)
            changed = await engine.put_object_acl(bucket, key, {"owner": OWNER, "grants": []})
            assert_logical(changed, toy)
            await engine.put_object_tagging(bucket, key, {"c": "d"}, version_id=info.version_id)
            await assert_serves(engine, bucket, key, toy)
            head = await engine.head_object(bucket, key)
            assert (head.tags, head.acl) == ({"c": "d"}, {"owner": OWNER, "grants": []})


async def test_object_lock_changes_keep_the_encoding(engine: Engine) -> None:
    await engine.create_bucket("locked", OWNER, REGION, object_lock=True)
    toy = Toy(LARGE)
    info = await put_encoded(engine, "locked", "k", toy)
    held = await engine.put_object_legal_hold("locked", "k", True, version_id=info.version_id)
    assert_logical(held, toy)
    retained = await engine.put_object_retention("locked", "k", "GOVERNANCE", 4102444800.0, version_id=info.version_id)
    assert_logical(retained, toy)
    await assert_serves(engine, "locked", "k", toy, version_id=info.version_id)
    head = await engine.head_object("locked", "k")
    assert (head.lock.mode, head.lock.legal_hold) == ("GOVERNANCE", True)


# ---------------------------------------------------------------------- copies refuse an encoded source


async def test_copies_of_an_encoded_source_are_refused(
    engine: Engine, engine_kind: EngineKind, engine_root: Path, plain: str, versioned: str
) -> None:
    small, large = Toy(SMALL), Toy(LARGE)
    await put_encoded(engine, plain, "small", small)
    source = await put_encoded(engine, versioned, "large", large)
    await put(engine, versioned, "large", b"a plain latest")  # the encoded one by version id
    upload = await engine.create_multipart_upload(plain, "mp", headers={})
    before = _files(engine_kind, engine_root)
    for src_bucket, src_key, src_version in ((plain, "small", None), (versioned, "large", source.version_id)):
        checked: list[ObjectInfo] = []
        with pytest.raises(errors.InvalidRequest):
            await engine.copy_object(
                src_bucket,
                src_key,
                plain,
                "copy",
                headers=None,
                src_version_id=src_version,
                check_source=checked.append,
            )
        with pytest.raises(errors.InvalidRequest):
            await engine.copy_object(
                src_bucket, src_key, src_bucket, src_key, headers={"x": "y"}, src_version_id=src_version
            )
        with pytest.raises(errors.InvalidRequest):
            await engine.upload_part_copy(
                plain, "mp", upload.upload_id, 1, src_bucket, src_key, src_version_id=src_version
            )
        with pytest.raises(errors.InvalidRequest):
            await engine.upload_part_copy(
                plain, "mp", upload.upload_id, 2, src_bucket, src_key, src_range=(0, 3), src_version_id=src_version
            )
    with pytest.raises(errors.NoSuchKey):
        await engine.head_object(plain, "copy")
    assert (await engine.list_parts(plain, "mp", upload.upload_id)).parts == []
    assert _files(engine_kind, engine_root) == before
    # The sources are untouched.
    await assert_serves(engine, plain, "small", small)
    await assert_serves(engine, versioned, "large", large, version_id=source.version_id)
    assert len((await engine.list_object_versions(versioned)).entries) == 2
    # A plain version of the same key still copies.
    copied = await engine.copy_object(versioned, "large", plain, "copy", headers=None)
    assert (copied.encoding, copied.stored_size) == (None, None)
    assert await read(engine, plain, "copy") == b"a plain latest"


# ---------------------------------------------------------------------- persistence


async def test_encoding_survives_reopen(
    engine: Engine, engine_kind: EngineKind, engine_root: Path, versioned: str
) -> None:
    if not engine_kind.persistent:
        pytest.skip("engine keeps nothing across restarts")
    small, large = Toy(SMALL), Toy(LARGE)
    v1 = await put_encoded(engine, versioned, "k", small)
    v2 = await put_encoded(engine, versioned, "k", large)
    await put(engine, versioned, "plain", b"p")
    await engine.put_object_tagging(versioned, "k", {"t": "1"}, version_id=v1.version_id)
    await engine.close()

    again = engine_kind.make(engine_root)
    await again.start()
    try:
        await assert_serves(again, versioned, "k", small, version_id=v1.version_id)
        await assert_serves(again, versioned, "k", large, version_id=v2.version_id)
        await assert_serves(again, versioned, "k", large)
        head = await again.head_object(versioned, "plain")
        assert (head.encoding, head.stored_size) == (None, None)
        await again.put_object_acl(versioned, "k", {"owner": OWNER, "grants": []}, version_id=v2.version_id)
        await again.close()
        third = engine_kind.make(engine_root)
        await third.start()
        try:
            await assert_serves(third, versioned, "k", large)
            assert (await third.head_object(versioned, "k", version_id=v1.version_id)).tags == {"t": "1"}
        finally:
            await third.close()
    finally:
        await again.close()


def test_memory_log_and_snapshot_keep_the_encoding(tmp_path: Path) -> None:
    """No shutdown snapshot: the PUT_OBJECT and SET_TAGS records alone bring it back; then a snapshot."""
    small, large = Toy(SMALL), Toy(HUGE)

    async def scenario() -> None:
        e = persistent_memory(tmp_path)
        await e.start()
        await e.create_bucket("b", OWNER, REGION)
        await e.put_bucket_versioning("b", VERSIONING_ENABLED)
        v1 = await put_encoded(e, "b", "k", small)
        await put_encoded(e, "b", "k", large)
        await e.put_object_tagging("b", "k", {"t": "1"}, version_id=v1.version_id)
        crash_memory(e)

        e = persistent_memory(tmp_path)
        await e.start()
        try:
            await assert_serves(e, "b", "k", small, version_id=v1.version_id)
            await assert_serves(e, "b", "k", large)
            await e.snapshot()
        finally:
            crash_memory(e)

        e = persistent_memory(tmp_path)
        await e.start()
        try:
            await assert_serves(e, "b", "k", small, version_id=v1.version_id)
            await assert_serves(e, "b", "k", large)
            assert (await e.head_object("b", "k", version_id=v1.version_id)).tags == {"t": "1"}
        finally:
            await e.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------------- memory engine: accounting and the codec


def test_memory_charges_the_stored_length() -> None:
    async def scenario() -> None:
        e = MemoryEngine(max_memory=1 << 30)
        await e.start()
        try:
            await e.create_bucket("b", OWNER, REGION)
            # A logical body of 10 bytes stored as 300 KiB: the memory held is what counts.
            toy = Toy(LARGE)
            await put(e, "b", "k", toy.stored, encoding=Encoding(DOC, lambda _d: LogicalBody(10, "e" * 32, {})))
            assert e.stats.used_bytes >= len(toy.stored)
        finally:
            await e.close()

    asyncio.run(scenario())


def _info(**kwargs: Any) -> ObjectInfo:
    return ObjectInfo("b", "k", 3, "e" * 32, 2.0, **kwargs)


def test_memory_codec_positions_of_the_encoding() -> None:
    # Without an encoding, records stay as short as before.
    assert len(object_meta(_info(), OWNER, None, ())) == 13
    assert len(object_meta(_info(acl={"a": 1}), OWNER, None, ())) == 18
    meta = object_meta(_info(encoding=DOC, stored_size=35), OWNER, None, ())
    assert len(meta) == 20 and (meta[18], meta[19]) == (DOC, 35)
    info = object_from(json.loads(json.dumps(meta)))[0]
    assert (info.encoding, info.stored_size, info.acl, info.size) == (DOC, 35, None, 3)
    # Older records (up to 18 positions: the ACL at 17) decode with no encoding.
    base: list[Any] = ["b", "k", 3, "e" * 32, 2.0, "null", "STANDARD", OWNER, {}, {}, "FULL_OBJECT", None, []]
    for extra in ([], [{"x": "y"}], [{}, None, 0, None], [{}, None, 0, None, {"owner": OWNER}]):
        info = object_from([*base, *extra])[0]
        assert (info.encoding, info.stored_size) == (None, None)
    assert object_from([*base, {}, None, 0, None, {"owner": OWNER}])[0].acl == {"owner": OWNER}
    # A completed upload's answer (no parts) is unaffected.
    answer = object_meta(_info(parts_count=3), "", None, None)
    assert len(answer) == 17 and object_from(answer)[0].encoding is None


def test_memory_replays_an_old_put_record_with_an_acl(tmp_path: Path) -> None:
    """A PUT_OBJECT record of the format before encodings (18 positions) replays as stored as sent."""
    from coffer.storage.memory.wal import CREATE_BUCKET, PUT_OBJECT, Record

    meta: list[Any] = ["old", "k", 3, "e" * 32, 2.0, "null", "STANDARD", OWNER, {}, {}, "FULL_OBJECT", None, []]
    meta += [{}, None, 0, None, {"owner": OWNER, "grants": []}]
    write_old_log(
        tmp_path,
        [
            Record(CREATE_BUCKET, {"name": "old", "created": 1.0, "owner": OWNER, "region": REGION}),
            Record(PUT_OBJECT, meta, (b"abc",)),
        ],
    )

    async def scenario() -> None:
        e = persistent_memory(tmp_path)
        await e.start()
        try:
            head = await e.head_object("old", "k")
            assert (head.encoding, head.stored_size, head.acl) == (None, None, {"owner": OWNER, "grants": []})
            assert await read(e, "old", "k") == b"abc"
        finally:
            await e.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------------- disk engine: the extra column


def test_disk_extra_holds_the_encoding_only_when_set() -> None:
    """Rows stored as sent stay as before (no "e"/"z" key): no migration, older code reads them."""
    doc = json.loads(records.encode_extra(_info(), False))
    assert "e" not in doc and "z" not in doc
    doc = json.loads(records.encode_extra(_info(encoding=DOC, stored_size=35), False))
    assert (doc["e"], doc["z"]) == (DOC, 35)


async def test_disk_rows_hold_the_logical_size(tmp_path: Path) -> None:
    from coffer.storage.disk import DiskEngine

    e = DiskEngine(tmp_path, fsync=False, inline_threshold=1024)
    await e.start()
    try:
        await e.create_bucket("b", OWNER, REGION)
        toy = Toy(LARGE)
        await put_encoded(e, "b", "enc", toy)
        await put(e, "b", "plain", b"p")
        rows = e.meta.read(lambda c: c.execute("SELECT key, size, extra FROM objects ORDER BY key").fetchall())
        (enc_key, enc_size, enc_extra), (plain_key, plain_size, plain_extra) = rows
        assert (bytes(enc_key), enc_size) == (b"enc", len(LARGE))
        assert (json.loads(enc_extra)["e"], json.loads(enc_extra)["z"]) == (DOC, len(toy.stored))
        assert (bytes(plain_key), plain_size) == (b"plain", 1)
        assert "e" not in json.loads(plain_extra) and "z" not in json.loads(plain_extra)
        # The bucket's totals count the logical size.
        assert (await e.storage_stats()).bytes == len(LARGE) + 1
    finally:
        await e.close()
