"""Turning an upload request into a body stream plus the checks its bytes must pass.

Shared by PutObject and UploadPart: aws-chunked decoding, Content-MD5,
``x-amz-checksum-*`` from headers or trailers, ``x-amz-content-sha256`` for
signed single-chunk payloads, and the decoded length.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from coffer import checksums
from coffer.server.chunked import ChunkedDecoder
from coffer.server.errors import S3Error
from coffer.server.object_write import declared_checksum
from coffer.server.request import Request
from coffer.storage.api import PutDigests

_STREAMING_PREFIX = "STREAMING-"
_HEX = set("0123456789abcdef")


@dataclass
class UploadPlan:
    body: AsyncIterator[bytes]
    algorithm: str  # the checksum algorithm stored with the object
    algorithms: tuple[str, ...]  # every algorithm the engine must compute
    want_sha256: bool
    client_checksum: bool  # did the client send a checksum (header or trailer)?
    decoder: ChunkedDecoder | None = None
    _header_value: bytes | None = None
    _trailer_name: str | None = None
    _md5: bytes | None = None
    _sha256: bytes | None = None
    _decoded_length: int | None = None
    extra: dict[str, str] = field(default_factory=dict)

    async def read_all(self, limit: int) -> bytes:
        """The whole (small) body, checked like a stored one: for XML documents."""
        body = bytearray()
        async for chunk in self.body:
            body += chunk
            if len(body) > limit:
                raise S3Error("MalformedXML", "The request body is too large.")
        sums = {}
        for algorithm in self.algorithms:
            hasher = checksums.new_hasher(algorithm)
            hasher.update(memoryview(body))
            sums[algorithm] = hasher.digest()
        self.verify(
            PutDigests(
                size=len(body),
                md5=hashlib.md5(body).digest(),
                checksums=sums,
                sha256=hashlib.sha256(body).digest() if self.want_sha256 else None,
            )
        )
        return bytes(body)

    def verify(self, digests: PutDigests) -> None:
        if self._decoded_length is not None and digests.size != self._decoded_length:
            raise S3Error("IncompleteBody", "The decoded body length does not match x-amz-decoded-content-length.")
        if self._md5 is not None and digests.md5 != self._md5:
            raise S3Error("BadDigest")
        if self._sha256 is not None and digests.sha256 != self._sha256:
            raise S3Error("XAmzContentSHA256Mismatch")
        expected = self._header_value
        if self._trailer_name is not None:
            assert self.decoder is not None
            raw = self.decoder.trailers.get(self._trailer_name)
            if raw is None:
                raise S3Error("InvalidRequest", f"The trailer {self._trailer_name} was declared but not sent.")
            expected = checksums.decode(raw, self.algorithm)
            if expected is None:
                raise S3Error("InvalidRequest", f"Value for {self._trailer_name} trailing header is invalid.")
        if expected is not None and digests.checksums.get(self.algorithm) != expected:
            raise S3Error("BadDigest", f"The {self.algorithm} you specified did not match the calculated checksum.")


async def read_if_small(body: AsyncIterator[bytes], limit: int) -> tuple[bytes | None, AsyncIterator[bytes]]:
    """(the whole body, an exhausted iterator) when it ends within ``limit`` bytes; else (None, an
    iterator giving the pieces read so far, then the rest): whatever the client announced, never
    more than ``limit`` bytes and one piece held."""
    pieces: list[bytes] = []
    held = 0
    async for piece in body:
        pieces.append(piece)
        held += len(piece)
        if held > limit:
            return None, _replay(pieces, body)
    return (pieces[0] if len(pieces) == 1 else b"".join(pieces)), body


async def _replay(pieces: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    while pieces:
        yield pieces.pop(0)
    async for piece in rest:
        yield piece


def plan_upload(req: Request, *, default_algorithm: str | None = checksums.DEFAULT_ALGORITHM) -> UploadPlan:
    headers = req.headers
    content_sha = headers.get("x-amz-content-sha256", "")
    encodings = [e.strip().lower() for e in headers.get("content-encoding", "").split(",") if e.strip()]
    # Framing is announced by a STREAMING-* payload hash, or by aws-chunked together with
    # the decoded length; a bare "Content-Encoding: aws-chunked" on a plain body is only a label.
    chunked = content_sha.startswith(_STREAMING_PREFIX) or (
        "aws-chunked" in encodings and "x-amz-decoded-content-length" in headers
    )
    # S3 needs the size up front: Content-Length, or for aws-chunked bodies (which may
    # travel with Transfer-Encoding: chunked) x-amz-decoded-content-length.
    if req.content_length is None and not chunked:
        raise S3Error("MissingContentLength")

    decoder: ChunkedDecoder | None = None
    # The engine hashes the body off the event loop; ``verify`` checks x-amz-content-sha256.
    body: AsyncIterator[bytes] = req.body(verify_sha256=False)
    decoded_length: int | None = None
    if chunked:
        decoder = ChunkedDecoder(body, req.chunk_chain)
        body = decoder.__aiter__()
        decoded_length = req.decoded_content_length
        if decoded_length is None:
            raise S3Error("MissingContentLength", "x-amz-decoded-content-length is required for aws-chunked bodies.")

    # Which checksum: a header value, a declared trailer, or just an algorithm name.
    declared = declared_checksum(headers)
    sdk_algo = headers.get("x-amz-sdk-checksum-algorithm")
    if sdk_algo is not None and sdk_algo.upper() not in checksums.ALGORITHMS:
        raise S3Error("InvalidRequest", "Value for x-amz-sdk-checksum-algorithm header is invalid.")
    trailer_name: str | None = None
    trailer = headers.get("x-amz-trailer", "").strip().lower()
    if trailer:
        if not chunked:
            raise S3Error("InvalidRequest", "x-amz-trailer requires an aws-chunked body.")
        trailer_algo = checksums.algorithm_from_header(trailer)
        if trailer_algo is None:
            raise S3Error("InvalidRequest", "The value specified in the x-amz-trailer header is not supported")
        trailer_name = trailer
    header_value: bytes | None = None
    algorithm: str | None = None
    if declared is not None:
        _, algorithm, header_value = declared
    elif trailer_name is not None:
        algorithm = checksums.algorithm_from_header(trailer_name)
    elif sdk_algo is not None:
        algorithm = sdk_algo.upper()
    if sdk_algo is not None and algorithm is not None and sdk_algo.upper() != algorithm:
        raise S3Error("InvalidRequest", "Value for x-amz-sdk-checksum-algorithm header is invalid.")
    client_checksum = algorithm is not None
    if algorithm is None:
        algorithm = default_algorithm or ""

    md5: bytes | None = None
    if "content-md5" in headers:
        try:
            md5 = base64.b64decode(headers["content-md5"], validate=True)
        except (binascii.Error, ValueError):
            md5 = None
        if md5 is None or len(md5) != 16:
            raise S3Error("InvalidDigest")

    sha256: bytes | None = None
    if len(content_sha) == 64 and set(content_sha.lower()) <= _HEX:
        sha256 = bytes.fromhex(content_sha)
    elif content_sha and content_sha != "UNSIGNED-PAYLOAD" and not content_sha.startswith(_STREAMING_PREFIX):
        raise S3Error("InvalidArgument", "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-... or a SHA256.")

    return UploadPlan(
        body=body,
        algorithm=algorithm,
        algorithms=(algorithm,) if algorithm else (),
        want_sha256=sha256 is not None,
        client_checksum=client_checksum,
        decoder=decoder,
        _header_value=header_value,
        _trailer_name=trailer_name,
        _md5=md5,
        _sha256=sha256,
        _decoded_length=decoded_length,
    )
