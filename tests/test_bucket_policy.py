"""Bucket policies on a real server with authentication on: the four operations and their
errors, and what they decide for the owner, another user (ALT) and anonymous callers
(raw HTTP, as curl or a browser sends it)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.auth_support import ALT, client, new_bucket_name, outcome, send, signed
from tests.server_process import ServerProcess

pytestmark = pytest.mark.server

ALT_ARN = f"arn:aws:iam::{ALT.user_id}:root"


def policy(bucket: str, *statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(principal: Any, actions: list[str], resources: list[str], **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Principal": principal, "Action": actions, "Resource": resources, **extra}


def public_read(bucket: str) -> str:
    return policy(
        bucket,
        allow("*", ["s3:GetObject"], [f"arn:aws:s3:::{bucket}/*"]),
        allow("*", ["s3:ListBucket"], [f"arn:aws:s3:::{bucket}"]),
    )


def error_code(call: Any, **kwargs: Any) -> tuple[int, str]:
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


# ---------------------------------------------------------------------- the operations
def test_policy_crud_and_status(main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    assert error_code(main_s3.get_bucket_policy, Bucket=main_bucket) == (404, "NoSuchBucketPolicy")
    assert main_s3.get_bucket_policy_status(Bucket=main_bucket)["PolicyStatus"]["IsPublic"] is False
    private = policy(main_bucket, allow({"AWS": ALT_ARN}, ["s3:GetObject"], [f"arn:aws:s3:::{main_bucket}/*"]))
    main_s3.put_bucket_policy(Bucket=main_bucket, Policy=private)
    assert main_s3.get_bucket_policy(Bucket=main_bucket)["Policy"] == private  # as given, byte for byte
    assert main_s3.get_bucket_policy_status(Bucket=main_bucket)["PolicyStatus"]["IsPublic"] is False
    main_s3.put_bucket_policy(Bucket=main_bucket, Policy=public_read(main_bucket))
    assert main_s3.get_bucket_policy_status(Bucket=main_bucket)["PolicyStatus"]["IsPublic"] is True
    main_s3.delete_bucket_policy(Bucket=main_bucket)
    assert error_code(main_s3.get_bucket_policy, Bucket=main_bucket) == (404, "NoSuchBucketPolicy")
    main_s3.delete_bucket_policy(Bucket=main_bucket)  # deleting none is fine, as S3


def test_policy_errors(main_s3, alt_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    bad = {
        "not json": "{nope",
        "not an object": "[]",
        "other bucket": policy(main_bucket, allow("*", ["s3:GetObject"], ["arn:aws:s3:::someone-else/*"])),
        "unknown action": policy(main_bucket, allow("*", ["s3:Fly"], [f"arn:aws:s3:::{main_bucket}/*"])),
        "no principal": policy(
            main_bucket, {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{main_bucket}/*"}
        ),
    }
    for text in bad.values():
        assert error_code(main_s3.put_bucket_policy, Bucket=main_bucket, Policy=text) == (400, "MalformedPolicy")
    huge = policy(
        main_bucket,
        allow("*", ["s3:GetObject"], [f"arn:aws:s3:::{main_bucket}/{'x' * 100}{i}" for i in range(250)]),
    )
    assert error_code(main_s3.put_bucket_policy, Bucket=main_bucket, Policy=huge) == (400, "MalformedPolicy")
    assert error_code(main_s3.get_bucket_policy, Bucket=main_bucket) == (404, "NoSuchBucketPolicy")  # none stored
    missing = new_bucket_name()
    assert error_code(main_s3.put_bucket_policy, Bucket=missing, Policy=public_read(missing)) == (404, "NoSuchBucket")
    # Only the owner manages the policy.
    assert error_code(alt_s3.put_bucket_policy, Bucket=main_bucket, Policy=public_read(main_bucket)) == (
        403,
        "AccessDenied",
    )
    assert error_code(alt_s3.get_bucket_policy, Bucket=main_bucket) == (403, "AccessDenied")


def test_malformed_policy_message_is_the_reason(auth_server: ServerProcess, main_bucket: str) -> None:
    reply = signed(auth_server, "PUT", f"/{main_bucket}?policy", body=b"{nope")
    assert reply.status == 400 and reply.code == "MalformedPolicy"
    assert b"<Message>" in reply.body and b"<Message></Message>" not in reply.body


# ---------------------------------------------------------------------- anonymous access
def test_public_read_policy_lets_anyone_read_and_list_but_not_write(  # type: ignore[no-untyped-def]
    auth_server: ServerProcess, main_s3, main_bucket: str
) -> None:
    main_s3.put_object(Bucket=main_bucket, Key="site/index.html", Body=b"<h1>hi</h1>")
    assert send(auth_server, "GET", f"/{main_bucket}/site/index.html", {}).status == 403
    main_s3.put_bucket_policy(Bucket=main_bucket, Policy=public_read(main_bucket))
    got = send(auth_server, "GET", f"/{main_bucket}/site/index.html", {"User-Agent": "curl/8.5.0"})
    assert got.status == 200 and got.body == b"<h1>hi</h1>"
    head = send(auth_server, "HEAD", f"/{main_bucket}/site/index.html", {"User-Agent": "Mozilla/5.0"})
    assert head.status == 200 and head.headers["content-length"] == "11"
    listing = send(auth_server, "GET", f"/{main_bucket}?list-type=2", {})
    assert listing.status == 200 and b"<Key>site/index.html</Key>" in listing.body
    assert send(auth_server, "GET", f"/{main_bucket}/site/missing", {}).status == 404
    put = send(auth_server, "PUT", f"/{main_bucket}/site/evil", {}, b"x")
    assert (put.status, put.code) == (403, "AccessDenied")
    delete = send(auth_server, "DELETE", f"/{main_bucket}/site/index.html", {})
    assert (delete.status, delete.code) == (403, "AccessDenied")
    acl = send(auth_server, "GET", f"/{main_bucket}?policy", {})
    assert (acl.status, acl.code) == (403, "AccessDenied")
    # Other buckets stay private; a missing bucket is still NoSuchBucket.
    assert send(auth_server, "GET", f"/{new_bucket_name()}/x", {}).code == "NoSuchBucket"
    main_s3.delete_bucket_policy(Bucket=main_bucket)
    assert send(auth_server, "GET", f"/{main_bucket}/site/index.html", {}).status == 403


def test_source_ip_condition(auth_server: ServerProcess, main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    main_s3.put_object(Bucket=main_bucket, Key="k", Body=b"v")

    def only_from(cidr: str) -> str:
        statement = allow(
            "*",
            ["s3:GetObject"],
            [f"arn:aws:s3:::{main_bucket}/*"],
            Condition={"IpAddress": {"aws:SourceIp": cidr}},
        )
        return policy(main_bucket, statement)

    main_s3.put_bucket_policy(Bucket=main_bucket, Policy=only_from("127.0.0.1/32"))
    assert send(auth_server, "GET", f"/{main_bucket}/k", {}).status == 200
    main_s3.put_bucket_policy(Bucket=main_bucket, Policy=only_from("10.0.0.0/8"))
    assert send(auth_server, "GET", f"/{main_bucket}/k", {}).status == 403
    assert main_s3.get_bucket_policy_status(Bucket=main_bucket)["PolicyStatus"]["IsPublic"] is False


# ---------------------------------------------------------------------- owner and other users
def test_deny_overrides_the_owner_who_can_still_manage_the_policy(main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    main_s3.put_object(Bucket=main_bucket, Key="secret/a", Body=b"s")
    main_s3.put_object(Bucket=main_bucket, Key="open/a", Body=b"o")
    deny = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": ["s3:GetObject", "s3:PutBucketPolicy", "s3:DeleteBucketPolicy", "s3:GetBucketPolicy"],
        "Resource": [f"arn:aws:s3:::{main_bucket}/secret/*", f"arn:aws:s3:::{main_bucket}"],
    }
    main_s3.put_bucket_policy(Bucket=main_bucket, Policy=policy(main_bucket, deny))
    assert outcome(lambda: main_s3.get_object(Bucket=main_bucket, Key="secret/a")) == "AccessDenied"
    assert main_s3.get_object(Bucket=main_bucket, Key="open/a")["Body"].read() == b"o"
    # The owner is never locked out of the policy itself.
    assert json.loads(main_s3.get_bucket_policy(Bucket=main_bucket)["Policy"])["Statement"][0]["Effect"] == "Deny"
    main_s3.delete_bucket_policy(Bucket=main_bucket)
    assert main_s3.get_object(Bucket=main_bucket, Key="secret/a")["Body"].read() == b"s"


def test_other_user_allowed_for_one_prefix(main_s3, alt_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    main_s3.put_object(Bucket=main_bucket, Key="shared/a", Body=b"a")
    main_s3.put_object(Bucket=main_bucket, Key="private/b", Body=b"b")
    grant = allow(
        {"AWS": ALT_ARN},
        ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
        [f"arn:aws:s3:::{main_bucket}/shared/*"],
    )
    assert outcome(lambda: alt_s3.get_object(Bucket=main_bucket, Key="shared/a")) == "AccessDenied"
    main_s3.put_bucket_policy(Bucket=main_bucket, Policy=policy(main_bucket, grant))
    assert alt_s3.get_object(Bucket=main_bucket, Key="shared/a")["Body"].read() == b"a"
    alt_s3.put_object(Bucket=main_bucket, Key="shared/from-alt", Body=b"x")
    assert outcome(lambda: alt_s3.get_object(Bucket=main_bucket, Key="private/b")) == "AccessDenied"
    assert outcome(lambda: alt_s3.put_object(Bucket=main_bucket, Key="private/c", Body=b"x")) == "AccessDenied"
    assert outcome(lambda: alt_s3.list_objects_v2(Bucket=main_bucket)) == "AccessDenied"
    assert outcome(lambda: alt_s3.delete_bucket(Bucket=main_bucket)) == "AccessDenied"
    # DeleteObjects is decided per key.
    result = alt_s3.delete_objects(
        Bucket=main_bucket, Delete={"Objects": [{"Key": "shared/from-alt"}, {"Key": "private/b"}]}
    )
    assert [d["Key"] for d in result.get("Deleted", [])] == ["shared/from-alt"]
    assert [(e["Key"], e["Code"]) for e in result["Errors"]] == [("private/b", "AccessDenied")]
    assert main_s3.get_object(Bucket=main_bucket, Key="private/b")["Body"].read() == b"b"
    # Copying needs s3:GetObject on the source too.
    own = new_bucket_name()
    alt_s3.create_bucket(Bucket=own)
    alt_s3.copy_object(Bucket=own, Key="copy", CopySource={"Bucket": main_bucket, "Key": "shared/a"})
    assert alt_s3.get_object(Bucket=own, Key="copy")["Body"].read() == b"a"
    denied = outcome(
        lambda: alt_s3.copy_object(Bucket=own, Key="c2", CopySource={"Bucket": main_bucket, "Key": "private/b"})
    )
    assert denied == "AccessDenied"


def test_prefix_condition_on_list_bucket(main_s3, alt_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    main_s3.put_object(Bucket=main_bucket, Key="public/a", Body=b"a")
    main_s3.put_object(Bucket=main_bucket, Key="private/b", Body=b"b")
    statement = allow(
        {"AWS": ALT_ARN},
        ["s3:ListBucket"],
        [f"arn:aws:s3:::{main_bucket}"],
        Condition={"StringLike": {"s3:prefix": "public/*"}},
    )
    main_s3.put_bucket_policy(Bucket=main_bucket, Policy=policy(main_bucket, statement))
    keys = [o["Key"] for o in alt_s3.list_objects_v2(Bucket=main_bucket, Prefix="public/")["Contents"]]
    assert keys == ["public/a"]
    assert outcome(lambda: alt_s3.list_objects_v2(Bucket=main_bucket, Prefix="private/")) == "AccessDenied"
    assert outcome(lambda: alt_s3.list_objects_v2(Bucket=main_bucket)) == "AccessDenied"
    assert outcome(lambda: alt_s3.list_objects(Bucket=main_bucket, Prefix="public/x")) == "ok"
    # A read of a missing key the caller may list answers 404, as S3; an existing one stays
    # refused (no s3:GetObject), and so does a missing key outside the listable prefix.
    assert outcome(lambda: alt_s3.head_object(Bucket=main_bucket, Key="public/missing")) == "404"
    assert outcome(lambda: alt_s3.get_object(Bucket=main_bucket, Key="public/missing")) == "NoSuchKey"
    assert outcome(lambda: alt_s3.get_object(Bucket=main_bucket, Key="public/a")) == "AccessDenied"
    assert outcome(lambda: alt_s3.head_object(Bucket=main_bucket, Key="private/missing")) == "403"


def test_policy_applies_at_once(  # type: ignore[no-untyped-def]
    auth_server: ServerProcess, main_s3, main_bucket: str
) -> None:
    """The gate's cached state is forgotten on change: no waiting for the cache to expire."""
    alt = client(auth_server, ALT)
    main_s3.put_object(Bucket=main_bucket, Key="k", Body=b"v")
    assert outcome(lambda: alt.get_object(Bucket=main_bucket, Key="k")) == "AccessDenied"
    grant = allow({"CanonicalUser": ALT.user_id}, ["s3:GetObject"], [f"arn:aws:s3:::{main_bucket}/*"])
    main_s3.put_bucket_policy(Bucket=main_bucket, Policy=policy(main_bucket, grant))
    assert outcome(lambda: alt.get_object(Bucket=main_bucket, Key="k")) == "ok"
    main_s3.delete_bucket_policy(Bucket=main_bucket)
    assert outcome(lambda: alt.get_object(Bucket=main_bucket, Key="k")) == "AccessDenied"
    assert main_s3.get_object(Bucket=main_bucket, Key="k")["Body"].read() == b"v"


