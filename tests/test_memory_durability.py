"""The memory engine's write-ahead log under failure: a change is visible only once its record is
durable, a write its client was told failed is never applied (now or after a crash), and what
recovery and the log keep stays consistent (evictions at recovery, completed uploads, file modes)."""

from __future__ import annotations

import asyncio
import errno
import os
import resource
import signal
import stat
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from coffer.storage import errors
from coffer.storage.api import MIN_PART_SIZE, CompletedPart
from coffer.storage.memory import MemoryEngine
from coffer.storage.memory.engine import OBJECT_OVERHEAD
from coffer.storage.memory.snapshot import snapshots
from coffer.storage.memory.wal import segments
from tests.server_process import ServerProcess

OWNER = "owner-id"
KiB = 1024
MiB = 1024 * 1024


async def chunks(data: bytes, piece: int = 65536) -> AsyncIterator[bytes]:
    for i in range(0, len(data), piece):
        yield data[i : i + piece]


async def put(engine: MemoryEngine, key: str, data: bytes, **kw: Any) -> Any:
    return await engine.put_object("bkt", key, chunks(data), headers={}, **kw)


async def read(engine: MemoryEngine, key: str) -> bytes:
    opened = await engine.open_object("bkt", key)
    return b"".join([c async for c in opened.stream()])


async def keys(engine: MemoryEngine) -> list[str]:
    return [e.key for e in (await engine.list_objects("bkt")).entries]


def persistent(directory: Path, **kw: Any) -> MemoryEngine:
    kw.setdefault("max_memory", 1 << 30)
    return MemoryEngine(persistence_dir=directory, fsync=False, snapshot_interval=0, **kw)


def crash(engine: MemoryEngine) -> None:
    """Stop the engine the way kill -9 would: no shutdown snapshot."""
    assert engine._wal is not None
    engine._wal.close()
    engine._wal = None
    for task in engine._tasks:
        task.cancel()


