"""Disk engine integrity: the orphan sweep never takes a live body, data at rest is
private, new directories are durable, and integer inputs cannot overflow SQLite."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import stat
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from coffer.config import ConfigError, Settings
from coffer.storage.disk import DiskEngine
from coffer.storage.disk.metadata import SQLiteMetadataStore


async def body(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def read_all(engine: DiskEngine, bucket: str, key: str) -> bytes:
    opened = await engine.open_object(bucket, key)
    try:
        return b"".join([piece async for piece in opened.stream()])
    finally:
        opened.close()


def test_orphan_sweep_spares_a_body_published_but_not_committed(tmp_path: Path) -> None:
    """Issue 9 #5: a sweep with grace 0 running between a PUT's publish and its commit."""

    async def scenario() -> None:
        engine = DiskEngine(tmp_path, fsync=False, inline_threshold=1024)
        await engine.start()
        try:
            await engine.create_bucket("b", "me", "us-east-1")
            publish = engine.blobs.publish
            swept: list[int] = []

            async def publish_then_sweep(received: Any) -> str:
                name = await publish(received)
                # The body is in blobs/ now; the row referencing it is not committed yet.
                swept.append(await asyncio.to_thread(engine.sweep_orphans, 0))
                return name

            engine.blobs.publish = publish_then_sweep  # type: ignore[method-assign]
            data = os.urandom(50_000)
            await engine.put_object("b", "big", body(data), headers={})
            # A part is published and committed the same way.
            upload = await engine.create_multipart_upload("b", "mp", headers={})
            part = await engine.upload_part("b", "mp", upload.upload_id, 1, body(data))
            engine.blobs.publish = publish  # type: ignore[method-assign]
            assert swept == [0, 0]
            assert await read_all(engine, "b", "big") == data
            from coffer.storage.api import CompletedPart

            await engine.complete_multipart_upload("b", "mp", upload.upload_id, [CompletedPart(1, part.etag)])
            assert await read_all(engine, "b", "mp") == data
            # Committed bodies are referenced: a later sweep keeps them too.
            assert engine.sweep_orphans(0) == 0
            assert await read_all(engine, "b", "big") == data
        finally:
            await engine.close()

    asyncio.run(scenario())


def test_orphan_grace_must_not_be_negative(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="orphan_grace_seconds"):
        Settings(orphan_grace_seconds=-1).validate()
    with pytest.raises(ValueError, match="orphan_grace_seconds"):
        DiskEngine(tmp_path, orphan_grace_seconds=-5)


def _tree(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    yield root, root.stat()
    for dirpath, dirs, names in os.walk(root):
        for name in dirs + names:
            path = Path(dirpath) / name
            yield path, path.lstat()


async def _fill(engine: DiskEngine) -> None:
    """Create every kind of file the engine writes: metadata, inline and file bodies, parts."""
    await engine.create_bucket("b", "me", "us-east-1")
    await engine.put_object("b", "small", body(b"x"), headers={})
    await engine.put_object("b", "large", body(os.urandom(5000)), headers={})
    upload = await engine.create_multipart_upload("b", "mp", headers={})
    await engine.upload_part("b", "mp", upload.upload_id, 1, body(os.urandom(5000)))


@pytest.mark.parametrize(
    ("mode", "umask", "dir_mode", "file_mode"),
    [("private", 0o000, 0o700, 0o600), ("private", 0o022, 0o700, 0o600), ("shared", 0o077, 0o750, 0o640)],
)
def test_data_at_rest_modes(tmp_path: Path, mode: str, umask: int, dir_mode: int, file_mode: int) -> None:
    """Issue 9 #6: every directory and file under the data dir, whatever the umask."""
    root = tmp_path / "data"

    async def scenario() -> None:
        engine = DiskEngine(root, fsync=False, inline_threshold=1024, data_mode=mode)
        await engine.start()
        try:
            await _fill(engine)
            seen = {p.name for p, _st in _tree(root)}
            # The SQLite WAL files exist while the engine is open.
            assert {"metadata.sqlite3", "metadata.sqlite3-wal", "metadata.sqlite3-shm"} <= seen
            for path, st in _tree(root):
                want = dir_mode if stat.S_ISDIR(st.st_mode) else file_mode
                assert stat.S_IMODE(st.st_mode) == want, path
        finally:
            await engine.close()

    old = os.umask(umask)
    try:
        asyncio.run(scenario())
    finally:
        os.umask(old)
    files = [p for p, st in _tree(root) if not stat.S_ISDIR(st.st_mode)]
    assert any(p.parent.parent.name == "blobs" for p in files)  # blob files were among those checked


def test_existing_data_dir_is_made_private(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir(mode=0o755)
    os.chmod(root, 0o755)

    async def scenario() -> None:
        engine = DiskEngine(root, fsync=False)
        await engine.start()
        await engine.close()

    asyncio.run(scenario())
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "metadata.sqlite3").stat().st_mode) == 0o600


