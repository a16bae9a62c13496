"""CORS: bucket rules (PutBucketCors documents), matching, and the response headers.

A bucket's rules are stored by the engine as a JSON document under the bucket
config name ``cors``. The first rule that matches the request's Origin, method
(``Access-Control-Request-Method`` when present) and requested headers decides,
as S3 does. ``cors_allow_all`` (a server setting, for development) answers for
buckets without rules of their own and for requests outside buckets.
"""

from __future__ import annotations

import functools
import logging
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from coffer.server import xml
from coffer.server.errors import S3Error
from coffer.server.http import INT32_MAX, Response, parse_int
from coffer.storage.errors import NoSuchBucket, StorageError

if TYPE_CHECKING:
    from coffer.server.request import Request
    from coffer.storage.api import Engine

log = logging.getLogger("coffer.cors")

CONFIG_NAME = "cors"
METHODS = ("GET", "PUT", "HEAD", "POST", "DELETE")
MAX_RULES = 100
MAX_DOCUMENT = 64 * 1024
VARY = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"
# What the allow-all development mode lets browser scripts read.
ALLOW_ALL_EXPOSE = (
    "ETag",
    "Content-Length",
    "Content-Range",
    "Last-Modified",
    "x-amz-request-id",
    "x-amz-id-2",
    "x-amz-version-id",
    "x-amz-delete-marker",
)
NOT_ALLOWED = (
    "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, "
    "request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted "
    "by the resource's CORS spec."
)


@dataclass(slots=True)
class CorsRule:
    methods: list[str]
    origins: list[str]
    headers: list[str] = field(default_factory=list)
    expose: list[str] = field(default_factory=list)
    max_age: int | None = None
    id: str | None = None
    allow_all: bool = False  # the server-wide development rule

    # ---------------------------------------------------------------- storage form
    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"methods": self.methods, "origins": self.origins}
        if self.headers:
            doc["headers"] = self.headers
        if self.expose:
            doc["expose"] = self.expose
        if self.max_age is not None:
            doc["max_age"] = self.max_age
        if self.id is not None:
            doc["id"] = self.id
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> CorsRule:
        return cls(
            methods=list(doc["methods"]),
            origins=list(doc["origins"]),
            headers=list(doc.get("headers", ())),
            expose=list(doc.get("expose", ())),
            max_age=doc.get("max_age"),
            id=doc.get("id"),
        )

    # ---------------------------------------------------------------- matching
    def origin_matches(self, origin: str) -> bool:
        return any(_wildcard(pattern, False).fullmatch(origin) for pattern in self.origins)

    def headers_match(self, requested: list[str]) -> bool:
        return all(any(_wildcard(p, True).fullmatch(h) for p in self.headers) for h in requested)

    def matches(self, origin: str, method: str, requested_headers: list[str]) -> bool:
        if self.allow_all:
            return True
        return method in self.methods and self.origin_matches(origin) and self.headers_match(requested_headers)


ALLOW_ALL = CorsRule(methods=list(METHODS), origins=["*"], expose=list(ALLOW_ALL_EXPOSE), max_age=600, allow_all=True)


