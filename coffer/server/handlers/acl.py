"""ACLs: GetBucketAcl, PutBucketAcl, GetObjectAcl, PutObjectAcl (with versionId).

A request sets an ACL by a canned ACL (x-amz-acl), by grant headers (x-amz-grant-*) or by an
AccessControlPolicy document, one of the three. Under BucketOwnerEnforced ownership ACLs are
disabled: they read as the owner's FULL_CONTROL and only bucket-owner-full-control may be set.
Stored, enforced and kept as coffer/server/acls.py describes.
"""

from __future__ import annotations

from coffer.server import acls, ownership
from coffer.server.access import acl_wire
from coffer.server.access.acl import Acl, private_acl
from coffer.server.context import Context
from coffer.server.errors import S3Error
from coffer.server.http import Response
from coffer.server.request import Request
from coffer.server.versioning import add_read_version, version_param

MAX_DOCUMENT = 64 * 1024


def _response(ctx: Context, acl: Acl) -> Response:
    response = Response(200, body=acl_wire.render_policy(acl, ctx.users().display_name))
    response.header("content-type", "application/xml")
    return response


def _check_enabled(owned: str | None, req: Request) -> None:
    """BucketOwnerEnforced: ACLs are disabled, only the bucket-owner-full-control canned ACL passes."""
    if owned == ownership.ENFORCED and (req.header("x-amz-acl") or "").strip() != "bucket-owner-full-control":
        raise S3Error("AccessControlListNotSupported")


async def _requested(ctx: Context, req: Request, owner: str, bucket_owner: str | None) -> Acl:
    """The ACL a Put*Acl request sets for a resource ``owner`` owns: from its headers or its body."""
    users = ctx.users()
    body = await req.read_body(MAX_DOCUMENT)
    from_headers = acls.from_headers(req.headers, owner, users, bucket_owner=bucket_owner)
    if from_headers is not None:
        if body.strip():
            raise S3Error("UnexpectedContent")
        return from_headers
    if not body.strip():
        raise S3Error("MissingSecurityHeader", MissingHeaderName="x-amz-acl")
    return acl_wire.parse_policy(
        body, owner, users.display_name(owner), known_user=users.known, resolve_email=users.by_email
    )


async def GetBucketAcl(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    state = await ctx.bucket_states().get(req.bucket)
    return _response(ctx, state.acl or private_acl(state.info.owner))


async def PutBucketAcl(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    state = await ctx.bucket_states().get(req.bucket)
    _check_enabled(state.ownership, req)
    owner = state.info.owner
    acl = await _requested(ctx, req, owner, None)
    acls.check_block(state.public_access_block, acl)
    await ctx.engine.put_bucket_config(req.bucket, acls.CONFIG_NAME, acls.document(acl, owner))
    ctx.bucket_states().forget(req.bucket)
    return Response(200)


async def GetObjectAcl(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    state = await ctx.bucket_states().get(req.bucket)
    info = await ctx.engine.head_object(req.bucket, req.key, version_id=version_param(req.query))
    response = _response(ctx, acls.object_acl(info, state.info.owner))
    await add_read_version(ctx, req.bucket, response, info.version_id)
    return response


async def PutObjectAcl(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    state = await ctx.bucket_states().get(req.bucket)
    _check_enabled(state.ownership, req)
    version_id = version_param(req.query)
    bucket_owner = state.info.owner
    current = await ctx.engine.head_object(req.bucket, req.key, version_id=version_id)
    # An ACL never gives an object away: its owner stays (a document naming another is refused).
    acl = await _requested(ctx, req, acls.object_acl(current, bucket_owner).owner_id, bucket_owner)
    acls.check_block(state.public_access_block, acl)
    info = await ctx.engine.put_object_acl(
        req.bucket, req.key, acls.document(acl, bucket_owner), version_id=current.version_id
    )
    response = Response(200)
    await add_read_version(ctx, req.bucket, response, info.version_id)
    return response
