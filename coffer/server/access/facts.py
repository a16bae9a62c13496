"""The condition-key values of one request (aws:SourceIp, s3:prefix, ...), for policy conditions.

A ``RequestFacts`` is made per request only when a policy is evaluated (a bucket without a
policy, used by a key without one, never pays for it), and computes each key on first use:
a policy whose conditions read aws:SourceIp never formats the current time or parses
x-amz-tagging. Keys are lower-cased; every value is a list of strings, as policy.py expects.
A key the request does not carry is absent (the Null operator and the ...IfExists forms see
it missing).

s3:ExistingObjectTag/<key> is the tags of the object the request is on: the gate reads them
first, only when a policy in play has such a condition (``existing_tags``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from coffer.server.auth.principal import Principal
from coffer.server.request import Request

Facts = Mapping[str, list[str]]

# Request headers that are condition keys of the same name (s3:<header>).
_HEADER_KEYS = (
    "x-amz-acl",
    "x-amz-grant-read",
    "x-amz-grant-write",
    "x-amz-grant-read-acp",
    "x-amz-grant-write-acp",
    "x-amz-grant-full-control",
    "x-amz-server-side-encryption",
    "x-amz-server-side-encryption-aws-kms-key-id",
    "x-amz-server-side-encryption-customer-algorithm",
    "x-amz-copy-source",
    "x-amz-metadata-directive",
    "x-amz-storage-class",
    "x-amz-content-sha256",
)
_LOCK_HEADERS = {
    "s3:object-lock-mode": "x-amz-object-lock-mode",
    "s3:object-lock-retain-until-date": "x-amz-object-lock-retain-until-date",
    "s3:object-lock-legal-hold": "x-amz-object-lock-legal-hold",
}
# ListObjects / ListObjectsV2 / ListObjectVersions query parameters.
_LIST_PARAMS = {"s3:prefix": "prefix", "s3:delimiter": "delimiter", "s3:max-keys": "max-keys"}
_TAG_PREFIX = "s3:requestobjecttag/"
_EXISTING_PREFIX = "s3:existingobjecttag/"
_ABSENT: list[str] = []  # cached "not carried" marker (compared by identity)


def principal_type(principal: Principal) -> str:
    if principal.anonymous:
        return "Anonymous"
    # A key pair without an identity policy is its user's "root": full access to what it owns.
    return "Account" if principal.policy is None else "User"


def auth_facts(req: Request) -> tuple[str, str]:
    """(s3:signatureversion, s3:authType) of the request as it was authenticated ("" when unsigned)."""
    header = req.headers.get("authorization", "")
    if header.startswith("AWS4-"):
        return "AWS4-HMAC-SHA256", "REST-HEADER"
    if header.startswith("AWS "):
        return "AWS", "REST-HEADER"
    if "X-Amz-Algorithm" in req.query:
        return "AWS4-HMAC-SHA256", "REST-QUERY-STRING"
    if "AWSAccessKeyId" in req.query:
        return "AWS", "REST-QUERY-STRING"
    return "", ""


class RequestFacts(Mapping[str, list[str]]):
    """The condition keys of one request, each computed on first use."""

    __slots__ = ("_known", "existing_tags", "post_form", "principal", "req", "secure")

    def __init__(
        self,
        req: Request,
        principal: Principal,
        secure: bool,
        *,
        post_form: bool = False,
        overrides: dict[str, list[str]] | None = None,
        existing_tags: dict[str, str] | None = None,
    ) -> None:
        self.req = req
        self.existing_tags = existing_tags or {}  # the tags of the object the request is on
        self.principal = principal
        self.secure = secure  # the connection is TLS
        self.post_form = post_form  # a browser POST upload (s3:authType POST)
        # Keys given instead of computed (s3:prefix of the listing a missing-key read implies).
        self._known: dict[str, list[str]] = dict(overrides) if overrides else {}

    def __getitem__(self, key: str) -> list[str]:
        value = self._known.get(key)
        if value is None:
            value = self._known[key] = self._compute(key)
        if value is _ABSENT:
            raise KeyError(key)
        return value

    def get(self, key: str, default: object = None) -> list[str] | None:  # type: ignore[override]
        # Mapping.get goes through KeyError; this is the call policy conditions make.
        value = self._known.get(key)
        if value is None:
            value = self._known[key] = self._compute(key)
        return None if value is _ABSENT else value

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())

    def as_dict(self) -> dict[str, list[str]]:
        """Every key the request gives a value to (for logs and tests)."""
        names = [*_COMPUTED, *("s3:" + h for h in _HEADER_KEYS), *_LOCK_HEADERS, *_LIST_PARAMS]
        names += ["s3:requestobjecttagkeys", *(_TAG_PREFIX + k for k in self._tags())]
        names += [_EXISTING_PREFIX + k for k in self.existing_tags]
        return {name: value for name in names if (value := self.get(name)) is not None}

    def _tags(self) -> dict[str, str]:
        tagging = self.req.headers.get("x-amz-tagging")
        return dict(parse_qsl(tagging, keep_blank_values=True)) if tagging is not None else {}

    def _compute(self, key: str) -> list[str]:
        compute = _COMPUTED.get(key)
        if compute is not None:
            found = compute(self)
            return _ABSENT if found is None else [found]
        headers = self.req.headers
        if key.startswith("s3:x-amz-"):
            value = headers.get(key[3:]) if key[3:] in _HEADER_SET else None
        elif key in _LOCK_HEADERS:
            value = headers.get(_LOCK_HEADERS[key])
        elif key in _LIST_PARAMS:
            value = self.req.query.get(_LIST_PARAMS[key]) if self.req.key is None else None
        elif key == "s3:requestobjecttagkeys":
            return list(self._tags()) if "x-amz-tagging" in headers else _ABSENT
        elif key.startswith(_TAG_PREFIX):
            value = self._tags().get(key[len(_TAG_PREFIX) :])
        elif key.startswith(_EXISTING_PREFIX):
            value = self.existing_tags.get(key[len(_EXISTING_PREFIX) :])
        else:
            value = None
        return _ABSENT if value is None else [value]


_HEADER_SET = frozenset(_HEADER_KEYS)


def _current_time(_f: RequestFacts) -> str:
    return datetime.fromtimestamp(time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _signature_version(f: RequestFacts) -> str | None:
    return ("AWS4-HMAC-SHA256" if f.post_form else auth_facts(f.req)[0]) or None


def _auth_type(f: RequestFacts) -> str | None:
    return ("POST" if f.post_form else auth_facts(f.req)[1]) or None


_COMPUTED: dict[str, Callable[[RequestFacts], str | None]] = {
    "aws:sourceip": lambda f: f.req.client_ip,
    "aws:securetransport": lambda f: "true" if f.secure else "false",
    "aws:currenttime": _current_time,
    "aws:epochtime": lambda f: str(int(time.time())),
    "aws:principaltype": lambda f: principal_type(f.principal),
    "aws:useragent": lambda f: f.req.headers.get("user-agent"),
    "aws:referer": lambda f: f.req.headers.get("referer"),
    "aws:userid": lambda f: None if f.principal.anonymous else f.principal.id,
    "aws:username": lambda f: None if f.principal.anonymous else f.principal.display_name,
    "s3:signatureversion": _signature_version,
    "s3:authtype": _auth_type,
    "s3:versionid": lambda f: f.req.query.get("versionId"),
}


def request_facts(
    req: Request,
    principal: Principal,
    secure: bool,
    *,
    post_form: bool = False,
    overrides: dict[str, list[str]] | None = None,
    existing_tags: dict[str, str] | None = None,
) -> RequestFacts:
    """The condition keys of ``req`` (computed when a policy reads them). ``secure``: TLS;
    ``existing_tags``: the tags of the object the request is on (s3:ExistingObjectTag/<key>)."""
    return RequestFacts(req, principal, secure, post_form=post_form, overrides=overrides, existing_tags=existing_tags)
