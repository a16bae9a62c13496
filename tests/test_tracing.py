"""OpenTelemetry: off unless OTEL_* asks for it; then a span per request with child
spans per engine call, continuing an incoming W3C traceparent."""

from __future__ import annotations

import http.client
import json
from pathlib import Path

import pytest

from coffer.tracing import wanted
from tests.server_process import ServerProcess


def test_tracing_wanted_only_when_configured() -> None:
    assert not wanted({})
    assert wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"})
    assert wanted({"OTEL_TRACES_EXPORTER": "console"})
    assert not wanted({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert not wanted({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "console"})


def parse_spans(text: str) -> list[dict]:  # type: ignore[type-arg]
    """The console exporter prints one pretty JSON object per span."""
    decoder = json.JSONDecoder()
    spans = []
    at = 0
    while True:
        start = text.find('{\n    "name"', at)
        if start < 0:
            return spans
        doc, at = decoder.raw_decode(text, start)
        spans.append(doc)


@pytest.mark.server
def test_console_exporter_spans(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "data", env={"OTEL_TRACES_EXPORTER": "console", "OTEL_SERVICE_NAME": "coffer-test"}
    ).start()
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="traced")
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request(
            "PUT",
            "/traced/obj",
            body=b"hello",
            headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"},
        )
        assert conn.getresponse().status == 200
        conn.close()
    finally:
        server.stop()  # flushes the batch span processor
    spans = parse_spans(server.log_path.read_text())
    by_name: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for span in spans:
        by_name.setdefault(span["name"], []).append(span)
    put = by_name["PutObject"][0]
    assert put["kind"] == "SpanKind.SERVER"
    assert put["attributes"]["aws.s3.bucket"] == "traced"
    assert put["attributes"]["aws.s3.key"] == "obj"
    assert put["attributes"]["http.response.status_code"] == 200
    assert put["resource"]["attributes"]["service.name"] == "coffer-test"
    # The caller's trace continues, and the engine call is a child of the request span.
    assert put["context"]["trace_id"] == "0x" + trace_id
    engine_put = [s for s in by_name["engine.put_object"] if s["context"]["trace_id"] == "0x" + trace_id]
    assert engine_put and engine_put[0]["parent_id"] == put["context"]["span_id"]
    assert "CreateBucket" in by_name and "engine.create_bucket" in by_name
