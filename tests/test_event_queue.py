"""The durable event queue: workers write segments (coffer/events/queue.py), the delivery process
reads them (coffer/events/reader.py). Entries survive a restart of either until acknowledged, a torn
tail is cut, a segment is deleted only once its writer let go and all it holds is delivered, files
are private."""

from __future__ import annotations

import asyncio
import os
import stat
import zlib
from pathlib import Path

import pytest

from coffer.events.delivery import DeadLetters, Dispatcher, NoAcks
from coffer.events.queue import SEGMENT_BYTES, EventQueue, decode_lines, event_line, segment_paths
from coffer.events.reader import Delivery, SegmentReader
from coffer.events.records import ObjectEvent, event_record, stamp
from coffer.events.targets import parse_targets


def entry(n: int, targets: int = 1, key: str = "") -> bytes:
    event = stamp(ObjectEvent("s3:ObjectCreated:Put", "bkt", key or f"k{n}", size=n))
    return event_line(tuple((f"t{i}", f"c{i}") for i in range(targets)), event)


def number(delivery: Delivery) -> int:
    assert delivery.event.size is not None
    return delivery.event.size


def crash(queue: EventQueue) -> None:
    """What the kernel does to a process killed with everything it held (the lock goes with it)."""
    segment = queue.active
    assert segment is not None and segment.map is not None
    segment.map.close()
    os.close(segment.fd)
    queue.active = None


@pytest.mark.parametrize("fsync", [True, False])
def test_unacknowledged_entries_survive_a_restart(tmp_path: Path, fsync: bool) -> None:
    async def write() -> EventQueue:
        q = EventQueue(tmp_path, fsync)
        await asyncio.gather(*(q.append(entry(n, 2)) for n in range(10)))
        return q

    writer = asyncio.run(write())
    reader = SegmentReader(tmp_path)
    owed = reader.poll()
    assert sorted((number(d), d.target) for d in owed) == [(n, t) for n in range(10) for t in ("t0", "t1")]
    assert reader.poll() == []  # handed out once
    # Both deliveries of 0..4 and the first of 5..9 done; then the delivery process dies.
    reader.ack([d for d in owed if number(d) < 5 or d.target == "t0"])
    reader.close()
    again = SegmentReader(tmp_path)
    owed = again.poll()
    assert sorted((number(d), d.target) for d in owed) == [(n, "t1") for n in range(5, 10)]
    again.ack(owed)
    assert len(segment_paths(tmp_path)) == 1  # all delivered, but its writer still holds it
    crash(writer)
    assert again.poll() == []
    assert segment_paths(tmp_path) == [] and list(tmp_path.glob("*.ack")) == []  # now deleted
    assert SegmentReader(tmp_path).poll() == []


def test_lines_written_later_are_read_as_they_come(tmp_path: Path) -> None:
    async def run() -> None:
        q = EventQueue(tmp_path, False)
        reader = SegmentReader(tmp_path)
        await q.append(entry(1))
        assert [number(d) for d in reader.poll()] == [1]
        await q.append(entry(2))
        await q.append(entry(3))
        owed = reader.poll()
        assert [number(d) for d in owed] == [2, 3]
        reader.ack(owed)
        q.close()  # a clean shutdown lets go of the segment: read to its end, deleted once delivered
        assert reader.poll() == [] and len(segment_paths(tmp_path)) == 1  # 1 is not acknowledged
        reader.close()  # the delivery process stops; the next one delivers 1 only
        last = SegmentReader(tmp_path)
        owed = last.poll()
        assert [number(d) for d in owed] == [1]
        last.ack(owed)
        assert last.poll() == [] and segment_paths(tmp_path) == []

    asyncio.run(run())


def test_reading_stops_at_the_limit_and_resumes(tmp_path: Path) -> None:
    """Back-pressure: a poll hands out at most ``max_lines`` entries; the rest wait on disk and come
    with later polls, none twice, and deliveries an earlier delivery process acknowledged beyond the
    limit are still skipped."""

    async def write() -> EventQueue:
        q = EventQueue(tmp_path, False)
        for n in range(10):
            q.put(entry(n, 2))
        return q

    writer = asyncio.run(write())
    first = SegmentReader(tmp_path)
    owed = first.poll()
    first.ack([d for d in owed if number(d) >= 6])  # acknowledged, then this process dies
    first.close()
    reader = SegmentReader(tmp_path)
    assert reader.poll(0) == []
    got = [(number(d), d.target) for d in reader.poll(3)]
    assert got == [(n, t) for n in range(3) for t in ("t0", "t1")]
    got += [(number(d), d.target) for d in reader.poll(5)]  # 3..7: 6 and 7 were delivered
    got += [(number(d), d.target) for d in reader.poll(100)]
    assert got == [(n, t) for n in range(6) for t in ("t0", "t1")]
    assert reader.poll() == []
    crash(writer)
    reader.close()


def test_dispatcher_room_is_the_roomiest_targets(tmp_path: Path) -> None:
    """Reading stops only once every target is as far behind as its queue_limit: one stuck target does
    not hold back the others."""
    targets = parse_targets(
        {"a": {"url": "http://127.0.0.1:9/", "queue_limit": 5}, "b": {"url": "http://127.0.0.1:9/"}}
    )
    dispatcher = Dispatcher(targets, NoAcks(), DeadLetters(None, "us-east-1"), "us-east-1", None)
    assert dispatcher.room() == 10000  # b's default limit
    event = stamp(ObjectEvent("s3:ObjectCreated:Put", "bkt", "k"))
    for name, count in (("a", 5), ("b", 9998)):
        for _ in range(count):
            dispatcher.workers[name].pending.append((Delivery(None, 0, 0, name, "c", event), 0))
    assert dispatcher.room() == 2
    dispatcher.workers["b"].pending.extend(list(dispatcher.workers["b"].pending)[:2])
    assert dispatcher.room() == 0


