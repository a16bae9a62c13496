"""`coffer mirror copy` vs `rclone copy`: many small objects between two local Coffer servers.

Starts two Coffer servers (separate processes, disk storage, fsync never, SigV4 required with
generated keys), seeds N objects of S bytes into the source, then copies them into a fresh
destination bucket with each tool in turn, ``--rounds`` times, alternating which goes first.
Both tools get the same concurrency: ``--concurrency`` for coffer, ``--transfers`` and
``--checkers`` for rclone. rclone runs twice per round: with its defaults (it HEADs every object
after uploading it) and tuned to the same two requests per object as coffer (``--s3-no-head``,
``--s3-no-check-bucket``); the ratio is against the faster. Each run is timed from starting the
process to its exit (listing both sides, copying, interpreter or binary start-up included), its
CPU time (user + system, from the child's rusage) is recorded, and the destination is listed to
check that every object arrived.

    python scripts/bench_mirror.py --objects 10000 --size 4096 --concurrency 16 --rounds 3
    python scripts/bench_mirror.py --objects 0 --large-mib 256       # one large object (multipart)

rclone is not a dependency of Coffer: install it for the comparison (``apt-get install rclone``);
without it only coffer is measured. Results and the command: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from coffer.mirror.client import S3Client
from coffer.mirror.location import Credentials, Location
from coffer.testing import CofferServer, serve


def _location(server: CofferServer, bucket: str) -> Location:
    creds = Credentials(server.access_key, server.secret_key)
    return Location(bucket, "", server.endpoint, server.region, creds)


def seed(server: CofferServer, bucket: str, objects: int, size: int, concurrency: int) -> None:
    client = S3Client(_location(server, bucket))
    client.request("PUT")  # CreateBucket
    body = os.urandom(size)
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(lambda i: client.put_object(f"obj/{i:07d}", body, {}), range(objects)))


def count(server: CofferServer, bucket: str) -> int:
    return sum(1 for _ in S3Client(_location(server, bucket)).list_objects(""))


def _clean_env() -> dict[str, str]:
    # AWS_CA_BUNDLE and friends would make rclone's SDK (and any profile) apply to plain-HTTP loopback.
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "COFFER_", "RCLONE_"))}


def run_coffer(
    src: CofferServer, dst: CofferServer, source_bucket: str, bucket: str, concurrency: int
) -> tuple[float, float]:
    env = _clean_env()
    env.update(
        COFFER_MIRROR_SOURCE_ACCESS_KEY=src.access_key,
        COFFER_MIRROR_SOURCE_SECRET_KEY=src.secret_key,
        COFFER_MIRROR_DEST_ACCESS_KEY=dst.access_key,
        COFFER_MIRROR_DEST_SECRET_KEY=dst.secret_key,
    )
    argv = [
        sys.executable, "-m", "coffer", "mirror", "copy", f"s3://{source_bucket}", f"s3://{bucket}",
        "--source-endpoint", src.endpoint, "--dest-endpoint", dst.endpoint,
        "--concurrency", str(concurrency), "--no-progress",
    ]  # fmt: skip
    return _timed(argv, env)


RCLONE_TUNED = ("--s3-no-head", "--s3-no-check-bucket")


def run_rclone(
    src: CofferServer,
    dst: CofferServer,
    source_bucket: str,
    bucket: str,
    concurrency: int,
    config: Path,
    extra: tuple[str, ...],
) -> tuple[float, float]:
    lines = []
    for name, server in (("src", src), ("dst", dst)):
        lines += [
            f"[{name}]", "type = s3", "provider = Other", f"access_key_id = {server.access_key}",
            f"secret_access_key = {server.secret_key}", f"endpoint = {server.endpoint}",
            f"region = {server.region}", "",
        ]  # fmt: skip
    config.write_text("\n".join(lines))
    argv = [
        "rclone", "--config", str(config), "copy", f"src:{source_bucket}", f"dst:{bucket}",
        "--transfers", str(concurrency), "--checkers", str(concurrency), *extra,
    ]  # fmt: skip
    return _timed(argv, _clean_env())


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``argv``."""
    cpu = _cpu_of_children()
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({done.returncode}): {done.stderr[-2000:]}")
    return elapsed, _cpu_of_children() - cpu


