"""Command-line and JavaScript clients against the real server: rclone, restic, s3cmd, and the AWS
SDK for JavaScript v3 and v2 and MinIO's JavaScript SDK under node.

Each runs the same check script as scripts/client_matrix.sh (scripts/clients/*), so a
failure here reproduces with ``scripts/clients/NAME.sh ENDPOINT WORKDIR``. A client that
is not installed skips (Debian packages rclone, restic, s3cmd; ``npm install`` in
scripts/clients/js for the JavaScript SDKs). s3fs-fuse mounts a filesystem, so it runs
in the matrix only. Steps that need an operation the server does not
implement yet are expected failures there, and count as failures once it exists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.server_process import ServerProcess

CLIENTS = Path(__file__).resolve().parent.parent / "scripts" / "clients"


def _run(command: list[str], server: ServerProcess, tmp_path: Path) -> str:
    env = dict(os.environ)
    env["NODE_NO_WARNINGS"] = "1"
    done = subprocess.run(
        [*command, server.endpoint, str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = done.stdout + done.stderr
    if done.returncode == 77:
        pytest.skip(f"{command[-1]}: client not installed")
    assert done.returncode == 0, output
    summary = [line for line in output.splitlines() if line.startswith("summary ")]
    assert summary and " failed=0 " in summary[-1] + " ", output
    assert "passed=0 " not in summary[-1], output
    return output


@pytest.mark.parametrize("tool", ["rclone", "restic", "s3cmd"])
def test_cli_client(tool: str, server: ServerProcess, tmp_path: Path) -> None:
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (apt-get install {tool})")
    output = _run([str(CLIENTS / f"{tool}.sh")], server, tmp_path)
    assert output.splitlines()[0].startswith("version ")


JS_CHECKS = {"aws-sdk-v3": "@aws-sdk/client-s3", "aws-sdk-v2": "aws-sdk", "minio-js": "minio"}


@pytest.mark.parametrize("check", sorted(JS_CHECKS))
def test_javascript_client(check: str, server: ServerProcess, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (CLIENTS / "js" / "node_modules" / JS_CHECKS[check]).is_dir():
        pytest.skip(f"{JS_CHECKS[check]} is not installed (npm install in scripts/clients/js)")
    output = _run([node, str(CLIENTS / "js" / f"{check}.mjs")], server, tmp_path)
    assert output.splitlines()[0].startswith("version ")
