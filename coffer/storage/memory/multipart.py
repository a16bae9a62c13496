"""The memory engine's multipart uploads: a component the engine owns.

Parts are received like object bodies (hashed while they arrive, reserved
against max_memory, then charged: never evicted). Completing an upload makes
the object the concatenation of its parts' chunks: nothing is copied.
UploadPartCopy shares every whole chunk of its range. The completion rules
(order, ETags, sizes, checksums) are the shared ones in
``coffer.storage.multipart``.

``MemoryUploads`` holds the uploads, their parts and the answers of completed
uploads; it reaches the engine's objects, memory accounting and log only
through ``UploadHost``. Like every change of the engine, an upload change is
logged first and applied once its record is durable; until then it is marked
(a part in ``MemUpload.pending``, a completion or abort in ``_closing``) so
later checks see it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from coffer.storage import errors
from coffer.storage.api import (
    MAX_PART_SIZE,
    NO_LOCK,
    CompletedPart,
    Completion,
    Encoding,
    ObjectInfo,
    ObjectLock,
    ObjectPart,
    PartInfo,
    PartsPage,
    PutDigests,
    SourceCheck,
    UploadInfo,
    UploadsPage,
    Verifier,
)
from coffer.storage.hashing import BodyHasher
from coffer.storage.listing import list_uploads_page
from coffer.storage.memory.codec import lock_from, lock_meta, object_from, object_meta
from coffer.storage.memory.index import KeyIndex, Marks
from coffer.storage.memory.wal import COMPLETED, CREATE_UPLOAD, DELETE_UPLOAD, PUT_PART, Record
from coffer.storage.multipart import (
    assemble,
    completions_forgotten_before,
    new_upload_id,
    resolve_checksum_type,
)
from coffer.storage.objects import (
    accept_part,
    check_part_encoding,
    completed_object,
    copy_source_span,
    object_parts,
    part_algorithms,
    part_stored_size,
    refuse_encoded_upload,
)
from coffer.storage.versioning import check_lock_bucket

if TYPE_CHECKING:
    from coffer.storage.memory.engine import MemBucket, MemObject, MemoryStats

PART_OVERHEAD = 200
HASH_INLINE_MAX = 256 * 1024  # smaller bodies are hashed on the loop, larger ones on a thread


@dataclass(slots=True, eq=False)
class MemPart:
    info: PartInfo
    chunks: tuple[bytes, ...]
    charge: int


@dataclass(slots=True, eq=False)
class MemUpload:
    info: UploadInfo
    parts: dict[int, MemPart] = field(default_factory=dict)
    # Parts logged but not yet durable, by number: what a Complete must assemble from.
    pending: Marks[int, MemPart] = field(default_factory=Marks)


@dataclass(slots=True, eq=False)
class _Closing:
    """A Complete or Abort logged but not yet durable."""

    answer: ObjectInfo | None  # the Complete's answer (None: an abort)
    future: asyncio.Future[None] | None = None


class UploadHost(Protocol):
    """What the uploads need of the engine that owns them."""

    stats: MemoryStats
    max_memory: int

    def clock(self) -> float: ...
    def bucket(self, name: str) -> MemBucket:
        """A durable bucket (NoSuchBucket)."""
        ...

    def write_bucket(self, name: str) -> MemBucket:
        """The bucket as pending changes leave it, for a write's checks (NoSuchBucket)."""
        ...

    def holds_bucket(self, bucket: MemBucket) -> bool:
        """Whether ``bucket`` is (still) a durable bucket of the engine."""
        ...

    def copy_source(self, bucket: str, key: str, version_id: str | None) -> MemObject:
        """A durable, visible version to copy from (NoSuchBucket, NoSuchKey, NoSuchVersion, InvalidRequest)."""
        ...

    def is_current(self, info: ObjectInfo) -> bool:
        """Whether the object ``info`` describes is still the one stored at its key."""
        ...

    async def receive(
        self,
        body: AsyncIterator[bytes],
        algorithms: tuple[str, ...],
        want_sha256: bool,
        limit: int,
        *,
        md5: bool = True,
    ) -> tuple[PutDigests, tuple[bytes, ...], int]: ...
    def reserve(self, n: int) -> None: ...
    def release(self, n: int) -> None: ...
    def evict_to_limit(self) -> None: ...
    def check_writable(self) -> None: ...
    def submit(self, record: Record, finish: Callable[[bool], None]) -> asyncio.Future[None] | None:
        """Log ``record``; ``finish(True)`` applies it once durable, ``finish(False)`` when it failed."""
        ...

    def log_nowait(self, record: Record) -> None:
        """Log a change already applied that nobody waits for."""
        ...

    async def durable(self, fut: asyncio.Future[None] | None) -> None: ...
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
    ) -> asyncio.Future[None] | None: ...


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


