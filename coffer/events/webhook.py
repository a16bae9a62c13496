"""A minimal HTTP/1.1 POST client over asyncio streams (http://, and https:// through ssl), with one
kept-alive connection per delivery worker: no HTTP client library is a dependency of Coffer, and a
webhook needs only "POST this JSON, what status came back"."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_RESPONSE_HEAD = 64 * 1024
MAX_RESPONSE_BODY = 1 << 20  # a receiver's answer is read and dropped; longer ones close the connection


class WebhookError(Exception):
    """The receiver could not be reached or did not answer HTTP."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    path: str
    tls: bool
    host_header: str

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        tls = parts.scheme == "https"
        port = parts.port or (443 if tls else 80)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        return cls(parts.hostname, port, path, tls, parts.netloc.rsplit("@", 1)[-1])


class Connection:
    """One connection to the receiver, opened on first use and again after any failure."""

    def __init__(self, endpoint: Endpoint, auth_header: str = "") -> None:
        self.endpoint = endpoint
        self.auth_header = auth_header
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes, timeout: float) -> int:
        """POST ``body`` (JSON); the status code. WebhookError or TimeoutError when there is none."""
        try:
            return await asyncio.wait_for(self._post(body), timeout)
        except BaseException:
            self.close()
            raise

    async def _post(self, body: bytes) -> int:
        if self._writer is None:
            context = ssl.create_default_context() if self.endpoint.tls else None
            try:
                self._reader, self._writer = await asyncio.open_connection(
                    self.endpoint.host, self.endpoint.port, ssl=context
                )
            except OSError as exc:
                raise WebhookError(f"cannot connect: {exc}") from None
        assert self._reader is not None and self._writer is not None
        head = (
            f"POST {self.endpoint.path} HTTP/1.1\r\nHost: {self.endpoint.host_header}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nUser-Agent: coffer-events\r\n"
        )
        if self.auth_header:
            head += f"Authorization: {self.auth_header}\r\n"
        try:
            self._writer.write(head.encode("latin-1") + b"\r\n" + body)
            await self._writer.drain()
            return await self._response(self._reader)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as exc:
            raise WebhookError(f"bad answer: {exc}") from None

    async def _response(self, reader: asyncio.StreamReader) -> int:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_RESPONSE_HEAD:
            raise WebhookError("response head too long")
        lines = head.decode("latin-1").split("\r\n")
        status_line = lines[0].split(" ", 2)
        if len(status_line) < 2 or not status_line[0].startswith("HTTP/1."):
            raise WebhookError(f"not an HTTP response: {lines[0][:80]!r}")
        status = int(status_line[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = headers.get("content-length")
        keep = headers.get("connection", "").lower() != "close" and status_line[0] == "HTTP/1.1"
        if length is not None and length.isdigit() and int(length) <= MAX_RESPONSE_BODY:
            await reader.readexactly(int(length))
        elif not (length == "0" or status in (204, 304)):
            keep = False  # chunked or unbounded: not worth parsing, start afresh next time
        if not keep:
            self.close()
        return status

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
