"""Active users: the linear series against a brute-force count, and every backend agreeing.

The reference counts, for every day and window, the users with enough events in the days
of that window, straight from the definition. Files are read by DuckDB; SQLite, PostgreSQL
and MariaDB run the query themselves.
"""

from __future__ import annotations

import json
import random
import tempfile
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.pool import StaticPool

from kpi_collector.sources.active_users.activity import (
    WINDOWS,  # only compared with REFERENCE_WINDOWS below, never used by the reference
    ActivityError,
    DailyActivity,
    EventFiles,
    EventTable,
    current,
    daily_series,
)
from tests.services import require_module, require_mysql_url, require_postgres_url

Event = tuple[str, datetime]  # (user, aware instant)
ALL = ("dau", "wau", "mau", "stickiness")
# The reference's own window sizes, in days, from the definitions (a day, a week, 30 days),
# not from the module under test: a changed window there must fail the comparison.
REFERENCE_WINDOWS = {"dau": 1, "wau": 7, "mau": 30}


def test_the_module_windows_are_the_defined_ones() -> None:
    assert dict(WINDOWS) == REFERENCE_WINDOWS


# --- the reference ------------------------------------------------------------------------


def reference(
    events: Sequence[Event],
    timezone: str,
    *,
    min_events: int = 1,
    start: date | None = None,
    end: date | None = None,
    windows: Sequence[str] = ALL,
) -> list[DailyActivity]:
    """Every day, every window: count users with >= min_events events in the window's days."""
    zone = ZoneInfo(timezone)
    per_user_day = Counter((user, ts.astimezone(zone).date()) for user, ts in events)
    days = [d for _, d in per_user_day]
    first = start or (min(days) if days else None)
    last = end or (max(days) if days else None)
    if first is None or last is None:
        return []
    series = []
    day = first
    while day <= last:
        counts: dict[str, float] = {}
        for name, span in REFERENCE_WINDOWS.items():
            in_window: Counter[str] = Counter()
            for (user, active), n in per_user_day.items():
                if day - timedelta(days=span - 1) <= active <= day:
                    in_window[user] += n
            counts[name] = sum(1 for n in in_window.values() if n >= min_events)
        counts["stickiness"] = counts["dau"] / counts["mau"] if counts["mau"] else 0.0
        series.append(DailyActivity(day, {w: counts[w] for w in windows}))
        day += timedelta(days=1)
    return series


def as_rows(series: Sequence[DailyActivity]) -> list[tuple[str, dict[str, float]]]:
    """Comparable form; stickiness rounded so that float noise cannot decide a test."""
    return [
        (
            item.day.isoformat(),
            {k: round(v, 9) if k == "stickiness" else v for k, v in item.values.items()},
        )
        for item in series
    ]


# --- writing events where the backends can read them -----------------------------------


def write_parquet(path: Path, events: Sequence[Event], **extra: list[Any]) -> Path:
    table = pa.table(
        {
            "user_id": pa.array([u for u, _ in events], pa.string()),
            "ts": pa.array([ts for _, ts in events], pa.timestamp("us", tz="UTC")),
            **{k: pa.array(v) for k, v in extra.items()},
        }
    )
    pq.write_table(table, path)
    return path


def write_csv(path: Path, events: Sequence[Event]) -> Path:
    # Offsets other than UTC on purpose: the instant is what counts.
    kolkata = ZoneInfo("Asia/Kolkata")
    lines = ["user_id,ts"] + [f"{u},{ts.astimezone(kolkata).isoformat()}" for u, ts in events]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_jsonl(path: Path, events: Sequence[Event]) -> Path:
    with path.open("w") as out:
        for user, ts in events:
            stamp = ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            out.write(json.dumps({"user_id": user, "ts": stamp, "props": {"n": 1}}) + "\n")
    return path


def sqlite_table(events: Sequence[Event], *, table: str = "events") -> sa.Engine:
    """An in-memory SQLite table holding naive-UTC text, as SQLAlchemy's DateTime stores it."""
    engine = sa.create_engine("sqlite://", poolclass=StaticPool)
    meta = sa.MetaData()
    events_table = sa.Table(
        table, meta, sa.Column("user_id", sa.String), sa.Column("ts", sa.DateTime)
    )
    meta.create_all(engine)
    rows = [{"user_id": u, "ts": ts.astimezone(UTC).replace(tzinfo=None)} for u, ts in events]
    with engine.begin() as conn:
        if rows:
            conn.execute(events_table.insert(), rows)
    return engine


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


# --- property tests against the reference ---------------------------------------------------

# 2024-03-01 .. 2024-04-15 holds New York's (Mar 10) and Berlin's (Mar 31) spring DST change.
BASE = datetime(2024, 3, 1, tzinfo=UTC)
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"]
USERS = [f"u{i}" for i in range(6)]
# Quarter hours hit every local midnight of these zones exactly (Chatham is UTC+12:45/13:45).
instants = st.integers(min_value=0, max_value=46 * 96).map(
    lambda k: BASE + timedelta(minutes=15 * k)
)
event_lists = st.lists(st.tuples(st.sampled_from(USERS), instants), max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events=event_lists, timezone=st.sampled_from(ZONES), min_events=st.integers(1, 3))
def test_series_matches_brute_force(events: list[Event], timezone: str, min_events: int) -> None:
    expected = as_rows(reference(events, timezone, min_events=min_events))
    with tempfile.TemporaryDirectory() as folder:
        path = write_parquet(Path(folder) / "events.parquet", events)
        from_files = daily_series(
            str(path),
            user="user_id",
            time="ts",
            timezone=timezone,
            min_events=min_events,
            windows=ALL,
        )
    assert as_rows(from_files) == expected
    engine = sqlite_table(events)
    from_sqlite = daily_series(
        EventTable(engine, "events"),
        user="user_id",
        time="ts",
        timezone=timezone,
        min_events=min_events,
        windows=ALL,
    )
    assert as_rows(from_sqlite) == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=event_lists,
    timezone=st.sampled_from(ZONES),
    min_events=st.integers(1, 3),
    today=st.dates(min_value=date(2024, 2, 20), max_value=date(2024, 5, 20)),
    length=st.integers(0, 40),
)
def test_current_and_ranges_match_brute_force(
    events: list[Event], timezone: str, min_events: int, today: date, length: int
) -> None:
    engine = sqlite_table(events)
    source = EventTable(engine, "events")
    options: dict[str, Any] = {"user": "user_id", "time": "ts", "timezone": timezone}
    expected_today = reference(events, timezone, min_events=min_events, start=today, end=today)
    zone = ZoneInfo(timezone)
    month = {today - timedelta(days=n) for n in range(30)}
    if any(ts.astimezone(zone).date() in month for _, ts in events):
        got = current(source, **options, min_events=min_events, windows=ALL, today=today)
        assert as_rows([DailyActivity(today, got)]) == as_rows(expected_today)
    else:  # no event in the month: the events may have stopped; no zeros are made up
        with pytest.raises(ActivityError, match="no events in the 30 days ending"):
            current(source, **options, min_events=min_events, windows=ALL, today=today)

    start, end = today - timedelta(days=length), today
    with tempfile.TemporaryDirectory() as folder:
        path = write_parquet(Path(folder) / "events.parquet", events)
        ranged = daily_series(str(path), **options, min_events=min_events, start=start, end=end)
    expected = reference(
        events,
        timezone,
        min_events=min_events,
        start=start,
        end=end,
        windows=("dau", "wau", "mau"),
    )
    assert as_rows(ranged) == as_rows(expected)


# --- the edges, spelled out ---------------------------------------------------------------


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def values_on(series: Sequence[DailyActivity], day: str, metric: str) -> float:
    return {item.day.isoformat(): item.values[metric] for item in series}[day]


