"""Snapshots of the memory engine: the whole state as a file of WAL records.

A snapshot numbered ``seq`` holds the state as of the moment the WAL rotated to
segment ``seq``: recovery loads the newest snapshot and replays segments
``seq, seq+1, ...``. It is written to a temp file, fsynced, renamed into place
and the directory fsynced, so a snapshot either exists whole or not at all; a
closing record with the record count guards against anything else. Like the
log, a snapshot holds object bytes: it is created 0600.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from coffer.fsutil import fsync_dir, open_private
from coffer.storage.memory.wal import Record, read_records, write_record

END = 100  # closing record: {"records": count}


class CorruptSnapshot(Exception):
    pass


def snapshot_path(directory: Path, seq: int) -> Path:
    return directory / f"snapshot-{seq:012d}.snap"


def snapshots(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for entry in directory.glob("snapshot-*.snap"):
        try:
            found.append((int(entry.stem[9:]), entry))
        except ValueError:
            continue
    return sorted(found)


def remove_temp_files(directory: Path) -> None:
    for entry in directory.glob("snapshot-*.tmp"):
        try:
            entry.unlink()
        except FileNotFoundError:
            pass


def write_snapshot(directory: Path, seq: int, records: Iterable[Record], *, fsync: bool) -> tuple[Path, int]:
    """Write and publish snapshot ``seq``; returns its path and size in bytes."""
    target = snapshot_path(directory, seq)
    temp = target.with_suffix(".tmp")
    count = 0
    size = 0
    try:
        fd = open_private(temp, os.O_WRONLY | os.O_TRUNC)
        with open(fd, "wb", buffering=1024 * 1024) as out:
            for record in records:
                size += write_record(out, record)
                count += 1
            size += write_record(out, Record(END, {"records": count}))
            out.flush()
            if fsync:
                os.fsync(out.fileno())
        os.rename(temp, target)
    except BaseException:
        try:
            temp.unlink()
        except FileNotFoundError:
            pass
        raise
    if fsync:
        fsync_dir(directory)
    return target, size


def read_snapshot(path: Path) -> Iterator[Record]:
    """The records of a complete snapshot; CorruptSnapshot if it is not whole."""
    count = 0
    for record, _offset in read_records(path):
        if record.op == END:
            if record.meta.get("records") != count:
                raise CorruptSnapshot(f"{path}: {count} records, closing record says {record.meta}")
            return
        count += 1
        yield record
    raise CorruptSnapshot(f"{path}: no closing record (cut short or damaged after {count} records)")
