"""The memory engine's multipart uploads, copies and part reads, with and without persistence."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from pathlib import Path

import pytest

from coffer.storage import errors
from coffer.storage.api import MIN_PART_SIZE, CompletedPart, Completion
from coffer.storage.memory import MemoryEngine
from tests.engines import crash_memory, persistent_memory, read
from tests.helpers import chunks

OWNER = "owner-id"
PART1 = os.urandom(MIN_PART_SIZE)
PART2 = os.urandom(MIN_PART_SIZE)
TAIL = os.urandom(12345)


async def upload_three_parts(e: MemoryEngine, key: str = "big", algorithm: str | None = "SHA256") -> str:
    upload = await e.create_multipart_upload("bkt", key, headers={"content-type": "x/y"}, checksum_algorithm=algorithm)
    for number, data in ((1, PART1), (2, PART2), (3, TAIL)):
        await e.upload_part("bkt", key, upload.upload_id, number, chunks(data))
    return upload.upload_id


def completed(parts: list[tuple[int, str]]) -> list[CompletedPart]:
    return [CompletedPart(n, etag) for n, etag in parts]


def test_multipart_lifecycle() -> None:
    async def scenario() -> None:
        e = MemoryEngine(max_memory=1 << 30)
        await e.start()
        try:
            await e.create_bucket("bkt", OWNER, "us-east-1")
            upload_id = await upload_three_parts(e, algorithm=None)
            await e.upload_part("bkt", "big", upload_id, 3, chunks(TAIL))  # re-upload replaces part 3
            page = await e.list_parts("bkt", "big", upload_id, max_parts=2)
            assert [p.part_number for p in page.parts] == [1, 2] and page.is_truncated
            page = await e.list_parts("bkt", "big", upload_id, marker=page.next_marker)
            assert [p.part_number for p in page.parts] == [3] and not page.is_truncated
            uploads = await e.list_multipart_uploads("bkt")
            assert [u.upload_id for u in uploads.uploads] == [upload_id]
            assert (await e.storage_stats()).multipart_uploads == 1
            etags = [(p.part_number, p.etag) for p in (await e.list_parts("bkt", "big", upload_id)).parts]
            with pytest.raises(errors.InvalidPartOrder):
                await e.complete_multipart_upload("bkt", "big", upload_id, completed(etags[::-1]))
            info = await e.complete_multipart_upload("bkt", "big", upload_id, completed(etags))
            md5s = b"".join(hashlib.md5(d).digest() for d in (PART1, PART2, TAIL))
            assert info.etag == hashlib.md5(md5s).hexdigest() + "-3"
            assert info.parts_count == 3 and info.checksum_type == "FULL_OBJECT"
            # A retried Complete gets the same answer; the upload is gone otherwise.
            again = await e.complete_multipart_upload("bkt", "big", upload_id, completed(etags))
            assert again.etag == info.etag
            with pytest.raises(errors.NoSuchUpload):
                await e.list_parts("bkt", "big", upload_id)
            whole = PART1 + PART2 + TAIL
            assert await read(e, "bkt", "big") == whole
            assert (
                await read(e, "bkt", "big", MIN_PART_SIZE - 3, MIN_PART_SIZE + 3)
                == whole[MIN_PART_SIZE - 3 : MIN_PART_SIZE + 3]
            )
            part2 = await e.head_object("bkt", "big", part_number=2)
            assert part2.part is not None and (part2.part.offset, part2.part.size) == (MIN_PART_SIZE, MIN_PART_SIZE)
            with pytest.raises(errors.InvalidPart):
                await e.head_object("bkt", "big", part_number=4)
            listed = await e.list_object_parts("bkt", "big", max_parts=2)
            assert [p.part_number for p in listed.parts] == [1, 2] and listed.is_truncated
            stats = await e.storage_stats()
            assert (stats.objects, stats.bytes, stats.multipart_uploads) == (1, len(whole), 0)
            assert e.stats.used_bytes < len(whole) + 4096  # the parts' memory became the object's
            # Abort frees the parts; an abandoned upload is swept.
            second = await e.create_multipart_upload("bkt", "other", headers={})
            await e.upload_part("bkt", "other", second.upload_id, 1, chunks(b"x" * 1000))
            await e.abort_multipart_upload("bkt", "other", second.upload_id)
            with pytest.raises(errors.NoSuchUpload):
                await e.abort_multipart_upload("bkt", "other", second.upload_id)
            third = await e.create_multipart_upload("bkt", "old", headers={})
            assert e.sweep_uploads(3600, now=third.initiated + 7200) == 1
            assert (await e.list_multipart_uploads("bkt")).uploads == []
            assert e.stats.used_bytes < len(whole) + 4096
        finally:
            await e.close()

    asyncio.run(scenario())


def test_conditional_complete_and_bucket_delete_drops_uploads() -> None:
    async def scenario() -> None:
        e = MemoryEngine(max_memory=1 << 30)
        await e.start()
        try:
            await e.create_bucket("bkt", OWNER, "us-east-1")
            await e.put_object("bkt", "big", chunks(b"exists"), headers={})
            upload = await e.create_multipart_upload("bkt", "big", headers={})
            part = await e.upload_part("bkt", "big", upload.upload_id, 1, chunks(b"tiny"))
            with pytest.raises(errors.PreconditionFailed):
                await e.complete_multipart_upload(
                    "bkt", "big", upload.upload_id, completed([(1, part.etag)]), Completion(if_none_match="*")
                )
            assert await read(e, "bkt", "big") == b"exists"
            await e.delete_object("bkt", "big")
            await e.delete_bucket("bkt")  # an upload in progress does not keep the bucket alive
            assert (await e.storage_stats()).multipart_uploads == 0
            assert e.stats.used_bytes == 0
        finally:
            await e.close()

    asyncio.run(scenario())


def test_copies_share_chunks() -> None:
    async def scenario() -> None:
        e = MemoryEngine(max_memory=1 << 30)
        await e.start()
        try:
            await e.create_bucket("bkt", OWNER, "us-east-1")
            src = await e.put_object("bkt", "src", chunks(PART1), headers={"x-amz-meta-a": "1"})
            copy = await e.copy_object("bkt", "src", "bkt", "dst", headers=None)
            assert copy.etag == src.etag and copy.headers == {"x-amz-meta-a": "1"}
            src_obj = e._buckets["bkt"].index.get(b"src")
            dst_obj = e._buckets["bkt"].index.get(b"dst")
            assert src_obj is not None and dst_obj is not None and dst_obj.chunks is src_obj.chunks
            # A multipart source: the copy is one object, ETag the MD5 of its content.
            upload_id = await upload_three_parts(e, "mp")
            etags = [(p.part_number, p.etag) for p in (await e.list_parts("bkt", "mp", upload_id)).parts]
            await e.complete_multipart_upload(
                "bkt",
                "mp",
                upload_id,
                [
                    CompletedPart(n, etag, {"SHA256": p})
                    for (n, etag), p in zip(
                        etags,
                        [base64.b64encode(hashlib.sha256(d).digest()).decode() for d in (PART1, PART2, TAIL)],
                        strict=True,
                    )
                ],
            )
            flat = await e.copy_object("bkt", "mp", "bkt", "flat", headers={"content-type": "a/b"})
            assert flat.etag == hashlib.md5(PART1 + PART2 + TAIL).hexdigest() and flat.parts_count == 0

            def refuse(_info: object) -> None:
                raise errors.PreconditionFailed()

            with pytest.raises(errors.PreconditionFailed):
                await e.copy_object("bkt", "src", "bkt", "never", headers=None, check_source=refuse)
            # UploadPartCopy of a range spanning the source's chunks.
            target = await e.create_multipart_upload("bkt", "assembled", headers={})
            part = await e.upload_part_copy(
                "bkt", "assembled", target.upload_id, 1, "bkt", "mp", src_range=(10, MIN_PART_SIZE + 9)
            )
            assert part.size == MIN_PART_SIZE
            assert part.etag == hashlib.md5((PART1 + PART2)[10 : MIN_PART_SIZE + 10]).hexdigest()
            with pytest.raises(errors.InvalidRange):
                await e.upload_part_copy(
                    "bkt", "assembled", target.upload_id, 2, "bkt", "src", src_range=(0, MIN_PART_SIZE)
                )
        finally:
            await e.close()

    asyncio.run(scenario())


def test_uploads_and_completed_objects_survive_a_crash(tmp_path: Path) -> None:
    state: dict[str, str] = {}

    async def first() -> None:
        e = persistent_memory(tmp_path)
        await e.start()
        await e.create_bucket("bkt", OWNER, "us-east-1")
        done_id = await upload_three_parts(e, "done", algorithm=None)
        etags = [(p.part_number, p.etag) for p in (await e.list_parts("bkt", "done", done_id)).parts]
        await e.snapshot()  # the snapshot holds the upload and its parts
        info = await e.complete_multipart_upload("bkt", "done", done_id, completed(etags))
        state["etag"] = info.etag
        open_upload = await e.create_multipart_upload("bkt", "open", headers={"x-amz-meta-k": "v"})
        await e.upload_part("bkt", "open", open_upload.upload_id, 1, chunks(PART1))
        state["open"] = open_upload.upload_id
        crash_memory(e)

    async def second() -> None:
        e = persistent_memory(tmp_path)
        await e.start()
        info = await e.head_object("bkt", "done")
        assert (info.etag, info.parts_count) == (state["etag"], 3)
        assert await read(e, "bkt", "done") == PART1 + PART2 + TAIL
        assert (await e.head_object("bkt", "done", part_number=3)).part.size == len(TAIL)  # type: ignore[union-attr]
        uploads = (await e.list_multipart_uploads("bkt")).uploads
        assert [(u.key, u.upload_id, u.headers) for u in uploads] == [("open", state["open"], {"x-amz-meta-k": "v"})]
        parts = (await e.list_parts("bkt", "open", state["open"])).parts
        assert [(p.part_number, p.size) for p in parts] == [(1, MIN_PART_SIZE)]
        await e.upload_part("bkt", "open", state["open"], 2, chunks(TAIL))
        etags = [(p.part_number, p.etag) for p in (await e.list_parts("bkt", "open", state["open"])).parts]
        await e.complete_multipart_upload("bkt", "open", state["open"], completed(etags))
        await e.close()  # shutdown snapshot: completed objects are plain objects with parts there

    async def third() -> None:
        e = persistent_memory(tmp_path)
        await e.start()
        assert await read(e, "bkt", "open") == PART1 + TAIL
        assert (await e.head_object("bkt", "open", part_number=2)).part.offset == MIN_PART_SIZE  # type: ignore[union-attr]
        assert (await e.storage_stats()).multipart_uploads == 0
        await e.close()

    asyncio.run(first())
    asyncio.run(second())
    asyncio.run(third())


def test_completed_upload_gets_its_ttl() -> None:
    now = [1_700_000_000.0]
    engine = MemoryEngine(max_memory=1 << 30, clock=lambda: now[0])

    async def scenario() -> None:
        await engine.start()
        try:
            await engine.create_bucket("bkt", OWNER, "us-east-1")
            upload = await engine.create_multipart_upload("bkt", "mp", headers={"x-amz-meta-ttl-seconds": "60"})
            part = await engine.upload_part("bkt", "mp", upload.upload_id, 1, chunks(b"data"))
            await engine.complete_multipart_upload("bkt", "mp", upload.upload_id, completed([(1, part.etag)]))
            await engine.copy_object("bkt", "mp", "bkt", "copy", headers={})  # REPLACE without a TTL
            now[0] += 61
            with pytest.raises(errors.NoSuchKey):
                await engine.head_object("bkt", "mp")
            assert (await engine.head_object("bkt", "copy")).size == 4
        finally:
            await engine.close()

    asyncio.run(scenario())


def test_parts_count_against_max_memory_and_are_never_evicted() -> None:
    """Parts are charged like objects: they may evict cached objects, but once parts and bodies in
    flight alone would exceed max_memory an upload gets SlowDown."""
    mib = 1024 * 1024
    six = os.urandom(6 * mib)

    async def scenario() -> None:
        e = MemoryEngine(max_memory=16 * mib)
        await e.start()
        try:
            await e.create_bucket("bkt", OWNER, "us-east-1")
            for key in ("cached-1", "cached-2"):
                await e.put_object("bkt", key, chunks(b"c" * mib), headers={})
            first = await e.create_multipart_upload("bkt", "first", headers={})
            p1 = await e.upload_part("bkt", "first", first.upload_id, 1, chunks(six))
            await e.upload_part("bkt", "first", first.upload_id, 2, chunks(six))
            assert e.stats.evictions == 0  # 12 MiB of parts + 2 MiB of objects fit
            # A part that fits once the least recently used cached object is evicted is stored.
            second = await e.create_multipart_upload("bkt", "second", headers={})
            await e.upload_part("bkt", "second", second.upload_id, 1, chunks(b"s" * (2 * mib + mib // 2)))
            assert e.stats.evictions == 1
            assert await read(e, "bkt", "cached-2") == b"c" * mib
            # Parts are never evicted: once they and the body in flight exceed the limit, SlowDown.
            with pytest.raises(errors.SlowDown):
                await e.upload_part("bkt", "second", second.upload_id, 2, chunks(six))
            assert e.stats.reserved_bytes == 0
            assert e.stats.used_bytes <= e.max_memory
            assert [p.part_number for p in (await e.list_parts("bkt", "second", second.upload_id)).parts] == [1]
            # Aborting releases its parts; completing turns parts into the object without counting twice.
            parts_before = e.stats.part_bytes
            await e.abort_multipart_upload("bkt", "second", second.upload_id)
            assert parts_before - e.stats.part_bytes > 2 * mib
            info = await e.complete_multipart_upload("bkt", "first", first.upload_id, completed([(1, p1.etag)]))
            assert e.stats.part_bytes == 0
            charged = e.stats.used_bytes - sum(
                o.charge for o in e._buckets["bkt"].index.values() if o.info.key != "first"
            )
            assert info.size <= charged < info.size + 4096
        finally:
            await e.close()

    asyncio.run(scenario())


def test_many_uploads_hold_at_most_max_memory() -> None:
    """The report: 20 uploads x 2 parts of 6 MiB under a 16 MiB limit were all accepted."""
    mib = 1024 * 1024
    six = os.urandom(6 * mib)

    async def scenario() -> None:
        e = MemoryEngine(max_memory=16 * mib)
        await e.start()
        try:
            await e.create_bucket("bkt", OWNER, "us-east-1")
            accepted = refused = 0
            for i in range(20):
                upload = await e.create_multipart_upload("bkt", f"k{i}", headers={})
                for number in (1, 2):
                    try:
                        await e.upload_part("bkt", f"k{i}", upload.upload_id, number, chunks(six))
                        accepted += 1
                    except errors.SlowDown:
                        refused += 1
                    assert e.stats.used_bytes + e.stats.reserved_bytes <= e.max_memory
            assert (accepted, refused) == (2, 38)
        finally:
            await e.close()

    asyncio.run(scenario())
