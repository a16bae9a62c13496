"""``serve()``: a real Coffer server on a free loopback port for tests and scripts.

Two ways to run it:

- ``mode="thread"`` (default): the ASGI app under uvicorn in a background thread with its own
  event loop, in this process. Starts in a fraction of a second. The connection-level limits
  (``max_connections``, ``max_header_size``, ``request_head_timeout``) keep their defaults here:
  the HTTP protocol reads them once per process.
- ``mode="process"``: ``python -m coffer serve`` in a child process, exactly as in production
  (every setting applies, a crash of the server cannot take the tests down).

Either way the server requires SigV4 signatures from a key pair generated for it, stores its
data in a temporary directory, and is fully started when the ``with`` block is entered and fully
stopped (port closed, temporary directory removed) when it is left.
"""

from __future__ import annotations

import http.client
import importlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported when a server starts: pytest loads this module in every session
    from coffer.config import Settings

STORAGES = ("memory", "disk")
MODES = ("thread", "process")
START_TIMEOUT = 30.0


@dataclass(frozen=True)
class CofferServer:
    """A running server: where it listens and the key pair it accepts."""

    host: str
    port: int
    access_key: str
    secret_key: str
    region: str
    storage: str
    data_dir: Path

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def client(self, service: str = "s3", **kwargs: Any) -> Any:
        """A boto3 client signed with this server's keys (path-style addressing, this server's region).

        ``kwargs`` go to ``boto3.client`` and win over these defaults; a ``config`` is merged
        into the default one. boto3 is not a dependency of Coffer: install it to use this.
        """
        try:
            boto3 = importlib.import_module("boto3")
            botocore_config = importlib.import_module("botocore.config")
        except ImportError:
            raise ImportError(
                "CofferServer.client() needs boto3, which Coffer does not install: pip install boto3 "
                "(or point any S3 client at .endpoint with .access_key / .secret_key)"
            ) from None
        config = botocore_config.Config(s3={"addressing_style": "path"})
        if kwargs.get("config") is not None:
            config = config.merge(kwargs["config"])
        options: dict[str, Any] = {
            "endpoint_url": self.endpoint,
            "aws_access_key_id": self.access_key,
            "aws_secret_access_key": self.secret_key,
            "region_name": self.region,
            **kwargs,
            "config": config,
        }
        return boto3.client(service, **options)

    def env(self) -> dict[str, str]:
        """``AWS_*`` variables that point the AWS CLI and SDKs (in a child process) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
        }


@contextmanager
def serve(
    storage: str = "memory",
    *,
    mode: str = "thread",
    region: str = "us-east-1",
    access_key: str | None = None,
    secret_key: str | None = None,
    port: int = 0,
    **settings: Any,
) -> Iterator[CofferServer]:
    """Run a Coffer server for the ``with`` block and yield a :class:`CofferServer`.

    ``storage``: ``"memory"`` or ``"disk"`` (SQLite + files in the temporary directory).
    ``access_key`` / ``secret_key``: the key pair to require (generated when not given).
    ``port``: the loopback port to listen on (0: a free one).
    ``settings``: any other setting of ``coffer serve`` by name (``max_object_size=1024``).
    """
    if storage not in STORAGES:
        raise ValueError(f"storage must be one of {', '.join(STORAGES)}, not {storage!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    access_key = access_key or "CF" + secrets.token_hex(9).upper()
    secret_key = secret_key or secrets.token_urlsafe(30)
    from coffer.config import Settings

    workdir = Path(tempfile.mkdtemp(prefix="coffer-test-"))
    try:
        config = Settings(
            **{
                "host": "127.0.0.1",
                "storage": storage,
                "data_dir": str(workdir / "data"),
                "region": region,
                "auth": "on",
                "access_key": access_key,
                "secret_key": secret_key,
                "fsync": "never",  # test data is throwaway
                "log_level": "warning",
                **settings,
            }
        ).validate()
        if mode == "thread":
            with _in_thread(config, port) as bound:
                yield _server(config, bound)
        else:
            port = port or _free_port(config.host)  # a small race with other processes, as for any child server
            with _in_process(config, port, workdir):
                yield _server(config, port)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _server(config: Settings, port: int) -> CofferServer:
    return CofferServer(
        host=config.host,
        port=port,
        access_key=config.access_key,
        secret_key=config.secret_key,
        region=config.region,
        storage=config.storage,
        data_dir=Path(config.data_dir),
    )


@contextmanager
def _in_thread(config: Settings, port: int) -> Iterator[int]:
    import uvicorn
    import uvloop

    from coffer.server.app import CofferApp
    from coffer.server.protocol import CofferHttpToolsProtocol

    os.makedirs(config.data_dir, mode=0o700, exist_ok=True)
    # Bound here, on the port asked for (0: any free one), so no other process can take it before uvicorn listens.
    sock = socket.socket(socket.AF_INET6 if ":" in config.host else socket.AF_INET)
    try:
        sock.bind((config.host, port))
        port = int(sock.getsockname()[1])
        server = uvicorn.Server(
            uvicorn.Config(
                CofferApp(config),
                loop="none",
                http=CofferHttpToolsProtocol,
                lifespan="on",
                log_config=None,
                log_level=config.log_level,
                access_log=False,
                server_header=False,
                timeout_keep_alive=config.keep_alive_timeout,
                timeout_graceful_shutdown=config.shutdown_timeout,
            )
        )
        failure: list[BaseException] = []

        def run() -> None:
            # Its own loop, not asyncio.run(): no event loop policy of this process is touched.
            loop = uvloop.new_event_loop()
            try:
                loop.run_until_complete(server.serve(sockets=[sock]))
            except BaseException as exc:  # SystemExit when the app fails to start
                failure.append(exc)
            finally:
                loop.close()

        thread = threading.Thread(target=run, name=f"coffer-{port}", daemon=True)
        thread.start()
        try:
            deadline = time.monotonic() + START_TIMEOUT
            while not server.started:
                if not thread.is_alive():
                    raise RuntimeError(f"coffer server failed to start: {failure[0] if failure else 'no reason'}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"coffer server did not start within {START_TIMEOUT:.0f} s")
                time.sleep(0.01)
            yield port
        finally:
            server.should_exit = True
            thread.join(config.shutdown_timeout + START_TIMEOUT)
    finally:
        sock.close()


@contextmanager
def _in_process(config: Settings, port: int, workdir: Path) -> Iterator[None]:
    import yaml

    settings_file = workdir / "config.yaml"  # not in argv: the secret key stays out of `ps`
    settings_file.write_text(yaml.safe_dump({**json.loads(config.to_json()), "port": port}))
    settings_file.chmod(0o600)
    log_path = workdir / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "coffer", "serve", "--config", str(settings_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _ready(config.host, port):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"coffer server failed to start (exit {proc.poll()}): {tail}")
            time.sleep(0.05)
        yield
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(config.shutdown_timeout + START_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _ready(host: str, port: int) -> bool:
    """The server answers its readiness probe (the engine has started)."""
    conn = http.client.HTTPConnection(host, port, timeout=1)
    try:
        conn.request("GET", "/_coffer/ready")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()
