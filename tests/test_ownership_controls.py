"""S3 Object Ownership on a real server: the three operations and their errors,
``x-amz-object-ownership`` on CreateBucket, and BucketOwnerEnforced refusing ACL headers."""

from __future__ import annotations

from typing import Any

import pytest

from tests.auth_support import new_bucket_name, outcome, send, signed
from tests.server_process import ServerProcess
from tests.wire import multipart

pytestmark = pytest.mark.server


def ownership_of(s3: Any, bucket: str) -> str:
    rules = s3.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"]
    assert len(rules) == 1
    return str(rules[0]["ObjectOwnership"])


def controls(value: str) -> dict[str, Any]:
    return {"Rules": [{"ObjectOwnership": value}]}


ENFORCED_XML = (
    b"<OwnershipControls><Rule><ObjectOwnership>BucketOwnerEnforced</ObjectOwnership></Rule></OwnershipControls>"
)


@pytest.fixture
def enforced(s3, bucket: str) -> str:  # type: ignore[no-untyped-def]
    s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=controls("BucketOwnerEnforced"))
    return bucket


def test_new_buckets_have_no_controls(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    # Until ACLs are enforced, a bucket gets ownership controls only when asked (coffer/server/ownership.py).
    assert outcome(lambda: s3.get_bucket_ownership_controls(Bucket=bucket)) == "OwnershipControlsNotFoundError"
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read")


def test_crud(s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    for value in ("ObjectWriter", "BucketOwnerPreferred", "BucketOwnerEnforced"):
        s3.put_bucket_ownership_controls(Bucket=bucket, OwnershipControls=controls(value))
        assert ownership_of(s3, bucket) == value
    s3.delete_bucket_ownership_controls(Bucket=bucket)
    assert outcome(lambda: s3.get_bucket_ownership_controls(Bucket=bucket)) == "OwnershipControlsNotFoundError"
    # Without controls ACL headers are accepted (and, without ACLs in Coffer, ignored).
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read")


def test_errors(server: ServerProcess, s3, bucket: str) -> None:  # type: ignore[no-untyped-def]
    missing = new_bucket_name()
    assert outcome(lambda: s3.get_bucket_ownership_controls(Bucket=missing)) == "NoSuchBucket"
    assert outcome(lambda: s3.delete_bucket_ownership_controls(Bucket=missing)) == "NoSuchBucket"
    assert (
        outcome(lambda: s3.put_bucket_ownership_controls(Bucket=missing, OwnershipControls=controls("ObjectWriter")))
        == "NoSuchBucket"
    )
    for body in (
        b"",
        b"<nope",
        b"<OwnershipControls/>",
        b"<OwnershipControls><Rule><ObjectOwnership>Nobody</ObjectOwnership></Rule></OwnershipControls>",
        b"<OwnershipControls><Rule><ObjectOwnership>ObjectWriter</ObjectOwnership>"
        b"<ObjectOwnership>ObjectWriter</ObjectOwnership></Rule></OwnershipControls>",
        b"<OwnershipControls><Rule><ObjectOwnership>ObjectWriter</ObjectOwnership></Rule>"
        b"<Rule><ObjectOwnership>ObjectWriter</ObjectOwnership></Rule></OwnershipControls>",
        b"<Other><Rule><ObjectOwnership>ObjectWriter</ObjectOwnership></Rule></Other>",
    ):
        reply = send(server, "PUT", f"/{bucket}?ownershipControls", {}, body)
        assert (reply.status, reply.code) == (400, "MalformedXML"), body
    # Unchanged: still none.
    assert outcome(lambda: s3.get_bucket_ownership_controls(Bucket=bucket)) == "OwnershipControlsNotFoundError"


def test_create_bucket_header(s3) -> None:  # type: ignore[no-untyped-def]
    name = new_bucket_name()
    s3.create_bucket(Bucket=name, ObjectOwnership="ObjectWriter")
    assert ownership_of(s3, name) == "ObjectWriter"
    s3.put_object(Bucket=name, Key="k", Body=b"x", ACL="public-read")  # ACLs enabled
    other = new_bucket_name()
    assert outcome(lambda: s3.create_bucket(Bucket=other, ObjectOwnership="Mine")) == "InvalidArgument"
    assert outcome(lambda: s3.head_bucket(Bucket=other)) != "ok"


def test_create_bucket_acls(s3) -> None:  # type: ignore[no-untyped-def]
    # x-amz-acl: private (rclone's mkdir) is allowed.
    name = new_bucket_name()
    s3.create_bucket(Bucket=name, ACL="private")
    assert outcome(lambda: s3.get_bucket_ownership_controls(Bucket=name)) == "OwnershipControlsNotFoundError"
    enforced = new_bucket_name()
    s3.create_bucket(Bucket=enforced, ACL="private", ObjectOwnership="BucketOwnerEnforced")
    assert ownership_of(s3, enforced) == "BucketOwnerEnforced"
    for extra in ({"ACL": "public-read"}, {"GrantRead": 'uri="http://acs.amazonaws.com/groups/global/AllUsers"'}):
        refused = new_bucket_name()
        assert (
            outcome(lambda r=refused, e=extra: s3.create_bucket(Bucket=r, ObjectOwnership="BucketOwnerEnforced", **e))  # type: ignore[misc]
            == "InvalidBucketAclWithObjectOwnership"
        )
        assert outcome(lambda r=refused: s3.head_bucket(Bucket=r)) != "ok"  # type: ignore[misc]
    preferred = new_bucket_name()
    s3.create_bucket(Bucket=preferred, ACL="public-read", ObjectOwnership="BucketOwnerPreferred")


def test_owner_enforced_refuses_acl_headers(s3, enforced: str) -> None:  # type: ignore[no-untyped-def]
    bucket = enforced
    s3.put_object(Bucket=bucket, Key="src", Body=b"x")
    refused = [
        lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read"),
        lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="private"),
        lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", GrantRead='id="someone"'),
        lambda: s3.put_object(Bucket=bucket, Key="k", Body=b"x", GrantFullControl='id="someone"'),
        lambda: s3.copy_object(Bucket=bucket, Key="c", CopySource=f"{bucket}/src", ACL="public-read"),
        lambda: s3.create_multipart_upload(Bucket=bucket, Key="m", ACL="authenticated-read"),
        lambda: s3.create_multipart_upload(Bucket=bucket, Key="m", GrantWriteACP='id="x"'),
    ]
    for call in refused:
        assert outcome(call) == "AccessControlListNotSupported"
    assert "Contents" not in s3.list_objects_v2(Bucket=bucket, Prefix="k")
    # bucket-owner-full-control, or no ACL, is accepted.
    s3.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="bucket-owner-full-control")
    s3.copy_object(Bucket=bucket, Key="c", CopySource=f"{bucket}/src", ACL="bucket-owner-full-control")
    upload = s3.create_multipart_upload(Bucket=bucket, Key="m", ACL="bucket-owner-full-control")
    s3.abort_multipart_upload(Bucket=bucket, Key="m", UploadId=upload["UploadId"])
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x")


