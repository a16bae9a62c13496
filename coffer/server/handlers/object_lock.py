"""Object Lock operations: Get/PutObjectLockConfiguration, Get/PutObjectRetention,
Get/PutObjectLegalHold. Documents and headers: coffer/server/object_lock.py."""

from __future__ import annotations

import time

from coffer.server import object_lock
from coffer.server.bucket_state import CONFIG_NAME
from coffer.server.context import Context
from coffer.server.errors import S3Error
from coffer.server.handlers.common import xml_response
from coffer.server.http import Response
from coffer.server.object_lock import MAX_DOCUMENT, NOT_ENABLED, VERSIONING_REQUIRED
from coffer.server.request import Request
from coffer.server.upload import plan_upload
from coffer.server.versioning import version_param
from coffer.storage.api import VERSIONING_ENABLED, BucketInfo


async def _locked_bucket(ctx: Context, req: Request) -> BucketInfo:
    """The request's bucket, which must have Object Lock (400 InvalidRequest otherwise, as S3)."""
    assert req.bucket is not None
    bucket = await ctx.engine.get_bucket(req.bucket)
    if not bucket.object_lock:
        raise S3Error("InvalidRequest", NOT_ENABLED)
    return bucket


async def _read_document(req: Request) -> bytes:
    plan = plan_upload(req, default_algorithm=None)  # Content-MD5 / x-amz-checksum-* are checked
    return await plan.read_all(MAX_DOCUMENT)


# ---------------------------------------------------------------------- bucket configuration
async def PutObjectLockConfiguration(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    bucket = await ctx.engine.get_bucket(req.bucket)  # NoSuchBucket before reading a body
    rule = object_lock.parse_configuration(await _read_document(req))
    if not bucket.object_lock:
        # S3 lets a bucket created without Object Lock turn it on once versioning is Enabled.
        if bucket.versioning != VERSIONING_ENABLED:
            raise S3Error("InvalidBucketState", VERSIONING_REQUIRED)
        await ctx.engine.enable_object_lock(req.bucket)
    # The rule replaces the old one; no Rule leaves the bucket without a default retention.
    await ctx.engine.put_bucket_config(req.bucket, CONFIG_NAME, rule.document() if rule is not None else {})
    ctx.bucket_states().forget(req.bucket)
    return Response(200)


async def GetObjectLockConfiguration(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    bucket = await ctx.engine.get_bucket(req.bucket)
    if not bucket.object_lock:
        raise S3Error("ObjectLockConfigurationNotFoundError", BucketName=req.bucket)
    rule = await object_lock.default_retention(ctx.engine, req.bucket)
    return xml_response(object_lock.configuration_document(rule))


# ---------------------------------------------------------------------- retention
async def PutObjectRetention(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    version_id = version_param(req.query)
    await _locked_bucket(ctx, req)
    mode, until = object_lock.parse_retention(await _read_document(req), time.time())
    bypass = object_lock.bypass_governance(req)  # needs s3:BypassGovernanceRetention
    await ctx.engine.put_object_retention(
        req.bucket, req.key, mode, until, version_id=version_id, bypass_governance=bypass
    )
    return Response(200)


async def GetObjectRetention(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    version_id = version_param(req.query)
    await _locked_bucket(ctx, req)
    info = await ctx.engine.head_object(req.bucket, req.key, version_id=version_id)
    if info.lock.mode is None or info.lock.retain_until is None:
        raise S3Error("NoSuchObjectLockConfiguration")
    return xml_response(object_lock.retention_document(info.lock))


# ---------------------------------------------------------------------- legal hold
async def PutObjectLegalHold(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    version_id = version_param(req.query)
    await _locked_bucket(ctx, req)
    on = object_lock.parse_legal_hold(await _read_document(req))
    await ctx.engine.put_object_legal_hold(req.bucket, req.key, on, version_id=version_id)
    return Response(200)


async def GetObjectLegalHold(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    version_id = version_param(req.query)
    await _locked_bucket(ctx, req)
    info = await ctx.engine.head_object(req.bucket, req.key, version_id=version_id)
    if info.lock.legal_hold is None:  # never placed (a removed one answers OFF)
        raise S3Error("NoSuchObjectLockConfiguration", Key=req.key)
    return xml_response(object_lock.legal_hold_document(info.lock.legal_hold))
