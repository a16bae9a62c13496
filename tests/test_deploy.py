"""The deployment files (Dockerfile, deploy/compose.yaml, Prometheus and Grafana provisioning,
deploy/coffer.service), checked statically: no container engine runs here (docs/deploy.md).
The image's health check command is run for real against a server."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from coffer.config import Settings
from coffer.server.runner import _FD_RESERVE
from tests.server_process import ServerProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
# pip options and URLs that would name a package index: the runtime stage installs offline.
INDEX_OPTIONS = re.compile(r"://|--index-url|--extra-index-url|--trusted-host|\s-i\s")


def names_a_registry(image: str) -> bool:
    """Docker's rule: an image reference starts with a registry host when its first path
    component has a '.' or ':' or is localhost."""
    first = image.split("/")[0]
    return "/" in image and ("." in first or ":" in first or first == "localhost")


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    joined: list[str] = []
    pending = ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined]


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in dockerfile_instructions():
        if instruction[0] == "FROM":
            result.append([])
        assert result, "the Dockerfile must start with FROM"
        result[-1].append(instruction)
    return result


def args_of(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [args for instruction, args in stage if instruction == name]


def healthcheck_command() -> list[str]:
    (healthcheck,) = args_of(stages()[-1], "HEALTHCHECK")
    command = json.loads(healthcheck.split("CMD", 1)[1])
    assert isinstance(command, list)
    return [str(part) for part in command]


def test_dockerfile_builds_a_wheel_then_a_slim_non_root_runtime() -> None:
    build, runtime = stages()
    assert re.fullmatch(r"python:3\.1[1-9]-slim AS build", build[0][1], re.IGNORECASE)
    assert any("pip wheel" in args for args in args_of(build, "RUN"))
    assert re.fullmatch(r"python:3\.1[1-9]-slim", runtime[0][1])
    # The runtime installs only from the build stage's wheelhouse.
    assert any("--from=build" in args for args in args_of(runtime, "COPY"))
    installs = [args for args in args_of(runtime, "RUN") if "pip install" in args]
    assert installs and all("--no-index" in args for args in installs)
    (user,) = args_of(runtime, "USER")
    assert user.split(":")[0] not in ("root", "0")
    assert args_of(runtime, "VOLUME") == ['["/data"]']
    assert args_of(runtime, "EXPOSE") == ["9000"]
    assert args_of(runtime, "STOPSIGNAL") == ["SIGTERM"]
    env = " ".join(args_of(runtime, "ENV"))
    assert "COFFER_HOST=0.0.0.0" in env
    assert "COFFER_DATA_DIR=/data" in env
    assert args_of(runtime, "ENTRYPOINT") == ['["coffer"]']
    assert args_of(runtime, "CMD") == ['["serve"]']


def test_dockerfile_healthcheck_uses_python_not_curl() -> None:
    command = healthcheck_command()
    assert command[:2] == ["python", "-c"]
    assert "/_coffer/health" in command[2] and "urllib" in command[2]
    assert not any(tool in " ".join(command) for tool in ("curl", "wget"))


def test_dockerfile_and_dockerignore_name_no_registry_and_send_only_the_package() -> None:
    for stage in stages():
        image = stage[0][1].split()[0]
        assert not names_a_registry(image), image
        assert not any(INDEX_OPTIONS.search(args) for args in args_of(stage, "RUN"))
    ignore = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    assert ignore[0] == "*"  # nothing by default: no .venv, .git, data directories or tests
    kept = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    copied = {part.rstrip("/") for args in args_of(stages()[0], "COPY") for part in args.split()[:-1]}
    assert copied <= kept
    assert all((ROOT / name).exists() for name in kept)


@pytest.mark.server
def test_image_healthcheck_command_passes_on_a_live_server_and_fails_otherwise(tmp_path: Path) -> None:
    command = healthcheck_command()
    command[0] = sys.executable
    server = ServerProcess(tmp_path / "data", "--fsync", "never").start()
    try:
        up = subprocess.run(command, env={"COFFER_PORT": str(server.port)}, capture_output=True, timeout=30)
        assert up.returncode == 0, up.stderr
    finally:
        server.stop()
    down = subprocess.run(command, env={"COFFER_PORT": str(free_port())}, capture_output=True, timeout=30)
    assert down.returncode != 0


def compose() -> dict[str, Any]:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def host_path(volume: str) -> Path | None:
    """The host file or directory of a bind mount (None for a named volume)."""
    source = volume.split(":")[0]
    return (DEPLOY / source).resolve() if source.startswith(".") else None


def test_compose_services_and_mounts() -> None:
    doc = compose()
    services = doc["services"]
    assert {"coffer", "prometheus", "grafana"} <= set(services)
    coffer = services["coffer"]
    assert (DEPLOY / coffer["build"]["context"] / coffer["build"]["dockerfile"]).resolve() == ROOT / "Dockerfile"
    assert coffer["environment"]["COFFER_DATA_DIR"] == "/data"
    assert any(v.split(":")[1] == "/data" for v in coffer["volumes"])
    grace = coffer["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) > Settings().shutdown_timeout
    for name, service in services.items():
        for volume in service.get("volumes", []):
            path = host_path(volume)
            if path is None:
                assert volume.split(":")[0] in doc["volumes"], f"{name}: undeclared volume {volume}"
            else:
                assert path.exists(), f"{name}: {volume} mounts a missing path"
        assert not names_a_registry(service.get("image", "")), name
    # The dashboard is mounted from docs/, where the provider looks for it.
    mounts = {host_path(v): v.split(":")[1] for v in services["grafana"]["volumes"]}
    dashboard = mounts[ROOT / "docs" / "grafana" / "coffer.json"]
    providers = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/coffer.yaml").read_text())
    assert str(Path(dashboard).parent) in {p["options"]["path"] for p in providers["providers"]}
    assert mounts[DEPLOY / "grafana" / "provisioning"] == "/etc/grafana/provisioning"


def test_prometheus_scrapes_coffer_metrics_and_grafana_reads_prometheus() -> None:
    services = compose()["services"]
    mounts = {host_path(v): v.split(":")[1] for v in services["prometheus"]["volumes"]}
    config_path = next(path for path, target in mounts.items() if target == "/etc/prometheus/prometheus.yml")
    assert config_path is not None
    config = yaml.safe_load(config_path.read_text())
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "coffer"]
    assert job["metrics_path"] == "/_coffer/metrics"
    assert job["static_configs"][0]["targets"] == [f"coffer:{Settings().port}"]
    datasources = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yaml").read_text())
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"
    assert any(p.split(":")[-1] == "9090" for p in services["prometheus"]["ports"])
    # The dashboard picks its datasource through a variable of type prometheus.
    dashboard = json.loads((ROOT / "docs/grafana/coffer.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["query"] == "prometheus"


def test_compose_config_when_docker_compose_is_available() -> None:
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        pytest.skip("docker compose is not installed")
    done = subprocess.run(
        [docker, "compose", "-f", str(DEPLOY / "compose.yaml"), "config", "--quiet"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def unit_entries() -> dict[str, list[str]]:
    """KEY -> values of deploy/coffer.service (keys may repeat, so no configparser)."""
    entries: dict[str, list[str]] = {}
    for raw in (DEPLOY / "coffer.service").read_text().splitlines():
        line = raw.strip()
        if line and line[0] not in "#;[":
            key, _, value = line.partition("=")
            entries.setdefault(key, []).append(value)
    return entries


def test_systemd_unit_is_hardened() -> None:
    unit = unit_entries()
    expected = {
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter": "@system-service",
        "Restart": "on-failure",
        "StateDirectory": "coffer",
    }
    for key, value in expected.items():
        assert unit.get(key) == [value], key
    data_dir = unit["Environment"][unit["Environment"].index("COFFER_DATA_DIR=/var/lib/coffer")].split("=", 1)[1]
    assert unit["ReadWritePaths"] == [data_dir]
    assert unit["User"] != ["root"]
    assert unit["EnvironmentFile"][0].lstrip("-").startswith("/etc/")
    assert unit["ExecStart"][0].split()[1:] == ["serve"]


def test_systemd_unit_waits_for_the_drain_and_allows_the_connections() -> None:
    unit = unit_entries()
    defaults = Settings()
    (stop,) = unit["TimeoutStopSec"]
    assert int(stop) > defaults.shutdown_timeout
    (nofile,) = unit["LimitNOFILE"]
    assert int(nofile) >= 2 * defaults.max_connections + _FD_RESERVE


def test_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify requires ExecStart's program to exist: point it at this environment's coffer.
    coffer = Path(sys.executable).parent / "coffer"
    assert coffer.exists()
    unit = (DEPLOY / "coffer.service").read_text()
    assert "ExecStart=/opt/coffer/bin/coffer " in unit
    (tmp_path / "coffer.service").write_text(unit.replace("/opt/coffer/bin/coffer", str(coffer)))
    done = subprocess.run(
        [analyze, "verify", str(tmp_path / "coffer.service")], capture_output=True, text=True, timeout=60
    )
    # Unknown or misspelt keys are only warnings: any output fails the test.
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr
