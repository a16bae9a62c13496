"""Users and ownership, key management without restarts, auth modes and TLS."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.auth_support import (
    ALT,
    MAIN,
    User,
    client,
    eventually,
    new_bucket_name,
    outcome,
    send,
    start_auth_server,
    tls_client,
)
from tests.helpers import self_signed_cert
from tests.server_process import ServerProcess
from tests.wire import error_of


def _denied(call, **kwargs) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as exc:
        call(**kwargs)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403, kwargs
    if exc.value.response["Error"]["Code"] != "403":  # HEAD responses carry no body
        assert error_of(exc)[1] == "AccessDenied"


def test_alt_user_cannot_read_list_write_or_delete_in_main_bucket(main_s3, alt_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    main_s3.put_object(Bucket=main_bucket, Key="secret.txt", Body=b"main's data")
    _denied(alt_s3.get_object, Bucket=main_bucket, Key="secret.txt")
    _denied(alt_s3.head_object, Bucket=main_bucket, Key="secret.txt")
    _denied(alt_s3.list_objects, Bucket=main_bucket)
    _denied(alt_s3.list_objects_v2, Bucket=main_bucket)
    _denied(alt_s3.head_bucket, Bucket=main_bucket)
    _denied(alt_s3.get_bucket_location, Bucket=main_bucket)
    _denied(alt_s3.put_object, Bucket=main_bucket, Key="secret.txt", Body=b"overwritten")
    _denied(alt_s3.put_object, Bucket=main_bucket, Key="planted.txt", Body=b"planted")
    _denied(alt_s3.delete_object, Bucket=main_bucket, Key="secret.txt")
    _denied(alt_s3.delete_objects, Bucket=main_bucket, Delete={"Objects": [{"Key": "secret.txt"}]})
    _denied(alt_s3.delete_bucket, Bucket=main_bucket)
    _denied(alt_s3.create_multipart_upload, Bucket=main_bucket, Key="planted-multipart")
    _denied(alt_s3.list_multipart_uploads, Bucket=main_bucket)
    upload = main_s3.create_multipart_upload(Bucket=main_bucket, Key="in-progress")["UploadId"]
    _denied(alt_s3.upload_part, Bucket=main_bucket, Key="in-progress", UploadId=upload, PartNumber=1, Body=b"x")
    _denied(alt_s3.list_parts, Bucket=main_bucket, Key="in-progress", UploadId=upload)
    _denied(alt_s3.abort_multipart_upload, Bucket=main_bucket, Key="in-progress", UploadId=upload)
    main_s3.abort_multipart_upload(Bucket=main_bucket, Key="in-progress", UploadId=upload)
    with pytest.raises(ClientError) as exc:
        alt_s3.create_bucket(Bucket=main_bucket)
    assert error_of(exc)[1] == "BucketAlreadyExists"
    # Nothing changed.
    assert main_s3.get_object(Bucket=main_bucket, Key="secret.txt")["Body"].read() == b"main's data"
    assert [o["Key"] for o in main_s3.list_objects_v2(Bucket=main_bucket)["Contents"]] == ["secret.txt"]


def test_list_buckets_shows_only_the_callers(main_s3, alt_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    alt_bucket = new_bucket_name()
    alt_s3.create_bucket(Bucket=alt_bucket)
    main_view = main_s3.list_buckets()
    alt_view = alt_s3.list_buckets()
    assert main_bucket in {b["Name"] for b in main_view["Buckets"]}
    assert alt_bucket not in {b["Name"] for b in main_view["Buckets"]}
    assert alt_bucket in {b["Name"] for b in alt_view["Buckets"]}
    assert main_bucket not in {b["Name"] for b in alt_view["Buckets"]}
    assert alt_view["Owner"] == {"ID": ALT.user_id, "DisplayName": ALT.display_name}
    assert main_s3.get_bucket_acl(Bucket=main_bucket)["Owner"] == {"ID": MAIN.user_id, "DisplayName": MAIN.display_name}
    _denied(alt_s3.get_bucket_acl, Bucket=main_bucket)
    # ALT uses its own bucket normally; MAIN is denied there.
    alt_s3.put_object(Bucket=alt_bucket, Key="mine", Body=b"alt")
    _denied(main_s3.get_object, Bucket=alt_bucket, Key="mine")
    listed = alt_s3.list_objects(Bucket=alt_bucket)["Contents"]
    assert listed[0]["Owner"] == {"ID": ALT.user_id, "DisplayName": ALT.display_name}


def test_unknown_bucket_is_no_such_bucket_for_any_user(alt_s3) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ClientError) as exc:
        alt_s3.list_objects_v2(Bucket="no-such-bucket-anywhere")
    assert error_of(exc)[1] == "NoSuchBucket"


def _coffer(*args: str, data_dir: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
    return subprocess.run(
        [sys.executable, "-m", "coffer", "keys", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        input=stdin,
        env=env,
        timeout=60,
    )


def test_keys_cli_changes_apply_to_a_running_server(auth_server: ServerProcess) -> None:
    carol = User("AKIACAROL0000000", "carol-secret-key-0123456789", "carol-id", "Carol")
    carol_s3 = client(auth_server, carol)
    with pytest.raises(ClientError) as exc:
        carol_s3.list_buckets()
    assert error_of(exc)[1] == "InvalidAccessKeyId"

    added = _coffer(
        "add", "--access-key", carol.access_key, "--secret-key", "-", "--user-id", carol.user_id,
        "--display-name", carol.display_name, "--token", "carol-token-0123456789",
        data_dir=auth_server.data_dir, stdin=carol.secret_key + "\n",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert carol.secret_key not in added.stdout + added.stderr
    eventually(carol_s3.list_buckets, "ok")
    bucket = new_bucket_name()
    carol_s3.create_bucket(Bucket=bucket)
    assert carol_s3.list_buckets()["Owner"] == {"ID": carol.user_id, "DisplayName": carol.display_name}
    by_token = send(auth_server, "GET", f"/{bucket}", {"Authorization": "Bearer carol-token-0123456789"})
    assert by_token.status == 200 and b"<ListBucketResult" in by_token.body
    assert "carol-token-0123456789" not in key_file_text(auth_server)

    listed = _coffer("list", data_dir=auth_server.data_dir)
    assert listed.returncode == 0
    assert carol.access_key in listed.stdout and carol.user_id in listed.stdout
    assert carol.secret_key not in listed.stdout
    key_file = auth_server.data_dir / "keys.json"
    assert key_file.stat().st_mode & 0o077 == 0

    duplicate = _coffer(
        "add", "--access-key", carol.access_key, "--secret-key", "another-secret", data_dir=auth_server.data_dir
    )
    assert duplicate.returncode != 0 and "already exists" in duplicate.stderr

    removed = _coffer("remove", carol.access_key, data_dir=auth_server.data_dir)
    assert removed.returncode == 0, removed.stderr
    eventually(carol_s3.list_buckets, "InvalidAccessKeyId")
    assert _coffer("remove", carol.access_key, data_dir=auth_server.data_dir).returncode != 0


def key_file_text(server: ServerProcess) -> str:
    return (server.data_dir / "keys.json").read_text()


@pytest.mark.server
def test_open_mode_warns_and_switches_on_when_a_key_is_added(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--fsync", "never").start()
    try:
        anyone = server.client("anything", "at-all-secret")
        anyone.create_bucket(Bucket="open-bucket")
        assert "NO CREDENTIALS CONFIGURED" in server.log()
        added = _coffer(
            "add", "--access-key", MAIN.access_key, "--secret-key", MAIN.secret_key, data_dir=server.data_dir
        )
        assert added.returncode == 0, added.stderr
        eventually(anyone.list_buckets, "InvalidAccessKeyId")
        # Removing the last key does not reopen the server, nor does a restart.
        assert _coffer("remove", MAIN.access_key, data_dir=server.data_dir).returncode == 0
        time.sleep(0.3)
        assert outcome(anyone.list_buckets) == "InvalidAccessKeyId"
        server.stop()
        server.start()
        assert outcome(server.client("anything", "at-all-secret").list_buckets) == "InvalidAccessKeyId"
    finally:
        server.stop()


@pytest.mark.server
def test_auth_off_forces_open_mode(tmp_path: Path) -> None:
    server = start_auth_server(tmp_path, "--auth", "off")
    try:
        anyone = server.client("not-a-configured-key", "whatever-secret")
        anyone.create_bucket(Bucket="off-bucket")
        assert "off-bucket" in {b["Name"] for b in anyone.list_buckets()["Buckets"]}
        assert "AUTHENTICATION IS OFF" in server.log()
    finally:
        server.stop()


@pytest.mark.server
def test_auth_on_without_keys_denies_everything(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--fsync", "never", "--auth", "on").start()
    try:
        with pytest.raises(ClientError) as exc:
            server.client("anything", "at-all-secret").list_buckets()
        assert error_of(exc)[1] == "InvalidAccessKeyId"
    finally:
        server.stop()


@pytest.mark.server
def test_tls(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    server = start_auth_server(tmp_path, tls_cert=cert, tls_key=key)
    try:
        s3 = tls_client(f"https://127.0.0.1:{server.port}", cert)
        s3.create_bucket(Bucket="tls-bucket")
        s3.put_object(Bucket="tls-bucket", Key="k", Body=b"over tls")
        assert s3.get_object(Bucket="tls-bucket", Key="k")["Body"].read() == b"over tls"
        s3.close()  # an idle TLS keep-alive connection would hold up the server's graceful stop
        # Plain HTTP on the TLS port gets no HTTP answer: the connection is dropped.
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert not sock.recv(1024).startswith(b"HTTP/")
    finally:
        server.stop()


def test_alt_cannot_copy_out_of_main_bucket(main_s3, alt_s3, main_bucket: str) -> None:  # type: ignore[no-untyped-def]
    main_s3.put_object(Bucket=main_bucket, Key="source", Body=b"main's data")
    alt_bucket = new_bucket_name()
    alt_s3.create_bucket(Bucket=alt_bucket)
    _denied(alt_s3.copy_object, Bucket=alt_bucket, Key="stolen", CopySource={"Bucket": main_bucket, "Key": "source"})
    assert alt_s3.list_objects_v2(Bucket=alt_bucket)["KeyCount"] == 0
