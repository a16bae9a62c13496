"""The aws-chunked decoder against random valid framings and hostile input (hypothesis)."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from coffer.server.chunked import ChunkedDecoder
from coffer.server.errors import S3Error
from tests.helpers import pieces


def decode(raw: bytes, cuts: list[int]) -> tuple[bytes, ChunkedDecoder]:
    async def run() -> tuple[bytes, ChunkedDecoder]:
        decoder = ChunkedDecoder(pieces(raw, cuts))
        out = b"".join([piece async for piece in decoder])
        return out, decoder

    return asyncio.run(run())


def frame(data: bytes, sizes: list[int], signed: bool, trailers: dict[str, str]) -> bytes:
    ext = b";chunk-signature=" + b"0" * 64 if signed else b""
    out = bytearray()
    pos = 0
    for size in [*sizes, len(data)]:
        piece = data[pos : pos + max(size, 1)]
        if not piece:
            break
        out += b"%x" % len(piece) + ext + b"\r\n" + piece + b"\r\n"
        pos += len(piece)
    out += b"0" + ext + b"\r\n"
    for name, value in trailers.items():
        out += f"{name}:{value}\r\n".encode()
    out += b"\r\n"
    return bytes(out)


trailer_values = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=", max_size=60)


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(max_size=3000),
    sizes=st.lists(st.integers(1, 700), max_size=8),
    signed=st.booleans(),
    trailers=st.dictionaries(st.sampled_from(["x-amz-checksum-crc32", "x-amz-checksum-sha256"]), trailer_values),
    cuts=st.lists(st.integers(0, 10_000), max_size=12),
)
def test_valid_framing_decodes_exactly(
    data: bytes, sizes: list[int], signed: bool, trailers: dict[str, str], cuts: list[int]
) -> None:
    out, decoder = decode(frame(data, sizes, signed, trailers), cuts)
    assert out == data
    assert decoder.trailers == trailers


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=400),
    sizes=st.lists(st.integers(1, 100), max_size=4),
    position=st.integers(0, 10_000),
    replacement=st.binary(max_size=6),
    cuts=st.lists(st.integers(0, 10_000), max_size=6),
)
def test_mangled_framing_fails_cleanly(
    data: bytes, sizes: list[int], position: int, replacement: bytes, cuts: list[int]
) -> None:
    """Corrupt a valid body anywhere: the decoder answers with an S3 error or decodes, never anything else."""
    raw = frame(data, sizes, False, {})
    at = position % len(raw)
    mangled = raw[:at] + replacement + raw[at + 1 :]
    try:
        out, _ = decode(mangled, cuts)
    except S3Error as err:
        assert err.status == 400
        return
    assert len(out) <= len(mangled)


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=300), cuts=st.lists(st.integers(0, 400), max_size=5))
def test_random_bytes_fail_cleanly(raw: bytes, cuts: list[int]) -> None:
    try:
        out, _ = decode(raw, cuts)
    except S3Error as err:
        assert err.status == 400
        return
    assert len(out) <= len(raw)


def test_truncated_stream_is_incomplete_body() -> None:
    raw = frame(b"x" * 100, [10], False, {})
    for end in range(len(raw) - 2):  # everything short of the final CRLF pair
        try:
            decode(raw[:end], [])
        except S3Error as err:
            assert err.code in ("IncompleteBody", "InvalidRequest"), (end, err.code)
        else:
            raise AssertionError(f"a body cut at {end} of {len(raw)} bytes was accepted")
