"""The AWS event stream (application/vnd.amazon.eventstream) SelectObjectContent answers with.

Message: total length, headers length, prelude CRC32 (of those 8 bytes), headers, payload,
message CRC32 (of everything before it); integers big-endian. A header is a 1-byte name length,
the name, type 7 (string), a 2-byte value length and the value.
"""

from __future__ import annotations

import struct

from awscrt.checksums import crc32

_STRING = 7
_PRELUDE = struct.Struct(">II")


def _header(name: str, value: str) -> bytes:
    n, v = name.encode(), value.encode()
    return bytes([len(n)]) + n + bytes([_STRING]) + struct.pack(">H", len(v)) + v


def message(headers: list[tuple[str, str]], payload: bytes = b"") -> bytes:
    encoded = b"".join(_header(name, value) for name, value in headers)
    prelude = _PRELUDE.pack(16 + len(encoded) + len(payload), len(encoded))
    head = prelude + struct.pack(">I", crc32(prelude)) + encoded + payload
    return head + struct.pack(">I", crc32(head))


def _event(kind: str, payload: bytes = b"", content_type: str | None = None) -> bytes:
    headers = [(":message-type", "event"), (":event-type", kind)]
    if content_type is not None:
        headers.append((":content-type", content_type))
    return message(headers, payload)


def records(payload: bytes) -> bytes:
    return _event("Records", payload, "application/octet-stream")


def _counts(scanned: int, processed: int, returned: int) -> bytes:
    return (
        f"<BytesScanned>{scanned}</BytesScanned><BytesProcessed>{processed}</BytesProcessed>"
        f"<BytesReturned>{returned}</BytesReturned>"
    ).encode()


def stats(scanned: int, processed: int, returned: int) -> bytes:
    body = b'<?xml version="1.0" encoding="UTF-8"?><Stats>' + _counts(scanned, processed, returned) + b"</Stats>"
    return _event("Stats", body, "text/xml")


def progress(scanned: int, processed: int, returned: int) -> bytes:
    body = b'<?xml version="1.0" encoding="UTF-8"?><Progress>' + _counts(scanned, processed, returned) + b"</Progress>"
    return _event("Progress", body, "text/xml")


def cont() -> bytes:
    """A keep-alive while a long scan has nothing to send yet."""
    return _event("Cont")


def end() -> bytes:
    return _event("End")


def error(code: str, text: str) -> bytes:
    return message([(":message-type", "error"), (":error-code", code), (":error-message", text)])
