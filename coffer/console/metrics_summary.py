"""The few totals the console's charts draw, read from the server's own Prometheus scrape.

Counters only (requests and bytes by operation, the latency histogram summed over operations, storage
gauges): the page polls this and turns differences between two polls into rates and percentiles,
so every worker's answer is equally good (in multiprocess mode the scrape adds all workers up).
"""

from __future__ import annotations

from typing import Any

from prometheus_client.parser import text_string_to_metric_families


def summarize(text: str, now: float) -> dict[str, Any]:
    requests: dict[str, float] = {}
    bytes_in = bytes_out = 0.0
    latency: dict[str, float] = {}
    storage: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            # The console's own polls and the probes would drown the S3 traffic in the charts.
            own = labels.get("operation", "").startswith("Coffer")
            if name == "coffer_http_requests_total":
                operation = labels.get("operation", "?")
                requests[operation] = requests.get(operation, 0.0) + value
            elif name == "coffer_http_received_bytes_total" and not own:
                bytes_in += value
            elif name == "coffer_http_sent_bytes_total" and not own:
                bytes_out += value
            elif name == "coffer_http_request_duration_seconds_bucket" and not own:
                le = labels.get("le", "+Inf")
                latency[le] = latency.get(le, 0.0) + value
            elif name.startswith("coffer_storage_"):
                storage[name[len("coffer_storage_") :]] = value
    return {
        "time": now,
        "requests": requests,
        "bytes_in": bytes_in,
        "bytes_out": bytes_out,
        # Cumulative histogram buckets [upper bound in seconds, count], ascending; the last (+Inf) bound is null.
        "latency": [
            [None if b == float("inf") else b, c] for b, c in sorted((_bound(le), c) for le, c in latency.items())
        ],
        "storage": storage,
    }


def _bound(le: str) -> float:
    return float("inf") if le == "+Inf" else float(le)
