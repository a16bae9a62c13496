"""Fuzz tests (hypothesis) of the ACL wire forms: any header value or XML body is an Acl or an
S3Error with a 4xx status, never another exception; any parsed ACL renders and parses back.

A long run: ``COFFER_FUZZ_EXAMPLES=100000 .venv/bin/python -m pytest tests/test_fuzz_acl.py -q``
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from coffer.server.access.acl import ALL_USERS, AUTHENTICATED_USERS, LOG_DELIVERY, PERMISSIONS, Acl, permits
from coffer.server.access.acl_wire import GRANT_HEADERS, XSI, acl_from_headers, parse_policy, render_policy
from coffer.server.errors import S3Error
from coffer.server.xml import NS

EXAMPLES = int(os.environ.get("COFFER_FUZZ_EXAMPLES", "150"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OWNER = "owner"
USERS = {OWNER, "alice", "bob"}

WORDS = ["id", "ID", "uri", "emailAddress", "email", "=", '"', ",", " ", "alice", "bob", "ghost", "", "a@b.c",
         ALL_USERS, AUTHENTICATED_USERS, LOG_DELIVERY, "http://acs.amazonaws.com/groups/", "\t", "\n", "é", "\x00",
         "private", "public-read", "bucket-owner-read", "nope"]  # fmt: skip
header_values = st.one_of(st.text(max_size=60), st.lists(st.sampled_from(WORDS), max_size=12).map("".join))


def known(user_id: str) -> bool:
    return user_id in USERS


def resolve(email: str) -> str | None:
    return "alice" if email == "a@b.c" else None


def check(acl: Acl) -> None:
    """An accepted ACL renders, parses back to itself (minus display names) and answers permits()."""
    again = parse_policy(render_policy(acl), acl.owner_id, acl.owner_display_name, known_user=known)
    assert [(g.grantee.id, g.grantee.uri, g.permission) for g in again.grants] == [
        (g.grantee.id, g.grantee.uri, g.permission) for g in acl.grants
    ]
    for permission in PERMISSIONS:
        permits(acl, None, False, permission)
        permits(acl, "alice", True, permission)


@fuzz
@given(
    canned=st.one_of(st.none(), header_values),
    grants=st.dictionaries(st.sampled_from(sorted(GRANT_HEADERS)), header_values, max_size=5),
    bucket_owner=st.sampled_from([None, OWNER, "bob"]),
)
def test_headers_never_crash(canned: str | None, grants: dict[str, str], bucket_owner: str | None) -> None:
    headers = dict(grants)
    if canned is not None:
        headers["x-amz-acl"] = canned
    try:
        acl = acl_from_headers(headers, OWNER, bucket_owner_id=bucket_owner, known_user=known, resolve_email=resolve)
    except S3Error as err:
        assert 400 <= err.status < 500
        return
    if acl is not None:
        check(acl)


# XML built from plausible pieces, so most examples get past the parser into the ACL checks.
grantee_xml = st.one_of(
    st.builds(lambda i: f'<Grantee xsi:type="CanonicalUser"><ID>{i}</ID></Grantee>', st.sampled_from(WORDS)),
    st.builds(lambda u: f'<Grantee xsi:type="Group"><URI>{u}</URI></Grantee>', st.sampled_from(WORDS)),
    st.builds(
        lambda e: f'<Grantee xsi:type="AmazonCustomerByEmail"><EmailAddress>{e}</EmailAddress></Grantee>',
        st.sampled_from(WORDS),
    ),
    st.builds(lambda t: f'<Grantee xsi:type="{t}"><ID>alice</ID></Grantee>', st.sampled_from(WORDS)),
    st.just("<Grantee/>"),
    st.just(""),
)
grant_xml = st.builds(
    lambda g, p: f"<Grant>{g}<Permission>{p}</Permission></Grant>",
    grantee_xml,
    st.sampled_from([*PERMISSIONS, "ALL", "", "read"]),
)
owner_xml = st.sampled_from(["", f"<Owner><ID>{OWNER}</ID></Owner>", "<Owner><ID>bob</ID></Owner>", "<Owner/>"])
policy_xml = st.builds(
    lambda ns, owner, grants, junk: (
        f'<AccessControlPolicy{ns} xmlns:xsi="{XSI}">{owner}<AccessControlList>{"".join(grants)}{junk}'
        "</AccessControlList></AccessControlPolicy>"
    ).encode(),
    st.sampled_from(["", f' xmlns="{NS}"', ' xmlns="urn:other"']),
    owner_xml,
    st.lists(grant_xml, max_size=5),
    st.sampled_from(["", "<Bogus/>", "<", "&amp;", "&x;", "]]>"]),
)


@fuzz
@given(body=st.one_of(st.binary(max_size=300), policy_xml))
def test_policy_xml_never_crashes(body: bytes) -> None:
    try:
        acl = parse_policy(body, OWNER, "Owner", known_user=known, resolve_email=resolve)
    except S3Error as err:
        assert 400 <= err.status < 500
        return
    check(acl)


@fuzz
@given(body=policy_xml, cut=st.integers(min_value=0, max_value=400))
def test_truncated_policy_xml(body: bytes, cut: int) -> None:
    try:
        acl = parse_policy(body[:cut], OWNER, known_user=known, resolve_email=resolve)
    except S3Error as err:
        assert 400 <= err.status < 500
        return
    check(acl)
