"""Events queued where a write commits: ``put_object``'s ``committed`` runs once the write committed and
before it returns (the disk engine: in its metadata writer thread), and ``Notifier.emit_committed``
queues the event from that thread (a live listener gets it through the loop). With fsync on it
declines, and the handler emits on the loop behind the queue's group commit (coffer/server/notify.py)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from coffer.events.notifier import Notifier
from coffer.events.queue import decode_lines, segment_paths
from coffer.events.rules import Rule, Rules
from coffer.events.targets import parse_targets
from coffer.storage.api import CompletedPart, ObjectInfo
from coffer.storage.disk import DiskEngine
from coffer.storage.memory import MemoryEngine

RULES = Rules((Rule("all", "Queue", "arn:coffer:sqs:us-east-1::hook", "hook", ("s3:ObjectCreated:*",)),))


async def _body() -> AsyncIterator[bytes]:
    yield b"hello"


def _engine(kind: str, tmp_path: Path) -> DiskEngine | MemoryEngine:
    return DiskEngine(tmp_path / "d", fsync=False) if kind == "disk" else MemoryEngine(max_memory=1 << 20)


@pytest.mark.parametrize("kind", ["disk", "memory"])
def test_committed_runs_before_put_object_returns(tmp_path: Path, kind: str) -> None:
    async def run() -> None:
        engine = _engine(kind, tmp_path)
        await engine.start()
        try:
            await engine.create_bucket("b", "owner", "us-east-1")
            seen: list[tuple[ObjectInfo, int]] = []
            info = await engine.put_object(
                "b", "k", _body(), headers={}, committed=lambda i: seen.append((i, threading.get_ident()))
            )
            assert len(seen) == 1 and seen[0][0] is info and info.size == 5 and info.etag
            on_loop = seen[0][1] == threading.get_ident()
            assert on_loop == (kind == "memory")  # the disk engine: its metadata writer thread
            # A write that fails never reports a commit.
            with pytest.raises(Exception):  # noqa: B017 - PreconditionFailed, as the engine raises it
                await engine.put_object(
                    "b", "k", _body(), headers={}, if_none_match=True, committed=lambda i: seen.append((i, 0))
                )
            assert len(seen) == 1
        finally:
            await engine.close()

    asyncio.run(run())


@pytest.mark.parametrize("kind", ["disk", "memory"])
def test_committed_runs_once_for_a_copy_and_a_completed_upload(tmp_path: Path, kind: str) -> None:
    """CopyObject and CompleteMultipartUpload queue their ObjectCreated events where they commit too."""

    async def run() -> None:
        engine = _engine(kind, tmp_path)
        await engine.start()
        try:
            await engine.create_bucket("b", "owner", "us-east-1")
            await engine.put_object("b", "src", _body(), headers={})
            seen: list[tuple[ObjectInfo, int]] = []

            def committed(info: ObjectInfo) -> None:
                seen.append((info, threading.get_ident()))

            copied = await engine.copy_object("b", "src", "b", "dst", headers=None, committed=committed)
            assert [i for i, _ in seen] == [copied] and copied.key == "dst" and copied.size == 5
            # A copy that fails never reports a commit.
            with pytest.raises(Exception):  # noqa: B017 - NoSuchKey, as the engine raises it
                await engine.copy_object("b", "missing", "b", "dst2", headers=None, committed=committed)
            assert len(seen) == 1

            upload = await engine.create_multipart_upload("b", "mp", headers={})
            part = await engine.upload_part("b", "mp", upload.upload_id, 1, _body())
            parts = [CompletedPart(1, part.etag)]
            completed = await engine.complete_multipart_upload("b", "mp", upload.upload_id, parts, committed=committed)
            assert [i for i, _ in seen][1:] == [completed] and completed.key == "mp"
            # Each successful Complete is an event, a retry answered the same included (as before).
            again = await engine.complete_multipart_upload("b", "mp", upload.upload_id, parts, committed=committed)
            assert len(seen) == 3 and seen[2][0].etag == again.etag == completed.etag
            with pytest.raises(Exception):  # noqa: B017 - NoSuchUpload
                await engine.complete_multipart_upload("b", "mp", "no-such-upload", parts, committed=committed)
            assert len(seen) == 3
            on_loop = {thread == threading.get_ident() for _, thread in seen}
            assert on_loop == {kind == "memory"}  # the disk engine: its metadata writer thread
        finally:
            await engine.close()

    asyncio.run(run())


def test_emit_committed_from_another_thread(tmp_path: Path) -> None:
    async def run() -> None:
        notifier = Notifier(parse_targets({"hook": {"url": "http://127.0.0.1:9/"}}), tmp_path / "events", fsync=False)
        await notifier.start()
        try:
            listener = notifier.stream.subscribe("b", "")
            facts = ("s3:ObjectCreated:Put", "b", "owner", "logs/k", 5, "abc", "v1", "me", "::1", "R1")
            queued = await asyncio.to_thread(notifier.emit_committed, RULES, facts)
            assert queued
            event = await asyncio.wait_for(listener.events.get(), 5)  # published through the loop
            assert (event.key, event.size, event.version_id, event.request_id) == ("logs/k", 5, "v1", "R1")
            [segment] = segment_paths(tmp_path / "events")
            [(_, _, destinations, written)] = list(decode_lines(segment.read_bytes()))
            assert destinations == (("hook", "all"),)
            assert (written.key, written.etag, written.time_ns, written.tag) == (
                "logs/k",
                "abc",
                event.time_ns,
                event.tag,
            )
        finally:
            await notifier.close()

    asyncio.run(run())


def test_emit_committed_declines_with_fsync(tmp_path: Path) -> None:
    """With fsync on an event waits for the queue's msync on the loop: the writer thread leaves it to the
    handler (which emits after the write)."""

    async def run() -> None:
        notifier = Notifier(parse_targets({"hook": {"url": "http://127.0.0.1:9/"}}), tmp_path / "events", fsync=True)
        await notifier.start()
        try:
            facts = ("s3:ObjectCreated:Put", "b", "owner", "k", 5, "abc", None, "me", "::1", "R1")
            assert not await asyncio.to_thread(notifier.emit_committed, RULES, facts)
            assert segment_paths(tmp_path / "events") == []
        finally:
            await notifier.close()

    asyncio.run(run())
