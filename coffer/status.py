"""`coffer status`: a running server's version, uptime, storage totals and request rate.

Everything comes from the unauthenticated probe endpoints (coffer/server/probes.py):
/_coffer/health for version, start time and storage totals, /_coffer/metrics for the
request rate, which is the growth of ``coffer_http_requests_total`` (all workers, probes
and scrapes left out) between two scrapes ``interval`` seconds apart.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

# Operations of the probe endpoints (coffer.server.probes.OPERATIONS) and of unknown /_coffer/ paths:
# status's own scrapes must not count as traffic.
_PROBE_PREFIX = "Coffer"
TIMEOUT = 10.0


class StatusError(Exception):
    """The endpoint could not be asked: one line for the operator."""


@dataclass
class Status:
    endpoint: str
    version: str
    started: float
    uptime_seconds: float
    storage: dict[str, int] | None
    requests_per_second: float | None  # None: the server's metrics are off


def _get(url: str) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": "text/plain"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            raise
        raise StatusError(f"{url} answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise StatusError(f"cannot reach {url}: {reason}") from None


def _requests_total(endpoint: str) -> float | None:
    """S3 requests answered so far by every worker; None when metrics are off."""
    try:
        text = _get(f"{endpoint}/_coffer/metrics").decode()
    except urllib.error.HTTPError:
        return None
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "coffer_http_requests_total" and not sample.labels.get("operation", "").startswith(
                _PROBE_PREFIX
            ):
                total += sample.value
    return total


def fetch_status(endpoint: str, interval: float = 1.0) -> Status:
    endpoint = endpoint.rstrip("/")
    first = _requests_total(endpoint)
    began = time.monotonic()
    try:
        health: dict[str, Any] = json.loads(_get(f"{endpoint}/_coffer/health"))
    except urllib.error.HTTPError as exc:
        raise StatusError(f"{endpoint} has no /_coffer/health (HTTP {exc.code}): is it a Coffer server?") from None
    except ValueError:
        raise StatusError(f"{endpoint}/_coffer/health did not answer JSON: is it a Coffer server?") from None
    rate = None
    if first is not None:
        time.sleep(max(0.0, interval - (time.monotonic() - began)))
        second = _requests_total(endpoint)
        elapsed = time.monotonic() - began
        if second is not None:
            rate = max(0.0, second - first) / elapsed
    return Status(
        endpoint=endpoint,
        version=str(health.get("version", "unknown")),
        started=float(health["started"]),
        uptime_seconds=float(health["uptime_seconds"]),
        storage=health.get("storage"),
        requests_per_second=rate,
    )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h {minutes}m {secs}s" if days else f"{hours}h {minutes}m {secs}s"


def render(status: Status) -> str:
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(status.started))
    lines = [
        f"endpoint:     {status.endpoint}",
        f"version:      {status.version}",
        f"uptime:       {_duration(status.uptime_seconds)} (since {started})",
    ]
    if status.storage is None:
        lines.append("storage:      unavailable (the storage did not answer in time)")
    else:
        lines.append(f"buckets:      {status.storage['buckets']}")
        lines.append(f"objects:      {status.storage['objects']}")
        lines.append(f"bytes:        {status.storage['bytes']}")
    if status.requests_per_second is None:
        lines.append("requests/s:   unavailable (metrics are off on this server)")
    else:
        lines.append(f"requests/s:   {status.requests_per_second:.1f}")
    return "\n".join(lines)
