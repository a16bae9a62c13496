"""Object tagging (GetObjectTagging, PutObjectTagging, DeleteObjectTagging) and bucket
tagging (GetBucketTagging, PutBucketTagging, DeleteBucketTagging).

A bucket's tags are its ``tagging`` configuration document (kept like its CORS rules);
a bucket without tags has no document, and GetBucketTagging answers NoSuchTagSet.
"""

from __future__ import annotations

from coffer.server import tagging
from coffer.server.context import Context
from coffer.server.errors import S3Error
from coffer.server.handlers.common import xml_response
from coffer.server.http import Response
from coffer.server.notify import request_event
from coffer.server.request import Request
from coffer.server.upload import plan_upload
from coffer.server.versioning import add_read_version, version_param


async def GetObjectTagging(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    info = await ctx.engine.head_object(req.bucket, req.key, version_id=version_param(req.query))
    response = xml_response(tagging.document(info.tags))
    await add_read_version(ctx, req.bucket, response, info.version_id)
    return response


async def PutObjectTagging(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    version_id = version_param(req.query)
    plan = plan_upload(req, default_algorithm=None)  # Content-MD5 / x-amz-checksum-* are checked
    tags = tagging.parse_document(await plan.read_all(tagging.OBJECT.max_document))
    # One engine update: never a read of the tags followed by a separate write.
    info = await ctx.engine.put_object_tagging(req.bucket, req.key, tags, version_id=version_id)
    if (waiting := request_event(ctx, req, "s3:ObjectTagging:Put", req.key, info)) is not None:
        await waiting
    response = Response(200)
    await add_read_version(ctx, req.bucket, response, info.version_id)
    return response


async def DeleteObjectTagging(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    version_id = version_param(req.query)
    info = await ctx.engine.put_object_tagging(req.bucket, req.key, {}, version_id=version_id)
    if (waiting := request_event(ctx, req, "s3:ObjectTagging:Delete", req.key, info)) is not None:
        await waiting
    response = Response(204)
    await add_read_version(ctx, req.bucket, response, info.version_id)
    return response


async def GetBucketTagging(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    tags = await ctx.engine.get_bucket_config(req.bucket, tagging.BUCKET_CONFIG)
    if not tags:
        raise S3Error("NoSuchTagSet", BucketName=req.bucket)
    return xml_response(tagging.document(tags))


async def PutBucketTagging(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    await ctx.engine.get_bucket(req.bucket)  # NoSuchBucket before reading a body
    plan = plan_upload(req, default_algorithm=None)  # Content-MD5 / x-amz-checksum-* are checked
    tags = tagging.parse_document(await plan.read_all(tagging.BUCKET.max_document), tagging.BUCKET)
    # The new set replaces the old whole; an empty one leaves the bucket without tags, as S3 does.
    await ctx.engine.put_bucket_config(req.bucket, tagging.BUCKET_CONFIG, tags or None)
    return Response(204)


async def DeleteBucketTagging(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    await ctx.engine.put_bucket_config(req.bucket, tagging.BUCKET_CONFIG, None)
    return Response(204)
