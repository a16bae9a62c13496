"""Keys and open mode, tried the way a new user would: start open, make buckets, then
`coffer keys add` as the start-up warning suggests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.auth_support import eventually, outcome
from tests.server_process import ServerProcess

# Every test here starts `coffer serve` processes.
pytestmark = pytest.mark.server


def _keys(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
    return subprocess.run(
        [sys.executable, "-m", "coffer", "keys", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        cwd=cwd,
        timeout=60,
    )


def test_first_key_added_owns_the_buckets_created_while_open(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--fsync", "never").start()
    try:
        data = str(server.data_dir)
        anyone = server.client("anything", "at-all-secret")
        anyone.create_bucket(Bucket="made-while-open")
        anyone.put_object(Bucket="made-while-open", Key="k", Body=b"open data")
        listed = _keys("list", "--data-dir", data, cwd=tmp_path)
        assert listed.returncode == 0 and "runs open" in listed.stdout, listed

        added = _keys(
            "add", "--access-key", "AKIAFIRST", "--secret-key", "first-secret-123", "--data-dir", data, cwd=tmp_path
        )
        assert added.returncode == 0, added.stderr
        assert str(server.data_dir / "keys.json") in added.stdout
        assert "root user" in added.stdout and "first-secret-123" not in added.stdout
        first = server.client("AKIAFIRST", "first-secret-123")
        eventually(first.list_buckets, "ok")
        assert [b["Name"] for b in first.list_buckets()["Buckets"]] == ["made-while-open"]
        assert first.get_object(Bucket="made-while-open", Key="k")["Body"].read() == b"open data"
        assert outcome(anyone.list_buckets) == "InvalidAccessKeyId"

        # A second key is a user of its own: the root user's buckets stay the root user's.
        second = _keys(
            "add", "--access-key", "AKIASECOND", "--secret-key", "second-secret-123", "--data-dir", data, cwd=tmp_path
        )
        assert second.returncode == 0 and "root user" not in second.stdout, second
        other = server.client("AKIASECOND", "second-secret-123")
        eventually(other.list_buckets, "ok")
        assert other.list_buckets()["Buckets"] == []
        assert outcome(lambda: other.get_object(Bucket="made-while-open", Key="k")) == "AccessDenied"
    finally:
        server.stop()


def test_keys_list_tells_the_truth_after_the_last_key_is_removed(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--fsync", "never").start()
    try:
        data = str(server.data_dir)
        assert (
            _keys(
                "add", "--access-key", "AKIAONLY", "--secret-key", "only-secret-123", "--data-dir", data, cwd=tmp_path
            ).returncode
            == 0
        )
        removed = _keys("remove", "AKIAONLY", "--data-dir", data, cwd=tmp_path)
        assert removed.returncode == 0, removed.stderr
        assert str(server.data_dir / "keys.json") in removed.stdout and "refuses every request" in removed.stdout
        listed = _keys("list", "--data-dir", data, cwd=tmp_path)
        assert listed.returncode == 0
        assert "runs open" not in listed.stdout and "refuses every request" in listed.stdout, listed.stdout
        # ... which is what the server does.
        anyone = server.client("anything", "at-all-secret")
        eventually(anyone.list_buckets, "InvalidAccessKeyId")
    finally:
        server.stop()


def test_keys_commands_refuse_a_missing_data_dir(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    added = _keys("add", "--access-key", "AKIASTRAY", "--secret-key", "stray-secret-123", cwd=elsewhere)
    assert added.returncode != 0
    assert str(elsewhere / "coffer-data") in added.stderr and "does not exist" in added.stderr
    assert "add --create" in added.stderr
    assert not (elsewhere / "coffer-data").exists()
    for args in (("list",), ("remove", "AKIASTRAY")):
        result = _keys(*args, cwd=elsewhere)
        assert result.returncode != 0 and "does not exist" in result.stderr, result
    assert not (elsewhere / "coffer-data").exists()

    created = _keys("add", "--access-key", "AKIASTRAY", "--secret-key", "stray-secret-123", "--create", cwd=elsewhere)
    assert created.returncode == 0, created.stderr
    assert f"created data directory {elsewhere / 'coffer-data'}" in created.stdout
    assert (elsewhere / "coffer-data" / "keys.json").exists()
