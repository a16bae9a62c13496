"""Keeps a data directory's delivery process (deliverer.py) running while a server worker lives.

Every worker checks every ``CHECK_SECONDS`` whether there is a queue to read (a segment: a server
whose buckets have no rules never starts one) and the delivery lease is free (no delivery process,
or its worker died and took it along), and if so starts one as its own child; of two started at
once the second finds the lease held and exits. At shutdown a worker stops the one it started.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from coffer.events.deliverer import ENV, JOB, LEASE_FILE, DelivererConfig
from coffer.events.queue import segment_paths
from coffer.lifecycle.lease import FileLease

log = logging.getLogger("coffer.events")

CHECK_SECONDS = 1.0
STOP_SECONDS = 10.0  # then it is killed (what it had not acknowledged is sent again later)


class Supervisor:
    def __init__(self, config: DelivererConfig) -> None:
        self.config = config
        self.lease = FileLease(Path(config.directory), LEASE_FILE, JOB)
        self.child: subprocess.Popen[bytes] | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.ensure()
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        child, self.child = self.child, None
        if child is None or child.poll() is not None:
            return
        child.terminate()
        try:
            await asyncio.to_thread(child.wait, STOP_SECONDS)
        except subprocess.TimeoutExpired:
            log.warning("the event delivery process (pid %d) did not stop: killed", child.pid)
            child.kill()
            child.wait()

    async def _watch(self) -> None:
        while True:
            # Jittered: workers started together do not all start one at the same moment.
            await asyncio.sleep(CHECK_SECONDS * (0.5 + random.random()))
            self.ensure()

    def ensure(self) -> None:
        """Start the delivery process if there is a queue and nobody delivers it (also called by the
        queue when it makes a segment, so the first events do not wait for the next check)."""
        if self.child is not None:
            if self.child.poll() is None:
                return
            self.child = None  # it exited (another one holds the lease, or it failed): reaped
        try:
            if not segment_paths(Path(self.config.directory)) or not self.lease.free():
                return
            env = {**os.environ, ENV: replace(self.config, parent=os.getpid()).to_json()}
            # -P: not the current directory first on sys.path (a coffer checkout there would be
            # imported instead of the server's own code).
            self.child = subprocess.Popen(
                [sys.executable, "-P", "-m", "coffer.events.deliverer"], env=env, stdin=subprocess.DEVNULL
            )
        except OSError as exc:  # never the request's failure (the queue calls this): tried again later
            log.warning("cannot start the event delivery process: %s", exc)
