"""`coffer bench`: start the servers, run every phase side by side, print figures.

Suites:
- ``main``: Coffer (fsync always; fsync never for PUTs) against moto_server and
  the bare ASGI app, every figure of docs/benchmarks.md plus the target check.
- ``asgi``: the bare app and Coffer under uvicorn and granian, 1 and 2 workers.
- ``inline``: objects inline in the SQLite row vs in files, 4-256 KiB.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from coffer.bench import phases
from coffer.bench.phases import FULL, QUICK, Figures, Sizes
from coffer.bench.servers import Server, Spec
from coffer.config import Settings

Results = dict[str, dict[str, Figures]]  # phase -> target label -> figures
Phase = Callable[[Server, Sizes, Callable[[str], None]], Figures]


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (1 min) {five:.2f} (5 min)"


class Bench:
    def __init__(self, specs: list[Spec], sizes: Sizes, workdir: Path) -> None:
        self.sizes = sizes
        self.servers = {spec.label: Server(spec, workdir) for spec in specs}
        self.results: Results = {}

    def __enter__(self) -> Bench:
        try:
            for server in self.servers.values():
                _log(f"starting {server.spec.label} on {server.endpoint.url}")
                server.start()
                phases.ensure_buckets(server)
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        for server in self.servers.values():
            server.stop()

    def run(self, phase: str, fn: Phase, labels: list[str], rounds: int = 1, **kwargs: Any) -> None:
        """Run one phase on each named server in turn (side by side, same minute).

        With ``rounds`` > 1 the servers take turns that many times and each figure
        is the median of its rounds: a minute in which the shared machine slows
        down then costs every server one round, not one server its only one.
        """
        collected: dict[str, list[Figures]] = {}
        for round_no in range(rounds):
            for label in labels:
                server = self.servers.get(label)
                if server is None:
                    continue
                tag = f" (round {round_no + 1}/{rounds})" if rounds > 1 else ""
                _log(f"  {phase:<16} {label}{tag} ...")
                started = time.perf_counter()
                try:
                    figures = fn(server, self.sizes, _log, **kwargs)
                except Exception as exc:
                    figures = {"error": f"{type(exc).__name__}: {exc}"[:300]}
                _log(f"  {phase:<16} {label}: {_brief(figures)} ({time.perf_counter() - started:.1f}s)")
                collected.setdefault(label, []).append(figures)
        for label, runs in collected.items():
            self.results.setdefault(phase, {})[label] = _median_figures(runs)


def _median_figures(runs: list[Figures]) -> Figures:
    """One figure set from several rounds: the median of each number, the first error if any."""
    if len(runs) == 1:
        return runs[0]
    for figures in runs:
        if "error" in figures:
            return figures
    merged: Figures = {}
    for key, value in runs[0].items():
        values = [r.get(key) for r in runs]
        if isinstance(value, int | float) and all(isinstance(v, int | float) for v in values):
            merged[key] = statistics.median(values)  # type: ignore[type-var]
        else:
            merged[key] = value
    merged["rounds"] = len(runs)
    return merged


def _brief(figures: Figures) -> str:
    return ", ".join(f"{k}={_num(v)}" for k, v in figures.items())


def _num(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    return str(value)


# ---------------------------------------------------------------------- main suite

COFFER = "coffer"
COFFER_NOSYNC = "coffer fsync=never"
MOTO = "moto"
BARE = "bare"


def _main_specs(endpoint: str | None, compare: bool, asgi: str, workers: int) -> list[Spec]:
    if endpoint is not None:
        specs = [Spec("endpoint", "endpoint", url=endpoint)]
    else:
        specs = [Spec(COFFER, "coffer", asgi=asgi, workers=workers, fsync="always")]
        if compare:
            specs.append(Spec(COFFER_NOSYNC, "coffer", asgi=asgi, workers=workers, fsync="never"))
    if compare:
        specs.append(Spec(MOTO, "moto"))
        specs.append(Spec(BARE, "bare", asgi=asgi, workers=workers))
    return specs


def run_main(bench: Bench) -> None:
    main = COFFER if COFFER in bench.servers else "endpoint"
    everyone = [main, COFFER_NOSYNC, MOTO, BARE]
    rounds = bench.sizes.rounds
    bench.run("put_4k", phases.small_put, everyone, rounds=rounds)
    bench.run("get_4k", phases.small_get, [main, MOTO, BARE], rounds=rounds)
    bench.run("put_large", phases.large_put, everyone, rounds=rounds)
    bench.run("get_large", phases.large_get, [main, MOTO, BARE], rounds=rounds)
    bench.run("list", phases.listing, [main, MOTO])
    bench.run("list_delimiter", phases.delimiter_listing, [main, MOTO])
    if main == COFFER:
        bench.run("restart", phases.restart, [COFFER])


def _get(results: Results, phase: str, label: str, key: str) -> float | None:
    value = results.get(phase, {}).get(label, {}).get(key)
    return float(value) if isinstance(value, int | float) else None


def main_table(results: Results, sizes: Sizes) -> list[str]:
    labels: list[str] = []
    for per_phase in results.values():
        for label in per_phase:
            if label not in labels:
                labels.append(label)
    large = f"{sizes.large // phases.MIB} MiB"
    rows: list[tuple[str, str, str]] = [
        ("4 KiB PUT, ops/s (c=32)", "put_4k", "ops"),
        ("4 KiB GET, ops/s (c=32)", "get_4k", "ops"),
        (f"{large} PUT, MB/s", "put_large", "mbps"),
        (f"{large} GET, MB/s", "get_large", "mbps"),
        (f"server peak RSS during {large} PUT, MiB", "put_large", "rss_peak_mib"),
        ("  growth over baseline, MiB", "put_large", "rss_growth_mib"),
        (f"list {sizes.list_keys:,} keys page by page, s", "list", "seconds"),
        ("  one 1000-key page (median), ms", "list", "page_ms"),
        (f"delimiter listing -> {phases.PREFIXES} CommonPrefixes, ms", "list_delimiter", "ms"),
        (f"restart with {sizes.list_keys:,}+ objects -> first GET, s", "restart", "seconds"),
    ]
    width = max(len(r[0]) for r in rows) + 2
    lines = ["| figure".ljust(width + 2) + "".join(f"| {label:>18} " for label in labels) + "|"]
    lines.append("|" + "-" * (width + 1) + "".join("|" + "-" * 20 for _ in labels) + "|")
    for title, phase, key in rows:
        cells = []
        for label in labels:
            figures = results.get(phase, {}).get(label)
            if figures is None:
                cells.append("")
            elif "error" in figures:
                cells.append("error")
            else:
                value = figures.get(key)
                cells.append("" if value is None else _num(value))
        lines.append(f"| {title}".ljust(width + 2) + "".join(f"| {c:>18} " for c in cells) + "|")
    errors = [
        f"{phase} / {label}: {figures['error']}"
        for phase, per in results.items()
        for label, figures in per.items()
        if "error" in figures
    ]
    errors += [
        f"{phase} / {label}: {figures['errors']} failed requests"
        for phase, per in results.items()
        for label, figures in per.items()
        if figures.get("errors")
    ]
    incomplete = [
        f"{phase} / {label}: {figures['complete']}"
        for phase, per in results.items()
        for label, figures in per.items()
        if isinstance(figures.get("complete"), str) and figures["complete"] != "yes"
    ]
    return lines + [f"! {e}" for e in errors + incomplete]


def target_check(results: Results) -> list[str]:
    """The targets of issue 2 (docs/benchmarks.md), each met or missed."""

    def ratio(phase: str, a: str, b: str, key: str, inverse: bool = False) -> float | None:
        x, y = _get(results, phase, a, key), _get(results, phase, b, key)
        if x is None or y is None or x == 0 or y == 0:
            return None
        return y / x if inverse else x / y

    checks: list[tuple[str, float | None, float, str]] = [
        ("4 KiB GET vs moto", ratio("get_4k", COFFER, MOTO, "ops"), 20, "x"),
        ("4 KiB GET vs bare ceiling", ratio("get_4k", COFFER, BARE, "ops"), 0.30, "of"),
        ("4 KiB PUT fsync=never vs moto", ratio("put_4k", COFFER_NOSYNC, MOTO, "ops"), 10, "x"),
        ("4 KiB PUT fsync=always vs moto", ratio("put_4k", COFFER, MOTO, "ops"), 3, "x"),
        ("large PUT vs moto", ratio("put_large", COFFER, MOTO, "mbps"), 3, "x"),
        ("large GET vs moto", ratio("get_large", COFFER, MOTO, "mbps"), 2.5, "x"),
        ("listing vs moto (speed-up)", ratio("list", COFFER, MOTO, "seconds", inverse=True), 10, "x"),
    ]
    lines = []
    for name, value, goal, unit in checks:
        if value is None:
            lines.append(f"  {name:<34} n/a")
            continue
        shown = f"{value:.1%} (goal >= {goal:.0%})" if unit == "of" else f"{value:.1f}x (goal >= {goal}x)"
        lines.append(f"  {name:<34} {shown:<28} {'MET' if value >= goal else 'MISSED'}")
    growth = _get(results, "put_large", COFFER, "rss_growth_mib")
    if growth is not None:
        lines.append(
            f"  {'large PUT memory growth':<34} {f'{growth:.1f} MiB (goal < 64)':<28} "
            f"{'MET' if growth < 64 else 'MISSED'}"
        )
    delim, page = _get(results, "list_delimiter", COFFER, "ms"), _get(results, "list", COFFER, "page_ms")
    if delim is not None and page is not None:
        lines.append(
            f"  {'delimiter listing vs one page':<34} {f'{delim:.1f} ms vs {page:.1f} ms':<28} "
            f"{'MET' if delim <= 2 * page else 'MISSED'}"
        )
    restart = _get(results, "restart", COFFER, "seconds")
    if restart is not None:
        lines.append(f"  {'restart':<34} {f'{restart:.2f} s (goal < 1 s)':<28} {'MET' if restart < 1 else 'MISSED'}")
    return lines


# ---------------------------------------------------------------------- asgi suite


def run_asgi(sizes: Sizes, workdir: Path) -> tuple[Results, list[str]]:
    specs = []
    for asgi in ("uvicorn", "granian"):
        for workers in (1, 2):
            specs.append(Spec(f"bare {asgi} w{workers}", "bare", asgi=asgi, workers=workers))
            specs.append(Spec(f"coffer {asgi} w{workers}", "coffer", asgi=asgi, workers=workers, fsync="never"))
            specs.append(Spec(f"coffer {asgi} w{workers} fsync", "coffer", asgi=asgi, workers=workers, fsync="always"))
    with Bench(specs, sizes, workdir) as bench:
        labels = list(bench.servers)
        bench.run("get_4k", phases.small_get, labels)
        bench.run("put_4k", phases.small_put, labels)
        large = [label for label in labels if not label.endswith("fsync")]
        bench.run("put_large", phases.large_put, large)
        bench.run("get_large", phases.large_get, large)
    lines = [
        "| server | workers | bare GET | bare PUT | Coffer GET | Coffer PUT (never) | Coffer PUT (always) "
        "| bare large PUT | bare large GET | Coffer large PUT | Coffer large GET |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    r = bench.results
    for asgi in ("uvicorn", "granian"):
        for workers in (1, 2):
            bare, coffer = f"bare {asgi} w{workers}", f"coffer {asgi} w{workers}"
            cells = [
                _get(r, "get_4k", bare, "ops"),
                _get(r, "put_4k", bare, "ops"),
                _get(r, "get_4k", coffer, "ops"),
                _get(r, "put_4k", coffer, "ops"),
                _get(r, "put_4k", f"{coffer} fsync", "ops"),
                _get(r, "put_large", bare, "mbps"),
                _get(r, "get_large", bare, "mbps"),
                _get(r, "put_large", coffer, "mbps"),
                _get(r, "get_large", coffer, "mbps"),
            ]
            lines.append(f"| {asgi} | {workers} | " + " | ".join("" if c is None else _num(c) for c in cells) + " |")
    return bench.results, lines


# ---------------------------------------------------------------------- inline suite

INLINE_SIZES = (4, 64, 128, 256)


def run_inline(sizes: Sizes, workdir: Path, asgi: str, workers: int) -> tuple[Results, list[str]]:
    specs = []
    for fsync in ("always", "never"):
        specs.append(Spec(f"files {fsync}", "coffer", asgi=asgi, workers=workers, fsync=fsync, inline_threshold=0))
        specs.append(
            Spec(f"inline {fsync}", "coffer", asgi=asgi, workers=workers, fsync=fsync, inline_threshold=256 * 1024)
        )
    with Bench(specs, sizes, workdir) as bench:
        labels = list(bench.servers)
        for kib in INLINE_SIZES:
            bench.run(f"put_{kib}k", phases.small_put, labels, size=kib * 1024)
            bench.run(f"get_{kib}k", phases.small_get, labels, size=kib * 1024)
    r = bench.results
    lines = ["| size | fsync | PUT files | PUT inline | GET files | GET inline |", "|---|---|---|---|---|---|"]
    for kib in INLINE_SIZES:
        for fsync in ("always", "never"):
            cells = [
                _get(r, f"put_{kib}k", f"files {fsync}", "ops"),
                _get(r, f"put_{kib}k", f"inline {fsync}", "ops"),
                _get(r, f"get_{kib}k", f"files {fsync}", "ops"),
                _get(r, f"get_{kib}k", f"inline {fsync}", "ops"),
            ]
            lines.append(f"| {kib} KiB | {fsync} | " + " | ".join("" if c is None else _num(c) for c in cells) + " |")
    return r, lines


# ---------------------------------------------------------------------- entry point


def run_bench(
    endpoint: str | None = None,
    quick: bool = False,
    compare: bool = True,
    *,
    suite: str = "main",
    asgi: str = "uvicorn",
    workers: int | None = None,
    duration: float | None = None,
    json_path: str | None = None,
) -> Results:
    sizes = QUICK if quick else FULL
    if duration is not None:
        sizes = Sizes(**{**sizes.__dict__, "duration": duration})
    workers = workers if workers is not None else Settings().workers
    workdir = Path(tempfile.mkdtemp(prefix="coffer-bench-"))
    started = time.time()
    header = [
        f"coffer bench: suite {suite}{' (quick)' if quick else ''}, {os.cpu_count()} CPUs, {_load()} at start",
        f"python {sys.version.split()[0]}, asgi server {asgi}, {workers} worker(s); "
        f"small phases: {sizes.connections} connections, {sizes.warmup}s warm-up + {sizes.duration}s measured",
    ]
    for line in header:
        _log(line)
    try:
        if suite == "asgi":
            results, lines = run_asgi(sizes, workdir)
        elif suite == "inline":
            results, lines = run_inline(sizes, workdir, asgi, workers)
        else:
            with Bench(_main_specs(endpoint, compare, asgi, workers), sizes, workdir) as bench:
                run_main(bench)
            results = bench.results
            lines = main_table(results, sizes)
            if compare and endpoint is None:
                lines += ["", "targets (issue 2):", *target_check(results)]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    lines += ["", f"{_load()} at end, {time.time() - started:.0f}s in all"]
    print("\n".join([*header, "", *lines]), flush=True)
    if json_path:
        Path(json_path).write_text(json.dumps({"sizes": sizes.__dict__, "results": results}, indent=1))
    return results
