"""A key's versions in the memory engine, and the changes a log record makes to them.

A key holds an immutable chain (``Node``) of ``MemObject`` versions, newest
first: objects and delete markers. Every change to a key is a pure function of
that chain (``Change``) that also says which versions it added and removed (the
memory accounting costs O(change), not O(versions)). The same function computes
what a pending change leaves (the write-side marks), applies it once durable,
and replays its log record at recovery: the three cannot drift apart. Adding a
version shares the rest of the chain, so a write costs O(1) however many
versions the key has. Version ids are unique per key; the 'null' version is
replaced by the next null write wherever it sits in the order.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

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


@dataclass(slots=True, frozen=True, eq=False, repr=False)  # repr would recurse down the chain
class Node:
    """A key's versions as an immutable chain, newest first: adding a version shares the rest, so a
    write costs O(1) however many versions the key has, and a pending chain never disturbs the
    durable one (nor a snapshot walking it from a thread)."""

    obj: MemObject
    next: Node | None = None


Chain = Node | None  # None: the key has no version
# What a change did: the key's new chain, the versions it added, the versions it removed.
Edit = tuple[Chain, list[MemObject], list[MemObject]]
Change = Callable[[Chain], Edit]


def charge_of(
    key: bytes,
    size: int,
    headers: dict[str, str],
    checksums: dict[str, bytes],
    tags: dict[str, str] | None = None,
    acl: dict[str, Any] | None = None,
) -> int:
    meta = sum(len(k) + len(v) for k, v in headers.items()) + sum(len(v) + 8 for v in checksums.values())
    if tags:
        meta += sum(len(k) + len(v) for k, v in tags.items())
    if acl is not None:
        meta += 2 * len(json.dumps(acl))  # a rough estimate of the document's Python objects
    return size + 2 * len(key) + meta + OBJECT_OVERHEAD


def mem_object(
    info: ObjectInfo, owner: str, chunks: tuple[bytes, ...], expires: float | None, parts: tuple[ObjectPart, ...] = ()
) -> MemObject:
    # The bytes held: the stored length of a body stored transformed (plus its document).
    size = info.size if info.stored_size is None else info.stored_size + 2 * len(json.dumps(info.encoding))
    charge = charge_of(info.key.encode("utf-8"), size, info.headers, info.checksums, info.tags, info.acl)
    return MemObject(info, owner, chunks, expires, charge, None, parts)


def retagged(obj: MemObject, tags: dict[str, str]) -> MemObject:
    """A new version sharing ``obj``'s body with other tags (versions are never mutated)."""
    return mem_object(dataclasses.replace(obj.info, tags=dict(tags)), obj.owner, obj.chunks, obj.expires, obj.parts)


def relocked(obj: MemObject, lock: ObjectLock) -> MemObject:
    return mem_object(dataclasses.replace(obj.info, lock=lock), obj.owner, obj.chunks, obj.expires, obj.parts)


def with_acl(obj: MemObject, acl: dict[str, Any] | None) -> MemObject:
    """A new version sharing ``obj``'s body with another ACL document (None: the default)."""
    return mem_object(dataclasses.replace(obj.info, acl=acl), obj.owner, obj.chunks, obj.expires, obj.parts)


def with_encoding(obj: MemObject, document: dict[str, Any]) -> MemObject:
    """A new version sharing ``obj``'s stored body with another encoding document (a re-wrapped key)."""
    return mem_object(dataclasses.replace(obj.info, encoding=document), obj.owner, obj.chunks, obj.expires, obj.parts)


def with_storage_class(obj: MemObject, storage_class: str) -> MemObject:
    """A new version sharing ``obj``'s body with another storage class (a lifecycle transition)."""
    return mem_object(
        dataclasses.replace(obj.info, storage_class=storage_class), obj.owner, obj.chunks, obj.expires, obj.parts
    )


# ---------------------------------------------------------------- reading a chain
def walk(chain: Chain) -> Iterator[MemObject]:
    while chain is not None:
        yield chain.obj
        chain = chain.next


def visible(chain: Chain, now: float) -> list[MemObject]:
    """The versions not expired, newest first (an expired version is invisible until reaped)."""
    return [v for v in walk(chain) if v.expires is None or not is_expired(v.expires, now)]


def latest(chain: Chain, now: float) -> MemObject | None:
    """The newest visible version (object or delete marker)."""
    for v in walk(chain):
        if v.expires is None or not is_expired(v.expires, now):
            return v
    return None


def is_live(chain: Chain) -> bool:
    """Whether the key's latest version is an object (what ListObjects and the quota count)."""
    return chain is not None and not chain.obj.info.delete_marker


def find(chain: Chain, version_id: str, now: float) -> MemObject | None:
    """The visible version with this id."""
    for v in walk(chain):
        if v.info.version_id == version_id:
            return v if v.expires is None or not is_expired(v.expires, now) else None
    return None


# ---------------------------------------------------------------- changes
def _rebuild(prefix: list[MemObject], rest: Chain) -> Chain:
    for obj in reversed(prefix):
        rest = Node(obj, rest)
    return rest


def without(chain: Chain, match: Callable[[MemObject], bool]) -> Edit:
    """The chain without its first version that ``match``es (version ids are unique per key)."""
    prefix: list[MemObject] = []
    node = chain
    while node is not None:
        if match(node.obj):
            return _rebuild(prefix, node.next), [], [node.obj]
        prefix.append(node.obj)
        node = node.next
    return chain, [], []


def put(obj: MemObject) -> Change:
    """A new latest version; a null one replaces the key's previous null version."""
    null = obj.info.version_id == NULL_VERSION

    def change(chain: Chain) -> Edit:
        removed: list[MemObject] = []
        if null:
            chain, _added, removed = without(chain, lambda v: v.info.version_id == NULL_VERSION)
        return Node(obj, chain), [obj], removed

    return change


def remove(version_id: str | None) -> Change:
    """Remove one version for good (None: the whole key, as an eviction does)."""

    def change(chain: Chain) -> Edit:
        if version_id is None:
            return None, [], list(walk(chain))
        return without(chain, lambda v: v.info.version_id == version_id)

    return change


def replace(version_id: str | None, make: Callable[[MemObject], MemObject]) -> Change:
    """Rebuild one version (None: the latest, if it is an object: the records of older logs)."""

    def change(chain: Chain) -> Edit:
        if version_id is None:
            if chain is None or not is_live(chain):
                return chain, [], []
            new = make(chain.obj)
            return Node(new, chain.next), [new], [chain.obj]
        prefix: list[MemObject] = []
        node = chain
        while node is not None:
            if node.obj.info.version_id == version_id:
                new = make(node.obj)
                return _rebuild(prefix, Node(new, node.next)), [new], [node.obj]
            prefix.append(node.obj)
            node = node.next
        return chain, [], []

    return change
