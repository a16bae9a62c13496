"""The ACLs of buckets and objects as requests meet them: where they are stored, their defaults,
the ACL (and owner) a write gives a new object, and Block Public Access's two ACL settings.

The model and the wire forms are in coffer/server/access/acl.py and acl_wire.py; this module
ties them to buckets (a bucket configuration document ``acl``) and object versions
(``ObjectInfo.acl``, stored opaquely by the engine). Both store nothing for the default:
a private ACL owned by the bucket owner, so the common write costs nothing extra.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from coffer.server import ownership
from coffer.server.access import acl_wire
from coffer.server.access.acl import ALL_USERS, AUTHENTICATED_USERS, Acl, is_public, private_acl
from coffer.server.errors import S3Error
from coffer.server.public_access import PublicAccessBlock
from coffer.storage.api import ObjectInfo, UploadInfo

CONFIG_NAME = "acl"  # the bucket configuration document: Acl.to_document()
ACL_HEADERS = ("x-amz-acl", *acl_wire.GRANT_HEADERS)
# A bucket configuration document (true) set once an object in the bucket is owned by another
# user than the bucket owner: only then do the owner's object reads need the object's ACL.
FOREIGN_CONFIG = "foreign_owners"


class Users:
    """What ACLs need to know of the users: who exists (a grant to an unknown id is refused) and
    their display names (reported in Owner and grantees)."""

    def __init__(self, names: Mapping[str, str], emails: Mapping[str, str] | None = None) -> None:
        self._names = names
        self._emails = emails or {}

    def known(self, user_id: str) -> bool:
        return user_id in self._names

    def display_name(self, user_id: str) -> str | None:
        return self._names.get(user_id)

    def by_email(self, email: str) -> str | None:
        """The user id an e-mail address names (credentials' ``email``); None: nobody."""
        return self._emails.get(email.strip().lower())


def stored_bucket_acl(doc: Any, owner: str) -> Acl:
    """A bucket's ACL from its configuration document (the default when there is none)."""
    if isinstance(doc, dict):
        try:
            return Acl.from_document(doc)
        except ValueError:
            pass
    return private_acl(owner)


def object_acl(info: ObjectInfo | UploadInfo, bucket_owner: str) -> Acl:
    """A version's ACL (the default: private, owned by the bucket owner)."""
    if info.acl:
        try:
            return Acl.from_document(info.acl)
        except ValueError:
            pass
    return private_acl(bucket_owner)


def document(acl: Acl, bucket_owner: str) -> dict[str, Any] | None:
    """What to store for ``acl``: None when it is the default, so that nothing is stored."""
    default = private_acl(bucket_owner)
    if acl.owner_id == default.owner_id and acl.grants == default.grants:
        return None
    return acl.to_document()


def sets_acl(headers: Mapping[str, str]) -> bool:
    return any(name in headers for name in ACL_HEADERS)


def check_block(block: PublicAccessBlock | None, acl: Acl) -> None:
    """BlockPublicAcls: a request that would make a bucket or object public is refused (403)."""
    if block is not None and block.block_public_acls and is_public(acl):
        raise S3Error("AccessDenied")


def effective(acl: Acl, block: PublicAccessBlock | None) -> Acl:
    """The ACL that grants: with IgnorePublicAcls its grants to everyone and to every signed
    user count for nothing (they stay stored and reported)."""
    if block is None or not block.ignore_public_acls or not is_public(acl):
        return acl
    kept = tuple(
        g for g in acl.grants if not (g.grantee.kind == "Group" and g.grantee.uri in (ALL_USERS, AUTHENTICATED_USERS))
    )
    return Acl(acl.owner_id, acl.owner_display_name, kept)


def from_headers(
    headers: Mapping[str, str], owner: str, users: Users, *, bucket_owner: str | None = None
) -> Acl | None:
    """The ACL a request's x-amz-acl / x-amz-grant-* headers set for a resource ``owner`` owns."""
    return acl_wire.acl_from_headers(
        headers,
        owner,
        users.display_name(owner),
        bucket_owner_id=bucket_owner,
        bucket_owner_display_name=users.display_name(bucket_owner) if bucket_owner else None,
        known_user=users.known,
        resolve_email=users.by_email,
    )


def for_new_object(
    headers: Mapping[str, str],
    writer: str,
    bucket_owner: str,
    owned: str | None,
    block: PublicAccessBlock | None,
    users: Callable[[], Users],
) -> tuple[str, dict[str, Any] | None]:
    """(owner, stored ACL document) of an object a write creates: PutObject, CopyObject,
    CreateMultipartUpload and POST, from their ACL headers (form fields) and the bucket's
    Object Ownership (``owned``; None: no controls, which is ObjectWriter):

    - BucketOwnerEnforced: the bucket owner owns it; ACLs other than bucket-owner-full-control
      are refused (AccessControlListNotSupported) and none is stored.
    - BucketOwnerPreferred: the bucket owner owns it when the writer grants it
      bucket-owner-full-control, else the writer does.
    - ObjectWriter: the writer owns it (anonymous writers leave it to the bucket owner).

    ``users`` is called only when an ACL is made (the common write needs no user directory).
    """
    ownership.check_object_acl(owned, headers)
    if owned == ownership.ENFORCED:
        return bucket_owner, None
    owner = writer or bucket_owner
    if owner == bucket_owner and not sets_acl(headers):
        return owner, None  # the common write: the default ACL, nothing to store
    canned = (headers.get("x-amz-acl") or "").strip()
    if owned == "BucketOwnerPreferred" and canned == "bucket-owner-full-control":
        owner = bucket_owner
    directory = users()
    acl = from_headers(headers, owner, directory, bucket_owner=bucket_owner) or private_acl(
        owner, directory.display_name(owner)
    )
    check_block(block, acl)
    return owner, document(acl, bucket_owner)
