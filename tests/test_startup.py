"""Starting `coffer serve`: one clear line and a non-zero exit for every start-up error,
one server per data directory, and `coffer init` keeping its file private."""

from __future__ import annotations

import base64
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.server_process import ServerProcess, free_port

# Every test here starts `coffer serve` processes.
pytestmark = pytest.mark.server


def _serve(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
    return subprocess.run(
        [sys.executable, "-m", "coffer", "serve", "--port", str(free_port()), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
    )


def _one_clear_line(result: subprocess.CompletedProcess[str], mentions: str) -> str:
    assert result.returncode != 0, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert mentions in lines[0], lines[0]
    assert "Uvicorn running" not in result.stderr + result.stdout
    return lines[0]


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    target = tmp_path / "not-a-dir"
    target.write_text("x")
    line = _one_clear_line(_serve("--data-dir", str(target), cwd=tmp_path), str(target))
    assert "not a directory" in line
    memory = _serve("--data-dir", str(target), "--storage", "memory", cwd=tmp_path)
    _one_clear_line(memory, str(target))


@pytest.mark.parametrize("where", ["/proc/coffer-test-data", "/proc", "/sys/kernel/coffer-test-data"])
def test_unwritable_data_dir(tmp_path: Path, where: str) -> None:
    # Tests run as root, whom chmod does not stop: /proc and /sys refuse even root.
    _one_clear_line(_serve("--data-dir", where, cwd=tmp_path), where)


def test_unwritable_log_file(tmp_path: Path) -> None:
    where = "/proc/coffer-test-logs/coffer.log"
    _one_clear_line(_serve("--data-dir", str(tmp_path / "d"), "--log-file", where, cwd=tmp_path), where)


def test_missing_tls_files(tmp_path: Path) -> None:
    cert, key = tmp_path / "missing-cert.pem", tmp_path / "missing-key.pem"
    line = _one_clear_line(
        _serve("--data-dir", str(tmp_path / "d"), "--tls-cert", str(cert), "--tls-key", str(key), cwd=tmp_path),
        str(cert),
    )
    assert "No such file" in line
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    _one_clear_line(
        _serve("--data-dir", str(tmp_path / "d"), "--tls-cert", str(garbage), "--tls-key", str(garbage), cwd=tmp_path),
        str(garbage),
    )


def test_port_in_use(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "first", "--fsync", "never").start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "coffer", "serve", "--port", str(server.port), "--data-dir", str(tmp_path / "b")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        _one_clear_line(result, f"127.0.0.1:{server.port}")
    finally:
        server.stop()


def test_corrupt_key_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "keys.json").write_text("{ not json")
    _one_clear_line(_serve("--data-dir", str(data), cwd=tmp_path), str(data / "keys.json"))


@pytest.mark.parametrize("extra", [(), ("--workers", "2"), ("--storage", "memory", "--memory-persistence", "true")])
def test_second_server_on_one_data_dir_is_refused(tmp_path: Path, extra: tuple[str, ...]) -> None:
    first = ServerProcess(tmp_path / "data", "--fsync", "never", *extra).start()
    try:
        s3 = first.client()
        s3.create_bucket(Bucket="kept")
        assert first.proc is not None
        second = _serve("--data-dir", str(first.data_dir), "--fsync", "never", *extra, cwd=tmp_path)
        line = _one_clear_line(second, str(first.data_dir))
        assert f"PID {first.proc.pid}" in line and "in use" in line
        # The first still serves.
        s3.put_object(Bucket="kept", Key="k", Body=b"still here")
        assert s3.get_object(Bucket="kept", Key="k")["Body"].read() == b"still here"
    finally:
        first.stop()
    # Once it has stopped, the directory is free again.
    again = ServerProcess(tmp_path / "data", "--fsync", "never", *extra).start()
    try:
        assert again.client().get_object(Bucket="kept", Key="k")["Body"].read() == b"still here"
    finally:
        again.stop()


@pytest.mark.parametrize("extra", [(), ("--storage", "memory", "--memory-persistence", "true")])
def test_a_data_dir_the_server_creates_is_private(tmp_path: Path, extra: tuple[str, ...]) -> None:
    """Whatever the engine, the data directory coffer creates is 0700 (the memory engine's
    persistence directory inside it used to leave the data directory itself 0755)."""
    old = os.umask(0o022)
    try:
        server = ServerProcess(tmp_path / "data", "--fsync", "never", *extra).start()
    finally:
        os.umask(old)
    try:
        server.client().create_bucket(Bucket="private")
        assert stat.S_IMODE((tmp_path / "data").stat().st_mode) == 0o700
    finally:
        server.stop()


def test_workers_left_behind_keep_the_data_dir_claimed(tmp_path: Path) -> None:
    """kill -9 of a multi-worker server's parent leaves its workers serving (uvicorn does not stop
    them): a new server must not start beside them."""
    first = ServerProcess(tmp_path / "data", "--fsync", "never", "--workers", "2").start()
    assert first.proc is not None
    parent = psutil.Process(first.proc.pid)
    workers: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 30
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = [p for p in parent.children() if "spawn_main" in " ".join(p.cmdline())]
            time.sleep(0.1)
        assert len(workers) == 2
        first.kill9()
        second = _serve("--data-dir", str(tmp_path / "data"), "--fsync", "never", cwd=tmp_path)
        line = _one_clear_line(second, str(tmp_path / "data"))
        assert f"PID {parent.pid}" in line and "worker processes" in line
    finally:
        for worker in workers:
            worker.kill()
        psutil.wait_procs(workers, timeout=30)
    ServerProcess(tmp_path / "data", "--fsync", "never").start().stop()  # free again


def test_init_writes_a_private_config(tmp_path: Path) -> None:
    for args in ((), ("--force",)):
        target = tmp_path / "config.yaml"
        if args:
            target.chmod(0o644)  # --force over a readable file makes it private too
        result = subprocess.run(
            [sys.executable, "-m", "coffer", "init", "--path", str(target), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        assert target.stat().st_mode & 0o777 == 0o600
        assert "secret_key" in target.read_text()


def test_wrong_kms_master_key_is_refused_at_start(tmp_path: Path) -> None:
    """A keyring written under one master key does not open under another: the server says so at
    start instead of failing every encrypted read later."""
    from coffer.config import Settings
    from coffer.encryption.kms import LocalKeyService

    data = tmp_path / "data"
    service = LocalKeyService.from_settings(Settings(data_dir=str(data)))
    service.generate_data_key(None, {"aws:s3:arn": "arn:aws:s3:::b/k"})  # the keyring now exists
    other = base64.b64encode(os.urandom(32)).decode()
    line = _one_clear_line(_serve("--data-dir", str(data), "--kms-master-key", other, cwd=tmp_path), "key service")
    assert other not in line


def test_missing_kms_master_key_is_refused_at_start(tmp_path: Path) -> None:
    """A keyring whose master key file was lost: one clear line, and no new key written."""
    from coffer.config import Settings
    from coffer.encryption.kms import LocalKeyService

    data = tmp_path / "data"
    LocalKeyService.from_settings(Settings(data_dir=str(data))).generate_data_key(None, {"a": "b"})
    (data / "kms" / "master.key").unlink()
    before = sorted(p.name for p in (data / "kms").iterdir())
    _one_clear_line(_serve("--data-dir", str(data), cwd=tmp_path), "master.key is missing")
    assert sorted(p.name for p in (data / "kms").iterdir()) == before  # nothing was generated
