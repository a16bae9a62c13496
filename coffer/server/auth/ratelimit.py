"""Per-client token buckets: ``rate`` requests per second, bursts up to ``burst``.

State is per worker process (each worker limits on its own). Idle clients'
buckets refill to full and are dropped when the table grows, so memory stays
bounded however many addresses or keys are seen.
"""

from __future__ import annotations

import time

MAX_TRACKED = 100_000


class TokenBuckets:
    __slots__ = ("_state", "burst", "rate")

    def __init__(self, rate: float, burst: float = 0) -> None:
        self.rate = float(rate)
        self.burst = float(burst) if burst > 0 else 2.0 * self.rate
        self._state: dict[str, tuple[float, float]] = {}  # client -> (tokens, last refill)

    def allow(self, client: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        tokens, last = self._state.get(client, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        if len(self._state) >= MAX_TRACKED and client not in self._state:
            self._prune(now)
        self._state[client] = (tokens, now)
        return allowed

    def _prune(self, now: float) -> None:
        full = [c for c, (t, last) in self._state.items() if t + (now - last) * self.rate >= self.burst]
        for client in full:
            del self._state[client]
        if len(self._state) >= MAX_TRACKED:  # everyone is busy: forget the oldest half
            for client, _ in sorted(self._state.items(), key=lambda kv: kv[1][1])[: MAX_TRACKED // 2]:
                del self._state[client]