def test_window_edges_are_inclusive_and_end_exactly() -> None:
    events = [("a", at("2024-01-10T12:00:00+00:00"))]
    end = date(2024, 2, 20)
    series = daily_series(sqlite_source(events), user="user_id", time="ts", end=end, windows=ALL)
    assert series[0].day == date(2024, 1, 10)
    assert series[-1].day == end
    assert values_on(series, "2024-01-10", "dau") == 1
    assert values_on(series, "2024-01-11", "dau") == 0
    assert values_on(series, "2024-01-16", "wau") == 1  # day 7 of the week window
    assert values_on(series, "2024-01-17", "wau") == 0
    assert values_on(series, "2024-02-08", "mau") == 1  # day 30 of the month window
    assert values_on(series, "2024-02-09", "mau") == 0
    assert values_on(series, "2024-01-10", "stickiness") == 1.0
    assert values_on(series, "2024-01-11", "stickiness") == 0.0
    assert values_on(series, "2024-02-09", "stickiness") == 0.0  # no users: 0, not an error


def sqlite_source(events: Sequence[Event]) -> EventTable:
    return EventTable(sqlite_table(events), "events")


def test_days_follow_the_time_zone_across_berlin_dst() -> None:
    # Berlin is UTC+1 until 2024-03-31 01:00 UTC, then UTC+2.
    events = [
        ("a", at("2024-03-30T22:59:59+00:00")),  # 23:59:59 on the 30th in Berlin
        ("b", at("2024-03-30T23:00:00+00:00")),  # 00:00 on the 31st
        ("c", at("2024-03-31T21:59:59+00:00")),  # 23:59:59 on the 31st (summer time)
        ("d", at("2024-03-31T22:00:00+00:00")),  # 00:00 on April 1st
    ]
    berlin = daily_series(
        sqlite_source(events), user="user_id", time="ts", timezone="Europe/Berlin", windows=["dau"]
    )
    assert [(i.day.isoformat(), i.values["dau"]) for i in berlin] == [
        ("2024-03-30", 1),
        ("2024-03-31", 2),
        ("2024-04-01", 1),
    ]
    utc = daily_series(sqlite_source(events), user="user_id", time="ts", windows=["dau"])
    assert [(i.day.isoformat(), i.values["dau"]) for i in utc] == [
        ("2024-03-30", 2),
        ("2024-03-31", 2),
    ]
    with tempfile.TemporaryDirectory() as folder:
        path = write_csv(Path(folder) / "e.csv", events)
        from_csv = daily_series(
            str(path), user="user_id", time="ts", timezone="Europe/Berlin", windows=["dau"]
        )
    assert from_csv == berlin


def test_min_events_counts_events_in_the_window_not_days() -> None:
    events = [
        ("a", at("2024-05-01T08:00:00+00:00")),
        ("a", at("2024-05-01T09:00:00+00:00")),
        ("a", at("2024-05-07T09:00:00+00:00")),  # 3 events within one week
        ("b", at("2024-05-01T08:00:00+00:00")),
        ("b", at("2024-05-08T08:00:00+00:00")),  # b's two events are 8 days apart
    ]
    series = daily_series(sqlite_source(events), user="user_id", time="ts", min_events=2)
    assert values_on(series, "2024-05-01", "dau") == 1  # a has 2 that day, b 1
    assert values_on(series, "2024-05-07", "wau") == 1
    assert values_on(series, "2024-05-08", "wau") == 0  # a's two on the 1st left the week
    assert values_on(series, "2024-05-08", "mau") == 2
    assert as_rows(series) == as_rows(
        reference(events, "UTC", min_events=2, windows=("dau", "wau", "mau"))
    )


def test_no_events() -> None:
    """No event in a window is no proof that nobody was active: the events may have
    stopped arriving. `current` gave zeros for an empty table; now it says so. One event
    in the widest window, even one that no window counts (min_events), makes zeros real."""
    engine = sqlite_table([])
    assert daily_series(EventTable(engine, "events"), user="user_id", time="ts") == []
    with pytest.raises(ActivityError, match="no events in the 30 days ending 2024-01-01"):
        current(
            EventTable(engine, "events"),
            user="user_id",
            time="ts",
            windows=ALL,
            today=date(2024, 1, 1),
        )
    month_ago = sqlite_source([("a", at("2023-12-03T12:00:00+00:00"))])
    assert current(month_ago, user="user_id", time="ts", today=date(2024, 1, 1)) == {
        "dau": 0,
        "wau": 0,
        "mau": 1,
    }
    # the month holds an event whatever windows are asked for: a quiet week is 0
    assert current(
        month_ago, user="user_id", time="ts", windows=["dau", "wau"], today=date(2024, 1, 1)
    ) == {"dau": 0, "wau": 0}
    with pytest.raises(ActivityError, match="no events in the 30 days ending 2024-01-02"):
        current(month_ago, user="user_id", time="ts", windows=["dau"], today=date(2024, 1, 2))
    with pytest.raises(ActivityError, match="matching `where`"):
        current(month_ago, user="user_id", time="ts", where="1 = 0", today=date(2024, 1, 1))
    few = sqlite_source([("a", at("2023-12-31T12:00:00+00:00"))])
    assert current(few, user="user_id", time="ts", min_events=2, today=date(2024, 1, 1)) == {
        "dau": 0,
        "wau": 0,
        "mau": 0,
    }


