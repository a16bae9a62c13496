"""The in-memory engine: buckets and objects in RAM, forgetting on purpose.

- Objects live in per-bucket sorted key indexes (``index.KeyIndex``): listing
  seeks in O(log n) and costs O(page), with the same page builder as the disk
  engine (``coffer.storage.listing``).
- Memory is bounded by ``max_memory``: bodies being received reserve their
  bytes, and the least recently used objects are evicted (logged, counted in
  ``stats``) to make room. A body larger than the limit is refused while it
  streams in, before more than the limit is buffered.
- Objects may expire (``coffer.storage.ttl``): an expired object is invisible at
  once; a reaper task reclaims expired objects in small batches.
- Optional persistence: every mutation goes to a write-ahead log (``wal``)
  before it is acknowledged; snapshots (``snapshot``) bound the log. Recovery
  is the newest snapshot plus the log after it.

All state changes happen on the event loop thread, synchronously between two
awaits: a check and the change it guards (If-None-Match, limits) are atomic
without locks, and the log receives records in exactly the order they applied.
A write is visible to readers as soon as it is applied and acknowledged to its
writer once its log record is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import logging
import os
import shutil
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
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
    PutDigests,
    StorageStats,
    Verifier,
)
from coffer.storage.conditions import check_write
from coffer.storage.hashing import PIPELINE_CHUNK, BodyHasher
from coffer.storage.listing import list_page
from coffer.storage.memory.index import KeyIndex
from coffer.storage.memory.multipart import MemoryMultipartMixin, MemUpload, part_meta, upload_meta
from coffer.storage.memory.snapshot import read_snapshot, remove_temp_files, snapshots, write_snapshot
from coffer.storage.memory.wal import (
    BUCKET_CONFIG,
    COMPLETE_UPLOAD,
    CREATE_BUCKET,
    CREATE_UPLOAD,
    DELETE_BUCKET,
    DELETE_OBJECT,
    PUT_OBJECT,
    PUT_PART,
    SET_TAGS,
    Record,
    WalStats,
    WalWriter,
    encode_meta,
    read_records,
    segments,
)
from coffer.storage.ttl import expiry_of, is_expired

log = logging.getLogger("coffer.memory")

# Estimated bytes an object costs besides its body (Python objects, index
# entries, LRU entry); charged against max_memory with the key and metadata.
OBJECT_OVERHEAD = 400
# Bodies at least this large are hashed on a thread; smaller ones on the loop.
_HASH_INLINE_MAX = 256 * 1024
_REAP_BATCH = 1000

_hash_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="coffer-mem-hash")


@dataclass
class MemoryStats:
    """Counters and gauges of the memory engine, for metrics and tests (read-only outside)."""

    max_bytes: int = 0
    used_bytes: int = 0  # charged bytes of stored objects (bodies, keys, metadata, overhead)
    data_bytes: int = 0  # bytes of object data stored
    reserved_bytes: int = 0  # bodies being received
    objects: int = 0
    buckets: int = 0
    evictions: int = 0  # objects evicted to stay under max_memory
    evicted_bytes: int = 0
    expired: int = 0  # expired objects reclaimed by the reaper
    snapshots: int = 0
    wal: WalStats = field(default_factory=WalStats)


@dataclass(slots=True, eq=False)
class MemObject:
    """A stored object; never mutated once built (snapshots read it from a thread)."""

    info: ObjectInfo
    owner: str
    chunks: tuple[bytes, ...]
    expires: float | None
    charge: int
    # Its log record's encoded metadata, kept so snapshots do not encode it again.
    raw: bytes | None = None
    # Where each part lies, for an object completed from a multipart upload.
    parts: tuple[ObjectPart, ...] = ()


@dataclass(slots=True, eq=False)
class MemBucket:
    info: BucketInfo
    index: KeyIndex[MemObject] = field(default_factory=KeyIndex)
    config: dict[str, Any] = field(default_factory=dict)  # configuration documents (cors, ...)
    # Multipart uploads in progress by (UTF-8 key, upload id): ListMultipartUploads' order.
    uploads: KeyIndex[MemUpload] = field(default_factory=KeyIndex)


def _charge(
    key: bytes, size: int, headers: dict[str, str], checksums: dict[str, bytes], tags: dict[str, str] | None = None
) -> int:
    meta = sum(len(k) + len(v) for k, v in headers.items()) + sum(len(v) + 8 for v in checksums.values())
    if tags:
        meta += sum(len(k) + len(v) for k, v in tags.items())
    return size + 2 * len(key) + meta + OBJECT_OVERHEAD


def _retagged(obj: MemObject, tags: dict[str, str]) -> MemObject:
    """A new object sharing ``obj``'s body with other tags (objects are never mutated)."""
    info = dataclasses.replace(obj.info, tags=dict(tags))
    key = info.key.encode("utf-8")
    charge = _charge(key, info.size, info.headers, info.checksums, info.tags)
    return MemObject(info, obj.owner, obj.chunks, obj.expires, charge, None, obj.parts)


