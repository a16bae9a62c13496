"""The durable disk engine: SQLite metadata composed with a file blob store."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from coffer.storage import errors
from coffer.storage.api import (
    BucketInfo,
    EngineObserver,
    ListEntry,
    ListPage,
    ObjectInfo,
    ObjectPart,
    ProbeResult,
    StorageStats,
    Verifier,
)
from coffer.storage.conditions import check_write
from coffer.storage.disk.blobs import BlobStore, Segment, stream_fd
from coffer.storage.disk.manifest import blob_in_use, drop_manifest, load_segments, object_part, unreferenced
from coffer.storage.disk.metadata import MetadataStore
from coffer.storage.disk.multipart import MultipartMixin, object_extra
from coffer.storage.listing import list_page
from coffer.storage.ttl import expiry_of, is_expired

log = logging.getLogger("coffer.engine")

_OBJECT_COLUMNS = "key, size, etag, last_modified, storage_class, owner, extra, blob, version, id"
_LIST_BATCH = 1000
_REAP_BATCH = 1000
BUCKET_SEEN_SECONDS = 1.0
# Rows visible at time `?`: expired ones are gone for readers before the reaper deletes them.
_LIVE = "(expires IS NULL OR expires > ?)"
_GET_WHERE = f"FROM objects WHERE bucket=? AND key=? AND version='null' AND is_delete_marker=0 AND {_LIVE}"
# Columns 10 and 11: the inline body (NULL when not asked for) and the TTL expiry.
_GET = f"SELECT {_OBJECT_COLUMNS}, NULL, expires {_GET_WHERE}"
_GET_WITH_DATA = f"SELECT {_OBJECT_COLUMNS}, data, expires {_GET_WHERE}"
_CACHE_ENTRY_OVERHEAD = 1024  # rough bytes of an entry besides its inline body


def _cached_size(row: tuple[Any, ...]) -> int:
    return len(row[10] or b"") + _CACHE_ENTRY_OVERHEAD


class ReadCache:
    """Recently read rows of the latest versions of objects, with their ObjectInfo.

    Valid for one MetadataStore generation: the writer bumps it after every
    commit, so any write (from any code path of this process) empties the cache
    before a reader can see stale data. A row read while a commit lands is
    tagged with the generation from before the read and so is never kept. Only
    for a store no other process writes to (one worker).
    """

    def __init__(self, meta: MetadataStore, limit: int) -> None:
        self.meta = meta
        self.limit = limit
        self._entries: OrderedDict[tuple[str, str], tuple[ObjectInfo, tuple[Any, ...]]] = OrderedDict()
        self._bytes = 0
        self._generation = -1

    def get(self, bucket: str, key: str) -> tuple[ObjectInfo, tuple[Any, ...]] | None:
        if self._generation != self.meta.generation:
            self._drop_all()
            return None
        entry = self._entries.get((bucket, key))
        if entry is None:
            return None
        expires = entry[1][11]
        if expires is not None and is_expired(expires, time.time()):
            self._forget((bucket, key))
            return None
        self._entries.move_to_end((bucket, key))
        return entry

    def put(self, generation: int, bucket: str, key: str, info: ObjectInfo, row: tuple[Any, ...]) -> None:
        size = _cached_size(row)
        if generation != self.meta.generation or size > self.limit // 8:
            return
        if self._generation != generation:
            self._drop_all()
            self._generation = generation
        self._forget((bucket, key))
        self._entries[(bucket, key)] = (info, row)
        self._bytes += size
        while self._bytes > self.limit:
            self._forget(next(iter(self._entries)))

    def forget(self, bucket: str, key: str) -> None:
        self._forget((bucket, key))

    def _forget(self, name: tuple[str, str]) -> None:
        entry = self._entries.pop(name, None)
        if entry is not None:
            self._bytes -= _cached_size(entry[1])

    def _drop_all(self) -> None:
        self._entries.clear()
        self._bytes = 0
        self._generation = self.meta.generation


def _row_to_info(bucket: str, row: tuple[Any, ...]) -> ObjectInfo:
    key, size, etag, last_modified, storage_class, _owner, extra, _blob, version = row[:9]
    doc = json.loads(extra)
    return ObjectInfo(
        bucket=bucket,
        key=bytes(key).decode("utf-8"),
        size=size,
        etag=etag,
        last_modified=last_modified,
        version_id=version,
        storage_class=storage_class,
        headers=doc.get("h", {}),
        checksums={a: base64.b64decode(v) for a, v in doc.get("c", {}).items()},
        checksum_type=doc.get("ct", "FULL_OBJECT"),
        parts_count=doc.get("n", 0),
        tags=doc.get("t", {}),
    )


def _is_pieces(row: tuple[Any, ...]) -> bool:
    """Whether an objects row's body is a manifest of pieces (object_parts)."""
    return '"sg":1' in row[6]


