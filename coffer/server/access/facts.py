"""The condition-key values of one request (aws:SourceIp, s3:prefix, ...), for policy conditions.

Built at most once per request and only when a policy is evaluated (a bucket without a
policy, used by a key without one, never pays for it). Keys are lower-cased; every value
is a list of strings, as policy.py expects. A key the request does not carry is absent
(the Null operator and the ...IfExists forms see it missing).

Not supported yet: s3:ExistingObjectTag/<key> (it would need the object's tags before
the request runs); a condition on it finds the key absent.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from urllib.parse import parse_qsl

from coffer.server.auth.principal import Principal
from coffer.server.request import Request

Facts = dict[str, list[str]]

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
    "x-amz-copy-source",
    "x-amz-metadata-directive",
    "x-amz-storage-class",
    "x-amz-content-sha256",
)
_LOCK_KEYS = {
    "x-amz-object-lock-mode": "s3:object-lock-mode",
    "x-amz-object-lock-retain-until-date": "s3:object-lock-retain-until-date",
    "x-amz-object-lock-legal-hold": "s3:object-lock-legal-hold",
}
# ListObjects / ListObjectsV2 / ListObjectVersions query parameters.
_LIST_KEYS = (("prefix", "s3:prefix"), ("delimiter", "s3:delimiter"), ("max-keys", "s3:max-keys"))


def principal_type(principal: Principal) -> str:
    if principal.anonymous:
        return "Anonymous"
    # A key pair without an identity policy is its user's "root": full access to what it owns.
    return "Account" if principal.policy is None else "User"


def auth_facts(req: Request) -> tuple[str, str]:
    """(s3:signatureversion, s3:authType) of the request as it was authenticated."""
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


def request_facts(req: Request, principal: Principal, secure: bool, *, post_form: bool = False) -> Facts:
    """Every condition key ``req`` gives a value to. ``secure``: the connection is TLS."""
    now = time.time()
    facts: Facts = {
        "aws:sourceip": [req.client_ip],
        "aws:securetransport": ["true" if secure else "false"],
        "aws:currenttime": [datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")],
        "aws:epochtime": [str(int(now))],
        "aws:principaltype": [principal_type(principal)],
    }
    headers = req.headers
    if (agent := headers.get("user-agent")) is not None:
        facts["aws:useragent"] = [agent]
    if (referer := headers.get("referer")) is not None:
        facts["aws:referer"] = [referer]
    if not principal.anonymous:
        facts["aws:userid"] = [principal.id]
        facts["aws:username"] = [principal.display_name]
    version, auth_type = ("AWS4-HMAC-SHA256", "POST") if post_form else auth_facts(req)
    if version:
        facts["s3:signatureversion"] = [version]
        facts["s3:authtype"] = [auth_type]
    for name in _HEADER_KEYS:
        if (value := headers.get(name)) is not None:
            facts["s3:" + name] = [value]
    for name, key in _LOCK_KEYS.items():
        if (value := headers.get(name)) is not None:
            facts[key] = [value]
    if (tagging := headers.get("x-amz-tagging")) is not None:
        tags = parse_qsl(tagging, keep_blank_values=True)
        facts["s3:requestobjecttagkeys"] = [k for k, _ in tags]
        for k, v in tags:
            facts["s3:requestobjecttag/" + k] = [v]
    query = req.query
    if "versionId" in query:
        facts["s3:versionid"] = [query["versionId"]]
    if req.key is None:
        for param, key in _LIST_KEYS:
            if param in query:
                facts[key] = [query[param]]
    return facts
