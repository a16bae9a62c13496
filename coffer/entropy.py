"""Random bytes (data keys, nonces, body ids, version ids) from the OS, read a page at a time.

``os.urandom`` releases the GIL around its ``getrandom`` call; on the event loop, taking the GIL
back from a busy thread (the metadata writer, a hashing thread) costs tens of microseconds. An
encrypted 4 KiB PUT made four such calls, and they cost more than its AES-GCM and key wrapping
together (py-spy: 28 µs for one ``os.urandom(16)``; docs/benchmarks.md "Encryption"). Reading
the OS's CSPRNG 64 KiB at a time makes that one call per ~1,000 requests.

The bytes are still the kernel's cryptographic randomness, each handed out once. The pool holds
what it has not handed out yet (and what it has, until the next refill) in this process's memory,
where the master key and every live data key are anyway. A forked child drops the pool it
inherited (``os.register_at_fork``): parent and child never hand out the same bytes.
"""

from __future__ import annotations

import os
import threading

_PAGE = 64 * 1024

_lock = threading.Lock()
_pool = b""
_used = 0


def token_bytes(n: int) -> bytes:
    """``n`` random bytes, as ``os.urandom(n)``, without a system call most of the time."""
    global _pool, _used
    if n > _PAGE // 4:
        return os.urandom(n)
    with _lock:
        if _used + n > len(_pool):
            _pool, _used = os.urandom(_PAGE), 0
        out = _pool[_used : _used + n]
        _used += n
    return out


def token_hex(n: int) -> str:
    """``n`` random bytes as ``2 * n`` hex digits, as ``secrets.token_hex(n)``."""
    return token_bytes(n).hex()


def _forget() -> None:
    global _lock, _pool, _used
    _lock = threading.Lock()  # a thread of the parent may have held it at the fork
    _pool, _used = b"", 0


os.register_at_fork(after_in_child=_forget)
