"""GetObjectAttributes: ETag, Checksum, ObjectParts (paginated), StorageClass, ObjectSize."""

from __future__ import annotations

from coffer import checksums
from coffer.server import encryption, xml
from coffer.server.context import Context
from coffer.server.errors import S3Error
from coffer.server.handlers.common import customer_key, parse_max
from coffer.server.http import INT32_MAX, Response, http_date, parse_int
from coffer.server.request import Request
from coffer.server.versioning import add_read_version, version_param

ATTRIBUTES = ("ETag", "Checksum", "ObjectParts", "StorageClass", "ObjectSize")
MAX_PARTS = 1000


def _requested(raw: str | None) -> set[str]:
    names = {n.strip() for n in (raw or "").split(",") if n.strip()}
    if not names:
        raise S3Error(
            "InvalidArgument",
            "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty",
            ArgumentName="x-amz-object-attributes",
        )
    unknown = names - set(ATTRIBUTES)
    if unknown:
        raise S3Error(
            "InvalidArgument",
            "Invalid attribute name specified.",
            ArgumentName="x-amz-object-attributes",
            ArgumentValue=sorted(unknown)[0],
        )
    return names


async def GetObjectAttributes(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    wanted = _requested(req.header("x-amz-object-attributes"))
    version_id = version_param(req.query)
    marker = parse_int(req.header("x-amz-part-number-marker") or "0", "x-amz-part-number-marker", 0, INT32_MAX)
    max_parts = parse_max(req.header("x-amz-max-parts"), "x-amz-max-parts", MAX_PARTS, MAX_PARTS)
    page = await ctx.engine.list_object_parts(
        req.bucket, req.key, marker=marker, max_parts=max_parts, version_id=version_id
    )
    info = page.info
    if info.encoding is not None:
        encryption.check_read_key(info.encoding, customer_key(ctx, req))  # SSE-C: its key, as GET
    inner: list[str] = []
    if "ETag" in wanted:
        inner.append(xml.elem("ETag", info.etag))  # unquoted here, unlike everywhere else
    if "Checksum" in wanted and info.checksums:
        # The bare value: a composite checksum comes without its "-N" suffix here.
        sums = "".join(xml.elem(f"Checksum{a}", checksums.encode(d)) for a, d in info.checksums.items())
        inner.append(f"<Checksum>{sums}{xml.elem('ChecksumType', info.checksum_type)}</Checksum>")
    if "ObjectParts" in wanted and info.parts_count:
        parts = []
        for part in page.parts:
            sums = "".join(
                xml.elem(f"Checksum{a}", checksums.encode(d)) for a, d in part.checksums.items() if a in info.checksums
            )
            parts.append(f"<Part>{xml.elem('PartNumber', part.part_number)}{xml.elem('Size', part.size)}{sums}</Part>")
        inner.append(
            "<ObjectParts>"
            f"{xml.elem('PartsCount', info.parts_count)}{xml.elem('PartNumberMarker', marker)}"
            f"{xml.elem('NextPartNumberMarker', page.next_marker)}{xml.elem('MaxParts', max_parts)}"
            f"{xml.elem('IsTruncated', 'true' if page.is_truncated else 'false')}{''.join(parts)}"
            "</ObjectParts>"
        )
    if "StorageClass" in wanted:
        inner.append(xml.elem("StorageClass", info.storage_class))
    if "ObjectSize" in wanted:
        inner.append(xml.elem("ObjectSize", info.size))
    response = Response(200, body=xml.document("GetObjectAttributesOutput", "".join(inner)))
    response.header("content-type", "application/xml")
    response.header("last-modified", http_date(info.last_modified))
    for name, value in encryption.response_headers(info.encoding):
        response.header(name, value)
    await add_read_version(ctx, req.bucket, response, info.version_id)
    return response
