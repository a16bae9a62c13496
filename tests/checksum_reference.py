"""Reference checksums written out plainly, independent of the library Coffer uses."""

from __future__ import annotations

import base64
import hashlib
import zlib


def _reflected_crc(data: bytes, poly: int, width: int) -> int:
    mask = (1 << width) - 1
    crc = mask
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (poly if crc & 1 else 0)
    return crc ^ mask


def reference_checksums(data: bytes) -> dict[str, bytes]:
    """Raw digests of ``data`` for every S3 checksum algorithm (bitwise CRCs: keep data small)."""
    return {
        "CRC32": zlib.crc32(data).to_bytes(4, "big"),
        "CRC32C": _reflected_crc(data, 0x82F63B78, 32).to_bytes(4, "big"),
        "CRC64NVME": _reflected_crc(data, 0x9A6C9329AC4BC9B5, 64).to_bytes(8, "big"),
        "SHA1": hashlib.sha1(data).digest(),
        "SHA256": hashlib.sha256(data).digest(),
    }


def reference_b64(data: bytes) -> dict[str, str]:
    """The same, base64-encoded as in x-amz-checksum-* headers."""
    return {k: base64.b64encode(v).decode() for k, v in reference_checksums(data).items()}