def compare(
    src: CofferServer, dst: CofferServer, source_bucket: str, tools: list[str], args: argparse.Namespace, label: str
) -> None:
    """Each tool copies ``source_bucket`` into a fresh bucket, ``args.rounds`` times, the order
    rotating; per run and median: objects/s and MB/s (10^6 bytes), CPU per object."""
    listing = list(S3Client(_location(src, source_bucket)).list_objects(""))
    objects, total = len(listing), sum(entry.size for entry in listing)
    print(f"\n{label}: {objects} objects, {total / 1e6:.1f} MB; load {os.getloadavg()}")
    results: dict[str, list[tuple[float, float]]] = {tool: [] for tool in tools}
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(args.rounds):
            for tool in tools[round_no % len(tools) :] + tools[: round_no % len(tools)]:
                bucket = f"{source_bucket}-{tool}-{round_no}"
                S3Client(_location(dst, bucket)).request("PUT")
                if tool == "coffer":
                    seconds, cpu = run_coffer(src, dst, source_bucket, bucket, args.concurrency)
                else:
                    extra = RCLONE_TUNED if tool == "rclone-tuned" else ()
                    config = Path(tmp) / "rclone.conf"
                    seconds, cpu = run_rclone(src, dst, source_bucket, bucket, args.concurrency, config, extra)
                copied = count(dst, bucket)
                if copied != objects:
                    raise SystemExit(f"{tool} left {copied} of {objects} objects")
                results[tool].append((objects / seconds, total / seconds / 1e6))
                print(
                    f"round {round_no + 1} {tool:>12}: {seconds:6.2f} s  {objects / seconds:7.0f} objects/s "
                    f"{total / seconds / 1e6:7.1f} MB/s  CPU {cpu:5.2f} s ({cpu / objects * 1e6:6.0f} us/object)"
                )
    print(f"load after: {os.getloadavg()}")
    print(f"median over {args.rounds} rounds (concurrency {args.concurrency}):")
    medians = {tool: statistics.median(rate for rate, _ in runs) for tool, runs in results.items()}
    for tool, runs in results.items():
        print(f"  {tool:>12}: {medians[tool]:7.0f} objects/s {statistics.median(mb for _, mb in runs):7.1f} MB/s")
    if "rclone" in medians:
        best = max(medians["rclone"], medians["rclone-tuned"])
        print(f"  coffer / faster rclone: {medians['coffer'] / best:.0%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=4096, help="bytes per object")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--storage", choices=("disk", "memory"), default="disk")
    parser.add_argument("--large-mib", type=int, default=0, help="also copy one object of this many MiB (multipart)")
    args = parser.parse_args()
    rclone = shutil.which("rclone")
    tools = ["coffer", "rclone", "rclone-tuned"] if rclone else ["coffer"]
    if rclone:
        version = subprocess.run(["rclone", "version"], capture_output=True, text=True).stdout.splitlines()[0]
        print(f"rclone: {version}")
    else:
        print("rclone not installed: measuring coffer mirror only")
    with serve(args.storage, mode="process") as src, serve(args.storage, mode="process") as dst:
        if args.objects:
            seed(src, "small", args.objects, args.size, args.concurrency)
            compare(src, dst, "small", tools, args, f"{args.objects} objects of {args.size} B")
        if args.large_mib:
            client = S3Client(_location(src, "large"))
            client.request("PUT")
            client.put_object("large.bin", os.urandom(args.large_mib << 20), {})
            compare(src, dst, "large", tools, args, f"one object of {args.large_mib} MiB")


if __name__ == "__main__":
    main()
