"""Dashboard benchmark: 500 KPIs × 3 years × 4 runs a day (~2.2M observations) in SQLite.

The store is generated once into benchmarks/cache/ (gitignored, like every *.db) and reused;
the dashboard then answers over real HTTP (uvicorn on 127.0.0.1) and each request's wall
time is measured from the client. Targets: overview API <= 100 ms, one series <= 50 ms
(medians).

Usage: ``python benchmarks/bench_dashboard.py [--runs 21] [--regenerate]``
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchlib import BENCH_DIR, Check, Report, fmt_s, median, print_report

KPIS = 500
DAYS = 3 * 365
HOURS = (1, 7, 13, 19)
END = datetime(
    2026, 1, 1, tzinfo=UTC
)  # fixed, so the cached store stays valid; the clock is set to it
CACHE = BENCH_DIR / "cache" / "dashboard-500x3y.db"
OVERVIEW_TARGET_S = 0.100
SERIES_TARGET_S = 0.050
TIMEZONE = "Europe/Berlin"


def kpi_id(k: int) -> str:
    return f"src{k % 50}.m{k}"


def generate(path: Path) -> float:
    """Write the store (schema by HistoryStore, rows by sqlite3 for speed); returns seconds."""
    from kpi_collector.store import HistoryStore

    started = time.perf_counter()
    path.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    store = HistoryStore(f"sqlite:///{path}")
    store.migrate()
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    first = END.timestamp() - DAYS * 86400
    run_id = 0
    runs: list[tuple[int, float, float, str, str, int, int]] = []
    obs: list[tuple[int, str, float, float, str, int]] = []

    def flush() -> None:
        conn.executemany(
            "INSERT INTO runs (id, started_at, finished_at, status, trigger, n_values, n_errors)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            runs,
        )
        conn.executemany(
            "INSERT INTO observations (run_id, kpi, ts, value, source, backfilled) VALUES (?, ?, ?, ?, ?, ?)",
            obs,
        )
        runs.clear()
        obs.clear()

    for day in range(DAYS):
        for hour in HOURS:
            run_id += 1
            ts = first + day * 86400 + hour * 3600
            runs.append((run_id, ts, ts + 4.2, "ok", "schedule", KPIS, 0))
            for k in range(KPIS):
                value = 1000 + k + day * (k % 7) + (hour if k % 10 else 0)
                obs.append((run_id, kpi_id(k), ts, float(value), f"src{k % 50}", 0))
        if len(obs) >= 200_000:
            flush()
    flush()
    conn.execute(
        "INSERT OR REPLACE INTO kpi_meta (key, value) VALUES ('bench_dashboard', 'complete')"
    )
    conn.commit()
    conn.close()
    return time.perf_counter() - started


def is_complete(path: Path) -> bool:
    if not path.exists():
        return False
    try:
        with sqlite3.connect(path) as conn:
            row = conn.execute(
                "SELECT value FROM kpi_meta WHERE key = 'bench_dashboard'"
            ).fetchone()
    except sqlite3.Error:
        return False
    return row is not None and row[0] == "complete"


def write_config(folder: Path, store: Path) -> Path:
    lines = [
        f"store: sqlite:///{store}",
        f"timezone: {TIMEZONE}",
        f"north_star: {kpi_id(0)}",
        "kpis:",
    ]
    for k in range(0, KPIS, 5):  # every fifth KPI has a title and a target, every tenth sums
        agg = ", agg: sum" if k % 10 == 5 else ""
        lines.append(f"  {kpi_id(k)}: {{title: KPI number {k}, target: {5000 + k}{agg}}}")
    lines.append("sources:")
    for s in range(50):
        metrics = ", ".join(f"m{k}: data.m{k}" for k in range(s, KPIS, 50))
        lines.append(
            f"  - {{name: src{s}, type: http_json, url: http://127.0.0.1:9/{s}, metrics: {{{metrics}}}}}"
        )
    path = folder / "kpi.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(session: Any, url: str, runs: int, pid: int) -> tuple[float, float, int, float]:
    """(median s, 90th percentile s, bytes, server CPU s per request) of GET url after two
    warm-up requests."""
    for _ in range(2):
        session.get(url).raise_for_status()
    walls = []
    size = 0
    cpu = cpu_seconds(pid)
    for _ in range(runs):
        start = time.perf_counter()
        response = session.get(url)
        walls.append(time.perf_counter() - start)
        response.raise_for_status()
        size = len(response.content)
    cpu = (cpu_seconds(pid) - cpu) / runs
    walls.sort()
    return median(walls), walls[max(int(len(walls) * 0.9) - 1, 0)], size, cpu


def serve(port: int, cache: bool) -> None:
    """The child process: the dashboard over the cached store, its clock at the data's end."""
    import uvicorn

    from kpi_collector.config import load_config
    from kpi_collector.report.data import DashboardData
    from kpi_collector.report.web import create_app

    with tempfile.TemporaryDirectory(prefix="kpi-bench-dash-") as tmp:
        config = load_config(write_config(Path(tmp), CACHE))
        data = DashboardData(config, clock=lambda: END.timestamp() - 3600, cache=cache)
        data.refresh()
        uvicorn.run(
            create_app(config, data=data),
            host="127.0.0.1",
            port=port,
            log_level="warning",
            access_log=False,
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure_server(
    cache: bool, runs: int, cases: list[tuple[str, str, float | None]]
) -> list[Check]:
    import requests

    port = free_port()
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port), *([] if cache else ["--no-cache"])]
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        with requests.Session() as session:
            while True:
                try:
                    session.get(url + "/healthz", timeout=5).raise_for_status()
                    break
                except requests.RequestException:
                    if child.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("the dashboard did not start") from None
                    time.sleep(0.2)
            checks = []
            label = "cached" if cache else "uncached"
            for what, path, target in cases:
                mid, p90, size, cpu = timed(session, url + path, runs, child.pid)
                measured = (
                    f"{fmt_s(mid)} (p90 {fmt_s(p90)}, server CPU {fmt_s(cpu)}, {size // 1024} KiB)"
                )
                name = f"{what} [{label}]"
                if target is None:
                    checks.append(Check(name, measured, "", None))
                else:
                    checks.append(Check(name, measured, f"<= {fmt_s(target)}", mid <= target))
            return checks
    finally:
        child.terminate()
        child.wait(timeout=30)


