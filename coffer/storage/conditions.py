"""Conditional writes (If-Match / If-None-Match on PutObject and CompleteMultipartUpload)
and conditional deletes (If-Match, last-modified time and size on DeleteObject(s)).

Evaluated by the engine inside the write's own transaction, so no other writer
can slip in between the check and the write.
"""

from __future__ import annotations

from typing import Protocol

from coffer.storage import errors
from coffer.storage.api import DeleteCondition


class Current(Protocol):
    """What a conditional delete compares: the key's live object (an ObjectInfo, a disk slot)."""

    @property
    def etag(self) -> str: ...
    @property
    def last_modified(self) -> float: ...
    @property
    def size(self) -> int: ...


def etag_in(candidates: str, etag: str) -> bool:
    """Whether a comma-separated list of (quoted, possibly weak) ETags names ``etag``; '*' names any."""
    for candidate in candidates.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == "*" or candidate.strip('"') == etag:
            return True
    return False


def check_write(key: str, current_etag: str | None, if_match: str | None, if_none_match: str | bool | None) -> None:
    """Raise when the key's current state (None: absent) fails the write's conditions.

    If-Match needs the key to exist (404 NoSuchKey otherwise) with a listed ETag;
    If-None-Match ('*', or ETags) fails when the key exists (with a listed ETag).
    ``if_none_match=True`` means '*'.
    """
    if if_match is not None:
        if current_etag is None:
            raise errors.NoSuchKey(key=key)
        if not etag_in(if_match, current_etag):
            raise errors.PreconditionFailed(key=key)
    if if_none_match:
        listed = "*" if if_none_match is True else str(if_none_match)
        if current_etag is not None and etag_in(listed, current_etag):
            raise errors.PreconditionFailed(key=key)


def check_delete(key: str, condition: DeleteCondition | None, current: Current | None) -> None:
    """Raise when a delete must not go ahead on the key's live object (None: there is none).

    As S3: If-Match (ETags or '*') needs the object to exist (404 NoSuchKey
    otherwise, as for writes); the last-modified time and size conditions hold
    for a missing key (the delete is a 204 no-op). Any condition that does not
    hold on the object is 412 PreconditionFailed.
    """
    if condition is None:
        return
    if current is None:
        if condition.if_match is not None:
            raise errors.NoSuchKey(key=key)
        return
    if (
        (condition.if_match is not None and not etag_in(condition.if_match, current.etag))
        or (condition.last_modified is not None and int(condition.last_modified) != int(current.last_modified))
        or (condition.size is not None and condition.size != current.size)
    ):
        raise errors.PreconditionFailed(key=key)