def test_current_defaults_to_today_in_the_time_zone(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    events = [("a", now - timedelta(days=3)), ("b", now - timedelta(days=40))]
    path = write_parquet(tmp_path / "e.parquet", events)
    assert current(str(path), user="user_id", time="ts") == {"dau": 0, "wau": 1, "mau": 1}


# --- every backend gives the same series ------------------------------------------------------


def make_events(seed: int = 7, count: int = 4000) -> list[Event]:
    """Events of 300 users over 75 days around Berlin's DST change, some on exact midnights."""
    rng = random.Random(seed)
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime(2024, 3, 1, tzinfo=UTC)
    events = []
    for _ in range(count):
        user = f"user-{int(rng.paretovariate(1.2)) % 300:03d}"
        if rng.random() < 0.1:
            local_midnight = datetime(2024, 3, 1, tzinfo=berlin) + timedelta(days=rng.randrange(75))
            ts = local_midnight.replace(tzinfo=berlin) - timedelta(seconds=rng.choice([0, 1]))
        else:
            ts = start + timedelta(seconds=rng.randrange(75 * 86400))
        events.append((user, ts.astimezone(UTC)))
    return events


EVENTS = make_events()


@pytest.fixture(scope="module")
def event_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("events")
    half = len(EVENTS) // 2
    write_parquet(folder / "part-1.parquet", EVENTS[:half])
    write_parquet(folder / "part-2.parquet", EVENTS[half:])
    return {
        "csv": str(write_csv(folder / "events.csv", EVENTS)),
        "parquet-glob": str(folder / "part-*.parquet"),
        "jsonl": str(write_jsonl(folder / "events.jsonl", EVENTS)),
    }


@pytest.fixture(scope="module")
def postgres_table() -> Iterator[EventTable]:
    engine = sa.create_engine(require_postgres_url())
    table = unique_name("kpi_test_events")
    meta = sa.MetaData()
    events = sa.Table(
        table,
        meta,
        sa.Column("user_id", sa.Text),
        sa.Column("ts", sa.DateTime(timezone=True)),
        sa.Column("ts_naive", sa.DateTime(timezone=False)),
        sa.Column("day", sa.Date),
    )
    meta.create_all(engine)
    try:
        with engine.begin() as conn:
            conn.execute(
                events.insert(),
                [
                    {
                        "user_id": u,
                        "ts": ts,
                        "ts_naive": ts.replace(tzinfo=None),
                        "day": ts.astimezone(ZoneInfo("Europe/Berlin")).date(),
                    }
                    for u, ts in EVENTS
                ],
            )
        yield EventTable(engine, table)
    finally:
        meta.drop_all(engine)
        engine.dispose()


@pytest.fixture(scope="module")
def mysql_table() -> Iterator[EventTable]:
    engine = sa.create_engine(require_mysql_url())
    table = unique_name("kpi_test_events")
    meta = sa.MetaData()
    events = sa.Table(
        table,
        meta,
        sa.Column("user_id", sa.String(40)),
        sa.Column("ts_naive", sa.DateTime),
        sa.Column("ts", sa.TIMESTAMP),
    )
    meta.create_all(engine)
    try:
        with engine.begin() as conn:
            # The session zone must not matter for TIMESTAMP: store through a non-UTC one.
            conn.execute(sa.text("SET time_zone = '+05:30'"))
            conn.execute(
                events.insert(),
                [
                    {
                        "user_id": u,
                        "ts_naive": ts.replace(tzinfo=None),
                        "ts": ts.astimezone(ZoneInfo("Asia/Kolkata")).replace(tzinfo=None),
                    }
                    for u, ts in EVENTS
                ],
            )
        yield EventTable(engine, table)
    finally:
        meta.drop_all(engine)
        engine.dispose()


@pytest.mark.parametrize("min_events", [1, 3])
def test_files_sqlite_and_servers_agree(
    event_files: dict[str, str],
    postgres_table: EventTable,
    mysql_table: EventTable,
    min_events: int,
) -> None:
    options: dict[str, Any] = {
        "user": "user_id",
        "timezone": "Europe/Berlin",
        "min_events": min_events,
        "windows": ALL,
    }
    expected = as_rows(reference(EVENTS, "Europe/Berlin", min_events=min_events))
    assert len(expected) >= 70
    got = {name: daily_series(path, time="ts", **options) for name, path in event_files.items()}
    got["sqlite"] = daily_series(sqlite_source(EVENTS), time="ts", **options)
    got["postgres timestamptz"] = daily_series(postgres_table, time="ts", **options)
    got["postgres timestamp"] = daily_series(postgres_table, time="ts_naive", **options)
    got["mariadb datetime"] = daily_series(mysql_table, time="ts_naive", **options)
    got["mariadb timestamp"] = daily_series(mysql_table, time="ts", **options)
    for name, series in got.items():
        assert as_rows(series) == expected, name
    # A range reads only the events that reach it (bounds on the raw column in the servers).
    start, end = date(2024, 3, 25), date(2024, 4, 5)
    part = [row for row in expected if start.isoformat() <= row[0] <= end.isoformat()]
    assert len(part) == 12
    for table, time in ((postgres_table, "ts"), (mysql_table, "ts"), (mysql_table, "ts_naive")):
        ranged = daily_series(table, time=time, start=start, end=end, **options)
        assert as_rows(ranged) == part, (table.table, time)


def test_date_columns_are_days_as_they_are(postgres_table: EventTable, tmp_path: Path) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    days = [ts.astimezone(berlin).date() for _, ts in EVENTS]
    path = tmp_path / "days.parquet"
    pq.write_table(pa.table({"user_id": [u for u, _ in EVENTS], "day": days}), path)
    expected = as_rows(reference(EVENTS, "Europe/Berlin"))
    # The zone does not shift a date: New York here must still give Berlin's days.
    from_file = daily_series(
        str(path), user="user_id", time="day", timezone="America/New_York", windows=ALL
    )
    from_postgres = daily_series(
        postgres_table, user="user_id", time="day", timezone="America/New_York", windows=ALL
    )
    assert as_rows(from_file) == expected
    assert as_rows(from_postgres) == expected


def test_postgres_returns_one_row_per_change_not_events(postgres_table: EventTable) -> None:
    assert isinstance(postgres_table.url, sa.Engine)
    fetched: list[int] = []

    def count_rows(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "au_user_days" in statement:
            fetched.append(cursor.rowcount)

    sa.event.listen(postgres_table.url, "after_cursor_execute", count_rows)
    try:
        series = daily_series(postgres_table, user="user_id", time="ts", timezone="Europe/Berlin")
    finally:
        sa.event.remove(postgres_table.url, "after_cursor_execute", count_rows)
    assert len(fetched) == 1
    assert fetched[0] <= len(series) + 31 < len(EVENTS) / 10


# --- files: formats, URLs, filters --------------------------------------------------------------


def test_fsspec_url(tmp_path: Path) -> None:
    fsspec = require_module("fsspec", hint="needed for fsspec URLs")
    local = write_parquet(tmp_path / "e.parquet", EVENTS[:500])
    memory = fsspec.filesystem("memory")
    folder = f"/kpi-{uuid.uuid4().hex[:8]}"
    memory.pipe(f"{folder}/a.parquet", local.read_bytes())
    try:
        series = daily_series(f"memory://{folder}/*.parquet", user="user_id", time="ts")
    finally:
        memory.rm(folder, recursive=True)
    assert as_rows(series) == as_rows(reference(EVENTS[:500], "UTC", windows=("dau", "wau", "mau")))


def test_where_filters_events(tmp_path: Path) -> None:
    names = ["pipeline_run" if i % 3 == 0 else "page_view" for i in range(len(EVENTS))]
    path = write_parquet(tmp_path / "named.parquet", EVENTS, event=names)
    runs = [e for e, name in zip(EVENTS, names, strict=True) if name == "pipeline_run"]
    series = daily_series(
        str(path), user="user_id", time="ts", where="event = 'pipeline_run'", min_events=2
    )
    expected = reference(runs, "UTC", min_events=2, windows=("dau", "wau", "mau"))
    assert as_rows(series) == as_rows(expected)


def test_explicit_format_for_files_without_suffix(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "export.log", EVENTS[:50])
    with pytest.raises(ValueError, match="cannot tell the format"):
        daily_series(str(path), user="user_id", time="ts")
    series = daily_series(EventFiles(str(path), format="json"), user="user_id", time="ts")
    assert as_rows(series) == as_rows(reference(EVENTS[:50], "UTC", windows=("dau", "wau", "mau")))


def test_identifiers_are_quoted_not_interpolated(tmp_path: Path) -> None:
    column = 'who"; DROP TABLE events; --'
    path = tmp_path / "odd.parquet"
    pq.write_table(pa.table({column: ["a", "b"], "when it happened": [BASE, BASE]}), path)
    series = daily_series(str(path), user=column, time="when it happened", windows=["dau"])
    assert as_rows(series) == [("2024-03-01", {"dau": 2})]

    engine = sa.create_engine("sqlite://", poolclass=StaticPool)
    table = 'ev"ents; DROP TABLE keep'
    meta = sa.MetaData()
    sa.Table("keep", meta, sa.Column("x", sa.Integer))
    odd = sa.Table(table, meta, sa.Column(column, sa.Text), sa.Column("ts", sa.Text))
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(odd.insert(), [{column: "a", "ts": "2024-03-01 10:00:00"}])
    series = daily_series(EventTable(engine, table), user=column, time="ts", windows=["dau"])
    assert as_rows(series) == [("2024-03-01", {"dau": 1})]
    assert sa.inspect(engine).has_table("keep")


# --- clear errors -----------------------------------------------------------------------------


def test_missing_column_lists_the_columns(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "e.parquet", EVENTS[:5])
    with pytest.raises(ActivityError, match=r"user column 'uid' not in .*columns: ts, user_id"):
        daily_series(str(path), user="uid", time="ts")
    with pytest.raises(ActivityError, match=r"time column 'when' not in"):
        daily_series(sqlite_source(EVENTS[:5]), user="user_id", time="when")


def test_unreadable_files_and_tables(tmp_path: Path) -> None:
    with pytest.raises(ActivityError, match=r"cannot read events from .*nothing-here"):
        daily_series(str(tmp_path / "nothing-here" / "*.parquet"), user="u", time="t")
    with pytest.raises(ActivityError, match="no such table"):
        daily_series(EventTable(sqlite_table([]), "missing"), user="u", time="t")


def test_time_column_must_be_a_time(tmp_path: Path) -> None:
    path = tmp_path / "numbers.parquet"
    pq.write_table(pa.table({"user_id": ["a"], "ts": [1700000000]}), path)
    with pytest.raises(ActivityError) as info:
        daily_series(str(path), user="user_id", time="ts")
    # which column, which files, and what to write instead
    assert str(info.value).startswith("the time column ts has type BIGINT; expected a timestamp")
    assert "Unix time" in str(info.value) and str(info.value).endswith(f"({path})")


def test_connection_errors_are_transient_and_hide_the_password() -> None:
    source = EventTable("postgresql+psycopg://kpi:hunter22secret@127.0.0.1:1/test", "events")
    with pytest.raises(ActivityError) as info:
        daily_series(source, user="u", time="t")
    assert info.value.transient
    assert "hunter22secret" not in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown time zone 'Mars/Olympus'"),
        ({"windows": ["dau", "qau"]}, "unknown window 'qau'"),
        ({"windows": []}, "at least one"),
        ({"windows": ["dau", "dau"]}, "once"),
        ({"min_events": 0}, "min_events"),
        ({"min_events": True}, "min_events"),
        ({"user": " "}, "user: give a column name"),
        ({"start": date(2024, 2, 1), "end": date(2024, 1, 1)}, "is after end"),
    ],
)
def test_bad_arguments(options: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"user": "user_id", "time": "ts", **options}
    with pytest.raises(ValueError, match=message):
        daily_series(sqlite_source(EVENTS[:5]), **arguments)


