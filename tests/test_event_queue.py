"""The durable event queue (coffer/events/queue.py): entries survive a reopen until acknowledged, a torn
tail is cut, a segment held by a live owner is never adopted, files are private."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest

from coffer.events.queue import Delivery, EventQueue, decode_lines, encode_line, segment_paths


def entry(n: int, targets: int = 1) -> bytes:
    return encode_line(
        tuple((f"t{i}", f"c{i}") for i in range(targets)),
        "bkt",
        f"k{n}",
        json.dumps({"n": n}, separators=(",", ":")).encode(),
    )


def number(delivery: Delivery) -> int:
    return int(json.loads(delivery.record)["n"])


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
            owed.append(Delivery(segment, offset, 0, "t0", "c0", b""))
            if n < 5:
                owed.append(Delivery(segment, offset, 1, "t1", "c1", b""))
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
    assert [e["r"]["n"] for _, _, e in decode_lines(lines)] == [1, 2]
    assert [e["r"]["n"] for _, _, e in decode_lines(lines[:-3])] == [1]
    corrupt = lines.replace(b'"n":2', b'"n":3')
    assert [e["r"]["n"] for _, _, e in decode_lines(corrupt)] == [1]
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


def test_failed_write_starts_a_new_segment(tmp_path: Path) -> None:
    """A write that fails may leave part of a line: later lines go to a new segment, never behind it."""

    async def run() -> None:
        q = EventQueue(tmp_path, False)
        first, _ = await q.append(entry(1))
        q.owe(first, 1)
        real_fd = first.fd
        first.fd = os.open(os.devnull, os.O_RDONLY)  # writes to it fail (EBADF)
        with pytest.raises(OSError):
            await q.append(entry(2))
        os.close(first.fd)
        first.fd = real_fd
        second, offset = await q.append(entry(3))
        assert second is not first and offset == 0
        q.owe(second, 1)
        os.close(first.fd)  # "crash": both segments orphaned
        os.close(second.fd)
        os.close(first.ack_fd)
        os.close(second.ack_fd)
        assert sorted(number(d) for d in EventQueue(tmp_path, False).adopt_orphans()) == [1, 3]

    asyncio.run(run())