async def hash_chunks(chunks: tuple[bytes, ...], algorithms: tuple[str, ...]) -> PutDigests:
    """Digests of a chunked body; large ones hashed on a thread."""
    hasher = BodyHasher(algorithms, False)
    total = sum(len(c) for c in chunks)
    if total < HASH_INLINE_MAX:
        for chunk in chunks:
            hasher.update(chunk)
    else:

        def run() -> None:
            for chunk in chunks:
                hasher.update(chunk)

        await asyncio.to_thread(run)
    return hasher.digests()


def part_meta(upload_id: str, part: PartInfo) -> dict[str, Any]:
    meta = {
        "u": upload_id,
        "n": part.part_number,
        "s": part.size,
        "e": part.etag,
        "m": part.last_modified,
        "c": {a: v.hex() for a, v in part.checksums.items()},
    }
    if part.stored_size is not None:
        meta["z"] = part.stored_size  # stored transformed: "s" is the logical size
    return meta


def part_from(meta: dict[str, Any]) -> PartInfo:
    return PartInfo(
        meta["n"],
        meta["s"],
        meta["e"],
        meta["m"],
        {a: bytes.fromhex(v) for a, v in meta["c"].items()},
        stored_size=meta.get("z"),
    )


def part_charge(part: PartInfo) -> int:
    """What a part holds of max_memory: its bytes as stored."""
    return part_stored_size(part) + PART_OVERHEAD


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
        **({"l": lock_meta(info.lock)} if info.lock.recorded() else {}),
        **({"acl": info.acl} if info.acl is not None else {}),
        **({"enc": info.encoding} if info.encoding is not None else {}),
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
        lock=lock_from(meta.get("l")),
        acl=meta.get("acl"),
        encoding=meta.get("enc"),
    )


def completed_meta(upload_id: str, info: ObjectInfo, at: float) -> dict[str, Any]:
    """A completed upload's answer, for snapshots (the log has it in the completion's record)."""
    return {"u": upload_id, "at": at, "o": object_meta(info, "", None, None)}


def completed_from(meta: dict[str, Any]) -> ObjectInfo:
    if "o" in meta:
        return object_from(meta["o"])[0]
    # Snapshots before versioning: a dict of the answer's fields.
    return ObjectInfo(
        bucket=meta["b"],
        key=meta["k"],
        size=meta["s"],
        etag=meta["e"],
        last_modified=meta["m"],
        storage_class=meta["sc"],
        headers=meta["h"],
        checksums={a: bytes.fromhex(v) for a, v in meta["c"].items()},
        checksum_type=meta["ct"],
        parts_count=meta["n"],
        tags=meta["t"],
    )


