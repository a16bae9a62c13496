"""The Grafana dashboard and docs/operations.md describe the metrics the server really exposes."""

from __future__ import annotations

import http.client
import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.server_process import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def exposed_families(server: ServerProcess) -> set[str]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.request("GET", "/_coffer/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    return {family.name for family in text_string_to_metric_families(text)}


def base_name(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def test_dashboard_and_docs_match_the_metrics(server: ServerProcess, s3) -> None:  # type: ignore[no-untyped-def]
    s3.list_buckets()  # at least one request counted
    families = exposed_families(server)
    coffer = {f for f in families if f.startswith("coffer_")}
    assert len(coffer) >= 14
    dashboard = json.loads((ROOT / "docs" / "grafana" / "coffer.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs
    used = {base_name(m) for e in exprs for m in re.findall(r"\b((?:coffer|process)_[a-z_]+)\b", e)}
    assert used - families == set(), "dashboard queries metrics the server does not expose"
    assert coffer - used == set(), "metrics missing from the dashboard"
    docs = (ROOT / "docs" / "operations.md").read_text()
    documented = {base_name(m) for m in re.findall(r"`((?:coffer)_[a-z_]+)`", docs)}
    assert coffer - documented == set(), "metrics missing from docs/operations.md"
    assert documented - coffer == set(), "docs/operations.md names metrics that do not exist"
