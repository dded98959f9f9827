"""Unique active users (DAU, WAU, MAU, stickiness) from raw events, in linear time.

The events stay where they are: files (CSV, Parquet, JSON lines; a glob; a local path or an
fsspec URL) are read by DuckDB, and a SQL table is queried in its own database (PostgreSQL,
MySQL/MariaDB, SQLite). One query does the work there; only one row per day travels.

How the daily series stays linear in the number of events: events are reduced to distinct
(user, local day) pairs; a user active on day ``d`` whose next active day is ``n`` is counted
in the ``W``-day window ending on every day from ``d`` to ``min(d + W, n) - 1``. Each pair
adds +1 at ``d`` and -1 at ``min(d + W, n)``; a running sum over days gives the series. With
``min_events > 1`` each user's event count over the trailing ``W`` days only changes on an
active day or ``W`` days after one, so a running sum per user over those change points
(again +count at ``d``, -count at ``d + W``) tells when the user qualifies.
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_right
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from kpi_collector.errors import SourceError, missing_package

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "METRICS",
    "REACH_DAYS",
    "WINDOWS",
    "ActivityError",
    "DailyActivity",
    "EventFiles",
    "EventTable",
    "check_metrics",
    "check_timezone",
    "current",
    "daily_series",
    "reach",
]

#: The rolling windows, in days, ending on (and including) the day they are reported for.
WINDOWS: Mapping[str, int] = {"dau": 1, "wau": 7, "mau": 30}
#: Every metric this module computes; ``stickiness`` is dau / mau (0 when mau is 0).
METRICS: tuple[str, ...] = (*WINDOWS, "stickiness")

_EPOCH = date(1970, 1, 1)
#: The memory DuckDB may take for one computation over event files; beyond it, it spills
#: to a temporary folder of its own (removed afterwards). 10 million events of a million
#: users over a year took 806 MB without a bound, 200 MB bounded at 100 MB (10% slower):
#: a huge export never takes the machine's memory from the other sources.
DUCKDB_MEMORY = "1GB"
FileFormat = Literal["csv", "parquet", "json"]
_FORMAT_SUFFIXES: dict[str, FileFormat] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".parq": "parquet",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
}
_COMPRESSION_SUFFIXES = (".gz", ".zst", ".zstd")


class ActivityError(SourceError):
    """Active users could not be computed: events unreadable, a column missing, a query failed."""


@dataclass(frozen=True)
class EventFiles:
    """Event files read with DuckDB: a path, a glob, an fsspec URL, or several of them.

    ``format`` is taken from the file suffix (``.csv``, ``.tsv``, ``.parquet``, ``.json``,
    ``.jsonl``, ``.ndjson``, optionally compressed) unless given. For a URL whose scheme
    DuckDB does not read itself (``memory://``, ``gcs://``, ...), the fsspec filesystem for
    that scheme is used, built with ``storage_options``. ``timeout`` (seconds) interrupts
    a query that runs longer.
    """

    path: str | Sequence[str]
    format: FileFormat | None = None
    storage_options: Mapping[str, Any] = field(default_factory=dict)
    timeout: float | None = None

    @property
    def paths(self) -> list[str]:
        paths = [self.path] if isinstance(self.path, str) else list(self.path)
        if not paths or not all(isinstance(p, str) and p for p in paths):
            raise ValueError("events: give a path, a glob or a URL")
        return paths

    @property
    def file_format(self) -> FileFormat:
        """The format given, or the one the file names tell; ValueError if they don't."""
        return _file_format(self)

    def describe(self) -> str:
        return ", ".join(self.paths)


@dataclass(frozen=True)
class EventTable:
    """An events table in a SQL database: a SQLAlchemy URL (or Engine) and a table name.

    ``table`` may be qualified with a schema (``analytics.events``); each part is quoted.
    ``timeout`` (seconds) limits the query where the database supports it.
    """

    url: str | Engine
    table: str
    timeout: float | None = None

    def describe(self) -> str:
        from sqlalchemy.engine import Engine

        url = self.url.url if isinstance(self.url, Engine) else _parse_url(self.url)
        return f"table {self.table} in {url.render_as_string(hide_password=True)}"


EventSource = EventFiles | EventTable


@dataclass(frozen=True, slots=True)
class DailyActivity:
    """The metrics for the windows ending on ``day`` (in the time zone asked for);
    ``active``: the users with an event that day, however few (``min_events`` aside)."""

    day: date
    values: dict[str, float]
    active: int = field(default=0, compare=False)


def check_metrics(metrics: Iterable[str]) -> tuple[str, ...]:
    """Validate metric names (``dau``, ``wau``, ``mau``, ``stickiness``); ValueError if bad."""
    if isinstance(metrics, str):
        metrics = [metrics]
    names = tuple(metrics)
    if not names:
        raise ValueError(f"give at least one of {', '.join(METRICS)}")
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ValueError(
            f"unknown window {', '.join(map(repr, unknown))}; choose from {', '.join(METRICS)}"
        )
    if len(set(names)) != len(names):
        raise ValueError("each window may be listed once")
    return names


def check_timezone(name: str) -> ZoneInfo:
    """The ZoneInfo for an IANA name such as ``Europe/Berlin``; ValueError if unknown."""
    if not isinstance(name, str) or not name:
        raise ValueError("time zone: give an IANA name such as Europe/Berlin or UTC")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name such as Europe/Berlin"
        ) from None


#: A day whose last this many days hold no event at all is one the events do not reach (they
#: may have stopped arriving): `current` fails on it rather than give 0, whatever windows
#: are asked for, so that a quiet day's DAU is 0 with or without WAU and MAU beside it.
REACH_DAYS = max(WINDOWS.values())


def reach(windows: Iterable[str]) -> int:
    """The days an event stays in the widest window it counts in (30 for ``mau`` and
    ``stickiness``, 7 for ``wau``, 1 for ``dau``)."""
    return max(_spans_for(check_metrics(windows)))


def daily_series(
    events: EventSource | str,
    *,
    user: str,
    time: str,
    where: str | None = None,
    min_events: int = 1,
    timezone: str = "UTC",
    windows: Iterable[str] = ("dau", "wau", "mau"),
    start: date | None = None,
    end: date | None = None,
    reached: list[int] | None = None,
) -> list[DailyActivity]:
    """The metrics for every day from ``start`` to ``end``, computed in one pass.

    ``start`` and ``end`` default to the first and last day with an event; days without
    events in between are included. ``user`` and ``time`` are column names (quoted, never
    interpolated); ``where`` is a SQL condition over the event columns, trusted like any
    query in the config. Naive timestamps are taken as UTC; days are counted in
    ``timezone``. A user counts in a window with at least ``min_events`` events in it.
    ``reached``, a list, gets the day numbers (days since 1970-01-01) of the events read
    that have any event, from the first day of the widest window ending at ``start``.
    """
    source = EventFiles(events) if isinstance(events, str) else events
    metrics = check_metrics(windows)
    check_timezone(timezone)
    if isinstance(min_events, bool) or not isinstance(min_events, int) or min_events < 1:
        raise ValueError("min_events must be a whole number >= 1")
    for label, name in (("user", user), ("time", time)):
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"{label}: give a column name")
    if start is not None and end is not None and start > end:
        raise ValueError(f"start {start} is after end {end}")
    spans = _spans_for(metrics)
    plan = _Plan(
        user=user,
        time=time,
        where=where.strip() if where and where.strip() else None,
        min_events=min_events,
        timezone=timezone,
        spans=spans,
        # Only events that can reach a window ending in [start, end] are read.
        first=None if start is None else _day_number(start) - max(spans) + 1,
        last=None if end is None else _day_number(end),
    )
    rows = _run_duckdb(source, plan) if isinstance(source, EventFiles) else _run_sql(source, plan)
    if reached is not None:
        # the days of the events read (from the first day of the widest window ending at
        # `start`) with any event at all
        reached += [int(row[0]) for row in rows if int(row[1]) > 0]
    return _densify(rows, plan, metrics, start, end)


