"""S3 access control lists: the data model, canned ACLs, and what an ACL permits.

Pure: no HTTP, no storage. The wire forms (x-amz-grant-* headers, AccessControlPolicy
XML) are in acl_wire.py. An ACL is stored as a JSON-able document (``to_document`` /
``from_document``): as a bucket config document or in an object's metadata.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from coffer.server.errors import S3Error

GranteeKind = Literal["CanonicalUser", "Group", "AmazonCustomerByEmail"]
Permission = Literal["FULL_CONTROL", "READ", "WRITE", "READ_ACP", "WRITE_ACP"]
PERMISSIONS: tuple[Permission, ...] = ("FULL_CONTROL", "READ", "WRITE", "READ_ACP", "WRITE_ACP")

ALL_USERS = "http://acs.amazonaws.com/groups/global/AllUsers"
AUTHENTICATED_USERS = "http://acs.amazonaws.com/groups/global/AuthenticatedUsers"
LOG_DELIVERY = "http://acs.amazonaws.com/groups/s3/LogDelivery"
GROUPS = frozenset({ALL_USERS, AUTHENTICATED_USERS, LOG_DELIVERY})

# aws-exec-read grants READ to Amazon EC2, which S3 shows as this canonical user ("za-team").
EC2_ID = "6aa5a366c34c1cbe25dc49211496e913e0351eb0e8c37aa3477e40942ec6b97c"
EC2_DISPLAY_NAME = "za-team"

# S3 refuses an ACL with more grants than this.
MAX_GRANTS = 100


@dataclass(frozen=True, slots=True)
class Grantee:
    kind: GranteeKind
    id: str | None = None  # CanonicalUser
    display_name: str | None = None  # CanonicalUser, informational only
    uri: str | None = None  # Group
    email: str | None = None  # AmazonCustomerByEmail

    @staticmethod
    def user(user_id: str, display_name: str | None = None) -> Grantee:
        return Grantee("CanonicalUser", id=user_id, display_name=display_name)

    @staticmethod
    def group(uri: str) -> Grantee:
        return Grantee("Group", uri=uri)

    @staticmethod
    def by_email(email: str) -> Grantee:
        return Grantee("AmazonCustomerByEmail", email=email)


@dataclass(frozen=True, slots=True)
class Grant:
    grantee: Grantee
    permission: Permission


@dataclass(frozen=True, slots=True)
class Acl:
    owner_id: str
    owner_display_name: str | None = None
    grants: tuple[Grant, ...] = ()

    def to_document(self) -> dict[str, Any]:
        return {
            "owner": {"id": self.owner_id, "display_name": self.owner_display_name},
            "grants": [_grant_document(g) for g in self.grants],
        }

    @staticmethod
    def from_document(doc: Mapping[str, Any]) -> Acl:
        """The inverse of ``to_document``; ValueError for a document it did not write."""
        try:
            owner = doc["owner"]
            owner_id = owner["id"]
            owner_name = owner.get("display_name")
            grants = tuple(_grant_from_document(g) for g in doc["grants"])
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not an ACL document: {exc!r}") from None
        if not isinstance(owner_id, str) or not (owner_name is None or isinstance(owner_name, str)):
            raise ValueError("not an ACL document: bad owner")
        return Acl(owner_id, owner_name, grants)


def _grant_document(grant: Grant) -> dict[str, Any]:
    g = grant.grantee
    grantee: dict[str, Any] = {"type": g.kind}
    for name in ("id", "display_name", "uri", "email"):
        value = getattr(g, name)
        if value is not None:
            grantee[name] = value
    return {"grantee": grantee, "permission": grant.permission}


def _grant_from_document(doc: Mapping[str, Any]) -> Grant:
    grantee = doc["grantee"]
    kind = grantee["type"]
    permission = doc["permission"]
    if kind not in ("CanonicalUser", "Group", "AmazonCustomerByEmail") or permission not in PERMISSIONS:
        raise ValueError(f"not an ACL grant: {doc!r}")
    fields = {name: grantee.get(name) for name in ("id", "display_name", "uri", "email")}
    if not all(v is None or isinstance(v, str) for v in fields.values()):
        raise ValueError(f"not an ACL grant: {doc!r}")
    required = {"CanonicalUser": "id", "Group": "uri", "AmazonCustomerByEmail": "email"}[kind]
    if fields[required] is None:
        raise ValueError(f"not an ACL grant: {doc!r}")
    return Grant(Grantee(kind, **fields), permission)


# ---- canned ACLs ----------------------------------------------------------------------------

CANNED_ACLS = frozenset(
    {
        "private",
        "public-read",
        "public-read-write",
        "authenticated-read",
        "aws-exec-read",
        "bucket-owner-read",
        "bucket-owner-full-control",
        "log-delivery-write",
    }
)


def invalid_canned_acl(value: str) -> S3Error:
    # S3 answers an unknown x-amz-acl value with an empty message; S3Error would fill in its
    # default, so the message is cleared after construction.
    err = S3Error("InvalidArgument", ArgumentName="x-amz-acl", ArgumentValue=value[:1024])
    err.message = ""
    return err


def canned_acl(
    name: str,
    owner_id: str,
    owner_display_name: str | None = None,
    *,
    bucket_owner_id: str | None = None,
    bucket_owner_display_name: str | None = None,
) -> Acl:
    """The ACL a canned ACL name stands for, as in AWS's "Canned ACL" table.

    ``owner_id`` owns the resource. For an object, ``bucket_owner_id`` is the owner of its
    bucket: bucket-owner-read and bucket-owner-full-control grant to it. For a bucket (leave
    ``bucket_owner_id`` None) S3 ignores those two, so they are ``private``.
    """
    if name not in CANNED_ACLS:
        raise invalid_canned_acl(name)
    owner = Grantee.user(owner_id, owner_display_name)
    grants: list[Grant] = []
    if name == "public-read":
        grants.append(Grant(Grantee.group(ALL_USERS), "READ"))
    elif name == "public-read-write":
        grants += [Grant(Grantee.group(ALL_USERS), "READ"), Grant(Grantee.group(ALL_USERS), "WRITE")]
    elif name == "authenticated-read":
        grants.append(Grant(Grantee.group(AUTHENTICATED_USERS), "READ"))
    elif name == "aws-exec-read":
        grants.append(Grant(Grantee.user(EC2_ID, EC2_DISPLAY_NAME), "READ"))
    elif name == "log-delivery-write":
        grants += [Grant(Grantee.group(LOG_DELIVERY), "WRITE"), Grant(Grantee.group(LOG_DELIVERY), "READ_ACP")]
    elif name.startswith("bucket-owner-") and bucket_owner_id is not None and bucket_owner_id != owner_id:
        # Only objects in another user's bucket get a second grant: the bucket owner's FULL_CONTROL
        # or READ adds nothing when it already owns the object.
        permission: Permission = "READ" if name == "bucket-owner-read" else "FULL_CONTROL"
        grants.append(Grant(Grantee.user(bucket_owner_id, bucket_owner_display_name), permission))
    # The owner's grant comes last, as RGW lists canned ACLs (clients and s3-tests index into them).
    grants.append(Grant(owner, "FULL_CONTROL"))
    return Acl(owner_id, owner_display_name, tuple(grants))


def private_acl(owner_id: str, owner_display_name: str | None = None) -> Acl:
    """S3's default ACL for a new bucket or object: its owner has FULL_CONTROL."""
    return canned_acl("private", owner_id, owner_display_name)


