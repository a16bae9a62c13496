"""Event notifications on a real server with a local webhook receiver (docs/notifications.md): every
event type and the key filters, a hanging and a failing target, delivery after kill -9, the live
event stream, and hostile configuration documents."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.auth import S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.auth_support import ALT, MAIN
from tests.s3errors import expect_error
from tests.server_process import ServerProcess, free_port
from tests.webhook_receiver import Receiver
from tests.wire import multipart, request

pytestmark = pytest.mark.server


def arn(target: str, kind: str = "sqs") -> str:
    return f"arn:coffer:{kind}:us-east-1::{target}"


def targets_env(**targets: dict[str, Any]) -> dict[str, str]:
    return {"COFFER_NOTIFICATION_TARGETS": json.dumps(targets)}


def configure(s3: Any, bucket: str, *rules: dict[str, Any]) -> None:
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={"QueueConfigurations": list(rules)}
    )


def rule(rule_id: str, target: str, events: list[str], prefix: str = "", suffix: str = "") -> dict[str, Any]:
    filters = [{"Name": n, "Value": v} for n, v in (("prefix", prefix), ("suffix", suffix)) if v]
    out: dict[str, Any] = {"Id": rule_id, "QueueArn": arn(target), "Events": events}
    if filters:
        out["Filter"] = {"Key": {"FilterRules": filters}}
    return out


@pytest.fixture(scope="module")
def receivers() -> Iterator[dict[str, Receiver]]:
    made = {"ok": Receiver("ok"), "fail": Receiver("fail"), "hang": Receiver("hang")}
    yield made
    for receiver in made.values():
        receiver.close()


@pytest.fixture(scope="module")
def notify_server(tmp_path_factory: pytest.TempPathFactory, receivers: dict[str, Receiver]) -> Iterator[ServerProcess]:
    env = targets_env(
        hook={"url": receivers["ok"].url, "auth_header": "Bearer hook-token"},
        broken={"url": receivers["fail"].url, "max_attempts": 3, "retry_seconds": 0.05},
        stuck={"url": receivers["hang"].url, "timeout": 30, "concurrency": 1, "queue_limit": 5},
    )
    proc = ServerProcess(tmp_path_factory.mktemp("notify") / "data", "--fsync", "never", env=env).start()
    yield proc
    proc.stop()


@pytest.fixture
def s3(notify_server: ServerProcess) -> Any:
    return notify_server.client()


_count = iter(range(10_000))


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"notify-{next(_count)}"
    s3.create_bucket(Bucket=name)
    return name


def test_configuration_round_trip(s3: Any, bucket: str) -> None:
    assert "QueueConfigurations" not in s3.get_bucket_notification_configuration(Bucket=bucket)
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [rule("q", "hook", ["s3:ObjectCreated:*"], prefix="a/")],
            "TopicConfigurations": [{"Id": "t", "TopicArn": arn("hook", "sns"), "Events": ["s3:ObjectRemoved:Delete"]}],
        },
    )
    got = s3.get_bucket_notification_configuration(Bucket=bucket)
    assert got["QueueConfigurations"] == [
        {
            "Id": "q",
            "QueueArn": arn("hook"),
            "Events": ["s3:ObjectCreated:*"],
            "Filter": {"Key": {"FilterRules": [{"Name": "Prefix", "Value": "a/"}]}},
        }
    ]
    assert got["TopicConfigurations"][0]["TopicArn"] == arn("hook", "sns")
    configure(s3, bucket)  # empty: off
    assert "QueueConfigurations" not in s3.get_bucket_notification_configuration(Bucket=bucket)
    error = expect_error(400, "InvalidArgument", configure, s3, bucket, rule("q", "nowhere", ["s3:ObjectCreated:*"]))
    assert "Unable to validate the following destination configurations" in error["Message"]
    expect_error(404, "NoSuchBucket", s3.get_bucket_notification_configuration, Bucket="notify-missing")


def test_every_event_type_and_filters(
    notify_server: ServerProcess, s3: Any, bucket: str, receivers: dict[str, Receiver]
) -> None:
    receiver = receivers["ok"]
    receiver.records.clear()
    configure(
        s3,
        bucket,
        rule("created", "hook", ["s3:ObjectCreated:*"], prefix="c/"),
        rule("removed", "hook", ["s3:ObjectRemoved:*"], prefix="r/"),
        rule("tagged", "hook", ["s3:ObjectTagging:*"], suffix=".tag"),
    )
    s3.put_object(Bucket=bucket, Key="c/put", Body=b"12345")
    content_type, body = multipart([("key", "c/post")], b"posted")
    assert request(notify_server, "POST", f"/{bucket}", body, {"Content-Type": content_type}).status == 204
    s3.copy_object(Bucket=bucket, Key="c/copy", CopySource={"Bucket": bucket, "Key": "c/put"})
    upload = s3.create_multipart_upload(Bucket=bucket, Key="c/mpu")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="c/mpu", UploadId=upload, PartNumber=1, Body=b"part")
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="c/mpu",
        UploadId=upload,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
    )
    s3.put_object(Bucket=bucket, Key="x/filtered-out", Body=b"")  # no rule's prefix
    s3.put_object(Bucket=bucket, Key="r/one", Body=b"")
    s3.delete_object(Bucket=bucket, Key="r/one")
    s3.put_object(Bucket=bucket, Key="r/two", Body=b"")
    s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "r/two"}, {"Key": "x/not-matched"}]})
    s3.put_object(Bucket=bucket, Key="a.tag", Body=b"")
    s3.put_object_tagging(Bucket=bucket, Key="a.tag", Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    s3.delete_object_tagging(Bucket=bucket, Key="a.tag")
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    s3.delete_object(Bucket=bucket, Key="r/marker")
    expected = [
        ("ObjectCreated:Put", "c/put"),
        ("ObjectCreated:Post", "c/post"),
        ("ObjectCreated:Copy", "c/copy"),
        ("ObjectCreated:CompleteMultipartUpload", "c/mpu"),
        ("ObjectRemoved:Delete", "r/one"),
        ("ObjectRemoved:Delete", "r/two"),
        ("ObjectTagging:Put", "a.tag"),
        ("ObjectTagging:Delete", "a.tag"),
        ("ObjectRemoved:DeleteMarkerCreated", "r/marker"),
    ]
    records = receiver.wait_for(len(expected))
    time.sleep(0.3)  # anything unexpected would arrive meanwhile
    assert sorted(receiver.names()) == sorted(expected)
    by_key = {(r["eventName"], r["s3"]["object"]["key"]): r for r in records}
    put = by_key[("ObjectCreated:Put", "c/put")]
    assert put["s3"]["object"]["size"] == 5
    assert put["s3"]["object"]["eTag"] == "827ccb0eea8a706c4c34a16891f84e7b"
    assert put["s3"]["configurationId"] == "created"
    assert put["s3"]["bucket"]["name"] == bucket
    assert put["eventSource"] == "aws:s3" and put["eventVersion"] == "2.1"
    assert by_key[("ObjectRemoved:DeleteMarkerCreated", "r/marker")]["s3"]["object"]["versionId"]
    assert set(receiver.auth) == {"Bearer hook-token"}


def test_hanging_and_failing_targets_never_slow_requests(
    notify_server: ServerProcess, s3: Any, bucket: str, receivers: dict[str, Receiver]
) -> None:
    configure(
        s3,
        bucket,
        rule("stuck", "stuck", ["s3:ObjectCreated:*"], prefix="h/"),
        rule("broken", "broken", ["s3:ObjectCreated:*"], prefix="f/"),
    )
    # The hanging receiver holds its one connection; the queue limit (5) sends the rest to the dead letters.
    for n in range(20):
        s3.put_object(Bucket=bucket, Key=f"h/{n}", Body=b"x")
    s3.put_object(Bucket=bucket, Key="f/one", Body=b"x")
    dead = notify_server.data_dir / "events" / "dead-letter.jsonl"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        lines = [json.loads(x) for x in dead.read_text().splitlines()] if dead.exists() else []
        if any(x["target"] == "broken" for x in lines) and sum(x["target"] == "stuck" for x in lines) >= 14:
            break
        time.sleep(0.05)
    broken = [x for x in lines if x["target"] == "broken"]
    assert len(broken) == 1 and broken[0]["attempts"] == 3 and broken[0]["reason"] == "HTTP 500"
    assert broken[0]["record"]["s3"]["object"]["key"] == "f/one"
    assert receivers["fail"].posts >= 3
    assert all("queue limit" in x["reason"] for x in lines if x["target"] == "stuck")
    # The delivery process's counts reach /metrics within a fraction of a second (its counts file).
    wanted = ['coffer_events_failed_total{target="broken"} 1.0', 'coffer_events_queued_total{target="stuck"} 20.0']
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        metrics = request(notify_server, "GET", "/_coffer/metrics").body.decode()
        if all(line in metrics for line in wanted):
            break
        time.sleep(0.05)
    assert all(line in metrics for line in wanted), metrics


@pytest.mark.parametrize("fsync", ["always", "never"])
def test_delivered_after_kill9(tmp_path: Path, fsync: str) -> None:
    """Acknowledged writes' events are delivered after a kill -9: with fsync on, queued on the loop
    behind the queue's group commit; with fsync off, queued by the metadata writer as the writes
    commit (the page cache outlives the process)."""
    port = free_port()
    env = targets_env(hook={"url": f"http://127.0.0.1:{port}/hook", "retry_seconds": 0.05, "max_attempts": 1000})
    proc = ServerProcess(tmp_path / "data", "--fsync", fsync, env=env).start()
    receiver = None
    try:
        s3 = proc.client()
        s3.create_bucket(Bucket="durable")
        configure(s3, "durable", rule("all", "hook", ["s3:ObjectCreated:*"]))
        for n in range(5):
            s3.put_object(Bucket="durable", Key=f"k{n}", Body=b"x")  # acknowledged; the receiver is down
        proc.kill9()
        receiver = Receiver("ok", port=port)
        proc.start()
        records = receiver.wait_for(5)
        assert sorted(r["s3"]["object"]["key"] for r in records)[:5] == [f"k{n}" for n in range(5)]
        assert {r["s3"]["object"]["size"] for r in records} == {1}
    finally:
        proc.stop()
        if receiver is not None:
            receiver.close()


def test_lifecycle_expirations_are_delivered(tmp_path: Path) -> None:
    # The lifecycle worker's expirations reach the webhook as s3:LifecycleExpiration:* records.
    receiver = Receiver("ok")
    env = targets_env(hook={"url": receiver.url, "retry_seconds": 0.05})
    args = ["--fsync", "never", "--lifecycle-day-seconds", "1", "--lifecycle-interval", "0.2"]
    proc = ServerProcess(tmp_path / "data", *args, env=env).start()
    try:
        s3 = proc.client()
        s3.create_bucket(Bucket="aging")
        configure(s3, "aging", rule("gone", "hook", ["s3:LifecycleExpiration:*"]))
        s3.put_object(Bucket="aging", Key="old/a", Body=b"x")
        s3.put_object(Bucket="aging", Key="keep/b", Body=b"y")
        s3.put_bucket_lifecycle_configuration(
            Bucket="aging",
            LifecycleConfiguration={
                "Rules": [{"ID": "old", "Status": "Enabled", "Filter": {"Prefix": "old/"}, "Expiration": {"Days": 1}}]
            },
        )
        records = receiver.wait_for(1, timeout=30)
        assert [(r["eventName"], r["s3"]["object"]["key"]) for r in records] == [
            ("LifecycleExpiration:Delete", "old/a")
        ]
        assert records[0]["s3"]["configurationId"] == "gone"
        assert [o["Key"] for o in s3.list_objects_v2(Bucket="aging").get("Contents", [])] == ["keep/b"]
    finally:
        proc.stop()
        receiver.close()


def sse_events(port: int, target: str, count: int) -> Iterator[dict[str, Any]]:
    """Open the stream; yield the handshake ({}) once the server answered, then ``count`` records."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            buffer += sock.recv(65536)
        head, buffer = buffer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"text/event-stream" in head
        yield {}
        seen = 0
        while seen < count:
            while b"event: s3\n" not in buffer or not buffer.split(b"event: s3\n", 1)[1].count(b"\n\n"):
                buffer += sock.recv(65536)
            _, rest = buffer.split(b"event: s3\n", 1)
            message, buffer = rest.split(b"\n\n", 1)
            if b"\r\n" in message:  # chunked framing between messages: drop the size lines
                message = b"".join(line for line in message.split(b"\r\n") if line.startswith(b"data: "))
            data = message.split(b"data: ", 1)[1]
            seen += 1
            yield json.loads(data)["Records"][0]


