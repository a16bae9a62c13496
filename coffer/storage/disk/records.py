"""The objects table: one typed record per (bucket, key, version) and its few operations.

Every write of an object row (PutObject, CompleteMultipartUpload, CopyObject,
tagging, retention, deletes, expiry) goes through this module, inside a
transaction of the metadata store's writer; nothing else reads an objects row
by column position or knows the ``extra`` column's JSON.

Versions of a key are ordered by ``seq`` (per key, the newest highest); the row
with the highest ``seq`` has ``is_latest=1`` (the unique partial index
objects_latest holds at most one per key); the others are in objects_noncurrent,
newest first. A write either adds a row (a new version id) or rewrites the key's
'null' version in place, which then gets the highest ``seq``; removing the latest
row promotes the next newest. Delete markers are rows with
``is_delete_marker=1``, size 0, ETag "" and no body.

``extra`` (JSON, compatible with every earlier Coffer): ``h`` headers, ``c``
checksums (algorithm -> base64), ``ct`` checksum type, ``n`` parts count, ``t``
tags, ``sg`` 1 when the body is pieces (rows of ``object_parts``), ``l`` the
Object Lock state (``m`` mode, ``u`` retain-until, ``h`` 1 for a legal hold), ``a`` the
version's ACL document (the server's, stored opaquely; absent: the default ACL), ``e`` and
``z`` for a body stored transformed (encrypted): the server's encoding document (opaque) and
the stored length (the ``size`` column holds the size the version reports; absent: stored as sent).
"""

from __future__ import annotations

import heapq
import itertools
import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from coffer.storage import errors
from coffer.storage.api import NO_LOCK, NULL_VERSION, ListEntry, ObjectInfo, ObjectLock, VersionEntry
from coffer.storage.disk.manifest import checksums_doc, checksums_from_doc, drop_manifest, unreferenced
from coffer.storage.disk.metadata import bucket_info

# Rows visible at time `?`: expired ones are gone for readers before the reaper deletes them.
_LIVE = "(expires IS NULL OR expires > ?)"
_COLUMNS = "id, key, size, etag, last_modified, storage_class, owner, extra, blob, expires, version, is_delete_marker"
# The key's latest version when live: one probe of objects_latest. When it expired (the
# reaper has not removed it yet), readers see the newest live noncurrent one instead.
_LATEST = f"FROM objects INDEXED BY objects_latest WHERE bucket=? AND key=? AND is_latest=1 AND {_LIVE}"
_GET = f"SELECT {_COLUMNS}, NULL {_LATEST}"
_GET_WITH_DATA = f"SELECT {_COLUMNS}, data {_LATEST}"
_OLDER = (
    f"FROM objects INDEXED BY objects_noncurrent WHERE bucket=? AND key=? AND is_latest=0 AND {_LIVE}"
    " ORDER BY seq DESC LIMIT 1"
)
_GET_OLDER = f"SELECT {_COLUMNS}, NULL {_OLDER}"
_GET_OLDER_WITH_DATA = f"SELECT {_COLUMNS}, data {_OLDER}"
_SLOT_COLUMNS = "id, etag, blob, expires, last_modified, size, version, seq, is_latest, is_delete_marker, extra"
# All in objects_noncurrent: listing noncurrent versions never reads the table.
_VERSION_COLUMNS = "key, seq, version, is_delete_marker, size, etag, last_modified, storage_class, owner"
# Promote the key's newest remaining row (if any) once its latest row is gone.
_PROMOTE = (
    "UPDATE objects SET is_latest=1 WHERE id=(SELECT id FROM objects INDEXED BY objects_noncurrent"
    " WHERE bucket=? AND key=? AND is_latest=0 ORDER BY seq DESC LIMIT 1)"
)


@dataclass(slots=True)
class Inline:
    """The body lives in the row. ``data`` is None when the read did not ask for it (HEAD),
    and for delete markers."""

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
    id: int = 0  # the row; set by write


