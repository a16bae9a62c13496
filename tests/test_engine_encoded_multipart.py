"""Multipart uploads the server stores transformed (encrypted, issue 12): the storage API
contract (coffer/storage/api.py: UploadInfo.encoding, upload_part(encoding=), PartInfo.stored_size,
ObjectPart.stored_offset/stored_size), run against every engine kind of tests/engines.py; the
persistent ones are also reopened.

Each part is "encoded" with the toy transform of tests/test_engine_encoding.py (stored 32 bytes
longer than its data) and reports logical values the test chooses: a logical size of 5 MiB for a
part that stores a few KiB proves the engine applies S3's part size minimum to logical sizes,
and stored and logical coordinates differ everywhere.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from coffer import checksums
from coffer.storage import errors
from coffer.storage.api import (
    MIN_PART_SIZE,
    CompletedPart,
    Encoding,
    Engine,
    LogicalBody,
    ObjectInfo,
    ObjectPart,
    PutDigests,
    UploadInfo,
)
from coffer.storage.memory.codec import object_from, object_meta
from coffer.storage.memory.wal import CREATE_BUCKET, CREATE_UPLOAD, PUT_PART, Record
from tests.engines import ENGINE_OWNER, EngineKind, crash_memory, persistent_memory, put, read, write_old_log
from tests.helpers import chunks
from tests.test_engine_encoding import encode, read_range

OWNER = ENGINE_OWNER
REGION = "us-east-1"
DOC: dict[str, Any] = {"alg": "toy", "key-id": "k1", "base-iv": "00" * 12}
PART_DOC: dict[str, Any] = {"ignored": True}  # a part's document: the upload's counts


@dataclass
class PartToy:
    """One part's data, the logical values it reports and what the engine handed its callback."""

    number: int
    data: bytes
    logical_size: int
    fail: bool = False
    calls: list[PutDigests] = field(default_factory=list)

    @property
    def stored(self) -> bytes:
        return encode(self.data)

    @property
    def etag(self) -> str:
        return hashlib.md5(b"logical" + self.data).hexdigest()  # never the stored bytes' md5

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(b"logical" + self.data).digest()

    def logical(self, digests: PutDigests) -> LogicalBody:
        self.calls.append(digests)
        if self.fail:
            raise errors.BadDigest("the toy refuses")
        return LogicalBody(self.logical_size, self.etag, {"SHA256": self.sha256})

    def encoding(self) -> Encoding:
        return Encoding(dict(PART_DOC), self.logical)

    def completed(self) -> CompletedPart:
        return CompletedPart(self.number, self.etag, {"SHA256": base64.b64encode(self.sha256).decode()})


def toys() -> list[PartToy]:
    """Part 1 a disk blob file, part 2 inline in the disk engine, part 3 (last, small) a file."""
    return [
        PartToy(1, bytes(range(256)) * 1200, MIN_PART_SIZE),
        PartToy(2, b"second part", MIN_PART_SIZE + 7),
        PartToy(3, bytes(range(7, 250)) * 9, 1000),
    ]


async def create(engine: Engine, bucket: str, key: str, **kwargs: Any) -> UploadInfo:
    return await engine.create_multipart_upload(
        bucket, key, headers={"content-type": "a/b"}, checksum_algorithm="SHA256", encoding=dict(DOC), **kwargs
    )


async def upload(engine: Engine, upload_info: UploadInfo, toy: PartToy) -> Any:
    return await engine.upload_part(
        upload_info.bucket,
        upload_info.key,
        upload_info.upload_id,
        toy.number,
        chunks(toy.stored, 65536),
        encoding=toy.encoding(),
    )


def assert_part_info(part: Any, toy: PartToy) -> None:
    assert (part.part_number, part.size, part.etag, part.checksums) == (
        toy.number,
        toy.logical_size,
        toy.etag,
        {"SHA256": toy.sha256},
    )
    assert part.stored_size == len(toy.stored)


def expected_object(parts: list[PartToy]) -> tuple[int, str, dict[str, bytes], int]:
    """(size, ETag, checksums, stored size) S3's rules give the logical parts."""
    size = sum(p.logical_size for p in parts)
    etag = hashlib.md5(b"".join(bytes.fromhex(p.etag) for p in parts)).hexdigest() + f"-{len(parts)}"
    checksum = hashlib.sha256(b"".join(p.sha256 for p in parts)).digest()
    return size, etag, {"SHA256": checksum}, sum(len(p.stored) for p in parts)


