"""The disk blob store's streaming paths: bodies hashed and written while they
arrive (in order, bounded, cleaned up on failure) and read back with read-ahead."""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from coffer.checksums import new_hasher
from coffer.storage.disk import blobs
from coffer.storage.disk.blobs import FileBlobStore, stream_fd
from coffer.storage.errors import EntityTooLarge


def _store(tmp_path: Path, fsync: bool = False) -> FileBlobStore:
    store = FileBlobStore(tmp_path, fsync=fsync, inline_threshold=64 * 1024)
    store.open()
    return store


async def _pieces(data: bytes, sizes: list[int], fail_after: int | None = None) -> AsyncIterator[bytes]:
    pos = i = 0
    while pos < len(data):
        if fail_after is not None and pos >= fail_after:
            raise ConnectionError("client went away")
        n = sizes[i % len(sizes)]
        yield data[pos : pos + n]
        pos += n
        i += 1
        if i % 7 == 0:
            await asyncio.sleep(0)


@pytest.mark.parametrize("fsync", [False, True])
def test_large_body_is_written_whole_and_in_order(tmp_path: Path, fsync: bool) -> None:
    # Uneven piece sizes (as ASGI servers and the aws-chunked decoder deliver
    # them) and more than the sink window and the writeback step in flight.
    data = os.urandom(blobs.SINK_WINDOW + blobs.WRITEBACK_STEP // 2 + 12345)
    store = _store(tmp_path, fsync)

    async def run() -> blobs.ReceivedBody:
        return await store.receive(_pieces(data, [65536, 1, 300_000, 4096, 1 << 20]), algorithms=("CRC32C",))

    received = asyncio.run(run())
    assert received.data is None and received.temp_path is not None
    assert received.temp_path.read_bytes() == data
    crc = new_hasher("CRC32C")
    crc.update(data)
    assert received.digests.size == len(data)
    assert received.digests.md5 == hashlib.md5(data).digest()
    assert received.digests.checksums == {"CRC32C": crc.digest()}
    received.discard()
    assert list((tmp_path / "tmp").iterdir()) == []


def test_small_body_stays_in_memory(tmp_path: Path) -> None:
    data = os.urandom(5000)
    store = _store(tmp_path)
    received = asyncio.run(store.receive(_pieces(data, [1000, 3])))
    assert received.data == data and received.temp_path is None
    assert received.digests.md5 == hashlib.md5(data).digest()
    assert list((tmp_path / "tmp").iterdir()) == []


def test_failed_body_leaves_no_temp_file(tmp_path: Path) -> None:
    data = os.urandom(3 << 20)
    store = _store(tmp_path, fsync=True)
    with pytest.raises(ConnectionError):
        asyncio.run(store.receive(_pieces(data, [65536], fail_after=2 << 20)))
    assert list((tmp_path / "tmp").iterdir()) == []


def test_too_large_body_leaves_no_temp_file(tmp_path: Path) -> None:
    data = os.urandom(2 << 20)
    store = _store(tmp_path)
    with pytest.raises(EntityTooLarge):
        asyncio.run(store.receive(_pieces(data, [65536]), max_size=(1 << 20) + 5))
    assert list((tmp_path / "tmp").iterdir()) == []


def test_stream_reads_ranges_and_closes_fd(tmp_path: Path) -> None:
    data = os.urandom(3 * blobs.READ_CHUNK + 777)
    path = tmp_path / "blob"
    path.write_bytes(data)

    async def read(start: int, end: int) -> bytes:
        fd = os.open(path, os.O_RDONLY)
        out = b"".join([chunk async for chunk in stream_fd(fd, start, end)])
        with pytest.raises(OSError):
            os.fstat(fd)  # closed once the stream is done
        return out

    assert asyncio.run(read(0, len(data))) == data
    assert asyncio.run(read(5, blobs.READ_CHUNK + 9)) == data[5 : blobs.READ_CHUNK + 9]
    assert asyncio.run(read(len(data), len(data))) == b""


def test_stream_closed_early_closes_fd_after_read_ahead(tmp_path: Path) -> None:
    data = os.urandom(4 * blobs.READ_CHUNK)
    path = tmp_path / "blob"
    path.write_bytes(data)

    async def first_chunk_then_close() -> int:
        fd = os.open(path, os.O_RDONLY)
        stream = stream_fd(fd, 0, len(data))
        assert await stream.__anext__() == data[: blobs.READ_CHUNK]
        await stream.aclose()  # the next chunk may still be being read on the pool
        for _ in range(200):
            try:
                os.fstat(fd)
            except OSError:
                return fd
            await asyncio.sleep(0.01)
        raise AssertionError("fd still open")

    asyncio.run(first_chunk_then_close())
