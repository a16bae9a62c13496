"""Send thousands of malformed requests to a real Coffer server and count the answers.

Every request is an S3 operation with one to three things broken: integer query
parameters out of range, XML bodies with odd encodings or structure, garbage
conditional / range / checksum / copy-source / encryption / aws-chunked headers,
hostile key and bucket names. A correct server answers each with a 4xx S3 error
(or serves it, where the input is merely unusual); the only 5xx allowed is 501
NotImplemented for operations Coffer does not build yet. The server must still
serve afterwards and nothing may appear outside its data directory.

    .venv/bin/python scripts/hostile_run.py                    # 10,000 requests, disk engine
    .venv/bin/python scripts/hostile_run.py --count 20000 --storage memory --seed 7

Exit status 1 when a forbidden answer (5xx other than 501, a non-XML error, a
dropped connection) or a stray file was seen; the offending requests are printed.
"""

from __future__ import annotations

import argparse
import base64
import collections
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HUGE_INTS = [
    "18446744073709551616",
    "9223372036854775808",
    "-1",
    "-9223372036854775809",
    "1e309",
    "abc",
    "",
    "0x10",
    "١٢",
    "2147483648",
    "99999999999999999999999999999999",
    "+5",
    " 5",
    "5.0",
    "nan",
]
ENCODINGS = [
    "EBCDIC-US",
    "utf-8",
    "UTF-16",
    "utf-32",
    "latin-1",
    "ascii",
    "x-unknown",
    "",
    "utf-7",
    "cp500",
    "shift_jis",
    "\u00e9",
    "utf-8\x00",
    "idna",
    "rot13",
    "base64",
    "hex",
    "zlib",
]
INT_PARAMS = [
    "max-keys",
    "max-parts",
    "max-uploads",
    "part-number-marker",
    "partNumber",
    "uploadId",
    "key-marker",
    "upload-id-marker",
    "versionId",
    "list-type",
    "max-buckets",
    "fetch-owner",
]
XML_OPS = [
    ("PUT", "?cors"),
    ("POST", "?delete"),
    ("PUT", "?tagging"),
    ("PUT", "?versioning"),
    ("PUT", "?lifecycle"),
    ("PUT", "?acl"),
    ("PUT", "?encryption"),
    ("PUT", "?object-lock"),
    ("PUT", "?notification"),
    ("PUT", "?policy"),
    ("PUT", "?ownershipControls"),
    ("PUT", "?publicAccessBlock"),
    ("PUT", ""),
]
OBJECT_XML_OPS = [
    ("POST", "?uploadId={upload}"),
    ("PUT", "?tagging"),
    ("POST", "?select&select-type=2"),
    ("PUT", "?retention"),
    ("PUT", "?legal-hold"),
    ("POST", "?restore"),
    ("PUT", "?acl"),
]
HEADERS = {
    "Range": [
        "bytes=",
        "bytes=-",
        "bytes=5-1",
        "bytes=18446744073709551616-",
        "bytes=0-0,5-6",
        "items=0-1",
        "bytes=--1",
        "bytes=1e3-",
    ],
    "If-Match": ["", "*", '"zz"', 'W/"x"', "\x01"],
    "If-None-Match": ["", "*", '"zz"', "**"],
    "If-Modified-Since": ["yesterday", "Mon, 99 Foo 9999 99:99:99 GMT", "0", "\u00e9"],
    "If-Unmodified-Since": ["never", "Tue, 32 Jan 2024 00:00:00 GMT"],
    "x-amz-copy-source": [
        "",
        "/",
        "nobucket",
        "/hhh/../../etc/passwd",
        "/hhh/k?versionId=",
        "%ZZ",
        "/hhh/k%00",
        "/hhh/" + "k" * 2000,
    ],
    "x-amz-copy-source-range": ["bytes=9-1", "bytes=0-18446744073709551616", "bytes", "bytes=a-b"],
    "x-amz-checksum-crc32": ["", "!!!", "AAAAAA==", "A" * 100],
    "x-amz-checksum-sha256": ["x", "AAAA"],
    "x-amz-sdk-checksum-algorithm": ["MD5", "", "crc32", "CRC128"],
    "x-amz-checksum-algorithm": ["MD5", "SHA512"],
    "x-amz-checksum-type": ["PARTIAL", ""],
    "Content-MD5": ["", "zz", "AAAA", base64.b64encode(b"x" * 16).decode()],
    "x-amz-content-sha256": ["", "zz", "STREAMING-NOPE", "UNSIGNED-PAYLOAD", "0" * 64],
    "x-amz-decoded-content-length": HUGE_INTS,
    "x-amz-mp-object-size": HUGE_INTS,
    "x-amz-max-parts": HUGE_INTS,
    "x-amz-part-number-marker": HUGE_INTS,
    "x-amz-object-attributes": ["", "Nope", "ETag,,", "ObjectParts"],
    "x-amz-tagging": ["a", "=b", "a=b&a=c", "%ZZ", "k" * 200 + "=v", "&&&"],
    "x-amz-meta-ttl-seconds": HUGE_INTS,
    "x-amz-metadata-directive": ["MOVE", ""],
    "x-amz-tagging-directive": ["KEEP"],
    "x-amz-storage-class": ["DIAMOND", ""],
    "x-amz-acl": ["sort-of-private", ""],
    "x-amz-object-ownership": ["", "Nobody", "bucketownerenforced"],
    "x-amz-grant-read": ["", "id=", 'uri="nowhere"'],
    "x-amz-server-side-encryption": ["AES256", "aws:kms", "rot13"],
    "x-amz-server-side-encryption-customer-algorithm": ["AES256"],
    "x-amz-object-lock-mode": ["FOREVER"],
    "x-amz-object-lock-retain-until-date": ["tomorrow"],
    "x-amz-date": ["", "20991301T000000Z", "yesterday"],
    "Authorization": ["AWS4-HMAC-SHA256", "AWS4-HMAC-SHA256 Credential=", "AWS x:y", "Bearer", "\x7f"],
    "Content-Type": ["multipart/form-data", "multipart/form-data; boundary=", "text/\u00e9"],
    "Expect": ["100-continue", "200-ok"],
    "Content-Encoding": ["aws-chunked", "gzip, aws-chunked", "br"],
}
KEYS = [
    "k",
    "a/b/c",
    "%00",
    "%FF%FE",
    "k" * 1100,
    "..",
    "a/../../b",
    "%2e%2e/x",
    "\u00e9t\u00e9",
    "%C0%AE",
    "a//b",
    "%20",
    "~",
    "k?x",
    "k%3Fx",
]
BUCKETS = ["hhh", "H", "h-", "-h", "xn--h", "a" * 70, "h..h", "192.168.0.1", "%00", "h_h", ".."]


