"""Bucket lifecycle: PutBucketLifecycleConfiguration, GetBucketLifecycleConfiguration,
DeleteBucketLifecycle.

The configuration is the bucket document ``lifecycle`` (coffer/storage/lifecycle.py; parsed and
rendered by coffer/server/lifecycle.py); the worker (coffer/lifecycle/worker.py) executes it and
object responses carry ``x-amz-expiration`` from it (through the cached bucket state).
"""

from __future__ import annotations

from coffer.server import lifecycle
from coffer.server.context import Context
from coffer.server.errors import S3Error
from coffer.server.handlers.common import delete_bucket_config, store_bucket_config, xml_response
from coffer.server.http import Response
from coffer.server.request import Request
from coffer.server.upload import plan_upload
from coffer.storage.lifecycle import CONFIG_NAME


async def PutBucketLifecycleConfiguration(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    await ctx.engine.get_bucket(req.bucket)  # NoSuchBucket before reading a body
    plan = plan_upload(req, default_algorithm=None)  # Content-MD5 / x-amz-checksum-* are checked
    config = lifecycle.parse_configuration(await plan.read_all(lifecycle.MAX_DOCUMENT))
    await store_bucket_config(ctx, req.bucket, CONFIG_NAME, config.to_doc())
    return Response(200)


async def GetBucketLifecycleConfiguration(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    state = await ctx.bucket_states().get(req.bucket)
    if state.lifecycle is None:
        raise S3Error("NoSuchLifecycleConfiguration", BucketName=req.bucket)
    return xml_response(lifecycle.render(state.lifecycle))


async def DeleteBucketLifecycle(ctx: Context, req: Request) -> Response:
    return await delete_bucket_config(ctx, req, CONFIG_NAME)
