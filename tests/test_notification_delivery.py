"""Event delivery runs in a delivery process of its own (coffer/events/deliverer.py), not in the workers
that serve requests: one per data directory however many workers there are, replaced when it dies
(nothing queued meanwhile is lost), gone when the server goes."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.server_process import ServerProcess
from tests.test_notifications import configure, rule, targets_env
from tests.webhook_receiver import Receiver
from tests.wire import request

pytestmark = pytest.mark.server


def processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command line) of every process."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parent = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        found[int(entry)] = (parent, command)
    return found


def descendants(pid: int) -> dict[int, str]:
    table = processes()
    out: dict[int, str] = {}
    parents = {pid}
    while True:
        more = {p: c for p, (parent, c) in table.items() if parent in parents and p not in out}
        if not more:
            return out
        out.update(more)
        parents = set(more)


def deliverers(server: ServerProcess) -> list[int]:
    assert server.proc is not None
    return [p for p, command in descendants(server.proc.pid).items() if "coffer.events.deliverer" in command]


def wait_for_deliverer(server: ServerProcess, other_than: int = 0) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = [p for p in deliverers(server) if p != other_than]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no delivery process: {server.log()}")


def gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}") or " Z " in open(f"/proc/{pid}/stat").read():  # noqa: SIM115
            return True
        time.sleep(0.05)
    return False


def owner_of_local_port(port: int) -> int | None:
    """The process with a TCP socket bound to 127.0.0.1:``port``."""
    inodes = set()
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    for pid in processes():
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    return pid
        except OSError:
            continue
    return None


def put(server: ServerProcess, key: str) -> None:
    assert request(server, "PUT", f"/hooked/{key}", b"x").status == 200  # a connection each: any worker


def test_one_delivery_process_serves_every_worker(tmp_path: Path) -> None:
    receiver = Receiver("ok")
    proc = ServerProcess(
        tmp_path / "data", "--fsync", "never", "--workers", "2", env=targets_env(hook={"url": receiver.url})
    ).start()
    try:
        s3 = proc.client()
        s3.create_bucket(Bucket="hooked")
        configure(s3, "hooked", rule("all", "hook", ["s3:ObjectCreated:*"]))
        time.sleep(1.1)  # both workers' cached bucket state has the rule
        for n in range(20):
            put(proc, f"k{n:02d}")
        records = receiver.wait_for(20)
        assert sorted(r["s3"]["object"]["key"] for r in records) == [f"k{n:02d}" for n in range(20)]
        # One for the data directory, not one per worker (a second one started at the same moment
        # finds the lease taken and exits at once).
        deadline = time.monotonic() + 10
        while len(deliverers(proc)) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        [deliverer] = deliverers(proc)
        # The POSTs came from the delivery process, not from a worker serving requests.
        assert {owner_of_local_port(port) for port in receiver.peers} == {deliverer}
        proc.stop()
        assert gone(deliverer)
    finally:
        proc.stop()
        receiver.close()


def test_a_killed_delivery_process_is_replaced_and_delivers_what_was_queued_meanwhile(tmp_path: Path) -> None:
    receiver = Receiver("ok")
    env = targets_env(hook={"url": receiver.url, "retry_seconds": 0.05})
    proc = ServerProcess(tmp_path / "data", env=env).start()  # fsync always: the default
    try:
        s3 = proc.client()
        s3.create_bucket(Bucket="hooked")
        configure(s3, "hooked", rule("all", "hook", ["s3:ObjectCreated:*"]))
        put(proc, "first")
        receiver.wait_for(1)
        first = wait_for_deliverer(proc)
        os.kill(first, signal.SIGKILL)
        for n in range(5):
            put(proc, f"meanwhile{n}")  # acknowledged while no process delivers
        second = wait_for_deliverer(proc, other_than=first)
        expected = {"first"} | {f"meanwhile{n}" for n in range(5)}
        deadline = time.monotonic() + 20
        while {key for _, key in receiver.names()} != expected and time.monotonic() < deadline:
            time.sleep(0.05)  # at least once: "first" may come twice (killed before its ack was written)
        assert {key for _, key in receiver.names()} == expected
        proc.kill9()  # the server dies at once: its delivery process goes with it
        assert gone(second)
    finally:
        proc.stop()
        receiver.close()