def assert_object(info: ObjectInfo, parts: list[PartToy]) -> None:
    size, etag, sums, stored = expected_object(parts)
    assert (info.size, info.etag, info.checksums, info.checksum_type) == (size, etag, sums, "COMPOSITE")
    assert (info.encoding, info.stored_size, info.parts_count) == (DOC, stored, len(parts))


def expected_parts(parts: list[PartToy]) -> list[ObjectPart]:
    out, offset, stored = [], 0, 0
    for p in parts:
        out.append(ObjectPart(p.number, offset, p.logical_size, p.etag, {"SHA256": p.sha256}, stored, len(p.stored)))
        offset += p.logical_size
        stored += len(p.stored)
    return out


async def assert_serves(engine: Engine, bucket: str, key: str, parts: list[PartToy], **kwargs: Any) -> None:
    """Reads report the logical object and stream the parts' stored bytes, in stored coordinates."""
    stored = b"".join(p.stored for p in parts)
    assert_object(await engine.head_object(bucket, key, **kwargs), parts)
    info, whole = await read_range(engine, bucket, key, **kwargs)
    assert_object(info, parts)
    assert whole == stored  # end defaults to stored_size
    n = len(stored)
    first = len(parts[0].stored)
    for start, end in ((0, 5), (first - 3, first + 20), (first + 1, n - 1), (n - 10, n), (n, n)):
        assert (await read_range(engine, bucket, key, start, end, **kwargs))[1] == stored[start:end]
    assert (await read_range(engine, bucket, key, first - 1, **kwargs))[1] == stored[first - 1 :]
    wanted = expected_parts(parts)
    for part in wanted:
        head = await engine.head_object(bucket, key, part_number=part.part_number, **kwargs)
        assert head.part == part
        opened, body = await read_range(
            engine,
            bucket,
            key,
            part.stored_offset or 0,
            (part.stored_offset or 0) + (part.stored_size or 0),
            part_number=part.part_number,
            **kwargs,
        )
        assert opened.part == part
        assert body == parts[part.part_number - 1].stored
    page = await engine.list_object_parts(bucket, key, **kwargs)
    assert page.parts == wanted
    page = await engine.list_object_parts(bucket, key, marker=1, max_parts=1, **kwargs)
    assert (page.parts, page.is_truncated) == (wanted[1:2], True)


async def complete(engine: Engine, upload_info: UploadInfo, parts: list[PartToy]) -> ObjectInfo:
    return await engine.complete_multipart_upload(
        upload_info.bucket, upload_info.key, upload_info.upload_id, [p.completed() for p in parts]
    )


def _files(kind: EngineKind, root: Path) -> list[str]:
    return kind.files(root) if kind.files is not None else []


# ---------------------------------------------------------------------- the whole path


@pytest.mark.parametrize("versioning", [False, True], ids=["plain", "versioned"])
async def test_encrypted_upload_reports_logical_values_and_serves_stored_bytes(
    engine: Engine, plain: str, versioned: str, versioning: bool
) -> None:
    bucket = versioned if versioning else plain
    made = await create(engine, bucket, "k", tags={"t": "1"})
    assert made.encoding == DOC
    assert (await engine.get_upload(bucket, "k", made.upload_id)).encoding == DOC
    listed = (await engine.list_multipart_uploads(bucket)).uploads
    assert [(u.upload_id, u.encoding) for u in listed] == [(made.upload_id, DOC)]
    parts = toys()
    for toy in parts:
        assert_part_info(await upload(engine, made, toy), toy)
        # The callback saw the stored bytes' size (their digests nobody reads are not computed).
        assert [(d.size, d.md5, d.checksums) for d in toy.calls] == [(len(toy.stored), b"", {})]
    page = await engine.list_parts(bucket, "k", made.upload_id)
    assert page.upload.encoding == DOC
    for part, toy in zip(page.parts, parts, strict=True):
        assert_part_info(part, toy)

    info = await complete(engine, made, parts)
    assert_object(info, parts)
    assert (info.tags, info.headers) == ({"t": "1"}, {"content-type": "a/b"})
    await assert_serves(engine, bucket, "k", parts)
    await assert_serves(engine, bucket, "k", parts)  # again: the disk-cached kind may answer from its cache
    await assert_serves(engine, bucket, "k", parts, version_id=info.version_id)
    entries = (await engine.list_objects(bucket)).entries
    assert [(e.key, e.size, e.etag) for e in entries] == [("k", info.size, info.etag)]
    # A retried Complete gets the same answer.
    again = await complete(engine, made, parts)
    assert_object(again, parts)
    assert again.version_id == info.version_id


