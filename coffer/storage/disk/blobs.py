"""Object bodies as files: streamed in, hashed on the way, published atomically.

Layout under the data directory::

    tmp/<uuid>             bodies being received (never referenced; cleared at start)
    blobs/<ab>/<uuid>      published bodies, referenced by metadata rows

Protocol (see docs/durability.md): write to tmp/, fsync the file, rename into
blobs/, fsync the directory, and only then commit the metadata row. A crash at
any point leaves at worst an unreferenced file, which the sweep removes. The
256 fan-out directories ``blobs/00`` .. ``blobs/ff`` are made (and their parent
fsynced) when the store opens, so publishing never creates a directory.

A temp file is flock()ed by the process writing it until it is published or
discarded. Start-up removes only temp files nobody holds a lock on: the kernel
drops the locks of a killed process, while a worker started next to running
ones (uvicorn respawns dead workers and replaces them one by one on SIGHUP)
leaves their uploads alone. The lock is kept after the rename into blobs/ until
the engine has committed the row that references the blob (``ReceivedBody.release``):
the orphan sweep skips locked files, so it never takes a body that is about to
become visible, whatever its grace period and in whichever worker process.

Files are created with the store's ``file_mode`` and directories with its
``dir_mode`` (0600/0700 by default), whatever the process umask.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import ctypes
import fcntl
import logging
import os
import stat
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from coffer.fsutil import fsync_dir
from coffer.storage import contracts
from coffer.storage.api import EngineObserver, PutDigests
from coffer.storage.contracts import OpenBlob, Segment
from coffer.storage.errors import EntityTooLarge, StorageError
from coffer.storage.hashing import PIPELINE_CHUNK, BodyHasher

log = logging.getLogger("coffer.blobs")
T = TypeVar("T")
Tx = TypeVar("Tx")

READ_CHUNK = 2 * 1024 * 1024  # measured: 2 MiB reads serve large GETs ~15% faster than 1 MiB (docs/benchmarks.md)
SINK_WINDOW = 8 * 1024 * 1024  # bytes of one upload queued for writing before receiving pauses
WRITEBACK_STEP = 8 * 1024 * 1024  # with fsync on, start writeback every this many bytes
_IOV_MAX = 512  # pieces per writev (the kernel allows 1024)
# Files of a many-piece object held open ahead of the reader: opened before the
# response starts (and kept ahead while streaming), so a concurrent overwrite or
# delete cannot pull them away; bounded so a 10,000-part object costs few fds.
OPEN_AHEAD = 16

# Hashing (md5 ~700 MB/s) and writing happen on these threads while the event
# loop keeps receiving; hashlib and os.write release the GIL for large buffers.
_io_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="coffer-blob")


class ReceivedBody:
    """A fully received body: either small bytes kept in memory (``data``) or a temp file.

    A file stays open and locked until ``release`` (after the metadata commit
    that references its published blob) or ``discard``.
    """

    def __init__(self, digests: PutDigests, data: bytes | None, temp_path: Path | None, fd: int | None = None) -> None:
        self.digests = digests
        self.data = data
        self.temp_path = temp_path
        self.fd = fd

    def release(self) -> None:
        """Drop the lock: the published blob is referenced now (or was deleted)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def discard(self) -> None:
        if self.temp_path is not None:
            try:
                os.unlink(self.temp_path)
            except FileNotFoundError:
                pass
            self.temp_path = None
        self.release()


