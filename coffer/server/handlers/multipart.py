"""Multipart uploads: CreateMultipartUpload, UploadPart, UploadPartCopy,
CompleteMultipartUpload, AbortMultipartUpload, ListParts, ListMultipartUploads."""

from __future__ import annotations

import re
from urllib.parse import quote

from coffer import checksums
from coffer.server import encryption, object_lock, sse, xml
from coffer.server.context import Context
from coffer.server.errors import S3Error
from coffer.server.handlers.common import (
    acl_for_write,
    customer_key,
    display_name,
    encryption_for_write,
    key_encoder,
    owner_xml,
    parse_max,
    xml_response,
)
from coffer.server.handlers.copy import SourceSeen, copy_source_check, parse_copy_source, source_errors
from coffer.server.handlers.object import checksum_algorithm_header, part_number_param, plaintext_of
from coffer.server.http import INT32_MAX, Response, parse_int, quote_etag
from coffer.server.notify import commit_hook, event_after_write
from coffer.server.object_write import check_no_encryption, object_write
from coffer.server.request import Request, validate_new_key
from coffer.server.upload import plan_upload
from coffer.server.versioning import add_written_version
from coffer.storage.api import MAX_PART_SIZE, CompletedPart, Completion, ObjectInfo, PartInfo, UploadInfo, Verifier
from coffer.storage.errors import EncodedSource, NoSuchUpload
from coffer.storage.multipart import display_checksum
from coffer.storage.objects import copy_source_span

MAX_PARTS_LISTED = 1000
MAX_UPLOADS_LISTED = 1000
# A Complete listing 10,000 parts with checksums is ~1.5-3 MB of XML.
MAX_COMPLETE_BODY = 8 * 1024 * 1024
_MALFORMED = "The XML you provided was not well-formed or did not validate against our published schema"
_COPY_RANGE = re.compile(r"^bytes=(\d+)-(\d+)$")


def _upload_id(req: Request) -> str:
    upload_id = req.query.get("uploadId", "")
    if not upload_id:
        raise S3Error("NoSuchUpload", UploadId=upload_id)
    return upload_id


def _part_number(req: Request) -> int:
    number = part_number_param(req.query.get("partNumber"))
    if number is None:
        raise S3Error("InvalidArgument", "partNumber is required", ArgumentName="partNumber")
    return number


def _checksum_type_header(req: Request) -> str | None:
    value = req.header("x-amz-checksum-type")
    return value.upper() if value is not None else None


def _part_checksum_headers(response: Response, part: PartInfo, names: list[str]) -> None:
    for algorithm in dict.fromkeys(names):
        digest = part.checksums.get(algorithm)
        if digest is not None:
            response.header(checksums.header_name(algorithm), checksums.encode(digest))


def _part_checksums_xml(part: PartInfo, upload: UploadInfo) -> str:
    digest = part.checksums.get(upload.effective_algorithm)
    if digest is None:
        return ""
    return xml.elem(f"Checksum{upload.effective_algorithm}", checksums.encode(digest))


