"""Encryption frames (coffer/encryption/frames.py): encrypt and decrypt MB/s by frame size.

Streams a body through encrypt_stream and decrypt_stream in 1 MiB input chunks (as the server
would receive and read them), on one core, in-process, no HTTP and no disk. Also shows the bare
AES-GCM rate (one call per MiB, no framing) as the ceiling, and what a small ranged GET costs
(decrypting the one frame that covers 1 byte). MB = 10^6 bytes; best of --repeat runs.

    .venv/bin/python scripts/bench_frames.py [--mib 256] [--repeat 3] [--frame-sizes 65536,1048576]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from coffer.encryption.frames import decrypt_stream, encrypt_stream, encrypted_size, frame_span

MIB = 1024 * 1024
KEY = os.urandom(32)
OID = b"bench-bucket/bench-key/version"


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    view = memoryview(data)
    for i in range(0, len(data), size):
        yield bytes(view[i : i + size])


async def _drain(stream: AsyncIterator[bytes]) -> int:
    total = 0
    async for piece in stream:
        total += len(piece)
    return total


def _best(repeat: int, fn: object) -> float:
    assert callable(fn)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def bench_frame_size(body: bytes, frame_size: int, repeat: int) -> str:
    """One Markdown table row for `frame_size`."""
    size = len(body)
    # Timed runs only count the output, as a server streaming to disk would not keep it;
    # the stored body for the decrypt runs is made once, untimed.
    t_enc = _best(repeat, lambda: asyncio.run(_drain(encrypt_stream(_chunks(body, MIB), KEY, OID, frame_size))))

    async def keep() -> bytes:
        return b"".join([frame async for frame in encrypt_stream(_chunks(body, MIB), KEY, OID, frame_size)])

    stored = asyncio.run(keep())
    assert len(stored) == encrypted_size(size, frame_size)
    t_dec = _best(repeat, lambda: asyncio.run(_drain(decrypt_stream(_chunks(stored, MIB), KEY, OID, frame_size, size))))
    # A 1-byte range in the middle: read and decrypt the one frame covering it, 200 times.
    mid = size // 2
    span = frame_span(size, mid, mid, frame_size)
    part = stored[span.enc_start : span.enc_end]

    async def ranged() -> None:
        for _ in range(200):
            await _drain(decrypt_stream(_chunks(part, MIB), KEY, OID, frame_size, size, mid, mid))

    t_range = _best(repeat, lambda: asyncio.run(ranged())) / 200
    overhead = (len(stored) - size) / size * 100
    return (
        f"| {frame_size // 1024} KiB | {size / t_enc / 1e6:,.0f} | {size / t_dec / 1e6:,.0f} "
        f"| {overhead:.3f}% | {len(part):,} B, {t_range * 1e6:,.0f} µs |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--frame-sizes", default="16384,65536,262144,1048576")
    args = parser.parse_args()
    size = args.mib * MIB
    body = os.urandom(MIB) * args.mib
    print(f"body {args.mib} MiB, 1 MiB input chunks, best of {args.repeat}; load average {os.getloadavg()[0]:.2f}")

    aead = AESGCM(KEY)
    nonce = os.urandom(12)
    view = memoryview(body)

    def bare() -> int:
        return sum(len(aead.encrypt(nonce, view[i : i + MIB], b"")) for i in range(0, size, MIB))

    ceiling = size / _best(args.repeat, bare) / 1e6
    print(f"\nbare AES-256-GCM encrypt, one call per MiB (the ceiling): {ceiling:,.0f} MB/s\n")
    print("| frame size | encrypt MB/s | decrypt MB/s | stored overhead | 1-byte ranged read: bytes decrypted, µs |")
    print("|---|---|---|---|---|")
    for frame_size in (int(x) for x in args.frame_sizes.split(",")):
        print(bench_frame_size(body, frame_size, args.repeat))


if __name__ == "__main__":
    main()