# ---- what an ACL permits --------------------------------------------------------------------


def _matches(grantee: Grantee, caller_id: str | None, authenticated: bool) -> bool:
    if grantee.kind == "CanonicalUser":
        return caller_id is not None and grantee.id == caller_id
    if grantee.kind == "Group":
        if grantee.uri == ALL_USERS:
            return True
        if grantee.uri == AUTHENTICATED_USERS:
            return authenticated
        return False  # LogDelivery is S3's own log service, never a caller of Coffer
    return False  # an email grantee is resolved to a user when the ACL is set


def permits(acl: Acl, caller_id: str | None, authenticated: bool, permission: Permission) -> bool:
    """Whether the ACL grants ``permission`` to the caller (``caller_id`` None: anonymous).

    FULL_CONTROL implies every permission. The owner is not special here: S3 lets the owner
    read and write the ACL itself (see ``owner_implicit``), everything else comes from grants.
    """
    for grant in acl.grants:
        if (grant.permission == permission or grant.permission == "FULL_CONTROL") and _matches(
            grant.grantee, caller_id, authenticated
        ):
            return True
    return False


def owner_implicit(acl: Acl, caller_id: str | None, permission: Permission) -> bool:
    """The resource owner may always read and write its ACL, whatever the grants say."""
    return caller_id is not None and caller_id == acl.owner_id and permission in ("READ_ACP", "WRITE_ACP")