@pytest.mark.parametrize("server", ["postgres", "mariadb"])
def test_the_query_runs_read_only_and_a_pooled_connection_comes_back_writable(
    request: pytest.FixtureRequest, server: str
) -> None:
    fixture = "mysql_table" if server == "mariadb" else "postgres_table"
    table: EventTable = request.getfixturevalue(fixture)
    engine = table.url
    assert isinstance(engine, sa.engine.Engine)
    scratch = unique_name("kpi_scratch")
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {scratch} (x INTEGER)"))
    read_only: list[bool] = []

    def look(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if "au_events" not in statement:  # only the series query itself
            return
        if server == "postgres":  # a refused write would end PostgreSQL's transaction
            cursor.execute("SELECT current_setting('transaction_read_only')")
            read_only.append(cursor.fetchone()[0] == "on")
            return
        try:  # MariaDB's variables do not show the transaction's mode: try a write
            cursor.execute(f"INSERT INTO {scratch} VALUES (1)")
            read_only.append(False)
        except Exception as exc:
            read_only.append("READ ONLY" in str(exc))

    sa.event.listen(engine, "before_cursor_execute", look)
    try:
        assert daily_series(table, user="user_id", time="ts", windows=["dau"])
        assert read_only == [True]
        # the same pooled connection writes again afterwards
        with engine.begin() as conn:
            conn.execute(sa.text(f"INSERT INTO {scratch} VALUES (2)"))
            assert conn.execute(sa.text(f"SELECT x FROM {scratch}")).scalars().all() == [2]
    finally:
        sa.event.remove(engine, "before_cursor_execute", look)
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {scratch}"))


# --- user ids: one user whatever type its id is written in; an empty id is nobody ------------


def test_user_ids_are_one_user_whatever_their_type_and_empty_ids_are_nobody(
    tmp_path: Path, postgres_table: EventTable, mysql_table: EventTable
) -> None:
    """The same events in every form give the same count: user 42 written as a number and as
    text is one user, and an empty id is no user (as CSV already reads it: an empty field
    is NULL), so each form counts users 42 and a on the day: 2."""
    day = "2024-03-01T10:00:00Z"
    lines = [
        {"user_id": 42, "ts": day},
        {"user_id": "42", "ts": day},
        {"user_id": "a", "ts": day},
        {"user_id": "", "ts": day},
        {"user_id": None, "ts": day},
        {"ts": day},
    ]
    jsonl = tmp_path / "mixed.jsonl"
    jsonl.write_text("".join(json.dumps(line) + "\n" for line in lines))
    csv = tmp_path / "mixed.csv"
    csv.write_text(f'user_id,ts\n42,{day}\n"42",{day}\na,{day}\n"",{day}\n,{day}\n')
    parquet = tmp_path / "mixed.parquet"
    stamp = datetime(2024, 3, 1, 10, tzinfo=UTC)
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array(["42", "42", "a", "", None], pa.string()),
                "ts": pa.array([stamp] * 5, pa.timestamp("us", tz="UTC")),
            }
        ),
        parquet,
    )
    engine = sa.create_engine("sqlite://", poolclass=StaticPool)
    with engine.begin() as conn:
        # No declared type: SQLite keeps each value's own type (42, '42', 42.0 are one id).
        conn.execute(sa.text("CREATE TABLE ev (user_id, ts)"))
        conn.execute(
            sa.text(
                "INSERT INTO ev VALUES (42, :t), ('42', :t), (42.0, :t), ('a', :t), ('', :t), "
                "(NULL, :t)"
            ),
            {"t": "2024-03-01 10:00:00"},
        )
    got = {
        "json": daily_series(str(jsonl), user="user_id", time="ts", windows=["dau"]),
        "csv": daily_series(str(csv), user="user_id", time="ts", windows=["dau"]),
        "parquet": daily_series(str(parquet), user="user_id", time="ts", windows=["dau"]),
        "sqlite": daily_series(
            EventTable(engine, "ev"), user="user_id", time="ts", windows=["dau"]
        ),
    }
    for table in (postgres_table, mysql_table):
        name = unique_name("kpi_test_ids")
        meta = sa.MetaData()
        ids = sa.Table(
            name, meta, sa.Column("user_id", sa.String(40)), sa.Column("ts", sa.DateTime)
        )
        assert isinstance(table.url, sa.Engine)
        meta.create_all(table.url)
        try:
            with table.url.begin() as conn:
                conn.execute(
                    ids.insert(),
                    [
                        {"user_id": u, "ts": stamp.replace(tzinfo=None)}
                        for u in ("42", "a", "", None)
                    ],
                )
            got[table.url.dialect.name] = daily_series(
                EventTable(table.url, name), user="user_id", time="ts", windows=["dau"]
            )
        finally:
            meta.drop_all(table.url)
    for name, series in got.items():
        assert as_rows(series) == [("2024-03-01", {"dau": 2})], name


def _numbers_table(
    table: EventTable, column: Any, values: Sequence[Any], stamp: datetime
) -> EventTable:
    """A table of `table`'s database with user ids `values` in a column of type `column`,
    all active at `stamp` (naive UTC); dropped by the caller through its metadata."""
    assert isinstance(table.url, sa.Engine)
    name = unique_name("kpi_test_num_ids")
    ids = sa.Table(name, sa.MetaData(), sa.Column("user_id", column), sa.Column("ts", sa.DateTime))
    ids.create(table.url)
    with table.url.begin() as conn:
        conn.execute(ids.insert(), [{"user_id": v, "ts": stamp} for v in values])
    return EventTable(table.url, name)