def presign(port: int, path: str, access: str, secret: str) -> str:
    req = AWSRequest(method="GET", url=f"http://127.0.0.1:{port}{path}")
    S3SigV4QueryAuth(Credentials(access, secret), "s3", "us-east-1", expires=300).add_auth(req)
    url = str(req.url)
    return url[url.index("/", len("http://")) :]


def test_live_stream_signed(tmp_path: Path) -> None:
    env = {
        "COFFER_ACCESS_KEY": "AKIASTREAM000000",
        "COFFER_SECRET_KEY": "stream-secret-0123456789",
        "COFFER_AUTH": "on",
    }
    proc = ServerProcess(tmp_path / "data", "--fsync", "never", env=env).start()
    try:
        s3 = proc.client("AKIASTREAM000000", "stream-secret-0123456789")
        s3.create_bucket(Bucket="live")  # no notification rules: the stream alone
        unsigned = request(proc, "GET", "/_coffer/events?bucket=live")
        assert unsigned.status == 403 and unsigned.error["Code"] == "AccessDenied"
        wrong = presign(proc.port, "/_coffer/events?bucket=live", "AKIASTREAM000000", "wrong-secret")
        assert request(proc, "GET", wrong).error["Code"] == "SignatureDoesNotMatch"
        missing = presign(proc.port, "/_coffer/events", "AKIASTREAM000000", "stream-secret-0123456789")
        assert request(proc, "GET", missing).error["Code"] == "InvalidArgument"
        target = presign(
            proc.port, "/_coffer/events?bucket=live&prefix=in/", "AKIASTREAM000000", "stream-secret-0123456789"
        )
        stream = sse_events(proc.port, target, 3)
        assert next(stream) == {}
        s3.put_object(Bucket="live", Key="out/skipped", Body=b"")
        s3.put_object(Bucket="live", Key="in/a", Body=b"abc")
        s3.put_object_tagging(Bucket="live", Key="in/a", Tagging={"TagSet": []})
        s3.delete_object(Bucket="live", Key="in/a")
        got = [(r["eventName"], r["s3"]["object"]["key"]) for r in stream]
        assert got == [("ObjectCreated:Put", "in/a"), ("ObjectTagging:Put", "in/a"), ("ObjectRemoved:Delete", "in/a")]
    finally:
        proc.stop()