@dataclass(slots=True)
class Slot:
    """A version's row as writes see it, expired or not."""

    id: int
    etag: str
    blob: str | None  # the body's blob (File bodies)
    expires: float | None
    last_modified: float
    size: int
    version: str
    seq: int
    latest: bool
    marker: bool
    extra: str

    def live(self, now: float) -> Slot | None:
        """This slot when it is unexpired."""
        return self if self.expires is None or self.expires > now else None

    def live_etag(self, now: float) -> str | None:
        """The ETag conditional writes compare against (None: no live object here)."""
        return self.etag if not self.marker and self.live(now) is not None else None

    @property
    def lock(self) -> ObjectLock:
        return decode_lock(json.loads(self.extra).get("l"))


@dataclass(slots=True)
class Target:
    """The rows a new version of a key affects (``target``)."""

    latest: Slot | None  # the key's latest row: no longer latest after the write
    replaces: Slot | None  # the null version a null write rewrites (None: the write adds a row)
    current: Slot | None  # the newest live version (maybe a delete marker): what conditions compare

    @property
    def live_object(self) -> Slot | None:
        """The key's current object; a delete marker counts as none."""
        return self.current if self.current is not None and not self.current.marker else None


# ---------------------------------------------------------------------- codec
def encode_lock(lock: ObjectLock) -> dict[str, Any] | None:
    if not lock.recorded():
        return None
    doc: dict[str, Any] = {}
    if lock.mode is not None:
        doc["m"] = lock.mode
    if lock.retain_until is not None:
        doc["u"] = lock.retain_until
    if lock.legal_hold is not None:
        doc["h"] = int(lock.legal_hold)
    return doc


def decode_lock(doc: dict[str, Any] | None) -> ObjectLock:
    if not doc:
        return NO_LOCK
    hold = doc.get("h")
    return ObjectLock(doc.get("m"), doc.get("u"), None if hold is None else bool(hold))


def encode_extra(info: ObjectInfo, pieces: bool) -> str:
    doc: dict[str, Any] = {"h": info.headers, "c": checksums_doc(info.checksums), "ct": info.checksum_type}
    if info.tags:
        doc["t"] = info.tags
    if info.parts_count:
        doc["n"] = info.parts_count
    if pieces:
        doc["sg"] = 1
    lock = encode_lock(info.lock)
    if lock is not None:
        doc["l"] = lock
    if info.acl is not None:
        doc["a"] = info.acl  # absent when default: rows without an ACL stay byte-identical
    if info.encoding is not None:
        doc["e"] = info.encoding  # absent when stored as sent: such rows stay byte-identical
        doc["z"] = info.stored_size
    return json.dumps(doc, separators=(",", ":"))


def _decode(bucket: str, row: tuple[Any, ...]) -> ObjectRecord:
    object_id, key, size, etag, last_modified, storage_class, owner, extra, blob, expires, version, marker, data = row
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
        delete_marker=bool(marker),
        lock=decode_lock(doc.get("l")),
        acl=doc.get("a"),
        encoding=doc.get("e"),
        stored_size=doc.get("z"),
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
def get(
    conn: sqlite3.Connection, bucket: str, key: str, now: float, *, with_data: bool, version_id: str | None = None
) -> ObjectRecord | None:
    """The newest live version of a key, or the live version ``version_id`` (its inline body
    only ``with_data``); may be a delete marker."""
    if version_id is None:
        args = (bucket, key.encode("utf-8"), now)
        row = conn.execute(_GET_WITH_DATA if with_data else _GET, args).fetchone()
        if row is None:  # no key, or its latest version expired: an older one may show
            row = conn.execute(_GET_OLDER_WITH_DATA if with_data else _GET_OLDER, args).fetchone()
    else:
        columns = f"{_COLUMNS}, {'data' if with_data else 'NULL'}"
        row = _version_row(conn, columns, bucket, key.encode("utf-8"), version_id, now)
    return _decode(bucket, row) if row is not None else None


