"""`coffer fsck`: every stored body verified against the digests its row holds, damage reported,
`--repair` quarantining corrupt bodies and removing orphans, runs resumable.

The store is built through a real server (tests/disk_store.py), stopped, then damaged by hand:
a flipped byte, a deleted blob file, a stray file nobody references.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from coffer.cli import main
from coffer.storage.disk.fsck import CURSOR_NAME, QUARANTINE
from tests.disk_store import PLAIN, VERSIONED, blob_of, populate, state
from tests.server_process import ServerProcess

pytestmark = pytest.mark.server


def fsck(data_dir: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(main, ["fsck", "--data-dir", str(data_dir), "--json", "--orphan-grace", "0", *extra])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, json.loads(result.stdout)


def flip_byte(path: Path, at: int) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        byte = f.read(1)
        f.seek(at)
        f.write(bytes([byte[0] ^ 0x01]))


def _problems(report: dict[str, Any]) -> set[tuple[str, str | None]]:
    return {(p["kind"], p["key"]) for p in report["problems"]}


def test_fsck_reports_repairs_and_resumes(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--fsync", "never").start()
    try:
        populate(server.client())
    finally:
        server.stop()
    data = server.data_dir

    code, clean = fsck(data)
    assert code == 0 and clean["complete"] and not clean["problems"]
    assert clean["size_only"] == 2  # the two SSE-S3 objects: length only, without their key
    assert clean["bytes"] > 5 * 1024 * 1024  # the multipart object's pieces were read
    code, thorough = fsck(data, "--all-digests")  # MD5 and every checksum, not only the fastest
    assert code == 0 and thorough["bytes"] == clean["bytes"] and not thorough["problems"]

    # Interrupted after 3 versions, the next run continues where it stopped.
    code, first = fsck(data, "--limit", "3")
    assert code == 0 and not first["complete"] and first["versions"] == 3
    assert (data / CURSOR_NAME).exists()
    code, rest = fsck(data)
    assert code == 0 and rest["complete"] and rest["resumed_from"] > 0
    assert rest["versions"] == clean["versions"] and rest["bytes"] == clean["bytes"]
    assert not (data / CURSOR_NAME).exists()

    corrupt = blob_of(data, PLAIN, "big")
    flip_byte(corrupt, 1000)
    blob_of(data, PLAIN, "multi").unlink()  # the first piece of the multipart object
    flip_byte(blob_of(data, PLAIN, "secret"), 0)  # not detectable without the key ...
    os.truncate(blob_of(data, PLAIN, "secret"), 99_000)  # ... but a wrong length is
    orphan = data / "blobs" / "ab" / ("ab" + "0" * 30)
    orphan.write_bytes(b"stray")

    code, found = fsck(data, "--restart")
    assert code == 1
    assert _problems(found) == {
        ("corrupt", "big"),
        ("missing", "multi"),
        ("missing", "multi-copy"),  # the copy shares the multipart object's pieces
        ("corrupt", "secret"),
        ("orphan", None),
    }

    code, repaired = fsck(data, "--repair")
    assert code == 0 and all(p["repaired"] for p in repaired["problems"])
    assert not orphan.exists() and not corrupt.exists()
    quarantined = data / QUARANTINE / corrupt.name
    assert quarantined.exists()
    note = json.loads((data / QUARANTINE / f"{corrupt.name}.json").read_text())
    assert (note["bucket"], note["key"], note["kind"]) == (PLAIN, "big", "corrupt")

    code, again = fsck(data)
    assert code == 0 and not again["problems"]

    server.start()
    try:
        s3 = server.client()
        after = state(s3)
        keys = {name.split("@")[0] for name in after[PLAIN]["objects"]}
        assert keys == {"small", "tagged", "public", "secret-small", "dir/ünïcode key"}
        assert len(after[VERSIONED]["objects"]) == 3  # untouched
    finally:
        server.stop()


def test_fsck_removes_a_version_and_promotes_the_next(tmp_path: Path) -> None:
    """A corrupt latest version goes; the key's previous version becomes current."""
    server = ServerProcess(tmp_path / "data", "--fsync", "never").start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket=VERSIONED)
        s3.put_bucket_versioning(Bucket=VERSIONED, VersioningConfiguration={"Status": "Enabled"})
        s3.put_object(Bucket=VERSIONED, Key="k", Body=b"old" * 30_000)
        s3.put_object(Bucket=VERSIONED, Key="k", Body=b"new" * 30_000)
    finally:
        server.stop()
    flip_byte(blob_of(server.data_dir, VERSIONED, "k"), 5)
    code, report = fsck(server.data_dir, "--repair")
    assert code == 0 and _problems(report) == {("corrupt", "k")}
    server.start()
    try:
        got = server.client().get_object(Bucket=VERSIONED, Key="k")["Body"].read()
        assert got == b"old" * 30_000
    finally:
        server.stop()


def test_fsck_refuses_while_a_server_runs(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--fsync", "never").start()
    try:
        result = CliRunner().invoke(main, ["fsck", "--data-dir", str(server.data_dir)])
        assert result.exit_code != 0 and "in use by another coffer server" in result.output
    finally:
        server.stop()
