"""Object Lock on the wire: the three XML documents (ObjectLockConfiguration, Retention,
LegalHold), the x-amz-object-lock-* headers of writes and reads, and a bucket's default
retention. The rules about what a lock forbids live in coffer/storage/versioning.py;
engines enforce them. See docs/object-lock.md.

A bucket's default retention is its ``object_lock`` configuration document:
``{"mode": "GOVERNANCE", "days": 30}`` (or ``"years"``), or ``{}`` when Object Lock is
on without a default. The document exists only once PutObjectLockConfiguration was called;
whether the bucket has Object Lock at all is ``BucketInfo.object_lock``.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from coffer.server import xml
from coffer.server.access.decide import object_arn
from coffer.server.bucket_state import CONFIG_NAME, BucketStates
from coffer.server.errors import S3Error
from coffer.server.http import Response
from coffer.server.request import Request
from coffer.storage.api import NO_LOCK, Engine, ObjectLock
from coffer.storage.versioning import RETENTION_MODES

MODE_HEADER = "x-amz-object-lock-mode"
UNTIL_HEADER = "x-amz-object-lock-retain-until-date"
HOLD_HEADER = "x-amz-object-lock-legal-hold"
BYPASS_HEADER = "x-amz-bypass-governance-retention"
BYPASS_ACTION = "s3:BypassGovernanceRetention"
BUCKET_LOCK_HEADER = "x-amz-bucket-object-lock-enabled"
HOLD_STATUSES = ("ON", "OFF")
# S3's ceilings for a default retention period.
MAX_DAYS = 36500
MAX_YEARS = 100
MAX_DOCUMENT = 64 * 1024

NOT_ENABLED = "Bucket is missing Object Lock Configuration"
BOTH_REQUIRED = "x-amz-object-lock-retain-until-date and x-amz-object-lock-mode must both be supplied"
IN_THE_PAST = "The retain until date must be in the future!"
CHECKSUM_REQUIRED = "Content-MD5 OR x-amz-checksum- HTTP header is required for {} requests with Object Lock parameters"
VERSIONING_REQUIRED = "Versioning must be 'Enabled' on the bucket to apply a Object Lock configuration"

# ISO 8601 as S3 writes and SDKs send it: a date, 'T', a time with optional fraction, a zone.
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})?")


# ---------------------------------------------------------------------- dates
def parse_iso8601(raw: str) -> float | None:
    """Epoch seconds of an ISO 8601 timestamp (no zone: UTC); None when it is not one."""
    text = raw.strip()
    match = _ISO.fullmatch(text)
    if match is None:
        return None
    fraction = match.group(1)
    if fraction is not None and len(fraction) > 7:  # fromisoformat takes at most microseconds
        text = text.replace(fraction, fraction[:7], 1)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
        return (parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)).timestamp()
    except (ValueError, OverflowError, OSError):
        return None


def format_date(epoch: float) -> str:
    """2030-01-01T00:00:00.000Z: how S3 writes a retain-until date (headers and XML), rounded
    to the millisecond (a date sent as .123 is kept as 0.12299... and must read back .123)."""
    seconds, millis = divmod(round(epoch * 1000), 1000)
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(seconds))}.{millis:03d}Z"


# ---------------------------------------------------------------------- default retention
@dataclass(frozen=True, slots=True)
class DefaultRetention:
    mode: str
    days: int | None = None
    years: int | None = None

    def until(self, now: float) -> float:
        """The retain-until date of a version written at ``now``."""
        if self.days is not None:
            return now + self.days * 86400
        assert self.years is not None
        moment = datetime.fromtimestamp(now, UTC)
        year = moment.year + self.years
        day = min(moment.day, calendar.monthrange(year, moment.month)[1])  # 29 February -> 28
        return moment.replace(year=year, day=day).timestamp()

    def document(self) -> dict[str, Any]:
        period = {"days": self.days} if self.days is not None else {"years": self.years}
        return {"mode": self.mode, **period}

    @classmethod
    def from_document(cls, doc: Any) -> DefaultRetention | None:
        if not isinstance(doc, dict) or "mode" not in doc:
            return None
        return cls(doc["mode"], doc.get("days"), doc.get("years"))


def parse_configuration(body: bytes) -> DefaultRetention | None:
    """An ObjectLockConfiguration document: its default retention (None: no Rule)."""
    doc = xml.parse(body)
    if doc.tag != "ObjectLockConfiguration":
        raise S3Error("MalformedXML")
    if (xml.child_text(doc, "ObjectLockEnabled") or "").strip() != "Enabled":
        raise S3Error("MalformedXML")
    rule = doc.find("Rule")
    if rule is None:
        return None
    retention = rule.find("DefaultRetention")
    if retention is None:
        raise S3Error("MalformedXML")
    mode = (xml.child_text(retention, "Mode") or "").strip()
    if mode not in RETENTION_MODES:
        raise S3Error("MalformedXML")
    days = xml.child_text(retention, "Days")
    years = xml.child_text(retention, "Years")
    if (days is None) == (years is None):  # exactly one of them
        raise S3Error("MalformedXML")
    if days is not None:
        return DefaultRetention(mode, days=_period(days, MAX_DAYS, "days"))
    assert years is not None
    return DefaultRetention(mode, years=_period(years, MAX_YEARS, "years"))


def _period(raw: str, ceiling: int, unit: str) -> int:
    text = raw.strip()
    if not re.fullmatch(r"[+-]?\d{1,12}", text) or not text.isascii():
        raise S3Error("MalformedXML")
    value = int(text)
    if value <= 0:
        raise S3Error("InvalidRetentionPeriod", "Default retention period must be a positive integer value.")
    if value > ceiling:
        raise S3Error("InvalidRetentionPeriod", f"Default retention period must not exceed {ceiling} {unit}.")
    return value


def configuration_document(rule: DefaultRetention | None) -> bytes:
    inner = xml.elem("ObjectLockEnabled", "Enabled")
    if rule is not None:
        period = xml.elem("Days", rule.days) if rule.days is not None else xml.elem("Years", rule.years)
        inner += f"<Rule><DefaultRetention>{xml.elem('Mode', rule.mode)}{period}</DefaultRetention></Rule>"
    return xml.document("ObjectLockConfiguration", inner)


async def default_retention(engine: Engine, bucket: str) -> DefaultRetention | None:
    """The bucket's default retention; NoSuchBucket when there is no bucket."""
    return DefaultRetention.from_document(await engine.get_bucket_config(bucket, CONFIG_NAME))


