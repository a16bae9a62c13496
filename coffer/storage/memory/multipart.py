"""The memory engine's multipart uploads, copies and object-part reads.

Parts are received like object bodies (hashed while they arrive, charged against
max_memory). Completing an upload makes the object the concatenation of its
parts' chunks: nothing is copied. A copy shares the source's chunks (objects
are immutable), and UploadPartCopy shares every whole chunk of its range.
The completion rules (order, ETags, sizes, checksums) are the shared ones in
``coffer.storage.multipart``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coffer.storage import errors
from coffer.storage.api import (
    MAX_PART_SIZE,
    CompletedPart,
    Completion,
    ObjectInfo,
    ObjectPart,
    ObjectPartsPage,
    PartInfo,
    PartsPage,
    SourceCheck,
    UploadInfo,
    UploadsPage,
    Verifier,
)
from coffer.storage.hashing import BodyHasher
from coffer.storage.listing import list_uploads_page
from coffer.storage.memory.wal import CREATE_UPLOAD, DELETE_UPLOAD, PUT_PART, Record, WalWriter
from coffer.storage.multipart import assemble, copy_plan, new_upload_id, resolve_checksum_type

if TYPE_CHECKING:
    from coffer.storage.memory.engine import MemBucket, MemObject, MemoryStats

# A completed upload is remembered this long so a retried Complete gets the same answer.
COMPLETED_RETENTION_SECONDS = 3600
PART_OVERHEAD = 200
_HASH_INLINE_MAX = 256 * 1024


@dataclass(slots=True, eq=False)
class MemPart:
    info: PartInfo
    chunks: tuple[bytes, ...]
    charge: int


@dataclass(slots=True, eq=False)
class MemUpload:
    info: UploadInfo
    parts: dict[int, MemPart] = field(default_factory=dict)


def slice_chunks(chunks: tuple[bytes, ...], start: int, end: int) -> tuple[bytes, ...]:
    """Bytes [start, end) of a chunked body: whole chunks shared, only the edges copied."""
    out: list[bytes] = []
    pos = 0
    for chunk in chunks:
        chunk_start = pos
        pos += len(chunk)
        if pos <= start:
            continue
        if chunk_start >= end:
            break
        lo, hi = max(start - chunk_start, 0), min(end - chunk_start, len(chunk))
        out.append(chunk if lo == 0 and hi == len(chunk) else chunk[lo:hi])
    return tuple(out)


def part_meta(upload_id: str, part: PartInfo) -> dict[str, Any]:
    return {
        "u": upload_id,
        "n": part.part_number,
        "s": part.size,
        "e": part.etag,
        "m": part.last_modified,
        "c": {a: v.hex() for a, v in part.checksums.items()},
    }


def upload_meta(info: UploadInfo) -> dict[str, Any]:
    return {
        "b": info.bucket,
        "k": info.key,
        "u": info.upload_id,
        "i": info.initiated,
        "o": info.owner,
        "sc": info.storage_class,
        "h": info.headers,
        "a": info.checksum_algorithm,
        "ct": info.checksum_type,
        **({"t": info.tags} if info.tags else {}),
    }


def upload_from(meta: dict[str, Any]) -> UploadInfo:
    return UploadInfo(
        bucket=meta["b"],
        key=meta["k"],
        upload_id=meta["u"],
        initiated=meta["i"],
        owner=meta["o"],
        storage_class=meta["sc"],
        headers=meta["h"],
        checksum_algorithm=meta["a"],
        checksum_type=meta["ct"],
        tags=meta.get("t", {}),
    )


class MemoryMultipartMixin:
    if TYPE_CHECKING:
        stats: MemoryStats
        max_memory: int
        upload_max_age_seconds: float
        _buckets: dict[str, MemBucket]
        _uploads: dict[str, MemUpload]
        _completed: dict[str, tuple[ObjectInfo, float]]
        _wal: WalWriter | None

        def clock(self) -> float: ...
        def _bucket(self, name: str) -> MemBucket: ...
        def _live(self, bucket: str, key: str) -> MemObject: ...
        def _reserve(self, n: int) -> None: ...
        def _log(self, record: Record) -> asyncio.Future[None] | None: ...
        async def _durable(self, fut: asyncio.Future[None] | None) -> None: ...
        def _evict_to_limit(self, keep: MemObject | None = None) -> None: ...
        async def _receive(
            self, body: Any, algorithms: tuple[str, ...], want_sha256: bool, limit: int | None = None
        ) -> tuple[Any, tuple[bytes, ...], int]: ...
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
        ) -> tuple[MemObject, asyncio.Future[None] | None]: ...

    # ------------------------------------------------------------------ state changes (live and replay)
    def _add_upload(self, info: UploadInfo) -> None:
        upload = MemUpload(info)
        self._uploads[info.upload_id] = upload
        self._buckets[info.bucket].uploads.set((info.key.encode("utf-8"), info.upload_id), upload)

    def _drop_upload(self, upload: MemUpload) -> None:
        info = upload.info
        self._uploads.pop(info.upload_id, None)
        bucket = self._buckets.get(info.bucket)
        if bucket is not None:
            bucket.uploads.pop((info.key.encode("utf-8"), info.upload_id))
        for part in upload.parts.values():
            self.stats.used_bytes -= part.charge
        upload.parts = {}

    def _set_part(self, upload: MemUpload, part: PartInfo, chunks: tuple[bytes, ...]) -> None:
        old = upload.parts.get(part.part_number)
        if old is not None:  # uploading a part number again replaces the earlier part
            self.stats.used_bytes -= old.charge
        stored = MemPart(part, chunks, part.size + PART_OVERHEAD)
        upload.parts[part.part_number] = stored
        self.stats.used_bytes += stored.charge

    def _open_upload(self, bucket: str, key: str, upload_id: str) -> MemUpload:
        upload = self._uploads.get(upload_id)
        if upload is None or upload.info.bucket != bucket or upload.info.key != key:
            self._bucket(bucket)
            raise errors.NoSuchUpload(upload_id=upload_id)
        return upload

    # ------------------------------------------------------------------ uploads
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
    ) -> UploadInfo:
        resolved = resolve_checksum_type(checksum_algorithm, checksum_type)
        owner = self._bucket(bucket).info.owner
        info = UploadInfo(
            bucket=bucket,
            key=key,
            upload_id=new_upload_id(),
            initiated=self.clock(),
            owner=owner,
            storage_class=storage_class,
            headers=headers,
            checksum_algorithm=checksum_algorithm,
            checksum_type=resolved,
            tags=dict(tags or {}),
        )
        self._add_upload(info)
        await self._durable(self._log(Record(CREATE_UPLOAD, upload_meta(info))))
        return info

    async def get_upload(self, bucket: str, key: str, upload_id: str) -> UploadInfo:
        return self._open_upload(bucket, key, upload_id).info

    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        body: Any,
        *,
        checksum_algorithms: tuple[str, ...] = (),
        want_sha256: bool = False,
        verify: Verifier | None = None,
    ) -> PartInfo:
        upload = self._open_upload(bucket, key, upload_id)  # fail fast before reading a body
        algorithms = tuple(dict.fromkeys((*checksum_algorithms, upload.info.effective_algorithm)))
        digests, chunks, reserved = await self._receive(
            body, algorithms, want_sha256, min(MAX_PART_SIZE, self.max_memory)
        )
        try:
            if verify is not None:
                verify(digests)
            part = PartInfo(part_number, digests.size, digests.md5.hex(), self.clock(), dict(digests.checksums))
            fut = self._store_part(bucket, key, upload_id, part, chunks)
        finally:
            self.stats.reserved_bytes -= reserved
        self._evict_to_limit()
        await self._durable(fut)
        return part

    def _store_part(
        self, bucket: str, key: str, upload_id: str, part: PartInfo, chunks: tuple[bytes, ...]
    ) -> asyncio.Future[None] | None:
        upload = self._open_upload(bucket, key, upload_id)  # aborted or completed meanwhile?
        self._set_part(upload, part, chunks)
        return self._log(Record(PUT_PART, part_meta(upload_id, part), chunks))

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
    ) -> PartInfo:
        upload = self._open_upload(bucket, key, upload_id)
        source = self._live(src_bucket, src_key)
        if check_source is not None:
            check_source(source.info)
        size = source.info.size
        if src_range is None:
            start, end = 0, size
        else:
            first, last = src_range
            if first > last or last >= size:
                raise errors.InvalidRange(
                    "The x-amz-copy-source-range value must be of the form bytes=first-last where first "
                    "and last are the zero-based offsets of the first and last bytes to copy"
                )
            start, end = first, last + 1
        if end - start > MAX_PART_SIZE:
            raise errors.EntityTooLarge()
        chunks = slice_chunks(source.chunks, start, end)
        digests = await hash_chunks(chunks, (upload.info.effective_algorithm,))
        self._reserve(digests.size)
        try:
            part = PartInfo(part_number, digests.size, digests.md5.hex(), self.clock(), dict(digests.checksums))
            fut = self._store_part(bucket, key, upload_id, part, chunks)
        finally:
            self.stats.reserved_bytes -= digests.size
        await self._durable(fut)
        return part

    async def complete_multipart_upload(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        parts: list[CompletedPart],
        completion: Completion | None = None,
    ) -> ObjectInfo:
        completion = completion or Completion()
        done_before = self._completed.get(upload_id)
        if done_before is not None and (done_before[0].bucket, done_before[0].key) == (bucket, key):
            return done_before[0]  # a retried Complete gets the same answer
        upload = self._open_upload(bucket, key, upload_id)
        info, chunks, object_parts = self._assemble(upload, parts, completion, self.clock())
        # Check, make visible, log and drop the upload in one step: nothing can slip in between.
        obj, fut = self._commit(
            info,
            chunks,
            info.last_modified,
            if_none_match=completion.if_none_match,
            if_match=completion.if_match,
            parts=object_parts,
            upload_id=upload_id,
        )
        self._drop_upload(upload)
        self._completed[upload_id] = (info, self.clock())
        self._evict_to_limit(keep=obj)
        await self._durable(fut)
        return info

    def _assemble(
        self, upload: MemUpload, parts: list[CompletedPart], completion: Completion, now: float
    ) -> tuple[ObjectInfo, tuple[bytes, ...], tuple[ObjectPart, ...]]:
        done = assemble(upload.info, parts, {n: p.info for n, p in upload.parts.items()}, completion)
        object_parts: list[ObjectPart] = []
        offset = 0
        for part in done.parts:
            object_parts.append(ObjectPart(part.part_number, offset, part.size, part.etag, dict(part.checksums)))
            offset += part.size
        chunks = tuple(itertools.chain.from_iterable(upload.parts[p.part_number].chunks for p in done.parts))
        info = ObjectInfo(
            bucket=upload.info.bucket,
            key=upload.info.key,
            size=done.size,
            etag=done.etag,
            last_modified=now,
            storage_class=upload.info.storage_class,
            headers=upload.info.headers,
            checksums={done.algorithm: done.checksum},
            checksum_type=done.checksum_type,
            parts_count=len(done.parts),
            tags=dict(upload.info.tags),
        )
        return info, chunks, tuple(object_parts)

    async def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        upload = self._open_upload(bucket, key, upload_id)
        self._drop_upload(upload)
        await self._durable(self._log(Record(DELETE_UPLOAD, {"u": upload_id})))

    def sweep_uploads(self, max_age_seconds: float, now: float | None = None) -> int:
        """Abort uploads older than ``max_age_seconds`` (0: never) and forget old completions; returns aborts."""
        now = self.clock() if now is None else now
        aborted = 0
        if max_age_seconds > 0:
            for upload in [u for u in self._uploads.values() if u.info.initiated < now - max_age_seconds]:
                self._drop_upload(upload)
                if self._wal is not None:
                    # Nobody waits for it: a lost record only brings the upload back, to be swept again.
                    self._wal.append_nowait(Record(DELETE_UPLOAD, {"u": upload.info.upload_id}))
                aborted += 1
        retention = min(max_age_seconds, COMPLETED_RETENTION_SECONDS) if max_age_seconds > 0 else None
        keep = now - (retention if retention is not None else COMPLETED_RETENTION_SECONDS)
        for upload_id in [u for u, (_info, at) in self._completed.items() if at < keep]:
            del self._completed[upload_id]
        return aborted

    async def list_parts(
        self, bucket: str, key: str, upload_id: str, *, marker: int = 0, max_parts: int = 1000
    ) -> PartsPage:
        upload = self._open_upload(bucket, key, upload_id)
        numbers = sorted(n for n in upload.parts if n > marker)
        chosen = [upload.parts[n].info for n in numbers[:max_parts]]
        return PartsPage(upload.info, chosen, len(numbers) > max_parts, chosen[-1].part_number if chosen else 0)

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
        index = self._bucket(bucket).uploads

        def scan(after_key: bytes, after_id: str, upper: bytes | None) -> Iterator[tuple[bytes, UploadInfo]]:
            bound = (upper,) if upper is not None else None  # (upper,) sorts before every (upper, id)
            for (key, _upload_id), upload in index.scan((after_key, after_id), False, bound):
                yield key, upload.info

        return list_uploads_page(
            scan,
            prefix=prefix.encode("utf-8"),
            delimiter=delimiter.encode("utf-8"),
            key_marker=key_marker.encode("utf-8"),
            upload_id_marker=upload_id_marker,
            max_uploads=max_uploads,
        )

    # ------------------------------------------------------------------ copies and parts
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
    ) -> ObjectInfo:
        self._bucket(bucket)
        source = self._live(src_bucket, src_key)
        if check_source is not None:
            check_source(source.info)
        info, read_algorithms = copy_plan(source.info, bucket, key, headers, storage_class, checksum_algorithm, tags)
        info.last_modified = self.clock()
        if read_algorithms is not None:
            # Written as one object: a multipart source gets the MD5 of its content as ETag.
            digests = await hash_chunks(source.chunks, read_algorithms)
            info.etag = digests.md5.hex()
            info.checksums = dict(digests.checksums)
        # The source's chunks are immutable: the copy shares them (and stays whole even
        # if the source changed while it was hashed).
        self._reserve(info.size)
        try:
            obj, fut = self._commit(info, source.chunks, info.last_modified)
        finally:
            self.stats.reserved_bytes -= info.size
        self._evict_to_limit(keep=obj)
        await self._durable(fut)
        return info

    def _part_of(self, obj: MemObject, part_number: int) -> ObjectInfo:
        info = obj.info
        if info.parts_count:
            for part in obj.parts:
                if part.part_number == part_number:
                    return dataclasses.replace(info, part=part)
        elif part_number == 1:  # a single-part object is its own part 1
            return dataclasses.replace(info, part=ObjectPart(1, 0, info.size, info.etag, dict(info.checksums)))
        raise errors.InvalidPart(f"The requested part number {part_number} does not exist.", key=info.key)

    async def list_object_parts(
        self, bucket: str, key: str, *, marker: int = 0, max_parts: int = 1000
    ) -> ObjectPartsPage:
        obj = self._live(bucket, key)
        if not obj.info.parts_count:
            return ObjectPartsPage(obj.info, [], False, 0)
        after = [p for p in obj.parts if p.part_number > marker]
        chosen = after[:max_parts]
        return ObjectPartsPage(obj.info, chosen, len(after) > max_parts, chosen[-1].part_number if chosen else 0)

    # ------------------------------------------------------------------ replay
    def _replay_upload(self, record: Record) -> bool:
        """Apply an upload record during recovery; False when it is not one."""
        meta = record.meta
        if record.op == CREATE_UPLOAD:
            if meta["b"] in self._buckets:
                self._add_upload(upload_from(meta))
        elif record.op == PUT_PART:
            upload = self._uploads.get(meta["u"])
            if upload is not None:
                part = PartInfo(
                    meta["n"], meta["s"], meta["e"], meta["m"], {a: bytes.fromhex(v) for a, v in meta["c"].items()}
                )
                self._set_part(upload, part, record.data)
        elif record.op == DELETE_UPLOAD:
            upload = self._uploads.get(meta["u"])
            if upload is not None:
                self._drop_upload(upload)
        else:
            return False
        return True


async def hash_chunks(chunks: tuple[bytes, ...], algorithms: tuple[str, ...]) -> Any:
    """Digests of a chunked body; large ones hashed on a thread."""
    hasher = BodyHasher(algorithms, False)
    total = sum(len(c) for c in chunks)
    if total < _HASH_INLINE_MAX:
        for chunk in chunks:
            hasher.update(chunk)
    else:

        def run() -> None:
            for chunk in chunks:
                hasher.update(chunk)

        await asyncio.to_thread(run)
    return hasher.digests()
