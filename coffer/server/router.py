"""Every request is classified once into a route: the S3 operation named as in the AWS API
reference, with what authorization needs to know about it.

Read it like a table: requests are looked up by (method, target), where the target is the
service, a bucket or an object; within one entry the first sub-resource present in the
query wins and the last line (sub-resource ``None``) is the default. ``x-amz-copy-source``
turns PutObject into CopyObject and UploadPart into UploadPartCopy.

A route's name keys everything downstream: the handler of that name in
``coffer/server/handlers/``, the metrics label, the access-log field. Its IAM action
(``s3:GetObject``) and resource kind are what the auth gate and the bucket and identity
policies decide on (coffer/server/access/decide.py). Operations without a handler answer 501.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from coffer.server.request import Request

# What the operation acts on (its ARN is the bucket's or the object's; the service has none).
Resource = Literal["service", "bucket", "object"]
# read: reads data or configuration; write: changes objects; owner: changes the bucket itself
# (its configuration, its existence), which S3 reserves to the bucket owner by default.
Access = Literal["read", "write", "owner"]
# Who authorizes the request: the gate (signature, then ownership/policy), the handler (a POST
# form carries its own signed policy), or nobody (a CORS preflight never carries credentials).
Authorizer = Literal["gate", "handler", "none"]


@dataclass(frozen=True, slots=True, eq=False)  # one object per route: compared and hashed by identity
class Route:
    name: str
    action: str  # IAM action; "" only for routes IAM never sees (authorizer "none")
    resource: Resource
    access: Access
    authorizer: Authorizer = "gate"
    reads_copy_source: bool = False  # also reads the object x-amz-copy-source names


_r = Route  # short, for the table


# The routes that need naming outside the table.
CREATE_BUCKET = _r("CreateBucket", "s3:CreateBucket", "bucket", "owner")
PREFLIGHT = _r("PreflightRequest", "", "bucket", "read", authorizer="none")
# GET /_coffer/events?bucket=...: the live event stream (coffer/server/event_stream.py), authorized as
# reading the bucket's notification configuration.
EVENT_STREAM = _r("CofferEventStream", "s3:GetBucketNotification", "bucket", "read")
PUT_OBJECT = _r("PutObject", "s3:PutObject", "object", "write")
UPLOAD_PART = _r("UploadPart", "s3:PutObject", "object", "write")
_COPY_VARIANTS = {
    PUT_OBJECT: _r("CopyObject", "s3:PutObject", "object", "write", reads_copy_source=True),
    UPLOAD_PART: _r("UploadPartCopy", "s3:PutObject", "object", "write", reads_copy_source=True),
}

# (method, target) -> [(sub-resource query key or None, route)]
_TABLE: dict[tuple[str, Resource], list[tuple[str | None, Route]]] = {
    ("GET", "service"): [
        (None, _r("ListBuckets", "s3:ListAllMyBuckets", "service", "read")),
    ],
    ("GET", "bucket"): [
        ("location", _r("GetBucketLocation", "s3:GetBucketLocation", "bucket", "read")),
        ("versioning", _r("GetBucketVersioning", "s3:GetBucketVersioning", "bucket", "read")),
        ("versions", _r("ListObjectVersions", "s3:ListBucketVersions", "bucket", "read")),
        ("uploads", _r("ListMultipartUploads", "s3:ListBucketMultipartUploads", "bucket", "read")),
        ("acl", _r("GetBucketAcl", "s3:GetBucketAcl", "bucket", "read")),
        ("policy", _r("GetBucketPolicy", "s3:GetBucketPolicy", "bucket", "read")),
        ("policyStatus", _r("GetBucketPolicyStatus", "s3:GetBucketPolicyStatus", "bucket", "read")),
        ("cors", _r("GetBucketCors", "s3:GetBucketCORS", "bucket", "read")),
        ("lifecycle", _r("GetBucketLifecycleConfiguration", "s3:GetLifecycleConfiguration", "bucket", "read")),
        ("tagging", _r("GetBucketTagging", "s3:GetBucketTagging", "bucket", "read")),
        ("encryption", _r("GetBucketEncryption", "s3:GetEncryptionConfiguration", "bucket", "read")),
        ("object-lock", _r("GetObjectLockConfiguration", "s3:GetBucketObjectLockConfiguration", "bucket", "read")),
        ("notification", _r("GetBucketNotificationConfiguration", "s3:GetBucketNotification", "bucket", "read")),
        ("logging", _r("GetBucketLogging", "s3:GetBucketLogging", "bucket", "read")),
        ("website", _r("GetBucketWebsite", "s3:GetBucketWebsite", "bucket", "read")),
        ("replication", _r("GetBucketReplication", "s3:GetReplicationConfiguration", "bucket", "read")),
        ("accelerate", _r("GetBucketAccelerateConfiguration", "s3:GetAccelerateConfiguration", "bucket", "read")),
        ("requestPayment", _r("GetBucketRequestPayment", "s3:GetBucketRequestPayment", "bucket", "read")),
        ("ownershipControls", _r("GetBucketOwnershipControls", "s3:GetBucketOwnershipControls", "bucket", "read")),
        ("publicAccessBlock", _r("GetPublicAccessBlock", "s3:GetBucketPublicAccessBlock", "bucket", "read")),
        ("analytics", _r("GetBucketAnalyticsConfiguration", "s3:GetAnalyticsConfiguration", "bucket", "read")),
        ("metrics", _r("GetBucketMetricsConfiguration", "s3:GetMetricsConfiguration", "bucket", "read")),
        ("inventory", _r("GetBucketInventoryConfiguration", "s3:GetInventoryConfiguration", "bucket", "read")),
        (
            "intelligent-tiering",
            _r(
                "GetBucketIntelligentTieringConfiguration",
                "s3:GetIntelligentTieringConfiguration",
                "bucket",
                "read",
            ),
        ),
        ("list-type", _r("ListObjectsV2", "s3:ListBucket", "bucket", "read")),
        (None, _r("ListObjects", "s3:ListBucket", "bucket", "read")),
    ],
    ("HEAD", "bucket"): [
        (None, _r("HeadBucket", "s3:ListBucket", "bucket", "read")),
    ],
    ("PUT", "bucket"): [
        ("versioning", _r("PutBucketVersioning", "s3:PutBucketVersioning", "bucket", "owner")),
        ("acl", _r("PutBucketAcl", "s3:PutBucketAcl", "bucket", "owner")),
        ("policy", _r("PutBucketPolicy", "s3:PutBucketPolicy", "bucket", "owner")),
        ("cors", _r("PutBucketCors", "s3:PutBucketCORS", "bucket", "owner")),
        ("lifecycle", _r("PutBucketLifecycleConfiguration", "s3:PutLifecycleConfiguration", "bucket", "owner")),
        ("tagging", _r("PutBucketTagging", "s3:PutBucketTagging", "bucket", "owner")),
        ("encryption", _r("PutBucketEncryption", "s3:PutEncryptionConfiguration", "bucket", "owner")),
        ("object-lock", _r("PutObjectLockConfiguration", "s3:PutBucketObjectLockConfiguration", "bucket", "owner")),
        ("notification", _r("PutBucketNotificationConfiguration", "s3:PutBucketNotification", "bucket", "owner")),
        ("logging", _r("PutBucketLogging", "s3:PutBucketLogging", "bucket", "owner")),
        ("website", _r("PutBucketWebsite", "s3:PutBucketWebsite", "bucket", "owner")),
        ("replication", _r("PutBucketReplication", "s3:PutReplicationConfiguration", "bucket", "owner")),
        ("accelerate", _r("PutBucketAccelerateConfiguration", "s3:PutAccelerateConfiguration", "bucket", "owner")),
        ("requestPayment", _r("PutBucketRequestPayment", "s3:PutBucketRequestPayment", "bucket", "owner")),
        ("ownershipControls", _r("PutBucketOwnershipControls", "s3:PutBucketOwnershipControls", "bucket", "owner")),
        ("publicAccessBlock", _r("PutPublicAccessBlock", "s3:PutBucketPublicAccessBlock", "bucket", "owner")),
        ("analytics", _r("PutBucketAnalyticsConfiguration", "s3:PutAnalyticsConfiguration", "bucket", "owner")),
        ("metrics", _r("PutBucketMetricsConfiguration", "s3:PutMetricsConfiguration", "bucket", "owner")),
        ("inventory", _r("PutBucketInventoryConfiguration", "s3:PutInventoryConfiguration", "bucket", "owner")),
        (
            "intelligent-tiering",
            _r(
                "PutBucketIntelligentTieringConfiguration",
                "s3:PutIntelligentTieringConfiguration",
                "bucket",
                "owner",
            ),
        ),
        (None, CREATE_BUCKET),
    ],
    ("DELETE", "bucket"): [
        ("policy", _r("DeleteBucketPolicy", "s3:DeleteBucketPolicy", "bucket", "owner")),
        ("cors", _r("DeleteBucketCors", "s3:PutBucketCORS", "bucket", "owner")),
        ("lifecycle", _r("DeleteBucketLifecycle", "s3:PutLifecycleConfiguration", "bucket", "owner")),
        ("tagging", _r("DeleteBucketTagging", "s3:PutBucketTagging", "bucket", "owner")),
        ("encryption", _r("DeleteBucketEncryption", "s3:PutEncryptionConfiguration", "bucket", "owner")),
        ("website", _r("DeleteBucketWebsite", "s3:DeleteBucketWebsite", "bucket", "owner")),
        ("replication", _r("DeleteBucketReplication", "s3:PutReplicationConfiguration", "bucket", "owner")),
        ("ownershipControls", _r("DeleteBucketOwnershipControls", "s3:PutBucketOwnershipControls", "bucket", "owner")),
        ("publicAccessBlock", _r("DeletePublicAccessBlock", "s3:PutBucketPublicAccessBlock", "bucket", "owner")),
        ("analytics", _r("DeleteBucketAnalyticsConfiguration", "s3:PutAnalyticsConfiguration", "bucket", "owner")),
        ("metrics", _r("DeleteBucketMetricsConfiguration", "s3:PutMetricsConfiguration", "bucket", "owner")),
        ("inventory", _r("DeleteBucketInventoryConfiguration", "s3:PutInventoryConfiguration", "bucket", "owner")),
        (
            "intelligent-tiering",
            _r(
                "DeleteBucketIntelligentTieringConfiguration",
                "s3:PutIntelligentTieringConfiguration",
                "bucket",
                "owner",
            ),
        ),
        (None, _r("DeleteBucket", "s3:DeleteBucket", "bucket", "owner")),
    ],
    ("POST", "bucket"): [
        ("delete", _r("DeleteObjects", "s3:DeleteObject", "bucket", "write")),
        (None, _r("PostObject", "s3:PutObject", "bucket", "write", authorizer="handler")),
    ],
    ("GET", "object"): [
        ("uploadId", _r("ListParts", "s3:ListMultipartUploadParts", "object", "read")),
        ("acl", _r("GetObjectAcl", "s3:GetObjectAcl", "object", "read")),
        ("tagging", _r("GetObjectTagging", "s3:GetObjectTagging", "object", "read")),
        ("attributes", _r("GetObjectAttributes", "s3:GetObjectAttributes", "object", "read")),
        ("retention", _r("GetObjectRetention", "s3:GetObjectRetention", "object", "read")),
        ("legal-hold", _r("GetObjectLegalHold", "s3:GetObjectLegalHold", "object", "read")),
        ("torrent", _r("GetObjectTorrent", "s3:GetObjectTorrent", "object", "read")),
        (None, _r("GetObject", "s3:GetObject", "object", "read")),
    ],
    ("HEAD", "object"): [
        (None, _r("HeadObject", "s3:GetObject", "object", "read")),
    ],
    ("PUT", "object"): [
        ("uploadId", UPLOAD_PART),  # UploadPartCopy when x-amz-copy-source is set
        ("acl", _r("PutObjectAcl", "s3:PutObjectAcl", "object", "write")),
        ("tagging", _r("PutObjectTagging", "s3:PutObjectTagging", "object", "write")),
        ("retention", _r("PutObjectRetention", "s3:PutObjectRetention", "object", "write")),
        ("legal-hold", _r("PutObjectLegalHold", "s3:PutObjectLegalHold", "object", "write")),
        (None, PUT_OBJECT),  # CopyObject when x-amz-copy-source is set
    ],
    ("POST", "object"): [
        ("uploads", _r("CreateMultipartUpload", "s3:PutObject", "object", "write")),
        ("uploadId", _r("CompleteMultipartUpload", "s3:PutObject", "object", "write")),
        ("restore", _r("RestoreObject", "s3:RestoreObject", "object", "write")),
        ("select", _r("SelectObjectContent", "s3:GetObject", "object", "read")),
    ],
    ("DELETE", "object"): [
        ("uploadId", _r("AbortMultipartUpload", "s3:AbortMultipartUpload", "object", "write")),
        ("tagging", _r("DeleteObjectTagging", "s3:DeleteObjectTagging", "object", "write")),
        (None, _r("DeleteObject", "s3:DeleteObject", "object", "write")),
    ],
}

ROUTES: tuple[Route, ...] = (
    PREFLIGHT,
    *(route for entries in _TABLE.values() for _, route in entries),
    *_COPY_VARIANTS.values(),
)


def classify(request: Request) -> Route | None:
    """The route of a request; None when the method makes no sense for its target."""
    method = request.method
    if method == "OPTIONS":
        return PREFLIGHT
    target: Resource = "service" if request.bucket is None else "bucket" if request.key is None else "object"
    candidates = _TABLE.get((method, target))
    if candidates is None:
        return None
    query = request.query
    for subresource, route in candidates:
        if subresource is None or subresource in query:
            if "x-amz-copy-source" in request.headers:
                return _COPY_VARIANTS.get(route, route)
            return route
    return None