def require(
    conn: sqlite3.Connection, bucket: str, key: str, now: float, *, with_data: bool, version_id: str | None = None
) -> ObjectRecord:
    """``get`` of an object, else S3's error: NoSuchBucket; NoSuchKey (``marker`` set when the
    latest version is a delete marker); NoSuchVersion; MethodNotAllowed for a marker by version."""
    record = get(conn, bucket, key, now, with_data=with_data, version_id=version_id)
    if record is None:
        bucket_info(conn, bucket)
        if version_id is None:
            raise errors.NoSuchKey(key=key)
        raise errors.NoSuchVersion(key=key, version_id=version_id)
    if record.info.delete_marker:
        if version_id is None:
            raise errors.NoSuchKey(key=key, marker=record.info)
        raise errors.MethodNotAllowed(key=key, marker=record.info)
    return record


def _slot(conn: sqlite3.Connection, where: str, args: tuple[Any, ...]) -> Slot | None:
    row = conn.execute(f"SELECT {_SLOT_COLUMNS} FROM objects WHERE {where}", args).fetchone()
    return Slot(*row) if row is not None else None


def _version_row(
    conn: sqlite3.Connection, columns: str, bucket: str, key: bytes, version_id: str, live_at: float | None = None
) -> tuple[Any, ...] | None:
    """``columns`` of one version (live at ``live_at`` when given): the key's latest row when it
    is that version (one probe of objects_latest: every lookup in a never-versioned bucket),
    else a noncurrent one, by id (objects_version_ids) or the null one (objects_noncurrent)."""
    live = f" AND {_LIVE}" if live_at is not None else ""
    tail = (live_at,) if live_at is not None else ()
    row = conn.execute(
        f"SELECT {columns} FROM objects INDEXED BY objects_latest WHERE bucket=? AND key=? AND is_latest=1"
        f" AND version=?{live}",
        (bucket, key, version_id, *tail),
    ).fetchone()
    if row is not None:
        return row  # type: ignore[no-any-return]
    if version_id != NULL_VERSION:
        index, where = "objects_version_ids", "version=? AND version != 'null'"
    else:
        index, where = "objects_noncurrent", "version=?"
    return conn.execute(  # type: ignore[no-any-return]
        f"SELECT {columns} FROM objects INDEXED BY {index} WHERE bucket=? AND key=? AND is_latest=0 AND {where}{live}",
        (bucket, key, version_id, *tail),
    ).fetchone()


def version_slot(conn: sqlite3.Connection, bucket: str, key: str, version_id: str) -> Slot | None:
    """The row of one version, expired or not."""
    row = _version_row(conn, _SLOT_COLUMNS, bucket, key.encode("utf-8"), version_id)
    return Slot(*row) if row is not None else None


def latest_slot(conn: sqlite3.Connection, bucket: str, key: str) -> Slot | None:
    return _slot(conn, "bucket=? AND key=? AND is_latest=1", (bucket, key.encode("utf-8")))


def current_slot(conn: sqlite3.Connection, bucket: str, key: str, now: float) -> Slot | None:
    """The newest live noncurrent version, for a key whose latest expired (what readers see then)."""
    return _slot(
        conn,
        f"bucket=? AND key=? AND is_latest=0 AND {_LIVE} ORDER BY seq DESC LIMIT 1",
        (bucket, key.encode("utf-8"), now),
    )


def target(
    conn: sqlite3.Connection, bucket: str, key: str, version_id: str, versioning: str | None, now: float
) -> Target:
    """What writing version ``version_id`` of a key in a bucket with this versioning state affects."""
    if versioning is None:
        # Never versioned: a key has at most its null version, latest (one probe, as before versioning).
        null = latest_slot(conn, bucket, key)
        return Target(null, null, null.live(now) if null is not None else None)
    latest = latest_slot(conn, bucket, key)
    replaces = None
    if version_id == NULL_VERSION:
        replaces = latest if latest is not None and latest.version == NULL_VERSION else None
        if replaces is None and latest is not None:
            replaces = version_slot(conn, bucket, key, NULL_VERSION)
    current = latest.live(now) if latest is not None else None
    if latest is not None and current is None:
        current = current_slot(conn, bucket, key, now)  # the latest expired: an older one may show
    return Target(latest, replaces, current)


