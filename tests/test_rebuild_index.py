"""`coffer rebuild-index`: metadata.sqlite3 recreated from the manifest journal and the blob files.

Server tests build a store through a real server (tests/disk_store.py), lose the database,
rebuild it offline and compare everything S3 shows; engine tests cover how the journal and
the database are kept in step (frames of uncommitted batches cut off, a lost journal rewritten
as a snapshot, old databases migrated).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from coffer.cli import main
from coffer.storage.disk import DiskEngine
from coffer.storage.disk.journal import JOURNAL_NAME, MAGIC, TRANSACTION, JournalOrphaned, _frame, scan_frames
from coffer.storage.disk.rebuild import DB_FILES, RebuildError, rebuild_index
from tests.disk_store import PLAIN, populate, state
from tests.server_process import ServerProcess


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, object]]]:
    """A populated store (server stopped) and the state S3 showed of it."""
    server = ServerProcess(tmp_path_factory.mktemp("rebuild") / "data", "--fsync", "never").start()
    try:
        populate(server.client())
        before = state(server.client())
    finally:
        server.stop()
    yield server, before


def _rebuild(data_dir: Path, *extra: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["rebuild-index", "--data-dir", str(data_dir), *extra])
    return result.exit_code, result.output


@pytest.mark.server
def test_rebuild_after_losing_the_database(built: tuple[ServerProcess, dict[str, object]]) -> None:
    server, before = built
    plain, versioned = before[PLAIN], before["versioned"]
    assert len(plain["objects"]) == 9 and len(versioned["objects"]) == 3 and len(versioned["markers"]) == 1  # type: ignore[index]
    code, output = _rebuild(server.data_dir)
    assert code == 1 and "exists; pass --force" in output  # never over an existing database
    for name in DB_FILES:
        (server.data_dir / name).unlink(missing_ok=True)
    code, output = _rebuild(server.data_dir)
    assert code == 0, output
    assert "0 missing blob files" in output
    server.start()
    try:
        assert state(server.client()) == before
        # The rebuilt store keeps working, and keeps journaling: a second rebuild sees the new write.
        server.client().put_object(Bucket=PLAIN, Key="after", Body=b"after rebuild")
        again = state(server.client())
        code, output = _rebuild(server.data_dir, "--force")
        assert code != 0 and "in use by another coffer server" in output
    finally:
        server.stop()
    code, output = _rebuild(server.data_dir, "--force")
    assert code == 0, output
    assert "moved aside: metadata.sqlite3.before-rebuild-" in output
    assert list(server.data_dir.glob("metadata.sqlite3.before-rebuild-*"))  # never deleted
    server.start()
    try:
        assert state(server.client()) == again
    finally:
        server.stop()


# ---------------------------------------------------------------------- engine level
def _fill(root: Path, keys: range) -> None:
    async def go() -> None:
        engine = DiskEngine(root, fsync=False, inline_threshold=16)
        await engine.start()
        try:
            if not (await engine.list_buckets()):
                await engine.create_bucket("b", "owner", "us-east-1")
            for i in keys:
                await engine.put_object("b", f"k{i}", _body(i), headers={})
        finally:
            await engine.close()

    asyncio.run(go())


async def _chunks(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _body(i: int) -> AsyncIterator[bytes]:
    return _chunks(f"body {i} ".encode() * (i + 1))


def _keys(root: Path) -> list[str]:
    conn = sqlite3.connect(root / "metadata.sqlite3")
    try:
        return sorted(bytes(r[0]).decode() for r in conn.execute("SELECT key FROM objects"))
    finally:
        conn.close()


def _lose_database(root: Path) -> None:
    for name in DB_FILES:
        (root / name).unlink(missing_ok=True)


def test_uncommitted_frame_is_cut_off_at_open(tmp_path: Path) -> None:
    _fill(tmp_path, range(3))
    journal = tmp_path / JOURNAL_NAME
    size = journal.stat().st_size
    # A batch appended but never committed (the process died before COMMIT).
    with open(journal, "ab") as f:
        f.write(_frame(TRANSACTION, 10**6, b'[["buckets","D",["b"]]]'))
    _fill(tmp_path, range(3, 4))
    frames = scan_frames(journal).frames
    assert all(frame.seq != 10**6 for frame in frames) and frames[-1].end > size
    _lose_database(tmp_path)
    rebuild_index(tmp_path)
    assert _keys(tmp_path) == [f"k{i}" for i in range(4)]


def test_lost_journal_is_rewritten_from_the_database(tmp_path: Path) -> None:
    _fill(tmp_path, range(3))
    (tmp_path / JOURNAL_NAME).unlink()  # e.g. restored from a backup without it
    _fill(tmp_path, range(3, 5))
    assert scan_frames(tmp_path / JOURNAL_NAME).frames[0].kind == b"C"[0]
    _lose_database(tmp_path)
    rebuild_index(tmp_path)
    assert _keys(tmp_path) == [f"k{i}" for i in range(5)]


def test_schema_6_database_gets_a_journal(tmp_path: Path) -> None:
    _fill(tmp_path, range(2))
    conn = sqlite3.connect(tmp_path / "metadata.sqlite3")
    conn.execute("DROP TABLE journal_state")
    conn.execute("PRAGMA user_version=6")
    conn.commit()
    conn.close()
    (tmp_path / JOURNAL_NAME).unlink()
    _fill(tmp_path, range(2, 3))  # opening migrates to 7 and snapshots the rows already there
    conn = sqlite3.connect(tmp_path / "metadata.sqlite3")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 7
    conn.close()
    _lose_database(tmp_path)
    rebuild_index(tmp_path)
    assert _keys(tmp_path) == ["k0", "k1", "k2"]


def test_torn_tail_is_reported_and_skipped(tmp_path: Path) -> None:
    _fill(tmp_path, range(2))
    with open(tmp_path / JOURNAL_NAME, "ab") as f:
        f.write(MAGIC + b"\x54garbage")
    _lose_database(tmp_path)
    report = rebuild_index(tmp_path)
    assert report.unreadable_tail == 12 and _keys(tmp_path) == ["k0", "k1"]


def test_store_does_not_open_over_a_lost_database(tmp_path: Path) -> None:
    """Starting on a lost database must not replace the journal with an empty snapshot."""
    _fill(tmp_path, range(2))
    _lose_database(tmp_path)
    journal = (tmp_path / JOURNAL_NAME).read_bytes()
    with pytest.raises(JournalOrphaned, match="rebuild-index"):
        _fill(tmp_path, range(0))
    assert (tmp_path / JOURNAL_NAME).read_bytes() == journal
    _lose_database(tmp_path)
    rebuild_index(tmp_path)
    _fill(tmp_path, range(2, 3))  # opens: the journal becomes a snapshot of the rebuilt rows
    assert scan_frames(tmp_path / JOURNAL_NAME).frames[0].kind == b"C"[0]
    _lose_database(tmp_path)
    rebuild_index(tmp_path)
    assert _keys(tmp_path) == ["k0", "k1", "k2"]


def test_refuses_without_a_journal(tmp_path: Path) -> None:
    with pytest.raises(RebuildError, match="nothing to rebuild from"):
        rebuild_index(tmp_path)
