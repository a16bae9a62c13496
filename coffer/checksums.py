"""Object integrity checksums as S3 defines them (CRC32, CRC32C, CRC64NVME, SHA1, SHA256).

CRCs come from awscrt (the C implementation botocore itself uses, hardware
accelerated); SHA digests from hashlib. Values travel base64-encoded, the raw
digest big-endian, exactly as in ``x-amz-checksum-*`` headers.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from typing import Protocol

from awscrt import checksums as _crt

ALGORITHMS = ("CRC32", "CRC32C", "CRC64NVME", "SHA1", "SHA256")
DEFAULT_ALGORITHM = "CRC64NVME"  # what S3 computes when the client sends none


class Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> None: ...
    def digest(self) -> bytes: ...


class _Crc:
    __slots__ = ("_fn", "_value", "_width")

    def __init__(self, fn: Callable[..., int], width: int) -> None:
        self._fn = fn
        self._value = 0
        self._width = width

    def update(self, data: bytes | memoryview, /) -> None:
        self._value = self._fn(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(self._width, "big")


def new_hasher(algorithm: str) -> Hasher:
    if algorithm == "CRC32":
        return _Crc(_crt.crc32, 4)
    if algorithm == "CRC32C":
        return _Crc(_crt.crc32c, 4)
    if algorithm == "CRC64NVME":
        return _Crc(_crt.crc64nvme, 8)
    if algorithm == "SHA1":
        return hashlib.sha1()
    if algorithm == "SHA256":
        return hashlib.sha256()
    raise ValueError(f"unknown checksum algorithm {algorithm}")


def digest_length(algorithm: str) -> int:
    return {"CRC32": 4, "CRC32C": 4, "CRC64NVME": 8, "SHA1": 20, "SHA256": 32}[algorithm]


def header_name(algorithm: str) -> str:
    return "x-amz-checksum-" + algorithm.lower()


def algorithm_from_header(name: str) -> str | None:
    """'x-amz-checksum-crc32' -> 'CRC32'; None for any other header."""
    if not name.startswith("x-amz-checksum-"):
        return None
    algo = name[len("x-amz-checksum-") :].upper()
    return algo if algo in ALGORITHMS else None


def encode(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def decode(value: str, algorithm: str) -> bytes | None:
    """Base64 value of a checksum header -> raw digest, or None if malformed."""
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == digest_length(algorithm) else None


def combine_crc(algorithm: str, first: bytes, second: bytes, second_length: int) -> bytes:
    """CRC of A+B from CRC(A), CRC(B) and len(B), without reading data (multipart FULL_OBJECT)."""
    fn = {"CRC32": _crt.combine_crc32, "CRC32C": _crt.combine_crc32c, "CRC64NVME": _crt.combine_crc64nvme}[algorithm]
    width = len(first)
    value: int = fn(int.from_bytes(first, "big"), int.from_bytes(second, "big"), second_length)
    return value.to_bytes(width, "big")
