"""The durable event queue, writing side: per-process append-only segments of JSON lines.

Layout under ``<data>/events/``::

    seg-<pid>-<random>.log   events, one per line:  <crc32 hex8> <json>\\n
    seg-<pid>-<random>.ack   deliveries done, one per line:  <offset> <target index>\\n (reader.py)
    dead-letter.jsonl        deliveries given up (delivery.py)

Each entry is one event's facts and every delivery it owes, a JSON array (``encode_line``)::

    [2, time_ns, tag, event, bucket, owner, [[target, configuration id], ...], key, size, etag,
     version id, principal, source ip, request id]

not the record S3 sends: that is written out from the facts when the event is delivered or streamed
(records.py), off the request's path. Each process appends to its own segment and holds an
exclusive ``flock`` on it while it writes there, so several workers never write the same file; it
lets go of a full segment (and the kernel of a dead process's). The delivery process (reader.py)
tails every segment, and deletes one nobody holds once it delivered what it holds.

An entry is written before the request that caused it is answered. A segment is allocated whole
when it is made (``SEGMENT_BYTES``, zeros) and written through a shared memory map: a line is a
memory copy into the page cache, which survives kill -9 of the process (not a power loss), and
costs no system call (a ``write`` that extends a file cost a 4 KiB PUT about 5 % of its throughput:
docs/benchmarks.md). With ``fsync`` on, the lines of concurrent appends share one ``msync``
(group commit) before any of them returns.

The data ends at the first line cut short, failing its CRC, or of zeros (the unwritten rest of the
allocation, or a torn tail from a crash); no line holds a zero byte (the JSON is ASCII).
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
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from json.encoder import encode_basestring_ascii
from pathlib import Path

from coffer.events.records import ObjectEvent
from coffer.events.rules import Destinations
from coffer.fsutil import fsync_dir, open_private, private_dir

log = logging.getLogger("coffer.events")

SEGMENT_BYTES = 8 << 20  # allocated per segment; each goes once its writer let go and all is delivered
PREFIX = "seg-"


@dataclass(slots=True)
class Segment:
    """The segment this process writes (locked while it does)."""

    path: Path
    fd: int  # the log, open and flock'ed
    map: mmap.mmap  # the allocation, mapped shared; its position is where the next line goes


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
    """The deliveries and the event of a line's body (ValueError when it is not one). The delivery
    process decodes every line: the body is ASCII (decoded as such, no encoding detection) and, its
    CRC being right, as ``encode_line`` wrote it (its fields are not checked one by one)."""
    if body[:1] == b"{":
        return _decode_record_line(body)
    text = body.decode("ascii")
    fields, end = _raw_decode(text)
    if end != len(text) or type(fields) is not list or len(fields) != 14 or fields[0] != LINE_VERSION:
        raise ValueError("not an event queue entry")
    _, time_ns, tag, event, bucket, owner, pairs, key, size, etag, version, principal, ip, request_id = fields
    destinations: Destinations = tuple(map(tuple, pairs))
    return destinations, ObjectEvent(
        event, bucket, key, size, etag, version, principal, ip, request_id, owner, time_ns, tag
    )


_raw_decode = json.JSONDecoder().raw_decode


def _decode_record_line(body: bytes) -> tuple[Destinations, ObjectEvent]:
    """A line of the format before lines held facts, ``{"t": destinations, "b": bucket, "k": key, "r":
    record}``, left undelivered by an older server: the facts its record holds (the sequencer is the
    time and the tag, as now), so it is delivered after an upgrade too."""
    entry = json.loads(body)
    record = entry["r"]
    s3 = record["s3"]
    obj = s3["object"]
    sequencer = obj["sequencer"]
    event = ObjectEvent(
        "s3:" + record["eventName"],
        entry["b"],
        entry["k"],
        obj.get("size"),
        obj.get("eTag"),
        obj.get("versionId"),
        record["userIdentity"]["principalId"],
        record["requestParameters"]["sourceIPAddress"],
        record["responseElements"]["x-amz-request-id"],
        s3["bucket"]["ownerIdentity"]["principalId"],
        int(sequencer[:16], 16),
        int(sequencer[16:], 16),
    )
    return tuple(map(tuple, entry["t"])), event


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
        except (ValueError, TypeError, LookupError):
            return
        yield start + pos, start + end + 1, targets, event
        pos = end + 1


def segment_paths(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"{PREFIX}*.log"))


class EventQueue:
    """This process's segments (the writing side; the delivery process reads them: reader.py)."""

    def __init__(self, directory: Path, fsync: bool, on_new_segment: Callable[[], None] | None = None) -> None:
        self.directory = directory
        self.fsync = fsync
        self.on_new_segment = on_new_segment  # told once a new segment has its name (rarely: no cost per line)
        self.active: Segment | None = None
        # Appends waiting for the next msync, with their segment.
        self._pending: list[tuple[Segment, asyncio.Future[None]]] = []
        self._flushing = False
        self._torn = False  # a write to the active segment failed
        self._retired: list[Segment] = []  # full, closed once no msync uses their map

    # ------------------------------------------------------------------ appending
    def append_now(self, line: bytes) -> bool:
        """Without fsync an entry is written at once (True); with fsync it must wait for an msync
        (``append``)."""
        if self.fsync:
            return False
        self._place(line)
        return True

    def _place(self, line: bytes) -> Segment:
        segment = self.active
        if segment is None or segment.map.tell() + len(line) > SEGMENT_BYTES or self._torn:
            segment = self._next_segment(len(line))
        segment.map.write(line)  # into the page cache at the map's position: survives kill -9
        return segment

    async def append(self, line: bytes) -> None:
        """Write one entry's line (``encode_line``) durably."""
        if self.append_now(line):
            return
        segment = self._place(line)
        # Group commit: the first appender syncs everything placed meanwhile with one msync.
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((segment, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        await future

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                maps = {id(s.map): s.map for s, _ in batch}  # usually one
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
            self._close_retired()

    def _next_segment(self, length: int) -> Segment:
        """The active segment is full (or a sync failed, or there is none yet): a new one."""
        if length > SEGMENT_BYTES:
            raise ValueError(f"an event queue line of {length} bytes")
        active = self.active
        self._torn = False
        if active is not None:
            self._retired.append(active)
            self._close_retired()
        self.active = self._create()
        return self.active

    def _close_retired(self) -> None:
        """Let go of full segments: the lock released tells the delivery process no line will follow."""
        if self._flushing:
            return  # an msync may still use their maps
        for segment in self._retired:
            _close(segment)
        self._retired.clear()

    def _create(self) -> Segment:
        """A new segment, locked before its name appears (the delivery process takes a segment nobody
        holds for one whose writer is done)."""
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
        os.rename(temp, path)
        fsync_dir(self.directory)
        segment = Segment(path, fd, mapped)
        if self.on_new_segment is not None:
            self.on_new_segment()
        return segment

    def close(self) -> None:
        """Release this process's segments (the delivery process delivers what they hold)."""
        if self.active is not None:
            self._retired.append(self.active)
            self.active = None
        self._flushing = False  # closing: no msync runs any more
        self._close_retired()


def _close(segment: Segment) -> None:
    segment.map.close()
    os.close(segment.fd)


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