def is_public(acl: Acl) -> bool:
    """Whether the ACL grants anything to everyone or to every signed caller (PublicAccessBlock)."""
    return any(g.grantee.kind == "Group" and g.grantee.uri in (ALL_USERS, AUTHENTICATED_USERS) for g in acl.grants)


# Which ACL permission, on which resource, lets a caller do an action (AWS's "Mapping of ACL
# permissions and access policy permissions"). Object writes are granted by the bucket's ACL:
# objects have no WRITE permission of their own.
Resource = Literal["bucket", "object"]
ACTION_PERMISSIONS: dict[str, tuple[Resource, Permission]] = {
    # bucket READ
    "s3:ListBucket": ("bucket", "READ"),
    "s3:ListBucketVersions": ("bucket", "READ"),
    "s3:ListBucketMultipartUploads": ("bucket", "READ"),
    "s3:ListMultipartUploadParts": ("bucket", "READ"),  # an upload's parts are not an object yet
    # bucket WRITE: create, overwrite and delete any object in the bucket
    "s3:PutObject": ("bucket", "WRITE"),
    "s3:DeleteObject": ("bucket", "WRITE"),
    "s3:DeleteObjectVersion": ("bucket", "WRITE"),
    "s3:AbortMultipartUpload": ("bucket", "WRITE"),
    # bucket READ_ACP / WRITE_ACP
    "s3:GetBucketAcl": ("bucket", "READ_ACP"),
    "s3:PutBucketAcl": ("bucket", "WRITE_ACP"),
    # object READ
    "s3:GetObject": ("object", "READ"),
    "s3:GetObjectVersion": ("object", "READ"),
    "s3:GetObjectTorrent": ("object", "READ"),
    "s3:GetObjectVersionTorrent": ("object", "READ"),
    # object READ_ACP / WRITE_ACP
    "s3:GetObjectAcl": ("object", "READ_ACP"),
    "s3:GetObjectVersionAcl": ("object", "READ_ACP"),
    "s3:PutObjectAcl": ("object", "WRITE_ACP"),
    "s3:PutObjectVersionAcl": ("object", "WRITE_ACP"),
}
_ACTIONS_LOWER = {name.lower(): value for name, value in ACTION_PERMISSIONS.items()}


def action_permission(action: str) -> tuple[Resource, Permission] | None:
    """The (resource, permission) an IAM action needs from an ACL; None: ACLs cannot grant it
    (only the owner, or a policy, can). HeadObject is s3:GetObject, as in IAM."""
    return _ACTIONS_LOWER.get(action.lower())


def acl_allows_action(
    action: str,
    caller_id: str | None,
    authenticated: bool,
    *,
    bucket_acl: Acl,
    object_acl: Acl | None = None,
) -> bool:
    """Whether the ACLs alone let the caller do ``action``; ``object_acl`` for object actions."""
    needed = action_permission(action)
    if needed is None:
        return False
    resource, permission = needed
    acl = bucket_acl if resource == "bucket" else object_acl
    if acl is None:
        return False
    return permits(acl, caller_id, authenticated, permission) or owner_implicit(acl, caller_id, permission)


UserCheck = Callable[[str], bool]
"""Whether a canonical user id names a known user (the wire parsers refuse unknown ones)."""
