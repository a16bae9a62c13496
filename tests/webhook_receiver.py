"""A tiny HTTP receiver for event notification tests: records every POSTed record; can answer 500 or hang."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """``mode``: "ok" (204), "fail" (500) or "hang" (never answers); change it any time."""

    def __init__(self, mode: str = "ok", port: int = 0) -> None:
        self.mode = mode
        self.records: list[dict[str, Any]] = []
        self.posts = 0
        self.auth: list[str | None] = []
        self.peers: set[int] = set()  # the client ports POSTs came from
        self._lock = threading.Lock()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    receiver.posts += 1
                    receiver.auth.append(self.headers.get("authorization"))
                    receiver.peers.add(self.client_address[1])
                mode = receiver.mode
                if mode == "hang":
                    receiver._release.wait(30)
                    return
                if mode == "ok":
                    with receiver._lock:
                        receiver.records.extend(json.loads(body)["Records"])
                self.send_response(204 if mode == "ok" else 500)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, count: int, timeout: float = 20) -> list[dict[str, Any]]:
        """The records once at least ``count`` arrived (fails the test after ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.records) >= count:
                    return list(self.records)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} records, got {len(self.records)}: {self.records}")

    def names(self) -> list[tuple[str, str]]:
        with self._lock:
            return [(r["eventName"], r["s3"]["object"]["key"]) for r in self.records]

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
