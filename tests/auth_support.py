"""Fixtures and helpers for tests of an authenticated server (loaded from conftest.py).

``auth_server`` is one real server with two users (MAIN, ALT) configured the
three ways Coffer accepts keys: the root pair from the environment, a
``credentials:`` list in a config file, and (in some tests) ``coffer keys add``.
Raw requests are signed with botocore's own SigV4/SigV2 signers, so the server
is checked against the reference client implementation.
"""

from __future__ import annotations

import http.client
import itertools
import os
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import pytest
import yaml
from botocore.auth import HmacV1Auth, S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from tests.server_process import ServerProcess


@dataclass(frozen=True)
class User:
    access_key: str
    secret_key: str
    user_id: str
    display_name: str


# MAIN is the root pair (from the environment); ALT comes from the config's credentials list.
MAIN = User("AKIAMAINUSER0000", "main/secret+key=0123456789abcdef", "main-user-id", "Main User")
ALT = User("AKIAALTUSER00000", "alt-secret-key-0123456789abcdef", "alt-user-id", "Alt User")
ALT_TOKEN = "alt-bearer-token-0123456789"
ALT_EMAIL = "alt@example.com"
PUBLIC_HOST = "s3.public.example:8443"
IDLE_TIMEOUT = 2

_names = itertools.count()


def write_config(path: Path, **settings: object) -> Path:
    path.write_text(yaml.safe_dump(settings))
    return path


def start_auth_server(root: Path, *args: str, **settings: object) -> ServerProcess:
    """A server with MAIN as root pair (env) and ALT in the config file's credentials list."""
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "credentials": [
            {
                "access_key": ALT.access_key,
                "secret_key": ALT.secret_key,
                "user_id": ALT.user_id,
                "display_name": ALT.display_name,
                "email": ALT_EMAIL,
                "token": ALT_TOKEN,
            }
        ],
        "root_user_id": MAIN.user_id,
        "root_display_name": MAIN.display_name,
        **settings,
    }
    config_file = write_config(root / "config.yaml", **config)
    env = {"COFFER_ACCESS_KEY": MAIN.access_key, "COFFER_SECRET_KEY": MAIN.secret_key}
    return ServerProcess(root / "data", "--fsync", "never", "--config", str(config_file), *args, env=env).start()


def client(server: ServerProcess, user: User = MAIN, **config: object):  # type: ignore[no-untyped-def]
    return server.client(user.access_key, user.secret_key, **config)


def new_bucket_name() -> str:
    return f"auth-bucket-{next(_names)}"


@pytest.fixture(scope="session")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # COFFER_TEST_STORAGE=memory runs the authorization tests (policies, Block Public Access,
    # ownership) on the memory engine, as conftest.py's ``server`` does for the protocol tests.
    storage = os.environ.get("COFFER_TEST_STORAGE", "disk")
    args = ("--storage", "memory", "--memory-persistence", "true") if storage == "memory" else ()
    proc = start_auth_server(
        tmp_path_factory.mktemp("auth-server"),
        *args,
        bearer_auth=True,
        public_hostname=PUBLIC_HOST,
        body_idle_timeout=IDLE_TIMEOUT,
    )
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def main_s3(auth_server: ServerProcess):  # type: ignore[no-untyped-def]
    return client(auth_server, MAIN)


@pytest.fixture(scope="session")
def alt_s3(auth_server: ServerProcess):  # type: ignore[no-untyped-def]
    return client(auth_server, ALT)


@pytest.fixture
def main_bucket(main_s3) -> str:  # type: ignore[no-untyped-def]
    name = new_bucket_name()
    main_s3.create_bucket(Bucket=name)
    return name


# ---------------------------------------------------------------------- raw requests
@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def code(self) -> str | None:
        """The S3 error code of an error reply."""
        text = self.body.decode("utf-8", "replace")
        start = text.find("<Code>")
        return text[start + 6 : text.find("</Code>")] if start >= 0 else None


