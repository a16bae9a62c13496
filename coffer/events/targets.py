"""Webhook targets, configured server-side (``notification_targets`` in config.yaml) and named by
the ARN of a bucket's QueueConfiguration / TopicConfiguration."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from coffer.events.webhook import Endpoint

# What a target entry may carry, with defaults.
DEFAULTS: dict[str, Any] = {
    "url": "",
    "auth_header": "",  # sent as the Authorization header, e.g. "Bearer s3cr3t"
    "queue_limit": 10000,  # deliveries waiting (docs/notifications.md: back-pressure, dead letters)
    "max_attempts": 5,  # then dead-lettered
    "timeout": 5.0,  # seconds for one POST (connect, send, answer)
    "retry_seconds": 1.0,  # first back-off; doubled per attempt, at most 60 s
    "concurrency": 4,  # POSTs in flight at once
    "batch_max": 100,  # records per POST at most ({"Records": [...]}, as S3's own format allows)
    "linger": 0.02,  # seconds to gather records before a POST that is not full
}
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_ARN = re.compile(r"^arn:(?:coffer|aws|minio):(sqs|sns):([^:]*):([^:]*):([A-Za-z0-9_.-]{1,64})$")


class TargetError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    url: str
    auth_header: str
    queue_limit: int
    max_attempts: int
    timeout: float
    retry_seconds: float
    concurrency: int
    batch_max: int
    linger: float

    def endpoint(self) -> Endpoint:
        return Endpoint.parse(self.url)


def parse_targets(raw: Any) -> dict[str, Target]:
    """The ``notification_targets`` setting: {name: {url, auth_header, queue_limit, ...}}."""
    if not isinstance(raw, dict):
        raise TargetError("notification_targets: expected a mapping of target name to {url: ...}")
    return {str(name): _parse_target(str(name), entry) for name, entry in raw.items()}


def _parse_target(name: str, entry: Any) -> Target:
    where = f"notification_targets.{name}"
    if not _NAME.match(name):
        raise TargetError(f"{where}: a target name is 1-64 letters, digits, '_', '.', '-'")
    if isinstance(entry, str):
        entry = {"url": entry}
    if not isinstance(entry, dict):
        raise TargetError(f"{where}: expected a mapping with url")
    unknown = set(entry) - set(DEFAULTS)
    if unknown:
        raise TargetError(f"{where}: unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    values = {**DEFAULTS, **{k: v for k, v in entry.items() if v is not None}}
    try:
        Endpoint.parse(str(values["url"]))
        target = Target(
            name,
            str(values["url"]),
            str(values["auth_header"]),
            int(values["queue_limit"]),
            int(values["max_attempts"]),
            float(values["timeout"]),
            float(values["retry_seconds"]),
            int(values["concurrency"]),
            int(values["batch_max"]),
            float(values["linger"]),
        )
    except (TypeError, ValueError) as exc:
        raise TargetError(f"{where}: {exc}") from None
    if min(target.queue_limit, target.max_attempts, target.concurrency, target.batch_max) < 1:
        raise TargetError(f"{where}: queue_limit, max_attempts, concurrency and batch_max must be >= 1")
    if target.timeout <= 0 or target.retry_seconds < 0 or not 0 <= target.linger <= 1:
        raise TargetError(f"{where}: timeout must be > 0, retry_seconds >= 0 and linger 0..1")
    return target


def target_of_arn(arn: str, kind: str) -> str | None:
    """The target name an ARN names (``arn:coffer:sqs:<region>::<name>`` for a QueueConfiguration,
    ``arn:coffer:sns:...`` for a TopicConfiguration), None when it is not such an ARN."""
    match = _ARN.match(arn.strip())
    if match is None or match.group(1) != {"Queue": "sqs", "Topic": "sns"}[kind]:
        return None
    return match.group(4)
