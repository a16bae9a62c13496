"""S3 ACLs on a real server with authentication on, on both engines: canned ACLs, grant
headers and AccessControlPolicy documents on buckets and objects (and object versions), what
they grant other users (ALT) and anonymous callers (raw HTTP, as curl sends it), object
ownership, Block Public Access's ACL settings, and that all of it survives a restart."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.auth_support import ALT, ALT_EMAIL, MAIN, client, new_bucket_name, send, signed, start_auth_server
from tests.server_process import ServerProcess

pytestmark = pytest.mark.server

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
STORAGES = {
    "disk": (),
    "memory": ("--storage", "memory", "--memory-persistence", "true", "--snapshot-interval", "3600"),
}


@pytest.fixture(scope="module", params=list(STORAGES))
def acl_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = start_auth_server(tmp_path_factory.mktemp(f"acl-{request.param}"), *STORAGES[request.param])
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def main(acl_server: ServerProcess):  # type: ignore[no-untyped-def]
    return client(acl_server, MAIN)


@pytest.fixture(scope="module")
def alt(acl_server: ServerProcess):  # type: ignore[no-untyped-def]
    return client(acl_server, ALT)


@pytest.fixture(scope="module")
def anon(acl_server: ServerProcess):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=acl_server.endpoint,
        region_name="us-east-1",
        config=Config(signature_version=UNSIGNED, retries={"max_attempts": 1}),
    )


@pytest.fixture
def bucket(main) -> str:  # type: ignore[no-untyped-def]
    name = new_bucket_name()
    main.create_bucket(Bucket=name)
    return name


def error(call: Any, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def grants(response: dict[str, Any]) -> set[tuple[str, str]]:
    """(grantee id or group URI, permission) of a GetBucketAcl/GetObjectAcl answer."""
    return {(g["Grantee"].get("ID") or g["Grantee"].get("URI"), g["Permission"]) for g in response["Grants"]}


# ---------------------------------------------------------------------- bucket ACLs
def test_default_bucket_acl_names_the_owner(main, bucket: str) -> None:  # type: ignore[no-untyped-def]
    acl = main.get_bucket_acl(Bucket=bucket)
    assert acl["Owner"] == {"ID": MAIN.user_id, "DisplayName": MAIN.display_name}
    assert acl["Grants"] == [
        {
            "Grantee": {"ID": MAIN.user_id, "DisplayName": MAIN.display_name, "Type": "CanonicalUser"},
            "Permission": "FULL_CONTROL",
        }
    ]


def test_canned_bucket_acl_on_create_and_put(main, alt, anon) -> None:  # type: ignore[no-untyped-def]
    name = new_bucket_name()
    main.create_bucket(Bucket=name, ACL="public-read")
    main.put_object(Bucket=name, Key="k", Body=b"x")
    assert grants(main.get_bucket_acl(Bucket=name)) == {(MAIN.user_id, "FULL_CONTROL"), (ALL_USERS, "READ")}
    # READ on the bucket lists it, for anyone; it does not read its objects.
    assert [o["Key"] for o in anon.list_objects_v2(Bucket=name)["Contents"]] == ["k"]
    assert [o["Key"] for o in alt.list_objects(Bucket=name)["Contents"]] == ["k"]
    assert error(alt.get_object, Bucket=name, Key="k") == (403, "AccessDenied")
    assert error(alt.put_object, Bucket=name, Key="new", Body=b"") == (403, "AccessDenied")
    main.put_bucket_acl(Bucket=name, ACL="private")
    assert grants(main.get_bucket_acl(Bucket=name)) == {(MAIN.user_id, "FULL_CONTROL")}
    assert error(anon.list_objects_v2, Bucket=name)[0] == 403


def test_grant_headers_and_policy_document(main, alt, bucket: str) -> None:  # type: ignore[no-untyped-def]
    main.put_bucket_acl(Bucket=bucket, GrantRead=f"id={ALT.user_id}", GrantFullControl=f'id="{MAIN.user_id}"')
    acl = main.get_bucket_acl(Bucket=bucket)
    assert grants(acl) == {(MAIN.user_id, "FULL_CONTROL"), (ALT.user_id, "READ")}
    assert {g["Grantee"].get("DisplayName") for g in acl["Grants"]} == {MAIN.display_name, ALT.display_name}
    alt.list_objects_v2(Bucket=bucket)
    # WRITE by a document: ALT may now write objects (and owns what it writes).
    policy = {
        "Owner": acl["Owner"],
        "Grants": [*acl["Grants"], {"Grantee": {"ID": ALT.user_id, "Type": "CanonicalUser"}, "Permission": "WRITE"}],
    }
    main.put_bucket_acl(Bucket=bucket, AccessControlPolicy=policy)
    alt.put_object(Bucket=bucket, Key="by-alt", Body=b"alt")
    owner = alt.get_object_acl(Bucket=bucket, Key="by-alt")["Owner"]
    assert owner == {"ID": ALT.user_id, "DisplayName": ALT.display_name}
    # Revoking every grant, the owner's too, leaves the owner able to manage the ACL.
    main.put_bucket_acl(Bucket=bucket, AccessControlPolicy={"Owner": acl["Owner"], "Grants": []})
    assert main.get_bucket_acl(Bucket=bucket)["Grants"] == []
    assert error(alt.list_objects_v2, Bucket=bucket) == (403, "AccessDenied")
    main.put_bucket_acl(Bucket=bucket, ACL="private")


def test_grant_by_email_names_the_user(main, alt, bucket: str) -> None:  # type: ignore[no-untyped-def]
    main.put_bucket_acl(Bucket=bucket, GrantRead=f"emailAddress={ALT_EMAIL.upper()}")
    assert grants(main.get_bucket_acl(Bucket=bucket)) == {(ALT.user_id, "READ")}  # shown as the user
    alt.list_objects_v2(Bucket=bucket)
    owner = main.get_bucket_acl(Bucket=bucket)["Owner"]
    grant = {"Grantee": {"EmailAddress": ALT_EMAIL, "Type": "AmazonCustomerByEmail"}, "Permission": "WRITE"}
    main.put_bucket_acl(Bucket=bucket, AccessControlPolicy={"Owner": owner, "Grants": [grant]})
    assert grants(main.get_bucket_acl(Bucket=bucket)) == {(ALT.user_id, "WRITE")}


def test_invalid_acls_get_s3_errors(main, acl_server: ServerProcess, bucket: str) -> None:  # type: ignore[no-untyped-def]
    assert error(main.put_bucket_acl, Bucket=bucket, GrantRead="id=no-such-user") == (400, "InvalidArgument")
    assert error(main.put_bucket_acl, Bucket=bucket, GrantRead="emailAddress=nobody@example.com") == (
        400,
        "UnresolvableGrantByEmailAddress",
    )
    assert error(main.put_bucket_acl, Bucket=bucket, GrantRead="uri=http://example.com/group") == (
        400,
        "InvalidArgument",
    )
    assert error(main.put_bucket_acl, Bucket=bucket, ACL="public-read", GrantRead=f"id={ALT.user_id}") == (
        400,
        "InvalidRequest",
    )
    assert error(main.put_bucket_acl, Bucket=bucket, ACL="no-such-canned-acl") == (400, "InvalidArgument")
    other_owner = {"Owner": {"ID": ALT.user_id}, "Grants": []}
    assert error(main.put_bucket_acl, Bucket=bucket, AccessControlPolicy=other_owner) == (403, "AccessDenied")
    grant = {"Grantee": {"ID": "no-such-user", "Type": "CanonicalUser"}, "Permission": "READ"}
    assert error(
        main.put_bucket_acl, Bucket=bucket, AccessControlPolicy={"Owner": {"ID": MAIN.user_id}, "Grants": [grant]}
    ) == (400, "InvalidArgument")
    assert error(main.create_bucket, Bucket=new_bucket_name(), ACL="not-canned") == (400, "InvalidArgument")
    # A malformed document: S3's MalformedACLError, never a 500.
    for body in (b"<AccessControlPolicy><AccessControlList><Grant/></AccessControlList>", b"not xml", b"<Other/>"):
        reply = signed(acl_server, "PUT", f"/{bucket}?acl", body)
        assert reply.status == 400, reply.body
        assert b"<Code>MalformedACLError</Code>" in reply.body


# ---------------------------------------------------------------------- object ACLs
def test_public_read_object_serves_curl(main, acl_server: ServerProcess, bucket: str) -> None:  # type: ignore[no-untyped-def]
    main.put_object(Bucket=bucket, Key="public.txt", Body=b"hello", ACL="public-read")
    main.put_object(Bucket=bucket, Key="private.txt", Body=b"secret")
    got = send(acl_server, "GET", f"/{bucket}/public.txt", {})
    assert (got.status, got.body) == (200, b"hello")
    assert send(acl_server, "HEAD", f"/{bucket}/public.txt", {}).status == 200
    denied = send(acl_server, "GET", f"/{bucket}/private.txt", {})
    assert denied.status == 403 and b"<Code>AccessDenied</Code>" in denied.body
    assert send(acl_server, "GET", f"/{bucket}/missing.txt", {}).status == 403  # nothing to learn
    assert send(acl_server, "GET", f"/{bucket}", {}).status == 403  # the bucket itself is private
    main.put_object_acl(Bucket=bucket, Key="public.txt", ACL="private")
    assert send(acl_server, "GET", f"/{bucket}/public.txt", {}).status == 403


def test_object_acl_document_and_versions(main, alt, bucket: str) -> None:  # type: ignore[no-untyped-def]
    main.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    v1 = main.put_object(Bucket=bucket, Key="k", Body=b"one")["VersionId"]
    v2 = main.put_object(Bucket=bucket, Key="k", Body=b"two")["VersionId"]
    before = main.head_object(Bucket=bucket, Key="k", VersionId=v1)
    # Grant headers set exactly the grants they list (the owner's FULL_CONTROL goes unless listed).
    main.put_object_acl(
        Bucket=bucket, Key="k", VersionId=v1, GrantRead=f"id={ALT.user_id}", GrantFullControl=f"id={MAIN.user_id}"
    )
    assert grants(main.get_object_acl(Bucket=bucket, Key="k", VersionId=v1)) == {
        (MAIN.user_id, "FULL_CONTROL"),
        (ALT.user_id, "READ"),
    }
    assert grants(main.get_object_acl(Bucket=bucket, Key="k")) == {(MAIN.user_id, "FULL_CONTROL")}
    assert alt.get_object(Bucket=bucket, Key="k", VersionId=v1)["Body"].read() == b"one"
    assert error(alt.get_object, Bucket=bucket, Key="k", VersionId=v2)[0] == 403
    assert error(alt.get_object, Bucket=bucket, Key="k")[0] == 403
    after = main.head_object(Bucket=bucket, Key="k", VersionId=v1)
    assert (after["ETag"], after["LastModified"]) == (before["ETag"], before["LastModified"])
    # ALT may read the object but not its ACL (READ_ACP), nor change it (WRITE_ACP).
    assert error(alt.get_object_acl, Bucket=bucket, Key="k", VersionId=v1)[0] == 403
    assert error(alt.put_object_acl, Bucket=bucket, Key="k", VersionId=v1, ACL="public-read")[0] == 403
    main.put_object_acl(Bucket=bucket, Key="k", VersionId=v1, GrantReadACP=f"id={ALT.user_id}")
    assert alt.get_object_acl(Bucket=bucket, Key="k", VersionId=v1)["Owner"]["ID"] == MAIN.user_id
    assert error(main.put_object_acl, Bucket=bucket, Key="missing", ACL="private") == (404, "NoSuchKey")


def test_authenticated_read_needs_a_signature(main, alt, anon, bucket: str) -> None:  # type: ignore[no-untyped-def]
    main.put_object(Bucket=bucket, Key="k", Body=b"members", ACL="authenticated-read")
    assert alt.get_object(Bucket=bucket, Key="k")["Body"].read() == b"members"
    assert error(anon.get_object, Bucket=bucket, Key="k")[0] == 403


def test_public_read_write_bucket_and_ownership(main, alt, anon, acl_server: ServerProcess) -> None:  # type: ignore[no-untyped-def]
    name = new_bucket_name()
    main.create_bucket(Bucket=name, ACL="public-read-write")
    anon.put_object(Bucket=name, Key="from-anon", Body=b"a")
    # An anonymous writer owns nothing: the object is the bucket owner's.
    assert main.get_object_acl(Bucket=name, Key="from-anon")["Owner"]["ID"] == MAIN.user_id
    alt.put_object(Bucket=name, Key="from-alt", Body=b"b", ACL="bucket-owner-read")
    acl = alt.get_object_acl(Bucket=name, Key="from-alt")
    assert acl["Owner"]["ID"] == ALT.user_id
    assert grants(acl) == {(ALT.user_id, "FULL_CONTROL"), (MAIN.user_id, "READ")}
    assert error(anon.get_object, Bucket=name, Key="from-alt")[0] == 403
    alt.put_object(Bucket=name, Key="full", Body=b"c", ACL="bucket-owner-full-control")
    assert grants(alt.get_object_acl(Bucket=name, Key="full")) == {
        (ALT.user_id, "FULL_CONTROL"),
        (MAIN.user_id, "FULL_CONTROL"),
    }
    upload = alt.create_multipart_upload(Bucket=name, Key="mpu", ACL="public-read")
    parts = alt.list_parts(Bucket=name, Key="mpu", UploadId=upload["UploadId"])
    assert parts["Owner"]["ID"] == ALT.user_id and parts["Initiator"]["ID"] == ALT.user_id
    etag = alt.upload_part(Bucket=name, Key="mpu", UploadId=upload["UploadId"], PartNumber=1, Body=b"p")["ETag"]
    alt.complete_multipart_upload(
        Bucket=name,
        Key="mpu",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": 1}]},
    )
    assert anon.get_object(Bucket=name, Key="mpu")["Body"].read() == b"p"
    alt.copy_object(Bucket=name, Key="copy", CopySource={"Bucket": name, "Key": "mpu"}, ACL="authenticated-read")
    assert grants(alt.get_object_acl(Bucket=name, Key="copy")) == {
        (ALT.user_id, "FULL_CONTROL"),
        (AUTHENTICATED, "READ"),
    }
    # A browser form upload, anonymous, to a public-read-write bucket.
    form = (
        b'--xx\r\nContent-Disposition: form-data; name="key"\r\n\r\nposted\r\n'
        b'--xx\r\nContent-Disposition: form-data; name="file"; filename="f.txt"\r\n\r\nform\r\n--xx--\r\n'
    )
    reply = send(acl_server, "POST", f"/{name}", {"Content-Type": "multipart/form-data; boundary=xx"}, form)
    assert reply.status == 204, reply.body
    assert main.get_object(Bucket=name, Key="posted")["Body"].read() == b"form"


def test_bucket_owner_reads_what_others_own_only_when_granted(main, alt) -> None:  # type: ignore[no-untyped-def]
    name = new_bucket_name()
    main.create_bucket(Bucket=name, ACL="public-read-write")
    main.put_object(Bucket=name, Key="mine", Body=b"m")
    alt.put_object(Bucket=name, Key="private", Body=b"p")
    alt.put_object(Bucket=name, Key="shared", Body=b"s", ACL="bucket-owner-full-control")
    alt.put_object(Bucket=name, Key="readable", Body=b"r", ACL="bucket-owner-read")
    assert main.get_object(Bucket=name, Key="mine")["Body"].read() == b"m"
    # As in S3: owning the bucket gives no access to an object another user owns...
    assert error(main.get_object, Bucket=name, Key="private") == (403, "AccessDenied")
    assert error(main.get_object_acl, Bucket=name, Key="private") == (403, "AccessDenied")
    assert error(main.copy_object, Bucket=name, Key="copy", CopySource={"Bucket": name, "Key": "private"})[0] == 403
    # ...unless that object's ACL grants it; deleting is the bucket's WRITE, the owner's always.
    assert main.get_object(Bucket=name, Key="shared")["Body"].read() == b"s"
    assert main.get_object_acl(Bucket=name, Key="shared")["Owner"]["ID"] == ALT.user_id
    assert main.get_object(Bucket=name, Key="readable")["Body"].read() == b"r"
    assert error(main.get_object_acl, Bucket=name, Key="readable")[0] == 403
    main.delete_object(Bucket=name, Key="private")
    assert error(main.get_object, Bucket=name, Key="private") == (404, "NoSuchKey")


@pytest.mark.parametrize("ownership", ["BucketOwnerEnforced", "BucketOwnerPreferred", "ObjectWriter"])
def test_object_ownership_decides_the_owner(main, alt, ownership: str) -> None:  # type: ignore[no-untyped-def]
    name = new_bucket_name()
    main.create_bucket(Bucket=name, ObjectOwnership=ownership)
    writes = {
        "Effect": "Allow",
        "Principal": {"AWS": ALT.user_id},
        "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{name}", f"arn:aws:s3:::{name}/*"],
    }
    main.put_bucket_policy(Bucket=name, Policy=json.dumps({"Version": "2012-10-17", "Statement": [writes]}))
    alt.put_object(Bucket=name, Key="plain", Body=b"")
    alt.put_object(Bucket=name, Key="full", Body=b"", ACL="bucket-owner-full-control")
    owners = {key: alt.get_object_acl(Bucket=name, Key=key)["Owner"]["ID"] for key in ("plain", "full")}
    expected = {
        "BucketOwnerEnforced": {"plain": MAIN.user_id, "full": MAIN.user_id},
        "BucketOwnerPreferred": {"plain": ALT.user_id, "full": MAIN.user_id},
        "ObjectWriter": {"plain": ALT.user_id, "full": ALT.user_id},
    }[ownership]
    assert owners == expected
    if ownership == "BucketOwnerEnforced":
        assert error(alt.put_object, Bucket=name, Key="p", Body=b"", ACL="private") == (
            400,
            "AccessControlListNotSupported",
        )
        assert error(main.put_bucket_acl, Bucket=name, ACL="private") == (400, "AccessControlListNotSupported")
        assert error(main.put_object_acl, Bucket=name, Key="plain", ACL="private") == (
            400,
            "AccessControlListNotSupported",
        )
    else:
        alt.put_object(Bucket=name, Key="p", Body=b"", ACL="private")
        main.put_bucket_acl(Bucket=name, ACL="private")


def test_enforcing_ownership_refuses_a_public_bucket_acl(main) -> None:  # type: ignore[no-untyped-def]
    name = new_bucket_name()
    main.create_bucket(Bucket=name, ACL="public-read")
    controls = {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert error(main.put_bucket_ownership_controls, Bucket=name, OwnershipControls=controls) == (
        400,
        "InvalidBucketAclWithObjectOwnership",
    )
    main.put_bucket_acl(Bucket=name, ACL="private")
    main.put_bucket_ownership_controls(Bucket=name, OwnershipControls=controls)


# ---------------------------------------------------------------------- with policies and Block Public Access
def test_policy_deny_beats_an_acl_grant(main, anon, bucket: str) -> None:  # type: ignore[no-untyped-def]
    main.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read")
    anon.get_object(Bucket=bucket, Key="k")
    deny = {"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
    main.put_bucket_policy(Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [deny]}))
    assert error(anon.get_object, Bucket=bucket, Key="k")[0] == 403


def test_block_and_ignore_public_acls(main, alt, bucket: str) -> None:  # type: ignore[no-untyped-def]
    main.put_bucket_acl(Bucket=bucket, ACL="public-read")
    main.put_object(Bucket=bucket, Key="k", Body=b"x", ACL="public-read")
    alt.get_object(Bucket=bucket, Key="k")
    assert main.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is True
    config = {
        "BlockPublicAcls": False,
        "IgnorePublicAcls": True,
        "BlockPublicPolicy": False,
        "RestrictPublicBuckets": False,
    }
    main.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=config)
    assert error(alt.get_object, Bucket=bucket, Key="k")[0] == 403
    assert error(alt.list_objects_v2, Bucket=bucket)[0] == 403
    assert main.get_bucket_policy_status(Bucket=bucket)["PolicyStatus"]["IsPublic"] is False
    config["BlockPublicAcls"] = True
    main.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=config)
    for acl in ("public-read", "public-read-write", "authenticated-read"):
        assert error(main.put_object, Bucket=bucket, Key="new", Body=b"", ACL=acl)[0] == 403
        assert error(main.put_bucket_acl, Bucket=bucket, ACL=acl)[0] == 403
    main.put_object(Bucket=bucket, Key="new", Body=b"", ACL="private")


def test_expected_bucket_owner(main, anon) -> None:  # type: ignore[no-untyped-def]
    name = new_bucket_name()
    main.create_bucket(Bucket=name, ACL="public-read-write")
    main.list_objects_v2(Bucket=name, ExpectedBucketOwner=MAIN.user_id)
    assert error(anon.list_objects_v2, Bucket=name, ExpectedBucketOwner=MAIN.user_id + "x") == (403, "AccessDenied")
    assert error(main.put_object, Bucket=name, Key="k", Body=b"", ExpectedBucketOwner="someone-else") == (
        403,
        "AccessDenied",
    )


# ---------------------------------------------------------------------- durability
def test_acls_survive_a_restart(main, alt, acl_server: ServerProcess) -> None:  # type: ignore[no-untyped-def]
    name = new_bucket_name()
    main.create_bucket(Bucket=name, ACL="public-read")
    main.put_object(Bucket=name, Key="a", Body=b"a", ACL="public-read")
    main.put_object(Bucket=name, Key="b", Body=b"b")
    main.put_object_acl(Bucket=name, Key="b", GrantRead=f"id={ALT.user_id}")
    upload = main.create_multipart_upload(Bucket=name, Key="m", ACL="authenticated-read")
    acl_server.kill9()
    acl_server.start()
    assert grants(main.get_bucket_acl(Bucket=name)) == {(MAIN.user_id, "FULL_CONTROL"), (ALL_USERS, "READ")}
    assert grants(main.get_object_acl(Bucket=name, Key="a")) == {(MAIN.user_id, "FULL_CONTROL"), (ALL_USERS, "READ")}
    assert alt.get_object(Bucket=name, Key="b")["Body"].read() == b"b"
    etag = main.upload_part(Bucket=name, Key="m", UploadId=upload["UploadId"], PartNumber=1, Body=b"m")["ETag"]
    main.complete_multipart_upload(
        Bucket=name, Key="m", UploadId=upload["UploadId"], MultipartUpload={"Parts": [{"ETag": etag, "PartNumber": 1}]}
    )
    assert (AUTHENTICATED, "READ") in grants(main.get_object_acl(Bucket=name, Key="m"))


def test_recreating_a_bucket_never_changes_its_acl(main) -> None:  # type: ignore[no-untyped-def]
    name = new_bucket_name()
    main.create_bucket(Bucket=name, ACL="public-read")
    main.create_bucket(Bucket=name, ACL="public-read")  # us-east-1: the same request succeeds
    assert error(main.create_bucket, Bucket=name) == (409, "BucketAlreadyExists")  # would make it private
    plain = new_bucket_name()
    main.create_bucket(Bucket=plain)
    main.create_bucket(Bucket=plain)
    assert error(main.create_bucket, Bucket=plain, ACL="public-read") == (409, "BucketAlreadyExists")
    assert grants(main.get_bucket_acl(Bucket=name)) == {(MAIN.user_id, "FULL_CONTROL"), (ALL_USERS, "READ")}
