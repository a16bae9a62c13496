"""Tokens of the S3 Select dialect, each with its line and column (AWS reports both)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from coffer.select.errors import SelectError

KEYWORDS = frozenset(
    [
        "SELECT",
        "FROM",
        "WHERE",
        "LIMIT",
        "AS",
        "AND",
        "OR",
        "NOT",
        "LIKE",
        "ESCAPE",
        "BETWEEN",
        "IN",
        "IS",
        "NULL",
        "MISSING",
        "TRUE",
        "FALSE",
        "CASE",
        "WHEN",
        "THEN",
        "ELSE",
        "END",
        "CAST",
    ]
)


@dataclass(frozen=True)
class Token:
    kind: str  # KEYWORD, IDENT, QIDENT (double-quoted), STRING, NUMBER, TIMESTAMP, OP, EOF
    text: str
    line: int
    column: int


_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<string>'(?:[^']|'')*')
  | (?P<qident>"(?:[^"]|"")*")
  | (?P<timestamp>`[^`]*`)
  | (?P<op><=|>=|<>|!=|\|\||[-+*/%=<>(),.\[\];])
    """,
    re.VERBOSE,
)


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos, line, line_start = 0, 1, 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        column = pos - line_start + 1
        if match is None:
            raise SelectError(
                "LexerInvalidChar", f"Invalid character at line {line}, column {column}.", line=line, column=column
            )
        kind = match.lastgroup
        value = match.group()
        if kind == "ident":
            upper = value.upper()
            tokens.append(
                Token("KEYWORD", upper, line, column) if upper in KEYWORDS else Token("IDENT", value, line, column)
            )
        elif kind == "string":
            tokens.append(Token("STRING", value[1:-1].replace("''", "'"), line, column))
        elif kind == "qident":
            tokens.append(Token("QIDENT", value[1:-1].replace('""', '"'), line, column))
        elif kind == "timestamp":
            tokens.append(Token("TIMESTAMP", value[1:-1], line, column))
        elif kind == "number":
            tokens.append(Token("NUMBER", value, line, column))
        elif kind == "op":
            tokens.append(Token("OP", value, line, column))
        newlines = value.count("\n")
        if newlines:
            line += newlines
            line_start = pos + value.rindex("\n") + 1
        pos = match.end()
    tokens.append(Token("EOF", "", line, pos - line_start + 1))
    return tokens
