"""Optional OpenTelemetry tracing: a span per request and one per engine call.

Active only when the ``tracing`` extra is installed (``pip install 'coffer[tracing]'``)
and the standard variables ask for it: ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (OTLP over HTTP) or
``OTEL_TRACES_EXPORTER`` (``otlp``, ``console``; ``none`` turns tracing off).
``OTEL_SERVICE_NAME`` (default ``coffer``), ``OTEL_RESOURCE_ATTRIBUTES``,
``OTEL_TRACES_SAMPLER`` and ``OTEL_SDK_DISABLED`` behave as everywhere else.
Incoming W3C ``traceparent`` headers continue the caller's trace.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("coffer.tracing")


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters == "none":
        return False
    return bool(exporters or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


class Tracing:
    """The tracer plus helpers the app calls around each request."""

    def __init__(self) -> None:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        attributes = {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": "coffer"}
        self.provider = TracerProvider(resource=Resource.create(attributes))
        names = [n.strip() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").lower().split(",") if n.strip()]
        for name in names:
            self.provider.add_span_processor(BatchSpanProcessor(_exporter(name)))
        self.tracer = self.provider.get_tracer("coffer")
        self._trace = trace

    def start_request(self, method: str, path: str, headers: Mapping[str, str], client: str) -> RequestSpan:
        from opentelemetry import context, propagate

        parent = propagate.extract(headers)
        span = self.tracer.start_span(
            f"HTTP {method}",
            context=parent,
            kind=self._trace.SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": path, "client.address": client},
        )
        token = context.attach(self._trace.set_span_in_context(span, parent))
        return RequestSpan(span, token)

    def wrap_engine(self, engine: Any) -> Any:
        return TracedEngine(engine, self.tracer)

    def shutdown(self) -> None:
        self.provider.shutdown()  # flushes spans still queued


class RequestSpan:
    __slots__ = ("_span", "_token")

    def __init__(self, span: Any, token: object) -> None:
        self._span = span
        self._token = token

    def finish(self, operation: str | None, bucket: str | None, key: str | None, status: int) -> None:
        from opentelemetry import context
        from opentelemetry.trace import Status, StatusCode

        span = self._span
        if operation:
            span.update_name(operation)
            span.set_attribute("rpc.method", operation)
        if bucket is not None:
            span.set_attribute("aws.s3.bucket", bucket)
        if key is not None:
            span.set_attribute("aws.s3.key", key)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()
        try:
            context.detach(self._token)  # type: ignore[arg-type]
        except Exception:  # detaching in another context: nothing to restore
            pass


class TracedEngine:
    """Wraps an engine so each coroutine method call runs in a child span ``engine.<method>``."""

    def __init__(self, engine: Any, tracer: Any) -> None:
        self._engine = engine
        self._tracer = tracer

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._engine, name)
        if name.startswith("_") or not inspect.iscoroutinefunction(attr):
            return attr
        tracer = self._tracer

        @functools.wraps(attr)
        async def traced(*args: Any, **kwargs: Any) -> Any:
            with tracer.start_as_current_span(f"engine.{name}"):
                return await attr(*args, **kwargs)

        return traced

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("_engine", "_tracer"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._engine, name, value)


def _exporter(name: str) -> Any:
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()  # endpoint, headers, timeout from OTEL_EXPORTER_OTLP_*
    raise ValueError(f"unsupported OTEL_TRACES_EXPORTER {name!r} (use otlp or console)")


def setup_tracing() -> Tracing | None:
    """A Tracing when the environment asks for it and the extra is installed; else None."""
    if not wanted():
        return None
    try:
        return Tracing()
    except ImportError as exc:
        log.warning("OTEL_* variables are set but tracing is unavailable (%s): pip install 'coffer[tracing]'", exc)
    except ValueError as exc:
        log.warning("tracing disabled: %s", exc)
    return None
