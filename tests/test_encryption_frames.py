"""The framed AES-256-GCM body format (coffer/encryption/frames.py): sizes, ranges, streaming,
and that every kind of tampering with stored frames is refused."""

from __future__ import annotations

import asyncio
import os
import tracemalloc
from collections.abc import AsyncIterator, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coffer.encryption import frames
from coffer.encryption.frames import (
    DEFAULT_FRAME_SIZE,
    FRAME_OVERHEAD,
    Decryptor,
    Encryptor,
    FrameError,
    decrypt_stream,
    encrypt_stream,
    encrypted_size,
    frame_count,
    frame_span,
    plain_size,
)

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
OID = b"bucket/key/version-1"
FS = 16  # small frames so short bodies span many of them
STRIDE = FS + FRAME_OVERHEAD


async def _aiter(pieces: Iterable[bytes]) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


def _chunked(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)] or [b""]


async def _collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([piece async for piece in stream])


def encrypt(body: bytes, frame_size: int = FS, key: bytes = KEY, oid: bytes = OID, chunk: int = 7) -> bytes:
    return asyncio.run(_collect(encrypt_stream(_aiter(_chunked(body, chunk)), key, oid, frame_size)))


def decrypt(
    stored: bytes,
    size: int,
    start: int = 0,
    end: int | None = None,
    frame_size: int = FS,
    key: bytes = KEY,
    oid: bytes = OID,
    chunk: int = 5,
) -> bytes:
    """Plaintext [start, end] from the full stored body, reading only the span's bytes as a server would."""
    span = frame_span(size, start, end, frame_size)
    part = stored[span.enc_start : span.enc_end]
    return asyncio.run(_collect(decrypt_stream(_aiter(_chunked(part, chunk)), key, oid, frame_size, size, start, end)))


def decrypt_raw(stored: bytes, size: int, frame_size: int = FS, key: bytes = KEY, oid: bytes = OID) -> bytes:
    """Whole-body decryption of exactly the bytes given (no slicing to the span)."""
    return asyncio.run(_collect(decrypt_stream(_aiter([stored]), key, oid, frame_size, size)))


# --- sizes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("frame_size", [1, 2, 16, 1000, DEFAULT_FRAME_SIZE])
def test_sizes_are_inverse(frame_size: int) -> None:
    for size in [*range(0, 3 * frame_size + 3), 10**9 + 7]:
        enc = encrypted_size(size, frame_size)
        assert enc == size + FRAME_OVERHEAD * frame_count(size, frame_size)
        assert plain_size(enc, frame_size) == size


def test_impossible_encrypted_sizes_raise() -> None:
    valid = {encrypted_size(n, FS) for n in range(0, 10 * FS)}
    for enc in range(0, 10 * STRIDE):
        if enc in valid:
            assert encrypted_size(plain_size(enc, FS), FS) == enc
        else:
            with pytest.raises(FrameError):
                plain_size(enc, FS)


def test_empty_body_is_one_authenticated_frame() -> None:
    stored = encrypt(b"")
    assert len(stored) == FRAME_OVERHEAD == encrypted_size(0, FS)
    assert decrypt(stored, 0) == b""
    with pytest.raises(FrameError):
        decrypt_raw(b"", 0)
    with pytest.raises(FrameError):
        decrypt_raw(stored, 0, key=OTHER_KEY)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        Encryptor(b"short", OID)
    with pytest.raises(ValueError):
        Encryptor(KEY, OID, 0)
    with pytest.raises(ValueError):
        frame_span(10, 5, 10, FS)
    with pytest.raises(ValueError):
        frame_span(10, 6, 5, FS)
    with pytest.raises(ValueError):
        frame_span(0, 0, 0, FS)
    encryptor = Encryptor(KEY, OID, FS)
    encryptor.finish()
    with pytest.raises(ValueError):
        encryptor.feed(b"x")
    with pytest.raises(ValueError):
        encryptor.finish()


# --- round trips ---------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, FS - 1, FS, FS + 1, 2 * FS, 5 * FS + 3, 100])
@pytest.mark.parametrize("chunk", [1, 3, FS, FS + 1, 1000])
def test_round_trip(size: int, chunk: int) -> None:
    body = os.urandom(size)
    stored = encrypt(body, chunk=chunk)
    assert len(stored) == encrypted_size(size, FS)
    assert decrypt(stored, size, chunk=chunk) == body