def xml_body(rng: random.Random) -> bytes:
    enc = rng.choice(ENCODINGS)
    decl = f'<?xml version="1.0" encoding="{enc}"?>' if rng.random() < 0.6 else ""
    inner = rng.choice(
        [
            "<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod><AllowedOrigin>*</AllowedOrigin>"
            "<MaxAgeSeconds>18446744073709551616</MaxAgeSeconds></CORSRule></CORSConfiguration>",
            "<CompleteMultipartUpload><Part><PartNumber>18446744073709551616</PartNumber><ETag>x</ETag></Part>"
            "</CompleteMultipartUpload>",
            "<CompleteMultipartUpload><Part><PartNumber>-1</PartNumber></Part></CompleteMultipartUpload>",
            "<Delete><Object><Key></Key></Object><Quiet>maybe</Quiet></Delete>",
            "<Delete>" + "<Object><Key>k</Key></Object>" * 1001 + "</Delete>",
            "<Tagging><TagSet><Tag><Key></Key><Value>" + "v" * 300 + "</Value></Tag></TagSet></Tagging>",
            "<VersioningConfiguration><Status>Sometimes</Status></VersioningConfiguration>",
            "<a>" * 500 + "</a>" * 500,
            "<unclosed>",
            "<?xml-stylesheet href='x'?><Tagging/>",
            "<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><Tagging>&e;</Tagging>",
            "\u00e9\u00e8" * 10,
            "",
        ]
    )
    data = (decl + inner).encode("utf-8", "surrogatepass")
    if rng.random() < 0.1:
        data = rng.randbytes(rng.randint(1, 200))
    return data


def chunked_body(rng: random.Random) -> bytes:
    return rng.choice(
        [
            b"5\r\nhello\r\n0\r\n\r\n",
            b"zz\r\nhello\r\n0\r\n\r\n",
            b"ffffffffffffffffff\r\nx\r\n",
            b"5;chunk-signature=nope\r\nhello\r\n0\r\nx-amz-checksum-crc32:!!\r\n\r\n",
            b"3\r\nhello\r\n0\r\n\r\n",
            b"",
        ]
    )