class MemoryObjectBody:
    """An open object: its chunks stay alive while streamed, even if it is deleted meanwhile."""

    def __init__(self, info: ObjectInfo, chunks: tuple[bytes, ...]) -> None:
        self.info = info
        self._chunks = chunks

    @property
    def data(self) -> bytes | None:
        """A one-chunk body as it is (the server sends it in one piece)."""
        return self._chunks[0] if len(self._chunks) == 1 else (b"" if not self._chunks else None)

    def stream(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        return _stream_chunks(self._chunks, start, self.info.size if end is None else end)

    def close(self) -> None:
        self._chunks = ()


async def _stream_chunks(chunks: tuple[bytes, ...], start: int, end: int) -> AsyncIterator[bytes]:
    pos = 0
    for chunk in chunks:
        chunk_start = pos
        pos += len(chunk)
        if pos <= start:
            continue
        if chunk_start >= end:
            break
        lo = max(start - chunk_start, 0)
        hi = min(end - chunk_start, len(chunk))
        yield chunk if lo == 0 and hi == len(chunk) else chunk[lo:hi]


class MemoryEngine(MemoryMultipartMixin):
    def __init__(
        self,
        *,
        max_memory: int,
        max_object_size: int | None = None,
        max_buckets: int = 0,
        max_objects_per_bucket: int = 0,
        default_ttl: int = 0,
        reaper_interval: float = 10.0,
        persistence_dir: str | os.PathLike[str] | None = None,
        fsync: bool = True,
        wal_batch_max: int = 512,
        wal_batch_interval: float = 0.0,
        snapshot_interval: float = 300.0,
        upload_max_age_seconds: float = 7 * 86400,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_memory = max_memory
        # No single body may exceed the memory limit: refused while it streams in.
        self.max_object_size = min(max_object_size, max_memory) if max_object_size else max_memory
        self.max_buckets = max_buckets
        self.max_objects_per_bucket = max_objects_per_bucket
        self.default_ttl = default_ttl
        self.reaper_interval = reaper_interval
        self.persistence_dir = Path(persistence_dir) if persistence_dir is not None else None
        self.fsync = fsync
        self.wal_batch_max = wal_batch_max
        self.wal_batch_interval = wal_batch_interval
        self.snapshot_interval = snapshot_interval
        self.upload_max_age_seconds = upload_max_age_seconds
        self.stats = MemoryStats(max_bytes=max_memory)
        self.clock = clock  # wall clock for timestamps and expiry (tests substitute their own)
        self.observer = EngineObserver()  # the server may replace it before start()

        self._buckets: dict[str, MemBucket] = {}
        self._uploads: dict[str, MemUpload] = {}
        # Completed uploads' answers by upload id, so a retried Complete gets the same one.
        self._completed: dict[str, tuple[ObjectInfo, float]] = {}
        # Least recently used first; values are the objects themselves.
        self._lru: OrderedDict[tuple[str, bytes], MemObject] = OrderedDict()
        # (expires, tiebreak, bucket, key, object): stale entries are skipped when popped.
        self._expiries: list[tuple[float, int, str, bytes, MemObject]] = []
        self._tiebreak = itertools.count()
        self._wal: WalWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._snapshot_lock = asyncio.Lock()
        self._snapshot_task: asyncio.Task[None] | None = None
        self._wal_bytes_at_snapshot = 0
        self._records_at_snapshot = 0
        self._started = False

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        if self.persistence_dir is not None:
            next_seq, replayed = await asyncio.to_thread(self._recover, self.persistence_dir)
            if replayed:
                self._records_at_snapshot = -1  # the log has records no snapshot holds yet
            self._wal = WalWriter(
                self.persistence_dir,
                next_seq,
                fsync=self.fsync,
                batch_max=self.wal_batch_max,
                batch_interval=self.wal_batch_interval,
                stats=self.stats.wal,
                observer=self.observer,
            )
            self._wal.open()
            if self.snapshot_interval > 0:
                self._tasks.append(asyncio.create_task(self._snapshot_loop(), name="coffer-memory-snapshots"))
        self._tasks.append(asyncio.create_task(self._reaper_loop(), name="coffer-memory-reaper"))

    async def close(self) -> None:
        if not self._started:
            return
        self._started = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if self._snapshot_task is not None:
            with contextlib.suppress(Exception):
                await self._snapshot_task
        if self._wal is not None:
            try:
                if self.stats.wal.records != self._records_at_snapshot:
                    await self.snapshot()
            except Exception:
                log.exception("shutdown snapshot failed; the WAL still holds every write")
            # From here on writes are refused; the writer still flushes every record queued so far.
            wal, self._wal = self._wal, None
            await asyncio.to_thread(wal.close)

    # ------------------------------------------------------------------ state changes
    # Used live and by recovery; synchronous, on the loop thread (or before it serves).
    def _install(self, bucket: MemBucket, key: bytes, obj: MemObject) -> None:
        old = bucket.index.get(key)
        if old is not None:
            self._forget(bucket.info.name, key, old)
        bucket.index.set(key, obj)
        self._lru[(bucket.info.name, key)] = obj
        self.stats.used_bytes += obj.charge
        self.stats.data_bytes += obj.info.size
        self.stats.objects += 1
        if obj.expires is not None:
            heapq.heappush(self._expiries, (obj.expires, next(self._tiebreak), bucket.info.name, key, obj))

    def _forget(self, name: str, key: bytes, obj: MemObject) -> None:
        self._lru.pop((name, key), None)
        self.stats.used_bytes -= obj.charge
        self.stats.data_bytes -= obj.info.size
        self.stats.objects -= 1

    def _remove(self, bucket: MemBucket, key: bytes) -> MemObject | None:
        obj = bucket.index.pop(key)
        if obj is not None:
            self._forget(bucket.info.name, key, obj)
        return obj

    def _add_bucket(self, info: BucketInfo) -> None:
        self._buckets[info.name] = MemBucket(info)
        self.stats.buckets = len(self._buckets)

    def _drop_bucket(self, name: str) -> None:
        bucket = self._buckets.get(name)
        if bucket is not None:
            for key, obj in bucket.index.scan(b"", True, None):
                self._forget(name, key, obj)
            # Uploads in progress do not keep a bucket alive (S3 drops them with it).
            for upload in bucket.uploads.values():
                self._drop_upload(upload)
            del self._buckets[name]
        self.stats.buckets = len(self._buckets)

    def _log(self, record: Record) -> asyncio.Future[None] | None:
        if self._wal is None:
            if self.persistence_dir is not None:
                # Shut down (or never started): the write cannot be made durable, so it is not acknowledged.
                raise errors.ServiceUnavailable("The memory engine is shut down.")
            return None
        return self._wal.append(record)

    async def _durable(self, fut: asyncio.Future[None] | None) -> None:
        if fut is None:
            return
        try:
            await fut
        except OSError as exc:
            raise errors.StorageError(f"The write could not be logged: {exc}") from exc
        self._maybe_snapshot()

    # ------------------------------------------------------------------ memory
    def _evict_to_limit(self, keep: MemObject | None = None) -> None:
        """Evict least recently used objects until stored + reserved bytes fit max_memory."""
        if self.stats.used_bytes + self.stats.reserved_bytes <= self.max_memory:
            return
        # Expired objects go first: they are already invisible.
        self._reap(self.clock(), _REAP_BATCH * 10)
        count = 0
        freed = 0
        while self.stats.used_bytes + self.stats.reserved_bytes > self.max_memory and self._lru:
            (name, key), obj = next(iter(self._lru.items()))
            if obj is keep:
                break
            bucket = self._buckets[name]
            self._remove(bucket, key)
            count += 1
            freed += obj.info.size
            if self._wal is not None:
                # Nobody waits for it: a lost eviction record only brings the object back.
                self._wal.append_nowait(Record(DELETE_OBJECT, {"b": name, "k": key.decode("utf-8")}))
        if count:
            self.stats.evictions += count
            self.stats.evicted_bytes += freed
            self.observer.evicted(count, freed)
            log.info(
                "evicted %d least recently used object%s (%d bytes) to stay under max_memory=%d",
                count,
                "" if count == 1 else "s",
                freed,
                self.max_memory,
            )

    def _reserve(self, n: int) -> None:
        self.stats.reserved_bytes += n
        if self.stats.used_bytes + self.stats.reserved_bytes > self.max_memory:
            self._evict_to_limit()
            if self.stats.reserved_bytes > self.max_memory:
                self.stats.reserved_bytes -= n
                raise errors.SlowDown("Uploads in progress already hold all of max_memory; retry when they complete.")

    async def _receive(
        self, body: AsyncIterator[bytes], algorithms: tuple[str, ...], want_sha256: bool, limit: int | None = None
    ) -> tuple[PutDigests, tuple[bytes, ...], int]:
        """Consume a body into ~1 MiB chunks, hashing as it arrives; returns the bytes reserved."""
        hasher = BodyHasher(algorithms, want_sha256)
        loop = asyncio.get_running_loop()
        chunks: list[bytes] = []
        pieces: list[bytes] = []
        pending = 0
        total = 0
        reserved = 0
        hashing: asyncio.Future[None] | None = None
        limit = self.max_object_size if limit is None else limit
        try:
            async for piece in body:
                if not piece:
                    continue
                total += len(piece)
                if total > limit:
                    raise self._too_large()
                self._reserve(len(piece))
                reserved += len(piece)
                pieces.append(piece)
                pending += len(piece)
                if pending >= PIPELINE_CHUNK:
                    data = b"".join(pieces)
                    pieces.clear()
                    pending = 0
                    chunks.append(data)
                    if hashing is not None:
                        await hashing
                    hashing = loop.run_in_executor(_hash_pool, hasher.update, data)
            if hashing is not None:
                await hashing
                hashing = None
            if pieces:
                data = pieces[0] if len(pieces) == 1 and type(pieces[0]) is bytes else b"".join(pieces)
                chunks.append(data)
                if len(data) >= _HASH_INLINE_MAX:
                    await loop.run_in_executor(_hash_pool, hasher.update, data)
                else:
                    hasher.update(data)
            return hasher.digests(), tuple(chunks), reserved
        except BaseException:
            if hashing is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.shield(hashing)
            self.stats.reserved_bytes -= reserved
            raise

    def _too_large(self) -> errors.EntityTooLarge:
        if self.max_object_size == self.max_memory:
            return errors.EntityTooLarge(
                f"Your proposed upload exceeds the maximum allowed size: the memory engine holds at most "
                f"max_memory={self.max_memory} bytes."
            )
        return errors.EntityTooLarge()

    # ------------------------------------------------------------------ expiry
    def _reap(self, now: float, budget: int) -> tuple[int, int]:
        """Reclaim expired objects; returns (heap entries looked at, objects removed)."""
        heap = self._expiries
        looked = removed = 0
        while heap and heap[0][0] <= now and looked < budget:
            _expires, _tie, name, key, obj = heapq.heappop(heap)
            looked += 1
            bucket = self._buckets.get(name)
            if bucket is not None and bucket.index.get(key) is obj:
                self._remove(bucket, key)
                removed += 1
        if removed:
            self.stats.expired += removed
            self.observer.expired(removed)
        return looked, removed

    async def reap_expired(self) -> int:
        """One reaper pass in batches that yield to requests in between; returns objects removed."""
        total = 0
        while True:
            looked, removed = self._reap(self.clock(), _REAP_BATCH)
            total += removed
            if looked < _REAP_BATCH:
                return total
            await asyncio.sleep(0)

    async def _reaper_loop(self) -> None:
        while True:
            await asyncio.sleep(self.reaper_interval)
            try:
                removed = await self.reap_expired()
                if removed:
                    log.debug("reaped %d expired objects", removed)
                aborted = self.sweep_uploads(self.upload_max_age_seconds)
                if aborted:
                    log.info("aborted %d abandoned multipart uploads", aborted)
            except Exception:
                log.exception("expiry reaper failed")

    # ------------------------------------------------------------------ health
    async def storage_stats(self) -> StorageStats:
        s = self.stats
        return StorageStats(s.buckets, s.objects, s.data_bytes, len(self._uploads), self.clock())

    async def probe(self) -> ProbeResult:
        directory = self.persistence_dir
        if directory is None:
            # Nothing on disk: readable and writable while running; memory pressure is handled by eviction.
            return ProbeResult(self._started, self._started, None, None, "" if self._started else "not started")
        problems = []
        if self._wal is None:
            problems.append("the write-ahead log is closed")

        def check() -> tuple[int, int]:
            path = directory / f"probe-{uuid.uuid4().hex}.tmp"
            path.write_bytes(b"ok")
            path.unlink()
            usage = shutil.disk_usage(directory)
            return usage.free, usage.total

        free = total = None
        try:
            free, total = await asyncio.to_thread(check)
        except OSError as exc:
            problems.append(f"persistence directory not writable: {exc}")
        return ProbeResult(True, not problems, free, total, "; ".join(problems))

    # ------------------------------------------------------------------ buckets
    def _bucket(self, name: str) -> MemBucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            raise errors.NoSuchBucket(bucket=name)
        return bucket

    async def create_bucket(self, name: str, owner: str, region: str) -> BucketInfo:
        existing = self._buckets.get(name)
        if existing is not None:
            if existing.info.owner == owner:
                raise errors.BucketAlreadyOwnedByYou(bucket=name)
            raise errors.BucketAlreadyExists(bucket=name)
        if self.max_buckets and len(self._buckets) >= self.max_buckets:
            raise errors.TooManyBuckets(
                f"You have attempted to create more buckets than allowed (max_buckets={self.max_buckets}).",
                bucket=name,
            )
        info = BucketInfo(name, self.clock(), owner, region)
        self._add_bucket(info)
        await self._durable(self._log(Record(CREATE_BUCKET, _bucket_meta(info))))
        return info

    async def get_bucket(self, name: str) -> BucketInfo:
        return self._bucket(name).info

    async def list_buckets(self, owner: str | None = None) -> list[BucketInfo]:
        return [b.info for name, b in sorted(self._buckets.items()) if owner is None or b.info.owner == owner]

    async def get_bucket_config(self, bucket: str, name: str) -> Any:
        return self._bucket(bucket).config.get(name)

    async def put_bucket_config(self, bucket: str, name: str, document: Any) -> None:
        b = self._bucket(bucket)
        record = Record(BUCKET_CONFIG, {"b": bucket, "n": name, "d": document})
        record.raw = encode_meta(record.meta)  # a document that is not JSON fails here, before any change
        fut = self._log(record)
        _set_config(b, name, document)
        await self._durable(fut)

    async def delete_bucket(self, name: str) -> None:
        bucket = self._bucket(name)
        now = self.clock()
        if any(not is_expired(obj.expires, now) for _key, obj in bucket.index.scan(b"", True, None)):
            raise errors.BucketNotEmpty(bucket=name)
        self._drop_bucket(name)
        await self._durable(self._log(Record(DELETE_BUCKET, {"name": name})))

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
        self._bucket(bucket)  # fail fast before reading a body
        digests, chunks, reserved = await self._receive(body, checksum_algorithms, want_sha256)
        try:
            if verify is not None:
                verify(digests)
            now = self.clock()
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
            obj, fut = self._commit(info, chunks, now, if_none_match=if_none_match, if_match=if_match)
        finally:
            self.stats.reserved_bytes -= reserved
        self._evict_to_limit(keep=obj)
        await self._durable(fut)
        return info

    def _commit(
        self,
        info: ObjectInfo,
        chunks: tuple[bytes, ...],
        now: float,
        *,
        if_none_match: bool | str | None = False,
        if_match: str | None = None,
        parts: tuple[ObjectPart, ...] = (),
        upload_id: str | None = None,
    ) -> tuple[MemObject, asyncio.Future[None] | None]:
        """Check the write's conditions and limits, then make it visible and log it (atomically).

        ``upload_id``: the object completes that upload; its log record names the
        upload's parts instead of carrying the data again.
        """
        bucket = self._bucket(info.bucket)
        key = info.key.encode("utf-8")
        current = bucket.index.get(key)
        live = current if current is not None and not is_expired(current.expires, now) else None
        check_write(info.key, live.info.etag if live is not None else None, if_match, if_none_match)
        if current is None and self.max_objects_per_bucket and len(bucket.index) >= self.max_objects_per_bucket:
            self._reap(now, len(self._expiries))  # expired objects do not count: reclaim them first
            if len(bucket.index) >= self.max_objects_per_bucket:
                raise errors.QuotaExceeded(
                    f"The bucket holds the maximum number of objects allowed "
                    f"(max_objects_per_bucket={self.max_objects_per_bucket}).",
                    bucket=info.bucket,
                    key=info.key,
                )
        if self._wal is None and self.persistence_dir is not None:
            raise errors.ServiceUnavailable("The memory engine is shut down.")
        obj = MemObject(
            info=info,
            owner=bucket.info.owner,
            chunks=chunks,
            expires=expiry_of(info.headers, now, self.default_ttl),
            charge=_charge(key, info.size, info.headers, info.checksums, info.tags),
            parts=parts,
        )
        self._install(bucket, key, obj)
        if self._wal is None:
            return obj, None
        meta = _object_meta(obj)
        obj.raw = encode_meta(meta)
        if upload_id is not None:
            return obj, self._wal.append(Record(COMPLETE_UPLOAD, {"u": upload_id, "o": meta}))
        return obj, self._wal.append(Record(PUT_OBJECT, None, chunks, obj.raw))

    def _live(self, bucket: str, key: str) -> MemObject:
        b = self._bucket(bucket)
        kb = key.encode("utf-8")
        obj = b.index.get(kb)
        if obj is None or is_expired(obj.expires, self.clock()):
            raise errors.NoSuchKey(key=key)
        self._lru.move_to_end((bucket, kb))
        return obj

    async def head_object(self, bucket: str, key: str, *, part_number: int | None = None) -> ObjectInfo:
        obj = self._live(bucket, key)
        return obj.info if part_number is None else self._part_of(obj, part_number)

    async def open_object(self, bucket: str, key: str, *, part_number: int | None = None) -> MemoryObjectBody:
        obj = self._live(bucket, key)
        info = obj.info if part_number is None else self._part_of(obj, part_number)
        return MemoryObjectBody(info, obj.chunks)

    async def put_object_tagging(self, bucket: str, key: str, tags: dict[str, str]) -> ObjectInfo:
        b = self._bucket(bucket)
        obj = self._live(bucket, key)
        if self._wal is None and self.persistence_dir is not None:
            raise errors.ServiceUnavailable("The memory engine is shut down.")
        # Swap in the retagged object and queue its record with no await in between:
        # a concurrent PUT of the key applies (and is logged) wholly before or after.
        new = _retagged(obj, tags)
        self._install(b, key.encode("utf-8"), new)
        fut = self._log(Record(SET_TAGS, {"b": bucket, "k": key, "t": new.info.tags}))
        self._evict_to_limit(keep=new)  # the tags are charged against max_memory too
        await self._durable(fut)
        return new.info

    def _delete(self, bucket: MemBucket, key: str) -> asyncio.Future[None] | None:
        if self._remove(bucket, key.encode("utf-8")) is None:
            return None
        return self._log(Record(DELETE_OBJECT, {"b": bucket.info.name, "k": key}))

    async def delete_object(self, bucket: str, key: str) -> None:
        await self._durable(self._delete(self._bucket(bucket), key))

    async def delete_objects(self, bucket: str, keys: list[str]) -> list[Exception | None]:
        b = self._bucket(bucket)
        last: asyncio.Future[None] | None = None
        for key in keys:
            fut = self._delete(b, key)
            if fut is not None:
                last = fut
        # Records are written in order: the last one durable means all of them are.
        await self._durable(last)
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
        index = self._bucket(bucket).index
        now = self.clock()

        def scan(lower: bytes, inclusive: bool, upper: bytes | None) -> Iterator[tuple[bytes, MemObject]]:
            for key, obj in index.scan(lower, inclusive, upper):
                if not is_expired(obj.expires, now):
                    yield key, obj

        def entry(key: bytes, obj: MemObject) -> ListEntry:
            i = obj.info
            return ListEntry(i.key, i.size, i.etag, i.last_modified, i.storage_class, obj.owner)

        return list_page(
            scan,
            entry,
            prefix=prefix.encode("utf-8"),
            delimiter=delimiter.encode("utf-8"),
            after=after.encode("utf-8"),
            max_keys=max_keys,
        )

    # ------------------------------------------------------------------ persistence
    def _recover(self, directory: Path) -> tuple[int, int]:
        """Load the newest snapshot and replay the log after it; returns (next segment, records replayed)."""
        directory.mkdir(parents=True, exist_ok=True)
        remove_temp_files(directory)
        started = time.monotonic()
        base = 0
        found = snapshots(directory)
        if found:
            base, path = found[-1]
            for record in read_snapshot(path):
                self._replay(record)
        replayed = 0
        last_seq = base
        for seq, path in segments(directory):
            if seq < base:
                continue  # folded into the snapshot; deleted below
            last_seq = seq
            good = 0
            for record, offset in read_records(path):
                self._replay(record)
                replayed += 1
                good = offset
            size = path.stat().st_size
            if good < size:
                log.warning(
                    "%s: discarding a torn tail of %d bytes after offset %d (a write cut short by a crash; "
                    "it was never acknowledged)",
                    path.name,
                    size - good,
                    good,
                )
                os.truncate(path, good)
        _remove_obsolete(directory, base)
        self._reap(self.clock(), len(self._expiries))
        self._evict_to_limit()
        log.info(
            "memory engine recovered %d buckets, %d objects (%d bytes) from %s: snapshot %d + %d log records in %.2fs",
            len(self._buckets),
            self.stats.objects,
            self.stats.used_bytes,
            directory,
            base,
            replayed,
            time.monotonic() - started,
        )
        return last_seq + 1, replayed

    def _replay(self, record: Record) -> None:
        meta = record.meta
        if record.op == CREATE_BUCKET:
            self._add_bucket(BucketInfo(meta["name"], meta["created"], meta["owner"], meta["region"]))
            self._buckets[meta["name"]].config = meta.get("config", {})
        elif record.op == DELETE_BUCKET:
            self._drop_bucket(meta["name"])
        elif record.op == PUT_OBJECT:
            bucket = self._buckets.get(meta[0])
            if bucket is None:
                return
            obj = _object_from(meta, record.data, record.raw)
            key = obj.info.key.encode("utf-8")
            if is_expired(obj.expires, self.clock()):
                self._remove(bucket, key)
            else:
                self._install(bucket, key, obj)
        elif record.op == BUCKET_CONFIG:
            bucket = self._buckets.get(meta["b"])
            if bucket is not None:
                _set_config(bucket, meta["n"], meta["d"])
        elif record.op == DELETE_OBJECT:
            bucket = self._buckets.get(meta["b"])
            if bucket is not None:
                self._remove(bucket, meta["k"].encode("utf-8"))
        elif record.op == SET_TAGS:
            bucket = self._buckets.get(meta["b"])
            key = meta["k"].encode("utf-8")
            current = bucket.index.get(key) if bucket is not None else None
            if bucket is not None and current is not None:
                self._install(bucket, key, _retagged(current, meta["t"]))
        elif record.op == COMPLETE_UPLOAD:
            upload = self._uploads.get(meta["u"])
            bucket = self._buckets.get(meta["o"][0])
            if upload is None or bucket is None:
                return
            numbers = [p[0] for p in meta["o"][12]]
            chunks = tuple(itertools.chain.from_iterable(upload.parts[n].chunks for n in numbers))
            obj = _object_from(meta["o"], chunks, encode_meta(meta["o"]))
            self._drop_upload(upload)
            key = obj.info.key.encode("utf-8")
            if is_expired(obj.expires, self.clock()):
                self._remove(bucket, key)
            else:
                self._install(bucket, key, obj)
        elif self._replay_upload(record):
            pass
        else:
            log.warning("skipping a log record of unknown kind %d", record.op)

    def _image(self) -> list[_BucketImage]:
        """References to the whole state, taken between two awaits (cheap: no object is copied)."""
        return [
            (b.info, b.config, b.index.values(), [(u, list(u.parts.values())) for u in b.uploads.values()])
            for b in self._buckets.values()
        ]

    async def snapshot(self) -> Path | None:
        """Write a snapshot now (no-op without persistence); the log before it is then deleted."""
        if self._wal is None:
            return None
        async with self._snapshot_lock:
            wal = self._wal
            seq = wal.seq + 1
            marker = wal.rotate(seq)
            image = self._image()
            self._wal_bytes_at_snapshot = self.stats.wal.bytes
            self._records_at_snapshot = self.stats.wal.records
            directory = wal.directory

            def write() -> tuple[Path, int]:
                marker.done.wait()
                result = write_snapshot(directory, seq, _image_records(image, self.clock()), fsync=self.fsync)
                _remove_obsolete(directory, seq)
                return result

            started = time.monotonic()
            writing = asyncio.ensure_future(asyncio.to_thread(write))
            try:
                path, size = await asyncio.shield(writing)
            except asyncio.CancelledError:
                # Hold the lock until the thread is done: two snapshot writers must never overlap.
                await writing
                raise
            self.stats.snapshots += 1
            log.info("snapshot %s written: %d bytes in %.2fs", path.name, size, time.monotonic() - started)
            return path

    def _maybe_snapshot(self) -> None:
        # The log holds whole bodies: snapshot early once it outgrows the data it describes.
        grown = self.stats.wal.bytes - self._wal_bytes_at_snapshot
        if grown > max(self.max_memory, 64 * 1024 * 1024) and (
            self._snapshot_task is None or self._snapshot_task.done()
        ):
            self._snapshot_task = asyncio.create_task(self._snapshot_logged())

    async def _snapshot_logged(self) -> None:
        try:
            await self.snapshot()
        except Exception:
            log.exception("snapshot failed; the WAL still holds every write")

    async def _snapshot_loop(self) -> None:
        while True:
            await asyncio.sleep(self.snapshot_interval)
            if self.stats.wal.records != self._records_at_snapshot:
                await self._snapshot_logged()


# A bucket in a snapshot image: info, configuration, objects, uploads with their parts.
_BucketImage = tuple[BucketInfo, dict[str, Any], list[MemObject], list[tuple[MemUpload, list[Any]]]]


def _bucket_meta(info: BucketInfo) -> dict[str, Any]:
    return {"name": info.name, "created": info.created, "owner": info.owner, "region": info.region}


def _object_meta(obj: MemObject) -> list[Any]:
    """An object's log metadata: a list (positional), the cheapest JSON to decode at recovery."""
    i = obj.info
    meta = [
        i.bucket,
        i.key,
        i.size,
        i.etag,
        i.last_modified,
        i.version_id,
        i.storage_class,
        obj.owner,
        i.headers,
        {a: v.hex() for a, v in i.checksums.items()},
        i.checksum_type,
        obj.expires,
        [[p.part_number, p.offset, p.size, p.etag, {a: v.hex() for a, v in p.checksums.items()}] for p in obj.parts],
    ]
    if i.tags:
        meta.append(i.tags)  # position 13; absent in records of untagged objects (and older logs)
    return meta


def _object_from(meta: list[Any], chunks: tuple[bytes, ...], raw: bytes | None) -> MemObject:
    bucket, key, size, etag, modified, version, storage_class, owner, headers, sums, checksum_type, expires = meta[:12]
    checksums = {a: bytes.fromhex(v) for a, v in sums.items()}
    parts = tuple(
        ObjectPart(n, offset, psize, petag, {a: bytes.fromhex(v) for a, v in psums.items()})
        for n, offset, psize, petag, psums in (meta[12] if len(meta) > 12 else ())
    )
    tags = meta[13] if len(meta) > 13 else {}
    info = ObjectInfo(
        bucket, key, size, etag, modified, version, storage_class, headers, checksums, checksum_type, len(parts)
    )
    info.tags = tags
    charge = _charge(key.encode("utf-8"), size, headers, checksums, tags)
    return MemObject(info, owner, chunks, expires, charge, raw, parts)


def _set_config(bucket: MemBucket, name: str, document: Any) -> None:
    # A new dict each time: a snapshot being written keeps the one it took.
    config = dict(bucket.config)
    if document is None:
        config.pop(name, None)
    else:
        config[name] = document
    bucket.config = config


def _image_records(image: list[_BucketImage], now: float) -> Iterator[Record]:
    for info, config, objects, uploads in image:
        yield Record(CREATE_BUCKET, {**_bucket_meta(info), "config": config})
        for upload, parts in uploads:
            yield Record(CREATE_UPLOAD, upload_meta(upload.info))
            for part in parts:
                yield Record(PUT_PART, part_meta(upload.info.upload_id, part.info), part.chunks)
        for obj in objects:
            if not is_expired(obj.expires, now):
                raw = obj.raw if obj.raw is not None else encode_meta(_object_meta(obj))
                yield Record(PUT_OBJECT, None, obj.chunks, raw)


def _remove_obsolete(directory: Path, base: int) -> None:
    """Segments and snapshots older than snapshot ``base`` are folded into it."""
    for seq, path in segments(directory):
        if seq < base:
            path.unlink(missing_ok=True)
    for seq, path in snapshots(directory):
        if seq < base:
            path.unlink(missing_ok=True)
