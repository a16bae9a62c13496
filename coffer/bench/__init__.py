"""`coffer bench`: measure Coffer side by side with moto_server and a bare ASGI app.

Modules: client (load generators), servers (processes, RSS), bare (the ceiling
app), phases (the measurements), runner (suites, tables, target check).
"""

from coffer.bench.runner import run_bench

__all__ = ["run_bench"]
