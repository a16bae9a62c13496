"""Object rules every engine shares, with no I/O: the copy-source range, an
object's part N, the per-bucket object quota, a completed upload's object and
what a PUT's body (maybe stored transformed) makes a version report."""

from __future__ import annotations

from coffer.storage import errors
from coffer.storage.api import (
    MAX_PART_NUMBER,
    MAX_PART_SIZE,
    Encoding,
    ObjectInfo,
    ObjectPart,
    PutDigests,
    UploadInfo,
    Verifier,
)
from coffer.storage.multipart import Assembly


def copy_source_span(src_range: tuple[int, int] | None, size: int) -> tuple[int, int]:
    """[start, end) of a source of ``size`` bytes that UploadPartCopy reads (InvalidRange, EntityTooLarge)."""
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
    return start, end


def part_of(info: ObjectInfo, part_number: int, stored: ObjectPart | None) -> ObjectPart:
    """Part ``part_number`` of an object: ``stored`` (the engine's lookup, for a multipart
    object), or the whole object as part 1 of a single-part one; else InvalidPart."""
    if info.parts_count:
        if stored is not None:
            return stored
    elif part_number == 1:  # a single-part object is its own part 1
        return ObjectPart(1, 0, info.size, info.etag, dict(info.checksums))
    raise errors.InvalidPart(f"The requested part number {part_number} does not exist.", key=info.key)


def stored_length(info: ObjectInfo) -> int:
    """The length of a version's bytes as the engine holds them: what bounds a read of its body
    (``stored_size`` for a body stored transformed, else ``size``)."""
    return info.size if info.stored_size is None else info.stored_size


def accept_body(info: ObjectInfo, digests: PutDigests, verify: Verifier | None, encoding: Encoding | None) -> None:
    """Once a PUT's body has all arrived: check it (``verify``), then set what the version
    reports: the received bytes' size, ETag and checksums, or for a body stored transformed
    the caller's logical ones (``encoding.logical``) with the stored length and the document.
    Raising (either callback) aborts the write: the caller discards the body."""
    if verify is not None:
        verify(digests)
    info.checksum_type = "FULL_OBJECT"
    if encoding is None:
        info.size, info.etag, info.checksums = digests.size, digests.md5.hex(), digests.checksums
        return
    logical = encoding.logical(digests)
    info.size, info.etag, info.checksums = logical.size, logical.etag, dict(logical.checksums)
    info.encoding, info.stored_size = encoding.document, digests.size


def refuse_encoded_source(info: ObjectInfo) -> None:
    """A copy source stored transformed: its bytes are bound to it (the caller decodes and
    re-encodes), so the engine never copies them."""
    if info.encoding is not None:
        raise errors.EncodedSource(
            "The source object is stored encrypted by the server: it cannot be copied as stored.", key=info.key
        )


def check_quota(live_objects: int, limit: int, bucket: str, key: str) -> None:
    """QuotaExceeded when a new key would go past ``max_objects_per_bucket`` (0: no limit)."""
    if limit and live_objects >= limit:
        raise errors.QuotaExceeded(
            f"The bucket holds the maximum number of objects allowed (max_objects_per_bucket={limit}).",
            bucket=bucket,
            key=key,
        )


def completed_object(upload: UploadInfo, done: Assembly, now: float) -> ObjectInfo:
    """The object a validated CompleteMultipartUpload creates."""
    return ObjectInfo(
        bucket=upload.bucket,
        key=upload.key,
        size=done.size,
        etag=done.etag,
        last_modified=now,
        storage_class=upload.storage_class,
        headers=upload.headers,
        checksums={done.algorithm: done.checksum},
        checksum_type=done.checksum_type,
        parts_count=len(done.parts),
        tags=dict(upload.tags),
    )


def clamp_part_number(value: int) -> int:
    """A part-number marker a store's integers hold: part numbers are 1..MAX_PART_NUMBER,
    so a marker outside 0..MAX_PART_NUMBER selects the same parts as its nearest bound."""
    return min(max(value, 0), MAX_PART_NUMBER)


def clamp_count(value: int) -> int:
    """A page size of parts (max-parts): no page holds more than MAX_PART_NUMBER."""
    return min(max(value, 0), MAX_PART_NUMBER)
