"""The IAM policy language (coffer/server/access/policy.py): validation reasons, every condition
operator with its IfExists / ForAnyValue / ForAllValues forms, wildcards, Not* elements, Deny over
Allow, CIDRs, dates, policy variables and AWS's meaning of "public"."""

from __future__ import annotations

import json
from typing import Any

import pytest

from coffer.server.access.actions import ACTIONS
from coffer.server.access.policy import MAX_POLICY_BYTES, Caller, MalformedPolicy, Policy, parse_policy
from coffer.server.router import ROUTES

B = "bkt"
OBJ = f"arn:aws:s3:::{B}/dir/key.txt"
BUCKET_ARN = f"arn:aws:s3:::{B}"
ANON = Caller(frozenset(), True)
ALICE = Caller(frozenset({"alice-canonical", "arn:aws:iam::111:user/alice", "arn:aws:iam::111:root", "111"}), False)
BOB = Caller(frozenset({"bob-canonical", "arn:aws:iam::222:user/bob", "arn:aws:iam::222:root", "222"}), False)


def stmt(**over: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": f"{BUCKET_ARN}/*"}
    s.update(over)
    return {k: v for k, v in s.items() if v is not None}


def doc(*statements: dict[str, Any], version: str | None = "2012-10-17") -> str:
    d: dict[str, Any] = {"Statement": list(statements)}
    if version is not None:
        d["Version"] = version
    return json.dumps(d)


def bucket_policy(*statements: dict[str, Any], version: str | None = "2012-10-17") -> Policy:
    return parse_policy(doc(*statements, version=version), bucket=B)


def cond(operator: str, key: str, values: Any) -> Policy:
    return bucket_policy(stmt(Condition={operator: {key: values}}))


def allows(policy: Policy, facts: dict[str, list[str]], caller: Caller = ANON) -> bool:
    return policy.evaluate(caller, "s3:GetObject", OBJ, facts) == "allow"


# ------------------------------------------------------------------ validation
JSON_ERR = "This policy contains invalid Json"
NOT_APPLY = "Action does not apply to any resource(s) in statement"
OP_ERR = "Invalid Condition type : "
KEY_ERR = "Policy has an invalid condition key"
VALUE_ERR = "Invalid value in Conditions for operator "


def with_condition(operator: str, key: str, values: Any) -> str:
    return doc(stmt(Condition={operator: {key: values}}))


INVALID: list[tuple[str, str | bytes, str]] = [
    ("not json", "hello", "Policies must be valid JSON and the first byte must be '{'"),
    ("leading space", ' {"Statement": []}', "Policies must be valid JSON and the first byte must be '{'"),
    ("broken json", '{"Statement": [}', JSON_ERR),
    ("NaN", '{"Statement": NaN}', JSON_ERR),
    (
        "Infinity",
        '{"Statement": [{"Condition": {"NumericEquals": {"s3:max-keys": Infinity}}}]}',
        "This policy contains invalid Json",
    ),
    (
        "1e999",
        '{"Statement": [{"Condition": {"NumericEquals": {"s3:max-keys": 1e999}}}]}',
        "This policy contains invalid Json",
    ),
    ("duplicate key", '{"Statement": [], "Statement": []}', JSON_ERR),
    ("bad utf-8", b'{"Id": "\xff"}', JSON_ERR),
    ("deep", "{" + '"a":' * 1 + "[" * 40 + "]" * 40 + "}", JSON_ERR),
    ("unknown field", '{"version": "2012-10-17", "Statement": []}', "Unknown field version"),
    ("bad version", doc(stmt(), version="2020-01-01"), "The policy must contain a valid version string"),
    ("no statement", '{"Version": "2012-10-17"}', "Missing required field Statement"),
    ("empty statement", doc(), "Could not parse the policy: Statement is empty!"),
    ("statement not object", '{"Statement": ["x"]}', "Invalid policy syntax."),
    ("unknown statement field", doc(stmt(Actions="s3:GetObject")), "Unknown field Actions"),
    ("no effect", doc(stmt(Effect=None)), "Missing required field Effect"),
    ("bad effect", doc(stmt(Effect="allow")), "Invalid effect: allow"),
    ("no principal", doc(stmt(Principal=None)), "Missing required field Principal"),
    ("principal and not", doc(stmt(NotPrincipal="*")), "Invalid policy syntax."),
    (
        "not principal allow",
        doc(stmt(Principal=None, NotPrincipal={"AWS": "111"})),
        "NotPrincipal is supported only with Effect Deny",
    ),
    ("bad principal", doc(stmt(Principal="alice")), "Invalid principal in policy"),
    ("principal type", doc(stmt(Principal={"Group": "x"})), "Invalid principal in policy"),
    ("principal wildcard", doc(stmt(Principal={"AWS": "arn:aws:iam::*:root"})), "Invalid principal in policy"),
    ("empty principal", doc(stmt(Principal={})), "Invalid principal in policy"),
    ("no action", doc(stmt(Action=None)), "Missing required field Action"),
    ("unknown action", doc(stmt(Action="s3:GetObjekt")), "Policy has invalid action"),
    ("other service", doc(stmt(Action="ec2:RunInstances")), "Policy has invalid action"),
    ("wildcard naming nothing", doc(stmt(Action="s3:Frob*")), "Policy has invalid action"),
    ("action not string", doc(stmt(Action=[1])), "Policy has invalid action"),
    ("empty action list", doc(stmt(Action=[])), "Policy has invalid action"),
    ("no resource", doc(stmt(Resource=None)), "Missing required field Resource"),
    ("other bucket", doc(stmt(Resource="arn:aws:s3:::other/*")), "Policy has invalid resource"),
    ("star resource in bucket policy", doc(stmt(Resource="*")), "Policy has invalid resource"),
    ("not an s3 arn", doc(stmt(Resource="arn:aws:iam::1:user/x")), "Policy has invalid resource"),
    ("bare prefix", doc(stmt(Resource="arn:aws:s3:::")), "Policy has invalid resource"),
    (
        "object action on bucket",
        doc(stmt(Resource=BUCKET_ARN)),
        "Action does not apply to any resource(s) in statement",
    ),
    (
        "bucket action on objects",
        doc(stmt(Action="s3:ListBucket", Resource=f"{BUCKET_ARN}/x/*")),
        "Action does not apply to any resource(s) in statement",
    ),
    (
        "unknown operator",
        with_condition("StringEqualz", "s3:prefix", "a"),
        OP_ERR + "StringEqualz",
    ),
    (
        "lower-case operator",
        with_condition("stringequals", "s3:prefix", "a"),
        OP_ERR + "stringequals",
    ),
    (
        "NullIfExists",
        with_condition("NullIfExists", "s3:prefix", "true"),
        OP_ERR + "NullIfExists",
    ),
    (
        "unknown s3 key",
        with_condition("StringEquals", "s3:x-acl", "private"),
        "Policy has an invalid condition key",
    ),
    (
        "other service key",
        with_condition("StringEquals", "ec2:Region", "x"),
        "Policy has an invalid condition key",
    ),
    (
        "bad cidr",
        with_condition("IpAddress", "aws:SourceIp", "300.1.2.3/8"),
        "Invalid IP address in Conditions",
    ),
    (
        "bad number",
        with_condition("NumericLessThan", "s3:max-keys", "ten"),
        VALUE_ERR + "NumericLessThan",
    ),
    (
        "bad date",
        with_condition("DateLessThan", "aws:CurrentTime", "yesterday"),
        VALUE_ERR + "DateLessThan",
    ),
    (
        "condition value object",
        with_condition("StringEquals", "s3:prefix", {"a": 1}),
        "Invalid policy syntax.",
    ),
    ("duplicate sid", doc(stmt(Sid="x"), stmt(Sid="x")), "Statement IDs (SID) in a single policy must be unique."),
]


@pytest.mark.parametrize(("text", "reason"), [(t, r) for _, t, r in INVALID], ids=[n for n, _, _ in INVALID])
def test_malformed_policy_reasons(text: str | bytes, reason: str) -> None:
    with pytest.raises(MalformedPolicy) as e:
        parse_policy(text, bucket=B)
    assert e.value.reason == reason


def test_size_limit_counts_the_compact_document() -> None:
    padding = "x" * (MAX_POLICY_BYTES)
    with pytest.raises(MalformedPolicy, match="20 KB"):
        parse_policy(doc(stmt(Sid=padding)), bucket=B)
    pretty = json.dumps({"Version": "2012-10-17", "Statement": [stmt(Action=["s3:GetObject"] * 40)]}, indent=300)
    assert 4 * MAX_POLICY_BYTES > len(pretty) > MAX_POLICY_BYTES
    parse_policy(pretty, bucket=B)  # whitespace is not counted, as AWS
    with pytest.raises(MalformedPolicy, match="20 KB"):
        parse_policy(b"{" + b" " * (5 * MAX_POLICY_BYTES) + b"}", bucket=B)


def test_identity_policy_shape() -> None:
    ident = parse_policy(doc(stmt(Principal=None, Resource="*")))
    assert ident.evaluate(None, "s3:GetObject", "arn:aws:s3:::any/k", {}) == "allow"
    assert ident.evaluate(None, "s3:ListAllMyBuckets", "*", {}) is None
    with pytest.raises(MalformedPolicy, match="should not specify a principal"):
        parse_policy(doc(stmt()))
    assert not ident.is_public()


def test_accepted_shapes() -> None:
    p = parse_policy(json.dumps({"Id": "p1", "Statement": stmt()}), bucket=B)  # single object, no Version
    assert p.version == "2008-10-17" and p.id == "p1" and p.text.startswith("{")
    assert allows(p, {})
    p = parse_policy(doc(stmt(Principal={"Service": "logging.s3.amazonaws.com"})).encode(), bucket=B)
    assert not allows(p, {})  # accepted, but a service principal never matches a caller
    bucket_policy(stmt(Action="*", Resource=[BUCKET_ARN, f"{BUCKET_ARN}/*"]))
    bucket_policy(stmt(Resource="arn:aws:s3:::bk?/*"))
    bucket_policy(stmt(Resource="arn:aws:s3:::${aws:username}/*"))  # variable bucket part: per request
    bucket_policy(stmt(Action="s3:ListAllMyBuckets", Resource="arn:aws:s3:::*"))


def test_every_routed_action_and_the_iam_only_ones_are_known() -> None:
    for route in ROUTES:
        if route.action:
            assert route.action.lower() in ACTIONS, route.action
    for name in ("BypassGovernanceRetention", "ListBucketVersions", "GetObjectVersion", "DeleteObjectVersion",
                 "GetObjectVersionTagging", "PutObjectVersionTagging", "DeleteObjectVersionTagging",
                 "GetObjectVersionAcl", "PutObjectVersionAcl", "GetObjectVersionAttributes",
                 "GetObjectAttributes", "ListAllMyBuckets"):  # fmt: skip
        assert "s3:" + name.lower() in ACTIONS


# ------------------------------------------------------------------ core evaluation
def test_actions_are_case_insensitive_wildcards() -> None:
    p = bucket_policy(stmt(Action=["S3:getobj*", "s3:Put?bject"]))
    assert p.evaluate(ANON, "s3:GetObject", OBJ, {}) == "allow"
    assert p.evaluate(ANON, "s3:GetObjectVersion", OBJ, {}) == "allow"
    assert p.evaluate(ANON, "s3:PutObject", OBJ, {}) == "allow"
    assert p.evaluate(ANON, "s3:DeleteObject", OBJ, {}) is None
    assert p.evaluate(ANON, "s3:GetObjectAcl", OBJ, {}) == "allow"  # "getobj*" names every GetObject...
    assert p.evaluate(ANON, "s3:GetBucketAcl", OBJ, {}) is None
    assert p.evaluate(ANON, "s3:PutObjectAcl", OBJ, {}) is None  # "?" is one character


def test_resource_wildcards_are_case_sensitive_and_cross_slashes() -> None:
    p = bucket_policy(stmt(Resource=f"{BUCKET_ARN}/dir/*.txt"))
    assert p.evaluate(ANON, "s3:GetObject", f"{BUCKET_ARN}/dir/a/b.txt", {}) == "allow"
    assert p.evaluate(ANON, "s3:GetObject", f"{BUCKET_ARN}/DIR/a.txt", {}) is None
    assert p.evaluate(ANON, "s3:GetObject", f"{BUCKET_ARN}/dir/a.txt2", {}) is None
    q = bucket_policy(stmt(Resource=f"{BUCKET_ARN}/d?r/key.txt"))
    assert q.evaluate(ANON, "s3:GetObject", OBJ, {}) == "allow"
    assert q.evaluate(ANON, "s3:GetObject", f"{BUCKET_ARN}/dr/key.txt", {}) is None
    special = bucket_policy(stmt(Resource=f"{BUCKET_ARN}/a+b(c)[d].txt"))
    assert special.evaluate(ANON, "s3:GetObject", f"{BUCKET_ARN}/a+b(c)[d].txt", {}) == "allow"
    assert special.evaluate(ANON, "s3:GetObject", f"{BUCKET_ARN}/aab(c)[d].txt", {}) is None


def test_principals() -> None:
    p = bucket_policy(stmt(Principal={"AWS": ["arn:aws:iam::111:root"], "CanonicalUser": "bob-canonical"}))
    assert allows(p, {}, ALICE) and allows(p, {}, BOB) and not allows(p, {}, ANON)
    everyone = bucket_policy(stmt(Principal={"AWS": "*"}))
    assert allows(everyone, {}, ANON) and allows(everyone, {}, ALICE)
    assert bucket_policy(stmt()).evaluate(None, "s3:GetObject", OBJ, {}) == "allow"


def test_not_principal_not_action_not_resource() -> None:
    deny_others = bucket_policy(stmt(Effect="Deny", Principal=None, NotPrincipal={"AWS": "111"}), stmt())
    assert allows(deny_others, {}, ALICE)
    assert deny_others.evaluate(BOB, "s3:GetObject", OBJ, {}) == "deny"
    assert deny_others.evaluate(ANON, "s3:GetObject", OBJ, {}) == "deny"
    not_action = bucket_policy(stmt(Action=None, NotAction="s3:Delete*"))
    assert not_action.evaluate(ANON, "s3:GetObject", OBJ, {}) == "allow"
    assert not_action.evaluate(ANON, "s3:DeleteObject", OBJ, {}) is None
    not_resource = bucket_policy(stmt(Resource=None, NotResource=f"{BUCKET_ARN}/private/*"))
    assert not_resource.evaluate(ANON, "s3:GetObject", OBJ, {}) == "allow"
    assert not_resource.evaluate(ANON, "s3:GetObject", f"{BUCKET_ARN}/private/x", {}) is None


def test_deny_beats_allow_in_any_order() -> None:
    allow, deny = stmt(Action="s3:*"), stmt(Effect="Deny", Resource=f"{BUCKET_ARN}/dir/*")
    for order in ((allow, deny), (deny, allow)):
        p = bucket_policy(*order)
        assert p.evaluate(ANON, "s3:GetObject", OBJ, {}) == "deny"
        assert p.evaluate(ANON, "s3:GetObject", f"{BUCKET_ARN}/other", {}) == "allow"
        assert p.evaluate(ANON, "s3:PutObject", OBJ, {}) == "allow"  # the Deny names GetObject only


def test_nothing_applies_is_none() -> None:
    p = bucket_policy(stmt(Principal={"AWS": "111"}))
    assert p.evaluate(BOB, "s3:GetObject", OBJ, {}) is None


# ------------------------------------------------------------------ operators
# (operator, key, policy values, request values or None (absent), expected)
OPERATORS: list[tuple[str, str, Any, list[str] | None, bool]] = [
    ("StringEquals", "s3:x-amz-acl", "private", ["private"], True),
    ("StringEquals", "s3:x-amz-acl", "private", ["Private"], False),
    ("StringEquals", "s3:x-amz-acl", ["a", "private"], ["private"], True),
    ("StringEquals", "s3:x-amz-acl", "private", None, False),
    ("StringNotEquals", "s3:x-amz-acl", "private", ["public-read"], True),
    ("StringNotEquals", "s3:x-amz-acl", ["private", "x"], ["private"], False),
    ("StringNotEquals", "s3:x-amz-acl", "private", None, True),  # AWS: a negated operator holds for a missing key
    ("StringEqualsIgnoreCase", "s3:x-amz-acl", "PRIVATE", ["private"], True),
    ("StringNotEqualsIgnoreCase", "s3:x-amz-acl", "PRIVATE", ["private"], False),
    ("StringNotEqualsIgnoreCase", "s3:x-amz-acl", "PRIVATE", ["public"], True),
    ("StringLike", "s3:prefix", "home/*", ["home/a/b"], True),
    ("StringLike", "s3:prefix", "home/?", ["home/ab"], False),
    ("StringLike", "s3:prefix", "home/?", ["home/a"], True),
    ("StringLike", "s3:prefix", "a.b", ["axb"], False),  # regex characters are literal
    ("StringNotLike", "s3:prefix", "home/*", ["etc/x"], True),
    ("StringNotLike", "s3:prefix", "home/*", ["home/x"], False),
    ("StringLikeIfExists", "s3:prefix", "home/*", None, True),
    ("StringLikeIfExists", "s3:prefix", "home/*", ["etc/"], False),
    ("StringEquals", "s3:max-keys", 10, ["10"], True),  # JSON numbers are compared as strings
    ("NumericEquals", "s3:max-keys", "10", ["10.0"], True),
    ("NumericEquals", "s3:max-keys", 10, ["11"], False),
    ("NumericNotEquals", "s3:max-keys", 10, ["11"], True),
    ("NumericLessThan", "s3:max-keys", "10", ["9"], True),
    ("NumericLessThan", "s3:max-keys", "10", ["10"], False),
    ("NumericLessThanEquals", "s3:max-keys", "10", ["10"], True),
    ("NumericGreaterThan", "s3:max-keys", "10", ["10.5"], True),
    ("NumericGreaterThanEquals", "s3:max-keys", "10", ["9"], False),
    ("NumericLessThan", "s3:max-keys", "10", ["nine"], False),  # an unreadable request value matches nothing
    ("NumericLessThan", "s3:max-keys", "10", None, False),
    ("NumericLessThanIfExists", "s3:max-keys", "10", None, True),
    ("DateLessThan", "aws:CurrentTime", "2030-01-01T00:00:00Z", ["2029-12-31T23:59:59Z"], True),
    ("DateLessThan", "aws:CurrentTime", "2030-01-01T00:00:00Z", ["2030-01-01T00:00:00Z"], False),
    ("DateLessThanEquals", "aws:CurrentTime", "2030-01-01", ["2030-01-01T00:00:00+00:00"], True),
    ("DateGreaterThan", "aws:CurrentTime", "2030-01-01T00:00:00Z", ["2030-01-01T01:00:00+02:00"], False),
    ("DateGreaterThan", "aws:EpochTime", "1700000000", ["1700000001"], True),
    ("DateEquals", "aws:CurrentTime", "1893456000", ["2030-01-01T00:00:00Z"], True),  # epoch vs ISO
    ("DateNotEquals", "aws:CurrentTime", "2030-01-01T00:00:00Z", ["2030-01-01T00:00:01Z"], True),
    ("DateGreaterThanEquals", "aws:CurrentTime", "2030-01-01T00:00:00.500Z", ["2030-01-01T00:00:00.499Z"], False),
    ("DateLessThan", "aws:CurrentTime", "2030-01-01T00:00:00Z", ["garbage"], False),
    ("Bool", "aws:SecureTransport", "false", ["false"], True),
    ("Bool", "aws:SecureTransport", False, ["false"], True),
    ("Bool", "aws:SecureTransport", "true", ["false"], False),
    ("Bool", "aws:SecureTransport", "True", ["true"], True),
    ("BoolIfExists", "aws:SecureTransport", "true", None, True),
    ("BinaryEquals", "aws:UserAgent", "QmluYXJ5", ["QmluYXJ5"], True),
    ("BinaryEquals", "aws:UserAgent", "QmluYXJ5", ["qmluyxj5"], False),
    ("IpAddress", "aws:SourceIp", "192.0.2.0/24", ["192.0.2.77"], True),
    ("IpAddress", "aws:SourceIp", "192.0.2.0/24", ["192.0.3.1"], False),
    ("IpAddress", "aws:SourceIp", "192.0.2.7", ["192.0.2.7"], True),
    ("IpAddress", "aws:SourceIp", "192.0.2.1/24", ["192.0.2.200"], True),  # host bits set: still the network
    ("IpAddress", "aws:SourceIp", "2001:db8::/32", ["2001:db8:1::5"], True),
    ("IpAddress", "aws:SourceIp", "2001:db8::/32", ["2001:db9::5"], False),
    ("IpAddress", "aws:SourceIp", "2001:db8::/32", ["192.0.2.1"], False),
    ("IpAddress", "aws:SourceIp", ["10.0.0.0/8", "::1/128"], ["::1"], True),
    ("IpAddress", "aws:SourceIp", "10.0.0.0/8", ["not-an-ip"], False),
    ("NotIpAddress", "aws:SourceIp", "10.0.0.0/8", ["11.0.0.1"], True),
    ("NotIpAddress", "aws:SourceIp", "10.0.0.0/8", ["10.0.0.1"], False),
    ("NotIpAddress", "aws:SourceIp", "10.0.0.0/8", None, True),
    ("IpAddressIfExists", "aws:SourceIp", "10.0.0.0/8", None, True),
    ("ArnEquals", "aws:SourceArn", "arn:aws:sns:us-east-1:123:topic", ["arn:aws:sns:us-east-1:123:topic"], True),
    ("ArnLike", "aws:SourceArn", "arn:aws:sns:*:123:*", ["arn:aws:sns:eu-west-1:123:t/x:y"], True),
    ("ArnLike", "aws:SourceArn", "arn:aws:sns:*:123:*", ["arn:aws:sns:eu:west:123:t"], False),  # * stays in its part
    ("ArnLike", "aws:SourceArn", "arn:aws:s3:::b/*", ["arn:aws:s3:::b/k"], True),
    ("ArnNotLike", "aws:SourceArn", "arn:aws:s3:::b/*", ["arn:aws:s3:::c/k"], True),
    ("ArnNotEquals", "aws:SourceArn", "arn:aws:s3:::b", ["arn:aws:s3:::b"], False),
    ("Null", "s3:x-amz-acl", "true", None, True),
    ("Null", "s3:x-amz-acl", "true", [], True),
    ("Null", "s3:x-amz-acl", "true", ["private"], False),
    ("Null", "s3:x-amz-acl", "false", ["private"], True),
    ("Null", "s3:x-amz-acl", False, None, False),
    ("Null", "s3:x-amz-acl", ["true", "false"], None, True),
    # multi-valued keys
    ("ForAnyValue:StringEquals", "s3:RequestObjectTagKeys", ["a", "b"], ["x", "b"], True),
    ("ForAnyValue:StringEquals", "s3:RequestObjectTagKeys", ["a", "b"], ["x", "y"], False),
    ("ForAnyValue:StringEquals", "s3:RequestObjectTagKeys", ["a"], [], False),
    ("ForAnyValue:StringEquals", "s3:RequestObjectTagKeys", ["a"], None, False),
    ("ForAnyValue:StringEqualsIfExists", "s3:RequestObjectTagKeys", ["a"], None, True),
    ("ForAnyValue:StringNotEquals", "s3:RequestObjectTagKeys", ["a"], ["a", "b"], True),
    ("ForAnyValue:StringNotEquals", "s3:RequestObjectTagKeys", ["a"], ["a"], False),
    ("ForAllValues:StringEquals", "s3:RequestObjectTagKeys", ["a", "b"], ["a", "b"], True),
    ("ForAllValues:StringEquals", "s3:RequestObjectTagKeys", ["a", "b"], ["a", "c"], False),
    ("ForAllValues:StringEquals", "s3:RequestObjectTagKeys", ["a"], [], True),
    ("ForAllValues:StringEquals", "s3:RequestObjectTagKeys", ["a"], None, True),
    ("ForAllValues:StringNotEquals", "s3:RequestObjectTagKeys", ["secret"], ["a", "b"], True),
    ("ForAllValues:StringNotEquals", "s3:RequestObjectTagKeys", ["secret"], ["a", "secret"], False),
    ("ForAllValues:StringLike", "s3:RequestObjectTagKeys", ["app-*"], ["app-1", "app-2"], True),
    ("StringEquals", "s3:RequestObjectTagKeys", ["a"], ["x", "a"], True),  # no qualifier: any value
    ("StringNotEquals", "s3:RequestObjectTagKeys", ["a"], ["x", "a"], False),
    # tag keys keep their case after the slash
    ("StringEquals", "s3:ExistingObjectTag/Class", "gold", ["gold"], True),
]


@pytest.mark.parametrize(("operator", "key", "values", "request_values", "expected"), OPERATORS)
def test_operator(operator: str, key: str, values: Any, request_values: list[str] | None, expected: bool) -> None:
    p = cond(operator, key, values)
    fact = key.lower() if "/" not in key else key.split("/")[0].lower() + "/" + key.split("/", 1)[1]
    facts = {} if request_values is None else {fact: request_values}
    assert allows(p, facts) is expected


def test_tag_key_case_matters_and_condition_keys_do_not() -> None:
    p = cond("StringEquals", "S3:EXISTINGOBJECTTAG/Class", "gold")
    assert allows(p, {"s3:existingobjecttag/Class": ["gold"]})
    assert not allows(p, {"s3:existingobjecttag/class": ["gold"]})
    assert allows(cond("StringEquals", "AWS:UserName", "bob"), {"aws:username": ["bob"]})


def test_keys_and_operators_are_anded_values_ored() -> None:
    p = bucket_policy(
        stmt(
            Condition={
                "StringEquals": {"s3:x-amz-acl": ["private", "bucket-owner-read"], "s3:prefix": "p"},
                "IpAddress": {"aws:SourceIp": "10.0.0.0/8"},
            }
        )
    )
    ok = {"s3:x-amz-acl": ["bucket-owner-read"], "s3:prefix": ["p"], "aws:sourceip": ["10.1.1.1"]}
    assert allows(p, ok)
    assert not allows(p, {**ok, "s3:prefix": ["q"]})
    assert not allows(p, {**ok, "aws:sourceip": ["11.1.1.1"]})
    assert not allows(p, {k: v for k, v in ok.items() if k != "s3:prefix"})


def test_unconditional_deny_of_plain_http() -> None:
    p = bucket_policy(
        stmt(Action="s3:*"), stmt(Effect="Deny", Action="s3:*", Condition={"Bool": {"aws:SecureTransport": "false"}})
    )
    assert p.evaluate(ANON, "s3:PutObject", OBJ, {"aws:securetransport": ["false"]}) == "deny"
    assert p.evaluate(ANON, "s3:PutObject", OBJ, {"aws:securetransport": ["true"]}) == "allow"


# ------------------------------------------------------------------ policy variables
def test_variables_in_resources() -> None:
    p = bucket_policy(stmt(Principal={"AWS": "111"}, Resource=f"{BUCKET_ARN}/home/${{aws:username}}/*"))
    facts = {"aws:username": ["alice"]}
    assert p.evaluate(ALICE, "s3:GetObject", f"{BUCKET_ARN}/home/alice/x", facts) == "allow"
    assert p.evaluate(ALICE, "s3:GetObject", f"{BUCKET_ARN}/home/bob/x", facts) is None
    assert p.evaluate(ALICE, "s3:GetObject", f"{BUCKET_ARN}/home/alice/x", {}) is None  # missing: no match
    # a user name holding wildcard or regex characters is literal
    odd = {"aws:username": ["a*.b"]}
    assert p.evaluate(ALICE, "s3:GetObject", f"{BUCKET_ARN}/home/a*.b/x", odd) == "allow"
    assert p.evaluate(ALICE, "s3:GetObject", f"{BUCKET_ARN}/home/aXXxb/x", odd) is None


def test_variables_in_conditions_and_escapes() -> None:
    p = cond("StringLike", "s3:prefix", ["home/${aws:userid}/*", "lit/${*}/${?}/${$}"])
    assert allows(p, {"aws:userid": ["U1"], "s3:prefix": ["home/U1/x"]})
    assert not allows(p, {"aws:userid": ["U1"], "s3:prefix": ["home/U2/x"]})
    assert allows(p, {"s3:prefix": ["lit/*/?/$"]})
    assert not allows(p, {"s3:prefix": ["lit/a/b/$"]})
    q = cond("StringEquals", "s3:prefix", "${aws:username, 'nobody'}/")
    assert allows(q, {"s3:prefix": ["nobody/"]})
    assert allows(q, {"s3:prefix": ["eve/"], "aws:username": ["eve"]})


def test_variables_are_literal_in_2008_policies() -> None:
    p = bucket_policy(stmt(Resource=f"{BUCKET_ARN}/${{aws:username}}"), version="2008-10-17")
    assert p.evaluate(ANON, "s3:GetObject", f"{BUCKET_ARN}/${{aws:username}}", {"aws:username": ["x"]}) == "allow"
    assert p.evaluate(ANON, "s3:GetObject", f"{BUCKET_ARN}/x", {"aws:username": ["x"]}) is None


# ------------------------------------------------------------------ is_public (S3 user guide examples)
PUBLIC: list[tuple[str, dict[str, Any], bool]] = [
    ("wildcard principal", stmt(), True),
    ("AWS wildcard", stmt(Principal={"AWS": "*"}), True),
    ("vpc wildcard value", stmt(Condition={"StringLike": {"aws:SourceVpc": "vpc-*"}}), True),
    ("fixed vpc", stmt(Condition={"StringEquals": {"aws:SourceVpc": "vpc-91237329"}}), False),
    ("fixed account principal", stmt(Principal={"AWS": "arn:aws:iam::111:root"}), False),
    ("canonical user", stmt(Principal={"CanonicalUser": "abc"}), False),
    ("service principal", stmt(Principal={"Service": "logging.s3.amazonaws.com"}), False),
    ("deny only", stmt(Effect="Deny"), False),
    ("source ip /24", stmt(Condition={"IpAddress": {"aws:SourceIp": "192.0.2.0/24"}}), False),
    ("source ip 0.0.0.0/0", stmt(Condition={"IpAddress": {"aws:SourceIp": "0.0.0.0/0"}}), True),
    ("source ip /1", stmt(Condition={"IpAddress": {"aws:SourceIp": "0.0.0.0/1"}}), True),
    ("source ip v6 /32", stmt(Condition={"IpAddress": {"aws:SourceIp": "2001:db8::/32"}}), False),
    ("source ip v6 /16", stmt(Condition={"IpAddress": {"aws:SourceIp": "2001::/16"}}), True),
    ("rfc1918", stmt(Condition={"IpAddress": {"aws:SourceIp": "172.16.0.0/12"}}), False),
    ("not ip", stmt(Condition={"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}}), True),
    ("ip if exists", stmt(Condition={"IpAddressIfExists": {"aws:SourceIp": "192.0.2.0/24"}}), True),
    ("source account", stmt(Condition={"StringEquals": {"aws:SourceAccount": "111"}}), False),
    ("source arn", stmt(Condition={"ArnEquals": {"aws:SourceArn": "arn:aws:sns:us-east-1:1:t"}}), False),
    ("org id", stmt(Condition={"StringEquals": {"aws:PrincipalOrgID": "o-123"}}), False),
    ("userid", stmt(Condition={"StringEquals": {"aws:userid": "AIDA123"}}), False),
    ("userid wildcard", stmt(Condition={"StringLike": {"aws:userid": "AROLEID:*"}}), True),
    ("kms key", stmt(Condition={"StringEquals": {"s3:x-amz-server-side-encryption-aws-kms-key-id": "k1"}}), False),
    ("variable", stmt(Condition={"StringEquals": {"aws:SourceAccount": "${aws:username}"}}), True),
    ("unrelated key", stmt(Condition={"StringEquals": {"s3:x-amz-acl": "private"}}), True),
    ("for all values", stmt(Condition={"ForAllValues:StringEquals": {"aws:SourceVpc": "vpc-1"}}), True),
    ("not principal deny", stmt(Effect="Deny", Principal=None, NotPrincipal={"AWS": "111"}), False),
]


@pytest.mark.parametrize(("statement", "public"), [(s, p) for _, s, p in PUBLIC], ids=[n for n, _, _ in PUBLIC])
def test_is_public(statement: dict[str, Any], public: bool) -> None:
    assert bucket_policy(statement).is_public() is public


def test_one_public_statement_makes_the_policy_public() -> None:
    fixed = stmt(Principal={"AWS": "111"})
    assert not bucket_policy(fixed).is_public()
    assert bucket_policy(fixed, stmt(Action="s3:ListBucket", Resource=BUCKET_ARN)).is_public()
