"""read_if_small (coffer/server/upload.py): a body announced small is read first, but never more of
it than the limit, whatever the client announced (the encrypted small-PUT path relies on it)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from coffer.server.upload import read_if_small


async def _pieces(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def _drain(body: AsyncIterator[bytes]) -> bytes:
    return b"".join([piece async for piece in body])


def test_a_body_within_the_limit_is_returned_whole() -> None:
    whole, rest = asyncio.run(read_if_small(_pieces(b"ab", b"cd", b""), 4))
    assert whole == b"abcd"
    assert asyncio.run(_drain(rest)) == b""


def test_one_piece_is_returned_as_it_came() -> None:
    piece = b"x" * 10
    whole, _ = asyncio.run(read_if_small(_pieces(piece), 10))
    assert whole is piece


def test_an_empty_body_is_whole() -> None:
    assert asyncio.run(read_if_small(_pieces(), 4))[0] == b""


def test_a_longer_body_is_replayed_in_order_and_reading_stops_past_the_limit() -> None:
    read: list[int] = []

    async def body() -> AsyncIterator[bytes]:
        for index in range(1000):
            read.append(index)
            yield bytes([index % 256]) * 3

    async def run() -> tuple[bytes | None, int, bytes]:
        whole, rest = await read_if_small(body(), 7)
        held = len(read)
        return whole, held, await _drain(rest)

    whole, held, replayed = asyncio.run(run())
    assert whole is None
    assert held == 3  # 9 bytes read: just past the limit, not the 3,000 announced
    assert replayed == b"".join(bytes([i % 256]) * 3 for i in range(1000))
