"""Reading encrypted bodies (coffer/server/encryption.py) without a server: a range reads and
decrypts only the frames that cover it, also across the parts of a multipart object."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import AsyncIterator

import pytest

from coffer.encryption import frames
from coffer.server import encryption
from coffer.storage.api import ObjectInfo, ObjectPart, PutDigests

FRAME = frames.DEFAULT_FRAME_SIZE
STRIDE = FRAME + frames.FRAME_OVERHEAD
MiB = 1024 * 1024


async def _chunks(data: bytes, size: int = 300_000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _doc() -> dict[str, object]:
    return {"v": 1, "a": "AES256", "f": FRAME, "i": base64.b64encode(os.urandom(16)).decode()}


async def _encrypt(data: bytes, doc: dict[str, object], key: bytes, part_number: int | None = None) -> bytes:
    body, _ = encryption.encrypting(
        _chunks(data), doc, key, algorithms=(), want_sha256=False, verify=None, part_number=part_number
    )
    return b"".join([piece async for piece in body])


def test_a_range_reads_only_its_frames() -> None:
    data, key, doc = os.urandom(3 * MiB + 12345), os.urandom(32), _doc()
    stored = asyncio.run(_encrypt(data, doc, key))
    assert len(stored) == frames.encrypted_size(len(data))
    info = ObjectInfo("b", "k", len(data), "e", 0.0, encoding=doc, stored_size=len(stored))
    for start, end in ((0, 1), (FRAME - 1, FRAME + 1), (MiB, 2 * MiB), (len(data) - 7, len(data)), (0, len(data))):
        asked: list[tuple[int, int]] = []

        def stream(s: int, e: int, asked: list[tuple[int, int]] = asked) -> AsyncIterator[bytes]:
            asked.append((s, e))
            return _one(stored[s:e])

        async def read(start: int = start, end: int = end) -> bytes:
            body = encryption.decrypting(stream, info, key, start, end)
            return b"".join([piece async for piece in body])

        assert asyncio.run(read()) == data[start:end]
        ((s, e),) = asked
        first, last = start // FRAME, (end - 1) // FRAME
        assert s == first * STRIDE and e <= (last + 1) * STRIDE  # only the covering frames


def test_a_1_mib_range_of_a_1_gib_object_spans_17_frames_at_most() -> None:
    span = frames.frame_span(1 << 30, 500 * MiB + 3, 501 * MiB + 2, FRAME)
    assert span.enc_end - span.enc_start <= 17 * STRIDE


def test_ranges_across_parts() -> None:
    key, doc = os.urandom(32), _doc()
    parts_data = [os.urandom(5 * MiB + 17), os.urandom(5 * MiB), os.urandom(1000)]
    stored_parts = [asyncio.run(_encrypt(p, doc, key, n)) for n, p in enumerate(parts_data, 1)]
    stored = b"".join(stored_parts)
    parts, offset, stored_offset = [], 0, 0
    for n, (plain, sealed) in enumerate(zip(parts_data, stored_parts, strict=True), 1):
        parts.append(ObjectPart(n, offset, len(plain), "e", {}, stored_offset, len(sealed)))
        offset, stored_offset = offset + len(plain), stored_offset + len(sealed)
    whole = b"".join(parts_data)
    info = ObjectInfo("b", "k", len(whole), "e-3", 0.0, parts_count=3, encoding=doc, stored_size=len(stored))
    for start, end in (
        (0, len(whole)),
        (5 * MiB, 5 * MiB + 40),
        (5 * MiB + 10, 10 * MiB + 500),
        (len(whole) - 1, len(whole)),
    ):
        asked: list[tuple[int, int]] = []

        def stream(s: int, e: int, asked: list[tuple[int, int]] = asked) -> AsyncIterator[bytes]:
            asked.append((s, e))
            return _chunks(stored[s:e], 100_000)

        async def read(start: int = start, end: int = end) -> bytes:
            return b"".join([p async for p in encryption.decrypting(stream, info, key, start, end, parts)])

        assert asyncio.run(read()) == whole[start:end]
        assert len(asked) == 1  # one stored range, cut at the parts' boundaries


def test_parts_cannot_be_swapped() -> None:
    key, doc = os.urandom(32), _doc()
    one, two = os.urandom(1000), os.urandom(1000)
    first, second = asyncio.run(_encrypt(one, doc, key, 1)), asyncio.run(_encrypt(two, doc, key, 2))
    swapped = second + first  # part 2's frames where part 1's should be
    parts = [
        ObjectPart(1, 0, 1000, "e", {}, 0, len(second)),
        ObjectPart(2, 1000, 1000, "e", {}, len(second), len(first)),
    ]
    info = ObjectInfo("b", "k", 2000, "e-2", 0.0, parts_count=2, encoding=doc, stored_size=len(swapped))

    async def read() -> bytes:
        body = encryption.decrypting(lambda s, e: _one(swapped[s:e]), info, key, 0, 2000, parts)
        return b"".join([p async for p in body])

    with pytest.raises(frames.FrameError):
        asyncio.run(read())


def test_small_bodies_open_with_a_kept_opener_and_tampering_still_shows() -> None:
    """decrypt_whole keeps an opener per data key and body: the second GET reuses it, and a body
    changed meanwhile (or another body under the same key) is still refused, never served."""
    from coffer.server.errors import S3Error

    key, doc, data = os.urandom(32), _doc(), os.urandom(4096)
    stored = frames.seal_whole(key, encryption.body_id(doc), data, FRAME)
    info = ObjectInfo("b", "k", len(data), "e", 0.0, encoding=doc, stored_size=len(stored))
    assert encryption.decrypt_whole(stored, info, key) == data
    assert (key, doc["i"], FRAME) in encryption._openers
    assert encryption.decrypt_whole(stored, info, key) == data
    tampered = bytearray(stored)
    tampered[100] ^= 1
    with pytest.raises(S3Error) as refused:
        encryption.decrypt_whole(bytes(tampered), info, key)
    assert refused.value.code == "InternalError"
    other = frames.seal_whole(key, encryption.body_id(_doc()), data, FRAME)  # another body, same key
    with pytest.raises(S3Error):
        encryption.decrypt_whole(other, info, key)


@pytest.mark.parametrize("size", [0, 100_000, 5 * MiB + 7], ids=["empty", "loop", "thread"])
def test_the_plaintext_md5_of_a_streamed_body(size: int) -> None:
    """SSE-S3's ETag is the plaintext's MD5, hashed in a pool thread for long bodies (in batches, in
    order, with a wait when 4 MiB are queued): the same digest as hashing it at once."""
    data, key, doc = os.urandom(size), os.urandom(32), _doc()

    async def run() -> tuple[bytes, str]:
        body, encoding = encryption.encrypting(
            _chunks(data, 65536), doc, key, algorithms=("CRC32",), want_sha256=False, verify=None
        )
        stored = b"".join([piece async for piece in body])
        logical = encoding.logical(PutDigests(len(stored), b"", {}))
        return stored, logical.etag

    stored, etag = asyncio.run(run())
    assert etag == hashlib.md5(data).hexdigest()
    info = ObjectInfo("b", "k", size, etag, 0.0, encoding=doc, stored_size=len(stored))

    async def read() -> bytes:
        return b"".join([p async for p in encryption.decrypting(lambda s, e: _one(stored[s:e]), info, key, 0, size)])

    assert asyncio.run(read()) == data
