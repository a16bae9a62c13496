"""The scalar functions of the dialect on Python values (string and date functions, COALESCE,
NULLIF). NULL or MISSING arguments give NULL, as in AWS."""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from coffer.select import values
from coffer.select.errors import SelectError
from coffer.select.sql.ast import Value


def _text_arg(value: Any, name: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return values.text_of(value)
    raise SelectError("EvaluatorInvalidArguments", f"Function {name} expects a string argument.")


def _int_arg(value: Any, name: str) -> int:
    converted = values.number(value)
    if converted is None:
        raise SelectError("EvaluatorInvalidArguments", f"Function {name} expects a number argument.")
    return int(converted)


def char_length(args: list[Any]) -> Value:
    return len(_text_arg(args[0], "CHAR_LENGTH"))


def lower(args: list[Any]) -> Value:
    return _text_arg(args[0], "LOWER").lower()


def upper(args: list[Any]) -> Value:
    return _text_arg(args[0], "UPPER").upper()


def substring(args: list[Any]) -> Value:
    text = _text_arg(args[0], "SUBSTRING")
    start = _int_arg(args[1], "SUBSTRING")
    if len(args) < 3:
        return text[max(start, 1) - 1 :]
    length = _int_arg(args[2], "SUBSTRING")
    if length < 0:
        raise SelectError("EvaluatorInvalidArguments", "SUBSTRING's length cannot be negative.")
    end = start + length  # one past the last position, 1-based
    return text[max(start, 1) - 1 : max(end - 1, 0)]


def trim(args: list[Any]) -> Value:
    side, text = args[0], _text_arg(args[1], "TRIM")
    chars = _text_arg(args[2], "TRIM") if len(args) > 2 else " "
    if side == "LEADING":
        return text.lstrip(chars)
    if side == "TRAILING":
        return text.rstrip(chars)
    return text.strip(chars)


def _ts(value: Any, name: str) -> datetime:
    if isinstance(value, str):
        return values.to_timestamp(value)
    if not isinstance(value, datetime):
        raise SelectError("EvaluatorInvalidArguments", f"Function {name} expects a timestamp argument.")
    return value


def _add_months(when: datetime, months: int) -> datetime:
    total = when.year * 12 + when.month - 1 + months
    year, month = divmod(total, 12)
    day = min(when.day, calendar.monthrange(year, month + 1)[1])
    return when.replace(year=year, month=month + 1, day=day)


def date_add(args: list[Any]) -> Value:
    part, amount, when = args[0], _int_arg(args[1], "DATE_ADD"), _ts(args[2], "DATE_ADD")
    try:
        if part == "YEAR":
            return _add_months(when, 12 * amount)
        if part == "MONTH":
            return _add_months(when, amount)
        unit = {"DAY": "days", "HOUR": "hours", "MINUTE": "minutes", "SECOND": "seconds"}.get(part)
        if unit is None:
            raise SelectError("EvaluatorInvalidArguments", f"DATE_ADD does not take the date part {part}.")
        return when + timedelta(**{unit: amount})
    except (OverflowError, ValueError):
        raise SelectError("EvaluatorInvalidArguments", "DATE_ADD's result is out of range.") from None


def date_diff(args: list[Any]) -> Value:
    part, first, second = args[0], _ts(args[1], "DATE_DIFF"), _ts(args[2], "DATE_DIFF")
    if (first.tzinfo is None) != (second.tzinfo is None):
        first, second = first.replace(tzinfo=first.tzinfo or UTC), second.replace(tzinfo=second.tzinfo or UTC)
    if part in ("YEAR", "MONTH"):
        months = (second.year - first.year) * 12 + second.month - first.month
        if (second.day, second.time()) < (first.day, first.time()) and months > 0:
            months -= 1
        return months // 12 if part == "YEAR" else months
    seconds = (second - first).total_seconds()
    unit = {"DAY": 86400, "HOUR": 3600, "MINUTE": 60, "SECOND": 1}.get(part)
    if unit is None:
        raise SelectError("EvaluatorInvalidArguments", f"DATE_DIFF does not take the date part {part}.")
    return int(seconds / unit)


def extract(args: list[Any]) -> Value:
    part, when = args[0], _ts(args[1], "EXTRACT")
    if part in ("TIMEZONE_HOUR", "TIMEZONE_MINUTE"):
        offset = when.utcoffset() or timedelta(0)
        minutes = int(offset.total_seconds() // 60)
        return int(minutes / 60) if part == "TIMEZONE_HOUR" else minutes - int(minutes / 60) * 60
    return int(getattr(when, part.lower()))


# TO_STRING patterns (AWS's, after Java's DateTimeFormatter), longest first.
_PATTERN = re.compile(r"yyyy|yy|y|MMMM|MMM|MM|M|dd|d|a|hh|h|HH|H|mm|m|ss|s|SSS|SS|S|n|XXXXX|XXXX|XXX|XX|X|'[^']*'")


def _zone(when: datetime, form: str) -> str:
    offset = when.utcoffset() or timedelta(0)
    if not offset and form != "x":
        return "Z"
    minutes = int(offset.total_seconds() // 60)
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    if form == "X":
        return f"{sign}{hours:02d}" + (f"{mins:02d}" if mins else "")
    if form in ("XX", "XXXX"):
        return f"{sign}{hours:02d}{mins:02d}"
    return f"{sign}{hours:02d}:{mins:02d}"


def to_string(args: list[Any]) -> Value:
    when = _ts(args[0], "TO_STRING")
    pattern = _text_arg(args[1], "TO_STRING")

    def one(match: re.Match[str]) -> str:
        token = match.group()
        hour12 = when.hour % 12 or 12
        table: dict[str, Callable[[], str]] = {
            "yyyy": lambda: f"{when.year:04d}",
            "yy": lambda: f"{when.year % 100:02d}",
            "y": lambda: str(when.year),
            "MMMM": lambda: calendar.month_name[when.month],
            "MMM": lambda: calendar.month_abbr[when.month],
            "MM": lambda: f"{when.month:02d}",
            "M": lambda: str(when.month),
            "dd": lambda: f"{when.day:02d}",
            "d": lambda: str(when.day),
            "a": lambda: "AM" if when.hour < 12 else "PM",
            "hh": lambda: f"{hour12:02d}",
            "h": lambda: str(hour12),
            "HH": lambda: f"{when.hour:02d}",
            "H": lambda: str(when.hour),
            "mm": lambda: f"{when.minute:02d}",
            "m": lambda: str(when.minute),
            "ss": lambda: f"{when.second:02d}",
            "s": lambda: str(when.second),
            "SSS": lambda: f"{when.microsecond // 1000:03d}",
            "SS": lambda: f"{when.microsecond // 10000:02d}",
            "S": lambda: str(when.microsecond // 100000),
            "n": lambda: str(when.microsecond * 1000),
        }
        if token.startswith("'"):
            return token[1:-1]
        if token.startswith("X"):
            return _zone(when, token)
        return table[token]()

    return _PATTERN.sub(one, pattern)


def to_timestamp(args: list[Any]) -> Value:
    try:
        return values.to_timestamp(args[0])
    except SelectError as exc:
        raise SelectError("ValueParseFailure", f"A timestamp parse failure occurred: {exc.message}") from None


def utcnow(args: list[Any]) -> Value:
    return datetime.now(UTC)


SCALARS: dict[str, Callable[[list[Any]], Value]] = {
    "CHAR_LENGTH": char_length,
    "LOWER": lower,
    "UPPER": upper,
    "SUBSTRING": substring,
    "TRIM": trim,
    "DATE_ADD": date_add,
    "DATE_DIFF": date_diff,
    "EXTRACT": extract,
    "TO_STRING": to_string,
    "TO_TIMESTAMP": to_timestamp,
    "UTCNOW": utcnow,
}
