"""The event record JSON S3 sends (event structure version 2.1).

https://docs.aws.amazon.com/AmazonS3/latest/userguide/notification-content-structure.html
A request only records the facts of its event (``ObjectEvent``, stamped with its time and sequence
by ``stamp``) in the queue; the record is written out from those facts when it is delivered or
streamed (``event_record``), so the request path never builds it.
"""

from __future__ import annotations

import itertools
import os
import re
import time
from dataclasses import dataclass
from functools import lru_cache
from json.encoder import encode_basestring_ascii
from urllib.parse import quote_plus

from coffer.server.xml import iso8601

# The sequencer orders events of one key: hex, growing. Nanoseconds since the epoch plus a
# per-process counter keep it growing within a process; across processes it follows the clock.
_counter = itertools.count()
_PID_TAG = (os.getpid() & 0xFFFF) << 16


# What a request knows of its event, in the order the queue line holds it after its time and
# sequencer: (event, bucket, bucket owner, key, size, etag, version id, principal, source ip,
# request id). A plain tuple where every write of a bucket with rules makes one (``ObjectEvent`` is
# made only where the facts are read back: delivery, live listeners).
Facts = tuple[str, str, str, str, int | None, str | None, str | None, str, str, str]


@dataclass(slots=True)  # not frozen: made for every write of a bucket with rules (frozen init is slower)
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
    time_ns: int = 0  # when it happened (``stamp``)
    tag: int = 0  # the sequencer's tail: emitting process and counter (``stamp``)


def facts_of(event: ObjectEvent) -> Facts:
    return (
        event.event,
        event.bucket,
        event.bucket_owner,
        event.key,
        event.size,
        event.etag,
        event.version_id,
        event.principal_id,
        event.source_ip,
        event.request_id,
    )


def event_of(facts: Facts, time_ns: int, tag: int) -> ObjectEvent:
    event, bucket, owner, key, size, etag, version_id, principal_id, source_ip, request_id = facts
    return ObjectEvent(
        event, bucket, key, size, etag, version_id, principal_id, source_ip, request_id, owner, time_ns, tag
    )


def next_tag() -> int:
    """The sequencer's tail of an event happening now (with ``time.time_ns()`` its head)."""
    return _PID_TAG | (next(_counter) & 0xFFFF)


def stamp(event: ObjectEvent, now_ns: int | None = None) -> ObjectEvent:
    """Give the event its time and its place in the sequence (once, when it happens)."""
    event.time_ns = time.time_ns() if now_ns is None else now_ns
    event.tag = next_tag()
    return event


def event_record(event: ObjectEvent, region: str, configuration_id: str) -> bytes:
    """The encoded record of a stamped event for the rule ``configuration_id``. Written out field by
    field rather than built as a mapping and then encoded, with the parts that repeat (who, which
    bucket) encoded once."""
    text = _text
    key = event.key if _PLAIN_KEY.fullmatch(event.key) else quote_plus(event.key, safe="/")
    obj = f'"key":"{key}"'  # URL-encoded: nothing to escape
    if event.size is not None:
        obj += f',"size":{int(event.size)}'
    if event.etag:
        obj += f',"eTag":{text(event.etag)}'
    if event.version_id and event.version_id != "null":
        obj += f',"versionId":{text(event.version_id)}'
    request_id = text(event.request_id)
    return (
        f'{{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":{_region(region)},'
        f'"eventTime":"{iso8601(event.time_ns / 1e9)}",'
        f"{_who(event.event, event.principal_id)}"
        f'"requestParameters":{{"sourceIPAddress":{text(event.source_ip)}}},'
        f'"responseElements":{{"x-amz-request-id":{request_id},"x-amz-id-2":{request_id}}},'
        f"{_bucket(event.bucket, event.bucket_owner, configuration_id)}"
        f'"object":{{{obj},"sequencer":"{event.time_ns:016X}{event.tag:08X}"}}}}}}'
    ).encode()


# Keys quote_plus leaves as they are (most keys): skip its slow path.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.~/-]*")


@lru_cache(maxsize=16)
def _region(region: str) -> str:
    return str(_text(region))


@lru_cache(maxsize=1024)
def _who(event: str, principal_id: str) -> str:
    """What happened and who did it."""
    text = _text
    return (
        f'"eventName":{text(event.removeprefix("s3:"))},'
        f'"userIdentity":{{"principalId":{text(principal_id or "anonymous")}}},'
    )


@lru_cache(maxsize=1024)
def _bucket(bucket: str, owner: str, configuration_id: str) -> str:
    text = _text
    return (
        f'"s3":{{"s3SchemaVersion":"1.0","configurationId":{text(configuration_id)},'
        f'"bucket":{{"name":{text(bucket)},"ownerIdentity":{{"principalId":{text(owner)}}},'
        f'"arn":{text("arn:aws:s3:::" + bucket)}}},'
    )


# A JSON string literal, escaped (the C encoder json.dumps uses, without its per-call overhead).
_text = encode_basestring_ascii


def records_body(records: list[bytes]) -> bytes:
    """``{"Records": [...]}``, what a webhook POST and a live-stream message carry."""
    return b'{"Records":[' + b",".join(records) + b"]}"
