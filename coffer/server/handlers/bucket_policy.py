"""Bucket policies: PutBucketPolicy, GetBucketPolicy, DeleteBucketPolicy, GetBucketPolicyStatus.

The policy is stored as the bucket configuration document "policy" (its text, returned as
given) and compiled by the bucket state cache (bucket_state.py), which the auth gate reads;
this process forgets its cached state at once so the next request sees the change.
"""

from __future__ import annotations

from coffer.server import acls, ownership, xml
from coffer.server.access.acl import is_public
from coffer.server.access.policy import MAX_POLICY_BYTES, MalformedPolicy, parse_policy
from coffer.server.bucket_state import POLICY_CONFIG
from coffer.server.context import Context
from coffer.server.errors import S3Error
from coffer.server.handlers.common import delete_bucket_config, store_bucket_config
from coffer.server.http import Response
from coffer.server.request import Request
from coffer.server.upload import plan_upload

_TOO_LARGE = "Policy exceeds the maximum allowed document size."


async def PutBucketPolicy(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    await ctx.engine.get_bucket(req.bucket)  # NoSuchBucket before reading a body
    declared = req.declared_length
    if declared is not None and declared > MAX_POLICY_BYTES:
        raise S3Error("MalformedPolicy", _TOO_LARGE)
    plan = plan_upload(req, default_algorithm=None)  # Content-MD5 / x-amz-checksum-* are checked
    try:
        body = await plan.read_all(MAX_POLICY_BYTES)
    except S3Error as exc:
        if exc.code == "MalformedXML":  # read_all's answer to a body over the limit
            raise S3Error("MalformedPolicy", _TOO_LARGE) from None
        raise
    try:
        text = body.decode("utf-8")
        parse_policy(text, bucket=req.bucket)
    except UnicodeDecodeError:
        raise S3Error("MalformedPolicy", "Policies must be valid JSON and the first byte must be '{'") from None
    except MalformedPolicy as exc:
        raise S3Error("MalformedPolicy", exc.reason) from None
    block = (await ctx.bucket_states().get(req.bucket)).public_access_block
    if block is not None and block.block_public_policy and parse_policy(text, bucket=req.bucket).is_public():
        raise S3Error("AccessDenied")  # as S3: BlockPublicPolicy refuses a public policy
    await store_bucket_config(ctx, req.bucket, POLICY_CONFIG, text)
    return Response(204)


async def _stored(ctx: Context, req: Request) -> str:
    assert req.bucket is not None
    text = await ctx.engine.get_bucket_config(req.bucket, POLICY_CONFIG)
    if not text:
        raise S3Error("NoSuchBucketPolicy", BucketName=req.bucket)
    return str(text)


async def GetBucketPolicy(ctx: Context, req: Request) -> Response:
    response = Response(200, body=(await _stored(ctx, req)).encode("utf-8"))
    response.header("content-type", "application/json")
    return response


async def DeleteBucketPolicy(ctx: Context, req: Request) -> Response:
    return await delete_bucket_config(ctx, req, POLICY_CONFIG)


async def GetBucketPolicyStatus(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    # Whether the bucket is public by its policy or by its ACL (as Ceph answers, and what the
    # caller wants to know; S3 answers NoSuchBucketPolicy for a bucket without a policy).
    state = await ctx.bucket_states().get(req.bucket)
    text = await ctx.engine.get_bucket_config(req.bucket, POLICY_CONFIG)
    public = bool(text) and parse_policy(str(text), bucket=req.bucket).is_public()
    acl = acls.effective(state.acl, state.public_access_block) if state.acl is not None else None
    if acl is not None and state.ownership != ownership.ENFORCED and is_public(acl):
        public = True
    inner = xml.elem("IsPublic", "true" if public else "false")
    response = Response(200, body=xml.document("PolicyStatus", inner))
    response.header("content-type", "application/xml")
    return response
