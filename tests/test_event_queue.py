"""The durable event queue (coffer/events/queue.py): entries survive a reopen until acknowledged, a torn
tail is cut, a segment held by a live owner is never adopted, files are private."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from coffer.events.queue import SEGMENT_BYTES, Delivery, EventQueue, decode_lines, encode_line, segment_paths
from coffer.events.records import ObjectEvent, stamp


def entry(n: int, targets: int = 1, key: str = "") -> bytes:
    event = stamp(ObjectEvent("s3:ObjectCreated:Put", "bkt", key or f"k{n}", size=n))
    return encode_line(tuple((f"t{i}", f"c{i}") for i in range(targets)), event)


def number(delivery: Delivery) -> int:
    assert delivery.event.size is not None
    return delivery.event.size


@pytest.mark.parametrize("fsync", [True, False])
def test_unacknowledged_entries_survive_reopen(tmp_path: Path, fsync: bool) -> None:
    async def write() -> None:
        q = EventQueue(tmp_path, fsync)
        placed = await asyncio.gather(*(q.append(entry(n, 2)) for n in range(10)))
        for segment, _ in placed:
            q.owe(segment, 2)
        # Acknowledge both deliveries of 0..4 and the first target of 5..9; then "crash" (no close).
        owed = []
        for n, (segment, offset) in enumerate(placed):
            event = ObjectEvent("", "", "")
            owed.append(Delivery(segment, offset, 0, "t0", "c0", event))
            if n < 5:
                owed.append(Delivery(segment, offset, 1, "t1", "c1", event))
        q.ack(owed)
        os.close(q.active.fd)  # type: ignore[union-attr]  # the lock goes with the process
        os.close(q.active.ack_fd)  # type: ignore[union-attr]

    asyncio.run(write())
    again = EventQueue(tmp_path, fsync)
    owed = again.adopt_orphans()
    assert sorted((number(d), d.target) for d in owed) == [(n, "t1") for n in range(5, 10)]
    again.ack(owed)
    assert segment_paths(tmp_path) == []  # fully delivered: deleted
    assert EventQueue(tmp_path, fsync).adopt_orphans() == []


def test_live_owner_is_never_adopted(tmp_path: Path) -> None:
    async def run() -> None:
        owner = EventQueue(tmp_path, False)
        segment, _ = await owner.append(entry(1))
        owner.owe(segment, 1)
        other = EventQueue(tmp_path, False)  # flock is per open file: a second open conflicts too
        assert other.adopt_orphans() == []
        owner.close()  # releases the lock with one delivery still owed
        adopted = other.adopt_orphans()
        assert [number(d) for d in adopted] == [1]
        assert other.adopt_orphans() == []  # now held by ``other``

    asyncio.run(run())


def test_torn_tail_is_ignored(tmp_path: Path) -> None:
    lines = entry(1) + entry(2)
    assert [e.size for _, _, _, e in decode_lines(lines)] == [1, 2]
    assert [e.size for _, _, _, e in decode_lines(lines[:-3])] == [1]
    corrupt = lines.replace(b'"k2"', b'"k3"')
    assert [e.size for _, _, _, e in decode_lines(corrupt)] == [1]
    path = tmp_path / "seg-1-abc.log"
    path.write_bytes(lines + b"0000")
    (tmp_path / "seg-1-abc.ack").write_bytes(b"")
    owed = EventQueue(tmp_path, False).adopt_orphans()
    assert [number(d) for d in owed] == [1, 2]


def test_files_are_private(tmp_path: Path) -> None:
    directory = tmp_path / "events"

    async def run() -> None:
        q = EventQueue(directory, True)
        await q.append(entry(1))
        q.owe(q.active, 1)  # type: ignore[arg-type]
        q.close()

    old = os.umask(0)
    try:
        asyncio.run(run())
    finally:
        os.umask(old)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_memory_mode_keeps_nothing_on_disk(tmp_path: Path) -> None:
    async def run() -> None:
        q = EventQueue(None, True)
        _, first = await q.append(entry(1))
        _, second = await q.append(entry(2))
        assert second > first
        assert q.adopt_orphans() == []

    asyncio.run(run())


def test_full_segment_rotates(tmp_path: Path) -> None:
    """A segment is allocated whole; lines that do not fit go to a new one, and both replay."""

    async def run() -> None:
        q = EventQueue(tmp_path, True)
        big = entry(1, key="x" * 500_000)
        placed = []
        for _ in range(20):  # 10 MB: more than one segment
            segment, offset = await q.append(big)
            q.owe(segment, 1)
            placed.append((segment, offset))
        segments = {id(segment): segment for segment, _ in placed}
        assert len(segments) == 2
        assert all(s.path.stat().st_size == SEGMENT_BYTES for s in segments.values())
        for segment in segments.values():  # "crash": what the process held goes
            if segment.map is not None:
                segment.map.close()  # it holds a duplicate of the (locked) descriptor
            os.close(segment.fd)
            os.close(segment.ack_fd)
        owed = EventQueue(tmp_path, True).adopt_orphans()
        assert len(owed) == 20 and all(number(d) == 1 for d in owed)

    asyncio.run(run())