class FileBlob:
    """A blob opened for reading: it stays readable after a concurrent delete."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def stream(self, start: int, end: int) -> AsyncIterator[bytes]:
        """Bytes [start, end); the stream takes the blob over (and closes it)."""
        fd, self.fd = self.fd, -1
        return stream_fd(fd, start, end)

    async def read(self, size: int, offset: int) -> bytes:
        return await asyncio.get_running_loop().run_in_executor(_io_pool, os.pread, self.fd, size, offset)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


FANOUT = [f"{i:02x}" for i in range(256)]  # blobs/<first two hex digits of the name>/


def current_umask() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o077)  # no /proc: read it the racy way (start-up only)
    os.umask(mask)
    return mask


def make_dir(path: Path, mode: int) -> bool:
    """Create ``path`` (or keep it) with exactly ``mode``; True if it was created."""
    try:
        os.mkdir(path, mode)
        created = True
    except FileExistsError:
        created = False
    if stat.S_IMODE(os.stat(path).st_mode) != mode:
        os.chmod(path, mode)
    return created


class FileBlobStore:
    """The ``BlobStore`` of contracts.py on a local directory."""

    def __init__(
        self,
        root: Path,
        fsync: bool,
        inline_threshold: int,
        observer: EngineObserver | None = None,
        *,
        file_mode: int = 0o600,
        dir_mode: int = 0o700,
    ) -> None:
        self.root = root
        self.observer = observer or EngineObserver()
        self.tmp_dir = root / "tmp"
        self.blob_dir = root / "blobs"
        self.fsync = fsync
        self.inline_threshold = inline_threshold
        self.file_mode = file_mode
        self.dir_mode = dir_mode
        self._chmod_files = True  # until open() knows whether the umask would strip file_mode

    def open(self) -> None:
        self._chmod_files = self.file_mode & ~current_umask() != self.file_mode
        made = [make_dir(path, self.dir_mode) for path in (self.tmp_dir, self.blob_dir)]
        made += [make_dir(self.blob_dir / sub, self.dir_mode) for sub in FANOUT]
        if any(made):
            # New directory entries survive a power loss only once their parent is synced.
            fsync_dir(self.blob_dir)
            fsync_dir(self.root)
        # Nothing in tmp/ is ever referenced: whatever a crash left there goes,
        # but files another live process holds locked are uploads in progress.
        for entry in os.scandir(self.tmp_dir):
            try:
                fd = os.open(entry.path, os.O_RDONLY)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.unlink(entry.path)
            except OSError:
                pass
            finally:
                os.close(fd)

    def _new_temp(self) -> tuple[Path, int]:
        """A fresh temp file, created and locked."""
        while True:
            path = self.tmp_dir / uuid.uuid4().hex
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.file_mode)
            if self._chmod_files:
                os.fchmod(fd, self.file_mode)
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_nlink:
                return path, fd
            # Removed by a starting process between create and lock: take another.
            os.close(fd)

    def path_of(self, name: str) -> Path:
        return self.blob_dir / name[:2] / name

    # ------------------------------------------------------------------ writing
    async def receive(
        self,
        body: AsyncIterator[bytes],
        *,
        algorithms: Iterable[str] = (),
        want_sha256: bool = False,
        max_size: int | None = None,
        md5: bool = True,
    ) -> ReceivedBody:
        """Consume ``body`` completely, hashing it (``md5``: see ``BodyHasher``); small bodies stay in memory.

        Past the inline threshold the body goes to a temp file through a
        ``_FileSink``: the event loop keeps receiving while a pool thread hashes
        and writes the previous pieces, in order, with at most ``SINK_WINDOW``
        bytes in flight.
        """
        hashing = BodyHasher(algorithms, want_sha256, md5=md5)
        parts: list[bytes] = []
        pending = 0  # bytes in ``parts``
        sink: _FileSink | None = None
        threshold = self.inline_threshold
        total = 0
        try:
            async for chunk in body:
                size = len(chunk)
                if not size:
                    continue
                total += size
                if max_size is not None and total > max_size:
                    raise EntityTooLarge()
                parts.append(chunk)
                pending += size
                if pending < PIPELINE_CHUNK and (sink is not None or total <= threshold):
                    continue
                if sink is None:
                    if total <= threshold:
                        continue
                    sink = _FileSink(*self._new_temp(), hashing, self._sync_file if self.fsync else None)
                await sink.write(parts, pending)
                parts, pending = [], 0
            if sink is None and total <= threshold:
                data = parts[0] if len(parts) == 1 else b"".join(parts)
                hashing.update(data)
                return ReceivedBody(hashing.digests(), data, None)
            if sink is None:
                sink = _FileSink(*self._new_temp(), hashing, self._sync_file if self.fsync else None)
            if parts:
                await sink.write(parts, pending)
            await sink.finish()
            # The temp file stays open (and locked) in `received` until released.
            received = ReceivedBody(hashing.digests(), None, sink.path, sink.fd)
            sink = None
            return received
        except BaseException:
            if sink is not None:
                await sink.abort()
            raise

    async def publish(self, received: contracts.ReceivedBody) -> str:
        """Move a received temp file into blobs/ durably; returns its blob name.

        The file stays locked (against the orphan sweep) until ``received.release()``,
        which the caller does once the row referencing the blob is committed.
        """
        assert isinstance(received, ReceivedBody)
        source = received.temp_path
        assert source is not None
        name = source.name
        target = self.path_of(name)

        def move() -> None:
            try:
                os.rename(source, target)
            except FileNotFoundError:
                if not source.exists():
                    raise
                # A fan-out directory removed behind our back: make it again, durably.
                make_dir(target.parent, self.dir_mode)
                fsync_dir(self.blob_dir)
                os.rename(source, target)
            if self.fsync:
                started = time.perf_counter()
                fsync_dir(target.parent)
                self.observer.synced("dir", time.perf_counter() - started)

        await asyncio.get_running_loop().run_in_executor(_io_pool, move)
        received.temp_path = None
        return name

    def check_writable(self) -> None:
        """Create, write and remove a small file where bodies are received (raises OSError)."""
        path = self.tmp_dir / f"probe-{uuid.uuid4().hex}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, self.file_mode)
        try:
            # Locked like any temp file, so a starting worker's tmp/ sweep leaves it alone.
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, b"ok")
        finally:
            os.close(fd)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def delete(self, names: Iterable[str]) -> None:
        for name in names:
            try:
                os.unlink(self.path_of(name))
            except FileNotFoundError:
                pass

    def _sync_file(self, fd: int) -> None:
        started = time.perf_counter()
        os.fsync(fd)
        self.observer.synced("file", time.perf_counter() - started)

    async def reclaim(self, names: list[str]) -> None:
        """Delete files after a commit released them; many (a big multipart object) off the event loop."""
        if len(names) <= 4:
            self.delete(names)
        elif names:
            await asyncio.get_running_loop().run_in_executor(_io_pool, self.delete, names)

    # ------------------------------------------------------------------ reading
    def open_blob(self, name: str) -> OpenBlob:
        """Open a blob for reading (FileNotFoundError once it is gone)."""
        return FileBlob(os.open(self.path_of(name), os.O_RDONLY))

    def open_ahead(self, segments: list[Segment], first: int, fds: dict[int, OpenBlob]) -> None:
        """Open the files of segments[first : first + OPEN_AHEAD] not open yet (FileNotFoundError if gone)."""
        for index in range(first, min(first + OPEN_AHEAD, len(segments))):
            seg = segments[index]
            if seg.blob is not None and seg.size and index not in fds:
                fds[index] = self.open_blob(seg.blob)

    async def stream_segments(
        self, segments: list[Segment], fds: dict[int, OpenBlob], start: int, end: int
    ) -> AsyncIterator[bytes]:
        """Bytes [start, end) of a many-piece body; takes ownership of ``fds`` (index -> open blob)."""
        try:
            index = max(0, bisect.bisect_right([s.offset for s in segments], start) - 1)
            pos = start
            while pos < end and index < len(segments):
                seg = segments[index]
                lo, hi = pos - seg.offset, min(end, seg.offset + seg.size) - seg.offset
                if lo >= hi:
                    index += 1
                    continue
                if seg.blob is None:
                    piece = (seg.data or b"")[lo:hi]
                    pos += len(piece)
                    if piece:
                        yield piece
                    index += 1
                    continue
                fd = fds.pop(index, None)
                if fd is None:
                    try:
                        fd = self.open_blob(seg.blob)
                    except FileNotFoundError:
                        # Only files not yet open can vanish: the object was replaced mid-read.
                        raise StorageError("The object was replaced while it was being read.") from None
                try:
                    try:
                        # Keep the next files open ahead of the reader (best effort: one
                        # that is already gone fails only if and when it is reached).
                        self.open_ahead(segments, index + 1, fds)
                    except FileNotFoundError:
                        pass
                    while lo < hi:
                        data = await fd.read(min(READ_CHUNK, hi - lo), lo)
                        if not data:
                            raise StorageError("An object piece is shorter than recorded.")
                        lo += len(data)
                        pos += len(data)
                        yield data
                finally:
                    fd.close()
                index += 1
        finally:
            for fd in fds.values():
                fd.close()
            fds.clear()

    # ------------------------------------------------------------------ sweeping
    def sweep_orphans(self, is_referenced: Callable[[str], bool], grace_seconds: float) -> int:
        """Delete files under blobs/ that no metadata references (crash leftovers).

        Age alone decides nothing: a file is removed only when it is unreferenced
        and not locked by a write still to commit it, and is still unreferenced
        once this sweep holds its lock (the write may have committed meanwhile).
        """
        if grace_seconds < 0:
            raise ValueError("orphan_grace_seconds must be >= 0")
        removed = 0
        cutoff = time.time() - grace_seconds
        for sub in os.scandir(self.blob_dir):
            if not sub.is_dir():
                continue
            for entry in os.scandir(sub.path):
                try:
                    if entry.stat().st_mtime > cutoff:
                        continue
                except FileNotFoundError:
                    continue
                if not is_referenced(entry.name) and self._remove_if_orphan(entry.path, entry.name, is_referenced):
                    removed += 1
        return removed

    @staticmethod
    def _remove_if_orphan(path: str, name: str, is_referenced: Callable[[str], bool]) -> bool:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # published by a write that has not committed (or failed) yet
            if is_referenced(name):
                return False  # that write committed between the first look and the lock
            os.unlink(path)
            return True
        except FileNotFoundError:
            return False
        finally:
            os.close(fd)


async def commit_published(
    meta: contracts.MetadataStore[Tx],
    blobs: contracts.BlobStore,
    tx: Callable[[Tx], T],
    received: contracts.ReceivedBody,
    blob: str | None,
    after: Callable[[T], None] | None = None,
) -> T:
    """Commit ``tx``, which references ``blob`` just published from ``received``.

    The blob stays held (against the orphan sweep) until the commit has settled,
    even when the caller is cancelled meanwhile: a queued write still commits,
    and then its row needs the blob. Only a commit that failed deletes it.
    """
    fut = meta.submit(tx, after)

    def settle(done: asyncio.Future[T]) -> None:
        if not done.cancelled() and done.exception() is not None and blob is not None:
            blobs.delete([blob])
        received.release()

    fut.add_done_callback(settle)
    return await asyncio.shield(fut)


async def hash_stream(body: AsyncIterator[bytes], algorithms: Iterable[str]) -> PutDigests:
    """MD5 and the given checksums of a stream, hashed off the event loop, nothing kept."""
    hashing = BodyHasher(algorithms, False)
    loop = asyncio.get_running_loop()
    async for chunk in body:
        await loop.run_in_executor(_io_pool, hashing.update, chunk)
    return hashing.digests()


class _FileSink:
    """One upload's temp file, fed from the event loop, hashed and written in order
    on the blob pool.

    At most one pool task per sink runs at a time and it drains the queue, so
    pieces keep their order without a thread per upload; ``write`` waits while
    more than ``SINK_WINDOW`` bytes are queued, which bounds memory per upload.
    With fsync on, writeback of what is written starts every ``WRITEBACK_STEP``
    bytes (sync_file_range) so the final fsync has little left to flush.
    """

    def __init__(self, path: Path, fd: int, hashing: BodyHasher, sync: Callable[[int], None] | None) -> None:
        self.path = path
        self.fd = fd  # created and locked by the store; handed on open to ReceivedBody
        self._hashing = hashing
        self._sync = sync  # fsync (timed by the store) when durability is on
        self._loop = asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._queue: deque[tuple[list[bytes], int]] = deque()
        self._queued = 0  # bytes queued or being written
        self._running = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._written = 0
        self._synced = 0
        self._buffer = bytearray(PIPELINE_CHUNK + 256 * 1024)  # used by the pool task only

    async def write(self, parts: list[bytes], size: int) -> None:
        with self._lock:
            self._queue.append((parts, size))
            self._queued += size
            start = not self._running
            self._running = True
        if start:
            _io_pool.submit(self._drain)
        if self._queued > SINK_WINDOW:
            # Resume at half the window: one wake-up per few MiB, not one per piece.
            await self._wait_until(lambda: self._queued <= SINK_WINDOW // 2 or self._error is not None)
        if self._error is not None:
            raise self._error

    async def finish(self) -> None:
        """Wait for every queued piece, then fsync if configured (the fd stays open)."""
        await self._wait_until(lambda: not self._running)
        if self._error is not None:
            raise self._error
        if self._sync is not None:
            await self._loop.run_in_executor(_io_pool, self._sync, self.fd)

    async def abort(self) -> None:
        """Stop writing, wait for the pool task, close and remove the temp file."""
        with self._lock:
            self._queue.clear()
            if self._error is None:
                self._error = _Aborted()
        try:
            await asyncio.shield(self._wait_until(lambda: not self._running))
        finally:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    async def _wait_until(self, ready: Callable[[], bool]) -> None:
        while True:
            with self._lock:
                if ready():
                    return
                waiter = self._waiter = self._loop.create_future()
            await waiter

    def _wake(self) -> None:
        # Called with the lock held, from the pool thread.
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            self._loop.call_soon_threadsafe(_set_done, waiter)

    def _drain(self) -> None:
        while True:
            with self._lock:
                if not self._queue or self._error is not None:
                    self._queue.clear()
                    self._queued = 0
                    self._running = False
                    self._wake()
                    return
                parts, size = self._queue.popleft()
            try:
                # One buffer per step: every hashing or writing call re-takes the
                # GIL from a busy event loop, so a few calls per MiB rather than
                # three per 64 KiB piece. The buffer is reused: a fresh 1 MiB
                # allocation per step costs more in page faults than the copy.
                data: bytes | memoryview
                if len(parts) == 1:
                    data = parts[0]
                elif size <= len(self._buffer):
                    view = memoryview(self._buffer)
                    at = 0
                    for part in parts:
                        view[at : at + len(part)] = part
                        at += len(part)
                    data = view[:size]
                else:
                    data = b"".join(parts)
                self._hashing.update(data)
                _write_all(self.fd, [data])
                self._written += size
                if self._sync is not None and self._written - self._synced >= WRITEBACK_STEP:
                    _start_writeback(self.fd, self._synced, self._written - self._synced)
                    self._synced = self._written
            except BaseException as exc:
                with self._lock:
                    self._error = exc
            with self._lock:
                self._queued -= size
                if self._queued <= SINK_WINDOW // 2:
                    self._wake()


class _Aborted(Exception):
    pass


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _write_all(fd: int, parts: list[bytes] | list[bytes | memoryview]) -> None:
    views: list[bytes | memoryview] = list(parts)
    while views:
        batch = views[:_IOV_MAX]
        written = os.writev(fd, batch)
        # Drop what was written; keep the unwritten tail of a partly written piece.
        i = 0
        while i < len(batch) and written >= len(batch[i]):
            written -= len(batch[i])
            i += 1
        views = views[i:]
        if written:
            views[0] = memoryview(views[0])[written:]


def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn


_sync_file_range = _load_sync_file_range()
_SYNC_FILE_RANGE_WRITE = 2


def _start_writeback(fd: int, offset: int, length: int) -> None:
    """Ask the kernel to start writing this range to disk now (does not wait).

    Only a head start for the fsync that makes the body durable: without it a
    large body sits dirty in the page cache and the final fsync writes all of it.
    """
    if _sync_file_range is not None:
        _sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


async def stream_fd(fd: int, start: int, end: int) -> AsyncIterator[bytes]:
    """Read [start, end) of an open file in chunks off the event loop; closes fd.

    The next chunk is read while the current one is being sent.
    """
    reading: Future[bytes] | None = None
    try:
        pos = start
        if pos < end:
            reading = _io_pool.submit(os.pread, fd, min(READ_CHUNK, end - pos), pos)
        while reading is not None:
            data = await asyncio.wrap_future(reading)
            reading = None
            if not data:
                break
            pos += len(data)
            if pos < end:
                reading = _io_pool.submit(os.pread, fd, min(READ_CHUNK, end - pos), pos)
            yield data
    finally:
        if reading is not None:
            # A read may still run on the pool: close the fd only once it is over.
            reading.add_done_callback(lambda _f: os.close(fd))
        else:
            os.close(fd)
