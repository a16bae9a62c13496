"""Block Public Access on a real server: the three operations and their errors, and what
BlockPublicPolicy and RestrictPublicBuckets decide for the owner, another user (ALT) and
anonymous callers; the server-wide ``public_access_block`` default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.auth_support import ALT, MAIN, client, new_bucket_name, outcome, send, signed, start_auth_server
from tests.server_process import ServerProcess

pytestmark = pytest.mark.server

ALT_ARN = f"arn:aws:iam::{ALT.user_id}:root"
ALL_ON = {"BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True, "RestrictPublicBuckets": True}
ALL_OFF = {name: False for name in ALL_ON}


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def public_read(bucket: str) -> str:
    return policy(
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"}
    )


def alt_read(bucket: str) -> str:
    return policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": ALT_ARN},
            "Action": "s3:GetObject",
            "Resource": f"arn:aws:s3:::{bucket}/*",
        }
    )


def block_of(s3: Any, bucket: str) -> dict[str, bool]:
    return dict(s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"])


def test_crud(main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    assert (
        outcome(lambda: main_s3.get_public_access_block(Bucket=main_bucket)) == "NoSuchPublicAccessBlockConfiguration"
    )
    main_s3.put_public_access_block(Bucket=main_bucket, PublicAccessBlockConfiguration=ALL_ON)
    assert block_of(main_s3, main_bucket) == ALL_ON
    # A missing element is false, as S3.
    main_s3.put_public_access_block(Bucket=main_bucket, PublicAccessBlockConfiguration={"IgnorePublicAcls": True})
    assert block_of(main_s3, main_bucket) == {**ALL_OFF, "IgnorePublicAcls": True}
    main_s3.delete_public_access_block(Bucket=main_bucket)
    assert (
        outcome(lambda: main_s3.get_public_access_block(Bucket=main_bucket)) == "NoSuchPublicAccessBlockConfiguration"
    )
    main_s3.delete_public_access_block(Bucket=main_bucket)  # deleting none is fine


def test_errors(auth_server: ServerProcess, main_s3, alt_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    missing = new_bucket_name()
    assert outcome(lambda: main_s3.get_public_access_block(Bucket=missing)) == "NoSuchBucket"
    assert (
        outcome(lambda: main_s3.put_public_access_block(Bucket=missing, PublicAccessBlockConfiguration=ALL_ON))
        == "NoSuchBucket"
    )
    assert (
        outcome(lambda: alt_s3.put_public_access_block(Bucket=main_bucket, PublicAccessBlockConfiguration=ALL_OFF))
        == "AccessDenied"
    )
    for body in (
        b"",
        b"<nope",
        b"<Other/>",
        b"<PublicAccessBlockConfiguration><BlockPublicAcls>yes</BlockPublicAcls></PublicAccessBlockConfiguration>",
        b"<PublicAccessBlockConfiguration><Bogus>true</Bogus></PublicAccessBlockConfiguration>",
        b"<PublicAccessBlockConfiguration><BlockPublicAcls>true</BlockPublicAcls>"
        b"<BlockPublicAcls>false</BlockPublicAcls></PublicAccessBlockConfiguration>",
    ):
        reply = signed(auth_server, "PUT", f"/{main_bucket}?publicAccessBlock", body)
        assert (reply.status, reply.code) == (400, "MalformedXML"), body


def test_block_public_policy(main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    main_s3.put_public_access_block(
        Bucket=main_bucket, PublicAccessBlockConfiguration={**ALL_OFF, "BlockPublicPolicy": True}
    )
    assert outcome(lambda: main_s3.put_bucket_policy(Bucket=main_bucket, Policy=public_read(main_bucket))) == (
        "AccessDenied"
    )
    main_s3.put_bucket_policy(Bucket=main_bucket, Policy=alt_read(main_bucket))  # not public: fine
    main_s3.delete_public_access_block(Bucket=main_bucket)
    main_s3.put_bucket_policy(Bucket=main_bucket, Policy=public_read(main_bucket))


def test_restrict_public_buckets(  # type: ignore[no-untyped-def]
    auth_server: ServerProcess, main_s3, alt_s3, main_bucket: str
) -> None:
    main_s3.put_object(Bucket=main_bucket, Key="k", Body=b"v")
    both = policy(
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{main_bucket}/*"},
    )
    main_s3.put_bucket_policy(Bucket=main_bucket, Policy=both)
    assert send(auth_server, "GET", f"/{main_bucket}/k", {}).status == 200
    assert outcome(lambda: alt_s3.get_object(Bucket=main_bucket, Key="k")) == "ok"
    main_s3.put_public_access_block(
        Bucket=main_bucket, PublicAccessBlockConfiguration={**ALL_OFF, "RestrictPublicBuckets": True}
    )
    # The public policy no longer reaches anonymous callers nor other users; the owner is unaffected.
    reply = send(auth_server, "GET", f"/{main_bucket}/k", {})
    assert (reply.status, reply.code) == (403, "AccessDenied")
    assert outcome(lambda: alt_s3.get_object(Bucket=main_bucket, Key="k")) == "AccessDenied"
    assert main_s3.get_object(Bucket=main_bucket, Key="k")["Body"].read() == b"v"
    # A policy that is not public still grants the user it names.
    main_s3.put_bucket_policy(Bucket=main_bucket, Policy=alt_read(main_bucket))
    assert outcome(lambda: alt_s3.get_object(Bucket=main_bucket, Key="k")) == "ok"
    assert send(auth_server, "GET", f"/{main_bucket}/k", {}).status == 403
    # Removing the block restores the public policy's effect.
    main_s3.put_bucket_policy(Bucket=main_bucket, Policy=both)
    main_s3.delete_public_access_block(Bucket=main_bucket)
    assert send(auth_server, "GET", f"/{main_bucket}/k", {}).status == 200


def test_restricted_public_policy_denies_still_apply(main_s3, alt_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    main_s3.put_object(Bucket=main_bucket, Key="k", Body=b"v")
    deny_owner = policy(
        {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{main_bucket}/*"},
        {"Effect": "Deny", "Principal": "*", "Action": "s3:DeleteObject", "Resource": f"arn:aws:s3:::{main_bucket}/*"},
    )
    main_s3.put_bucket_policy(Bucket=main_bucket, Policy=deny_owner)
    main_s3.put_public_access_block(Bucket=main_bucket, PublicAccessBlockConfiguration=ALL_ON)
    assert outcome(lambda: main_s3.delete_object(Bucket=main_bucket, Key="k")) == "AccessDenied"
    assert outcome(lambda: alt_s3.get_object(Bucket=main_bucket, Key="k")) == "AccessDenied"


@pytest.fixture(scope="module")
def blocking_server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    server = start_auth_server(Path(tmp_path_factory.mktemp("pab-default")), public_access_block="all")
    try:
        yield server
    finally:
        server.stop()


def test_server_default_all(blocking_server: ServerProcess) -> None:
    s3 = client(blocking_server, MAIN)
    bucket = new_bucket_name()
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="k", Body=b"v")
    # The default is not the bucket's own configuration...
    assert outcome(lambda: s3.get_public_access_block(Bucket=bucket)) == "NoSuchPublicAccessBlockConfiguration"
    # ...but it applies: a public policy is refused.
    assert outcome(lambda: s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket))) == "AccessDenied"
    # The owner may loosen its own bucket.
    s3.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=ALL_OFF)
    s3.put_bucket_policy(Bucket=bucket, Policy=public_read(bucket))
    assert send(blocking_server, "GET", f"/{bucket}/k", {}).status == 200
    # Back to the default: the stored public policy stops reaching anonymous callers.
    s3.delete_public_access_block(Bucket=bucket)
    assert send(blocking_server, "GET", f"/{bucket}/k", {}).status == 403
