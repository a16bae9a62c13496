"""Decoder for ``Content-Encoding: aws-chunked`` request bodies.

Framing (signed variants add ``;chunk-signature=<hex>`` after the size)::

    <hex size>[;chunk-signature=<sig>]\\r\\n<data>\\r\\n ... 0[;chunk-signature=<sig>]\\r\\n
    [<trailer-name>:<value>\\r\\n ...]\\r\\n

Only payload bytes are yielded; the framing is never stored. Trailers (e.g.
``x-amz-checksum-crc32``) are collected into ``trailers`` for the caller to
check once the body has ended. When a chunk verifier is given (signed
streaming uploads) every chunk's signature is checked as soon as its data has
been read, and the trailer signature after the trailers, so a tampered body
fails before it ends (and before the engine publishes anything).
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Protocol

from coffer.server.errors import S3Error

MAX_LINE = 4096  # a size line or trailer line longer than this is malformed
MAX_TRAILER_LINES = 16


def _malformed(detail: str) -> S3Error:
    return S3Error("InvalidRequest", f"Malformed aws-chunked body: {detail}")


class ChunkVerifier(Protocol):
    trailer_signed: bool

    def verify_chunk(self, data_sha256: str, signature: str | None) -> None: ...
    def verify_trailer(self, canonical_trailers: bytes, signature: str | None) -> None: ...


class ChunkedDecoder:
    def __init__(self, source: AsyncIterator[bytes], chain: ChunkVerifier | None = None) -> None:
        self._source = source
        self._chain = chain
        self.trailers: dict[str, str] = {}
        self.trailer_signature: str | None = None
        self._buf = bytearray()

    async def _fill(self) -> bool:
        """Append the next piece of the raw body; False at its end."""
        while True:
            piece = await anext(self._source, None)
            if piece is None:
                return False
            if piece:
                self._buf += piece
                return True

    async def _line(self) -> bytes:
        while True:
            idx = self._buf.find(b"\r\n")
            if idx >= 0:
                line = bytes(self._buf[:idx])
                del self._buf[: idx + 2]
                return line
            if len(self._buf) > MAX_LINE:
                raise _malformed("line too long")
            if not await self._fill():
                raise S3Error("IncompleteBody", "The aws-chunked body ended early.")

    async def __aiter__(self) -> AsyncIterator[bytes]:
        while True:
            line = await self._line()
            size_text, _, ext = line.partition(b";")
            size_text = size_text.strip()
            if not size_text or len(size_text) > 16 or any(c not in b"0123456789abcdefABCDEF" for c in size_text):
                raise _malformed("bad chunk size")
            size = int(size_text, 16)
            signature: str | None = None
            if ext:
                name, _, value = ext.partition(b"=")
                if name.strip() != b"chunk-signature":
                    raise _malformed("unknown chunk extension")
                signature = value.strip().decode("ascii", "replace")
            hasher = hashlib.sha256() if self._chain is not None else None
            if size == 0:
                if self._chain is not None:
                    self._chain.verify_chunk(_EMPTY_SHA256, signature)
                await self._read_trailers()
                return
            remaining = size
            while remaining:
                if not self._buf and not await self._fill():
                    raise S3Error("IncompleteBody", "The aws-chunked body ended early.")
                if len(self._buf) <= remaining:
                    data = bytes(self._buf)
                    self._buf.clear()
                else:
                    data = bytes(self._buf[:remaining])
                    del self._buf[:remaining]
                remaining -= len(data)
                if hasher is not None:
                    hasher.update(data)
                yield data
            while len(self._buf) < 2:
                if not await self._fill():
                    raise S3Error("IncompleteBody", "The aws-chunked body ended early.")
            if self._buf[:2] != b"\r\n":
                raise _malformed("chunk data longer than its size")
            del self._buf[:2]
            if self._chain is not None and hasher is not None:
                self._chain.verify_chunk(hasher.hexdigest(), signature)

    async def _read_trailers(self) -> None:
        for _ in range(MAX_TRAILER_LINES + 1):
            # The final CRLF is optional at the very end of the stream for some clients.
            if not self._buf and not await self._fill():
                self._check_trailer_signature()
                return
            line = await self._line()
            if not line:
                if self._buf.strip() or await self._fill():
                    raise _malformed("data after the final chunk")
                self._check_trailer_signature()
                return
            name, sep, value = line.partition(b":")
            if not sep:
                raise _malformed("bad trailer line")
            key = name.strip().lower().decode("ascii", "replace")
            text = value.strip().decode("ascii", "replace")
            if key == "x-amz-trailer-signature":
                self.trailer_signature = text
            else:
                self.trailers[key] = text
        raise _malformed("too many trailers")

    def _check_trailer_signature(self) -> None:
        chain = self._chain
        if chain is None or not chain.trailer_signed:
            return  # unsigned variants never need a trailer signature
        if not self.trailers and self.trailer_signature is None:
            return
        canonical = "".join(f"{name}:{self.trailers[name]}\n" for name in sorted(self.trailers))
        chain.verify_trailer(canonical.encode("utf-8"), self.trailer_signature)


_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
