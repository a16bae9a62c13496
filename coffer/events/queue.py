"""The durable event queue: per-process append-only segments of JSON lines, acknowledged per delivery.

Layout under ``<data>/events/``::

    seg-<pid>-<random>.log   events, one per line:  <crc32 hex8> <json>\\n
    seg-<pid>-<random>.ack   deliveries done, one per line:  <offset> <target index>\\n
    dead-letter.jsonl        deliveries given up (delivery.py)

Each entry is one event's facts and every delivery it owes, a JSON array (``encode_line``)::

    [2, time_ns, tag, event, bucket, owner, [[target, configuration id], ...], key, size, etag,
     version id, principal, source ip, request id]

not the record S3 sends: that is written out from the facts when the event is delivered or streamed
(records.py), off the request's path. Each process appends to its own segment and holds an exclusive ``flock`` on it
for as long as it owns it, so several workers never write the same file. A segment nobody holds
belongs to a process that died (kill -9, crash, a restart): the first process to lock it takes it
over (``adopt_orphans``), delivers what its ack file does not list, then deletes both files.

An entry is written before the request that caused it is answered. A segment is allocated whole
when it is made (``SEGMENT_BYTES``, zeros) and written through a shared memory map: a line is a
memory copy into the page cache, which survives kill -9 of the process (not a power loss), and
costs no system call (a ``write`` that extends a file cost a 4 KiB PUT about 5 % of its throughput:
docs/benchmarks.md). With ``fsync`` on, the lines of concurrent appends share one ``msync``
(group commit) before any of them returns. Acks are written with ``write`` and never fsynced: a
lost ack means a delivery is repeated, which at-least-once allows.

The data ends at the first line cut short, failing its CRC, or of zeros (the unwritten rest of the
allocation, or a torn tail from a crash).
Files are 0600 in a 0700 directory: records carry object keys.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import mmap
import os
import secrets
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from json.encoder import encode_basestring_ascii
from pathlib import Path

from coffer.events.records import ObjectEvent
from coffer.events.rules import Destinations
from coffer.fsutil import fsync_dir, open_private, private_dir

log = logging.getLogger("coffer.events")

SEGMENT_BYTES = 8 << 20  # allocated per segment; older ones go once fully delivered
PREFIX = "seg-"


@dataclass(slots=True)
class Segment:
    """One segment this process owns (locked): the active one, or an older or adopted one."""

    path: Path
    fd: int  # the log, open and flock'ed
    ack_fd: int
    size: int = 0  # where the next line goes (the active segment)
    map: mmap.mmap | None = None  # the active segment's allocation, mapped shared
    outstanding: int = 0  # deliveries not yet acknowledged
    active: bool = False
    acked: set[tuple[int, int]] = field(default_factory=set)


@dataclass(slots=True)  # not frozen: one per event and rule (frozen init is slower)
class Delivery:
    """One delivery owed: an entry of a segment, for one of its targets."""

    segment: Segment
    offset: int
    index: int  # which of the entry's targets
    target: str
    configuration_id: str
    event: ObjectEvent  # stamped (records.py); the record is written out when it is sent


LINE_VERSION = 2
_HEAD = b"[%d," % LINE_VERSION  # every line's body starts so: its CRC is computed once
_HEAD_CRC = zlib.crc32(_HEAD)


def encode_line(targets: Destinations, event: ObjectEvent) -> bytes:
    """One entry's line: the stamped event's facts and the deliveries it owes."""
    text = encode_basestring_ascii
    size, etag, version = event.size, event.etag, event.version_id
    body = (
        f"{event.time_ns},{event.tag},{_line_head(targets, event.event, event.bucket, event.bucket_owner)}"
        f"{text(event.key)},{'null' if size is None else int(size)},{'null' if etag is None else text(etag)},"
        f"{'null' if version is None else text(version)},{text(event.principal_id)},{text(event.source_ip)},"
        f"{text(event.request_id)}]"
    ).encode()
    return b"%08x %s%s\n" % (zlib.crc32(body, _HEAD_CRC), _HEAD, body)


@lru_cache(maxsize=1024)
def _line_head(targets: Destinations, event: str, bucket: str, owner: str) -> str:
    """What the lines of one bucket's events of one type that fire the same rules share (encoded once)."""
    text = encode_basestring_ascii
    pairs = ",".join(f"[{text(target)},{text(configuration_id)}]" for target, configuration_id in targets)
    return f"{text(event)},{text(bucket)},{text(owner)},[{pairs}],"


