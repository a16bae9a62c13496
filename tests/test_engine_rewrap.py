"""Engine.put_object_encoding (issue 12, ``coffer kms rewrap``): a version's encoding document
replaced in one atomic update, everything else about the version unchanged; on every engine
kind of tests/engines.py, the persistent ones reopened (the memory engine also from its log alone).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from coffer.storage import errors
from coffer.storage.api import VERSIONING_ENABLED, Engine, ObjectInfo
from tests.engines import EngineKind, crash_memory, persistent_memory, put
from tests.test_engine_encoding import DOC, HUGE, LARGE, OWNER, REGION, SMALL, Toy, put_encoded, read_range

NEW_DOC: dict[str, Any] = {**DOC, "key-id": "k1", "w": "re-wrapped"}
ACL = {"owner": OWNER, "grants": []}


def unchanged(before: ObjectInfo, after: ObjectInfo) -> None:
    """Everything but the document is as it was."""
    for name in (
        "bucket",
        "key",
        "size",
        "etag",
        "last_modified",
        "version_id",
        "storage_class",
        "headers",
        "checksums",
        "checksum_type",
        "parts_count",
        "tags",
        "delete_marker",
        "lock",
        "acl",
        "stored_size",
    ):
        assert getattr(after, name) == getattr(before, name), name


@pytest.mark.parametrize("data", [SMALL, LARGE, HUGE, b""], ids=["inline", "file", "chunks", "empty"])
async def test_put_object_encoding_replaces_the_document_only(engine: Engine, plain: str, data: bytes) -> None:
    toy = Toy(data)
    await put_encoded(engine, plain, "k", toy, tags={"t": "1"}, headers={"content-type": "a/b"})
    await engine.put_object_acl(plain, "k", ACL)
    before = await engine.head_object(plain, "k")
    await read_range(engine, plain, "k")  # fill the disk engine's read cache: the change must show anyway
    changed = await engine.put_object_encoding(plain, "k", NEW_DOC, version_id=before.version_id)
    assert changed.encoding == NEW_DOC
    unchanged(before, changed)
    for info in (await engine.head_object(plain, "k"), (await read_range(engine, plain, "k"))[0]):
        assert info.encoding == NEW_DOC
        unchanged(before, info)
    assert (await read_range(engine, plain, "k"))[1] == toy.stored
    versions = (await engine.list_object_versions(plain)).entries
    assert [(e.key, e.size, e.etag, e.last_modified) for e in versions] == [
        ("k", len(data), before.etag, before.last_modified)
    ]


async def test_only_the_named_version_changes(engine: Engine, versioned: str) -> None:
    old, new = Toy(SMALL), Toy(LARGE)
    v1 = await put_encoded(engine, versioned, "k", old)
    v2 = await put_encoded(engine, versioned, "k", new)
    await engine.put_object_encoding(versioned, "k", NEW_DOC, version_id=v1.version_id)
    assert (await engine.head_object(versioned, "k", version_id=v1.version_id)).encoding == NEW_DOC
    latest = await engine.head_object(versioned, "k")
    assert (latest.version_id, latest.encoding) == (v2.version_id, DOC)
    assert (await read_range(engine, versioned, "k", version_id=v1.version_id))[1] == old.stored
    # The latest by its id too, then the null version of a plain-style key.
    await engine.put_object_encoding(versioned, "k", {"x": 1}, version_id=v2.version_id)
    assert (await engine.head_object(versioned, "k")).encoding == {"x": 1}
    assert (await engine.head_object(versioned, "k", version_id=v1.version_id)).encoding == NEW_DOC


async def test_refusals_as_head_object(engine: Engine, plain: str, versioned: str) -> None:
    info = await put(engine, plain, "plain", b"stored as sent")
    with pytest.raises(errors.InvalidRequest):
        await engine.put_object_encoding(plain, "plain", NEW_DOC, version_id=info.version_id)
    head = await engine.head_object(plain, "plain")
    assert (head.encoding, head.stored_size) == (None, None)

    await put_encoded(engine, versioned, "k", Toy(SMALL))
    marker = await engine.delete_object(versioned, "k")
    assert marker.version_id is not None
    with pytest.raises(errors.MethodNotAllowed):
        await engine.put_object_encoding(versioned, "k", NEW_DOC, version_id=marker.version_id)
    for bucket, key, version in ((versioned, "k", "nope"), (versioned, "missing", "nope"), ("no-bucket", "k", "null")):
        with pytest.raises(errors.StorageError) as expected:
            await engine.head_object(bucket, key, version_id=version)
        with pytest.raises(type(expected.value)):
            await engine.put_object_encoding(bucket, key, NEW_DOC, version_id=version)


async def test_object_lock_does_not_stop_a_rewrap(engine: Engine) -> None:
    """A retained or held version's document is not its data: the re-wrap goes through, the lock stays."""
    await engine.create_bucket("locked", OWNER, REGION, object_lock=True)
    info = await put_encoded(engine, "locked", "k", Toy(LARGE))
    await engine.put_object_legal_hold("locked", "k", True, version_id=info.version_id)
    await engine.put_object_retention("locked", "k", "COMPLIANCE", 4102444800.0, version_id=info.version_id)
    before = await engine.head_object("locked", "k", version_id=info.version_id)
    changed = await engine.put_object_encoding("locked", "k", NEW_DOC, version_id=info.version_id)
    assert changed.encoding == NEW_DOC
    unchanged(before, changed)
    assert (changed.lock.mode, changed.lock.legal_hold) == ("COMPLIANCE", True)