def test_round_trip_default_frame_size_odd_chunks() -> None:
    body = os.urandom(3 * DEFAULT_FRAME_SIZE + 12345)
    stored = encrypt(body, DEFAULT_FRAME_SIZE, chunk=40_000)
    assert decrypt(stored, len(body), frame_size=DEFAULT_FRAME_SIZE, chunk=70_001) == body
    assert decrypt(stored, len(body), 65_530, 200_000, DEFAULT_FRAME_SIZE) == body[65_530:200_001]


def test_push_style_matches_stream_format() -> None:
    body = os.urandom(5 * FS + 3)
    encryptor = Encryptor(KEY, OID, FS)
    stored = b"".join(encryptor.feed(body[i : i + 9]) for i in range(0, len(body), 9)) + encryptor.finish()
    assert len(stored) == encrypted_size(len(body), FS)
    assert decrypt(stored, len(body)) == body
    # The same body and frames decrypted frame by frame with the sync Decryptor.
    decryptor = Decryptor(KEY, OID, len(body), FS)
    out, pos = b"", 0
    for _ in range(frame_count(len(body), FS)):
        n = decryptor.next_frame_size()
        out += decryptor.open(stored[pos : pos + n])
        pos += n
    assert out == body and pos == len(stored)


def test_every_range_of_every_small_body() -> None:
    """Every [start, end] of bodies of 0..2 frames and some longer ones, up to 100 bytes (one event loop)."""

    async def check_all() -> None:
        for size in [*range(0, 2 * FS + 2), 3 * FS - 1, 3 * FS, 3 * FS + 1, 100]:
            body = os.urandom(size)
            stored = await _collect(encrypt_stream(_aiter([body]), KEY, OID, FS))
            for start in range(size):
                for end in range(start, size):
                    span = frame_span(size, start, end, FS)
                    assert span.take == end - start + 1
                    frames = range(span.first_frame, span.last_frame + 1)
                    assert span.enc_end - span.enc_start == sum(min(FS, size - i * FS) + FRAME_OVERHEAD for i in frames)
                    part = stored[span.enc_start : span.enc_end]
                    pieces = _chunked(part, (start % 11) + 1)
                    got = await _collect(decrypt_stream(_aiter(pieces), KEY, OID, FS, size, start, end))
                    assert got == body[start : end + 1]

    asyncio.run(check_all())


def test_span_reads_only_covering_frames() -> None:
    span = frame_span(100, 17, 40, FS)
    assert (span.first_frame, span.last_frame) == (1, 2)
    assert (span.enc_start, span.enc_end) == (STRIDE, 3 * STRIDE)
    assert (span.skip, span.take) == (1, 24)
    last = frame_span(100, 99, None, FS)
    assert (last.first_frame, last.last_frame, last.enc_start, last.enc_end) == (
        6,
        6,
        6 * STRIDE,
        encrypted_size(100, FS),
    )


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=300),
    frame_size=st.integers(1, 64),
    in_chunk=st.integers(1, 400),
    out_chunk=st.integers(1, 400),
    data=st.data(),
)
def test_property_round_trip_and_ranges(
    body: bytes, frame_size: int, in_chunk: int, out_chunk: int, data: st.DataObject
) -> None:
    stored = encrypt(body, frame_size, chunk=in_chunk)
    assert len(stored) == encrypted_size(len(body), frame_size)
    assert plain_size(len(stored), frame_size) == len(body)
    assert decrypt(stored, len(body), frame_size=frame_size, chunk=out_chunk) == body
    if body:
        start = data.draw(st.integers(0, len(body) - 1))
        end = data.draw(st.integers(start, len(body) - 1) | st.none())
        expected = body[start:] if end is None else body[start : end + 1]
        assert decrypt(stored, len(body), start, end, frame_size, chunk=out_chunk) == expected


# --- tampering -----------------------------------------------------------------------------------

BODY = bytes(range(5 * FS + 3))  # 6 frames, the last one 3 bytes
CT_OFFSET = 20  # a ciphertext byte within a frame (after the 12-byte nonce)


def _frames(stored: bytes) -> list[bytes]:
    return [stored[i : i + STRIDE] for i in range(0, len(stored), STRIDE)]


def test_any_flipped_byte_fails() -> None:
    stored = encrypt(BODY)
    for i in range(len(stored)):
        for bit in (0x01, 0x80):
            bad = bytearray(stored)
            bad[i] ^= bit
            with pytest.raises(FrameError):
                decrypt_raw(bytes(bad), len(BODY))


def test_flipped_byte_in_range_fails() -> None:
    stored = encrypt(BODY)
    bad = bytearray(stored)
    bad[2 * STRIDE + CT_OFFSET] ^= 1
    with pytest.raises(FrameError):
        decrypt(bytes(bad), len(BODY), 2 * FS, 2 * FS + 1)
    assert decrypt(bytes(bad), len(BODY), 0, FS - 1) == BODY[:FS]  # frames outside the range are not read