def current(
    events: EventSource | str,
    *,
    user: str,
    time: str,
    where: str | None = None,
    min_events: int = 1,
    timezone: str = "UTC",
    windows: Iterable[str] = ("dau", "wau", "mau"),
    today: date | None = None,
) -> dict[str, float]:
    """The metrics for the windows ending ``today`` (default: today in ``timezone``).

    Reads only the events of the windows asked for (the last 30 days with a monthly
    metric), and of the last 30 days when those hold none. No event at all in the last
    30 days (`REACH_DAYS`) is an ActivityError, not zeros: the events may have stopped
    arriving (an export that broke), and a 0 is only stored for a day the events reach.
    """
    if today is None:
        today = datetime.now(check_timezone(timezone)).date()
    source = EventFiles(events) if isinstance(events, str) else events
    reached: list[int] = []
    options: dict[str, Any] = {"user": user, "time": time, "where": where, "timezone": timezone}
    series = daily_series(
        source,
        **options,
        min_events=min_events,
        windows=windows,
        start=today,
        end=today,
        reached=reached,
    )
    if not reached and reach(windows) < REACH_DAYS:
        # nobody in the windows asked for: a quiet day, if the month holds an event
        daily_series(source, **options, windows=["mau"], start=today, end=today, reached=reached)
    if not reached:
        chosen = " matching `where`" if where and where.strip() else ""
        raise ActivityError(
            f"no events{chosen} in the {REACH_DAYS} days ending {today} ({timezone}) in "
            f"{source.describe()}: the events may have stopped arriving, so no 0 is stored; "
            "check that they are still written there"
        )
    return series[0].values


# --- the query -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    user: str
    time: str
    where: str | None
    min_events: int
    timezone: str
    spans: tuple[int, ...]  # window lengths in days, in result-column order
    first: int | None  # day numbers (days since 1970-01-01) bounding the events to read
    last: int | None


def _spans_for(metrics: Sequence[str]) -> tuple[int, ...]:
    names = {m for m in metrics if m in WINDOWS}
    if "stickiness" in metrics:
        names |= {"dau", "mau"}
    return tuple(span for name, span in WINDOWS.items() if name in names)


def _day_number(day: date) -> int:
    return (day - _EPOCH).days


def _series_sql(events: str, plan: _Plan) -> str:
    """The query over ``events`` (a SELECT of columns ``u`` and ``d``, the user and local
    day number) returning ``d, starts, v1..vn``: for each day where something changes,
    the number of distinct users with events that day and the running count per window.

    Portable SQL (CTEs, window functions, CASE): runs on DuckDB, PostgreSQL, SQLite 3.25+,
    MySQL 8 and MariaDB 10.2+. Only integers from this module are inlined.
    """
    spans = plan.spans
    # k = 0 stands for the active day itself, k = 1.. for the windows (the 1-day window is
    # `starts` itself when one event is enough; see _densify).
    windows = " UNION ALL ".join(
        f"SELECT {k} AS k, {span} AS span"
        for k, span in enumerate(spans, start=1)
        if not (span == 1 and plan.min_events == 1)
    )
    windows = "SELECT 0 AS k, 0 AS span" + (f" UNION ALL {windows}" if windows else "")
    if plan.min_events == 1:
        ends = [(k, span) for k, span in enumerate(spans, start=1) if span != 1]
        end_columns = "".join(
            f", CASE WHEN nd IS NOT NULL AND nd < d + {span} THEN nd ELSE d + {span} END AS e{k}"
            for k, span in ends
        )
        end_keys = "".join(f", e{k}" for k, _ in ends)
        end_days = "".join(f" WHEN w.k = {k} THEN x.e{k}" for k, _ in ends)
        deltas = ", ".join(
            f"SUM(CASE WHEN k = 0 THEN n WHEN k = {k} THEN -n ELSE 0 END) AS c{k}"
            if span != 1
            else f"0 AS c{k}"
            for k, span in enumerate(spans, start=1)
        )
        # A user-day covers the window ends d .. min(d + span, next active day) - 1. User-days
        # with the same day and the same window ends are counted together first, which
        # leaves a few rows per day for the rest of the query.
        body = f"""
au_user_days AS (SELECT DISTINCT u, d FROM au_events),
au_next AS (SELECT d, LEAD(d) OVER (PARTITION BY u ORDER BY d) AS nd FROM au_user_days),
au_ends AS (
  SELECT d{end_keys}, COUNT(*) AS n
  FROM (SELECT d{end_columns} FROM au_next) AS au_spans
  GROUP BY d{end_keys}
),
au_edges AS (
  SELECT w.k AS k, CASE WHEN w.k = 0 THEN x.d{end_days} END AS d, x.n AS n
  FROM au_ends AS x CROSS JOIN au_windows AS w
),
au_deltas AS (
  SELECT d, SUM(CASE WHEN k = 0 THEN n ELSE 0 END) AS starts, {deltas}
  FROM au_edges GROUP BY d
)"""
    else:
        n = int(plan.min_events)
        ks = range(1, len(spans) + 1)
        point_deltas = ", ".join(
            f"CASE WHEN w.k = 0 THEN x.c WHEN w.k = {k} THEN -x.c ELSE 0 END AS c{k}" for k in ks
        )
        frame = "PARTITION BY u ORDER BY p, k ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
        counts = ", ".join(f"SUM(c{k}) OVER ({frame}) AS n{k}" for k in ks)
        edge_deltas = ", ".join(
            f"CASE WHEN r.n{k} >= {n} THEN 1 - 2 * e.side ELSE 0 END AS c{k}" for k in ks
        )
        sums = ", ".join(f"SUM(c{k}) AS c{k}" for k in ks)
        # Per user, the event count over a window's trailing days changes only on an active
        # day p (+count) and span days later (-count). Ordered by (p, k), which is unique per
        # user, a running sum gives the count from each point to the next one (LEAD); the
        # user is in the window for those days when the count reaches min_events. The
        # widest window has the largest count, so other rows need not be kept.
        body = f"""
au_user_days AS (SELECT u, d, COUNT(*) AS c FROM au_events GROUP BY u, d),
au_points AS (
  SELECT x.u AS u, x.d + w.span AS p, w.k AS k, {point_deltas}
  FROM au_user_days AS x CROSS JOIN au_windows AS w
),
au_running AS (
  SELECT p, k, LEAD(p) OVER (PARTITION BY u ORDER BY p, k) AS np, {counts}
  FROM au_points
),
au_edges AS (
  SELECT CASE WHEN e.side = 0 THEN r.p ELSE r.np END AS d,
         CASE WHEN e.side = 0 AND r.k = 0 THEN 1 ELSE 0 END AS starts,
         {edge_deltas}
  FROM au_running AS r CROSS JOIN (SELECT 0 AS side UNION ALL SELECT 1 AS side) AS e
  WHERE r.k = 0 OR r.n{len(spans)} >= {n}
),
au_deltas AS (
  SELECT d, SUM(starts) AS starts, {sums}
  FROM au_edges WHERE d IS NOT NULL GROUP BY d
)"""
    running = ", ".join(
        f"SUM(c{k}) OVER (ORDER BY d ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS v{k}"
        for k in range(1, len(spans) + 1)
    )
    return f"""WITH au_events AS ({events}),
au_windows AS ({windows}),{body}
SELECT d, starts, {running} FROM au_deltas ORDER BY d"""


