"""Versioning in the disk engine: what the conformance suite (test_engine_versioning.py) cannot see.

The schema-4 -> 5 migration, the SQL each read and listing runs (EXPLAIN QUERY PLAN), the
hot paths of unversioned buckets staying one statement, the TTL reaper promoting the next
newest version, blob files released with the versions that held them, and concurrent
versioned writers (two engines on one directory, as two worker processes).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from coffer.storage import errors
from coffer.storage.api import NULL_VERSION, VERSIONING_ENABLED, VERSIONING_SUSPENDED, CompletedPart, DeleteResult
from coffer.storage.disk import DiskEngine
from coffer.storage.disk.metadata import SCHEMA_VERSION
from tests.engines import blob_files, put, read
from tests.helpers import chunks

OWNER = "owner-1"

# The schema a Coffer with SCHEMA_VERSION 4 created (metadata.py before versioning).
SCHEMA_4 = """
CREATE TABLE IF NOT EXISTS buckets(
    name TEXT PRIMARY KEY,
    created REAL NOT NULL,
    owner TEXT NOT NULL,
    region TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS objects(
    id INTEGER PRIMARY KEY,
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    version TEXT NOT NULL DEFAULT 'null',
    is_latest INTEGER NOT NULL DEFAULT 1,
    is_delete_marker INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    last_modified REAL NOT NULL,
    storage_class TEXT NOT NULL,
    owner TEXT NOT NULL,
    extra TEXT NOT NULL,
    expires REAL,
    blob TEXT,
    data BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS objects_key ON objects(bucket, key, version);
CREATE INDEX IF NOT EXISTS objects_blob ON objects(blob) WHERE blob IS NOT NULL;
CREATE TABLE IF NOT EXISTS bucket_stats(
    bucket TEXT PRIMARY KEY,
    objects INTEGER NOT NULL,
    bytes INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS objects_stats_insert AFTER INSERT ON objects WHEN NEW.is_delete_marker=0 BEGIN
    INSERT INTO bucket_stats(bucket, objects, bytes) VALUES (NEW.bucket, 1, NEW.size)
    ON CONFLICT(bucket) DO UPDATE SET objects=objects+1, bytes=bytes+excluded.bytes;
END;
CREATE TRIGGER IF NOT EXISTS objects_stats_delete AFTER DELETE ON objects WHEN OLD.is_delete_marker=0 BEGIN
    UPDATE bucket_stats SET objects=objects-1, bytes=bytes-OLD.size WHERE bucket=OLD.bucket;
END;
CREATE TRIGGER IF NOT EXISTS objects_stats_update AFTER UPDATE OF bucket, size, is_delete_marker ON objects BEGIN
    UPDATE bucket_stats SET objects=objects-1, bytes=bytes-OLD.size
    WHERE bucket=OLD.bucket AND OLD.is_delete_marker=0;
    INSERT INTO bucket_stats(bucket, objects, bytes) SELECT NEW.bucket, 1, NEW.size WHERE NEW.is_delete_marker=0
    ON CONFLICT(bucket) DO UPDATE SET objects=objects+1, bytes=bytes+excluded.bytes;
END;
CREATE TRIGGER IF NOT EXISTS buckets_stats_delete AFTER DELETE ON buckets BEGIN
    DELETE FROM bucket_stats WHERE bucket=OLD.name;
END;
CREATE TABLE IF NOT EXISTS uploads(
    upload_id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    initiated REAL NOT NULL,
    storage_class TEXT NOT NULL,
    owner TEXT NOT NULL,
    extra TEXT NOT NULL,
    completed TEXT
);
CREATE INDEX IF NOT EXISTS uploads_key ON uploads(bucket, key, upload_id);
CREATE TABLE IF NOT EXISTS parts(
    upload_id TEXT NOT NULL,
    part_number INTEGER NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    last_modified REAL NOT NULL,
    checksums TEXT NOT NULL,
    blob TEXT,
    data BLOB,
    PRIMARY KEY(upload_id, part_number)
);
CREATE INDEX IF NOT EXISTS parts_blob ON parts(blob) WHERE blob IS NOT NULL;
CREATE TABLE IF NOT EXISTS object_parts(
    object_id INTEGER NOT NULL,
    part_number INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    checksums TEXT NOT NULL,
    blob TEXT,
    data BLOB,
    PRIMARY KEY(object_id, part_number)
);
CREATE INDEX IF NOT EXISTS object_parts_blob ON object_parts(blob) WHERE blob IS NOT NULL;
CREATE INDEX IF NOT EXISTS objects_expires ON objects(expires) WHERE expires IS NOT NULL;
"""


def _schema_4_database(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(SCHEMA_4)
    conn.execute("INSERT INTO buckets(name, created, owner, region) VALUES ('old', 1.0, ?, 'us-east-1')", (OWNER,))
    extra = '{"h":{"content-type":"text/plain"},"c":{},"ct":"FULL_OBJECT","t":{"kept":"yes"}}'
    for key, body in (("a.txt", b"hello"), ("dir/b.txt", b"world!")):
        conn.execute(
            "INSERT INTO objects(bucket, key, size, etag, last_modified, storage_class, owner, extra, data)"
            " VALUES ('old', ?, ?, 'etag-' || ?, 2.0, 'STANDARD', ?, ?, ?)",
            (key.encode(), len(body), key, OWNER, extra, body),
        )
    conn.execute("PRAGMA user_version=4")
    conn.close()


async def test_schema_4_database_opens_and_versions(tmp_path: Path) -> None:
    tmp_path.chmod(0o700)
    _schema_4_database(tmp_path / "metadata.sqlite3")
    engine = DiskEngine(tmp_path, fsync=False)
    await engine.start()
    try:
        bucket = await engine.get_bucket("old")
        assert (bucket.versioning, bucket.object_lock) == (None, False)
        head = await engine.head_object("old", "a.txt")
        assert (head.size, head.etag, head.version_id, head.tags) == (5, "etag-a.txt", NULL_VERSION, {"kept": "yes"})
        assert head.headers == {"content-type": "text/plain"}
        assert await read(engine, "old", "dir/b.txt") == b"world!"
        assert [e.key for e in (await engine.list_objects("old")).entries] == ["a.txt", "dir/b.txt"]
        page = await engine.list_object_versions("old")
        assert [(e.key, e.version_id, e.is_latest) for e in page.entries] == [
            ("a.txt", NULL_VERSION, True),
            ("dir/b.txt", NULL_VERSION, True),
        ]
        # The old rows take part in versioning like any null version.
        await engine.put_bucket_versioning("old", VERSIONING_ENABLED)
        newer = await put(engine, "old", "a.txt", b"new")
        page = await engine.list_object_versions("old", prefix="a")
        assert [(e.version_id, e.is_latest) for e in page.entries] == [(newer.version_id, True), (NULL_VERSION, False)]
        assert (await engine.storage_stats()).objects == 3
        await engine.delete_object("old", "a.txt", version_id=newer.version_id)
        assert await read(engine, "old", "a.txt") == b"hello"
    finally:
        await engine.close()
    conn = sqlite3.connect(tmp_path / "metadata.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"objects_latest", "objects_noncurrent", "objects_version_ids", "objects_expires"} <= indexes
    assert "objects_key" not in indexes  # replaced by objects_version_ids
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


# ---------------------------------------------------------------------- SQL


def _traced(conn: sqlite3.Connection, action: Callable[[], object]) -> list[str]:
    """The statements ``action`` runs on ``conn`` (with their parameters inlined)."""
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        action()
    finally:
        conn.set_trace_callback(None)
    return [s for s in seen if s.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE"))]


def _plan(conn: sqlite3.Connection, statement: str) -> str:
    return " | ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + statement))


async def _versioned_fill(engine: DiskEngine) -> None:
    await engine.create_bucket("v", OWNER, "us-east-1")
    await engine.put_bucket_versioning("v", VERSIONING_ENABLED)
    for key in ("a", "b/1", "b/2", "c"):
        for i in range(3):
            await put(engine, "v", key, f"{key}{i}".encode())
    await engine.delete_object("v", "c")


async def test_list_queries_use_their_indexes(tmp_path: Path) -> None:
    engine = DiskEngine(tmp_path, fsync=False)
    await engine.start()
    try:
        await _versioned_fill(engine)
        conn = engine.meta.read(lambda c: c)  # this thread's read connection
        listed = _traced(conn, lambda: engine._list(conn, "v", b"", b"/", b"", 1000))
        scans = [s for s in listed if "FROM objects" in s]
        assert scans
        for statement in scans:
            plan = _plan(conn, statement)
            # Only latest rows (the partial index holds nothing else), in key order without a sort.
            assert "USING INDEX objects_latest" in plan and "TEMP B-TREE" not in plan, plan
        versions = _traced(conn, lambda: engine._list_versions(conn, "v", b"", b"", b"b/1", "", 1000))
        versions += _traced(conn, lambda: engine._list_versions(conn, "v", b"b", b"", b"", "", 2))
        scans = [s for s in versions if "FROM objects" in s and "seq" in s and "ORDER BY" in s]
        assert len(scans) >= 2
        for statement in scans:
            plan = _plan(conn, statement)
            # Latest rows and noncurrent ones (bucket, key, seq DESC), each walked in order (the
            # noncurrent ones never in the table): a page costs what it returns.
            assert "TEMP B-TREE" not in plan, plan
            if "is_latest=0" in statement:
                assert "USING COVERING INDEX objects_noncurrent" in plan, plan
            else:
                assert "USING INDEX objects_latest" in plan, plan
    finally:
        await engine.close()


async def test_unversioned_hot_paths_stay_one_statement(tmp_path: Path) -> None:
    engine = DiskEngine(tmp_path, fsync=False)
    await engine.start()
    try:
        await engine.create_bucket("plain", OWNER, "us-east-1")
        await put(engine, "plain", "k", b"small")
        conn = engine.meta.read(lambda c: c)  # this thread's read connection
        reads = _traced(conn, lambda: engine._read("plain", "k", body=True, part_number=None))
        assert len(reads) == 1
        assert "USING INDEX objects_latest" in _plan(conn, reads[0])
        # The write transaction: the bucket, the key's null version, one write (as before versioning).
        writer: sqlite3.Connection = engine.meta._writer  # type: ignore[attr-defined]
        seen: list[str] = []
        writer.set_trace_callback(seen.append)
        try:
            await put(engine, "plain", "k", b"again")
            await put(engine, "plain", "new", b"fresh")
        finally:
            writer.set_trace_callback(None)
        # (The trace repeats a statement for each trigger it fires: distinct ones count.)
        on_objects = [s for s in dict.fromkeys(seen) if " objects" in s]
        assert len(on_objects) == 4, on_objects  # per PUT: the null-version probe and one UPDATE/INSERT
    finally:
        await engine.close()


# ---------------------------------------------------------------------- TTL


def _expire(root: Path, version_id: str) -> None:
    """Move a version's expiry into the past (as if its TTL had run out)."""
    conn = sqlite3.connect(root / "metadata.sqlite3", isolation_level=None)
    conn.execute("UPDATE objects SET expires=? WHERE version=?", (time.time() - 1, version_id))
    conn.close()


async def test_reaper_promotes_the_next_newest_version(tmp_path: Path) -> None:
    engine = DiskEngine(tmp_path, fsync=False, inline_threshold=0, reaper_interval=3600)
    await engine.start()
    try:
        await engine.create_bucket("v", OWNER, "us-east-1")
        await engine.put_bucket_versioning("v", VERSIONING_ENABLED)
        v1 = await put(engine, "v", "k", b"one")
        ttl = {"x-amz-meta-ttl-seconds": "3600"}
        v2 = await put(engine, "v", "k", b"two!", headers=ttl)
        marker = await engine.delete_object("v", "m")
        m2 = await put(engine, "v", "m", b"hides the marker", headers=ttl)
        assert len(blob_files(tmp_path)) == 3
        _expire(tmp_path, v2.version_id)
        _expire(tmp_path, m2.version_id)
        # Expired: invisible at once; the next newest shows, in reads and listings alike.
        assert (await engine.head_object("v", "k")).version_id == v1.version_id
        assert await read(engine, "v", "k") == b"one"
        with pytest.raises(errors.NoSuchVersion):
            await engine.head_object("v", "k", version_id=v2.version_id)
        with pytest.raises(errors.NoSuchKey) as caught:
            await engine.head_object("v", "m")
        assert caught.value.marker is not None and caught.value.marker.version_id == marker.version_id
        listed = (await engine.list_objects("v")).entries
        assert [(e.key, e.size) for e in listed] == [("k", 3)]
        page = await engine.list_object_versions("v")
        assert [(e.key, e.version_id) for e in page.entries] == [("k", v1.version_id), ("m", marker.version_id)]
        # Reaped: the next newest becomes latest for good.
        assert await engine.reap_expired() == 2
        page = await engine.list_object_versions("v")
        assert [(e.version_id, e.is_latest) for e in page.entries] == [(v1.version_id, True), (marker.version_id, True)]
        assert [(e.key, e.size) for e in (await engine.list_objects("v")).entries] == [("k", 3)]
        assert len(blob_files(tmp_path)) == 1
        v3 = await put(engine, "v", "k", b"three")
        page = await engine.list_object_versions("v", prefix="k")
        assert [(e.version_id, e.is_latest) for e in page.entries] == [(v3.version_id, True), (v1.version_id, False)]
    finally:
        await engine.close()


# ---------------------------------------------------------------------- blobs


async def test_blobs_go_with_the_versions_that_held_them(tmp_path: Path) -> None:
    engine = DiskEngine(tmp_path, fsync=False, inline_threshold=0)
    await engine.start()
    try:
        await engine.create_bucket("b", OWNER, "us-east-1")
        await put(engine, "b", "k", b"null, before versioning")
        await engine.put_bucket_versioning("b", VERSIONING_ENABLED)
        v1 = await put(engine, "b", "k", b"version one")
        assert len(blob_files(tmp_path)) == 2
        await engine.put_bucket_versioning("b", VERSIONING_SUSPENDED)
        await put(engine, "b", "k", b"null, suspended")  # replaces the first null version's body
        assert len(blob_files(tmp_path)) == 2
        assert await engine.delete_object("b", "k") == DeleteResult(NULL_VERSION, True)
        assert len(blob_files(tmp_path)) == 1  # the null delete marker has no body
        # A copy shares the version's blob: removing the version keeps the file for the copy.
        await engine.copy_object("b", "k", "b", "copy", headers=None, src_version_id=v1.version_id)
        await engine.delete_object("b", "k", version_id=v1.version_id)
        assert len(blob_files(tmp_path)) == 1
        assert await read(engine, "b", "copy") == b"version one"
        await engine.delete_object("b", "copy", version_id=NULL_VERSION)
        assert blob_files(tmp_path) == set()
        # Multipart versions: the pieces go with the version.
        await engine.put_bucket_versioning("b", VERSIONING_ENABLED)
        upload = await engine.create_multipart_upload("b", "mp", headers={})
        part = await engine.upload_part("b", "mp", upload.upload_id, 1, chunks(b"piece"))
        done = await engine.complete_multipart_upload("b", "mp", upload.upload_id, [CompletedPart(1, part.etag)])
        await put(engine, "b", "mp", b"newer")
        assert len(blob_files(tmp_path)) == 2
        await engine.delete_object("b", "mp", version_id=done.version_id)
        assert len(blob_files(tmp_path)) == 1
        assert await read(engine, "b", "mp") == b"newer"
    finally:
        await engine.close()


# ---------------------------------------------------------------------- concurrency


async def test_two_engines_writing_versions_of_one_key(tmp_path: Path) -> None:
    """Two engines on one directory (two worker processes): concurrent versioned PUTs and
    deletes of one key keep exactly one latest version and a strict order."""
    first = DiskEngine(tmp_path, fsync=False, inline_threshold=64)
    second = DiskEngine(tmp_path, fsync=False, inline_threshold=64)
    await first.start()
    await second.start()
    try:
        await first.create_bucket("v", OWNER, "us-east-1")
        await first.put_bucket_versioning("v", VERSIONING_ENABLED)

        async def writer(engine: DiskEngine, n: int) -> str | None:
            if n % 5 == 4:
                return (await engine.delete_object("v", "k")).version_id
            return (await put(engine, "v", "k", bytes([n]) * (10 + n * 7))).version_id

        ids = await asyncio.gather(*(writer(first if n % 2 else second, n) for n in range(40)))
        assert len(set(ids)) == 40
        page = await first.list_object_versions("v")
        assert sorted(e.version_id for e in page.entries) == sorted(i for i in ids if i)
        assert [e.is_latest for e in page.entries] == [True] + [False] * 39
        top = page.entries[0]
        if top.delete_marker:
            with pytest.raises(errors.NoSuchKey):
                await second.head_object("v", "k")
        else:
            assert (await second.head_object("v", "k")).version_id == top.version_id
        conn = sqlite3.connect(tmp_path / "metadata.sqlite3")
        seqs = [r[0] for r in conn.execute("SELECT seq FROM objects WHERE key=? ORDER BY seq", (b"k",))]
        assert seqs == list(range(1, 41))
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()
    finally:
        await first.close()
        await second.close()


async def test_quota_counts_keys_whose_latest_is_an_object(tmp_path: Path) -> None:
    engine = DiskEngine(tmp_path, fsync=False, max_objects_per_bucket=2)
    await engine.start()
    try:
        await engine.create_bucket("v", OWNER, "us-east-1")
        await engine.put_bucket_versioning("v", VERSIONING_ENABLED)
        for _ in range(3):
            await put(engine, "v", "a", b"x")  # versions of one key count once
        await put(engine, "v", "b", b"x")
        with pytest.raises(errors.QuotaExceeded):
            await put(engine, "v", "c", b"x")
        await engine.delete_object("v", "b")  # its latest is a delete marker now: not counted
        await put(engine, "v", "c", b"x")
        with pytest.raises(errors.QuotaExceeded):
            await put(engine, "v", "b", b"x")
    finally:
        await engine.close()
