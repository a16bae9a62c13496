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
(group commit) before any of them returns. Once a segment is half full the next one is made in a
thread, its pages faulted in (``EventQueue._next``): a busy queue's requests never wait for a segment
to be made and take no page fault per page of lines.

The data ends at the first line cut short, failing its CRC, or of zeros (the unwritten rest of the
allocation, or a torn tail from a crash); no line holds a zero byte (the JSON is ASCII).
Files are 0600 in a 0700 directory: records carry object keys.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import ctypes.util
import fcntl
import json
import logging
import mmap
import os
import secrets
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from json.encoder import encode_basestring_ascii
from pathlib import Path

from coffer.events.records import Facts, ObjectEvent, facts_of
from coffer.events.rules import Destinations
from coffer.fsutil import fsync_dir, open_private, private_dir

log = logging.getLogger("coffer.events")

SEGMENT_BYTES = 8 << 20  # allocated per segment; each goes once its writer let go and all is delivered
PREPARE_AT = SEGMENT_BYTES // 2  # written this far, the next segment is made ahead (``EventQueue._next``)
PREFIX = "seg-"


@dataclass(slots=True)
class Segment:
    """The segment this process writes (locked while it does)."""

    path: Path
    fd: int  # the log, open and flock'ed
    map: mmap.mmap  # the allocation, mapped shared
    end: int = 0  # where the lines written so far end: the next one goes there


LINE_VERSION = 2
_HEAD = b"[%d," % LINE_VERSION  # every line's body starts so: its CRC is computed once
_HEAD_CRC = zlib.crc32(_HEAD)


def encode_line(targets: Destinations, time_ns: int, tag: int, facts: Facts) -> bytes:
    """One entry's line: an event's facts, its time and sequencer tag (``records.next_tag``) and the
    deliveries it owes."""
    event, bucket, owner, key, size, etag, version, principal, source_ip, request_id = facts
    text = encode_basestring_ascii
    body = (
        f"{time_ns},{tag},{_line_head(targets, event, bucket, owner)}{text(key)},"
        f"{'null' if size is None else int(size)},{'null' if etag is None else text(etag)},"
        f"{'null' if version is None else text(version)},{text(principal)},{text(source_ip)},{text(request_id)}]"
    ).encode()
    return b"%08x %s%s\n" % (zlib.crc32(body, _HEAD_CRC), _HEAD, body)


