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


class BodyHasher:
    def __init__(self, algorithms: Iterable[str], want_sha256: bool) -> None:
        self.md5 = hashlib.md5()
        self.checksums: dict[str, Hasher] = {a: new_hasher(a) for a in algorithms}
        self.sha256 = hashlib.sha256() if want_sha256 else None
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        self.size += len(data)
        self.md5.update(data)
        for h in self.checksums.values():
            h.update(data)
        if self.sha256 is not None:
            self.sha256.update(data)

    def digests(self) -> PutDigests:
        return PutDigests(
            size=self.size,
            md5=self.md5.digest(),
            checksums={a: h.digest() for a, h in self.checksums.items()},
            sha256=self.sha256.digest() if self.sha256 is not None else None,
        )
