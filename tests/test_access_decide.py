"""The authorization decision (access/decide.py) and the request's condition keys
(access/facts.py), with real parsed policies and real Request objects."""

from __future__ import annotations

import json
from typing import Any

from coffer.server.access.decide import allowed, bucket_arn, object_arn
from coffer.server.access.facts import request_facts
from coffer.server.access.identity import PRESETS, compile_identity_policy
from coffer.server.auth.principal import ANONYMOUS, Principal
from coffer.server.bucket_state import compile_stored
from coffer.server.request import Request

OWNER = Principal("owner-id", "Owner", "AKOWNER")
OTHER = Principal("other-id", "Other", "AKOTHER")


def make_request(path: str, query: bytes = b"", headers: dict[str, str] | None = None) -> Request:
    raw = [(k.encode(), v.encode()) for k, v in {"host": "127.0.0.1:9000", **(headers or {})}.items()]
    scope = {
        "method": "GET",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": raw,
        "client": ("127.0.0.1", 40000),
    }
    return Request(scope, None, ())  # type: ignore[arg-type]


def bucket_policy(*statements: dict[str, Any]) -> Any:
    return compile_stored("b", json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))


def test_facts_are_computed_from_the_request() -> None:
    req = make_request(
        "/b",
        b"prefix=logs%2F&delimiter=%2F&max-keys=10&X-Amz-Algorithm=AWS4-HMAC-SHA256",
        {"user-agent": "curl/8", "x-amz-tagging": "team=red&env=", "x-amz-acl": "private"},
    )
    facts = request_facts(req, OWNER, secure=False)
    assert facts.get("aws:sourceip") == ["127.0.0.1"]
    assert facts.get("aws:securetransport") == ["false"]
    assert facts.get("aws:useragent") == ["curl/8"]
    assert facts.get("aws:referer") is None
    assert facts.get("aws:userid") == ["owner-id"] and facts.get("aws:username") == ["Owner"]
    assert facts.get("aws:principaltype") == ["Account"]
    assert facts.get("s3:prefix") == ["logs/"] and facts.get("s3:delimiter") == ["/"]
    assert facts.get("s3:max-keys") == ["10"]
    assert facts.get("s3:x-amz-acl") == ["private"]
    assert facts.get("s3:requestobjecttagkeys") == ["team", "env"]
    assert facts.get("s3:requestobjecttag/team") == ["red"]
    assert facts.get("s3:signatureversion") == ["AWS4-HMAC-SHA256"]
    assert facts.get("s3:authtype") == ["REST-QUERY-STRING"]
    assert facts.get("aws:currenttime", [""])[0].endswith("Z")  # type: ignore[index]
    assert "s3:prefix" in facts.as_dict() and "aws:referer" not in facts.as_dict()
    anonymous = request_facts(make_request("/b/k"), ANONYMOUS, secure=True)
    assert anonymous.get("aws:principaltype") == ["Anonymous"] and anonymous.get("aws:userid") is None
    assert anonymous.get("aws:securetransport") == ["true"]
    assert anonymous.get("s3:prefix") is None  # not a listing


def decide(principal: Principal, policy: Any, action: str, resource: str, req: Request | None = None) -> bool:
    request = req or make_request("/b/k")
    return allowed(principal, "owner-id", policy, action, resource, lambda: request_facts(request, principal, False))


def test_without_policies_only_the_owner() -> None:
    assert decide(OWNER, None, "s3:GetObject", object_arn("b", "k"))
    assert not decide(OTHER, None, "s3:GetObject", object_arn("b", "k"))
    assert not decide(ANONYMOUS, None, "s3:GetObject", object_arn("b", "k"))


def test_deny_binds_the_owner_except_for_managing_the_policy() -> None:
    policy = bucket_policy(
        {"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": ["arn:aws:s3:::b", "arn:aws:s3:::b/*"]}
    )
    assert not decide(OWNER, policy, "s3:GetObject", object_arn("b", "k"))
    assert decide(OWNER, policy, "s3:PutBucketPolicy", bucket_arn("b"))
    assert decide(OWNER, policy, "s3:DeleteBucketPolicy", bucket_arn("b"))
    assert not decide(OTHER, policy, "s3:PutBucketPolicy", bucket_arn("b"))


