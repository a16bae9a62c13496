"""The IAM policy language of S3 bucket policies and Coffer's per-key identity policies.

Parse + validate once when stored (MalformedPolicy with a reason, as S3 answers), compile to
matchers, evaluate per request without re-parsing.

Request facts are condition-key values: keys lower-cased ("aws:sourceip",
"s3:prefix", "s3:existingobjecttag/<key>" keeps the tag key's case after the slash),
each a list of strings (multi-valued keys such as s3:RequestObjectTagKeys have several).
A key absent from the facts is absent for the Null operator and the ...IfExists forms.
Policy variables (``${aws:username}``, any single-valued fact, ``${*}``, ``${?}``, ``${$}``,
``${key, 'default'}``) are read from the same facts, in Version 2012-10-17 policies only.

Condition semantics are in conditions.py (a key absent from the facts makes a negated operator
true, as AWS documents). The size limit applies to the document without whitespace, as AWS
counts it; raw input over four times the limit is refused unread.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from coffer.server.access import conditions as cond
from coffer.server.access.actions import ACTIONS, Kind
from coffer.server.access.patterns import Template, compile_wildcards, template, wildcard_match, wildcard_regex

MAX_POLICY_BYTES = 20 * 1024  # S3's bucket policy size limit

Decision = Literal["allow", "deny"] | None  # None: the policy says nothing (implicit deny)

ARN_PREFIX = "arn:aws:s3:::"
VERSIONS = ("2012-10-17", "2008-10-17")
_MAX_DEPTH = 16  # a valid policy nests 6 deep (document, Statement, statement, Condition, operator, key)
_MAX_RAW = 4 * MAX_POLICY_BYTES  # refused unread; the limit itself applies to the compact form

NOT_JSON = "Policies must be valid JSON and the first byte must be '{'"
INVALID_JSON = "This policy contains invalid Json"
TOO_LARGE = "Policies must be less than 20 KB"
SYNTAX = "Invalid policy syntax."
BAD_ACTION = "Policy has invalid action"
BAD_RESOURCE = "Policy has invalid resource"
BAD_PRINCIPAL = "Invalid principal in policy"
NOT_APPLICABLE = "Action does not apply to any resource(s) in statement"


class MalformedPolicy(Exception):
    """400 MalformedPolicy; ``reason`` is the message S3 gives (e.g. "Policies must be valid JSON
    and the first byte must be '{'", "Policy has invalid action", "Policy has invalid resource")."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Caller:
    """Who makes the request, as policy Principal elements name it.

    ``ids``: every identifier a Principal {"AWS": ...} entry may use for this caller: its
    canonical user id, "arn:aws:iam::<user id>:user/<display name>", "arn:aws:iam::<user id>:root",
    the bare user id; empty for an anonymous caller (who only "*" / {"AWS": "*"} matches).
    """

    ids: frozenset[str]
    anonymous: bool


@dataclass(frozen=True, slots=True)
class _Principals:
    everyone: bool  # "*" or {"AWS": "*"}
    ids: frozenset[str]  # AWS and CanonicalUser entries; Service/Federated never match a caller
    named_services: bool  # a Service or Federated entry (for is_public: names someone fixed)


@dataclass(frozen=True, slots=True)
class _Resources:
    """A statement's Resource patterns: one expression for the fixed ones, templates for those
    holding policy variables."""

    fixed: re.Pattern[str]
    templates: tuple[Template, ...]

    def match(self, resource: str, facts: Mapping[str, list[str]]) -> bool:
        if self.fixed.fullmatch(resource) is not None:
            return True
        for t in self.templates:
            rx = t.regex(facts)
            if rx is not None and rx.fullmatch(resource) is not None:
                return True
        return False


@dataclass(frozen=True, slots=True)
class Statement:
    sid: str | None
    allow: bool
    principals: _Principals | None  # None: an identity policy's statement (its key's user)
    not_principal: bool
    actions: re.Pattern[str]
    not_action: bool
    resources: _Resources
    not_resource: bool
    conditions: tuple[cond.Condition, ...]

    def names_action(self, action: str) -> bool:
        return (self.actions.fullmatch(action) is not None) != self.not_action

    def applies(self, caller: Caller | None, resource: str, facts: Mapping[str, list[str]]) -> bool:
        p = self.principals
        if p is not None:
            hit = p.everyone or (caller is not None and not p.ids.isdisjoint(caller.ids))
            if hit == self.not_principal:
                return False
        if self.resources.match(resource, facts) == self.not_resource:
            return False
        for c in self.conditions:  # noqa: SIM110 - a plain loop: no generator object per request
            if not c.holds(facts):
                return False
        return True

    def grants_public(self) -> bool:
        """An Allow reaching anyone: a wildcard principal (or NotPrincipal) that no condition
        confines to fixed sources or identities."""
        if not self.allow or self.principals is None:
            return False
        if not (self.not_principal or self.principals.everyone):
            return False
        return not any(cond.confines(c) for c in self.conditions)


@dataclass(frozen=True, slots=True)
class Policy:
    """A parsed, validated and compiled policy document."""

    text: str  # the document as stored and returned by GetBucketPolicy
    statements: tuple[Statement, ...] = ()  # Deny statements first, so a Deny is found before any Allow
    version: str = "2008-10-17"
    id: str | None = None
    public: bool = False
    # Some condition reads s3:ExistingObjectTag/<key>: evaluating it needs the object's tags,
    # which the gate reads first (one metadata read) only for such policies.
    reads_existing_tags: bool = False
    # action (lower case) -> the statements whose Action/NotAction names it; filled on demand
    _by_action: dict[str, tuple[Statement, ...]] = field(default_factory=dict, repr=False, compare=False)

    def evaluate(self, caller: Caller | None, action: str, resource: str, facts: Mapping[str, list[str]]) -> Decision:
        """ "deny" when a Deny statement applies, else "allow" when an Allow applies, else None.

        ``caller``: None for an identity policy (no Principal element: it applies to its key's user);
        ``action``: "s3:GetObject"; ``resource``: "arn:aws:s3:::bucket" or "arn:aws:s3:::bucket/key".
        """
        statements = self._by_action.get(action)
        if statements is None:
            lower = action.lower()
            statements = tuple(s for s in self.statements if s.names_action(lower))
            if len(self._by_action) < 1024:  # bounded: actions come from the router's table
                self._by_action[action] = statements
        for s in statements:
            if s.applies(caller, resource, facts):
                return "allow" if s.allow else "deny"  # Deny statements come first
        return None

    def is_public(self) -> bool:
        """Whether the policy grants access to everyone (AWS's definition: an Allow whose
        Principal is "*" without a condition that fixes who, e.g. aws:SourceIp, aws:userid)."""
        return self.public


def parse_policy(text: str | bytes, *, bucket: str | None = None) -> Policy:
    """Validate and compile ``text``; MalformedPolicy otherwise.

    ``bucket``: a bucket policy's bucket (its Resource ARNs must name that bucket, and a
    Principal is required); None for an identity policy (no Principal allowed).
    """
    source, document = _load(text)
    if not isinstance(document, dict):
        raise MalformedPolicy(NOT_JSON)
    for name in document:
        if name not in ("Version", "Id", "Statement"):
            raise MalformedPolicy(f"Unknown field {name}")
    version = document.get("Version", "2008-10-17")
    if version not in VERSIONS:
        raise MalformedPolicy("The policy must contain a valid version string")
    policy_id = document.get("Id")
    if policy_id is not None and not isinstance(policy_id, str):
        raise MalformedPolicy(SYNTAX)
    if "Statement" not in document:
        raise MalformedPolicy("Missing required field Statement")
    raw = document["Statement"]
    items = [raw] if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise MalformedPolicy(SYNTAX)
    if not items:
        raise MalformedPolicy("Could not parse the policy: Statement is empty!")
    variables = version == "2012-10-17"
    statements = [_statement(item, bucket, variables) for item in items]
    sids = [s.sid for s in statements if s.sid is not None]
    if len(set(sids)) != len(sids):
        raise MalformedPolicy("Statement IDs (SID) in a single policy must be unique.")
    ordered = tuple(s for s in statements if not s.allow) + tuple(s for s in statements if s.allow)
    public = any(s.grants_public() for s in statements)
    reads_tags = "s3:existingobjecttag/" in source.lower()  # conservative: at worst one needless read
    return Policy(source, ordered, version, policy_id, public, reads_tags)


class _Refused(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _Refused(name)  # NaN, Infinity, -Infinity are not JSON


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise _Refused(text)  # 1e999
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise _Refused("duplicate key")  # which one counts would be a guess: refuse
    return out


def _load(text: str | bytes) -> tuple[str, Any]:
    if isinstance(text, bytes):
        if len(text) > _MAX_RAW:
            raise MalformedPolicy(TOO_LARGE)
        try:
            source = text.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedPolicy(INVALID_JSON) from None
    else:
        if len(text) > _MAX_RAW:
            raise MalformedPolicy(TOO_LARGE)
        source = text
    if not source.startswith("{"):
        raise MalformedPolicy(NOT_JSON)
    try:
        document = json.loads(
            source, parse_constant=_refuse_constant, parse_float=_finite_float, object_pairs_hook=_unique_keys
        )
    except (ValueError, RecursionError):
        raise MalformedPolicy(INVALID_JSON) from None
    _check_depth(document)
    compact = json.dumps(document, separators=(",", ":"), ensure_ascii=False)
    if len(compact.encode("utf-8", "surrogatepass")) > MAX_POLICY_BYTES:
        raise MalformedPolicy(TOO_LARGE)
    return source, document


def _check_depth(document: Any) -> None:
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise MalformedPolicy(INVALID_JSON)
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


_STATEMENT_FIELDS = frozenset(
    {"Sid", "Effect", "Principal", "NotPrincipal", "Action", "NotAction", "Resource", "NotResource", "Condition"}
)


def _statement(item: Any, bucket: str | None, variables: bool) -> Statement:
    if not isinstance(item, dict):
        raise MalformedPolicy(SYNTAX)
    for name in item:
        if name not in _STATEMENT_FIELDS:
            raise MalformedPolicy(f"Unknown field {name}")
    sid = item.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise MalformedPolicy(SYNTAX)
    if "Effect" not in item:
        raise MalformedPolicy("Missing required field Effect")
    effect = item["Effect"]
    if effect not in ("Allow", "Deny"):
        raise MalformedPolicy(f"Invalid effect: {effect}" if isinstance(effect, str) else SYNTAX)

    principal_field = _one_of(item, "Principal")
    principals: _Principals | None = None
    if bucket is None:
        if principal_field is not None:
            raise MalformedPolicy("Policy document should not specify a principal.")
    else:
        if principal_field is None:
            raise MalformedPolicy("Missing required field Principal")
        principals = _principals(item[principal_field])
        if principal_field == "NotPrincipal" and effect == "Allow":
            # An Allow to everyone but a few names: refused, as RGW does (AWS warns against it).
            raise MalformedPolicy("NotPrincipal is supported only with Effect Deny")

    action_field = _one_of(item, "Action")
    if action_field is None:
        raise MalformedPolicy("Missing required field Action")
    actions = _strings(item[action_field], BAD_ACTION)
    known = _check_actions(actions)

    resource_field = _one_of(item, "Resource")
    if resource_field is None:
        raise MalformedPolicy("Missing required field Resource")
    resources = _strings(item[resource_field], BAD_RESOURCE)
    for r in resources:
        _check_resource(r, bucket)
    if action_field == "Action" and resource_field == "Resource":
        kinds = {k for r in resources for k in _reaches(r)}
        for names in known:
            if not any(ACTIONS[n] in kinds for n in names):
                raise MalformedPolicy(NOT_APPLICABLE)

    conditions = _conditions(item.get("Condition"), variables)
    return Statement(
        sid=sid,
        allow=effect == "Allow",
        principals=principals,
        not_principal=principal_field == "NotPrincipal",
        actions=compile_wildcards(["s3:*" if a == "*" else a for a in actions], ignore_case=True),
        not_action=action_field == "NotAction",
        resources=_compile_resources(resources, variables),
        not_resource=resource_field == "NotResource",
        conditions=conditions,
    )


def _one_of(item: dict[str, Any], name: str) -> str | None:
    """Which of ``name`` / ``Not<name>`` the statement has; both at once is refused."""
    has, has_not = name in item, "Not" + name in item
    if has and has_not:
        raise MalformedPolicy(SYNTAX)
    return name if has else "Not" + name if has_not else None


def _strings(value: Any, reason: str) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(v, str) and v for v in items):
        raise MalformedPolicy(reason)
    return items


def _principals(value: Any) -> _Principals:
    if value == "*":
        return _Principals(True, frozenset(), False)
    if not isinstance(value, dict) or not value:
        raise MalformedPolicy(BAD_PRINCIPAL)
    everyone, ids, services = False, set(), False
    for kind, entries in value.items():
        listed = _strings(entries, BAD_PRINCIPAL)
        if kind == "AWS":
            for entry in listed:
                if entry == "*":
                    everyone = True
                elif "*" in entry or "?" in entry:
                    raise MalformedPolicy(BAD_PRINCIPAL)  # only "*" itself may be a wildcard
                else:
                    ids.add(entry)
        elif kind == "CanonicalUser":
            ids.update(listed)
        elif kind in ("Service", "Federated"):
            services = True  # accepted, but no Coffer caller is a service or a federated user
        else:
            raise MalformedPolicy(BAD_PRINCIPAL)
    return _Principals(everyone, frozenset(ids), services)


def _check_actions(actions: list[str]) -> list[list[str]]:
    """For each pattern, the known actions it names; MalformedPolicy when it names none."""
    out = []
    for a in actions:
        lower = "s3:*" if a == "*" else a.lower()
        if not lower.startswith("s3:"):
            raise MalformedPolicy(BAD_ACTION)
        if "*" in lower or "?" in lower:
            rx = compile_wildcards([lower])
            names = [n for n in ACTIONS if rx.fullmatch(n)]
        else:
            names = [lower] if lower in ACTIONS else []
        if not names:
            raise MalformedPolicy(BAD_ACTION)
        out.append(names)
    return out


def _check_resource(resource: str, bucket: str | None) -> None:
    if resource == "*":
        if bucket is not None:
            raise MalformedPolicy(BAD_RESOURCE)  # a bucket policy reaches only its own bucket
        return
    if not resource.startswith(ARN_PREFIX) or len(resource) == len(ARN_PREFIX):
        raise MalformedPolicy(BAD_RESOURCE)
    if bucket is None:
        return
    named = resource[len(ARN_PREFIX) :].split("/", 1)[0]
    if "${" in named:
        return  # a variable in the bucket part: judged per request
    if not wildcard_match(named, bucket):
        raise MalformedPolicy(BAD_RESOURCE)


def _reaches(resource: str) -> set[Kind]:
    """The kinds of resource a pattern can match: a bucket ARN has no '/', an object's has one,
    and '*' matches any run, '/' included."""
    if resource == "*":
        return {"service", "bucket", "object"}
    rest = resource[len(ARN_PREFIX) :]
    kinds: set[Kind] = set()
    if "/" not in rest:
        kinds.add("bucket")
    if "/" in rest or "*" in rest:
        kinds.add("object")
    if rest == "*":
        kinds.add("service")
    return kinds


def _compile_resources(resources: list[str], variables: bool) -> _Resources:
    fixed: list[str] = []
    templates: list[Template] = []
    for r in resources:
        t = template(r, variables=variables)
        if isinstance(t, Template):
            templates.append(t)
        else:
            fixed.append(t)
    rx = re.compile("|".join(f"(?:{wildcard_regex(p)})" for p in fixed) or "(?!)", re.DOTALL)
    return _Resources(rx, tuple(templates))


def _conditions(value: Any, variables: bool) -> tuple[cond.Condition, ...]:
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise MalformedPolicy(SYNTAX)
    out: list[cond.Condition] = []
    try:
        for operator_name, keys in value.items():
            cond.split_operator(operator_name)  # an unknown operator is refused even when empty
            if not isinstance(keys, dict):
                raise MalformedPolicy(SYNTAX)
            for key, values in keys.items():
                out.append(cond.compile_condition(operator_name, key, values, variables=variables))
    except cond.ConditionError as e:
        raise MalformedPolicy(e.reason) from None
    return tuple(out)
