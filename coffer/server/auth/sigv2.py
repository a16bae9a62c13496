"""AWS Signature Version 2 (``Authorization: AWS AK:sig`` and ``?AWSAccessKeyId=&Signature=&Expires=``).

StringToSign::

    VERB \\n Content-MD5 \\n Content-Type \\n Date (or Expires) \\n
    x-amz-name:value \\n ... /bucket/key?sub-resources

The sub-resources that count are those botocore (the reference V2 client
still in use) signs; values are URL-decoded, names sorted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import unquote

from coffer.server.auth.sigv4 import mismatch
from coffer.server.errors import S3Error

SUBRESOURCES = frozenset(
    {
        "accelerate",
        "acl",
        "analytics",
        "cors",
        "defaultObjectAcl",
        "delete",
        "inventory",
        "lifecycle",
        "location",
        "logging",
        "metrics",
        "notification",
        "object-lock",
        "partNumber",
        "policy",
        "replication",
        "requestPayment",
        "response-cache-control",
        "response-content-disposition",
        "response-content-encoding",
        "response-content-language",
        "response-content-type",
        "response-expires",
        "restore",
        "select",
        "select-type",
        "storageClass",
        "tagging",
        "torrent",
        "uploadId",
        "uploads",
        "versionId",
        "versioning",
        "versions",
        "website",
    }
)


def parse_authorization(value: str) -> tuple[str, str]:
    """``AWS AKID:signature`` -> (access key, signature)."""
    _, _, rest = value.strip().partition(" ")
    access_key, sep, signature = rest.strip().rpartition(":")
    if not sep or not access_key or not signature:
        raise S3Error(
            "InvalidArgument",
            "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature",
            ArgumentName="Authorization",
            ArgumentValue=value[:256],
        )
    return access_key, signature


def canonical_resources(raw_path: bytes, raw_query: bytes, vhost_bucket: str | None) -> list[str]:
    """The resource as AWS defines it, then with the bucket's trailing slash toggled: clients
    sign a bucket either as ``/bucket`` or ``/bucket/`` (botocore) whatever the URL holds."""
    first = canonical_resource(raw_path, raw_query, vhost_bucket)
    path, sep, query = first.partition("?")
    if path.count("/") == 1 and path != "/":
        return [first, f"{path}/{sep}{query}"]
    if path.count("/") == 2 and path.endswith("/"):
        return [first, f"{path[:-1]}{sep}{query}"]
    return [first]


def canonical_resource(raw_path: bytes, raw_query: bytes, vhost_bucket: str | None) -> str:
    path = raw_path.decode("latin-1") or "/"
    if vhost_bucket is not None:
        path = "/" + vhost_bucket + path
    subs: list[tuple[str, str | None]] = []
    for item in raw_query.split(b"&") if raw_query else ():
        name, sep, value = item.decode("latin-1").partition("=")
        if name in SUBRESOURCES:
            subs.append((name, unquote(value) if sep else None))
    if not subs:
        return path
    subs.sort(key=lambda pair: pair[0])
    return path + "?" + "&".join(name if value is None else f"{name}={value}" for name, value in subs)


def header_readings(headers: dict[str, str]) -> list[dict[str, str]]:
    """The headers as received (latin-1 text), plus, when an x-amz-* value is not ASCII, with
    those values' bytes read as UTF-8 (what clients sending UTF-8 header bytes signed)."""
    odd = {n: v for n, v in headers.items() if n.startswith("x-amz-") and not v.isascii()}
    if not odd:
        return [headers]
    utf8 = {n: v.encode("latin-1", "replace").decode("utf-8", "surrogateescape") for n, v in odd.items()}
    return [headers, {**headers, **utf8}]


def string_to_sign(
    method: str, headers: dict[str, str], date_line: str, resource: str, extra_amz: dict[str, str] | None = None
) -> str:
    amz = {name: value.strip() for name, value in headers.items() if name.startswith("x-amz-")}
    for name, value in (extra_amz or {}).items():
        amz.setdefault(name, value.strip())
    lines = [
        method,
        headers.get("content-md5", "").strip(),
        headers.get("content-type", "").strip(),
        date_line,
        *(f"{name}:{amz[name]}" for name in sorted(amz)),
        resource,
    ]
    return "\n".join(lines)


def sign(secret: str, text: str) -> str:
    digest = hmac.new(secret.encode("utf-8"), text.encode("utf-8", "surrogateescape"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def check(access_key: str, secret: str, provided: str, candidates: list[str]) -> None:
    """Accept if the signature matches one of the candidate strings to sign (constant-time compare)."""
    for sts in candidates:
        if hmac.compare_digest(sign(secret, sts).encode("ascii"), provided.encode("utf-8", "replace")):
            return
    raise mismatch(access_key, provided, candidates[0])
