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

File format: frames of ``<4s magic "CJF1"><B kind><3x><Q seq><I length><I crc32c>`` and a
payload. Kind ``C``: JSON ``{table: [column, ...]}`` (the columns of the rows that follow, so
the file describes itself); ``S`` (snapshot rows) and ``T`` (one committed batch): changes,
each ``<I json length><H exact count>``, the JSON ``[table, op, values]`` ("P": the row's image
after an insert or update, "D": the primary key of a deleted row, "O": the primary key and
new ``is_latest``, ``seq`` of a version only reordered) with every bytes value
(keys, inline bodies) replaced by null and appended as ``<H column><I length>`` and its bytes:
JSON-escaping a 4 KiB body as text cost ~70 us a row, more than the rest of a PUT's commit.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import struct
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from awscrt.checksums import crc32c

from coffer.fsutil import fsync_dir

log = logging.getLogger("coffer.journal")
_sync_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="coffer-journal-sync")
JOURNAL_NAME = "metadata.journal"  # the disk engine's (journal_path of metadata.sqlite3)
MAGIC = b"CJF1"
_HEADER = struct.Struct("<4sB3xQII")
COLUMNS, SNAPSHOT, TRANSACTION = b"C"[0], b"S"[0], b"T"[0]
SNAPSHOT_ROWS = 1000  # rows per snapshot frame: bounded memory for any store size
# Online compaction (compaction.py) starts when the journal is longer than both the floor and
# COMPACT_FACTOR times its length right after the last snapshot (at open, the database file's
# size stands in): churn then costs at most a few times the store's metadata in journal, and a
# small store is not compacted for every few writes. The floor is the setting
# journal_compact_min_bytes; tests use a tiny one.
COMPACT_MIN_BYTES = 64 * 1024**2
COMPACT_FACTOR = 2.0

# Journaled tables and their primary keys.
TABLES: dict[str, tuple[str, ...]] = {
    "buckets": ("name",),
    "objects": ("id",),
    "object_parts": ("object_id", "part_number"),
}
# Columns some updates change alone (op "O": primary key, then these values).
ORDER_COLUMNS: dict[str, tuple[str, ...]] = {"objects": ("is_latest", "seq")}
# The last committed frame (its sequence number, where it starts and ends) and the columns
# the journal's rows are in: one row, written in the transaction of the frame.
STATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS journal_state(id INTEGER PRIMARY KEY CHECK(id=1), seq INTEGER NOT NULL,"
    " start INTEGER NOT NULL, end INTEGER NOT NULL, columns TEXT NOT NULL)"
)


def journal_path(database: Path) -> Path:
    """``metadata.sqlite3`` -> ``metadata.journal``, beside it (one journal per database)."""
    return database.with_name(database.name.removesuffix(".sqlite3") + ".journal")


class JournalOrphaned(RuntimeError):
    """The database is gone but its journal is there: rebuild, do not overwrite the journal."""


def conn_path(conn: sqlite3.Connection) -> str:
    return str(conn.execute("PRAGMA database_list").fetchone()[2])


def mark_for_snapshot(conn: sqlite3.Connection, seq: int) -> None:
    """Make the next open rewrite the journal from this database (a rebuilt one): a state whose
    columns match nothing."""
    conn.execute(
        "INSERT OR REPLACE INTO journal_state(id, seq, start, end, columns) VALUES (1, ?, -1, -1, 'rebuilt')", (seq,)
    )


def table_columns(conn: sqlite3.Connection, table: str) -> list[str]:
    """The columns of a table, in order."""
    return [row[1] for row in conn.execute(f"PRAGMA main.table_info({table})")]


