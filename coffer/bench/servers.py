"""The servers a benchmark run starts, watches and stops (all on 127.0.0.1)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

from coffer.bench.client import Endpoint
from coffer.config import Settings

ASGI_SERVERS = ("uvicorn", "granian")
# moto answers anonymous GETs with AccessDenied but does not verify signatures.
MOTO_AUTH = (
    b"Authorization: AWS4-HMAC-SHA256 Credential=bench/20250101/us-east-1/s3/aws4_request, "
    b"SignedHeaders=host, Signature=" + b"0" * 64 + b"\r\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Spec:
    """What to run: ``coffer``, ``moto``, ``bare`` (the ceiling) or an already running ``endpoint``."""

    label: str
    kind: str
    asgi: str = "uvicorn"
    workers: int = 1
    fsync: str = "always"
    inline_threshold: int | None = None
    url: str | None = None  # for kind == "endpoint"

    def with_(self, **changes: object) -> Spec:
        return replace(self, **changes)  # type: ignore[arg-type]

    @property
    def s3(self) -> bool:
        """Does it store objects (everything but the bare app)?"""
        return self.kind != "bare"

    @property
    def restartable(self) -> bool:
        """Does its data survive a restart (moto keeps everything in memory)?"""
        return self.kind == "coffer"


def moto_command() -> list[str]:
    # Prefer the one installed by the `bench` extra next to this interpreter.
    local = Path(sys.executable).parent / "moto_server"
    found = str(local) if local.exists() else shutil.which("moto_server")
    if found is None:
        raise RuntimeError("moto_server not found: pip install -e '.[bench]'")
    return [found]


def _asgi_command(target: str, asgi: str, port: int, workers: int, factory: bool) -> list[str]:
    if asgi == "granian":
        cmd = [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port)]
        cmd += ["--workers", str(workers), "--loop", "uvloop", "--log-level", "warning", "--no-access-log"]
        cmd += ["--factory"] if factory else []
        return [*cmd, target]
    cmd = [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--workers", str(workers), "--loop", "uvloop", "--http", "httptools", "--lifespan", "on"]
    cmd += ["--log-level", "warning", "--no-access-log", "--no-server-header"]
    return [*cmd, "--factory"] if factory else cmd


class Server:
    """One server process with its own port and data directory."""

    def __init__(self, spec: Spec, workdir: Path) -> None:
        self.spec = spec
        self.data_dir = workdir / f"{spec.label.replace(' ', '_').replace('/', '_')}-data"
        self.log_path = workdir / f"{spec.label.replace(' ', '_').replace('/', '_')}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        if spec.kind == "endpoint":
            assert spec.url is not None
            self.endpoint = Endpoint.parse(spec.url)
        elif spec.kind == "moto":
            self.endpoint = Endpoint("127.0.0.1", free_port(), MOTO_AUTH)
        else:
            self.endpoint = Endpoint("127.0.0.1", free_port())

    # ------------------------------------------------------------------ process
    def _command(self) -> tuple[list[str], dict[str, str]]:
        spec, port = self.spec, self.endpoint.port
        env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
        env["PYTHONUNBUFFERED"] = "1"
        if spec.kind == "moto":
            return [*moto_command(), "-H", "127.0.0.1", "-p", str(port)], env
        if spec.kind == "bare":
            return _asgi_command("coffer.bench.bare:app", spec.asgi, port, spec.workers, False), env
        settings = Settings(
            port=port,
            data_dir=str(self.data_dir),
            workers=spec.workers,
            fsync=spec.fsync,
            log_level="warning",
        )
        if spec.inline_threshold is not None:
            settings.inline_threshold = spec.inline_threshold
        if spec.asgi == "uvicorn":
            cmd = [sys.executable, "-m", "coffer", "serve", "--port", str(port), "--data-dir", str(self.data_dir)]
            cmd += ["--workers", str(spec.workers), "--fsync", spec.fsync, "--log-level", "warning"]
            cmd += ["--inline-threshold", str(settings.inline_threshold)]
            return cmd, env
        env["COFFER_SETTINGS_JSON"] = settings.to_json()
        return _asgi_command("coffer.server.app:app_from_env", "granian", port, spec.workers, True), env

    def start(self, timeout: float = 60) -> float:
        """Start and wait for the first answered request; returns the seconds that took."""
        if self.spec.kind == "endpoint":
            self.wait_ready(timeout)
            return 0.0
        started = time.perf_counter()
        self.start_process()
        self.wait_ready(timeout)
        return time.perf_counter() - started

    def start_process(self) -> None:
        cmd, env = self._command()
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            # Own session: stop() signals the whole group (ASGI servers fork workers).
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_ready(self, timeout: float, path: str = "/") -> None:
        """Poll until ``GET path`` gets an answer: any for ``/``, a 2xx for anything else."""
        deadline = time.monotonic() + timeout
        request = f"GET {path} HTTP/1.1\r\n".encode() + self.endpoint.headers + b"\r\n"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.spec.label} exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection((self.endpoint.host, self.endpoint.port), timeout=5) as sock:
                    sock.sendall(request)
                    head = sock.recv(64)
                    if head.startswith(b"HTTP/1.") and (path == "/" or head[9:10] == b"2"):
                        return
            except OSError:
                pass
            time.sleep(0.002)
        raise RuntimeError(f"{self.spec.label} not ready after {timeout}s: {self.log_tail()}")

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    # ------------------------------------------------------------------ memory
    def pid(self) -> int | None:
        if self.proc is not None:
            return self.proc.pid
        # A running endpoint: whoever listens on its port.
        try:
            for conn in psutil.net_connections("tcp"):
                if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == self.endpoint.port:
                    return conn.pid
        except (psutil.AccessDenied, OSError):
            return None
        return None

    def rss(self) -> int | None:
        """Resident memory of the server and its worker processes, in bytes."""
        pid = self.pid()
        if pid is None:
            return None
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total


class RssSampler:
    """Samples a server's RSS on a thread every ``interval`` seconds; keeps the peak."""

    def __init__(self, server: Server, interval: float = 0.01) -> None:
        self.server = server
        self.interval = interval
        self.baseline = server.rss()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        if self.baseline is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.baseline is not None:
            self._stop.set()
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            value = self.server.rss()
            if value is not None and (self.peak is None or value > self.peak):
                self.peak = value
