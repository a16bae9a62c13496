"""/_coffer/health, /_coffer/ready and /_coffer/metrics.

They are answered before S3 routing. Bucket names cannot contain ``_``, so the
path ``/_coffer/...`` never shadows a bucket; under virtual-hosted addressing
(``bucket.example.com/_coffer/health``) the path is an object key and is routed
to S3 as usual.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import TYPE_CHECKING, Any

from coffer import __version__
from coffer.server.http import Response

if TYPE_CHECKING:
    from coffer.config import Settings
    from coffer.logs import Traffic
    from coffer.server.metrics import Metrics
    from coffer.storage.api import Engine

PREFIX = "_coffer"
# Operation names for metrics and logs (not S3 operations).
OPERATIONS = {"health": "CofferHealth", "ready": "CofferReady", "metrics": "CofferMetrics"}
# A probe must answer even when storage hangs: give each check this long.
CHECK_TIMEOUT = 2.0


class Probes:
    def __init__(self, settings: Settings, engine: Engine, traffic: Traffic, metrics: Metrics | None) -> None:
        self.settings = settings
        self.engine = engine
        self.traffic = traffic
        self.metrics = metrics
        self.started = time.time()

    @staticmethod
    def operation(name: str | None) -> str | None:
        return OPERATIONS.get(name or "")

    async def handle(self, name: str | None, method: str, accept: str | None) -> Response:
        if method not in ("GET", "HEAD"):
            return _json({"error": "method not allowed"}, 405)
        if name == "health":
            return await self.health()
        if name == "ready":
            return await self.ready()
        if name == "metrics" and self.metrics is not None:
            body, content_type = await self.metrics.render(accept)
            response = Response(200, body=body)
            response.header("content-type", content_type)
            response.header("cache-control", "no-store")
            return response
        return _json({"error": "not found", "endpoints": [f"/{PREFIX}/{n}" for n in self._endpoints()]}, 404)

    def _endpoints(self) -> list[str]:
        return ["health", "ready"] + (["metrics"] if self.metrics is not None else [])

    async def health(self) -> Response:
        """Liveness: the process answers. Storage totals are included when quickly available."""
        doc: dict[str, Any] = {
            "status": "ok",
            "version": __version__,
            "pid": os.getpid(),
            "workers": self.settings.workers,
            "started": self.started,
            "uptime_seconds": round(time.time() - self.started, 3),
            "requests": self.traffic.requests,
            "bytes_in": self.traffic.bytes_in,
            "bytes_out": self.traffic.bytes_out,
        }
        try:
            stats = await asyncio.wait_for(self.engine.storage_stats(), CHECK_TIMEOUT)
        except Exception:
            doc["storage"] = None
        else:
            doc["storage"] = {
                "buckets": stats.buckets,
                "objects": stats.objects,
                "bytes": stats.bytes,
                "multipart_uploads": stats.multipart_uploads,
            }
        return _json(doc, 200)

    async def ready(self) -> Response:
        """Readiness: the store can be read and written and has disk space left."""
        threshold = self.settings.ready_min_free_bytes
        try:
            probe = await asyncio.wait_for(self.engine.probe(), CHECK_TIMEOUT)
        except Exception as exc:
            reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else str(exc)
            return _json({"ready": False, "checks": {}, "detail": f"storage probe failed: {reason}"}, 503)
        space_ok = probe.free_bytes is None or probe.free_bytes >= threshold
        checks = {
            "readable": probe.readable,
            "writable": probe.writable,
            "disk_space": space_ok,
        }
        ready = all(checks.values())
        detail = probe.detail
        if not space_ok:
            detail = "; ".join(filter(None, [detail, f"free space {probe.free_bytes} below {threshold} bytes"]))
        doc = {
            "ready": ready,
            "checks": checks,
            "free_bytes": probe.free_bytes,
            "total_bytes": probe.total_bytes,
            "min_free_bytes": threshold,
            "detail": detail,
        }
        return _json(doc, 200 if ready else 503)


def _json(doc: dict[str, Any], status: int) -> Response:
    response = Response(status, body=json.dumps(doc).encode() + b"\n")
    response.header("content-type", "application/json")
    response.header("cache-control", "no-store")
    return response


# The console's JSON API answers the same way.
json_response = _json
