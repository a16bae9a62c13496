"""coffer.entropy: OS randomness handed out from a pooled page, and BodyHasher's small-update
path (both exist to keep the event loop from giving up the GIL; docs/benchmarks.md)."""

from __future__ import annotations

import hashlib
import os

import pytest

from coffer import entropy
from coffer.storage.hashing import SMALL_UPDATE, BodyHasher


def test_token_bytes_never_repeats_and_has_the_asked_length() -> None:
    seen = set()
    for n in (1, 12, 16, 32, 9) * 4000:  # crosses several page refills
        token = entropy.token_bytes(n)
        assert len(token) == n
        if n >= 12:
            assert token not in seen
            seen.add(token)
    assert len(entropy.token_bytes(1 << 20)) == 1 << 20  # large requests go to the OS directly
    assert len(entropy.token_hex(9)) == 18


def test_a_forked_child_does_not_hand_out_the_parents_bytes() -> None:
    entropy.token_bytes(16)  # the pool is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the bytes it draws next
        os.close(read)
        os.write(write, entropy.token_bytes(32))
        os._exit(0)
    os.close(write)
    child = os.read(read, 32)
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 32 and child != entropy.token_bytes(32)


@pytest.mark.parametrize("size", [0, 1, 2046, 2047, 2048, 4095, 4096, 5000, SMALL_UPDATE - 1, SMALL_UPDATE, 100_000])
@pytest.mark.parametrize("pieces", [1, 3])
def test_body_hasher_digests_match_hashlib_at_every_update_size(size: int, pieces: int) -> None:
    data = os.urandom(size)
    hasher = BodyHasher(("CRC32",), True)
    step = max(1, size // pieces)
    for at in range(0, size, step):
        hasher.update(memoryview(data)[at : at + step])
    digests = hasher.digests()
    assert digests.size == size
    assert digests.md5 == hashlib.md5(data).digest()
    assert digests.sha256 == hashlib.sha256(data).digest()
    without = BodyHasher((), False, md5=False)
    without.update(data)
    assert (without.digests().size, without.digests().md5) == (size, b"")
