"""Reads of bucket configuration that nobody can set yet.

Until its Put operation exists (each answers NotImplemented), every bucket is in
S3's default state for these, and the read answers exactly what S3 answers for a
bucket that never had the configuration: an empty document, or the specific 404.
Clients read them on their way to something else: s3cmd ``info``/``ws-info``/``accesslog`` and tools that
describe a whole bucket (the Terraform AWS provider, MinIO's ``mc stat``) read the
rest, and a 501 fails the whole command.

Whoever implements one of the writes replaces its read here (a test pins that the
writes are still refused).
"""

from __future__ import annotations

from coffer.server import xml
from coffer.server.context import Context
from coffer.server.errors import S3Error
from coffer.server.http import Response
from coffer.server.request import Request


async def _existing(ctx: Context, req: Request) -> str:
    assert req.bucket is not None
    await ctx.engine.get_bucket(req.bucket)  # NoSuchBucket first, as S3 does
    return req.bucket


async def _empty(ctx: Context, req: Request, root: str, inner: str = "") -> Response:
    await _existing(ctx, req)
    response = Response(200, body=xml.document(root, inner))
    response.header("content-type", "application/xml")
    return response


async def _absent(ctx: Context, req: Request, code: str) -> Response:
    bucket = await _existing(ctx, req)
    raise S3Error(code, BucketName=bucket)


async def GetBucketRequestPayment(ctx: Context, req: Request) -> Response:
    return await _empty(ctx, req, "RequestPaymentConfiguration", xml.elem("Payer", "BucketOwner"))


async def GetBucketWebsite(ctx: Context, req: Request) -> Response:
    return await _absent(ctx, req, "NoSuchWebsiteConfiguration")


async def GetBucketLogging(ctx: Context, req: Request) -> Response:
    # Logging disabled: an empty BucketLoggingStatus.
    return await _empty(ctx, req, "BucketLoggingStatus")


async def GetBucketReplication(ctx: Context, req: Request) -> Response:
    return await _absent(ctx, req, "ReplicationConfigurationNotFoundError")


async def GetBucketAccelerateConfiguration(ctx: Context, req: Request) -> Response:
    # Never configured: no Status element.
    return await _empty(ctx, req, "AccelerateConfiguration")