def test_swapped_frames_fail() -> None:
    frames = _frames(encrypt(BODY))
    for i in range(len(frames) - 1):
        for j in range(i + 1, len(frames) - 1):  # full frames, so lengths still add up
            swapped = list(frames)
            swapped[i], swapped[j] = swapped[j], swapped[i]
            with pytest.raises(FrameError):
                decrypt_raw(b"".join(swapped), len(BODY))


def test_frame_moved_to_another_index_fails() -> None:
    frames = _frames(encrypt(BODY))
    # Frame 3 served as frame 1 in a ranged read of frame 1.
    with pytest.raises(FrameError):
        asyncio.run(_collect(decrypt_stream(_aiter([frames[3]]), KEY, OID, FS, len(BODY), FS, 2 * FS - 1)))
    # Frame 1 duplicated over frame 2.
    with pytest.raises(FrameError):
        decrypt_raw(b"".join([frames[0], frames[1], frames[1], *frames[3:]]), len(BODY))


def test_truncation_fails() -> None:
    stored = encrypt(bytes(range(4 * FS)))  # 4 full frames: dropping one leaves a valid-looking length
    frames = _frames(stored)
    truncated = b"".join(frames[:3])
    assert plain_size(len(truncated), FS) == 3 * FS
    with pytest.raises(FrameError):  # the stored size, believed, gives 3 frames: frame 2 is not final
        decrypt_raw(truncated, 3 * FS)
    with pytest.raises(FrameError):  # the true size: the body ends early
        decrypt_raw(truncated, 4 * FS)
    for cut in range(len(stored)):
        with pytest.raises(FrameError):
            decrypt_raw(stored[:cut], 4 * FS)


def test_short_body_claiming_final_in_the_middle_fails() -> None:
    # A 2-frame body's frames presented as the first frames of a longer body: frame 1 is final.
    two = _frames(encrypt(bytes(2 * FS)))
    four = _frames(encrypt(bytes(4 * FS)))
    with pytest.raises(FrameError):
        decrypt_raw(b"".join([*two, *four[2:]]), 4 * FS)


def test_extra_bytes_fail() -> None:
    stored = encrypt(BODY)
    extra_frame = _frames(encrypt(BODY))[0]
    for tail in (b"\x00", extra_frame, encrypt(b"")):
        with pytest.raises(FrameError):
            decrypt_raw(stored + tail, len(BODY))
    # In a ranged read too: a byte beyond the span.
    span = frame_span(len(BODY), 0, FS - 1, FS)
    with pytest.raises(FrameError):
        asyncio.run(_collect(decrypt_stream(_aiter([stored[: span.enc_end + 1]]), KEY, OID, FS, len(BODY), 0, FS - 1)))


def test_other_object_id_or_key_fails() -> None:
    stored = encrypt(BODY)
    with pytest.raises(FrameError):
        decrypt_raw(stored, len(BODY), oid=b"bucket/key/version-2")
    with pytest.raises(FrameError):
        decrypt_raw(stored, len(BODY), key=OTHER_KEY)
    # A frame spliced in from another object (same key, same index) fails.
    other = _frames(encrypt(BODY, oid=b"bucket/other"))
    mine = _frames(stored)
    with pytest.raises(FrameError):
        decrypt_raw(b"".join([*mine[:2], other[2], *mine[3:]]), len(BODY))
    # Part 1 and part 2 of one upload under the same key: ids differ by part number.
    with pytest.raises(FrameError):
        decrypt_raw(encrypt(BODY, oid=OID + b"/part/1"), len(BODY), oid=OID + b"/part/2")


def test_other_frame_size_fails() -> None:
    body = bytes(4 * FS)
    stored = encrypt(body, frame_size=2 * FS)  # 2 frames of 32 bytes
    with pytest.raises(FrameError):
        decrypt_raw(stored, len(body), frame_size=FS)


# --- memory --------------------------------------------------------------------------------------


def test_encrypt_stream_memory_is_bounded() -> None:
    mib = 1024 * 1024
    block = os.urandom(mib)

    async def source() -> AsyncIterator[bytes]:
        for _ in range(64):
            yield bytes(block)  # a fresh 1 MiB chunk each time, as a socket would give

    async def run() -> int:
        total = 0
        async for frame in encrypt_stream(source(), KEY, OID, DEFAULT_FRAME_SIZE):
            total += len(frame)
        return total

    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        total = asyncio.run(run())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == encrypted_size(64 * mib, DEFAULT_FRAME_SIZE)
    # One input chunk (1 MiB) plus a few frames, not the 64 MiB body.
    assert peak < mib + 8 * DEFAULT_FRAME_SIZE, peak