def test_data_mode_setting() -> None:
    assert Settings().data_mode == "private"
    with pytest.raises(ConfigError, match="data_mode"):
        Settings(data_mode="public").validate()


def test_blob_fanout_directories_exist_after_start(tmp_path: Path) -> None:
    """Issue 9 #8: no blob directory is created (unsynced) while a body is published."""

    async def scenario() -> None:
        engine = DiskEngine(tmp_path, fsync=False)
        await engine.start()
        try:
            fanout = sorted(p.name for p in (tmp_path / "blobs").iterdir())
            assert fanout == [f"{i:02x}" for i in range(256)]
        finally:
            await engine.close()

    asyncio.run(scenario())


def test_publish_recreates_a_missing_fanout_directory(tmp_path: Path) -> None:
    async def scenario() -> None:
        engine = DiskEngine(tmp_path, fsync=True, inline_threshold=0)
        await engine.start()
        try:
            for sub in (tmp_path / "blobs").iterdir():
                sub.rmdir()
            await engine.create_bucket("b", "me", "us-east-1")
            await engine.put_object("b", "k", body(b"data"), headers={})
            assert await read_all(engine, "b", "k") == b"data"
        finally:
            await engine.close()

    asyncio.run(scenario())


def test_rows_written_by_earlier_versions_read_the_same(tmp_path: Path) -> None:
    """The record layer keeps the objects table's format: rows as earlier Coffer versions
    wrote them (extra JSON, inline body, a many-piece body) read back, and new rows are
    written in that same format."""
    ct = '"ct":"FULL_OBJECT"'
    old_rows = [
        # key, extra, data, pieces (offset, size, data)
        ("inline", '{"h":{"content-type":"text/x"},"c":{"CRC32":"ULiXyQ=="},' + ct + ',"t":{"a":"1"}}', b"tiny", []),
        ("pieces", '{"h":{},"c":{},"ct":"COMPOSITE","n":2,"sg":1}', None, [(0, 3, b"one"), (3, 3, b"two")]),
    ]

    async def scenario() -> None:
        engine = DiskEngine(tmp_path, fsync=False, inline_threshold=1024)
        await engine.start()
        try:
            await engine.create_bucket("b", "me", "us-east-1")

            def insert(conn: Any) -> None:
                for key, extra, data, pieces in old_rows:
                    object_id = conn.execute(
                        "INSERT INTO objects(bucket, key, size, etag, last_modified, storage_class, owner, extra, data)"
                        " VALUES ('b', ?, ?, 'e', 1.5, 'STANDARD', 'me', ?, ?) RETURNING id",
                        (key.encode(), 6 if pieces else len(data or b""), extra, data),
                    ).fetchone()[0]
                    for number, (offset, size, piece) in enumerate(pieces, 1):
                        conn.execute(
                            "INSERT INTO object_parts(object_id, part_number, offset, size, etag, checksums, data)"
                            " VALUES (?, ?, ?, ?, 'p', '{}', ?)",
                            (object_id, number, offset, size, piece),
                        )

            await engine.meta.write(insert)
            small = await engine.head_object("b", "inline")
            assert (small.headers, small.tags, small.checksum_type) == (
                {"content-type": "text/x"},
                {"a": "1"},
                ct[6:-1],
            )
            assert small.checksums == {"CRC32": bytes.fromhex("50b897c9")}
            assert await read_all(engine, "b", "inline") == b"tiny"
            multi = await engine.head_object("b", "pieces")
            assert (multi.parts_count, multi.checksum_type) == (2, "COMPOSITE")
            assert await read_all(engine, "b", "pieces") == b"onetwo"
            assert (await engine.head_object("b", "pieces", part_number=2)).part is not None
            # Written now: the same JSON, byte for byte.
            await engine.put_object(
                "b",
                "new",
                body(b"tiny"),
                headers={"content-type": "text/x"},
                tags={"a": "1"},
                checksum_algorithms=("CRC32",),
            )
            stored = engine.meta.read(
                lambda c: c.execute("SELECT extra FROM objects WHERE key=?", (b"new",)).fetchone()
            )
            assert stored[0] == old_rows[0][1]
            await engine.copy_object("b", "pieces", "b", "copy", headers=None)
            assert await read_all(engine, "b", "copy") == b"onetwo"
        finally:
            await engine.close()

    asyncio.run(scenario())