class FailingFile:
    """The open WAL segment, failing its next write with ENOSPC after writing part of it (a disk filling up)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.armed = False
        self.failures = 0
        self.failing_truncates = 0  # truncate() fails this many more times (EIO)

    def truncate(self, size: int) -> int:
        if self.failing_truncates:
            self.failing_truncates -= 1
            raise OSError(errno.EIO, "Input/output error")
        return int(self.inner.truncate(size))

    def write(self, data: Any) -> int:
        if self.armed:
            self.armed = False
            self.failures += 1
            self.inner.write(bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return int(self.inner.write(data))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class GatedFile(FailingFile):
    """Also holds the writer thread inside a write until the test opens the gate."""

    def __init__(self, inner: Any) -> None:
        super().__init__(inner)
        self.closed_gate = False
        self.entered = threading.Event()
        self.gate = threading.Event()

    def write(self, data: Any) -> int:
        if self.closed_gate:
            self.entered.set()
            self.gate.wait()
        return super().write(data)


def wrap_segment(engine: MemoryEngine, kind: type[FailingFile] = FailingFile) -> Any:
    wal = engine._wal
    assert wal is not None
    wal._file = kind(wal._file)  # the writer thread is idle between batches
    return wal._file


def test_write_error_applies_nothing_and_loses_nothing_acknowledged(tmp_path: Path) -> None:
    big = os.urandom(300 * KiB)
    later = {f"after-{i}": os.urandom(1000 + i) for i in range(5)}

    async def first() -> None:
        e = persistent(tmp_path)
        await e.start()
        await e.create_bucket("bkt", OWNER, "us-east-1")
        await put(e, "before", b"kept")
        await put(e, "victim", b"to be deleted")
        segment = wrap_segment(e)
        segment.armed = True
        with pytest.raises(errors.ServiceUnavailable):
            await put(e, "failed", big)
        assert segment.failures == 1
        # Its client was told it failed: it is not served, and no reservation is left behind.
        with pytest.raises(errors.NoSuchKey):
            await e.head_object("bkt", "failed")
        assert await keys(e) == ["before", "victim"]
        assert e.stats.reserved_bytes == 0 and e.stats.wal.errors == 1
        # The log was cut back: later writes are acknowledged and durable.
        for key, body in later.items():
            await put(e, key, body)
        await e.delete_object("bkt", "victim")
        crash(e)

    async def second() -> None:
        e = persistent(tmp_path)
        await e.start()
        try:
            assert await keys(e) == ["after-0", "after-1", "after-2", "after-3", "after-4", "before"]
            for key, body in later.items():
                assert await read(e, key) == body
            with pytest.raises(errors.NoSuchKey):
                await e.head_object("bkt", "failed")
            with pytest.raises(errors.NoSuchKey):
                await e.head_object("bkt", "victim")
        finally:
            crash(e)

    asyncio.run(first())
    asyncio.run(second())


def test_writes_are_refused_until_the_log_can_be_cut_back(tmp_path: Path) -> None:
    async def first() -> None:
        e = persistent(tmp_path)
        await e.start()
        await e.create_bucket("bkt", OWNER, "us-east-1")
        segment = wrap_segment(e)
        segment.armed = True
        segment.failing_truncates = 2
        with pytest.raises(errors.ServiceUnavailable):
            await put(e, "failed", os.urandom(300 * KiB))
        # The partial record is still there: nothing may be written after it.
        with pytest.raises(errors.ServiceUnavailable):
            await put(e, "refused", b"r")
        await put(e, "accepted", b"a")  # the log could be cut back at last
        assert await keys(e) == ["accepted"]
        crash(e)

    async def second() -> list[str]:
        e = persistent(tmp_path)
        await e.start()
        found = await keys(e)
        crash(e)
        return found

    asyncio.run(first())
    assert asyncio.run(second()) == ["accepted"]


def test_a_failed_batch_fails_every_write_in_it(tmp_path: Path) -> None:
    """Concurrent writes share one group commit: when it fails, all of them fail and none is applied."""

    async def first() -> None:
        e = persistent(tmp_path, wal_batch_interval=0.2)
        await e.start()
        await e.create_bucket("bkt", OWNER, "us-east-1")
        await put(e, "old", b"v1")
        segment = wrap_segment(e)
        segment.armed = True
        results = await asyncio.gather(
            *(put(e, f"k{i}", b"x" * 100) for i in range(5)),
            put(e, "old", b"v2"),
            e.delete_object("bkt", "old"),
            return_exceptions=True,
        )
        assert all(isinstance(r, errors.ServiceUnavailable) for r in results), results
        assert await keys(e) == ["old"]
        assert await read(e, "old") == b"v1"
        assert e.stats.objects == 1 and e.stats.reserved_bytes == 0
        await put(e, "next", b"fine")  # the writer resumed
        crash(e)

    async def second() -> None:
        e = persistent(tmp_path)
        await e.start()
        try:
            assert await keys(e) == ["next", "old"]
            assert await read(e, "old") == b"v1"
        finally:
            crash(e)

    asyncio.run(first())
    asyncio.run(second())


def test_readers_never_see_a_write_before_it_is_durable(tmp_path: Path) -> None:
    async def scenario() -> None:
        e = persistent(tmp_path)
        await e.start()
        await e.create_bucket("bkt", OWNER, "us-east-1")
        segment = wrap_segment(e, GatedFile)
        assert isinstance(segment, GatedFile)
        try:
            segment.closed_gate = True
            writing = asyncio.create_task(put(e, "slow", b"pending"))
            while not segment.entered.is_set():
                await asyncio.sleep(0.001)
            # The record is being written: readers do not see the object yet...
            with pytest.raises(errors.NoSuchKey):
                await e.head_object("bkt", "slow")
            assert await keys(e) == []
            # ... but a conditional write checks against it, so exactly one If-None-Match wins.
            with pytest.raises(errors.PreconditionFailed):
                await put(e, "slow", b"other", if_none_match=True)
            segment.closed_gate = False
            segment.gate.set()
            await writing
            assert await read(e, "slow") == b"pending"
        finally:
            segment.closed_gate = False
            segment.gate.set()
            await e.close()

    asyncio.run(scenario())


def test_snapshot_and_cancelled_requests_keep_state_and_log_together(tmp_path: Path) -> None:
    """A write pending while the log rotates for a snapshot ends up in the snapshot or the segment
    after it; a write whose request is cancelled while its record is written is applied all the same."""

    async def first() -> None:
        e = persistent(tmp_path)
        await e.start()
        await e.create_bucket("bkt", OWNER, "us-east-1")
        segment = wrap_segment(e, GatedFile)
        assert isinstance(segment, GatedFile)
        try:
            segment.closed_gate = True
            pending = asyncio.create_task(put(e, "pending", b"p"))
            while not segment.entered.is_set():
                await asyncio.sleep(0.001)
            cancelled = asyncio.create_task(put(e, "cancelled", b"c"))
            snapshot = asyncio.create_task(e.snapshot())  # rotates behind both records
            await asyncio.sleep(0)
            cancelled.cancel()
            segment.closed_gate = False
            segment.gate.set()
            await pending
            assert await snapshot is not None
            with pytest.raises(asyncio.CancelledError):
                await cancelled
            while e.stats.objects < 2:
                await asyncio.sleep(0.001)
            assert await keys(e) == ["cancelled", "pending"]
        finally:
            segment.closed_gate = False
            segment.gate.set()
        crash(e)

    async def second() -> list[str]:
        e = persistent(tmp_path)
        await e.start()
        found = await keys(e)
        crash(e)
        return found

    asyncio.run(first())
    assert len(snapshots(tmp_path)) == 1
    assert asyncio.run(second()) == ["cancelled", "pending"]


def test_recovery_evictions_are_logged(tmp_path: Path) -> None:
    per_object = 1000 + OBJECT_OVERHEAD + 2 * len("k0")

    async def run(max_memory: int, write: bool) -> list[str]:
        e = persistent(tmp_path, max_memory=max_memory)
        await e.start()
        if write:
            await e.create_bucket("bkt", OWNER, "us-east-1")
            for i in range(4):
                await put(e, f"k{i}", bytes([i]) * 1000)
        found = await keys(e)
        crash(e)
        return found

    assert asyncio.run(run(1 << 30, True)) == ["k0", "k1", "k2", "k3"]
    # Restarted with less memory: recovery evicts the least recently used...
    assert asyncio.run(run(2 * per_object, False)) == ["k2", "k3"]
    # ... and after another crash, with room again, they stay evicted.
    assert asyncio.run(run(1 << 30, False)) == ["k2", "k3"]


def test_retried_complete_gets_the_same_answer_after_a_restart(tmp_path: Path) -> None:
    part1, part2 = os.urandom(MIN_PART_SIZE), os.urandom(1000)
    state: dict[str, Any] = {}

    async def first() -> None:
        e = persistent(tmp_path)
        await e.start()
        await e.create_bucket("bkt", OWNER, "us-east-1")
        for key in ("mp", "other"):
            upload = await e.create_multipart_upload("bkt", key, headers={})
            p1 = await e.upload_part("bkt", key, upload.upload_id, 1, chunks(part1))
            p2 = await e.upload_part("bkt", key, upload.upload_id, 2, chunks(part2))
            done = [CompletedPart(1, p1.etag), CompletedPart(2, p2.etag)]
            info = await e.complete_multipart_upload("bkt", key, upload.upload_id, done)
            state[key] = (upload.upload_id, done, info)
        crash(e)  # the answers are in the log only

    async def again(shutdown: bool) -> None:
        e = persistent(tmp_path)
        await e.start()
        try:
            upload_id, done, info = state["mp"]
            retried = await e.complete_multipart_upload("bkt", "mp", upload_id, done)
            assert (retried.etag, retried.size, retried.checksums) == (info.etag, info.size, info.checksums)
            assert e.stats.part_bytes == 0
        finally:
            if shutdown:
                await e.close()  # a shutdown snapshot: the next start reads the answers from it
            else:
                crash(e)

    async def overwritten() -> None:
        e = persistent(tmp_path)
        await e.start()
        try:
            upload_id, done, _info = state["other"]
            await put(e, "other", b"replaced")
            # The object is no longer the one that upload produced: the upload is simply gone.
            with pytest.raises(errors.NoSuchUpload):
                await e.complete_multipart_upload("bkt", "other", upload_id, done)
        finally:
            await e.close()

    asyncio.run(first())
    asyncio.run(again(shutdown=False))
    asyncio.run(again(shutdown=True))
    assert len(snapshots(tmp_path)) == 1
    asyncio.run(again(shutdown=False))
    asyncio.run(overwritten())


def test_persistence_files_are_private(tmp_path: Path) -> None:
    directory = tmp_path / "memory"
    directory.mkdir(mode=0o755)
    (directory / "wal-000000000000.log").write_bytes(b"")  # left by an older version, 0644
    previous = os.umask(0o022)
    try:

        async def scenario() -> None:
            e = persistent(directory)
            await e.start()
            await e.create_bucket("bkt", OWNER, "us-east-1")
            await put(e, "k", b"secret")
            await e.snapshot()
            await put(e, "k2", b"secret too")
            await e.close()

        asyncio.run(scenario())
    finally:
        os.umask(previous)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = [path for _seq, path in [*segments(directory), *snapshots(directory)]]
    assert len(files) >= 2
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in files} == {path.name: 0o600 for path in files}


@pytest.mark.server
def test_wal_file_size_limit_over_http(tmp_path: Path) -> None:
    """A real size limit (RLIMIT_FSIZE, as a full disk would): one PUT fails mid-record; once the
    limit is lifted, later writes are acknowledged; after kill -9 every one of them is there."""
    limit = 256 * KiB

    def limited() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # write() then fails with EFBIG instead of killing
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))

    args = ("--storage", "memory", "--memory-persistence", "true", "--snapshot-interval", "3600")
    server = ServerProcess(tmp_path / "data", *args, preexec_fn=limited).start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="fsize")
        s3.put_object(Bucket="fsize", Key="victim", Body=b"to be deleted")
        s3.put_object(Bucket="fsize", Key="before", Body=b"kept")
        with pytest.raises(ClientError) as caught:
            s3.put_object(Bucket="fsize", Key="failed", Body=os.urandom(limit + 10 * KiB))
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
        with pytest.raises(ClientError) as caught:
            s3.head_object(Bucket="fsize", Key="failed")
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        assert server.proc is not None
        resource.prlimit(server.proc.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        bodies = {f"after-{i}": os.urandom(50 * KiB + i) for i in range(5)}
        for key, body in bodies.items():
            s3.put_object(Bucket="fsize", Key=key, Body=body)
        s3.delete_object(Bucket="fsize", Key="victim")
        server.kill9()

        server.preexec_fn = None
        server.start()
        s3 = server.client()
        listed = [c["Key"] for c in s3.list_objects_v2(Bucket="fsize")["Contents"]]
        assert listed == ["after-0", "after-1", "after-2", "after-3", "after-4", "before"]
        for key, body in bodies.items():
            assert s3.get_object(Bucket="fsize", Key=key)["Body"].read() == body
    finally:
        server.stop()
