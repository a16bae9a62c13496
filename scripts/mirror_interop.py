"""`coffer mirror` against an S3 server that is not Coffer: moto_server, in both directions.

Starts moto_server (the `bench` extra installs it) and a Coffer server on free loopback ports,
writes objects with metadata, content headers and tags on one side, then runs `coffer mirror`
copy, a second copy (everything skipped), sync --delete, verify and verify --read-back from moto
into Coffer and from Coffer into moto, and checks what arrived with boto3. Prints one line per
step and exits non-zero on the first difference.

    .venv/bin/pip install -q -e '.[bench]' && .venv/bin/python scripts/mirror_interop.py
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3

from coffer.testing import serve

SMALL_KEY = "dir/ünï code.txt"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_moto(port: int, log: Path) -> subprocess.Popen[bytes]:
    binary = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if binary is None:
        raise SystemExit("moto_server not found: pip install 'moto[server]' (the bench extra)")
    out = open(log, "wb")  # noqa: SIM115 - owned by the child process
    proc = subprocess.Popen([binary, "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"moto_server did not start: {log.read_text()[-2000:]}")


def populate(s3: Any, bucket: str) -> dict[str, bytes]:
    s3.create_bucket(Bucket=bucket)
    bodies = {SMALL_KEY: b"hello from the other side", "big.bin": os.urandom(20 << 20)}
    s3.put_object(
        Bucket=bucket, Key=SMALL_KEY, Body=bodies[SMALL_KEY], ContentType="text/x-test",
        CacheControl="no-cache", ContentDisposition="inline", Metadata={"colour": "blue"}, Tagging="team=storage",
    )  # fmt: skip
    s3.put_object(Bucket=bucket, Key="big.bin", Body=bodies["big.bin"])
    return bodies


def mirror(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "coffer", "mirror", *args, "--no-progress"], env=env, capture_output=True, text=True
    )
    summary = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    print(f"  {' '.join(args[: args.index('--source-endpoint')]):<48} exit {done.returncode}: {summary}")
    if done.returncode != 0:
        raise SystemExit(done.stderr)


def check(src: Any, src_bucket: str, dst: Any, dst_bucket: str, bodies: dict[str, bytes]) -> None:
    for key, body in bodies.items():
        assert dst.get_object(Bucket=dst_bucket, Key=key)["Body"].read() == body, key
    got = dst.head_object(Bucket=dst_bucket, Key=SMALL_KEY)
    want = src.head_object(Bucket=src_bucket, Key=SMALL_KEY)
    for field in ("ContentType", "CacheControl", "ContentDisposition", "Metadata"):
        assert got.get(field) == want.get(field), (field, got.get(field), want.get(field))
    tags = dst.get_object_tagging(Bucket=dst_bucket, Key=SMALL_KEY)["TagSet"]
    assert tags == [{"Key": "team", "Value": "storage"}], tags
    print("  bytes, content headers, metadata and tags: identical")


def run_direction(label: str, src: tuple[Any, str, str, str], dst: tuple[Any, str, str, str], tag: str) -> None:
    """``src`` / ``dst``: (boto3 client, endpoint, access key, secret key); ``tag`` names the buckets."""
    print(label)
    src_bucket, dst_bucket = f"{tag}-src", f"{tag}-dst"
    bodies = populate(src[0], src_bucket)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "COFFER_"))}
    env.update(
        COFFER_MIRROR_SOURCE_ACCESS_KEY=src[2], COFFER_MIRROR_SOURCE_SECRET_KEY=src[3],
        COFFER_MIRROR_DEST_ACCESS_KEY=dst[2], COFFER_MIRROR_DEST_SECRET_KEY=dst[3],
    )  # fmt: skip
    sides = [f"s3://{src_bucket}", f"s3://{dst_bucket}", "--source-endpoint", src[1], "--dest-endpoint", dst[1]]
    mirror(["copy", *sides], env)
    mirror(["copy", *sides], env)
    dst[0].put_object(Bucket=dst_bucket, Key="extra", Body=b"x")
    mirror(["sync", "--delete", *sides], env)
    mirror(["verify", *sides], env)
    mirror(["verify", "--read-back", *sides], env)
    check(src[0], src_bucket, dst[0], dst_bucket, bodies)


def main() -> None:
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        moto = start_moto(port, Path(tmp) / "moto.log")
        try:
            endpoint = f"http://127.0.0.1:{port}"
            moto_s3 = boto3.client(
                "s3",
                endpoint_url=endpoint,
                aws_access_key_id="moto",
                aws_secret_access_key="moto",
                region_name="us-east-1",
            )
            with serve("disk", mode="process") as coffer:
                coffer_side = (coffer.client(), coffer.endpoint, coffer.access_key, coffer.secret_key)
                moto_side = (moto_s3, endpoint, "moto", "moto")
                run_direction("moto_server -> Coffer", moto_side, coffer_side, "into-coffer")
                run_direction("Coffer -> moto_server", coffer_side, moto_side, "out-of-coffer")
        finally:
            moto.terminate()
            moto.wait()
    print("ok")


if __name__ == "__main__":
    main()
