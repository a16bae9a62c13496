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
    PartInfo,
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
        part = ObjectPart(1, 0, info.size, info.etag, dict(info.checksums))
        if info.stored_size is not None:
            part.stored_offset, part.stored_size = 0, info.stored_size
        return part
    raise errors.InvalidPart(f"The requested part number {part_number} does not exist.", key=info.key)


def part_start(part: ObjectPart) -> int:
    """Where a part's bytes begin in its object's bytes as stored."""
    return part.offset if part.stored_offset is None else part.stored_offset


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


def require_encoded(info: ObjectInfo) -> None:
    """``put_object_encoding`` replaces a document, never adds one: a body stored as sent has
    no transform a document could describe."""
    if info.encoding is None:
        raise errors.InvalidRequest(
            "The object version is not stored encrypted: it has no encoding to replace.", key=info.key
        )


def check_quota(live_objects: int, limit: int, bucket: str, key: str) -> None:
    """QuotaExceeded when a new key would go past ``max_objects_per_bucket`` (0: no limit)."""
    if limit and live_objects >= limit:
        raise errors.QuotaExceeded(
            f"The bucket holds the maximum number of objects allowed (max_objects_per_bucket={limit}).",
            bucket=bucket,
            key=key,
        )


def check_part_encoding(upload: UploadInfo, encoding: Encoding | None) -> None:
    """An upload whose parts are stored transformed (``upload.encoding``) takes only parts
    uploaded with an Encoding, and a plain one only plain parts: the object's bytes are read
    back as one stream, which a mix could not be."""
    if (upload.encoding is None) != (encoding is None):
        state = "is" if upload.encoding is not None else "is not"
        raise errors.InvalidRequest(
            f"The multipart upload {state} encrypted by the server: every part must be uploaded the same way.",
            key=upload.key,
        )


def refuse_encoded_upload(upload: UploadInfo) -> None:
    """UploadPartCopy never writes into an upload stored transformed: the caller reads the
    source and uploads the part it encodes (``upload_part``)."""
    if upload.encoding is not None:
        raise errors.InvalidRequest(
            "The multipart upload is encrypted by the server: its parts cannot be copied as stored.", key=upload.key
        )


def accept_part(
    part_number: int, digests: PutDigests, verify: Verifier | None, encoding: Encoding | None, now: float
) -> PartInfo:
    """A received part, as ``accept_body`` for a PUT: checked (``verify``), reporting the received
    bytes or, stored transformed, the caller's logical ones with its ``stored_size``. Raising
    (either callback) aborts the part: the caller discards its bytes."""
    if verify is not None:
        verify(digests)
    if encoding is None:
        return PartInfo(part_number, digests.size, digests.md5.hex(), now, dict(digests.checksums))
    logical = encoding.logical(digests)
    return PartInfo(part_number, logical.size, logical.etag, now, dict(logical.checksums), stored_size=digests.size)


def part_algorithms(upload: UploadInfo, requested: tuple[str, ...], encoding: Encoding | None) -> tuple[str, ...]:
    """The checksums to compute over a part's received bytes: those the request asked for and
    the upload's own; none for a part stored transformed (its ``encoding`` reports the
    original's, which the caller computed)."""
    if encoding is not None:
        return ()
    return tuple(dict.fromkeys((*requested, upload.effective_algorithm)))


def part_stored_size(part: PartInfo) -> int:
    """The length of a part's bytes as the engine holds them."""
    return part.size if part.stored_size is None else part.stored_size


def object_parts(parts: list[PartInfo]) -> list[ObjectPart]:
    """A completed object's parts: where each lies in the object (logical ``offset``/``size``) and,
    for parts stored transformed, in the object's stored bytes (``stored_offset``/``stored_size``)."""
    out: list[ObjectPart] = []
    offset = stored = 0
    for part in parts:
        piece = ObjectPart(part.part_number, offset, part.size, part.etag, dict(part.checksums))
        if part.stored_size is not None:
            piece.stored_offset, piece.stored_size = stored, part.stored_size
        out.append(piece)
        offset += part.size
        stored += part_stored_size(part)
    return out


def completed_object(upload: UploadInfo, done: Assembly, now: float) -> ObjectInfo:
    """The object a validated CompleteMultipartUpload creates (stored transformed when the
    upload's parts are: its ``stored_size`` the sum of theirs)."""
    info = ObjectInfo(
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
    if upload.encoding is not None:
        info.encoding = upload.encoding
        info.stored_size = sum(part_stored_size(p) for p in done.parts)
    return info


def clamp_part_number(value: int) -> int:
    """A part-number marker a store's integers hold: part numbers are 1..MAX_PART_NUMBER,
    so a marker outside 0..MAX_PART_NUMBER selects the same parts as its nearest bound."""
    return min(max(value, 0), MAX_PART_NUMBER)


def clamp_count(value: int) -> int:
    """A page size of parts (max-parts): no page holds more than MAX_PART_NUMBER."""
    return min(max(value, 0), MAX_PART_NUMBER)
