"""Online compaction of the manifest journal (coffer/storage/disk/compaction.py): the journal stays
bounded under churn, and a rebuild from it (after compactions, or after a crash at any step of
one) reproduces the database exactly."""

from __future__ import annotations

import asyncio
import itertools
import logging
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from coffer.storage.disk import DiskEngine
from coffer.storage.disk.compaction import TEMP_SUFFIX
from coffer.storage.disk.journal import JOURNAL_NAME, SNAPSHOT, TRANSACTION, _frame, encode_change, scan_frames
from coffer.storage.disk.rebuild import DB_FILES, rebuild_index
from tests.disk_store import state
from tests.server_process import ServerProcess

KEYS = 20
BODY = 1000  # inline (below the threshold): the journal carries the bodies


def rows(database: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every journaled row, and the statistics the triggers derive from them."""
    conn = sqlite3.connect(database)
    try:
        return {
            table: sorted(conn.execute(f"SELECT * FROM {table}"), key=repr)
            for table in ("buckets", "objects", "object_parts", "bucket_stats")
        }
    finally:
        conn.close()


def rebuilt_rows(root: Path, where: Path, committed_only: bool = False) -> dict[str, list[tuple[Any, ...]]]:
    """The rows ``coffer rebuild-index`` makes from a copy of ``root``'s journal and blobs
    (``committed_only``: without the frames after the last one the database committed)."""
    shutil.copytree(root, where)
    if committed_only:
        conn = sqlite3.connect(where / "metadata.sqlite3")
        try:
            (committed,) = conn.execute("SELECT seq FROM journal_state WHERE id=1").fetchone()
        finally:
            conn.close()
        later = [frame for frame in scan_frames(where / JOURNAL_NAME).frames if frame.seq > committed]
        if later:
            with open(where / JOURNAL_NAME, "r+b") as journal:
                journal.truncate(later[0].offset)
    for name in DB_FILES:
        (where / name).unlink(missing_ok=True)
    rebuild_index(where)
    return rows(where / "metadata.sqlite3")


def _churn(engine: DiskEngine, rounds: int, sizes: list[int] | None = None) -> None:
    async def go() -> None:
        if not await engine.list_buckets():
            await engine.create_bucket("b", "owner", "us-east-1")
            await engine.create_bucket("v", "owner", "us-east-1")
            await engine.put_bucket_versioning("v", "Enabled")
        for r in range(rounds):
            key = f"k{r % KEYS}"
            await engine.put_object("b", key, _body(bytes([r % 256]) * BODY), headers={})
            if r % 7 == 0:
                await engine.put_object("v", key, _body(b"v%d" % r), headers={})
            if r % 11 == 0:
                await engine.delete_object("b", f"k{(r + 3) % KEYS}")
            if sizes is not None:
                sizes.append((engine.root / JOURNAL_NAME).stat().st_size)

    asyncio.run(go())


async def _one(data: bytes) -> Any:
    yield data


def _body(data: bytes) -> Any:
    return _one(data)


def _open(root: Path, floor: int = 0) -> DiskEngine:
    engine = DiskEngine(root, fsync=False, inline_threshold=4096, journal_compact_min_bytes=floor)
    asyncio.run(engine.start())
    return engine


def test_journal_stays_bounded_under_churn(tmp_path: Path) -> None:
    root = tmp_path / "data"
    engine = _open(root)
    sizes: list[int] = []
    try:
        _churn(engine, 3000, sizes)
        compactions = engine.meta.compactor.compactions  # type: ignore[attr-defined]
    finally:
        asyncio.run(engine.close())
    assert compactions >= 5
    assert rows(root / "metadata.sqlite3") == rebuilt_rows(root, tmp_path / "copy")
    assert not (root / (JOURNAL_NAME + TEMP_SUFFIX)).exists()  # renamed over the journal
    # A fresh snapshot of the final rows (the store rewrites a lost journal as one at open).
    (root / JOURNAL_NAME).unlink()
    asyncio.run(_open(root).close())
    live = (root / JOURNAL_NAME).stat().st_size
    print(f"journal: at most {max(sizes)} bytes, live {live}, {compactions} compactions")
    # Without compaction the journal would hold every append; with it, about twice a snapshot
    # plus what was appended while one was being built (more on a busy machine: a margin).
    appended = sum(max(0, after - before) for before, after in itertools.pairwise(sizes))
    assert max(sizes) < 8 * live < appended / 3


def test_floor_defers_compaction(tmp_path: Path) -> None:
    root = tmp_path / "data"
    engine = _open(root, floor=10 * 1024**2)
    try:
        _churn(engine, 300)
        assert engine.meta.compactor.compactions == 0  # type: ignore[attr-defined]
    finally:
        asyncio.run(engine.close())


def test_rebuild_after_compactions_and_reopen(tmp_path: Path) -> None:
    """Compacted journals keep working across restarts: the state's offsets are the file's."""
    root = tmp_path / "data"
    for _ in range(3):
        engine = _open(root)
        try:
            _churn(engine, 400)
        finally:
            asyncio.run(engine.close())
    journal = scan_frames(root / JOURNAL_NAME)
    assert journal.frames[1].kind == SNAPSHOT and journal.good_end == journal.size
    assert rows(root / "metadata.sqlite3") == rebuilt_rows(root, tmp_path / "copy")


def test_readers_and_writers_meanwhile(tmp_path: Path) -> None:
    """Writes from other threads during compactions: every acknowledged one is in the journal."""
    root = tmp_path / "data"
    engine = _open(root)
    try:
        _churn(engine, 50)
        meta = engine.meta

        def tagger() -> None:
            for i in range(300):
                meta.write_blocking(
                    lambda conn, i=i: conn.execute("UPDATE buckets SET config=? WHERE name='b'", (f'{{"n": {i}}}',))
                )

        thread = threading.Thread(target=tagger)
        thread.start()
        _churn(engine, 1000)
        thread.join()
        assert engine.meta.compactor.compactions > 0  # type: ignore[attr-defined]
    finally:
        asyncio.run(engine.close())
    assert rows(root / "metadata.sqlite3") == rebuilt_rows(root, tmp_path / "copy")


# ---------------------------------------------------------------------- crashes
_CRASHER = textwrap.dedent(
    """
    import asyncio, os, sys
    sys.path.insert(0, {tests!r})
    from coffer.storage.disk import DiskEngine
    from test_journal_compaction import _churn

    engine = DiskEngine({root!r}, fsync=False, inline_threshold=4096, journal_compact_min_bytes=0)
    asyncio.run(engine.start())
    engine.meta.compactor.step = lambda name: os._exit(9) if name == {step!r} else None
    _churn(engine, 5000)
    """
)


@pytest.mark.parametrize("step", ["built", "copied", "renamed"])
def test_crash_during_compaction(tmp_path: Path, step: str) -> None:
    """A process killed at each step of a compaction leaves a journal that rebuilds the database,
    and a store that opens, keeps journaling and compacting."""
    root = tmp_path / "data"
    engine = _open(root)
    try:
        _churn(engine, 30)  # buckets made; the crash comes during the child's churn
    finally:
        asyncio.run(engine.close())
    script = _CRASHER.format(tests=str(Path(__file__).parent), root=str(root), step=step)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, timeout=120, cwd=Path(__file__).parent.parent
    )
    assert done.returncode == 9, done.stderr.decode()[-2000:]
    # The kill can land between a batch's journal append and its COMMIT: the journal then ends
    # with a frame the database never committed (the store cuts it at its next open; a rebuild
    # from the journal alone brings back that never-acknowledged batch). Up to the database's
    # recorded end, the journal rebuilds it exactly.
    assert rows(root / "metadata.sqlite3") == rebuilt_rows(root, tmp_path / "crashed", committed_only=True)
    engine = _open(root)
    try:
        _churn(engine, 300)
        assert engine.meta.compactor.compactions > 0  # type: ignore[attr-defined]
    finally:
        asyncio.run(engine.close())
    assert rows(root / "metadata.sqlite3") == rebuilt_rows(root, tmp_path / "reopened")


# ---------------------------------------------------------------------- server
def _put_many(server: ServerProcess, worker: int, rounds: int) -> None:
    s3 = server.client()
    for r in range(rounds):
        s3.put_object(Bucket="churn", Key=f"k{r % 10}", Body=bytes([worker]) * 2000)


def _put_until_gone(server: ServerProcess) -> None:
    s3 = server.client()
    try:
        for r in range(100_000):
            s3.put_object(Bucket="churn", Key=f"k{r % 10}", Body=b"x" * 2000)
    except Exception:
        pass  # the server was killed


@pytest.mark.server
def test_workers_share_a_bounded_journal(tmp_path: Path) -> None:
    """Two worker processes append to and compact one journal; kill -9 under churn, then rebuild."""
    root = tmp_path / "data"
    server = ServerProcess(root, "--workers", "2", "--fsync", "never", "--journal-compact-min-bytes", "0")
    server.start()
    try:
        server.client().create_bucket(Bucket="churn")
        threads = [threading.Thread(target=_put_many, args=(server, w, 300)) for w in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        before = state(server.client())
        size = (root / JOURNAL_NAME).stat().st_size
    finally:
        server.stop()
    assert size < 900 * 2000 / 4  # without compaction: every PUT's body
    assert rows(root / "metadata.sqlite3") == rebuilt_rows(root, tmp_path / "copy")
    server.start()
    try:
        assert state(server.client()) == before
    finally:
        server.stop()


@pytest.mark.server
def test_kill9_while_compacting(tmp_path: Path) -> None:
    root = tmp_path / "data"
    server = ServerProcess(root, "--fsync", "never", "--journal-compact-min-bytes", "0").start()
    try:
        server.client().create_bucket(Bucket="churn")
        _put_many(server, 1, 400)  # compacting every few dozen PUTs
        worker = threading.Thread(target=_put_until_gone, args=(server,), daemon=True)
        worker.start()
        worker.join(2)
    finally:
        server.kill9()
    worker.join()  # its requests now fail: the server is gone
    assert scan_frames(root / JOURNAL_NAME).frames[0].seq > 1  # a compaction's snapshot (at open: seq 1)
    assert rows(root / "metadata.sqlite3") == rebuilt_rows(root, tmp_path / "copy")


# ---------------------------------------------------------------------- frames past the end
def _state_seq(root: Path) -> int:
    conn = sqlite3.connect(root / "metadata.sqlite3")
    try:
        return int(conn.execute("SELECT seq FROM journal_state").fetchone()[0])
    finally:
        conn.close()


def _append_frame(root: Path, seq: int) -> bytes:
    frame = _frame(TRANSACTION, seq, encode_change('["buckets","D",["b"]]', ())[0] + b'["buckets","D",["b"]]')
    with open(root / JOURNAL_NAME, "ab") as f:
        f.write(frame)
    return frame


def test_uncommitted_frame_is_cut_off_while_running(tmp_path: Path) -> None:
    """A worker killed between append and COMMIT: the next append (any process) cuts its frame."""
    root = tmp_path / "data"
    engine = _open(root, floor=10 * 1024**2)
    try:
        _churn(engine, 10)
        frame = _append_frame(root, _state_seq(root) + 1)
        _churn(engine, 5)
    finally:
        asyncio.run(engine.close())
    assert frame not in (root / JOURNAL_NAME).read_bytes()
    assert rows(root / "metadata.sqlite3") == rebuilt_rows(root, tmp_path / "copy")


def test_offsets_out_of_step_are_repaired_by_compaction(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A frame past the recorded end that carries the recorded number is not an uncommitted one:
    it is never cut, and the next compaction rewrites the journal from the database."""
    # The logger's own level: an earlier in-process test may have left the root logger above WARNING.
    caplog.set_level(logging.WARNING, logger="coffer.journal")
    root = tmp_path / "data"
    # No compaction until the frame is in: one finishing meanwhile would rename a snapshot over
    # the journal, and the frame would go to the replaced file (this test failed that way once).
    engine = _open(root, floor=10 * 1024**2)
    try:
        _churn(engine, 10)
        frame = _append_frame(root, _state_seq(root))
        journal = engine.meta.journal  # type: ignore[attr-defined]
        journal.compact_min_bytes = journal.compact_at = 0
        _churn(engine, 300)  # compactions: the first finds the offsets out of step
        assert engine.meta.compactor.compactions > 0  # type: ignore[attr-defined]
    finally:
        asyncio.run(engine.close())
    assert "out of step" in caplog.text
    assert frame not in (root / JOURNAL_NAME).read_bytes()  # rewritten, not cut
    assert rows(root / "metadata.sqlite3") == rebuilt_rows(root, tmp_path / "copy")
