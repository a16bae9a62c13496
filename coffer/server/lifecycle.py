"""Bucket lifecycle configuration on the wire: parse and validate a LifecycleConfiguration
document into coffer.storage.lifecycle.Configuration, render it back, and the
``x-amz-expiration`` header.

Validation follows S3: a document that does not have the expected shape is MalformedXML;
values S3 refuses are InvalidArgument with AWS's messages. One leniency, as Ceph RGW: a Filter
may combine several conditions (Prefix, Tag, And, sizes) without wrapping them in And; all of
them must then hold (docs/lifecycle.md).
"""

from __future__ import annotations

import calendar
import datetime
import re
import time
from typing import Any
from xml.etree.ElementTree import Element

from coffer.server import tagging, xml
from coffer.server.context import Context
from coffer.server.errors import S3Error
from coffer.server.http import Response, parse_int
from coffer.server.object_write import STORAGE_CLASSES
from coffer.storage import lifecycle as lc
from coffer.storage.api import ObjectInfo

MAX_DOCUMENT = xml.MAX_XML_BODY
_DATE = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|[+-]00:?00)?)?$")
_RULE_CHILDREN = frozenset(
    {
        "ID",
        "Prefix",
        "Filter",
        "Status",
        "Expiration",
        "Transition",
        "NoncurrentVersionExpiration",
        "NoncurrentVersionTransition",
        "AbortIncompleteMultipartUpload",
    }
)


def _malformed() -> S3Error:
    return S3Error("MalformedXML")


def _invalid(message: str) -> S3Error:
    return S3Error("InvalidArgument", message)


def _children(node: Element, allowed: set[str] | frozenset[str], repeatable: frozenset[str] = frozenset()) -> None:
    """Every child of ``node`` is allowed, and none but ``repeatable`` ones appears twice."""
    seen: set[str] = set()
    for child in node:
        if child.tag not in allowed or (child.tag in seen and child.tag not in repeatable):
            raise _malformed()
        seen.add(child.tag)


def _text(node: Element, name: str) -> str | None:
    found = node.find(name)
    if found is None:
        return None
    if len(found):
        raise _malformed()
    return found.text or ""


def _int(node: Element, name: str, message: str, low: int = 1) -> int | None:
    """An integer field; not a number: MalformedXML; out of range: InvalidArgument ``message``."""
    text = _text(node, name)
    if text is None:
        return None
    stripped = text.strip()
    if not re.fullmatch(r"-?\d{1,19}", stripped):
        raise _malformed()
    if stripped.startswith("-"):
        raise _invalid(message)
    return parse_int(stripped, name, low, message=message)


def _date(node: Element, name: str) -> float | None:
    """An ISO 8601 date at midnight UTC (S3 refuses any other time)."""
    text = _text(node, name)
    if text is None:
        return None
    m = _DATE.match(text.strip())
    if m is None:
        raise S3Error("InvalidArgument", "Invalid date format, must be ISO 8601 format")
    year, month, day, hh, mm, ss, frac = (m.group(i) for i in range(1, 8))
    try:
        date = datetime.date(int(year), int(month), int(day))
    except ValueError:
        raise S3Error("InvalidArgument", "Invalid date format, must be ISO 8601 format") from None
    if (hh or "00", mm or "00", ss or "00") != ("00", "00", "00") or (frac and int(frac)):
        raise _invalid("'Date' must be at midnight GMT")
    when = calendar.timegm(date.timetuple())
    return float(when)


def _tag(node: Element) -> tuple[str, str]:
    _children(node, {"Key", "Value"})
    key, value = _text(node, "Key"), _text(node, "Value")
    if key is None:
        raise _malformed()
    pair = (key, value or "")
    tagging.validate([pair])
    return pair


def _size(node: Element, name: str) -> int | None:
    return _int(node, name, f"'{name}' must be a nonnegative integer", low=0)