def column_map(conn: sqlite3.Connection) -> dict[str, dict[str, list[str]]]:
    """Per table, the columns SQLite writes into a change's JSON (``text``) and those handed
    over as they are (``exact``): REAL (SQLite's JSON keeps 15 digits of a float, not 17) and
    BLOB (keys, inline bodies: JSON-escaping a 4 KiB body as text cost ~70 us a row)."""
    out = {}
    for table in TABLES:
        rows = list(conn.execute(f"PRAGMA main.table_info({table})"))
        exact = [r[1] for r in rows if r[2].upper() in ("REAL", "BLOB")]
        out[table] = {"text": [r[1] for r in rows if r[1] not in exact], "exact": exact}
    return out


def _row_sql(table: str, columns: dict[str, list[str]], prefix: str) -> str:
    """The SQL of one row's change: its JSON head, then its exact values."""
    text = ", ".join(f"{prefix}{c}" for c in columns["text"])
    return ", ".join([f"json_array('{table}', 'P', json_array({text}))", *(f"{prefix}{c}" for c in columns["exact"])])


_CHANGE = struct.Struct("<IH")
_NONE = b"N"
_FLOAT = struct.Struct("<cd")
_INT = struct.Struct("<cq")
_SIZED = struct.Struct("<cI")


def encode_change(head: str, exact: tuple[Any, ...]) -> list[bytes]:
    """One change: ``head`` (JSON ``[table, op, values]``), then its exact values."""
    text = head.encode()
    out = [_CHANGE.pack(len(text), len(exact)), text]
    for value in exact:
        kind = type(value)
        if value is None:
            out.append(_NONE)
        elif kind is float:
            out.append(_FLOAT.pack(b"F", value))
        elif kind is bytes:
            out += (_SIZED.pack(b"B", len(value)), value)
        elif kind is int:
            out.append(_INT.pack(b"I", value))
        else:
            data = str(value).encode()
            out += (_SIZED.pack(b"S", len(data)), data)
    return out


def decode_changes(
    payload: bytes, columns: dict[str, dict[str, list[str]]]
) -> Iterator[tuple[str, str, dict[str, Any] | list[Any]]]:
    """(table, "P", {column: value}), (table, "D", primary key values) or (table, "O", primary
    key and ORDER_COLUMNS values)."""
    at = 0
    while at < len(payload):
        length, count = _CHANGE.unpack_from(payload, at)
        at += _CHANGE.size
        table, op, values = json.loads(payload[at : at + length])
        at += length
        exact: list[Any] = []
        for _ in range(count):
            kind = payload[at : at + 1]
            if kind == _NONE:
                exact.append(None)
                at += 1
            elif kind == b"F":
                exact.append(_FLOAT.unpack_from(payload, at)[1])
                at += _FLOAT.size
            elif kind == b"I":
                exact.append(_INT.unpack_from(payload, at)[1])
                at += _INT.size
            else:
                size = _SIZED.unpack_from(payload, at)[1]
                at += _SIZED.size
                data = payload[at : at + size]
                exact.append(data.decode() if kind == b"S" else data)
                at += size
        if op in ("D", "O"):
            yield table, op, values
        else:
            layout = columns[table]
            row = dict(zip(layout["text"], values, strict=True))
            row.update(zip(layout["exact"], exact, strict=True))
            yield table, op, row


def _frame_header(kind: int, seq: int, payload: bytes) -> bytes:
    # CRC32C: hardware-assisted, ~25x faster than zlib's CRC32 here.
    return _HEADER.pack(MAGIC, kind, seq, len(payload), crc32c(payload))


def _frame(kind: int, seq: int, payload: bytes) -> bytes:
    return _frame_header(kind, seq, payload) + payload


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
    if len(payload) < length or crc32c(payload) != crc:
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


def write_all(fd: int, *pieces: bytes) -> int:
    views = [memoryview(piece) for piece in pieces]
    total = sum(len(view) for view in views)
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if written:
            views[0] = views[0][written:]
    return total