def test_live_stream_sees_every_worker(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path / "data", "--fsync", "never", "--workers", "2").start()
    try:
        s3 = proc.client()
        s3.create_bucket(Bucket="workers")
        stream = sse_events(proc.port, "/_coffer/events?bucket=workers", 12)
        assert next(stream) == {}
        time.sleep(1.2)  # the other worker's cached bucket state notices the listener
        for n in range(12):
            s3.put_object(Bucket="workers", Key=f"k{n:02d}", Body=b"")  # new connections: both workers
        assert sorted(r["s3"]["object"]["key"] for r in stream) == [f"k{n:02d}" for n in range(12)]
    finally:
        proc.stop()


def test_live_stream_authorization(auth_server: ServerProcess, main_s3: Any, main_bucket: str) -> None:
    """Streaming a bucket is s3:GetBucketNotification on it: the owner may, another user only when a
    bucket policy grants it."""
    target = f"/_coffer/events?bucket={main_bucket}"
    refused = request(auth_server, "GET", presign(auth_server.port, target, ALT.access_key, ALT.secret_key))
    assert refused.status == 403 and refused.error["Code"] == "AccessDenied"
    missing = presign(
        auth_server.port, "/_coffer/events?bucket=no-such-bucket-stream", MAIN.access_key, MAIN.secret_key
    )
    assert request(auth_server, "GET", missing).error["Code"] == "NoSuchBucket"
    grant = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:aws:iam::{ALT.user_id}:root"},
                "Action": "s3:GetBucketNotification",
                "Resource": f"arn:aws:s3:::{main_bucket}",
            }
        ],
    }
    main_s3.put_bucket_policy(Bucket=main_bucket, Policy=json.dumps(grant))
    time.sleep(1.1)  # the bucket state every worker caches for a second
    stream = sse_events(auth_server.port, presign(auth_server.port, target, ALT.access_key, ALT.secret_key), 1)
    assert next(stream) == {}
    main_s3.put_object(Bucket=main_bucket, Key="seen", Body=b"")
    assert [r["s3"]["object"]["key"] for r in stream] == ["seen"]