def _filter(node: Element) -> tuple[lc.Filter, Any]:
    """The Filter element: the model's Filter and a description of its shape (for rendering)."""
    _children(node, {"Prefix", "Tag", "And", "ObjectSizeGreaterThan", "ObjectSizeLessThan"})
    prefixes: list[str] = []
    tags: list[tuple[str, str]] = []
    doc: dict[str, Any] = {}
    prefix = _text(node, "Prefix")
    if prefix is not None:
        prefixes.append(prefix)
        doc["Prefix"] = prefix
    tag = node.find("Tag")
    if tag is not None:
        tags.append(_tag(tag))
        doc["Tag"] = list(tags[-1])
    sizes = {name: _size(node, name) for name in ("ObjectSizeGreaterThan", "ObjectSizeLessThan")}
    doc.update({k: v for k, v in sizes.items() if v is not None})
    both = node.find("And")
    if both is not None:
        _children(both, {"Prefix", "Tag", "ObjectSizeGreaterThan", "ObjectSizeLessThan"}, frozenset({"Tag"}))
        inner: dict[str, Any] = {}
        and_prefix = _text(both, "Prefix")
        if and_prefix is not None:
            prefixes.append(and_prefix)
            inner["Prefix"] = and_prefix
        and_tags = [_tag(t) for t in both.findall("Tag")]
        if len({k for k, _ in and_tags}) != len(and_tags):
            raise _invalid("Duplicate Tag Keys are not allowed.")
        tags += and_tags
        inner["Tags"] = [list(t) for t in and_tags]
        for name in ("ObjectSizeGreaterThan", "ObjectSizeLessThan"):
            value = _size(both, name)
            if value is not None:
                sizes[name] = value if sizes[name] is None else sizes[name]
                inner[name] = value
        doc["And"] = inner
    # Several prefixes (Ceph-style combinations) must all hold: the longest one says it all,
    # unless they disagree (then nothing can match; keep one that no key has both ways).
    longest = max(prefixes, key=len, default="")
    if any(not longest.startswith(p) for p in prefixes):
        raise _invalid("The prefixes of a Filter must not contradict each other.")
    gt, lt = sizes["ObjectSizeGreaterThan"], sizes["ObjectSizeLessThan"]
    if gt is not None and lt is not None and gt >= lt:
        raise _invalid("ObjectSizeGreaterThan must be less than ObjectSizeLessThan")
    return lc.Filter(longest, tuple(tags), gt, lt), doc


def _expiration(node: Element) -> tuple[int | None, float | None, bool | None]:
    _children(node, {"Days", "Date", "ExpiredObjectDeleteMarker"})
    days = _int(node, "Days", "'Days' for Expiration action must be a positive integer")
    date = _date(node, "Date")
    marker_text = _text(node, "ExpiredObjectDeleteMarker")
    marker: bool | None = None
    if marker_text is not None:
        if marker_text.strip().lower() not in ("true", "false"):
            raise _malformed()
        marker = marker_text.strip().lower() == "true"
    if days is not None and date is not None:
        raise _malformed()
    if marker is not None and (days is not None or date is not None):
        raise _invalid(
            "ExpiredObjectDeleteMarker cannot be specified with Days or Date in a Lifecycle Expiration Policy"
        )
    if days is None and date is None and marker is None:
        raise _malformed()
    return days, date, marker


def _storage_class(node: Element) -> str:
    sc = _text(node, "StorageClass")
    if sc is None:
        raise _malformed()
    sc = sc.strip()
    if sc not in STORAGE_CLASSES:
        raise S3Error("InvalidStorageClass", StorageClassRequested=sc[:64])
    return sc


def _transition(node: Element) -> lc.Transition:
    _children(node, {"Days", "Date", "StorageClass"})
    days = _int(node, "Days", "'Days' in Transition action must be nonnegative", low=0)
    date = _date(node, "Date")
    if (days is None) == (date is None):
        raise _malformed()
    return lc.Transition(_storage_class(node), days=days, date=date)


