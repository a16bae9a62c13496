"""``coffer rebuild-index``: recreate ``metadata.sqlite3`` from the manifest journal
(journal.py) and check it against the blob files.

Offline only (the caller holds the data directory's lock). The new database is built
beside the old one (``metadata.sqlite3.rebuilding``), fsynced and renamed into place; an
existing database (``--force``) is moved aside, never deleted. The journal is left as it is;
the rebuilt database's ``journal_state`` tells the server's next start to rewrite it as a
snapshot of the rebuilt rows.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

from coffer.fsutil import fsync_dir
from coffer.storage.disk.blobs import FANOUT
from coffer.storage.disk.journal import (
    JOURNAL_NAME,
    ORDER_COLUMNS,
    TABLES,
    mark_for_snapshot,
    replay,
    scan_frames,
    table_columns,
)
from coffer.storage.disk.metadata import create_database

DB_NAME = "metadata.sqlite3"
DB_FILES = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm")


class RebuildError(Exception):
    pass


@dataclass
class RebuildReport:
    buckets: int = 0
    versions: int = 0  # object rows, delete markers included
    delete_markers: int = 0
    pieces: int = 0
    changes: int = 0  # journaled row changes replayed
    unreadable_tail: int = 0  # bytes at the journal's end that were torn or corrupt
    missing_blobs: list[str] = field(default_factory=list)  # referenced, no file
    unreferenced_blobs: int = 0  # files no rebuilt row references (orphans: `coffer fsck --repair`)
    moved_aside: list[str] = field(default_factory=list)
    last_seq: int = 0  # the journal's last sequence number (the rebuilt store continues after it)

    def summary(self) -> str:
        return (
            f"rebuilt {self.buckets} buckets, {self.versions} object versions ({self.delete_markers} delete markers),"
            f" {self.pieces} multipart pieces from {self.changes} journaled changes;"
            f" {len(self.missing_blobs)} missing blob files, {self.unreferenced_blobs} unreferenced blob files"
            + (f"; {self.unreadable_tail} unreadable bytes at the journal's end" if self.unreadable_tail else "")
        )


def move_aside(root: Path) -> list[str]:
    """Rename the database and its -wal/-shm with one suffix (they only make sense together)."""
    suffix = time.strftime(".before-rebuild-%Y%m%dT%H%M%S")
    moved = []
    for name in DB_FILES:
        path = root / name
        if path.exists():
            target = root / (name.replace(DB_NAME, DB_NAME + suffix, 1))
            os.rename(path, target)
            moved.append(target.name)
    fsync_dir(root)
    return moved


def rebuild_index(root: Path, *, force: bool = False) -> RebuildReport:
    journal = root / JOURNAL_NAME
    if not journal.exists():
        raise RebuildError(f"{journal} does not exist: nothing to rebuild from")
    if any((root / name).exists() for name in DB_FILES) and not force:
        raise RebuildError(f"{root / DB_NAME} exists; pass --force to move it aside and rebuild anyway")
    report = RebuildReport()
    building = root / f"{DB_NAME}.rebuilding"
    for leftover in (building, Path(f"{building}-journal")):
        leftover.unlink(missing_ok=True)
    conn = create_database(building)
    try:
        conn.execute("BEGIN IMMEDIATE")
        _apply(conn, journal, report)
        _finish(conn, root, report)
        # The server's next start rewrites the journal as a snapshot of these rows (it still
        # holds the old journal until then: nothing is lost if this rebuild is abandoned).
        mark_for_snapshot(conn, report.last_seq)
        conn.execute("COMMIT")
    finally:
        conn.close()
    fd = os.open(building, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if force:
        report.moved_aside = move_aside(root)
    os.rename(building, root / DB_NAME)
    fsync_dir(root)
    return report


def _apply(conn: sqlite3.Connection, journal: Path, report: RebuildReport) -> None:
    scan = scan_frames(journal)
    report.unreadable_tail = scan.size - scan.good_end
    report.last_seq = max((frame.seq for frame in scan.frames), default=0)
    known = {table: set(table_columns(conn, table)) for table in TABLES}
    for table, op, values in replay(journal):
        report.changes += 1
        key = TABLES[table]
        where = " AND ".join(f"{k}=?" for k in key)
        if op == "O":  # a version reordered: primary key, then the ORDER_COLUMNS values
            assert isinstance(values, list)
            sets = ", ".join(f"{c}=?" for c in ORDER_COLUMNS[table])
            conn.execute(f"UPDATE {table} SET {sets} WHERE {where}", [*values[len(key) :], *values[: len(key)]])
            continue
        if isinstance(values, list):  # a deleted row's primary key
            conn.execute(f"DELETE FROM {table} WHERE {where}", values)
            continue
        names = [name for name in values if name in known[table]]
        # Delete first (not INSERT OR REPLACE alone): the statistics triggers see the old row go.
        conn.execute(f"DELETE FROM {table} WHERE {where}", [values[k] for k in key])
        conn.execute(
            f"INSERT OR REPLACE INTO {table}({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
            [values[n] for n in names],
        )


def _finish(conn: sqlite3.Connection, root: Path, report: RebuildReport) -> None:
    """Counts, and the rebuilt rows checked against the blob files."""
    report.buckets = conn.execute("SELECT COUNT(*) FROM buckets").fetchone()[0]
    report.versions, report.delete_markers = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(is_delete_marker), 0) FROM objects"
    ).fetchone()
    report.pieces = conn.execute("SELECT COUNT(*) FROM object_parts").fetchone()[0]
    referenced = {
        row[0]
        for row in conn.execute(
            "SELECT blob FROM objects WHERE blob IS NOT NULL UNION SELECT blob FROM object_parts WHERE blob IS NOT NULL"
        )
    }
    present: set[str] = set()
    blobs = root / "blobs"
    for sub in FANOUT:
        try:
            present.update(entry.name for entry in os.scandir(blobs / sub))
        except FileNotFoundError:
            continue
    report.missing_blobs = sorted(referenced - present)
    report.unreferenced_blobs = len(present - referenced)