def decode_entry(body: bytes) -> tuple[Destinations, ObjectEvent]:
    """The deliveries and the event of a line's body (ValueError when it is not one)."""
    fields = json.loads(body)
    if not isinstance(fields, list) or len(fields) != 14 or fields[0] != LINE_VERSION:
        raise ValueError("not an event queue entry")
    _, time_ns, tag, event, bucket, owner, pairs, key, size, etag, version, principal, ip, request_id = fields
    targets = tuple((str(target), str(configuration_id)) for target, configuration_id in pairs)
    return targets, ObjectEvent(
        event, bucket, key, size, etag, version, principal, ip, request_id, owner, int(time_ns), int(tag)
    )


def decode_lines(data: bytes, start: int = 0) -> Iterator[tuple[int, int, Destinations, ObjectEvent]]:
    """(offset, end offset, deliveries, event) of every intact line of ``data`` (``start`` is data[0]'s
    offset); stops at the first line cut short or failing its CRC."""
    pos = 0
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            return
        line = data[pos:end]
        if len(line) < 10 or line[8:9] != b" ":
            return
        body = line[9:]
        try:
            if int(line[:8], 16) != zlib.crc32(body):
                return
            targets, event = decode_entry(body)
        except (ValueError, TypeError):
            return
        yield start + pos, start + end + 1, targets, event
        pos = end + 1


def segment_paths(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"{PREFIX}*.log"))


