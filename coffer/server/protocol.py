"""uvicorn's httptools HTTP/1.1 protocol, hardened for hostile input.

- The request line and header section are capped while they are parsed (the
  app never sees an oversized head, and memory stays bounded): over the cap
  the client gets an S3 error (RequestHeaderSectionTooLarge / InvalidURI).
- Unparseable input answers S3 error XML instead of uvicorn's plain text.
- Bytes after a request's declared body that are not a valid next request (a
  Content-Length that understates the body) do not cut off the request in
  flight: it is answered normally, then the connection is closed.
- A response's head goes out in the same write as its first body chunk
  (uvicorn writes them separately): one syscall fewer per response.
"""

from __future__ import annotations

import json
import os
from functools import cache
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

DEFAULT_HEAD_LIMIT = 16384


@cache
def head_limit() -> int:
    """max_header_size of the running server (workers get settings through the environment)."""
    raw = os.environ.get("COFFER_SETTINGS_JSON")
    if raw:
        try:
            return int(json.loads(raw).get("max_header_size", DEFAULT_HEAD_LIMIT))
        except (ValueError, TypeError, AttributeError):
            pass
    return DEFAULT_HEAD_LIMIT


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
        corked = self.transport if isinstance(self.transport, _CorkedTransport) else None
        if corked is None and message["type"] == "http.response.start" and not self.response_started:
            corked = self.transport = _CorkedTransport(self.transport)
            try:
                await super().send(message)
            except BaseException:
                self.transport = corked.real
                corked.flush()
                raise
            return
        try:
            await super().send(message)
        finally:
            if corked is not None:
                self.transport = corked.real
                corked.flush()


class CofferHttpToolsProtocol(HttpToolsProtocol):
    _coffer_url_bytes = 0
    _coffer_head_bytes = 0
    _coffer_error: tuple[str, str] | None = None

    def on_headers_complete(self) -> None:
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
        if self._coffer_url_bytes > head_limit():
            self._coffer_error = ("InvalidURI", "The request URI is too long.")
            raise _HeadTooLarge()
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._coffer_head_bytes += len(name) + len(value)
        if self._coffer_head_bytes > head_limit():
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
        request_id = os.urandom(8).hex().upper()
        body = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f"<Error><Code>{code}</Code><Message>{message}</Message>"
            f"<RequestId>{request_id}</RequestId><HostId>{request_id}</HostId></Error>"
        ).encode()
        head = (
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/xml\r\n"
            f"content-length: {len(body)}\r\nx-amz-request-id: {request_id}\r\nconnection: close\r\n\r\n"
        ).encode()
        if not self.transport.is_closing():
            self.transport.write(head + body)
            self.transport.close()
