"""ListObjects (v1), ListObjectsV2 and ListObjectVersions."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

from coffer.server import xml
from coffer.server.context import Context
from coffer.server.errors import S3Error
from coffer.server.handlers.common import key_encoder, parse_max, stored_owner_xml, xml_response
from coffer.server.http import Response
from coffer.server.request import Request
from coffer.server.versioning import check_version_id
from coffer.storage.api import ListPage

MAX_KEYS = 1000


def _entries_xml(ctx: Context, req: Request, page: ListPage, enc: Callable[[str], str], with_owner: bool) -> str:
    iso8601 = xml.iso8601
    owners: dict[str, str] = {}  # owner id -> its XML, built once per page
    out = []
    for e in page.entries:
        owner = ""
        if with_owner:
            owner = owners.get(e.owner, "")
            if not owner:
                owner = owners[e.owner] = stored_owner_xml(ctx, req, e.owner)
        out.append(
            f"<Contents><Key>{enc(e.key)}</Key><LastModified>{iso8601(e.last_modified)}</LastModified>"
            f"<ETag>&quot;{e.etag}&quot;</ETag><Size>{e.size}</Size>{owner}"
            f"<StorageClass>{e.storage_class}</StorageClass></Contents>"
        )
    for p in page.common_prefixes:
        out.append(f"<CommonPrefixes><Prefix>{enc(p)}</Prefix></CommonPrefixes>")
    return "".join(out)


async def ListObjects(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    q = req.query
    enc = key_encoder(req)
    prefix = q.get("prefix", "")
    delimiter = q.get("delimiter", "")
    marker = q.get("marker", "")
    max_keys = parse_max(q.get("max-keys"), "max-keys", MAX_KEYS, MAX_KEYS)
    page = await ctx.engine.list_objects(
        req.bucket, prefix=prefix, delimiter=delimiter, after=marker, max_keys=max_keys
    )
    inner = [
        # V1 never URL-encodes Prefix (botocore does not decode it there).
        f"<Name>{xml.esc(req.bucket)}</Name><Prefix>{xml.esc(prefix)}</Prefix><Marker>{enc(marker)}</Marker>",
        f"<MaxKeys>{max_keys}</MaxKeys>",
    ]
    if delimiter:
        inner.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
    inner.append(f"<IsTruncated>{'true' if page.is_truncated else 'false'}</IsTruncated>")
    # V1 reports NextMarker only with a delimiter; clients otherwise use the last key.
    if page.is_truncated and delimiter and page.next_marker is not None:
        inner.append(f"<NextMarker>{enc(page.next_marker)}</NextMarker>")
    if "encoding-type" in q:
        inner.append("<EncodingType>url</EncodingType>")
    inner.append(_entries_xml(ctx, req, page, enc, True))
    return xml_response(xml.document("ListBucketResult", "".join(inner)))


def _encode_token(marker: str) -> str:
    return base64.urlsafe_b64encode(b"v1:" + marker.encode("utf-8")).decode("ascii")


def _decode_token(token: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(token.encode("ascii"))
        if not raw.startswith(b"v1:"):
            raise ValueError
        return raw[3:].decode("utf-8")
    except (binascii.Error, ValueError, UnicodeError):
        raise S3Error(
            "InvalidArgument",
            "The continuation token provided is incorrect",
            ArgumentName="continuation-token",
            ArgumentValue=token,
        ) from None


async def ListObjectsV2(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    q = req.query
    enc = key_encoder(req)
    prefix = q.get("prefix", "")
    delimiter = q.get("delimiter", "")
    start_after = q.get("start-after", "")
    token = q.get("continuation-token")
    max_keys = parse_max(q.get("max-keys"), "max-keys", MAX_KEYS, MAX_KEYS)
    fetch_owner = q.get("fetch-owner", "").lower() == "true"
    # StartAfter applies only to the first page; an empty token means the first page.
    after = _decode_token(token) if token else start_after
    page = await ctx.engine.list_objects(req.bucket, prefix=prefix, delimiter=delimiter, after=after, max_keys=max_keys)
    inner = [f"<Name>{xml.esc(req.bucket)}</Name><Prefix>{enc(prefix)}</Prefix>"]
    if start_after:
        inner.append(f"<StartAfter>{enc(start_after)}</StartAfter>")
    if token is not None:
        inner.append(f"<ContinuationToken>{xml.esc(token)}</ContinuationToken>")
    inner.append(f"<KeyCount>{len(page.entries) + len(page.common_prefixes)}</KeyCount>")
    inner.append(f"<MaxKeys>{max_keys}</MaxKeys>")
    if delimiter:
        inner.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
    inner.append(f"<IsTruncated>{'true' if page.is_truncated else 'false'}</IsTruncated>")
    if page.is_truncated and page.next_marker is not None:
        inner.append(f"<NextContinuationToken>{_encode_token(page.next_marker)}</NextContinuationToken>")
    if "encoding-type" in q:
        inner.append("<EncodingType>url</EncodingType>")
    inner.append(_entries_xml(ctx, req, page, enc, fetch_owner))
    return xml_response(xml.document("ListBucketResult", "".join(inner)))


async def ListObjectVersions(ctx: Context, req: Request) -> Response:
    """Versions and delete markers in the engine's order (by key, newest first within a key)."""
    assert req.bucket is not None
    q = req.query
    enc = key_encoder(req)
    prefix = q.get("prefix", "")
    delimiter = q.get("delimiter", "")
    key_marker = q.get("key-marker", "")
    version_marker = q.get("version-id-marker", "")
    if version_marker and not key_marker:
        raise S3Error(
            "InvalidArgument",
            "A version-id marker cannot be specified without a key marker.",
            ArgumentName="version-id-marker",
            ArgumentValue=version_marker,
        )
    if version_marker:
        check_version_id(version_marker, "version-id-marker")
    max_keys = parse_max(q.get("max-keys"), "max-keys", MAX_KEYS, MAX_KEYS)
    page = await ctx.engine.list_object_versions(
        req.bucket,
        prefix=prefix,
        delimiter=delimiter,
        key_marker=key_marker,
        version_id_marker=version_marker,
        max_keys=max_keys,
    )
    inner = [
        f"<Name>{xml.esc(req.bucket)}</Name><Prefix>{enc(prefix)}</Prefix>",
        f"<KeyMarker>{enc(key_marker)}</KeyMarker><VersionIdMarker>{xml.esc(version_marker)}</VersionIdMarker>",
        f"<MaxKeys>{max_keys}</MaxKeys>",
    ]
    if delimiter:
        inner.append(f"<Delimiter>{enc(delimiter)}</Delimiter>")
    inner.append(f"<IsTruncated>{'true' if page.is_truncated else 'false'}</IsTruncated>")
    if page.is_truncated and page.next_key_marker is not None:
        inner.append(f"<NextKeyMarker>{enc(page.next_key_marker)}</NextKeyMarker>")
        if page.next_version_id_marker is not None:
            inner.append(f"<NextVersionIdMarker>{xml.esc(page.next_version_id_marker)}</NextVersionIdMarker>")
    if "encoding-type" in q:
        inner.append("<EncodingType>url</EncodingType>")
    iso8601 = xml.iso8601
    owners: dict[str, str] = {}  # owner id -> its XML, built once per page
    for e in page.entries:
        owner = owners.get(e.owner, "")
        if not owner:
            owner = owners[e.owner] = stored_owner_xml(ctx, req, e.owner)
        common = (
            f"<Key>{enc(e.key)}</Key><VersionId>{xml.esc(e.version_id)}</VersionId>"
            f"<IsLatest>{'true' if e.is_latest else 'false'}</IsLatest>"
            f"<LastModified>{iso8601(e.last_modified)}</LastModified>"
        )
        if e.delete_marker:
            inner.append(f"<DeleteMarker>{common}{owner}</DeleteMarker>")
        else:
            inner.append(
                f"<Version>{common}<ETag>&quot;{e.etag}&quot;</ETag><Size>{e.size}</Size>"
                f"{owner}<StorageClass>{e.storage_class}</StorageClass></Version>"
            )
    for p in page.common_prefixes:
        inner.append(f"<CommonPrefixes><Prefix>{enc(p)}</Prefix></CommonPrefixes>")
    return xml_response(xml.document("ListVersionsResult", "".join(inner)))
