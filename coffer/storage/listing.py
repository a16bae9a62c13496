"""Helpers shared by every engine's listing code."""

from __future__ import annotations


def prefix_upper_bound(prefix: bytes) -> bytes | None:
    """Smallest byte string greater than every string starting with ``prefix``.

    None when ``prefix`` is empty (no upper bound). UTF-8 never contains 0xFF, so
    for keys the last byte can always be incremented; the loop covers raw bytes.
    """
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])
