"""A/B-compare server variants side by side: 4 KiB GET/PUT ops/s or 256 MiB GET/PUT MB/s.

Each variant is a Coffer server started with extra environment variables (for
example a setting such as COFFER_READ_CACHE_BYTES=0), or "bare" for the bare
ASGI app; all run at once and each round measures every variant in turn (each
round starting at the next variant, once the servers are idle), so a noisy
machine moves them together. Prints the median per variant, each variant's
median share of the first one's figure in the same round, and, with "bare"
among them, each as a share of the bare app.

    .venv/bin/python scripts/ab_compare.py small \
        '{"bare": {}, "cache": {}, "nocache": {"COFFER_READ_CACHE_BYTES": "0"}}' 5
    .venv/bin/python scripts/ab_compare.py large '{"bare": {}, "coffer": {}}' 8

Two versions of the code: check the old one out in a worktree and point a
variant's PYTHONPATH at it (it then imports that tree's coffer package):

    git worktree add --detach /tmp/base <commit>
    .venv/bin/python scripts/ab_compare.py smallput '{"base": {"PYTHONPATH": "/tmp/base"}, "new": {}}' 5

A variant with {"AB_VERSIONING": "Enabled"} runs against a bucket with versioning enabled
(every PUT adds a version):

    .venv/bin/python scripts/ab_compare.py smallput '{"plain": {}, "versioned": {"AB_VERSIONING": "Enabled"}}' 5

A variant with {"AB_AUTH": "1"} runs with authentication on: every request is a SigV4
presigned URL of the bucket owner (made once, so the client costs nothing per request and the
server verifies a signature each time); adding {"AB_POLICY": "20"} gives the bucket a policy
of that many statements with conditions (none denies the owner, all are evaluated), to
measure what bucket policy evaluation costs a GET (docs/benchmarks.md):

    .venv/bin/python scripts/ab_compare.py small \
        '{"owner": {"AB_AUTH": "1"}, "policy20": {"AB_AUTH": "1", "AB_POLICY": "20"}}' 7

Adding {"AB_PUBLIC": "1"} to an AB_AUTH variant makes every GET object public-read by its ACL
(PutObjectAcl) and sends the GETs unsigned: what an anonymous download through an object ACL
costs (the policies leave it to the ACL, so the gate reads the object's ACL first);
{"AB_PUBLIC": "policy"} makes them public by a bucket policy instead (no extra read):

    .venv/bin/python scripts/ab_compare.py small \
        '{"owner": {"AB_AUTH": "1"}, "anon": {"AB_AUTH": "1", "AB_PUBLIC": "1"}}' 7

A variant with {"AB_SSE": "AES256"} (or "aws:kms") gives the bucket default encryption, so every
object the phases write and read is encrypted (docs/benchmarks.md, "Encryption"):

    .venv/bin/python scripts/ab_compare.py large '{"plain": {}, "sse": {"AB_SSE": "AES256"}}' 5

A variant with {"AB_FSYNC": "always"} runs the server with fsync on (the default is never, so
the figures are CPU costs; with fsync they include what each commit's fsyncs cost):

    .venv/bin/python scripts/ab_compare.py smallput \
        '{"base": {"AB_FSYNC": "always", "PYTHONPATH": "/tmp/base"}, "new": {"AB_FSYNC": "always"}}' 5
A variant with {"AB_WEBHOOK": "1"} gives the bucket an event notification rule (every ObjectCreated
event) to a webhook target: a tiny local HTTP receiver the script starts (coffer.bench.webhook_sink),
to measure what notifications cost a PUT (docs/benchmarks.md, "Event notifications"):

    .venv/bin/python scripts/ab_compare.py smallput '{"plain": {}, "webhook": {"AB_WEBHOOK": "1"}}' 7

Phases: small (GET), smallput, large (GET), largeput; "bare" takes part in GET phases only.

The small phases also print each server's CPU time per request (user + system of the server process
and its workers over the round, warm-up included, divided by the requests of the measured window
scaled to the whole round): on a machine shared with other work, CPU time per request moves less
than requests per second. A server with a child process (the event delivery process of an
AB_WEBHOOK variant) also gets a "main proc." line: the serving process alone. Even so, three
identical variants side by side spread over 13 us/op of CPU in 11 rounds, while their ops/s stayed
within 1.5 % (docs/benchmarks.md, "Event notifications").

Each variant after the first is also given as a share of the first, round by round: the median of
those paired ratios, with a 95 % bootstrap interval. One round's pair moves by up to 10 % on this
shared machine, so settling a few-percent difference takes many rounds (40 give an interval about
6 points wide).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from coffer.bench.client import BlockingConn, Endpoint, run_load
from coffer.bench.phases import _large_body
from coffer.bench.servers import free_port

LARGE = 256 << 20
KEYS = int(os.environ.get("AB_KEYS", "128"))
ACCESS_KEY, SECRET_KEY = "AKIABENCH0000000", "bench-secret-0123456789"
_sinks: list[subprocess.Popen[bytes]] = []  # webhook receivers (AB_WEBHOOK)
_data_dirs: list[str] = []  # the servers' data directories, removed at the end (a run writes GiBs)
_signed: dict[int, bool] = {}  # port -> the server requires signatures
_anonymous: set[int] = set()  # ports whose GETs go unsigned (AB_PUBLIC)
_PUBLIC_READ = (
    b"<AccessControlPolicy><AccessControlList>"
    b'<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group">'
    b"<URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission></Grant>"
    b"</AccessControlList></AccessControlPolicy>"
)


def auth_env(extra_env: dict[str, str]) -> dict[str, str]:
    if not extra_env.get("AB_AUTH"):
        return {}
    return {"COFFER_AUTH": "on", "COFFER_ACCESS_KEY": ACCESS_KEY, "COFFER_SECRET_KEY": SECRET_KEY}


def url(endpoint: Endpoint, method: str, path: str) -> str:
    """``path`` as sent: presigned by the bucket owner (for an hour) when the server requires signatures."""
    if not _signed.get(endpoint.port):
        return path
    from botocore.auth import S3SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest(method=method, url=f"http://{endpoint.host}:{endpoint.port}{path}")
    S3SigV4QueryAuth(Credentials(ACCESS_KEY, SECRET_KEY), "s3", "us-east-1", expires=3600).add_auth(request)
    signed = str(request.url)
    return signed[signed.index("/", len("http://")) :]


def bench_policy(statements: int) -> str:
    """A bucket policy of ``statements`` statements with conditions, none of which refuses the owner's
    GETs from 127.0.0.1: grants to other users and to anyone from far-away networks, and Denies
    whose conditions do not hold (the Deny statements are evaluated for every request)."""
    items: list[dict[str, object]] = []
    for i in range(statements):
        if i % 4 == 0:
            items.append(
                {
                    "Sid": f"deny{i}",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": ["arn:aws:s3:::bench", "arn:aws:s3:::bench/*"],
                    "Condition": {"NotIpAddress": {"aws:SourceIp": ["127.0.0.0/8", "::1/128"]}},
                }
            )
        elif i % 4 == 1:
            items.append(
                {
                    "Sid": f"partner{i}",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::partner-{i}:root"},
                    "Action": ["s3:GetObject", "s3:ListBucket"],
                    "Resource": [f"arn:aws:s3:::bench/partner{i}/*", "arn:aws:s3:::bench"],
                    "Condition": {"StringLike": {"aws:UserAgent": [f"partner-{i}-*"]}},
                }
            )
        elif i % 4 == 2:
            items.append(
                {
                    "Sid": f"office{i}",
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "s3:GetObject",
                    "Resource": f"arn:aws:s3:::bench/public{i}/*",
                    "Condition": {
                        "IpAddress": {"aws:SourceIp": f"10.{i}.0.0/16"},
                        "Bool": {"aws:SecureTransport": "true"},
                    },
                }
            )
        else:
            items.append(
                {
                    "Sid": f"until{i}",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": ["s3:PutObject", "s3:DeleteObject"],
                    "Resource": "arn:aws:s3:::bench/*",
                    "Condition": {"DateGreaterThan": {"aws:CurrentTime": "2999-01-01T00:00:00Z"}},
                }
            )
    return json.dumps({"Version": "2012-10-17", "Statement": items})


def start(name: str, extra_env: dict[str, str]) -> tuple[subprocess.Popen[bytes], Endpoint]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COFFER_")}
    env.update(extra_env)
    env.update(auth_env(extra_env))
    if extra_env.get("AB_WEBHOOK"):
        sink_port = free_port()
        sink = [sys.executable, "-m", "coffer.bench.webhook_sink", str(sink_port)]
        _sinks.append(subprocess.Popen(sink, env=env, cwd="/"))
        env["COFFER_NOTIFICATION_TARGETS"] = json.dumps({"sink": {"url": f"http://127.0.0.1:{sink_port}/events"}})
    if name == "bare":
        cmd = [sys.executable, "-m", "uvicorn", "coffer.bench.bare:app", "--port", str(port)]
        cmd += ["--loop", "uvloop", "--http", "httptools", "--log-level", "warning"]
    else:
        _data_dirs.append(tempfile.mkdtemp())
        cmd = [sys.executable, "-m", "coffer", "serve", "--port", str(port), "--data-dir", _data_dirs[-1]]
        cmd += ["--log-level", "warning", "--fsync", extra_env.get("AB_FSYNC", "never")]
    # Not started in the current directory: ``python -m`` puts it first on sys.path, so run from a
    # checkout it would import that checkout's coffer whatever the variant's PYTHONPATH says.
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/")
    endpoint = Endpoint("127.0.0.1", port)
    for _ in range(200):
        try:
            conn = BlockingConn(endpoint)
            conn.request("PUT", "/bench")
            break
        except OSError:
            time.sleep(0.1)
    else:
        raise RuntimeError(f"{name} did not start")
    if name != "bare":
        if extra_env.get("AB_AUTH"):
            _signed[port] = True
            conn.request("PUT", url(endpoint, "PUT", "/bench"))
        status = extra_env.get("AB_VERSIONING")
        if status:
            config = f"<VersioningConfiguration><Status>{status}</Status></VersioningConfiguration>"
            conn.request("PUT", url(endpoint, "PUT", "/bench?versioning"), body=config.encode())
        if extra_env.get("AB_SSE"):
            # Bucket default encryption: every object the phases write (and read) is encrypted.
            config = (
                "<ServerSideEncryptionConfiguration><Rule><ApplyServerSideEncryptionByDefault>"
                f"<SSEAlgorithm>{extra_env['AB_SSE']}</SSEAlgorithm>"
                "</ApplyServerSideEncryptionByDefault></Rule></ServerSideEncryptionConfiguration>"
            )
            code, answer, _ = conn.request("PUT", url(endpoint, "PUT", "/bench?encryption"), body=config.encode())
            if code != 200:
                raise RuntimeError(f"{name}: PutBucketEncryption answered {code}: {answer[:300]!r}")
        if extra_env.get("AB_WEBHOOK"):
            config = (
                "<NotificationConfiguration><QueueConfiguration><Id>bench</Id>"
                "<Queue>arn:coffer:sqs:us-east-1::sink</Queue><Event>s3:ObjectCreated:*</Event>"
                "</QueueConfiguration></NotificationConfiguration>"
            )
            code, answer, _ = conn.request("PUT", url(endpoint, "PUT", "/bench?notification"), body=config.encode())
            if code != 200:
                raise RuntimeError(f"{name}: PutBucketNotificationConfiguration answered {code}: {answer[:300]!r}")
        statements = int(extra_env.get("AB_POLICY", "0"))
        if statements:
            code, answer, _ = conn.request(
                "PUT", url(endpoint, "PUT", "/bench?policy"), body=bench_policy(statements).encode()
            )
            if code != 204:
                raise RuntimeError(f"{name}: PutBucketPolicy answered {code}: {answer[:300]!r}")
        body = os.urandom(4096)
        for i in range(KEYS):
            conn.request("PUT", url(endpoint, "PUT", f"/bench/g/{i}"), body=body)
        if extra_env.get("AB_PUBLIC") == "policy":
            grant = {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::bench/*"}
            document = json.dumps({"Version": "2012-10-17", "Statement": [grant]}).encode()
            code, answer, _ = conn.request("PUT", url(endpoint, "PUT", "/bench?policy"), body=document)
            if code != 204:
                raise RuntimeError(f"{name}: PutBucketPolicy answered {code}: {answer[:300]!r}")
            _anonymous.add(port)
        elif extra_env.get("AB_PUBLIC"):
            for i in range(KEYS):
                code, answer, _ = conn.request("PUT", url(endpoint, "PUT", f"/bench/g/{i}?acl"), body=_PUBLIC_READ)
                if code != 200:
                    raise RuntimeError(f"{name}: PutObjectAcl answered {code}: {answer[:300]!r}")
            _anonymous.add(port)
        conn.request("PUT", url(endpoint, "PUT", "/bench/big"), body_source=_large_body(LARGE), length=LARGE)
        code, answer, _ = conn.request("GET", url(endpoint, "GET", "/bench/g/0"))
        if code != 200:
            raise RuntimeError(f"{name}: GET answered {code}: {answer[:300]!r}")
    conn.close()
    return proc, endpoint


def small(name: str, endpoint: Endpoint) -> float:
    anonymous = endpoint.port in _anonymous
    paths = [(f"/bench/g/{i}" if anonymous else url(endpoint, "GET", f"/bench/g/{i}")).encode() for i in range(KEYS)]
    requests = [b"GET %s HTTP/1.1\r\n%s\r\n" % (paths[i], endpoint.headers) for i in range(KEYS)]
    result = run_load(endpoint, lambda _c, seq: requests[seq % KEYS], connections=32, warmup=0.3, duration=2)
    return result.rate


_SMALL_BODY = os.urandom(4096)


def smallput(name: str, endpoint: Endpoint) -> float:
    tail = b" HTTP/1.1\r\n" + endpoint.headers + b"Content-Length: 4096\r\n\r\n" + _SMALL_BODY
    result = run_load(endpoint, lambda _c, seq: b"PUT /bench/p/%d" % seq + tail, connections=32, warmup=0.3, duration=2)
    return result.rate


def largeput(name: str, endpoint: Endpoint) -> float:
    conn = BlockingConn(endpoint)
    try:
        started = time.perf_counter()
        status, body, _ = conn.request("PUT", "/bench/bigput", body_source=_large_body(LARGE), length=LARGE)
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    if status != 200:
        raise RuntimeError(f"{name}: PUT answered {status}: {body[:200]!r}")
    return LARGE / elapsed / 1e6


def large(name: str, endpoint: Endpoint) -> float:
    path = f"/bench/big?bytes={LARGE}" if name == "bare" else "/bench/big"
    conn = BlockingConn(endpoint)
    try:
        started = time.perf_counter()
        status, _, length = conn.request("GET", path, sink=True)
        elapsed = time.perf_counter() - started
    finally:
        conn.close()
    if status != 200 or length != LARGE:
        raise RuntimeError(f"{name}: GET answered {status} with {length} bytes")
    return LARGE / elapsed / 1e6


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User + system CPU seconds of a process, and of it with its children (uvicorn workers, the
    event delivery process)."""
    own = total = 0.0
    for one in [
        pid,
        *map(int, subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()),
    ]:
        try:
            with open(f"/proc/{one}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        total += seconds
        if one == pid:
            own = seconds
    return own, total


def settle(servers: dict[str, tuple[subprocess.Popen[bytes], Endpoint]], limit: float = 5.0) -> None:
    """Wait (at most ``limit`` seconds) until the servers, children included, used at most one clock
    tick (10 ms) of CPU over the last 200 ms: the next window then measures one server, not the
    last one's after-work as well."""
    deadline = time.monotonic() + limit
    last = sum(cpu_seconds(proc.pid)[1] for proc, _ in servers.values())
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = sum(cpu_seconds(proc.pid)[1] for proc, _ in servers.values())
        if now - last <= 1.5 / os.sysconf("SC_CLK_TCK"):
            return
        last = now


def median_interval(values: list[float], resamples: int = 4000) -> tuple[float, float]:
    """A 95 % bootstrap interval of the median of ``values`` (the rounds resampled with replacement;
    a fixed seed, so a run's output is reproducible from its figures)."""
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples))
    return medians[int(0.025 * resamples)], medians[int(0.975 * resamples) - 1]