def count_live(conn: sqlite3.Connection, bucket: str, now: float) -> int:
    """Keys whose latest version is a live object (the quota's count)."""
    return int(
        conn.execute(
            f"SELECT COUNT(*) FROM objects INDEXED BY objects_latest WHERE bucket=? AND is_latest=1"
            f" AND is_delete_marker=0 AND {_LIVE}",
            (bucket, now),
        ).fetchone()[0]
    )


def any_live(conn: sqlite3.Connection, bucket: str, now: float) -> bool:
    """Whether any version or delete marker remains (expired versions do not count)."""
    return (
        conn.execute(f"SELECT 1 FROM objects WHERE bucket=? AND {_LIVE} LIMIT 1", (bucket, now)).fetchone() is not None
    )


# ListObjects: only latest rows are visited (the partial index objects_latest holds nothing else).
_SCAN = (
    "SELECT key, size, etag, last_modified, storage_class, owner, expires FROM objects INDEXED BY objects_latest"
    " WHERE bucket=? AND key {op} ? {bound} AND is_latest=1 AND is_delete_marker=0 ORDER BY key LIMIT ?"
)
_SCANS = {
    (inclusive, bounded): _SCAN.format(op=">=" if inclusive else ">", bound="AND key < ?" if bounded else "")
    for inclusive in (False, True)
    for bounded in (False, True)
}
_NEWEST_LIVE = (
    "SELECT size, etag, last_modified, storage_class, owner, is_delete_marker FROM objects"
    f" INDEXED BY objects_noncurrent WHERE bucket=? AND key=? AND is_latest=0 AND {_LIVE} ORDER BY seq DESC LIMIT 1"
)


def scan(
    conn: sqlite3.Connection, bucket: str, lower: bytes, inclusive: bool, upper: bytes | None, now: float, batch: int
) -> Iterator[tuple[bytes, ListEntry]]:
    """Latest live versions (not delete markers) with lower <(=) key < upper in key order.

    Lazy, ``batch`` rows per statement: a caller that stops early never reads the rest.
    A latest version that expired (not reaped yet) shows the key's newest live version
    instead, as reads do.
    """
    while True:
        bound = (upper,) if upper is not None else ()
        rows = conn.execute(_SCANS[(inclusive, upper is not None)], (bucket, lower, *bound, batch))
        count = 0
        raw = lower
        for key, size, etag, last_modified, storage_class, owner, expires in rows:
            count += 1
            raw = bytes(key)
            if expires is not None and expires <= now:
                older = conn.execute(_NEWEST_LIVE, (bucket, raw, now)).fetchone()
                if older is None or older[5]:
                    continue
                size, etag, last_modified, storage_class, owner, _marker = older
            yield raw, ListEntry(raw.decode("utf-8"), size, etag, last_modified, storage_class, owner)
        if count < batch:
            return
        lower, inclusive = raw, False


def _version_entries(
    rows: Iterable[tuple[Any, ...]], continuing: bytes | None
) -> Iterator[tuple[bytes, int, VersionEntry]]:
    """Rows in (key, newest first) order: the first live row of a key is its latest version,
    the newest one readers see (``continuing``: a key whose newer versions came before)."""
    previous = continuing
    for key, seq, version, marker, size, etag, last_modified, storage_class, owner in rows:
        raw = bytes(key)
        entry = VersionEntry(
            raw.decode("utf-8"), version, raw != previous, bool(marker), size, etag, last_modified, storage_class, owner
        )
        previous = raw
        yield raw, seq, entry


