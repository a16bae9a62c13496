"""Bucket lifecycle rules and what they ask of one object version at a given time.

No HTTP here: the server parses and renders the XML (coffer/server/lifecycle.py), the worker
(coffer/lifecycle/worker.py) and the ``x-amz-expiration`` header ask these functions what applies.
The configuration is kept as the bucket document ``lifecycle`` (``to_doc``/``from_doc``).

Time: a rule's ``Days`` count from the version's creation (``NoncurrentDays``: from when it became
noncurrent, i.e. its successor's creation; ``DaysAfterInitiation``: from the upload's initiation).
With a real day (86,400 s) the due time is rounded up to the next midnight UTC, as AWS does; a
shortened day (``lifecycle_day_seconds``, for tests and demos, like Ceph's rgw_lc_debug_interval) is
plain arithmetic: due = start + days x day.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CONFIG_NAME = "lifecycle"  # the bucket configuration document
DAY = 86400.0
MAX_RULES = 1000
MAX_ID_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Filter:
    """Which versions a rule covers. Every condition given must hold (``prefix`` from the rule's
    legacy top-level Prefix, Filter/Prefix or Filter/And/Prefix; tags from Tag or And/Tag)."""

    prefix: str = ""
    tags: tuple[tuple[str, str], ...] = ()
    size_gt: int | None = None  # ObjectSizeGreaterThan
    size_lt: int | None = None  # ObjectSizeLessThan

    def matches(self, key: str, size: int) -> bool:
        """The conditions that need no tags: prefix and size."""
        return (
            key.startswith(self.prefix)
            and (self.size_gt is None or size > self.size_gt)
            and (self.size_lt is None or size < self.size_lt)
        )

    def matches_tags(self, tags: Mapping[str, str]) -> bool:
        return all(tags.get(k) == v for k, v in self.tags)


@dataclass(frozen=True, slots=True)
class Transition:
    """Transition (days or date, from creation) or NoncurrentVersionTransition (days since noncurrent,
    ``newer``: NewerNoncurrentVersions kept back)."""

    storage_class: str
    days: int | None = None
    date: float | None = None  # epoch seconds, midnight UTC
    newer: int | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    enabled: bool
    filter: Filter = Filter()
    # How the filter was written, so GetBucketLifecycleConfiguration answers what was put:
    # the server's own JSON-able description of the Filter element (None: a legacy top-level Prefix).
    filter_doc: Any = None
    expiration_days: int | None = None
    expiration_date: float | None = None
    expired_object_delete_marker: bool | None = None
    transitions: tuple[Transition, ...] = ()
    noncurrent_days: int | None = None
    newer_noncurrent: int | None = None
    noncurrent_transitions: tuple[Transition, ...] = ()
    abort_days: int | None = None  # AbortIncompleteMultipartUpload/DaysAfterInitiation


@dataclass(frozen=True, slots=True)
class Configuration:
    rules: tuple[Rule, ...]
    # The enabled rules, computed once: every decision (per version, per request) walks them.
    active: tuple[Rule, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "active", tuple(r for r in self.rules if r.enabled))

    def scan_prefix(self) -> str:
        """The longest prefix every active rule's filter starts with: a pass lists only under it."""
        prefixes = [r.filter.prefix for r in self.active]
        if not prefixes:
            return ""
        first, last = min(prefixes), max(prefixes)
        n = 0
        while n < len(first) and n < len(last) and first[n] == last[n]:
            n += 1
        return first[:n]

    def to_doc(self) -> dict[str, Any]:
        return {"rules": [dataclasses.asdict(r) for r in self.rules]}

    @classmethod
    def from_doc(cls, doc: Any) -> Configuration | None:
        if not isinstance(doc, dict) or not isinstance(doc.get("rules"), list):
            return None
        rules = []
        for r in doc["rules"]:
            f = r["filter"]
            filt = Filter(f["prefix"], tuple((k, v) for k, v in f["tags"]), f["size_gt"], f["size_lt"])
            rules.append(
                Rule(
                    **{
                        **r,
                        "filter": filt,
                        "transitions": tuple(Transition(**t) for t in r["transitions"]),
                        "noncurrent_transitions": tuple(Transition(**t) for t in r["noncurrent_transitions"]),
                    }
                )
            )
        return cls(tuple(rules))


# ---------------------------------------------------------------- time
def due(start: float, days: int, day_seconds: float) -> float:
    """When something ``days`` days after ``start`` falls due (see the module docstring)."""
    if day_seconds != DAY:
        return start + days * day_seconds
    return math.ceil((start + days * DAY) / DAY) * DAY  # the next midnight UTC (or that midnight)


# ---------------------------------------------------------------- decisions
@dataclass(frozen=True, slots=True)
class Action:
    """What a pass does to one version."""

    kind: str  # one of the constants below
    rule_id: str
    storage_class: str | None = None  # TRANSITION / NONCURRENT_TRANSITION


EXPIRE = "expiration"  # the current version: deleted (unversioned) or hidden by a delete marker
DELETE_MARKER = "delete_marker_expiration"  # an expired object delete marker removed
NONCURRENT_EXPIRE = "noncurrent_expiration"  # a noncurrent version removed for good
TRANSITION = "transition"
NONCURRENT_TRANSITION = "noncurrent_transition"
ABORT_UPLOAD = "abort_multipart_upload"
ACTIONS = (EXPIRE, DELETE_MARKER, NONCURRENT_EXPIRE, TRANSITION, NONCURRENT_TRANSITION, ABORT_UPLOAD)