# ---------------------------------------------------------------------- Retention and LegalHold
def parse_retention(body: bytes, now: float) -> tuple[str | None, float | None]:
    """A Retention document: (mode, retain-until) or (None, None), which removes the retention."""
    doc = xml.parse(body)
    if doc.tag != "Retention":
        raise S3Error("MalformedXML")
    mode = xml.child_text(doc, "Mode")
    raw_until = xml.child_text(doc, "RetainUntilDate")
    if mode is None and raw_until is None:
        return None, None
    if mode is None or raw_until is None:
        raise S3Error("MalformedXML")
    mode = mode.strip()
    if mode not in RETENTION_MODES:
        raise S3Error("MalformedXML")
    until = parse_iso8601(raw_until)
    if until is None:
        raise S3Error("MalformedXML")
    if until <= now:
        raise S3Error("InvalidArgument", IN_THE_PAST)
    return mode, until


def retention_document(lock: ObjectLock) -> bytes:
    assert lock.mode is not None and lock.retain_until is not None
    inner = xml.elem("Mode", lock.mode) + xml.elem("RetainUntilDate", format_date(lock.retain_until))
    return xml.document("Retention", inner)


def parse_legal_hold(body: bytes) -> bool:
    doc = xml.parse(body)
    if doc.tag != "LegalHold":
        raise S3Error("MalformedXML")
    status = (xml.child_text(doc, "Status") or "").strip()
    if status not in HOLD_STATUSES:
        raise S3Error("MalformedXML")
    return status == "ON"


def legal_hold_document(on: bool) -> bytes:
    return xml.document("LegalHold", xml.elem("Status", "ON" if on else "OFF"))


