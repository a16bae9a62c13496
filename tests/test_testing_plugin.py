"""coffer.testing: the pytest plugin (run in fresh pytest sessions through pytester) and serve()."""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import unittest
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from coffer.testing import CofferServer, serve

pytest_plugins = ["pytester"]

# A user's test file: the fixtures as a project that installed Coffer sees them.
USER_TESTS = """
import http.client

import pytest

SEEN = []


def test_round_trip(coffer_server, coffer_bucket):
    s3 = coffer_server.client()
    s3.put_object(Bucket=coffer_bucket, Key="dir/a.txt", Body=b"hello")
    s3.put_object(Bucket=coffer_bucket, Key="dir/b.txt", Body=b"world")
    assert s3.get_object(Bucket=coffer_bucket, Key="dir/a.txt")["Body"].read() == b"hello"
    listed = s3.list_objects_v2(Bucket=coffer_bucket, Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/a.txt", "dir/b.txt"]
    SEEN.append(coffer_bucket)


def test_fresh_bucket_each_test(coffer_server, coffer_bucket):
    s3 = coffer_server.client()
    assert SEEN and coffer_bucket not in SEEN
    assert s3.list_objects_v2(Bucket=coffer_bucket)["KeyCount"] == 0
    # The previous test's bucket, with its objects, is gone.
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [coffer_bucket]


def test_bucket_deleted_by_the_test(coffer_server, coffer_bucket):
    coffer_server.client().delete_bucket(Bucket=coffer_bucket)  # the fixture's clean-up copes


def test_leftovers_cleaned(coffer_server, coffer_bucket):
    s3 = coffer_server.client()
    s3.put_object(Bucket=coffer_bucket, Key="left", Body=b"v")
    s3.create_multipart_upload(Bucket=coffer_bucket, Key="unfinished")


def test_server(coffer_server):
    # The buckets of the tests above are all gone, unfinished uploads and objects included.
    assert coffer_server.client().list_buckets()["Buckets"] == []
    assert coffer_server.endpoint == f"http://127.0.0.1:{coffer_server.port}"
    assert coffer_server.region == "us-east-1"
    assert coffer_server.storage == "{storage}"
    assert coffer_server.access_key and coffer_server.secret_key
    s3 = coffer_server.client()
    assert s3.meta.region_name == "us-east-1"
    assert s3.meta.config.s3["addressing_style"] == "path"


def test_requests_must_be_signed(coffer_server):
    conn = http.client.HTTPConnection("127.0.0.1", coffer_server.port, timeout=10)
    conn.request("GET", "/")
    response = conn.getresponse()
    assert response.status == 403
    assert b"<Code>AccessDenied</Code>" in response.read()
    forged = coffer_server.client(aws_secret_access_key="not-the-secret")
    with pytest.raises(Exception, match="SignatureDoesNotMatch"):
        forged.list_buckets()
"""


@pytest.mark.server
@pytest.mark.parametrize("how", ["default", "option", "ini"])
def test_fixtures_in_a_fresh_session(pytester: pytest.Pytester, how: str) -> None:
    """put/get/list, a fresh bucket per test, signed requests; memory by default, disk by option or ini."""
    storage = "memory" if how == "default" else "disk"
    pytester.makepyfile(test_user=USER_TESTS.replace("{storage}", storage))
    args = ["-p", "no:cacheprovider"]
    if how == "option":
        args.append("--coffer-storage=disk")
    elif how == "ini":
        pytester.makeini("[pytest]\ncoffer_storage = disk\n")
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=6)


def test_registered_as_pytest_plugin() -> None:
    plugins = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert plugins.get("coffer") == "coffer.testing.pytest_plugin", (
        "the pytest11 entry point is missing: reinstall Coffer (pip install -e .) after changing pyproject.toml"
    )


def test_disabled_with_no_coffer(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user="def test_it(coffer_server):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:coffer", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'coffer_server' not found*"])


def test_idle_until_asked() -> None:
    """Loading the plugin imports no server code, so sessions that never use it pay nothing."""
    code = (
        "import sys, coffer.testing.pytest_plugin\n"
        "loaded = [m for m in ('uvicorn', 'coffer.server.app', 'coffer.config', 'boto3') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_client_without_boto3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 now raises ImportError
    server = CofferServer("127.0.0.1", 9, "AK", "SK", "us-east-1", "memory", tmp_path)
    with pytest.raises(ImportError, match="needs boto3, which Coffer does not install: pip install boto3"):
        server.client()


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.server
class ServeTest(unittest.TestCase):
    """serve() as a unittest or a script uses it: ready on entry, gone on exit."""

    def test_serve(self) -> None:
        for mode, storage in [("thread", "memory"), ("thread", "disk"), ("process", "memory"), ("process", "disk")]:
            with self.subTest(mode=mode, storage=storage):
                with serve(storage, mode=mode) as server:
                    workdir = server.data_dir.parent
                    # Ready at once: no retry.
                    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                    conn.request("GET", "/_coffer/ready")
                    self.assertEqual(conn.getresponse().status, 200)
                    conn.close()
                    s3 = server.client()
                    s3.create_bucket(Bucket="serve-test")
                    s3.put_object(Bucket="serve-test", Key="k", Body=b"round trip")
                    self.assertEqual(s3.get_object(Bucket="serve-test", Key="k")["Body"].read(), b"round trip")
                    self.assertEqual(server.storage, storage)
                    self.assertTrue(workdir.is_dir())
                    self.assertEqual((server.data_dir / "metadata.sqlite3").exists(), storage == "disk")
                    with self.assertRaises(ClientError) as denied:
                        server.client(aws_access_key_id="someone-else").list_buckets()
                    self.assertEqual(denied.exception.response["Error"]["Code"], "InvalidAccessKeyId")
                self.assertFalse(_port_open(server.port))
                self.assertFalse(workdir.exists())