def test_grants_reach_others_and_a_grant_only_policy_costs_the_owner_nothing() -> None:
    policy = bucket_policy(
        {"Effect": "Allow", "Principal": {"AWS": "other-id"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
    )
    assert policy.denies is None
    assert decide(OTHER, policy, "s3:GetObject", object_arn("b", "k"))
    assert not decide(OTHER, policy, "s3:PutObject", object_arn("b", "k"))
    assert not decide(ANONYMOUS, policy, "s3:GetObject", object_arn("b", "k"))
    assert decide(OWNER, policy, "s3:PutObject", object_arn("b", "k"))


def test_identity_policies_bound_the_key_everywhere() -> None:
    readonly = Principal("owner-id", "Owner", "AKRO", compile_identity_policy(PRESETS["readonly"]))
    assert decide(readonly, None, "s3:GetObject", object_arn("b", "k"))
    assert not decide(readonly, None, "s3:PutObject", object_arn("b", "k"))
    assert decide(readonly, None, "s3:ListAllMyBuckets", "arn:aws:s3:::*")
    everyone_writes = bucket_policy(
        {"Effect": "Allow", "Principal": "*", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/*"}
    )
    outsider = Principal("x-id", "X", "AKX", compile_identity_policy(PRESETS["readonly"]))
    assert not decide(outsider, everyone_writes, "s3:PutObject", object_arn("b", "k"))
    assert decide(OTHER, everyone_writes, "s3:PutObject", object_arn("b", "k"))
    # The owner's restricted key: the bucket policy may grant what its identity policy does not.
    assert decide(readonly, everyone_writes, "s3:PutObject", object_arn("b", "k"))
    deny_puts = compile_identity_policy(
        json.dumps({"Statement": [{"Effect": "Deny", "Action": "s3:PutObject", "Resource": "*"}]})
    )
    denied = Principal("other-id", "Other", "AKD", deny_puts)
    assert not decide(denied, everyone_writes, "s3:PutObject", object_arn("b", "k"))


def test_conditions_read_the_request() -> None:
    policy = bucket_policy(
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:ListBucket",
            "Resource": "arn:aws:s3:::b",
            "Condition": {"StringLike": {"s3:prefix": "pub/*"}, "IpAddress": {"aws:SourceIp": "127.0.0.0/8"}},
        }
    )
    assert decide(ANONYMOUS, policy, "s3:ListBucket", bucket_arn("b"), make_request("/b", b"prefix=pub/x"))
    assert not decide(ANONYMOUS, policy, "s3:ListBucket", bucket_arn("b"), make_request("/b", b"prefix=priv/"))
    assert not decide(ANONYMOUS, policy, "s3:ListBucket", bucket_arn("b"), make_request("/b"))


# ---------------------------------------------------------------------- ACLs with policies
def _access(principal: Principal, policy: Any, acl: Any, block: Any = None) -> Any:
    from coffer.server.access.request_access import RequestAccess

    return RequestAccess(
        principal, "owner-id", policy, lambda: request_facts(make_request("/b/k"), principal, False), acl, block
    )


def test_verdict_leaves_strangers_to_the_acl() -> None:
    from coffer.server.access.decide import verdict

    none = lambda: {}  # noqa: E731
    assert verdict(OWNER, "owner-id", None, "s3:GetObject", object_arn("b", "k"), none) == "allow"
    assert verdict(OTHER, "owner-id", None, "s3:GetObject", object_arn("b", "k"), none) == "acl"
    assert verdict(ANONYMOUS, "owner-id", None, "s3:ListBucket", bucket_arn("b"), none) == "acl"
    deny = bucket_policy({"Effect": "Deny", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"})
    facts = lambda: request_facts(make_request("/b/k"), OTHER, False)  # noqa: E731
    assert verdict(OTHER, "owner-id", deny, "s3:GetObject", object_arn("b", "k"), facts) == "refuse"
    # A user whose identity policy does not allow the action gets nothing from an ACL.
    readonly = Principal("other-id", "Other", "AKOTHER", compile_identity_policy(PRESETS["writeonly"]))
    assert verdict(readonly, "owner-id", None, "s3:GetObject", object_arn("b", "k"), facts) == "refuse"


def test_acl_grants_through_request_access() -> None:
    from coffer.server.access.acl import canned_acl
    from coffer.server.public_access import PublicAccessBlock

    public = canned_acl("public-read", "owner-id")
    access = _access(ANONYMOUS, None, public)
    assert access.allows("s3:ListBucket", bucket_arn("b"))
    assert not access.allows("s3:PutObject", object_arn("b", "k"))
    assert not access.allows("s3:GetObject", object_arn("b", "k"))  # an object's own ACL grants reads
    assert access.needs_object_acl("s3:GetObject") and access.acl_allows("s3:GetObject", public)
    ignored = _access(ANONYMOUS, None, public, PublicAccessBlock(ignore_public_acls=True))
    assert not ignored.allows("s3:ListBucket", bucket_arn("b"))
    assert not ignored.acl_allows("s3:GetObject", public)
    writable = _access(OTHER, None, canned_acl("public-read-write", "owner-id"))
    assert writable.allows("s3:PutObject", object_arn("b", "k")) and writable.allows(
        "s3:DeleteObject", object_arn("b", "k")
    )
    # The owner of an object may always read and change its ACL.
    mine = canned_acl("private", "other-id")
    assert _access(OTHER, None, None).acl_allows("s3:PutObjectAcl", mine)
    assert not _access(OTHER, None, None).acl_allows("s3:GetObject", canned_acl("private", "owner-id"))


def test_existing_object_tags_are_condition_keys() -> None:
    facts = request_facts(make_request("/b/k"), OTHER, secure=False, existing_tags={"Security": "public"})
    assert facts.get("s3:existingobjecttag/Security") == ["public"]
    assert facts.get("s3:existingobjecttag/other") is None
    assert "s3:existingobjecttag/Security" in facts.as_dict()
    policy = bucket_policy(
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::b/*",
            "Condition": {"StringEquals": {"s3:ExistingObjectTag/Security": "public"}},
        }
    )
    assert (
        policy.policy.reads_existing_tags
        and not bucket_policy(
            {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*"}
        ).policy.reads_existing_tags
    )
    assert allowed(OTHER, "owner-id", policy, "s3:GetObject", object_arn("b", "k"), lambda: facts)
    untagged = request_facts(make_request("/b/k"), OTHER, secure=False)
    assert not allowed(OTHER, "owner-id", policy, "s3:GetObject", object_arn("b", "k"), lambda: untagged)
