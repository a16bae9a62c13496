"""Fuzz tests (hypothesis) of the policy language: any input is a Policy or MalformedPolicy, never
another exception and never a hang; any accepted policy evaluates any request to a Decision.

A long run: ``COFFER_FUZZ_EXAMPLES=100000 .venv/bin/python -m pytest tests/test_fuzz_policy.py -q``
"""

from __future__ import annotations

import fnmatch
import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coffer.server.access.patterns import compile_wildcards, wildcard_match
from coffer.server.access.policy import MAX_POLICY_BYTES, Caller, MalformedPolicy, Policy, parse_policy

EXAMPLES = int(os.environ.get("COFFER_FUZZ_EXAMPLES", "150"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
BUCKET = "bkt"

OPERATORS = [
    "StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringLike", "StringNotLike", "NumericEquals",
    "NumericLessThan", "DateLessThan", "DateGreaterThanEquals", "Bool", "BinaryEquals", "IpAddress", "NotIpAddress",
    "ArnLike", "ArnNotEquals", "Null", "StringLikeIfExists", "ForAnyValue:StringEquals", "ForAllValues:StringLike",
    "ForAllValues:NumericLessThanIfExists", "NullIfExists", "Bogus",
]  # fmt: skip
KEYS = ["aws:SourceIp", "aws:SecureTransport", "aws:CurrentTime", "aws:username", "s3:prefix", "s3:max-keys",
        "s3:x-amz-acl", "s3:ExistingObjectTag/T", "s3:RequestObjectTagKeys", "s3:nope", "x:y"]  # fmt: skip
WORDS = ["*", "s3:*", "s3:GetObject", "s3:get*", "s3:ListBucket", "s3:Nope", "arn:aws:s3:::bkt", "arn:aws:s3:::bkt/*",
         "arn:aws:s3:::other/*", "arn:aws:s3:::bkt/${aws:username}/*", "10.0.0.0/8", "::1/128", "2030-01-01T00:00:00Z",
         "1700000000", "true", "false", "${*}", "${aws:userid, 'x'}", "\ud800", "é", "", "a?b*"]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.text(max_size=12),
)
json_ish = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from([*KEYS, *OPERATORS, "AWS"]), children, max_size=3),
    ),
    max_leaves=12,
)
values = st.one_of(st.sampled_from(WORDS), st.lists(st.sampled_from(WORDS), max_size=3), json_ish)
condition = st.dictionaries(
    st.sampled_from(OPERATORS), st.dictionaries(st.sampled_from(KEYS), values, max_size=2), max_size=2
)
principal = st.one_of(
    st.just("*"),
    st.fixed_dictionaries({"AWS": st.one_of(st.just("*"), st.just("111"), st.lists(st.sampled_from(["111", "*"])))}),
    st.fixed_dictionaries({"CanonicalUser": st.just("c1")}),
    json_ish,
)
statement = st.fixed_dictionaries(
    {},
    optional={
        "Sid": st.one_of(st.sampled_from(["a", "b"]), json_ish),
        "Effect": st.one_of(st.sampled_from(["Allow", "Deny"]), json_ish),
        "Principal": principal,
        "NotPrincipal": principal,
        "Action": values,
        "NotAction": values,
        "Resource": values,
        "NotResource": values,
        "Condition": st.one_of(condition, json_ish),
    },
)
document = st.fixed_dictionaries(
    {"Statement": st.one_of(statement, st.lists(statement, max_size=4), json_ish)},
    optional={"Version": st.sampled_from(["2012-10-17", "2008-10-17", "x"]), "Id": json_ish},
)
facts = st.dictionaries(
    st.sampled_from([k.lower() if "/" not in k else "s3:existingobjecttag/T" for k in KEYS]),
    st.lists(st.sampled_from([*WORDS, "10.1.2.3", "::1", "bob", "7"]), max_size=3),
    max_size=5,
)
callers = st.one_of(
    st.none(),
    st.just(Caller(frozenset(), True)),
    st.just(Caller(frozenset({"111", "c1", "arn:aws:iam::111:root"}), False)),
)


def parse(text: str | bytes, bucket: str | None) -> Policy | None:
    try:
        return parse_policy(text, bucket=bucket)
    except MalformedPolicy as e:
        assert e.reason and isinstance(e.reason, str)
        return None


@fuzz
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    parse(data, BUCKET)
    parse(b"{" + data, None)


@fuzz
@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    parse(text, BUCKET)
    parse("{" + text, None)


@fuzz
@given(doc=document, bucket=st.sampled_from([BUCKET, None]), caller=callers, facts=facts, dump=st.booleans())
def test_policy_shaped_documents(doc: dict[str, Any], bucket: str | None, caller: Caller | None,
                                 facts: dict[str, list[str]], dump: bool) -> None:  # fmt: skip
    text = json.dumps(doc, ensure_ascii=dump)  # NaN / Infinity appear as bare words
    policy = parse(text, bucket)
    if policy is None:
        return
    assert isinstance(policy.is_public(), bool)
    for action in ("s3:GetObject", "s3:ListBucket", "s3:PutObject", "s3:Unknown"):
        for resource in ("arn:aws:s3:::bkt", "arn:aws:s3:::bkt/bob/k", "arn:aws:s3:::other/k", "*"):
            assert policy.evaluate(caller, action, resource, facts) in ("allow", "deny", None)


@fuzz
@given(st.integers(min_value=1, max_value=200_000), st.sampled_from(["[", '{"a":', '[{"a":']))
def test_deep_nesting_is_refused_quickly(depth: int, opener: str) -> None:
    closer = {"[": "]", '{"a":': "}", '[{"a":': "}]"}[opener]
    text = '{"Statement":' + opener * depth + "1" + closer * depth + "}"
    parse(text, BUCKET)


def test_adversarial_inputs() -> None:
    cases: list[str | bytes] = [
        '{"Statement": [' + ",".join(['{"Effect":"Allow"}'] * 5000) + "]}",  # huge array
        '{"Statement": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"Statement": NaN}',
        '{"Statement": -Infinity}',
        '{"Statement": 1e99999}',
        '{"Statement": ' + "9" * 10_000 + "}",  # beyond int's digit limit
        '{"Id": "\\ud800", "Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",'
        ' "Resource": "arn:aws:s3:::bkt/\\udfff\\u0000"}}',  # lone surrogates and NUL via escapes
        (
            '{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject",'
            ' "Resource": "arn:aws:s3:::bkt/\ud800"}}'
        ),
        "{" + " " * (MAX_POLICY_BYTES * 10) + "}",
        b"{\x00\xff\xfe}",
        "\ufeff{}",
        '{"Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bkt/'
        + "*a" * 7_000
        + 'x"}}',  # many wildcards: a regex without catastrophic backtracking
    ]
    for case in cases:
        policy = parse(case, BUCKET)
        if policy is not None:
            policy.evaluate(None, "s3:GetObject", "arn:aws:s3:::bkt/" + "a" * 5000, {})


@fuzz
@given(st.text("ab*?/", max_size=12), st.text("ab/", max_size=14))
def test_wildcards_match_as_fnmatch_does(pattern: str, text: str) -> None:
    """The backtracking-free expressions (leftmost segments in atomic groups) agree with a
    plain glob matcher."""
    expected = fnmatch.fnmatchcase(text, pattern)
    assert wildcard_match(pattern, text) is expected
    assert (compile_wildcards([pattern]).fullmatch(text) is not None) is expected
