"""Upload one big object by multipart and by a single PUT while sampling the server's RSS.

The body is generated on the fly by the client (a repeating random pattern behind a
file-like object): neither the client nor the server ever holds it whole, and no
big file is needed on disk besides the server's own copy. boto3 with its default
checksum settings (aws-chunked bodies with a CRC trailer) does the uploads.

    .venv/bin/python scripts/big_upload.py --size-gib 5 --data-dir /tmp/coffer-big

Starts its own `coffer serve` on a free port; deletes the data directory at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import boto3
import psutil
from botocore.config import Config

MiB = 1024 * 1024
PATTERN = os.urandom(MiB)


class PatternFile(io.RawIOBase):
    """``size`` bytes of a repeating 1 MiB random block, produced as they are read."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, min(self.size, base + offset))
        return self.pos

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        view = memoryview(buffer).cast("B")
        n = min(len(view), self.size - self.pos)
        done = 0
        while done < n:
            at = (self.pos + done) % MiB
            take = min(n - done, MiB - at)
            view[done : done + take] = PATTERN[at : at + take]
            done += take
        self.pos += n
        return n

    def __len__(self) -> int:
        return self.size


def pattern_md5(size: int) -> str:
    digest = hashlib.md5()
    full, rest = divmod(size, MiB)
    for _ in range(full):
        digest.update(PATTERN)
    digest.update(PATTERN[:rest])
    return digest.hexdigest()


class RssSampler:
    """Peak RSS of a process and its children, sampled every 100 ms."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        total = self.process.memory_info().rss
        for child in self.process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.peak = max(self.peak, self.rss())

    def __enter__(self) -> RssSampler:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-gib", type=float, default=5.0)
    parser.add_argument("--part-mib", type=int, default=64, help="multipart part size")
    parser.add_argument("--concurrency", type=int, default=4, help="parts uploaded at once")
    parser.add_argument("--data-dir", default="/tmp/coffer-big-upload")
    parser.add_argument("--fsync", default="never", choices=("always", "never"))
    args = parser.parse_args()
    size = int(args.size_gib * 1024 * MiB)
    data_dir = Path(args.data_dir)
    shutil.rmtree(data_dir, ignore_errors=True)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "coffer", "serve", "--port", str(port), "--data-dir", str(data_dir),
         "--fsync", args.fsync, "--log-level", "warning"],
    )  # fmt: skip
    try:
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
            config=Config(retries={"max_attempts": 1}, max_pool_connections=args.concurrency + 2),
        )
        s3.create_bucket(Bucket="big")
        expected_md5 = pattern_md5(size)
        idle = RssSampler(server.pid).rss()
        print(f"object {size / MiB:.0f} MiB, server RSS at rest {idle / MiB:.1f} MiB")

        # --- multipart
        part_size = args.part_mib * MiB
        count = -(-size // part_size)
        upload_id = s3.create_multipart_upload(Bucket="big", Key="multipart")["UploadId"]
        etags: dict[int, str] = {}
        numbers = list(range(1, count + 1))
        lock = threading.Lock()

        def worker() -> None:
            while True:
                with lock:
                    if not numbers:
                        return
                    number = numbers.pop(0)
                length = min(part_size, size - (number - 1) * part_size)
                # Parts are whole MiBs, so each starts the pattern afresh and the object is one stream.
                body = PatternFile(length)
                etags[number] = s3.upload_part(
                    Bucket="big", Key="multipart", UploadId=upload_id, PartNumber=number, Body=body
                )["ETag"]

        with RssSampler(server.pid) as sampler:
            started = time.monotonic()
            threads = [threading.Thread(target=worker) for _ in range(args.concurrency)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            s3.complete_multipart_upload(
                Bucket="big",
                Key="multipart",
                UploadId=upload_id,
                MultipartUpload={"Parts": [{"PartNumber": n, "ETag": etags[n]} for n in sorted(etags)]},
            )
            elapsed = time.monotonic() - started
        print(
            f"multipart: {count} parts of {args.part_mib} MiB, {args.concurrency} at a time: "
            f"{elapsed:.1f} s, {size / MiB / elapsed:.0f} MiB/s, server peak RSS {sampler.peak / MiB:.1f} MiB "
            f"(+{(sampler.peak - idle) / MiB:.1f} MiB)"
        )
        with RssSampler(server.pid) as sampler:
            started = time.monotonic()
            digest = hashlib.md5()
            for chunk in s3.get_object(Bucket="big", Key="multipart")["Body"].iter_chunks(MiB):
                digest.update(chunk)
            elapsed = time.monotonic() - started
        assert digest.hexdigest() == expected_md5, "multipart object read back differs"
        print(
            f"multipart GET: {elapsed:.1f} s, {size / MiB / elapsed:.0f} MiB/s, "
            f"server peak RSS {sampler.peak / MiB:.1f} MiB, content verified"
        )
        s3.delete_object(Bucket="big", Key="multipart")

        # --- single PUT
        with RssSampler(server.pid) as sampler:
            started = time.monotonic()
            etag = s3.put_object(Bucket="big", Key="single", Body=PatternFile(size))["ETag"]
            elapsed = time.monotonic() - started
        assert etag.strip('"') == expected_md5, "single PUT ETag differs from the body's MD5"
        print(
            f"single PUT: {elapsed:.1f} s, {size / MiB / elapsed:.0f} MiB/s, "
            f"server peak RSS {sampler.peak / MiB:.1f} MiB (+{(sampler.peak - idle) / MiB:.1f} MiB), ETag verified"
        )
        s3.delete_object(Bucket="big", Key="single")
    finally:
        server.terminate()
        server.wait(60)
        shutil.rmtree(data_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
