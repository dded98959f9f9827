"""Active users: the full-year daily DAU/WAU/MAU series from 10 million events.

Four ways to the same series over the same Parquet file, each in its own process:

- ``ours``: ``kpi_collector.sources.active_users.activity.daily_series`` (DuckDB, linear).
- ``linear``: the linear DuckDB query written plainly here (the yardstick: ours should
  cost at most 1.2x of it).
- ``pandas``: a per-day loop of ``nunique`` over the trailing 30/7/1 days (naive).
- ``range_join``: DuckDB joining every day with the user-days of its 30-day window (naive).

Then 1 million events in a PostgreSQL table: ``daily_series`` there, how many rows come
back, PostgreSQL's own execution time for the query (``EXPLAIN ANALYZE``), and what fetching
the raw events into Python would cost instead.

Every variant's series is checked to be identical. Timing: ``time.perf_counter`` around the
computation in the child (reading the file included); peak RSS from ``os.wait4``.

Usage: ``python benchmarks/bench_active_users.py [--quick] [--runs 5] [--naive-runs 3]``
(writes benchmarks/RESULTS-active-users.md unless ``--quick`` or ``--no-write``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from benchlib import PYTHON, ProcessRun, machine_info, measure, median  # noqa: E402

DATA_DIR = BENCH_DIR / ".data"
RESULTS = BENCH_DIR / "RESULTS-active-users.md"
FILE_VARIANTS = ("ours", "linear", "pandas", "range_join")
NAIVE = ("pandas", "range_join")
POSTGRES_URL = os.environ.get(
    "KPI_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)

# --- the data ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Size:
    events: int
    days: int
    users: int
    seed: int = 20240101

    @property
    def path(self) -> Path:
        name = f"events-{self.events}-{self.days}d-{self.users}u-s{self.seed}.parquet"
        return DATA_DIR / name


FULL = Size(10_000_000, 365, 200_000)
FULL_PG = Size(1_000_000, 365, 20_000)
QUICK = Size(200_000, 60, 5_000)
QUICK_PG = Size(50_000, 60, 2_000)


def ensure_data(size: Size) -> Path:
    """Events as a product's telemetry looks: heavy-tailed activity per user, users
    arriving through the year and active from then on; times to the second, in time order.
    Cached: the same size and seed give the same file."""
    if size.path.exists():
        return size.path
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    DATA_DIR.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(size.seed)
    weights = rng.pareto(1.5, size.users) + 0.05
    user = rng.choice(size.users, size=size.events, p=weights / weights.sum())
    arrival = rng.integers(0, size.days, size=size.users)[user]
    day = arrival + (rng.random(size.events) * (size.days - arrival)).astype(np.int64)
    start = np.datetime64("2024-01-01T00:00:00", "s").astype(np.int64)
    seconds = start + day * 86400 + rng.integers(0, 86400, size=size.events)
    order = np.argsort(seconds, kind="stable")
    table = pa.table(
        {
            "user_id": pa.array(user[order].astype(np.int64)),
            "ts": pa.array(seconds[order] * 1_000_000, pa.timestamp("us", tz="UTC")),
        }
    )
    partial = size.path.with_suffix(".tmp")
    pq.write_table(table, partial, row_group_size=1_000_000)
    partial.rename(size.path)
    return size.path


# --- the variants (run in child processes) ----------------------------------------------------

LINEAR_SQL = """
WITH user_days AS (
  SELECT DISTINCT user_id, {day} AS day FROM read_parquet($path)
), spans AS (
  SELECT day, lead(day) OVER (PARTITION BY user_id ORDER BY day) AS next_day FROM user_days
), changes AS (
  SELECT day, 1 AS dau, 1 AS wau, 1 AS mau FROM spans
  UNION ALL SELECT day + 1, -1, 0, 0 FROM spans
  UNION ALL SELECT least(day + 7, coalesce(next_day, day + 7)), 0, -1, 0 FROM spans
  UNION ALL SELECT least(day + 30, coalesce(next_day, day + 30)), 0, 0, -1 FROM spans
), per_day AS (
  SELECT day, sum(dau) AS dau, sum(wau) AS wau, sum(mau) AS mau FROM changes GROUP BY day
)
SELECT day, sum(dau) OVER w, sum(wau) OVER w, sum(mau) OVER w,
       (SELECT min(day) FROM user_days), (SELECT max(day) FROM user_days)