HOSTILE = [
    b"",
    b"<NotificationConfiguration><QueueConfiguration>",
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><NotificationConfiguration>&a;</NotificationConfiguration>',
    b"<NotificationConfiguration><QueueConfiguration><Queue>x</Queue><Event>s3:ObjectCreated:*</Event>"
    b"</QueueConfiguration></NotificationConfiguration>",
    b"<NotificationConfiguration><QueueConfiguration><Queue>arn:coffer:sqs:us-east-1::hook</Queue>"
    b"<Event>s3:Nope</Event></QueueConfiguration></NotificationConfiguration>",
    b"<NotificationConfiguration><EventBridgeConfiguration/></NotificationConfiguration>",
    b"\xff\xfe<\x00",
    b"<a>" * 5000,
]


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_documents(notify_server: ServerProcess, bucket: str, body: bytes) -> None:
    answer = request(notify_server, "PUT", f"/{bucket}?notification", body)
    assert answer.status == 400, answer
    assert answer.error["Code"] in ("MalformedXML", "InvalidArgument")


@pytest.mark.parametrize("persistence", ["false", "true"])
def test_memory_engine(tmp_path: Path, persistence: str) -> None:
    """The memory engine queues in memory without a persistence directory, on disk with one."""
    receiver = Receiver("ok")
    env = targets_env(hook={"url": receiver.url})
    args = ("--storage", "memory", "--memory-persistence", persistence, "--fsync", "never")
    proc = ServerProcess(tmp_path / "data", *args, env=env).start()
    try:
        s3 = proc.client()
        s3.create_bucket(Bucket="mem")
        configure(s3, "mem", rule("all", "hook", ["s3:ObjectCreated:*", "s3:ObjectRemoved:*"]))
        s3.put_object(Bucket="mem", Key="a", Body=b"x")
        s3.delete_object(Bucket="mem", Key="a")
        receiver.wait_for(2)
        assert sorted(receiver.names()) == [("ObjectCreated:Put", "a"), ("ObjectRemoved:Delete", "a")]
        assert (tmp_path / "data" / "memory" / "events").is_dir() == (persistence == "true")
    finally:
        proc.stop()
        receiver.close()
