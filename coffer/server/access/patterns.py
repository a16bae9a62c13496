"""Wildcard patterns (``*`` any run, ``?`` one character) and policy variables (``${aws:username}``).

Patterns compile once to regular expressions. A pattern holding a policy variable is kept as a
template: it is resolved against the request's facts and the resulting expression is cached,
so a steady stream of requests by the same user compiles nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
# ${*}, ${?} and ${$} stand for the character itself, never a wildcard
_ESCAPES = {"*": "*", "?": "?", "$": "$"}


def wildcard_regex(text: str) -> str:
    """The regular expression (source) of a wildcard pattern."""
    return glob_regex([(text, True)])


def glob_regex(pieces: Iterable[tuple[str, bool]], *, run: str = ".*", one: str = ".") -> str:
    """The expression of a pattern given as (text, wildcards active) pieces.

    Between two ``*`` the text is found at its leftmost place inside an atomic group, never
    revisited: for glob patterns the leftmost place is always a right one, and without it
    ``*a*a*a...`` backtracks polynomially (a hostile 20 KB policy would stall a worker).
    """
    segments: list[list[str]] = [[]]
    for text, wild in pieces:
        for ch in text:
            if wild and ch == "*":
                segments.append([])
            elif wild and ch == "?":
                segments[-1].append(one)
            else:
                segments[-1].append(re.escape(ch))
    joined = ["".join(s) for s in segments]
    if len(joined) == 1:
        return joined[0]
    first, *middle, last = joined
    return first + "".join(f"(?>{run}?{m})" for m in middle if m) + run + last


def compile_wildcards(patterns: list[str], *, ignore_case: bool = False) -> re.Pattern[str]:
    """One expression matching (wholly) any of ``patterns``."""
    source = "|".join(f"(?:{wildcard_regex(p)})" for p in patterns) or "(?!)"
    return re.compile(source, re.DOTALL | (re.IGNORECASE if ignore_case else 0))


def wildcard_match(pattern: str, text: str) -> bool:
    return _cached_compile(wildcard_regex(pattern), 0).fullmatch(text) is not None


@lru_cache(maxsize=4096)
def _cached_compile(source: str, flags: int) -> re.Pattern[str]:
    return re.compile(source, flags | re.DOTALL)


def fact_key(key: str) -> str:
    """A condition key as request facts spell it: lower case, except a tag key after the slash."""
    prefix, slash, rest = key.partition("/")
    return prefix.lower() + slash + rest


# A template's parts: (LITERAL, text) is matched as is, (PATTERN, text) holds wildcards,
# (VARIABLE, key, default) is replaced by the fact's single value.
LITERAL, PATTERN, VARIABLE = 0, 1, 2
Part = tuple[int, str, str | None]


@dataclass(frozen=True, slots=True)
class Template:
    """A string or pattern holding policy variables (Version 2012-10-17 only)."""

    parts: tuple[Part, ...]
    compiled: dict[tuple[str, ...], re.Pattern[str]] = field(default_factory=dict, compare=False, repr=False)

    def resolve(self, facts: Mapping[str, list[str]]) -> list[tuple[int, str]] | None:
        """The parts with variables replaced; None when a variable has no single value (the
        element then matches nothing, as AWS treats a missing variable without a default)."""
        out: list[tuple[int, str]] = []
        for kind, text, default in self.parts:
            if kind != VARIABLE:
                out.append((kind, text))
                continue
            values = facts.get(text)
            if values is not None and len(values) == 1:
                out.append((LITERAL, values[0]))
            elif default is not None:
                out.append((LITERAL, default))
            else:
                return None
        return out

    def string(self, facts: Mapping[str, list[str]]) -> str | None:
        parts = self.resolve(facts)
        return None if parts is None else "".join(text for _, text in parts)

    def regex(self, facts: Mapping[str, list[str]]) -> re.Pattern[str] | None:
        """The pattern for these facts; compiled once per distinct set of variable values."""
        values: list[str] = []
        for kind, text, default in self.parts:
            if kind == VARIABLE:
                got = facts.get(text)
                if got is not None and len(got) == 1:
                    values.append(got[0])
                elif default is not None:
                    values.append(default)
                else:
                    return None
        key = tuple(values)
        rx = self.compiled.get(key)
        if rx is None:
            substitutes = iter(key)
            pieces = [(next(substitutes), False) if k == VARIABLE else (t, k == PATTERN) for k, t, _ in self.parts]
            rx = _cached_compile(glob_regex(pieces), 0)
            if len(self.compiled) >= 1024:  # bounded: one entry per user name seen, say
                self.compiled.clear()
            self.compiled[key] = rx
        return rx


def template(text: str, *, variables: bool) -> str | Template:
    """``text`` itself when it holds no policy variable (or variables are off), else a Template."""
    if not variables or "${" not in text:
        return text
    parts: list[Part] = []
    pos = 0
    for m in _VARIABLE.finditer(text):
        if m.start() > pos:
            parts.append((PATTERN, text[pos : m.start()], None))
        pos = m.end()
        inner = m.group(1).strip()
        if inner in _ESCAPES:
            parts.append((LITERAL, _ESCAPES[inner], None))
            continue
        key, comma, default = inner.partition(",")
        default = default.strip()
        if comma and len(default) >= 2 and default[0] == default[-1] == "'":
            parts.append((VARIABLE, fact_key(key.strip()), default[1:-1]))
        elif not comma and key and ":" in key:
            parts.append((VARIABLE, fact_key(key.strip()), None))
        else:  # not a variable AWS knows: the characters stand for themselves
            parts.append((PATTERN, m.group(0), None))
    if pos < len(text):
        parts.append((PATTERN, text[pos:], None))
    return Template(tuple(parts))
