"""Object expiry (TTL), shared by every engine.

The one piece of user metadata engines interpret: ``x-amz-meta-ttl-seconds``, a
whole number of seconds after the write at which the object expires. ``0`` means
"never", overriding the engine's default TTL. An expired object is invisible at
once; a background reaper reclaims it later.
"""

from __future__ import annotations

TTL_METADATA = "x-amz-meta-ttl-seconds"
MAX_TTL_SECONDS = 100 * 365 * 86400


def parse_ttl(value: str) -> int | None:
    """Seconds from a metadata value, or None when it is not a whole number in range."""
    value = value.strip()
    if not value.isascii() or not value.isdigit():
        return None
    seconds = int(value)
    return seconds if seconds <= MAX_TTL_SECONDS else None


def expiry_of(headers: dict[str, str], written: float, default_ttl: int) -> float | None:
    """Epoch second at which an object written at ``written`` expires (None: never)."""
    raw = headers.get(TTL_METADATA)
    seconds = parse_ttl(raw) if raw is not None else None
    if seconds is None:
        seconds = default_ttl
    return written + seconds if seconds > 0 else None


def is_expired(expires: float | None, now: float) -> bool:
    return expires is not None and expires <= now