def event_line(targets: Destinations, event: ObjectEvent) -> bytes:
    """The line of a stamped ``ObjectEvent`` (``encode_line``)."""
    return encode_line(targets, event.time_ns, event.tag, facts_of(event))


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
        # The next segment, made in a thread once the active one is half full: a busy queue's requests
        # neither wait for a segment to be made (allocated, named, its directory fsynced) nor take a
        # page fault per page they write into (``_fault_in``). A quiet queue never makes one ahead.
        self._next: concurrent.futures.Future[Segment] | None = None
        self._lock = threading.Lock()  # the metadata writer thread writes lines too

    # ------------------------------------------------------------------ appending
    def put(self, line: bytes) -> asyncio.Future[None] | None:
        """Write one entry's line (``encode_line``). Without fsync it is written when this returns
        (None); with fsync, await what it returns (the next msync, shared by the lines placed
        meanwhile: group commit). Not a coroutine: a PUT of a bucket with rules runs this. Without
        fsync any thread may call it (the metadata writer does: coffer/server/notify.py)."""
        with self._lock:
            segment = self.active
            start = segment.end if segment is not None else 0
            end = start + len(line)
            if segment is None or end > SEGMENT_BYTES or self._torn:
                segment = self._next_segment(len(line))
                start, end = 0, len(line)
            segment.map[start:end] = line  # into the page cache: survives kill -9
            segment.end = end
            if end > PREPARE_AT and self._next is None:
                self._next = _maker().submit(self._create, True)
        if not self.fsync:
            return None
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((segment, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return future

    async def append(self, line: bytes) -> None:
        """Write one entry's line durably (``put``, and its msync awaited)."""
        waiting = self.put(line)
        if waiting is not None:
            await waiting

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
        """The active segment is full (or a sync failed, or there is none yet): the one made ahead if
        it is ready, else a new one made now."""
        if length > SEGMENT_BYTES:
            raise ValueError(f"an event queue line of {length} bytes")
        active = self.active
        self._torn = False
        if active is not None:
            self._retired.append(active)
            self._close_retired()
        prepared, self._next = self._next, None
        segment = None
        if prepared is not None:
            if prepared.done() and not prepared.cancelled() and prepared.exception() is None:
                segment = prepared.result()
            else:  # not ready (or failed): closed when it is, empty (the delivery process deletes it)
                prepared.add_done_callback(_close_made)
        self.active = segment if segment is not None else self._create()
        if self.on_new_segment is not None:
            self.on_new_segment()
        return self.active

    def _close_retired(self) -> None:
        """Let go of full segments: the lock released tells the delivery process no line will follow."""
        if self._flushing:
            return  # an msync may still use their maps
        for segment in self._retired:
            _close(segment)
        self._retired.clear()

    def _create(self, fault_in: bool = False) -> Segment:
        """A new segment, locked before its name appears (the delivery process takes a segment nobody
        holds for one whose writer is done). Runs in a thread when made ahead (``EventQueue._next``)."""
        private_dir(self.directory)
        name = f"{PREFIX}{os.getpid()}-{secrets.token_hex(6)}"
        temp = self.directory / f".{name}.log"
        fd = open_private(temp, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            # Allocated now: a write through the map can never find the disk full (SIGBUS).
            os.posix_fallocate(fd, 0, SEGMENT_BYTES)
            mapped = mmap.mmap(fd, SEGMENT_BYTES)
            if fault_in:
                _fault_in(mapped)
        except BaseException:
            os.close(fd)
            temp.unlink(missing_ok=True)
            raise
        path = self.directory / f"{name}.log"
        os.rename(temp, path)
        fsync_dir(self.directory)
        return Segment(path, fd, mapped)

    def close(self) -> None:
        """Release this process's segments (the delivery process delivers what they hold)."""
        with self._lock:
            if self.active is not None:
                self._retired.append(self.active)
                self.active = None
            prepared, self._next = self._next, None
            if prepared is not None:
                prepared.add_done_callback(_close_made)  # at once if it is made already
            self._flushing = False  # closing: no msync runs any more
            self._close_retired()


def _close(segment: Segment) -> None:
    segment.map.close()
    os.close(segment.fd)


@lru_cache(maxsize=1)
def _maker() -> concurrent.futures.ThreadPoolExecutor:
    """The thread segments are made ahead in (one: a segment is made every few seconds at most)."""
    return concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="coffer-event-segments")


def _close_made(made: concurrent.futures.Future[Segment]) -> None:
    """Let go of a segment made ahead and never written (if it was made)."""
    if not made.cancelled() and made.exception() is None:
        _close(made.result())


_MADV_POPULATE_WRITE = 23  # Linux 5.14+: fault a range in, writable, without changing what it holds


@lru_cache(maxsize=1)
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name, use_errno=True) if name is not None else None


def _fault_in(mapped: mmap.mmap) -> None:
    """Fault every page of a new segment in, writable, before any line goes there. A line written
    into a page not yet faulted in costs the writer a page fault (and the file system's work for a
    page of a shared file mapping becoming writable); in the serving process that was about a
    microsecond per event. Best effort: an older kernel refuses the advice, and the pages fault in
    as they are written, as before. A ctypes call lets go of the GIL while the kernel works."""
    libc = _libc()
    if libc is None:
        return
    start = ctypes.c_char.from_buffer(mapped)  # holds the map open while it exists
    try:
        libc.madvise(ctypes.c_void_p(ctypes.addressof(start)), ctypes.c_size_t(len(mapped)), _MADV_POPULATE_WRITE)
    finally:
        del start


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
