"""Engine pieces behind operability: storage totals, bucket config documents, probe,
the observer hook, and close() flushing every accepted write."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from coffer.storage import errors
from coffer.storage.api import DeleteRequest, EngineObserver
from coffer.storage.disk import DiskEngine
from tests.helpers import chunks, run


class Recorder(EngineObserver):
    def __init__(self) -> None:
        self.commits: list[int] = []
        self.syncs: list[str] = []

    def committed(self, operations: int, seconds: float) -> None:
        assert seconds >= 0
        self.commits.append(operations)

    def synced(self, what: str, seconds: float) -> None:
        self.syncs.append(what)


def test_storage_stats_follow_every_write(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = DiskEngine(tmp_path, fsync=False, inline_threshold=100)
        await engine.start()
        try:
            stats = await engine.storage_stats()
            assert (stats.buckets, stats.objects, stats.bytes, stats.multipart_uploads) == (0, 0, 0, 0)
            await engine.create_bucket("a", "me", "us-east-1")
            await engine.create_bucket("b", "me", "us-east-1")
            await engine.put_object("a", "small", chunks(b"x" * 10), headers={})
            await engine.put_object("a", "large", chunks(b"y" * 1000), headers={})  # a file, not inline
            await engine.put_object("b", "k", chunks(b"z" * 7), headers={})
            stats = await engine.storage_stats()
            assert (stats.buckets, stats.objects, stats.bytes) == (2, 3, 1017)
            assert await engine.storage_stats() is stats  # unchanged store: cached
            await engine.put_object("a", "large", chunks(b"w" * 300), headers={})  # overwrite shrinks
            await engine.delete_object("a", "small")
            await engine.delete_object("a", "small")  # idempotent, no double count
            assert ((s := await engine.storage_stats()).objects, s.bytes) == (2, 307)
            await engine.delete_objects("b", [DeleteRequest("k"), DeleteRequest("missing")])
            await engine.delete_bucket("b")
            stats = await engine.storage_stats()
            assert (stats.buckets, stats.objects, stats.bytes) == (1, 1, 300)
        finally:
            await engine.close()

    run(scenario())


def test_stats_backfilled_for_an_older_database(tmp_path: Path) -> None:
    async def fill() -> None:
        engine = DiskEngine(tmp_path, fsync=False)
        await engine.start()
        await engine.create_bucket("old", "me", "us-east-1")
        for i in range(5):
            await engine.put_object("old", f"k{i}", chunks(b"a" * (i + 1)), headers={})
        await engine.close()

    run(fill())
    # Make it look like a version-1 database: no totals table, no triggers.
    conn = sqlite3.connect(tmp_path / "metadata.sqlite3")
    for trigger in ("objects_stats_insert", "objects_stats_delete", "objects_stats_update", "buckets_stats_delete"):
        conn.execute(f"DROP TRIGGER {trigger}")
    conn.execute("DROP TABLE bucket_stats")
    conn.execute("PRAGMA user_version=1")
    conn.commit()
    conn.close()

    async def reopen() -> None:
        engine = DiskEngine(tmp_path, fsync=False)
        await engine.start()
        try:
            stats = await engine.storage_stats()
            assert (stats.buckets, stats.objects, stats.bytes) == (1, 5, 15)
            await engine.put_object("old", "k9", chunks(b"b" * 5), headers={})
            assert (await engine.storage_stats()).bytes == 20
        finally:
            await engine.close()

    run(reopen())


def test_bucket_config_documents(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = DiskEngine(tmp_path, fsync=False)
        await engine.start()
        try:
            await engine.create_bucket("cfg", "me", "us-east-1")
            assert await engine.get_bucket_config("cfg", "cors") is None
            rules = [{"methods": ["GET"], "origins": ["*"]}]
            await engine.put_bucket_config("cfg", "cors", rules)
            await engine.put_bucket_config("cfg", "other", {"a": 1})
            assert await engine.get_bucket_config("cfg", "cors") == rules
            await engine.put_bucket_config("cfg", "cors", None)
            assert await engine.get_bucket_config("cfg", "cors") is None
            assert await engine.get_bucket_config("cfg", "other") == {"a": 1}  # other documents untouched
            with pytest.raises(errors.NoSuchBucket):
                await engine.get_bucket_config("nope", "cors")
            with pytest.raises(errors.NoSuchBucket):
                await engine.put_bucket_config("nope", "cors", rules)
        finally:
            await engine.close()

    run(scenario())


def test_probe_and_observer(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = DiskEngine(tmp_path, fsync=True, inline_threshold=0)
        recorder = Recorder()
        engine.observer = recorder
        await engine.start()
        try:
            probe = await engine.probe()
            assert probe.readable and probe.writable and probe.detail == ""
            assert probe.free_bytes is not None and probe.total_bytes is not None
            assert 0 < probe.free_bytes <= probe.total_bytes
            await engine.create_bucket("obs", "me", "us-east-1")
            await asyncio.gather(
                *(engine.put_object("obs", f"k{i}", chunks(b"q" * 100), headers={}) for i in range(20))
            )
        finally:
            await engine.close()
        # One commit per batch; probe (1) + bucket (1) + 20 objects went through the writer.
        assert sum(recorder.commits) == 22
        # fsync: always and file bodies: 20 file fsyncs and 20 directory fsyncs.
        assert recorder.syncs.count("file") == 20 and recorder.syncs.count("dir") == 20
        assert not list((tmp_path / "tmp").iterdir())  # the probe's file is gone

    run(scenario())


def test_close_commits_every_queued_write_then_refuses(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = DiskEngine(tmp_path, fsync=True)
        await engine.start()
        await engine.create_bucket("drain", "me", "us-east-1")

        def insert(i: int):  # type: ignore[no-untyped-def]
            def tx(conn: sqlite3.Connection) -> int:
                conn.execute(
                    "INSERT INTO objects(bucket, key, size, etag, last_modified, storage_class, owner, extra, data)"
                    " VALUES ('drain', ?, 1, 'e', 0, 'STANDARD', 'me', '{}', x'00')",
                    (f"k{i:04d}".encode(),),
                )
                return i

            return tx

        writes = [asyncio.ensure_future(engine.meta.write(insert(i))) for i in range(1000)]
        await asyncio.sleep(0)  # every write is now queued behind whatever the writer is doing
        await engine.close()
        assert [await w for w in writes] == list(range(1000))
        with pytest.raises(errors.ServiceUnavailable):
            await engine.meta.write(insert(5000))

    run(scenario())

    async def reopen() -> None:
        engine = DiskEngine(tmp_path, fsync=True)
        await engine.start()
        try:
            assert (await engine.storage_stats()).objects == 1000
        finally:
            await engine.close()

    run(reopen())
