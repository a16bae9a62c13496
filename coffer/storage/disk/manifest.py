"""SQL helpers for bodies made of pieces and for blob files shared between rows.

A blob file can be referenced by an object row (``objects.blob``), by the
manifest of a many-piece object (``object_parts.blob``: completed multipart
uploads, copies sharing another object's pieces) and by a part of an upload in
progress (``parts.blob``). Whoever removes a reference asks, inside the same
write transaction, which of the released files nothing references any more;
those are deleted after the commit. The orphan sweep uses the same check.
"""

from __future__ import annotations

import base64
import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from coffer.storage.api import ObjectPart
from coffer.storage.contracts import Segment

_IN_USE = (
    "SELECT EXISTS(SELECT 1 FROM objects WHERE blob=?1)"
    " OR EXISTS(SELECT 1 FROM object_parts WHERE blob=?1)"
    " OR EXISTS(SELECT 1 FROM parts WHERE blob=?1)"
)


def blob_in_use(conn: sqlite3.Connection, name: str) -> bool:
    return bool(conn.execute(_IN_USE, (name,)).fetchone()[0])


def unreferenced(conn: sqlite3.Connection, released: Iterable[str | None]) -> list[str]:
    """Of the blob files whose references were just removed, those nothing uses any more."""
    return [name for name in dict.fromkeys(released) if name and not blob_in_use(conn, name)]


def drop_manifest(conn: sqlite3.Connection, object_id: int) -> list[str]:
    """Delete an object row's pieces; returns the blob files they referenced."""
    rows = conn.execute("DELETE FROM object_parts WHERE object_id=? RETURNING blob", (object_id,)).fetchall()
    return [r[0] for r in rows if r[0]]


def load_segments(conn: sqlite3.Connection, object_id: int) -> list[Segment]:
    """The pieces of an object's body, in the coordinates of its bytes as stored (the stored
    offsets and sizes of an object stored transformed, else the logical ones: the same)."""
    rows = conn.execute(
        "SELECT COALESCE(stored_offset, offset), COALESCE(stored_size, size), blob, data FROM object_parts"
        " WHERE object_id=? ORDER BY part_number",
        (object_id,),
    ).fetchall()
    return [Segment(offset, size, blob, bytes(data) if data is not None else None) for offset, size, blob, data in rows]


def checksums_doc(values: dict[str, bytes]) -> dict[str, str]:
    """Checksums as stored in JSON: algorithm -> base64 digest."""
    return {a: base64.b64encode(v).decode() for a, v in values.items()}


def checksums_from_doc(doc: dict[str, str]) -> dict[str, bytes]:
    return {a: base64.b64decode(v) for a, v in doc.items()}


def encode_checksums(values: dict[str, bytes]) -> str:
    """The ``checksums`` column of parts and object_parts rows."""
    return json.dumps(checksums_doc(values), separators=(",", ":"))


def decode_checksums(text: str | None) -> dict[str, bytes]:
    return checksums_from_doc(json.loads(text)) if text else {}


_PART_COLUMNS = "part_number, offset, size, etag, checksums, stored_offset, stored_size"


def _object_part(row: tuple[Any, ...]) -> ObjectPart:
    number, offset, size, etag, sums, stored_offset, stored_size = row
    return ObjectPart(number, offset, size, etag, decode_checksums(sums), stored_offset, stored_size)


def object_part(conn: sqlite3.Connection, object_id: int, part_number: int) -> ObjectPart | None:
    row = conn.execute(
        f"SELECT {_PART_COLUMNS} FROM object_parts WHERE object_id=? AND part_number=?",
        (object_id, part_number),
    ).fetchone()
    return _object_part(row) if row is not None else None


def object_parts_page(
    conn: sqlite3.Connection, object_id: int, marker: int, max_parts: int
) -> tuple[list[ObjectPart], bool]:
    rows = conn.execute(
        f"SELECT {_PART_COLUMNS} FROM object_parts WHERE object_id=? AND part_number>? ORDER BY part_number LIMIT ?",
        (object_id, marker, max_parts + 1),
    ).fetchall()
    parts = [_object_part(r) for r in rows[:max_parts]]
    return parts, len(rows) > max_parts
