"""Which process runs lifecycle passes when several workers share a data directory.

An exclusive ``flock`` on a file in the data directory: the first worker to take it runs the
passes and holds it while it lives; the kernel releases it when that process dies (even by
kill -9), and another worker takes it over at its next attempt. Nothing to clean up.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

log = logging.getLogger("coffer.lifecycle")

LEASE_FILE = "lifecycle.lease"


class FileLease:
    def __init__(self, directory: Path) -> None:
        self.path = directory / LEASE_FILE
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Whether this process holds the lease (taking it if it is free); never blocks."""
        if self._fd is not None:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            log.warning("lifecycle lease %s cannot be opened (%s): passes not run by this worker", self.path, exc)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        log.info("this worker (pid %d) runs lifecycle passes", os.getpid())
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None
