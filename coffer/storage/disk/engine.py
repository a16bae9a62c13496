"""The durable disk engine: SQLite metadata composed with a file blob store.

``DiskEngine`` composes the metadata store (metadata.py, the ``MetadataStore``
contract of storage/contracts.py), the blob store (blobs.py, ``BlobStore``), the
record layer that owns the objects table (records.py) and its multipart
uploads (``DiskUploads``, multipart.py), to which the upload operations delegate.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from coffer.fsutil import fsync_dir
from coffer.storage import errors
from coffer.storage.api import (
    DATA_MODES,
    NO_LOCK,
    VERSIONING_ENABLED,
    VERSIONING_SUSPENDED,
    BucketInfo,
    CompletedPart,
    Completion,
    DeleteCondition,
    DeleteRequest,
    DeleteResult,
    Encoding,
    EngineObserver,
    ListEntry,
    ListPage,
    ObjectInfo,
    ObjectLock,
    ObjectPartsPage,
    PartInfo,
    PartsPage,
    ProbeResult,
    SourceCheck,
    StorageStats,
    UploadInfo,
    UploadsPage,
    Verifier,
    VersionEntry,
    VersionsPage,
)
from coffer.storage.conditions import check_delete, check_write
from coffer.storage.contracts import BlobStore, MetadataStore, OpenBlob, Segment
from coffer.storage.disk import records
from coffer.storage.disk.blobs import FileBlobStore, commit_published, hash_stream, make_dir
from coffer.storage.disk.journal import COMPACT_MIN_BYTES
from coffer.storage.disk.manifest import blob_in_use, load_segments, object_part, object_parts_page, unreferenced
from coffer.storage.disk.metadata import BUCKET_COLUMNS, SQLiteMetadataStore, bucket_from_row, bucket_info
from coffer.storage.disk.multipart import DiskUploads
from coffer.storage.disk.records import File, Inline, ObjectRecord, Pieces
from coffer.storage.listing import AFTER_ALL_VERSIONS, list_page, list_versions_page
from coffer.storage.multipart import copy_plan
from coffer.storage.objects import (
    accept_body,
    check_quota,
    clamp_count,
    clamp_part_number,
    part_of,
    part_start,
    refuse_encoded_source,
    refuse_encoded_upload,
    require_encoded,
    stored_length,
)
from coffer.storage.ttl import expiry_of, is_expired
from coffer.storage.versioning import (
    check_lock_bucket,
    check_retention_change,
    check_version_delete,
    version_for_write,
    with_legal_hold,
    with_retention,
)

log = logging.getLogger("coffer.engine")

_LIST_BATCH = 1000
_REAP_BATCH = 1000
BUCKET_SEEN_SECONDS = 1.0
_CACHE_ENTRY_OVERHEAD = 1024  # rough bytes of an entry besides its inline body


def _cached_size(record: ObjectRecord) -> int:
    body = record.body
    return (len(body.data or b"") if isinstance(body, Inline) else 0) + _CACHE_ENTRY_OVERHEAD


class ReadCache:
    """Recently read records of the latest versions of objects.

    Valid for one metadata store generation: the writer bumps it after every
    commit, so any write (from any code path of this process) empties the cache
    before a reader can see stale data. A record read while a commit lands is
    tagged with the generation from before the read and so is never kept. Only
    for a store no other process writes to (one worker).
    """

    def __init__(self, meta: MetadataStore[Any], limit: int) -> None:
        self.meta = meta
        self.limit = limit
        self._entries: OrderedDict[tuple[str, str], ObjectRecord] = OrderedDict()
        self._bytes = 0
        self._generation = -1

    def get(self, bucket: str, key: str) -> ObjectRecord | None:
        if self._generation != self.meta.generation:
            self._drop_all()
            return None
        entry = self._entries.get((bucket, key))
        if entry is None:
            return None
        if entry.expires is not None and is_expired(entry.expires, time.time()):
            self._forget((bucket, key))
            return None
        self._entries.move_to_end((bucket, key))
        return entry

    def put(self, generation: int, bucket: str, key: str, record: ObjectRecord) -> None:
        size = _cached_size(record)
        if generation != self.meta.generation or size > self.limit // 8:
            return
        if self._generation != generation:
            self._drop_all()
            self._generation = generation
        self._forget((bucket, key))
        self._entries[(bucket, key)] = record
        self._bytes += size
        while self._bytes > self.limit:
            self._forget(next(iter(self._entries)))

    def forget(self, bucket: str, key: str) -> None:
        self._forget((bucket, key))

    def _forget(self, name: tuple[str, str]) -> None:
        entry = self._entries.pop(name, None)
        if entry is not None:
            self._bytes -= _cached_size(entry)

    def _drop_all(self) -> None:
        self._entries.clear()
        self._bytes = 0
        self._generation = self.meta.generation


class DiskObjectBody:
    """An object opened for reading; open blobs survive a concurrent delete."""

    def __init__(
        self,
        info: ObjectInfo,
        record: ObjectRecord,
        *,
        blob: OpenBlob | None = None,
        segments: list[Segment] | None = None,
        opened: dict[int, OpenBlob] | None = None,
        blobs: BlobStore | None = None,
    ) -> None:
        self.info = info
        # What a copy needs to share this body instead of copying it.
        self.record = record
        self._blob = blob
        self.segments = segments
        self._opened = opened if opened is not None else {}
        self._blobs = blobs
        body = record.body
        # An inline body is already in memory: the server answers it in one piece.
        self.data = body.data if isinstance(body, Inline) else None

    def stream(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        end = stored_length(self.info) if end is None else end
        if self.segments is not None:
            assert self._blobs is not None
            opened, self._opened = self._opened, {}
            return self._blobs.stream_segments(self.segments, opened, start, end)
        if self._blob is not None:
            blob, self._blob = self._blob, None
            return blob.stream(start, end)
        return _yield_once(self.data[start:end] if self.data is not None else b"")

    def close(self) -> None:
        if self._blob is not None:
            self._blob.close()
            self._blob = None
        for blob in self._opened.values():
            blob.close()
        self._opened = {}

    def __del__(self) -> None:
        self.close()


async def _yield_once(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


class _SourceChanged(Exception):
    """The copy source was replaced while being copied: start over."""


class DiskEngine:
    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        fsync: bool = True,
        inline_threshold: int = 65536,
        max_object_size: int | None = None,
        orphan_grace_seconds: float = 3600,
        upload_max_age_seconds: float = 7 * 86400,
        max_buckets: int = 0,
        max_objects_per_bucket: int = 0,
        default_ttl: int = 0,
        reaper_interval: float = 10.0,
        read_cache_bytes: int = 0,
        data_mode: str = "private",
        journal_compact_min_bytes: int = COMPACT_MIN_BYTES,
    ) -> None:
        if orphan_grace_seconds < 0:
            raise ValueError(f"orphan_grace_seconds must be >= 0 (got {orphan_grace_seconds})")
        if data_mode not in DATA_MODES:
            raise ValueError(f"data_mode must be one of {', '.join(DATA_MODES)} (got {data_mode!r})")
        self.root = Path(data_dir)
        self.dir_mode, file_mode = DATA_MODES[data_mode]
        self.meta: MetadataStore[sqlite3.Connection] = SQLiteMetadataStore(
            self.root / "metadata.sqlite3",
            fsync=fsync,
            file_mode=file_mode,
            journal_compact_min_bytes=journal_compact_min_bytes,
        )
        self.cache = ReadCache(self.meta, read_cache_bytes) if read_cache_bytes else None
        self.blobs: BlobStore = FileBlobStore(
            self.root, fsync=fsync, inline_threshold=inline_threshold, file_mode=file_mode, dir_mode=self.dir_mode
        )
        self.max_object_size = max_object_size
        self.orphan_grace_seconds = orphan_grace_seconds
        self.upload_max_age_seconds = upload_max_age_seconds
        self.max_buckets = max_buckets
        self.max_objects_per_bucket = max_objects_per_bucket
        self.default_ttl = default_ttl
        self.reaper_interval = reaper_interval
        self.uploads = DiskUploads(self.meta, self.blobs, self._check_quota, default_ttl)
        self.expired_reaped = 0  # objects the TTL reaper deleted (a metrics counter)
        self._sweeper: threading.Thread | None = None
        self._reaper: threading.Thread | None = None
        self._stopping = threading.Event()
        self._seen_buckets: dict[str, float] = {}  # bucket -> when it was last seen to exist
        self._stats: StorageStats | None = None
        self._stats_version = -1

    @property
    def observer(self) -> EngineObserver:
        return self.meta.observer

    @observer.setter
    def observer(self, observer: EngineObserver) -> None:
        self.meta.observer = observer
        self.blobs.observer = observer

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self.root.parent.mkdir(parents=True, exist_ok=True)
        # The data directory guards everything in it: 0700 by default.
        if make_dir(self.root, self.dir_mode):
            fsync_dir(self.root.parent)
        self.blobs.open()
        self.meta.open()
        self._sweeper = threading.Thread(target=self._sweep_loop, name="coffer-sweeper", daemon=True)
        self._sweeper.start()
        self._reaper = threading.Thread(target=self._reap_loop, name="coffer-ttl-reaper", daemon=True)
        self._reaper.start()

    async def close(self) -> None:
        self._stopping.set()
        if self._reaper is not None:
            await asyncio.to_thread(self._reaper.join)
            self._reaper = None
        # Off the event loop: the writer may still be committing the last batch.
        await asyncio.to_thread(self.meta.close)

    # ------------------------------------------------------------------ health
    async def storage_stats(self) -> StorageStats:
        # PRAGMA data_version changes whenever another connection (this process's
        # writer or another worker) commits: the cached totals stay exact.
        version = self.meta.read(lambda c: c.execute("PRAGMA data_version").fetchone()[0])
        cached = self._stats
        if cached is not None and version == self._stats_version:
            return cached

        def compute(conn: sqlite3.Connection) -> StorageStats:
            # bucket_stats is maintained by triggers: O(buckets), never a scan of the objects.
            buckets = conn.execute("SELECT COUNT(*) FROM buckets").fetchone()[0]
            objects, size = conn.execute(
                "SELECT COALESCE(SUM(objects), 0), COALESCE(SUM(bytes), 0) FROM bucket_stats"
            ).fetchone()
            # Multipart uploads in progress (completed ones keep a row for an hour).
            uploads = conn.execute("SELECT COUNT(*) FROM uploads WHERE completed IS NULL").fetchone()[0]
            return StorageStats(buckets, objects, size, uploads, time.time())

        self._stats = await self.meta.read_in_thread(compute)
        self._stats_version = version
        return self._stats

    async def probe(self) -> ProbeResult:
        problems: list[str] = []
        readable = writable = False
        try:
            await self.meta.read_in_thread(lambda c: c.execute("SELECT 1 FROM buckets LIMIT 1").fetchall())
            readable = True
        except Exception as exc:
            problems.append(f"metadata not readable: {exc}")
        try:
            # A round trip through the writer thread: it is alive and gets the write lock.
            await self.meta.write(lambda c: c.execute("SELECT 1").fetchone())
            await asyncio.to_thread(self.blobs.check_writable)
            writable = True
        except Exception as exc:
            problems.append(f"not writable: {exc}")
        free = total = None
        try:
            usage = await asyncio.to_thread(shutil.disk_usage, self.root)
            free, total = usage.free, usage.total
        except OSError as exc:
            problems.append(f"disk usage unknown: {exc}")
        return ProbeResult(readable, writable, free, total, "; ".join(problems))

    # ------------------------------------------------------------------ expiry
    def _reap_loop(self) -> None:
        while not self._stopping.wait(self.reaper_interval):
            try:
                removed = self.reap_expired_blocking()
                if removed:
                    log.debug("reaped %d expired objects", removed)
            except Exception:
                log.exception("expiry reaper failed")

    def reap_expired_blocking(self) -> int:
        """Delete expired objects in batches, each one short transaction of the writer thread."""

        def tx(conn: sqlite3.Connection) -> tuple[int, list[str]]:
            return records.delete_expired(conn, time.time(), _REAP_BATCH)

        total = 0
        while True:
            count, blobs = self.meta.write_blocking(tx)
            self.blobs.delete(blobs)
            total += count
            self.expired_reaped += count
            if count:
                self.observer.expired(count)
            if count < _REAP_BATCH or self._stopping.is_set():
                return total

    async def reap_expired(self) -> int:
        return await asyncio.to_thread(self.reap_expired_blocking)

    def _sweep_loop(self) -> None:
        # First sweep soon after start (not during it: restart must stay fast), then
        # hourly, or more often when abandoned uploads expire sooner than that.
        interval = 3600.0
        if self.upload_max_age_seconds > 0:
            interval = max(1.0, min(interval, self.upload_max_age_seconds / 2))
        delay = min(5.0, interval)
        last_orphans = 0.0
        while not self._stopping.wait(delay):
            try:
                # Also with no age limit: completed uploads' answers are forgotten after an hour.
                aborted = self.uploads.sweep(self.upload_max_age_seconds)
                if aborted:
                    log.info("aborted %d abandoned multipart uploads", aborted)
                if time.monotonic() - last_orphans >= 3600 or not last_orphans:
                    last_orphans = time.monotonic()
                    removed = self.sweep_orphans(self.orphan_grace_seconds)
                    if removed:
                        log.info("swept %d orphaned blob files", removed)
            except Exception:
                log.exception("background sweep failed")
            delay = interval

    def sweep_orphans(self, grace_seconds: float) -> int:
        """Delete unreferenced blobs older than the grace period (crash leftovers); never one
        a committed row references or a write in flight is about to commit (blobs.py)."""
        return self.blobs.sweep_orphans(lambda name: self.meta.read(lambda c: blob_in_use(c, name)), grace_seconds)

    # ------------------------------------------------------------------ buckets
    async def create_bucket(self, name: str, owner: str, region: str, *, object_lock: bool = False) -> BucketInfo:
        created = time.time()
        # Object Lock needs versioning: a lock bucket is born Enabled.
        versioning = VERSIONING_ENABLED if object_lock else None

        def tx(conn: sqlite3.Connection) -> BucketInfo:
            row = conn.execute("SELECT owner FROM buckets WHERE name=?", (name,)).fetchone()
            if row is not None:
                if row[0] == owner:
                    raise errors.BucketAlreadyOwnedByYou(bucket=name)
                raise errors.BucketAlreadyExists(bucket=name)
            if self.max_buckets and conn.execute("SELECT COUNT(*) FROM buckets").fetchone()[0] >= self.max_buckets:
                raise errors.TooManyBuckets(
                    f"You have attempted to create more buckets than allowed (max_buckets={self.max_buckets}).",
                    bucket=name,
                )
            conn.execute(
                "INSERT INTO buckets(name, created, owner, region, versioning, object_lock) VALUES (?,?,?,?,?,?)",
                (name, created, owner, region, versioning, int(object_lock)),
            )
            return BucketInfo(name, created, owner, region, versioning, object_lock)

        return await self.meta.write(tx)

    async def put_bucket_versioning(self, name: str, status: str) -> BucketInfo:
        if status not in (VERSIONING_ENABLED, VERSIONING_SUSPENDED):
            raise ValueError(f"versioning status must be Enabled or Suspended, not {status!r}")

        def tx(conn: sqlite3.Connection) -> BucketInfo:
            info = bucket_info(conn, name)
            if status == VERSIONING_SUSPENDED and info.object_lock:
                raise errors.InvalidBucketState(
                    "An Object Lock configuration is present on this bucket, "
                    "so the versioning state cannot be changed.",
                    bucket=name,
                )
            conn.execute("UPDATE buckets SET versioning=? WHERE name=?", (status, name))
            info.versioning = status
            return info

        return await self.meta.write(tx)

    async def enable_object_lock(self, name: str) -> BucketInfo:
        def tx(conn: sqlite3.Connection) -> BucketInfo:
            info = bucket_info(conn, name)
            if info.versioning != VERSIONING_ENABLED:
                raise errors.InvalidBucketState(
                    "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration", bucket=name
                )
            conn.execute("UPDATE buckets SET object_lock=1 WHERE name=?", (name,))
            info.object_lock = True
            return info

        return await self.meta.write(tx)

    async def get_bucket(self, name: str) -> BucketInfo:
        return self.meta.read(lambda c: bucket_info(c, name))

    async def list_buckets(self, owner: str | None = None) -> list[BucketInfo]:
        sql = f"SELECT {BUCKET_COLUMNS} FROM buckets"
        args: tuple[Any, ...] = ()
        if owner is not None:
            sql += " WHERE owner=?"
            args = (owner,)
        rows = self.meta.read(lambda c: c.execute(sql + " ORDER BY name", args).fetchall())
        return [bucket_from_row(r) for r in rows]

    async def get_bucket_config(self, bucket: str, name: str) -> Any:
        def read(conn: sqlite3.Connection) -> Any:
            row = conn.execute("SELECT config FROM buckets WHERE name=?", (bucket,)).fetchone()
            if row is None:
                raise errors.NoSuchBucket(bucket=bucket)
            return json.loads(row[0]).get(name)

        return self.meta.read(read)

    async def put_bucket_config(self, bucket: str, name: str, document: Any) -> None:
        encoded = json.dumps(document)  # fail here, not inside the writer, on a bad document

        def tx(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT config FROM buckets WHERE name=?", (bucket,)).fetchone()
            if row is None:
                raise errors.NoSuchBucket(bucket=bucket)
            config = json.loads(row[0])
            if document is None:
                config.pop(name, None)
            else:
                config[name] = json.loads(encoded)
            conn.execute("UPDATE buckets SET config=? WHERE name=?", (json.dumps(config), bucket))

        await self.meta.write(tx)

    async def _bucket_exists(self, name: str) -> None:
        """NoSuchBucket before a body is read. A bucket seen within BUCKET_SEEN_SECONDS
        is not looked up again (a read right after each group commit costs a WAL
        re-validation on the loop thread); the write transaction checks for good."""
        now = time.monotonic()
        seen = self._seen_buckets.get(name)
        if seen is not None and now - seen < BUCKET_SEEN_SECONDS:
            return
        await self.get_bucket(name)
        if len(self._seen_buckets) >= 4096:
            self._seen_buckets.clear()
        self._seen_buckets[name] = now

    async def delete_bucket(self, name: str) -> None:
        now = time.time()

        def tx(conn: sqlite3.Connection) -> list[str]:
            bucket_info(conn, name)
            if records.any_live(conn, name, now):
                raise errors.BucketNotEmpty(bucket=name)
            # Only expired objects the reaper has not reached yet remain: they go with the bucket.
            released = records.delete_bucket_records(conn, name)
            conn.execute("DELETE FROM buckets WHERE name=?", (name,))
            # Uploads in progress do not keep a bucket alive (S3 drops them with it).
            released += DiskUploads.drop_bucket_uploads(conn, name)
            return unreferenced(conn, released)

        await self.blobs.reclaim(await self.meta.write(tx))
        self._seen_buckets.pop(name, None)

    # ------------------------------------------------------------------ objects
    async def put_object(
        self,
        bucket: str,
        key: str,
        body: AsyncIterator[bytes],
        *,
        headers: dict[str, str],
        checksum_algorithms: tuple[str, ...] = (),
        want_sha256: bool = False,
        verify: Verifier | None = None,
        storage_class: str = "STANDARD",
        if_none_match: bool | str = False,
        if_match: str | None = None,
        tags: dict[str, str] | None = None,
        lock: ObjectLock = NO_LOCK,
        acl: dict[str, Any] | None = None,
        encoding: Encoding | None = None,
        committed: Callable[[ObjectInfo], None] | None = None,
    ) -> ObjectInfo:
        await self._bucket_exists(bucket)  # fail fast before reading a body
        received = await self.blobs.receive(
            body,
            algorithms=checksum_algorithms,
            want_sha256=want_sha256,
            max_size=self.max_object_size,
            md5=encoding is None,  # an encoded body reports the caller's digests
        )
        info = ObjectInfo(
            bucket=bucket,
            key=key,
            size=0,
            etag="",
            last_modified=0.0,
            storage_class=storage_class,
            headers=headers,
            tags=dict(tags or {}),
            lock=lock,
            acl=acl,
        )
        try:
            # Inline or a blob file as the stored length decides (receive did).
            accept_body(info, received.digests, verify, encoding)
            blob = await self.blobs.publish(received) if received.data is None else None
        except BaseException:
            received.discard()
            raise
        now = time.time()
        info.last_modified = now
        record = ObjectRecord(
            info,
            "",
            File(blob) if blob is not None else Inline(received.data),
            expiry_of(headers, now, self.default_ttl),
        )

        def tx(conn: sqlite3.Connection) -> list[str]:
            found = bucket_info(conn, bucket)  # the check that counts: inside the write
            check_lock_bucket(found, lock)
            record.owner = found.owner
            info.version_id = version_for_write(found.versioning, time.time())
            target = records.target(conn, bucket, key, info.version_id, found.versioning, now)
            live = target.live_object
            check_write(key, live.etag if live is not None else None, if_match, if_none_match)
            if live is None:
                self._check_quota(conn, bucket, key, now)
            return records.write(conn, record, target)

        after = None if committed is None else lambda _: committed(info)
        await self.blobs.reclaim(await commit_published(self.meta, self.blobs, tx, received, blob, after))
        return info

    def _check_quota(self, conn: sqlite3.Connection, bucket: str, key: str, now: float) -> None:
        """Refuse a new key in a bucket holding max_objects_per_bucket live objects (a count: opt-in)."""
        if self.max_objects_per_bucket:
            check_quota(records.count_live(conn, bucket, now), self.max_objects_per_bucket, bucket, key)

    def _lookup(
        self,
        conn: sqlite3.Connection,
        bucket: str,
        key: str,
        *,
        body: bool,
        part_number: int | None,
        version_id: str | None = None,
    ) -> tuple[ObjectRecord, ObjectInfo, list[Segment] | None]:
        """An object's record, what to answer (with the part asked for) and its pieces (when ``body``)."""
        record = records.require(conn, bucket, key, time.time(), with_data=body, version_id=version_id)
        if part_number is None and not (body and isinstance(record.body, Pieces)):
            return record, record.info, None  # the common case: one statement
        # Record and pieces must come from one snapshot: a read transaction.
        conn.execute("BEGIN")
        try:
            record = records.require(conn, bucket, key, time.time(), with_data=body, version_id=version_id)
            info = record.info
            segments = load_segments(conn, record.id) if body and isinstance(record.body, Pieces) else None
            if part_number is not None:
                stored = object_part(conn, record.id, part_number) if info.parts_count else None
                info.part = part_of(info, part_number, stored)
            return record, info, segments
        finally:
            conn.execute("COMMIT")

    def _read(
        self, bucket: str, key: str, *, body: bool, part_number: int | None, version_id: str | None = None
    ) -> tuple[ObjectRecord, ObjectInfo, list[Segment] | None]:
        """``_lookup`` through the read cache: a whole-object read of a hot object skips SQLite.
        The cache holds latest versions only: reads by version id go to SQLite."""
        cache = self.cache
        if version_id is not None:
            return self.meta.read(
                lambda c: self._lookup(c, bucket, key, body=body, part_number=part_number, version_id=version_id)
            )
        if cache is not None and part_number is None:
            hit = cache.get(bucket, key)
            self.meta.observer.cache("read", hit is not None)
            if hit is not None:
                return hit, hit.info, None
        if cache is None or part_number is not None or not body:  # GETs fill the cache, HEADs only use it
            return self.meta.read(lambda c: self._lookup(c, bucket, key, body=body, part_number=part_number))
        generation = self.meta.generation  # before the read: a commit racing it makes the entry stale
        record, info, segments = self.meta.read(lambda c: self._lookup(c, bucket, key, body=True, part_number=None))
        if segments is None:
            cache.put(generation, bucket, key, record)
        return record, info, segments

    async def head_object(
        self, bucket: str, key: str, *, part_number: int | None = None, version_id: str | None = None
    ) -> ObjectInfo:
        return self._read(bucket, key, body=False, part_number=part_number, version_id=version_id)[1]

    async def open_object(
        self, bucket: str, key: str, *, part_number: int | None = None, version_id: str | None = None
    ) -> DiskObjectBody:
        for _attempt in range(5):
            record, info, segments = self._read(bucket, key, body=True, part_number=part_number, version_id=version_id)
            try:
                if segments is not None:
                    # Open the first blobs now (the rest stay open ahead of the reader).
                    start = part_start(info.part) if info.part is not None else 0
                    first = next((i for i, s in enumerate(segments) if s.offset + s.size > start), len(segments))
                    opened: dict[int, OpenBlob] = {}
                    try:
                        self.blobs.open_ahead(segments, first, opened)
                    except BaseException:
                        for blob in opened.values():
                            blob.close()
                        raise
                    return DiskObjectBody(info, record, segments=segments, opened=opened, blobs=self.blobs)
                if isinstance(record.body, File):
                    return DiskObjectBody(info, record, blob=self.blobs.open_blob(record.body.blob))
                return DiskObjectBody(info, record)
            except FileNotFoundError:
                # Replaced between the lookup and the open: look again.
                if self.cache is not None:
                    self.cache.forget(bucket, key)
                await asyncio.sleep(0)
        raise errors.StorageError("object body missing", key=key)

    async def _open_source(self, bucket: str, key: str, version_id: str | None) -> DiskObjectBody:
        """A copy source: as S3, naming a delete marker by version id is an InvalidRequest; so is
        a version stored transformed (its bytes are bound to it)."""
        try:
            source = await self.open_object(bucket, key, version_id=version_id)
        except errors.MethodNotAllowed as exc:
            raise errors.InvalidRequest(
                "The source of a copy request may not specifically refer to a delete marker by version id.", key=key
            ) from exc
        try:
            refuse_encoded_source(source.info)
        except BaseException:
            source.close()
            raise
        return source

    async def put_object_tagging(
        self, bucket: str, key: str, tags: dict[str, str], *, version_id: str | None = None
    ) -> ObjectInfo:
        def tx(conn: sqlite3.Connection) -> ObjectInfo:
            # Read and rewrite the record in one transaction of the writer: a concurrent
            # PUT of the key lands wholly before or after, never in between.
            record = records.require(conn, bucket, key, time.time(), with_data=False, version_id=version_id)
            record.info.tags = dict(tags)
            # Only the metadata changes: body, ETag and Last-Modified stay.
            records.update_metadata(conn, record)
            return record.info

        # The commit bumps the store's generation: the read cache drops the old record.
        return await self.meta.write(tx)

    async def put_object_acl(
        self, bucket: str, key: str, acl: dict[str, Any] | None, *, version_id: str | None = None
    ) -> ObjectInfo:
        def tx(conn: sqlite3.Connection) -> ObjectInfo:
            # As tagging: read and rewrite the version's row in one write transaction.
            record = records.require(conn, bucket, key, time.time(), with_data=False, version_id=version_id)
            record.info.acl = acl
            records.update_metadata(conn, record)  # body, ETag, Last-Modified, tags and lock stay
            return record.info

        # The commit bumps the store's generation: the read cache drops the old record.
        return await self.meta.write(tx)

    async def put_object_encoding(
        self, bucket: str, key: str, document: dict[str, Any], *, version_id: str
    ) -> ObjectInfo:
        def tx(conn: sqlite3.Connection) -> ObjectInfo:
            # As the ACL: read and rewrite the version's row in one write transaction.
            record = records.require(conn, bucket, key, time.time(), with_data=False, version_id=version_id)
            require_encoded(record.info)
            record.info.encoding = dict(document)
            records.update_metadata(conn, record)  # only the row's extra "e" changes
            return record.info

        # The commit bumps the store's generation: the read cache drops the old record.
        return await self.meta.write(tx)

    async def put_object_storage_class(
        self, bucket: str, key: str, storage_class: str, *, version_id: str, if_match: str | None = None
    ) -> ObjectInfo:
        def tx(conn: sqlite3.Connection) -> ObjectInfo:
            # As the ACL: read and rewrite the version's row in one write transaction.
            record = records.require(conn, bucket, key, time.time(), with_data=False, version_id=version_id)
            check_write(key, record.info.etag, if_match, None)
            record.info.storage_class = storage_class
            records.update_metadata(conn, record)
            return record.info

        # The commit bumps the store's generation: the read cache drops the old record.
        return await self.meta.write(tx)

    async def put_object_retention(
        self,
        bucket: str,
        key: str,
        mode: str | None,
        retain_until: float | None,
        *,
        version_id: str | None = None,
        bypass_governance: bool = False,
    ) -> ObjectInfo:
        def change(current: ObjectLock, now: float) -> ObjectLock:
            check_retention_change(key, current, mode, retain_until, bypass_governance, now)
            return with_retention(current, mode, retain_until)

        return await self.meta.write(lambda c: self._change_lock(c, bucket, key, version_id, change))

    async def put_object_legal_hold(
        self, bucket: str, key: str, on: bool, *, version_id: str | None = None
    ) -> ObjectInfo:
        return await self.meta.write(
            lambda c: self._change_lock(c, bucket, key, version_id, lambda lock, _now: with_legal_hold(lock, on))
        )

    @staticmethod
    def _change_lock(
        conn: sqlite3.Connection,
        bucket: str,
        key: str,
        version_id: str | None,
        change: Callable[[ObjectLock, float], ObjectLock],
    ) -> ObjectInfo:
        """Read a version's lock, check and apply ``change``, write it: one write transaction,
        so a concurrent delete of the version lands wholly before or after."""
        now = time.time()
        check_lock_bucket(bucket_info(conn, bucket))
        record = records.require(conn, bucket, key, now, with_data=False, version_id=version_id)
        record.info.lock = change(record.info.lock, now)
        records.update_metadata(conn, record)
        return record.info

    @staticmethod
    def _delete(
        conn: sqlite3.Connection,
        bucket: BucketInfo,
        key: str,
        condition: DeleteCondition | None,
        version_id: str | None,
        bypass_governance: bool,
        now: float,
    ) -> tuple[DeleteResult, list[str]]:
        """One delete in the caller's write transaction: what it did, and the blobs it released."""
        name = bucket.name
        if version_id is not None:
            # One version for good, once its condition holds and Object Lock allows.
            slot = records.version_slot(conn, name, key, version_id)
            check_delete(key, condition, slot.live(now) if slot is not None and not slot.marker else None)
            if slot is None:
                return DeleteResult(version_id, False), []
            if not slot.marker:
                check_version_delete(key, version_id, slot.lock, bypass_governance, now)
            return DeleteResult(version_id, slot.marker), records.remove(conn, name, key, slot)
        version = version_for_write(bucket.versioning, now)
        target = records.target(conn, name, key, version, bucket.versioning, now)
        check_delete(key, condition, target.live_object)
        if bucket.versioning is None:
            # Never versioned: the key's (null) version goes.
            released = records.remove(conn, name, key, target.replaces) if target.replaces is not None else []
            return DeleteResult(None, False), released
        # A delete marker becomes the latest version (in place of the null version when Suspended).
        marker = ObjectInfo(bucket=name, key=key, size=0, etag="", last_modified=now, version_id=version)
        marker.delete_marker = True
        released = records.write(conn, ObjectRecord(marker, bucket.owner, Inline(None)), target)
        return DeleteResult(version, True), released

    async def delete_object(
        self,
        bucket: str,
        key: str,
        condition: DeleteCondition | None = None,
        *,
        version_id: str | None = None,
        bypass_governance: bool = False,
    ) -> DeleteResult:
        def tx(conn: sqlite3.Connection) -> tuple[DeleteResult, list[str]]:
            found = bucket_info(conn, bucket)
            return self._delete(conn, found, key, condition, version_id, bypass_governance, time.time())

        result, released = await self.meta.write(tx)
        await self.blobs.reclaim(released)
        return result

    async def delete_objects(
        self, bucket: str, requests: list[DeleteRequest], *, bypass_governance: bool = False
    ) -> list[DeleteResult | Exception]:
        def tx(conn: sqlite3.Connection) -> tuple[list[str], list[DeleteResult | Exception]]:
            found = bucket_info(conn, bucket)
            now = time.time()
            released: list[str] = []
            outcomes: list[DeleteResult | Exception] = []
            for request in requests:
                try:
                    result, freed = self._delete(
                        conn, found, request.key, request.condition, request.version_id, bypass_governance, now
                    )
                except errors.StorageError as exc:  # a condition or a lock fails this key only
                    outcomes.append(exc)
                else:
                    released += freed
                    outcomes.append(result)
            return released, outcomes

        released, outcomes = await self.meta.write(tx)
        await self.blobs.reclaim(released)
        return outcomes

    # ------------------------------------------------------------------ copies
    async def copy_object(
        self,
        src_bucket: str,
        src_key: str,
        bucket: str,
        key: str,
        *,
        headers: dict[str, str] | None,
        storage_class: str | None = None,
        checksum_algorithm: str | None = None,
        check_source: SourceCheck | None = None,
        tags: dict[str, str] | None = None,
        src_version_id: str | None = None,
        lock: ObjectLock = NO_LOCK,
        acl: dict[str, Any] | None = None,
        committed: Callable[[ObjectInfo], None] | None = None,
    ) -> ObjectInfo:
        owner = (await self.get_bucket(bucket)).owner
        for _attempt in range(5):
            source = await self._open_source(src_bucket, src_key, src_version_id)
            try:
                if check_source is not None:
                    check_source(source.info)
                info, read_algorithms = copy_plan(
                    source.info, bucket, key, headers, storage_class, checksum_algorithm, tags
                )
                info.lock = lock  # never the source's
                info.acl = acl  # nor its ACL
                if read_algorithms is not None:
                    # S3 writes a copy as one object: a multipart source gets the MD5 of its
                    # content as ETag, and a checksum the source does not carry is computed.
                    digests = await hash_stream(source.stream(), read_algorithms)
                    info.etag = digests.md5.hex()
                    info.checksums = dict(digests.checksums)
            finally:
                source.close()
            try:
                return await self._commit_copy(source.record, owner, info, committed)
            except _SourceChanged:
                await asyncio.sleep(0)
        raise errors.ConditionalRequestConflict("The copy source kept changing during the copy.", key=src_key)

    async def _commit_copy(
        self, source: ObjectRecord, owner: str, info: ObjectInfo, committed: Callable[[ObjectInfo], None] | None
    ) -> ObjectInfo:
        """Share the source's body (same blobs) under the copy's record, if the source is unchanged."""
        src = source.info
        body = source.body
        if isinstance(body, Pieces):
            body = Pieces(shared_from=source.id)
        # The copy's TTL runs from the copy, per its own metadata.
        record = ObjectRecord(info, owner, body, expiry_of(info.headers, info.last_modified, self.default_ttl))

        def tx(conn: sqlite3.Connection) -> list[str]:
            now = time.time()
            # The version read is still there as it was (a null version may have been rewritten).
            current = records.get(conn, src.bucket, src.key, now, with_data=False, version_id=src.version_id)
            if current is None or (current.id, current.info.etag, current.info.last_modified) != (
                source.id,
                src.etag,
                src.last_modified,
            ):
                raise _SourceChanged()
            if current.info.tags != src.tags:
                raise _SourceChanged()  # retagged meanwhile: a COPY directive must carry the new tags
            found = bucket_info(conn, info.bucket)
            check_lock_bucket(found, info.lock)
            info.version_id = version_for_write(found.versioning, now)
            target = records.target(conn, info.bucket, info.key, info.version_id, found.versioning, now)
            if target.live_object is None:
                self._check_quota(conn, info.bucket, info.key, info.last_modified)
            if target.replaces is not None and target.replaces.id == source.id:
                # A null version copied onto itself: the body stays, only the metadata changes.
                record.id = source.id
                records.update_metadata(conn, record)
                records.make_latest(conn, target.replaces, target)
                return []
            return records.write(conn, record, target)

        after = None if committed is None else lambda _: committed(info)
        await self.blobs.reclaim(await self.meta.submit(tx, after))
        return info

    async def list_object_parts(
        self, bucket: str, key: str, *, marker: int = 0, max_parts: int = 1000, version_id: str | None = None
    ) -> ObjectPartsPage:
        marker, max_parts = clamp_part_number(marker), clamp_count(max_parts)

        def read(conn: sqlite3.Connection) -> ObjectPartsPage:
            conn.execute("BEGIN")
            try:
                record = records.require(conn, bucket, key, time.time(), with_data=False, version_id=version_id)
                info = record.info
                if not info.parts_count:
                    return ObjectPartsPage(info, [], False, 0)
                parts, truncated = object_parts_page(conn, record.id, marker, max_parts)
            finally:
                conn.execute("COMMIT")
            return ObjectPartsPage(info, parts, truncated, parts[-1].part_number if parts else 0)

        return self.meta.read(read)

    # ------------------------------------------------------------------ listing
    async def list_objects(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        after: str = "",
        max_keys: int = 1000,
    ) -> ListPage:
        return await self.meta.read_in_thread(
            lambda c: self._list(c, bucket, prefix.encode(), delimiter.encode(), after.encode(), max_keys)
        )

    def _list(
        self, conn: sqlite3.Connection, bucket: str, prefix: bytes, delimiter: bytes, after: bytes, max_keys: int
    ) -> ListPage:
        bucket_info(conn, bucket)
        now = time.time()

        def scan(lower: bytes, inclusive: bool, upper: bytes | None) -> Iterator[tuple[bytes, ListEntry]]:
            # When the page ends, or a CommonPrefix folds and the page builder seeks
            # past it, after a few entries, the rest of the batch is never read.
            return records.scan(conn, bucket, lower, inclusive, upper, now, _LIST_BATCH)

        def entry(_key: bytes, listed: ListEntry) -> ListEntry:
            return listed

        return list_page(scan, entry, prefix=prefix, delimiter=delimiter, after=after, max_keys=max_keys)

    async def list_object_versions(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        version_id_marker: str = "",
        max_keys: int = 1000,
    ) -> VersionsPage:
        return await self.meta.read_in_thread(
            lambda c: self._list_versions(
                c, bucket, prefix.encode(), delimiter.encode(), key_marker.encode(), version_id_marker, max_keys
            )
        )

    def _list_versions(
        self,
        conn: sqlite3.Connection,
        bucket: str,
        prefix: bytes,
        delimiter: bytes,
        key_marker: bytes,
        version_id_marker: str,
        max_keys: int,
    ) -> VersionsPage:
        bucket_info(conn, bucket)
        now = time.time()

        def scan(from_key: bytes, after: str | None, upper: bytes | None) -> Iterator[tuple[bytes, VersionEntry]]:
            # Walks the versions in (key, seq DESC) order, a batch at a time: first
            # from_key's versions older than `below` (when `include`), then the keys after it.
            below: int | None = None
            include = after is None
            if after is not None and after != AFTER_ALL_VERSIONS:
                below = records.seq_of(conn, bucket, from_key, after)
                include = below is not None  # an unknown version: past all of from_key's
            key = from_key
            while True:
                if include and (upper is None or key < upper):
                    while True:
                        count = 0
                        for raw, seq, entry in records.key_versions(conn, bucket, key, below, now, _LIST_BATCH):
                            count += 1
                            below = seq
                            yield raw, entry
                        if count < _LIST_BATCH:
                            break
                count = 0
                last: tuple[bytes, int] | None = None
                for raw, seq, entry in records.versions_after(conn, bucket, key, upper, now, _LIST_BATCH):
                    count += 1
                    last = (raw, seq)
                    yield raw, entry
                if count < _LIST_BATCH or last is None:
                    return
                # The batch may end inside a key: resume with its older versions.
                (key, below), include = last, True

        return list_versions_page(
            scan,
            prefix=prefix,
            delimiter=delimiter,
            key_marker=key_marker,
            version_id_marker=version_id_marker,
            max_keys=max_keys,
        )

    # ------------------------------------------------------------------ multipart (DiskUploads)
    async def create_multipart_upload(
        self,
        bucket: str,
        key: str,
        *,
        headers: dict[str, str],
        storage_class: str = "STANDARD",
        checksum_algorithm: str | None = None,
        checksum_type: str | None = None,
        tags: dict[str, str] | None = None,
        lock: ObjectLock = NO_LOCK,
        owner: str | None = None,
        acl: dict[str, Any] | None = None,
        encoding: dict[str, Any] | None = None,
    ) -> UploadInfo:
        return await self.uploads.create(
            bucket,
            key,
            headers=headers,
            storage_class=storage_class,
            checksum_algorithm=checksum_algorithm,
            checksum_type=checksum_type,
            tags=tags,
            lock=lock,
            owner=owner,
            acl=acl,
            encoding=encoding,
        )

    async def get_upload(self, bucket: str, key: str, upload_id: str) -> UploadInfo:
        return self.uploads.get(bucket, key, upload_id)

    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        body: AsyncIterator[bytes],
        *,
        checksum_algorithms: tuple[str, ...] = (),
        want_sha256: bool = False,
        verify: Verifier | None = None,
        encoding: Encoding | None = None,
    ) -> PartInfo:
        return await self.uploads.upload_part(
            bucket,
            key,
            upload_id,
            part_number,
            body,
            checksum_algorithms=checksum_algorithms,
            want_sha256=want_sha256,
            verify=verify,
            encoding=encoding,
        )

    async def upload_part_copy(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        src_bucket: str,
        src_key: str,
        *,
        src_range: tuple[int, int] | None = None,
        check_source: SourceCheck | None = None,
        src_version_id: str | None = None,
    ) -> PartInfo:
        upload = self.uploads.get(bucket, key, upload_id)
        refuse_encoded_upload(upload)
        source = await self._open_source(src_bucket, src_key, src_version_id)
        return await self.uploads.upload_part_copy(
            upload, part_number, source.info, source.stream, source.close, src_range, check_source
        )

    async def complete_multipart_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: list[CompletedPart],
        completion: Completion | None = None,
        committed: Callable[[ObjectInfo], None] | None = None,
    ) -> ObjectInfo:
        return await self.uploads.complete(bucket, key, upload_id, parts, completion or Completion(), committed)

    async def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        await self.uploads.abort(bucket, key, upload_id)

    def sweep_uploads(self, max_age_seconds: float, now: float | None = None) -> int:
        """Abort uploads older than ``max_age_seconds`` (0: never) and forget old completed ones; returns aborts."""
        return self.uploads.sweep(max_age_seconds, now)

    async def list_parts(
        self, bucket: str, key: str, upload_id: str, *, marker: int = 0, max_parts: int = 1000
    ) -> PartsPage:
        return await self.uploads.list_parts(
            bucket, key, upload_id, marker=clamp_part_number(marker), max_parts=clamp_count(max_parts)
        )

    async def list_multipart_uploads(
        self,
        bucket: str,
        *,
        prefix: str = "",
        delimiter: str = "",
        key_marker: str = "",
        upload_id_marker: str = "",
        max_uploads: int = 1000,
    ) -> UploadsPage:
        return await self.uploads.list_uploads(
            bucket,
            prefix=prefix,
            delimiter=delimiter,
            key_marker=key_marker,
            upload_id_marker=upload_id_marker,
            max_uploads=max_uploads,
        )