def build(rng: random.Random, upload: str) -> bytes:
    """One hostile request: an operation with one to three things broken."""
    method, target, body = "GET", "/hhh/k", b""
    kind = rng.random()
    bucket = "hhh" if rng.random() < 0.8 else rng.choice(BUCKETS)
    key = "k" if rng.random() < 0.6 else rng.choice(KEYS)
    if kind < 0.3:
        method, sub = rng.choice(XML_OPS)
        target, body = f"/{bucket}{sub}", xml_body(rng)
    elif kind < 0.45:
        method, sub = rng.choice(OBJECT_XML_OPS)
        target, body = f"/{bucket}/{key}{sub.format(upload=upload)}", xml_body(rng)
    else:
        method = rng.choice(["GET", "HEAD", "PUT", "POST", "DELETE", "GET", "PUT", "PATCH"])
        params = [f"{rng.choice(INT_PARAMS)}={rng.choice(HUGE_INTS)}" for _ in range(rng.randint(0, 3))]
        if rng.random() < 0.3:
            params.append(f"uploadId={upload}")
        if rng.random() < 0.2:
            params.append(rng.choice(["uploads", "versions", "list-type=2", "delete", "attributes", "acl", "tagging"]))
        path = f"/{bucket}/{key}" if rng.random() < 0.7 else f"/{bucket}"
        target = path + ("?" + "&".join(params) if params else "")
        if method in ("PUT", "POST"):
            body = rng.randbytes(rng.randint(0, 64))
    headers = {"Host": "127.0.0.1", "Connection": "close"}
    for name in rng.sample(sorted(HEADERS), rng.randint(0, 3)):
        headers[name] = rng.choice(HEADERS[name])
    if headers.get("Content-Encoding", "").endswith("aws-chunked") or rng.random() < 0.05:
        body = chunked_body(rng)
        headers.setdefault("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
    headers["Content-Length"] = str(len(body))
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    return head.encode("utf-8", "surrogateescape") + body


def exchange(port: int, request: bytes, timeout: float = 15) -> tuple[int, bytes]:
    """Send one request; (status, whole response) or (-1, reason) when no answer came."""
    chunks: list[bytes] = []
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(request)
            while data := sock.recv(65536):
                chunks.append(data)
    except OSError as exc:
        if not chunks:  # a reset after a complete answer (early error, unread body) is fine
            return -1, repr(exc).encode()
    raw = b"".join(chunks)
    while raw.startswith(b"HTTP/1.1 1") and b"\r\n\r\n" in raw:  # an interim 100 Continue: the final answer follows
        raw = raw.split(b"\r\n\r\n", 1)[1]
    try:
        return int(raw.split(b" ", 2)[1]), raw
    except (IndexError, ValueError):
        return -1, b"unparseable: " + raw[:200]


def start_server(data_dir: Path, storage: str) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
    cmd = [
        sys.executable,
        "-m",
        "coffer",
        "serve",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
        "--storage",
        storage,
        "--log-level",
        "error",
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            status, _ = exchange(
                port, b"PUT /hhh HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            if status in (200, 409):
                return proc, port
        except OSError:
            pass
        time.sleep(0.1)
    proc.kill()
    raise SystemExit("server did not start")


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--storage", default="disk", choices=["disk", "memory"])
    args = parser.parse_args()

    outside = Path(tempfile.mkdtemp(prefix="coffer-hostile-"))
    data_dir = outside / "data"
    proc, port = start_server(data_dir, args.storage)
    before = {p for p in tree(outside) if not p.startswith("data")}
    _, raw = exchange(
        port, b"POST /hhh/mp?uploads HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    upload = raw.split(b"<UploadId>")[1].split(b"</UploadId>")[0].decode() if b"<UploadId>" in raw else "none"
    exchange(port, b"PUT /hhh/k HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")

    statuses: collections.Counter[int] = collections.Counter()
    bad: list[tuple[int, bytes, bytes]] = []
    lock = threading.Lock()
    counter = iter(range(args.count))

    def worker() -> None:
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            request = build(random.Random(args.seed * 1_000_003 + n), upload)
            status, raw = exchange(port, request)
            is_error_xml = status < 400 or request.startswith(b"HEAD") or b"<Error>" in raw
            with lock:
                statuses[status] += 1
                if status == -1 or (status >= 500 and status != 501) or not is_error_xml:
                    bad.append((status, request[:400], raw[:400]))

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(args.threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    alive, _ = exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    proc.terminate()
    proc.wait(timeout=60)
    stray = {p for p in tree(outside) if not p.startswith("data")} - before

    print(f"{args.count} requests in {elapsed:.1f} s ({args.storage} engine, seed {args.seed})")
    print("status counts:", dict(sorted(statuses.items())))
    print(f"server still serving: {alive == 200}; files outside the data directory: {sorted(stray) or 'none'}")
    for status, request, raw in bad[:20]:
        print(f"--- forbidden answer {status}\n{request!r}\n{raw!r}")
    print(f"forbidden answers: {len(bad)}")
    return 1 if bad or stray or alive != 200 else 0


if __name__ == "__main__":
    sys.exit(main())