def main() -> None:
    phase, variants, rounds = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 5
    measure = {"small": small, "smallput": smallput, "large": large, "largeput": largeput}[phase]
    servers = {name: start(name, env) for name, env in variants.items()}
    results: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    own_cpu: dict[str, list[float]] = {name: [] for name in variants}
    names = list(servers)
    try:
        for round_ in range(rounds):
            # Each round starts at the next variant: in a fixed order the first variant measured
            # faster more often than not, and one server's after-work (its WAL checkpoint, journal
            # compaction, event delivery catching up) fell on the same neighbour's window each time.
            for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
                proc, endpoint = servers[name]
                settle(servers)
                before = cpu_seconds(proc.pid)
                rate = measure(name, endpoint)
                results[name].append(rate)
                if phase.startswith("small") and rate:
                    # The measured window is 2 s of the 2.3 s round (0.3 s warm-up).
                    after = cpu_seconds(proc.pid)
                    requests = rate * 2.3
                    own_cpu[name].append((after[0] - before[0]) / requests * 1e6)
                    cpu[name].append((after[1] - before[1]) / requests * 1e6)
    finally:
        for proc, _ in servers.values():
            proc.terminate()
            proc.wait()
        for sink in _sinks:
            sink.terminate()
            sink.wait()
        for directory in _data_dirs:
            shutil.rmtree(directory, ignore_errors=True)
    unit = "ops/s" if phase.startswith("small") else "MB/s"
    for name, values in results.items():
        print(f"{name:12s} median {statistics.median(values):8.0f} {unit}  all {[round(v) for v in values]}")
    for name, values in cpu.items():
        if values:
            print(f"{name:12s} server CPU {statistics.median(values):6.1f} us/op  all {[round(v) for v in values]}")
    for name, values in own_cpu.items():
        if values and values != cpu[name]:
            # Without its children: with one worker, the process serving the requests.
            print(f"{name:12s} main proc. {statistics.median(values):6.1f} us/op  all {[round(v) for v in values]}")
    if len(results) > 1:
        # Paired by round: each variant against the first in the same round, which cancels what
        # the machine's load did to the round as a whole.
        first, *others = names
        for name in others:
            ratios = [100 * v / f for v, f in zip(results[name], results[first], strict=True) if f]
            if ratios:
                low, high = median_interval(ratios)
                print(
                    f"{name:12s} {statistics.median(ratios):5.1f}% of {first} (median of rounds;"
                    f" 95% interval {low:.1f}-{high:.1f})  all {[round(r, 1) for r in ratios]}"
                )
    if "bare" in results:
        bare = statistics.median(results["bare"])
        for name, values in results.items():
            print(f"{name:12s} {100 * statistics.median(values) / bare:5.1f}% of bare")


if __name__ == "__main__":
    main()
