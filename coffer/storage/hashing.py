"""Hashing a body while it arrives: MD5 (the ETag), the requested S3 checksums and
an optional SHA256 (signed payloads). Shared by every engine's receive path."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from coffer.checksums import Hasher, new_hasher
from coffer.storage.api import PutDigests

# Bytes handed to a hashing thread at a time: large enough that hashlib releases
# the GIL and the thread hop is amortised, small enough to keep memory flat.
PIPELINE_CHUNK = 1024 * 1024

# hashlib releases the GIL for an update of 2,048 bytes or more. For a small body hashed on the
# event loop that is a loss: taking the GIL back from the metadata writer thread cost ~40 µs
# against 6 µs for hashing 4 KiB (docs/benchmarks.md "Encryption"). Below SMALL_UPDATE bytes,
# MD5 and SHA256 are fed slices short enough to keep the GIL.
_GIL_FREE_BELOW = 2048
SMALL_UPDATE = 16 * 1024


class BodyHasher:
    """``md5=False``: the body's size and checksums only, for bytes stored transformed (the
    version reports the caller's digests of the original, ``Encoding``): hashing what nobody
    reads costs a hash pass and, on the event loop, the GIL hashlib releases for it."""

    def __init__(self, algorithms: Iterable[str], want_sha256: bool, *, md5: bool = True) -> None:
        self.md5 = hashlib.md5() if md5 else None
        self.checksums: dict[str, Hasher] = {a: new_hasher(a) for a in algorithms}
        self.sha256 = hashlib.sha256() if want_sha256 else None
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        size = len(data)
        self.size += size
        for h in self.checksums.values():
            h.update(data)
        if _GIL_FREE_BELOW <= size < SMALL_UPDATE:
            view = memoryview(data)
            for at in range(0, size, _GIL_FREE_BELOW - 1):
                piece = view[at : at + _GIL_FREE_BELOW - 1]
                if self.md5 is not None:
                    self.md5.update(piece)
                if self.sha256 is not None:
                    self.sha256.update(piece)
            return
        if self.md5 is not None:
            self.md5.update(data)
        if self.sha256 is not None:
            self.sha256.update(data)

    def digests(self) -> PutDigests:
        return PutDigests(
            size=self.size,
            md5=self.md5.digest() if self.md5 is not None else b"",
            checksums={a: h.digest() for a, h in self.checksums.items()},
            sha256=self.sha256.digest() if self.sha256 is not None else None,
        )
