"""Small helpers the protocol tests share: error codes, raw HTTP, checksum values."""

from __future__ import annotations

import base64
import http.client

import pytest
from botocore.exceptions import ClientError

from coffer import checksums
from tests.server_process import ServerProcess


def error_of(exc: pytest.ExceptionInfo[ClientError]) -> tuple[int, str]:
    """(HTTP status, S3 error code) of a botocore ClientError."""
    response = exc.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def raw(
    server: ServerProcess, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> tuple[int, bytes, dict[str, str]]:
    """One request on its own connection: (status, body, lower-cased headers)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def digest(algorithm: str, data: bytes) -> bytes:
    hasher = checksums.new_hasher(algorithm)
    hasher.update(data)
    return hasher.digest()


def b64(raw_digest: bytes) -> str:
    return base64.b64encode(raw_digest).decode()
