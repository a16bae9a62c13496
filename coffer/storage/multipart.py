"""Multipart rules every engine shares: validating a completion and deriving the
object's ETag and checksum from its parts (no data is read).

S3's rules (docs/multipart.md has the details and sources):
- ETag: hex(md5(concatenation of the parts' raw md5 digests)) + "-N".
- SHA1/SHA256 are COMPOSITE; CRC32/CRC32C COMPOSITE unless FULL_OBJECT was asked
  for at creation; CRC64NVME (also the default) always FULL_OBJECT.
- COMPOSITE value: H(concatenation of the parts' raw digests), shown as base64 + "-N".
- FULL_OBJECT value: the CRC of the whole object, combined from the part CRCs.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from coffer import checksums, entropy
from coffer.storage import errors
from coffer.storage.api import MIN_PART_SIZE, CompletedPart, Completion, ObjectInfo, PartInfo, UploadInfo

COMPOSITE = "COMPOSITE"
FULL_OBJECT = "FULL_OBJECT"
CHECKSUM_TYPES = (COMPOSITE, FULL_OBJECT)
# A completed upload's answer is kept this long (less when abandoned uploads are aborted
# sooner) so a retried CompleteMultipartUpload gets it again.
COMPLETED_RETENTION_SECONDS = 3600


def completions_forgotten_before(max_age_seconds: float, now: float) -> float:
    """Answers of uploads completed before this are forgotten (``max_age_seconds``: the
    abandoned-upload age, 0 meaning never)."""
    retention: float = COMPLETED_RETENTION_SECONDS
    if max_age_seconds > 0:
        retention = min(max_age_seconds, retention)
    return now - retention


def answer_stands(answer: ObjectInfo, live_etag: str | None, last_modified: float) -> bool:
    """Whether a retried Complete gets a completed upload's ``answer``: only while the live
    object at the key (its ETag, None when nothing live is there) is the one the upload made.
    Otherwise the upload is gone, as in S3: NoSuchUpload."""
    return live_etag == answer.etag and last_modified == answer.last_modified


def resolve_checksum_type(algorithm: str | None, requested_type: str | None) -> str:
    """The checksum type of a new upload; raises InvalidRequest for combinations S3 refuses."""
    if requested_type is not None and requested_type not in CHECKSUM_TYPES:
        raise errors.InvalidRequest("Value for x-amz-checksum-type header is invalid.")
    if algorithm is None:
        if requested_type is not None:
            raise errors.InvalidRequest(
                "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header."
            )
        return FULL_OBJECT
    if algorithm in ("SHA1", "SHA256"):
        if requested_type == FULL_OBJECT:
            raise errors.InvalidRequest(
                f"The FULL_OBJECT checksum type cannot be used with the {algorithm.lower()} checksum algorithm."
            )
        return COMPOSITE
    if algorithm == "CRC64NVME":
        if requested_type == COMPOSITE:
            raise errors.InvalidRequest(
                "The COMPOSITE checksum type cannot be used with the crc64nvme checksum algorithm."
            )
        return FULL_OBJECT
    return requested_type or COMPOSITE  # CRC32, CRC32C


def multipart_etag(md5_digests: list[bytes]) -> str:
    return hashlib.md5(b"".join(md5_digests)).hexdigest() + f"-{len(md5_digests)}"


def object_checksum(algorithm: str, checksum_type: str, parts: list[PartInfo]) -> bytes:
    """The object's raw checksum from its parts' checksums, without reading data."""
    digests = [p.checksums[algorithm] for p in parts]
    if checksum_type == COMPOSITE:
        hasher = checksums.new_hasher(algorithm)
        for digest in digests:
            hasher.update(digest)
        return hasher.digest()
    combined = digests[0]
    for part, digest in zip(parts[1:], digests[1:], strict=True):
        combined = checksums.combine_crc(algorithm, combined, digest, part.size)
    return combined


def display_checksum(digest: bytes, checksum_type: str, parts_count: int) -> str:
    """Header/XML form: base64, plus "-N" for a composite multipart checksum."""
    value = checksums.encode(digest)
    if checksum_type == COMPOSITE and parts_count:
        value += f"-{parts_count}"
    return value


@dataclass(slots=True)
class Assembly:
    """A validated completion: the parts in order and what the object gets."""

    parts: list[PartInfo]
    size: int
    etag: str
    algorithm: str
    checksum: bytes
    checksum_type: str


def assemble(
    upload: UploadInfo, requested: list[CompletedPart], stored: dict[int, PartInfo], completion: Completion
) -> Assembly:
    """Check a CompleteMultipartUpload request against the stored parts (S3's order of checks)."""
    if not requested:
        raise errors.InvalidRequest("You must specify at least one part")
    previous = 0
    for item in requested:
        if item.part_number < previous:
            raise errors.InvalidPartOrder()
        previous = item.part_number
    # A part number listed twice (re-uploaded while the client built its list): the
    # last entry stands, as the last upload of that part number does.
    requested = list({item.part_number: item for item in requested}.values())
    if upload.checksum_algorithm is not None and [p.part_number for p in requested] != list(
        range(1, len(requested) + 1)
    ):
        # With per-part checksums S3 needs part numbers 1..N without gaps.
        raise errors.InvalidPartOrder("Parts with checksums must be numbered consecutively from 1.")
    chosen: list[PartInfo] = []
    for item in requested:
        part = stored.get(item.part_number)
        if part is None or item.etag.strip().strip('"') != part.etag:
            raise errors.InvalidPart(part_number=str(item.part_number), etag=item.etag)
        chosen.append(part)
    for part in chosen[:-1]:
        if part.size < MIN_PART_SIZE:
            raise errors.EntityTooSmall(
                part_number=str(part.part_number),
                proposed_size=str(part.size),
                min_size=str(MIN_PART_SIZE),
                etag=part.etag,
            )
    for item, part in zip(requested, chosen, strict=True):
        for algorithm, value in item.checksums.items():
            digest = part.checksums.get(algorithm)
            if digest is None or checksums.encode(digest) != value.strip():
                raise errors.InvalidPart(part_number=str(item.part_number), etag=item.etag)
    algorithm = upload.effective_algorithm
    checksum_type = upload.checksum_type
    checksum = object_checksum(algorithm, checksum_type, chosen)
    if completion.expected_checksum is not None:
        expected_algorithm, expected_value = completion.expected_checksum
        shown = display_checksum(checksum, checksum_type, len(chosen))
        if expected_algorithm != algorithm or expected_value.strip() not in (shown, checksums.encode(checksum)):
            raise errors.BadDigest(f"The {expected_algorithm} you specified did not match the calculated checksum.")
    if completion.expected_type is not None and completion.expected_type != checksum_type:
        raise errors.BadDigest(
            f"The upload was created using the {checksum_type} checksum mode. "
            f"The complete request must use the same checksum mode."
        )
    if upload.checksum_algorithm is not None and checksum_type == COMPOSITE:
        for item in requested:
            if algorithm not in item.checksums:
                raise errors.InvalidRequest(
                    f"The upload was created using a {algorithm.lower()} checksum. The complete request must "
                    f"include the checksum for each part. It was missing for part {item.part_number} in the request."
                )
    size = sum(p.size for p in chosen)
    if completion.expected_size is not None and completion.expected_size != size:
        raise errors.InvalidRequest(
            f"The provided 'x-amz-mp-object-size' header value {completion.expected_size} "
            f"does not match what was computed: {size}"
        )
    etag = multipart_etag([bytes.fromhex(p.etag) for p in chosen])
    return Assembly(chosen, size, etag, algorithm, checksum, checksum_type)


def new_upload_id() -> str:
    # Time first, so ids sort in creation order (ListMultipartUploads' order for one key).
    return f"{time.time_ns():016x}{entropy.token_hex(12)}"


def copy_plan(
    src: ObjectInfo,
    bucket: str,
    key: str,
    headers: dict[str, str] | None,
    storage_class: str | None,
    checksum_algorithm: str | None,
    tags: dict[str, str] | None = None,
) -> tuple[ObjectInfo, tuple[str, ...] | None]:
    """The copy's metadata, and which algorithms must be computed by reading the source (None: no read).

    ``headers``/``tags`` None: the source's (metadata and tagging directive COPY).
    """
    info = ObjectInfo(
        bucket=bucket,
        key=key,
        size=src.size,
        etag=src.etag,
        last_modified=time.time(),
        storage_class=storage_class or src.storage_class,
        headers=dict(src.headers) if headers is None else headers,
        checksums={},
        checksum_type=FULL_OBJECT,
        tags=dict(src.tags) if tags is None else dict(tags),
    )
    wanted = checksum_algorithm or next(iter(src.checksums), None) or checksums.DEFAULT_ALGORITHM
    carried = src.checksums.get(wanted) if src.checksum_type == FULL_OBJECT else None
    if carried is not None:
        info.checksums = {wanted: carried}
    if src.parts_count or carried is None:
        return info, (wanted,)
    return info, None
