"""Bucket versioning: GetBucketVersioning, PutBucketVersioning."""

from __future__ import annotations

from coffer.server import xml
from coffer.server.context import Context
from coffer.server.handlers.common import xml_response
from coffer.server.http import Response
from coffer.server.request import Request
from coffer.server.upload import plan_upload
from coffer.server.versioning import check_mfa_header, parse_configuration


async def GetBucketVersioning(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    info = await ctx.engine.get_bucket(req.bucket)
    # Never configured: no Status element (neither Enabled nor Suspended), as S3 answers.
    inner = xml.elem("Status", info.versioning) if info.versioning is not None else ""
    return xml_response(xml.document("VersioningConfiguration", inner))


async def PutBucketVersioning(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    await ctx.engine.get_bucket(req.bucket)  # NoSuchBucket before reading a body
    check_mfa_header(req.header("x-amz-mfa"))
    plan = plan_upload(req, default_algorithm=None)  # Content-MD5 / x-amz-checksum-* are checked
    status = parse_configuration(await plan.read_all(xml.MAX_XML_BODY))
    await ctx.engine.put_bucket_versioning(req.bucket, status)
    ctx.bucket_states().forget(req.bucket)
    return Response(200)
