"""The objects table: one typed record per (bucket, key, version) and its few operations.

Every write of an object row (PutObject, CompleteMultipartUpload, CopyObject,
tagging, deletes, expiry) goes through this module, inside a transaction of the
metadata store's writer; nothing else reads an objects row by column position or
knows the ``extra`` column's JSON. The record of a key's current version is
"latest": ``upsert`` maintains that flag (today one 'null' version per key;
versioning adds rows and moves the flag here).

``extra`` (JSON, compatible with every earlier Coffer): ``h`` headers, ``c``
checksums (algorithm -> base64), ``ct`` checksum type, ``n`` parts count, ``t``
tags, ``sg`` 1 when the body is pieces (rows of ``object_parts``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from coffer.storage import errors
from coffer.storage.api import ListEntry, ObjectInfo
from coffer.storage.disk.manifest import checksums_doc, checksums_from_doc, drop_manifest, unreferenced
from coffer.storage.disk.metadata import bucket_info

# Rows visible at time `?`: expired ones are gone for readers before the reaper deletes them.
_LIVE = "(expires IS NULL OR expires > ?)"
_COLUMNS = "id, key, size, etag, last_modified, storage_class, owner, extra, blob, expires, version"
_WHERE = f"FROM objects WHERE bucket=? AND key=? AND version='null' AND is_delete_marker=0 AND {_LIVE}"
_GET = f"SELECT {_COLUMNS}, NULL {_WHERE}"
_GET_WITH_DATA = f"SELECT {_COLUMNS}, data {_WHERE}"


@dataclass(slots=True)
class Inline:
    """The body lives in the row. ``data`` is None when the read did not ask for it (HEAD)."""

    data: bytes | None


@dataclass(slots=True)
class File:
    """The body is one blob."""

    blob: str


@dataclass(slots=True)
class Pieces:
    """The body is the record's rows of ``object_parts`` (a completed upload, or a copy of one).

    When writing, where the pieces come from: parts of an upload (moved, in this
    order) or the pieces of another record (shared: same blobs, new rows).
    """

    upload_id: str | None = None
    part_numbers: tuple[int, ...] = ()
    shared_from: int | None = None


Body = Inline | File | Pieces
# Read side: shared instances (the hot read path allocates no body object for these).
_NOT_LOADED = Inline(None)
_PIECES = Pieces()


@dataclass(slots=True)
class ObjectRecord:
    info: ObjectInfo  # what S3 sees; info.version_id is the row's version
    owner: str
    body: Body
    expires: float | None = None  # epoch seconds (TTL); None: never
    id: int = 0  # the row; set by upsert


@dataclass(slots=True)
class Slot:
    """The row a write to (bucket, key, version) replaces, expired or not."""

    id: int
    etag: str
    blob: str | None  # the replaced body's blob (File bodies)
    expires: float | None
    last_modified: float
    size: int

    def live(self, now: float) -> Slot | None:
        """This slot when it holds a live (unexpired) object: what conditional deletes compare."""
        return self if self.expires is None or self.expires > now else None

    def live_etag(self, now: float) -> str | None:
        """The ETag conditional writes compare against (None: nothing live there)."""
        return self.etag if self.live(now) is not None else None


# ---------------------------------------------------------------------- codec
def encode_extra(info: ObjectInfo, pieces: bool) -> str:
    doc: dict[str, Any] = {"h": info.headers, "c": checksums_doc(info.checksums), "ct": info.checksum_type}
    if info.tags:
        doc["t"] = info.tags
    if info.parts_count:
        doc["n"] = info.parts_count
    if pieces:
        doc["sg"] = 1
    return json.dumps(doc, separators=(",", ":"))


def _decode(bucket: str, row: tuple[Any, ...]) -> ObjectRecord:
    object_id, key, size, etag, last_modified, storage_class, owner, extra, blob, expires, version, data = row
    doc = json.loads(extra)
    info = ObjectInfo(
        bucket=bucket,
        key=bytes(key).decode("utf-8"),
        size=size,
        etag=etag,
        last_modified=last_modified,
        version_id=version,
        storage_class=storage_class,
        headers=doc.get("h", {}),
        checksums=checksums_from_doc(doc.get("c", {})),
        checksum_type=doc.get("ct", "FULL_OBJECT"),
        parts_count=doc.get("n", 0),
        tags=doc.get("t", {}),
    )
    body: Body
    if doc.get("sg"):
        body = _PIECES
    elif blob is not None:
        body = File(blob)
    else:
        body = Inline(bytes(data)) if data is not None else _NOT_LOADED
    return ObjectRecord(info, owner, body, expires, object_id)


# ---------------------------------------------------------------------- reads
def get(conn: sqlite3.Connection, bucket: str, key: str, now: float, *, with_data: bool) -> ObjectRecord | None:
    """The latest live version of a key (its inline body only ``with_data``)."""
    row = conn.execute(_GET_WITH_DATA if with_data else _GET, (bucket, key.encode("utf-8"), now)).fetchone()
    return _decode(bucket, row) if row is not None else None


def require(conn: sqlite3.Connection, bucket: str, key: str, now: float, *, with_data: bool) -> ObjectRecord:
    """``get``, or NoSuchKey / NoSuchBucket."""
    row = conn.execute(_GET_WITH_DATA if with_data else _GET, (bucket, key.encode("utf-8"), now)).fetchone()
    if row is None:
        bucket_info(conn, bucket)
        raise errors.NoSuchKey(key=key)
    return _decode(bucket, row)


def slot(conn: sqlite3.Connection, bucket: str, key: str) -> Slot | None:
    row = conn.execute(
        "SELECT id, etag, blob, expires, last_modified, size FROM objects WHERE bucket=? AND key=? AND version='null'",
        (bucket, key.encode("utf-8")),
    ).fetchone()
    return Slot(*row) if row is not None else None


def count_live(conn: sqlite3.Connection, bucket: str, now: float) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM objects WHERE bucket=? AND {_LIVE}", (bucket, now)).fetchone()[0])


def any_live(conn: sqlite3.Connection, bucket: str, now: float) -> bool:
    return (
        conn.execute(f"SELECT 1 FROM objects WHERE bucket=? AND {_LIVE} LIMIT 1", (bucket, now)).fetchone() is not None
    )


def scan(
    conn: sqlite3.Connection, bucket: str, lower: bytes, inclusive: bool, upper: bytes | None, now: float, limit: int
) -> Iterator[tuple[bytes, ListEntry]]:
    """Latest live versions with lower <(=) key < upper in key order, at most ``limit``.

    A lazy cursor (no fetchall): a caller that stops early never reads the rest.
    """
    bound = (upper,) if upper is not None else ()
    sql = (
        "SELECT key, size, etag, last_modified, storage_class, owner FROM objects WHERE bucket=? "
        f"AND key {'>=' if inclusive else '>'} ? {'AND key < ?' if bound else ''} "
        f"AND is_latest=1 AND is_delete_marker=0 AND {_LIVE} ORDER BY key LIMIT ?"
    )
    for key, size, etag, last_modified, storage_class, owner in conn.execute(sql, (bucket, lower, *bound, now, limit)):
        raw = bytes(key)
        yield raw, ListEntry(raw.decode("utf-8"), size, etag, last_modified, storage_class, owner)


# ---------------------------------------------------------------------- writes
def upsert(conn: sqlite3.Connection, record: ObjectRecord, replaces: Slot | None) -> list[str]:
    """Write ``record`` as the latest version of its key, in place of ``replaces`` (from ``slot``).

    Sets ``record.id``; returns the blobs the replaced body held that nothing
    references any more (the caller deletes them after the commit).
    """
    info, body = record.info, record.body
    pieces = isinstance(body, Pieces)
    values = (
        info.size,
        info.etag,
        info.last_modified,
        info.storage_class,
        record.owner,
        encode_extra(info, pieces),
        record.expires,
        body.blob if isinstance(body, File) else None,
        body.data if isinstance(body, Inline) else None,
    )
    released: list[str | None] = []
    if replaces is None:
        record.id = conn.execute(
            "INSERT INTO objects(bucket, key, version, size, etag, last_modified, storage_class, owner,"
            " extra, expires, blob, data) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
            (info.bucket, info.key.encode("utf-8"), info.version_id, *values),
        ).fetchone()[0]
    else:
        record.id = replaces.id
        conn.execute(
            "UPDATE objects SET size=?, etag=?, last_modified=?, storage_class=?, owner=?, extra=?, expires=?,"
            " blob=?, data=?, is_delete_marker=0, is_latest=1 WHERE id=?",
            (*values, replaces.id),
        )
        released += [replaces.blob, *drop_manifest(conn, replaces.id)]
    if isinstance(body, Pieces):
        _add_pieces(conn, record.id, body)
    return unreferenced(conn, released)


def _add_pieces(conn: sqlite3.Connection, object_id: int, body: Pieces) -> None:
    if body.shared_from is not None:
        # Share the source's pieces: new manifest rows, the same blobs.
        conn.execute(
            "INSERT INTO object_parts(object_id, part_number, offset, size, etag, checksums, blob, data)"
            " SELECT ?, part_number, offset, size, etag, checksums, blob, data FROM object_parts"
            " WHERE object_id=?",
            (object_id, body.shared_from),
        )
        return
    offset = 0
    for number in body.part_numbers:
        # The upload's part becomes a piece of the object: same blob, no data copied.
        size = conn.execute(
            "INSERT INTO object_parts(object_id, part_number, offset, size, etag, checksums, blob, data)"
            " SELECT ?, part_number, ?, size, etag, checksums, blob, data FROM parts"
            " WHERE upload_id=? AND part_number=? RETURNING size",
            (object_id, offset, body.upload_id, number),
        ).fetchone()[0]
        offset += size


def update_metadata(conn: sqlite3.Connection, record: ObjectRecord) -> None:
    """Rewrite a record's metadata in place (``record.id`` set); its body stays."""
    info = record.info
    conn.execute(
        "UPDATE objects SET etag=?, last_modified=?, storage_class=?, owner=?, extra=?, expires=? WHERE id=?",
        (
            info.etag,
            info.last_modified,
            info.storage_class,
            record.owner,
            encode_extra(info, isinstance(record.body, Pieces)),
            record.expires,
            record.id,
        ),
    )