def test_a_whole_number_is_one_user_in_every_form_and_a_fraction_is_an_error(
    tmp_path: Path, postgres_table: EventTable, mysql_table: EventTable
) -> None:
    """User 42 written 42, "42", 42.0 or 4.2e1 is one user in JSON lines, CSV, Parquet and
    SQL tables (JSON read 42.0 as the text "42.0": two users with "42"); text stays as
    written ("42.0" in quotes is its own id, as "007" is). A number with a fraction (42.5)
    is no user id: an error naming it (the `user:` key names a wrong column), and so is a
    floating-point number past 2**53, which cannot be told apart from its neighbours."""
    day = "2024-03-01T10:00:00Z"
    stamp = datetime(2024, 3, 1, 10)
    dau = [("2024-03-01", {"dau": 3})]

    def series(events: Any) -> list[tuple[str, dict[str, float]]]:
        return as_rows(daily_series(events, user="user_id", time="ts", windows=["dau"]))

    def json_lines(name: str, ids: Sequence[str]) -> str:
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(f'{{"user_id": {u}, "ts": "{day}"}}\n' for u in ids))
        return str(path)

    mixed = ["42", '"42"', "42.0", "4.2e1", "-0.0", "0", '"a"', '"42.0"']
    assert series(json_lines("mixed", mixed)) == [("2024-03-01", {"dau": 4})]
    assert series(json_lines("numbers", ["42", "42.0", "7", "7.0", "0", "-0.0"])) == dau
    csv = tmp_path / "numbers.csv"
    csv.write_text(f"user_id,ts\n42,{day}\n42.0,{day}\n7,{day}\n0.0,{day}\n")
    assert series(str(csv)) == dau
    parquet = tmp_path / "numbers.parquet"
    pq.write_table(
        pa.table(
            {
                "user_id": pa.array([42.0, 42.0, 7.0, -0.0], pa.float64()),
                "ts": pa.array([stamp] * 4, pa.timestamp("us")),
            }
        ),
        parquet,
    )
    assert series(str(parquet)) == dau
    engine = sa.create_engine("sqlite://", poolclass=StaticPool)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE ev (user_id, ts)"))
        conn.execute(
            sa.text("INSERT INTO ev VALUES (42, :t), ('42', :t), (42.0, :t), (7.0, :t), (0, :t)"),
            {"t": "2024-03-01 10:00:00"},
        )
    assert series(EventTable(engine, "ev")) == dau
    made: list[EventTable] = []
    try:
        for table in (postgres_table, mysql_table):
            for column in (sa.Float(), sa.Numeric(12, 2)):
                made.append(_numbers_table(table, column, [42, 42.0, 7, 0], stamp))
                assert series(made[-1]) == dau, (table.url, column)

        fractions: list[Any] = [
            json_lines("fraction", ['"a"', "42.5"]),
            json_lines("fraction_numbers", ["42", "42.5"]),
            json_lines("huge", ['"a"', "9007199254740993.0"]),
            json_lines("huge_numbers", ["9007199254740993", "2.5e0"]),
        ]
        csv_fraction = tmp_path / "fraction.csv"
        csv_fraction.write_text(f"user_id,ts\n42,{day}\n42.5,{day}\n")
        fractions.append(str(csv_fraction))
        with engine.begin() as conn:
            conn.execute(sa.text("INSERT INTO ev VALUES (42.5, :t)"), {"t": "2024-03-02 10:00:00"})
        fractions.append(EventTable(engine, "ev"))
        for table in (postgres_table, mysql_table):
            for column in (sa.Float(), sa.Numeric(12, 2)):
                made.append(_numbers_table(table, column, [42, 42.5], stamp))
                fractions.append(made[-1])
        for events in fractions:
            with pytest.raises(ActivityError) as failed:
                series(events)
            message = str(failed.value)
            assert "user_id" in message and (
                "42.5" in message or "2.5" in message or "2**53" in message
            ), message
            assert message.count("\n") == 0
    finally:
        for made_table in made:
            assert isinstance(made_table.url, sa.Engine)
            with made_table.url.begin() as conn:
                conn.execute(sa.text(f"DROP TABLE {made_table.table}"))


def test_sqlite_numbers_are_unix_time_in_the_unit_their_size_tells() -> None:
    """Epoch numbers in seconds, milliseconds, microseconds or nanoseconds are the same
    instants: 23:59:59.9 UTC on Feb 29th and 00:00 on March 1st 2024, in every unit. Read as
    seconds, milliseconds were days in the year 56000: current() left them out silently and
    daily_series() failed with OverflowError."""
    last_second = 1709251199  # 2024-02-29T23:59:59Z
    midnight = last_second + 1
    rows = [("s", last_second), ("s-real", last_second + 0.9), ("s", midnight)]
    for unit, scale in (("ms", 1_000), ("us", 1_000_000), ("ns", 1_000_000_000)):
        rows += [(unit, last_second * scale + scale - 1), (unit, midnight * scale)]
    engine = sa.create_engine("sqlite://", poolclass=StaticPool)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE ev (user_id TEXT, ts)"))
        conn.execute(sa.text("INSERT INTO ev VALUES (:u, :t)"), [{"u": u, "t": t} for u, t in rows])
    table = EventTable(engine, "ev")
    series = daily_series(table, user="user_id", time="ts", windows=["dau", "wau"])
    assert as_rows(series) == [
        ("2024-02-29", {"dau": 5, "wau": 5}),
        ("2024-03-01", {"dau": 4, "wau": 5}),
    ]
    today = current(table, user="user_id", time="ts", windows=["dau"], today=date(2024, 3, 1))
    assert today == {"dau": 4}


def test_an_event_time_beyond_the_calendar_is_a_clear_error() -> None:
    """9999-12-31 23:30 UTC is in the year 10000 in Berlin: a one-line error naming the
    range, not an OverflowError from the date arithmetic."""
    engine = sa.create_engine("sqlite://", poolclass=StaticPool)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE ev (user_id TEXT, ts TEXT)"))
        conn.execute(sa.text("INSERT INTO ev VALUES ('a', '9999-12-31T23:30:00Z')"))
    with pytest.raises(ActivityError, match=r"^an event falls on a day outside the years 1-9999"):
        daily_series(EventTable(engine, "ev"), user="user_id", time="ts", timezone="Europe/Berlin")


def test_a_date_written_as_text_is_that_day_in_every_backend(
    tmp_path: Path, postgres_table: EventTable, mysql_table: EventTable
) -> None:
    """'2024-03-01' in a text column beside full timestamps is March 1st, as a date column
    is and as SQLite read it: the files and the servers took it as midnight UTC, which is
    still February 29th in New York."""
    rows = [("a", "2024-03-01"), ("b", "2024-03-01T12:00:00Z"), ("c", "2024-03-02")]
    expected = [("2024-03-01", {"dau": 2, "wau": 2}), ("2024-03-02", {"dau": 1, "wau": 3})]
    csv = tmp_path / "days.csv"
    csv.write_text("user_id,ts\n" + "".join(f"{u},{t}\n" for u, t in rows))
    jsonl = tmp_path / "days.jsonl"
    jsonl.write_text("".join(json.dumps({"user_id": u, "ts": t}) + "\n" for u, t in rows))
    options: dict[str, Any] = {
        "user": "user_id",
        "time": "ts",
        "timezone": "America/New_York",
        "windows": ["dau", "wau"],
    }
    got = {"csv": daily_series(str(csv), **options), "json": daily_series(str(jsonl), **options)}
    engines = {"sqlite": sa.create_engine("sqlite://", poolclass=StaticPool)}
    for table in (postgres_table, mysql_table):
        assert isinstance(table.url, sa.Engine)
        engines[table.url.dialect.name] = table.url
    for name, engine in engines.items():
        table_name = unique_name("kpi_test_days")
        meta = sa.MetaData()
        days = sa.Table(
            table_name, meta, sa.Column("user_id", sa.String(40)), sa.Column("ts", sa.String(40))
        )
        meta.create_all(engine)
        try:
            with engine.begin() as conn:
                conn.execute(days.insert(), [{"user_id": u, "ts": t} for u, t in rows])
            got[name] = daily_series(EventTable(engine, table_name), **options)
        finally:
            meta.drop_all(engine)
    for name, series in got.items():
        assert as_rows(series) == expected, name


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("zone", [None, "UTC", "America/New_York"])
def test_parquet_timestamps_of_every_unit_with_and_without_a_zone(
    tmp_path: Path, unit: str, zone: str | None
) -> None:
    """pandas writes tz-aware times as timestamp[ns, tz=...]: DuckDB reads them as
    TIMESTAMPTZ_NS, which failed ("No function matches ... epoch_us(TIMESTAMPTZ_NS)"). Every
    unit, naive (UTC) or with a zone, gives the same days: New York's midnight is 05:00 UTC."""
    midnight = 1709269200  # 2024-03-01T05:00:00Z, midnight in New York
    scale = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
    # the last tick before midnight (23:59:59.999999999 in nanoseconds), midnight, and the
    # last tick of March 1st
    ticks = [midnight * scale - 1, midnight * scale, (midnight + 86400) * scale - 1]
    path = tmp_path / "events.parquet"
    pq.write_table(
        pa.table(
            {
                "user_id": ["a", "b", "c"],
                "ts": pa.array(ticks, pa.int64()).cast(pa.timestamp(unit, tz=zone)),
            }
        ),
        path,
    )
    options: dict[str, Any] = {"user": "user_id", "time": "ts", "timezone": "America/New_York"}
    series = daily_series(str(path), windows=["dau", "wau"], **options)
    assert as_rows(series) == [
        ("2024-02-29", {"dau": 1, "wau": 1}),
        ("2024-03-01", {"dau": 2, "wau": 3}),
    ]
    assert current(str(path), windows=["dau"], today=date(2024, 3, 1), **options) == {"dau": 2}


