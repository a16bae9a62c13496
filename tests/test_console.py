"""The web console's server side over raw HTTP: sign-in, cookies, CSRF, rate limit, logout,
S3 requests made with the session, share links, bucket totals, the root-only key and metrics API.
The page itself is driven in a real Chromium by tests/test_console_browser.py."""

from __future__ import annotations

import http.client
import json
import time
import tomllib
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coffer.console.routes import asset_bytes
from coffer.console.session import SessionSigner, cookie_value
from tests.server_process import ServerProcess, free_port

ROOT_KEY, ROOT_SECRET = "consoleroot", "consoleroot-secret"
_SIGNER = SessionSigner(None)
API = "/_coffer/console/api/"


class Client:
    """A browser stand-in: keeps the session cookie and the CSRF token it was given."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookie: str | None = None
        self.csrf: str | None = None
        self.client_ip_headers: dict[str, str] = {}

    def request(
        self, method: str, path: str, body: bytes | dict[str, Any] | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        all_headers = dict(headers or {})
        if self.cookie:
            all_headers.setdefault("Cookie", f"coffer_console={self.cookie}")
        if self.csrf:
            all_headers.setdefault("X-Coffer-CSRF", self.csrf)
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        if data is not None:
            all_headers.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=all_headers)
        resp = conn.getresponse()
        payload = resp.read()
        found = {k.lower(): v for k, v in resp.getheaders()}
        cookies = [v for k, v in resp.getheaders() if k.lower() == "set-cookie"]
        conn.close()
        for cookie in cookies:
            value = cookie.split(";", 1)[0].partition("=")[2]
            self.cookie = value or None
        if cookies:
            found["set-cookie"] = cookies[0]
        return resp.status, found, payload

    def login(self, access_key: str, secret: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        status, headers, body = self.request("POST", API + "login", {"access_key": access_key, "secret_key": secret})
        doc = json.loads(body)
        if status == 200:
            self.csrf = doc["csrf"]
        return status, doc, headers

    def api(self, method: str, name: str, body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        status, _, payload = self.request(method, API + name, body)
        return status, json.loads(payload)


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    admin = free_port()
    env = {"COFFER_ACCESS_KEY": ROOT_KEY, "COFFER_SECRET_KEY": ROOT_SECRET}
    proc = ServerProcess(
        tmp_path_factory.mktemp("console") / "data", "--fsync", "never", "--admin-port", str(admin), env=env
    )
    proc.admin = admin  # type: ignore[attr-defined]
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def root(console_server: ServerProcess) -> Client:
    client = Client(console_server.port)
    assert client.login(ROOT_KEY, ROOT_SECRET)[0] == 200
    return client


def test_assets_ship_as_package_data() -> None:
    for name in ("index.html", "console.js", "console.css", "favicon.svg"):
        assert asset_bytes(name)
    # Every file of the static directory is declared package data, so a built wheel carries it.
    root = Path(__file__).resolve().parent.parent
    patterns = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    package = root / "coffer" / "console"
    declared = {p for pattern in patterns["coffer.console"] for p in package.glob(pattern)}
    assert declared == set((package / "static").iterdir())


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_any_cookie_text_is_refused_quietly(text: str) -> None:
    assert _SIGNER.verify(text) is None
    found = cookie_value(f"a=b; coffer_console={text}")
    assert found is not None and _SIGNER.verify(found) is None


def test_page_and_assets_served(console_server: ServerProcess) -> None:
    client = Client(console_server.port)
    status, headers, _ = client.request("GET", "/_coffer/console")
    assert status == 308 and headers["location"] == "/_coffer/console/"
    status, headers, body = client.request("GET", "/_coffer/console/")
    assert status == 200 and b"Sign in to Coffer" in body
    assert "default-src 'self'" in headers["content-security-policy"]
    for asset, kind in (("console.js", "javascript"), ("console.css", "css")):
        status, headers, body = client.request("GET", f"/_coffer/console/static/{asset}")
        assert status == 200 and kind in headers["content-type"] and body
    assert client.request("GET", "/_coffer/console/static/nope.js")[0] == 404


def test_login_sets_hardened_cookie(console_server: ServerProcess) -> None:
    client = Client(console_server.port)
    status, doc, headers = client.login(ROOT_KEY, ROOT_SECRET)
    assert status == 200 and doc["root"] and doc["access_key"] == ROOT_KEY and doc["csrf"]
    cookie = headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert ROOT_SECRET not in cookie
    status, doc = client.api("GET", "session")
    assert status == 200 and doc["csrf"] == client.csrf


def test_wrong_password_and_unknown_key_refused(console_server: ServerProcess) -> None:
    client = Client(console_server.port)
    client.client_ip_headers = {}
    status, doc, headers = client.login(ROOT_KEY, "not-the-secret")
    assert status == 403 and doc["error"] == "InvalidCredentials" and "set-cookie" not in headers
    assert client.api("GET", "session")[0] == 401


def test_login_only_from_json(console_server: ServerProcess) -> None:
    """A cross-site form (text/plain or urlencoded) cannot sign a visitor in (login CSRF)."""
    client = Client(console_server.port)
    body = json.dumps({"access_key": ROOT_KEY, "secret_key": ROOT_SECRET}).encode()
    for kind in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        status, headers, _ = client.request("POST", API + "login", body, {"Content-Type": kind})
        assert status == 415 and "set-cookie" not in headers


def test_forged_or_tampered_cookie_refused(console_server: ServerProcess, root: Client) -> None:
    assert root.cookie is not None
    other = Client(console_server.port)
    other.cookie = root.cookie[:-1] + ("0" if root.cookie[-1] != "0" else "1")
    assert other.api("GET", "session")[0] == 401
    signer = SessionSigner(None)  # a different signing key: its cookies mean nothing to the server
    other.cookie = signer.issue(ROOT_KEY)[0]
    assert other.api("GET", "session")[0] == 401


def test_csrf_header_required(console_server: ServerProcess, root: Client) -> None:
    # The JSON API: mutating calls need the header.
    token = root.csrf
    root.csrf = None
    status, doc = root.api("POST", "presign", {"bucket": "b", "key": "k"})
    assert status == 403 and doc["error"] == "CsrfRefused"
    root.csrf = "0" * 64
    assert root.api("POST", "logout")[0] == 403
    # S3 requests: the cookie alone is not a signature (anonymous, refused).
    root.csrf = None
    status, _, body = root.request("PUT", "/csrf-bucket")
    assert status == 403 and b"AccessDenied" in body
    root.csrf = token
    status, _, _ = root.request("PUT", "/csrf-bucket")
    assert status == 200


def test_s3_through_session_and_share_link(console_server: ServerProcess, root: Client) -> None:
    assert root.request("PUT", "/share-bucket")[0] == 200
    assert root.request("PUT", "/share-bucket/dir/hello.txt", b"hello console")[0] == 200
    odd = "dir/a key with spaces, ü & +.txt"
    assert root.request("PUT", "/share-bucket/" + urllib.parse.quote(odd), b"odd")[0] == 200
    status, link = root.api("POST", "presign", {"bucket": "share-bucket", "key": odd, "expires": 60})
    with urllib.request.urlopen(link["url"]) as resp:
        assert resp.read() == b"odd"
    status, _, body = root.request("GET", "/share-bucket?list-type=2&delimiter=%2F")
    assert status == 200 and b"<Prefix>dir/</Prefix>" in body
    status, link = root.api("POST", "presign", {"bucket": "share-bucket", "key": "dir/hello.txt", "expires": 600})
    assert status == 200 and "X-Amz-Signature=" in link["url"] and "X-Amz-Expires=600" in link["url"]
    with urllib.request.urlopen(link["url"]) as resp:  # no cookie: the link alone grants the read
        assert resp.read() == b"hello console"
    status, link = root.api("POST", "presign", {"bucket": "share-bucket", "key": "dir/hello.txt", "download": True})
    with urllib.request.urlopen(link["url"]) as resp:
        assert "attachment" in resp.headers["content-disposition"]
    assert root.api("POST", "presign", {"bucket": "share-bucket", "key": "k", "expires": 8 * 86400})[0] == 400
    status, totals = root.api("GET", "bucket-stats?bucket=share-bucket")
    assert status == 200 and totals["objects"] == 2 and totals["bytes"] == len(b"hello console") + 3


def test_logout_revokes_the_session(console_server: ServerProcess, root: Client) -> None:
    cookie, csrf = root.cookie, root.csrf
    status, _, _ = root.request("POST", API + "logout")
    assert status == 200 and root.cookie is None
    replay = Client(console_server.port)
    replay.cookie, replay.csrf = cookie, csrf  # a copy of the cookie taken before logout
    assert replay.api("GET", "session")[0] == 401
    assert replay.request("GET", "/")[0] == 403


def test_sign_in_is_rate_limited(console_server: ServerProcess) -> None:
    client = Client(console_server.port)
    codes = [client.login("nobody", "wrong-secret")[0] for _ in range(12)]
    assert 429 in codes and codes[0] == 403
    # The limit holds for the right secret too, from the same address.
    assert client.login(ROOT_KEY, ROOT_SECRET)[0] == 429
    _wait_for_login_token()


def _wait_for_login_token() -> None:
    # Other tests in this module sign in from the same address: let the bucket refill a little
    # (a deterministic wait for state, not a timing assertion).
    time.sleep(5.5)


def test_keys_api_root_only_and_sessions_follow_the_key(console_server: ServerProcess, root: Client) -> None:
    status, made = root.api("POST", "keys", {"display_name": "alice"})
    assert status == 201 and made["secret_key"]
    status, listed = root.api("GET", "keys")
    assert made["access_key"] in {k["access_key"] for k in listed["keys"]}
    alice = Client(console_server.port)
    assert alice.login(made["access_key"], made["secret_key"])[0] == 200
    status, doc = alice.api("GET", "keys")
    assert status == 403 and doc["error"] == "AccessDenied"
    assert alice.api("GET", "metrics")[0] == 403
    # Alice's S3 requests are hers: her bucket, and root's bucket stays closed to her.
    assert alice.request("PUT", "/alice-bucket")[0] == 200
    assert root.request("PUT", "/root-only-bucket")[0] == 200
    assert alice.request("GET", "/root-only-bucket?list-type=2")[0] == 403
    assert alice.api("GET", "bucket-stats?bucket=root-only-bucket")[0] == 403
    # A key pair made with a preset policy is bounded by it.
    status, reader = root.api("POST", "keys", {"display_name": "reader", "policy": "readonly"})
    assert status == 201
    listed = {k["access_key"]: k for k in root.api("GET", "keys")[1]["keys"]}
    assert listed[reader["access_key"]]["policy"] is True
    assert root.api("POST", "keys", {"policy": "/etc/passwd"})[0] == 400
    # Root cannot delete the pair it is signed in with; deleting alice's ends her session.
    assert root.request("DELETE", API + f"keys?access_key={ROOT_KEY}")[0] == 400
    assert root.request("DELETE", API + "keys?access_key=" + made["access_key"])[0] == 200
    assert alice.api("GET", "session")[0] == 401


def test_metrics_summary(console_server: ServerProcess, root: Client) -> None:
    status, doc = root.api("GET", "metrics")
    assert status == 200 and doc["requests"] and "bytes" in doc["storage"]
    assert doc["latency"][-1][0] is None and doc["latency"][-1][1] >= doc["latency"][0][1]


def test_admin_port_serves_console_and_its_session(console_server: ServerProcess, root: Client) -> None:
    admin = Client(console_server.admin)  # type: ignore[attr-defined]
    assert admin.request("GET", "/_coffer/console/")[0] == 200
    # S3 requests reach the admin port only with a console session (otherwise: probes only).
    assert admin.request("GET", "/")[0] == 404
    admin.cookie, admin.csrf = root.cookie, root.csrf
    status, _, body = admin.request("GET", "/")
    assert status == 200 and b"ListAllMyBucketsResult" in body


def test_signer_key_shared_through_data_dir(tmp_path: Path) -> None:
    a, b = SessionSigner(str(tmp_path)), SessionSigner(str(tmp_path))
    cookie, session = a.issue("someone")
    assert b.verify(cookie) == session
    assert (tmp_path / "console.key").stat().st_mode & 0o777 == 0o600
    b.revoke(session)
    a._checked = -1.0  # re-read the revocation file now
    assert a.verify(cookie) is None
    assert a.verify(cookie.replace("v1.", "v2.", 1)) is None
    expired, _ = a.issue("someone", now=time.time() - 9 * 3600)
    assert a.verify(expired) is None


@pytest.mark.server
def test_sessions_work_across_workers(tmp_path: Path) -> None:
    """Every worker accepts a session another one issued, and a sign-out in one reaches them all."""
    env = {"COFFER_ACCESS_KEY": ROOT_KEY, "COFFER_SECRET_KEY": ROOT_SECRET}
    server = ServerProcess(tmp_path / "data", "--fsync", "never", "--workers", "2", env=env).start()
    try:
        client = Client(server.port)
        assert client.login(ROOT_KEY, ROOT_SECRET)[0] == 200
        pids = set()
        for _ in range(200):  # a new connection each time: the kernel spreads them over the workers
            if len(pids) == 2:
                break
            status, doc = client.api("GET", "session")
            assert status == 200 and doc["access_key"] == ROOT_KEY
            _, _, health = client.request("GET", "/_coffer/health")
            pids.add(json.loads(health)["pid"])
        cookie, csrf = client.cookie, client.csrf
        assert client.request("POST", API + "logout")[0] == 200
        replay = Client(server.port)
        replay.cookie, replay.csrf = cookie, csrf
        time.sleep(0.2)  # the other worker re-reads the revocation file at most every 0.1 s
        assert all(replay.api("GET", "session")[0] == 401 for _ in range(20))
        assert len(pids) == 2, "all requests reached one worker: nothing was shown"
    finally:
        server.stop()


def test_malformed_api_calls_get_clean_errors(console_server: ServerProcess, root: Client) -> None:
    cases: list[tuple[str, str, bytes | dict[str, Any] | None, int]] = [
        ("POST", "login", b"not json", 400),
        ("POST", "login", b"[1, 2]", 400),
        ("POST", "login", b"\xff\xfe", 400),
        ("POST", "login", {"secret_key": "x"}, 400),
        ("POST", "login", b"{" + b" " * (70 * 1024) + b"}", 400),
        ("POST", "presign", {"bucket": "b", "key": "k", "expires": True}, 400),
        ("POST", "presign", {"bucket": "b", "key": "k", "expires": "60"}, 400),
        ("POST", "presign", {"bucket": "", "key": "k"}, 400),
        ("GET", "bucket-stats?bucket=no-such-bucket", None, 404),
        ("DELETE", "keys", None, 404),
        ("POST", "keys", {"access_key": "a b"}, 400),
        ("GET", "nope", None, 404),
        ("PUT", "session", None, 404),
    ]
    for method, name, body, expected in cases:
        status, _, payload = root.request(method, API + name, body)
        assert status == expected, (method, name, status, payload)
        assert json.loads(payload)["error"], (method, name)
    # A cookie that is not one at all is no session.
    stranger = Client(console_server.port)
    stranger.cookie, stranger.csrf = "v1.%%%.9999999999.x.y", "z"
    assert stranger.api("GET", "session")[0] == 401


def test_unwritable_key_files_still_sign(tmp_path: Path) -> None:
    """A data directory where the key and revocation files cannot be made (directories stand in
    their way here, as read-only permissions would for a non-root server) does not stop the console."""
    (tmp_path / "console.key").mkdir()
    (tmp_path / "console-revoked").mkdir()
    signer = SessionSigner(str(tmp_path))  # a per-process key instead
    cookie, session = signer.issue("someone")
    assert signer.verify(cookie) == session
    signer.revoke(session)  # recorded in this process only
    assert signer.verify(cookie) is None
