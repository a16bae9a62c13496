"""Bucket default encryption: PutBucketEncryption, GetBucketEncryption, DeleteBucketEncryption.

The configuration is the bucket document ``encryption`` (coffer/server/sse.py parses and
renders it); writes that ask for no encryption get it (coffer/server/handlers/object.py).
A KMS key it names must exist and be enabled when it is set, as S3 checks.
"""

from __future__ import annotations

from coffer.encryption.kms import KeyServiceError
from coffer.server import sse
from coffer.server.bucket_state import ENCRYPTION_CONFIG
from coffer.server.context import Context
from coffer.server.encryption import kms_error
from coffer.server.errors import S3Error
from coffer.server.handlers.common import delete_bucket_config, store_bucket_config, xml_response
from coffer.server.http import Response
from coffer.server.object_write import refuse_encryption
from coffer.server.request import Request
from coffer.server.upload import plan_upload


async def PutBucketEncryption(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    await ctx.engine.get_bucket(req.bucket)  # NoSuchBucket before reading a body
    plan = plan_upload(req, default_algorithm=None)  # Content-MD5 / x-amz-checksum-* are checked
    config = sse.parse_configuration(await plan.read_all(sse.MAX_DOCUMENT))
    if config.algorithm == sse.KMS_DSSE:
        raise refuse_encryption(f"SSEAlgorithm {sse.KMS_DSSE}")
    if config.kms_key_id is not None:
        try:
            info = ctx.keys().describe_key(config.kms_key_id)
        except KeyServiceError as exc:
            raise kms_error(exc) from None
        if not info.enabled:
            raise S3Error("KMS.DisabledException", f"{info.arn} is disabled.", status=400)
    await store_bucket_config(ctx, req.bucket, ENCRYPTION_CONFIG, config.to_doc())
    return Response(200)


async def GetBucketEncryption(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    state = await ctx.bucket_states().get(req.bucket)
    if state.encryption is None:
        raise S3Error("ServerSideEncryptionConfigurationNotFoundError", BucketName=req.bucket)
    return xml_response(sse.render(state.encryption))


async def DeleteBucketEncryption(ctx: Context, req: Request) -> Response:
    return await delete_bucket_config(ctx, req, ENCRYPTION_CONFIG)
