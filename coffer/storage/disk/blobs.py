"""Object bodies as files: streamed in, hashed on the way, published atomically.

Layout under the data directory::

    tmp/<uuid>             bodies being received (never referenced; cleared at start)
    blobs/<ab>/<uuid>      published bodies, referenced by metadata rows

Protocol (see docs/durability.md): write to tmp/, fsync the file, rename into
blobs/, fsync the directory, and only then commit the metadata row. A crash at
any point leaves at worst an unreferenced file, which the sweep removes.

A temp file is flock()ed by the process writing it until it is published or
discarded. Start-up removes only temp files nobody holds a lock on: the kernel
drops the locks of a killed process, while a worker started next to running
ones (uvicorn respawns dead workers and replaces them one by one on SIGHUP)
leaves their uploads alone.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import fcntl
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from coffer.storage.api import EngineObserver, PutDigests
from coffer.storage.errors import EntityTooLarge, StorageError
from coffer.storage.hashing import PIPELINE_CHUNK, BodyHasher

log = logging.getLogger("coffer.blobs")

READ_CHUNK = 1024 * 1024
# Files of a many-piece object held open ahead of the reader: opened before the
# response starts (and kept ahead while streaming), so a concurrent overwrite or
# delete cannot pull them away; bounded so a 10,000-part object costs few fds.
OPEN_AHEAD = 16

# Hashing (md5 ~700 MB/s) and writing happen on these threads while the event
# loop keeps receiving; hashlib and os.write release the GIL for large buffers.
_io_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="coffer-blob")


class ReceivedBody:
    """A fully received body: either small bytes kept in memory or a temp file.

    A temp file stays open (and locked) until ``publish`` or ``discard``.
    """

    def __init__(self, digests: PutDigests, data: bytes | None, temp_path: Path | None, fd: int | None = None) -> None:
        self.digests = digests
        self.data = data
        self.temp_path = temp_path
        self.fd = fd

    def close(self) -> None:
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
        self.close()


@dataclass(slots=True)
class Segment:
    """One piece of an object body made of several: a blob file or inline bytes."""

    offset: int  # where the piece starts in the object
    size: int
    blob: str | None
    data: bytes | None


class BlobStore:
    def __init__(self, root: Path, fsync: bool, inline_threshold: int, observer: EngineObserver | None = None) -> None:
        self.root = root
        self.observer = observer or EngineObserver()
        self.tmp_dir = root / "tmp"
        self.blob_dir = root / "blobs"
        self.fsync = fsync
        self.inline_threshold = inline_threshold

    def open(self) -> None:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        self.blob_dir.mkdir(parents=True, exist_ok=True)
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
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
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
    ) -> ReceivedBody:
        """Consume ``body`` completely, hashing it; small bodies stay in memory."""
        hashing = BodyHasher(algorithms, want_sha256)
        buffer = bytearray()
        fd: int | None = None
        temp_path: Path | None = None
        pending: asyncio.Future[None] | None = None
        loop = asyncio.get_running_loop()
        total = 0
        try:
            async for chunk in body:
                total += len(chunk)
                if max_size is not None and total > max_size:
                    raise EntityTooLarge()
                buffer += chunk
                if fd is None and len(buffer) <= self.inline_threshold:
                    continue
                if len(buffer) < PIPELINE_CHUNK:
                    continue
                if fd is None:
                    temp_path, fd = self._new_temp()
                if pending is not None:
                    await pending
                data = bytes(buffer)
                buffer.clear()
                pending = loop.run_in_executor(_io_pool, _hash_and_write, hashing, fd, data)
            if pending is not None:
                await pending
                pending = None
            if fd is None and len(buffer) <= self.inline_threshold:
                hashing.update(buffer)
                return ReceivedBody(hashing.digests(), bytes(buffer), None)
            if fd is None:
                temp_path, fd = self._new_temp()
            data = bytes(buffer)
            buffer.clear()
            await loop.run_in_executor(_io_pool, self._finish_file, hashing, fd, data)
            received = ReceivedBody(hashing.digests(), None, temp_path, fd)
            fd = None  # owned (and closed) by `received` from here on
            return received
        except BaseException:
            if pending is not None:
                try:
                    await asyncio.shield(pending)
                except BaseException:
                    pass
            if fd is not None:
                os.close(fd)
            if temp_path is not None:
                try:
                    os.unlink(temp_path)
                except FileNotFoundError:
                    pass
            raise

    async def publish(self, received: ReceivedBody) -> str:
        """Move a received temp file into blobs/ durably; returns its blob name."""
        assert received.temp_path is not None
        name = received.temp_path.name
        target = self.path_of(name)

        def move() -> None:
            target.parent.mkdir(exist_ok=True)
            os.rename(received.temp_path, target)  # type: ignore[arg-type]
            if self.fsync:
                started = time.perf_counter()
                _fsync_dir(target.parent)
                self.observer.synced("dir", time.perf_counter() - started)

        await asyncio.get_running_loop().run_in_executor(_io_pool, move)
        received.temp_path = None
        received.close()  # the lock guarded the temp file; it is a blob now
        return name

    def check_writable(self) -> None:
        """Create, write and remove a small file where bodies are received (raises OSError)."""
        path = self.tmp_dir / f"probe-{uuid.uuid4().hex}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
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

    def _finish_file(self, hashing: BodyHasher, fd: int, data: bytes) -> None:
        if data:
            _hash_and_write(hashing, fd, data)
        if self.fsync:
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
    def open_fd(self, name: str) -> int:
        return os.open(self.path_of(name), os.O_RDONLY)

    def open_ahead(self, segments: list[Segment], first: int, fds: dict[int, int]) -> None:
        """Open the files of segments[first : first + OPEN_AHEAD] not open yet (FileNotFoundError if gone)."""
        for index in range(first, min(first + OPEN_AHEAD, len(segments))):
            seg = segments[index]
            if seg.blob is not None and seg.size and index not in fds:
                fds[index] = self.open_fd(seg.blob)

    async def stream_segments(
        self, segments: list[Segment], fds: dict[int, int], start: int, end: int
    ) -> AsyncIterator[bytes]:
        """Bytes [start, end) of a many-piece body; takes ownership of ``fds`` (index -> open fd)."""
        loop = asyncio.get_running_loop()
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
                        fd = self.open_fd(seg.blob)
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
                        data = await loop.run_in_executor(_io_pool, os.pread, fd, min(READ_CHUNK, hi - lo), lo)
                        if not data:
                            raise StorageError("An object piece is shorter than recorded.")
                        lo += len(data)
                        pos += len(data)
                        yield data
                finally:
                    os.close(fd)
                index += 1
        finally:
            for fd in fds.values():
                os.close(fd)
            fds.clear()

    # ------------------------------------------------------------------ sweeping
    def sweep_orphans(self, is_referenced: Callable[[str], bool], grace_seconds: float) -> int:
        """Delete files under blobs/ that no metadata references (crash leftovers)."""
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
                if not is_referenced(entry.name):
                    try:
                        os.unlink(entry.path)
                        removed += 1
                    except FileNotFoundError:
                        pass
        return removed


async def hash_stream(body: AsyncIterator[bytes], algorithms: Iterable[str]) -> PutDigests:
    """MD5 and the given checksums of a stream, hashed off the event loop, nothing kept."""
    hashing = BodyHasher(algorithms, False)
    loop = asyncio.get_running_loop()
    async for chunk in body:
        await loop.run_in_executor(_io_pool, hashing.update, chunk)
    return hashing.digests()


def _hash_and_write(hashing: BodyHasher, fd: int, data: bytes) -> None:
    hashing.update(data)
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(path: Path) -> None:
    dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


async def stream_fd(fd: int, start: int, end: int) -> AsyncIterator[bytes]:
    """Read [start, end) of an open file in chunks off the event loop; closes fd."""
    loop = asyncio.get_running_loop()
    try:
        pos = start
        while pos < end:
            n = min(READ_CHUNK, end - pos)
            data = await loop.run_in_executor(_io_pool, os.pread, fd, n, pos)
            if not data:
                break
            pos += len(data)
            yield data
    finally:
        os.close(fd)
