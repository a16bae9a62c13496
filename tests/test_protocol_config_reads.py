"""Reads of bucket/object configuration that clients make on their way to something else.

Nothing can set policies, lifecycle rules, request payment, website,
logging, default encryption, replication, acceleration, notifications or ACLs
yet (public access blocks can: tests/test_public_access_block.py; bucket tags:
tests/test_tagging.py; versioning: tests/test_versioning.py), so the reads answer what S3
answers for a bucket that never
had them: s3fs and rclone read the versioning state before deleting a bucket, s3cmd ``info`` reads ACLs, policy,
lifecycle and request payment, and tools that describe a whole bucket read the rest.
"""

from __future__ import annotations

import http.client
from typing import Any

import pytest

from tests.s3errors import expect_error
from tests.server_process import ServerProcess

# boto3 method -> (expected answer without ResponseMetadata) or the 404 code.
EMPTY_ANSWERS: dict[str, dict[str, Any]] = {
    "get_bucket_versioning": {},
    "get_bucket_request_payment": {"Payer": "BucketOwner"},
    "get_bucket_logging": {},
    "get_bucket_accelerate_configuration": {},
    "get_bucket_notification_configuration": {},
    # Whether the bucket is public by its policy or ACL (S3 itself answers NoSuchBucketPolicy).
    "get_bucket_policy_status": {"PolicyStatus": {"IsPublic": False}},
}
NOT_FOUND: dict[str, str] = {
    "get_bucket_policy": "NoSuchBucketPolicy",
    "get_bucket_lifecycle_configuration": "NoSuchLifecycleConfiguration",
    "get_bucket_website": "NoSuchWebsiteConfiguration",
    "get_bucket_encryption": "ServerSideEncryptionConfigurationNotFoundError",
    "get_bucket_replication": "ReplicationConfigurationNotFoundError",
    "get_public_access_block": "NoSuchPublicAccessBlockConfiguration",
}


@pytest.mark.parametrize("method", sorted(EMPTY_ANSWERS))
def test_unconfigured_reads_answer_empty(s3, bucket: str, method: str) -> None:  # type: ignore[no-untyped-def]
    answer = getattr(s3, method)(Bucket=bucket)
    metadata = answer.pop("ResponseMetadata")
    assert metadata["HTTPStatusCode"] == 200
    assert answer == EMPTY_ANSWERS[method]


@pytest.mark.parametrize("method", sorted(NOT_FOUND))
def test_unconfigured_reads_answer_404(s3, bucket: str, method: str) -> None:  # type: ignore[no-untyped-def]
    error = expect_error(404, NOT_FOUND[method], getattr(s3, method), Bucket=bucket)
    assert error["BucketName"] == bucket


@pytest.mark.parametrize("method", sorted([*EMPTY_ANSWERS, *NOT_FOUND, "get_bucket_acl"]))
def test_reads_of_missing_bucket(s3, method: str) -> None:  # type: ignore[no-untyped-def]
    error = expect_error(404, "NoSuchBucket", getattr(s3, method), Bucket="no-such-bucket-config-reads")
    assert error["BucketName"] == "no-such-bucket-config-reads"


def test_get_bucket_versioning_raw_shape(server: ServerProcess, bucket: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", f"/{bucket}?versioning")
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert response.status == 200
    assert response.getheader("content-type") == "application/xml"
    empty = b'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></VersioningConfiguration>'
    assert empty in body


def test_get_bucket_acl_is_private(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    owner = s3.list_buckets()["Owner"]
    acl = s3.get_bucket_acl(Bucket=bucket)
    assert acl["Owner"]["ID"] == owner["ID"]
    assert acl["Owner"]["DisplayName"] == owner["DisplayName"]
    assert acl["Grants"] == [
        {
            "Grantee": {"ID": owner["ID"], "DisplayName": owner["DisplayName"], "Type": "CanonicalUser"},
            "Permission": "FULL_CONTROL",
        }
    ]


def test_get_object_acl_is_private(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    s3.put_object(Bucket=bucket, Key="dir/obj", Body=b"x")
    owner = s3.list_buckets()["Owner"]
    acl = s3.get_object_acl(Bucket=bucket, Key="dir/obj")
    assert acl["Owner"]["ID"] == owner["ID"]
    assert [(g["Grantee"]["ID"], g["Grantee"]["Type"], g["Permission"]) for g in acl["Grants"]] == [
        (owner["ID"], "CanonicalUser", "FULL_CONTROL")
    ]
    error = expect_error(404, "NoSuchKey", s3.get_object_acl, Bucket=bucket, Key="dir/missing")
    assert error["Key"] == "dir/missing"
    expect_error(404, "NoSuchBucket", s3.get_object_acl, Bucket="no-such-bucket-config-reads", Key="k")


# The write that would make each read above wrong, with a minimal valid argument.
WRITES: dict[str, dict[str, Any]] = {
    "put_bucket_request_payment": {"RequestPaymentConfiguration": {"Payer": "Requester"}},
    "put_bucket_website": {"WebsiteConfiguration": {"IndexDocument": {"Suffix": "index.html"}}},
    "put_bucket_logging": {"BucketLoggingStatus": {}},
    "put_bucket_replication": {
        "ReplicationConfiguration": {
            "Role": "arn:aws:iam::1:role/r",
            "Rules": [{"Status": "Enabled", "Destination": {"Bucket": "arn:aws:s3:::d"}, "Prefix": ""}],
        }
    },
    "put_bucket_accelerate_configuration": {"AccelerateConfiguration": {"Status": "Enabled"}},
}


@pytest.mark.parametrize("method", sorted(WRITES))
def test_configuration_writes_stay_not_implemented(s3, bucket: str, method: str) -> None:  # type: ignore[no-untyped-def]
    """The reads above report defaults only because nothing can change them: the writes are
    refused, never silently dropped. Whoever implements one of them replaces its read too
    (coffer/server/handlers/bucket_config.py) and moves its case out of here."""
    expect_error(501, "NotImplemented", getattr(s3, method), Bucket=bucket, **WRITES[method])