def _noncurrent_transition(node: Element) -> lc.Transition:
    _children(node, {"NoncurrentDays", "StorageClass", "NewerNoncurrentVersions"})
    days = _int(node, "NoncurrentDays", "'NoncurrentDays' in NoncurrentVersionTransition action must be nonnegative", 0)
    if days is None:
        raise _malformed()
    newer = _int(
        node,
        "NewerNoncurrentVersions",
        "'NewerNoncurrentVersions' in NoncurrentVersionTransition action must be a positive integer",
    )
    return lc.Transition(_storage_class(node), days=days, newer=newer)


def _rule(node: Element, index: int) -> lc.Rule:
    _children(node, _RULE_CHILDREN, frozenset({"Transition", "NoncurrentVersionTransition"}))
    rule_id = _text(node, "ID")
    if rule_id is not None and len(rule_id) > lc.MAX_ID_LENGTH:
        raise _invalid("ID length should not exceed allowed limit of 255")
    status = _text(node, "Status")
    if status not in ("Enabled", "Disabled"):
        raise _malformed()
    legacy = _text(node, "Prefix")
    filter_node = node.find("Filter")
    if (legacy is None) == (filter_node is None):
        raise _malformed()  # exactly one of them, as S3 requires
    if filter_node is not None:
        filt, filter_doc = _filter(filter_node)
    else:
        assert legacy is not None
        filt, filter_doc = lc.Filter(prefix=legacy), None
    fields: dict[str, Any] = {}
    expiration = node.find("Expiration")
    if expiration is not None:
        days, date, marker = _expiration(expiration)
        fields.update(expiration_days=days, expiration_date=date, expired_object_delete_marker=marker)
        if marker is not None and filt.tags:
            raise _invalid("ExpiredObjectDeleteMarker cannot be specified with Tags in a Lifecycle Expiration Policy")
    noncurrent = node.find("NoncurrentVersionExpiration")
    if noncurrent is not None:
        _children(noncurrent, {"NoncurrentDays", "NewerNoncurrentVersions"})
        days_ = _int(
            noncurrent,
            "NoncurrentDays",
            "'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer",
        )
        if days_ is None:
            raise _malformed()
        newer = _int(
            noncurrent,
            "NewerNoncurrentVersions",
            "'NewerNoncurrentVersions' for NoncurrentVersionExpiration action must be a positive integer",
        )
        fields.update(noncurrent_days=days_, newer_noncurrent=newer)
    abort = node.find("AbortIncompleteMultipartUpload")
    if abort is not None:
        _children(abort, {"DaysAfterInitiation"})
        after = _int(
            abort,
            "DaysAfterInitiation",
            "'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer",
        )
        if after is None:
            raise _malformed()
        if filt.tags:
            raise S3Error("InvalidRequest", "AbortIncompleteMultipartUpload cannot be specified with Tags.")
        fields["abort_days"] = after
    transitions = tuple(_transition(t) for t in node.findall("Transition"))
    if len({t.date is None for t in transitions}) > 1:
        raise _invalid("Found mixed 'Date' and 'Days' based Transition actions in lifecycle rule")
    noncurrent_transitions = tuple(_noncurrent_transition(t) for t in node.findall("NoncurrentVersionTransition"))
    if not fields and not transitions and not noncurrent_transitions:
        raise _invalid("At least one action needs to be specified in a rule")
    return lc.Rule(
        id=rule_id if rule_id else f"rule-{index + 1}",
        enabled=status == "Enabled",
        filter=filt,
        filter_doc=filter_doc,
        transitions=transitions,
        noncurrent_transitions=noncurrent_transitions,
        **fields,
    )


def parse_configuration(body: bytes) -> lc.Configuration:
    """A LifecycleConfiguration document, validated as S3 does."""
    root = xml.parse(body)
    if root.tag != "LifecycleConfiguration":
        raise _malformed()
    _children(root, {"Rule"}, frozenset({"Rule"}))
    if not len(root) or len(root) > lc.MAX_RULES:
        raise _malformed()
    rules = [_rule(node, i) for i, node in enumerate(root)]
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise _invalid("Rule ID must be unique. Found same ID for more than one rule")
    return lc.Configuration(tuple(rules))


# ---------------------------------------------------------------- rendering
def _date_text(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(epoch))


