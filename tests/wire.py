"""Small helpers the protocol tests share: error codes, raw HTTP requests and answers, form bodies, checksum values."""

from __future__ import annotations

import base64
import http.client
import uuid
from dataclasses import dataclass, field
from xml.etree import ElementTree

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


@dataclass
class Answer:
    """A server's answer to ``request``: lower-cased headers, and the parsed S3 error when it is one."""

    status: int
    headers: dict[str, str]
    body: bytes
    error: dict[str, str] = field(default_factory=dict)


def request(
    server: ServerProcess, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> Answer:
    """One request on its own connection, checked: every answer has a request id, every error is S3 error XML."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        answer = Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()
    assert answer.headers.get("x-amz-request-id"), answer
    if answer.status >= 300 and method != "HEAD":
        answer.error = parse_error(answer)
    return answer


def parse_error(answer: Answer) -> dict[str, str]:
    """An S3 error body: XML with Code, Message and RequestId matching the header."""
    assert answer.headers.get("content-type") == "application/xml", answer
    root = ElementTree.fromstring(answer.body)
    assert root.tag == "Error", answer.body
    fields = {child.tag: child.text or "" for child in root}
    assert fields.get("Code") and fields.get("Message"), answer.body
    assert fields.get("RequestId") == answer.headers["x-amz-request-id"]
    return fields


def expect(answer: Answer, status: int, code: str) -> dict[str, str]:
    """Assert the answer is this S3 error; returns the error's fields."""
    assert (answer.status, answer.error.get("Code")) == (status, code), answer
    return answer.error


def multipart(fields: list[tuple[str, str]], file: bytes, filename: str = "upload.bin") -> tuple[str, bytes]:
    """A browser form upload's body: (Content-Type with its boundary, multipart/form-data bytes)."""
    boundary = uuid.uuid4().hex
    out = bytearray()
    for name, value in fields:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    out += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    out += file + f"\r\n--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", bytes(out)
