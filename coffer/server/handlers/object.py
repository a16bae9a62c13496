"""Object operations: PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable

from coffer import checksums
from coffer.server import encryption, lifecycle, object_lock, sse, xml
from coffer.server.access.decide import object_arn
from coffer.server.context import Context
from coffer.server.errors import S3Error, from_storage
from coffer.server.handlers.common import acl_for_write, customer_key, encryption_for_write
from coffer.server.http import (
    Response,
    etag_matches,
    http_date,
    parse_http_date,
    parse_int,
    parse_timestamp,
    quote_etag,
)
from coffer.server.notify import commit_hook, event_after_write, removed_event, request_event, request_events
from coffer.server.object_write import object_write
from coffer.server.ranges import parse_range
from coffer.server.request import Request, validate_new_key
from coffer.server.upload import plan_upload
from coffer.server.versioning import add_read_version, add_written_version, version_param
from coffer.storage.api import (
    MAX_PART_NUMBER,
    DeleteCondition,
    DeleteRequest,
    DeleteResult,
    ObjectBody,
    ObjectInfo,
    Verifier,
)
from coffer.storage.errors import StorageError
from coffer.storage.multipart import display_checksum
from coffer.storage.versioning import is_valid_version_id

# Query parameters of GetObject that override response headers.
RESPONSE_OVERRIDES = {
    "response-content-type": "content-type",
    "response-content-language": "content-language",
    "response-expires": "expires",
    "response-cache-control": "cache-control",
    "response-content-disposition": "content-disposition",
    "response-content-encoding": "content-encoding",
}
MAX_DELETE_KEYS = 1000
PART_NUMBER_MESSAGE = f"Part number must be an integer between 1 and {MAX_PART_NUMBER}, inclusive"
# What an HTTP header value may not carry (tab is allowed).
_CONTROL_CHARS = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def checksum_algorithm_header(req: Request) -> str | None:
    """x-amz-checksum-algorithm of requests without a body to checksum (create, copy)."""
    value = req.header("x-amz-checksum-algorithm")
    if value is None:
        return None
    if value.upper() not in checksums.ALGORITHMS:
        raise S3Error(
            "InvalidRequest",
            "Checksum algorithm provided is unsupported. Please try again with any of the valid types: "
            f"[{', '.join(checksums.ALGORITHMS)}]",
        )
    return value.upper()


def part_number_param(raw: str | None) -> int | None:
    """The partNumber query parameter: an integer 1..10000."""
    if raw is None:
        return None
    return parse_int(raw, "partNumber", 1, MAX_PART_NUMBER, message=PART_NUMBER_MESSAGE)


async def PutObject(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    validate_new_key(req.key, ctx.settings.dot_segment_keys)
    length = req.declared_length
    limit = ctx.settings.max_put_size()
    if length is not None and length > limit:
        raise S3Error("EntityTooLarge", ProposedSize=str(length), MaxSizeAllowed=str(limit))
    write = object_write(req.headers)
    if_none_match = req.header("if-none-match")
    if_match = req.header("if-match")
    plan = plan_upload(req)
    _, acl = await acl_for_write(ctx, req)
    lock = await object_lock.lock_for_write(ctx.bucket_states(), req.bucket, req.headers)
    if lock.needs_checksum:
        object_lock.require_checksum("content-md5" in req.headers, plan.client_checksum)
    encrypt = await encryption_for_write(ctx, req)
    body, algorithms, want_sha256, encoding = plan.body, plan.algorithms, plan.want_sha256, None
    verify: Verifier | None = plan.verify
    if encrypt.asked:
        # The engine stores the encrypted frames; the plaintext's digests are checked and reported.
        doc, data_key = encryption.new_document(ctx.keys, encrypt, req.bucket, req.key)
        body, encoding = await encryption.encrypted(
            plan.body,
            doc,
            data_key,
            declared_length=length,
            algorithms=plan.algorithms,
            want_sha256=plan.want_sha256,
            verify=plan.verify,
        )
        algorithms, want_sha256, verify = (), False, None
    event = commit_hook(ctx, req, "s3:ObjectCreated:Put", req.key)
    info = await ctx.engine.put_object(
        req.bucket,
        req.key,
        body,
        headers=write.headers,
        checksum_algorithms=algorithms,
        want_sha256=want_sha256,
        verify=verify,
        storage_class=write.storage_class or "STANDARD",
        if_none_match=if_none_match or False,
        if_match=if_match,
        tags=write.tags or {},
        lock=lock.lock,
        acl=acl,
        encoding=encoding,
        committed=event,
    )
    if (waiting := event_after_write(event, info)) is not None:
        await waiting
    response = Response(200)
    response.header("etag", quote_etag(info.etag))
    for name, value in encryption.response_headers(info.encoding):
        response.header(name, value)
    add_written_version(response, info.version_id)
    await lifecycle.add_expiration(ctx, req.bucket, response, info)
    if plan.client_checksum:
        response.header(checksums.header_name(plan.algorithm), checksums.encode(info.checksums[plan.algorithm]))
        response.header("x-amz-checksum-type", info.checksum_type)
    return response


def _check_read_conditions(req: Request, info: ObjectInfo) -> None:
    """Conditional GET/HEAD with the precedence S3 (and RFC 9110) applies."""
    modified = int(info.last_modified)
    if_match = req.header("if-match")
    if if_match is not None:
        if not etag_matches(if_match, info.etag):
            raise S3Error("PreconditionFailed", Condition="If-Match")
    else:
        since = req.header("if-unmodified-since")
        if since is not None:
            when = parse_http_date(since)
            if when is not None and modified > when:
                raise S3Error("PreconditionFailed", Condition="If-Unmodified-Since")
    if_none_match = req.header("if-none-match")
    if if_none_match is not None:
        if etag_matches(if_none_match, info.etag):
            raise _not_modified(info)
    else:
        since = req.header("if-modified-since")
        if since is not None:
            when = parse_http_date(since)
            if when is not None and modified <= when:
                raise _not_modified(info)


def _not_modified(info: ObjectInfo) -> S3Error:
    err = S3Error("NotModified")
    err.headers += [
        (b"etag", quote_etag(info.etag).encode()),
        (b"last-modified", http_date(info.last_modified).encode()),
    ]
    return err


_DEFAULT_CONTENT_TYPE = (b"content-type", b"binary/octet-stream")
_ACCEPT_RANGES = (b"accept-ranges", b"bytes")


def _object_response(req: Request, info: ObjectInfo, status: int = 200) -> Response:
    # Hot path of every GET/HEAD: header tuples built directly, names pre-encoded.
    headers = [
        (b"etag", b'"%s"' % info.etag.encode("latin-1")),
        (b"last-modified", http_date(info.last_modified).encode("latin-1")),
        _ACCEPT_RANGES,
    ]
    stored = info.headers
    if "content-type" not in stored:
        headers.append(_DEFAULT_CONTENT_TYPE)
    for name, value in stored.items():
        headers.append((name.encode("latin-1"), value.encode("latin-1", "replace")))
    if info.storage_class != "STANDARD":
        headers.append((b"x-amz-storage-class", info.storage_class.encode("latin-1")))
    if info.tags:  # only when the object has tags, as S3 does
        headers.append((b"x-amz-tagging-count", str(len(info.tags)).encode("latin-1")))
    response = Response(status, headers)
    if req.query:
        for param, header in RESPONSE_OVERRIDES.items():
            override = req.query.get(param)
            if override is not None:
                if _CONTROL_CHARS.search(override):
                    # CR/LF would split the header (the HTTP server refuses and drops the connection).
                    raise S3Error("InvalidArgument", f"Invalid value for {param}.", ArgumentName=param)
                response.headers = [(n, v) for n, v in response.headers if n != header.encode()]
                response.header(header, override)
    return response


def _add_checksum_headers(req: Request, response: Response, info: ObjectInfo) -> None:
    if (req.header("x-amz-checksum-mode") or "").upper() != "ENABLED":
        return
    if info.part is not None and info.parts_count:
        # One part of a multipart object: that part's own checksum (the object's
        # would not match the bytes sent), under the object's checksum type.
        sums = {a: d for a, d in info.part.checksums.items() if a in info.checksums}
        for algorithm, digest in sums.items():
            response.header(checksums.header_name(algorithm), checksums.encode(digest))
        if sums:
            response.header("x-amz-checksum-type", info.checksum_type)
        return
    for algorithm, digest in info.checksums.items():
        response.header(
            checksums.header_name(algorithm), display_checksum(digest, info.checksum_type, info.parts_count)
        )
    if info.checksums:
        response.header("x-amz-checksum-type", info.checksum_type)


def _read_plan(req: Request, info: ObjectInfo) -> tuple[int, tuple[int, int] | None]:
    """Conditions, then what to send: (status, byte range or None for the whole object)."""
    _check_read_conditions(req, info)
    range_header = req.header("range")
    if info.part is not None:
        if range_header is not None:
            raise S3Error("InvalidRequest", "Cannot specify both Range header and partNumber query parameter")
        if not info.parts_count:  # part 1 of a single-part object is the object
            return 200, None
        return 206, (info.part.offset, info.part.offset + info.part.size)
    if range_header is not None:
        byte_range = parse_range(range_header, info.size)
        if byte_range is not None:
            return 206, byte_range
    return 200, None


def _read_response(req: Request, info: ObjectInfo, status: int, byte_range: tuple[int, int] | None) -> Response:
    response = _object_response(req, info, status)
    if info.encoding is not None:
        for name, value in encryption.response_headers(info.encoding):
            response.header(name, value)
    if info.part is not None and info.parts_count:
        response.header("x-amz-mp-parts-count", str(info.parts_count))
    if byte_range is None or info.part is not None:
        _add_checksum_headers(req, response, info)
    object_lock.add_headers(response, info.lock)
    if byte_range is not None:
        start, end = byte_range
        response.header("content-range", f"bytes {start}-{end - 1}/{info.size}")
    return response


async def GetObject(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    _check_read_headers(req)
    part_number = part_number_param(req.query.get("partNumber"))
    if part_number is not None and "range" in req.headers:
        raise S3Error("InvalidRequest", "Cannot specify both Range header and partNumber query parameter")
    version_id = version_param(req.query)
    opened = await ctx.engine.open_object(req.bucket, req.key, part_number=part_number, version_id=version_id)
    info = opened.info
    try:
        status, byte_range = _read_plan(req, info)
    except S3Error:
        close_body(opened)
        raise
    data_key = None
    if info.encoding is not None or sse.CUSTOMER_PREFIX + "algorithm" in req.headers:
        try:
            data_key = _read_key(ctx, req, info)
        except S3Error:
            close_body(opened)
            raise
    response = _read_response(req, info, status, byte_range)
    await add_read_version(ctx, req.bucket, response, info.version_id)
    if version_id is None:
        await lifecycle.add_expiration(ctx, req.bucket, response, info)
    start, end = byte_range if byte_range is not None else (0, info.size)
    if data_key is not None:
        stored = opened.data
        plain = encryption.decrypt_whole(stored, info, data_key) if stored is not None else None
        if plain is not None:
            response.body = plain[start:end]
        else:
            response.body = await decrypted(ctx, req.bucket, req.key, opened, data_key, start, end)
    else:
        # Small objects the engine already holds in memory go out as one bytes body.
        data = opened.data
        response.body = data[start:end] if data is not None else opened.stream(start, end)
    response.length = end - start
    return response


def close_body(opened: ObjectBody) -> None:
    """Release an opened body that will not be sent (engines that hold a file close it)."""
    close = getattr(opened, "close", None)
    if close is not None:
        close()


async def decrypted(
    ctx: Context, bucket: str, key: str, opened: ObjectBody, data_key: bytes, start: int, end: int
) -> AsyncIterator[bytes]:
    """Plaintext bytes [start, end) of an opened encrypted version (GET, and copies of it)."""
    info = opened.info
    parts = None
    if info.parts_count:  # each part is its own framed body: the range needs their places
        if info.part is not None:
            parts = [info.part]
        else:
            listed = await ctx.engine.list_object_parts(
                bucket, key, max_parts=MAX_PART_NUMBER, version_id=info.version_id
            )
            parts = listed.parts
    return encryption.decrypting(opened.stream, info, data_key, start, end, parts)


async def plaintext_of(
    ctx: Context,
    bucket: str,
    key: str,
    version_id: str | None,
    customer: sse.CustomerKey | None,
    check: Callable[[ObjectInfo], tuple[int, int]],
) -> tuple[ObjectInfo, AsyncIterator[bytes]]:
    """Open a version as a copy reads its source: ``check`` sees it first (copy conditions) and
    says which bytes [start, end) to read; they come decrypted when it is encrypted (``customer``:
    the request's SSE-C key for it)."""
    opened = await ctx.engine.open_object(bucket, key, version_id=version_id)
    info = opened.info
    try:
        start, end = check(info)
        if info.encoding is None:
            encryption.check_read_key(None, customer)
            return info, opened.stream(start, end)
        data_key = encryption.data_key_of(ctx.keys, info.encoding, customer, bucket, key)
        return info, await decrypted(ctx, bucket, key, opened, data_key, start, end)
    except BaseException:
        close_body(opened)
        raise


def _check_read_headers(req: Request) -> None:
    """A read names no SSE-S3/SSE-KMS parameters (S3: they are for writes only)."""
    for name in (sse.HEADER, sse.KMS_KEY_HEADER):
        if name in req.headers:
            raise S3Error(
                "InvalidArgument",
                f"{name} header is not supported for this operation.",
                ArgumentName=name,
                ArgumentValue=req.headers[name][:256],
            )


def _read_key(ctx: Context, req: Request, info: ObjectInfo) -> bytes | None:
    """The data key of an encrypted version (SSE-C: from the request's key); None when the version
    is not encrypted (an SSE-C key for it is refused, as S3 does)."""
    customer = customer_key(ctx, req)
    if info.encoding is None:
        encryption.check_read_key(None, customer)
        return None
    return encryption.data_key_of(ctx.keys, info.encoding, customer, info.bucket, info.key)


async def HeadObject(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    _check_read_headers(req)
    part_number = part_number_param(req.query.get("partNumber"))
    version_id = version_param(req.query)
    info = await ctx.engine.head_object(req.bucket, req.key, part_number=part_number, version_id=version_id)
    if info.encoding is not None or sse.CUSTOMER_PREFIX + "algorithm" in req.headers:
        encryption.check_read_key(info.encoding, customer_key(ctx, req))
    status, byte_range = _read_plan(req, info)
    response = _read_response(req, info, status, byte_range)
    await add_read_version(ctx, req.bucket, response, info.version_id)
    if version_id is None:
        await lifecycle.add_expiration(ctx, req.bucket, response, info)
    start, end = byte_range if byte_range is not None else (0, info.size)
    response.header("content-length", str(end - start))
    return response


# Where a conditional delete's last-modified time and size come from: DeleteObject's headers, DeleteObjects' fields.
_DELETE_HEADERS = ("x-amz-if-match-last-modified-time", "x-amz-if-match-size")
_DELETE_FIELDS = ("LastModifiedTime", "Size")


def delete_condition(
    if_match: str | None, last_modified: str | None, size: str | None, names: tuple[str, str]
) -> DeleteCondition | None:
    """A conditional delete's If-Match, last-modified time and size; None when none is given."""
    if if_match is None and last_modified is None and size is None:
        return None
    return DeleteCondition(
        if_match=if_match,
        last_modified=parse_timestamp(last_modified, names[0]) if last_modified is not None else None,
        size=parse_int(size, names[1]) if size is not None else None,
    )


async def DeleteObject(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    condition = delete_condition(
        req.header("if-match"), req.header(_DELETE_HEADERS[0]), req.header(_DELETE_HEADERS[1]), _DELETE_HEADERS
    )
    version_id = version_param(req.query)
    bypass = object_lock.bypass_governance(req)  # needs s3:BypassGovernanceRetention
    result = await ctx.engine.delete_object(
        req.bucket, req.key, condition, version_id=version_id, bypass_governance=bypass
    )
    removed = removed_event(version_id, result)
    if (waiting := request_event(ctx, req, removed, req.key, version_id=result.version_id)) is not None:
        await waiting
    response = Response(204)
    if result.version_id is not None:
        response.header("x-amz-version-id", result.version_id)
    if result.delete_marker:
        response.header("x-amz-delete-marker", "true")
    return response


async def DeleteObjects(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    plan = plan_upload(req, default_algorithm=None)
    doc = xml.parse(await plan.read_all(xml.MAX_XML_BODY))
    if doc.tag != "Delete":
        raise S3Error("MalformedXML")
    quiet = (xml.child_text(doc, "Quiet", "false") or "").strip().lower() == "true"
    objects: list[tuple[str, str | None, DeleteCondition | None]] = []
    for obj in doc.findall("Object"):
        key = xml.child_text(obj, "Key")
        if key is None:
            raise S3Error("MalformedXML")
        condition = delete_condition(
            xml.child_text(obj, "ETag"),
            xml.child_text(obj, _DELETE_FIELDS[0]),
            xml.child_text(obj, _DELETE_FIELDS[1]),
            _DELETE_FIELDS,
        )
        objects.append((key, xml.child_text(obj, "VersionId"), condition))
    if not objects or len(objects) > MAX_DELETE_KEYS:
        raise S3Error("MalformedXML")
    await ctx.engine.get_bucket(req.bucket)
    access = req.access  # None: authorization off
    # Each key's answer in request order: its request to the engine, or the error it already has.
    slots: list[DeleteRequest | str] = []
    for key, version_id, condition in objects:
        if not key or len(key.encode("utf-8")) > 1024:
            slots.append(_delete_error(key, version_id, "InvalidArgument", "Invalid key"))
        elif version_id is not None and not is_valid_version_id(version_id):
            slots.append(_delete_error(key, version_id, "NoSuchVersion", "The specified version does not exist."))
        elif access is not None and not access.allows(
            "s3:DeleteObjectVersion" if version_id is not None else "s3:DeleteObject", object_arn(req.bucket, key)
        ):
            # Authorized per key, as S3 does: a policy may allow deleting under one prefix only.
            slots.append(_delete_error(key, version_id, "AccessDenied", "Access Denied"))
        else:
            slots.append(DeleteRequest(key, version_id, condition))
    requests = [slot for slot in slots if isinstance(slot, DeleteRequest)]
    bypass = object_lock.bypass_governance(req, [r.key for r in requests])  # needs s3:BypassGovernanceRetention
    outcomes = iter(await ctx.engine.delete_objects(req.bucket, requests, bypass_governance=bypass))
    parts: list[str] = []
    removed: list[tuple[str, str, str | None]] = []  # (event, key, version id) of each key deleted
    for slot in slots:
        if isinstance(slot, str):
            parts.append(slot)
            continue
        outcome = next(outcomes)
        if isinstance(outcome, DeleteResult):
            removed.append((removed_event(slot.version_id, outcome), slot.key, outcome.version_id))
            if not quiet:
                parts.append(_deleted(slot, outcome))
        else:
            err = from_storage(outcome) if isinstance(outcome, StorageError) else S3Error("InternalError")
            parts.append(_delete_error(slot.key, slot.version_id, err.code, err.message))
    await request_events(ctx, req, removed)
    response = Response(200, body=xml.document("DeleteResult", "".join(parts)))
    response.header("content-type", "application/xml")
    return response


def _deleted(request: DeleteRequest, result: DeleteResult) -> str:
    """One <Deleted>: the version named (VersionId); DeleteMarker when a marker was created or the
    version removed was one, with DeleteMarkerVersionId naming it."""
    inner = xml.elem("Key", request.key)
    if request.version_id is not None:
        inner += xml.elem("VersionId", request.version_id)
    if result.delete_marker:
        inner += xml.elem("DeleteMarker", "true")
        if result.version_id is not None:
            inner += xml.elem("DeleteMarkerVersionId", result.version_id)
    return f"<Deleted>{inner}</Deleted>"


def _delete_error(key: str, version_id: str | None, code: str, message: str) -> str:
    version = xml.elem("VersionId", version_id) if version_id is not None else ""
    return f"<Error>{xml.elem('Key', key)}{version}{xml.elem('Code', code)}{xml.elem('Message', message)}</Error>"
