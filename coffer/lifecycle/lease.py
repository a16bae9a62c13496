"""Which process does a job of which one process at a time may run per data directory (lifecycle
passes, event delivery) when several share it.

An exclusive ``flock`` on a file in the data directory: the first process to take it does the job
and holds it while it lives; the kernel releases it when that process dies (even by kill -9), and
another process takes it over at its next attempt. Nothing to clean up.
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path

log = logging.getLogger("coffer.lifecycle")

LEASE_FILE = "lifecycle.lease"


class FileLease:
    def __init__(self, directory: Path, name: str = LEASE_FILE, job: str = "runs lifecycle passes") -> None:
        self.path = directory / name
        self.job = job
        self._fd: int | None = None

    def acquire(self, *, quiet: bool = False) -> bool:
        """Whether this process holds the lease (taking it if it is free); never blocks."""
        if self._fd is not None:
            return True
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            log.warning("lease %s cannot be opened (%s): this process never %s", self.path, exc, self.job)
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        if not quiet:
            log.info("this process (pid %d) %s", os.getpid(), self.job)
        return True

    def free(self) -> bool:
        """Whether nobody holds the lease (taken and dropped at once)."""
        if not self.acquire(quiet=True):
            return False
        self.release()
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the lock
            self._fd = None
