"""Reading ACLs: GetBucketAcl, GetObjectAcl.

Coffer has no ACLs yet (PutBucketAcl and PutObjectAcl answer NotImplemented), so
every bucket and object carries S3's default, the ``private`` canned ACL: the
bucket owner with FULL_CONTROL. Objects belong to the bucket owner, as with S3's
default BucketOwnerEnforced object ownership. s3cmd ``info`` and other tools
read these to show them.
"""

from __future__ import annotations

from coffer.server import xml
from coffer.server.context import Context
from coffer.server.handlers.common import display_name, owner_xml
from coffer.server.http import Response
from coffer.server.request import Request

_XSI = 'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"'


def _private_acl(owner_id: str, display_name: str) -> Response:
    grantee = f"<Grantee {_XSI}>{xml.elem('ID', owner_id)}{xml.elem('DisplayName', display_name)}</Grantee>"
    inner = (
        f"{owner_xml(owner_id, display_name)}"
        f"<AccessControlList><Grant>{grantee}<Permission>FULL_CONTROL</Permission></Grant></AccessControlList>"
    )
    response = Response(200, body=xml.document("AccessControlPolicy", inner))
    response.header("content-type", "application/xml")
    return response


async def GetBucketAcl(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    bucket = await ctx.engine.get_bucket(req.bucket)
    return _private_acl(bucket.owner, display_name(ctx, req, bucket.owner))


async def GetObjectAcl(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None and req.key is not None
    bucket = await ctx.engine.get_bucket(req.bucket)
    await ctx.engine.head_object(req.bucket, req.key)  # NoSuchKey for a missing object
    return _private_acl(bucket.owner, display_name(ctx, req, bucket.owner))
