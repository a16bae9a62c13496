"""uvicorn's httptools HTTP/1.1 protocol, hardened for hostile input.

- The request line and header section are capped while they are parsed (the
  app never sees an oversized head, and memory stays bounded): over the cap
  the client gets an S3 error (RequestHeaderSectionTooLarge / InvalidURI).
- Unparseable input answers S3 error XML instead of uvicorn's plain text.
- Bytes after a request's declared body that are not a valid next request (a
  Content-Length that understates the body) do not cut off the request in
  flight: it is answered normally, then the connection is closed.
"""

from __future__ import annotations

import json
import os
from functools import cache

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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


class CofferHttpToolsProtocol(HttpToolsProtocol):
    _coffer_url_bytes = 0
    _coffer_head_bytes = 0
    _coffer_error: tuple[str, str] | None = None

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
