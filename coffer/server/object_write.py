"""What a write asks for besides the object's bytes, read once, from request headers
(PutObject, CopyObject, CreateMultipartUpload) or from POST form fields (PostObject):
stored metadata, TTL, storage class, tags, the declared checksum, and the encryption
headers Coffer refuses until encryption is built. One reading, so both paths give the
same answer for the same input (header and field names are lower-case in both).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from coffer import checksums
from coffer.server import tagging
from coffer.server.errors import S3Error
from coffer.storage.ttl import MAX_TTL_SECONDS, TTL_METADATA, parse_ttl

# Headers stored with an object and returned on GET/HEAD (plus x-amz-meta-* and Content-Encoding).
STORED_HEADERS = frozenset(
    {
        "content-type",
        "cache-control",
        "content-disposition",
        "content-language",
        "expires",
        "x-amz-website-redirect-location",
    }
)
STORAGE_CLASSES = frozenset(
    {
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER",
        "DEEP_ARCHIVE",
        "OUTPOSTS",
        "GLACIER_IR",
        "SNOW",
        "EXPRESS_ONEZONE",
    }
)
MAX_USER_METADATA = 2048
# SSE-S3 / SSE-KMS (x-amz-server-side-encryption[-aws-kms-key-id|-context|-bucket-key-enabled]),
# SSE-C (x-amz-server-side-encryption-customer-*) and a copy source's SSE-C key.
_ENCRYPTION_PREFIXES = ("x-amz-server-side-encryption", "x-amz-copy-source-server-side-encryption")


@dataclass(slots=True)
class ObjectWrite:
    headers: dict[str, str]  # metadata to store: system headers, x-amz-meta-*, Content-Encoding
    storage_class: str | None  # None when the request names none
    tags: dict[str, str] | None  # None when the request carries no tagging


def refuse_encryption(name: str) -> S3Error:
    """Encryption Coffer does not build (dual-layer aws:kms:dsse), and encryption headers where a
    request cannot carry them: storing less than the client asked for would be a lie."""
    return S3Error(
        "NotImplemented",
        f"Server-side encryption ({name}) is not implemented by Coffer; nothing was stored.",
        Header=name,
    )


def check_no_encryption(source: Mapping[str, str]) -> None:
    """UploadPart / UploadPartCopy of an upload created without encryption: a part cannot ask for
    its own (the upload decides), so encryption headers on it are refused rather than ignored."""
    for name in source:
        if name.startswith(_ENCRYPTION_PREFIXES[0]):
            raise S3Error("InvalidRequest", "The encryption parameters are not applicable to this upload.", Header=name)


def object_write(source: Mapping[str, str], *, form: bool = False) -> ObjectWrite:
    """Read a write's request from its headers, or (``form``) from a POST form's fields."""
    stored: dict[str, str] = {}
    meta_size = 0
    for name, value in source.items():
        if name.startswith("x-amz-meta-"):
            stored[name] = value
            meta_size += len(name) - len("x-amz-meta-") + len(value)
        elif name in STORED_HEADERS:
            stored[name] = value
        # x-amz-server-side-encryption* are read by coffer/server/sse.py, never stored as metadata.
    ttl = stored.get(TTL_METADATA)
    if ttl is not None and parse_ttl(ttl) is None:
        raise S3Error(
            "InvalidArgument",
            f"{TTL_METADATA} must be a whole number of seconds between 0 and {MAX_TTL_SECONDS}",
            ArgumentName=TTL_METADATA,
            ArgumentValue=ttl,
        )
    if meta_size > MAX_USER_METADATA:
        raise S3Error(
            "MetadataTooLarge",
            "Your metadata headers exceed the maximum allowed metadata size",
            status=400,
            Size=str(meta_size),
            MaxSizeAllowed=str(MAX_USER_METADATA),
        )
    encoding = stored_content_encoding(source.get("content-encoding"))
    if encoding:
        stored["content-encoding"] = encoding
    storage_class = source.get("x-amz-storage-class") or None
    if storage_class is not None and storage_class not in STORAGE_CLASSES:
        raise S3Error("InvalidStorageClass", StorageClassRequested=storage_class)
    # The header is URL-encoded like a query string; the form field holds a Tagging XML document.
    tags: dict[str, str] | None = None
    if form:
        document = source.get("tagging")
        if document:
            tags = tagging.parse_document(document.encode("utf-8"))
    elif tagging.TAGGING_HEADER in source:
        tags = tagging.parse_header(source[tagging.TAGGING_HEADER])
    return ObjectWrite(stored, storage_class, tags)


def stored_content_encoding(raw: str | None) -> str | None:
    """Content-Encoding to store: the client's, minus the aws-chunked transfer framing."""
    if raw is None:
        return None
    kept = [e.strip() for e in raw.split(",") if e.strip() and e.strip().lower() != "aws-chunked"]
    return ", ".join(kept) if kept else None


def declared_checksum(source: Mapping[str, str]) -> tuple[str, str, bytes] | None:
    """The one ``x-amz-checksum-<algorithm>`` header or field: (name, algorithm, digest)."""
    named = [(name, algo) for name in source if (algo := checksums.algorithm_from_header(name)) is not None]
    if not named:
        return None
    if len(named) > 1:
        raise S3Error("InvalidRequest", "Expecting a single x-amz-checksum- header")
    name, algorithm = named[0]
    digest = checksums.decode(source[name], algorithm)
    if digest is None:  # not even a digest of the right size: it cannot match
        raise S3Error("BadDigest", f"The {algorithm} you specified did not match the calculated checksum.")
    return name, algorithm, digest
