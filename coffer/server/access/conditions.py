"""Condition operators: compiled once when a policy is stored, evaluated per request.

AWS semantics (IAM "Condition operators" and "multivalued context keys"):

* values listed for one key are ORed; keys within an operator, and operators, are ANDed;
* a key absent from the request: the condition is false, except that a negated operator
  (StringNotEquals, NotIpAddress, ...) is true, ``...IfExists`` is true, and Null's value
  "true" asks exactly that the key be absent;
* ``ForAnyValue:`` holds when some request value satisfies the operator (false for an absent
  or empty key), ``ForAllValues:`` when every one does (true for an absent or empty key);
* a negated operator is satisfied by a request value that matches none of the policy values.
"""

from __future__ import annotations

import ipaddress
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from coffer.server.access.patterns import Template, compile_wildcards, fact_key, glob_regex, template, wildcard_regex

Facts = Mapping[str, list[str]]
# (request value, facts) -> whether it matches any of the condition's policy values
Matcher = Callable[[str, Facts], bool]

IP_ERROR = "Invalid IP address in Conditions"
KEY_ERROR = "Policy has an invalid condition key"

_FAMILIES: dict[str, tuple[str, bool]] = {  # operator -> (family, negated)
    "StringEquals": ("string", False),
    "StringNotEquals": ("string", True),
    "StringEqualsIgnoreCase": ("string_ic", False),
    "StringNotEqualsIgnoreCase": ("string_ic", True),
    "StringLike": ("like", False),
    "StringNotLike": ("like", True),
    "NumericEquals": ("numeric_eq", False),
    "NumericNotEquals": ("numeric_eq", True),
    "NumericLessThan": ("numeric_lt", False),
    "NumericLessThanEquals": ("numeric_le", False),
    "NumericGreaterThan": ("numeric_gt", False),
    "NumericGreaterThanEquals": ("numeric_ge", False),
    "DateEquals": ("date_eq", False),
    "DateNotEquals": ("date_eq", True),
    "DateLessThan": ("date_lt", False),
    "DateLessThanEquals": ("date_le", False),
    "DateGreaterThan": ("date_gt", False),
    "DateGreaterThanEquals": ("date_ge", False),
    "Bool": ("bool", False),
    "BinaryEquals": ("binary", False),
    "IpAddress": ("ip", False),
    "NotIpAddress": ("ip", True),
    "ArnEquals": ("arn", False),
    "ArnLike": ("arn", False),
    "ArnNotEquals": ("arn", True),
    "ArnNotLike": ("arn", True),
    "Null": ("null", False),
}

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}

# S3's own condition keys (lower case); "aws:" keys are global and all accepted, as S3 does.
_S3_KEY_NAMES = """
    s3:prefix s3:delimiter s3:max-keys s3:x-amz-acl s3:x-amz-grant-read s3:x-amz-grant-write
    s3:x-amz-grant-read-acp s3:x-amz-grant-write-acp s3:x-amz-grant-full-control
    s3:x-amz-server-side-encryption s3:x-amz-server-side-encryption-aws-kms-key-id
    s3:x-amz-server-side-encryption-customer-algorithm s3:x-amz-copy-source
    s3:x-amz-metadata-directive s3:x-amz-storage-class s3:x-amz-website-redirect-location
    s3:x-amz-content-sha256 s3:requestobjecttagkeys s3:versionid s3:locationconstraint
    s3:object-lock-mode s3:object-lock-retain-until-date s3:object-lock-remaining-retention-days
    s3:object-lock-legal-hold s3:signatureversion s3:signatureage s3:authtype s3:tlsversion
    s3:resourceaccount s3:accesspointnetworkorigin s3:dataaccesspointarn s3:dataaccesspointaccount
    s3:objectcreationoperation s3:x-amz-object-ownership s3:x-amz-checksum-algorithm
"""
S3_KEYS = frozenset(_S3_KEY_NAMES.split())
S3_KEY_PREFIXES = ("s3:existingobjecttag/", "s3:requestobjecttag/")

_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_EPOCH = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


