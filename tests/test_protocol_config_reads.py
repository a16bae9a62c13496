"""Reads of bucket/object configuration that clients make on their way to something else.

Coffer cannot set versioning yet, so GetBucketVersioning answers what S3 answers for a
bucket that never had it: s3fs and rclone read the versioning state before deleting a bucket.
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


def test_get_bucket_versioning_missing_bucket(s3) -> None:  # type: ignore[no-untyped-def]
    error = expect_error(404, "NoSuchBucket", s3.get_bucket_versioning, Bucket="no-such-bucket-config-reads")
    assert error["BucketName"] == "no-such-bucket-config-reads"
