"""Online compaction of the manifest journal (journal.py): keeps ``metadata.journal`` bounded
while the server runs, without blocking writes for long or losing a committed change.

Every write appends to the journal, so churn (a CI cache overwriting the same keys) would grow it
without end. When a commit leaves it longer than its bound (``Journal.oversized``):

1. *Build* (a background thread): under an exclusive ``flock`` of ``metadata.journal.compacting``
   (one worker process compacts at a time), a separate read connection opens one WAL read
   transaction and reads ``journal_state`` (the last committed frame: sequence number N, where it
   lies in the journal) and every journaled row. Those rows are the state after frame N exactly;
   they are written to the temp file as a snapshot numbered N, and fsynced.
2. *Swap* (the writer thread, between batches, inside a write transaction, so no process appends
   meanwhile): the frames committed after N are copied from the journal onto the temp file (the
   frame N must still be where the read transaction saw it, else another process replaced the
   journal: the compaction is dropped), the temp file is fsynced and renamed over the journal, the
   directory fsynced, ``journal_state`` gets the new offsets and the transaction commits. Only this
   step holds the write lock; it copies what was appended while step 1 ran.

Crash safety: until the rename the journal is the old file, whole; from the rename on it is the
new file, whole (snapshot N and every frame after N, fsynced before the rename). A crash between
the rename and the COMMIT leaves a ``journal_state`` with the old offsets: the next open does not
find its frame where recorded and rewrites the journal from the database (as after any mismatch);
``rebuild-index`` reads either file as it is. The temp file is never a journal: a crash leaves it
behind, and the next compaction truncates and reuses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from coffer.fsutil import fsync_dir
from coffer.storage.api import EngineObserver
from coffer.storage.disk.journal import Journal, write_snapshot

log = logging.getLogger("coffer.journal")
TEMP_SUFFIX = ".compacting"
_COPY_CHUNK = 1024 * 1024


@dataclass
class _Built:
    """A snapshot written to the temp file, consistent with frame ``seq`` of the journal."""

    fd: int  # the temp file, flocked
    seq: int
    frame_start: int  # where frame ``seq`` lay in the journal the read transaction saw
    frame_end: int
    columns: str
    last_start: int  # where the snapshot's last frame starts in the temp file
    size: int  # the snapshot's bytes


class Compactor:
    """One per metadata store. ``maybe_start`` (after each commit) and ``swap`` (between batches)
    run on the writer thread; the snapshot is built on a thread of its own."""

    def __init__(self, journal: Journal, wake_writer: Callable[[], None], observer: Callable[[], EngineObserver]):
        self.journal = journal
        self.temp = journal.path.with_name(journal.path.name + TEMP_SUFFIX)
        self._wake_writer = wake_writer
        self._observer = observer
        self._thread: threading.Thread | None = None
        self._built: _Built | None = None
        self._ready = False  # the thread finished (with or without a snapshot): swap() it
        self._cancel = threading.Event()
        self._started = 0.0
        self.compactions = 0
        # A test seam: called with the name of each step ("built", "copied", "renamed"), so a test
        # can kill the process exactly there.
        self.step: Callable[[str], None] = lambda name: None

    # ------------------------------------------------------------------ writer thread
    def maybe_start(self) -> None:
        if self._thread is None and self.journal.oversized:
            self._started = time.perf_counter()
            self._ready = False
            self._thread = threading.Thread(target=self._run, name="coffer-journal-compact", daemon=True)
            self._thread.start()

    @property
    def ready(self) -> bool:
        return self._ready

    def swap(self, conn: sqlite3.Connection) -> None:
        """Step 2, inside the writer's write transaction (the caller commits; see ``failed``)."""
        self._finish_thread()
        self._ready = False
        swap_started = time.perf_counter()
        built, self._built = self._built, None
        journal = self.journal
        if built is None:
            journal.rebase(journal.size)  # not now: wait until it has grown again
            return
        try:
            seq, start, end, columns = conn.execute(
                "SELECT seq, start, end, columns FROM journal_state WHERE id=1"
            ).fetchone()
            if not journal.follow(seq, start, end):
                # The recorded offsets do not describe the file (a COMMIT that failed after its
                # append, while another worker process appended): rewrite it from the database.
                log.warning("journal offsets out of step with %s: rewriting it from the database", journal.path)
                journal.snapshot(conn)
                return
            if columns != built.columns or not journal.holds(built.seq, built.frame_start, built.frame_end):
                log.info("journal compaction dropped: the journal was replaced while its snapshot was built")
                journal.rebase(journal.size)
                return
            before = end
            with open(journal.path, "rb") as source:
                at, out = built.frame_end, built.size
                while at < end:
                    chunk = os.pread(source.fileno(), min(_COPY_CHUNK, end - at), at)
                    if not chunk:
                        raise OSError(f"{journal.path} ends at {at}, before its recorded end {end}")
                    os.pwrite(built.fd, chunk, out)
                    at, out = at + len(chunk), out + len(chunk)
            self.step("copied")
            if journal.fsync:
                os.fsync(built.fd)
            os.rename(self.temp, journal.path)
            if journal.fsync:
                fsync_dir(journal.path.parent)
            self.step("renamed")
            # Offsets of frames after N move by (snapshot length - where frame N ended).
            shift = built.size - built.frame_end
            new_start = start + shift if seq > built.seq else built.last_start
            new_end = end + shift
            conn.execute("UPDATE journal_state SET start=?, end=? WHERE id=1", (new_start, new_end))
            journal.replaced(seq, new_start, new_end, built.size)
        finally:
            os.close(built.fd)  # releases the flock
        now = time.perf_counter()
        seconds = now - self._started
        self.compactions += 1
        log.info(
            "journal compacted: %d -> %d bytes in %.3f s (writes paused %.3f s: snapshot of frame %d,"
            " %d bytes appended meanwhile copied)",
            before, new_end, seconds, now - swap_started, built.seq, end - built.frame_end,
        )  # fmt: skip
        self._observer().journal_compacted(before, new_end, seconds)

    def failed(self, conn: sqlite3.Connection) -> None:
        """The swap's transaction failed (the caller rolled it back). If the rename happened, the
        committed offsets no longer describe the file: rewrite it from the database now (a fresh
        transaction); should that fail too, the next open does (the recorded frame is not found)."""
        journal = self.journal
        with contextlib.suppress(FileNotFoundError):
            if os.stat(journal.path).st_ino == os.fstat(journal.fd).st_ino:
                journal.rebase(journal.size)
                return  # the old file is still the journal: nothing changed
        try:
            conn.execute("BEGIN IMMEDIATE")
            journal.snapshot(conn)
            conn.execute("COMMIT")
        except (sqlite3.Error, OSError):
            log.exception("journal rewrite after a failed compaction failed: the next start rewrites it")
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def close(self) -> None:
        """Stop a compaction in progress (its temp file stays, to be reused)."""
        self._cancel.set()
        self._finish_thread()
        if self._built is not None:
            os.close(self._built.fd)
            self._built = None

    def _finish_thread(self) -> None:
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    # ------------------------------------------------------------------ build thread
    def _run(self) -> None:
        try:
            self._built = self._build()
        except Exception:
            if not self._cancel.is_set():
                log.exception("journal compaction failed while writing its snapshot")
        finally:
            self._ready = True
            self._wake_writer()

    def _build(self) -> _Built | None:
        journal = self.journal
        fd = os.open(self.temp, os.O_RDWR | os.O_CREAT, journal.file_mode)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return None  # another worker process is compacting
            # The file may have been renamed over the journal by the compaction that held the lock.
            if os.stat(self.temp).st_ino != os.fstat(fd).st_ino:
                os.close(fd)
                return None
            os.ftruncate(fd, 0)
            os.fchmod(fd, journal.file_mode)
            built = self._snapshot(fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.close(fd)
            raise
        if built.size >= built.frame_end:
            os.close(fd)  # the journal holds little but live rows: a snapshot would not shrink it
            return None
        self.step("built")
        return built

    def _snapshot(self, fd: int) -> _Built:
        journal = self.journal
        conn = sqlite3.connect(journal.database, isolation_level=None)
        try:
            conn.execute("PRAGMA query_only=1")
            conn.execute("BEGIN")  # one read transaction: journal_state and the rows agree
            seq, start, end, columns = conn.execute(
                "SELECT seq, start, end, columns FROM journal_state WHERE id=1"
            ).fetchone()
            last_start, size, _ = write_snapshot(fd, conn, seq, self._cancel.is_set)
            conn.execute("COMMIT")
        finally:
            conn.close()
        if journal.fsync:
            os.fsync(fd)  # the bulk of the syncing, off the writer thread
        return _Built(fd, seq, start, end, columns, last_start, size)