def delete(conn: sqlite3.Connection, bucket: str, key: str) -> list[str]:
    """Remove a key's record; returns the blobs nothing references any more."""
    row = conn.execute(
        "DELETE FROM objects WHERE bucket=? AND key=? AND version='null' RETURNING id, blob",
        (bucket, key.encode("utf-8")),
    ).fetchone()
    if row is None:
        return []
    return unreferenced(conn, [row[1], *drop_manifest(conn, row[0])])


def delete_bucket_records(conn: sqlite3.Connection, bucket: str) -> list[str | None]:
    """Remove every record of a bucket; returns the blobs they held (not yet checked for other references)."""
    released: list[str | None] = []
    for object_id, blob in conn.execute("DELETE FROM objects WHERE bucket=? RETURNING id, blob", (bucket,)).fetchall():
        released += [blob, *drop_manifest(conn, object_id)]
    return released


def delete_expired(conn: sqlite3.Connection, now: float, limit: int) -> tuple[int, list[str]]:
    """Remove up to ``limit`` expired records: (how many, blobs nothing references any more)."""
    rows = conn.execute(
        "DELETE FROM objects WHERE id IN (SELECT id FROM objects WHERE expires IS NOT NULL"
        " AND expires <= ? LIMIT ?) RETURNING id, blob",
        (now, limit),
    ).fetchall()
    released: list[str | None] = []
    for object_id, blob in rows:
        released += [blob, *drop_manifest(conn, object_id)]
    # A copy may share an expired object's blobs: only unreferenced ones go.
    return len(rows), unreferenced(conn, released)