async def test_part_size_minimum_applies_to_logical_sizes(engine: Engine, plain: str) -> None:
    made = await create(engine, plain, "k")
    # Stored bytes far over the minimum, logical ones under it: too small.
    small = PartToy(1, b"x" * 100, MIN_PART_SIZE - 1)
    last = PartToy(2, b"y", 1)
    await upload(engine, made, small)
    await upload(engine, made, last)
    with pytest.raises(errors.EntityTooSmall):
        await complete(engine, made, [small, last])
    # The same stored bytes reporting the minimum complete (the earlier toys proved tiny stored parts do).
    enough = PartToy(1, b"x" * 100, MIN_PART_SIZE)
    await upload(engine, made, enough)
    info = await complete(engine, made, [enough, last])
    assert_object(info, [enough, last])
    assert await read(engine, plain, "k") == enough.stored + last.stored


async def test_full_object_checksum_combines_logical_sizes(engine: Engine, plain: str) -> None:
    """The default CRC64NVME (FULL_OBJECT) is combined over the parts' logical sizes."""
    from coffer.storage.api import PartInfo
    from coffer.storage.multipart import object_checksum

    made = await engine.create_multipart_upload(plain, "k", headers={}, encoding=dict(DOC))
    crcs = [bytes([1] * 8), bytes([2] * 8)]
    sizes = [MIN_PART_SIZE, 10]
    for number, (crc, size) in enumerate(zip(crcs, sizes, strict=True), 1):
        await engine.upload_part(
            plain,
            "k",
            made.upload_id,
            number,
            chunks(b"stored", 4),
            encoding=Encoding(
                {}, lambda _d, size=size, crc=crc, n=number: LogicalBody(size, f"{n:032x}", {"CRC64NVME": crc})
            ),
        )
    info = await engine.complete_multipart_upload(
        plain, "k", made.upload_id, [CompletedPart(1, f"{1:032x}"), CompletedPart(2, f"{2:032x}")]
    )
    logical = [PartInfo(n, s, "", 0.0, {"CRC64NVME": c}) for n, (c, s) in enumerate(zip(crcs, sizes, strict=True), 1)]
    assert info.checksums == {"CRC64NVME": object_checksum("CRC64NVME", "FULL_OBJECT", logical)}
    assert (info.size, info.stored_size) == (MIN_PART_SIZE + 10, 12)


# ---------------------------------------------------------------------- refusals


async def test_mixing_encoded_and_plain_parts_is_refused(
    engine: Engine, engine_kind: EngineKind, engine_root: Path, plain: str
) -> None:
    encrypted = await create(engine, plain, "enc")
    clear = await engine.create_multipart_upload(plain, "clear", headers={})
    assert clear.encoding is None
    before = _files(engine_kind, engine_root)
    with pytest.raises(errors.InvalidRequest):
        await engine.upload_part(plain, "enc", encrypted.upload_id, 1, chunks(b"x" * 5000, 1000))
    toy = PartToy(1, b"x" * 5000, 5000)
    with pytest.raises(errors.InvalidRequest):
        await upload(engine, clear, toy)
    assert toy.calls == []
    assert (await engine.list_parts(plain, "enc", encrypted.upload_id)).parts == []
    assert (await engine.list_parts(plain, "clear", clear.upload_id)).parts == []
    assert _files(engine_kind, engine_root) == before


async def test_upload_part_copy_into_an_encrypted_upload_is_refused(
    engine: Engine, engine_kind: EngineKind, engine_root: Path, plain: str
) -> None:
    await put(engine, plain, "src", b"z" * 3000)
    encrypted = await create(engine, plain, "enc")
    before = _files(engine_kind, engine_root)
    checked: list[ObjectInfo] = []
    for src_range in (None, (0, 9)):
        with pytest.raises(errors.InvalidRequest) as caught:
            await engine.upload_part_copy(
                plain, "enc", encrypted.upload_id, 1, plain, "src", src_range=src_range, check_source=checked.append
            )
        assert not isinstance(caught.value, errors.EncodedSource)
    assert (await engine.list_parts(plain, "enc", encrypted.upload_id)).parts == []
    assert _files(engine_kind, engine_root) == before


