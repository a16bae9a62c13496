"""Listing logic shared by every engine: one page of ListObjects from an ordered key index.

An engine supplies ``scan(lower, inclusive, upper)``: its live keys (UTF-8 bytes)
in byte order starting at ``lower`` (inclusive or not) and below ``upper`` (None:
no bound), each with whatever row the engine needs to build a ``ListEntry``. The
page builder folds keys into CommonPrefixes and, instead of scanning the keys
under a CommonPrefix, calls ``scan`` again past it: a page costs O(page +
prefixes) seeks, never O(keys under the prefixes).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from coffer.storage.api import ListEntry, ListPage, UploadInfo, UploadsPage, VersionEntry, VersionsPage

Row = TypeVar("Row")
Scan = Callable[[bytes, bool, bytes | None], Iterable[tuple[bytes, Row]]]
# Multipart uploads in (key, upload id) order strictly after (after_key, after_id), keys below upper.
UploadScan = Callable[[bytes, str, bytes | None], Iterable[tuple[bytes, UploadInfo]]]
AFTER_ALL_IDS = "~"  # sorts after every upload id (hex digits)
# Object versions in (key, newest first) order from ``from_key``, below ``upper``; the second
# argument says where in from_key's versions to start: None: at its newest (from_key included);
# AFTER_ALL_VERSIONS: past all of them; a version id: at the versions older than that one
# (past all of them when from_key has no such version).
VersionScan = Callable[[bytes, str | None, bytes | None], Iterable[tuple[bytes, VersionEntry]]]
AFTER_ALL_VERSIONS = "~"


def prefix_upper_bound(prefix: bytes) -> bytes | None:
    """Smallest byte string greater than every string starting with ``prefix``.

    None when ``prefix`` is empty (no upper bound). UTF-8 never contains 0xFF, so
    for keys the last byte can always be incremented; the loop covers raw bytes.
    """
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def list_page(
    scan: Scan[Row],
    make_entry: Callable[[bytes, Row], ListEntry],
    *,
    prefix: bytes,
    delimiter: bytes,
    after: bytes,
    max_keys: int,
) -> ListPage:
    """One page: keys and CommonPrefixes under ``prefix`` sorting after ``after``."""
    if max_keys <= 0:
        return ListPage([], [], False, None)  # as S3: an empty, untruncated page
    upper = prefix_upper_bound(prefix)
    # Lower bound: strictly after `after`, and at or after the prefix.
    lower, inclusive = (after, False) if after >= prefix else (prefix, True)
    entries: list[ListEntry] = []
    prefixes: list[str] = []
    last: str | None = None
    while True:
        seek: bytes | None = None
        for key, row in scan(lower, inclusive, upper):
            if delimiter:
                idx = key.find(delimiter, len(prefix))
                if idx >= 0:
                    common = key[: idx + len(delimiter)]
                    if common == after or (after.startswith(common) and after > common):
                        # The marker lies inside this prefix: it was returned on an earlier page.
                        seek = prefix_upper_bound(common)
                        break
                    if len(entries) + len(prefixes) >= max_keys:
                        return ListPage(entries, prefixes, True, last)
                    prefixes.append(common.decode("utf-8"))
                    last = prefixes[-1]
                    seek = prefix_upper_bound(common)
                    break
            if len(entries) + len(prefixes) >= max_keys:
                return ListPage(entries, prefixes, True, last)
            entry = make_entry(key, row)
            entries.append(entry)
            last = entry.key
        else:
            return ListPage(entries, prefixes, False, last)
        if seek is None or (upper is not None and seek >= upper):
            return ListPage(entries, prefixes, False, last)
        lower, inclusive = seek, True


Item = TypeVar("Item")
Position = TypeVar("Position")


@dataclass(slots=True)
class _Walk(Generic[Item]):
    items: list[Item]
    prefixes: list[str]
    truncated: bool
    # Where the next page starts when truncated: (key, sub-position) of the last item, or
    # (common prefix, None) when the page ended with one.
    next: tuple[str, str | None] | None


def _walk(
    scan: Callable[[bytes, Position, bytes | None], Iterable[tuple[bytes, Item]]],
    start: tuple[bytes, Position],
    restart: Position,
    position_of: Callable[[Item], tuple[str, str]],
    *,
    prefix: bytes,
    delimiter: bytes,
    key_marker: bytes,
    limit: int,
) -> _Walk[Item]:
    """A page of items ordered by (key, position within the key), from ``start``, keys folded
    into CommonPrefixes (one entry each); ``restart``: the position that starts at a key's
    first item, for the seek past a CommonPrefix. Shared by ListMultipartUploads (upload ids)
    and ListObjectVersions (versions)."""
    items: list[Item] = []
    prefixes: list[str] = []
    upper = prefix_upper_bound(prefix)
    last: tuple[str, str | None] | None = None
    from_key, position = start
    while True:
        seek: bytes | None = None
        for key, item in scan(from_key, position, upper):
            if delimiter:
                idx = key.find(delimiter, len(prefix))
                if idx >= 0:
                    common = key[: idx + len(delimiter)]
                    if common == key_marker or (key_marker.startswith(common) and key_marker > common):
                        seek = prefix_upper_bound(common)  # listed on an earlier page
                        break
                    if len(items) + len(prefixes) >= limit:
                        return _Walk(items, prefixes, True, last)
                    prefixes.append(common.decode("utf-8"))
                    last = (prefixes[-1], None)
                    seek = prefix_upper_bound(common)
                    break
            if len(items) + len(prefixes) >= limit:
                return _Walk(items, prefixes, True, last)
            items.append(item)
            last = position_of(item)
        else:
            return _Walk(items, prefixes, False, None)
        if seek is None or (upper is not None and seek >= upper):
            return _Walk(items, prefixes, False, None)
        from_key, position = seek, restart


def list_uploads_page(
    scan: UploadScan,
    *,
    prefix: bytes,
    delimiter: bytes,
    key_marker: bytes,
    upload_id_marker: str,
    max_uploads: int,
) -> UploadsPage:
    """One page of ListMultipartUploads: (key, upload id) order, keys folded into CommonPrefixes."""
    # Resume strictly after (after_key, after_id); upload ids are never empty, so
    # after_id "" includes after_key itself. Without an upload-id-marker every
    # upload of key-marker was listed already: skip past all of them.
    start = (key_marker, upload_id_marker or AFTER_ALL_IDS) if key_marker and key_marker >= prefix else (prefix, "")
    walk = _walk(
        scan,
        start,
        "",
        lambda upload: (upload.key, upload.upload_id),
        prefix=prefix,
        delimiter=delimiter,
        key_marker=key_marker,
        limit=max_uploads,
    )
    next_key, next_id = walk.next if walk.truncated and walk.next is not None else (None, None)
    return UploadsPage(walk.items, walk.prefixes, walk.truncated, next_key, next_id)


def list_versions_page(
    scan: VersionScan,
    *,
    prefix: bytes,
    delimiter: bytes,
    key_marker: bytes,
    version_id_marker: str,
    max_keys: int,
) -> VersionsPage:
    """One page of ListObjectVersions: versions in (key, newest first) order, keys folded into
    CommonPrefixes (one entry each), resuming after (key-marker, version-id-marker)."""
    if max_keys <= 0:
        return VersionsPage([], [], False, None, None)
    start: tuple[bytes, str | None]
    if key_marker and key_marker >= prefix:
        # Without a version-id marker every version of key-marker was listed already.
        start = (key_marker, version_id_marker or AFTER_ALL_VERSIONS)
    else:
        start = (prefix, None)
    walk = _walk(
        scan,
        start,
        None,
        lambda entry: (entry.key, entry.version_id),
        prefix=prefix,
        delimiter=delimiter,
        key_marker=key_marker,
        limit=max_keys,
    )
    next_key, next_version = walk.next if walk.truncated and walk.next is not None else (None, None)
    return VersionsPage(walk.items, walk.prefixes, walk.truncated, next_key, next_version)