_LATEST_ROWS = (
    f"SELECT {_VERSION_COLUMNS} FROM objects INDEXED BY objects_latest WHERE bucket=? AND key {{op}} ?"
    f" {{bound}} AND is_latest=1 AND {_LIVE} ORDER BY key LIMIT ?"
)
_NONCURRENT_ROWS = (
    f"SELECT {_VERSION_COLUMNS} FROM objects INDEXED BY objects_noncurrent WHERE bucket=? AND key {{op}} ?"
    f" {{bound}} AND is_latest=0 AND {_LIVE} ORDER BY key, seq DESC LIMIT ?"
)


def key_versions(
    conn: sqlite3.Connection, bucket: str, key: bytes, below_seq: int | None, now: float, limit: int
) -> Iterator[tuple[bytes, int, VersionEntry]]:
    """A key's live versions older than ``below_seq`` (None: all), newest first; at most ``limit``."""
    rows: list[tuple[Any, ...]] = []
    if below_seq is None:
        rows += conn.execute(_LATEST_ROWS.format(op="=", bound=""), (bucket, key, now, 1)).fetchall()
    rows += conn.execute(
        f"SELECT {_VERSION_COLUMNS} FROM objects INDEXED BY objects_noncurrent WHERE bucket=? AND key=?"
        f" AND is_latest=0 AND seq < ? AND {_LIVE} ORDER BY seq DESC LIMIT ?",
        (bucket, key, below_seq if below_seq is not None else 1 << 62, now, limit),
    ).fetchall()
    return _version_entries(rows[:limit], key if below_seq is not None else None)


def versions_after(
    conn: sqlite3.Connection, bucket: str, after: bytes, upper: bytes | None, now: float, limit: int
) -> Iterator[tuple[bytes, int, VersionEntry]]:
    """Live versions of the keys after ``after`` (below ``upper``), by key then newest first; at most ``limit``.

    Two ordered walks merged: latest rows (objects_latest) and noncurrent ones
    (objects_noncurrent); within a key the latest row has the highest seq.
    """
    bound = "AND key < ?" if upper is not None else ""
    args = (bucket, after, *((upper,) if upper is not None else ()), now, limit)
    latest = conn.execute(_LATEST_ROWS.format(op=">", bound=bound), args)
    older = conn.execute(_NONCURRENT_ROWS.format(op=">", bound=bound), args)
    merged = heapq.merge(latest, older, key=lambda row: (bytes(row[0]), -row[1]))
    return _version_entries(itertools.islice(merged, limit), None)


def seq_of(conn: sqlite3.Connection, bucket: str, key: bytes, version_id: str) -> int | None:
    row = _version_row(conn, "seq", bucket, key, version_id)
    return int(row[0]) if row is not None else None


# ---------------------------------------------------------------------- writes
def write(conn: sqlite3.Connection, record: ObjectRecord, target: Target) -> list[str]:
    """Write ``record`` (an object or a delete marker) as the latest version of its key:
    in place of ``target.replaces`` (the null version) or as a new row.

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
        int(info.delete_marker),
    )
    released: list[str | None] = []
    replaces, latest = target.replaces, target.latest
    if replaces is not None:
        record.id = replaces.id
        seq = replaces.seq if replaces.latest else _demote(conn, latest)
        conn.execute(
            "UPDATE objects SET size=?, etag=?, last_modified=?, storage_class=?, owner=?, extra=?, expires=?,"
            " blob=?, data=?, is_delete_marker=?, is_latest=1, seq=? WHERE id=?",
            (*values, seq, replaces.id),
        )
        released += [replaces.blob, *drop_manifest(conn, replaces.id)]
    else:
        seq = _demote(conn, latest)
        record.id = conn.execute(
            "INSERT INTO objects(bucket, key, version, size, etag, last_modified, storage_class, owner,"
            " extra, expires, blob, data, is_delete_marker, is_latest, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,1,?)"
            " RETURNING id",
            (info.bucket, info.key.encode("utf-8"), info.version_id, *values, seq),
        ).fetchone()[0]
    if isinstance(body, Pieces):
        _add_pieces(conn, record.id, body)
    return unreferenced(conn, released)


def _demote(conn: sqlite3.Connection, latest: Slot | None) -> int:
    """The key's latest row is latest no more; returns the seq a newer row gets."""
    if latest is None:
        return 1
    conn.execute("UPDATE objects SET is_latest=0 WHERE id=?", (latest.id,))
    return latest.seq + 1


