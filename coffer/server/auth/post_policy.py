"""POST policy documents (browser form uploads) and their signatures.

A policy is base64 JSON: ``{"expiration": "2030-01-01T00:00:00Z", "conditions": [...]}``
with conditions ``{"field": "value"}`` (exact match), ``["eq", "$field", "value"]``,
``["starts-with", "$field", "prefix"]`` and ``["content-length-range", min, max]``.
Field names and operators are case-insensitive; the policy's own keys are not.
Every form field must be allowed by some condition, except the signature
fields, ``file``, ``policy``, ``x-ignore-*`` and checksums. The form is signed by
signing the base64 policy text: SigV2 ``base64(HMAC-SHA1(secret, policy))`` or
SigV4 ``hex(HMAC-SHA256(kSigning, policy))``.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any

from coffer.server.auth import sigv2, sigv4
from coffer.server.errors import S3Error

# Form fields that never need a policy condition.
EXEMPT_FIELDS = frozenset(
    {
        "awsaccesskeyid",
        "signature",
        "policy",
        "file",
        "x-amz-signature",
        "x-amz-algorithm",
        "x-amz-credential",
        "x-amz-date",
        "x-amz-security-token",
    }
)


def _invalid(detail: str) -> S3Error:
    return S3Error("InvalidPolicyDocument", f"Invalid Policy: {detail}")


def _denied(detail: str) -> S3Error:
    return S3Error("AccessDenied", f"Invalid according to Policy: {detail}")


@dataclass
class PostPolicy:
    expiration: float
    # (operator, field, value): operator is "eq" or "starts-with", field lower-case without '$'.
    conditions: list[tuple[str, str, str]] = field(default_factory=list)
    length_range: tuple[int, int] | None = None


def _parse_expiration(value: Any) -> float:
    if not isinstance(value, str):
        raise _invalid("Invalid 'expiration' value.")
    for fmt in ("%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return float(calendar.timegm(time.strptime(value, fmt)))
        except ValueError:
            continue
    raise _invalid(f"Invalid 'expiration' value: '{value[:64]}'")


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    raise ValueError


def parse_policy(encoded: str) -> PostPolicy:
    """Decode and validate the structure of a policy (not yet its expiry or conditions)."""
    try:
        doc = json.loads(base64.b64decode(encoded.strip(), validate=False))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _invalid("Invalid JSON.") from None
    if not isinstance(doc, dict):
        raise _invalid("Invalid JSON.")
    if "expiration" not in doc:
        raise _invalid("Policy missing expiration.")
    policy = PostPolicy(_parse_expiration(doc["expiration"]))
    conditions = doc.get("conditions")
    if not isinstance(conditions, list):
        raise _invalid("Policy missing conditions.")
    for condition in conditions:
        if isinstance(condition, dict):
            if len(condition) != 1:
                raise _invalid("Invalid Simple-Condition: Simple-Conditions must have exactly one property specified.")
            ((name, value),) = condition.items()
            if not isinstance(value, str):
                raise _invalid(f"Invalid Simple-Condition: the value of '{name}' must be a string.")
            policy.conditions.append(("eq", str(name).lower().lstrip("$"), value))
        elif isinstance(condition, list) and condition and isinstance(condition[0], str):
            op = condition[0].lower()
            if op == "content-length-range":
                if len(condition) != 3:
                    raise _invalid('Invalid content-length-range: expected ["content-length-range", min, max].')
                try:
                    low, high = _as_int(condition[1]), _as_int(condition[2])
                except ValueError:
                    raise _invalid("Invalid content-length-range: bounds must be integers.") from None
                if low < 0 or high < low:
                    raise _invalid("Invalid content-length-range: 0 <= min <= max required.")
                policy.length_range = (low, high)
            elif op in ("eq", "starts-with"):
                if len(condition) != 3 or not isinstance(condition[1], str) or not isinstance(condition[2], str):
                    raise _invalid(f"Invalid {op} condition.")
                if not condition[1].startswith("$"):
                    raise _invalid(f"Invalid {op} condition: the field name must start with '$'.")
                policy.conditions.append((op, condition[1][1:].lower(), condition[2]))
            else:
                raise _invalid(f"Invalid condition operator '{condition[0][:32]}'.")
        else:
            raise _invalid("Invalid condition.")
    return policy


def check_policy(policy: PostPolicy, fields: dict[str, str], now: float) -> None:
    """Expiry, every condition against ``fields`` (lower-case names), and no unlisted field."""
    if now > policy.expiration:
        raise _denied("Policy expired.")
    for op, name, expected in policy.conditions:
        actual = fields.get(name, "")
        ok = actual == expected if op == "eq" else actual.startswith(expected)
        if not ok:
            raise _denied(f'Policy Condition failed: ["{op}", "${name}", "{expected}"]')
    covered = {name for _, name, _ in policy.conditions}
    extra = [
        name
        for name in fields
        if name not in covered
        and name not in EXEMPT_FIELDS
        and not name.startswith("x-ignore-")
        and not name.startswith("x-amz-checksum-")
    ]
    if extra:
        raise _denied(f"Extra input fields: {', '.join(sorted(extra))}")


@dataclass(frozen=True, slots=True)
class FormSignature:
    access_key: str
    version: int  # 2 or 4
    signature: str
    credential: sigv4.V4Credential | None = None


def form_signature(fields: dict[str, str]) -> FormSignature | None:
    """The signature fields of a form; None if it carries none (anonymous)."""
    if "x-amz-signature" in fields or "x-amz-credential" in fields or "x-amz-algorithm" in fields:
        if fields.get("x-amz-algorithm") != sigv4.ALGORITHM:
            raise S3Error("InvalidArgument", "x-amz-algorithm must be AWS4-HMAC-SHA256", ArgumentName="x-amz-algorithm")
        for required in ("x-amz-credential", "x-amz-signature", "x-amz-date"):
            if not fields.get(required):
                raise S3Error("InvalidArgument", f"Bucket POST must contain a field named '{required}'.")
        parts = fields["x-amz-credential"]
        credential = sigv4.parse_credential(parts, "host", fields["x-amz-signature"])
        return FormSignature(credential.access_key, 4, credential.signature, credential)
    if "awsaccesskeyid" in fields or "signature" in fields:
        if not fields.get("awsaccesskeyid"):
            raise S3Error("InvalidArgument", "Bucket POST must contain a field named 'AWSAccessKeyId'.")
        if not fields.get("signature"):
            raise S3Error(
                "InvalidArgument",
                "Bucket POST must contain a field named 'Signature'.  If it is specified, please check the "
                "order of the fields.",
            )
        return FormSignature(fields["awsaccesskeyid"], 2, fields["signature"])
    return None


def verify_form_signature(sig: FormSignature, secret: str, policy: str, fields: dict[str, str]) -> None:
    if sig.version == 2:
        sigv2.check(sig.access_key, secret, sig.signature, [policy])
        return
    assert sig.credential is not None
    cred = sig.credential
    if sigv4.parse_amz_date(fields.get("x-amz-date", "")) is None:
        raise S3Error("InvalidArgument", "x-amz-date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    key = sigv4.signing_key(cred.access_key, secret, cred.date, cred.region, cred.service)
    expected = sigv4.sign(key, policy)
    if not hmac.compare_digest(expected.encode("ascii"), sig.signature.encode("utf-8", "replace")):
        raise sigv4.mismatch(sig.access_key, sig.signature, policy)
