"""The manifest journal: every committed change of the durable metadata, appended to one file,
so ``coffer rebuild-index`` can recreate ``metadata.sqlite3`` from it and the blob files.

What is journaled: the row images of ``buckets`` (with their configuration documents),
``objects`` (every version and delete marker, with its headers, checksums, tags, ACL, lock,
encoding and inline body) and ``object_parts`` (the pieces of multipart objects). Uploads in
progress (``uploads``, ``parts``) are not: a rebuilt store has none (their part files become
orphans, removed by the sweep).

How: the writer connection carries TEMP triggers (they live in that connection only; the
database file is unchanged, so older Coffers still open it) that hand each inserted, updated
or deleted row to ``Journal.record``. The writer thread appends the changes of a batch as one
frame *before* its COMMIT, while it holds SQLite's write lock (so frames are in commit order
across worker processes), and records the frame's sequence number and end offset in the
``journal_state`` row of the same transaction. At open, under the write lock:

- the file is longer than recorded: a frame whose transaction never committed (a crash
  between append and COMMIT) is cut off;
- the file is shorter or its last frame is not the recorded one (a power loss took the
  unsynced tail, or the file was lost, or the database predates the journal): the journal is
  rewritten from the database as a snapshot.

File format: frames of ``<4s magic "CJF1"><B kind><3x><Q seq><I length><I crc32>`` and a JSON
payload. Kind ``C``: ``{table: [column, ...]}`` (the columns of the row lists that follow, so
the file describes itself); ``S``: snapshot rows ``[[table, "P", row], ...]``; ``T``: one
committed batch ``[[table, "P", row] | [table, "D", key], ...]`` ("P": the row's image after
an insert or update, "D": the primary key of a deleted row). BLOB columns are hex strings.
"""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from coffer.fsutil import fsync_dir

JOURNAL_NAME = "manifest.journal"
MAGIC = b"CJF1"
_HEADER = struct.Struct("<4sB3xQII")
COLUMNS, SNAPSHOT, TRANSACTION = b"C"[0], b"S"[0], b"T"[0]
SNAPSHOT_ROWS = 1000  # rows per snapshot frame: bounded memory for any store size

# Journaled tables and their primary keys.
TABLES: dict[str, tuple[str, ...]] = {
    "buckets": ("name",),
    "objects": ("id",),
    "object_parts": ("object_id", "part_number"),
}
# The last committed frame (its sequence number, where it starts and ends) and the columns
# the journal's rows are in: one row, written in the transaction of the frame.
STATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS journal_state(id INTEGER PRIMARY KEY CHECK(id=1), seq INTEGER NOT NULL,"
    " start INTEGER NOT NULL, end INTEGER NOT NULL, columns TEXT NOT NULL)"
)


def table_columns(conn: sqlite3.Connection, table: str) -> list[tuple[str, bool]]:
    """(column, is_blob) of a table, in order."""
    return [(row[1], row[2].upper() == "BLOB") for row in conn.execute(f"PRAGMA main.table_info({table})")]


def _value(column: str, is_blob: bool, prefix: str) -> str:
    ref = f"{prefix}.{column}"
    return f"CASE WHEN {ref} IS NULL THEN NULL ELSE hex({ref}) END" if is_blob else ref


def column_map(conn: sqlite3.Connection) -> dict[str, list[str]]:
    return {table: [name for name, _ in table_columns(conn, table)] for table in TABLES}


def _encode_row(row: tuple[Any, ...], blobs: list[bool]) -> list[Any]:
    return [bytes(v).hex() if flag and v is not None else v for v, flag in zip(row, blobs, strict=True)]


def _frame(kind: int, seq: int, payload: bytes) -> bytes:
    return _HEADER.pack(MAGIC, kind, seq, len(payload), zlib.crc32(payload)) + payload


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


@dataclass
class Frame:
    kind: int
    seq: int
    offset: int
    end: int


@dataclass
class Scan:
    frames: list[Frame] = field(default_factory=list)
    size: int = 0  # file length
    good_end: int = 0  # end of the last readable frame


