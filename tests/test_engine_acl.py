"""Per-version ACL documents and the multipart upload owner: the storage API contract
(coffer/storage/api.py: ObjectInfo.acl, UploadInfo.acl/owner, put_object_acl), run against
every engine kind of tests/engines.py; the persistent ones are also reopened.

The engine stores the document opaquely: these tests use arbitrary JSON-able documents.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from coffer.storage import errors
from coffer.storage.api import NULL_VERSION, VERSIONING_ENABLED, CompletedPart, Engine, ObjectInfo
from coffer.storage.disk import records
from coffer.storage.memory.codec import object_from, object_meta
from coffer.storage.memory.wal import PUT_OBJECT, SET_ACL, read_records, segments
from coffer.storage.versioning import new_version_id
from tests.engines import ENGINE_OWNER, EngineKind, crash_memory, persistent_memory, put, read, write_old_log
from tests.helpers import chunks

OWNER = ENGINE_OWNER  # owns the plain and versioned buckets (conftest.py)
OTHER = "someone-else"
REGION = "us-east-1"
PUBLIC: dict[str, Any] = {"owner": OWNER, "grants": [{"grantee": {"uri": "AllUsers"}, "permission": "READ"}]}
PRIVATE: dict[str, Any] = {"owner": OWNER, "grants": [{"grantee": {"id": OWNER}, "permission": "FULL_CONTROL"}]}
WRITER: dict[str, Any] = {"owner": OTHER, "grants": [{"grantee": {"id": OTHER}, "permission": "FULL_CONTROL"}]}


async def _open_info(engine: Engine, bucket: str, key: str, version_id: str | None = None) -> ObjectInfo:
    opened = await engine.open_object(bucket, key, version_id=version_id)
    try:
        return opened.info
    finally:
        opened.close()


# ---------------------------------------------------------------------- put, head, open


async def test_put_stores_the_acl(engine: Engine, plain: str) -> None:
    info = await put(engine, plain, "public", b"data", acl=PUBLIC)
    assert info.acl == PUBLIC
    assert (await engine.head_object(plain, "public")).acl == PUBLIC
    assert (await _open_info(engine, plain, "public")).acl == PUBLIC
    assert await read(engine, plain, "public") == b"data"
    # A body past the disk engine's inline threshold (a blob file) keeps it too.
    await put(engine, plain, "large", b"x" * 5000, acl=PRIVATE)
    assert (await engine.head_object(plain, "large")).acl == PRIVATE
    assert (await _open_info(engine, plain, "large")).acl == PRIVATE


async def test_put_without_acl_is_the_default(engine: Engine, plain: str) -> None:
    info = await put(engine, plain, "k", b"data")
    assert info.acl is None
    assert (await engine.head_object(plain, "k")).acl is None
    assert (await _open_info(engine, plain, "k")).acl is None
    # A new put replaces the version with its own ACL (none here): never the old one's.
    await put(engine, plain, "k", b"one", acl=PUBLIC)
    await put(engine, plain, "k", b"two")
    assert (await engine.head_object(plain, "k")).acl is None


# ---------------------------------------------------------------------- put_object_acl


async def test_put_object_acl_on_the_latest(engine: Engine, plain: str) -> None:
    info = await put(engine, plain, "k", b"data", tags={"t": "1"}, headers={"content-type": "text/plain"})
    await _open_info(engine, plain, "k")  # fill the disk engine's read cache
    changed = await engine.put_object_acl(plain, "k", PUBLIC)
    assert changed.acl == PUBLIC and changed.version_id == NULL_VERSION
    for seen in (await engine.head_object(plain, "k"), await _open_info(engine, plain, "k")):
        assert seen.acl == PUBLIC
        assert (seen.etag, seen.last_modified, seen.tags, seen.size) == (
            info.etag,
            info.last_modified,
            {"t": "1"},
            4,
        )
        assert seen.headers == {"content-type": "text/plain"}
    assert await read(engine, plain, "k") == b"data"
    # Replaced again, then back to the default.
    await engine.put_object_acl(plain, "k", PRIVATE)
    assert (await engine.head_object(plain, "k")).acl == PRIVATE
    reset = await engine.put_object_acl(plain, "k", None)
    assert reset.acl is None
    assert (await engine.head_object(plain, "k")).acl is None
    assert (await _open_info(engine, plain, "k")).acl is None
    assert (await engine.head_object(plain, "k")).etag == info.etag


async def test_put_object_acl_keeps_tags_and_tagging_keeps_the_acl(engine: Engine, plain: str) -> None:
    await put(engine, plain, "k", b"data", acl=PUBLIC)
    await engine.put_object_tagging(plain, "k", {"a": "b"})
    head = await engine.head_object(plain, "k")
    assert (head.acl, head.tags) == (PUBLIC, {"a": "b"})
    await engine.put_object_acl(plain, "k", PRIVATE)
    head = await engine.head_object(plain, "k")
    assert (head.acl, head.tags) == (PRIVATE, {"a": "b"})


async def test_put_object_acl_by_version(engine: Engine, versioned: str) -> None:
    v1 = await put(engine, versioned, "k", b"one", acl=PRIVATE, tags={"gen": "1"})
    v2 = await put(engine, versioned, "k", b"two")
    changed = await engine.put_object_acl(versioned, "k", PUBLIC, version_id=v1.version_id)
    assert (changed.version_id, changed.acl) == (v1.version_id, PUBLIC)
    old = await engine.head_object(versioned, "k", version_id=v1.version_id)
    assert (old.acl, old.etag, old.last_modified, old.tags) == (PUBLIC, v1.etag, v1.last_modified, {"gen": "1"})
    assert (await _open_info(engine, versioned, "k", v1.version_id)).acl == PUBLIC
    # The other version is unchanged.
    assert (await engine.head_object(versioned, "k")).acl is None
    assert (await engine.head_object(versioned, "k", version_id=v2.version_id)).acl is None
    # None: the latest version.
    latest = await engine.put_object_acl(versioned, "k", WRITER)
    assert latest.version_id == v2.version_id
    assert (await engine.head_object(versioned, "k")).acl == WRITER
    assert (await engine.head_object(versioned, "k", version_id=v1.version_id)).acl == PUBLIC
    # Versions keep their order and number.
    page = await engine.list_object_versions(versioned)
    assert [(e.version_id, e.is_latest) for e in page.entries] == [(v2.version_id, True), (v1.version_id, False)]
    await engine.put_object_acl(versioned, "k", None, version_id=v1.version_id)
    assert (await engine.head_object(versioned, "k", version_id=v1.version_id)).acl is None
    assert (await engine.head_object(versioned, "k")).acl == WRITER


async def test_put_object_acl_errors(engine: Engine, plain: str, versioned: str) -> None:
    with pytest.raises(errors.NoSuchBucket):
        await engine.put_object_acl("missing", "k", PUBLIC)
    with pytest.raises(errors.NoSuchKey):
        await engine.put_object_acl(plain, "nope", PUBLIC)
    v1 = await put(engine, versioned, "k", b"one")
    with pytest.raises(errors.NoSuchVersion):
        await engine.put_object_acl(versioned, "k", PUBLIC, version_id=new_version_id())
    with pytest.raises(errors.NoSuchVersion):
        await engine.put_object_acl(versioned, "nope", PUBLIC, version_id=new_version_id())
    marker = await engine.delete_object(versioned, "k")
    with pytest.raises(errors.NoSuchKey) as missing:
        await engine.put_object_acl(versioned, "k", PUBLIC)
    assert missing.value.marker is not None and missing.value.marker.version_id == marker.version_id
    with pytest.raises(errors.MethodNotAllowed):
        await engine.put_object_acl(versioned, "k", PUBLIC, version_id=marker.version_id)
    # The object version under the marker can still be changed by its id.
    assert (await engine.put_object_acl(versioned, "k", PUBLIC, version_id=v1.version_id)).acl == PUBLIC


# ---------------------------------------------------------------------- copies


async def test_copy_gets_the_acl_given_never_the_sources(engine: Engine, plain: str, versioned: str) -> None:
    await put(engine, plain, "src", b"source body", acl=PUBLIC)
    copied = await engine.copy_object(plain, "src", plain, "default", headers=None)
    assert copied.acl is None
    assert (await engine.head_object(plain, "default")).acl is None
    given = await engine.copy_object(plain, "src", versioned, "given", headers=None, acl=WRITER)
    assert given.acl == WRITER
    assert (await engine.head_object(versioned, "given")).acl == WRITER
    assert await read(engine, versioned, "given") == b"source body"
    assert (await engine.head_object(plain, "src")).acl == PUBLIC  # the source keeps its own
    # A copy onto itself (a metadata replace) takes the new ACL too.
    await engine.copy_object(plain, "src", plain, "src", headers={"x-amz-meta-a": "1"}, acl=PRIVATE)
    assert (await engine.head_object(plain, "src")).acl == PRIVATE
    await engine.copy_object(plain, "src", plain, "src", headers={"x-amz-meta-a": "2"})
    assert (await engine.head_object(plain, "src")).acl is None


async def test_copy_of_a_multipart_object_gets_the_acl_given(engine: Engine, plain: str) -> None:
    upload = await engine.create_multipart_upload(plain, "mp", headers={}, acl=PUBLIC)
    part = await engine.upload_part(plain, "mp", upload.upload_id, 1, chunks(b"p" * 2000))
    await engine.complete_multipart_upload(plain, "mp", upload.upload_id, [CompletedPart(1, part.etag)])
    copied = await engine.copy_object(plain, "mp", plain, "copy", headers=None, acl=PRIVATE)
    assert copied.acl == PRIVATE
    assert (await engine.head_object(plain, "copy")).acl == PRIVATE
    assert (await engine.head_object(plain, "mp")).acl == PUBLIC


# ---------------------------------------------------------------------- multipart uploads


async def test_upload_owner_and_acl(engine: Engine, versioned: str) -> None:
    upload = await engine.create_multipart_upload(versioned, "mp", headers={}, owner=OTHER, acl=WRITER)
    assert (upload.owner, upload.acl) == (OTHER, WRITER)
    got = await engine.get_upload(versioned, "mp", upload.upload_id)
    assert (got.owner, got.acl) == (OTHER, WRITER)
    part = await engine.upload_part(versioned, "mp", upload.upload_id, 1, chunks(b"part body"))
    parts = await engine.list_parts(versioned, "mp", upload.upload_id)
    assert (parts.upload.owner, parts.upload.acl) == (OTHER, WRITER)
    listed = await engine.list_multipart_uploads(versioned)
    assert [(u.upload_id, u.owner, u.acl) for u in listed.uploads] == [(upload.upload_id, OTHER, WRITER)]
    done = await engine.complete_multipart_upload(versioned, "mp", upload.upload_id, [CompletedPart(1, part.etag)])
    assert done.acl == WRITER
    assert (await engine.head_object(versioned, "mp")).acl == WRITER
    assert (await engine.head_object(versioned, "mp", version_id=done.version_id)).acl == WRITER
    assert (await _open_info(engine, versioned, "mp")).acl == WRITER
    # A retried Complete answers the same, ACL included.
    again = await engine.complete_multipart_upload(versioned, "mp", upload.upload_id, [CompletedPart(1, part.etag)])
    assert (again.version_id, again.acl) == (done.version_id, WRITER)


async def test_upload_owner_defaults_to_the_bucket_owner(engine: Engine, plain: str) -> None:
    upload = await engine.create_multipart_upload(plain, "mp", headers={})
    assert (upload.owner, upload.acl) == (OWNER, None)
    got = await engine.get_upload(plain, "mp", upload.upload_id)
    assert (got.owner, got.acl) == (OWNER, None)
    listed = await engine.list_multipart_uploads(plain)
    assert [(u.owner, u.acl) for u in listed.uploads] == [(OWNER, None)]
    part = await engine.upload_part(plain, "mp", upload.upload_id, 1, chunks(b"body"))
    done = await engine.complete_multipart_upload(plain, "mp", upload.upload_id, [CompletedPart(1, part.etag)])
    assert done.acl is None
    assert (await engine.head_object(plain, "mp")).acl is None


# ---------------------------------------------------------------------- persistence


async def test_acls_survive_reopen(engine: Engine, engine_kind: EngineKind, engine_root: Path, versioned: str) -> None:
    if not engine_kind.persistent:
        pytest.skip("engine keeps nothing across restarts")
    v1 = await put(engine, versioned, "k", b"one", acl=PRIVATE)
    v2 = await put(engine, versioned, "k", b"two" * 1000, acl=PUBLIC)
    await engine.put_object_acl(versioned, "k", WRITER, version_id=v1.version_id)
    await put(engine, versioned, "reset", b"r", acl=PUBLIC)
    await engine.put_object_acl(versioned, "reset", None)
    await put(engine, versioned, "plain", b"p")
    upload = await engine.create_multipart_upload(versioned, "mp", headers={}, owner=OTHER, acl=PUBLIC)
    part = await engine.upload_part(versioned, "mp", upload.upload_id, 1, chunks(b"part"))
    default_upload = await engine.create_multipart_upload(versioned, "mp2", headers={})
    await engine.close()

    again = engine_kind.make(engine_root)
    await again.start()
    try:
        assert (await again.head_object(versioned, "k", version_id=v1.version_id)).acl == WRITER
        assert (await again.head_object(versioned, "k", version_id=v2.version_id)).acl == PUBLIC
        assert (await again.head_object(versioned, "k")).acl == PUBLIC
        assert (await again.head_object(versioned, "reset")).acl is None
        assert (await again.head_object(versioned, "plain")).acl is None
        got = await again.get_upload(versioned, "mp", upload.upload_id)
        assert (got.owner, got.acl) == (OTHER, PUBLIC)
        got = await again.get_upload(versioned, "mp2", default_upload.upload_id)
        assert (got.owner, got.acl) == (OWNER, None)
        listed = await again.list_multipart_uploads(versioned)
        assert [(u.key, u.owner, u.acl) for u in listed.uploads] == [("mp", OTHER, PUBLIC), ("mp2", OWNER, None)]
        done = await again.complete_multipart_upload(versioned, "mp", upload.upload_id, [CompletedPart(1, part.etag)])
        assert done.acl == PUBLIC
        await again.put_object_acl(versioned, "k", PRIVATE, version_id=v2.version_id)
        await again.close()
        third = engine_kind.make(engine_root)
        await third.start()
        try:
            assert (await third.head_object(versioned, "mp")).acl == PUBLIC
            assert (await third.head_object(versioned, "k")).acl == PRIVATE
            assert (await third.head_object(versioned, "k", version_id=v1.version_id)).acl == WRITER
        finally:
            await third.close()
    finally:
        await again.close()


# ---------------------------------------------------------------------- memory engine: the log and its formats


def test_memory_log_replays_acls_after_a_crash(tmp_path: Path) -> None:
    """No shutdown snapshot: the PUT_OBJECT, SET_ACL and CREATE_UPLOAD records alone bring the ACLs back;
    then a snapshot holds them too."""

    async def scenario() -> None:
        e = persistent_memory(tmp_path)
        await e.start()
        await e.create_bucket("b", OWNER, REGION)
        await e.put_bucket_versioning("b", VERSIONING_ENABLED)
        v1 = await put(e, "b", "k", b"one", acl=PUBLIC)
        v2 = await put(e, "b", "k", b"two")
        await e.put_object_acl("b", "k", PRIVATE, version_id=v1.version_id)
        await e.put_object_acl("b", "k", WRITER)
        upload = await e.create_multipart_upload("b", "mp", headers={}, owner=OTHER, acl=PUBLIC)
        part = await e.upload_part("b", "mp", upload.upload_id, 1, chunks(b"part"))
        crash_memory(e)
        ops = [r.op for _seq, path in segments(tmp_path) for r, _end in read_records(path)]
        assert ops.count(SET_ACL) == 2

        e = persistent_memory(tmp_path)
        await e.start()
        try:
            assert (await e.head_object("b", "k", version_id=v1.version_id)).acl == PRIVATE
            assert (await e.head_object("b", "k", version_id=v2.version_id)).acl == WRITER
            got = await e.get_upload("b", "mp", upload.upload_id)
            assert (got.owner, got.acl) == (OTHER, PUBLIC)
            done = await e.complete_multipart_upload("b", "mp", upload.upload_id, [CompletedPart(1, part.etag)])
            assert done.acl == PUBLIC
            await e.snapshot()
        finally:
            crash_memory(e)

        e = persistent_memory(tmp_path)
        await e.start()
        try:
            assert (await e.head_object("b", "k", version_id=v1.version_id)).acl == PRIVATE
            assert (await e.head_object("b", "k")).acl == WRITER
            assert (await e.head_object("b", "mp")).acl == PUBLIC
            # The completed upload's remembered answer carries the ACL too.
            assert e.uploads._completed[upload.upload_id][0].acl == PUBLIC
        finally:
            await e.close()

    asyncio.run(scenario())


def _info(**kwargs: Any) -> ObjectInfo:
    return ObjectInfo("b", "k", 3, "e" * 32, 2.0, **kwargs)


def test_memory_codec_keeps_older_records_valid() -> None:
    # Records without an ACL encode as before: position 17 is dropped at its default.
    assert len(object_meta(_info(), OWNER, None, ())) == 13
    tagged = object_meta(_info(tags={"a": "b"}), OWNER, None, ())
    assert len(tagged) == 14
    with_acl = object_meta(_info(acl=PUBLIC), OWNER, None, ())
    assert len(with_acl) == 18 and with_acl[17] == PUBLIC
    assert object_from(json.loads(json.dumps(with_acl)))[0].acl == PUBLIC
    # Records of every older length (13 .. 17 positions) still decode, with the default ACL.
    base: list[Any] = ["b", "k", 3, "e" * 32, 2.0, "null", "STANDARD", OWNER, {}, {}, "FULL_OBJECT", None, []]
    for extra in ([], [{"x": "y"}], [{}, None], [{}, None, 1], [{}, None, 0, 5]):
        info, owner, _expires, _parts = object_from([*base, *extra])
        assert (info.acl, owner) == (None, OWNER)
    assert object_from([*base, {}, None, 0, 5])[0].parts_count == 5
    # An answer without parts and with an ACL keeps both.
    answer = object_meta(_info(acl=PRIVATE, parts_count=3), "", None, None)
    decoded = object_from(answer)[0]
    assert (decoded.parts_count, decoded.acl) == (3, PRIVATE)


def test_memory_replays_an_old_put_record_without_an_acl(tmp_path: Path) -> None:
    """A PUT_OBJECT record of the format before ACLs (17 positions) replays with the default ACL."""
    from coffer.storage.memory.wal import CREATE_BUCKET, Record

    meta: list[Any] = ["old", "k", 3, "e" * 32, 2.0, "null", "STANDARD", OWNER, {}, {}, "FULL_OBJECT", None, []]
    meta += [{"t": "1"}, None, 0, None]
    log = [
        Record(CREATE_BUCKET, {"name": "old", "created": 1.0, "owner": OWNER, "region": REGION}),
        Record(PUT_OBJECT, meta, (b"abc",)),
    ]
    write_old_log(tmp_path, log)

    async def scenario() -> None:
        e = persistent_memory(tmp_path)
        await e.start()
        try:
            head = await e.head_object("old", "k")
            assert (head.acl, head.tags) == (None, {"t": "1"})
            assert await read(e, "old", "k") == b"abc"
            await e.put_object_acl("old", "k", PUBLIC)
        finally:
            await e.close()
        e = persistent_memory(tmp_path)
        await e.start()
        try:
            assert (await e.head_object("old", "k")).acl == PUBLIC
        finally:
            await e.close()

    asyncio.run(scenario())


# ---------------------------------------------------------------------- disk engine: the extra column


def test_disk_extra_omits_a_default_acl() -> None:
    """Rows without an ACL stay as before (no "a" key): no migration, older code reads them."""
    assert "a" not in json.loads(records.encode_extra(_info(), False))
    doc = json.loads(records.encode_extra(_info(acl=PUBLIC), False))
    assert doc["a"] == PUBLIC