def test_pipeline_memory_is_bounded() -> None:
    """decrypt_stream fed straight from encrypt_stream, the plaintext arriving in 1,000-byte pieces
    gathered into 64 KiB frames: 32 MiB through both holds a few frames, not the body."""
    piece = os.urandom(1000)
    total_size = 32 * 1024 * 1024

    async def source() -> AsyncIterator[bytes]:
        left = total_size
        while left:
            n = min(left, len(piece))
            yield piece[:n]
            left -= n

    async def run() -> int:
        stored = encrypt_stream(source(), KEY, OID, DEFAULT_FRAME_SIZE)
        total = 0
        async for plain in decrypt_stream(stored, KEY, OID, DEFAULT_FRAME_SIZE, total_size):
            total += len(plain)
        return total

    tracemalloc.start()
    try:
        total = asyncio.run(run())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == total_size
    assert peak < 8 * DEFAULT_FRAME_SIZE, peak


@pytest.mark.parametrize("delta", [-FS, -1, 1, FS])
def test_wrong_plain_size_fails(delta: int) -> None:
    """A size in metadata that disagrees with the stored body (by a byte or a frame) is refused."""
    stored = encrypt(BODY)
    with pytest.raises(FrameError):
        decrypt_raw(stored, len(BODY) + delta)


@pytest.mark.parametrize("size", [0, 1, 2046, 2047, 2048, 4096, 5000, frames.SMALL_FRAME - 1])
def test_small_frames_are_the_same_aes_gcm_as_the_one_shot_api(size: int) -> None:
    # Small frames are sealed through the streaming GCM API (keeps the GIL): the same bytes.
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers import algorithms
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key, nonce, ad, data = os.urandom(32), os.urandom(12), b"ad" * 20, os.urandom(size)
    frame = frames._seal_small(algorithms.AES(key), nonce, data, ad)
    assert frame[:12] == nonce
    sealed = frame[12:]
    assert sealed == AESGCM(key).encrypt(nonce, data, ad)
    assert AESGCM(key).decrypt(nonce, sealed, ad) == data
    with pytest.raises(InvalidTag):
        AESGCM(key).decrypt(nonce, sealed, ad + b"x")


@pytest.mark.parametrize("size", [0, 1, 2047, 4096, frames.SMALL_FRAME, 20_000])
def test_a_whole_body_sealed_at_once_is_what_the_encryptor_makes(size: int) -> None:
    """seal_whole (small PUTs, body in hand) writes the format the streaming Encryptor writes: the
    same reader opens both, ranges included, and the frame is bound to the object and final."""
    fs = 20_000
    body = os.urandom(size)
    stored = frames.seal_whole(KEY, OID, body, fs)
    assert len(stored) == encrypted_size(size, fs) == len(encrypt(body, fs))
    assert decrypt(stored, size, frame_size=fs) == body
    if size > 2:
        assert decrypt(stored, size, 1, size - 2, fs) == body[1:-1]
    with pytest.raises(FrameError):
        decrypt_raw(stored, size, fs, oid=b"another object")
    with pytest.raises(FrameError):  # not a middle frame: a longer body's first frame fails
        decrypt_raw(stored + encrypt(b"x", fs)[: frames.FRAME_OVERHEAD + 1], size + 1, fs)
    with pytest.raises(ValueError):
        frames.seal_whole(KEY, OID, os.urandom(fs + 1), fs)


@pytest.mark.parametrize("size", [0, 1, 2047, 4096, 20_000])
def test_a_whole_body_opened_at_once_is_what_the_decryptor_gives(size: int) -> None:
    fs = 20_000
    body = os.urandom(size)
    stored = encrypt(body, fs)
    assert frames.open_whole(KEY, OID, stored, size, fs) == body
    for bad in (
        stored[:-1],  # truncated
        stored + b"x",  # extra bytes
        stored[:20] + bytes([stored[20] ^ 1]) + stored[21:] if size > 8 else b"\0" * len(stored),  # flipped
    ):
        with pytest.raises(FrameError):
            frames.open_whole(KEY, OID, bad, size, fs)
    with pytest.raises(FrameError):
        frames.open_whole(KEY, b"another object", stored, size, fs)


def test_open_whole_refuses_the_first_frame_of_a_longer_body() -> None:
    fs = 64
    longer = encrypt(os.urandom(fs + 10), fs)
    with pytest.raises(FrameError):  # bound as not final
        frames.open_whole(KEY, OID, longer[: fs + frames.FRAME_OVERHEAD], fs, fs)
