"""The XML of Put/GetBucketNotificationConfiguration, to and from the stored rules (coffer/events/rules.py).

Validation follows S3: a malformed document is MalformedXML; an event type S3 does not know, a
filter rule other than one prefix and one suffix, a repeated Id, rules whose events and filters
overlap, and an ARN naming no configured target are InvalidArgument (the last with S3's "Unable to
validate the following destination configurations").
"""

from __future__ import annotations

import secrets
from xml.etree.ElementTree import Element

from coffer.events.rules import EVENT_TYPES, Rule, Rules
from coffer.events.targets import target_of_arn
from coffer.server import xml
from coffer.server.errors import S3Error

MAX_RULES = 100
MAX_FILTER_VALUE = 1024
MAX_ID = 255
_KINDS = {"QueueConfiguration": ("Queue", "Queue"), "TopicConfiguration": ("Topic", "Topic")}
_UNSUPPORTED = ("CloudFunctionConfiguration", "LambdaFunctionConfiguration", "EventBridgeConfiguration")
_DESTINATION = "Unable to validate the following destination configurations"
# S3's words for two rules one event could fire, without and with key filters.
_OVERLAP = "Configurations overlap. Configurations on the same bucket cannot share a common event type."
_AMBIGUOUS = (
    "Configuration is ambiguously defined. Cannot have overlapping suffixes in two rules if the prefixes "
    "are overlapping for the same event type."
)


def parse(body: bytes, targets: set[str]) -> Rules | None:
    """The rules of a request body; None for an empty configuration (notifications off)."""
    root = xml.parse(body)
    if root.tag != "NotificationConfiguration":
        raise S3Error("MalformedXML")
    rules: list[Rule] = []
    for node in root:
        if not isinstance(node.tag, str):
            continue
        if node.tag in _UNSUPPORTED:
            raise S3Error("InvalidArgument", _DESTINATION, ArgumentName=node.tag, ArgumentValue="not supported")
        if node.tag not in _KINDS:
            raise S3Error("MalformedXML")
        rules.append(_rule(node, _KINDS[node.tag][0], targets))
    if len(rules) > MAX_RULES:
        raise S3Error("InvalidArgument", f"At most {MAX_RULES} configurations per bucket.")
    ids = [rule.id for rule in rules]
    if len(set(ids)) != len(ids):
        raise S3Error("InvalidArgument", "Same ID used for multiple configurations.")
    for i, rule in enumerate(rules):
        for other in rules[:i]:
            if _overlap(rule, other):
                filtered = rule.prefix or rule.suffix or other.prefix or other.suffix
                raise S3Error(
                    "InvalidArgument",
                    _AMBIGUOUS if filtered else _OVERLAP,
                    ArgumentName="Event",
                    ArgumentValue=", ".join((*other.events, *rule.events)),
                )
    return Rules(tuple(rules)) if rules else None


def _rule(node: Element, kind: str, targets: set[str]) -> Rule:
    known = {"Id", kind, "Event", "Filter"}
    if any(isinstance(child.tag, str) and child.tag not in known for child in node):
        raise S3Error("MalformedXML")
    if len(node.findall(kind)) != 1 or len(node.findall("Id")) > 1 or len(node.findall("Filter")) > 1:
        raise S3Error("MalformedXML")
    rule_id = (xml.child_text(node, "Id") or "").strip() or _new_id()
    if len(rule_id) > MAX_ID:
        raise S3Error("InvalidArgument", f"The Id is longer than {MAX_ID} characters.", ArgumentName="Id")
    arn = (xml.child_text(node, kind) or "").strip()
    target = target_of_arn(arn, kind)
    if target is None or target not in targets:
        raise S3Error("InvalidArgument", _DESTINATION, ArgumentName=arn or kind, ArgumentValue="no such target")
    events: list[str] = []
    for event in node.findall("Event"):
        name = (event.text or "").strip()
        if name not in EVENT_TYPES:
            raise S3Error(
                "InvalidArgument",
                "The event is not supported for notifications",
                ArgumentName="Event",
                ArgumentValue=name,
            )
        if name not in events:
            events.append(name)
    if not events:
        raise S3Error("MalformedXML")
    prefix, suffix = _filter(node.find("Filter"))
    return Rule(rule_id, kind, arn, target, tuple(events), prefix, suffix)


def _filter(node: Element | None) -> tuple[str, str]:
    if node is None:
        return "", ""
    if any(isinstance(c.tag, str) and c.tag != "S3Key" for c in node) or len(node.findall("S3Key")) > 1:
        raise S3Error("MalformedXML")
    values: dict[str, str] = {}
    for key in node.findall("S3Key"):
        for rule in key:
            if rule.tag != "FilterRule":
                raise S3Error("MalformedXML")
            name = (xml.child_text(rule, "Name") or "").strip().lower()
            value = xml.child_text(rule, "Value") or ""
            if name not in ("prefix", "suffix"):
                raise S3Error(
                    "InvalidArgument",
                    "filter rule name must be either prefix or suffix",
                    ArgumentName="FilterRule",
                    ArgumentValue=name,
                )
            if name in values:
                raise S3Error(
                    "InvalidArgument",
                    f"Cannot specify more than one {name} rule in a filter.",
                    ArgumentName="FilterRule",
                    ArgumentValue=name,
                )
            if len(value.encode("utf-8")) > MAX_FILTER_VALUE:
                raise S3Error(
                    "InvalidArgument",
                    f"The {name} filter value is longer than {MAX_FILTER_VALUE} bytes.",
                    ArgumentName="FilterRule",
                    ArgumentValue=name,
                )
            values[name] = value
    return values.get("prefix", ""), values.get("suffix", "")


def _overlap(a: Rule, b: Rule) -> bool:
    """Could one event fire both rules? (S3 refuses such a pair.)"""
    shared = any(_events_overlap(x, y) for x in a.events for y in b.events)
    return (
        shared
        and (a.prefix.startswith(b.prefix) or b.prefix.startswith(a.prefix))
        and (a.suffix.endswith(b.suffix) or b.suffix.endswith(a.suffix))
    )


def _events_overlap(x: str, y: str) -> bool:
    """``s3:ObjectCreated:*`` overlaps every ``s3:ObjectCreated:...``; two exact types only themselves."""
    return x.rsplit(":", 1)[0] == y.rsplit(":", 1)[0] and (x == y or x.endswith(":*") or y.endswith(":*"))


def _new_id() -> str:
    return secrets.token_urlsafe(24)


def render(rules: Rules | None) -> bytes:
    parts: list[str] = []
    for rule in rules.rules if rules is not None else ():
        inner = xml.elem("Id", rule.id) + xml.elem(rule.kind, rule.arn)
        inner += "".join(xml.elem("Event", e) for e in rule.events)
        filters = "".join(
            f"<FilterRule>{xml.elem('Name', name)}{xml.elem('Value', value)}</FilterRule>"
            for name, value in (("Prefix", rule.prefix), ("Suffix", rule.suffix))
            if value
        )
        if filters:
            inner += f"<Filter><S3Key>{filters}</S3Key></Filter>"
        parts.append(f"<{rule.kind}Configuration>{inner}</{rule.kind}Configuration>")
    return xml.document("NotificationConfiguration", "".join(parts))
