"""A key's versions in the memory engine, and the changes a log record makes to them.

A key holds a tuple of ``MemObject`` versions, newest first: objects and delete
markers. Every change to a key is a pure function of that tuple (``Change``),
so the same function computes what a pending change leaves (the write-side
marks), applies it once durable, and replays its log record at recovery: the
three cannot drift apart. Version ids are unique per key; the 'null' version
is replaced by the next null write wherever it sits in the order.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from coffer.storage.api import NULL_VERSION, ObjectInfo, ObjectLock, ObjectPart
from coffer.storage.ttl import is_expired

# Estimated bytes an object costs besides its body (Python objects, index
# entries, LRU entry); charged against max_memory with the key and metadata.
OBJECT_OVERHEAD = 400


@dataclass(slots=True, eq=False)
class MemObject:
    """A stored version (object or delete marker); never mutated once built (snapshots read it from a thread)."""

    info: ObjectInfo
    owner: str
    chunks: tuple[bytes, ...]
    expires: float | None
    charge: int
    # Its log record's encoded metadata, kept so snapshots do not encode it again.
    raw: bytes | None = None
    # Where each part lies, for an object completed from a multipart upload.
    parts: tuple[ObjectPart, ...] = ()


Versions = tuple[MemObject, ...]
Change = Callable[[Versions], Versions]
NO_VERSIONS: Versions = ()


def charge_of(
    key: bytes, size: int, headers: dict[str, str], checksums: dict[str, bytes], tags: dict[str, str] | None = None
) -> int:
    meta = sum(len(k) + len(v) for k, v in headers.items()) + sum(len(v) + 8 for v in checksums.values())
    if tags:
        meta += sum(len(k) + len(v) for k, v in tags.items())
    return size + 2 * len(key) + meta + OBJECT_OVERHEAD


def mem_object(
    info: ObjectInfo, owner: str, chunks: tuple[bytes, ...], expires: float | None, parts: tuple[ObjectPart, ...] = ()
) -> MemObject:
    charge = charge_of(info.key.encode("utf-8"), info.size, info.headers, info.checksums, info.tags)
    return MemObject(info, owner, chunks, expires, charge, None, parts)


def retagged(obj: MemObject, tags: dict[str, str]) -> MemObject:
    """A new version sharing ``obj``'s body with other tags (versions are never mutated)."""
    return mem_object(dataclasses.replace(obj.info, tags=dict(tags)), obj.owner, obj.chunks, obj.expires, obj.parts)


def relocked(obj: MemObject, lock: ObjectLock) -> MemObject:
    return mem_object(dataclasses.replace(obj.info, lock=lock), obj.owner, obj.chunks, obj.expires, obj.parts)


def visible(versions: Versions, now: float) -> Versions:
    """The versions not expired (an expired version is invisible until the reaper removes it)."""
    if all(v.expires is None for v in versions):
        return versions
    return tuple(v for v in versions if not is_expired(v.expires, now))


def is_live(versions: Versions) -> bool:
    """Whether the key's latest version is an object (what ListObjects and the quota count)."""
    return bool(versions) and not versions[0].info.delete_marker


def find(versions: Versions, version_id: str) -> MemObject | None:
    return next((v for v in versions if v.info.version_id == version_id), None)


# ---------------------------------------------------------------- changes
def put(obj: MemObject) -> Change:
    """A new latest version; a null one replaces the key's previous null version."""
    null = obj.info.version_id == NULL_VERSION

    def change(versions: Versions) -> Versions:
        if null:
            versions = tuple(v for v in versions if v.info.version_id != NULL_VERSION)
        return (obj, *versions)

    return change


def remove(version_id: str | None) -> Change:
    """Remove one version for good (None: the whole key, as an eviction does)."""

    def change(versions: Versions) -> Versions:
        if version_id is None:
            return NO_VERSIONS
        return tuple(v for v in versions if v.info.version_id != version_id)

    return change


def replace(version_id: str | None, make: Callable[[MemObject], MemObject]) -> Change:
    """Rebuild one version (None: the latest, if it is an object: the records of older logs)."""

    def change(versions: Versions) -> Versions:
        if version_id is None:
            return (make(versions[0]), *versions[1:]) if is_live(versions) else versions
        return tuple(make(v) if v.info.version_id == version_id else v for v in versions)

    return change