class EventQueue:
    """This process's segments; ``directory`` None keeps entries in memory only (memory engine without
    persistence: events do not survive a restart, as the data does not)."""

    def __init__(self, directory: Path | None, fsync: bool) -> None:
        self.directory = directory
        self.fsync = fsync
        self.active: Segment | None = None
        # Appends waiting for the next msync, with their segment.
        self._pending: list[tuple[Segment, asyncio.Future[None]]] = []
        self._flushing = False
        self._torn = False  # a write to the active segment failed
        self._offset = 0  # memory mode: the next entry's offset
        self._memory_segment = Segment(Path("<memory>"), -1, -1, active=True)

    # ------------------------------------------------------------------ appending
    def append_now(self, line: bytes) -> tuple[Segment, int] | None:
        """Without fsync (or without a directory) an entry is written at once: its segment and offset;
        None when it must wait for an fsync (``append``)."""
        if self.directory is None:
            offset = self._offset
            self._offset += len(line)
            return self._memory_segment, offset
        if self.fsync:
            return None
        return self._place(line)

    def _place(self, line: bytes) -> tuple[Segment, int]:
        segment = self._segment_for(len(line))
        offset = segment.size
        segment.size += len(line)
        assert segment.map is not None
        segment.map[offset : offset + len(line)] = line  # in the page cache: survives kill -9
        return segment, offset

    async def append(self, line: bytes) -> tuple[Segment, int]:
        """Write one entry's line (``encode_line``) durably; returns its segment and offset."""
        placed = self.append_now(line)
        if placed is not None:
            return placed
        segment, offset = self._place(line)
        # Group commit: the first appender syncs everything placed meanwhile with one msync.
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((segment, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        await future
        return segment, offset

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                maps = {id(s.map): s.map for s, _ in batch if s.map is not None}  # usually one
                try:
                    for mapped in maps.values():
                        await asyncio.to_thread(mapped.flush)
                except (OSError, ValueError) as exc:
                    # Lines placed behind these are not known to be on disk either: fail them too,
                    # and start a new segment for the next ones.
                    self._torn = True
                    batch, self._pending = batch + self._pending, []
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    return
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)
        finally:
            self._flushing = False

    def _segment_for(self, length: int) -> Segment:
        assert self.directory is not None
        active = self.active
        if length > SEGMENT_BYTES:
            raise ValueError(f"an event queue line of {length} bytes")
        fits = active is not None and active.size + length <= SEGMENT_BYTES
        # A segment being synced takes no new lines when full: the sync task holds it.
        if active is not None and fits and not self._torn:
            return active
        # After a failed sync the lines go to a new segment.
        self._torn = False
        if active is not None:
            active.active = False
            self.release_if_done(active)
        self.active = self._create()
        return self.active

    def _create(self) -> Segment:
        """A new segment, locked before its name appears (no other process could adopt it)."""
        assert self.directory is not None
        private_dir(self.directory)
        name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
        temp = self.directory / f".{name}.log"
        fd = open_private(temp, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # Allocated now: a write through the map can never find the disk full (SIGBUS).
            os.posix_fallocate(fd, 0, SEGMENT_BYTES)
            mapped = mmap.mmap(fd, SEGMENT_BYTES)
        except BaseException:
            os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        path = self.directory / f"{name}.log"
        ack_fd = open_private(path.with_suffix(".ack"), os.O_WRONLY | os.O_APPEND)
        os.rename(temp, path)
        fsync_dir(self.directory)
        return Segment(path, fd, ack_fd, active=True, map=mapped)

    # ------------------------------------------------------------------ acknowledging
    def ack(self, deliveries: list[Delivery]) -> None:
        """Record deliveries done (or dead-lettered); a finished older segment is deleted."""
        by_segment: dict[int, tuple[Segment, list[bytes]]] = {}
        for d in deliveries:
            slot = by_segment.setdefault(id(d.segment), (d.segment, []))
            slot[1].append(b"%d %d\n" % (d.offset, d.index))
        for segment, lines in by_segment.values():
            segment.outstanding -= len(lines)
            if segment.ack_fd >= 0:
                try:
                    _write_all(segment.ack_fd, b"".join(lines))
                except OSError as exc:  # the delivery is repeated after a restart: allowed
                    log.warning("event queue: cannot record deliveries in %s: %s", segment.path, exc)
            self.release_if_done(segment)

    def owe(self, segment: Segment, count: int) -> None:
        segment.outstanding += count

    def release_if_done(self, segment: Segment) -> None:
        if segment.active or segment.outstanding > 0 or segment.fd < 0:
            return
        if self._flushing and segment.map is not None:
            return  # an msync may still use its map; its last ack (or close) releases it
        # Unlinked while still locked: a process waiting for the lock sees the name gone.
        for path in (segment.path, segment.path.with_suffix(".ack")):
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        _close(segment)

    # ------------------------------------------------------------------ recovery
    def adopt_orphans(self) -> list[Delivery]:
        """Lock every segment no live process holds and return the deliveries it still owes."""
        if self.directory is None or not self.directory.is_dir():
            return []
        owed: list[Delivery] = []
        for temp in self.directory.glob(f".{PREFIX}*.log"):
            self._remove_abandoned(temp)  # created by a process that died before naming it
        for path in segment_paths(self.directory):
            if self.active is not None and path == self.active.path:
                continue
            segment = self._lock_orphan(path)
            if segment is None:
                continue
            found = list(replay(segment))
            self.owe(segment, len(found))
            owed += found
            self.release_if_done(segment)
        return owed

    @staticmethod
    def _remove_abandoned(path: Path) -> None:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return
        try:
            if time.time() - os.fstat(fd).st_mtime < 60:
                return  # perhaps a live process between creating and naming it
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            path.unlink()
        except OSError:
            pass
        finally:
            os.close(fd)

    def _lock_orphan(self, path: Path) -> Segment | None:
        try:
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # The owner may have finished and unlinked it while we opened it.
            if os.stat(path).st_ino != os.fstat(fd).st_ino:
                raise FileNotFoundError(path)
            ack_fd = open_private(path.with_suffix(".ack"), os.O_RDWR | os.O_APPEND)
        except OSError:  # held by a live process (BlockingIOError), or gone
            os.close(fd)
            return None
        return Segment(path, fd, ack_fd, size=os.fstat(fd).st_size)

    def close(self) -> None:
        """Release this process's segments (what is unacknowledged is delivered by the next owner)."""
        if self.active is not None:
            self.active.active = False
            self.release_if_done(self.active)
            if self.active.fd >= 0:
                _close(self.active)
            self.active = None


def replay(segment: Segment) -> Iterator[Delivery]:
    """The deliveries a segment owes: every entry's targets minus those its ack file lists."""
    acked: set[tuple[int, int]] = set()
    with os.fdopen(os.dup(segment.ack_fd), "rb") as acks:
        acks.seek(0)
        for line in acks.read().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0].isdigit() and parts[1].isdigit():
                acked.add((int(parts[0]), int(parts[1])))
    with os.fdopen(os.dup(segment.fd), "rb") as log_file:
        log_file.seek(0)
        data = log_file.read()
    for offset, _, targets, event in decode_lines(data):
        for index, (target, configuration_id) in enumerate(targets):
            if (offset, index) not in acked:
                yield Delivery(segment, offset, index, target, configuration_id, event)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _close(segment: Segment) -> None:
    if segment.map is not None:
        segment.map.close()
        segment.map = None
    os.close(segment.ack_fd)
    os.close(segment.fd)
    segment.fd = segment.ack_fd = -1


def data_end(path: Path) -> int:
    """Where the intact lines of a segment end (its file is allocated whole)."""
    try:
        data = path.read_bytes()
    except OSError:
        return 0
    end = 0
    for _, line_end, _, _ in decode_lines(data):
        end = line_end
    return end
