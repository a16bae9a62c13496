"""Small file-system helpers every durable file of Coffer shares (blobs, the memory engine's log,
the key files, the event queue): one way to make a rename durable, to notice another process's
change, and to create files and directories only their owner can read."""

from __future__ import annotations

import os
from pathlib import Path

FILE_MODE = 0o600  # private files: they hold object bytes, keys or object names
DIR_MODE = 0o700


def fsync_dir(path: Path) -> None:
    """fsync a directory: the names created, renamed or removed in it survive a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_identity(path: Path) -> tuple[int, int, int] | None:
    """(inode, size, mtime) of a file, None when it does not exist: a file replaced by a rename
    or rewritten in place by another process compares unequal."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def private_dir(directory: Path) -> None:
    """Create ``directory`` (and parents) if needed; make it 0700 whatever the umask."""
    directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(directory, DIR_MODE)


def open_private(path: Path, flags: int) -> int:
    """Open (creating) a file readable by its owner only, whatever the umask; returns the fd."""
    fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def append_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to an O_APPEND descriptor (one ``write`` for what fits: lines of
    several processes appending to one file do not interleave)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
