"""S3 Object Ownership: the OwnershipControls document, ``x-amz-object-ownership`` on
CreateBucket, and the refusal of ACLs when the bucket owner is enforced.

A bucket gets ownership controls when CreateBucket asks for them (``x-amz-object-ownership``)
or PutBucketOwnershipControls sets them. Without, a bucket behaves as ObjectWriter: ACLs are
accepted and enforced, and an object belongs to the user who wrote it (coffer/server/acls.py).
(S3 gives new buckets BucketOwnerEnforced since April 2023; Coffer keeps the earlier default
because the many clients and tests that send ACL headers, e.g. ``public-read`` uploads,
would be refused. Measured: defaulting to BucketOwnerEnforced cost 37 s3-tests.)
"""

from __future__ import annotations

from collections.abc import Mapping

from coffer.server import xml
from coffer.server.errors import S3Error

CONFIG_NAME = "ownership"  # the bucket configuration document: the ObjectOwnership value
HEADER = "x-amz-object-ownership"
ENFORCED = "BucketOwnerEnforced"
VALUES = (ENFORCED, "BucketOwnerPreferred", "ObjectWriter")
MAX_DOCUMENT = 16 * 1024

GRANT_HEADERS = (
    "x-amz-grant-full-control",
    "x-amz-grant-read",
    "x-amz-grant-read-acp",
    "x-amz-grant-write",
    "x-amz-grant-write-acp",
)
_NO_ACLS = "The bucket does not allow ACLs"
BUCKET_ACL_MESSAGE = "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting"


def parse_configuration(body: bytes) -> str:
    """An OwnershipControls document -> its one rule's ObjectOwnership; else MalformedXML."""
    doc = xml.parse(body)
    if doc.tag != "OwnershipControls" or len(doc) != 1:
        raise S3Error("MalformedXML")
    rule = doc[0]
    if rule.tag != "Rule" or len(rule) != 1 or rule[0].tag != "ObjectOwnership" or len(rule[0]):
        raise S3Error("MalformedXML")
    value = (rule[0].text or "").strip()
    if value not in VALUES:
        raise S3Error("MalformedXML")
    return value


def render(value: str) -> bytes:
    return xml.document("OwnershipControls", "<Rule>" + xml.elem("ObjectOwnership", value) + "</Rule>")


def header_value(headers: Mapping[str, str]) -> str | None:
    """``x-amz-object-ownership`` of CreateBucket (None: absent); InvalidArgument when invalid."""
    value = headers.get(HEADER)
    if value is None:
        return None
    if value.strip() not in VALUES:
        raise S3Error(
            "InvalidArgument", "Invalid x-amz-object-ownership header", ArgumentName=HEADER, ArgumentValue=value[:256]
        )
    return value.strip()


def _sets_acl(headers: Mapping[str, str], allowed_canned: tuple[str, ...]) -> bool:
    acl = headers.get("x-amz-acl")
    if acl is not None and acl.strip() not in allowed_canned:
        return True
    return any(name in headers for name in GRANT_HEADERS)


def for_new_bucket(headers: Mapping[str, str]) -> str | None:
    """The ObjectOwnership CreateBucket asks for (``x-amz-object-ownership``; None: no ownership
    controls, see the module docstring). Under BucketOwnerEnforced only the ``private`` canned
    ACL is accepted (InvalidBucketAclWithObjectOwnership otherwise), as S3 answers."""
    value = header_value(headers)
    if value is None:
        return None
    if value == ENFORCED and _sets_acl(headers, ("private",)):
        raise S3Error("InvalidBucketAclWithObjectOwnership", BUCKET_ACL_MESSAGE)
    return value


def check_object_acl(ownership: str | None, headers: Mapping[str, str]) -> None:
    """PutObject, CopyObject, CreateMultipartUpload, POST: with ACLs disabled only
    ``bucket-owner-full-control`` (or no ACL) is accepted."""
    if ownership == ENFORCED and _sets_acl(headers, ("bucket-owner-full-control",)):
        raise S3Error("AccessControlListNotSupported", _NO_ACLS)
