"""TTL and limits in the disk engine: expired rows invisible at once, reaped in batches."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from coffer.storage import errors
from coffer.storage.disk import DiskEngine
from tests.engines import blob_files
from tests.helpers import chunks


def test_expired_objects_vanish_and_are_reaped(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = DiskEngine(tmp_path, fsync=False, inline_threshold=0, reaper_interval=3600)
        await engine.start()
        try:
            await engine.create_bucket("bkt", "owner", "us-east-1")
            await engine.put_object("bkt", "brief", chunks(b"b" * 100), headers={"x-amz-meta-ttl-seconds": "1"})
            await engine.put_object("bkt", "stays", chunks(b"s"), headers={})
            assert (await engine.head_object("bkt", "brief")).size == 100
            assert len(blob_files(tmp_path)) == 2
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    await engine.head_object("bkt", "brief")
                except errors.NoSuchKey:
                    break
                await asyncio.sleep(0.1)
            else:
                pytest.fail("the object never expired")
            with pytest.raises(errors.NoSuchKey):
                await engine.open_object("bkt", "brief")
            page = await engine.list_objects("bkt")
            assert [e.key for e in page.entries] == ["stays"]
            with pytest.raises(errors.NoSuchKey):  # an expired object does not satisfy If-Match
                await engine.put_object("bkt", "brief", chunks(b"x"), headers={}, if_match="*")
            assert await engine.reap_expired() == 1
            assert engine.expired_reaped == 1
            assert len(blob_files(tmp_path)) == 1  # the expired body's file is gone too
            # An expired key is free for If-None-Match.
            await engine.put_object("bkt", "again", chunks(b"a"), headers={"x-amz-meta-ttl-seconds": "1"})
            await asyncio.sleep(1.1)
            await engine.put_object("bkt", "again", chunks(b"new"), headers={}, if_none_match=True)
            assert (await engine.head_object("bkt", "again")).size == 3
        finally:
            await engine.close()

    asyncio.run(scenario())


def test_default_ttl_and_delete_bucket_with_only_expired(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = DiskEngine(tmp_path, fsync=False, default_ttl=1, reaper_interval=3600)
        await engine.start()
        try:
            await engine.create_bucket("bkt", "owner", "us-east-1")
            await engine.put_object("bkt", "default", chunks(b"d"), headers={})
            await engine.put_object("bkt", "forever", chunks(b"f"), headers={"x-amz-meta-ttl-seconds": "0"})
            await asyncio.sleep(1.1)
            assert [e.key for e in (await engine.list_objects("bkt")).entries] == ["forever"]
            with pytest.raises(errors.BucketNotEmpty):
                await engine.delete_bucket("bkt")
            await engine.delete_object("bkt", "forever")
            await engine.delete_bucket("bkt")  # the expired, unreaped "default" goes with it
            with pytest.raises(errors.NoSuchBucket):
                await engine.get_bucket("bkt")
        finally:
            await engine.close()

    asyncio.run(scenario())


def test_background_reaper_thread(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = DiskEngine(tmp_path, fsync=False, reaper_interval=0.1)
        await engine.start()
        try:
            await engine.create_bucket("bkt", "owner", "us-east-1")
            for i in range(30):
                await engine.put_object("bkt", f"k{i}", chunks(b"v"), headers={"x-amz-meta-ttl-seconds": "1"})
            deadline = time.monotonic() + 20
            while engine.expired_reaped < 30 and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert engine.expired_reaped == 30
            rows = engine.meta.read(lambda c: c.execute("SELECT COUNT(*) FROM objects").fetchone()[0])
            assert rows == 0
        finally:
            await engine.close()

    asyncio.run(scenario())


def test_disk_limits(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = DiskEngine(tmp_path, fsync=False, max_buckets=1, max_objects_per_bucket=2)
        await engine.start()
        try:
            await engine.create_bucket("one", "owner", "us-east-1")
            with pytest.raises(errors.TooManyBuckets):
                await engine.create_bucket("two", "owner", "us-east-1")
            await engine.put_object("one", "a", chunks(b"1"), headers={})
            await engine.put_object("one", "b", chunks(b"2"), headers={})
            with pytest.raises(errors.QuotaExceeded):
                await engine.put_object("one", "c", chunks(b"3"), headers={})
            await engine.put_object("one", "a", chunks(b"overwrite"), headers={})
        finally:
            await engine.close()

    asyncio.run(scenario())


def test_schema_v1_database_is_migrated(tmp_path: Path) -> None:
    """A database written before TTL existed (no `expires` column) opens and works."""
    conn = sqlite3.connect(tmp_path / "metadata.sqlite3")
    conn.executescript(
        """
        CREATE TABLE buckets(name TEXT PRIMARY KEY, created REAL NOT NULL, owner TEXT NOT NULL,
            region TEXT NOT NULL, config TEXT NOT NULL DEFAULT '{}');
        CREATE TABLE objects(id INTEGER PRIMARY KEY, bucket TEXT NOT NULL, key BLOB NOT NULL,
            version TEXT NOT NULL DEFAULT 'null', is_latest INTEGER NOT NULL DEFAULT 1,
            is_delete_marker INTEGER NOT NULL DEFAULT 0, size INTEGER NOT NULL, etag TEXT NOT NULL,
            last_modified REAL NOT NULL, storage_class TEXT NOT NULL, owner TEXT NOT NULL,
            extra TEXT NOT NULL, blob TEXT, data BLOB);
        INSERT INTO buckets VALUES ('old', 1.0, 'owner', 'us-east-1', '{}');
        INSERT INTO objects(bucket, key, size, etag, last_modified, storage_class, owner, extra, data)
            VALUES ('old', X'6b6579', 1, 'etag', 1.0, 'STANDARD', 'owner', '{}', X'78');
        PRAGMA user_version=1;
        """
    )
    conn.close()

    async def scenario() -> None:
        engine = DiskEngine(tmp_path, fsync=False)
        await engine.start()
        try:
            assert (await engine.head_object("old", "key")).size == 1
            await engine.put_object("old", "new", chunks(b"n"), headers={"x-amz-meta-ttl-seconds": "60"})
            assert [e.key for e in (await engine.list_objects("old")).entries] == ["key", "new"]
        finally:
            await engine.close()

    asyncio.run(scenario())


def test_completed_uploads_and_copies_expire_too(tmp_path: Path) -> None:
    from coffer.storage.api import CompletedPart

    async def scenario() -> None:
        engine = DiskEngine(tmp_path, fsync=False, reaper_interval=3600)
        await engine.start()
        try:
            await engine.create_bucket("bkt", "owner", "us-east-1")
            ttl = {"x-amz-meta-ttl-seconds": "1"}
            upload = await engine.create_multipart_upload("bkt", "mp", headers=ttl)
            part = await engine.upload_part("bkt", "mp", upload.upload_id, 1, chunks(b"p" * 2000))
            await engine.complete_multipart_upload("bkt", "mp", upload.upload_id, [CompletedPart(1, part.etag)])
            await engine.put_object("bkt", "src", chunks(b"s" * 2000), headers={})
            await engine.copy_object("bkt", "src", "bkt", "copy", headers=ttl)
            await engine.copy_object("bkt", "mp", "bkt", "kept", headers={})  # REPLACE without a TTL
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                keys = [e.key for e in (await engine.list_objects("bkt")).entries]
                if keys == ["kept", "src"]:
                    break
                await asyncio.sleep(0.1)
            assert keys == ["kept", "src"]
            assert await engine.reap_expired() == 2
            assert (await engine.head_object("bkt", "kept")).size == 2000
            assert (await engine.head_object("bkt", "src")).size == 2000  # its body outlived the expired copy
            body = await engine.open_object("bkt", "src")
            assert b"".join([c async for c in body.stream()]) == b"s" * 2000
        finally:
            await engine.close()

    asyncio.run(scenario())