class ConditionError(ValueError):
    """A condition S3 refuses; ``reason`` is MalformedPolicy's message."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def valid_key(key: str) -> bool:
    lower = key.lower()
    if lower.startswith("aws:"):
        return len(lower) > 4
    return lower in S3_KEYS or any(lower.startswith(p) and len(lower) > len(p) for p in S3_KEY_PREFIXES)


def parse_number(text: str) -> float | None:
    if _NUMBER.fullmatch(text) is None:
        return None
    value = float(text)
    return value if math.isfinite(value) else None


@lru_cache(maxsize=1024)
def parse_date(text: str) -> float | None:
    """Seconds since the epoch of an ISO 8601 date or date-time (UTC when no offset) or of an
    epoch number, as AWS's Date operators take either."""
    if _EPOCH.fullmatch(text):
        value = float(text)
        return value if math.isfinite(value) else None
    if not 10 <= len(text) <= 40 or not text[:4].isdigit():
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


@lru_cache(maxsize=1024)
def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass(frozen=True, slots=True)
class Condition:
    """One (operator, key) pair of a Condition block, with its values compiled."""

    operator: str  # as written, e.g. "ForAnyValue:StringLikeIfExists"
    base: str  # "StringLike"
    key: str  # as facts spell it
    values: tuple[str, ...]  # as written, normalised to strings
    negated: bool
    if_exists: bool
    set_mode: str | None  # None, "any" or "all"
    matcher: Matcher
    null_absent: frozenset[bool] = frozenset()  # Null only: which answers to "is it absent?" hold

    def holds(self, facts: Facts) -> bool:
        values = facts.get(self.key)
        if self.base == "Null":
            return (not values) in self.null_absent
        if not values:
            if self.set_mode == "all":
                return True
            if self.if_exists:
                return True
            return self.set_mode is None and self.negated
        match = self.matcher
        if self.set_mode == "all":
            return all(match(v, facts) != self.negated for v in values)
        if self.set_mode == "any":
            return any(match(v, facts) != self.negated for v in values)
        return any(match(v, facts) for v in values) != self.negated


def normalise_values(raw: object) -> list[str]:
    """A condition's value or list of values as strings (JSON numbers and booleans included)."""
    items = raw if isinstance(raw, list) else [raw]
    out: list[str] = []
    for item in items:
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, str):
            out.append(item)
        elif isinstance(item, int | float):
            out.append(repr(item) if isinstance(item, float) else str(item))
        else:
            raise ConditionError("Invalid policy syntax.")
    return out


def split_operator(name: str) -> tuple[str, str | None, bool]:
    """(base operator, set mode, if_exists); ConditionError for an operator S3 does not know."""
    rest, mode = name, None
    for prefix, value in (("ForAnyValue:", "any"), ("ForAllValues:", "all")):
        if name.startswith(prefix):
            rest, mode = name[len(prefix) :], value
            break
    if_exists = rest.endswith("IfExists") and rest != "IfExists"
    base = rest[: -len("IfExists")] if if_exists else rest
    if base not in _FAMILIES or (base == "Null" and (if_exists or mode is not None)):
        raise ConditionError(f"Invalid Condition type : {name}")
    return base, mode, if_exists


def compile_condition(name: str, key: str, raw: object, *, variables: bool) -> Condition:
    base, mode, if_exists = split_operator(name)
    if not valid_key(key):
        raise ConditionError(KEY_ERROR)
    values = normalise_values(raw)
    family, negated = _FAMILIES[base]
    null_absent: frozenset[bool] = frozenset()
    if family == "null":
        null_absent = frozenset(v.lower() == "true" for v in values)
        matcher: Matcher = _never
    else:
        matcher = _matcher(family, base, values, variables)
    return Condition(name, base, fact_key(key), tuple(values), negated, if_exists, mode, matcher, null_absent)


def _never(value: str, facts: Facts) -> bool:
    return False


def _matcher(family: str, base: str, values: list[str], variables: bool) -> Matcher:
    if family in ("string", "string_ic", "binary", "bool"):
        fold = family in ("string_ic", "bool")
        return _string_matcher(values, fold=fold, variables=variables and family.startswith("string"))
    if family == "like":
        return _like_matcher(values, variables)
    if family == "arn":
        return _like_matcher(values, variables, arn=True)
    if family.startswith("numeric_") or family.startswith("date_"):
        kind, _, how = family.partition("_")
        parse = parse_number if kind == "numeric" else parse_date
        limits = []
        for v in values:
            parsed = parse(v)
            if parsed is None:
                raise ConditionError(f"Invalid value in Conditions for operator {base}")
            limits.append(parsed)
        compare = _COMPARE[how]

        def ordered(value: str, facts: Facts) -> bool:
            got = parse(value)
            return got is not None and any(compare(got, limit) for limit in limits)

        return ordered
    if family == "ip":
        networks = []
        for v in values:
            try:
                networks.append(ipaddress.ip_network(v.strip(), strict=False))
            except ValueError:
                raise ConditionError(IP_ERROR) from None

        def in_networks(value: str, facts: Facts) -> bool:
            address = _address(value)
            return address is not None and any(address in net for net in networks)

        return in_networks
    raise AssertionError(family)  # pragma: no cover - _FAMILIES lists every family