@functools.lru_cache(maxsize=1024)
def _wildcard(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    """'*' matches any run of characters (at most one '*' is accepted when rules are stored)."""
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.compile(regex, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL)


def _split_list(value: str | None) -> list[str]:
    if not value:
        return []
    return [item.strip() for item in value.split(",") if item.strip()]


# ---------------------------------------------------------------------- XML
def parse_configuration(body: bytes) -> list[CorsRule]:
    """A PutBucketCors body -> rules; malformed or invalid documents raise the S3 error AWS answers."""
    root = xml.parse(body)
    if root.tag != "CORSConfiguration":
        raise S3Error("MalformedXML")
    rules: list[CorsRule] = []
    for node in root:
        if node.tag != "CORSRule":
            raise S3Error("MalformedXML")
        rule = CorsRule(methods=[], origins=[])
        for child in node:
            text = (child.text or "").strip()
            if child.tag == "AllowedMethod":
                if text not in METHODS:
                    raise S3Error(
                        "InvalidRequest", f"Found unsupported HTTP method in CORS config. Unsupported method is {text}"
                    )
                rule.methods.append(text)
            elif child.tag == "AllowedOrigin":
                if text.count("*") > 1:
                    raise S3Error("InvalidRequest", f'AllowedOrigin "{text}" can not have more than one wildcard.')
                rule.origins.append(text)
            elif child.tag == "AllowedHeader":
                if text.count("*") > 1:
                    raise S3Error("InvalidRequest", f'AllowedHeader "{text}" can not have more than one wildcard.')
                rule.headers.append(text)
            elif child.tag == "ExposeHeader":
                if "*" in text:
                    raise S3Error(
                        "InvalidRequest",
                        f'ExposeHeader "{text}" contains wildcard. '
                        "We currently do not support wildcard for ExposeHeader.",
                    )
                rule.expose.append(text)
            elif child.tag == "MaxAgeSeconds":
                rule.max_age = parse_int(text, "MaxAgeSeconds", 0, INT32_MAX, code="MalformedXML")
            elif child.tag == "ID":
                if len(text) > 255:
                    raise S3Error("InvalidArgument", "The ID of a CORS rule must be at most 255 characters.")
                rule.id = text
            else:
                raise S3Error("MalformedXML")
        if not rule.methods or not rule.origins:
            raise S3Error("MalformedXML")
        rules.append(rule)
    if not rules:
        raise S3Error("MalformedXML")
    if len(rules) > MAX_RULES:
        raise S3Error(
            "InvalidRequest", f"The number of CORS rules should not exceed allowed limit of {MAX_RULES} rules."
        )
    return rules


def render_configuration(rules: list[CorsRule]) -> bytes:
    parts = []
    for rule in rules:
        inner = [xml.elem("ID", rule.id)] if rule.id is not None else []
        inner += [xml.elem("AllowedHeader", h) for h in rule.headers]
        inner += [xml.elem("AllowedMethod", m) for m in rule.methods]
        inner += [xml.elem("AllowedOrigin", o) for o in rule.origins]
        inner += [xml.elem("ExposeHeader", h) for h in rule.expose]
        if rule.max_age is not None:
            inner.append(xml.elem("MaxAgeSeconds", rule.max_age))
        parts.append(f"<CORSRule>{''.join(inner)}</CORSRule>")
    return xml.document("CORSConfiguration", "".join(parts))


# ---------------------------------------------------------------------- enforcement
class Cors:
    def __init__(self, engine: Engine, allow_all: bool) -> None:
        self.engine = engine
        self.allow_all = allow_all

    async def rules_for(self, bucket: str | None) -> list[CorsRule] | None:
        """The rules that govern a request to ``bucket``; None when CORS is off for it."""
        if bucket is None:
            return [ALLOW_ALL] if self.allow_all else None
        try:
            doc = await self.engine.get_bucket_config(bucket, CONFIG_NAME)
        except NoSuchBucket:
            if self.allow_all:
                return [ALLOW_ALL]
            raise
        if doc:
            return [CorsRule.from_doc(d) for d in doc]
        return [ALLOW_ALL] if self.allow_all else None

    async def preflight(self, req: Request) -> Response:
        """Answer an OPTIONS preflight: allowed (200 with headers) or refused (403)."""
        origin = req.header("origin")
        if not origin:
            raise S3Error("BadRequest", "Insufficient information. Origin request header needed.")
        method = req.header("access-control-request-method")
        if method not in METHODS:
            raise S3Error("BadRequest", f"Invalid Access-Control-Request-Method: {method or 'null'}")
        requested = _split_list(req.header("access-control-request-headers"))
        rules = await self.rules_for(req.bucket)
        if rules is None:
            raise S3Error("AccessForbidden", "CORSResponse: CORS is not enabled for this bucket.")
        for rule in rules:
            if rule.matches(origin, method, requested):
                response = Response(200)
                _add_headers(response, rule, origin)
                if requested:
                    response.header("access-control-allow-headers", ", ".join(h.lower() for h in requested))
                if rule.max_age is not None:
                    response.header("access-control-max-age", str(rule.max_age))
                return response
        raise S3Error("AccessForbidden", NOT_ALLOWED)

    async def decorate(self, req: Request, response: Response) -> None:
        """Add CORS headers to the response of an actual (non-preflight) request carrying Origin."""
        origin = req.headers.get("origin")
        if not origin:
            return
        try:
            rules = await self.rules_for(req.bucket)
        except StorageError:
            return
        except Exception:
            log.exception("reading CORS rules failed")
            return
        if rules is None:
            return
        # Like S3 (and RGW), a request may name the method it stands for.
        method = req.headers.get("access-control-request-method") or req.method
        requested = _split_list(req.headers.get("access-control-request-headers"))
        for rule in rules:
            if rule.matches(origin, method, requested):
                _add_headers(response, rule, origin)
                return


def _add_headers(response: Response, rule: CorsRule, origin: str) -> None:
    wildcard = not rule.allow_all and "*" in rule.origins
    response.header("access-control-allow-origin", "*" if wildcard else origin)
    response.header("access-control-allow-methods", ", ".join(rule.methods))
    if not wildcard:
        response.header("access-control-allow-credentials", "true")
    if rule.expose:
        response.header("access-control-expose-headers", ", ".join(rule.expose))
    response.header("vary", VARY)
