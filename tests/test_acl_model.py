"""The ACL model (coffer/server/access/acl.py, acl_wire.py): canned ACLs, grant headers,
AccessControlPolicy XML, permissions. Pure: no server."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from coffer.server.access.acl import (
    ALL_USERS,
    AUTHENTICATED_USERS,
    CANNED_ACLS,
    EC2_ID,
    LOG_DELIVERY,
    Acl,
    Grant,
    Grantee,
    acl_allows_action,
    action_permission,
    canned_acl,
    is_public,
    permits,
    private_acl,
)
from coffer.server.access.acl_wire import (
    BOTH_CANNED_AND_GRANTS,
    MALFORMED_ACL,
    XSI,
    acl_from_headers,
    parse_grant_header,
    parse_policy,
    render_policy,
)
from coffer.server.errors import S3Error
from coffer.server.xml import NS

OWNER = "owner-id"
OTHER = "other-id"
KNOWN = {OWNER, OTHER, "third"}


def known(user_id: str) -> bool:
    return user_id in KNOWN


def summary(acl: Acl) -> list[tuple[str, str]]:
    """(grantee, permission) pairs: the user id or group uri."""
    return [(g.grantee.id or g.grantee.uri or "", g.permission) for g in acl.grants]


# ---- canned ACLs ----------------------------------------------------------------------------

CANNED = [
    ("private", None, [(OWNER, "FULL_CONTROL")]),
    ("public-read", None, [(ALL_USERS, "READ"), (OWNER, "FULL_CONTROL")]),
    ("public-read-write", None, [(ALL_USERS, "READ"), (ALL_USERS, "WRITE"), (OWNER, "FULL_CONTROL")]),
    ("authenticated-read", None, [(AUTHENTICATED_USERS, "READ"), (OWNER, "FULL_CONTROL")]),
    ("aws-exec-read", None, [(EC2_ID, "READ"), (OWNER, "FULL_CONTROL")]),
    ("log-delivery-write", None, [(LOG_DELIVERY, "WRITE"), (LOG_DELIVERY, "READ_ACP"), (OWNER, "FULL_CONTROL")]),
    # On a bucket S3 ignores the bucket-owner-* ACLs.
    ("bucket-owner-read", None, [(OWNER, "FULL_CONTROL")]),
    ("bucket-owner-full-control", None, [(OWNER, "FULL_CONTROL")]),
    # On an object in another user's bucket they grant to the bucket owner...
    ("bucket-owner-read", OTHER, [(OTHER, "READ"), (OWNER, "FULL_CONTROL")]),
    ("bucket-owner-full-control", OTHER, [(OTHER, "FULL_CONTROL"), (OWNER, "FULL_CONTROL")]),
    # ... and add nothing when the object's owner owns the bucket.
    ("bucket-owner-read", OWNER, [(OWNER, "FULL_CONTROL")]),
    ("bucket-owner-full-control", OWNER, [(OWNER, "FULL_CONTROL")]),
    # The others do not depend on the bucket owner.
    ("public-read", OTHER, [(ALL_USERS, "READ"), (OWNER, "FULL_CONTROL")]),
]


@pytest.mark.parametrize(("name", "bucket_owner", "expected"), CANNED)
def test_canned_acl(name: str, bucket_owner: str | None, expected: list[tuple[str, str]]) -> None:
    acl = canned_acl(name, OWNER, "Owner", bucket_owner_id=bucket_owner, bucket_owner_display_name="B")
    assert acl.owner_id == OWNER
    assert summary(acl) == expected


def test_every_canned_acl_is_in_the_table() -> None:
    assert {name for name, _, _ in CANNED} == CANNED_ACLS


@pytest.mark.parametrize("name", ["privatee", "", "PRIVATE", "public", "bucket-owner-write"])
def test_unknown_canned_acl(name: str) -> None:
    with pytest.raises(S3Error) as info:
        canned_acl(name, OWNER)
    err = info.value
    assert (err.code, err.status, err.message) == ("InvalidArgument", 400, "")
    assert err.fields == {"ArgumentName": "x-amz-acl", "ArgumentValue": name}


def test_private_is_the_default() -> None:
    assert private_acl(OWNER, "O") == canned_acl("private", OWNER, "O")


# ---- JSON documents -----------------------------------------------------------------------------

DOC_ACLS = [
    private_acl(OWNER),
    canned_acl("log-delivery-write", OWNER, "Owner"),
    canned_acl("bucket-owner-full-control", OWNER, bucket_owner_id=OTHER, bucket_owner_display_name="Other"),
    Acl(OWNER, None, (Grant(Grantee.by_email("a@b.c"), "READ"), Grant(Grantee.user("x"), "WRITE_ACP"))),
    Acl(OWNER, "ünï", ()),
]


@pytest.mark.parametrize("acl", DOC_ACLS)
def test_document_round_trip(acl: Acl) -> None:
    import json

    doc = json.loads(json.dumps(acl.to_document()))
    assert Acl.from_document(doc) == acl


@pytest.mark.parametrize(
    "doc",
    [
        {},
        {"owner": {"id": 1}, "grants": []},
        {"owner": {"id": "o"}, "grants": [{"grantee": {"type": "Nope", "id": "x"}, "permission": "READ"}]},
        {"owner": {"id": "o"}, "grants": [{"grantee": {"type": "CanonicalUser", "id": "x"}, "permission": "ALL"}]},
        {"owner": {"id": "o"}, "grants": [{"grantee": {"type": "Group"}, "permission": "READ"}]},
        {"owner": {"id": "o"}, "grants": [{"grantee": {"type": "CanonicalUser", "id": 3}, "permission": "READ"}]},
        {"owner": "o", "grants": []},
        {"owner": {"id": "o"}, "grants": [None]},
    ],
)
def test_document_refused(doc: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Acl.from_document(doc)


# ---- grant headers --------------------------------------------------------------------------------

HEADER_FORMS = [
    ('id="other-id"', [OTHER]),
    ("id=other-id", [OTHER]),
    ('id="other-id", id="third"', [OTHER, "third"]),
    ("id=other-id,id=third", [OTHER, "third"]),
    (f'uri="{ALL_USERS}"', [ALL_USERS]),
    (f"uri={AUTHENTICATED_USERS}", [AUTHENTICATED_USERS]),
    (f'  id = "other-id" ,  uri="{LOG_DELIVERY}"  ', [OTHER, LOG_DELIVERY]),
    ('ID="other-id"', [OTHER]),
    ('emailAddress="other@example.com"', [OTHER]),
]


@pytest.mark.parametrize(("value", "expected"), HEADER_FORMS)
def test_grant_header_forms(value: str, expected: list[str]) -> None:
    grantees = parse_grant_header(
        "x-amz-grant-read", value, known_user=known, resolve_email={"other@example.com": OTHER}.get
    )
    assert [g.id or g.uri for g in grantees] == expected


HEADER_ERRORS = [
    ("", "InvalidArgument", "Argument format not recognized"),
    ("   ", "InvalidArgument", "Argument format not recognized"),
    ("other-id", "InvalidArgument", "Argument format not recognized"),
    ('id="other-id",', "InvalidArgument", "Argument format not recognized"),
    ('id="other-id" id="third"', "InvalidArgument", "Argument format not recognized"),
    ('id="other-id', "InvalidArgument", "Argument format not recognized"),
    ("id=", "InvalidArgument", "Argument format not recognized"),
    ('name="x"', "InvalidArgument", "Argument format not recognized"),
    (",id=other-id", "InvalidArgument", "Argument format not recognized"),
    ('id=""', "InvalidArgument", "Invalid id"),
    ('id="stranger"', "InvalidArgument", "Invalid id"),
    ('uri="http://acs.amazonaws.com/groups/global/Everyone"', "InvalidArgument", "Invalid group uri"),
    ('emailAddress="nobody@example.com"', "UnresolvableGrantByEmailAddress", None),
]


@pytest.mark.parametrize(("value", "code", "message"), HEADER_ERRORS)
def test_grant_header_errors(value: str, code: str, message: str | None) -> None:
    with pytest.raises(S3Error) as info:
        parse_grant_header("x-amz-grant-read", value, known_user=known)
    assert (info.value.code, info.value.status) == (code, 400)
    if message is not None:
        assert info.value.message == message


def test_email_grant_without_resolver() -> None:
    with pytest.raises(S3Error) as info:
        parse_grant_header("x-amz-grant-write", 'emailAddress="a@b.c"')
    assert info.value.code == "UnresolvableGrantByEmailAddress"
    assert info.value.fields == {"EmailAddress": "a@b.c"}


def test_email_resolving_to_unknown_user_is_invalid_id() -> None:
    with pytest.raises(S3Error) as info:
        parse_grant_header("x-amz-grant-write", "emailAddress=a@b.c", known_user=known, resolve_email=lambda _: "ghost")
    assert info.value.message == "Invalid id"


def test_acl_from_grant_headers() -> None:
    headers = {
        "x-amz-grant-read": f'uri="{ALL_USERS}"',
        "x-amz-grant-write-acp": "id=other-id",
        "x-amz-grant-full-control": 'id="owner-id", id="third"',
        "x-amz-grant-write": f"uri={LOG_DELIVERY}",
        "x-amz-grant-read-acp": "id=third",
    }
    acl = acl_from_headers(headers, OWNER, "O", known_user=known)
    assert acl is not None and acl.owner_id == OWNER
    assert summary(acl) == [
        (OWNER, "FULL_CONTROL"),
        ("third", "FULL_CONTROL"),
        (ALL_USERS, "READ"),
        (LOG_DELIVERY, "WRITE"),
        ("third", "READ_ACP"),
        (OTHER, "WRITE_ACP"),
    ]


def test_acl_from_canned_header() -> None:
    acl = acl_from_headers({"x-amz-acl": "bucket-owner-read"}, OWNER, bucket_owner_id=OTHER)
    assert acl is not None and summary(acl) == [(OTHER, "READ"), (OWNER, "FULL_CONTROL")]


def test_no_acl_headers() -> None:
    assert acl_from_headers({"content-type": "text/plain"}, OWNER) is None


def test_canned_and_grant_headers_together() -> None:
    with pytest.raises(S3Error) as info:
        acl_from_headers({"x-amz-acl": "private", "x-amz-grant-read": "id=other-id"}, OWNER, known_user=known)
    assert (info.value.code, info.value.status, info.value.message) == ("InvalidRequest", 400, BOTH_CANNED_AND_GRANTS)


def test_too_many_header_grants() -> None:
    value = ",".join(["id=other-id"] * 101)
    with pytest.raises(S3Error) as info:
        acl_from_headers({"x-amz-grant-read": value}, OWNER, known_user=known)
    assert info.value.code == "MalformedACLError"


# ---- AccessControlPolicy XML ----------------------------------------------------------------------


def policy(grants: str, owner: str = f"<Owner><ID>{OWNER}</ID></Owner>", ns: bool = True) -> bytes:
    attrs = f' xmlns="{NS}"' if ns else ""
    return (
        f'<AccessControlPolicy{attrs} xmlns:xsi="{XSI}">{owner}<AccessControlList>{grants}</AccessControlList>'
        "</AccessControlPolicy>"
    ).encode()


def user_grant(user_id: str, permission: str, xsi: str = 'xsi:type="CanonicalUser"') -> str:
    return (
        f"<Grant><Grantee {xsi}><ID>{user_id}</ID><DisplayName>ignored</DisplayName></Grantee>"
        f"<Permission>{permission}</Permission></Grant>"
    )


def group_grant(uri: str, permission: str) -> str:
    return f'<Grant><Grantee xsi:type="Group"><URI>{uri}</URI></Grantee><Permission>{permission}</Permission></Grant>'


@pytest.mark.parametrize("acl", [*[canned_acl(n, OWNER, "Owner") for n in sorted(CANNED_ACLS)], *DOC_ACLS[:3]])
def test_xml_round_trip(acl: Acl) -> None:
    body = render_policy(acl)
    parsed = parse_policy(body, OWNER, acl.owner_display_name)
    # Display names are not read back (S3 ignores them in a request): compare without them.
    strip = tuple(Grant(Grantee(g.grantee.kind, g.grantee.id, None, g.grantee.uri, g.grantee.email), g.permission)
                  for g in acl.grants)  # fmt: skip
    assert parsed == Acl(acl.owner_id, acl.owner_display_name, strip)


def test_render_shape() -> None:
    grants = (
        Grant(Grantee.user(OTHER), "READ"),
        Grant(Grantee.group(ALL_USERS), "WRITE"),
        Grant(Grantee.by_email("e@x"), "READ_ACP"),
    )
    acl = Acl(OWNER, "Owner", grants)
    body = render_policy(acl, {OTHER: "Other"}.get)
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<AccessControlPolicy xmlns="')
    root = ET.fromstring(body)
    n = f"{{{NS}}}"
    assert root.tag == f"{n}AccessControlPolicy"
    assert root.findtext(f"{n}Owner/{n}ID") == OWNER
    assert root.findtext(f"{n}Owner/{n}DisplayName") == "Owner"
    grants = root.findall(f"{n}AccessControlList/{n}Grant")
    kinds = [g.find(f"{n}Grantee").attrib[f"{{{XSI}}}type"] for g in grants]  # type: ignore[union-attr]
    assert kinds == ["Group", "CanonicalUser", "AmazonCustomerByEmail"]  # group grants first (RGW's order)
    assert grants[1].findtext(f"{n}Grantee/{n}ID") == OTHER
    assert grants[1].findtext(f"{n}Grantee/{n}DisplayName") == "Other"
    assert grants[0].findtext(f"{n}Grantee/{n}URI") == ALL_USERS
    assert grants[2].findtext(f"{n}Grantee/{n}EmailAddress") == "e@x"
    assert [g.findtext(f"{n}Permission") for g in grants] == ["WRITE", "READ", "READ_ACP"]


def test_render_matches_current_private_handler_shape() -> None:
    # The body coffer/server/handlers/acl.py sends today, byte for byte.
    body = render_policy(private_acl(OWNER, "Owner"))
    assert (
        body
        == (
            f'<?xml version="1.0" encoding="UTF-8"?>\n<AccessControlPolicy xmlns="{NS}"><Owner><ID>{OWNER}</ID>'
            f'<DisplayName>Owner</DisplayName></Owner><AccessControlList><Grant><Grantee xmlns:xsi="{XSI}" '
            f'xsi:type="CanonicalUser"><ID>{OWNER}</ID><DisplayName>Owner</DisplayName></Grantee>'
            "<Permission>FULL_CONTROL</Permission></Grant></AccessControlList></AccessControlPolicy>"
        ).encode()
    )


@pytest.mark.parametrize("ns", [True, False])
def test_parse_policy(ns: bool) -> None:
    body = policy(user_grant(OTHER, "WRITE") + group_grant(AUTHENTICATED_USERS, "READ"), ns=ns)
    acl = parse_policy(body, OWNER, "O", known_user=known)
    assert acl.owner_display_name == "O"
    assert summary(acl) == [(OTHER, "WRITE"), (AUTHENTICATED_USERS, "READ")]


def test_parse_policy_without_owner_keeps_owner() -> None:
    acl = parse_policy(policy(user_grant(OTHER, "READ"), owner=""), OWNER, known_user=known)
    assert acl.owner_id == OWNER


def test_parse_policy_empty_grant_list() -> None:
    assert parse_policy(policy(""), OWNER).grants == ()


def test_parse_email_grant() -> None:
    grant = '<Grant><Grantee xsi:type="AmazonCustomerByEmail"><EmailAddress>a@b.c</EmailAddress></Grantee><Permission>READ</Permission></Grant>'  # noqa: E501
    acl = parse_policy(policy(grant), OWNER, resolve_email={"a@b.c": OTHER}.get)
    assert summary(acl) == [(OTHER, "READ")]
    with pytest.raises(S3Error) as info:
        parse_policy(policy(grant), OWNER)
    assert info.value.code == "UnresolvableGrantByEmailAddress"


XML_ERRORS = [
    (b"", "MalformedACLError"),
    (b"not xml", "MalformedACLError"),
    (b"<AccessControlPolicy>", "MalformedACLError"),
    (b'<!DOCTYPE x [<!ENTITY a "b">]><AccessControlPolicy/>', "MalformedACLError"),
    (b"<Other/>", "MalformedACLError"),
    (policy("").replace(b"<AccessControlList></AccessControlList>", b""), "MalformedACLError"),
    (policy("", owner="<Owner></Owner>"), "MalformedACLError"),
    (policy("", owner=f"<Owner><ID>{OTHER}</ID></Owner>"), "AccessDenied"),
    (policy(user_grant(OTHER, "ALL")), "MalformedACLError"),
    (policy(user_grant(OTHER, "")), "MalformedACLError"),
    (policy(user_grant(OTHER, "READ", xsi="")), "MalformedACLError"),
    (policy(user_grant(OTHER, "READ", xsi='xsi:type="Robot"')), "MalformedACLError"),
    (policy(user_grant("stranger", "READ")), "InvalidArgument"),
    (policy(group_grant("http://example.com/group", "READ")), "InvalidArgument"),
    (policy('<Grant><Grantee xsi:type="Group"></Grantee><Permission>READ</Permission></Grant>'), "MalformedACLError"),
    (policy('<Grant><Grantee xsi:type="CanonicalUser"/><Permission>READ</Permission></Grant>'), "MalformedACLError"),
    (policy("<Grant><Permission>READ</Permission></Grant>"), "MalformedACLError"),
    (policy("<Bogus/>"), "MalformedACLError"),
    (policy(user_grant(OTHER, "READ") * 101), "MalformedACLError"),
]


@pytest.mark.parametrize(("body", "code"), XML_ERRORS)
def test_parse_policy_errors(body: bytes, code: str) -> None:
    with pytest.raises(S3Error) as info:
        parse_policy(body, OWNER, known_user=known)
    assert info.value.code == code
    assert 400 <= info.value.status < 500
    if code == "MalformedACLError":
        assert (info.value.status, info.value.message) == (400, MALFORMED_ACL)


# ---- permissions ------------------------------------------------------------------------------------

PUBLIC_READ = canned_acl("public-read", OWNER)
AUTH_READ = canned_acl("authenticated-read", OWNER)
GRANTS = Acl(OWNER, None, (Grant(Grantee.user(OTHER), "WRITE"), Grant(Grantee.user("third"), "FULL_CONTROL")))
LOGS = canned_acl("log-delivery-write", OWNER)

PERMITS = [
    # acl, caller, authenticated, permission, expected
    (PUBLIC_READ, None, False, "READ", True),
    (PUBLIC_READ, None, False, "WRITE", False),
    (PUBLIC_READ, OTHER, True, "READ", True),
    (PUBLIC_READ, OWNER, True, "WRITE_ACP", True),  # FULL_CONTROL implies everything
    (AUTH_READ, None, False, "READ", False),
    (AUTH_READ, OTHER, True, "READ", True),
    (AUTH_READ, OTHER, True, "READ_ACP", False),
    (GRANTS, OTHER, True, "WRITE", True),
    (GRANTS, OTHER, True, "READ", False),
    (GRANTS, "third", True, "READ_ACP", True),
    (GRANTS, OWNER, True, "READ", False),  # the owner has no grant here
    (GRANTS, None, False, "WRITE", False),
    (LOGS, OTHER, True, "WRITE", False),  # LogDelivery is nobody Coffer serves
    (LOGS, None, False, "READ_ACP", False),
]


@pytest.mark.parametrize(("acl", "caller", "authenticated", "permission", "expected"), PERMITS)
def test_permits(acl: Acl, caller: str | None, authenticated: bool, permission: str, expected: bool) -> None:
    assert permits(acl, caller, authenticated, permission) is expected  # type: ignore[arg-type]


def test_is_public() -> None:
    assert is_public(PUBLIC_READ)
    assert is_public(AUTH_READ)
    assert is_public(canned_acl("public-read-write", OWNER))
    assert not is_public(private_acl(OWNER))
    assert not is_public(LOGS)
    assert not is_public(GRANTS)
    assert not is_public(canned_acl("aws-exec-read", OWNER))


ACTIONS = [
    ("s3:ListBucket", ("bucket", "READ")),
    ("s3:ListBucketVersions", ("bucket", "READ")),
    ("s3:ListBucketMultipartUploads", ("bucket", "READ")),
    ("s3:PutObject", ("bucket", "WRITE")),
    ("s3:DeleteObject", ("bucket", "WRITE")),
    ("s3:DeleteObjectVersion", ("bucket", "WRITE")),
    ("s3:GetBucketAcl", ("bucket", "READ_ACP")),
    ("s3:PutBucketAcl", ("bucket", "WRITE_ACP")),
    ("s3:GetObject", ("object", "READ")),
    ("s3:getobject", ("object", "READ")),
    ("s3:GetObjectVersion", ("object", "READ")),
    ("s3:GetObjectAcl", ("object", "READ_ACP")),
    ("s3:GetObjectVersionAcl", ("object", "READ_ACP")),
    ("s3:PutObjectAcl", ("object", "WRITE_ACP")),
    ("s3:PutObjectVersionAcl", ("object", "WRITE_ACP")),
    ("s3:PutBucketPolicy", None),
    ("s3:DeleteBucket", None),
    ("s3:PutObjectTagging", None),
]


@pytest.mark.parametrize(("action", "expected"), ACTIONS)
def test_action_permission(action: str, expected: tuple[str, str] | None) -> None:
    assert action_permission(action) == expected


def test_acl_allows_action() -> None:
    bucket = Acl(OWNER, None, (Grant(Grantee.user(OWNER), "FULL_CONTROL"), Grant(Grantee.user(OTHER), "WRITE")))
    obj = canned_acl("public-read", OWNER)
    assert acl_allows_action("s3:PutObject", OTHER, True, bucket_acl=bucket)
    assert not acl_allows_action("s3:ListBucket", OTHER, True, bucket_acl=bucket)
    assert acl_allows_action("s3:GetObject", None, False, bucket_acl=bucket, object_acl=obj)
    assert not acl_allows_action("s3:GetObject", None, False, bucket_acl=bucket)  # no object ACL given
    assert not acl_allows_action("s3:GetObjectAcl", None, False, bucket_acl=bucket, object_acl=obj)
    assert not acl_allows_action("s3:PutBucketPolicy", OWNER, True, bucket_acl=bucket)
    # The owner may always read and write the ACL, even with no grant of its own.
    bare = Acl(OWNER, None, ())
    assert acl_allows_action("s3:GetBucketAcl", OWNER, True, bucket_acl=bare)
    assert acl_allows_action("s3:PutObjectAcl", OWNER, True, bucket_acl=bare, object_acl=bare)
    assert not acl_allows_action("s3:ListBucket", OWNER, True, bucket_acl=bare)
