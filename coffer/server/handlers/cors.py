"""Bucket CORS configuration (PutBucketCors, GetBucketCors, DeleteBucketCors) and
the browser preflight (PreflightRequest: OPTIONS on a bucket or object)."""

from __future__ import annotations

from coffer.server import cors
from coffer.server.context import Context
from coffer.server.errors import S3Error
from coffer.server.http import Response
from coffer.server.request import Request
from coffer.server.upload import plan_upload


async def PutBucketCors(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    await ctx.engine.get_bucket(req.bucket)  # NoSuchBucket before reading a body
    plan = plan_upload(req, default_algorithm=None)  # Content-MD5 / x-amz-checksum-* are checked
    rules = cors.parse_configuration(await plan.read_all(cors.MAX_DOCUMENT))
    await ctx.engine.put_bucket_config(req.bucket, cors.CONFIG_NAME, [rule.to_doc() for rule in rules])
    return Response(200)


async def GetBucketCors(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    doc = await ctx.engine.get_bucket_config(req.bucket, cors.CONFIG_NAME)
    if not doc:
        raise S3Error("NoSuchCORSConfiguration", BucketName=req.bucket)
    response = Response(200, body=cors.render_configuration([cors.CorsRule.from_doc(d) for d in doc]))
    response.header("content-type", "application/xml")
    return response


async def DeleteBucketCors(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    await ctx.engine.put_bucket_config(req.bucket, cors.CONFIG_NAME, None)
    return Response(204)


async def PreflightRequest(ctx: Context, req: Request) -> Response:
    return await cors.Cors(ctx.engine, ctx.settings.cors_allow_all).preflight(req)
