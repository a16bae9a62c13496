"""SQLite metadata: one writer thread that group-commits, cheap readers.

Every mutation is a small function ``fn(conn) -> result`` queued to the writer
thread. The thread drains whatever is queued (up to ``MAX_BATCH``), runs each
function inside its own SAVEPOINT of one transaction and commits once: many
concurrent PUTs share one fsync of the WAL. A failing function rolls back only
its own savepoint.

Reads run on per-thread connections (WAL readers never block the writer).
Point lookups run directly on the event loop's thread: measured cheaper than a
thread hop (see docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import queue
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from coffer.storage import errors
from coffer.storage.api import BucketInfo, EngineObserver
from coffer.storage.disk.compaction import Compactor
from coffer.storage.disk.journal import COMPACT_MIN_BYTES, STATE_TABLE, Journal
from coffer.storage.errors import ServiceUnavailable

T = TypeVar("T")
log = logging.getLogger("coffer.metadata")

MAX_BATCH = 512
# 2: bucket_stats; 3: multipart uploads, parts, object manifests; 4: object TTL;
# 5: versioning and Object Lock (bucket state, per-key version order, latest/versions indexes);
# 6: stored sizes of parts and pieces stored transformed (encrypted multipart uploads);
# 7: the manifest journal's state (journal.py). A Coffer that does not journal must not
# write a journaled database: its changes would be missing from the journal.
SCHEMA_VERSION = 7

SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS buckets(
    name TEXT PRIMARY KEY,
    created REAL NOT NULL,
    owner TEXT NOT NULL,
    region TEXT NOT NULL,
    config TEXT NOT NULL DEFAULT '{}',         -- JSON documents: cors, tagging, ...
    versioning TEXT,                           -- NULL (never configured), 'Enabled' or 'Suspended'
    object_lock INTEGER NOT NULL DEFAULT 0     -- Object Lock on (never turned off)
);
-- One row per (bucket, key, version); unversioned buckets use version 'null'. A key's
-- versions are ordered by seq (the newest highest); the newest has is_latest=1.
CREATE TABLE IF NOT EXISTS objects(
    id INTEGER PRIMARY KEY,
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,                         -- UTF-8 bytes: BLOB order is S3's byte order
    version TEXT NOT NULL DEFAULT 'null',
    is_latest INTEGER NOT NULL DEFAULT 1,
    is_delete_marker INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    last_modified REAL NOT NULL,
    storage_class TEXT NOT NULL,
    owner TEXT NOT NULL,
    extra TEXT NOT NULL,                       -- JSON: headers, checksums, checksum type, tags, lock
    expires REAL,                              -- epoch seconds after which the object is gone (TTL)
    blob TEXT,                                 -- file under blobs/ (NULL when inline)
    data BLOB,                                 -- inline body; after the metadata so listings skip its pages
    seq INTEGER NOT NULL DEFAULT 1             -- order of the key's versions (schema 5)
);
-- Noncurrent versions by id. A key's latest row is found by objects_latest and its 'null'
-- version among the noncurrent ones by objects_noncurrent (records.py), so a write that adds
-- a key (in any bucket) or rewrites a never-versioned one maintains one index besides the
-- table, as before versioning. (Schema 4 and earlier had objects_key over every row.)
CREATE UNIQUE INDEX IF NOT EXISTS objects_version_ids ON objects(bucket, key, version)
    WHERE is_latest=0 AND version != 'null';
CREATE INDEX IF NOT EXISTS objects_blob ON objects(blob) WHERE blob IS NOT NULL;
-- Per-bucket totals kept by triggers, so storage statistics cost O(buckets), not
-- a scan of every object, and every code path that writes objects keeps them right.
CREATE TABLE IF NOT EXISTS bucket_stats(
    bucket TEXT PRIMARY KEY,
    objects INTEGER NOT NULL,                  -- rows that are not delete markers (every version)
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
-- Multipart uploads. Upload ids sort by creation time, so (bucket, key, upload_id)
-- is ListMultipartUploads' order. A completed upload keeps its row (with the result)
-- until the sweep, so a retried CompleteMultipartUpload answers the same.
CREATE TABLE IF NOT EXISTS uploads(
    upload_id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    initiated REAL NOT NULL,
    storage_class TEXT NOT NULL,
    owner TEXT NOT NULL,
    extra TEXT NOT NULL,                       -- JSON: headers, checksum algorithm and type
    completed TEXT                             -- JSON result once completed; NULL while open
);
CREATE INDEX IF NOT EXISTS uploads_key ON uploads(bucket, key, upload_id);
CREATE TABLE IF NOT EXISTS parts(
    upload_id TEXT NOT NULL,
    part_number INTEGER NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,                        -- hex md5 of the part
    last_modified REAL NOT NULL,
    checksums TEXT NOT NULL,                   -- JSON: algorithm -> base64 digest
    blob TEXT,
    data BLOB,
    stored_size INTEGER,                       -- a part stored transformed: its stored length (schema 6)
    PRIMARY KEY(upload_id, part_number)
);
CREATE INDEX IF NOT EXISTS parts_blob ON parts(blob) WHERE blob IS NOT NULL;
-- The body of an object made of several pieces (a completed multipart upload, or a
-- copy sharing another object's pieces): keyed by the object row, so every version
-- has its own manifest. Blob files may be shared between rows: a blob is deleted
-- only when no objects/object_parts/parts row references it any more.
CREATE TABLE IF NOT EXISTS object_parts(
    object_id INTEGER NOT NULL,                -- objects.id
    part_number INTEGER NOT NULL,
    offset INTEGER NOT NULL,                   -- first byte of this piece in the object
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    checksums TEXT NOT NULL,
    blob TEXT,
    data BLOB,
    -- An object stored transformed: where this piece lies in its stored bytes (offset and
    -- size above are the logical ones); NULL for objects stored as sent (schema 6).
    stored_offset INTEGER,
    stored_size INTEGER,
    PRIMARY KEY(object_id, part_number)
);
CREATE INDEX IF NOT EXISTS object_parts_blob ON object_parts(blob) WHERE blob IS NOT NULL;
"""
    + STATE_TABLE
    + ";\n"
)


