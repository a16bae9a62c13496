"""Block Public Access (Put/Get/DeletePublicAccessBlock) and Object Ownership
(Put/Get/DeleteBucketOwnershipControls) of a bucket.

Both are bucket configuration documents ("public_access_block", "ownership") read through
the bucket state cache (bucket_state.py); this process forgets its cached state at once.
"""

from __future__ import annotations

from coffer.server import ownership, public_access
from coffer.server.context import Context
from coffer.server.errors import S3Error
from coffer.server.http import Response
from coffer.server.request import Request
from coffer.server.upload import plan_upload


def _xml(body: bytes) -> Response:
    response = Response(200, body=body)
    response.header("content-type", "application/xml")
    return response


async def _body(ctx: Context, req: Request, limit: int) -> bytes:
    assert req.bucket is not None
    await ctx.engine.get_bucket(req.bucket)  # NoSuchBucket before reading a body
    plan = plan_upload(req, default_algorithm=None)  # Content-MD5 / x-amz-checksum-* are checked
    return await plan.read_all(limit)


async def _set(ctx: Context, req: Request, name: str, doc: object) -> None:
    assert req.bucket is not None
    await ctx.engine.put_bucket_config(req.bucket, name, doc)
    ctx.bucket_states().forget(req.bucket)


async def PutPublicAccessBlock(ctx: Context, req: Request) -> Response:
    block = public_access.parse_configuration(await _body(ctx, req, public_access.MAX_DOCUMENT))
    await _set(ctx, req, public_access.CONFIG_NAME, block.to_doc())
    return Response(200)


async def GetPublicAccessBlock(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    await ctx.engine.get_bucket(req.bucket)
    block = public_access.PublicAccessBlock.from_doc(
        await ctx.engine.get_bucket_config(req.bucket, public_access.CONFIG_NAME)
    )
    if block is None:  # the server-wide default is not the bucket's configuration (like an account's)
        raise S3Error("NoSuchPublicAccessBlockConfiguration", BucketName=req.bucket)
    return _xml(public_access.render(block))


async def DeletePublicAccessBlock(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    await ctx.engine.get_bucket(req.bucket)
    await _set(ctx, req, public_access.CONFIG_NAME, None)
    return Response(204)


async def PutBucketOwnershipControls(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    value = ownership.parse_configuration(await _body(ctx, req, ownership.MAX_DOCUMENT))
    if value == ownership.ENFORCED:
        # Disabling ACLs while the bucket's ACL grants others something would silently revoke it.
        state = await ctx.bucket_states().get(req.bucket)
        owner = state.info.owner
        if state.acl is not None and any(g.grantee.id != owner for g in state.acl.grants):
            raise S3Error("InvalidBucketAclWithObjectOwnership", ownership.BUCKET_ACL_MESSAGE)
    await _set(ctx, req, ownership.CONFIG_NAME, value)
    return Response(200)


async def GetBucketOwnershipControls(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    await ctx.engine.get_bucket(req.bucket)
    value = await ctx.engine.get_bucket_config(req.bucket, ownership.CONFIG_NAME)
    if not isinstance(value, str):
        raise S3Error("OwnershipControlsNotFoundError", BucketName=req.bucket)
    return _xml(ownership.render(value))


async def DeleteBucketOwnershipControls(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    await ctx.engine.get_bucket(req.bucket)
    await _set(ctx, req, ownership.CONFIG_NAME, None)
    return Response(204)
