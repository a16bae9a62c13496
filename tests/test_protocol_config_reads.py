"""Reads of bucket/object configuration that clients make on their way to something else.

Coffer cannot set versioning, policies, lifecycle rules, request payment or ACLs yet,
so these answer what S3 answers for a bucket that never had them: s3fs and rclone
read the versioning state before deleting a bucket, s3cmd ``info`` reads ACLs,
policy, lifecycle and request payment.
"""

from __future__ import annotations

import http.client

from tests.s3errors import expect_error
from tests.server_process import ServerProcess


def test_get_bucket_versioning_never_configured(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    answer = s3.get_bucket_versioning(Bucket=bucket)
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert "Status" not in answer
    assert "MFADelete" not in answer


def test_get_bucket_versioning_raw_shape(server: ServerProcess, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", f"/{bucket}?versioning")
    response = conn.getresponse()
    body = response.read()
    conn.close()
    assert response.status == 200
    assert response.getheader("content-type") == "application/xml"
    empty = b'<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"></VersioningConfiguration>'
    assert empty in body


def test_bucket_configuration_reads_of_missing_bucket(s3) -> None:  # type: ignore[no-untyped-def]
    for call in (
        s3.get_bucket_versioning,
        s3.get_bucket_acl,
        s3.get_bucket_policy,
        s3.get_bucket_lifecycle_configuration,
        s3.get_bucket_request_payment,
    ):
        error = expect_error(404, "NoSuchBucket", call, Bucket="no-such-bucket-config-reads")
        assert error["BucketName"] == "no-such-bucket-config-reads"


def test_get_bucket_policy_none(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    error = expect_error(404, "NoSuchBucketPolicy", s3.get_bucket_policy, Bucket=bucket)
    assert error["BucketName"] == bucket


def test_get_bucket_lifecycle_none(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    error = expect_error(404, "NoSuchLifecycleConfiguration", s3.get_bucket_lifecycle_configuration, Bucket=bucket)
    assert error["BucketName"] == bucket


def test_get_bucket_request_payment(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    assert s3.get_bucket_request_payment(Bucket=bucket)["Payer"] == "BucketOwner"


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


def test_acl_and_policy_writes_stay_not_implemented(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    """The reads above report defaults only because nothing can change them: writes are refused,
    never silently dropped. Whoever implements one of these writes replaces its read too."""
    enable = {"Status": "Enabled"}
    expect_error(501, "NotImplemented", s3.put_bucket_versioning, Bucket=bucket, VersioningConfiguration=enable)
    expect_error(501, "NotImplemented", s3.put_bucket_policy, Bucket=bucket, Policy='{"Version": "2012-10-17"}')
