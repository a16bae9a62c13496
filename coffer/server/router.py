"""Classify every request once into an S3 operation named as in the AWS API reference.

Order matters inside each list: the first sub-resource present in the query
wins, and the last entry (sub-resource ``None``) is the default.
"""

from __future__ import annotations

from coffer.server.request import Request

# (method, scope) -> [(sub-resource query key or None, operation)]
# scope: "service" (no bucket), "bucket", "object"
_TABLE: dict[tuple[str, str], list[tuple[str | None, str]]] = {
    ("GET", "service"): [(None, "ListBuckets")],
    ("GET", "bucket"): [
        ("location", "GetBucketLocation"),
        ("versioning", "GetBucketVersioning"),
        ("versions", "ListObjectVersions"),
        ("uploads", "ListMultipartUploads"),
        ("acl", "GetBucketAcl"),
        ("policy", "GetBucketPolicy"),
        ("policyStatus", "GetBucketPolicyStatus"),
        ("cors", "GetBucketCors"),
        ("lifecycle", "GetBucketLifecycleConfiguration"),
        ("tagging", "GetBucketTagging"),
        ("encryption", "GetBucketEncryption"),
        ("object-lock", "GetObjectLockConfiguration"),
        ("notification", "GetBucketNotificationConfiguration"),
        ("logging", "GetBucketLogging"),
        ("website", "GetBucketWebsite"),
        ("replication", "GetBucketReplication"),
        ("accelerate", "GetBucketAccelerateConfiguration"),
        ("requestPayment", "GetBucketRequestPayment"),
        ("ownershipControls", "GetBucketOwnershipControls"),
        ("publicAccessBlock", "GetPublicAccessBlock"),
        ("analytics", "GetBucketAnalyticsConfiguration"),
        ("metrics", "GetBucketMetricsConfiguration"),
        ("inventory", "GetBucketInventoryConfiguration"),
        ("intelligent-tiering", "GetBucketIntelligentTieringConfiguration"),
        ("list-type", "ListObjectsV2"),
        (None, "ListObjects"),
    ],
    ("HEAD", "bucket"): [(None, "HeadBucket")],
    ("PUT", "bucket"): [
        ("versioning", "PutBucketVersioning"),
        ("acl", "PutBucketAcl"),
        ("policy", "PutBucketPolicy"),
        ("cors", "PutBucketCors"),
        ("lifecycle", "PutBucketLifecycleConfiguration"),
        ("tagging", "PutBucketTagging"),
        ("encryption", "PutBucketEncryption"),
        ("object-lock", "PutObjectLockConfiguration"),
        ("notification", "PutBucketNotificationConfiguration"),
        ("logging", "PutBucketLogging"),
        ("website", "PutBucketWebsite"),
        ("replication", "PutBucketReplication"),
        ("accelerate", "PutBucketAccelerateConfiguration"),
        ("requestPayment", "PutBucketRequestPayment"),
        ("ownershipControls", "PutBucketOwnershipControls"),
        ("publicAccessBlock", "PutPublicAccessBlock"),
        ("analytics", "PutBucketAnalyticsConfiguration"),
        ("metrics", "PutBucketMetricsConfiguration"),
        ("inventory", "PutBucketInventoryConfiguration"),
        ("intelligent-tiering", "PutBucketIntelligentTieringConfiguration"),
        (None, "CreateBucket"),
    ],
    ("DELETE", "bucket"): [
        ("policy", "DeleteBucketPolicy"),
        ("cors", "DeleteBucketCors"),
        ("lifecycle", "DeleteBucketLifecycle"),
        ("tagging", "DeleteBucketTagging"),
        ("encryption", "DeleteBucketEncryption"),
        ("website", "DeleteBucketWebsite"),
        ("replication", "DeleteBucketReplication"),
        ("ownershipControls", "DeleteBucketOwnershipControls"),
        ("publicAccessBlock", "DeletePublicAccessBlock"),
        ("analytics", "DeleteBucketAnalyticsConfiguration"),
        ("metrics", "DeleteBucketMetricsConfiguration"),
        ("inventory", "DeleteBucketInventoryConfiguration"),
        ("intelligent-tiering", "DeleteBucketIntelligentTieringConfiguration"),
        (None, "DeleteBucket"),
    ],
    ("POST", "bucket"): [("delete", "DeleteObjects"), (None, "PostObject")],
    ("GET", "object"): [
        ("uploadId", "ListParts"),
        ("acl", "GetObjectAcl"),
        ("tagging", "GetObjectTagging"),
        ("attributes", "GetObjectAttributes"),
        ("retention", "GetObjectRetention"),
        ("legal-hold", "GetObjectLegalHold"),
        ("torrent", "GetObjectTorrent"),
        (None, "GetObject"),
    ],
    ("HEAD", "object"): [(None, "HeadObject")],
    ("PUT", "object"): [
        ("uploadId", "UploadPart"),  # UploadPartCopy when x-amz-copy-source is set
        ("acl", "PutObjectAcl"),
        ("tagging", "PutObjectTagging"),
        ("retention", "PutObjectRetention"),
        ("legal-hold", "PutObjectLegalHold"),
        (None, "PutObject"),  # CopyObject when x-amz-copy-source is set
    ],
    ("POST", "object"): [
        ("uploads", "CreateMultipartUpload"),
        ("uploadId", "CompleteMultipartUpload"),
        ("restore", "RestoreObject"),
        ("select", "SelectObjectContent"),
    ],
    ("DELETE", "object"): [
        ("uploadId", "AbortMultipartUpload"),
        ("tagging", "DeleteObjectTagging"),
        (None, "DeleteObject"),
    ],
}

_COPY_VARIANTS = {"PutObject": "CopyObject", "UploadPart": "UploadPartCopy"}


def classify(request: Request) -> str | None:
    """The AWS operation name of a request; None when the method makes no sense for its target."""
    if request.bucket is None:
        scope = "service"
    elif request.key is None:
        scope = "bucket"
    else:
        scope = "object"
    method = request.method
    if method == "OPTIONS":
        return "PreflightRequest"
    candidates = _TABLE.get((method, scope))
    if candidates is None:
        return None
    query = request.query
    for subresource, operation in candidates:
        if subresource is None or subresource in query:
            if operation in _COPY_VARIANTS and "x-amz-copy-source" in request.headers:
                return _COPY_VARIANTS[operation]
            return operation
    return None
