"""The in-memory engine: buckets and objects in RAM, forgetting on purpose.

- Objects live in per-bucket sorted key indexes (``index.KeyIndex``): listing
  seeks in O(log n) and costs O(page), with the same page builder as the disk
  engine (``coffer.storage.listing``).
- Memory is bounded by ``max_memory``: bodies being received reserve their
  bytes, multipart parts are charged (never evicted), and the least recently
  used objects are evicted (logged, counted in ``stats``) to make room. A body
  larger than the limit is refused while it streams in, before more than the
  limit is buffered; once parts and bodies in flight hold the whole limit,
  uploads get SlowDown.
- Objects may expire (``coffer.storage.ttl``): an expired object is invisible at
  once; a reaper task reclaims expired objects in small batches.
- Optional persistence: every change goes to a write-ahead log (``wal``) and is
  applied once its record is durable; snapshots (``snapshot``) bound the log.
  Recovery is the newest snapshot plus the log after it.
- Multipart uploads are a component the engine owns (``multipart.MemoryUploads``).

All state changes happen on the event loop thread. A write checks its
conditions and limits, queues its log record and marks what it changes
(``index.Marks``) in one step between two awaits: checks of later writes see the
marks, so a check and the change it guards (If-None-Match, limits) are atomic
without locks, and the log receives records in exactly the order they were
checked. Readers see only the state: a change is applied (in log order) when
the writer thread reports its batch durable, and only then acknowledged. A
batch that fails is cut off the log; it and every change queued after it fail
with ServiceUnavailable, and none of them is applied.
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
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coffer.fsutil import FILE_MODE, open_private, private_dir
from coffer.storage import errors
from coffer.storage.api import (
    NO_LOCK,
    NULL_VERSION,
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
    ObjectBody,
    ObjectInfo,
    ObjectLock,
    ObjectPart,
    ObjectPartsPage,
    PartInfo,
    PartsPage,
    ProbeResult,
    PutDigests,
    SourceCheck,
    StorageStats,
    UploadInfo,
    UploadsPage,
    Verifier,
    VersionEntry,
    VersionsPage,
)
from coffer.storage.conditions import check_delete, check_write
from coffer.storage.hashing import PIPELINE_CHUNK, BodyHasher
from coffer.storage.listing import AFTER_ALL_VERSIONS, list_page, list_versions_page
from coffer.storage.memory import versions as ver
from coffer.storage.memory.codec import lock_from, lock_meta, object_from, object_meta
from coffer.storage.memory.index import KeyIndex, Marks
from coffer.storage.memory.multipart import (
    HASH_INLINE_MAX,
    MemoryUploads,
    completed_meta,
    hash_chunks,
)
from coffer.storage.memory.snapshot import read_snapshot, remove_temp_files, snapshots, write_snapshot
from coffer.storage.memory.versions import OBJECT_OVERHEAD, Chain, MemObject, Node
from coffer.storage.memory.wal import (
    BUCKET_CONFIG,
    BUCKET_STATE,
    COMPLETE_UPLOAD,
    COMPLETED,
    CREATE_BUCKET,
    CREATE_UPLOAD,
    DELETE_BUCKET,
    DELETE_OBJECT,
    PUT_OBJECT,
    SET_ACL,
    SET_ENCODING,
    SET_LOCK,
    SET_STORAGE_CLASS,
    SET_TAGS,
    Record,
    WalStats,
    WalWriter,
    encode_meta,
    read_records,
    segments,
)
from coffer.storage.multipart import COMPLETED_RETENTION_SECONDS, answer_stands, copy_plan
from coffer.storage.objects import (
    accept_body,
    check_quota,
    clamp_count,
    clamp_part_number,
    part_of,
    refuse_encoded_source,
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

log = logging.getLogger("coffer.memory")

__all__ = ["OBJECT_OVERHEAD", "MemObject", "MemoryEngine", "MemoryStats"]

_REAP_BATCH = 1000

_hash_pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="coffer-mem-hash")


# Log records that replace one field of a version: record kind -> (meta field, how to rebuild).
_VERSION_REWRITES: dict[int, tuple[str, Callable[[MemObject, Any], MemObject]]] = {
    SET_TAGS: ("t", ver.retagged),
    SET_LOCK: ("l", lambda v, lock: ver.relocked(v, lock_from(lock))),
    SET_ACL: ("a", ver.with_acl),
    SET_ENCODING: ("e", ver.with_encoding),
    SET_STORAGE_CLASS: ("c", ver.with_storage_class),
}


@dataclass
class MemoryStats:
    """Counters and gauges of the memory engine, for metrics and tests (read-only outside)."""

    max_bytes: int = 0
    used_bytes: int = 0  # charged bytes of stored objects and parts (bodies, keys, metadata, overhead)
    part_bytes: int = 0  # the part of used_bytes multipart parts hold (not evictable)
    data_bytes: int = 0  # bytes of object data stored
    reserved_bytes: int = 0  # bodies being received or waiting for their log record
    objects: int = 0  # object versions (delete markers not counted)
    buckets: int = 0
    evictions: int = 0  # objects evicted to stay under max_memory
    evicted_bytes: int = 0
    expired: int = 0  # expired objects reclaimed by the reaper
    snapshots: int = 0
    wal: WalStats = field(default_factory=WalStats)


@dataclass(slots=True, eq=False)
class MemBucket:
    """A bucket's durable state, plus the marks of its pending changes.

    ``index`` maps each key to its latest version (object or delete marker): ListObjects
    scans it, one entry per key. ``older`` holds the chain of noncurrent versions, newest
    first, of the keys that have any.
    """

    info: BucketInfo  # replaced, never mutated (snapshots read it from a thread)
    index: KeyIndex[MemObject] = field(default_factory=KeyIndex)
    older: dict[bytes, Node] = field(default_factory=dict)
    live_keys: int = 0  # keys whose latest version is an object (the quota counts these)
    config: dict[str, Any] = field(default_factory=dict)  # configuration documents (cors, ...)
    # Each key's versions as pending changes leave them, for later writes' checks.
    pending: Marks[bytes, Chain] = field(default_factory=Marks)
    # The bucket's info as pending changes leave it (versioning, Object Lock); key 0.
    pending_info: Marks[int, BucketInfo] = field(default_factory=Marks)

    def chain(self, key: bytes) -> Chain:
        """The key's durable versions, newest first."""
        latest = self.index.get(key)
        return Node(latest, self.older.get(key)) if latest is not None else None

    def write_chain(self, key: bytes) -> Chain:
        """The key's versions as pending changes leave them."""
        if key in self.pending:
            return self.pending.get(key, None)
        return self.chain(key)

    def write_info(self) -> BucketInfo:
        return self.pending_info.get(0, self.info)


