"""HTTP Range header parsing (RFC 9110 §14), single range as S3 serves it."""

from __future__ import annotations

from coffer.server.errors import S3Error
from coffer.server.http import is_decimal


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """'bytes=a-b' -> (start, end_exclusive); None means ignore the header and send everything.

    Unsatisfiable ranges raise InvalidRange (416). Syntactically invalid or
    multi-range headers are ignored, as S3 does.
    """
    unit, sep, spec = header.strip().partition("=")
    if not sep or unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    first, last = first.strip(), last.strip()
    if not dash or (first and not is_decimal(first)) or (last and not is_decimal(last)) or (not first and not last):
        return None
    if not first:  # suffix range: the last n bytes
        n = int(last)
        if n == 0 or size == 0:  # no last bytes to give
            raise _unsatisfiable(size)
        return max(0, size - n), size
    start = int(first)
    end = int(last) + 1 if last else size
    if last and end <= start:
        return None  # a-b with b < a is invalid syntax, hence ignored
    if start >= size:
        raise _unsatisfiable(size)
    return start, min(end, size)


def _unsatisfiable(size: int) -> S3Error:
    err = S3Error("InvalidRange")
    err.fields["ActualObjectSize"] = str(size)
    err.headers.append((b"content-range", f"bytes */{size}".encode()))
    return err