# ---------------------------------------------------------------------- create
async def CreateMultipartUpload(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    validate_new_key(req.key, ctx.settings.dot_segment_keys)
    algorithm = checksum_algorithm_header(req)
    write = object_write(req.headers)
    owner, acl = await acl_for_write(ctx, req)
    encrypt = await encryption_for_write(ctx, req)
    # One data key for the upload (wrapped in its document); each part is framed as its own body.
    doc = encryption.new_document(ctx.keys, encrypt, req.bucket, req.key)[0] if encrypt.asked else None
    lock = await object_lock.lock_for_write(ctx.bucket_states(), req.bucket, req.headers)
    upload = await ctx.engine.create_multipart_upload(
        req.bucket,
        req.key,
        headers=write.headers,
        storage_class=write.storage_class or "STANDARD",
        checksum_algorithm=algorithm,
        checksum_type=_checksum_type_header(req),
        tags=write.tags or {},  # given to the object at completion
        lock=lock.lock,
        owner=owner,
        acl=acl,
        encoding=doc,
    )
    inner = xml.elem("Bucket", req.bucket) + xml.elem("Key", req.key) + xml.elem("UploadId", upload.upload_id)
    response = xml_response(xml.document("InitiateMultipartUploadResult", inner))
    if upload.checksum_algorithm is not None:
        response.header("x-amz-checksum-algorithm", upload.checksum_algorithm)
        response.header("x-amz-checksum-type", upload.checksum_type)
    for name, value in encryption.response_headers(upload.encoding):
        response.header(name, value)
    return response


# ---------------------------------------------------------------------- parts
async def UploadPart(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    upload_id = _upload_id(req)
    part_number = _part_number(req)
    length = req.declared_length
    if length is not None and length > MAX_PART_SIZE:
        raise S3Error("EntityTooLarge", ProposedSize=str(length), MaxSizeAllowed=str(MAX_PART_SIZE))
    plan = plan_upload(req, default_algorithm=None)
    upload = await ctx.engine.get_upload(req.bucket, req.key, upload_id)
    if upload.lock:
        object_lock.require_checksum("content-md5" in req.headers, plan.client_checksum, "Put Part")
    if upload.checksum_algorithm is not None and plan.algorithm != upload.checksum_algorithm:
        # An upload created with an algorithm takes parts checksummed with it only.
        raise S3Error(
            "InvalidRequest",
            f"Checksum Type mismatch occurred, expected checksum Type: {upload.checksum_algorithm.lower()}, "
            f"actual checksum Type: {plan.algorithm.lower() if plan.client_checksum else 'null'}",
        )
    body, algorithms, want_sha256, encoding = plan.body, plan.algorithms, plan.want_sha256, None
    verify: Verifier | None = plan.verify
    if upload.encoding is None:
        check_no_encryption(req.headers)
    else:
        # SSE-C: every part carries the upload's key (S3 checks it); others carry nothing.
        customer = customer_key(ctx, req)
        data_key = encryption.data_key_of(ctx.keys, upload.encoding, customer, req.bucket, req.key)
        body, encoding = encryption.encrypting(
            plan.body,
            upload.encoding,
            data_key,
            # The upload's own algorithm too: the object's checksum is composed from the parts'.
            algorithms=tuple(dict.fromkeys((*plan.algorithms, upload.effective_algorithm))),
            want_sha256=plan.want_sha256,
            verify=plan.verify,
            part_number=part_number,
        )
        algorithms, want_sha256, verify = (), False, None
    part = await ctx.engine.upload_part(
        req.bucket,
        req.key,
        upload_id,
        part_number,
        body,
        checksum_algorithms=algorithms,
        want_sha256=want_sha256,
        verify=verify,
        encoding=encoding,
    )
    response = Response(200)
    response.header("etag", quote_etag(part.etag))
    for name, value in encryption.response_headers(upload.encoding):
        response.header(name, value)
    names = [plan.algorithm] if plan.client_checksum else []
    if upload.checksum_algorithm is not None:
        names.append(upload.checksum_algorithm)
    _part_checksum_headers(response, part, names)
    return response


def _copy_range(req: Request) -> tuple[int, int] | None:
    raw = req.header("x-amz-copy-source-range")
    if raw is None:
        return None
    match = _COPY_RANGE.match(raw.strip())
    if match is None:
        raise S3Error(
            "InvalidArgument",
            "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are "
            "the zero-based offsets of the first and last bytes to copy",
            ArgumentName="x-amz-copy-source-range",
            ArgumentValue=raw,
        )
    first = parse_int(match.group(1), "x-amz-copy-source-range")
    last = parse_int(match.group(2), "x-amz-copy-source-range")
    if last < first:
        raise S3Error("InvalidArgument", "Range specified is not valid", ArgumentName="x-amz-copy-source-range")
    return first, last


async def UploadPartCopy(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    upload_id = _upload_id(req)
    part_number = _part_number(req)
    source = parse_copy_source(req)
    seen = SourceSeen(copy_source_check(req))
    upload = await ctx.engine.get_upload(req.bucket, req.key, upload_id)
    source_customer = customer_key(ctx, req, sse.COPY_SOURCE_CUSTOMER_PREFIX)
    part = None
    if upload.encoding is None and source_customer is None:
        check_no_encryption(req.headers)
        try:
            with source_errors():
                part = await ctx.engine.upload_part_copy(
                    req.bucket,
                    req.key,
                    upload_id,
                    part_number,
                    source.bucket,
                    source.key,
                    src_range=_copy_range(req),
                    check_source=seen,
                    src_version_id=source.version_id,
                )
        except EncodedSource:
            part = None  # an encrypted source: decrypted below
    if part is None:
        part = await _part_copy_through(ctx, req, upload, part_number, seen, source_customer)
    inner = xml.elem("LastModified", xml.iso8601(part.last_modified)) + xml.elem("ETag", quote_etag(part.etag))
    if upload.checksum_algorithm is not None:
        inner += _part_checksums_xml(part, upload)
    response = xml_response(xml.document("CopyPartResult", inner))
    for name, value in encryption.response_headers(upload.encoding):
        response.header(name, value)
    await seen.add_header(ctx, source.bucket, response)
    return response


async def _part_copy_through(
    ctx: Context,
    req: Request,
    upload: UploadInfo,
    part_number: int,
    seen: SourceSeen,
    source_customer: sse.CustomerKey | None,
) -> PartInfo:
    """UploadPartCopy from or into an encrypted body: the source range is read (decrypted) and
    uploaded as a part (encrypted as the upload is), streamed."""
    assert req.bucket is not None and req.key is not None
    source = parse_copy_source(req)

    def span(info: ObjectInfo) -> tuple[int, int]:
        seen(info)
        return copy_source_span(_copy_range(req), info.size)

    with source_errors():
        _, body = await plaintext_of(ctx, source.bucket, source.key, source.version_id, source_customer, span)
    algorithms = (upload.effective_algorithm,)
    encoding = None
    if upload.encoding is not None:
        data_key = encryption.data_key_of(ctx.keys, upload.encoding, customer_key(ctx, req), req.bucket, req.key)
        body, encoding = encryption.encrypting(
            body,
            upload.encoding,
            data_key,
            algorithms=algorithms,
            want_sha256=False,
            verify=None,
            part_number=part_number,
        )
    return await ctx.engine.upload_part(
        req.bucket,
        req.key,
        upload.upload_id,
        part_number,
        body,
        checksum_algorithms=() if encoding is not None else algorithms,
        encoding=encoding,
    )


# ---------------------------------------------------------------------- complete / abort
def _parse_completion(body: bytes) -> list[CompletedPart]:
    doc = xml.parse(body)
    if doc.tag != "CompleteMultipartUpload":
        raise S3Error("MalformedXML")
    parts: list[CompletedPart] = []
    for node in doc.findall("Part"):
        number = xml.child_text(node, "PartNumber")
        etag = xml.child_text(node, "ETag")
        if number is None or etag is None:
            raise S3Error("MalformedXML")
        sums: dict[str, str] = {}
        for child in node:
            if child.tag.startswith("Checksum") and child.tag[len("Checksum") :] in checksums.ALGORITHMS:
                sums[child.tag[len("Checksum") :]] = (child.text or "").strip()
        # Not a number: not valid against the schema; a number no part can have: InvalidPart (the engine).
        part_number = parse_int(number, "PartNumber", 0, INT32_MAX, code="MalformedXML", message=_MALFORMED)
        parts.append(CompletedPart(part_number, etag.strip().strip('"'), sums))
    if not parts:
        raise S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate: no Part.")
    return parts


def _completion(req: Request) -> Completion:
    named = [(name, algo) for name in req.headers if (algo := checksums.algorithm_from_header(name)) is not None]
    if len(named) > 1:
        raise S3Error("InvalidRequest", "Expecting a single x-amz-checksum- header")
    expected = (named[0][1], req.headers[named[0][0]]) if named else None
    size_raw = req.header("x-amz-mp-object-size")
    size = None
    if size_raw is not None:
        message = "Value for x-amz-mp-object-size header is invalid."
        size = parse_int(size_raw, "x-amz-mp-object-size", message=message, code="InvalidRequest")
    return Completion(
        expected_checksum=expected,
        expected_type=_checksum_type_header(req),
        expected_size=size,
        if_none_match=req.header("if-none-match"),
        if_match=req.header("if-match"),
    )


async def _check_customer_key(ctx: Context, req: Request, upload_id: str) -> None:
    """An SSE-C upload completes only with its key, as S3 checks (a completed or unknown upload:
    the engine answers)."""
    assert req.bucket is not None and req.key is not None
    try:
        upload = await ctx.engine.get_upload(req.bucket, req.key, upload_id)
    except NoSuchUpload:
        return
    if upload.encoding is not None and upload.encoding.get("a") == encryption.SSE_C:
        encryption.check_read_key(upload.encoding, customer_key(ctx, req))


async def CompleteMultipartUpload(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    upload_id = _upload_id(req)
    completion = _completion(req)
    # The x-amz-checksum-* headers describe the object, not this XML body: read it plainly.
    parts = _parse_completion(await req.read_body(MAX_COMPLETE_BODY))
    await _check_customer_key(ctx, req, upload_id)
    event = commit_hook(ctx, req, "s3:ObjectCreated:CompleteMultipartUpload", req.key)
    info = await ctx.engine.complete_multipart_upload(
        req.bucket, req.key, upload_id, parts, completion, committed=event
    )
    if (waiting := event_after_write(event, info)) is not None:
        await waiting
    host = req.header("host", "localhost")
    location = f"http://{host}/{quote(req.bucket)}/{quote(req.key)}"
    inner = [
        xml.elem("Location", location),
        xml.elem("Bucket", req.bucket),
        xml.elem("Key", req.key),
        xml.elem("ETag", quote_etag(info.etag)),
    ]
    for algorithm, digest in info.checksums.items():
        inner.append(xml.elem(f"Checksum{algorithm}", display_checksum(digest, info.checksum_type, info.parts_count)))
    if info.checksums:
        inner.append(xml.elem("ChecksumType", info.checksum_type))
    response = xml_response(xml.document("CompleteMultipartUploadResult", "".join(inner)))
    add_written_version(response, info.version_id)
    for name, value in encryption.response_headers(info.encoding):
        response.header(name, value)
    return response


async def AbortMultipartUpload(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    await ctx.engine.abort_multipart_upload(req.bucket, req.key, _upload_id(req))
    return Response(204)


# ---------------------------------------------------------------------- listings
def _marker(value: str | None, name: str) -> int:
    return 0 if value is None or value == "" else parse_int(value, name, 0, INT32_MAX)


async def ListParts(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    upload_id = _upload_id(req)
    marker = _marker(req.query.get("part-number-marker"), "part-number-marker")
    max_parts = parse_max(req.query.get("max-parts"), "max-parts", MAX_PARTS_LISTED, MAX_PARTS_LISTED)
    page = await ctx.engine.list_parts(req.bucket, req.key, upload_id, marker=marker, max_parts=max_parts)
    upload = page.upload
    owner = display_name(ctx, req, upload.owner)
    inner = [
        xml.elem("Bucket", req.bucket),
        xml.elem("Key", req.key),
        xml.elem("UploadId", upload_id),
        owner_xml(upload.owner, owner, "Initiator"),
        owner_xml(upload.owner, owner),
        xml.elem("StorageClass", upload.storage_class),
        xml.elem("PartNumberMarker", marker),
        xml.elem("NextPartNumberMarker", page.next_marker),
        xml.elem("MaxParts", max_parts),
        xml.elem("IsTruncated", "true" if page.is_truncated else "false"),
    ]
    if upload.checksum_algorithm is not None:
        inner.append(xml.elem("ChecksumAlgorithm", upload.checksum_algorithm))
        inner.append(xml.elem("ChecksumType", upload.checksum_type))
    for part in page.parts:
        inner.append(
            f"<Part>{xml.elem('PartNumber', part.part_number)}"
            f"{xml.elem('LastModified', xml.iso8601(part.last_modified))}"
            f"{xml.elem('ETag', quote_etag(part.etag))}{xml.elem('Size', part.size)}"
            f"{_part_checksums_xml(part, upload)}</Part>"
        )
    response = xml_response(xml.document("ListPartsResult", "".join(inner)))
    for name, value in encryption.response_headers(upload.encoding):
        response.header(name, value)
    return response


async def ListMultipartUploads(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    q = req.query
    enc = key_encoder(req)
    prefix = q.get("prefix", "")
    delimiter = q.get("delimiter", "")
    key_marker = q.get("key-marker", "")
    upload_id_marker = q.get("upload-id-marker", "") if key_marker else ""
    max_uploads = parse_max(q.get("max-uploads"), "max-uploads", MAX_UPLOADS_LISTED, MAX_UPLOADS_LISTED)
    page = await ctx.engine.list_multipart_uploads(
        req.bucket,
        prefix=prefix,
        delimiter=delimiter,
        key_marker=key_marker,
        upload_id_marker=upload_id_marker,
        max_uploads=max_uploads,
    )
    inner = [
        xml.elem("Bucket", req.bucket),
        f"<KeyMarker>{enc(key_marker)}</KeyMarker>",
        xml.elem("UploadIdMarker", upload_id_marker),
    ]
    if page.is_truncated:
        inner.append(f"<NextKeyMarker>{enc(page.next_key_marker or '')}</NextKeyMarker>")
        inner.append(xml.elem("NextUploadIdMarker", page.next_upload_id_marker or ""))
    if delimiter:
        inner.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
    inner.append(f"<Prefix>{enc(prefix)}</Prefix>")
    inner.append(xml.elem("MaxUploads", max_uploads))
    inner.append(xml.elem("IsTruncated", "true" if page.is_truncated else "false"))
    if "encoding-type" in q:
        inner.append("<EncodingType>url</EncodingType>")
    for upload in page.uploads:
        owner = display_name(ctx, req, upload.owner)
        inner.append(
            f"<Upload><Key>{enc(upload.key)}</Key>{xml.elem('UploadId', upload.upload_id)}"
            f"{owner_xml(upload.owner, owner, 'Initiator')}{owner_xml(upload.owner, owner)}"
            f"{xml.elem('StorageClass', upload.storage_class)}"
            f"{xml.elem('Initiated', xml.iso8601(upload.initiated))}"
            + (
                xml.elem("ChecksumAlgorithm", upload.checksum_algorithm)
                + xml.elem("ChecksumType", upload.checksum_type)
                if upload.checksum_algorithm is not None
                else ""
            )
            + "</Upload>"
        )
    for common in page.common_prefixes:
        inner.append(f"<CommonPrefixes><Prefix>{enc(common)}</Prefix></CommonPrefixes>")
    return xml_response(xml.document("ListMultipartUploadsResult", "".join(inner)))