def test_a_time_that_is_not_a_time_is_a_clear_error_in_sqlite_and_mysql(
    mysql_table: EventTable,
) -> None:
    """DuckDB and PostgreSQL refuse text that is not a time; SQLite and MySQL read it as
    NULL: the series failed with "TypeError: int() argument must be ... not 'NoneType'" and
    today's counts left those events out silently. Now both say which value it is."""
    sqlite = sa.create_engine("sqlite://", poolclass=StaticPool)
    with sqlite.begin() as conn:
        conn.execute(sa.text("CREATE TABLE ev (user_id TEXT, ts TEXT)"))
        conn.execute(
            sa.text("INSERT INTO ev VALUES ('a', '2024-03-01T10:00:00Z'), ('b', 'yesterday')")
        )
    assert isinstance(mysql_table.url, sa.Engine)
    mysql = mysql_table.url
    text_table, number_table = unique_name("kpi_test_bad"), unique_name("kpi_test_bad")
    with mysql.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {text_table} (user_id VARCHAR(10), ts VARCHAR(40))"))
        conn.execute(
            sa.text(f"INSERT INTO {text_table} VALUES ('a', '2024-03-01 10:00:00'), ('b', 'soon')")
        )
        conn.execute(sa.text(f"CREATE TABLE {number_table} (user_id VARCHAR(10), ts BIGINT)"))
        conn.execute(sa.text(f"INSERT INTO {number_table} VALUES ('a', 1709287200)"))
    try:
        cases = [
            (EventTable(sqlite, "ev"), "'yesterday'"),
            (EventTable(mysql, text_table), "'soon'"),
            (EventTable(mysql, number_table), "1709287200"),
        ]
        for table, shown in cases:
            for today in (None, date(2024, 3, 1)):  # the series, and today's counts
                with pytest.raises(ActivityError) as info:
                    if today is None:
                        daily_series(table, user="user_id", time="ts")
                    else:
                        current(table, user="user_id", time="ts", today=today)
                message = str(info.value)
                assert f"the time column ts has a value that is not a time: {shown}" in message
                assert "\n" not in message
    finally:
        with mysql.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {text_table}"))
            conn.execute(sa.text(f"DROP TABLE {number_table}"))


def test_text_with_an_offset_is_that_instant_in_every_backend(
    tmp_path: Path, postgres_table: EventTable, mysql_table: EventTable
) -> None:
    """ISO-8601 text with an offset is an instant: MySQL/MariaDB dropped the offset and read
    the wall clock as UTC, so '2024-03-01T02:00:00+05:30' (Feb 29th, 20:30 UTC) counted on
    March 1st and '2024-03-01 23:30:00-02:00' (March 2nd, 01:30 UTC) on March 1st too."""
    rows = [
        ("a", "2024-03-01T02:00:00+05:30"),
        ("b", "2024-03-01 23:30:00-02:00"),
        ("c", "2024-03-01T10:00:00Z"),
        ("d", "2024-03-01T23:59:59.500+00:00"),
        ("e", "2024-03-01T00:30:00+01:00"),
    ]
    expected = [
        ("2024-02-29", {"dau": 2}),
        ("2024-03-01", {"dau": 2}),
        ("2024-03-02", {"dau": 1}),
    ]
    jsonl = tmp_path / "offsets.jsonl"
    jsonl.write_text("".join(json.dumps({"user_id": u, "ts": t}) + "\n" for u, t in rows))
    options: dict[str, Any] = {"user": "user_id", "time": "ts", "windows": ["dau"]}
    got = {"json": daily_series(str(jsonl), **options)}
    engines = {"sqlite": sa.create_engine("sqlite://", poolclass=StaticPool)}
    for table in (postgres_table, mysql_table):
        assert isinstance(table.url, sa.Engine)
        engines[table.url.dialect.name] = table.url
    for name, engine in engines.items():
        table_name = unique_name("kpi_test_offsets")
        meta = sa.MetaData()
        texts = sa.Table(
            table_name, meta, sa.Column("user_id", sa.String(40)), sa.Column("ts", sa.String(40))
        )
        meta.create_all(engine)
        try:
            with engine.begin() as conn:
                conn.execute(texts.insert(), [{"user_id": u, "ts": t} for u, t in rows])
            got[name] = daily_series(EventTable(engine, table_name), **options)
        finally:
            meta.drop_all(engine)
    for name, series in got.items():
        assert as_rows(series) == expected, name


def test_a_colon_word_in_where_is_sql_not_a_missing_parameter() -> None:
    """`where: "kind = ':signup'"` on a table made SQLAlchemy ask for a bind parameter
    `signup` and the source failed; it is SQL as written, on files as on tables."""
    engine = sa.create_engine("sqlite://", poolclass=StaticPool)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE events (user_id TEXT, ts TEXT, kind TEXT)"))
        conn.execute(
            sa.text(
                "INSERT INTO events VALUES ('a', '2024-05-01 08:00:00', :kind),"
                " ('b', '2024-05-01 09:00:00', 'other')"
            ),
            {"kind": ":signup"},
        )
    series = daily_series(
        EventTable(engine, "events"), user="user_id", time="ts", where="kind = ':signup'"
    )
    assert [(item.day.isoformat(), item.values["dau"]) for item in series] == [("2024-05-01", 1)]


def test_ids_differing_in_case_or_trailing_spaces_are_different_users_in_every_backend(
    tmp_path: Path, postgres_table: EventTable, mysql_table: EventTable
) -> None:
    """An id is compared as written: `Alice`, `alice`, `ALICE`, `a`, `a ` and `café`/`cafe`
    are six users, as PostgreSQL, SQLite and DuckDB count them. MariaDB compared them in the
    column's collation (utf8mb4_general_ci: case, trailing spaces and accents ignored) and
    counted three; a latin1 column too. An id of spaces only is still an id."""
    ids = ["Alice", "alice", "ALICE", "a", "a ", "café", "cafe", "  "]
    stamp = datetime(2024, 3, 1, 10, tzinfo=UTC)
    csv = tmp_path / "ids.csv"
    csv.write_text("user_id,ts\n" + "".join(f'"{u}",{stamp.isoformat()}\n' for u in ids))
    got = {"csv": daily_series(str(csv), user="user_id", time="ts", windows=["dau"])}
    got["sqlite"] = daily_series(
        sqlite_source([(u, stamp) for u in ids]), user="user_id", time="ts", windows=["dau"]
    )
    for table in (postgres_table, mysql_table):
        assert isinstance(table.url, sa.Engine)
        charsets = ["utf8mb4", "latin1"] if table.url.dialect.name == "mysql" else [""]
        for charset in charsets:
            name = unique_name("kpi_test_case")
            column = f"VARCHAR(40) CHARACTER SET {charset}" if charset else "VARCHAR(40)"
            with table.url.begin() as conn:
                conn.execute(sa.text(f"CREATE TABLE {name} (user_id {column}, ts TIMESTAMP)"))
                conn.execute(
                    sa.text(f"INSERT INTO {name} VALUES (:u, :t)"),
                    [{"u": u, "t": stamp.replace(tzinfo=None)} for u in ids],
                )
            try:
                got[f"{table.url.dialect.name} {charset}"] = daily_series(
                    EventTable(table.url, name), user="user_id", time="ts", windows=["dau"]
                )
            finally:
                with table.url.begin() as conn:
                    conn.execute(sa.text(f"DROP TABLE {name}"))
    for name, series in got.items():
        assert as_rows(series) == [("2024-03-01", {"dau": len(ids)})], name