def test_error_shape(server: ServerProcess, enforced: str) -> None:
    bucket = enforced
    reply = send(server, "PUT", f"/{bucket}/k", {"x-amz-acl": "public-read"}, b"x")
    assert reply.status == 400
    assert b"<Code>AccessControlListNotSupported</Code>" in reply.body
    assert b"<Message>The bucket does not allow ACLs</Message>" in reply.body


def test_owner_enforced_on_auth_server(auth_server: ServerProcess, main_bucket: str) -> None:
    assert signed(auth_server, "PUT", f"/{main_bucket}?ownershipControls", ENFORCED_XML).status == 200
    reply = signed(auth_server, "PUT", f"/{main_bucket}/k", b"x", {"x-amz-acl": "public-read"})
    assert (reply.status, reply.code) == (400, "AccessControlListNotSupported")


def test_post_object_acl_field(server: ServerProcess, s3, enforced: str) -> None:  # type: ignore[no-untyped-def]
    bucket = enforced
    content_type, body = multipart([("key", "p"), ("acl", "public-read")], b"x")
    reply = send(server, "POST", f"/{bucket}", {"Content-Type": content_type}, body)
    assert (reply.status, reply.code) == (400, "AccessControlListNotSupported")
    content_type, body = multipart([("key", "p"), ("acl", "bucket-owner-full-control")], b"x")
    assert send(server, "POST", f"/{bucket}", {"Content-Type": content_type}, body).status == 204