def _render_tag(pair: Any) -> str:
    return f"<Tag>{xml.elem('Key', pair[0])}{xml.elem('Value', pair[1])}</Tag>"


def _render_filter(doc: dict[str, Any]) -> str:
    inner = ""
    if "Prefix" in doc:
        inner += xml.elem("Prefix", doc["Prefix"])
    if "Tag" in doc:
        inner += _render_tag(doc["Tag"])
    for name in ("ObjectSizeGreaterThan", "ObjectSizeLessThan"):
        if name in doc:
            inner += xml.elem(name, doc[name])
    if "And" in doc:
        both = doc["And"]
        parts = xml.elem("Prefix", both["Prefix"]) if "Prefix" in both else ""
        parts += "".join(_render_tag(t) for t in both.get("Tags", []))
        for name in ("ObjectSizeGreaterThan", "ObjectSizeLessThan"):
            if name in both:
                parts += xml.elem(name, both[name])
        inner += f"<And>{parts}</And>"
    return f"<Filter>{inner}</Filter>"


def _render_transition(t: lc.Transition, noncurrent: bool) -> str:
    if noncurrent:
        inner = xml.elem("NoncurrentDays", t.days)
        if t.newer is not None:
            inner += xml.elem("NewerNoncurrentVersions", t.newer)
        name = "NoncurrentVersionTransition"
    else:
        inner = xml.elem("Date", _date_text(t.date)) if t.date is not None else xml.elem("Days", t.days)
        name = "Transition"
    return f"<{name}>{inner}{xml.elem('StorageClass', t.storage_class)}</{name}>"


def _render_rule(rule: lc.Rule) -> str:
    out = xml.elem("ID", rule.id)
    out += _render_filter(rule.filter_doc) if rule.filter_doc is not None else xml.elem("Prefix", rule.filter.prefix)
    out += xml.elem("Status", "Enabled" if rule.enabled else "Disabled")
    expiration = ""
    if rule.expiration_days is not None:
        expiration = xml.elem("Days", rule.expiration_days)
    elif rule.expiration_date is not None:
        expiration = xml.elem("Date", _date_text(rule.expiration_date))
    if rule.expired_object_delete_marker is not None:
        expiration += xml.elem("ExpiredObjectDeleteMarker", str(rule.expired_object_delete_marker).lower())
    if expiration:
        out += f"<Expiration>{expiration}</Expiration>"
    out += "".join(_render_transition(t, False) for t in rule.transitions)
    if rule.noncurrent_days is not None:
        inner = xml.elem("NoncurrentDays", rule.noncurrent_days)
        if rule.newer_noncurrent is not None:
            inner += xml.elem("NewerNoncurrentVersions", rule.newer_noncurrent)
        out += f"<NoncurrentVersionExpiration>{inner}</NoncurrentVersionExpiration>"
    out += "".join(_render_transition(t, True) for t in rule.noncurrent_transitions)
    if rule.abort_days is not None:
        out += (
            "<AbortIncompleteMultipartUpload>"
            f"{xml.elem('DaysAfterInitiation', rule.abort_days)}</AbortIncompleteMultipartUpload>"
        )
    return f"<Rule>{out}</Rule>"


def render(config: lc.Configuration) -> bytes:
    return xml.document("LifecycleConfiguration", "".join(_render_rule(r) for r in config.rules))


# ---------------------------------------------------------------- x-amz-expiration
async def add_expiration(ctx: Context, bucket: str, response: Response, info: ObjectInfo) -> None:
    """``x-amz-expiration: expiry-date="Fri, 23 Dec 2012 00:00:00 GMT", rule-id="..."`` when a rule
    expires this (current) version; the rules come from the cached bucket state (no extra read)."""
    config = (await ctx.bucket_states().get(bucket)).lifecycle
    if config is None or info.delete_marker:
        return
    found = lc.expiration_of(config, lc.Version(info.key, info.size, info.last_modified, tags=info.tags))
    if found is None:
        return
    when, rule_id = found
    date = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(when))
    response.header("x-amz-expiration", f'expiry-date="{date}", rule-id="{rule_id}"')