def _read_frame(f: BinaryIO, at: int) -> tuple[Frame, bytes] | None:
    """The frame at offset ``at``, None when torn, corrupt or past the end."""
    f.seek(at)
    header = f.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    magic, kind, seq, length, crc = _HEADER.unpack(header)
    if magic != MAGIC:
        return None
    payload = f.read(length)
    if len(payload) < length or zlib.crc32(payload) != crc:
        return None
    return Frame(kind, seq, at, at + _HEADER.size + length), payload


def scan_frames(path: Path) -> Scan:
    """Where every readable frame of a journal is; stops at the first torn or corrupt one."""
    scan = Scan()
    if not path.exists():
        return scan
    with open(path, "rb") as f:
        scan.size = os.fstat(f.fileno()).st_size
        at = 0
        while (found := _read_frame(f, at)) is not None:
            scan.frames.append(found[0])
            at = found[0].end
        scan.good_end = at
    return scan


class Journal:
    """The writer connection's side of the journal (one per ``SQLiteMetadataStore``)."""

    def __init__(self, root: Path, fsync: bool, file_mode: int) -> None:
        self.path = root / JOURNAL_NAME
        self.fsync = fsync
        self.file_mode = file_mode
        self.changes: list[bytes] = []  # the current batch's changes, JSON-encoded
        self._fd = -1
        self._ino = -1
        self._seq = 0
        self._start = 0
        self._end = 0

    # ------------------------------------------------------------------ setup
    def attach(self, conn: sqlite3.Connection) -> None:
        """Install the TEMP triggers on the writer connection and reconcile the file with the
        database (the caller holds the write transaction)."""
        conn.create_function("coffer_journal", -1, self._record)
        for table, key in TABLES.items():
            columns = table_columns(conn, table)
            row = ", ".join(_value(name, blob, "NEW") for name, blob in columns)
            pk = ", ".join(f"OLD.{name}" for name in key)
            for event, values in (("INSERT", row), ("UPDATE", row)):
                conn.execute(
                    f"CREATE TEMP TRIGGER IF NOT EXISTS journal_{table}_{event.lower()} AFTER {event} ON main.{table}"
                    f" BEGIN SELECT coffer_journal('{table}', 'P', {values}); END"
                )
            conn.execute(
                f"CREATE TEMP TRIGGER IF NOT EXISTS journal_{table}_delete AFTER DELETE ON main.{table}"
                f" BEGIN SELECT coffer_journal('{table}', 'D', {pk}); END"
            )
        self._reconcile(conn)

    def _record(self, table: str, op: str, *values: Any) -> None:
        self.changes.append(_dump([table, op, list(values)]))

    def _reconcile(self, conn: sqlite3.Connection) -> None:
        """O(1): only the recorded last frame is read."""
        state = conn.execute("SELECT seq, start, end, columns FROM journal_state WHERE id=1").fetchone()
        if state is not None:
            seq, start, end, columns = state
            self._seq = seq
            if columns == _dump(column_map(conn)).decode() and self._holds(seq, start, end):
                self._open_file()
                if os.fstat(self._fd).st_size > end:
                    os.ftruncate(self._fd, end)  # frames of transactions that never committed
                    self._sync()
                self._start, self._end = start, end
                return
        self.snapshot(conn)

    def _holds(self, seq: int, start: int, end: int) -> bool:
        """Whether the file holds the recorded last frame where it was written."""
        try:
            with open(self.path, "rb") as f:
                found = _read_frame(f, start)
        except FileNotFoundError:
            return False
        return found is not None and found[0].seq == seq and found[0].end == end

    def _open_file(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self.file_mode)
        os.fchmod(self._fd, self.file_mode)  # whatever the umask
        self._ino = os.fstat(self._fd).st_ino

    def snapshot(self, conn: sqlite3.Connection) -> None:
        """Rewrite the journal as the database's current rows (inside the write transaction)."""
        seq = self._seq + 1
        temp = self.path.with_name(JOURNAL_NAME + ".new")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.file_mode)
        os.fchmod(fd, self.file_mode)  # whatever the umask
        columns_doc = _dump(column_map(conn))
        start = 0
        try:
            written = self._write(fd, _frame(COLUMNS, seq, columns_doc))
            for table in TABLES:
                columns = table_columns(conn, table)
                select = ", ".join(name for name, _ in columns)
                blobs = [blob for _, blob in columns]
                rows: list[list[Any]] = []
                for row in conn.execute(f"SELECT {select} FROM main.{table}"):
                    rows.append([table, "P", _encode_row(row, blobs)])
                    if len(rows) >= SNAPSHOT_ROWS:
                        start = written
                        written += self._write(fd, _frame(SNAPSHOT, seq, _dump(rows)))
                        rows = []
                if rows:
                    start = written
                    written += self._write(fd, _frame(SNAPSHOT, seq, _dump(rows)))
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, self.path)
        if self.fsync:
            fsync_dir(self.path.parent)
        self._open_file()
        self._seq, self._start, self._end = seq, start, written
        conn.execute(
            "INSERT OR REPLACE INTO journal_state(id, seq, start, end, columns) VALUES (1, ?, ?, ?, ?)",
            (seq, start, written, columns_doc.decode()),
        )

    @staticmethod
    def _write(fd: int, frame: bytes) -> int:
        view = memoryview(frame)
        while view:
            view = view[os.write(fd, view) :]
        return len(frame)

    def _sync(self) -> None:
        if self.fsync:
            os.fdatasync(self._fd)

    # ------------------------------------------------------------------ batches
    def mark(self) -> int:
        return len(self.changes)

    def rollback_to(self, mark: int) -> None:
        del self.changes[mark:]

    def append(self, conn: sqlite3.Connection) -> None:
        """Append the batch's changes as one frame and record it in ``journal_state`` (inside
        the write transaction, before COMMIT)."""
        if not self.changes:
            return
        if os.stat(self.path).st_ino != self._ino:  # another worker process rewrote it (snapshot)
            self._open_file()
        seq, end = conn.execute("SELECT seq, end FROM journal_state WHERE id=1").fetchone()
        self._end = end  # another worker process may have appended since
        payload = b"[" + b",".join(self.changes) + b"]"
        self.changes = []
        frame = _frame(TRANSACTION, seq + 1, payload)
        self._write(self._fd, frame)
        self._sync()
        self._seq, self._start, self._end = seq + 1, end, end + len(frame)
        conn.execute("UPDATE journal_state SET seq=?, start=?, end=? WHERE id=1", (self._seq, self._start, self._end))

    def discard(self) -> None:
        """The batch failed before or at COMMIT: forget its changes, cut its frame off."""
        self.changes = []
        if self._fd >= 0:
            try:
                if os.fstat(self._fd).st_size > self._end:
                    os.ftruncate(self._fd, self._end)
            except OSError:
                pass

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def replay(path: Path) -> Iterator[tuple[dict[str, list[str]], list[list[Any]]]]:
    """The changes to apply, frame by frame, with the columns of their rows.

    A frame whose transaction never committed and whose sequence number later frames re-used
    (a worker process killed between append and COMMIT while others kept writing) is skipped:
    walking back from the end, sequence numbers must decrease.
    """
    scan = scan_frames(path)
    keep: list[Frame] = []
    floor: int | None = None
    for frame in reversed(scan.frames):
        if frame.kind != TRANSACTION or floor is None or frame.seq < floor:
            keep.append(frame)
            if frame.kind == TRANSACTION:
                floor = frame.seq
    columns: dict[str, list[str]] = {}
    with open(path, "rb") as f:
        for frame in reversed(keep):
            found = _read_frame(f, frame.offset)
            assert found is not None  # read whole a moment ago; the store is offline
            if frame.kind == COLUMNS:
                columns = json.loads(found[1])
            else:
                yield columns, json.loads(found[1])