class MemoryUploads:
    def __init__(self, host: UploadHost) -> None:
        self._host = host
        self._uploads: dict[str, MemUpload] = {}
        # Per bucket, by (UTF-8 key, upload id): ListMultipartUploads' order.
        self._by_bucket: dict[str, KeyIndex[MemUpload]] = {}
        # Completed uploads' answers by upload id: (answer, completed at).
        self._completed: dict[str, tuple[ObjectInfo, float]] = {}
        self._closing: dict[str, _Closing] = {}

    def __len__(self) -> int:
        return len(self._uploads)

    # ------------------------------------------------------------------ state changes (applied and replayed)
    def _add(self, info: UploadInfo) -> None:
        upload = MemUpload(info)
        self._uploads[info.upload_id] = upload
        index = self._by_bucket.setdefault(info.bucket, KeyIndex())
        index.set((info.key.encode("utf-8"), info.upload_id), upload)

    def _drop(self, upload: MemUpload) -> None:
        info = upload.info
        self._uploads.pop(info.upload_id, None)
        index = self._by_bucket.get(info.bucket)
        if index is not None:
            index.pop((info.key.encode("utf-8"), info.upload_id))
            if not len(index):
                del self._by_bucket[info.bucket]
        stats = self._host.stats
        for part in upload.parts.values():
            stats.used_bytes -= part.charge
            stats.part_bytes -= part.charge
        upload.parts = {}

    def _set_part(self, upload: MemUpload, part: PartInfo, chunks: tuple[bytes, ...]) -> None:
        stats = self._host.stats
        old = upload.parts.get(part.part_number)
        if old is not None:  # uploading a part number again replaces the earlier part
            stats.used_bytes -= old.charge
            stats.part_bytes -= old.charge
        stored = MemPart(part, chunks, part_charge(part))
        upload.parts[part.part_number] = stored
        stats.used_bytes += stored.charge
        stats.part_bytes += stored.charge

    def drop_bucket(self, name: str) -> None:
        """Uploads in progress do not keep a bucket alive (S3 drops them with it)."""
        index = self._by_bucket.get(name)
        if index is not None:
            for upload in index.values():
                self._drop(upload)

    def _open(self, bucket: str, key: str, upload_id: str, *, write: bool) -> MemUpload:
        """The upload (durable); for a write also not being completed or aborted, in a bucket not being deleted."""
        if write:
            self._host.write_bucket(bucket)
        upload = self._uploads.get(upload_id)
        if (
            upload is None
            or upload.info.bucket != bucket
            or upload.info.key != key
            or (write and upload_id in self._closing)
        ):
            self._host.bucket(bucket)
            raise errors.NoSuchUpload(upload_id=upload_id)
        return upload

    # ------------------------------------------------------------------ operations
    async def create(
        self,
        bucket: str,
        key: str,
        *,
        headers: dict[str, str],
        storage_class: str,
        checksum_algorithm: str | None,
        checksum_type: str | None,
        tags: dict[str, str] | None,
        lock: ObjectLock = NO_LOCK,
        owner: str | None = None,
        acl: dict[str, Any] | None = None,
        encoding: dict[str, Any] | None = None,
    ) -> UploadInfo:
        resolved = resolve_checksum_type(checksum_algorithm, checksum_type)
        host = self._host
        b = host.write_bucket(bucket)
        check_lock_bucket(b.write_info(), lock)
        host.check_writable()
        info = UploadInfo(
            bucket=bucket,
            key=key,
            upload_id=new_upload_id(),
            initiated=host.clock(),
            owner=owner if owner is not None else b.info.owner,
            storage_class=storage_class,
            headers=headers,
            checksum_algorithm=checksum_algorithm,
            checksum_type=resolved,
            tags=dict(tags or {}),
            lock=lock,
            acl=acl,
            encoding=encoding,
        )

        # Nobody knows the upload id before the answer: nothing to mark meanwhile.
        def finish(ok: bool) -> None:
            if ok and host.holds_bucket(b):
                self._add(info)

        await host.durable(host.submit(Record(CREATE_UPLOAD, upload_meta(info)), finish))
        return info

    async def get(self, bucket: str, key: str, upload_id: str) -> UploadInfo:
        return self._open(bucket, key, upload_id, write=False).info

    async def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        body: AsyncIterator[bytes],
        *,
        checksum_algorithms: tuple[str, ...],
        want_sha256: bool,
        verify: Verifier | None,
        encoding: Encoding | None = None,
    ) -> PartInfo:
        host = self._host
        upload = self._open(bucket, key, upload_id, write=True)  # fail fast before reading a body
        check_part_encoding(upload.info, encoding)
        digests, chunks, reserved = await host.receive(
            body,
            part_algorithms(upload.info, checksum_algorithms, encoding),
            want_sha256,
            min(MAX_PART_SIZE, host.max_memory),
            md5=encoding is None,
        )
        try:
            part = accept_part(part_number, digests, verify, encoding, host.clock())
            fut = self._store_part(bucket, key, upload_id, part, chunks, reserved)
        except BaseException:
            host.release(reserved)
            raise
        await host.durable(fut)
        return part

    def _store_part(
        self, bucket: str, key: str, upload_id: str, part: PartInfo, chunks: tuple[bytes, ...], reserved: int
    ) -> asyncio.Future[None] | None:
        """Log a part; once durable it replaces the reservation of its bytes. Owns ``reserved`` when it returns."""
        host = self._host
        upload = self._open(bucket, key, upload_id, write=True)  # aborted or completed meanwhile?
        host.check_writable()
        unmark = upload.pending.mark(part.part_number, MemPart(part, chunks, part_charge(part)))

        def finish(ok: bool) -> None:
            unmark()
            host.release(reserved)
            if ok and self._uploads.get(upload_id) is upload:
                self._set_part(upload, part, chunks)
                host.evict_to_limit()

        return host.submit(Record(PUT_PART, part_meta(upload_id, part), chunks), finish)

    async def upload_part_copy(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_number: int,
        src_bucket: str,
        src_key: str,
        *,
        src_range: tuple[int, int] | None,
        check_source: SourceCheck | None,
        src_version_id: str | None = None,
    ) -> PartInfo:
        host = self._host
        upload = self._open(bucket, key, upload_id, write=True)
        refuse_encoded_upload(upload.info)
        source = host.copy_source(src_bucket, src_key, src_version_id)
        if check_source is not None:
            check_source(source.info)
        start, end = copy_source_span(src_range, source.info.size)
        chunks = slice_chunks(source.chunks, start, end)
        digests = await hash_chunks(chunks, (upload.info.effective_algorithm,))
        host.reserve(digests.size)
        try:
            part = PartInfo(part_number, digests.size, digests.md5.hex(), host.clock(), dict(digests.checksums))
            fut = self._store_part(bucket, key, upload_id, part, chunks, digests.size)
        except BaseException:
            host.release(digests.size)
            raise
        await host.durable(fut)
        return part

    async def complete(
        self, bucket: str, key: str, upload_id: str, parts: list[CompletedPart], completion: Completion
    ) -> ObjectInfo:
        host = self._host
        done_before = self._completed.get(upload_id)
        if done_before is not None:
            answer = done_before[0]
            if (answer.bucket, answer.key) == (bucket, key) and host.is_current(answer):
                return answer  # a retried Complete gets the same answer while its object stands
        closing = self._closing.get(upload_id)
        if closing is not None and closing.answer is not None and closing.future is not None:
            answer = closing.answer
            if (answer.bucket, answer.key) == (bucket, key):
                await asyncio.shield(closing.future)  # the first Complete's answer, once durable
                return answer
        upload = self._open(bucket, key, upload_id, write=True)
        now = host.clock()
        info, chunks, object_parts = self._assemble(upload, parts, completion, now)
        closing = self._closing[upload_id] = _Closing(info)

        def done(ok: bool) -> None:
            if self._closing.get(upload_id) is closing:
                del self._closing[upload_id]
            if ok and self._uploads.get(upload_id) is upload:
                self._drop(upload)
                self._completed[upload_id] = (info, now)

        # Check, log and mark in one step: nothing can slip in between.
        try:
            closing.future = host.commit_object(
                info,
                chunks,
                now,
                if_none_match=completion.if_none_match,
                if_match=completion.if_match,
                parts=object_parts,
                upload_id=upload_id,
                done=done,
            )
        except BaseException:
            if self._closing.get(upload_id) is closing:
                del self._closing[upload_id]
            raise
        await host.durable(closing.future)
        return info

    def _assemble(
        self, upload: MemUpload, parts: list[CompletedPart], completion: Completion, now: float
    ) -> tuple[ObjectInfo, tuple[bytes, ...], tuple[ObjectPart, ...]]:
        # The parts as pending uploads leave them: the log replays those before this completion.
        stored = {**upload.parts, **dict(upload.pending.items())}
        done = assemble(upload.info, parts, {n: p.info for n, p in stored.items()}, completion)
        chunks = tuple(itertools.chain.from_iterable(stored[p.part_number].chunks for p in done.parts))
        info = completed_object(upload.info, done, now)
        info.lock = upload.info.lock  # the upload's lock goes to the object
        info.acl = upload.info.acl  # and so does its ACL
        return info, chunks, tuple(object_parts(done.parts))

    async def abort(self, bucket: str, key: str, upload_id: str) -> None:
        host = self._host
        upload = self._open(bucket, key, upload_id, write=True)
        host.check_writable()
        closing = self._closing[upload_id] = _Closing(None)

        def finish(ok: bool) -> None:
            if self._closing.get(upload_id) is closing:
                del self._closing[upload_id]
            if ok and self._uploads.get(upload_id) is upload:
                self._drop(upload)

        await host.durable(host.submit(Record(DELETE_UPLOAD, {"u": upload_id}), finish))

    def sweep(self, max_age_seconds: float, now: float) -> int:
        """Abort uploads older than ``max_age_seconds`` (0: never) and forget old completions; returns aborts."""
        aborted = 0
        if max_age_seconds > 0:
            for upload in [u for u in self._uploads.values() if u.info.initiated < now - max_age_seconds]:
                upload_id = upload.info.upload_id
                if upload_id in self._closing or len(upload.pending):
                    continue  # being completed, aborted or written to: not abandoned
                self._drop(upload)
                # Nobody waits for it: a lost record only brings the upload back, to be swept again.
                self._host.log_nowait(Record(DELETE_UPLOAD, {"u": upload_id}))
                aborted += 1
        keep = completions_forgotten_before(max_age_seconds, now)
        for upload_id in [u for u, (_info, at) in self._completed.items() if at < keep]:
            del self._completed[upload_id]
        return aborted

    async def list_parts(self, bucket: str, key: str, upload_id: str, *, marker: int, max_parts: int) -> PartsPage:
        upload = self._open(bucket, key, upload_id, write=False)
        numbers = sorted(n for n in upload.parts if n > marker)
        chosen = [upload.parts[n].info for n in numbers[:max_parts]]
        return PartsPage(upload.info, chosen, len(numbers) > max_parts, chosen[-1].part_number if chosen else 0)

    async def list_uploads(
        self,
        bucket: str,
        *,
        prefix: str,
        delimiter: str,
        key_marker: str,
        upload_id_marker: str,
        max_uploads: int,
    ) -> UploadsPage:
        self._host.bucket(bucket)
        index = self._by_bucket.get(bucket) or KeyIndex()

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

    # ------------------------------------------------------------------ persistence
    def image(self, bucket: str) -> list[tuple[UploadInfo, list[MemPart]]]:
        """References to a bucket's uploads and parts, for a snapshot (nothing is copied)."""
        index = self._by_bucket.get(bucket)
        return [(u.info, list(u.parts.values())) for u in index.values()] if index is not None else []

    def completions(self) -> list[tuple[str, ObjectInfo, float]]:
        return [(upload_id, info, at) for upload_id, (info, at) in self._completed.items()]

    @staticmethod
    def image_records(uploads: list[tuple[UploadInfo, list[MemPart]]]) -> Iterator[Record]:
        for info, parts in uploads:
            yield Record(CREATE_UPLOAD, upload_meta(info))
            for part in parts:
                yield Record(PUT_PART, part_meta(info.upload_id, part.info), part.chunks)

    def completed_chunks(self, upload_id: str, numbers: list[int]) -> tuple[bytes, ...] | None:
        """Replaying a completion: the object's body from the upload's parts (None: unknown upload)."""
        upload = self._uploads.get(upload_id)
        if upload is None:
            return None
        return tuple(itertools.chain.from_iterable(upload.parts[n].chunks for n in numbers))

    def replay_completed(self, upload_id: str, answer: ObjectInfo, at: float) -> None:
        """Replaying a completion (or a snapshot's COMPLETED record): drop the upload, keep the answer."""
        upload = self._uploads.get(upload_id)
        if upload is not None:
            self._drop(upload)
        self._completed[upload_id] = (answer, at)

    def replay(self, record: Record) -> bool:
        """Apply an upload record during recovery; False when it is not one."""
        meta = record.meta
        if record.op == CREATE_UPLOAD:
            self._add(upload_from(meta))
        elif record.op == PUT_PART:
            upload = self._uploads.get(meta["u"])
            if upload is not None:
                self._set_part(upload, part_from(meta), record.data)
        elif record.op == DELETE_UPLOAD:
            upload = self._uploads.get(meta["u"])
            if upload is not None:
                self._drop(upload)
        elif record.op == COMPLETED:
            self._completed[meta["u"]] = (completed_from(meta), meta["at"])
        else:
            return False
        return True
