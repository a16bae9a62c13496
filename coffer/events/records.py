"""The event record JSON S3 sends (event structure version 2.1).

https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
The record is built once per event without ``s3.configurationId``; each delivery fills in the id of
the rule that fired it (``for_rule``).
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

# The sequencer orders events of one key: hex, growing. Nanoseconds since the epoch plus a
# per-process counter keep it growing within a process; across processes it follows the clock.
_counter = itertools.count()
_PID_TAG = os.getpid() & 0xFFFF


@dataclass(frozen=True, slots=True)
class ObjectEvent:
    """What happened, as the server knows it once the write committed."""

    event: str  # "s3:ObjectCreated:Put", ...
    bucket: str
    key: str
    size: int | None = None
    etag: str | None = None  # hex, without quotes
    version_id: str | None = None  # None or "null": not reported
    principal_id: str = ""
    source_ip: str = ""
    request_id: str = ""
    bucket_owner: str = ""


def sequencer() -> str:
    return f"{time.time_ns():016X}{_PID_TAG:04X}{next(_counter) & 0xFFFF:04X}"


def build_record(event: ObjectEvent, region: str, now: float | None = None) -> dict[str, Any]:
    when = time.time() if now is None else now
    seconds = int(when)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int((when - seconds) * 1000):03d}Z"
    obj: dict[str, Any] = {"key": quote_plus(event.key, safe="/")}
    if event.size is not None:
        obj["size"] = event.size
    if event.etag:
        obj["eTag"] = event.etag
    if event.version_id and event.version_id != "null":
        obj["versionId"] = event.version_id
    obj["sequencer"] = sequencer()
    return {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "awsRegion": region,
        "eventTime": stamp,
        "eventName": event.event.removeprefix("s3:"),
        "userIdentity": {"principalId": event.principal_id or "anonymous"},
        "requestParameters": {"sourceIPAddress": event.source_ip},
        "responseElements": {"x-amz-request-id": event.request_id, "x-amz-id-2": event.request_id},
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": "",
            "bucket": {
                "name": event.bucket,
                "ownerIdentity": {"principalId": event.bucket_owner},
                "arn": f"arn:aws:s3:::{event.bucket}",
            },
            "object": obj,
        },
    }


def for_rule(record: dict[str, Any], configuration_id: str) -> dict[str, Any]:
    """The record as sent for one rule: a shallow copy with its ``s3.configurationId``."""
    return {**record, "s3": {**record["s3"], "configurationId": configuration_id}}