# ---------------------------------------------------------------------- writes
def requested_lock(source: Mapping[str, str], now: float) -> ObjectLock | None:
    """The lock a write's headers (or POST form fields) ask for; None when they name none."""
    mode = source.get(MODE_HEADER)
    raw_until = source.get(UNTIL_HEADER)
    hold = source.get(HOLD_HEADER)
    if mode is None and raw_until is None and hold is None:
        return None
    if (mode is None) != (raw_until is None):
        raise S3Error("InvalidArgument", BOTH_REQUIRED)
    until: float | None = None
    if mode is not None and raw_until is not None:
        if mode not in RETENTION_MODES:
            raise S3Error(
                "InvalidArgument", "Unknown wormMode directive.", ArgumentName=MODE_HEADER, ArgumentValue=mode[:64]
            )
        until = parse_iso8601(raw_until)
        if until is None:
            raise S3Error(
                "InvalidArgument",
                "The retain until date must be provided in ISO 8601 format",
                ArgumentName=UNTIL_HEADER,
                ArgumentValue=raw_until[:64],
            )
        if until <= now:
            raise S3Error("InvalidArgument", IN_THE_PAST)
    if hold is not None and hold not in HOLD_STATUSES:
        raise S3Error(
            "InvalidArgument",
            "Legal Hold must be either of 'ON' or 'OFF'",
            ArgumentName=HOLD_HEADER,
            ArgumentValue=hold[:64],
        )
    return ObjectLock(mode, until, None if hold is None else hold == "ON")


@dataclass(frozen=True, slots=True)
class WriteLock:
    """The lock a new version gets, and whether the request itself asked for one."""

    lock: ObjectLock
    requested: bool

    @property
    def needs_checksum(self) -> bool:
        """S3 wants Content-MD5 or an x-amz-checksum-* with any Object Lock parameter,
        a bucket's default retention included."""
        return self.requested or bool(self.lock)


async def lock_for_write(buckets: BucketStates, bucket: str, source: Mapping[str, str]) -> WriteLock:
    """The lock of a version a write creates: the request's headers, else the bucket's
    default retention (the legal hold header combines with it)."""
    now = time.time()
    requested = requested_lock(source, now)
    state = await buckets.get(bucket)  # NoSuchBucket first; no metadata read for most writes
    if requested is not None and not state.info.object_lock:
        raise S3Error("InvalidRequest", NOT_ENABLED)
    if requested is not None and requested.mode is not None:
        return WriteLock(requested, True)
    rule = DefaultRetention.from_document(state.lock_config)
    hold = requested.legal_hold if requested is not None else None
    if rule is not None:
        return WriteLock(ObjectLock(rule.mode, rule.until(now), hold), requested is not None)
    return WriteLock(requested or NO_LOCK, requested is not None)


def require_checksum(has_md5: bool, has_checksum: bool, operation: str = "Put Object") -> None:
    if not (has_md5 or has_checksum):
        raise S3Error("InvalidRequest", CHECKSUM_REQUIRED.format(operation))


# ---------------------------------------------------------------------- reads and deletes
def add_headers(response: Response, lock: ObjectLock) -> None:
    """x-amz-object-lock-* of GetObject/HeadObject: the retention, and the legal hold once one
    was placed (OFF after it was removed, as S3 sends it)."""
    if lock.mode is not None and lock.retain_until is not None:
        response.header(MODE_HEADER, lock.mode)
        response.header(UNTIL_HEADER, format_date(lock.retain_until))
    if lock.legal_hold is not None:
        response.header(HOLD_HEADER, "ON" if lock.legal_hold else "OFF")


def bypass_governance(req: Request, keys: Iterable[str] = ()) -> bool:
    """x-amz-bypass-governance-retention: true, honoured only for a caller with the
    s3:BypassGovernanceRetention permission on the object (each of ``keys``, default the
    request's key); without it the request goes on as if the header were absent, so a
    GOVERNANCE retention still refuses it (as S3)."""
    if req.headers.get(BYPASS_HEADER, "").strip().lower() != "true":
        return False
    access = req.access
    if access is None:
        return True  # authorization is off
    assert req.bucket is not None
    names = list(keys) or [req.key or ""]
    return all(access.allows(BYPASS_ACTION, object_arn(req.bucket, name)) for name in names)
