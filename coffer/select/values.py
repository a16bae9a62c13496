"""S3 Select values: conversions, comparisons and the text form of each type (shared by the
row evaluator and the output writers)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from coffer.select.errors import SelectError
from coffer.select.sql.ast import MISSING, Value
from coffer.select.sql.parser import parse_timestamp


def is_absent(value: Any) -> bool:
    return value is None or value is MISSING


def number(value: Any) -> int | float | None:
    """A value used where a number is needed; CSV fields are text, read as numbers when they are."""
    if isinstance(value, bool):
        raise SelectError("EvaluatorInvalidArguments", "A boolean cannot be used as a number.")
    if isinstance(value, int | float):
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            return float(text)
        except ValueError:
            return None
    return None


def to_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise SelectError("CastFailed", f"Cannot convert {value} to INT.")
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            try:
                return int(Decimal(text))
            except (InvalidOperation, ValueError, OverflowError):
                pass
    raise SelectError("CastFailed", f"Cannot convert '{text_of(value)}' to INT.")


def to_float(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float | Decimal):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise SelectError("CastFailed", f"Cannot convert '{text_of(value)}' to FLOAT.")


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return value != 0
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if isinstance(value, str):
        try:
            return float(value.strip()) != 0
        except ValueError:
            pass
    raise SelectError("CastFailed", f"Cannot convert '{text_of(value)}' to BOOL.")


def to_timestamp(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        return parse_timestamp(value)
    raise SelectError("CastFailed", f"Cannot convert '{text_of(value)}' to TIMESTAMP.")


def cast(value: Any, kind: str) -> Value:
    if value is None or value is MISSING:
        return None if value is None else MISSING
    if kind in ("INT", "FLOAT", "DECIMAL", "BOOL", "TIMESTAMP") and isinstance(value, str) and not value.strip():
        return None  # an empty CSV field
    if kind == "INT":
        return to_int(value)
    if kind in ("FLOAT", "DECIMAL"):
        return to_float(value)
    if kind == "STRING":
        return text_of(value)
    if kind == "BOOL":
        return to_bool(value)
    return to_timestamp(value)


def timestamp_text(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = value.isoformat()
    return text.replace("+00:00", "Z")


def text_of(value: Any) -> str:
    """The CSV output form of a value (NULL and MISSING: empty)."""
    if value is None or value is MISSING:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, datetime):
        return timestamp_text(value)
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"), default=str)
    return str(value)


def comparable(left: Any, right: Any) -> tuple[Any, Any] | None:
    """The pair to compare, or None when the two cannot be compared (a text that is no number
    against a number): CSV fields are text, compared with numbers as numbers."""
    if isinstance(left, bool) or isinstance(right, bool):
        if isinstance(left, bool) and isinstance(right, bool):
            return left, right
        if isinstance(left, str) and isinstance(right, bool):
            return (left.strip().lower() == "true", right) if left.strip().lower() in ("true", "false") else None
        if isinstance(right, str) and isinstance(left, bool):
            return (left, right.strip().lower() == "true") if right.strip().lower() in ("true", "false") else None
        return None
    left_num = isinstance(left, int | float | Decimal)
    right_num = isinstance(right, int | float | Decimal)
    if left_num and right_num:
        return left, right
    if left_num and isinstance(right, str):
        converted = number(right)
        return None if converted is None else (left, converted)
    if right_num and isinstance(left, str):
        converted = number(left)
        return None if converted is None else (converted, right)
    if isinstance(left, datetime) or isinstance(right, datetime):
        try:
            a, b = to_timestamp(left), to_timestamp(right)
        except SelectError:
            return None
        if (a.tzinfo is None) != (b.tzinfo is None):
            a, b = a.replace(tzinfo=a.tzinfo or UTC), b.replace(tzinfo=b.tzinfo or UTC)
        return a, b
    if isinstance(left, str) and isinstance(right, str):
        return left, right
    return None