def _densify(
    rows: Sequence[Sequence[Any]],
    plan: _Plan,
    metrics: Sequence[str],
    start: date | None,
    end: date | None,
) -> list[DailyActivity]:
    """One entry per day from the change points: a day takes the counts of the last change
    point at or before it."""
    points = [(int(row[0]), int(row[1]), [int(v) for v in row[2:]]) for row in rows]
    active_days = [d for d, starts, _ in points if starts > 0]
    first = _day_number(start) if start is not None else (min(active_days, default=None))
    last = _day_number(end) if end is not None else (max(active_days, default=None))
    if first is None or last is None or first > last:
        return []
    if first < _day_number(date.min) or last > _day_number(date.max):
        outside = first if first < _day_number(date.min) else last
        raise ActivityError(
            "an event falls on a day outside the years 1-9999 "
            f"(day {outside:+,} from 1970-01-01); check the time column's values"
        )
    days = [d for d, _, _ in points]
    zero = [0] * len(plan.spans)
    column = {span: i for i, span in enumerate(plan.spans)}
    # With one event enough, the users active in a 1-day window are that day's users.
    dau_is_starts = plan.min_events == 1
    series: list[DailyActivity] = []
    index = bisect_right(days, first) - 1
    counts = points[index][2] if index >= 0 else zero
    for number in range(first, last + 1):
        while index + 1 < len(points) and points[index + 1][0] <= number:
            index += 1
            counts = points[index][2]
        by_window = {name: counts[column[span]] for name, span in WINDOWS.items() if span in column}
        if dau_is_starts and "dau" in by_window:
            on_day = index >= 0 and points[index][0] == number
            by_window["dau"] = points[index][1] if on_day else 0
        active = points[index][1] if index >= 0 and points[index][0] == number else 0
        values: dict[str, float] = {}
        for metric in metrics:
            if metric == "stickiness":
                mau = by_window["mau"]
                values[metric] = by_window["dau"] / mau if mau else 0.0
            else:
                values[metric] = by_window[metric]
        series.append(DailyActivity(_EPOCH + timedelta(days=number), values, active))
    return series


# --- files, with DuckDB ----------------------------------------------------------------