class _Signer(S3SigV4Auth):
    """botocore's S3 signer, keeping an x-amz-content-sha256 the caller chose (UNSIGNED-PAYLOAD, STREAMING-...)."""

    def __init__(self, user: User, region: str, payload_hash: str | None) -> None:
        super().__init__(Credentials(user.access_key, user.secret_key), "s3", region)
        self._payload_hash = payload_hash

    def payload(self, request: AWSRequest) -> str:
        return self._payload_hash or str(super().payload(request))


def sign_v4(
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    user: User = MAIN,
    region: str = "us-east-1",
) -> dict[str, str]:
    """Headers of a SigV4-signed request, signed by botocore (x-amz-content-sha256 as given or hashed)."""
    headers = dict(headers or {})
    payload_hash = next((v for k, v in headers.items() if k.lower() == "x-amz-content-sha256"), None)
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    _Signer(user, region, payload_hash).add_auth(request)
    return dict(request.headers.items())


def presign_v4(method: str, url: str, expires: int, user: User = MAIN) -> str:
    """A SigV4 presigned URL made by botocore's pure-Python signer (its clock can be patched in tests)."""
    request = AWSRequest(method=method, url=url)
    S3SigV4QueryAuth(Credentials(user.access_key, user.secret_key), "s3", "us-east-1", expires=expires).add_auth(
        request
    )
    return str(request.url)


def sign_v2(
    method: str, url: str, headers: dict[str, str] | None = None, user: User = MAIN, auth_path: str | None = None
) -> dict[str, str]:
    """SigV2 headers; ``auth_path`` is the /bucket/key resource botocore signs for virtual-hosted URLs."""
    request = AWSRequest(method=method, url=url, headers=dict(headers or {}))
    request.auth_path = auth_path
    HmacV1Auth(Credentials(user.access_key, user.secret_key)).add_auth(request)
    return dict(request.headers.items())


def send(server: ServerProcess, method: str, target: str, headers: dict[str, str], body: bytes = b"") -> Reply:
    """One request over http.client, sent exactly as given (no header added but Host)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        names = {k.lower() for k in headers}
        if "host" not in names:
            conn.putheader("Host", f"127.0.0.1:{server.port}")
        if "content-length" not in names and (body or method in ("PUT", "POST")):
            conn.putheader("Content-Length", str(len(body)))
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders(body or None)
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def signed(
    server: ServerProcess,
    method: str,
    target: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    user: User = MAIN,
) -> Reply:
    url = server.endpoint + target
    signed_headers = sign_v4(method, url, headers, body, user)
    return send(
        server,
        method,
        urlsplit(url).path + ("?" + urlsplit(url).query if urlsplit(url).query else ""),
        signed_headers,
        body,
    )


def raw_exchange(server: ServerProcess, data: bytes, timeout: float = 30) -> bytes:
    """Send raw bytes on a fresh connection; read until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                piece = sock.recv(65536)
                if not piece:
                    break
                chunks.append(piece)
                if b"\r\n\r\n" in b"".join(chunks) and _complete(b"".join(chunks)):
                    break
        except TimeoutError:
            pass
    return b"".join(chunks)


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def tls_client(endpoint: str, ca_file: str, user: User = MAIN):  # type: ignore[no-untyped-def]
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=user.access_key,
        aws_secret_access_key=user.secret_key,
        region_name="us-east-1",
        verify=ca_file,
        config=Config(retries={"max_attempts": 1}),
    )


def outcome(call: Callable[[], object]) -> str:
    """The S3 error code a boto3 call answers, or "ok"."""
    try:
        call()
    except ClientError as exc:
        return str(exc.response["Error"]["Code"])
    return "ok"


def eventually(call: Callable[[], object], expected: str) -> None:
    """Servers re-check the key file every 0.1 s: allow a moment for a change to apply."""
    deadline = time.monotonic() + 10
    while (got := outcome(call)) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    assert got == expected