def test_torn_tail_is_ignored(tmp_path: Path) -> None:
    lines = entry(1) + entry(2)
    assert [e.size for _, _, _, e in decode_lines(lines)] == [1, 2]
    assert [e.size for _, _, _, e in decode_lines(lines[:-3])] == [1]
    corrupt = lines.replace(b'"k2"', b'"k3"')
    assert [e.size for _, _, _, e in decode_lines(corrupt)] == [1]
    path = tmp_path / "seg-1-abc.log"
    path.write_bytes(lines[:-3] + b"\0" * 100)  # a process died writing its second line
    owed = SegmentReader(tmp_path).poll()
    assert [number(d) for d in owed] == [1]


def test_files_are_private(tmp_path: Path) -> None:
    directory = tmp_path / "events"

    async def run() -> None:
        q = EventQueue(directory, True)
        await q.append(entry(1))
        SegmentReader(directory).poll()  # makes the ack file
        q.close()

    old = os.umask(0)
    try:
        asyncio.run(run())
    finally:
        os.umask(old)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert {p.suffix for p in directory.iterdir()} == {".log", ".ack"}
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_full_segment_rotates(tmp_path: Path) -> None:
    """A segment is allocated whole; lines that do not fit go to a new one and the writer lets go of the
    full one, which is deleted once delivered while the writer goes on with the new one."""

    async def run() -> None:
        q = EventQueue(tmp_path, True)
        big = entry(1, key="x" * 500_000)
        reader = SegmentReader(tmp_path)
        for n in range(20):  # 10 MB: more than one segment
            await q.append(big)
            if n == 10 and q._next is not None:
                q._next.result()  # made ahead in a thread (a slow machine: before the first is full)
        paths = segment_paths(tmp_path)
        assert len(paths) == 2 and all(p.stat().st_size == SEGMENT_BYTES for p in paths)
        owed = reader.poll()
        assert len(owed) == 20 and all(number(d) == 1 for d in owed)
        reader.ack(owed)
        assert reader.poll() == []
        assert segment_paths(tmp_path) == [q.active.path]  # type: ignore[union-attr]
        q.close()

    asyncio.run(run())


def _resident_bytes(path: Path) -> int:
    """How much of this process's mapping of ``path`` is in memory (/proc/self/smaps ``Rss``)."""
    lines = Path("/proc/self/smaps").read_text().splitlines()
    for i, line in enumerate(lines):
        if line.endswith(str(path)):
            for field in lines[i + 1 :]:
                if field.startswith("Rss:"):
                    return int(field.split()[1]) * 1024
    raise AssertionError(f"{path} is not mapped")


def test_next_segment_is_made_ahead_with_its_pages_in(tmp_path: Path) -> None:
    """Half way through a segment the next one is made in a thread, its pages faulted in writable, so a
    busy queue's requests neither wait for a segment to be made nor take a page fault per page they
    write; it takes over when the first is full. A queue closed before needing it lets go of it, and
    the delivery process deletes it (finished, nothing in it)."""

    async def run() -> None:
        q = EventQueue(tmp_path, False)
        line = entry(1, key="x" * 100_000)
        while q._next is None:
            q.put(line)
        first = q.active
        made = q._next.result()
        assert made.path.exists() and made.path != first.path  # type: ignore[union-attr]
        assert _resident_bytes(made.path) == SEGMENT_BYTES  # every page in before a line is written
        while q.active is first:
            q.put(line)
        assert q.active is made and q._next is None
        q.put(line)
        # Another segment is made ahead once this one is half full, and the queue closes without it.
        while q._next is None:
            q.put(line)
        spare = q._next.result()
        q.close()
        reader = SegmentReader(tmp_path)
        owed = reader.poll()
        reader.ack(owed)
        reader.poll()  # the writer let go of every segment: all delivered, all deleted
        assert segment_paths(tmp_path) == [] and not spare.path.exists()
        assert len(owed) > SEGMENT_BYTES // len(line)

    asyncio.run(run())


def test_lines_of_the_record_format_are_still_delivered(tmp_path: Path) -> None:
    """A segment an older server left undelivered (lines holding the record itself, before they held
    facts) is delivered after the upgrade, with the same record."""
    event = stamp(ObjectEvent("s3:ObjectCreated:Put", "bkt", "a b/ü", 5, "abc", "v1", "me", "::1", "R", "owner"))
    record = event_record(event, "us-east-1", "")
    body = b'{"t":[["hook","r1"],["other","r2"]],"b":"bkt","k":"a b/\\u00fc","r":' + record + b"}"
    (tmp_path / "seg-1-old.log").write_bytes(b"%08x %s\n" % (zlib.crc32(body), body) + b"\0" * 64)
    (tmp_path / "seg-1-old.ack").write_bytes(b"0 1\n")  # "other" was delivered
    [owed] = SegmentReader(tmp_path).poll()
    assert (owed.target, owed.configuration_id) == ("hook", "r1")
    assert event_record(owed.event, "us-east-1", "r1") == event_record(event, "us-east-1", "r1")
