"""The durable event queue, reading side: the delivery process tails every segment (queue.py).

Every worker writes its own segments; one delivery process per data directory (deliverer.py) reads
them all as they grow, hands each entry's deliveries to its targets, records the ones done in the
segment's ack file and deletes a segment once its writer let go of it (a full segment, or one of a
process that died: the ``flock`` is free) and every delivery it holds is done.

A restarted delivery process reads each segment from its start and skips the deliveries its ack
file lists. Acks are written with ``write`` and never fsynced: a lost ack means a delivery is
repeated, which at-least-once allows.
"""

from __future__ import annotations

import fcntl
import logging
import mmap
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from coffer.events.queue import PREFIX, decode_lines
from coffer.events.records import ObjectEvent
from coffer.fsutil import append_all, open_private

log = logging.getLogger("coffer.events")

SCAN_SECONDS = 0.25  # how often the directory is listed for new segments
ABANDONED_SECONDS = 60  # a segment still unnamed this long was left by a process that died making it


@dataclass(eq=False, slots=True)
class TailedSegment:
    path: Path
    fd: int  # read-only; flock'ed once its writer let go
    ack_fd: int
    map: mmap.mmap | None = None  # the allocation, mapped read-only (None while the file is empty)
    read: int = 0  # offset of the next line to read
    acked: set[tuple[int, int]] = field(default_factory=set)  # from the ack file, until first read
    outstanding: int = 0  # deliveries handed out and not yet acknowledged
    finished: bool = False  # its writer let go: no line will follow


@dataclass(slots=True)  # not frozen: one per event and rule (frozen init is slower)
class Delivery:
    """One delivery owed: an entry of a segment (None: in-process delivery), for one of its targets."""

    segment: TailedSegment | None
    offset: int
    index: int  # which of the entry's targets
    target: str
    configuration_id: str
    event: ObjectEvent  # stamped (records.py); the record is written out when it is sent


class SegmentReader:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.segments: dict[Path, TailedSegment] = {}
        self._scanned = 0.0

    def poll(self, max_lines: int | None = None) -> list[Delivery]:
        """The deliveries written since the last poll (every one not yet acknowledged, the first time a
        segment is seen), from at most ``max_lines`` queue entries: the rest stay on disk for a
        later poll (back-pressure: deliveries that cannot go out wait in the queue, not in memory)."""
        now = time.monotonic()
        if now - self._scanned >= SCAN_SECONDS:
            self._scanned = now
            self._scan()
        owed: list[Delivery] = []
        budget = max_lines
        for segment in list(self.segments.values()):
            if budget is not None and budget <= 0:
                break
            found, lines = self._read(segment, budget)
            if not lines and not segment.finished and _writer_gone(segment):
                segment.finished = True
                found, lines = self._read(segment, budget)  # whatever it wrote before letting go
            if budget is not None:
                budget -= lines
            owed += found
            self._release_if_done(segment)
        return owed

    def ack(self, deliveries: list[Delivery]) -> None:
        """Record deliveries done (or dead-lettered); a finished segment is deleted."""
        by_segment: dict[int, tuple[TailedSegment, list[bytes]]] = {}
        for d in deliveries:
            if d.segment is not None:
                slot = by_segment.setdefault(id(d.segment), (d.segment, []))
                slot[1].append(b"%d %d\n" % (d.offset, d.index))
        for segment, lines in by_segment.values():
            segment.outstanding -= len(lines)
            if segment.ack_fd >= 0:
                try:
                    append_all(segment.ack_fd, b"".join(lines))
                except OSError as exc:  # the delivery is repeated after a restart: allowed
                    log.warning("event queue: cannot record deliveries in %s: %s", segment.path, exc)
            self._release_if_done(segment)

    def close(self) -> None:
        """Let go of every segment (what is not acknowledged is delivered by the next delivery process)."""
        for segment in self.segments.values():
            _close(segment)
        self.segments.clear()

    # ------------------------------------------------------------------ inside
    def _scan(self) -> None:
        if not self.directory.is_dir():
            return
        for temp in self.directory.glob(f".{PREFIX}*.log"):
            _remove_abandoned(temp)
        for path in sorted(self.directory.glob(f"{PREFIX}*.log")):
            if path not in self.segments:
                segment = _open(path)
                if segment is not None:
                    self.segments[path] = segment

    def _read(self, segment: TailedSegment, max_lines: int | None) -> tuple[list[Delivery], int]:
        """The deliveries of the entries written to ``segment`` since the last read (at most
        ``max_lines`` of them), and how many entries that was."""
        if segment.map is None:
            size = os.fstat(segment.fd).st_size
            if size == 0:
                return [], 0
            segment.map = mmap.mmap(segment.fd, size, prot=mmap.PROT_READ)
        mapped, start = segment.map, segment.read
        if start >= len(mapped) or mapped[start] == 0:
            return [], 0  # nothing new (the common case: one byte looked at)
        end = mapped.find(b"\0", start)
        data = mapped[start : len(mapped) if end < 0 else end]
        owed: list[Delivery] = []
        acked = segment.acked
        lines = 0
        for offset, line_end, destinations, event in decode_lines(data, start):
            if max_lines is not None and lines >= max_lines:
                break
            lines += 1
            segment.read = line_end
            for index, (target, configuration_id) in enumerate(destinations):
                if not acked or (offset, index) not in acked:
                    owed.append(Delivery(segment, offset, index, target, configuration_id, event))
        else:
            acked.clear()  # what earlier processes acknowledged lies behind: never read again
        segment.outstanding += len(owed)
        return owed, lines

    def _release_if_done(self, segment: TailedSegment) -> None:
        if not segment.finished or segment.outstanding > 0 or segment.fd < 0:
            return
        # Unlinked while locked: no other delivery process can be reading it (one holds the lease).
        for path in (segment.path, segment.path.with_suffix(".ack")):
            path.unlink(missing_ok=True)
        _close(segment)
        self.segments.pop(segment.path, None)


def _open(path: Path) -> TailedSegment | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        ack_fd = open_private(path.with_suffix(".ack"), os.O_RDWR | os.O_APPEND)
    except OSError as exc:
        log.warning("event queue: cannot open the acks of %s: %s", path, exc)
        os.close(fd)
        return None
    acked: set[tuple[int, int]] = set()
    with os.fdopen(os.dup(ack_fd), "rb") as acks:
        for line in acks.read().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                acked.add((int(parts[0]), int(parts[1])))
    return TailedSegment(path, fd, ack_fd, acked=acked)


def _writer_gone(segment: TailedSegment) -> bool:
    """Has the segment's writer let go of it (full, closed, or its process died)? Then we hold its lock."""
    try:
        fcntl.flock(segment.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _remove_abandoned(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if time.time() - os.fstat(fd).st_mtime < ABANDONED_SECONDS:
            return  # perhaps a live process between creating and naming it
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        path.unlink()
    except OSError:
        pass
    finally:
        os.close(fd)


def _close(segment: TailedSegment) -> None:
    if segment.map is not None:
        segment.map.close()
        segment.map = None
    os.close(segment.ack_fd)
    os.close(segment.fd)
    segment.fd = segment.ack_fd = -1
