"""The request as handlers see it: addressing resolved, headers and query decoded."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import os
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote_to_bytes

from coffer.server.auth.principal import ANONYMOUS, Principal
from coffer.server.errors import S3Error
from coffer.server.http import parse_int

if TYPE_CHECKING:
    from coffer.server.access.request_access import RequestAccess
    from coffer.server.chunked import ChunkVerifier
    from coffer.server.router import Route

Receive = Callable[[], Awaitable[dict[str, Any]]]

MAX_KEY_BYTES = 1024

# Request ids: a random per-process prefix plus a counter (unique without a
# syscall per request): 16 upper-case hex digits like S3's.
_ID_PREFIX = os.urandom(4).hex().upper()
_ids = itertools.count(int.from_bytes(os.urandom(4), "big"))


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ids) & 0xFFFFFFFF:08X}"


class ClientDisconnected(Exception):
    """The client went away before sending its whole body."""


class Request:
    __slots__ = (
        "_body_done",
        "_body_started",
        "_receive",
        "access",
        "body_limit",
        "body_timeout",
        "bucket",
        "bytes_in",
        "chunk_chain",
        "client",
        "headers",
        "key",
        "method",
        "operation",
        "principal",
        "query",
        "raw_path",
        "raw_query",
        "request_id",
        "route",
        "virtual_host",
    )

    def __init__(self, scope: dict[str, Any], receive: Receive, base_domains: tuple[str, ...]) -> None:
        self.method: str = scope["method"]
        self.request_id = new_request_id()
        self._receive = receive
        self._body_started = False
        self._body_done = False
        self.bytes_in = 0
        self.operation = "Unknown"  # the route's name once classified (metrics, logs)
        self.route: Route | None = None
        # Set by the auth gate: who the request acts as, the chunk-signature chain of a signed
        # streaming upload, and the most body bytes accepted.
        self.principal: Principal = ANONYMOUS
        # Set by the auth gate when it authorizes: what handlers ask for decisions of their own
        # (None: authorization is off, everything is allowed).
        self.access: RequestAccess | None = None
        self.chunk_chain: ChunkVerifier | None = None
        self.body_limit: int | None = None
        self.body_timeout: float | None = None  # seconds a body may stall before RequestTimeout
        self.virtual_host = False
        client = scope.get("client")
        self.client = f"{client[0]}:{client[1]}" if client else "-"
        raw_headers = scope["headers"]
        # ASGI servers send lower-case names; the comprehension is the common case,
        # the loop handles repeated headers (joined with commas, as RFC 9110 allows).
        headers = {n.decode("latin-1"): v.decode("latin-1") for n, v in raw_headers}
        if len(headers) != len(raw_headers) or not "".join(headers).islower():
            headers = {}
            for raw_name, raw_value in raw_headers:
                name = raw_name.decode("latin-1").lower()
                value = raw_value.decode("latin-1")
                headers[name] = f"{headers[name]},{value}" if name in headers else value
        self.headers = headers
        qs = scope.get("query_string", b"")
        self.raw_query: bytes = qs
        self.query: dict[str, str] = {}
        if qs:
            try:
                for k, v in parse_qsl(qs.decode("utf-8"), keep_blank_values=True, errors="strict"):
                    self.query.setdefault(k, v)
            except UnicodeDecodeError:
                raise S3Error("InvalidURI") from None
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        self.raw_path = raw_path.split(b"?", 1)[0]
        self.bucket, self.key = self._address(base_domains)

    def _address(self, base_domains: tuple[str, ...]) -> tuple[str | None, str | None]:
        raw_path = self.raw_path
        try:
            path = (unquote_to_bytes(raw_path) if b"%" in raw_path else raw_path).decode("utf-8")
        except UnicodeDecodeError:
            raise S3Error("InvalidURI", "Couldn't parse the specified URI: the path is not valid UTF-8.") from None
        if not path.startswith("/"):
            raise S3Error("InvalidURI")
        host = self.headers.get("host", "").lower()
        if host.startswith("["):  # IPv6 literal, never a bucket
            host = ""
        else:
            host = host.rsplit(":", 1)[0] if ":" in host else host
        for domain in base_domains:
            if host.endswith("." + domain):
                bucket = host[: -len(domain) - 1]
                key = path[1:]
                self.virtual_host = True
                return bucket, (key or None)
        rest = path[1:]
        if not rest:
            return None, None
        bucket, sep, key = rest.partition("/")
        return bucket, (key if sep and key else None)

    @property
    def client_ip(self) -> str:
        return self.client.rsplit(":", 1)[0]

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    @property
    def content_length(self) -> int | None:
        raw = self.headers.get("content-length")
        return None if raw is None else parse_int(raw, "Content-Length")

    @property
    def decoded_content_length(self) -> int | None:
        """x-amz-decoded-content-length: the payload size of an aws-chunked body (its one parse)."""
        raw = self.headers.get("x-amz-decoded-content-length")
        return None if raw is None else parse_int(raw, "x-amz-decoded-content-length")

    @property
    def declared_length(self) -> int | None:
        """The size of the payload the client announced: decoded length of aws-chunked, else Content-Length."""
        decoded = self.decoded_content_length
        return decoded if decoded is not None else self.content_length

    # ------------------------------------------------------------------ body
    async def body(self, verify_sha256: bool = True) -> AsyncIterator[bytes]:
        """The raw request body, piece by piece, checked against Content-Length.

        When ``x-amz-content-sha256`` names the body's SHA-256 the body is hashed
        on the way and a mismatch raises XAmzContentSHA256Mismatch before the
        last piece is handed over; consumers that hash the body themselves (uploads,
        whose engine hashes off the event loop) pass ``verify_sha256=False``.
        """
        if self._body_started:
            raise RuntimeError("body already consumed")
        self._body_started = True
        expected = self.content_length
        limit = self.body_limit
        hasher = None
        declared = self.headers.get("x-amz-content-sha256", "") if verify_sha256 else ""
        if len(declared) == 64:
            try:
                want = bytes.fromhex(declared)
                hasher = hashlib.sha256()
            except ValueError:
                pass
        received = 0
        pending = b""  # held back until the hash is checked, so a mismatch stops the consumer first
        idle = self.body_timeout
        loop = asyncio.get_running_loop()
        try:
            # Armed only while waiting for the client, never while the consumer works on a piece.
            async with asyncio.timeout(None) as deadline:
                while True:
                    if idle:
                        deadline.reschedule(loop.time() + idle)
                    message = await self._receive()
                    if idle:
                        deadline.reschedule(None)
                    if message["type"] == "http.disconnect":
                        raise ClientDisconnected()
                    chunk = message.get("body", b"")
                    if chunk:
                        received += len(chunk)
                        self.bytes_in = received
                        if expected is not None and received > expected:
                            raise S3Error("InvalidRequest", "The request body is longer than its Content-Length.")
                        if limit is not None and received > limit:
                            raise S3Error("EntityTooLarge", MaxSizeAllowed=str(limit))
                        if hasher is not None:
                            hasher.update(chunk)
                            if pending:
                                yield pending
                            pending = chunk
                        else:
                            yield chunk
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            raise S3Error("RequestTimeout") from None
        self._body_done = True
        if expected is not None and received < expected:
            raise S3Error("IncompleteBody")
        if hasher is not None:
            if not hmac.compare_digest(hasher.digest(), want):
                raise S3Error("XAmzContentSHA256Mismatch")
            if pending:
                yield pending

    async def read_body(self, limit: int) -> bytes:
        """The whole body, for small documents (XML configuration, delete lists)."""
        length = self.content_length
        if length is not None and length > limit:
            raise S3Error("EntityTooLarge" if limit > 1 << 20 else "MalformedXML", "The request body is too large.")
        parts = bytearray()
        async for chunk in self.body():
            parts += chunk
            if len(parts) > limit:
                raise S3Error("MalformedXML", "The request body is too large.")
        return bytes(parts)

    def drained(self) -> bool:
        return self._body_started

    def body_pending(self) -> bool:
        """Whether the client announced a body we answered without reading to its end."""
        return not self._body_done and request_has_body(self.headers)


def request_has_body(headers: dict[str, str]) -> bool:
    return headers.get("content-length", "0") not in ("0", "") or "transfer-encoding" in headers


def validate_key(key: str) -> None:
    """Checks for any key a request names."""
    if len(key.encode("utf-8")) > MAX_KEY_BYTES:
        raise S3Error("KeyTooLongError", Size=str(len(key.encode("utf-8"))), MaxSizeAllowed=str(MAX_KEY_BYTES))
    # NUL cannot be carried in XML listings.
    if "\x00" in key:
        raise S3Error("InvalidArgument", "Object key names may not contain NUL characters.", ArgumentName="key")


_DOT_SEGMENT = re.compile(r"(?:^|[/\\])\.{1,2}(?:[/\\]|$)")


def validate_new_key(key: str, dot_segments: str) -> None:
    """Checks for a key about to be written (PutObject, CopyObject's target, multipart, POST).

    Keys never become file paths here (bodies live under random names), but a key
    with a '.' or '..' path segment turns into a path traversal the moment a client
    mirrors the bucket to a file system (aws s3 sync, rclone, s3fs): refused unless
    ``dot_segment_keys: allow``. Keys already stored stay readable and deletable.
    """
    validate_key(key)
    if dot_segments != "allow" and _DOT_SEGMENT.search(key):
        raise S3Error(
            "InvalidArgument",
            "Object key names may not contain '.' or '..' path segments (dot_segment_keys: reject).",
            ArgumentName="key",
            ArgumentValue=key,
        )
