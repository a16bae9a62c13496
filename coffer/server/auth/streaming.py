"""Chunk signatures of ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`` bodies.

Each chunk's signature chains from the previous one, starting at the request
signature (the seed)::

    AWS4-HMAC-SHA256-PAYLOAD \\n timestamp \\n scope \\n previous \\n sha256("") \\n sha256(chunk data)

and the trailer (``-TRAILER`` variant) is signed after the final empty chunk::

    AWS4-HMAC-SHA256-TRAILER \\n timestamp \\n scope \\n previous \\n sha256("name:value\\n" ...)

The aws-chunked decoder calls ``verify_chunk`` at the end of every chunk and
``verify_trailer`` after the trailers, before the body ends: a tampered chunk
aborts the upload before the engine publishes anything.
"""

from __future__ import annotations

import hashlib

from coffer.server.auth.sigv4 import EMPTY_SHA256, Verified, mismatch, sign, signatures_equal


class ChunkChain:
    def __init__(self, seed: Verified, access_key: str, trailer: bool) -> None:
        self._key = seed.key
        self._timestamp = seed.timestamp
        self._scope = seed.scope
        self._previous = seed.signature
        self._access_key = access_key
        self.trailer_signed = trailer  # the -TRAILER variant: the trailer carries a signature too

    def verify_chunk(self, data_sha256: str, signature: str | None) -> None:
        sts = (
            f"AWS4-HMAC-SHA256-PAYLOAD\n{self._timestamp}\n{self._scope}\n{self._previous}\n"
            f"{EMPTY_SHA256}\n{data_sha256}"
        )
        self._check(sts, signature)
        assert signature is not None
        self._previous = signature

    def verify_trailer(self, canonical_trailers: bytes, signature: str | None) -> None:
        sts = (
            f"AWS4-HMAC-SHA256-TRAILER\n{self._timestamp}\n{self._scope}\n{self._previous}\n"
            f"{hashlib.sha256(canonical_trailers).hexdigest()}"
        )
        self._check(sts, signature)

    def _check(self, sts: str, signature: str | None) -> None:
        if signature is None or not signatures_equal(sign(self._key, sts), signature):
            raise mismatch(self._access_key, signature or "", sts)