def make_latest(conn: sqlite3.Connection, slot: Slot, target: Target) -> None:
    """Move a row (rewritten in place, its body kept) to the top of its key's versions."""
    if not slot.latest:
        conn.execute("UPDATE objects SET is_latest=1, seq=? WHERE id=?", (_demote(conn, target.latest), slot.id))


def _add_pieces(conn: sqlite3.Connection, object_id: int, body: Pieces) -> None:
    if body.shared_from is not None:
        # Share the source's pieces: new manifest rows, the same blobs.
        conn.execute(
            "INSERT INTO object_parts(object_id, part_number, offset, size, etag, checksums, blob, data,"
            " stored_offset, stored_size) SELECT ?, part_number, offset, size, etag, checksums, blob, data,"
            " stored_offset, stored_size FROM object_parts WHERE object_id=?",
            (object_id, body.shared_from),
        )
        return
    offset = stored = 0
    for number in body.part_numbers:
        # The upload's part becomes a piece of the object: same blob, no data copied. A part
        # stored transformed also gets where its stored bytes lie (stored_offset NULL otherwise).
        size, stored_size = conn.execute(
            "INSERT INTO object_parts(object_id, part_number, offset, size, etag, checksums, blob, data,"
            " stored_offset, stored_size) SELECT ?, part_number, ?, size, etag, checksums, blob, data,"
            " CASE WHEN stored_size IS NULL THEN NULL ELSE ? END, stored_size FROM parts"
            " WHERE upload_id=? AND part_number=? RETURNING size, stored_size",
            (object_id, offset, stored, body.upload_id, number),
        ).fetchone()
        offset += size
        stored += size if stored_size is None else stored_size


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


def remove(conn: sqlite3.Connection, bucket: str, key: str, slot: Slot) -> list[str]:
    """Remove one version for good (the next newest becomes latest); returns the blobs
    nothing references any more."""
    conn.execute("DELETE FROM objects WHERE id=?", (slot.id,))
    released = [slot.blob, *drop_manifest(conn, slot.id)]
    if slot.latest:
        conn.execute(_PROMOTE, (bucket, key.encode("utf-8")))
    return unreferenced(conn, released)


def delete_bucket_records(conn: sqlite3.Connection, bucket: str) -> list[str | None]:
    """Remove every record of a bucket; returns the blobs they held (not yet checked for other references)."""
    released: list[str | None] = []
    for object_id, blob in conn.execute("DELETE FROM objects WHERE bucket=? RETURNING id, blob", (bucket,)).fetchall():
        released += [blob, *drop_manifest(conn, object_id)]
    return released


def delete_expired(conn: sqlite3.Connection, now: float, limit: int) -> tuple[int, list[str]]:
    """Remove up to ``limit`` expired records (promoting the next newest version of a key whose
    latest went): (how many, blobs nothing references any more)."""
    rows = conn.execute(
        "DELETE FROM objects WHERE id IN (SELECT id FROM objects WHERE expires IS NOT NULL"
        " AND expires <= ? LIMIT ?) RETURNING id, blob, bucket, key, is_latest",
        (now, limit),
    ).fetchall()
    released: list[str | None] = []
    for object_id, blob, bucket, key, latest in rows:
        released += [blob, *drop_manifest(conn, object_id)]
        if latest:
            conn.execute(_PROMOTE, (bucket, key))
    # A copy may share an expired object's blobs: only unreferenced ones go.
    return len(rows), unreferenced(conn, released)
