"""Request size limits and per-IP / per-access-key rate limiting (503 SlowDown)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.auth_support import ALT, MAIN, User, client, start_auth_server
from tests.server_process import ServerProcess


def one_shot(server: ServerProcess, user: User):  # type: ignore[no-untyped-def]
    """A client that never retries (botocore retries SlowDown after a back-off otherwise)."""
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        aws_access_key_id=user.access_key,
        aws_secret_access_key=user.secret_key,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # A burst of 5 and one request a second per access key; a small request size limit.
    server = start_auth_server(
        tmp_path_factory.mktemp("limited"), rate_limit_per_key=1, rate_limit_burst=5, max_request_size=1 << 20
    )
    yield server
    server.stop()


def _codes(call, count: int) -> list[str]:  # type: ignore[no-untyped-def]
    codes = []
    for _ in range(count):
        try:
            call()
            codes.append("ok")
        except ClientError as exc:
            codes.append(str(exc.response["Error"]["Code"]))
    return codes


def test_rate_limit_per_access_key(limited: ServerProcess) -> None:
    main = one_shot(limited, MAIN)
    alt = one_shot(limited, ALT)
    codes = _codes(main.list_buckets, 30)
    assert "SlowDown" in codes and codes[0] == "ok"
    assert set(codes) <= {"ok", "SlowDown"}
    # Another key has its own budget.
    assert alt.list_buckets()["Owner"]["ID"] == ALT.user_id


def test_request_size_limit(limited: ServerProcess) -> None:
    alt = client(limited, ALT)
    alt.create_bucket(Bucket="size-limited")
    alt.put_object(Bucket="size-limited", Key="fits", Body=b"x" * 1000)
    with pytest.raises(ClientError) as exc:
        alt.put_object(Bucket="size-limited", Key="too-big", Body=b"x" * (2 << 20))
    assert exc.value.response["Error"]["Code"] == "EntityTooLarge"
    assert [o["Key"] for o in alt.list_objects_v2(Bucket="size-limited")["Contents"]] == ["fits"]


@pytest.mark.server
def test_rate_limit_per_ip(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "data", "--fsync", "never", "--rate-limit-per-ip", "1", "--rate-limit-burst", "3"
    ).start()
    try:
        s3 = one_shot(server, User("anyone", "any-secret", "", ""))
        codes = _codes(s3.list_buckets, 20)
        assert "SlowDown" in codes and codes[0] == "ok"
        assert set(codes) <= {"ok", "SlowDown"}
    finally:
        server.stop()
