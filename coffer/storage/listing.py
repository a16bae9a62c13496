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
from typing import TypeVar

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
    uploads: list[UploadInfo] = []
    prefixes: list[str] = []
    upper = prefix_upper_bound(prefix)
    # Resume strictly after (after_key, after_id); upload ids are never empty, so
    # after_id "" includes after_key itself. Without an upload-id-marker every
    # upload of key-marker was listed already: skip past all of them.
    if key_marker and key_marker >= prefix:
        after_key, after_id = key_marker, (upload_id_marker or AFTER_ALL_IDS)
    else:
        after_key, after_id = prefix, ""
    last: tuple[str, str | None] | None = None

    def page(truncated: bool) -> UploadsPage:
        if not truncated or last is None:
            return UploadsPage(uploads, prefixes, truncated, None, None)
        return UploadsPage(uploads, prefixes, True, last[0], last[1])

    while True:
        seek: bytes | None = None
        for key, upload in scan(after_key, after_id, upper):
            if delimiter:
                idx = key.find(delimiter, len(prefix))
                if idx >= 0:
                    common = key[: idx + len(delimiter)]
                    if common == key_marker or (key_marker.startswith(common) and key_marker > common):
                        seek = prefix_upper_bound(common)  # listed on an earlier page
                        break
                    if len(uploads) + len(prefixes) >= max_uploads:
                        return page(True)
                    prefixes.append(common.decode("utf-8"))
                    last = (prefixes[-1], None)
                    seek = prefix_upper_bound(common)
                    break
            if len(uploads) + len(prefixes) >= max_uploads:
                return page(True)
            uploads.append(upload)
            last = (upload.key, upload.upload_id)
        else:
            return page(False)
        if seek is None or (upper is not None and seek >= upper):
            return page(False)
        after_key, after_id = seek, ""


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
    entries: list[VersionEntry] = []
    prefixes: list[str] = []
    upper = prefix_upper_bound(prefix)
    from_key: bytes
    after: str | None
    if key_marker and key_marker >= prefix:
        # Without a version-id marker every version of key-marker was listed already.
        from_key, after = key_marker, (version_id_marker or AFTER_ALL_VERSIONS)
    else:
        from_key, after = prefix, None
    last: tuple[str, str | None] | None = None

    def page(truncated: bool) -> VersionsPage:
        if not truncated or last is None:
            return VersionsPage(entries, prefixes, truncated, None, None)
        return VersionsPage(entries, prefixes, True, last[0], last[1])

    while True:
        seek: bytes | None = None
        for key, entry in scan(from_key, after, upper):
            if delimiter:
                idx = key.find(delimiter, len(prefix))
                if idx >= 0:
                    common = key[: idx + len(delimiter)]
                    if common == key_marker or (key_marker.startswith(common) and key_marker > common):
                        seek = prefix_upper_bound(common)  # listed on an earlier page
                        break
                    if len(entries) + len(prefixes) >= max_keys:
                        return page(True)
                    prefixes.append(common.decode("utf-8"))
                    last = (prefixes[-1], None)
                    seek = prefix_upper_bound(common)
                    break
            if len(entries) + len(prefixes) >= max_keys:
                return page(True)
            entries.append(entry)
            last = (entry.key, entry.version_id)
        else:
            return page(False)
        if seek is None or (upper is not None and seek >= upper):
            return page(False)
        from_key, after = seek, None