# --- CSV and JSON: the user and time columns as written, not as a sample of rows guessed ------


def test_ids_and_times_after_the_sniffed_rows_are_read_as_written(tmp_path: Path) -> None:
    """DuckDB guesses a CSV or JSON column's type from the first 20,480 rows: ids that are
    numbers there and text further on (`anon-7`, a new id scheme) failed the whole source
    ('Conversion Error: CSV Error on Line: 30002', 'Failed to cast value to numerical'), and
    so did times written another way later on. Every row is read as written now."""
    day = "2024-03-01T10:00:00Z"
    numbers = [str(i % 50) for i in range(25_000)]
    csv = tmp_path / "late.csv"
    csv.write_text(
        "user_id,ts\n"
        + "".join(f"{u},2024-03-01 10:00:00\n" for u in numbers)
        + "anon-7,2024-03-01T23:30:00-05:00\n"  # March 2nd in UTC, and text
        + "7.0,2024-03-02\n"  # user 7, written as a float
    )
    jsonl = tmp_path / "late.jsonl"
    jsonl.write_text(
        "".join(f'{{"user_id": {u}, "ts": "{day}"}}\n' for u in numbers)
        + '{"user_id": "anon-7", "ts": "2024-03-01T23:30:00-05:00"}\n'
        + '{"user_id": 7.0, "ts": "2024-03-02"}\n'
    )
    expected = [("2024-03-01", {"dau": 50, "mau": 50}), ("2024-03-02", {"dau": 2, "mau": 51})]
    for path in (csv, jsonl):
        series = daily_series(str(path), user="user_id", time="ts", windows=["dau", "mau"])
        assert as_rows(series) == expected, path.name


def test_a_csv_id_written_as_a_number_is_that_number_among_text_ids(tmp_path: Path) -> None:
    """A CSV column of numbers read 42 and 42.0 as user 42, but beside one text id the
    column was text and 42.0 a user of its own: the count depended on the other rows. A
    number is its whole number in either; 42.5 is an error in either."""
    day = "2024-03-01"
    with_text = tmp_path / "with_text.csv"
    with_text.write_text(
        f"user_id,ts\n42,{day}\n42.0,{day}\n4.2e1,{day}\n+42,{day}\n042,{day}\nabc,{day}\n"
    )
    numbers = tmp_path / "numbers.csv"
    numbers.write_text(f"user_id,ts\n42,{day}\n42.0,{day}\n4.2e1,{day}\n+42,{day}\n")
    got = {
        path.name: as_rows(daily_series(str(path), user="user_id", time="ts", windows=["dau"]))
        for path in (with_text, numbers)
    }
    assert got == {
        "with_text.csv": [(day, {"dau": 2})],
        "numbers.csv": [(day, {"dau": 1})],
    }
    fraction = tmp_path / "fraction.csv"
    fraction.write_text(f"user_id,ts\nabc,{day}\n42.5,{day}\n")
    with pytest.raises(ActivityError, match=r"the user column 'user_id' holds 42\.5, a number"):
        daily_series(str(fraction), user="user_id", time="ts")


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_a_time_not_written_in_iso_8601_is_an_error_not_a_guessed_day(
    tmp_path: Path, suffix: str
) -> None:
    """01/02/2024 is January 2nd in the US and February 1st in Europe: DuckDB's CSV sniffing
    picked one (day/month) and counted the events on days they may not be. Such a time, or
    any text that is no ISO-8601 time, is an error showing it, in CSV and in JSON."""
    path = tmp_path / f"events.{suffix}"
    rows = [("a", "01/02/2024 10:00:00"), ("b", "03/02/2024 10:00:00")]
    if suffix == "csv":
        path.write_text("user_id,ts\n" + "".join(f"{u},{t}\n" for u, t in rows))
    else:
        path.write_text("".join(json.dumps({"user_id": u, "ts": t}) + "\n" for u, t in rows))
    for today in (None, date(2024, 2, 3)):  # the series, and today's counts
        with pytest.raises(ActivityError) as info:
            if today is None:
                daily_series(str(path), user="user_id", time="ts")
            else:
                current(str(path), user="user_id", time="ts", today=today)
        message = str(info.value)
        assert "the time column ts has a value that is not a time: '01/02/2024 10:00:00'" in (
            message
        )
        assert "ISO-8601" in message and path.name in message and "\n" not in message


def test_a_date_alone_without_leading_zeros_or_with_spaces_is_that_day_in_every_backend(
    tmp_path: Path, postgres_table: EventTable, mysql_table: EventTable
) -> None:
    """A date alone was told by its length (10 characters): '2024-3-2' or ' 2024-03-02' was
    read as midnight UTC, March 1st in New York (a CSV or JSON column of them was a DATE
    by DuckDB's guess, but not beside other text, nor in Parquet strings, PostgreSQL or
    MariaDB text). It is that day in each; SQLite, which reads no such date, says so."""
    rows = [("a", "2024-3-2"), ("b", " 2024-03-02 "), ("c", "2024-03-02"), ("d", "2024-3-1")]
    rows += [("e", "2024-03-02T04:30:00Z")]  # 23:30 on March 1st in New York
    expected = [("2024-03-01", {"dau": 2, "wau": 2}), ("2024-03-02", {"dau": 3, "wau": 5})]
    options: dict[str, Any] = {
        "user": "user_id",
        "time": "ts",
        "timezone": "America/New_York",
        "windows": ["dau", "wau"],
    }
    csv = tmp_path / "days.csv"
    csv.write_text("user_id,ts\n" + "".join(f'{u},"{t}"\n' for u, t in rows))
    jsonl = tmp_path / "days.jsonl"
    jsonl.write_text("".join(json.dumps({"user_id": u, "ts": t}) + "\n" for u, t in rows))
    parquet = tmp_path / "days.parquet"
    pq.write_table(pa.table({"user_id": [u for u, _ in rows], "ts": [t for _, t in rows]}), parquet)
    got = {path.name: daily_series(str(path), **options) for path in (csv, jsonl, parquet)}
    sqlite = sa.create_engine("sqlite://", poolclass=StaticPool)
    for engine in (postgres_table.url, mysql_table.url, sqlite):
        assert isinstance(engine, sa.Engine)
        table_name = unique_name("kpi_test_days")
        meta = sa.MetaData()
        days = sa.Table(
            table_name, meta, sa.Column("user_id", sa.String(40)), sa.Column("ts", sa.String(40))
        )
        meta.create_all(engine)
        try:
            with engine.begin() as conn:
                conn.execute(days.insert(), [{"user_id": u, "ts": t} for u, t in rows])
            if engine is sqlite:
                with pytest.raises(ActivityError, match="not a time: '2024-3-"):
                    daily_series(EventTable(engine, table_name), **options)
            else:
                got[engine.dialect.name] = daily_series(EventTable(engine, table_name), **options)
        finally:
            meta.drop_all(engine)
    for name, series in got.items():
        assert as_rows(series) == expected, name


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_where_sees_the_columns_as_typed_while_the_ids_and_times_are_read_as_written(
    tmp_path: Path, suffix: str
) -> None:
    """The user and time columns are read as written, but `where:` keeps comparing them as
    the numbers and times they look like (`user_id > 0`, `ts >= TIMESTAMP ...` must not
    fail with 'Cannot compare values of type VARCHAR and ...')."""
    rows = [(0, "2024-03-01 10:00:00"), (1, "2024-03-01 11:00:00"), (2, "2024-03-02 10:00:00")]
    path = tmp_path / f"events.{suffix}"
    if suffix == "csv":
        path.write_text("user_id,ts,name\n" + "".join(f"{u},{t},run\n" for u, t in rows))
    else:
        path.write_text(
            "".join(json.dumps({"user_id": u, "ts": t, "name": "run"}) + "\n" for u, t in rows)
        )
    for where, expected in [
        ("user_id > 0", [("2024-03-01", {"dau": 1}), ("2024-03-02", {"dau": 1})]),
        ("ts >= TIMESTAMP '2024-03-02 00:00:00' AND name = 'run'", [("2024-03-02", {"dau": 1})]),
        ("year(ts) = 2024 AND ts < DATE '2024-03-02'", [("2024-03-01", {"dau": 2})]),
    ]:
        series = daily_series(str(path), user="user_id", time="ts", where=where, windows=["dau"])
        assert as_rows(series) == expected, where
    named = tmp_path / f"named.{suffix}"
    if suffix == "csv":
        named.write_text("user_id,ts\na,2024-03-01\nb,2024-03-01\n")
    else:
        named.write_text(
            '{"user_id": "a", "ts": "2024-03-01"}\n{"user_id": "b", "ts": "2024-03-01"}\n'
        )
    series = daily_series(str(named), user="user_id", time="ts", where="user_id = 'a'")
    assert as_rows(series) == [("2024-03-01", {"dau": 1, "wau": 1, "mau": 1})]  # not '"a"'


