"""Start a real `coffer serve` on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import boto3
from botocore.config import Config

# Under pytest: (node id, marked ``server``) of the running test (set by tests/conftest.py).
current_test: tuple[str, bool] | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    def __init__(
        self,
        data_dir: Path,
        *args: str,
        env: dict[str, str] | None = None,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.args = list(args)
        self.env = env or {}
        # Runs in the child before exec (e.g. resource limits); None on the next start() to drop it.
        self.preexec_fn = preexec_fn
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> ServerProcess:
        if current_test is not None and not current_test[1]:
            # Keeps `pytest -m "not server"` free of server processes.
            raise RuntimeError(f"{current_test[0]} starts a server: mark it @pytest.mark.server")
        env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
        env.update(self.env)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child process
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "coffer",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--log-level",
                "warning",
                *self.args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=self.preexec_fn,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"server did not start: {self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill9(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def aws(
        self,
        *args: str,
        access_key: str = "test",
        secret_key: str = "testsecret",
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        """Run the aws CLI (installed next to this Python) against this server; ``check``: fail on a non-zero exit."""
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "COFFER_"))}
        full_env.update(
            AWS_ACCESS_KEY_ID=access_key,
            AWS_SECRET_ACCESS_KEY=secret_key,
            AWS_DEFAULT_REGION="us-east-1",
            AWS_CONFIG_FILE=os.devnull,
            AWS_SHARED_CREDENTIALS_FILE=os.devnull,
            AWS_PAGER="",
            AWS_MAX_ATTEMPTS="1",  # a failure should show at once, not after retries
            **(env or {}),
        )
        done = subprocess.run(
            [str(Path(sys.executable).with_name("aws")), "--endpoint-url", self.endpoint, *args],
            env=full_env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if check:
            assert done.returncode == 0, f"aws {' '.join(args)}: {done.stdout}\n{done.stderr}"
        return done

    def client(self, access_key: str = "test", secret_key: str = "testsecret", **config: object):  # type: ignore[no-untyped-def]
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name="us-east-1",
            config=Config(**{"retries": {"max_attempts": 1}, **config}),  # type: ignore[arg-type]
        )
