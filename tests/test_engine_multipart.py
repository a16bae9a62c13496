"""Multipart uploads, manifests, copies and part reads, called directly (no HTTP), on every engine.

Each test runs once per engine kind (tests/engines.py). Assertions about blob files are the disk
engine's own promises (parts are files, completing links them, copies share them) and hold where
the engine keeps files; tests that need SQLite or blob files at all are disk-only, and say why.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import sqlite3
import time
from pathlib import Path

import pytest

from coffer import checksums
from coffer.storage import errors
from coffer.storage.api import MIN_PART_SIZE, CompletedPart, Completion, DeleteRequest, Engine, ObjectInfo
from coffer.storage.disk.metadata import SCHEMA_VERSION
from tests.engines import ENGINES, EngineKind, blob_files, put, read
from tests.helpers import chunks, run

BUCKET = "bkt"
OWNER = "owner-1"
PART = os.urandom(MIN_PART_SIZE)  # a full-size part (a blob file)
TAIL = os.urandom(3000)  # a last part bigger than the disk engine's inline threshold
TINY = b"tiny last part"  # a last part small enough to live inline
DISK_KINDS = sorted(name for name, kind in ENGINES.items() if kind.files is not None)
PERSISTENT_KINDS = sorted(name for name, kind in ENGINES.items() if kind.persistent)


def only(names: list[str]) -> pytest.MarkDecorator:
    """Run a test on these engine kinds only (instead of every one)."""
    return pytest.mark.parametrize("engine_kind", [ENGINES[n] for n in names], ids=names)


@pytest.fixture
def disk(engine_kind: EngineKind) -> bool:
    """The engine keeps blob files: its promises about them (parts are files, copies share them) are checked."""
    return engine_kind.files is not None


class Store:
    """A started engine of one kind on a temp directory, with the test bucket, driven from synchronous tests."""

    def __init__(self, kind: EngineKind, root: Path) -> None:
        self.engine = kind.make(root)

    async def __aenter__(self) -> Engine:
        await self.engine.start()
        try:
            await self.engine.create_bucket(BUCKET, OWNER, "us-east-1")
        except errors.BucketAlreadyOwnedByYou:
            pass
        return self.engine

    async def __aexit__(self, *exc: object) -> None:
        await self.engine.close()


async def upload(engine: Engine, key: str, parts: list[bytes], **create: str) -> str:
    created = await engine.create_multipart_upload(BUCKET, key, headers={"content-type": "a/b"}, **create)
    for number, data in enumerate(parts, 1):
        await engine.upload_part(BUCKET, key, created.upload_id, number, chunks(data))
    return created.upload_id


def completed(parts: list[bytes]) -> list[CompletedPart]:
    return [CompletedPart(n, hashlib.md5(d).hexdigest()) for n, d in enumerate(parts, 1)]


def test_complete_builds_manifest_without_copying(engine_kind: EngineKind, disk: bool, tmp_path: Path) -> None:
    async def go() -> None:
        async with Store(engine_kind, tmp_path) as engine:
            parts = [PART, PART[::-1], TAIL]
            upload_id = await upload(engine, "big", parts)
            if disk:
                before = blob_files(tmp_path)
                assert len(before) == 3  # each part is its own file
            info = await engine.complete_multipart_upload(BUCKET, "big", upload_id, completed(parts))
            # The object is the parts' files: none written, none removed.
            if disk:
                assert blob_files(tmp_path) == before
            whole = b"".join(parts)
            md5s = b"".join(hashlib.md5(p).digest() for p in parts)
            assert info.etag == hashlib.md5(md5s).hexdigest() + "-3"
            assert info.size == len(whole) and info.parts_count == 3
            assert await read(engine, BUCKET, "big") == whole
            # Ranges across part boundaries, inside one part, and the tail.
            for start, end in [(MIN_PART_SIZE - 10, MIN_PART_SIZE + 10), (5, 50), (len(whole) - 7, len(whole))]:
                assert await read(engine, BUCKET, "big", start, end) == whole[start:end]
            head = await engine.head_object(BUCKET, "big", part_number=2)
            assert head.part is not None and (head.part.offset, head.part.size) == (MIN_PART_SIZE, MIN_PART_SIZE)
            with pytest.raises(errors.InvalidPart):
                await engine.head_object(BUCKET, "big", part_number=4)
            with pytest.raises(errors.NoSuchUpload):  # the upload is gone
                await engine.list_parts(BUCKET, "big", upload_id)

    run(go())


def test_inline_last_part_reads_across_the_boundary(engine_kind: EngineKind, disk: bool, tmp_path: Path) -> None:
    async def go() -> None:
        async with Store(engine_kind, tmp_path) as engine:
            parts = [PART, TINY]  # the last part small enough to live inline in its row
            upload_id = await upload(engine, "k", parts)
            await engine.complete_multipart_upload(BUCKET, "k", upload_id, completed(parts))
            if disk:
                assert len(blob_files(tmp_path)) == 1
            whole = PART + TINY
            assert await read(engine, BUCKET, "k") == whole
            assert (
                await read(engine, BUCKET, "k", MIN_PART_SIZE - 3, MIN_PART_SIZE + 4) == whole[MIN_PART_SIZE - 3 :][:7]
            )
            assert await read(engine, BUCKET, "k", MIN_PART_SIZE + 2) == TINY[2:]
            copy = await engine.copy_object(BUCKET, "k", BUCKET, "k2", headers=None)
            assert copy.size == len(whole) and await read(engine, BUCKET, "k2") == whole

    run(go())


def test_complete_validations(engine_kind: EngineKind, disk: bool, tmp_path: Path) -> None:
    async def go() -> None:
        async with Store(engine_kind, tmp_path) as engine:
            parts = [PART, TINY, TAIL]
            upload_id = await upload(engine, "k", parts)
            good = completed(parts)
            with pytest.raises(errors.InvalidPartOrder):
                await engine.complete_multipart_upload(BUCKET, "k", upload_id, [good[1], good[0]])
            with pytest.raises(errors.InvalidPart):
                await engine.complete_multipart_upload(BUCKET, "k", upload_id, [CompletedPart(1, "0" * 32)])
            with pytest.raises(errors.InvalidPart):
                await engine.complete_multipart_upload(BUCKET, "k", upload_id, [good[0], CompletedPart(9, "x")])
            with pytest.raises(errors.EntityTooSmall):  # part 2 (tiny) is not the last
                await engine.complete_multipart_upload(BUCKET, "k", upload_id, good)
            with pytest.raises(errors.NoSuchUpload):
                await engine.complete_multipart_upload(BUCKET, "k", "nope", good)
            with pytest.raises(errors.NoSuchUpload):  # an upload id belongs to its key
                await engine.complete_multipart_upload(BUCKET, "other", upload_id, good)
            # Leaving part 2 out is fine: 1 and 3 make the object, 2 is reclaimed.
            if disk:
                files = blob_files(tmp_path)
            info = await engine.complete_multipart_upload(BUCKET, "k", upload_id, [good[0], good[2]])
            assert await read(engine, BUCKET, "k") == PART + TAIL
            assert info.parts_count == 2
            if disk:
                assert blob_files(tmp_path) == files  # TINY was inline: no file to reclaim
            # A retried Complete gets the same answer.
            again = await engine.complete_multipart_upload(BUCKET, "k", upload_id, [good[0], good[2]])
            assert (again.etag, again.checksums) == (info.etag, info.checksums)

    run(go())


def test_reupload_replaces_part_and_reclaims_its_file(engine_kind: EngineKind, disk: bool, tmp_path: Path) -> None:
    async def go() -> None:
        async with Store(engine_kind, tmp_path) as engine:
            upload_id = await upload(engine, "k", [PART])
            if disk:
                first = blob_files(tmp_path)
            await engine.upload_part(BUCKET, "k", upload_id, 1, chunks(PART[::-1]))
            if disk:
                second = blob_files(tmp_path)
                assert len(second) == 1 and second != first
            page = await engine.list_parts(BUCKET, "k", upload_id)
            assert [p.etag for p in page.parts] == [hashlib.md5(PART[::-1]).hexdigest()]

    run(go())


def test_abort_and_bucket_delete_reclaim_parts(engine_kind: EngineKind, disk: bool, tmp_path: Path) -> None:
    async def go() -> None:
        async with Store(engine_kind, tmp_path) as engine:
            upload_id = await upload(engine, "k", [PART, TAIL])
            if disk:
                assert len(blob_files(tmp_path)) == 2
            await engine.abort_multipart_upload(BUCKET, "k", upload_id)
            if disk:
                assert blob_files(tmp_path) == set()
            with pytest.raises(errors.NoSuchUpload):
                await engine.abort_multipart_upload(BUCKET, "k", upload_id)
            with pytest.raises(errors.NoSuchUpload):  # a part for an aborted upload
                await engine.upload_part(BUCKET, "k", upload_id, 1, chunks(b"x"))
            await upload(engine, "k2", [PART])
            await engine.delete_bucket(BUCKET)  # uploads in progress do not keep a bucket
            if disk:
                assert blob_files(tmp_path) == set()

    run(go())


def test_overwrite_and_delete_reclaim_manifest_files(engine_kind: EngineKind, disk: bool, tmp_path: Path) -> None:
    async def go() -> None:
        async with Store(engine_kind, tmp_path) as engine:
            parts = [PART, TAIL]
            upload_id = await upload(engine, "k", parts)
            await engine.complete_multipart_upload(BUCKET, "k", upload_id, completed(parts))
            if disk:
                assert len(blob_files(tmp_path)) == 2
            await engine.put_object(BUCKET, "k", chunks(b"small now"), headers={})
            if disk:
                assert blob_files(tmp_path) == set()
            upload_id = await upload(engine, "k", parts)
            await engine.complete_multipart_upload(BUCKET, "k", upload_id, completed(parts))
            # A new manifest over an old one: the old files go.
            upload_id = await upload(engine, "k", [PART[::-1]])
            await engine.complete_multipart_upload(BUCKET, "k", upload_id, completed([PART[::-1]]))
            if disk:
                assert len(blob_files(tmp_path)) == 1
            assert await read(engine, BUCKET, "k") == PART[::-1]
            await engine.delete_objects(BUCKET, [DeleteRequest("k")])
            if disk:
                assert blob_files(tmp_path) == set()

    run(go())


def test_copy_shares_files_and_reference_counts(engine_kind: EngineKind, disk: bool, tmp_path: Path) -> None:
    async def go() -> None:
        async with Store(engine_kind, tmp_path) as engine:
            parts = [PART, TAIL]
            upload_id = await upload(engine, "src", parts)
            src = await engine.complete_multipart_upload(BUCKET, "src", upload_id, completed(parts))
            await engine.put_object(BUCKET, "single", chunks(PART), headers={"content-type": "x/y"})
            if disk:
                files = blob_files(tmp_path)
            copy = await engine.copy_object(BUCKET, "src", BUCKET, "dst", headers=None)
            single = await engine.copy_object(BUCKET, "single", BUCKET, "single2", headers={"content-type": "n/m"})
            if disk:
                assert blob_files(tmp_path) == files  # no data written: the copies share files
            # S3 writes a copy as one object: the MD5 of the content, no parts.
            assert copy.etag == hashlib.md5(PART + TAIL).hexdigest() and copy.parts_count == 0
            assert copy.checksums == src.checksums  # a FULL_OBJECT CRC64NVME carries over
            assert single.etag == hashlib.md5(PART).hexdigest()
            assert (await engine.head_object(BUCKET, "single2")).headers == {"content-type": "n/m"}
            await engine.delete_object(BUCKET, "src")
            await engine.delete_object(BUCKET, "single")
            if disk:
                assert blob_files(tmp_path) == files  # still referenced by the copies
            assert await read(engine, BUCKET, "dst") == PART + TAIL
            assert await read(engine, BUCKET, "single2") == PART
            await engine.delete_object(BUCKET, "dst")
            await engine.delete_object(BUCKET, "single2")
            if disk:
                assert blob_files(tmp_path) == set()

    run(go())


def test_copy_computes_requested_checksum(engine_kind: EngineKind, tmp_path: Path) -> None:
    async def go() -> None:
        async with Store(engine_kind, tmp_path) as engine:
            await engine.put_object(BUCKET, "a", chunks(TAIL), headers={}, checksum_algorithms=("CRC32",))
            info = await engine.copy_object(BUCKET, "a", BUCKET, "b", headers=None, checksum_algorithm="SHA256")
            assert info.checksums == {"SHA256": hashlib.sha256(TAIL).digest()}
            assert (await engine.head_object(BUCKET, "b")).checksums == info.checksums
            with pytest.raises(errors.NoSuchKey):
                await engine.copy_object(BUCKET, "missing", BUCKET, "c", headers=None)

    run(go())


def test_upload_part_copy_ranges(engine_kind: EngineKind, tmp_path: Path) -> None:
    async def go() -> None:
        async with Store(engine_kind, tmp_path) as engine:
            source = PART + TAIL
            await engine.put_object(BUCKET, "src", chunks(source), headers={})
            upload_id = (await engine.create_multipart_upload(BUCKET, "dst", headers={})).upload_id
            p1 = await engine.upload_part_copy(
                BUCKET, "dst", upload_id, 1, BUCKET, "src", src_range=(0, MIN_PART_SIZE - 1)
            )
            p2 = await engine.upload_part_copy(BUCKET, "dst", upload_id, 2, BUCKET, "src", src_range=(100, 199))
            with pytest.raises(errors.InvalidRange):
                await engine.upload_part_copy(BUCKET, "dst", upload_id, 3, BUCKET, "src", src_range=(0, len(source)))
            parts = [CompletedPart(1, p1.etag), CompletedPart(2, p2.etag)]
            await engine.complete_multipart_upload(BUCKET, "dst", upload_id, parts)
            assert await read(engine, BUCKET, "dst") == source[:MIN_PART_SIZE] + source[100:200]

    run(go())


@pytest.mark.parametrize("algorithm", ["CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256"])
@pytest.mark.parametrize("checksum_type", [None, "COMPOSITE", "FULL_OBJECT"])
def test_multipart_checksum_types(
    engine_kind: EngineKind, tmp_path: Path, algorithm: str, checksum_type: str | None
) -> None:
    async def go() -> None:
        async with Store(engine_kind, tmp_path) as engine:
            create = dict(checksum_algorithm=algorithm, checksum_type=checksum_type)
            forbidden = (algorithm in ("SHA1", "SHA256") and checksum_type == "FULL_OBJECT") or (
                algorithm == "CRC64NVME" and checksum_type == "COMPOSITE"
            )
            if forbidden:
                with pytest.raises(errors.InvalidRequest):
                    await engine.create_multipart_upload(BUCKET, "k", headers={}, **create)
                return
            parts = [PART, TAIL]
            upload_id = await upload(engine, "k", parts, **create)
            digests = []
            for data in parts:
                hasher = checksums.new_hasher(algorithm)
                hasher.update(data)
                digests.append(hasher.digest())
            requested = [
                CompletedPart(n, hashlib.md5(d).hexdigest(), {algorithm: base64.b64encode(c).decode()})
                for n, (d, c) in enumerate(zip(parts, digests, strict=True), 1)
            ]
            info = await engine.complete_multipart_upload(BUCKET, "k", upload_id, requested)
            expected_type = checksum_type or ("FULL_OBJECT" if algorithm == "CRC64NVME" else "COMPOSITE")
            if algorithm in ("SHA1", "SHA256"):
                expected_type = "COMPOSITE"
            assert info.checksum_type == expected_type
            if expected_type == "FULL_OBJECT":
                whole = checksums.new_hasher(algorithm)
                whole.update(PART + TAIL)
                assert info.checksums == {algorithm: whole.digest()}
            else:
                composite = checksums.new_hasher(algorithm)
                composite.update(b"".join(digests))
                assert info.checksums == {algorithm: composite.digest()}

    run(go())


def test_composite_completion_needs_every_part_checksum(engine_kind: EngineKind, tmp_path: Path) -> None:
    async def go() -> None:
        async with Store(engine_kind, tmp_path) as engine:
            upload_id = await upload(engine, "k", [PART], checksum_algorithm="SHA256")
            with pytest.raises(errors.InvalidRequest):
                await engine.complete_multipart_upload(BUCKET, "k", upload_id, completed([PART]))
            wrong = {"SHA256": base64.b64encode(hashlib.sha256(b"other").digest()).decode()}
            with pytest.raises(errors.InvalidPart):
                await engine.complete_multipart_upload(
                    BUCKET, "k", upload_id, [CompletedPart(1, hashlib.md5(PART).hexdigest(), wrong)]
                )
            good = {"SHA256": base64.b64encode(hashlib.sha256(PART).digest()).decode()}
            with pytest.raises(errors.BadDigest):  # the whole-object value given does not match
                await engine.complete_multipart_upload(
                    BUCKET,
                    "k",
                    upload_id,
                    [CompletedPart(1, hashlib.md5(PART).hexdigest(), good)],
                    Completion(expected_checksum=("SHA256", "bad")),
                )

    run(go())


def test_list_multipart_uploads_pages_and_prefixes(engine_kind: EngineKind, tmp_path: Path) -> None:
    async def go() -> None:
        async with Store(engine_kind, tmp_path) as engine:
            ids: dict[str, list[str]] = {}
            for key in ["a", "a", "b/1", "b/2", "c"]:
                created = await engine.create_multipart_upload(BUCKET, key, headers={})
                ids.setdefault(key, []).append(created.upload_id)
            page = await engine.list_multipart_uploads(BUCKET, delimiter="/")
            assert [(u.key, u.upload_id) for u in page.uploads] == [
                ("a", ids["a"][0]),
                ("a", ids["a"][1]),
                ("c", ids["c"][0]),
            ]
            assert page.common_prefixes == ["b/"] and not page.is_truncated
            # Page by page, one at a time, resuming from the markers.
            seen: list[tuple[str, str | None]] = []
            key_marker, id_marker = "", ""
            while True:
                page = await engine.list_multipart_uploads(
                    BUCKET, delimiter="/", key_marker=key_marker, upload_id_marker=id_marker, max_uploads=1
                )
                seen += [(u.key, u.upload_id) for u in page.uploads] + [(p, None) for p in page.common_prefixes]
                if not page.is_truncated:
                    break
                key_marker, id_marker = page.next_key_marker or "", page.next_upload_id_marker or ""
            assert seen == [("a", ids["a"][0]), ("a", ids["a"][1]), ("b/", None), ("c", ids["c"][0])]
            page = await engine.list_multipart_uploads(BUCKET, prefix="b/")
            assert [u.key for u in page.uploads] == ["b/1", "b/2"]
            page = await engine.list_multipart_uploads(BUCKET, key_marker="a")
            assert [u.key for u in page.uploads] == ["b/1", "b/2", "c"]

    run(go())


@only(DISK_KINDS)  # ages an upload in SQLite (the memory engine's sweep is tested with its clock)
def test_sweep_aborts_old_uploads_only(engine_kind: EngineKind, tmp_path: Path) -> None:
    async def go() -> None:
        async with Store(engine_kind, tmp_path) as engine:
            old = await upload(engine, "old", [PART])
            new = await upload(engine, "new", [TAIL])
            # Age the first upload instead of waiting.
            conn = sqlite3.connect(tmp_path / "metadata.sqlite3")
            conn.execute("UPDATE uploads SET initiated=initiated-1000 WHERE upload_id=?", (old,))
            conn.commit()
            conn.close()
            aborted = await asyncio.to_thread(engine.sweep_uploads, 500)
            assert aborted == 1
            with pytest.raises(errors.NoSuchUpload):
                await engine.list_parts(BUCKET, "old", old)
            assert len((await engine.list_parts(BUCKET, "new", new)).parts) == 1
            assert len(blob_files(tmp_path)) == 1

    run(go())


@only(DISK_KINDS)  # orphaned blob files are the disk engine's crash leftovers
def test_orphan_sweep_keeps_referenced_part_files(engine_kind: EngineKind, tmp_path: Path) -> None:
    async def go() -> None:
        async with Store(engine_kind, tmp_path) as engine:
            upload_id = await upload(engine, "k", [PART, TAIL])
            await engine.complete_multipart_upload(BUCKET, "k", upload_id, completed([PART, TAIL]))
            await upload(engine, "open", [PART])
            await engine.copy_object(BUCKET, "k", BUCKET, "k2", headers=None)
            orphan = tmp_path / "blobs" / "zz" / "zzorphan"
            orphan.parent.mkdir(exist_ok=True)
            orphan.write_bytes(b"left by a crash")
            past = time.time() - 10
            for path in (tmp_path / "blobs").rglob("*"):
                if path.is_file():
                    os.utime(path, (past, past))
            removed = await asyncio.to_thread(engine.sweep_orphans, 0)
            assert removed == 1 and not orphan.exists()
            assert await read(engine, BUCKET, "k") == PART + TAIL
            assert await read(engine, BUCKET, "k2") == PART + TAIL

    run(go())


@only(PERSISTENT_KINDS)  # a restart: a new engine on the same directory
def test_manifest_survives_restart_and_schema_version(engine_kind: EngineKind, disk: bool, tmp_path: Path) -> None:
    async def first() -> None:
        async with Store(engine_kind, tmp_path) as engine:
            upload_id = await upload(engine, "k", [PART, TAIL])
            await engine.complete_multipart_upload(BUCKET, "k", upload_id, completed([PART, TAIL]))
            await upload(engine, "pending", [PART])

    async def second() -> None:
        async with Store(engine_kind, tmp_path) as engine:
            body = await engine.open_object(BUCKET, "k", part_number=2)
            assert body.info.part is not None
            start = body.info.part.offset
            assert b"".join([c async for c in body.stream(start, start + body.info.part.size)]) == TAIL
            page = await engine.list_multipart_uploads(BUCKET)
            assert [u.key for u in page.uploads] == ["pending"]

    run(first())
    run(second())
    if disk:
        conn = sqlite3.connect(tmp_path / "metadata.sqlite3")
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        conn.close()


def test_read_survives_concurrent_overwrite(engine_kind: EngineKind, disk: bool, tmp_path: Path) -> None:
    async def go() -> None:
        async with Store(engine_kind, tmp_path) as engine:
            parts = [PART, TAIL]
            upload_id = await upload(engine, "k", parts)
            await engine.complete_multipart_upload(BUCKET, "k", upload_id, completed(parts))
            body = await engine.open_object(BUCKET, "k")
            await engine.put_object(BUCKET, "k", chunks(b"replaced"), headers={})
            if disk:
                assert blob_files(tmp_path) == set()  # the files are unlinked ...
            data = b"".join([c async for c in body.stream()])
            assert data == PART + TAIL  # ... but the open reader still gets the old object whole

    run(go())


def test_many_small_parts_windowed_reads(
    engine_kind: EngineKind, disk: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small parts (the 5 MiB minimum lifted) so one object has many more pieces than
    # the reader keeps open at once.
    monkeypatch.setattr("coffer.storage.multipart.MIN_PART_SIZE", 1)
    pieces = [os.urandom(2000 + i) for i in range(60)]
    whole = b"".join(pieces)

    async def go() -> None:
        async with Store(engine_kind, tmp_path) as engine:
            upload_id = await upload(engine, "many", pieces)
            listed = await engine.list_parts(BUCKET, "many", upload_id, max_parts=25)
            assert [p.part_number for p in listed.parts] == list(range(1, 26)) and listed.is_truncated
            await engine.complete_multipart_upload(BUCKET, "many", upload_id, completed(pieces))
            assert await read(engine, BUCKET, "many") == whole
            for start, end in [(0, 1), (2000, 2002), (len(whole) - 5000, len(whole) - 10), (31_000, 90_000)]:
                assert await read(engine, BUCKET, "many", start, end) == whole[start:end]
            page = await engine.list_object_parts(BUCKET, "many", marker=50, max_parts=5)
            assert [p.part_number for p in page.parts] == [51, 52, 53, 54, 55] and page.is_truncated
            # Replaced while being read: never a mix of old and new.
            body = await engine.open_object(BUCKET, "many")
            stream = body.stream()
            first = await anext(stream)
            await engine.put_object(BUCKET, "many", chunks(b"new"), headers={})
            received = bytearray(first)
            if disk:
                # The files opened ahead still stream; past them the read stops with an error.
                with pytest.raises(errors.StorageError):
                    async for chunk in stream:
                        received += chunk
                assert whole.startswith(bytes(received)) and len(received) >= 16 * 2000
            else:
                # The reader holds the old object's chunks: it streams whole.
                async for chunk in stream:
                    received += chunk
                assert bytes(received) == whole

    run(go())


@pytest.mark.parametrize("huge", [2**64, 2**63, -(2**64), -1])
def test_list_parts_with_huge_numbers(engine_kind: EngineKind, tmp_path: Path, huge: int) -> None:
    """Issue 9 #13: part-number-marker and max-parts beyond any store's integers (or below zero: a
    negative max-parts must not slice from the end) select what their nearest bound selects."""

    async def go() -> None:
        async with Store(engine_kind, tmp_path) as engine:
            upload_id = await upload(engine, "k", [PART, TINY])
            page = await engine.list_parts(BUCKET, "k", upload_id, marker=huge)
            assert [p.part_number for p in page.parts] == ([1, 2] if huge < 0 else [])
            page = await engine.list_parts(BUCKET, "k", upload_id, max_parts=huge)
            assert [p.part_number for p in page.parts] == ([1, 2] if huge > 0 else [])
            assert page.is_truncated == (huge < 0)
            await engine.complete_multipart_upload(BUCKET, "k", upload_id, completed([PART, TINY]))
            page2 = await engine.list_object_parts(BUCKET, "k", marker=huge, max_parts=huge)
            assert page2.parts == [] and page2.is_truncated == (huge < 0)
            page2 = await engine.list_object_parts(BUCKET, "k", max_parts=huge)
            assert [p.part_number for p in page2.parts] == ([1, 2] if huge > 0 else [])
            assert page2.is_truncated == (huge < 0)

    run(go())


def _answer(info: ObjectInfo) -> tuple[object, ...]:
    return (info.key, info.etag, info.size, info.last_modified, info.checksums, info.checksum_type, info.parts_count)


def test_retried_complete_answers_while_its_object_stands(engine_kind: EngineKind, tmp_path: Path) -> None:
    """A retried CompleteMultipartUpload gets the first answer again, but only while the object at
    the key is the one that upload produced; once it is replaced or deleted the upload is gone
    (NoSuchUpload, as in S3). One rule on every engine, across a restart where there is one."""
    parts = [PART, TINY]

    async def first() -> tuple[str, ObjectInfo]:
        async with Store(engine_kind, tmp_path) as engine:
            kept = await upload(engine, "kept", parts)
            answer = await engine.complete_multipart_upload(BUCKET, "kept", kept, completed(parts))
            again = await engine.complete_multipart_upload(BUCKET, "kept", kept, completed(parts))
            assert _answer(again) == _answer(answer)
            replaced = await upload(engine, "replaced", parts)
            await engine.complete_multipart_upload(BUCKET, "replaced", replaced, completed(parts))
            await put(engine, BUCKET, "replaced", b"new body")
            with pytest.raises(errors.NoSuchUpload):
                await engine.complete_multipart_upload(BUCKET, "replaced", replaced, completed(parts))
            deleted = await upload(engine, "deleted", parts)
            await engine.complete_multipart_upload(BUCKET, "deleted", deleted, completed(parts))
            await engine.delete_object(BUCKET, "deleted")
            with pytest.raises(errors.NoSuchUpload):
                await engine.complete_multipart_upload(BUCKET, "deleted", deleted, completed(parts))
            return kept, answer

    async def after_restart(kept: str, answer: ObjectInfo) -> None:
        async with Store(engine_kind, tmp_path) as engine:
            again = await engine.complete_multipart_upload(BUCKET, "kept", kept, completed(parts))
            assert _answer(again) == _answer(answer)
            await put(engine, BUCKET, "kept", b"new body")
            with pytest.raises(errors.NoSuchUpload):
                await engine.complete_multipart_upload(BUCKET, "kept", kept, completed(parts))

    kept, answer = run(first())
    if engine_kind.persistent:
        run(after_restart(kept, answer))


def test_completed_answers_are_kept_an_hour(engine_kind: EngineKind, tmp_path: Path) -> None:
    """The sweep forgets a completed upload's answer an hour after completion, also when abandoned
    uploads are never aborted (max age 0), and then aborts no upload in progress."""
    parts = [PART, TINY]

    async def go() -> None:
        async with Store(engine_kind, tmp_path) as engine:
            done = await upload(engine, "done", parts)
            answer = await engine.complete_multipart_upload(BUCKET, "done", done, completed(parts))
            pending = await upload(engine, "pending", [PART])
            assert await asyncio.to_thread(engine.sweep_uploads, 0, answer.last_modified + 3500) == 0
            again = await engine.complete_multipart_upload(BUCKET, "done", done, completed(parts))
            assert _answer(again) == _answer(answer)
            assert await asyncio.to_thread(engine.sweep_uploads, 0, answer.last_modified + 3700) == 0
            with pytest.raises(errors.NoSuchUpload):
                await engine.complete_multipart_upload(BUCKET, "done", done, completed(parts))
            assert [u.upload_id for u in (await engine.list_multipart_uploads(BUCKET)).uploads] == [pending]

    run(go())