def run_benchmark(runs: int, regenerate: bool = False) -> Report:
    from kpi_collector.config import load_config
    from kpi_collector.report.data import DashboardData

    notes = []
    if regenerate or not is_complete(CACHE):
        seconds = generate(CACHE)
        notes.append(f"generated {CACHE.relative_to(BENCH_DIR.parent)} in {seconds:.0f} s")
    with sqlite3.connect(CACHE) as conn:
        count = conn.execute("SELECT max(id) FROM observations").fetchone()[0]
    with tempfile.TemporaryDirectory(prefix="kpi-bench-dash-") as tmp:
        data = DashboardData(load_config(write_config(Path(tmp), CACHE)))
        started = time.perf_counter()
        data.refresh()
        rollup_s = time.perf_counter() - started
        data.close()
    if rollup_s > 1:
        notes.append(f"first rollup of the store (once per store and time zone): {rollup_s:.0f} s")
    star, summed = kpi_id(0), kpi_id(5)
    cases: list[tuple[str, str, float | None]] = [
        ("overview API /api/kpis (day)", "/api/kpis", OVERVIEW_TARGET_S),
        ("overview API /api/kpis?period=week", "/api/kpis?period=week", OVERVIEW_TARGET_S),
        ("overview API /api/kpis?period=month", "/api/kpis?period=month", OVERVIEW_TARGET_S),
        (
            "one series, day, 90 days (+ comparisons)",
            f"/api/kpis/{star}/series?period=day&range=90d",
            SERIES_TARGET_S,
        ),
        (
            "one series, week, 1 year (+ comparisons)",
            f"/api/kpis/{star}/series?period=week&range=1y",
            SERIES_TARGET_S,
        ),
        ("one series, day, all 3 years", f"/api/kpis/{star}/series?period=day", SERIES_TARGET_S),
        (
            "one series, agg sum, month, all",
            f"/api/kpis/{summed}/series?period=month",
            SERIES_TARGET_S,
        ),
        ("overview page / (HTML)", "/", None),
        ("/metrics", "/metrics", None),
        ("/api/runs", "/api/runs", None),
    ]
    checks = measure_server(False, runs, cases) + measure_server(True, runs, cases)
    notes.append(
        f"{count:,} observations of {KPIS} KPIs over {DAYS} days, {len(HOURS)} runs a day, SQLite"
    )
    notes.append(
        f"wall time per request from an HTTP client on 127.0.0.1 to `kpi serve`'s app in its own process, "
        f"median of {runs} after 2 warm-ups; [uncached]: every request computes its document from the store "
        "(rollup + HistoryStore.series); [cached]: documents reused until the store changes; "
        "server CPU: the dashboard process's user+system time per request (mean), which other jobs "
        "on the machine do not inflate as much as wall time"
    )
    return Report(
        "Dashboard (500 KPIs × 3 years)",
        f"python benchmarks/bench_dashboard.py --runs {runs}",
        checks,
        notes,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--regenerate", action="store_true", help="Write the cached store again.")
    parser.add_argument("--serve", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument("--no-cache", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve(args.serve, cache=not args.no_cache)
        return 0
    report = run_benchmark(args.runs, args.regenerate)
    print_report(report)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