# The version's tags are needed to decide (a due rule filters on tags): ask again with them.
NEEDS_TAGS = Action("needs_tags", "")


@dataclass(slots=True)
class Version:
    """The facts about one version a decision needs."""

    key: str
    size: int
    last_modified: float
    storage_class: str = "STANDARD"
    tags: Mapping[str, str] | None = None  # None: not read yet


def _covers(rule: Rule, v: Version) -> bool | None:
    """Whether ``rule`` covers ``v`` (None: it depends on tags not read yet)."""
    if not rule.filter.matches(v.key, v.size):
        return False
    if not rule.filter.tags:
        return True
    if v.tags is None:
        return None
    return rule.filter.matches_tags(v.tags)


def _pick_transition(
    rules: list[tuple[Rule, tuple[Transition, ...]]], start: float, v: Version, now: float, day: float
) -> tuple[float, Rule, Transition] | None:
    """The latest transition due (of all covering rules), when it changes the storage class."""
    best: tuple[float, Rule, Transition] | None = None
    for rule, transitions in rules:
        for t in transitions:
            when = t.date if t.date is not None else due(start, t.days or 0, day)
            if when <= now and (best is None or when > best[0]):
                best = (when, rule, t)
    if best is None or best[2].storage_class == v.storage_class:
        return None
    return best


def _first_due(rules: list[Rule], when: Any, now: float) -> Rule | None:
    for rule in rules:
        at = when(rule)
        if at is not None and at <= now:
            return rule
    return None


def _covering(config: Configuration, v: Version) -> list[Rule] | None:
    covering = []
    for rule in config.active:
        covered = _covers(rule, v)
        if covered is None:
            return None
        if covered:
            covering.append(rule)
    return covering


def current_action(config: Configuration, v: Version, now: float, day: float) -> Action | None:
    """What applies now to ``v``, the latest version of its key (not a delete marker)."""
    rules = _covering(config, v)
    if rules is None:
        return NEEDS_TAGS
    expired = _first_due(rules, lambda r: expiration_time(r, v.last_modified, day), now)
    if expired is not None:
        return Action(EXPIRE, expired.id)
    best = _pick_transition([(r, r.transitions) for r in rules], v.last_modified, v, now, day)
    return None if best is None else Action(TRANSITION, best[1].id, best[2].storage_class)


def marker_action(config: Configuration, v: Version, now: float, day: float) -> Action | None:
    """What applies to a delete marker that is the only version left of its key: removed by
    ExpiredObjectDeleteMarker, or once an Expiration in Days is due for it (as AWS and Ceph do)."""
    rules = _covering(config, v)
    if rules is None:
        return NEEDS_TAGS
    for rule in rules:
        if rule.expired_object_delete_marker:
            return Action(DELETE_MARKER, rule.id)
        if rule.expiration_days is not None and due(v.last_modified, rule.expiration_days, day) <= now:
            return Action(DELETE_MARKER, rule.id)
    return None


def noncurrent_action(
    config: Configuration, v: Version, noncurrent_since: float, newer: int, now: float, day: float
) -> Action | None:
    """What applies to ``v``, a noncurrent version (a delete marker or not) that became noncurrent at
    ``noncurrent_since`` with ``newer`` noncurrent versions newer than it."""
    rules = _covering(config, v)
    if rules is None:
        return NEEDS_TAGS
    for rule in rules:
        if rule.noncurrent_days is None or due(noncurrent_since, rule.noncurrent_days, day) > now:
            continue
        if rule.newer_noncurrent is None or newer >= rule.newer_noncurrent:
            return Action(NONCURRENT_EXPIRE, rule.id)
    candidates = [(r, tuple(t for t in r.noncurrent_transitions if t.newer is None or newer >= t.newer)) for r in rules]
    best = _pick_transition(candidates, noncurrent_since, v, now, day)
    return None if best is None else Action(NONCURRENT_TRANSITION, best[1].id, best[2].storage_class)


def upload_action(config: Configuration, key: str, initiated: float, now: float, day: float) -> Action | None:
    """Whether an incomplete multipart upload of ``key`` is to be aborted now."""
    for rule in config.active:
        if rule.abort_days is None or rule.filter.tags or not rule.filter.matches(key, 0):
            continue
        if rule.filter.size_gt is not None or rule.filter.size_lt is not None:
            continue  # an upload has no size yet
        if due(initiated, rule.abort_days, day) <= now:
            return Action(ABORT_UPLOAD, rule.id)
    return None


def expiration_time(rule: Rule, created: float, day: float) -> float | None:
    if rule.expiration_date is not None:
        return rule.expiration_date
    if rule.expiration_days is not None:
        return due(created, rule.expiration_days, day)
    return None


def expiration_of(config: Configuration, v: Version) -> tuple[float, str] | None:
    """(expiry time, rule id) of the current version ``v`` for the ``x-amz-expiration`` header:
    the earliest Expiration of the rules covering it, in real days (AWS's rounding to midnight UTC)
    whatever ``lifecycle_day_seconds`` is, as Ceph reports it under rgw_lc_debug_interval."""
    best: tuple[float, str] | None = None
    for rule in config.active:
        if _covers(rule, v) is not True:
            continue
        when = expiration_time(rule, v.last_modified, DAY)
        if when is not None and (best is None or when < best[0]):
            best = (when, rule.id)
    return best