class DiskObjectBody:
    """An object opened for reading; open file descriptors survive a concurrent delete."""

    def __init__(
        self,
        info: ObjectInfo,
        data: bytes | None,
        fd: int | None,
        *,
        object_id: int = 0,
        blob: str | None = None,
        segments: list[Segment] | None = None,
        fds: dict[int, int] | None = None,
        blobs: BlobStore | None = None,
    ) -> None:
        self.info = info
        self._fd = fd
        # What a copy needs to share this body instead of copying it.
        self.object_id = object_id
        self.blob = blob
        self.data = data
        self.segments = segments
        self._fds = fds if fds is not None else {}
        self._blobs = blobs

    def stream(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        end = self.info.size if end is None else end
        if self.segments is not None:
            assert self._blobs is not None
            fds, self._fds = self._fds, {}
            return self._blobs.stream_segments(self.segments, fds, start, end)
        if self._fd is not None:
            fd, self._fd = self._fd, None
            return stream_fd(fd, start, end)
        return _yield_once(self.data[start:end] if self.data is not None else b"")

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        for fd in self._fds.values():
            os.close(fd)
        self._fds = {}

    def __del__(self) -> None:
        self.close()


async def _yield_once(data: bytes) -> AsyncIterator[bytes]:
    if data:
        yield data


class DiskEngine(MultipartMixin):
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
    ) -> None:
        self.root = Path(data_dir)
        self.meta = MetadataStore(self.root / "metadata.sqlite3", fsync=fsync)
        self.cache = ReadCache(self.meta, read_cache_bytes) if read_cache_bytes else None
        self.blobs = BlobStore(self.root, fsync=fsync, inline_threshold=inline_threshold)
        self.max_object_size = max_object_size
        self.orphan_grace_seconds = orphan_grace_seconds
        self.upload_max_age_seconds = upload_max_age_seconds
        self.max_buckets = max_buckets
        self.max_objects_per_bucket = max_objects_per_bucket
        self.default_ttl = default_ttl
        self.reaper_interval = reaper_interval
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
        self.root.mkdir(parents=True, exist_ok=True)
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
            # Multipart uploads in progress (completed ones keep a row for a day).
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
            rows = conn.execute(
                "DELETE FROM objects WHERE id IN (SELECT id FROM objects WHERE expires IS NOT NULL"
                " AND expires <= ? LIMIT ?) RETURNING id, blob",
                (time.time(), _REAP_BATCH),
            ).fetchall()
            released: list[str | None] = []
            for object_id, blob in rows:
                released += [blob, *drop_manifest(conn, object_id)]
            # A copy may share an expired object's files: only unreferenced ones go.
            return len(rows), unreferenced(conn, released)

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
                if self.upload_max_age_seconds > 0:
                    aborted = self.sweep_uploads(self.upload_max_age_seconds)
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
        """Delete blob files older than the grace period that no row references (crash leftovers)."""
        return self.blobs.sweep_orphans(lambda name: blob_in_use(self.meta.reader(), name), grace_seconds)

    # ------------------------------------------------------------------ buckets
    async def create_bucket(self, name: str, owner: str, region: str) -> BucketInfo:
        created = time.time()

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
                "INSERT INTO buckets(name, created, owner, region) VALUES (?,?,?,?)", (name, created, owner, region)
            )
            return BucketInfo(name, created, owner, region)

        return await self.meta.write(tx)

    def _bucket_row(self, conn: sqlite3.Connection, name: str) -> BucketInfo:
        row = conn.execute("SELECT name, created, owner, region FROM buckets WHERE name=?", (name,)).fetchone()
        if row is None:
            raise errors.NoSuchBucket(bucket=name)
        return BucketInfo(*row)

    async def get_bucket(self, name: str) -> BucketInfo:
        return self.meta.read(lambda c: self._bucket_row(c, name))

    async def list_buckets(self, owner: str | None = None) -> list[BucketInfo]:
        sql = "SELECT name, created, owner, region FROM buckets"
        args: tuple[Any, ...] = ()
        if owner is not None:
            sql += " WHERE owner=?"
            args = (owner,)
        rows = self.meta.read(lambda c: c.execute(sql + " ORDER BY name", args).fetchall())
        return [BucketInfo(*r) for r in rows]

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
            self._bucket_row(conn, name)
            if conn.execute(f"SELECT 1 FROM objects WHERE bucket=? AND {_LIVE} LIMIT 1", (name, now)).fetchone():
                raise errors.BucketNotEmpty(bucket=name)
            released: list[str | None] = []
            # Only expired objects the reaper has not reached yet remain: they go with the bucket.
            for object_id, blob in conn.execute(
                "DELETE FROM objects WHERE bucket=? RETURNING id, blob", (name,)
            ).fetchall():
                released += [blob, *drop_manifest(conn, object_id)]
            conn.execute("DELETE FROM buckets WHERE name=?", (name,))
            # Uploads in progress do not keep a bucket alive (S3 drops them with it).
            released += [
                r[0]
                for r in conn.execute(
                    "DELETE FROM parts WHERE upload_id IN (SELECT upload_id FROM uploads WHERE bucket=?)"
                    " RETURNING blob",
                    (name,),
                ).fetchall()
            ]
            conn.execute("DELETE FROM uploads WHERE bucket=?", (name,))
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
    ) -> ObjectInfo:
        await self._bucket_exists(bucket)  # fail fast before reading a body
        received = await self.blobs.receive(
            body, algorithms=checksum_algorithms, want_sha256=want_sha256, max_size=self.max_object_size
        )
        try:
            digests = received.digests
            if verify is not None:
                verify(digests)
            blob = await self.blobs.publish(received) if received.temp_path is not None else None
        except BaseException:
            received.discard()
            raise
        now = time.time()
        expires = expiry_of(headers, now, self.default_ttl)
        info = ObjectInfo(
            bucket=bucket,
            key=key,
            size=digests.size,
            etag=digests.md5.hex(),
            last_modified=now,
            storage_class=storage_class,
            headers=headers,
            checksums=digests.checksums,
            checksum_type="FULL_OBJECT",
            tags=dict(tags or {}),
        )
        extra = object_extra(headers, digests.checksums, info.checksum_type, tags=tags)
        kb = key.encode("utf-8")

        def tx(conn: sqlite3.Connection) -> list[str]:
            owner = self._bucket_row(conn, bucket).owner  # the check that counts: inside the write
            row = conn.execute(
                "SELECT id, etag, blob, expires FROM objects WHERE bucket=? AND key=? AND version='null'",
                (bucket, kb),
            ).fetchone()
            live = row is not None and not is_expired(row[3], now)
            check_write(key, row[1] if live else None, if_match, if_none_match)
            if row is None:
                self._check_quota(conn, bucket, key, now)
            values = (
                digests.size,
                info.etag,
                info.last_modified,
                storage_class,
                owner,
                extra,
                expires,
                blob,
                received.data,
            )
            if row is None:
                conn.execute(
                    "INSERT INTO objects(bucket, key, version, size, etag, last_modified, storage_class, owner,"
                    " extra, expires, blob, data) VALUES (?,?,'null',?,?,?,?,?,?,?,?,?)",
                    (bucket, kb, *values),
                )
                return []
            conn.execute(
                "UPDATE objects SET size=?, etag=?, last_modified=?, storage_class=?, owner=?, extra=?,"
                " expires=?, blob=?, data=?, is_delete_marker=0, is_latest=1 WHERE id=?",
                (*values, row[0]),
            )
            # The replaced body (a file, or the pieces of a multipart object), reclaimed
            # after commit unless a copy still shares it.
            return unreferenced(conn, [row[2], *drop_manifest(conn, row[0])])

        try:
            released = await self.meta.write(tx)
        except BaseException:
            if blob is not None:
                self.blobs.delete([blob])
            raise
        await self.blobs.reclaim(released)
        return info

    def _check_quota(self, conn: sqlite3.Connection, bucket: str, key: str, now: float) -> None:
        """Refuse a new key in a bucket holding max_objects_per_bucket live objects (a count: opt-in)."""
        if not self.max_objects_per_bucket:
            return
        count = conn.execute(f"SELECT COUNT(*) FROM objects WHERE bucket=? AND {_LIVE}", (bucket, now)).fetchone()[0]
        if count >= self.max_objects_per_bucket:
            raise errors.QuotaExceeded(
                f"The bucket holds the maximum number of objects allowed "
                f"(max_objects_per_bucket={self.max_objects_per_bucket}).",
                bucket=bucket,
                key=key,
            )

    def _object_row(self, conn: sqlite3.Connection, bucket: str, key: str, with_data: bool) -> tuple[Any, ...]:
        row = conn.execute(_GET_WITH_DATA if with_data else _GET, (bucket, key.encode("utf-8"), time.time())).fetchone()
        if row is None:
            self._bucket_row(conn, bucket)
            raise errors.NoSuchKey(key=key)
        return tuple(row)

    def _lookup(
        self, conn: sqlite3.Connection, bucket: str, key: str, *, body: bool, part_number: int | None
    ) -> tuple[ObjectInfo, tuple[Any, ...], list[Segment] | None]:
        """An object's row, its pieces (when ``body`` and it has some) and the part asked for."""
        row = self._object_row(conn, bucket, key, body)
        if part_number is None and not (body and _is_pieces(row)):
            return _row_to_info(bucket, row), row, None  # the common case: one statement
        # Row and pieces must come from one snapshot: a read transaction.
        conn.execute("BEGIN")
        try:
            row = self._object_row(conn, bucket, key, body)
            info = _row_to_info(bucket, row)
            segments = load_segments(conn, row[9]) if body and _is_pieces(row) else None
            if part_number is not None:
                info.part = self._part_of(conn, info, row[9], part_number)
            return info, row, segments
        finally:
            conn.execute("COMMIT")

    def _read(
        self, bucket: str, key: str, *, body: bool, part_number: int | None
    ) -> tuple[ObjectInfo, tuple[Any, ...], list[Segment] | None]:
        """``_lookup`` through the read cache: a whole-object read of a hot object skips SQLite."""
        cache = self.cache
        if cache is not None and part_number is None:
            hit = cache.get(bucket, key)
            self.meta.observer.cache("read", hit is not None)
            if hit is not None:
                return hit[0], hit[1], None
        if cache is None or part_number is not None or not body:  # GETs fill the cache, HEADs only use it
            return self.meta.read(lambda c: self._lookup(c, bucket, key, body=body, part_number=part_number))
        generation = self.meta.generation  # before the read: a commit racing it makes the entry stale
        info, row, segments = self.meta.read(lambda c: self._lookup(c, bucket, key, body=True, part_number=None))
        if segments is None:
            cache.put(generation, bucket, key, info, row)
        return info, row, segments

    @staticmethod
    def _part_of(conn: sqlite3.Connection, info: ObjectInfo, object_id: int, part_number: int) -> ObjectPart:
        if info.parts_count:
            part = object_part(conn, object_id, part_number)
            if part is not None:
                return part
        elif part_number == 1:  # a single-part object is its own part 1
            return ObjectPart(1, 0, info.size, info.etag, dict(info.checksums))
        raise errors.InvalidPart(f"The requested part number {part_number} does not exist.", key=info.key)

    async def head_object(self, bucket: str, key: str, *, part_number: int | None = None) -> ObjectInfo:
        info, _row, _segments = self._read(bucket, key, body=False, part_number=part_number)
        return info

    async def open_object(self, bucket: str, key: str, *, part_number: int | None = None) -> DiskObjectBody:
        for _attempt in range(5):
            info, row, segments = self._read(bucket, key, body=True, part_number=part_number)
            blob, data, object_id = row[7], row[10], row[9]
            try:
                if segments is not None:
                    # Open the first files now (the rest stay open ahead of the reader).
                    start = info.part.offset if info.part is not None else 0
                    first = next((i for i, s in enumerate(segments) if s.offset + s.size > start), len(segments))
                    fds: dict[int, int] = {}
                    try:
                        self.blobs.open_ahead(segments, first, fds)
                    except BaseException:
                        for fd in fds.values():
                            os.close(fd)
                        raise
                    return DiskObjectBody(
                        info, None, None, object_id=object_id, segments=segments, fds=fds, blobs=self.blobs
                    )
                if blob is None:
                    inline = bytes(data) if data is not None else b""
                    return DiskObjectBody(info, inline, None, object_id=object_id)
                return DiskObjectBody(info, None, self.blobs.open_fd(blob), object_id=object_id, blob=blob)
            except FileNotFoundError:
                # Replaced between the lookup and the open: look again.
                if self.cache is not None:
                    self.cache.forget(bucket, key)
                await asyncio.sleep(0)
        raise errors.StorageError("object body missing", key=key)

    async def put_object_tagging(self, bucket: str, key: str, tags: dict[str, str]) -> ObjectInfo:
        kb = key.encode("utf-8")

        def tx(conn: sqlite3.Connection) -> ObjectInfo:
            # Read and rewrite the row's extra in one transaction of the writer: a
            # concurrent PUT of the key lands wholly before or after, never in between.
            row = conn.execute(_GET, (bucket, kb, time.time())).fetchone()
            if row is None:
                self._bucket_row(conn, bucket)
                raise errors.NoSuchKey(key=key)
            doc = json.loads(row[6])
            if tags:
                doc["t"] = tags
            else:
                doc.pop("t", None)
            extra = json.dumps(doc, separators=(",", ":"))
            # Only the metadata changes: body, ETag and Last-Modified stay.
            conn.execute("UPDATE objects SET extra=? WHERE id=?", (extra, row[9]))
            return _row_to_info(bucket, (*row[:6], extra, *row[7:]))

        # The commit bumps the store's generation: the read cache drops the old row.
        return await self.meta.write(tx)

    async def delete_object(self, bucket: str, key: str) -> None:
        kb = key.encode("utf-8")

        def tx(conn: sqlite3.Connection) -> list[str]:
            self._bucket_row(conn, bucket)
            row = conn.execute(
                "DELETE FROM objects WHERE bucket=? AND key=? AND version='null' RETURNING id, blob", (bucket, kb)
            ).fetchone()
            if row is None:
                return []
            return unreferenced(conn, [row[1], *drop_manifest(conn, row[0])])

        await self.blobs.reclaim(await self.meta.write(tx))

    async def delete_objects(self, bucket: str, keys: list[str]) -> list[Exception | None]:
        def tx(conn: sqlite3.Connection) -> list[str]:
            self._bucket_row(conn, bucket)
            released: list[str] = []
            for key in keys:
                row = conn.execute(
                    "DELETE FROM objects WHERE bucket=? AND key=? AND version='null' RETURNING id, blob",
                    (bucket, key.encode("utf-8")),
                ).fetchone()
                if row is not None:
                    released += [row[1], *drop_manifest(conn, row[0])]
            return unreferenced(conn, released)

        await self.blobs.reclaim(await self.meta.write(tx))
        return [None] * len(keys)

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
        self._bucket_row(conn, bucket)

        now = time.time()

        def scan(lower: bytes, inclusive: bool, upper: bytes | None) -> Iterator[tuple[bytes, tuple[Any, ...]]]:
            bound = (upper,) if upper is not None else ()
            while True:
                sql = (
                    "SELECT key, size, etag, last_modified, storage_class, owner FROM objects WHERE bucket=? "
                    f"AND key {'>=' if inclusive else '>'} ? {'AND key < ?' if bound else ''} "
                    f"AND is_latest=1 AND is_delete_marker=0 AND {_LIVE} ORDER BY key LIMIT ?"
                )
                # Step the cursor lazily (no fetchall): when the page ends, or a
                # CommonPrefix folds and the page builder seeks past it, after a
                # few rows, the rest of the batch is never read.
                count = 0
                key = b""
                for row in conn.execute(sql, (bucket, lower, *bound, now, _LIST_BATCH)):
                    count += 1
                    key = bytes(row[0])
                    yield key, row
                if count < _LIST_BATCH:
                    return
                lower, inclusive = key, False

        def entry(key: bytes, row: tuple[Any, ...]) -> ListEntry:
            return ListEntry(key.decode("utf-8"), *row[1:])

        return list_page(scan, entry, prefix=prefix, delimiter=delimiter, after=after, max_keys=max_keys)
