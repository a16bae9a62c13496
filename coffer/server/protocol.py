"""uvicorn's httptools HTTP/1.1 protocol, hardened for hostile input.

- The request line and header section are capped while they are parsed (the
  app never sees an oversized head, and memory stays bounded): over the cap
  the client gets an S3 error (RequestHeaderSectionTooLarge / InvalidURI).
- Unparseable input answers S3 error XML instead of uvicorn's plain text.
- Slow and idle clients cannot hold connections (docs/security.md): a
  connection idle for ``keep_alive_timeout`` (before its first request or
  between requests) is closed, and from its first byte a request head must be
  complete within ``request_head_timeout`` whatever the pace of the bytes
  (RequestTimeout). uvicorn alone arms its keep-alive timer only after a
  response and cancels it on any byte.
- At most ``max_connections`` connections per worker: one more is answered
  503 SlowDown and closed at once (uvicorn's ``limit_concurrency`` only acts
  once a request head is complete, so half-sent heads would never meet it).
- Bytes after a request's declared body that are not a valid next request (a
  Content-Length that understates the body) do not cut off the request in
  flight: it is answered normally, then the connection is closed.
- A response's head goes out in the same write as its first body chunk
  (uvicorn writes them separately): one syscall fewer per response.

This builds on uvicorn internals (attributes and callbacks of
``HttpToolsProtocol`` and ``RequestResponseCycle``), so pyproject.toml caps
uvicorn at the minor versions tested and tests/test_uvicorn_internals.py
fails loudly when what is used here changes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from functools import cache
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from coffer.config import Settings

log = logging.getLogger("coffer.server")


@cache
def server_settings() -> Settings:
    """The running server's settings (workers get them through the environment)."""
    raw = os.environ.get("COFFER_SETTINGS_JSON")
    return Settings.from_json(raw) if raw else Settings()


def _error(status: str, code: str, message: str) -> bytes:
    request_id = os.urandom(8).hex().upper()
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>"
    ).encode()
    head = (
        f"HTTP/1.1 {status}\r\ncontent-type: application/xml\r\n"
        f"content-length: {len(body)}\r\nx-amz-request-id: {request_id}\r\nconnection: close\r\n\r\n"
    ).encode()
    return head + body


_REQUEST_TIMEOUT = (
    "RequestTimeout",
    "Your socket connection to the server was not read from or written to within the timeout period.",
)
_CAP_LOG_INTERVAL = 10.0  # seconds between two "connection limit reached" lines of one worker


class _ConnectionCap:
    """Counts refused connections and logs the limit being reached, at most once per interval."""

    refused = 0
    logged_at = -_CAP_LOG_INTERVAL

    @classmethod
    def refuse(cls, limit: int) -> None:
        cls.refused += 1
        now = time.monotonic()
        if now - cls.logged_at >= _CAP_LOG_INTERVAL:
            cls.logged_at = now
            log.warning(
                "connection limit reached: %d open connections in this worker (max_connections); "
                "new connections are answered 503 SlowDown and closed (%d so far)",
                limit,
                cls.refused,
            )


class _HeadTooLarge(Exception):
    pass


_JOIN_LIMIT = 256 * 1024  # a larger first chunk goes out in its own write: copying it costs more


class _CorkedTransport:
    """Holds what uvicorn writes for a response head until the first body message."""

    def __init__(self, transport: Any) -> None:
        self.real = transport
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.parts.append(data)

    def flush(self) -> None:
        parts, self.parts = self.parts, []
        if len(parts) == 2 and len(parts[1]) <= _JOIN_LIMIT:
            self.real.write(parts[0] + parts[1])
        else:
            for part in parts:
                self.real.write(part)

    def close(self) -> None:
        self.flush()
        self.real.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


class _CoalescingCycle(RequestResponseCycle):
    """uvicorn's cycle, with the head held back until the first body message."""

    async def send(self, message: Any) -> None:
        transport = self.transport
        if isinstance(transport, _CorkedTransport):
            try:
                await super().send(message)
            finally:
                self.transport = transport.real
                transport.flush()
            return
        if message["type"] == "http.response.start" and not self.response_started:
            corked = _CorkedTransport(transport)
            self.transport = cast(asyncio.Transport, corked)
            try:
                await super().send(message)
            except BaseException:
                self.transport = transport
                corked.flush()
                raise
            return
        await super().send(message)


class CofferHttpToolsProtocol(HttpToolsProtocol):
    _coffer_url_bytes = 0
    _coffer_head_bytes = 0
    _coffer_error: tuple[str, str] | None = None
    _coffer_head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        cap = server_settings().max_connections
        if cap and len(self.connections) > cap:
            _ConnectionCap.refuse(cap)
            transport.write(_error("503 Service Unavailable", "SlowDown", "Please reduce your request rate."))
            transport.close()
            return
        # The idle timer uvicorn arms only after a response: a client that never sends is closed too.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # cancels the idle timer
        waiting_for_head = self.cycle is None or self.cycle.response_complete
        if waiting_for_head and self._coffer_head_timer is None and not self.transport.is_closing():
            timeout = server_settings().request_head_timeout
            if timeout:
                self._coffer_head_timer = self.loop.call_later(timeout, self._coffer_head_timeout)

    def _coffer_head_timeout(self) -> None:
        self._coffer_head_timer = None
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self._coffer_error = _REQUEST_TIMEOUT
            self.send_400_response("request head timeout")

    def _coffer_cancel_head_timer(self) -> None:
        if self._coffer_head_timer is not None:
            self._coffer_head_timer.cancel()
            self._coffer_head_timer = None

    def connection_lost(self, exc: Exception | None) -> None:
        self._coffer_cancel_head_timer()
        super().connection_lost(exc)

    def on_headers_complete(self) -> None:
        self._coffer_cancel_head_timer()
        super().on_headers_complete()
        # uvicorn creates the cycle here and starts its task on the next loop turn; no factory
        # to override, so the new cycle gets head coalescing by class before its task runs.
        cycle = self.cycle
        if type(cycle) is RequestResponseCycle:
            cycle.__class__ = _CoalescingCycle

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._coffer_url_bytes = 0
        self._coffer_head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._coffer_url_bytes += len(url)
        if self._coffer_url_bytes > server_settings().max_header_size:
            self._coffer_error = ("InvalidURI", "The request URI is too long.")
            raise _HeadTooLarge()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._coffer_head_bytes += len(name) + len(value)
        if self._coffer_head_bytes > server_settings().max_header_size:
            self._coffer_error = (
                "RequestHeaderSectionTooLarge",
                "Your request header section exceeds the maximum allowed size.",
            )
            raise _HeadTooLarge()
        super().on_header(name, value)

    def send_400_response(self, msg: str) -> None:
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete and self._coffer_error is None:
            if not cycle.more_body:
                # Garbage after a complete body (a lying Content-Length): answer the request in flight,
                # then close the connection.
                cycle.keep_alive = False
                self.flow.pause_reading()
                return
            # A malformed body: the app sees the client go away; the client gets the error below.
            cycle.disconnected = True
            cycle.message_event.set()
            if cycle.response_started:
                self.transport.close()
                return
        code, message = self._coffer_error or ("BadRequest", "An error occurred when parsing the HTTP request.")
        if not self.transport.is_closing():
            self.transport.write(_error("400 Bad Request", code, message))
            self.transport.close()