def write_snapshot(
    fd: int, conn: sqlite3.Connection, seq: int, cancelled: Callable[[], bool] = lambda: False
) -> tuple[int, int, bytes]:
    """Write the rows ``conn`` sees as a snapshot (a columns frame, then rows) with sequence number
    ``seq``; returns where its last frame starts, the bytes written and the columns document.
    ``cancelled`` is asked between frames (compaction stops early when the store closes)."""
    columns_doc = _dump(column_map(conn))
    written = write_all(fd, _frame(COLUMNS, seq, columns_doc))
    start = 0
    layout = column_map(conn)
    for table in TABLES:
        rows: list[bytes] = []
        for count, (head, *exact) in enumerate(
            conn.execute(f"SELECT {_row_sql(table, layout[table], '')} FROM main.{table}"), 1
        ):
            rows += encode_change(head, tuple(exact))
            if count % SNAPSHOT_ROWS == 0:
                if cancelled():
                    raise InterruptedError("journal snapshot cancelled")
                start = written
                written += write_all(fd, _frame(SNAPSHOT, seq, b"".join(rows)))
                rows = []
        if rows:
            start = written
            written += write_all(fd, _frame(SNAPSHOT, seq, b"".join(rows)))
    return start, written, columns_doc


def read_frame_at(path: Path, at: int) -> Frame | None:
    """The readable frame at offset ``at`` of a journal, None when there is none."""
    try:
        with open(path, "rb") as f:
            found = _read_frame(f, at)
    except FileNotFoundError:
        return None
    return None if found is None else found[0]


