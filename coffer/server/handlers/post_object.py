"""PostObject: browser form uploads (multipart/form-data) with a signed policy document."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from urllib.parse import quote

from coffer import checksums
from coffer.server import acls, encryption, object_lock, xml
from coffer.server.auth import post_policy
from coffer.server.auth.principal import Principal
from coffer.server.context import Context
from coffer.server.errors import S3Error
from coffer.server.formdata import FormReader, boundary_of
from coffer.server.handlers.common import acl_for_write, encryption_for_write
from coffer.server.http import Response, quote_etag
from coffer.server.notify import commit_hook, event_after_write
from coffer.server.object_write import declared_checksum, object_write
from coffer.server.request import Request, validate_new_key
from coffer.server.versioning import add_written_version
from coffer.storage.api import PutDigests, Verifier

_NOT_MULTIPART = "Bucket POST must be of the enclosure-type multipart/form-data"


async def PostObject(ctx: Context, req: Request) -> Response:
    assert req.bucket is not None
    boundary = boundary_of(req.header("content-type"))
    if boundary is None:
        raise S3Error("PreconditionFailed", _NOT_MULTIPART, Condition=_NOT_MULTIPART)
    reader = FormReader(req.body(), boundary)
    fields, file_info = await reader.read_fields()
    if file_info is None:
        raise S3Error("IncorrectNumberOfFilesInPostRequest")
    # Policies are checked against the bucket in the URL, whatever a 'bucket' field claims.
    fields["bucket"] = req.bucket
    if "key" not in fields:
        raise S3Error(
            "InvalidArgument",
            "Bucket POST must contain a field named 'key'.  If it is specified, please check the order of the fields.",
            ArgumentName="key",
        )
    fields["key"] = fields["key"].replace("${filename}", file_info.filename)
    key = fields["key"]
    if not key:
        raise S3Error("InvalidArgument", "User key must have a length greater than 0.", ArgumentName="key")
    validate_new_key(key, ctx.settings.dot_segment_keys)

    principal = _authenticate(ctx, req, fields)
    policy = post_policy.parse_policy(fields["policy"]) if fields.get("policy") else None
    if policy is not None:
        post_policy.check_policy(policy, fields, time.time())
    state = await ctx.bucket_states().get(req.bucket)  # NoSuchBucket first
    if ctx.auth is not None:
        # s3:PutObject on the key by the bucket policy and the user's identity policy.
        ctx.auth.authorize_post(req, principal, state, key)

    write = object_write(fields, form=True)
    if "content-type" not in write.headers and file_info.content_type:
        write.headers["content-type"] = file_info.content_type
    # The form's acl field is PutObject's x-amz-acl; grant fields are named as the headers.
    acl_fields = {name: value for name, value in fields.items() if name in acls.ACL_HEADERS}
    if "acl" in fields:
        acl_fields["x-amz-acl"] = fields["acl"]
    _, acl = await acl_for_write(ctx, req, acl_fields, principal.id)
    declared = declared_checksum(fields)
    lock = await object_lock.lock_for_write(ctx.bucket_states(), req.bucket, fields)  # x-amz-object-lock-* fields
    algorithm, expected = (declared[1], declared[2]) if declared is not None else (checksums.DEFAULT_ALGORITHM, None)
    low, high = policy.length_range if policy is not None and policy.length_range else (0, None)
    limit = ctx.settings.max_object_size if high is None else min(high, ctx.settings.max_object_size)

    def verify(digests: PutDigests) -> None:
        if digests.size < low:
            raise S3Error("EntityTooSmall", ProposedSize=str(digests.size), MinSizeAllowed=str(low))
        if expected is not None and digests.checksums.get(algorithm) != expected:
            raise S3Error("BadDigest", f"The {algorithm} you specified did not match the calculated checksum.")

    body = _capped(reader.file_data(), limit)
    algorithms: tuple[str, ...] = (algorithm,)
    checked: Verifier | None = verify
    encoding = None
    encrypt = await encryption_for_write(ctx, req, fields)  # x-amz-server-side-encryption* fields
    if encrypt.asked:
        doc, data_key = encryption.new_document(ctx.keys, encrypt, req.bucket, key)
        body, encoding = encryption.encrypting(
            body, doc, data_key, algorithms=algorithms, want_sha256=False, verify=verify
        )
        algorithms, checked = (), None
    event = commit_hook(ctx, req, "s3:ObjectCreated:Post", key)
    info = await ctx.engine.put_object(
        req.bucket,
        key,
        body,
        headers=write.headers,
        checksum_algorithms=algorithms,
        verify=checked,
        storage_class=write.storage_class or "STANDARD",
        tags=write.tags or {},
        lock=lock.lock,
        acl=acl,
        encoding=encoding,
        committed=event,
    )
    if (waiting := event_after_write(event, info)) is not None:
        await waiting
    response = _success(req, fields, key, info.etag)
    for name, value in encryption.response_headers(info.encoding):
        response.header(name, value)
    add_written_version(response, info.version_id)  # as PutObject: only a real version
    return response


def _authenticate(ctx: Context, req: Request, fields: dict[str, str]) -> Principal:
    """The user a form acts for: the request's signer, or the form's own signature over its policy."""
    gate = ctx.auth
    if gate is None or not gate.enabled or not req.principal.anonymous:
        return req.principal
    signature = post_policy.form_signature(fields)
    if signature is None:
        return req.principal  # anonymous: a bucket policy or ACL must grant it (authorize_post)
    policy = fields.get("policy")
    if not policy:
        raise S3Error("InvalidArgument", "Bucket POST must contain a field named 'policy'.", ArgumentName="policy")
    credential = gate.lookup(signature.access_key)
    post_policy.verify_form_signature(signature, credential.secret_key, policy, fields)
    return credential.principal


async def _capped(body: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """Stop an oversized file as soon as it passes the policy's (or server's) maximum."""
    total = 0
    async for chunk in body:
        total += len(chunk)
        if total > limit:
            raise S3Error("EntityTooLarge", ProposedSize=str(total), MaxSizeAllowed=str(limit))
        yield chunk


def _success(req: Request, fields: dict[str, str], key: str, etag: str) -> Response:
    assert req.bucket is not None
    host = req.header("host") or "localhost"
    location = f"http://{host}/{quote(req.bucket, safe='')}/{quote(key, safe='/')}"
    redirect = fields.get("success_action_redirect") or fields.get("redirect")
    if redirect and redirect.startswith(("http://", "https://")):
        sep = "&" if "?" in redirect else "?"
        target = (
            f"{redirect}{sep}bucket={quote(req.bucket, safe='')}&key={quote(key, safe='')}"
            f"&etag={quote(quote_etag(etag), safe='')}"
        )
        response = Response(303)
        response.header("location", target)
        response.header("etag", quote_etag(etag))
        return response
    status = fields.get("success_action_status", "")
    if status == "201":
        inner = (
            xml.elem("Location", location)
            + xml.elem("Bucket", req.bucket)
            + xml.elem("Key", key)
            + xml.elem("ETag", quote_etag(etag))
        )
        response = Response(201, body=xml.document("PostResponse", inner, namespace=False))
        response.header("content-type", "application/xml")
    else:
        response = Response(200 if status == "200" else 204)
    response.header("etag", quote_etag(etag))
    response.header("location", location)
    return response
