"""CopyObject, and the copy-source pieces UploadPartCopy shares with it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from coffer.server import encryption, object_lock, sse, xml
from coffer.server.context import Context
from coffer.server.errors import S3Error
from coffer.server.handlers.common import acl_for_write, customer_key, encryption_for_write
from coffer.server.handlers.object import checksum_algorithm_header, plaintext_of
from coffer.server.http import Response, etag_matches, parse_http_date
from coffer.server.notify import CommitHook, commit_hook, event_after_write
from coffer.server.object_write import object_write
from coffer.server.request import Request, validate_key, validate_new_key
from coffer.server.versioning import add_written_version, check_version_id, shows_versions
from coffer.storage.api import DEFAULT_CHECKSUM_ALGORITHM, ObjectInfo, ObjectLock, SourceCheck
from coffer.storage.errors import EncodedSource, MethodNotAllowed, NoSuchKey
from coffer.storage.multipart import display_checksum

_DIRECTIVES = ("COPY", "REPLACE")


@dataclass(frozen=True, slots=True)
class CopySource:
    bucket: str
    key: str
    version_id: str | None  # None: the latest version


def parse_copy_source(req: Request) -> CopySource:
    """x-amz-copy-source: '[/]bucket/key[?versionId=id]', URL-encoded."""
    raw = req.header("x-amz-copy-source", "") or ""
    path, _, query = raw.partition("?")
    version_id: str | None = None
    if query:
        name, _, value = query.partition("=")
        if name != "versionId":
            raise S3Error("InvalidArgument", "Unsupported copy source parameter.", ArgumentName="x-amz-copy-source")
        version_id = check_version_id(unquote(value), "x-amz-copy-source")
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise S3Error("InvalidArgument", "Invalid copy source encoding.", ArgumentName="x-amz-copy-source") from None
    bucket, sep, key = decoded.lstrip("/").partition("/")
    if not bucket or not sep or not key:
        raise S3Error(
            "InvalidArgument",
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            ArgumentName="x-amz-copy-source",
            ArgumentValue=raw,
        )
    validate_key(key)
    return CopySource(bucket, key, version_id)


def copy_source_check(req: Request) -> SourceCheck:
    """x-amz-copy-source-if-* evaluated against the source, with S3's precedence:
    a matching if-match overrides if-unmodified-since; a failing if-none-match
    fails whatever if-modified-since says. Every failure is 412."""
    if_match = req.header("x-amz-copy-source-if-match")
    if_none_match = req.header("x-amz-copy-source-if-none-match")
    unmodified_raw = req.header("x-amz-copy-source-if-unmodified-since")
    modified_raw = req.header("x-amz-copy-source-if-modified-since")
    unmodified = parse_http_date(unmodified_raw) if unmodified_raw else None
    modified = parse_http_date(modified_raw) if modified_raw else None

    def check(info: ObjectInfo) -> None:
        changed = int(info.last_modified)
        if if_match is not None:
            if not etag_matches(if_match, info.etag):
                raise S3Error("PreconditionFailed", Condition="x-amz-copy-source-If-Match")
        elif unmodified is not None and changed > unmodified:
            raise S3Error("PreconditionFailed", Condition="x-amz-copy-source-If-Unmodified-Since")
        if if_none_match is not None:
            if etag_matches(if_none_match, info.etag):
                raise S3Error("PreconditionFailed", Condition="x-amz-copy-source-If-None-Match")
        elif modified is not None and changed <= modified:
            raise S3Error("PreconditionFailed", Condition="x-amz-copy-source-If-Modified-Since")

    return check


@contextmanager
def source_errors() -> Iterator[None]:
    """Errors about the copy source as S3 words them: naming a delete marker's version is an
    invalid request, and a source hidden by a marker is just absent (the marker headers
    describe the object a request addresses, which the source is not)."""
    try:
        yield
    except MethodNotAllowed:
        raise S3Error(
            "InvalidRequest",
            "The source of a copy request may not specifically refer to a delete marker by version id.",
        ) from None
    except NoSuchKey as exc:
        exc.marker = None
        raise


class SourceSeen:
    """A SourceCheck that remembers the source version the engine copied (its version id
    goes back as x-amz-copy-source-version-id)."""

    def __init__(self, check: SourceCheck) -> None:
        self._check = check
        self.version_id: str | None = None

    def __call__(self, info: ObjectInfo) -> None:
        self._check(info)
        self.version_id = info.version_id

    async def add_header(self, ctx: Context, bucket: str, response: Response) -> None:
        # Reported as a read of the source reports its version: never for a never-versioned bucket.
        if self.version_id is not None and await shows_versions(ctx, bucket, self.version_id):
            response.header("x-amz-copy-source-version-id", self.version_id)


def _directive(req: Request, header: str) -> str:
    value = (req.header(header) or "COPY").upper()
    if value not in _DIRECTIVES:
        raise S3Error("InvalidArgument", f"Unknown {header} value.", ArgumentName=header, ArgumentValue=value)
    return value


async def CopyObject(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    validate_new_key(req.key, ctx.settings.dot_segment_keys)
    source = parse_copy_source(req)
    src_bucket, src_key = source.bucket, source.key
    metadata_directive = _directive(req, "x-amz-metadata-directive")
    tagging_directive = _directive(req, "x-amz-tagging-directive")
    write = object_write(req.headers)
    # REPLACE: the tags of x-amz-tagging (none when absent); COPY: the source's (the header is ignored).
    tags = (write.tags or {}) if tagging_directive == "REPLACE" else None
    storage_class = write.storage_class
    algorithm = checksum_algorithm_header(req)
    headers = write.headers if metadata_directive == "REPLACE" else None
    # Copying a named version onto its own key is how S3 restores an older version.
    to_itself = (src_bucket, src_key) == (req.bucket, req.key) and source.version_id is None
    encrypt = await encryption_for_write(ctx, req)
    source_customer = customer_key(ctx, req, sse.COPY_SOURCE_CUSTOMER_PREFIX)
    if to_itself and headers is None and storage_class is None and not algorithm and not encrypt.asked:
        raise S3Error(
            "InvalidRequest",
            "This copy request is illegal because it is trying to copy an object to itself without changing the "
            "object's metadata, storage class, website redirect location or encryption attributes.",
        )
    _, acl = await acl_for_write(ctx, req)
    lock = await object_lock.lock_for_write(ctx.bucket_states(), req.bucket, req.headers)
    seen = SourceSeen(copy_source_check(req))
    copy = _Copy(source, headers, storage_class, algorithm, tags, lock.lock, acl, encrypt, source_customer)
    event = commit_hook(ctx, req, "s3:ObjectCreated:Copy", req.key)
    if encrypt.asked or source_customer is not None:
        info = await _copy_through(ctx, req, copy, seen, event)
    else:
        try:
            with source_errors():
                info = await ctx.engine.copy_object(
                    src_bucket,
                    src_key,
                    req.bucket,
                    req.key,
                    headers=headers,
                    storage_class=storage_class or "STANDARD",
                    checksum_algorithm=algorithm,
                    check_source=seen,
                    tags=tags,
                    src_version_id=source.version_id,
                    lock=lock.lock,
                    acl=acl,
                    committed=event,
                )
        except EncodedSource:
            # An encrypted source: decrypted here and stored as the request asks (plaintext).
            info = await _copy_through(ctx, req, copy, seen, event)
    if (waiting := event_after_write(event, info)) is not None:
        await waiting
    inner = [xml.elem("LastModified", xml.iso8601(info.last_modified)), xml.elem("ETag", f'"{info.etag}"')]
    for name, digest in info.checksums.items():
        inner.append(xml.elem(f"Checksum{name}", display_checksum(digest, info.checksum_type, info.parts_count)))
    if info.checksums:
        inner.append(xml.elem("ChecksumType", info.checksum_type))
    response = Response(200, body=xml.document("CopyObjectResult", "".join(inner)))
    response.header("content-type", "application/xml")
    add_written_version(response, info.version_id)
    for name, value in encryption.response_headers(info.encoding):
        response.header(name, value)
    await seen.add_header(ctx, src_bucket, response)
    return response


@dataclass(frozen=True, slots=True)
class _Copy:
    """What a CopyObject asks for, beyond the source."""

    source: CopySource
    headers: dict[str, str] | None  # None: the source's (COPY directive)
    storage_class: str | None
    algorithm: str | None
    tags: dict[str, str] | None  # None: the source's
    lock: ObjectLock
    acl: dict[str, Any] | None
    encrypt: sse.SseRequest
    source_customer: sse.CustomerKey | None


async def _copy_through(
    ctx: Context, req: Request, copy: _Copy, seen: SourceSeen, event: CommitHook | None
) -> ObjectInfo:
    """A copy that changes how the body is stored (encrypted source or destination): the source
    is read (decrypted) and written again as ``put_object`` stores it (encrypted as asked),
    streamed, never whole in memory."""
    assert req.bucket is not None and req.key is not None
    source = copy.source

    def whole(info: ObjectInfo) -> tuple[int, int]:
        seen(info)
        return 0, info.size

    with source_errors():
        info, body = await plaintext_of(ctx, source.bucket, source.key, source.version_id, copy.source_customer, whole)
    algorithms = (copy.algorithm or next(iter(info.checksums), DEFAULT_CHECKSUM_ALGORITHM),)
    encoding = None
    if copy.encrypt.asked:
        doc, data_key = encryption.new_document(ctx.keys, copy.encrypt, req.bucket, req.key)
        body, encoding = encryption.encrypting(
            body, doc, data_key, algorithms=algorithms, want_sha256=False, verify=None
        )
    return await ctx.engine.put_object(
        req.bucket,
        req.key,
        body,
        headers=copy.headers if copy.headers is not None else dict(info.headers),
        checksum_algorithms=() if encoding is not None else algorithms,
        storage_class=copy.storage_class or info.storage_class,
        tags=copy.tags if copy.tags is not None else dict(info.tags),
        lock=copy.lock,
        acl=copy.acl,
        encoding=encoding,
        committed=event,
    )
