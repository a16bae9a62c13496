"""LIKE patterns: ``%`` any run of characters, ``_`` one character, an optional ESCAPE character.

A pattern is split at its ``%`` into fixed-length segments, matched left to right (the first at
the start, the last at the end, each middle one at its leftmost place after the previous), which
is correct for fixed-length segments and never backtracks: no pattern can make a match take
exponential time (a regex such as ``.*a.*a.*a...b`` would). The vectorized engine hands the same
segments to RE2, which runs in linear time by construction.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from coffer.select.errors import SelectError

ANY = None  # one character of any kind, in a segment
Segment = list[str | None]

_RE2_SPECIAL = frozenset("\\.+*?()|[]{}^$")


def segments(pattern: str, escape: str | None) -> list[Segment]:
    if escape is not None and len(escape) != 1:
        raise SelectError(
            "EvaluatorLikePatternInvalidEscapeSequence" if escape else "EvaluatorInvalidArguments",
            "The ESCAPE character must be a single character.",
        )
    out: list[Segment] = [[]]
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if escape is not None and char == escape:
            if i + 1 >= len(pattern):
                raise SelectError(
                    "EvaluatorLikePatternInvalidEscapeSequence", "The LIKE pattern ends with its escape character."
                )
            out[-1].append(pattern[i + 1])
            i += 2
            continue
        if char == "%":
            out.append([])
        else:
            out[-1].append(ANY if char == "_" else char)
        i += 1
    return out


def _regex(segment: Segment) -> re.Pattern[str]:
    return re.compile("".join("." if c is ANY else re.escape(c) for c in segment), re.DOTALL)


def matcher(pattern: str, escape: str | None) -> Callable[[str], bool]:
    """A function telling whether a text matches the pattern."""
    parts = segments(pattern, escape)
    regexes = [_regex(part) for part in parts]
    if len(parts) == 1:
        only = regexes[0]
        return lambda text: only.fullmatch(text) is not None
    first, last = regexes[0], regexes[-1]
    head, tail = len(parts[0]), len(parts[-1])
    middle = regexes[1:-1]

    def match(text: str) -> bool:
        stop = len(text) - tail
        if stop < head or not first.fullmatch(text, 0, head) or not last.fullmatch(text, stop):
            return False
        position = head
        for regex in middle:
            found = regex.search(text, position, stop)
            if found is None:
                return False
            position = found.end()
        return True

    return match


def re2(pattern: str, escape: str | None) -> str:
    """The pattern as an anchored RE2 expression (for pyarrow's match_substring_regex)."""

    def literal(c: str | None) -> str:
        if c is ANY:
            return "."
        return "\\" + c if c in _RE2_SPECIAL else c

    return "(?s)^" + ".*".join("".join(literal(c) for c in part) for part in segments(pattern, escape)) + "$"
