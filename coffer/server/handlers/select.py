"""SelectObjectContent: an S3 Select query over one object, answered as an AWS event stream.

The request document and the SQL are checked before anything is sent (errors: HTTP 400 with
AWS's code, and line/column for SQL); the object is read as plaintext through the same path as
a copy source (SSE-S3/KMS/C decrypted), and errors found while scanning become error events.
The query itself is coffer/select's (docs/select.md).
"""

from __future__ import annotations

import os

from coffer.select.errors import SelectError
from coffer.select.query import prepare
from coffer.select.request import parse_request
from coffer.select.stream import select_events
from coffer.server import xml
from coffer.server.context import Context
from coffer.server.errors import S3Error
from coffer.server.handlers.common import customer_key
from coffer.server.handlers.object import plaintext_of
from coffer.server.http import Response
from coffer.server.request import Request
from coffer.server.upload import plan_upload
from coffer.server.versioning import version_param
from coffer.storage.api import ObjectInfo

MAX_REQUEST_DOCUMENT = 512 * 1024  # a 256 KB expression plus the serialization settings


def _s3_error(exc: SelectError) -> S3Error:
    return S3Error(exc.code, exc.message, extra=exc.details)


def _spool_dir(ctx: Context) -> str | None:
    """The disk engine's tmp area (Parquet objects are spooled there); None: the system's."""
    path = os.path.join(ctx.settings.data_dir, "tmp")
    return path if os.path.isdir(path) else None


async def SelectObjectContent(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    if req.query.get("select-type") != "2":
        raise S3Error("InvalidArgument", "select-type must be 2.", ArgumentName="select-type")
    version_id = version_param(req.query)
    customer = customer_key(ctx, req)
    plan = plan_upload(req, default_algorithm=None)
    document = xml.parse(await plan.read_all(MAX_REQUEST_DOCUMENT))
    try:
        request = parse_request(document)
        prepared = prepare(request, _spool_dir(ctx))
    except SelectError as exc:
        raise _s3_error(exc) from None

    def span(info: ObjectInfo) -> tuple[int, int]:
        return prepared.byte_span(info.size)

    _, body = await plaintext_of(ctx, req.bucket, req.key, version_id, customer, span)
    response = Response(200, [(b"content-type", b"application/octet-stream")])
    response.body = select_events(body, prepared.work, progress=request.progress)
    return response