def test_a_where_ending_in_a_comment_chooses_its_events(
    tmp_path: Path, postgres_table: EventTable
) -> None:
    """`where: |` with a `-- comment` on its last line (the block's newline is stripped)
    commented out the rest of the query: 'syntax error at or near "au_windows"', 'incomplete
    input'. The comment ends where the condition does."""
    where = "kind = 'run'  -- CI runs only\n"
    rows = [("a", "2024-05-01 08:00:00", "run"), ("b", "2024-05-01 09:00:00", "other")]
    csv = tmp_path / "events.csv"
    csv.write_text("user_id,ts,kind\n" + "".join(f"{u},{t},{k}\n" for u, t, k in rows))
    sources: dict[str, Any] = {"csv": str(csv)}
    for engine in (sa.create_engine("sqlite://", poolclass=StaticPool), postgres_table.url):
        assert isinstance(engine, sa.Engine)
        name = unique_name("kpi_test_where")
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE {name} (user_id TEXT, ts TEXT, kind TEXT)"))
            conn.execute(
                sa.text(f"INSERT INTO {name} VALUES (:u, :t, :k)"),
                [{"u": u, "t": t, "k": k} for u, t, k in rows],
            )
        sources[engine.dialect.name] = EventTable(engine, name)
    try:
        for label, events in sources.items():
            series = daily_series(events, user="user_id", time="ts", where=where, windows=["dau"])
            assert as_rows(series) == [("2024-05-01", {"dau": 1})], label
    finally:
        assert isinstance(postgres_table.url, sa.Engine)
        with postgres_table.url.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {sources['postgresql'].table}"))


def test_ids_after_a_sample_of_anonymous_events_count_and_where_sees_them(
    tmp_path: Path,
) -> None:
    """Anonymous events first (no user id in the first 20,480 lines, which DuckDB types as
    "NULL"), identified ones after: where: over the user column must see their ids, not
    NULL (`user_id > 0` chose nothing)."""
    path = tmp_path / "events.jsonl"
    path.write_text(
        '{"user_id": null, "ts": null}\n' * 25_000
        + '{"user_id": 5, "ts": "2024-03-01T10:00:00Z"}\n'
        + '{"user_id": 0, "ts": "2024-03-01T11:00:00Z"}\n'
    )
    for where, dau in ((None, 2), ("user_id > 0", 1), ("ts >= '2024-03-01'", 2)):
        series = daily_series(str(path), user="user_id", time="ts", where=where, windows=["dau"])
        assert as_rows(series) == [("2024-03-01", {"dau": dau})], where


def test_a_time_that_is_no_time_is_shown_on_one_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(json.dumps({"user_id": "a", "ts": "2024-03-01\nlater"}) + "\n")
    with pytest.raises(ActivityError) as info:
        daily_series(str(path), user="user_id", time="ts")
    assert "not a time: '2024-03-01 later'" in str(info.value)
    assert "\n" not in str(info.value)


def test_parquet_files_that_disagree_on_a_columns_type_are_an_error_not_a_misreading(
    tmp_path: Path,
) -> None:
    """Files read together take one type per column: dates in one file beside timestamps
    in another became midnight UTC (user a, active on March 1st, counted on February 29th
    in New York), and ids 42.0 beside text ids became the text '42.0' (user 42 counted
    twice). Each is an error naming a file of each kind; files that agree read as before."""
    stamp = datetime(2024, 3, 1, 12)

    def write(name: str, users: pa.Array, times: pa.Array) -> None:
        pq.write_table(pa.table({"user_id": users, "ts": times}), tmp_path / f"{name}.parquet")

    write("dates", pa.array(["a"]), pa.array([date(2024, 3, 1)]))
    write("stamps", pa.array(["42"]), pa.array([stamp], pa.timestamp("us")))
    write("floats", pa.array([42.0]), pa.array([stamp], pa.timestamp("us")))
    write("ints", pa.array([42], pa.int64()), pa.array([stamp], pa.timestamp("us", tz="UTC")))
    options: dict[str, Any] = {"user": "user_id", "time": "ts", "timezone": "America/New_York"}

    def files(*names: str) -> EventFiles:
        return EventFiles([str(tmp_path / f"{name}.parquet") for name in names])

    with pytest.raises(ActivityError) as mixed_times:
        daily_series(files("dates", "stamps"), **options)
    message = str(mixed_times.value)
    assert message.startswith("the time column ts holds dates in ") and "\n" not in message
    assert "dates.parquet" in message and "stamps.parquet" in message
    with pytest.raises(ActivityError, match=r"user column user_id holds floating-point .*"):
        daily_series(files("floats", "stamps"), **options)
    # numbers of any kind together, or whole numbers beside text: one user 42
    for agreeing in (("floats", "ints"), ("ints", "stamps")):
        series = daily_series(files(*agreeing), **options, windows=["dau"])
        assert as_rows(series) == [("2024-03-01", {"dau": 1})], agreeing


def test_event_files_are_computed_within_a_memory_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB took up to 80% of the machine's memory (its default) and spilled into `.tmp`
    in the folder `kpi` ran in: 10 million events of a million users peaked at 806 MB, so a
    huge export could starve every other source, or the machine. It now works within
    `DUCKDB_MEMORY` (spilling to a temporary folder of its own), and a computation that
    cannot fit fails saying so."""
    import duckdb

    import kpi_collector.sources.active_users.activity as activity

    path = tmp_path / "events.parquet"
    with duckdb.connect() as con:
        con.execute(
            "COPY (SELECT 'user-' || ((i * 7919) % 20000)::VARCHAR AS user_id, "
            "TIMESTAMP '2024-01-01' + INTERVAL (i * 300) SECOND AS ts FROM range(100000) t(i)) "
            f"TO '{path}'"
        )
    monkeypatch.chdir(tmp_path)
    full = daily_series(EventFiles(str(path)), user="user_id", time="ts")
    assert full[-1].values["mau"] > 0
    monkeypatch.setattr(activity, "DUCKDB_MEMORY", "1MB")
    with pytest.raises(ActivityError, match="needs more memory than the 1MB it may take"):
        daily_series(EventFiles(str(path)), user="user_id", time="ts")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.parquet"]  # no `.tmp` left
