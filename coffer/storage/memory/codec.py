"""The one positional codec of an object version's metadata in log records and snapshots.

Used by PUT_OBJECT records (objects and delete markers), the object of a
COMPLETE_UPLOAD record and the remembered answers of completed uploads
(COMPLETED). A list, not a dict: the cheapest JSON to decode at recovery.

Positions 0-12 are what the first logs held; later fields are appended and
trailing fields at their default are left out, so records of untagged,
unlocked objects without an ACL stay as short as before and older records
decode unchanged::

    0 bucket  1 key  2 size  3 etag  4 last_modified  5 version_id  6 storage_class
    7 owner  8 headers  9 checksums (hex)  10 checksum_type  11 expires (None: never)
    12 parts [[number, offset, size, etag, checksums], ...]; a part of an object stored
       transformed appends [stored_offset, stored_size] (its place in the stored bytes)
    13 tags {}   14 lock [mode, retain_until, legal_hold] or None   15 delete marker 0/1
    16 parts_count (None: len(parts); answers carry no parts)
    17 acl: the version's ACL document, opaque to the engine (None: the default ACL)
    18 encoding: the document of a body stored transformed, opaque (None: stored as sent)
    19 stored_size: the length of the bytes as stored (None: stored as sent, ``size``)
"""

from __future__ import annotations

from typing import Any

from coffer.storage.api import NO_LOCK, ObjectInfo, ObjectLock, ObjectPart

_FIXED = 13
# Defaults of the appended positions 13.., dropped from the end of a record.
_DEFAULTS: tuple[Any, ...] = ({}, None, 0, None, None, None, None)


def lock_meta(lock: ObjectLock) -> list[Any] | None:
    return [lock.mode, lock.retain_until, lock.legal_hold] if lock.recorded() else None


def lock_from(meta: list[Any] | None) -> ObjectLock:
    if not meta:
        return NO_LOCK
    mode, until, hold = meta
    return ObjectLock(mode, until, None if hold is None else bool(hold))


def _part_meta(part: ObjectPart) -> list[Any]:
    sums = {a: v.hex() for a, v in part.checksums.items()}
    meta: list[Any] = [part.part_number, part.offset, part.size, part.etag, sums]
    if part.stored_size is not None:  # absent for objects stored as sent: their records stay as before
        meta += [part.stored_offset, part.stored_size]
    return meta


def _part_from(meta: list[Any]) -> ObjectPart:
    number, offset, size, etag, sums = meta[:5]
    part = ObjectPart(number, offset, size, etag, {a: bytes.fromhex(v) for a, v in sums.items()})
    if len(meta) > 5:
        part.stored_offset, part.stored_size = meta[5], meta[6]
    return part


def object_meta(
    info: ObjectInfo,
    owner: str,
    expires: float | None,
    parts: tuple[ObjectPart, ...] | None,
) -> list[Any]:
    """``parts`` None: an answer without its parts (only ``info.parts_count`` is kept)."""
    meta: list[Any] = [
        info.bucket,
        info.key,
        info.size,
        info.etag,
        info.last_modified,
        info.version_id,
        info.storage_class,
        owner,
        info.headers,
        {a: v.hex() for a, v in info.checksums.items()},
        info.checksum_type,
        expires,
        [_part_meta(p) for p in parts or ()],
        info.tags,
        lock_meta(info.lock),
        1 if info.delete_marker else 0,
        None if parts is not None and len(parts) == info.parts_count else info.parts_count,
        info.acl,
        info.encoding,
        info.stored_size,
    ]
    while len(meta) > _FIXED and meta[-1] == _DEFAULTS[len(meta) - 1 - _FIXED]:
        meta.pop()
    return meta


def object_from(meta: list[Any]) -> tuple[ObjectInfo, str, float | None, tuple[ObjectPart, ...]]:
    """(info, owner, expires, parts) of a record's metadata, of any format written so far."""
    bucket, key, size, etag, modified, version, storage_class, owner, headers, sums, checksum_type, expires = meta[
        : _FIXED - 1
    ]
    tags, lock, marker, parts_count, acl, encoding, stored_size = [
        *meta[_FIXED:],
        *_DEFAULTS[max(len(meta) - _FIXED, 0) :],
    ]
    parts = tuple(_part_from(p) for p in (meta[12] if len(meta) > 12 else ()))
    info = ObjectInfo(
        bucket,
        key,
        size,
        etag,
        modified,
        version,
        storage_class,
        headers,
        {a: bytes.fromhex(v) for a, v in sums.items()},
        checksum_type,
        len(parts) if parts_count is None else parts_count,
        tags=tags,
        delete_marker=bool(marker),
        lock=lock_from(lock),
        acl=acl,
        encoding=encoding,
        stored_size=stored_size,
    )
    return info, owner, expires, parts
