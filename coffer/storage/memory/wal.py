"""The memory engine's write-ahead log: checksummed records, group commit.

Record layout (little-endian)::

    u64 length of the body | u32 CRC32C over (length field + body) | body
    body = u8 op | u32 meta length | meta (JSON) | data (object bytes, any length)

A record whose header or body is cut short, or whose CRC does not match, is a
torn tail: recovery keeps every record before it and truncates the file there.

One writer thread owns the open segment. It takes the first queued record,
waits up to ``batch_interval`` for more (at most ``batch_max``), writes them,
fsyncs once and then reports the batch to the event loop (``deliver``): many
concurrent mutations share one fsync, and the loop learns of batches in log order.

A batch that fails (a write or fsync error: full disk, file size limit, I/O
error) is cut off the file: the segment is truncated back to the end of the last
good batch, so no torn or unacknowledged record ever sits before a good one.
The writer then halts: it discards every record queued before the loop calls
``resume()`` (the loop fails all of them), and only writes again after that. If
the file cannot be cut back, every later batch fails until it can.

Segments are numbered; a snapshot rotates to a new segment and the segments
before it are deleted once the snapshot is durable. Log files are created 0600
in a 0700 directory: they hold every object's bytes.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import queue
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Generic, TypeVar

from awscrt import checksums as crt

from coffer.fsutil import fsync_dir, open_private
from coffer.storage.api import EngineObserver

log = logging.getLogger("coffer.memory.wal")

_HEADER = struct.Struct("<QI")
_BODY_HEAD = struct.Struct("<BI")
READ_CHUNK = 1024 * 1024
MAX_META = 64 * 1024 * 1024  # sanity bound when decoding
_COALESCE = 1024 * 1024  # small buffers are joined into writes of about this size
_DIRECT = 256 * 1024  # larger buffers (object chunks) are written as they are

# Operations.
CREATE_BUCKET = 1
DELETE_BUCKET = 2
PUT_OBJECT = 3  # an object version or a delete marker (positional meta: coffer.storage.memory.codec)
DELETE_OBJECT = 4  # {"b", "k", "v"}: remove version "v" for good; no "v": the whole key (evictions, older logs)
BUCKET_CONFIG = 5
CREATE_UPLOAD = 6
PUT_PART = 7  # a part's data (replaces an earlier part with its number)
COMPLETE_UPLOAD = 8  # the object's metadata; its data is the upload's parts, logged before
DELETE_UPLOAD = 9  # aborted, or swept as abandoned
SET_TAGS = 10  # a version's tags replaced ({"b", "k", "t", "v"}; no "v": the latest); body and metadata stay
COMPLETED = 11  # a completed upload's answer, kept for retried Completes (snapshots only)
BUCKET_STATE = 12  # {"b", "v": versioning status, "l": Object Lock turned on}, either or both
SET_LOCK = 13  # a version's Object Lock state replaced ({"b", "k", "v", "l": [mode, retain_until, legal_hold]})
SET_ACL = 14  # a version's ACL document replaced ({"b", "k", "v", "a": the document or None}); body and metadata stay
# A version's encoding document replaced ({"b", "k", "v", "e": the document}; a re-wrapped data key,
# coffer kms rewrap); body, stored size and every other field stay.
SET_ENCODING = 15
SET_STORAGE_CLASS = 16  # a version's storage class replaced ({"b", "k", "v", "c"}; a lifecycle transition)

T = TypeVar("T")


@dataclass(slots=True)
class Record:
    op: int
    meta: Any  # JSON-able: a dict, or a list for the hot object records
    data: tuple[bytes, ...] = ()
    raw: bytes | None = None  # meta already encoded (objects keep theirs for snapshots)

    def data_size(self) -> int:
        return sum(len(c) for c in self.data)


def encode_meta(meta: Any) -> bytes:
    return json.dumps(meta, separators=(",", ":")).encode()


def _crc32c(parts: Iterable[bytes | memoryview]) -> int:
    crc = 0
    for part in parts:
        crc = crt.crc32c(part, crc)
    return crc


def encode_head(record: Record) -> tuple[bytes, bytes]:
    """(record header, body head + meta); the data chunks follow unchanged."""
    meta = record.raw if record.raw is not None else encode_meta(record.meta)
    body_head = _BODY_HEAD.pack(record.op, len(meta)) + meta
    length = len(body_head) + record.data_size()
    length_bytes = struct.pack("<Q", length)
    crc = _crc32c((length_bytes, body_head, *record.data))
    return _HEADER.pack(length, crc), body_head


def write_record(out: BinaryIO, record: Record) -> int:
    header, body_head = encode_head(record)
    out.write(header)
    out.write(body_head)
    for chunk in record.data:
        out.write(chunk)
    return len(header) + len(body_head) + record.data_size()


def read_records(path: Path) -> Iterator[tuple[Record, int]]:
    """Every intact record of a file with the offset just past it; stops at a torn tail."""
    with open(path, "rb", buffering=READ_CHUNK) as f:
        offset = 0
        while True:
            header = f.read(_HEADER.size)
            if len(header) < _HEADER.size:
                return
            length, crc = _HEADER.unpack(header)
            if length < _BODY_HEAD.size:
                return
            if length <= READ_CHUNK:
                # The common case, one read: small objects, buckets, deletes.
                body = f.read(length)
                if len(body) < length or crt.crc32c(body, crt.crc32c(header[:8])) != crc:
                    return
                op, meta_len = _BODY_HEAD.unpack_from(body)
                end = _BODY_HEAD.size + meta_len
                if end > length:
                    return
                meta = body[_BODY_HEAD.size : end]
                chunks: list[bytes] = [body[end:]] if end < length else []
            else:
                head = f.read(_BODY_HEAD.size)
                if len(head) < _BODY_HEAD.size:
                    return
                op, meta_len = _BODY_HEAD.unpack(head)
                if meta_len > MAX_META or _BODY_HEAD.size + meta_len > length:
                    return
                meta = f.read(meta_len)
                if len(meta) < meta_len:
                    return
                chunks = []
                remaining = length - _BODY_HEAD.size - meta_len
                while remaining > 0:
                    chunk = f.read(min(READ_CHUNK, remaining))
                    if not chunk:
                        return
                    chunks.append(chunk)
                    remaining -= len(chunk)
                if _crc32c((header[:8], head, meta, *chunks)) != crc:
                    return
            try:
                decoded = json.loads(meta.decode("utf-8"))
            except ValueError:
                return
            offset += _HEADER.size + length
            yield Record(op, decoded, tuple(chunks), meta), offset


def segment_path(directory: Path, seq: int) -> Path:
    return directory / f"wal-{seq:012d}.log"


def segments(directory: Path) -> list[tuple[int, Path]]:
    found = []
    for entry in directory.glob("wal-*.log"):
        try:
            found.append((int(entry.stem[4:]), entry))
        except ValueError:
            continue
    return sorted(found)


@dataclass
class WalStats:
    records: int = 0
    batches: int = 0
    bytes: int = 0
    errors: int = 0


@dataclass(slots=True)
class _Rotate:
    seq: int
    switched: Callable[[BaseException | None], None]  # called on the loop once the log is in the new segment


class _Resume:
    pass


class _Stop:
    pass


# Called on the event loop after each batch: the waiters of its records (in log
# order) and the error that failed the batch (None: written and fsynced).
Deliver = Callable[[list[T], BaseException | None], None]


class WalWriter(Generic[T]):
    def __init__(
        self,
        directory: Path,
        seq: int,
        *,
        fsync: bool,
        batch_max: int,
        batch_interval: float,
        deliver: Deliver[T],
        stats: WalStats | None = None,
        observer: EngineObserver | None = None,
    ) -> None:
        self.directory = directory
        self.seq = seq
        self.fsync = fsync
        self.batch_max = batch_max
        self.batch_interval = batch_interval
        self.stats = stats if stats is not None else WalStats()
        self.observer = observer or EngineObserver()
        self._deliver = deliver
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._file: Any = None  # raw (unbuffered) file of the open segment: write, truncate, fileno
        self._size = 0  # end of the last good batch in the open segment
        self._dirty = False  # bytes past _size that must be cut before anything else is written
        self._halted = False  # a batch failed: discard records until resume()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        """Open the segment and start the writer; call on the event loop that receives ``deliver``."""
        self._loop = asyncio.get_running_loop()
        self._file, self._size = self._open_segment(self.seq)
        self._thread = threading.Thread(target=self._run, name="coffer-wal-writer", daemon=True)
        self._thread.start()

    def _open_segment(self, seq: int) -> tuple[Any, int]:
        """The segment's raw file (appending) and its size."""
        fd = open_private(segment_path(self.directory, seq), os.O_WRONLY | os.O_APPEND)
        file = open(fd, "ab", buffering=0)  # noqa: SIM115 - owned by the writer until it switches
        try:
            if self.fsync:
                fsync_dir(self.directory)
            return file, os.fstat(fd).st_size
        except BaseException:
            file.close()
            raise

    def append(self, record: Record, waiter: T | None) -> None:
        """Queue a record (on the event loop, in the order changes are checked);
        ``waiter`` is delivered back once the batch holding it is written or failed."""
        self._queue.put((record, waiter))

    def rotate(self, seq: int, switched: Callable[[BaseException | None], None]) -> None:
        """Records queued after this call go to segment ``seq``; ``switched`` runs on the
        loop after every batch before it was delivered (None) or if the switch failed."""
        self.seq = seq
        self._queue.put(_Rotate(seq, switched))

    def resume(self) -> None:
        """After a failed batch: the loop has failed every record queued so far; write what follows."""
        self._queue.put(_Resume())

    def close(self) -> None:
        """Write (and fsync) every record queued so far, then stop."""
        if self._thread is not None:
            self._queue.put(_Stop())
            self._thread.join()
            self._thread = None
        if self._file is not None:
            self._file.close()
            self._file = None

    # ------------------------------------------------------------------ writer thread
    def _call(self, fn: Callable[..., None], *args: Any) -> None:
        assert self._loop is not None
        try:
            self._loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    def _run(self) -> None:
        carry: Any = None
        while True:
            first = carry if carry is not None else self._queue.get()
            carry = None
            if isinstance(first, _Stop):
                return
            if isinstance(first, _Rotate):
                self._switch(first)
                continue
            if isinstance(first, _Resume):
                self._halted = False
                continue
            if self._halted:
                continue  # queued before the loop learned of the failure: it has failed these
            batch = [first]
            deadline = time.monotonic() + self.batch_interval
            while len(batch) < self.batch_max:
                try:
                    if self.batch_interval > 0:
                        wait = deadline - time.monotonic()
                        item = self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait()
                    else:
                        item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if isinstance(item, _Stop | _Rotate | _Resume):
                    carry = item
                    break
                batch.append(item)
            self._write_batch(batch)

    def _write_batch(self, batch: list[tuple[Record, T | None]]) -> None:
        error: BaseException | None = None
        try:
            started = time.perf_counter()
            if self._dirty:
                self._cut()
            buffers: list[bytes] = []
            for record, _waiter in batch:
                header, body_head = encode_head(record)
                buffers += (header, body_head, *record.data)
            written = self._write_all(buffers)
            if self.fsync:
                os.fsync(self._file.fileno())
            self._size += written
            self.observer.committed(len(batch), time.perf_counter() - started)
            self.stats.records += len(batch)
            self.stats.batches += 1
            self.stats.bytes += written
        except OSError as exc:
            error = exc
            self._fail(exc)
        self._call(self._deliver, [w for _r, w in batch if w is not None], error)

    def _write_all(self, buffers: list[bytes]) -> int:
        total = 0
        pending = bytearray()
        for buf in buffers:
            total += len(buf)
            if len(buf) >= _DIRECT:
                if pending:
                    self._write(pending)
                    pending = bytearray()
                self._write(buf)
            else:
                pending += buf
                if len(pending) >= _COALESCE:
                    self._write(pending)
                    pending = bytearray()
        if pending:
            self._write(pending)
        return total

    def _write(self, buf: bytes | bytearray) -> None:
        self._dirty = True  # from here until the batch succeeds, the file may hold a partial record
        view = memoryview(buf)
        while view:
            n = self._file.write(view)
            if not n:
                raise OSError(errno.EIO, "short write to the write-ahead log")
            view = view[n:]

    def _fail(self, exc: OSError) -> None:
        self.stats.errors += 1
        self._halted = True
        log.error("write-ahead log write failed (%s); the batch is cut off the log and its writes fail", exc)
        try:
            self._cut()
        except OSError as cut:
            log.error("cannot cut the write-ahead log back to its last good record (%s); writes fail until it can", cut)

    def _cut(self) -> None:
        """Truncate the segment to the end of the last good batch."""
        self._dirty = True
        self._file.truncate(self._size)
        if self.fsync:
            os.fsync(self._file.fileno())
        self._dirty = False

    def _switch(self, marker: _Rotate) -> None:
        try:
            if self._dirty:
                self._cut()
            if self.fsync:
                os.fsync(self._file.fileno())
            new, size = self._open_segment(marker.seq)
        except OSError as exc:
            # Keep writing the old segment: no snapshot is written for this rotation.
            log.error("write-ahead log cannot switch to segment %d: %s", marker.seq, exc)
            self._call(marker.switched, exc)
            return
        old, self._file, self._size = self._file, new, size
        old.close()
        self._call(marker.switched, None)
