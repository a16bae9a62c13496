"""Versioning and Object Lock rules every engine shares, with no I/O.

- Version ids: 32 lowercase hex characters, the first 14 the creation time in
  microseconds, so ids sort by creation time (then 18 random digits: unique across
  worker processes without coordination). ``NULL_VERSION`` names the version written
  while versioning is off or suspended.
- Which version a write creates, and what deleting a key does, by bucket state.
- Object Lock: when a version may be deleted, and which retention changes are allowed
  (AWS "Object Lock" user guide: COMPLIANCE can only be extended; GOVERNANCE needs
  x-amz-bypass-governance-retention to be shortened or removed; a legal hold blocks
  deletes until removed; deleting the key, which adds a delete marker, stays allowed).
"""

from __future__ import annotations

import re
import time

from coffer import entropy
from coffer.storage import errors
from coffer.storage.api import COMPLIANCE, GOVERNANCE, NULL_VERSION, VERSIONING_ENABLED, BucketInfo, ObjectLock

_VERSION_ID = re.compile(r"[0-9a-f]{32}")
RETENTION_MODES = (GOVERNANCE, COMPLIANCE)
LOCKED_MESSAGE = "Access Denied because object protected by object lock."
NO_LOCK_CONFIGURATION = "Bucket is missing Object Lock Configuration"


def new_version_id(now: float | None = None) -> str:
    micros = int((time.time() if now is None else now) * 1_000_000)
    return f"{micros:014x}{entropy.token_hex(9)}"


def is_valid_version_id(value: str) -> bool:
    """What a versionId parameter may be: 'null' or an id this server makes."""
    return value == NULL_VERSION or _VERSION_ID.fullmatch(value) is not None


def version_for_write(versioning: str | None, now: float) -> str:
    """The version id a new object (or delete marker) gets in a bucket in this state."""
    return new_version_id(now) if versioning == VERSIONING_ENABLED else NULL_VERSION


def check_version_delete(key: str, version_id: str, lock: ObjectLock, bypass_governance: bool, now: float) -> None:
    """ObjectLocked when Object Lock protects a version from being deleted for good."""
    retained = lock.mode is not None and lock.retain_until is not None and lock.retain_until > now
    if lock.legal_hold or (retained and (lock.mode == COMPLIANCE or not bypass_governance)):
        raise errors.ObjectLocked(LOCKED_MESSAGE, key=key, version_id=version_id)


def check_retention_change(
    key: str, current: ObjectLock, mode: str | None, retain_until: float | None, bypass_governance: bool, now: float
) -> None:
    """ObjectLocked when a version's retention may not become (mode, retain_until) (None, None: removed).

    An active retention (its date in the future) can always be extended in the same mode. Shortening
    it, removing it or changing its mode needs GOVERNANCE and ``bypass_governance``; COMPLIANCE never.
    """
    if current.mode is None or current.retain_until is None or current.retain_until <= now:
        return  # no active retention: anything goes
    extends = mode == current.mode and retain_until is not None and retain_until >= current.retain_until
    if extends:
        return
    if current.mode == GOVERNANCE and bypass_governance:
        return
    raise errors.ObjectLocked(LOCKED_MESSAGE, key=key)


def check_lock_bucket(bucket: BucketInfo, lock: ObjectLock | None = None) -> None:
    """InvalidRequest when a bucket without Object Lock is asked for a lock: by a retention or
    legal-hold change (``lock`` None), or a write carrying one (a lock set there would protect
    nothing: a later null write replaces the null version)."""
    if not bucket.object_lock and (lock is None or lock):
        raise errors.InvalidRequest(NO_LOCK_CONFIGURATION, bucket=bucket.name)


def with_retention(lock: ObjectLock, mode: str | None, retain_until: float | None) -> ObjectLock:
    return ObjectLock(mode, retain_until if mode is not None else None, lock.legal_hold)


def with_legal_hold(lock: ObjectLock, on: bool) -> ObjectLock:
    return ObjectLock(lock.mode, lock.retain_until, on)
