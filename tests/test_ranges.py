"""The Range header parser against a model of S3's rules, and against hostile input."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from coffer.server.errors import S3Error
from coffer.server.ranges import parse_range

sizes = st.integers(min_value=0, max_value=10_000)
numbers = st.integers(min_value=0, max_value=20_000)


def model(first: int | None, last: int | None, size: int) -> tuple[int, int] | str | None:
    """(start, end) to send, None to ignore the header, or "416"."""
    if first is None:  # bytes=-n: the last n bytes
        assert last is not None
        return "416" if last == 0 or size == 0 else (max(0, size - last), size)
    if last is not None and last < first:
        return None  # invalid syntax: ignored
    if first >= size:
        return "416"
    return first, size if last is None else min(last + 1, size)


def outcome(header: str, size: int) -> tuple[int, int] | str | None:
    try:
        return parse_range(header, size)
    except S3Error as err:
        assert err.code == "InvalidRange" and err.status == 416
        assert (b"content-range", f"bytes */{size}".encode()) in err.headers
        return "416"


@given(first=st.one_of(st.none(), numbers), last=st.one_of(st.none(), numbers), size=sizes)
@settings(max_examples=500, deadline=None)
def test_parse_range_matches_the_model(first: int | None, last: int | None, size: int) -> None:
    if first is None and last is None:
        return
    header = f"bytes={'' if first is None else first}-{'' if last is None else last}"
    result = outcome(header, size)
    assert result == model(first, last, size), header
    if isinstance(result, tuple):
        start, end = result
        assert 0 <= start < end <= size


@given(header=st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=40), size=sizes)
@settings(max_examples=500, deadline=None)
def test_hostile_headers_never_crash(header: str, size: int) -> None:
    # Header values arrive decoded as latin-1: '²' and friends are digits to str.isdigit().
    result = outcome(header, size)
    assert result in (None, "416") or (isinstance(result, tuple) and 0 <= result[0] < result[1] <= size)


def test_unicode_digits_are_not_digits() -> None:
    assert outcome("bytes=²-", 10) is None
    assert outcome("bytes=0-٣", 10) is None