def _string_matcher(values: list[str], *, fold: bool, variables: bool) -> Matcher:
    plain: set[str] = set()
    templates: list[Template] = []
    for v in values:
        t = template(v, variables=variables)
        if isinstance(t, Template):
            templates.append(t)
        else:
            plain.add(t.casefold() if fold else t)
    fixed = frozenset(plain)
    if not templates:
        if fold:
            return lambda value, facts: value.casefold() in fixed
        return lambda value, facts: value in fixed

    def with_variables(value: str, facts: Facts) -> bool:
        got = value.casefold() if fold else value
        if got in fixed:
            return True
        for t in templates:
            s = t.string(facts)
            if s is not None and (s.casefold() if fold else s) == got:
                return True
        return False

    return with_variables


def _arn_regex(pattern: str) -> str:
    """ArnLike/ArnEquals compare each of an ARN's six colon-separated parts on its own: a
    wildcard in the first five does not cross a colon."""
    parts = pattern.split(":", 5)
    if len(parts) < 6:
        return wildcard_regex(pattern)
    head = ":".join(_segment_regex(p) for p in parts[:5])
    return head + ":" + wildcard_regex(parts[5])


def _segment_regex(text: str) -> str:
    return glob_regex([(text, True)], run="[^:]*", one="[^:]")


def _like_matcher(values: list[str], variables: bool, *, arn: bool = False) -> Matcher:
    plain: list[str] = []
    templates: list[Template] = []
    for v in values:
        t = template(v, variables=variables)
        if isinstance(t, Template):
            templates.append(t)
        else:
            plain.append(t)
    if arn:
        fixed = re.compile("|".join(f"(?:{_arn_regex(p)})" for p in plain) or "(?!)", re.DOTALL)
    else:
        fixed = compile_wildcards(plain)
    if not templates:
        return lambda value, facts: fixed.fullmatch(value) is not None

    def with_variables(value: str, facts: Facts) -> bool:
        if fixed.fullmatch(value) is not None:
            return True
        for t in templates:
            rx = t.regex(facts)
            if rx is not None and rx.fullmatch(value) is not None:
                return True
        return False

    return with_variables


# Keys whose fixed values confine a wildcard principal to someone in particular ("The meaning
# of public" in the S3 user guide); aws:SourceIp is judged on its CIDRs.
_CONFINING_NAMES = """
    aws:sourcearn aws:sourcevpc aws:sourcevpce aws:sourceowner aws:sourceaccount aws:userid
    aws:principalorgid aws:principalaccount aws:principalarn s3:dataaccesspointarn
    s3:dataaccesspointaccount s3:x-amz-server-side-encryption-aws-kms-key-id
"""
CONFINING_KEYS = frozenset(_CONFINING_NAMES.split())
_RFC1918 = tuple(ipaddress.IPv4Network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_CONFINING_OPERATORS = frozenset({"StringEquals", "StringEqualsIgnoreCase", "StringLike", "ArnEquals", "ArnLike"})


def confines(condition: Condition) -> bool:
    """Whether ``condition`` holds a request to fixed values of a key that says who or where
    from: no wildcard, no policy variable, not satisfiable by an absent key, and for
    aws:SourceIp, CIDRs no broader than /8 (IPv4) or /32 (IPv6)."""
    if condition.if_exists or condition.set_mode == "all" or condition.negated or not condition.values:
        return False
    if condition.key == "aws:sourceip":
        if condition.base != "IpAddress":
            return False
        for v in condition.values:
            net = ipaddress.ip_network(v.strip(), strict=False)
            if net.prefixlen < (8 if net.version == 4 else 32) and not any(
                net.version == 4 and net.subnet_of(private) for private in _RFC1918
            ):
                return False
        return True
    if condition.key not in CONFINING_KEYS or condition.base not in _CONFINING_OPERATORS:
        return False
    if any("*" in v or "?" in v or "${" in v for v in condition.values):
        return False
    return not (condition.key == "aws:userid" and any(v.upper().startswith("AROLEID:") for v in condition.values))