@dataclass(slots=True, eq=False)
class _Change:
    """A change whose log record is queued: ``finish(True)`` applies it once durable, ``finish(False)`` drops it."""

    finish: Callable[[bool], None]
    future: asyncio.Future[None]


class MemoryObjectBody:
    """An open object: its chunks stay alive while streamed, even if it is deleted meanwhile."""

    def __init__(self, info: ObjectInfo, chunks: tuple[bytes, ...]) -> None:
        self.info = info
        # A one-chunk body as it is (the server sends it in one piece).
        self.data: bytes | None = chunks[0] if len(chunks) == 1 else (b"" if not chunks else None)
        self._chunks = chunks

    def stream(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        return _stream_chunks(self._chunks, start, stored_length(self.info) if end is None else end)

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


def _nothing(_ok: bool) -> None:
    pass


class MemoryEngine:
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
        self._clock = clock  # wall clock for timestamps and expiry (tests substitute their own)
        self.observer = EngineObserver()  # the server may replace it before start()

        self._buckets: dict[str, MemBucket] = {}
        # What pending changes make of buckets (None: deleted), for later writes' checks.
        self._bucket_marks: Marks[str, MemBucket | None] = Marks()
        self.uploads = MemoryUploads(self)
        # Keys, least recently used first: a key is evicted with all its versions, as one unit.
        self._lru: OrderedDict[tuple[str, bytes], None] = OrderedDict()
        # (expires, tiebreak, bucket, key, object): stale entries are skipped when popped.
        self._expiries: list[tuple[float, int, str, bytes, MemObject]] = []
        self._tiebreak = itertools.count()
        self._wal: WalWriter[_Change] | None = None
        # Changes whose records are queued, in log order.
        self._pending: deque[_Change] = deque()
        # Evictions made while recovering, before the log is open: logged once it is.
        self._unlogged: list[Record] = []
        self._recovering = False
        self._tasks: list[asyncio.Task[None]] = []
        self._snapshot_lock = asyncio.Lock()
        self._snapshot_task: asyncio.Task[None] | None = None
        self._wal_bytes_at_snapshot = 0
        self._records_at_snapshot = 0
        self._started = False

    def clock(self) -> float:
        return self._clock()

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
                deliver=self._settle,
                stats=self.stats.wal,
                observer=self.observer,
            )
            self._wal.open()
            if self._unlogged:
                # Recovery evicted objects to fit max_memory: log it, or they would come back after a crash.
                records, self._unlogged = self._unlogged, []
                await asyncio.gather(*(self._submit(record, _nothing) for record in records))
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
            # From here on writes are refused; the writer still writes every record queued so far
            # and its batches are applied and answered while this waits.
            wal, self._wal = self._wal, None
            await asyncio.to_thread(wal.close)

    # ------------------------------------------------------------------ the change pipeline
    def check_writable(self) -> None:
        if self._wal is None and self.persistence_dir is not None:
            # Shut down (or never started): the write cannot be made durable, so it is not acknowledged.
            raise errors.ServiceUnavailable("The memory engine is shut down.")

    def submit(self, record: Record, finish: Callable[[bool], None]) -> asyncio.Future[None] | None:
        """Log a change: ``finish(True)`` applies it once its record is durable (at once without
        persistence), ``finish(False)`` releases what it holds if it failed. Call check_writable() first."""
        if self._wal is None:
            finish(True)
            return None
        return self._submit(record, finish)

    def _submit(self, record: Record, finish: Callable[[bool], None]) -> asyncio.Future[None]:
        assert self._wal is not None
        change = _Change(finish, asyncio.get_running_loop().create_future())
        self._pending.append(change)
        self._wal.append(record, change)
        return change.future

    def log_nowait(self, record: Record) -> None:
        """Log a change already applied that nobody waits for (evictions, swept uploads):
        losing its record in a crash or a failed batch only brings back what it removed."""
        if self._wal is not None:
            self._wal.append(record, None)
        elif self._recovering:
            self._unlogged.append(record)

    def _settle(self, changes: list[_Change], error: BaseException | None) -> None:
        """A batch of the log is durable (apply it) or failed (drop it and everything queued after it)."""
        if error is None:
            for change in changes:
                if not self._pending or self._pending[0] is not change:
                    continue  # already failed with an earlier batch
                self._pending.popleft()
                try:
                    change.finish(True)
                except Exception:
                    log.exception("applying a logged change failed")
                if not change.future.done():
                    change.future.set_result(None)
            self._maybe_snapshot()
            return
        # The writer cut the batch off the log and discards whatever is queued until resume():
        # every pending change fails, none is applied.
        failed, self._pending = self._pending, deque()
        for change in failed:
            change.finish(False)
            if not change.future.done():
                change.future.set_exception(
                    errors.ServiceUnavailable(f"The write could not be logged ({error}); nothing was changed.")
                )
        if self._wal is not None:
            self._wal.resume()

    async def durable(self, fut: asyncio.Future[None] | None) -> None:
        """Wait until a submitted change is durable and applied (ServiceUnavailable if it failed)."""
        if fut is not None:
            await fut

    # ------------------------------------------------------------------ state changes
    # Applied live once durable, and by recovery; synchronous, on the loop thread (or before it serves).
    def _change(self, bucket: MemBucket, key: bytes, change: ver.Change, *, touch: bool = True) -> None:
        """Apply a logged change to the key's durable versions (live once durable, and in replay);
        ``touch``: the key becomes the most recently used."""
        old = bucket.chain(key)
        self._set_chain(bucket, key, old, change(old), touch=touch)

    def _set_chain(self, bucket: MemBucket, key: bytes, old: Chain, edit: ver.Edit, *, touch: bool) -> None:
        """Make the edit's chain the key's versions, charging what it added and releasing what it removed."""
        new, added, removed = edit
        name = bucket.info.name
        for obj in removed:
            self._uncharge(obj)
        for obj in added:
            self.stats.used_bytes += obj.charge
            if not obj.info.delete_marker:
                self.stats.data_bytes += obj.info.size
                self.stats.objects += 1
            if obj.expires is not None:
                heapq.heappush(self._expiries, (obj.expires, next(self._tiebreak), name, key, obj))
        bucket.live_keys += ver.is_live(new) - ver.is_live(old)
        if new is None:
            bucket.index.pop(key)
            bucket.older.pop(key, None)
            self._lru.pop((name, key), None)
            return
        bucket.index.set(key, new.obj)
        if new.next is not None:
            bucket.older[key] = new.next
        else:
            bucket.older.pop(key, None)
        if touch:
            self._lru.pop((name, key), None)
            self._lru[(name, key)] = None
        elif (name, key) not in self._lru:
            self._lru[(name, key)] = None

    def _uncharge(self, obj: MemObject) -> None:
        self.stats.used_bytes -= obj.charge
        if not obj.info.delete_marker:
            self.stats.data_bytes -= obj.info.size
            self.stats.objects -= 1

    def _attach_bucket(self, bucket: MemBucket) -> None:
        self._buckets[bucket.info.name] = bucket
        self.stats.buckets = len(self._buckets)

    def _drop_bucket(self, name: str) -> None:
        bucket = self._buckets.get(name)
        if bucket is not None:
            for key, _latest in bucket.index.scan(b"", True, None):
                for obj in ver.walk(bucket.chain(key)):
                    self._uncharge(obj)
                self._lru.pop((name, key), None)
            self.uploads.drop_bucket(name)
            del self._buckets[name]
        self.stats.buckets = len(self._buckets)

    # ------------------------------------------------------------------ the state as pending changes leave it
    def bucket(self, name: str) -> MemBucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            raise errors.NoSuchBucket(bucket=name)
        return bucket

    def write_bucket(self, name: str) -> MemBucket:
        bucket = self._bucket_marks.get(name, self._buckets.get(name))
        if bucket is None:
            raise errors.NoSuchBucket(bucket=name)
        return bucket

    def holds_bucket(self, bucket: MemBucket) -> bool:
        return self._buckets.get(bucket.info.name) is bucket

    def _bucket_count(self) -> int:
        count = len(self._buckets)
        for name, bucket in self._bucket_marks.items():
            count += (bucket is not None) - (name in self._buckets)
        return count

    @staticmethod
    def _object_count(bucket: MemBucket) -> int:
        """Keys whose latest version is an object, as pending changes leave them."""
        count = bucket.live_keys
        for key, chain in bucket.pending.items():
            count += ver.is_live(chain) - ver.is_live(bucket.chain(key))
        return count

    # ------------------------------------------------------------------ memory
    def evict_to_limit(self, keep: tuple[str, bytes] | None = None) -> None:
        """Evict least recently used keys (each with all its versions and delete markers: evicting
        only the latest would resurrect an older version) until stored + reserved bytes fit max_memory.

        Keys with changes pending are skipped: their eviction record would come after them in the log.
        """
        if self.stats.used_bytes + self.stats.reserved_bytes <= self.max_memory:
            return
        # Expired objects go first: they are already invisible.
        self._reap(self.clock(), _REAP_BATCH * 10)
        over = self.stats.used_bytes + self.stats.reserved_bytes - self.max_memory
        victims: list[tuple[MemBucket, bytes, list[MemObject]]] = []
        for name, key in self._lru:
            if over <= 0:
                break
            bucket = self._buckets[name]
            if (name, key) == keep or key in bucket.pending:
                continue
            versions = list(ver.walk(bucket.chain(key)))
            victims.append((bucket, key, versions))
            over -= sum(v.charge for v in versions)
        freed = count = 0
        for bucket, key, versions in victims:
            self._change(bucket, key, ver.remove(None))
            objects = [v for v in versions if not v.info.delete_marker]
            freed += sum(stored_length(v.info) for v in objects)
            count += len(objects)
            # No version id: the whole key, every version and delete marker with it.
            self.log_nowait(Record(DELETE_OBJECT, {"b": bucket.info.name, "k": key.decode("utf-8")}))
        if victims:
            self.stats.evictions += count
            self.stats.evicted_bytes += freed
            self.observer.evicted(count, freed)
            log.info(
                "evicted %d least recently used key%s (%d object version%s, %d bytes) to stay under max_memory=%d",
                len(victims),
                "" if len(victims) == 1 else "s",
                count,
                "" if count == 1 else "s",
                freed,
                self.max_memory,
            )

    def reserve(self, n: int) -> None:
        """Reserve ``n`` bytes of a body being received, evicting objects to make room; SlowDown if
        multipart parts and the bodies in flight alone would exceed max_memory."""
        s = self.stats
        s.reserved_bytes += n
        if s.used_bytes + s.reserved_bytes <= self.max_memory:
            return
        # Evicting every object would not make room: refuse without evicting anything.
        if s.part_bytes + s.reserved_bytes <= self.max_memory:
            self.evict_to_limit()
        if s.used_bytes + s.reserved_bytes > self.max_memory:
            s.reserved_bytes -= n
            raise errors.SlowDown(
                "Multipart parts and uploads in progress hold all of max_memory; retry when they complete."
            )

    def release(self, n: int) -> None:
        self.stats.reserved_bytes -= n

    async def receive(
        self,
        body: AsyncIterator[bytes],
        algorithms: tuple[str, ...],
        want_sha256: bool,
        limit: int | None = None,
        *,
        md5: bool = True,
    ) -> tuple[PutDigests, tuple[bytes, ...], int]:
        """Consume a body into ~1 MiB chunks, hashing as it arrives (``md5``: see ``BodyHasher``);
        returns the bytes reserved (the caller releases them, or hands them to the change that
        stores the body)."""
        hasher = BodyHasher(algorithms, want_sha256, md5=md5)
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
                self.reserve(len(piece))
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
                if len(data) >= HASH_INLINE_MAX:
                    await loop.run_in_executor(_hash_pool, hasher.update, data)
                else:
                    hasher.update(data)
            return hasher.digests(), tuple(chunks), reserved
        except BaseException:
            if hashing is not None:
                with contextlib.suppress(BaseException):
                    await asyncio.shield(hashing)
            self.release(reserved)
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
            if bucket is None:
                continue
            old = bucket.chain(key)
            edit = ver.without(old, lambda v: v is obj)  # noqa: B023 - used at once
            if edit[2]:
                # Removing the latest version promotes the next newest.
                self._set_chain(bucket, key, old, edit, touch=False)
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

    def sweep_uploads(self, max_age_seconds: float, now: float | None = None) -> int:
        """Abort uploads older than ``max_age_seconds`` (0: never) and forget old completions; returns aborts."""
        return self.uploads.sweep(max_age_seconds, self.clock() if now is None else now)

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
        return StorageStats(s.buckets, s.objects, s.data_bytes, len(self.uploads), self.clock())

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
            fd = open_private(path, os.O_WRONLY)
            try:
                os.write(fd, b"ok")
            finally:
                os.close(fd)
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
    async def create_bucket(self, name: str, owner: str, region: str, *, object_lock: bool = False) -> BucketInfo:
        existing = self._bucket_marks.get(name, self._buckets.get(name))
        if existing is not None:
            if existing.info.owner == owner:
                raise errors.BucketAlreadyOwnedByYou(bucket=name)
            raise errors.BucketAlreadyExists(bucket=name)
        if self.max_buckets and self._bucket_count() >= self.max_buckets:
            raise errors.TooManyBuckets(
                f"You have attempted to create more buckets than allowed (max_buckets={self.max_buckets}).",
                bucket=name,
            )
        self.check_writable()
        versioning = VERSIONING_ENABLED if object_lock else None
        bucket = MemBucket(BucketInfo(name, self.clock(), owner, region, versioning, object_lock))
        unmark = self._bucket_marks.mark(name, bucket)

        def finish(ok: bool) -> None:
            unmark()
            if ok:
                self._attach_bucket(bucket)

        await self.durable(self.submit(Record(CREATE_BUCKET, _bucket_meta(bucket.info)), finish))
        return bucket.info

    async def put_bucket_versioning(self, name: str, status: str) -> BucketInfo:
        if status not in (VERSIONING_ENABLED, VERSIONING_SUSPENDED):
            raise ValueError(f"versioning status {status!r}")
        bucket = self.write_bucket(name)
        if status == VERSIONING_SUSPENDED and bucket.write_info().object_lock:
            raise errors.InvalidBucketState(
                "An Object Lock configuration is present on this bucket, so the versioning state cannot be changed.",
                bucket=name,
            )
        return await self._change_bucket(bucket, {"v": status})

    async def enable_object_lock(self, name: str) -> BucketInfo:
        bucket = self.write_bucket(name)
        if bucket.write_info().versioning != VERSIONING_ENABLED:
            raise errors.InvalidBucketState(
                "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration", bucket=name
            )
        return await self._change_bucket(bucket, {"l": True})

    async def _change_bucket(self, bucket: MemBucket, change: dict[str, Any]) -> BucketInfo:
        """Set the bucket's versioning ("v") and/or Object Lock ("l") state, logged as BUCKET_STATE."""
        self.check_writable()
        info = _changed_info(bucket.write_info(), change)
        unmark = bucket.pending_info.mark(0, info)

        def finish(ok: bool) -> None:
            unmark()
            if ok and self.holds_bucket(bucket):
                bucket.info = _changed_info(bucket.info, change)

        await self.durable(self.submit(Record(BUCKET_STATE, {"b": bucket.info.name, **change}), finish))
        return info

    async def get_bucket(self, name: str) -> BucketInfo:
        return self.bucket(name).info

    async def list_buckets(self, owner: str | None = None) -> list[BucketInfo]:
        return [b.info for name, b in sorted(self._buckets.items()) if owner is None or b.info.owner == owner]

    async def get_bucket_config(self, bucket: str, name: str) -> Any:
        return self.bucket(bucket).config.get(name)

    async def put_bucket_config(self, bucket: str, name: str, document: Any) -> None:
        b = self.write_bucket(bucket)
        record = Record(BUCKET_CONFIG, {"b": bucket, "n": name, "d": document})
        record.raw = encode_meta(record.meta)  # a document that is not JSON fails here, before any change
        self.check_writable()

        def finish(ok: bool) -> None:
            if ok and self.holds_bucket(b):
                _set_config(b, name, document)

        await self.durable(self.submit(record, finish))

    async def delete_bucket(self, name: str) -> None:
        bucket = self.write_bucket(name)
        now = self.clock()
        keys = itertools.chain(
            (k for k, _obj in bucket.index.scan(b"", True, None)), (k for k, _obj in bucket.pending.items())
        )
        for key in keys:
            # Any version or delete marker left keeps the bucket (expired versions are gone already).
            if ver.latest(bucket.write_chain(key), now) is not None:
                raise errors.BucketNotEmpty(bucket=name)
        self.check_writable()
        unmark = self._bucket_marks.mark(name, None)

        def finish(ok: bool) -> None:
            unmark()
            if ok and self.holds_bucket(bucket):
                self._drop_bucket(name)

        await self.durable(self.submit(Record(DELETE_BUCKET, {"name": name}), finish))

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
        self.write_bucket(bucket)  # fail fast before reading a body
        digests, chunks, reserved = await self.receive(body, checksum_algorithms, want_sha256, md5=encoding is None)
        try:
            now = self.clock()
            info = ObjectInfo(
                bucket=bucket,
                key=key,
                size=0,
                etag="",
                last_modified=now,
                storage_class=storage_class,
                headers=headers,
                tags=dict(tags or {}),
                lock=lock,
                acl=acl,
            )
            accept_body(info, digests, verify, encoding)
            fut = self._commit(info, chunks, now, reserved, if_none_match=if_none_match, if_match=if_match)
        except BaseException:
            self.release(reserved)
            raise
        await self.durable(fut)
        if committed is not None:
            committed(info)
        return info

    def commit_object(
        self,
        info: ObjectInfo,
        chunks: tuple[bytes, ...],
        now: float,
        *,
        if_none_match: bool | str | None,
        if_match: str | None,
        parts: tuple[ObjectPart, ...],
        upload_id: str,
        done: Callable[[bool], None],
    ) -> asyncio.Future[None] | None:
        """Store the object a multipart upload completes (its record names the parts instead of carrying
        their data again); ``done(ok)`` runs when the change settles."""
        return self._commit(
            info,
            chunks,
            now,
            0,
            if_none_match=if_none_match,
            if_match=if_match,
            parts=parts,
            upload_id=upload_id,
            done=done,
        )

    def _commit(
        self,
        info: ObjectInfo,
        chunks: tuple[bytes, ...],
        now: float,
        reserved: int,
        *,
        if_none_match: bool | str | None = False,
        if_match: str | None = None,
        parts: tuple[ObjectPart, ...] = (),
        upload_id: str | None = None,
        done: Callable[[bool], None] | None = None,
    ) -> asyncio.Future[None] | None:
        """Check the write's conditions and limits, then log it and mark the key (atomically);
        sets ``info.version_id`` to the new version's id.

        Once it returns, the change owns ``reserved`` (the body's reservation): released when it settles.
        """
        bucket = self.write_bucket(info.bucket)
        key = info.key.encode("utf-8")
        chain = bucket.write_chain(key)
        current = _latest_object(chain, now)
        check_write(info.key, current.info.etag if current is not None else None, if_match, if_none_match)
        if (
            not ver.is_live(chain)
            and self.max_objects_per_bucket
            and self._object_count(bucket) >= self.max_objects_per_bucket
        ):
            self._reap(now, len(self._expiries))  # expired objects do not count: reclaim them first
            check_quota(self._object_count(bucket), self.max_objects_per_bucket, info.bucket, info.key)
        check_lock_bucket(bucket.write_info(), info.lock)
        self.check_writable()
        info.version_id = version_for_write(bucket.write_info().versioning, now)
        obj = ver.mem_object(info, bucket.info.owner, chunks, expiry_of(info.headers, now, self.default_ttl), parts)
        if self._wal is not None:
            obj.raw = encode_meta(_object_meta(obj))
        if upload_id is not None:
            record = Record(COMPLETE_UPLOAD, {"u": upload_id, "o": _object_meta(obj)})
        else:
            record = Record(PUT_OBJECT, None, chunks, obj.raw)

        def finish(ok: bool) -> None:
            self.release(reserved)
            if done is not None:
                done(ok)
            if ok:
                self.evict_to_limit(keep=(info.bucket, key))

        return self._stage(bucket, key, chain, ver.put(obj), record, finish)

    def _stage(
        self,
        bucket: MemBucket,
        key: bytes,
        chain: Chain,
        change: ver.Change,
        record: Record,
        then: Callable[[bool], None] | None = None,
    ) -> asyncio.Future[None] | None:
        """Mark what ``change`` makes of the key's pending ``chain`` and log it; applied once durable.

        Call right after the checks, with no await in between: that is what makes them atomic.
        """
        unmark = bucket.pending.mark(key, change(chain)[0])

        def finish(ok: bool) -> None:
            unmark()
            if ok and self.holds_bucket(bucket):
                self._change(bucket, key, change)
            if then is not None:
                then(ok)

        return self.submit(record, finish)

    def _read(self, bucket: str, key: str, version_id: str | None) -> MemObject:
        """A durable, visible version (None: the latest), counted as a use of the key."""
        b = self.bucket(bucket)
        kb = key.encode("utf-8")
        obj = _pick(b.chain(kb), key, version_id, self.clock())
        self._lru.move_to_end((bucket, kb))
        return obj

    def copy_source(self, bucket: str, key: str, version_id: str | None) -> MemObject:
        """The source version of a copy: a delete marker named by its id is an invalid request, so
        is a version stored transformed (its bytes are bound to it)."""
        try:
            source = self._read(bucket, key, version_id)
        except errors.MethodNotAllowed as exc:
            raise errors.InvalidRequest(
                "The source of a copy request may not specifically refer to a delete marker by version id.",
                key=key,
            ) from exc
        refuse_encoded_source(source.info)
        return source

    def is_current(self, info: ObjectInfo) -> bool:
        bucket = self._buckets.get(info.bucket)
        if bucket is None:
            return False
        obj = _latest_object(bucket.chain(info.key.encode("utf-8")), self.clock())
        if obj is None or obj.info.version_id != info.version_id:
            return False
        return answer_stands(info, obj.info.etag, obj.info.last_modified)

    async def head_object(
        self, bucket: str, key: str, *, part_number: int | None = None, version_id: str | None = None
    ) -> ObjectInfo:
        obj = self._read(bucket, key, version_id)
        return obj.info if part_number is None else _part_of(obj, part_number)

    async def open_object(
        self, bucket: str, key: str, *, part_number: int | None = None, version_id: str | None = None
    ) -> ObjectBody:
        obj = self._read(bucket, key, version_id)
        info = obj.info if part_number is None else _part_of(obj, part_number)
        return MemoryObjectBody(info, obj.chunks)

    async def put_object_tagging(
        self, bucket: str, key: str, tags: dict[str, str], *, version_id: str | None = None
    ) -> ObjectInfo:
        tags = dict(tags)
        return await self._rewrite_version(
            bucket,
            key,
            version_id,
            lambda v: ver.retagged(v, tags),
            lambda vid: Record(SET_TAGS, {"b": bucket, "k": key, "t": tags, "v": vid}),
        )

    async def put_object_acl(
        self, bucket: str, key: str, acl: dict[str, Any] | None, *, version_id: str | None = None
    ) -> ObjectInfo:
        return await self._rewrite_version(
            bucket,
            key,
            version_id,
            lambda v: ver.with_acl(v, acl),
            lambda vid: Record(SET_ACL, {"b": bucket, "k": key, "v": vid, "a": acl}),
        )

    async def put_object_encoding(
        self, bucket: str, key: str, document: dict[str, Any], *, version_id: str
    ) -> ObjectInfo:
        document = dict(document)

        def rebuild(v: MemObject) -> MemObject:
            require_encoded(v.info)  # checked against the version as pending changes leave it
            return ver.with_encoding(v, document)

        return await self._rewrite_version(
            bucket,
            key,
            version_id,
            rebuild,
            lambda vid: Record(SET_ENCODING, {"b": bucket, "k": key, "v": vid, "e": document}),
        )

    async def put_object_storage_class(
        self, bucket: str, key: str, storage_class: str, *, version_id: str, if_match: str | None = None
    ) -> ObjectInfo:
        def rebuild(v: MemObject) -> MemObject:
            check_write(key, v.info.etag, if_match, None)  # against the version as pending changes leave it
            return ver.with_storage_class(v, storage_class)

        return await self._rewrite_version(
            bucket,
            key,
            version_id,
            rebuild,
            lambda vid: Record(SET_STORAGE_CLASS, {"b": bucket, "k": key, "v": vid, "c": storage_class}),
        )

    async def _rewrite_version(
        self,
        bucket: str,
        key: str,
        version_id: str | None,
        rebuild: Callable[[MemObject], MemObject],
        record_of: Callable[[str], Record],
    ) -> ObjectInfo:
        """Replace one version by ``rebuild(version)`` (same body: tags, ACL), logged as ``record_of(id)``.
        Checked against the version as pending changes leave it, then staged (no await between)."""
        b = self.write_bucket(bucket)
        kb = key.encode("utf-8")
        chain = b.write_chain(kb)
        target = _pick(chain, key, version_id, self.clock())
        self.check_writable()
        new = rebuild(target)
        vid = target.info.version_id

        def then(ok: bool) -> None:
            if ok:
                self.evict_to_limit(keep=(bucket, kb))  # tags and ACLs are charged against max_memory too

        change = ver.replace(vid, rebuild)
        await self.durable(self._stage(b, kb, chain, change, record_of(vid), then))
        return new.info

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
        b = self._lock_bucket(bucket)
        kb = key.encode("utf-8")
        now = self.clock()
        chain = b.write_chain(kb)
        target = _pick(chain, key, version_id, now)
        # Checked against the version as pending changes leave it, in the same step as the change.
        check_retention_change(key, target.info.lock, mode, retain_until, bypass_governance, now)
        return await self._relock(b, kb, chain, target, with_retention(target.info.lock, mode, retain_until))

    async def put_object_legal_hold(
        self, bucket: str, key: str, on: bool, *, version_id: str | None = None
    ) -> ObjectInfo:
        b = self._lock_bucket(bucket)
        kb = key.encode("utf-8")
        chain = b.write_chain(kb)
        target = _pick(chain, key, version_id, self.clock())
        return await self._relock(b, kb, chain, target, with_legal_hold(target.info.lock, on))

    def _lock_bucket(self, name: str) -> MemBucket:
        bucket = self.write_bucket(name)
        check_lock_bucket(bucket.write_info())
        return bucket

    async def _relock(
        self, bucket: MemBucket, key: bytes, chain: Chain, target: MemObject, lock: ObjectLock
    ) -> ObjectInfo:
        self.check_writable()
        vid = target.info.version_id
        record = Record(SET_LOCK, {"b": bucket.info.name, "k": target.info.key, "v": vid, "l": lock_meta(lock)})
        change = ver.replace(vid, lambda v: ver.relocked(v, lock))
        await self.durable(self._stage(bucket, key, chain, change, record))
        return ver.relocked(target, lock).info

    def _delete(
        self,
        bucket: MemBucket,
        key: str,
        condition: DeleteCondition | None,
        version_id: str | None,
        bypass_governance: bool,
    ) -> tuple[DeleteResult, asyncio.Future[None] | None]:
        """Check the delete's condition and lock, and stage it (atomically: no await in between)."""
        kb = key.encode("utf-8")
        now = self.clock()
        chain = bucket.write_chain(kb)
        name = bucket.info.name
        if version_id is not None:
            target = ver.find(chain, version_id, now)
            check_delete(key, condition, target.info if target is not None and not target.info.delete_marker else None)
            if target is None:
                return DeleteResult(version_id, False), None  # deleting what does not exist succeeds
            check_version_delete(key, version_id, target.info.lock, bypass_governance, now)
            self.check_writable()
            record = Record(DELETE_OBJECT, {"b": name, "k": key, "v": version_id})
            result = DeleteResult(version_id, target.info.delete_marker)
            return result, self._stage(bucket, kb, chain, ver.remove(version_id), record)
        current = _latest_object(chain, now)
        check_delete(key, condition, current.info if current is not None else None)
        versioning = bucket.write_info().versioning
        if versioning is None:
            # Never versioned: the key's only version is the null one; remove it.
            if chain is None:
                return DeleteResult(None, False), None
            self.check_writable()
            record = Record(DELETE_OBJECT, {"b": name, "k": key, "v": NULL_VERSION})
            return DeleteResult(None, False), self._stage(bucket, kb, chain, ver.remove(NULL_VERSION), record)
        self.check_writable()
        info = ObjectInfo(name, key, 0, "", now, version_for_write(versioning, now), delete_marker=True)
        marker = ver.mem_object(info, bucket.info.owner, (), None)
        if self._wal is not None:
            marker.raw = encode_meta(_object_meta(marker))
        record = Record(PUT_OBJECT, None, (), marker.raw)
        return DeleteResult(info.version_id, True), self._stage(bucket, kb, chain, ver.put(marker), record)

    async def delete_object(
        self,
        bucket: str,
        key: str,
        condition: DeleteCondition | None = None,
        *,
        version_id: str | None = None,
        bypass_governance: bool = False,
    ) -> DeleteResult:
        result, fut = self._delete(self.write_bucket(bucket), key, condition, version_id, bypass_governance)
        await self.durable(fut)
        return result

    async def delete_objects(
        self, bucket: str, requests: list[DeleteRequest], *, bypass_governance: bool = False
    ) -> list[DeleteResult | Exception]:
        b = self.write_bucket(bucket)
        results: list[DeleteResult | Exception] = []
        waiting: list[tuple[int, asyncio.Future[None]]] = []
        for i, request in enumerate(requests):
            try:
                result, fut = self._delete(b, request.key, request.condition, request.version_id, bypass_governance)
            except errors.StorageError as exc:
                results.append(exc)
                continue
            results.append(result)
            if fut is not None:
                waiting.append((i, fut))
        outcomes = await asyncio.gather(*(fut for _i, fut in waiting), return_exceptions=True)
        for (i, _fut), outcome in zip(waiting, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                if not isinstance(outcome, Exception):
                    raise outcome
                results[i] = outcome
        return results

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
        b = self.bucket(bucket)
        now = self.clock()
        owner = b.info.owner

        def scan(from_key: bytes, after: str | None, upper: bytes | None) -> Iterator[tuple[bytes, VersionEntry]]:
            for key, _latest in b.index.scan(from_key, True, upper):
                versions = ver.visible(b.chain(key), now)
                start = 0
                if key == from_key and after is not None:
                    ids = [v.info.version_id for v in versions]
                    start = ids.index(after) + 1 if after != AFTER_ALL_VERSIONS and after in ids else len(ids)
                for n in range(start, len(versions)):
                    i = versions[n].info
                    yield (
                        key,
                        VersionEntry(
                            i.key,
                            i.version_id,
                            n == 0,
                            i.delete_marker,
                            i.size,
                            i.etag,
                            i.last_modified,
                            i.storage_class,
                            versions[n].owner or owner,
                        ),
                    )

        return list_versions_page(
            scan,
            prefix=prefix.encode("utf-8"),
            delimiter=delimiter.encode("utf-8"),
            key_marker=key_marker.encode("utf-8"),
            version_id_marker=version_id_marker,
            max_keys=max_keys,
        )

    # ------------------------------------------------------------------ copies and object parts
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
        self.write_bucket(bucket)
        source = self.copy_source(src_bucket, src_key, src_version_id)
        if check_source is not None:
            check_source(source.info)
        info, read_algorithms = copy_plan(source.info, bucket, key, headers, storage_class, checksum_algorithm, tags)
        info.last_modified = self.clock()
        info.lock = lock  # never the source's
        info.acl = acl  # nor its ACL
        if read_algorithms is not None:
            # Written as one object: a multipart source gets the MD5 of its content as ETag.
            digests = await hash_chunks(source.chunks, read_algorithms)
            info.etag = digests.md5.hex()
            info.checksums = dict(digests.checksums)
        # The source's chunks are immutable: the copy shares them (and stays whole even
        # if the source changed while it was hashed).
        self.reserve(info.size)
        try:
            fut = self._commit(info, source.chunks, info.last_modified, info.size)
        except BaseException:
            self.release(info.size)
            raise
        await self.durable(fut)
        if committed is not None:
            committed(info)
        return info

    async def list_object_parts(
        self, bucket: str, key: str, *, marker: int = 0, max_parts: int = 1000, version_id: str | None = None
    ) -> ObjectPartsPage:
        marker, max_parts = clamp_part_number(marker), clamp_count(max_parts)
        obj = self._read(bucket, key, version_id)
        if not obj.info.parts_count:
            return ObjectPartsPage(obj.info, [], False, 0)
        after = [p for p in obj.parts if p.part_number > marker]
        chosen = after[:max_parts]
        return ObjectPartsPage(obj.info, chosen, len(after) > max_parts, chosen[-1].part_number if chosen else 0)

    # ------------------------------------------------------------------ multipart uploads (self.uploads)
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
        return await self.uploads.get(bucket, key, upload_id)

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
        return await self.uploads.upload_part_copy(
            bucket,
            key,
            upload_id,
            part_number,
            src_bucket,
            src_key,
            src_range=src_range,
            check_source=check_source,
            src_version_id=src_version_id,
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
        info = await self.uploads.complete(bucket, key, upload_id, parts, completion or Completion())
        if committed is not None:
            committed(info)
        return info

    async def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        await self.uploads.abort(bucket, key, upload_id)

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
        b = self.bucket(bucket)
        now = self.clock()

        def scan(lower: bytes, inclusive: bool, upper: bytes | None) -> Iterator[tuple[bytes, MemObject]]:
            for key, latest in b.index.scan(lower, inclusive, upper):
                # One entry per key: its latest visible version, unless that is a delete marker.
                if is_expired(latest.expires, now):
                    obj = _latest_object(b.chain(key), now)
                else:
                    obj = latest
                if obj is not None and not obj.info.delete_marker:
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
        private_dir(directory)
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
        for _seq, path in [*segments(directory), *snapshots(directory)]:
            os.chmod(path, FILE_MODE)  # files of older versions were created 0644
        self._reap(self.clock(), len(self._expiries))
        self._recovering = True
        try:
            self.evict_to_limit()  # its records wait in self._unlogged until the log is open
        finally:
            self._recovering = False
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
        bucket: MemBucket | None
        if record.op == CREATE_BUCKET:
            info = BucketInfo(
                meta["name"], meta["created"], meta["owner"], meta["region"], meta.get("v"), bool(meta.get("l"))
            )
            created = MemBucket(info)
            created.config = meta.get("config", {})
            self._attach_bucket(created)
        elif record.op == BUCKET_STATE:
            bucket = self._buckets.get(meta["b"])
            if bucket is not None:
                bucket.info = _changed_info(bucket.info, meta)
        elif record.op == DELETE_BUCKET:
            self._drop_bucket(meta["name"])
        elif record.op == PUT_OBJECT:
            bucket = self._buckets.get(meta[0])
            if bucket is None:
                return
            self._replay_object(bucket, _object_from(meta, record.data, record.raw))
        elif record.op == BUCKET_CONFIG:
            bucket = self._buckets.get(meta["b"])
            if bucket is not None:
                _set_config(bucket, meta["n"], meta["d"])
        elif record.op == DELETE_OBJECT:
            # No "v" (evictions, and deletes of logs before versioning): the whole key.
            bucket = self._buckets.get(meta["b"])
            if bucket is not None:
                self._change(bucket, meta["k"].encode("utf-8"), ver.remove(meta.get("v")))
        elif record.op in _VERSION_REWRITES:
            # Tags, lock, ACL, encoding or storage class of one version replaced; the body stays. No "v" (SET_TAGS
            # of logs before versioning): the object current at that point of the log.
            name, rebuild = _VERSION_REWRITES[record.op]
            bucket = self._buckets.get(meta["b"])
            value = meta[name]
            if bucket is not None:
                change = ver.replace(meta.get("v"), lambda v: rebuild(v, value))
                self._change(bucket, meta["k"].encode("utf-8"), change)
        elif record.op == COMPLETE_UPLOAD:
            bucket = self._buckets.get(meta["o"][0])
            chunks = self.uploads.completed_chunks(meta["u"], [p[0] for p in meta["o"][12]])
            if chunks is None or bucket is None:
                return
            obj = _object_from(meta["o"], chunks, encode_meta(meta["o"]))
            self.uploads.replay_completed(meta["u"], obj.info, obj.info.last_modified)
            self._replay_object(bucket, obj)
        elif record.op == CREATE_UPLOAD and meta["b"] not in self._buckets:
            return
        elif not self.uploads.replay(record):
            log.warning("skipping a log record of unknown kind %d", record.op)

    def _replay_object(self, bucket: MemBucket, obj: MemObject) -> None:
        key = obj.info.key.encode("utf-8")
        self._change(bucket, key, ver.put(obj))
        if is_expired(obj.expires, self.clock()):
            self._change(bucket, key, lambda chain: ver.without(chain, lambda v: v is obj))  # written, then reaped

    def _image(self) -> _Image:
        """References to the whole durable state (cheap: no object is copied)."""
        buckets = [
            (b.info, b.config, [b.chain(k) for k in b.index.key_list()], self.uploads.image(b.info.name))
            for b in self._buckets.values()
        ]
        return buckets, self.uploads.completions()

    async def snapshot(self) -> Path | None:
        """Write a snapshot now (no-op without persistence); the log before it is then deleted."""
        if self._wal is None:
            return None
        async with self._snapshot_lock:
            wal = self._wal
            seq = wal.seq + 1
            taken: asyncio.Future[_Image] = asyncio.get_running_loop().create_future()

            def switched(error: BaseException | None) -> None:
                # On the loop, after every batch before the rotation was applied and before any after it:
                # the state is exactly what the segments before ``seq`` hold.
                if taken.done():
                    return
                if error is not None:
                    taken.set_exception(error)
                    return
                self._wal_bytes_at_snapshot = self.stats.wal.bytes
                self._records_at_snapshot = self.stats.wal.records
                taken.set_result(self._image())

            wal.rotate(seq, switched)
            image = await taken
            directory = wal.directory

            def write() -> tuple[Path, int]:
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


def _part_of(obj: MemObject, part_number: int) -> ObjectInfo:
    stored = next((p for p in obj.parts if p.part_number == part_number), None)
    return dataclasses.replace(obj.info, part=part_of(obj.info, part_number, stored))


# A snapshot image: per bucket its info, configuration, each key's versions and uploads with their
# parts; then the remembered answers of completed uploads (upload id, answer, completed at).
_BucketImage = tuple[BucketInfo, dict[str, Any], list[Chain], list[tuple[UploadInfo, list[Any]]]]
_Image = tuple[list[_BucketImage], list[tuple[str, ObjectInfo, float]]]


def _bucket_meta(info: BucketInfo) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": info.name, "created": info.created, "owner": info.owner, "region": info.region}
    if info.versioning is not None:
        meta["v"] = info.versioning
    if info.object_lock:
        meta["l"] = True
    return meta


def _changed_info(info: BucketInfo, change: dict[str, Any]) -> BucketInfo:
    """``info`` with a BUCKET_STATE record's fields: "v" versioning, "l" Object Lock on."""
    return dataclasses.replace(
        info,
        versioning=change.get("v", info.versioning),
        object_lock=info.object_lock or bool(change.get("l")),
    )


def _latest_object(chain: Chain, now: float) -> MemObject | None:
    """The latest visible version if it is an object (a delete marker counts as no object)."""
    obj = ver.latest(chain, now)
    return obj if obj is not None and not obj.info.delete_marker else None


def _pick(chain: Chain, key: str, version_id: str | None, now: float) -> MemObject:
    """A read's visible version (None: the latest), with S3's errors."""
    if version_id is None:
        obj = ver.latest(chain, now)
        if obj is None:
            raise errors.NoSuchKey(key=key)
        if obj.info.delete_marker:
            raise errors.NoSuchKey(key=key, marker=obj.info)
        return obj
    found = ver.find(chain, version_id, now)
    if found is None:
        raise errors.NoSuchVersion(key=key, version_id=version_id)
    if found.info.delete_marker:
        raise errors.MethodNotAllowed(key=key, marker=found.info)
    return found


def _object_meta(obj: MemObject) -> list[Any]:
    return object_meta(obj.info, obj.owner, obj.expires, obj.parts)


def _object_from(meta: list[Any], chunks: tuple[bytes, ...], raw: bytes | None) -> MemObject:
    info, owner, expires, parts = object_from(meta)
    obj = ver.mem_object(info, owner, chunks, expires, parts)
    obj.raw = raw
    return obj


def _set_config(bucket: MemBucket, name: str, document: Any) -> None:
    # A new dict each time: a snapshot being written keeps the one it took.
    config = dict(bucket.config)
    if document is None:
        config.pop(name, None)
    else:
        config[name] = document
    bucket.config = config


def _image_records(image: _Image, now: float) -> Iterator[Record]:
    buckets, completions = image
    for info, config, keys, uploads in buckets:
        yield Record(CREATE_BUCKET, {**_bucket_meta(info), "config": config})
        yield from MemoryUploads.image_records(uploads)
        for chain in keys:
            for obj in reversed(list(ver.walk(chain))):  # oldest first: replay puts each newer one in front
                if not is_expired(obj.expires, now):
                    raw = obj.raw if obj.raw is not None else encode_meta(_object_meta(obj))
                    yield Record(PUT_OBJECT, None, obj.chunks, raw)
    for upload_id, answer, at in completions:
        if at >= now - COMPLETED_RETENTION_SECONDS:
            yield Record(COMPLETED, completed_meta(upload_id, answer, at))


def _remove_obsolete(directory: Path, base: int) -> None:
    """Segments and snapshots older than snapshot ``base`` are folded into it."""
    for seq, path in segments(directory):
        if seq < base:
            path.unlink(missing_ok=True)
    for seq, path in snapshots(directory):
        if seq < base:
            path.unlink(missing_ok=True)
