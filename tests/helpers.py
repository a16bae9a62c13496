"""Helpers the in-process tests share: request bodies as the server hands them over, running a coroutine,
and a self-signed certificate for TLS servers.

Engine-level helpers (put, read, ...) live in tests/engines.py, HTTP-level ones in tests/wire.py.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from collections.abc import AsyncIterator, Coroutine
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine on a fresh event loop (a test's synchronous entry point)."""
    return asyncio.run(coro)


async def chunks(
    data: bytes, size: int = 65536, *, pause: bool = False, sent: list[int] | None = None
) -> AsyncIterator[bytes]:
    """A request body as the server would hand it over: ``size``-byte pieces (none for an empty body).

    ``pause`` yields to the event loop before each piece, so concurrent writers interleave;
    ``sent`` records each piece's size as it is taken (to see how far a consumer read).
    """
    for i in range(0, len(data), size):
        if pause:
            await asyncio.sleep(0)
        if sent is not None:
            sent.append(min(size, len(data) - i))
        yield data[i : i + size]


async def pieces(data: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    """``data`` as the network might deliver it: split at ``cuts`` (taken modulo its length), empty pieces included."""
    last = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        yield data[last:cut]
        last = cut
    yield data[last:]


def self_signed_cert(directory: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key, written as PEM files in ``directory``: (cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)
