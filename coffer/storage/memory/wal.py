"""The memory engine's write-ahead log: checksummed records, group commit.

Record layout (little-endian)::

    u64 length of the body | u32 CRC32C over (length field + body) | body
    body = u8 op | u32 meta length | meta (JSON) | data (object bytes, any length)

A record whose header or body is cut short, or whose CRC does not match, is a
torn tail: recovery keeps every record before it and truncates the file there.

One writer thread owns the open segment. It takes the first queued record,
waits up to ``batch_interval`` for more (at most ``batch_max``), writes them,
fsyncs once and then resolves every waiting write: many concurrent mutations
share one fsync. Segments are numbered; a snapshot rotates to a new segment and
the segments before it are deleted once the snapshot is durable.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import struct
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from awscrt import checksums as crt

from coffer.storage.api import EngineObserver

log = logging.getLogger("coffer.memory.wal")

_HEADER = struct.Struct("<QI")
_BODY_HEAD = struct.Struct("<BI")
READ_CHUNK = 1024 * 1024
MAX_META = 64 * 1024 * 1024  # sanity bound when decoding

# Operations.
CREATE_BUCKET = 1
DELETE_BUCKET = 2
PUT_OBJECT = 3
DELETE_OBJECT = 4
BUCKET_CONFIG = 5
CREATE_UPLOAD = 6
PUT_PART = 7  # a part's data (replaces an earlier part with its number)
COMPLETE_UPLOAD = 8  # the object's metadata; its data is the upload's parts, logged before
DELETE_UPLOAD = 9  # aborted, or swept as abandoned
SET_TAGS = 10  # an object's tags replaced ({"b", "k", "t"}); its body and other metadata stay


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


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass
class WalStats:
    records: int = 0
    batches: int = 0
    bytes: int = 0
    errors: int = 0


@dataclass(slots=True)
class _Rotate:
    seq: int
    done: threading.Event = field(default_factory=threading.Event)


class _Stop:
    pass


class WalWriter:
    def __init__(
        self,
        directory: Path,
        seq: int,
        *,
        fsync: bool,
        batch_max: int,
        batch_interval: float,
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
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._file: BinaryIO | None = None
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        self._file = open(segment_path(self.directory, self.seq), "ab", buffering=1024 * 1024)  # noqa: SIM115
        if self.fsync:
            fsync_dir(self.directory)
        self._thread = threading.Thread(target=self._run, name="coffer-wal-writer", daemon=True)
        self._thread.start()

    def append(self, record: Record) -> asyncio.Future[None]:
        """Queue a record (call on the event loop, in the order mutations are applied);
        the future resolves once it is written (and fsynced when fsync is on)."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._queue.put((record, fut, loop))
        return fut

    def append_nowait(self, record: Record) -> None:
        """Queue a record nobody waits for (evictions: losing one on a crash is harmless)."""
        self._queue.put((record, None, None))

    def rotate(self, seq: int) -> _Rotate:
        """Records queued after this call go to segment ``seq``."""
        marker = _Rotate(seq)
        self.seq = seq
        self._queue.put(marker)
        return marker

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
                if isinstance(item, _Stop | _Rotate):
                    carry = item
                    break
                batch.append(item)
            self._write_batch(batch)

    def _write_batch(self, batch: list[tuple[Record, asyncio.Future[None] | None, Any]]) -> None:
        assert self._file is not None
        error: BaseException | None = None
        try:
            started = time.perf_counter()
            written = 0
            for record, _fut, _loop in batch:
                written += write_record(self._file, record)
            self._file.flush()
            if self.fsync:
                os.fsync(self._file.fileno())
            self.observer.committed(len(batch), time.perf_counter() - started)
            self.stats.records += len(batch)
            self.stats.batches += 1
            self.stats.bytes += written
        except OSError as exc:
            log.exception("WAL write failed")
            self.stats.errors += 1
            error = exc
        by_loop: dict[Any, list[asyncio.Future[None]]] = {}
        for _record, fut, loop in batch:
            if fut is not None:
                by_loop.setdefault(loop, []).append(fut)
        for loop, futs in by_loop.items():
            loop.call_soon_threadsafe(_resolve_all, futs, error)

    def _switch(self, marker: _Rotate) -> None:
        assert self._file is not None
        self._file.flush()
        if self.fsync:
            os.fsync(self._file.fileno())
        self._file.close()
        self._file = open(segment_path(self.directory, marker.seq), "ab", buffering=1024 * 1024)  # noqa: SIM115
        if self.fsync:
            fsync_dir(self.directory)
        marker.done.set()


def _resolve_all(futs: list[asyncio.Future[None]], error: BaseException | None) -> None:
    for fut in futs:
        if fut.cancelled():
            continue
        if error is not None:
            fut.set_exception(OSError(f"write-ahead log: {error}"))
        else:
            fut.set_result(None)
