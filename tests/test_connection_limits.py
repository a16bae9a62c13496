"""Slow and idle clients cannot hold connections; the connection cap refuses the excess.

Raw sockets against a real server started with short timeouts. No test asserts a
duration: each only requires the server to close the connection eventually, well
within a generous bound (a server without the timeouts keeps them open forever).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.server_process import ServerProcess

# Every test here starts `coffer serve` processes.
pytestmark = pytest.mark.server

TIMEOUT = 1  # request_head_timeout, keep_alive_timeout and body_idle_timeout of the test server
BOUND = 30.0  # seconds after which a connection still open means it was never timed out


@pytest.fixture(scope="module")
def short(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(
        tmp_path_factory.mktemp("short") / "data",
        "--fsync", "never",
        "--request-head-timeout", str(TIMEOUT),
        "--keep-alive-timeout", str(TIMEOUT),
        "--body-idle-timeout", str(TIMEOUT),
    ).start()  # fmt: skip
    yield server
    server.stop()


def _connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=BOUND)


def _read_until_closed(sock: socket.socket, trickle: bytes = b"") -> bytes:
    """Everything the server sends until it closes; meanwhile send ``trickle`` a byte at a time."""
    sock.settimeout(0.2)
    received = b""
    deadline = time.monotonic() + BOUND
    sent = 0
    while time.monotonic() < deadline:
        try:
            piece = sock.recv(65536)
        except TimeoutError:
            if sent < len(trickle):
                try:
                    sock.sendall(trickle[sent : sent + 1])
                except OSError:
                    pass  # closed under us: recv tells
                sent += 1
            continue
        except ConnectionResetError:
            return received
        if not piece:
            return received
        received += piece
    raise AssertionError(f"connection still open after {BOUND} s; received {received!r}")


def _response(sock: socket.socket) -> bytes:
    """One complete response with a Content-Length, read off a keep-alive connection."""
    sock.settimeout(BOUND)
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, f"closed before a whole response: {data!r}"
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        piece = sock.recv(65536)
        assert piece, f"closed before a whole response: {data!r}"
        body += piece
    return head


def test_idle_connection_is_closed(short: ServerProcess) -> None:
    with _connect(short) as sock:
        assert _read_until_closed(sock) == b""


def test_half_sent_head_is_closed_even_when_trickling(short: ServerProcess) -> None:
    # A header byte every 0.2 s: every byte is well within any idle timeout, the head never ends.
    with _connect(short) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        reply = _read_until_closed(sock, trickle=b"X-Slow: " + b"a" * 10_000)
    assert reply.startswith(b"HTTP/1.1 400"), reply
    assert b"<Code>RequestTimeout</Code>" in reply


def test_keep_alive_connection_trickling_the_next_head_is_closed(short: ServerProcess) -> None:
    with _connect(short) as sock:
        sock.sendall(b"GET /_coffer/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _response(sock).startswith(b"HTTP/1.1 200")
        reply = _read_until_closed(sock, trickle=b"GET / HTTP/1.1\r\nX-Slow: " + b"a" * 10_000)
    assert b"<Code>RequestTimeout</Code>" in reply


def test_many_slow_connections_then_a_normal_request(short: ServerProcess) -> None:
    socks = [_connect(short) for _ in range(200)]
    try:
        for sock in socks:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ")
        for sock in socks:
            _read_until_closed(sock)
    finally:
        for sock in socks:
            sock.close()
    with _connect(short) as sock:
        sock.sendall(b"GET /_coffer/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _response(sock).startswith(b"HTTP/1.1 200")


def test_stalled_body_times_out_and_closes(short: ServerProcess) -> None:
    """A body that stops arriving fails with RequestTimeout after body_idle_timeout (existing behaviour)."""
    with _connect(short) as sock:
        sock.sendall(b"PUT /stall-bucket HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _response(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"PUT /stall-bucket/k HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nonly ten b")
        reply = _read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 400") and b"<Code>RequestTimeout</Code>" in reply, reply


def test_connection_cap(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--fsync", "never", "--max-connections", "4").start()
    held: list[socket.socket] = []
    try:
        for _ in range(4):  # a completed request proves each one was accepted and counted
            sock = _connect(server)
            sock.sendall(b"GET /_coffer/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert _response(sock).startswith(b"HTTP/1.1 200")
            held.append(sock)
        with _connect(server) as extra:
            reply = _read_until_closed(extra)
        assert reply.startswith(b"HTTP/1.1 503"), reply
        assert b"<Code>SlowDown</Code>" in reply
        assert "connection limit reached" in server.log()
        held.pop().close()
        deadline = time.monotonic() + BOUND
        while True:  # the server notices the close asynchronously
            with _connect(server) as sock:
                sock.sendall(b"GET /_coffer/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                if _response(sock).startswith(b"HTTP/1.1 200"):
                    break
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        for sock in held:
            sock.close()
        server.stop()
