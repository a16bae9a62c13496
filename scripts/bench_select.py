"""S3 Select throughput and memory: SelectObjectContent vs GetObject + Python csv filtering.

Starts a coffer server (disk engine, fsync never, open) on a free loopback port, uploads a
generated CSV object of about --mib MiB (6 columns, column 3 an integer 0..1000), then runs

    SELECT count(*) FROM S3Object WHERE cast(_3 as int) > 500

through boto3's select_object_content, and the same count by boto3 GetObject streamed through
Python's csv module (the client-side alternative). Prints MB/s of object scanned (MB = 10^6 bytes,
best of --repeat), the speed-up, the server's RSS growth (psutil, sampled every 10 ms during the
select) and when the first Records event of a `SELECT *` arrived compared with the whole stream.

    .venv/bin/python scripts/bench_select.py [--mib 256] [--repeat 2] [--engine disk|memory]
"""

from __future__ import annotations

import argparse
import codecs
import csv
import random
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.server_process import ServerProcess

MIB = 1024 * 1024
QUERY = "SELECT count(*) FROM S3Object WHERE cast(_3 as int) > 500"


def write_csv(path: Path, size: int) -> int:
    """A CSV file of about `size` bytes (whole lines); returns its size."""
    rng = random.Random(1)
    with open(path, "w") as out:
        out.write("a,b,c,d,e,f\n")
        while out.tell() < size:
            out.write(
                "".join(
                    f"{rng.randint(0, 10**6)},{rng.choice(('x', 'yy', 'zzz'))},{rng.randint(0, 1000)},"
                    f"{rng.random():.6f},name{rng.randint(0, 999)},2024-01-0{rng.randint(1, 9)}\n"
                    for _ in range(5000)
                )
            )
        return out.tell()


class _RssSampler:
    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def __enter__(self) -> _RssSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def select_count(s3, bucket: str, key: str) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    response = s3.select_object_content(
        Bucket=bucket,
        Key=key,
        ExpressionType="SQL",
        Expression=QUERY,
        InputSerialization={"CSV": {"FileHeaderInfo": "USE"}},
        OutputSerialization={"CSV": {}},
    )
    out = b""
    for event in response["Payload"]:
        if "Records" in event:
            out += event["Records"]["Payload"]
    return int(out.decode().strip()), time.perf_counter() - t0


def _lines(body) -> Iterator[str]:  # type: ignore[no-untyped-def]
    decoder = codecs.getincrementaldecoder("utf-8")()
    rest = ""
    for chunk in body.iter_chunks(MIB):
        lines = (rest + decoder.decode(chunk)).split("\n")
        rest = lines.pop()
        yield from lines
    if rest:
        yield rest


def get_count(s3, bucket: str, key: str) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    reader = csv.reader(_lines(body))
    next(reader)
    count = sum(1 for row in reader if row and int(row[2]) > 500)
    return count, time.perf_counter() - t0


def first_record(s3, bucket: str, key: str) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    response = s3.select_object_content(
        Bucket=bucket,
        Key=key,
        ExpressionType="SQL",
        Expression="SELECT _1 FROM S3Object WHERE cast(_3 as int) = 7",
        InputSerialization={"CSV": {"FileHeaderInfo": "USE"}},
        OutputSerialization={"CSV": {}},
    )
    first = None
    for event in response["Payload"]:
        if "Records" in event and first is None:
            first = time.perf_counter() - t0
    return first or 0.0, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--engine", choices=("disk", "memory"), default="disk")
    args = parser.parse_args()
    size = args.mib * MIB
    with tempfile.TemporaryDirectory(prefix="bench-select-") as tmp:
        extra = ("--storage", "memory") if args.engine == "memory" else ()
        server = ServerProcess(Path(tmp) / "data", "--fsync", "never", *extra).start()
        try:
            s3 = server.client()
            s3.create_bucket(Bucket="bench")
            size = write_csv(Path(tmp) / "data.csv", size)
            s3.upload_file(str(Path(tmp) / "data.csv"), "bench", "data.csv")
            (Path(tmp) / "data.csv").unlink()
            assert server.proc is not None
            rss = _RssSampler(server.proc.pid)
            with rss:
                runs = [select_count(s3, "bench", "data.csv") for _ in range(args.repeat)]
            count, select_s = runs[0][0], min(t for _, t in runs)
            gets = [get_count(s3, "bench", "data.csv") for _ in range(args.repeat)]
            get_total, get_s = gets[0][0], min(t for _, t in gets)
            assert count == get_total, (count, get_total)
            first_s, whole_s = first_record(s3, "bench", "data.csv")
        finally:
            server.stop()
    print(f"object: {args.mib} MiB CSV, engine {args.engine}, load average {psutil.getloadavg()[0]:.1f}")
    print(f"query: {QUERY}  -> {count}")
    print(f"SelectObjectContent: {size / select_s / 1e6:.0f} MB/s ({select_s:.2f} s)")
    print(f"GetObject + Python csv: {size / get_s / 1e6:.0f} MB/s ({get_s:.2f} s)")
    print(f"speed-up: {get_s / select_s:.1f}x")
    print(f"server RSS growth during select: {(rss.peak - rss.base) / MIB:.0f} MiB (peak {rss.peak / MIB:.0f} MiB)")
    print(f"first Records event after {first_s:.2f} s of a {whole_s:.2f} s scan")


if __name__ == "__main__":
    main()