class Journal:
    """The writer connection's side of the journal (one per ``SQLiteMetadataStore``)."""

    def __init__(
        self,
        database: Path,
        fsync: bool,
        file_mode: int,
        *,
        compact_min_bytes: int = COMPACT_MIN_BYTES,
        compact_factor: float = COMPACT_FACTOR,
    ) -> None:
        self.database = database
        self.path = journal_path(database)
        self.fsync = fsync
        self.file_mode = file_mode
        self.compact_min_bytes = compact_min_bytes
        self.compact_factor = compact_factor
        self.compact_at = compact_min_bytes  # journal length that starts a compaction (compaction.py)
        self.changes: list[bytes] = []  # the pieces of the current batch's encoded changes
        self._fd = -1
        self._ino = -1
        self._syncing: Future[None] | None = None
        self._appended: tuple[int, int] | None = None  # where this batch's frame lies until settled
        self._seq = 0
        self._start = 0
        self._end = 0

    # ------------------------------------------------------------------ setup
    def attach(self, conn: sqlite3.Connection) -> None:
        """Install the TEMP triggers on the writer connection and reconcile the file with the
        database (the caller holds the write transaction)."""
        conn.create_function("coffer_journal", -1, self._record)
        layout = column_map(conn)
        for table, key in TABLES.items():
            row = _row_sql(table, layout[table], "NEW.")
            pk = ", ".join(f"OLD.{name}" for name in key)
            # An update that only reorders a key's versions (demoting the latest, promoting the
            # next) is journaled as those two columns, not as a row image with its inline body.
            order = ORDER_COLUMNS.get(table)
            only_order = "0"
            if order is not None:
                others = [c for c in table_columns(conn, table) if c not in order]
                only_order = " AND ".join(f"OLD.{c} IS NEW.{c}" for c in others)
                values = ", ".join(f"NEW.{c}" for c in (*key, *order))
                conn.execute(
                    f"CREATE TEMP TRIGGER IF NOT EXISTS journal_{table}_order AFTER UPDATE OF {', '.join(order)}"
                    f" ON main.{table} WHEN {only_order}"
                    f" BEGIN SELECT coffer_journal(json_array('{table}', 'O', json_array({values}))); END"
                )
            for event, when in (("INSERT", ""), ("UPDATE", f" WHEN NOT ({only_order})")):
                conn.execute(
                    f"CREATE TEMP TRIGGER IF NOT EXISTS journal_{table}_{event.lower()} AFTER {event} ON main.{table}"
                    f"{when} BEGIN SELECT coffer_journal({row}); END"
                )
            conn.execute(
                f"CREATE TEMP TRIGGER IF NOT EXISTS journal_{table}_delete AFTER DELETE ON main.{table}"
                f" BEGIN SELECT coffer_journal(json_array('{table}', 'D', json_array({pk}))); END"
            )
        self._reconcile(conn)

    def _record(self, head: str, *exact: Any) -> None:
        self.changes += encode_change(head, exact)

    def _reconcile(self, conn: sqlite3.Connection) -> None:
        """O(1): only the recorded last frame is read."""
        state = conn.execute("SELECT seq, start, end, columns FROM journal_state WHERE id=1").fetchone()
        if state is not None:
            seq, start, end, columns = state
            self._seq = seq
            if columns == _dump(column_map(conn)).decode() and self.holds(seq, start, end):
                self._open_file()
                if os.fstat(self._fd).st_size > end:
                    os.ftruncate(self._fd, end)  # frames of transactions that never committed
                    self._sync()
                self._start, self._end = start, end
                # How long a snapshot of the store would be is not known until one is written.
                self.rebase(os.stat(self.database).st_size)
                return
        elif self._is_orphaned(conn):
            raise JournalOrphaned(
                f"{conn_path(conn)} is a new, empty database but {self.path} holds the journal of a store:"
                " the database was lost or removed. Run `coffer rebuild-index --force` to recreate it from the"
                " journal (it moves this empty database aside), or move the journal away to start an empty store."
            )
        self.snapshot(conn)

    def _is_orphaned(self, conn: sqlite3.Connection) -> bool:
        """A database with no journal state and no rows beside a journal that has frames: writing
        a snapshot now would replace the only record of the store with an empty one."""
        if conn.execute("SELECT EXISTS(SELECT 1 FROM buckets)").fetchone()[0]:
            return False  # a database written before the journal existed (schema 6): snapshot it
        try:
            with open(self.path, "rb") as f:
                return _read_frame(f, 0) is not None
        except FileNotFoundError:
            return False

    def holds(self, seq: int, start: int, end: int) -> bool:
        """Whether the file holds the recorded last frame where it was written."""
        found = read_frame_at(self.path, start)
        return found is not None and found.seq == seq and found.end == end

    def _open_file(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, self.file_mode)
        os.fchmod(self._fd, self.file_mode)  # whatever the umask
        self._ino = os.fstat(self._fd).st_ino

    def snapshot(self, conn: sqlite3.Connection) -> None:
        """Rewrite the journal as the database's current rows (inside the write transaction)."""
        # Numbers keep growing: another worker process may have appended since this one did.
        state = conn.execute("SELECT seq FROM journal_state WHERE id=1").fetchone()
        seq = max(self._seq, state[0] if state else 0) + 1
        temp = self.path.with_name(self.path.name + ".new")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, self.file_mode)
        os.fchmod(fd, self.file_mode)  # whatever the umask
        try:
            start, written, columns_doc = write_snapshot(fd, conn, seq)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, self.path)
        if self.fsync:
            fsync_dir(self.path.parent)
        self._open_file()
        self._seq, self._start, self._end = seq, start, written
        self.rebase(written)
        conn.execute(
            "INSERT OR REPLACE INTO journal_state(id, seq, start, end, columns) VALUES (1, ?, ?, ?, ?)",
            (seq, start, written, columns_doc.decode()),
        )

    # ------------------------------------------------------------------ size
    def rebase(self, snapshot_bytes: int) -> None:
        """The journal was (or is estimated to be) ``snapshot_bytes`` right after a snapshot:
        compact again once it grows past ``compact_factor`` times that (and the floor)."""
        self.compact_at = max(self.compact_min_bytes, int(self.compact_factor * snapshot_bytes))

    @property
    def oversized(self) -> bool:
        """Whether the journal outgrew its bound (a comparison: checked after every commit)."""
        return self._end > self.compact_at

    @property
    def fd(self) -> int:
        return self._fd

    @property
    def size(self) -> int:
        """The committed length of the journal, as of this process's last append."""
        return self._end

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
        seq, start, end = conn.execute("SELECT seq, start, end FROM journal_state WHERE id=1").fetchone()
        # Another worker process may have appended since, or compacted. Out of step (the file does
        # not end with the recorded frame): append anyway; the next open or compaction rewrites it.
        self.follow(seq, start, end)
        payload = b"".join(self.changes)
        self.changes = []
        header = _frame_header(TRANSACTION, seq + 1, payload)
        write_all(self._fd, header, payload)
        if self.fsync:
            # Synced while SQLite fsyncs its WAL for the COMMIT (``settle`` waits for both): a
            # crash in between leaves a database ahead of its journal, which the next open
            # notices (the recorded frame is not in the file) and answers with a snapshot.
            self._syncing = _sync_pool.submit(os.fdatasync, self._fd)
        self._seq, self._start, self._end = seq + 1, end, end + len(header) + len(payload)
        self._appended = (self._start, self._end)
        conn.execute("UPDATE journal_state SET seq=?, start=?, end=? WHERE id=1", (self._seq, self._start, self._end))

    def follow(self, seq: int, start: int, end: int) -> bool:
        """Catch up with the file as the committed ``journal_state`` (frame ``seq`` at [start, end))
        describes it, under the write lock: reopen it if another worker process replaced it (a
        snapshot or a compaction), and cut off the frame of a batch that never committed (a worker
        killed between its append and its COMMIT), so the recorded offsets stay the true ones
        (compaction relies on them). Returns whether the file ends with the recorded frame."""
        found = os.stat(self.path)
        if found.st_ino != self._ino:
            self._open_file()
            self.rebase(end)  # about a fresh snapshot's length
        self._end = end
        if found.st_size == end:
            return True
        if found.st_size > end and self.holds(seq, start, end):
            # Rare (after a kill): read what follows. An uncommitted frame took the next number;
            # one with the recorded number is a committed frame the offsets missed (a COMMIT that
            # failed after its append while another process appended): never cut that.
            after = read_frame_at(self.path, end)
            if after is None or after.seq > seq:
                os.ftruncate(self._fd, end)
                return True
        return False

    def replaced(self, seq: int, start: int, end: int, snapshot_bytes: int) -> None:
        """A compaction renamed a new file over the journal: append to that one from now on."""
        self._open_file()
        self._seq, self._start, self._end = seq, start, end
        self.rebase(snapshot_bytes)

    def settle(self) -> None:
        """Wait until the batch's frame is synced (after the COMMIT, before anyone is answered)."""
        syncing, self._syncing = self._syncing, None
        self._appended = None
        if syncing is not None:
            try:
                syncing.result()
            except OSError:
                log.exception("manifest journal fsync failed: it is rewritten from the database at the next start")

    def discard(self) -> None:
        """The batch failed before or at COMMIT: forget its changes, cut its frame off if it is
        still the last one. Never more: ``_end`` may be older than another worker process's
        appends (the batch failed before reading the state), and a failed COMMIT may have let
        another process append after the frame (the next open cuts or replay skips it)."""
        appended = self._appended
        self.changes = []
        self.settle()
        if appended is not None and self._fd >= 0:
            try:
                if os.fstat(self._fd).st_size == appended[1]:
                    os.ftruncate(self._fd, appended[0])
            except OSError:
                pass

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def replay(path: Path) -> Iterator[tuple[str, str, dict[str, Any] | list[Any]]]:
    """The changes to apply, in order: (table, "P", row) or (table, "D", primary key).

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
    columns: dict[str, dict[str, list[str]]] = {}
    with open(path, "rb") as f:
        for frame in reversed(keep):
            found = _read_frame(f, frame.offset)
            assert found is not None  # read whole a moment ago; the store is offline
            if frame.kind == COLUMNS:
                columns = json.loads(found[1])
            else:
                yield from decode_changes(found[1], columns)