def test_cancelled_put_whose_row_commits_keeps_its_body(tmp_path: Path) -> None:
    """A PUT cancelled (client gone, shutdown timeout) after its row was queued for commit:
    the row still commits, so its published body must stay (and stay held until then)."""

    async def scenario() -> None:
        engine = DiskEngine(tmp_path, fsync=False, inline_threshold=1024)
        await engine.start()
        try:
            await engine.create_bucket("b", "me", "us-east-1")
            hold = threading.Event()
            blocker = asyncio.ensure_future(engine.meta.write(lambda conn: hold.wait(30)))
            data = os.urandom(50_000)
            put = asyncio.ensure_future(engine.put_object("b", "k", body(data), headers={}))
            for _ in range(1000):  # until the put's row waits behind the held writer
                await asyncio.sleep(0.005)
                if engine.meta._queue.qsize() >= 1:  # type: ignore[attr-defined]
                    break
            put.cancel()
            with pytest.raises(asyncio.CancelledError):
                await put
            assert engine.sweep_orphans(0) == 0  # still in flight: not swept either
            hold.set()
            await blocker
            await engine.meta.write(lambda conn: None)  # the put's batch has committed
            assert await read_all(engine, "b", "k") == data
            assert engine.sweep_orphans(0) == 0
            assert await read_all(engine, "b", "k") == data
        finally:
            await engine.close()

    asyncio.run(scenario())


def _open_store(path: str, barrier: Any, results: Any) -> None:
    barrier.wait()
    try:
        store = SQLiteMetadataStore(Path(path))
        store.open()
        store.close()
        results.put("ok")
    except Exception as exc:  # reported to the test, which shows it
        results.put(repr(exc))


def test_workers_opening_a_new_database_at_once(tmp_path: Path) -> None:
    """Workers of one server open a new metadata database at the same moment: each must
    succeed (the one losing the switch to WAL mode used to fail with "database is locked",
    and its worker exited: about 1 in 20 opens of 4 processes)."""
    ctx = multiprocessing.get_context("fork")
    outcomes: list[str] = []
    for attempt in range(25):
        path = str(tmp_path / f"m{attempt}.sqlite3")
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_open_store, args=(path, barrier, results)) for _ in range(4)]
        for proc in procs:
            proc.start()
        outcomes += [results.get(timeout=60) for _ in procs]
        for proc in procs:
            proc.join(timeout=60)
    assert [o for o in outcomes if o != "ok"] == []