async def test_the_new_document_survives_reopen(
    engine: Engine, engine_kind: EngineKind, engine_root: Path, versioned: str
) -> None:
    if not engine_kind.persistent:
        pytest.skip("engine keeps nothing across restarts")
    toy = Toy(LARGE)
    v1 = await put_encoded(engine, versioned, "k", toy)
    v2 = await put_encoded(engine, versioned, "k", Toy(SMALL))
    await engine.put_object_encoding(versioned, "k", NEW_DOC, version_id=v1.version_id)
    await engine.close()
    again = engine_kind.make(engine_root)
    await again.start()
    try:
        assert (await again.head_object(versioned, "k", version_id=v1.version_id)).encoding == NEW_DOC
        assert (await again.head_object(versioned, "k", version_id=v2.version_id)).encoding == DOC
        assert (await read_range(again, versioned, "k", version_id=v1.version_id))[1] == toy.stored
    finally:
        await again.close()


def test_memory_log_alone_and_snapshot_keep_the_new_document(tmp_path: Path) -> None:
    """No shutdown snapshot: the SET_ENCODING record is replayed; then a snapshot holds it."""
    toy = Toy(HUGE)

    async def scenario() -> None:
        e = persistent_memory(tmp_path)
        await e.start()
        await e.create_bucket("b", OWNER, REGION)
        await e.put_bucket_versioning("b", VERSIONING_ENABLED)
        v1 = await put_encoded(e, "b", "k", toy)
        await put_encoded(e, "b", "k", Toy(SMALL))
        await e.put_object_tagging("b", "k", {"t": "1"}, version_id=v1.version_id)
        await e.put_object_encoding("b", "k", NEW_DOC, version_id=v1.version_id)
        crash_memory(e)

        for step in ("log", "snapshot"):
            e = persistent_memory(tmp_path)
            await e.start()
            try:
                info = await e.head_object("b", "k", version_id=v1.version_id)
                assert (info.encoding, info.tags, info.stored_size) == (NEW_DOC, {"t": "1"}, len(toy.stored)), step
                assert (await e.head_object("b", "k")).encoding == DOC
                assert (await read_range(e, "b", "k", version_id=v1.version_id))[1] == toy.stored
                if step == "log":
                    await e.snapshot()
            finally:
                crash_memory(e)

    asyncio.run(scenario())