FROM per_day WINDOW w AS (ORDER BY day) ORDER BY day
"""

RANGE_JOIN_SQL = """
WITH user_days AS (
  SELECT DISTINCT user_id, {day} AS day FROM read_parquet($path)
), calendar AS (
  SELECT CAST(range AS DATE) AS day
  FROM range((SELECT CAST(min(day) AS TIMESTAMP) FROM user_days),
             (SELECT CAST(max(day) AS TIMESTAMP) FROM user_days) + INTERVAL 1 DAY,
             INTERVAL 1 DAY)
)
SELECT c.day,
       count(DISTINCT u.user_id) FILTER (WHERE u.day = c.day) AS dau,
       count(DISTINCT u.user_id) FILTER (WHERE u.day > c.day - 7) AS wau,
       count(DISTINCT u.user_id) AS mau
FROM calendar AS c JOIN user_days AS u ON u.day BETWEEN c.day - 29 AND c.day
GROUP BY c.day ORDER BY c.day
"""

Series = list[tuple[str, int, int, int]]


def duckdb_day(timezone: str) -> str:
    return "CAST(ts AS DATE)" if timezone == "UTC" else "CAST(timezone($tz, ts) AS DATE)"


def duckdb_rows(sql: str, path: str, timezone: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` (a query on ``$path`` with a ``{day}`` placeholder for the local
    day of ``ts``) in a fresh DuckDB connection whose session zone is UTC."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    params: dict[str, Any] = {"path": path}
    if timezone != "UTC":
        params["tz"] = timezone
    return con.execute(sql.format(day=duckdb_day(timezone)), params).fetchall()


def run_ours(path: str, timezone: str) -> Series:
    from kpi_collector.sources.active_users.activity import daily_series

    series = daily_series(path, user="user_id", time="ts", timezone=timezone)
    return [
        (d.day.isoformat(), int(d.values["dau"]), int(d.values["wau"]), int(d.values["mau"]))
        for d in series
    ]


def run_linear(path: str, timezone: str) -> Series:
    rows = duckdb_rows(LINEAR_SQL, path, timezone)
    if not rows:
        return []
    first, last = rows[0][4], rows[0][5]
    # The query gives the days where a count changes; a day in between keeps the counts.
    by_day = {row[0]: row[1:4] for row in rows}
    series: Series = []
    counts = (0, 0, 0)
    day = first
    while day <= last:
        counts = by_day.get(day, counts)
        series.append((day.isoformat(), int(counts[0]), int(counts[1]), int(counts[2])))
        day += timedelta(days=1)
    return series


def run_range_join(path: str, timezone: str) -> Series:
    rows = duckdb_rows(RANGE_JOIN_SQL, path, timezone)
    return [(row[0].isoformat(), int(row[1]), int(row[2]), int(row[3])) for row in rows]


def run_pandas(path: str, timezone: str) -> Series:
    import pandas as pd

    frame = pd.read_parquet(path, columns=["user_id", "ts"])
    local = frame["ts"].dt.tz_convert(timezone).dt.tz_localize(None)
    frame["day"] = local.dt.floor("D")
    series: Series = []
    for day in pd.date_range(frame["day"].min(), frame["day"].max(), freq="D"):
        month = frame[(frame["day"] > day - pd.Timedelta(days=30)) & (frame["day"] <= day)]
        week = month[month["day"] > day - pd.Timedelta(days=7)]
        today = week[week["day"] == day]
        series.append(
            (
                day.date().isoformat(),
                int(today["user_id"].nunique()),
                int(week["user_id"].nunique()),
                int(month["user_id"].nunique()),
            )
        )
    return series


def run_postgres(url: str, table: str, timezone: str) -> tuple[Series, dict[str, Any]]:
    """Our series from a PostgreSQL table; what came back, and PostgreSQL's own time."""
    import sqlalchemy as sa

    from kpi_collector.sources.active_users.activity import EventTable, daily_series

    engine = sa.create_engine(url)
    captured: dict[str, Any] = {}

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if "au_user_days" in statement:
            captured.update(statement=statement, parameters=parameters, rows=cursor.rowcount)

    sa.event.listen(engine, "after_cursor_execute", capture)
    start = time.perf_counter()
    series = daily_series(EventTable(engine, table), user="user_id", time="ts", timezone=timezone)
    seconds = time.perf_counter() - start
    sa.event.remove(engine, "after_cursor_execute", capture)
    # The same statement again under EXPLAIN ANALYZE, outside the timed part.
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) " + captured["statement"], captured["parameters"]
        )
        explained = cursor.fetchone()
        assert explained is not None
        plan = explained[0][0]
    finally:
        raw.close()
        engine.dispose()
    nodes: list[str] = []

    def walk(node: dict[str, Any]) -> None:
        nodes.append(node["Node Type"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"])
    extra = {
        "seconds": seconds,
        "rows_returned": captured["rows"],
        "server_execution_s": plan["Execution Time"] / 1000,
        "plan_nodes": sorted(set(nodes)),
    }
    return [
        (d.day.isoformat(), int(d.values["dau"]), int(d.values["wau"]), int(d.values["mau"]))
        for d in series
    ], extra


def run_postgres_fetch(url: str, table: str) -> dict[str, Any]:
    """What moving the events instead of the results costs: fetch every (user, ts) row."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    quoted = engine.dialect.identifier_preparer.quote_identifier(table)
    start = time.perf_counter()
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT user_id, ts FROM {quoted}")).fetchall()
    seconds = time.perf_counter() - start
    engine.dispose()
    return {"seconds": seconds, "rows_returned": len(rows)}


def checksum(series: Series) -> str:
    return hashlib.sha256(json.dumps(series).encode()).hexdigest()[:16]


def child(args: argparse.Namespace) -> None:
    """One measured variant, or a piece of preparation that needs the heavy libraries (kept
    out of the parent: a child's peak RSS starts at its parent's size at fork)."""
    if args.child in PREPARE:
        print(json.dumps(PREPARE[args.child](args)))
        return
    # Imports are not part of the measured time.
    if args.child == "pandas":
        import pandas  # noqa: F401
    else:
        import duckdb  # noqa: F401
    if args.child in ("ours", "postgres"):
        import kpi_collector.sources.active_users.activity  # noqa: F401
    extra: dict[str, Any] = {}
    start = time.perf_counter()
    if args.child == "postgres":
        series, extra = run_postgres(args.pg_url, args.pg_table, args.timezone)
        seconds = extra.pop("seconds")
    elif args.child == "postgres_fetch":
        extra = run_postgres_fetch(args.pg_url, args.pg_table)
        print(json.dumps({"seconds": extra.pop("seconds"), **extra}))
        return
    else:
        runner = {
            "ours": run_ours,
            "linear": run_linear,
            "pandas": run_pandas,
            "range_join": run_range_join,
        }[args.child]
        series = runner(args.data, args.timezone)
        seconds = time.perf_counter() - start
    summary = {
        "seconds": seconds,
        "days": len(series),
        "checksum": checksum(series),
        "first": series[0] if series else None,
        "peak_mau": max((row[3] for row in series), default=0),
        **extra,
    }
    print(json.dumps(summary))


# --- the parent -----------------------------------------------------------------------------


@dataclass
class Runs:
    seconds: list[float] = field(default_factory=list)
    wall: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)

    def add(self, run: ProcessRun) -> dict[str, Any]:
        if run.returncode != 0:
            raise RuntimeError(f"{' '.join(run.argv)} failed:\n{run.stderr[-3000:]}")
        result = run.json_line()
        self.seconds.append(float(result["seconds"]))
        self.wall.append(run.wall_s)
        self.rss_mb.append(run.max_rss_mb)
        self.results.append(result)
        return result


def child_argv(variant: str, data: Path | None, timezone: str, **pg: str) -> list[str]:
    argv = [PYTHON, str(Path(__file__).resolve()), "--child", variant, "--timezone", timezone]
    if data is not None:
        argv += ["--data", str(data)]
    if pg:
        argv += ["--pg-url", pg["url"], "--pg-table", pg["table"]]
    return argv


def bench_files(path: Path, timezone: str, runs: int, naive_runs: int) -> dict[str, Runs]:
    measured = {variant: Runs() for variant in FILE_VARIANTS}
    # Interleaved, so that a busy moment of the machine hits every variant alike.
    for round_ in range(max(runs, naive_runs)):
        for variant in FILE_VARIANTS:
            if round_ >= (naive_runs if variant in NAIVE else runs):
                continue
            result = measured[variant].add(measure(child_argv(variant, path, timezone)))
            print(
                f"  run {round_ + 1} {variant:<10} {result['seconds']:8.2f} s "
                f"rss {measured[variant].rss_mb[-1]:7.0f} MB  series {result['checksum']}",
                flush=True,
            )
    checksums = {v: {r["checksum"] for r in m.results} for v, m in measured.items()}
    if len({c for s in checksums.values() for c in s}) != 1:
        raise SystemExit(f"the variants disagree on the series: {checksums}")
    return measured


def postgres_available(url: str) -> str | None:
    """None if PostgreSQL answers at ``url``, else the reason."""
    try:
        import sqlalchemy as sa

        engine = sa.create_engine(url)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


def load_postgres(url: str, table: str, path: Path) -> None:
    import pyarrow.parquet as pq
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    quoted = engine.dialect.identifier_preparer.quote_identifier(table)
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute(f"CREATE TABLE {quoted} (user_id bigint NOT NULL, ts timestamptz NOT NULL)")
        with cursor.copy(f"COPY {quoted} (user_id, ts) FROM STDIN") as copy:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=100_000):
                for user, ts in zip(
                    batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True
                ):
                    copy.write_row((user, ts))
        cursor.execute(f"ANALYZE {quoted}")
        raw.commit()
    finally:
        raw.close()
        engine.dispose()


def drop_postgres(url: str, table: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    quoted = engine.dialect.identifier_preparer.quote_identifier(table)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {quoted}"))
    engine.dispose()


def bench_postgres(size: Size, timezone: str, runs: int) -> dict[str, Any]:
    pg = {"url": POSTGRES_URL, "table": f"kpi_bench_events_{uuid.uuid4().hex[:10]}"}
    prepared = helper("prepare_postgres", size, pg)
    if "skipped" in prepared:
        return prepared
    try:
        ours, fetch, files = Runs(), Runs(), Runs()
        for round_ in range(runs):
            result = ours.add(measure(child_argv("postgres", None, timezone, **pg)))
            fetch.add(measure(child_argv("postgres_fetch", None, timezone, **pg)))
            print(
                f"  run {round_ + 1} postgres   {result['seconds']:8.2f} s "
                f"(server {result['server_execution_s']:.2f} s) rows back "
                f"{result['rows_returned']}, fetch-all {fetch.seconds[-1]:.2f} s",
                flush=True,
            )
        files.add(measure(child_argv("ours", Path(prepared["path"]), timezone)))
    finally:
        helper("cleanup_postgres", pg=pg)
    same = {r["checksum"] for r in ours.results} == {files.results[0]["checksum"]}
    if not same:
        raise SystemExit("PostgreSQL and the Parquet file disagree on the series")
    return {"ours": ours, "fetch": fetch, "load_s": prepared["load_s"], "same_as_files": same}


def user_days(path: Path) -> int:
    import duckdb

    con = duckdb.connect()
    query = "SELECT count(*) FROM (SELECT DISTINCT user_id, CAST(ts AS DATE) FROM read_parquet($p))"
    row = con.execute(query, {"p": str(path)}).fetchone()
    return int(row[0]) if row else 0


def size_of(args: argparse.Namespace) -> Size:
    return Size(*(int(part) for part in args.size.split(",")))


def prepare_data(args: argparse.Namespace) -> dict[str, Any]:
    path = ensure_data(size_of(args))
    return {"path": str(path), "user_days": user_days(path), "mib": path.stat().st_size / 2**20}


def prepare_postgres(args: argparse.Namespace) -> dict[str, Any]:
    reason = postgres_available(args.pg_url)
    if reason is not None:
        return {"skipped": f"PostgreSQL not reachable at {args.pg_url}: {reason}"}
    path = ensure_data(size_of(args))
    start = time.perf_counter()
    load_postgres(args.pg_url, args.pg_table, path)
    return {"path": str(path), "load_s": time.perf_counter() - start}


def cleanup_postgres(args: argparse.Namespace) -> dict[str, Any]:
    drop_postgres(args.pg_url, args.pg_table)
    return {"dropped": args.pg_table}


PREPARE = {
    "prepare_data": prepare_data,
    "prepare_postgres": prepare_postgres,
    "cleanup_postgres": cleanup_postgres,
}


def helper(name: str, size: Size | None = None, pg: dict[str, str] | None = None) -> dict[str, Any]:
    argv = [PYTHON, str(Path(__file__).resolve()), "--child", name]
    if size is not None:
        argv += ["--size", f"{size.events},{size.days},{size.users},{size.seed}"]
    if pg:
        argv += ["--pg-url", pg["url"], "--pg-table", pg["table"]]
    run = measure(argv)
    if run.returncode != 0:
        raise SystemExit(f"{name} failed:\n{run.stderr[-3000:]}")
    return run.json_line()


def fmt(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def render(
    command: str,
    info: dict[str, str],
    size: Size,
    data: dict[str, Any],
    files: dict[str, Runs],
    postgres: dict[str, Any],
    pg_size: Size,
    timezone: str,
    *,
    quick: bool,
) -> str:
    def verdict(passed: bool) -> str:
        # At --quick sizes fixed costs dominate; the targets are for the full size.
        return "info (quick)" if quick else ("pass" if passed else "FAIL")

    ours = median(files["ours"].seconds)
    ratio_linear = ours / median(files["linear"].seconds)
    ratio_pandas = median(files["pandas"].seconds) / ours
    ratio_join = median(files["range_join"].seconds) / ours
    lines = [
        "# Active users benchmark",
        "",
        f"Written by `{command}` on {info['date']}.",
        "",
        f"- Machine: {info['nproc']} CPUs ({info['cpu']}), {info['platform']}, "
        f"Python {info['python']}",
        f"- Load average at start: {info['loadavg']}; at the end: {machine_info()['loadavg']}"
        " (other work on this shared machine slows every variant; the variants run"
        " interleaved so that it hits them alike)",
        f"- Data: {size.events:,} events of {size.users:,} users over {size.days} days in one"
        f" Parquet file ({data['mib']:.0f} MiB, cached in"
        f" benchmarks/.data/), {data['user_days']:,} distinct user-days; days in {timezone}.",
        f"- The task: the daily DAU, WAU and MAU for every one of the {size.days} days. Every"
        " variant's"
        " series was checked to be identical (same SHA-256 of the day-by-day numbers).",
        "- Time: `time.perf_counter` around the computation in a child process, reading the"
        " file included; peak RSS of that child from `os.wait4`; medians.",
        "",
        "| variant | median time | runs | median peak RSS | what it is |",
        "|---|---:|---:|---:|---|",
    ]
    what = {
        "ours": "`kpi_collector.sources.active_users.activity.daily_series`",
        "linear": "the linear DuckDB query, written plainly in the script",
        "pandas": "pandas, per day `nunique` over the trailing 30/7/1 days (every day, no sampling)",
        "range_join": "DuckDB, every day joined with the user-days of its 30-day window",
    }
    for variant, runs in files.items():
        lines.append(
            f"| {variant} | {fmt(median(runs.seconds))} | {len(runs.seconds)} | "
            f"{median(runs.rss_mb):.0f} MB | {what[variant]} |"
        )
    lines += [
        "",
        "| check | measured | target | result |",
        "|---|---:|---|---|",
        f"| ours / linear query | {ratio_linear:.2f}x | <= 1.2x | {verdict(ratio_linear <= 1.2)} |",
        f"| pandas loop / ours | {ratio_pandas:.1f}x | >= 20x | {verdict(ratio_pandas >= 20)} |",
        f"| DuckDB range join / ours | {ratio_join:.1f}x | >= 20x | {verdict(ratio_join >= 20)} |",
        f"| peak RSS, ours | {median(files['ours'].rss_mb):.0f} MB | bounded: events never"
        " in Python | info |",
        "",
        "## PostgreSQL",
        "",
    ]
    if "skipped" in postgres:
        lines += [f"Skipped: {postgres['skipped']}", ""]
        return "\n".join(lines)
    ours_pg: Runs = postgres["ours"]
    fetch: Runs = postgres["fetch"]
    first = ours_pg.results[0]
    lines += [
        f"{pg_size.events:,} events of {pg_size.users:,} users over {pg_size.days} days in a"
        f" PostgreSQL table (loaded with COPY in {postgres['load_s']:.1f} s, dropped after).",
        "",
        "| measure | median |",
        "|---|---:|",
        f"| `daily_series` on the table, client wall time | {fmt(median(ours_pg.seconds))} |",
        "| the same query, PostgreSQL's own execution time (EXPLAIN ANALYZE) |"
        f" {fmt(median([r['server_execution_s'] for r in ours_pg.results]))} |",
        f"| rows sent to Python | {first['rows_returned']:,} (one per day with a change) |",
        f"| peak RSS of the Python process | {median(ours_pg.rss_mb):.0f} MB |",
        f"| for contrast: only fetching the {pg_size.events:,} raw events into Python |"
        f" {fmt(median(fetch.seconds))}, {median(fetch.rss_mb):.0f} MB |",
        "",
        f"- Plan nodes of the query: {', '.join(first['plan_nodes'])}: the scan, the"
        " de-duplication, the window functions and the aggregation all run in PostgreSQL.",
        f"- The series equals the one computed by DuckDB from the same events in Parquet:"
        f" {'yes' if postgres['same_as_files'] else 'NO'}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a quick check")
    parser.add_argument("--runs", type=int, default=5, help="runs of ours and linear")
    parser.add_argument("--naive-runs", type=int, default=3, help="runs of the naive variants")
    parser.add_argument("--pg-runs", type=int, default=3, help="runs of the PostgreSQL variant")
    parser.add_argument("--timezone", default="UTC", help="count days in this time zone")
    parser.add_argument("--no-write", action="store_true", help="do not write the results file")
    parser.add_argument("--child", choices=[*FILE_VARIANTS, "postgres", "postgres_fetch", *PREPARE])
    parser.add_argument("--size")
    parser.add_argument("--data")
    parser.add_argument("--pg-url")
    parser.add_argument("--pg-table")
    args = parser.parse_args(argv)
    if args.child:
        child(args)
        return

    size, pg_size = (QUICK, QUICK_PG) if args.quick else (FULL, FULL_PG)
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = " ".join(["python benchmarks/bench_active_users.py", *arguments])
    info = machine_info()
    print(f"data: {size}", flush=True)
    data = helper("prepare_data", size)
    path = Path(data["path"])
    print(f"files ({path.name}, {data['user_days']:,} user-days):", flush=True)
    files = bench_files(path, args.timezone, args.runs, args.naive_runs)
    print("postgres:", flush=True)
    postgres = bench_postgres(pg_size, args.timezone, args.pg_runs)
    text = render(
        command, info, size, data, files, postgres, pg_size, args.timezone, quick=args.quick
    )
    print()
    print(text)
    if not (args.quick or args.no_write):
        RESULTS.write_text(text)
        print(f"written to {RESULTS.relative_to(BENCH_DIR.parent)}")


if __name__ == "__main__":
    main()
