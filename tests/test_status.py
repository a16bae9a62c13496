"""Start-up banner, `coffer --version` and `coffer status` against real servers."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from coffer import __version__
from coffer.server.runner import client_url
from tests.server_process import ServerProcess, free_port


def coffer(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
    return subprocess.run(
        [sys.executable, "-m", "coffer", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        timeout=120,
    )


def banner_fields(log: str) -> dict[str, str]:
    """The banner's indented `name: value` lines (exactly one banner in the log)."""
    assert log.count(" serving on ") == 1, log
    return dict(re.findall(r"^  ([a-z ]+?): +(.*)$", log, re.MULTILINE))


def test_version_option() -> None:
    done = coffer("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"coffer, version {__version__}"


def test_client_url_reaches_wildcard_addresses_on_loopback() -> None:
    assert client_url("http", "0.0.0.0", 9000) == "http://127.0.0.1:9000"
    assert client_url("http", "::", 9000) == "http://[::1]:9000"
    assert client_url("https", "::1", 9443) == "https://[::1]:9443"
    assert client_url("http", "10.1.2.3", 80) == "http://10.1.2.3:80"


@pytest.mark.server
def test_open_server_banner_and_its_try_command_works(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--fsync", "never").start()
    try:
        log = server.log()
        assert f"coffer {__version__} serving on http://127.0.0.1:{server.port}" in log
        fields = banner_fields(log)
        assert fields["data directory"] == str(server.data_dir.absolute())
        assert fields["engine"] == "disk (fsync never, 1 worker)"
        assert fields["auth"].startswith("open: NO CREDENTIALS CONFIGURED")
        assert fields["status"] == f"coffer status --endpoint {server.endpoint}"
        console = fields["console"]
        assert console == f"{server.endpoint}/_coffer/console/"
        with urllib.request.urlopen(console, timeout=10) as page:  # the banner's console URL serves the console
            assert page.status == 200 and b"<html" in page.read().lower()
        # The suggested command creates a bucket as printed (placeholders filled in).
        words = shlex.split(fields["try"].replace("<any key id>", "anyone").replace("<any secret>", "anything"))
        env = dict(word.split("=", 1) for word in words if "=" in word and not word.startswith("-"))
        command = [word for word in words if word not in {f"{k}={v}" for k, v in env.items()}]
        assert command[:3] == ["aws", "--endpoint-url", server.endpoint]
        server.aws(*command[3:], access_key=env["AWS_ACCESS_KEY_ID"], secret_key=env["AWS_SECRET_ACCESS_KEY"])
        assert "my-bucket" in {b["Name"] for b in server.client().list_buckets()["Buckets"]}
    finally:
        server.stop()


@pytest.mark.server
def test_banner_with_keys_and_with_auth_on_but_no_keys(tmp_path: Path) -> None:
    keys = ServerProcess(
        tmp_path / "keys",
        "--storage",
        "memory",
        "--access-key",
        "banner-key",
        "--secret-key",
        "banner-secret",
        "--log-level",
        "info",
    ).start()
    try:
        fields = banner_fields(keys.log())
        assert fields["engine"].startswith("memory ")
        assert fields["auth"] == "keys: signed requests required, 1 key pair(s) configured"
        assert fields["try"].startswith("AWS_ACCESS_KEY_ID=<key id> AWS_SECRET_ACCESS_KEY=<secret> ")
    finally:
        keys.stop()
    closed = ServerProcess(tmp_path / "closed", "--auth", "on").start()
    try:
        fields = banner_fields(closed.log())
        assert fields["auth"].startswith("closed: ")
        assert fields["try"] == f"coffer keys add --data-dir {closed.data_dir.absolute()} --access-key <key id>"
    finally:
        closed.stop()


@pytest.mark.server
def test_status_reports_version_storage_and_request_rate(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--fsync", "never", "--workers", "2").start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="status")
        for i, size in enumerate((5, 7, 11)):
            s3.put_object(Bucket="status", Key=f"k{i}", Body=b"x" * size)
        # Traffic while status samples the request counter, so the rate is above zero.
        stop = threading.Event()

        def traffic() -> None:
            client = server.client()
            while not stop.is_set():
                client.head_bucket(Bucket="status")

        thread = threading.Thread(target=traffic)
        thread.start()
        try:
            done = coffer("status", "--endpoint", server.endpoint, "--interval", "0.5")
        finally:
            stop.set()
            thread.join()
        assert done.returncode == 0, done.stderr
        fields = dict(re.findall(r"^([a-z/]+): +(.*)$", done.stdout, re.MULTILINE))
        assert fields["endpoint"] == server.endpoint
        assert fields["version"] == __version__
        assert re.fullmatch(r"\d+h \d+m \d+s \(since .* UTC\)", fields["uptime"])
        assert fields["buckets"] == "1"
        assert fields["objects"] == "3"
        assert fields["bytes"] == "23"
        assert float(fields["requests/s"]) > 0
        # Without --endpoint the address comes from the settings, as for serve.
        by_env = coffer("status", "--interval", "0.1", env={"COFFER_PORT": str(server.port)})
        assert by_env.returncode == 0, by_env.stderr
        assert f"endpoint:     {server.endpoint}" in by_env.stdout
    finally:
        server.stop()


@pytest.mark.server
def test_status_without_metrics_and_without_a_server(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--fsync", "never", "--metrics", "false").start()
    try:
        done = coffer("status", "--endpoint", server.endpoint + "/")
        assert done.returncode == 0, done.stderr
        assert "requests/s:   unavailable (metrics are off on this server)" in done.stdout
        assert "objects:      0" in done.stdout
    finally:
        server.stop()
    nobody = f"http://127.0.0.1:{free_port()}"
    done = coffer("status", "--endpoint", nobody)
    assert done.returncode == 1
    assert f"Error: cannot reach {nobody}/_coffer/metrics" in done.stderr
    assert "Traceback" not in done.stderr