# Schema 5's indexes (made by _migrate: older databases lack the seq column until then).
VERSION_INDEXES = (
    # A key's latest version (at most one: writes demote before they promote), and
    # ListObjects' walk: only latest rows are in this index, never noncurrent versions.
    "CREATE UNIQUE INDEX IF NOT EXISTS objects_latest ON objects(bucket, key) WHERE is_latest=1",
    # Noncurrent versions newest first: ListObjectVersions merges them with objects_latest.
    # Only noncurrent rows, so a write to an unversioned bucket never touches it (an index over
    # every row cost the writer thread 13 -> 23 us of commit per small PUT); covering what
    # ListObjectVersions reports, so a page never visits the table for them (2.4 -> 1.3 us a
    # row measured on 500,000 versions).
    "DROP INDEX IF EXISTS objects_versions",  # an earlier form of this index, over every row
    "CREATE INDEX IF NOT EXISTS objects_noncurrent ON objects(bucket, key, seq DESC, version, is_delete_marker,"
    " size, etag, last_modified, storage_class, owner, expires, is_latest) WHERE is_latest=0",
)


def _migrate(conn: sqlite3.Connection, version: int) -> None:
    """Bring a database written by an older Coffer up to SCHEMA_VERSION (inside a transaction)."""
    if version < 2:
        # bucket_stats is new in version 2: fill it once from the objects already stored.
        conn.execute("DELETE FROM bucket_stats")
        conn.execute(
            "INSERT INTO bucket_stats(bucket, objects, bytes) SELECT bucket, COUNT(*), COALESCE(SUM(size), 0)"
            " FROM objects WHERE is_delete_marker=0 GROUP BY bucket"
        )
    # Version 3 only added tables and indexes (uploads, parts, object_parts): the
    # CREATE ... IF NOT EXISTS of SCHEMA made them; existing rows need nothing.
    if version < 4:
        # Object TTL: the expiry time of each row (NULL: never). New databases have the column already.
        columns = {row[1] for row in conn.execute("PRAGMA table_info(objects)")}
        if "expires" not in columns:
            conn.execute("ALTER TABLE objects ADD COLUMN expires REAL")
        # The reaper finds expired rows through this; only rows with a TTL are indexed.
        conn.execute("CREATE INDEX IF NOT EXISTS objects_expires ON objects(expires) WHERE expires IS NOT NULL")
    if version < 5:
        # Versioning. Every existing row is its key's only ('null', latest) version: seq 1.
        columns = {row[1] for row in conn.execute("PRAGMA table_info(objects)")}
        if "seq" not in columns:
            conn.execute("ALTER TABLE objects ADD COLUMN seq INTEGER NOT NULL DEFAULT 1")
        columns = {row[1] for row in conn.execute("PRAGMA table_info(buckets)")}
        if "versioning" not in columns:
            conn.execute("ALTER TABLE buckets ADD COLUMN versioning TEXT")
        if "object_lock" not in columns:
            conn.execute("ALTER TABLE buckets ADD COLUMN object_lock INTEGER NOT NULL DEFAULT 0")
        for statement in VERSION_INDEXES:
            conn.execute(statement)
        conn.execute("DROP INDEX IF EXISTS objects_key")  # replaced by objects_version_ids
    if version < 6:
        # Stored sizes of encrypted parts and pieces: NULL (stored as sent) for every existing row.
        for table, added in (("parts", ("stored_size",)), ("object_parts", ("stored_offset", "stored_size"))):
            columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
            for column in added:
                if column not in columns:
                    conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} INTEGER")
    # Version 7 only added journal_state (made by SCHEMA); the journal starts as a snapshot
    # of the rows already stored (Journal.attach).


