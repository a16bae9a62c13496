"""A bucket's notification configuration as stored: rules naming a target, event types and a key filter.

The XML of Put/GetBucketNotificationConfiguration is parsed and rendered by
coffer/server/notification.py; this is the model the stored JSON document round-trips through
and the one check every write makes (``Rules.match``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

CONFIG_NAME = "notification"  # the bucket configuration document (engine.put_bucket_config)

# Every event type a rule may name; "<family>:*" names the whole family.
EVENT_TYPES = frozenset(
    {
        "s3:ObjectCreated:*",
        "s3:ObjectCreated:Put",
        "s3:ObjectCreated:Post",
        "s3:ObjectCreated:Copy",
        "s3:ObjectCreated:CompleteMultipartUpload",
        "s3:ObjectRemoved:*",
        "s3:ObjectRemoved:Delete",
        "s3:ObjectRemoved:DeleteMarkerCreated",
        "s3:ObjectTagging:*",
        "s3:ObjectTagging:Put",
        "s3:ObjectTagging:Delete",
        "s3:LifecycleExpiration:*",
        "s3:LifecycleExpiration:Delete",
        "s3:LifecycleExpiration:DeleteMarkerCreated",
    }
)


def event_matches(pattern: str, event: str) -> bool:
    """``s3:ObjectCreated:*`` matches every ``s3:ObjectCreated:...``; anything else only itself."""
    if pattern.endswith(":*"):
        return event.startswith(pattern[:-1])
    return pattern == event


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    kind: str  # "Queue" or "Topic": the XML element it came from (and is rendered back as)
    arn: str
    target: str  # the configured webhook target the ARN names
    events: tuple[str, ...]
    prefix: str = ""
    suffix: str = ""

    def matches(self, event: str, key: str) -> bool:
        if not key.startswith(self.prefix) or not key.endswith(self.suffix):
            return False
        for pattern in self.events:  # noqa: SIM110 - a loop: no generator per write
            if event_matches(pattern, event):
                return True
        return False

    def to_doc(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "arn": self.arn,
            "target": self.target,
            "events": list(self.events),
            "prefix": self.prefix,
            "suffix": self.suffix,
        }

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Rule:
        return cls(
            str(doc["id"]),
            str(doc["kind"]),
            str(doc["arn"]),
            str(doc["target"]),
            tuple(str(e) for e in doc["events"]),
            str(doc.get("prefix", "")),
            str(doc.get("suffix", "")),
        )


# (target, rule id) of each delivery one event owes: where it goes, and for which rule.
Destinations = tuple[tuple[str, str], ...]


def _destinations(rules: Iterable[Rule]) -> Destinations:
    return tuple((rule.target, rule.id) for rule in rules)


@dataclass(frozen=True, slots=True)
class Rules:
    """Every rule of one bucket."""

    rules: tuple[Rule, ...]
    # Event type -> the rules naming it and, when none of them filters keys, their destinations: worked
    # out once per type, then only the key filters are checked.
    _by_event: dict[str, tuple[tuple[Rule, ...], Destinations | None]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def match(self, event: str, key: str) -> Destinations:
        """(target, rule id) of every rule an event on ``key`` fires (one record per rule, as S3 sends).
        Unfiltered rules answer the same tuple every time (the queue caches what it encodes per tuple)."""
        found = self._by_event.get(event)
        if found is None:
            candidates = tuple(r for r in self.rules if any(event_matches(p, event) for p in r.events))
            unfiltered = not any(r.prefix or r.suffix for r in candidates)
            found = self._by_event[event] = (candidates, _destinations(candidates) if unfiltered else None)
        candidates, every = found
        if every is not None:
            return every
        return _destinations(r for r in candidates if key.startswith(r.prefix) and key.endswith(r.suffix))

    def to_doc(self) -> list[dict[str, Any]] | None:
        return [rule.to_doc() for rule in self.rules] or None

    @classmethod
    def from_doc(cls, doc: Any) -> Rules | None:
        """The stored document; None when the bucket has no rules (or the document is unreadable)."""
        if not isinstance(doc, list) or not doc:
            return None
        try:
            return cls(tuple(Rule.from_doc(item) for item in doc))
        except (KeyError, TypeError):
            return None