async def test_logical_raising_aborts_the_part(
    engine: Engine, engine_kind: EngineKind, engine_root: Path, plain: str
) -> None:
    made = await create(engine, plain, "k")
    before = _files(engine_kind, engine_root)
    for data in (b"small", bytes(range(256)) * 100):
        toy = PartToy(1, data, MIN_PART_SIZE, fail=True)
        with pytest.raises(errors.BadDigest):
            await upload(engine, made, toy)
        assert len(toy.calls) == 1
    assert (await engine.list_parts(plain, "k", made.upload_id)).parts == []
    assert _files(engine_kind, engine_root) == before
    # Over an existing part: that one stays.
    good = PartToy(1, b"good", 4)
    await upload(engine, made, good)
    with pytest.raises(errors.BadDigest):
        await upload(engine, made, PartToy(1, bytes(range(256)) * 100, 9, fail=True))
    (part,) = (await engine.list_parts(plain, "k", made.upload_id)).parts
    assert_part_info(part, good)

    # verify raising: logical is never called.
    toy = PartToy(2, b"v", 1)

    def refuse(_digests: PutDigests) -> None:
        raise errors.BadDigest("no")

    with pytest.raises(errors.BadDigest):
        await engine.upload_part(
            plain, "k", made.upload_id, 2, chunks(toy.stored, 10), encoding=toy.encoding(), verify=refuse
        )
    assert toy.calls == []