def create_database(path: Path) -> sqlite3.Connection:
    """A new database at the current schema (``coffer rebuild-index`` fills it)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.executescript(SCHEMA)
    conn.execute("BEGIN IMMEDIATE")
    _migrate(conn, 0)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    conn.execute("COMMIT")
    return conn


def _connect(path: Path, fsync: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    _enter_wal_mode(conn)
    # FULL: the WAL is fsynced at every commit; one commit covers a whole batch.
    conn.execute(f"PRAGMA synchronous={'FULL' if fsync else 'OFF'}")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA cache_size=-65536")  # 64 MiB page cache per connection
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn


def _enter_wal_mode(conn: sqlite3.Connection, patience: float = 30.0) -> None:
    """Switch a connection to WAL mode, waiting out other processes doing the same.

    Workers open a new database at the same moment; switching its journal mode needs an
    exclusive lock and SQLite answers "database is locked" at once, without its busy
    handler, to the connection that loses the race (seen: 22 of 400 concurrent opens).
    """
    deadline = time.monotonic() + patience
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class _Stop:
    pass


class _Compact:
    """Queued by the journal compaction's thread when its snapshot is written: swap it in."""


class SQLiteMetadataStore:
    """The SQLite implementation of ``MetadataStore[sqlite3.Connection]`` (contracts.py)."""

    def __init__(
        self,
        path: Path,
        fsync: bool = True,
        observer: EngineObserver | None = None,
        *,
        file_mode: int = 0o600,
        journal_compact_min_bytes: int = COMPACT_MIN_BYTES,
    ) -> None:
        self.path = path
        self.journal = Journal(path, fsync, file_mode, compact_min_bytes=journal_compact_min_bytes)
        self.compactor = Compactor(self.journal, lambda: self._queue.put(_Compact()), lambda: self.observer)
        self.fsync = fsync
        self.file_mode = file_mode
        self.observer = observer or EngineObserver()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._local = threading.local()
        self._closed = False
        # Bumped after every commit by the writer thread: readers' caches tagged with an
        # older value are stale (engine.ReadCache).
        self.generation = 0
        self.batches = 0  # commits made (batch sizes also go to the observer)
        self.batched_ops = 0

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> None:
        self._set_file_modes()
        conn = _connect(self.path, self.fsync)
        found = conn.execute("PRAGMA user_version").fetchone()[0]
        if found > SCHEMA_VERSION:
            conn.close()
            raise RuntimeError(
                f"{self.path} has schema version {found}; this Coffer understands up to {SCHEMA_VERSION}"
            )
        conn.executescript(SCHEMA)
        # Several worker processes open the same database at once: migrate under the write lock.
        self._begin(conn)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                _migrate(conn, version)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self.journal.attach(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        self._writer = conn
        self._thread = threading.Thread(target=self._run_writer, name="coffer-sqlite-writer", daemon=True)
        self._thread.start()

    def _set_file_modes(self) -> None:
        """The database gets ``file_mode`` whatever the umask; SQLite gives its -wal and
        -shm files the database's mode when it creates them."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, self.file_mode)
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) != self.file_mode:
                os.fchmod(fd, self.file_mode)
        finally:
            os.close(fd)
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.chmod(f"{self.path}{suffix}", self.file_mode)

    def close(self) -> None:
        """Commit everything queued so far, then stop the writer.

        The queue is FIFO and the writer commits every item ahead of the stop
        marker, so each write accepted before close() is durable when it returns.
        A write racing with close() (queued behind the marker) fails cleanly
        instead of waiting forever.
        """
        if self._thread is not None:
            self._closed = True
            self._queue.put(_Stop())
            self._thread.join()
            self._thread = None
            self.compactor.close()
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if not isinstance(item, (_Stop, _Compact)):
                    _settle(item, None, ServiceUnavailable("the metadata store is shut down"))
            try:
                self._writer.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.Error:
                pass
            self._writer.close()
            self.journal.close()

    # ------------------------------------------------------------------ reads
    def reader(self) -> sqlite3.Connection:
        """This thread's read connection."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = _connect(self.path, self.fsync)
            conn.execute("PRAGMA query_only=1")
            self._local.conn = conn
        return conn

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return fn(self.reader())

    async def read_in_thread(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await asyncio.to_thread(lambda: fn(self.reader()))

    # ------------------------------------------------------------------ writes
    async def write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self.submit(fn)

    def submit(
        self, fn: Callable[[sqlite3.Connection], T], after: Callable[[T], None] | None = None
    ) -> asyncio.Future[T]:
        """Queue a write; the future settles after its commit (and ``after``: contracts.py). Cancelling
        the future does not withdraw the write: once queued, it commits (or fails) regardless."""
        if self._closed:
            raise ServiceUnavailable("the metadata store is shut down")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._queue.put((fn, fut, loop, after))
        return fut

    def write_blocking(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """For threads without an event loop (background sweeps)."""
        if self._closed:
            raise ServiceUnavailable("the metadata store is shut down")
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put((fn, fut, None, None))
        return fut.result()

    def _run_writer(self) -> None:
        conn = self._writer
        while True:
            first = self._queue.get()
            if isinstance(first, _Stop):
                return
            batch = [] if isinstance(first, _Compact) else [first]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Stop):
                    stop = True
                    break
                if not isinstance(item, _Compact):
                    batch.append(item)
            if batch:
                self._commit_batch(conn, batch)
            if self.compactor.ready:
                self._swap_journal(conn)
            if stop:
                return

    def _swap_journal(self, conn: sqlite3.Connection) -> None:
        """Put a compacted journal in place (compaction.py), between batches: no append races."""
        try:
            self._begin(conn)
            try:
                self.compactor.swap(conn)
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OSError):
            log.exception("journal compaction failed")
            self.compactor.failed(conn)

    def _commit_batch(self, conn: sqlite3.Connection, batch: list[Any]) -> None:
        outcomes: list[tuple[Any, BaseException | None]] = []
        journal = self.journal
        try:
            self._begin(conn)
            for fn, _fut, _loop, _after in batch:
                conn.execute("SAVEPOINT op")
                mark = journal.mark()
                try:
                    result = fn(conn)
                except BaseException as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    journal.rollback_to(mark)
                    outcomes.append((None, exc))
                else:
                    conn.execute("RELEASE op")
                    outcomes.append((result, None))
            started = time.perf_counter()
            # The batch's frame goes to the journal first, under the write lock (commit order).
            journal.append(conn)
            conn.execute("COMMIT")  # with synchronous=FULL this is the WAL fsync
            journal.settle()
            self.generation += 1
            self.batches += 1
            self.batched_ops += len(batch)
            self.observer.committed(len(batch), time.perf_counter() - started)
            self.compactor.maybe_start()
        except (sqlite3.Error, OSError) as exc:
            log.exception("metadata commit failed")
            journal.discard()
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            outcomes = [(None, exc)] * len(batch)
            self.generation += 1  # a failed COMMIT may have written part of the batch
        for item, (result, error) in zip(batch, outcomes, strict=True):
            after = item[3]
            if after is not None and error is None:
                try:
                    after(result)
                except Exception:  # the write committed: its caller answers as such
                    log.exception("work after a metadata commit failed")
        for item, (result, error) in zip(batch, outcomes, strict=True):
            _settle(item, result, error)

    @staticmethod
    def _begin(conn: sqlite3.Connection) -> None:
        # Several worker processes share the database: wait for the write lock.
        deadline = time.monotonic() + 60
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.001)


def _settle(item: tuple[Any, Any, Any, Any], result: Any, exc: BaseException | None) -> None:
    """Hand a write's outcome to whoever waits: an asyncio future (on its loop) or a thread."""
    _fn, fut, loop, _after = item
    if loop is not None:
        try:
            loop.call_soon_threadsafe(_resolve, fut, result, exc)
        except RuntimeError:  # that event loop is already closed: nobody waits
            pass
    elif exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


def _resolve(fut: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if fut.cancelled():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(result)


BUCKET_COLUMNS = "name, created, owner, region, versioning, object_lock"


def bucket_from_row(row: tuple[Any, ...]) -> BucketInfo:
    name, created, owner, region, versioning, object_lock = row
    return BucketInfo(name, created, owner, region, versioning, bool(object_lock))


def bucket_info(conn: sqlite3.Connection, name: str) -> BucketInfo:
    """A bucket's row, or NoSuchBucket."""
    row = conn.execute(f"SELECT {BUCKET_COLUMNS} FROM buckets WHERE name=?", (name,)).fetchone()
    if row is None:
        raise errors.NoSuchBucket(bucket=name)
    return bucket_from_row(row)