def _quote_duckdb(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _file_format(files: EventFiles) -> FileFormat:
    if files.format is not None:
        if files.format not in ("csv", "parquet", "json"):
            raise ValueError(f"format must be csv, parquet or json, not {files.format!r}")
        return files.format
    found: set[FileFormat] = set()
    for path in files.paths:
        name = path.split("?", 1)[0].lower()
        for suffix in _COMPRESSION_SUFFIXES:
            name = name.removesuffix(suffix)
        match = re.search(r"\.[a-z0-9]+$", name)
        fmt = _FORMAT_SUFFIXES.get(match.group(0)) if match else None
        if fmt is None:
            raise ValueError(
                f"cannot tell the format of {path!r} from its name; "
                "set format to csv, parquet or json"
            )
        found.add(fmt)
    if len(found) > 1:
        raise ValueError(f"events mix formats ({', '.join(sorted(found))}); give one format")
    return found.pop()


def _register_fsspec(con: Any, files: EventFiles) -> None:
    """Let DuckDB read URLs of schemes it has no reader for (``memory://``, ``gcs://``,
    ``abfs://``, ``sftp://``, ...) through fsspec. http(s) and s3 stay with DuckDB's own
    httpfs extension unless ``storage_options`` ask for fsspec."""
    duckdb_reads = {"http", "https", "s3", "s3a", "s3n", "r2"}
    schemes = {p.split("://", 1)[0].lower() for p in files.paths if "://" in p} - {"file"}
    if not files.storage_options:
        schemes -= duckdb_reads
    if not schemes:
        return
    try:
        import fsspec
    except ModuleNotFoundError as exc:
        raise ActivityError(
            f"reading {', '.join(sorted(schemes))}:// URLs: {missing_package(exc) or exc}"
        ) from None
    for scheme in sorted(schemes):
        try:
            filesystem = fsspec.filesystem(scheme, **dict(files.storage_options))
        except (ImportError, ValueError) as exc:
            raise ActivityError(f"cannot open {scheme}:// URLs: {exc}") from None
        con.register_filesystem(filesystem)


def _reader_sql(fmt: FileFormat, *, typed: bool = False) -> str:
    """The DuckDB table function reading the files; `typed`: with the `$types` parameter
    (CSV's `types`, JSON's `columns`) that `_text_columns` gives."""
    if fmt == "parquet":
        return "read_parquet($files, union_by_name = true)"
    if fmt == "csv":
        return f"read_csv($files, union_by_name = true{', types = $types' if typed else ''})"
    return f"read_json($files, union_by_name = true{', columns = $types' if typed else ''})"


def _text_columns(fmt: FileFormat, types: Mapping[str, str], plan: _Plan) -> dict[str, str]:
    """The column types that CSV and JSON files are read with: the user and time columns
    as written, whatever DuckDB's sniffing of the first rows guessed.

    A guess is a type taken from a sample (the first 20,480 rows): ids that are numbers
    there and text further on (`anon-7` at row 30,000) failed the whole read, and times
    written `01/02/2024` were read as day/month or month/day, as the sample allowed. The
    user column is read as text (CSV) or JSON (a number stays a number), the time column
    as text, which `_duckdb_day` reads as ISO-8601 or fails naming the value. JSON is given
    every column (`columns` reads only those named), the others as sniffed."""
    if fmt == "csv":
        return {plan.user: "VARCHAR", plan.time: "VARCHAR"}
    return {**types, plan.user: "JSON", plan.time: "VARCHAR"}


def _as_written(
    fmt: FileFormat, sniffed: Mapping[str, str], read: Mapping[str, str], plan: _Plan
) -> tuple[str, str, str]:
    """The events of CSV or JSON files read with the `read` types (`_text_columns`) but
    shown to `where:` with the types DuckDB `sniffed` (`ts > now() - INTERVAL 90 DAY`,
    `user_id > 0` go on working; a value its sniffed type cannot hold is NULL there), and
    the user and time columns as read, under names of their own: (the source SQL, the user
    column, the time column)."""
    shown = []
    for name in dict.fromkeys((plan.user, plan.time)):
        # (a sample of nulls sniffs the type "NULL", which would make every value NULL)
        if sniffed[name] not in (read[name], '"NULL"', "NULL"):
            column = value = _quote_duckdb(name)
            if read[name] == "JSON":  # a JSON string as its text, not its JSON ('"a"')
                value = f"json_extract_string({column}, '$')"
            shown.append(f"TRY_CAST({value} AS {sniffed[name]}) AS {column}")
    replace = f" REPLACE ({', '.join(shown)})" if shown else ""
    user, time = _quote_duckdb("__kpi_user_as_written"), _quote_duckdb("__kpi_time_as_written")
    source = (
        f"(SELECT *{replace}, {_quote_duckdb(plan.user)} AS {user}, "
        f"{_quote_duckdb(plan.time)} AS {time} "
        f"FROM {_reader_sql(fmt, typed=True)}) AS au_files"
    )
    return source, user, time


def _duckdb_day(column: str, column_type: str, plan: _Plan) -> DaySql:
    """Local day number of a DuckDB column (a timestamp, a date, or ISO-8601 text)."""
    kind = column_type.upper()
    if kind == "DATE":
        return f"({column} - DATE '1970-01-01') AS t", "t"
    if kind in ("TIMESTAMP_NS", "TIMESTAMPTZ_NS"):
        # Nanoseconds (pandas' times) floored to microseconds: TIMESTAMPTZ_NS has no
        # epoch_us, and a cast to TIMESTAMPTZ rounds 23:59:59.9999999 up to the next day.
        nanos = f"epoch_ns({column})"
        micros = f"(({nanos} - (({nanos} % 1000) + 1000) % 1000) // 1000)"
    elif kind.startswith("TIMESTAMP"):
        # A naive timestamp counts as UTC; TIMESTAMPTZ keeps its instant.
        micros = f"epoch_us({column})"
    elif kind == "VARCHAR":
        # Text without an offset is read as UTC (the session time zone); a date alone
        # ('2024-03-01') is that day, as a DATE column is. Text that is no ISO-8601 time
        # (`01/02/2024`, `yesterday`) fails the query with `_time_problem`, showing it.
        micros = f"epoch_us(TRY_CAST(trim({column}) AS TIMESTAMPTZ))"
        local = _local_day_from_epoch("e", plan, unit=1_000_000, floor_div=_int_floor_div)
        plain = (
            f"CASE WHEN regexp_full_match(trim({column}), '{_DATE_ALONE}') "
            f"THEN TRY_CAST(trim({column}) AS DATE) - DATE '1970-01-01' END"
        )
        before, after = _time_problem(plan.time, "\0").split("\0")
        shown = r"regexp_replace(left(au_text, 60), '\s', ' ', 'g')"  # on one line
        failed = f"error({_sql_text(before)} || {shown} || {_sql_text(after)})"
        return (
            f"{plain} AS plain_day, {micros} AS e, {column} AS au_text",
            f"COALESCE(plain_day, {local}, {failed})",
        )
    else:
        raise ActivityError(
            f"the time column {plan.time} has type {column_type}; expected a timestamp, a date "
            "or ISO-8601 text (a number is no time in event files: write Unix time as a "
            "timestamp)"
        )
    # Integer arithmetic with the zone's offsets is several times faster than DuckDB's
    # per-row time zone conversion, and gives the same days.
    return f"{micros} AS e", _local_day_from_epoch(
        "e", plan, unit=1_000_000, floor_div=_int_floor_div
    )


def _run_duckdb(files: EventFiles, plan: _Plan) -> list[tuple[Any, ...]]:
    try:
        import duckdb
    except ModuleNotFoundError as exc:
        raise ActivityError(f"reading event files: {missing_package(exc) or exc}") from None

    fmt = files.file_format
    import tempfile

    # DuckDB's own default is 80% of the machine's memory, and spilling into `.tmp` in the
    # folder `kpi` runs in (a cron's `/` cannot take it): bounded, in a folder of its own
    spill = tempfile.TemporaryDirectory(prefix="kpi-active-users-")
    try:
        con = duckdb.connect(config={"memory_limit": DUCKDB_MEMORY, "temp_directory": spill.name})
    except BaseException:
        spill.cleanup()
        raise
    try:
        con.execute("SET TimeZone = 'UTC'")
        # DuckDB draws a progress bar on the terminal for long queries; the CLI owns it.
        con.execute("SET enable_progress_bar = false")
        _register_fsspec(con, files)
        reader = _reader_sql(fmt)
        params: dict[str, Any] = {"files": files.paths}
        try:
            described = con.execute(f"DESCRIBE SELECT * FROM {reader}", params).fetchall()
        except duckdb.Error as exc:
            raise ActivityError(
                f"cannot read events from {files.describe()}: {_first_line(exc)}"
            ) from None
        types = {str(row[0]): str(row[1]) for row in described}
        _check_columns(types, plan, files.describe())
        if fmt == "parquet":
            _check_parquet_types(con, params, plan, types)
        user, time = _quote_duckdb(plan.user), _quote_duckdb(plan.time)
        if fmt != "parquet":  # the user and time as written, not as a sample guessed
            params["types"] = _text_columns(fmt, types, plan)
            reader, user, time = _as_written(fmt, types, params["types"], plan)
            types.update(params["types"])
        user, user_conditions = _duckdb_user(
            user, types[plan.user], plan.user, numbers_as_text=fmt == "csv"
        )
        try:
            row_columns, day = _duckdb_day(time, types[plan.time], plan)
        except ActivityError as exc:
            raise ActivityError(f"{exc} ({files.describe()})") from None
        kind = types[plan.time].upper()
        raw_bounds: list[str] = []
        if kind.startswith("TIMESTAMP") or kind == "DATE":
            # A coarse bound on the raw column lets Parquet skip row groups; the exact
            # bound is on the local day.
            raw_bounds = _raw_bounds(time, plan, params, "$")
        events = _events_sql(
            reader, user, time, row_columns, day, plan, [*user_conditions, *raw_bounds]
        )
        timer = _interrupt_after(con, files.timeout)
        try:
            return con.execute(_series_sql(events, plan), params).fetchall()
        except duckdb.InterruptException:
            raise ActivityError(
                f"computing active users from {files.describe()} took longer than "
                f"{files.timeout:g} s",
                transient=True,
            ) from None
        except duckdb.OutOfMemoryException as exc:
            raise ActivityError(
                f"computing active users from {files.describe()} needs more memory than "
                f"the {DUCKDB_MEMORY} it may take (what is over spills to a temporary folder, "
                f"TMPDIR): {_first_line(exc)}; narrow the events (`events:`, `where:`)"
            ) from None
        except duckdb.Error as exc:
            message = _first_line(exc)
            for told in ("the user column ", "the time column "):  # our own error()s
                if told in message:
                    problem = message[message.index(told) :]
                    raise ActivityError(f"{problem} ({files.describe()})") from None
            raise ActivityError(
                f"computing active users from {files.describe()} failed: {message}"
            ) from None
        finally:
            if timer is not None:
                timer.cancel()
    finally:
        con.close()
        spill.cleanup()


def _parquet_kind(column: str, physical: Any, converted: Any, logical: Any) -> str:
    """What a Parquet file's column holds, for `_check_parquet_types`: date, instant,
    float (or decimal), text or other."""
    converted, logical = str(converted or ""), str(logical or "")
    if converted == "DATE" or logical.startswith("DateType"):
        return "date"
    if converted.startswith("TIMESTAMP") or logical.startswith("TimestampType"):
        return "instant"
    if physical == "INT96":  # the old Spark/Impala timestamps
        return "instant"
    if physical in ("DOUBLE", "FLOAT") or converted == "DECIMAL" or logical.startswith("Decimal"):
        return "float"
    if converted == "UTF8" or logical.startswith("StringType"):
        return "text"
    return "other"


def _check_parquet_types(
    con: Any, params: Mapping[str, Any], plan: _Plan, types: Mapping[str, str]
) -> None:
    """Fail where Parquet files disagree on a column's type in a way that reading them
    together (`union_by_name`) would misread: a time column of dates in some files and
    timestamps in others (the dates become midnight UTC, the day before west of UTC), or
    user ids that are floating-point numbers in some files and text in others (42.0 becomes
    the text '42.0', not user 42). Raises ActivityError naming a file of each kind."""
    import duckdb

    try:
        rows = con.execute(
            "SELECT DISTINCT name, type, converted_type, logical_type, file_name "
            "FROM parquet_schema($files) WHERE name IN ($user, $time)",
            {"files": params["files"], "user": plan.user, "time": plan.time},
        ).fetchall()
    except duckdb.Error:  # the files were read (DESCRIBE); the query says what fails
        return
    kinds: dict[str, dict[str, str]] = {}
    for name, physical, converted, logical, file_name in rows:
        kind = _parquet_kind(str(name), physical, converted, logical)
        kinds.setdefault(str(name), {}).setdefault(kind, str(file_name))
    time_kinds = kinds.get(plan.time, {})
    if {"date", "instant"} <= time_kinds.keys() and types[plan.time].upper() != "VARCHAR":
        raise ActivityError(
            f"the time column {plan.time} holds dates in {time_kinds['date']} and timestamps "
            f"in {time_kinds['instant']}: read together the dates would be midnight UTC, "
            "the day before west of UTC; write one type in every file"
        )
    user_kinds = kinds.get(plan.user, {})
    if {"float", "text"} <= user_kinds.keys():
        raise ActivityError(
            f"the user column {plan.user} holds floating-point numbers in "
            f"{user_kinds['float']} and text in {user_kinds['text']}: read together 42.0 "
            "would be the text '42.0', not user 42; write the ids as integers or text in "
            "every file"
        )


def _duckdb_user(
    column: str, column_type: str, name: str, *, numbers_as_text: bool = False
) -> tuple[str, list[str]]:
    """The user id of a DuckDB column (named `name` in the events) and the conditions that
    leave out empty ids.

    `numbers_as_text` (CSV, where every value is text): text written as a number (``42``,
    ``+42``, ``042``, ``42.0``, ``4.2e1``) is that number's id, ``42``, as in a column of
    numbers; other text stays as written.

    JSON (what DuckDB infers for ids written both as numbers and as strings) is read as its
    text, and a number in it as its digits, so ``42``, ``42.0`` and ``"42"`` are one user
    (text stays as written: ``"42.0"`` is its own id); an empty id is no user, as CSV reads
    it. A floating-point or decimal id is its whole number; one with a fraction, or too
    large for a double to tell apart from its neighbours, fails the query
    (`_number_id_problem`)."""
    kind = column_type.upper()
    if kind == "JSON":
        text = f"json_extract_string({column}, '$')"
        number = _duckdb_whole(f"CAST({text} AS DOUBLE)", text, name, floating=True)
        whole = f"CAST({number} AS VARCHAR)"
        return f"CASE WHEN json_type({column}) = 'DOUBLE' THEN {whole} ELSE {text} END", [
            f"{text} <> ''"
        ]
    if kind == "VARCHAR":
        if not numbers_as_text:
            return column, [f"{column} <> ''"]
        integer = f"CAST(TRY_CAST({column} AS HUGEINT) AS VARCHAR)"
        decimal = _duckdb_whole(f"CAST({column} AS DOUBLE)", column, name, floating=True)
        return (
            f"CASE WHEN regexp_full_match({column}, '[+-]?[0-9]+') "
            f"THEN COALESCE({integer}, {column}) "
            f"WHEN regexp_full_match({column}, {_sql_text(_DECIMAL_TEXT)}) "
            f"THEN CAST({decimal} AS VARCHAR) "
            f"ELSE {column} END",
            [f"{column} <> ''"],
        )
    if kind in ("DOUBLE", "FLOAT", "REAL") or kind.startswith("DECIMAL"):
        raw = f"CAST({column} AS VARCHAR)"
        return _duckdb_whole(column, raw, name, floating=not kind.startswith("DECIMAL")), []
    return column, []


def _duckdb_whole(number: str, raw: str, name: str, *, floating: bool) -> str:
    """`number` as a HUGEINT, or DuckDB's error() saying `_number_id_problem` when it has a
    fraction or (`floating`) is past 2**53; `raw` is its text, shown in the error."""

    def fail(fraction: bool) -> str:
        before, after = _number_id_problem(name, "\0", fraction=fraction).split("\0")
        return f"error({_sql_text(before)} || {raw} || {_sql_text(after)})"

    cases = [f"WHEN isnan({number}) OR {number} <> trunc({number}) THEN {fail(True)}"]
    if floating:
        cases.insert(0, f"WHEN isinf({number}) OR abs({number}) >= {_EXACT} THEN {fail(False)}")
    return f"CASE {' '.join(cases)} ELSE CAST({number} AS HUGEINT) END"


def _number_id_problem(name: str, value: str, *, fraction: bool) -> str:
    """Why number `value` of user column `name` is no user id, in one line: a fraction (the
    `user:` key likely names a wrong column), or a floating-point number past 2**53, where
    a double holds every other integer only, so two users may have become one."""
    if fraction:
        return (
            f"the user column {name!r} holds {value}, a number with a fraction: a user id "
            "is a whole number or text; check `user:`"
        )
    return (
        f"the user column {name!r} holds {value}, a floating-point number past 2**53, where "
        "neighbouring ids read as one number: store the ids as integers or text"
    )


#: 2**53: from here on a double does not hold every integer
_EXACT = 9007199254740992
#: a date alone, as text: that day in any time zone, not its midnight in UTC (`2024-03-01`,
#: `2024-3-1`); a regular expression that DuckDB, PostgreSQL and MySQL read alike
_DATE_ALONE = "[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
#: a number with a point or an exponent, as CSV writes floating-point ids (`42.0`, `4.2e1`)
_DECIMAL_TEXT = r"[+-]?([0-9]+[.]?[0-9]*|[.][0-9]+)([eE][+-]?[0-9]+)?"


def _time_problem(name: str, value: str) -> str:
    """Why `value` of event-file time column `name` is no time, in one line."""
    return (
        f"the time column {name} has a value that is not a time: '{value}'; times in event "
        "files are ISO-8601 text (2024-03-01T09:30:00, with an offset or Z when not UTC) or "
        "a date (2024-03-01)"
    )


def _sql_text(text: str) -> str:
    """`text` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _sql_user(column: str, column_type: Any, dialect: str) -> tuple[str, list[str]]:
    """The user id of a table's column, compared as written, and the conditions that
    leave out empty ids.

    SQLite keeps each value's own type whatever the column's: ``42``, ``42.0`` and ``'42'``
    are read as the text ``'42'``, one user."""
    from sqlalchemy import String

    if dialect == "sqlite":
        text = (
            f"CASE WHEN typeof({column}) = 'real' AND {column} = CAST({column} AS INTEGER) "
            f"THEN CAST(CAST({column} AS INTEGER) AS TEXT) ELSE CAST({column} AS TEXT) END"
        )
        return text, [f"CAST({column} AS TEXT) <> ''"]
    if isinstance(column_type, String):
        if dialect in ("mysql", "mariadb"):
            # compared as written, as the other databases do, not in the column's collation
            # (utf8mb4_general_ci: `Alice`, `alice` and `a`, `a ` would each be one user)
            column = f"CAST({column} AS BINARY)"
        return column, [f"{column} <> ''"]
    return column, []


def _sql_number_ids(column: str, column_type: Any, dialect: str) -> str | None:
    """The condition that picks a user id of `column` that is no whole number
    (`_number_id_problem`), or None when its type holds none: an integer or text column of
    PostgreSQL or MariaDB. Any SQLite column may hold a floating-point number."""
    from sqlalchemy import Float, Numeric

    if dialect == "sqlite":
        return (
            f"typeof({column}) = 'real' AND "
            f"(abs({column}) >= {_EXACT} OR {column} <> CAST({column} AS INTEGER))"
        )
    trunc = f"trunc({column})" if dialect == "postgresql" else f"TRUNCATE({column}, 0)"
    fraction = f"{column} <> {trunc}"
    if isinstance(column_type, Float):  # (not a Numeric in SQLAlchemy 2.1)
        return f"(abs({column}) >= {_EXACT} OR {fraction})"
    if isinstance(column_type, Numeric) and column_type.scale != 0:
        return fraction
    return None


def _number_id_shown(name: str, value: Any) -> str:
    """`_number_id_problem` for `value`, a user id `_sql_number_ids` picked."""
    import math

    number = float(value)
    fraction = math.isnan(number) or (math.isfinite(number) and abs(number) < _EXACT)
    return _number_id_problem(name, str(value), fraction=fraction)


def _check_columns(types: Mapping[str, str], plan: _Plan, where: str) -> None:
    for label, name in (("user", plan.user), ("time", plan.time)):
        if name not in types:
            available = ", ".join(sorted(types)) or "none"
            raise ActivityError(f"{label} column {name!r} not in {where} (columns: {available})")


def _raw_bounds(column: str, plan: _Plan, params: dict[str, Any], style: str) -> list[str]:
    """Conditions on the raw time column, two days wider than the local-day bounds so that
    no time zone offset can push an event out."""
    conditions = []
    if plan.first is not None:
        params["lo"] = _EPOCH + timedelta(days=plan.first - 2)
        conditions.append(f"{column} >= CAST({style}lo AS DATE)")
    if plan.last is not None:
        params["hi"] = _EPOCH + timedelta(days=plan.last + 2)
        conditions.append(f"{column} < CAST({style}hi AS DATE)")
    return conditions


def _events_sql(
    source: str,
    user: str,
    time: str,
    columns: str,
    day: str,
    plan: _Plan,
    conditions: Sequence[str] = (),
) -> str:
    """The SELECT of (u, d) that the series query starts from.

    ``user`` is the user id's expression over the source's columns; ``conditions`` choose
    rows before the per-row values are computed (empty ids, bounds on the raw time column).
    ``columns`` are computed per row from the source (e.g. ``... AS t``) and ``day`` turns
    them into the local day number, in an outer SELECT so that a costly per-row value
    (parsing text to seconds) is computed once however often ``day`` names it.
    """
    chosen = _chosen(user, time, plan, conditions)
    inner = f"SELECT {user} AS u, {columns} FROM {source} WHERE {chosen}"
    events = f"SELECT u, {day} AS d FROM ({inner}) AS au_raw"
    bounds = []
    if plan.first is not None:
        bounds.append(f"d >= {int(plan.first)}")
    if plan.last is not None:
        bounds.append(f"d <= {int(plan.last)}")
    if not bounds:
        return events
    return f"SELECT u, d FROM ({events}) AS au_local WHERE {' AND '.join(bounds)}"


def _chosen(user: str, time: str, plan: _Plan, conditions: Sequence[str]) -> str:
    """The WHERE of the rows `_events_sql` and `_unreadable_sql` read: a user id and a time,
    the caller's `conditions` and the source's own `where:`."""
    chosen = [f"{user} IS NOT NULL", f"{time} IS NOT NULL", *conditions]
    if plan.where:  # its own line: a `-- comment` at its end comments out no more
        chosen.append(f"({plan.where}\n)")
    return " AND ".join(chosen)


def _unreadable_sql(
    source: str,
    user: str,
    time: str,
    columns: str,
    day: str,
    plan: _Plan,
    conditions: Sequence[str] = (),
) -> str:
    """The SELECT of one time value of the events that ``_events_sql`` reads which has no
    day (text that is not a time, read as NULL), or of none."""
    chosen = _chosen(user, time, plan, conditions)
    inner = f"SELECT {time} AS au_time, {columns} FROM {source} WHERE {chosen}"
    return f"SELECT au_time FROM ({inner}) AS au_raw WHERE ({day}) IS NULL LIMIT 1"


# --- SQL tables ------------------------------------------------------------------------


def _parse_url(url: str) -> Any:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url)
    except ArgumentError:
        raise ValueError("url: not a SQLAlchemy database URL") from None


@contextmanager
def _engine(table: EventTable) -> Iterator[Engine]:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import Engine
    from sqlalchemy.pool import NullPool

    if isinstance(table.url, Engine):
        yield table.url
        return
    engine = create_engine(_parse_url(table.url), poolclass=NullPool)
    try:
        yield engine
    finally:
        engine.dispose()


def _run_sql(table: EventTable, plan: _Plan) -> list[tuple[Any, ...]]:
    from sqlalchemy import exc as sa_exc
    from sqlalchemy import inspect, text

    from kpi_collector.collect.sql import escape_colons

    if not isinstance(table.table, str) or not table.table.strip():
        raise ValueError("table: give a table name")
    parts = table.table.split(".")
    if len(parts) > 2 or not all(parts):
        raise ValueError(f"table {table.table!r}: give a name or schema.name")
    schema, name = (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
    where = table.describe()
    if plan.where:  # `kind = ':signup'` is SQL as written, no bind parameter `signup`
        plan = replace(plan, where=escape_colons(plan.where))
    try:
        with _engine(table) as engine:
            dialect = engine.dialect.name
            if dialect not in _DAY_SQL:
                raise ActivityError(
                    f"active users on {dialect} tables is not supported; "
                    "use PostgreSQL, MySQL/MariaDB or SQLite, or export event files"
                )
            quote = engine.dialect.identifier_preparer.quote_identifier
            source = ".".join(quote(p) for p in parts)
            with engine.connect() as conn:
                _prepare_session(conn, dialect, table.timeout)
                inspector = inspect(conn)
                if not inspector.has_table(name, schema=schema):
                    raise ActivityError(f"{where}: no such table")
                columns = {c["name"]: c["type"] for c in inspector.get_columns(name, schema)}
                _check_columns({k: str(v) for k, v in columns.items()}, plan, where)
                user, time = quote(plan.user), quote(plan.time)
                user, user_conditions = _sql_user(user, columns[plan.user], dialect)
                params: dict[str, Any] = {}
                row_columns, day = _DAY_SQL[dialect](time, columns[plan.time], plan, params)
                raw_bounds: list[str] = []
                if dialect != "sqlite" and _is_temporal(columns[plan.time]):
                    # Lets the database use an index on the time column. Not in SQLite,
                    # where times may be text or numbers, which do not compare in order.
                    raw_bounds = _raw_bounds(time, plan, params, ":")
                if dialect == "sqlite" or not _is_temporal(columns[plan.time]):
                    # SQLite and MySQL read text that is not a time (and MySQL numbers) as
                    # NULL, where the other databases fail: those events would be lost.
                    unreadable = _unreadable_sql(
                        source, user, time, row_columns, day, plan, user_conditions
                    )
                    found = conn.execute(text(unreadable), params).first()
                    if found is not None:
                        shown = repr(found[0])
                        shown = shown if len(shown) <= 60 else f"{shown[:57]}..."
                        raise ActivityError(
                            f"the time column {plan.time} has a value that is not a time: "
                            f"{shown} ({where}); "
                            + (
                                "times are ISO-8601 text, a date or Unix time as a number"
                                if dialect == "sqlite"
                                else "times are a DATETIME, TIMESTAMP or DATE column, "
                                "or ISO-8601 text"
                            )
                        )
                number_check = _sql_number_ids(quote(plan.user), columns[plan.user], dialect)
                if number_check is not None:
                    chosen = _chosen(user, time, plan, [*user_conditions, number_check])
                    found = conn.execute(
                        text(f"SELECT {quote(plan.user)} FROM {source} WHERE {chosen} LIMIT 1"),
                        params,
                    ).first()
                    if found is not None:
                        raise ActivityError(f"{_number_id_shown(plan.user, found[0])} ({where})")
                events = _events_sql(
                    source, user, time, row_columns, day, plan, [*user_conditions, *raw_bounds]
                )
                rows = conn.execute(text(_series_sql(events, plan)), params).fetchall()
                conn.rollback()
                return [tuple(row) for row in rows]
    except ActivityError:
        raise
    except sa_exc.DBAPIError as exc:
        transient = isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError)
        raise ActivityError(
            f"computing active users from {where} failed: {_first_line(exc)}",
            transient=transient,
        ) from None
    except sa_exc.SQLAlchemyError as exc:
        # one line: the message goes on with the whole query (`[SQL: ...]`)
        raise ActivityError(
            f"computing active users from {where} failed: {_first_line(exc)}"
        ) from None


def _prepare_session(conn: Connection, dialect: str, timeout: float | None) -> None:
    from sqlalchemy import text

    from kpi_collector.collect.sql import read_only_session

    read_only_session(conn, timeout)
    if dialect == "postgresql":
        # Naive timestamps and text without an offset are read as UTC.
        conn.execute(text("SET LOCAL TIME ZONE 'UTC'"))


def _is_temporal(column_type: Any) -> bool:
    from sqlalchemy import Date, DateTime

    return isinstance(column_type, Date | DateTime)


def _is_text(column_type: Any) -> bool:
    from sqlalchemy import String

    return isinstance(column_type, String)


def _is_date(column_type: Any) -> bool:
    from sqlalchemy import Date, DateTime

    return isinstance(column_type, Date) and not isinstance(column_type, DateTime)


# Each returns (columns computed per source row, the local day number over those columns).
DaySql = tuple[str, str]


def _postgres_day(time: str, column_type: Any, plan: _Plan, params: dict[str, Any]) -> DaySql:
    if _is_date(column_type):
        return f"({time} - DATE '1970-01-01') AS t", "t"
    params["tz"] = plan.timezone
    # The session time zone is UTC, so naive timestamps are read as UTC.
    day = f"(CAST(timezone(:tz, CAST({time} AS timestamptz)) AS date) - DATE '1970-01-01')"
    if _is_text(column_type):  # a date alone ('2024-03-01', '2024-3-1') is that day
        day = (
            f"CASE WHEN trim({time}) ~ '^{_DATE_ALONE}$' "
            f"THEN CAST(trim({time}) AS date) - DATE '1970-01-01' ELSE {day} END"
        )
    return f"{day} AS t", "t"


# Unix time as a number: seconds below 1e11 (the year 5138), milliseconds below 1e14 (the
# same instant), microseconds below 1e17, nanoseconds above: (upper bound, divisor to seconds).
_EPOCH_UNITS: tuple[tuple[float, int], ...] = (
    (1e11, 1),
    (1e14, 1_000),
    (1e17, 1_000_000),
    (float("inf"), 1_000_000_000),
)


def _epoch_seconds(number: str, dividend: str) -> str:
    """Unix seconds from a number in the unit its size tells (``_EPOCH_UNITS``): ``dividend``
    is ``number`` as an integer (integer division) or as a real."""
    cases = " ".join(
        f"WHEN abs({number}) < {int(below)} THEN {dividend} / {divisor}"
        for below, divisor in _EPOCH_UNITS[1:-1]
    )
    return (
        f"(CASE WHEN abs({number}) < {int(_EPOCH_UNITS[0][0])} THEN {dividend} {cases} "
        f"ELSE {dividend} / {_EPOCH_UNITS[-1][1]} END)"
    )


def _sqlite_day(time: str, column_type: Any, plan: _Plan, params: dict[str, Any]) -> DaySql:
    # SQLite has no time zones: the UTC offset comes from a search tree over the zone's
    # transitions. Numbers are Unix time in the unit their size tells (see _EPOCH_UNITS);
    # 'YYYY-MM-DD' text is that day; other text is ISO-8601 (an offset or Z is honoured,
    # none means UTC).
    columns = (
        f"CASE WHEN typeof({time}) = 'text' AND length({time}) = 10 "
        f"THEN CAST(julianday({time}) - 2440587.5 AS INTEGER) END AS plain_day, "
        f"CASE WHEN typeof({time}) = 'integer' THEN {_epoch_seconds(time, time)} "
        f"WHEN typeof({time}) = 'real' "
        f"THEN CAST({_epoch_seconds(time, f'CAST({time} AS REAL)')} AS INTEGER) "
        f"ELSE CAST(strftime('%s', {time}) AS INTEGER) END AS e"
    )
    local = _local_day_from_epoch("e", plan, floor_div=_sqlite_floor_div)
    return columns, f"COALESCE(plain_day, {local})"


def _mysql_day(time: str, column_type: Any, plan: _Plan, params: dict[str, Any]) -> DaySql:
    from sqlalchemy import TIMESTAMP

    if _is_date(column_type):
        return f"DATEDIFF({time}, '1970-01-01') AS t", "t"
    if isinstance(column_type, TIMESTAMP):
        # A TIMESTAMP column holds an instant: UNIX_TIMESTAMP reads it without the session zone.
        epoch = f"FLOOR(UNIX_TIMESTAMP({time}))"
    elif _is_text(column_type):
        epoch = _mysql_text_epoch(time)
    else:
        # DATETIME (or text) is naive: read as UTC, independent of the session zone.
        epoch = f"TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', {time})"
    local = _local_day_from_epoch(
        "e", plan, floor_div=lambda x, divisor: f"FLOOR(({x}) / {divisor})"
    )
    if _is_text(column_type):  # a date alone ('2024-03-01', '2024-3-1') is that day
        plain = (
            f"CASE WHEN TRIM({time}) REGEXP '^{_DATE_ALONE}$' "
            f"THEN DATEDIFF(TRIM({time}), '1970-01-01') END"
        )
        return f"{plain} AS plain_day, {epoch} AS e", f"COALESCE(plain_day, {local})"
    return f"{epoch} AS e", local


def _mysql_text_epoch(time: str) -> str:
    """Unix seconds of ISO-8601 text in MySQL/MariaDB: the wall clock read as UTC, less the
    text's own offset (``Z``, ``+05:30``, ``-0200``, ``+01``). MariaDB ignores an offset and
    MySQL reads it into the session's zone, so it is taken off before either sees it."""
    wall = "TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', {})"
    offset = f"REGEXP_SUBSTR({time}, '[+-][0-9]{{2}}(:?[0-9]{{2}})?$')"
    # an offset follows a time of day (a date alone ends in -DD, which is no offset)
    has_offset = (
        f"{time} REGEXP '[0-9]:[0-9]{{2}}(:[0-9]{{2}}([.][0-9]*)?)?[+-][0-9]{{2}}(:?[0-9]{{2}})?$'"
    )
    seconds = (
        f"(CASE WHEN LEFT({offset}, 1) = '-' THEN -1 ELSE 1 END) * "
        f"(CAST(SUBSTRING({offset}, 2, 2) AS SIGNED) * 3600 + "
        f"CASE WHEN CHAR_LENGTH({offset}) > 3 THEN CAST(RIGHT({offset}, 2) AS SIGNED) * 60 "
        f"ELSE 0 END)"
    )
    return (
        f"CASE WHEN RIGHT({time}, 1) IN ('Z', 'z') "
        f"THEN {wall.format(f'LEFT({time}, CHAR_LENGTH({time}) - 1)')} "
        f"WHEN {has_offset} "
        f"THEN {wall.format(f'LEFT({time}, CHAR_LENGTH({time}) - CHAR_LENGTH({offset}))')} "
        f"- {seconds} "
        f"ELSE {wall.format(time)} END"
    )


# Integer division truncates toward zero in SQLite and DuckDB; shifting by a whole number
# of days first keeps the dividend positive (for times after 700 BC), so it floors.
_SHIFT_DAYS = 1_000_000


def _sqlite_floor_div(x: str, divisor: int) -> str:
    return f"((({x}) + {_SHIFT_DAYS * divisor}) / {divisor} - {_SHIFT_DAYS})"


def _int_floor_div(x: str, divisor: int) -> str:
    return f"((({x}) + {_SHIFT_DAYS * divisor}) // {divisor} - {_SHIFT_DAYS})"


def _local_day_from_epoch(
    epoch: str, plan: _Plan, *, floor_div: Callable[[str, int], str], unit: int = 1
) -> str:
    """The local day number of ``epoch`` (an integer count of 1/unit seconds since 1970
    UTC): add the zone's UTC offset in force at that instant, then floor-divide by a day."""
    zone = check_timezone(plan.timezone)
    lo = None if plan.first is None else plan.first - 2
    hi = None if plan.last is None else plan.last + 2
    transitions = [
        (start * unit, offset * unit) for start, offset in _transitions(zone.key, lo, hi)
    ]
    day = 86400 * unit
    if len(transitions) == 1:
        offset = transitions[0][1]
        return floor_div(f"{epoch} + {offset}" if offset else epoch, day)
    return floor_div(f"{epoch} + {_offset_tree(epoch, transitions)}", day)


def _offset_tree(epoch: str, transitions: Sequence[tuple[int, int]]) -> str:
    """A balanced CASE tree: the UTC offset (seconds) in force at ``epoch``."""
    if len(transitions) == 1:
        return str(int(transitions[0][1]))
    middle = len(transitions) // 2
    left = _offset_tree(epoch, transitions[:middle])
    right = _offset_tree(epoch, transitions[middle:])
    return f"(CASE WHEN {epoch} < {int(transitions[middle][0])} THEN {left} ELSE {right} END)"


@lru_cache(maxsize=64)
def _transitions(key: str, lo: int | None, hi: int | None) -> tuple[tuple[int, int], ...]:
    """``(from_epoch_second, utc_offset_seconds)`` for the zone over local days lo..hi
    (default 1970..2100); the first entry starts at -infinity."""
    zone = ZoneInfo(key)
    first = _day_number(date(1970, 1, 1)) if lo is None else lo
    last = _day_number(date(2100, 1, 1)) if hi is None else hi

    def offset(second: int) -> int:
        delta = datetime.fromtimestamp(second, tz=zone).utcoffset()
        return int(delta.total_seconds()) if delta is not None else 0

    start = first * 86400
    result = [(-(2**62), offset(start))]
    # No UTC offset in the tz database lasts less than a week between 1970 and 2100 (checked
    # for every zone: weekly and daily steps find the same changes), so weekly steps find
    # every change; bisection finds its second.
    step = 7 * 86400
    previous_second, previous = start, result[0][1]
    for second in range(start + step, (last + 1) * 86400 + step, step):
        current_offset = offset(second)
        if current_offset != previous:
            low, high = previous_second, second
            while high - low > 1:
                middle = (low + high) // 2
                if offset(middle) == previous:
                    low = middle
                else:
                    high = middle
            result.append((high, current_offset))
            previous = current_offset
        previous_second = second
    return tuple(result)


_DAY_SQL: dict[str, Callable[[str, Any, _Plan, dict[str, Any]], DaySql]] = {
    "postgresql": _postgres_day,
    "sqlite": _sqlite_day,
    "mysql": _mysql_day,
    "mariadb": _mysql_day,
}


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _interrupt_after(con: Any, seconds: float | None) -> threading.Timer | None:
    if not seconds:
        return None
    timer = threading.Timer(seconds, con.interrupt)
    timer.daemon = True
    timer.start()
    return timer