async def test_plain_uploads_are_unchanged(engine: Engine, plain: str) -> None:
    made = await engine.create_multipart_upload(plain, "k", headers={})
    first = bytes(range(256)) * (MIN_PART_SIZE // 256)
    p1 = await engine.upload_part(plain, "k", made.upload_id, 1, chunks(first, 1 << 20))
    p2 = await engine.upload_part(plain, "k", made.upload_id, 2, chunks(b"tail", 4))
    assert (p1.stored_size, p2.stored_size) == (None, None)
    assert [p.stored_size for p in (await engine.list_parts(plain, "k", made.upload_id)).parts] == [None, None]
    info = await engine.complete_multipart_upload(
        plain, "k", made.upload_id, [CompletedPart(1, p1.etag), CompletedPart(2, p2.etag)]
    )
    assert (info.encoding, info.stored_size, info.size) == (None, None, len(first) + 4)
    head = await engine.head_object(plain, "k", part_number=2)
    assert head.part == ObjectPart(2, len(first), 4, p2.etag, p2.checksums)
    assert (head.encoding, head.stored_size) == (None, None)
    parts = (await engine.list_object_parts(plain, "k")).parts
    assert [(p.stored_offset, p.stored_size) for p in parts] == [(None, None), (None, None)]
    assert await read(engine, plain, "k", len(first) - 2) == first[-2:] + b"tail"


# ---------------------------------------------------------------------- persistence


async def test_encrypted_uploads_survive_reopen(
    engine: Engine, engine_kind: EngineKind, engine_root: Path, versioned: str
) -> None:
    if not engine_kind.persistent:
        pytest.skip("engine keeps nothing across restarts")
    parts = toys()
    done = await create(engine, versioned, "done")
    for toy in parts:
        await upload(engine, done, toy)
    info = await complete(engine, done, parts)
    still_open = await create(engine, versioned, "open")
    for toy in parts[:2]:
        await upload(engine, still_open, toy)
    await engine.close()

    again = engine_kind.make(engine_root)
    await again.start()
    try:
        await assert_serves(again, versioned, "done", parts, version_id=info.version_id)
        assert (await again.get_upload(versioned, "open", still_open.upload_id)).encoding == DOC
        page = await again.list_parts(versioned, "open", still_open.upload_id)
        assert page.upload.encoding == DOC
        for part, toy in zip(page.parts, parts[:2], strict=True):
            assert_part_info(part, toy)
        assert [u.encoding for u in (await again.list_multipart_uploads(versioned)).uploads] == [DOC]
        await upload(again, still_open, parts[2])
        completed = await complete(again, still_open, parts)
        assert_object(completed, parts)
        await again.close()
        third = engine_kind.make(engine_root)
        await third.start()
        try:
            await assert_serves(third, versioned, "open", parts)
            await assert_serves(third, versioned, "done", parts)
        finally:
            await third.close()
    finally:
        await again.close()


def test_memory_log_and_snapshot_keep_encrypted_uploads(tmp_path: Path) -> None:
    """No shutdown snapshot: the CREATE_UPLOAD, PUT_PART and COMPLETE_UPLOAD records alone bring
    them back; then a snapshot does."""
    parts = toys()

    async def scenario() -> None:
        e = persistent_memory(tmp_path)
        await e.start()
        await e.create_bucket("b", OWNER, REGION)
        done = await create(e, "b", "done")
        for toy in parts:
            await upload(e, done, toy)
        await complete(e, done, parts)
        still_open = await create(e, "b", "open")
        await upload(e, still_open, parts[0])
        crash_memory(e)

        for round_ in range(2):
            e = persistent_memory(tmp_path)
            await e.start()
            try:
                await assert_serves(e, "b", "done", parts)
                page = await e.list_parts("b", "open", still_open.upload_id)
                assert page.upload.encoding == DOC
                assert len(page.parts) == 1
                assert_part_info(page.parts[0], parts[0])
                if round_ == 0:
                    await e.snapshot()
            finally:
                crash_memory(e)

    asyncio.run(scenario())


def test_memory_old_records_still_decode(tmp_path: Path) -> None:
    """Records written before encrypted uploads: no "enc" in CREATE_UPLOAD, no "z" in PUT_PART,
    object parts of five fields."""
    upload_meta = {
        "b": "old",
        "k": "k",
        "u": "u1",
        "i": 1.0,
        "o": OWNER,
        "sc": "STANDARD",
        "h": {},
        "a": None,
        "ct": "FULL_OBJECT",
    }
    crc = checksums.new_hasher("CRC64NVME")
    crc.update(b"abc")
    sums = {"CRC64NVME": crc.digest().hex()}
    part = {"u": "u1", "n": 1, "s": 3, "e": hashlib.md5(b"abc").hexdigest(), "m": 2.0, "c": sums}
    write_old_log(
        tmp_path,
        [
            Record(CREATE_BUCKET, {"name": "old", "created": 1.0, "owner": OWNER, "region": REGION}),
            Record(CREATE_UPLOAD, upload_meta),
            Record(PUT_PART, part, (b"abc",)),
        ],
    )

    async def scenario() -> None:
        e = persistent_memory(tmp_path)
        await e.start()
        try:
            page = await e.list_parts("old", "k", "u1")
            assert page.upload.encoding is None
            assert [(p.size, p.stored_size) for p in page.parts] == [(3, None)]
            info = await e.complete_multipart_upload("old", "k", "u1", [CompletedPart(1, part["e"])])
            assert (info.encoding, info.stored_size) == (None, None)
            assert await read(e, "old", "k") == b"abc"
        finally:
            await e.close()

    asyncio.run(scenario())

    old = ["b", "k", 3, "e" * 32 + "-1", 2.0, "null", "STANDARD", OWNER, {}, {}, "FULL_OBJECT", None]
    old.append([[1, 0, 3, "f" * 32, {}]])
    info, _owner, _expires, decoded = object_from(old)
    assert decoded == (ObjectPart(1, 0, 3, "f" * 32, {}),)
    assert object_meta(info, OWNER, None, decoded) == old  # plain records are written as before


def test_memory_codec_keeps_stored_offsets() -> None:
    parts = (ObjectPart(1, 0, 10, "a" * 32, {}, 0, 42), ObjectPart(2, 10, 5, "b" * 32, {}, 42, 37))
    info = ObjectInfo("b", "k", 15, "c" * 32 + "-2", 1.0, parts_count=2, encoding=DOC, stored_size=79)
    decoded_info, _owner, _expires, decoded = object_from(object_meta(info, OWNER, None, parts))
    assert decoded == parts
    assert (decoded_info.encoding, decoded_info.stored_size) == (DOC, 79)


async def test_disk_schema_5_database_migrates(engine_kind: EngineKind, engine_root: Path) -> None:
    """A database from before these columns (schema 5) gets them, its rows stored as sent."""
    if engine_kind.files is None:
        pytest.skip("disk engines only")
    e = engine_kind.make(engine_root)
    await e.start()
    await e.create_bucket("b", OWNER, REGION)
    made = await e.create_multipart_upload("b", "k", headers={})
    part = await e.upload_part("b", "k", made.upload_id, 1, chunks(b"abc", 3))
    await e.close()
    db = engine_root / "metadata.sqlite3"
    conn = sqlite3.connect(db)
    conn.execute("ALTER TABLE parts DROP COLUMN stored_size")
    conn.execute("ALTER TABLE object_parts DROP COLUMN stored_offset")
    conn.execute("ALTER TABLE object_parts DROP COLUMN stored_size")
    conn.execute("PRAGMA user_version=5")
    conn.commit()
    conn.close()
    e = engine_kind.make(engine_root)
    await e.start()
    try:
        assert [p.stored_size for p in (await e.list_parts("b", "k", made.upload_id)).parts] == [None]
        await e.complete_multipart_upload("b", "k", made.upload_id, [CompletedPart(1, part.etag)])
        assert (await e.list_object_parts("b", "k")).parts[0].stored_offset is None
        assert await read(e, "b", "k") == b"abc"
    finally:
        await e.close()
