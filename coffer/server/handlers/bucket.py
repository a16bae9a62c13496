"""Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation."""

from __future__ import annotations

import base64
import binascii

from coffer.server import acls, object_lock, ownership, xml
from coffer.server.access.acl import Acl, Grant, Grantee, private_acl
from coffer.server.context import Context
from coffer.server.errors import S3Error
from coffer.server.handlers.common import check_bucket_name, owner_of, parse_max, xml_response
from coffer.server.http import Response
from coffer.server.request import Request
from coffer.storage.errors import BucketAlreadyOwnedByYou


async def ListBuckets(ctx: Context, req: Request) -> Response:
    buckets = await ctx.engine.list_buckets(req.principal.id)
    prefix = req.query.get("prefix", "")
    if prefix:
        buckets = [b for b in buckets if b.name.startswith(prefix)]
    token = req.query.get("continuation-token")
    if token:
        try:
            after = base64.urlsafe_b64decode(token.encode()).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise S3Error("InvalidArgument", "The continuation token provided is incorrect") from None
        buckets = [b for b in buckets if b.name > after]
    limit = parse_max(req.query.get("max-buckets"), "max-buckets", 10000, 10000)
    page, rest = buckets[:limit], buckets[limit:]
    items = "".join(
        f"<Bucket>{xml.elem('Name', b.name)}{xml.elem('CreationDate', xml.iso8601(b.created))}"
        f"{xml.elem('BucketRegion', b.region)}</Bucket>"
        for b in page
    )
    inner = f"{owner_of(req.principal)}<Buckets>{items}</Buckets>"
    if rest and page:
        inner += xml.elem("ContinuationToken", base64.urlsafe_b64encode(page[-1].name.encode()).decode())
    if prefix:
        inner += xml.elem("Prefix", prefix)
    return xml_response(xml.document("ListAllMyBucketsResult", inner))


async def CreateBucket(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    check_bucket_name(req.bucket)
    owned = ownership.for_new_bucket(req.headers)
    acl = acls.from_headers(req.headers, req.principal.id, ctx.users())  # validated before anything exists
    if acl is not None:
        acls.check_block(ctx.bucket_states().default_block, acl)
    region = ctx.settings.region
    body = await req.read_body(64 * 1024)
    if body.strip():
        doc = xml.parse(body)
        if doc.tag != "CreateBucketConfiguration":
            raise S3Error("MalformedXML")
        constraint = xml.child_text(doc, "LocationConstraint")
        if constraint:
            region = constraint
    lock = (req.header(object_lock.BUCKET_LOCK_HEADER) or "").strip().lower() == "true"
    try:
        await ctx.engine.create_bucket(req.bucket, req.principal.id, region, object_lock=lock)
    except BucketAlreadyOwnedByYou:
        # us-east-1 keeps S3's legacy behaviour: re-creating your own bucket succeeds
        # (and changes nothing); every other region answers 409. A re-create asking for another
        # ACL than the bucket has is refused as RGW does (S3 would silently reset the ACL).
        if region != "us-east-1":
            raise
        existing = (await ctx.bucket_states().get(req.bucket)).acl
        wanted = acl if acl is not None else private_acl(req.principal.id)
        if existing is not None and set(_plain(existing)) != set(_plain(wanted)):
            raise S3Error("BucketAlreadyExists", BucketName=req.bucket) from None
    else:
        if owned is not None:  # ownership controls only when asked for (coffer/server/ownership.py)
            await ctx.engine.put_bucket_config(req.bucket, ownership.CONFIG_NAME, owned)
        document = acls.document(acl, req.principal.id) if acl is not None else None
        if document is not None:
            await ctx.engine.put_bucket_config(req.bucket, acls.CONFIG_NAME, document)
        ctx.bucket_states().forget(req.bucket)
    response = Response(200)
    response.header("location", f"/{req.bucket}")
    return response


async def HeadBucket(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    bucket = await ctx.engine.get_bucket(req.bucket)
    response = Response(200)
    response.header("x-amz-bucket-region", bucket.region)
    response.header("x-amz-access-point-alias", "false")
    return response


async def DeleteBucket(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    await ctx.engine.delete_bucket(req.bucket)
    ctx.bucket_states().forget(req.bucket)
    return Response(204)


async def GetBucketLocation(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    bucket = await ctx.engine.get_bucket(req.bucket)
    # S3 reports us-east-1 as an empty constraint.
    region = "" if bucket.region == "us-east-1" else bucket.region
    return xml_response(xml.document("LocationConstraint", xml.esc(region)))


def _plain(acl: Acl) -> tuple[Grant, ...]:
    """The grants without display names (which a stored ACL may or may not carry)."""
    return tuple(
        Grant(Grantee(g.grantee.kind, g.grantee.id, None, g.grantee.uri, g.grantee.email), g.permission)
        for g in acl.grants
    )
