"""The wire forms of an S3 ACL: x-amz-acl / x-amz-grant-* request headers and the
AccessControlPolicy XML document (PutBucketAcl/PutObjectAcl bodies, GetBucketAcl/GetObjectAcl
responses). Every malformed input is an S3Error with a 4xx status."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from xml.etree.ElementTree import Element

from coffer.server import xml
from coffer.server.access.acl import (
    GROUPS,
    MAX_GRANTS,
    PERMISSIONS,
    Acl,
    Grant,
    Grantee,
    Permission,
    UserCheck,
    canned_acl,
)
from coffer.server.errors import S3Error

XSI = "http://www.w3.org/2001/XMLSchema-instance"
MALFORMED_ACL = "The XML you provided was not well-formed or did not validate against our published schema"
BOTH_CANNED_AND_GRANTS = "Specifying both Canned ACLs and Header Grants is not allowed"
UNRESOLVABLE_EMAIL = "The e-mail address you provided does not match any account on record."

# x-amz-grant-* header -> the permission it grants, in the order S3 lists the grants.
GRANT_HEADERS: dict[str, Permission] = {
    "x-amz-grant-full-control": "FULL_CONTROL",
    "x-amz-grant-read": "READ",
    "x-amz-grant-write": "WRITE",
    "x-amz-grant-read-acp": "READ_ACP",
    "x-amz-grant-write-acp": "WRITE_ACP",
}

EmailResolver = Callable[[str], str | None]
"""Maps an e-mail address to a user id, None when no user has it."""


def malformed_acl() -> S3Error:
    return S3Error("MalformedACLError", MALFORMED_ACL, status=400)


def invalid_id(user_id: str) -> S3Error:
    return S3Error("InvalidArgument", "Invalid id", ArgumentName="CanonicalUser/ID", ArgumentValue=user_id[:1024])


def unresolvable_email(email: str) -> S3Error:
    return S3Error("UnresolvableGrantByEmailAddress", UNRESOLVABLE_EMAIL, status=400, EmailAddress=email[:1024])


def _user(user_id: str, known_user: UserCheck | None) -> Grantee:
    if not user_id or (known_user is not None and not known_user(user_id)):
        raise invalid_id(user_id)
    return Grantee.user(user_id)


def _email(email: str, resolve_email: EmailResolver | None, known_user: UserCheck | None) -> Grantee:
    # Coffer has no e-mail directory: an address is a grant only when the caller can map it to a user.
    user_id = resolve_email(email) if resolve_email is not None else None
    if user_id is None:
        raise unresolvable_email(email)
    return _user(user_id, known_user)


# ---- headers ----------------------------------------------------------------------------------

# One grantee of a grant header: key=value or key="value", separated by commas.
_GRANTEE = re.compile(r'[ \t]*([A-Za-z]+)[ \t]*=[ \t]*(?:"([^"]*)"|([^",\s]+))[ \t]*(?:,|\Z)')


def _format_error(header: str, value: str) -> S3Error:
    return S3Error("InvalidArgument", "Argument format not recognized", ArgumentName=header, ArgumentValue=value[:1024])


def parse_grant_header(
    header: str,
    value: str,
    *,
    known_user: UserCheck | None = None,
    resolve_email: EmailResolver | None = None,
) -> list[Grantee]:
    """The grantees of one x-amz-grant-* header value, e.g. ``id="abc", uri="http://..."``.
    Quotes are optional (boto's examples quote, s3-tests does not)."""
    grantees: list[Grantee] = []
    pos = 0
    if not value.strip():
        raise _format_error(header, value)
    while pos < len(value):
        m = _GRANTEE.match(value, pos)
        if m is None or m.end() == pos:
            raise _format_error(header, value)
        key, item = m.group(1).lower(), m.group(2) if m.group(2) is not None else m.group(3)
        pos = m.end()
        if value[m.end() - 1 : m.end()] == "," and pos >= len(value):
            raise _format_error(header, value)  # a trailing comma names no grantee
        if key == "id":
            grantees.append(_user(item, known_user))
        elif key == "uri":
            if item not in GROUPS:
                raise S3Error("InvalidArgument", "Invalid group uri", ArgumentName="uri", ArgumentValue=item[:1024])
            grantees.append(Grantee.group(item))
        elif key == "emailaddress":
            grantees.append(_email(item, resolve_email, known_user))
        else:
            raise _format_error(header, value)
    return grantees


def acl_from_headers(
    headers: Mapping[str, str],
    owner_id: str,
    owner_display_name: str | None = None,
    *,
    bucket_owner_id: str | None = None,
    bucket_owner_display_name: str | None = None,
    known_user: UserCheck | None = None,
    resolve_email: EmailResolver | None = None,
) -> Acl | None:
    """The ACL a request's x-amz-acl or x-amz-grant-* headers set (lower-case header names);
    None when it has neither. Both together is InvalidRequest, as in S3."""
    canned = headers.get("x-amz-acl")
    present = [(name, headers[name]) for name in GRANT_HEADERS if name in headers]
    if canned is not None and present:
        raise S3Error("InvalidRequest", BOTH_CANNED_AND_GRANTS)
    if canned is not None:
        return canned_acl(
            canned.strip(),
            owner_id,
            owner_display_name,
            bucket_owner_id=bucket_owner_id,
            bucket_owner_display_name=bucket_owner_display_name,
        )
    if not present:
        return None
    grants: list[Grant] = []
    for name, value in present:
        for grantee in parse_grant_header(name, value, known_user=known_user, resolve_email=resolve_email):
            grants.append(Grant(grantee, GRANT_HEADERS[name]))
    if len(grants) > MAX_GRANTS:
        raise malformed_acl()
    return Acl(owner_id, owner_display_name, tuple(grants))


# ---- AccessControlPolicy XML ----------------------------------------------------------------------


def _text(node: Element, name: str) -> str | None:
    found = node.find(name)
    if found is None:
        return None
    return (found.text or "").strip()


def _xsi_type(node: Element) -> str | None:
    for attr, value in node.attrib.items():
        # Namespaced (xsi:type, the schema's form) or, leniently, a bare type attribute.
        if attr == f"{{{XSI}}}type" or attr == "type":
            return value
    return None


def _grantee_from_xml(node: Element, known_user: UserCheck | None, resolve_email: EmailResolver | None) -> Grantee:
    kind = _xsi_type(node)
    if kind == "CanonicalUser":
        user_id = _text(node, "ID")
        if user_id is None:
            raise malformed_acl()
        return _user(user_id, known_user)
    if kind == "Group":
        uri = _text(node, "URI")
        if uri is None:
            raise malformed_acl()
        if uri not in GROUPS:
            raise S3Error("InvalidArgument", "Invalid group uri", ArgumentName="Group/URI", ArgumentValue=uri[:1024])
        return Grantee.group(uri)
    if kind == "AmazonCustomerByEmail":
        email = _text(node, "EmailAddress")
        if email is None:
            raise malformed_acl()
        return _email(email, resolve_email, known_user)
    raise malformed_acl()


def parse_policy(
    body: bytes,
    owner_id: str,
    owner_display_name: str | None = None,
    *,
    known_user: UserCheck | None = None,
    resolve_email: EmailResolver | None = None,
) -> Acl:
    """The ACL of a PutBucketAcl/PutObjectAcl body for a resource that ``owner_id`` owns.

    The document may leave Owner out (the owner stays); an Owner naming someone else is
    AccessDenied (an ACL cannot give a resource away). Grantee display names are ignored.
    """
    try:
        root = xml.parse(body)
    except S3Error:
        raise malformed_acl() from None
    if root.tag != "AccessControlPolicy":
        raise malformed_acl()
    owner = root.find("Owner")
    if owner is not None:
        claimed = _text(owner, "ID")
        if not claimed:
            raise malformed_acl()
        if claimed != owner_id:
            raise S3Error("AccessDenied")
    acl_node = root.find("AccessControlList")
    if acl_node is None:
        raise malformed_acl()
    grants: list[Grant] = []
    for grant in acl_node:
        if grant.tag != "Grant":
            raise malformed_acl()
        grantee_node = grant.find("Grantee")
        permission = _text(grant, "Permission")
        if grantee_node is None or permission not in PERMISSIONS:
            raise malformed_acl()
        grantee = _grantee_from_xml(grantee_node, known_user, resolve_email)
        grants.append(Grant(grantee, permission))
        if len(grants) > MAX_GRANTS:
            raise malformed_acl()
    return Acl(owner_id, owner_display_name, tuple(grants))


DisplayNames = Callable[[str], str | None]
"""A user id's display name (None: leave DisplayName out)."""


def _grantee_xml(grantee: Grantee, display_names: DisplayNames | None) -> str:
    head = f'<Grantee xmlns:xsi="{XSI}" xsi:type="{grantee.kind}">'
    if grantee.kind == "CanonicalUser":
        assert grantee.id is not None
        name = grantee.display_name
        if display_names is not None:
            name = display_names(grantee.id) or name
        inner = xml.elem("ID", grantee.id) + (xml.elem("DisplayName", name) if name is not None else "")
    elif grantee.kind == "Group":
        inner = xml.elem("URI", grantee.uri)
    else:
        inner = xml.elem("EmailAddress", grantee.email)
    return f"{head}{inner}</Grantee>"


def render_policy(acl: Acl, display_names: DisplayNames | None = None) -> bytes:
    """The GetBucketAcl/GetObjectAcl response body: Owner, then each Grant with an xsi:type'd Grantee."""
    owner_name = acl.owner_display_name
    if display_names is not None:
        owner_name = display_names(acl.owner_id) or owner_name
    owner = xml.elem("ID", acl.owner_id) + xml.elem("DisplayName", owner_name if owner_name is not None else "")
    # Group grants first, as RGW lists them (clients and s3-tests index into the list); the
    # order of grants means nothing to what an ACL permits.
    ordered = sorted(acl.grants, key=lambda g: g.grantee.kind != "Group")
    grants = "".join(
        f"<Grant>{_grantee_xml(g.grantee, display_names)}{xml.elem('Permission', g.permission)}</Grant>"
        for g in ordered
    )
    return xml.document("AccessControlPolicy", f"<Owner>{owner}</Owner><AccessControlList>{grants}</AccessControlList>")
