"""Load generators that stay out of the way of the server they measure.

Small requests: a callback-driven asyncio (uvloop) HTTP/1.1 client over N
keep-alive connections. Each connection writes its next request from inside
``data_received`` the moment the previous response is complete: no coroutine
switch, no future, no header dict per request, so on a 2-core machine the
client costs well under the server it drives (see docs/benchmarks.md).

Large bodies and listings: plain blocking sockets (``sendall`` / ``recv_into``
release the GIL and copy nothing in Python).
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import uvloop

# A request builder: (connection index, sequence number) -> complete request bytes.
RequestFactory = Callable[[int, int], bytes]

_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)
_CONNECTION_CLOSE = re.compile(rb"\r\nconnection:[ \t]*close", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    # Extra header lines sent with every request (a dummy signature for moto,
    # which refuses anonymous GETs; Coffer runs without credentials).
    extra_headers: bytes = b""

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        parts = urlsplit(url if "//" in url else "http://" + url)
        if parts.scheme != "http":
            raise ValueError(f"only http:// endpoints are supported (got {url!r})")
        return cls(parts.hostname or "127.0.0.1", parts.port or 80)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def headers(self) -> bytes:
        """The Host line and any extra lines, each ending in CRLF."""
        return f"Host: {self.host}:{self.port}\r\n".encode() + self.extra_headers


@dataclass(slots=True)
class LoadResult:
    ok: int = 0
    errors: int = 0
    seconds: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0


async def _never(index: int) -> None:
    raise RuntimeError("not running")


class _Driver:
    """Shared state of one load run: what to send, what was counted, when to stop."""

    def __init__(self, make: RequestFactory, stop_after: int | None) -> None:
        self.make = make
        self.counting = False
        self.stopping = False
        self.stop_after = stop_after
        self.issued = 0
        self.result = LoadResult()
        self.all_done: asyncio.Future[None] | None = None
        self.open = 0  # connections not yet finished
        self.connect: Callable[[int], Coroutine[Any, Any, None]] = _never

    def next_request(self, conn: int) -> bytes | None:
        if self.stopping:
            return None
        if self.stop_after is not None and self.issued >= self.stop_after:
            return None
        seq = self.issued
        self.issued += 1
        return self.make(conn, seq)

    def record(self, status: int) -> None:
        if not self.counting:
            return
        if 200 <= status < 300:
            self.result.ok += 1
        else:
            self.result.errors += 1
            self.result.statuses[status] = self.result.statuses.get(status, 0) + 1

    def finished(self) -> None:
        self.open -= 1
        if self.open == 0 and self.all_done is not None and not self.all_done.done():
            self.all_done.set_result(None)


class _Conn(asyncio.Protocol):
    __slots__ = ("buf", "driver", "index", "need", "reconnect", "status", "transport")

    def __init__(self, driver: _Driver, index: int) -> None:
        self.driver = driver
        self.index = index
        self.buf = b""
        self.need = -1  # total bytes of the current response once its head is parsed
        self.status = 0
        self.reconnect = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not an asyncio.Transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._send_next()

    def _send_next(self) -> None:
        request = self.driver.next_request(self.index)
        if request is None:
            assert self.transport is not None
            self.transport.close()
            return
        assert self.transport is not None
        self.transport.write(request)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if self.need < 0:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            head = buf[: end + 2]
            self.status = int(buf[9:12])
            match = _CONTENT_LENGTH.search(head)
            length = int(match.group(1)) if match else 0
            self.reconnect = _CONNECTION_CLOSE.search(head) is not None or buf.startswith(b"HTTP/1.0")
            self.need = end + 4 + length
        if len(buf) < self.need:
            self.buf = buf
            return
        self.buf = b""
        self.need = -1
        self.driver.record(self.status)
        if self.reconnect:
            assert self.transport is not None
            self.transport.close()  # connection_lost opens a fresh one
            return
        self._send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.reconnect and not self.driver.stopping:
            # The server closes after each response (HTTP/1.0 style): open a new one.
            self.reconnect = False
            asyncio.get_running_loop().create_task(self.driver.connect(self.index))
            return
        self.driver.finished()


async def _run_load(
    endpoint: Endpoint,
    make: RequestFactory,
    connections: int,
    warmup: float,
    duration: float,
    total: int | None,
) -> LoadResult:
    loop = asyncio.get_running_loop()
    driver = _Driver(make, total)
    driver.all_done = loop.create_future()

    async def connect(index: int) -> None:
        try:
            await loop.create_connection(lambda: _Conn(driver, index), endpoint.host, endpoint.port)
        except OSError:
            driver.result.errors += 1
            driver.finished()

    driver.connect = connect
    driver.open = connections
    driver.counting = total is not None
    start = time.perf_counter()
    await asyncio.gather(*(connect(i) for i in range(connections)))
    if total is not None:
        await driver.all_done
        driver.result.seconds = time.perf_counter() - start
        return driver.result
    await asyncio.sleep(warmup)
    driver.counting = True
    start = time.perf_counter()
    await asyncio.sleep(duration)
    driver.counting = False
    driver.result.seconds = time.perf_counter() - start
    driver.stopping = True
    await asyncio.wait_for(driver.all_done, 30)
    return driver.result


def run_load(
    endpoint: Endpoint,
    make: RequestFactory,
    *,
    connections: int = 32,
    warmup: float = 1.0,
    duration: float = 5.0,
    total: int | None = None,
) -> LoadResult:
    """Drive ``connections`` keep-alive connections: for ``duration`` seconds after
    ``warmup`` (counting only the measured window), or until ``total`` requests."""
    return uvloop.run(_run_load(endpoint, make, connections, warmup, duration, total))


# ---------------------------------------------------------------------- blocking


class BlockingConn:
    """One keep-alive HTTP/1.1 connection on a blocking socket."""

    def __init__(self, endpoint: Endpoint, timeout: float = 600) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self._buf = bytearray()

    def _connect(self) -> socket.socket:
        if self.sock is None:
            self.sock = socket.create_connection((self.endpoint.host, self.endpoint.port), timeout=self.timeout)
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._buf = bytearray()
        return self.sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes = b"",
        body_source: Callable[[], list[memoryview]] | None = None,
        length: int | None = None,
        sink: bool = False,
    ) -> tuple[int, bytes, int]:
        """Send a request; returns (status, body or b"" when ``sink``, body length).

        ``body_source`` yields the body in pieces (sent with ``sendall``) for
        bodies too large to build; ``sink`` reads the response body into a
        reused buffer and discards it.
        """
        sock = self._connect()
        if body_source is None:
            size = len(body)
        elif length is None:
            raise ValueError("body_source needs length")
        else:
            size = length
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self.endpoint.headers
        if method in ("PUT", "POST") or size:
            head += b"Content-Length: %d\r\n" % size
        head += b"\r\n"
        try:
            if body_source is None:
                sock.sendall(head + body)
            else:
                sock.sendall(head)
                for piece in body_source():
                    sock.sendall(piece)
            return self._read_response(sock, sink, method == "HEAD")
        except BaseException:
            self.close()
            raise

    def _read_response(self, sock: socket.socket, sink: bool, head_only: bool) -> tuple[int, bytes, int]:
        buf = self._buf
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("connection closed before the response head")
            buf += chunk
        head = bytes(buf[: end + 2])
        del buf[: end + 4]
        status = int(head[9:12])
        match = _CONTENT_LENGTH.search(head)
        length = 0 if head_only else (int(match.group(1)) if match else -1)
        close = _CONNECTION_CLOSE.search(head) is not None or head.startswith(b"HTTP/1.0")
        if length < 0:  # delimited by close
            while chunk := sock.recv(1 << 20):
                buf += chunk
            body = bytes(buf)
            self.close()
            return status, body, len(body)
        if sink:
            have = min(len(buf), length)
            del buf[:have]
            remaining = length - have
            scratch = bytearray(1 << 20)
            while remaining > 0:
                n = sock.recv_into(scratch, min(len(scratch), remaining))
                if n == 0:
                    raise ConnectionError("connection closed mid-body")
                remaining -= n
            body = b""
        else:
            while len(buf) < length:
                chunk = sock.recv(max(65536, length - len(buf)))
                if not chunk:
                    raise ConnectionError("connection closed mid-body")
                buf += chunk
            body = bytes(buf[:length])
            del buf[:length]
        if close:
            self.close()
        return status, body, length


def quote_key(key: str) -> str:
    return quote(key, safe="/-_.~")