def test_existing_object_tag_condition(main_s3, alt_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    """s3:ExistingObjectTag/<key> conditions on the tags the object has (read before deciding)."""
    condition = {"StringEquals": {"s3:ExistingObjectTag/security": "public"}}
    main_s3.put_bucket_policy(
        Bucket=main_bucket,
        Policy=policy(
            main_bucket,
            allow("*", ["s3:GetObject", "s3:GetObjectTagging"], [f"arn:aws:s3:::{main_bucket}/*"], Condition=condition),
        ),
    )
    for key, tags in (("public", "security=public&foo=bar"), ("private", "security=private"), ("other", "sec=public")):
        main_s3.put_object(Bucket=main_bucket, Key=key, Body=key.encode(), Tagging=tags)
    assert alt_s3.get_object(Bucket=main_bucket, Key="public")["Body"].read() == b"public"
    assert alt_s3.get_object_tagging(Bucket=main_bucket, Key="public")["TagSet"]
    assert outcome(lambda: alt_s3.get_object(Bucket=main_bucket, Key="private")) == "AccessDenied"
    assert outcome(lambda: alt_s3.get_object(Bucket=main_bucket, Key="other")) == "AccessDenied"
    assert outcome(lambda: alt_s3.get_object(Bucket=main_bucket, Key="missing")) == "AccessDenied"
    # Retagging the object changes the decision at once.
    main_s3.put_object_tagging(
        Bucket=main_bucket, Key="private", Tagging={"TagSet": [{"Key": "security", "Value": "public"}]}
    )
    assert alt_s3.get_object(Bucket=main_bucket, Key="private")["Body"].read() == b"private"


def test_not_principal_allow_is_refused(main_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    statement = {
        "Effect": "Allow",
        "NotPrincipal": {"AWS": f"arn:aws:iam::{ALT.user_id}:root"},
        "Action": "s3:ListBucket",
        "Resource": f"arn:aws:s3:::{main_bucket}",
    }
    assert error_code(main_s3.put_bucket_policy, Bucket=main_bucket, Policy=policy(main_bucket, statement)) == (
        400,
        "MalformedPolicy",
    )
