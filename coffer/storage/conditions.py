"""Conditional writes (If-Match / If-None-Match on PutObject and CompleteMultipartUpload).

Evaluated by the engine inside the write's own transaction, so no other writer
can slip in between the check and the write.
"""

from __future__ import annotations

from coffer.storage import errors


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
