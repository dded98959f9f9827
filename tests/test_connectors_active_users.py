"""`type: active_users`: the config, today's values, and the backfilled daily series."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from kpi_collector.collect.http import HttpClient
from kpi_collector.errors import SourceError
from kpi_collector.sources.active_users import ActiveUsers
from kpi_collector.sources.base import Observation, SourceContext
from tests.test_activity import Event, reference, write_csv, write_parquet

BERLIN = ZoneInfo("Europe/Berlin")
# 07:00 in Berlin on 2024-04-10: "today" is April 10th there.
NOW = datetime(2024, 4, 10, 5, 0, tzinfo=UTC)
EVENTS: list[Event] = [
    ("a", datetime(2024, 3, 20, 12, 0, tzinfo=UTC)),
    ("a", datetime(2024, 4, 9, 21, 30, tzinfo=UTC)),  # 23:30 on the 9th in Berlin
    ("b", datetime(2024, 4, 9, 22, 30, tzinfo=UTC)),  # 00:30 on the 10th in Berlin
    ("c", datetime(2024, 3, 30, 23, 30, tzinfo=UTC)),  # 00:30 on the 31st (DST day)
    ("c", datetime(2024, 4, 3, 8, 0, tzinfo=UTC)),
]


def context(base_dir: Path, *, now: datetime = NOW, tz: ZoneInfo = BERLIN) -> SourceContext:
    return SourceContext(HttpClient(), 20.0, 0, tz, now, base_dir)


def collect(source: ActiveUsers, ctx: SourceContext) -> dict[str, float]:
    return dict(asyncio.run(source.collect(ctx)))


def backfill(source: ActiveUsers, ctx: SourceContext, since: date) -> list[Observation]:
    async def go() -> list[Observation]:
        return [obs async for obs in source.backfill(ctx, since)]

    return asyncio.run(go())


def by_day(observations: Sequence[Observation]) -> dict[date, dict[str, float]]:
    days: dict[date, dict[str, float]] = {}
    for obs in observations:
        assert obs.ts.tzinfo is not None
        local = obs.ts.astimezone(BERLIN)
        assert local.time() == time(23, 59, 59)
        days.setdefault(local.date(), {})[obs.metric] = obs.value
    return days


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "events").mkdir()
    write_parquet(tmp_path / "events" / "part-1.parquet", EVENTS[:3])
    write_parquet(tmp_path / "events" / "part-2.parquet", EVENTS[3:])
    return tmp_path


def test_collect_counts_the_windows_ending_yesterday_in_the_config_zone(folder: Path) -> None:
    """A run at 07:00 stored the windows ending today: a DAU of 7 hours, stored beside whole
    days (a helper saw `dau 21 -51%`). `collect` gives the last complete day: yesterday in
    the config's time zone (the run stores it with yesterday's stamp)."""
    source = ActiveUsers.model_validate(
        {
            "name": "telemetry",
            "events": "events/*.parquet",
            "user": "user_id",
            "time": "ts",
            "windows": ["dau", "wau", "mau", "stickiness"],
        }
    )
    assert source.kpi_ids() == [
        "telemetry.dau",
        "telemetry.wau",
        "telemetry.mau",
        "telemetry.stickiness",
    ]
    values = collect(source, context(folder))
    # April 9th in Berlin: a (23:30); c on Apr 3 (in the week Apr 3..9) and Mar 31; a also
    # on Mar 20. b's event is 00:30 on the 10th there: today, not complete, not counted.
    assert context(folder).today == date(2024, 4, 10)
    assert values == {"dau": 1.0, "wau": 2.0, "mau": 2.0, "stickiness": 0.5}
    assert all(isinstance(v, float) for v in values.values())
    # In UTC it is April 10th too, and b's event was on the 9th there.
    utc = collect(source, context(folder, tz=ZoneInfo("UTC")))
    assert utc == {"dau": 2.0, "wau": 3.0, "mau": 3.0, "stickiness": pytest.approx(2 / 3)}


def test_backfill_gives_every_complete_day_from_the_first_activity(folder: Path) -> None:
    source = ActiveUsers.model_validate(
        {
            "name": "t",
            "events": str(folder / "events" / "*.parquet"),
            "user": "user_id",
            "time": "ts",
        }
    )
    observations = backfill(source, context(Path("/nonexistent")), since=date(2024, 1, 1))
    days = by_day(observations)
    assert min(days) == date(2024, 3, 20)  # nothing stored for the empty days before
    assert max(days) == date(2024, 4, 9)  # yesterday; today comes from collect
    assert len(days) == 21
    expected = reference(
        EVENTS,
        "Europe/Berlin",
        start=date(2024, 3, 20),
        end=date(2024, 4, 9),
        windows=("dau", "wau", "mau"),
    )
    assert days == {item.day: item.values for item in expected}
    assert days[date(2024, 3, 31)]["dau"] == 1.0  # c's 00:30 local falls on the DST day

    later = backfill(source, context(folder), since=date(2024, 4, 1))
    assert min(by_day(later)) == date(2024, 4, 1)
    assert by_day(later) == {d: v for d, v in days.items() if d >= date(2024, 4, 1)}
    assert backfill(source, context(folder), since=date(2024, 4, 10)) == []


def test_sql_table_with_min_events_and_where(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    meta = sa.MetaData()
    table = sa.Table(
        "events",
        meta,
        sa.Column("account", sa.String),
        sa.Column("at", sa.DateTime),
        sa.Column("name", sa.String),
    )
    meta.create_all(engine)
    rows: list[dict[str, Any]] = []
    for user, ts in [*EVENTS, ("a", datetime(2024, 4, 8, 10, tzinfo=UTC))]:
        for name in ("run", "view"):
            rows.append({"account": user, "at": ts.replace(tzinfo=None), "name": name})
    with engine.begin() as conn:
        conn.execute(table.insert(), rows)
    engine.dispose()
    source = ActiveUsers.model_validate(
        {
            "name": "app",
            "url": f"sqlite:///{path}",
            "table": "events",
            "user": "account",
            "time": "at",
            "where": "name = 'run'",
            "min_events": 2,
        }
    )
    values = collect(source, context(tmp_path))
    # April 9th: a has two runs in the week (Apr 8 and 9, Berlin time); in the month c too.
    assert values == {"dau": 0.0, "wau": 1.0, "mau": 2.0}
    days = by_day(backfill(source, context(tmp_path), since=date(2024, 3, 1)))
    assert days[date(2024, 4, 9)] == {"dau": 0.0, "wau": 1.0, "mau": 2.0}  # c: Mar 31 + Apr 3
    assert days[date(2024, 4, 7)] == {"dau": 0.0, "wau": 0.0, "mau": 1.0}


def test_csv_with_explicit_format(tmp_path: Path) -> None:
    write_csv(tmp_path / "export.log", EVENTS)
    source = ActiveUsers.model_validate(
        {"events": "export.log", "format": "csv", "user": "user_id", "time": "ts"}
    )
    assert source.name == "active_users"
    assert collect(source, context(tmp_path)) == {"dau": 1.0, "wau": 2.0, "mau": 2.0}


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, r"give `events` \(files\), or `url` and `table`"),
        ({"url": "sqlite:///x.db"}, r"give `events` \(files\), or `url` and `table`"),
        ({"events": "e.parquet", "table": "events"}, "not both"),
        ({"events": "e.dat"}, "cannot tell the format"),
        ({"events": []}, "empty"),
        ({"events": "e.parquet", "windows": ["dau", "yau"]}, "windows"),
        ({"events": "e.parquet", "windows": []}, "at least one"),
        ({"events": "e.parquet", "min_events": 0}, "min_events"),
        ({"events": "e.parquet", "user": " "}, "must not be empty"),
        ({"events": "e.parquet", "bogus": 1}, "bogus"),
        ({"url": "sqlite:///x.db", "table": "t", "format": "csv"}, "`format` is for"),
    ],
)
def test_config_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ActiveUsers.model_validate({"user": "user_id", "time": "ts", **config})


def test_the_database_url_is_a_secret() -> None:
    source = ActiveUsers.model_validate(
        {
            "url": "postgresql+psycopg://app:pa55word-x@db/app",
            "table": "events",
            "user": "u",
            "time": "t",
        }
    )
    assert "pa55word-x" not in repr(source)
    assert "pa55word-x" not in source.model_dump_json()


def test_collect_where_the_events_do_not_reach_is_an_error_not_zeros(folder: Path) -> None:
    """The events end on April 10th (an export that stopped): a run on June 1st stored 0
    for DAU, WAU and MAU as if nobody had been active. A 0 is stored only for windows the
    events reach: the run fails saying so, and nothing is stored."""
    source = ActiveUsers.model_validate(
        {"name": "telemetry", "events": "events/*.parquet", "user": "user_id", "time": "ts"}
    )
    later = datetime(2024, 6, 1, 12, tzinfo=UTC)
    with pytest.raises(SourceError, match="no events in the 30 days ending 2024-05-31"):
        collect(source, context(folder, now=later))
    # a month after the last event the month still holds it: its zeros are real
    may = datetime(2024, 5, 5, 12, tzinfo=UTC)
    assert collect(source, context(folder, now=may)) == {"dau": 0.0, "wau": 0.0, "mau": 2.0}


def test_pipeline_runs_and_backfills_the_source(folder: Path) -> None:
    from kpi_collector.pipeline import Pipeline

    (folder / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\n"
        "timezone: Europe/Berlin\n"
        "kpis:\n"
        '  telemetry.weekly_share: {formula: "telemetry.wau / telemetry.mau"}\n'
        "sources:\n"
        "  - {name: telemetry, type: active_users, events: events/*.parquet,"
        " user: user_id, time: ts}\n"
    )
    pipeline = Pipeline.from_config(folder / "kpi.yaml")
    report = pipeline.backfill(since=date(2024, 3, 1), now=NOW)
    assert report.errors == {}
    assert report.added["telemetry"] == 21 * 3
    assert pipeline.store is not None
    rows = pipeline.store.rows()
    result = pipeline.process(deliver=False, now=NOW)
    # April 9th's windows (the run's yesterday), stored by the backfill already: not again
    assert {k: v for k, v in result.values.items() if k.startswith("telemetry.")} == {
        "telemetry.dau": 1.0,
        "telemetry.wau": 2.0,
        "telemetry.mau": 2.0,
        "telemetry.weekly_share": 1.0,
    }
    assert result.errors == {}
    assert pipeline.store.rows() == rows
    april_8 = reference(EVENTS, "Europe/Berlin", start=date(2024, 4, 8), end=date(2024, 4, 8))
    assert result.previous["telemetry.mau"] == april_8[0].values["mau"]  # the day before


def daily(
    store: Any, kpi: str, since: date | None = None
) -> dict[date, list[float]]:  # every stored value of `kpi` by local day, in order
    days: dict[date, list[float]] = {}
    for _, ts, value in store.rows([kpi]):
        stamp = datetime.fromtimestamp(ts, BERLIN)
        assert stamp.time() == time(23, 59, 59), stamp  # a whole day's value, at its end
        days.setdefault(stamp.date(), []).append(value)
    return days


def test_a_daily_job_stores_whole_days_once_and_fills_in_the_days_it_missed(
    folder: Path,
) -> None:
    """`kpi run` stored the windows ending today at the run's moment: a 07:00 run's DAU held
    7 hours of activity, and a daily job's history was a series of partial days compared
    with one another (`dau 21 -51%`). Now a run stores the last complete day's windows
    (yesterday in the config's zone) with yesterday's stamp, as `kpi backfill` does, once
    however many runs a day; the complete days missed since the last stored one (the
    machine was off) are filled in; each day's value and its change are those of that
    whole day, in `kpi history`, the run's changes and a digest's `compare`."""
    from kpi_collector.destinations.digest import Digest
    from kpi_collector.pipeline import Pipeline
    from kpi_collector.store.runs import newest_collected

    (folder / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\n"
        "timezone: Europe/Berlin\n"
        "kpis:\n"
        '  telemetry.share: {formula: "telemetry.wau / telemetry.mau"}\n'
        "sources:\n"
        "  - {name: telemetry, type: active_users, events: events/*.parquet,"
        " user: user_id, time: ts}\n"
    )
    pipeline = Pipeline.from_config(folder / "kpi.yaml")
    store = pipeline.store
    assert store is not None
    expected = {
        item.day: item.values
        for item in reference(
            EVENTS, "Europe/Berlin", start=date(2024, 3, 20), end=date(2024, 4, 9)
        )
    }

    def run_at(day: date, hour: int) -> Any:
        result = pipeline.process(deliver=False, now=datetime.combine(day, time(hour), BERLIN))
        assert result.errors == {}, result.errors
        return result

    first = run_at(date(2024, 4, 5), 7)  # stores April 4th, whole
    assert first.values["telemetry.dau"] == expected[date(2024, 4, 4)]["dau"]
    assert (
        first.stamps["telemetry.dau"] == datetime(2024, 4, 4, 23, 59, 59, tzinfo=BERLIN).timestamp()
    )
    assert daily(store, "telemetry.mau") == {date(2024, 4, 4): [expected[date(2024, 4, 4)]["mau"]]}
    # when the source last collected (the scheduler's catch-up, `/metrics`): the run's start
    assert (
        newest_collected(store, "telemetry") == datetime(2024, 4, 5, 7, tzinfo=BERLIN).timestamp()
    )
    frame = first.to_pandas().set_index("kpi")
    assert frame.loc["telemetry.dau", "ts"] == datetime(2024, 4, 4, 23, 59, 59, tzinfo=BERLIN)
    rows = store.rows()
    again = run_at(date(2024, 4, 5), 18)  # a re-run the same day adds nothing
    assert again.values == first.values and store.rows() == rows
    assert again.previous == {}  # nothing before April 4th: not April 4th itself

    # April 6th and 7th: the machine was off. April 8th's run stores the 7th and fills in
    # the 5th and 6th (their values as a backfill stores them), the formula's too.
    later = run_at(date(2024, 4, 8), 7)
    for kpi in ("dau", "wau", "mau"):
        assert daily(store, f"telemetry.{kpi}") == {
            day: [expected[day][kpi]]
            for day in expected
            if date(2024, 4, 4) <= day <= date(2024, 4, 7)
        }, kpi
    shares = daily(store, "telemetry.share")
    assert sorted(shares) == [date(2024, 4, d) for d in (4, 5, 6, 7)]
    assert later.previous["telemetry.mau"] == expected[date(2024, 4, 6)]["mau"]  # the day before
    assert later.previous["telemetry.share"] == shares[date(2024, 4, 6)][0]

    run_at(date(2024, 4, 10), 7)  # April 9th; the 8th filled in
    history = store.series(["telemetry.dau"], period="day", tz=BERLIN)["telemetry.dau"]
    assert history == [
        (day, expected[day]["dau"])
        for day in expected
        if date(2024, 4, 4) <= day <= date(2024, 4, 9)
    ]
    # compare: 3d in a digest on April 10th: April 9th's DAU against April 6th's, its own
    # day's N days before (not April 7th's, three days before the digest's day)
    digest = Digest.from_store(
        store, compare_days=3, tz=BERLIN, now=datetime(2024, 4, 10, 8, tzinfo=BERLIN)
    )
    line = next(line for line in digest.lines if line.kpi == "telemetry.wau")
    assert (line.value, line.previous) == (
        expected[date(2024, 4, 9)]["wau"],
        expected[date(2024, 4, 6)]["wau"],
    )


def test_backfill_gives_derived_kpis_their_history_too(folder: Path) -> None:
    """A formula over backfilled KPIs had no history: `kpi backfill` stored dau, wau and mau
    for 21 days and the derived share for none. Each day where the formula's inputs have
    values now gets the formula's value too (a day where it divides by zero gets none), once:
    a second backfill adds nothing, and a day with a live value keeps it."""
    from kpi_collector.pipeline import Pipeline
    from kpi_collector.store.periods import local_midnight

    (folder / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\n"
        "timezone: Europe/Berlin\n"
        "kpis:\n"
        '  telemetry.weekly_share: {formula: "telemetry.wau / telemetry.mau"}\n'
        '  telemetry.pct: {formula: "round(telemetry.weekly_share * 100, 1)"}\n'
        '  telemetry.per_week: {formula: "telemetry.dau / telemetry.wau"}\n'
        "sources:\n"
        "  - {name: telemetry, type: active_users, events: events/*.parquet,"
        " user: user_id, time: ts}\n"
    )
    pipeline = Pipeline.from_config(folder / "kpi.yaml")
    # a live run on April 5th at 09:00 Berlin: its values stay as they were
    pipeline.process(deliver=False, now=datetime(2024, 4, 5, 7, tzinfo=UTC))
    report = pipeline.backfill(since=date(2024, 3, 1), now=NOW)
    assert report.errors == {}
    assert report.added["telemetry"] == 20 * 3  # April 5th is there already
    assert pipeline.store is not None
    stored: dict[str, dict[date, float]] = {}
    for kpi, ts, value in pipeline.store.rows():
        day = datetime.fromtimestamp(ts, BERLIN).date()
        assert day not in stored.get(kpi, {}), (kpi, day)  # one value a day
        stored.setdefault(kpi, {})[day] = value
    expected = {
        item.day: item.values
        for item in reference(
            EVENTS, "Europe/Berlin", start=date(2024, 3, 20), end=date(2024, 4, 9)
        )
    }
    assert set(stored["telemetry.weekly_share"]) == set(expected)
    for day, values in expected.items():
        share = values["wau"] / values["mau"]
        assert stored["telemetry.weekly_share"][day] == pytest.approx(share), day
        assert stored["telemetry.pct"][day] == round(share * 100, 1), day
        if values["wau"]:
            assert stored["telemetry.per_week"][day] == values["dau"] / values["wau"], day
        else:  # division by zero that day: no value rather than a wrong one
            assert day not in stored["telemetry.per_week"], day
    assert report.derived == len(expected) * 2 + sum(1 for v in expected.values() if v["wau"]) - 3
    assert pipeline.backfill(since=date(2024, 3, 1), now=NOW).derived == 0
    april_5 = expected[date(2024, 4, 5)]
    before = local_midnight(date(2024, 4, 6), BERLIN)
    assert pipeline.store.previous_values(["telemetry.weekly_share"], before=before) == {
        "telemetry.weekly_share": pytest.approx(april_5["wau"] / april_5["mau"])
    }


@pytest.mark.parametrize("min_events", [1, 2])
def test_a_backfill_of_quiet_days_after_activity_stores_their_zeros(
    folder: Path, min_events: int
) -> None:
    """Users were active until April 10th, nobody since. A backfill from May 12th gave
    nothing, while one from January gave zeros for the same days: a day's value must not
    depend on where the backfill starts. Days the events do not reach (all windows empty,
    no event after them: `kpi run` fails on them) are left out, as days before anyone was
    active are; the zeros of days whose month still holds an event are stored."""
    source = ActiveUsers.model_validate(
        {
            "name": "t",
            "events": "events/*.parquet",
            "user": "user_id",
            "time": "ts",
            "min_events": min_events,
        }
    )
    later = datetime(2024, 5, 20, 12, tzinfo=UTC)
    wide = by_day(backfill(source, context(folder, now=later), since=date(2024, 1, 1)))
    assert min(wide) > date(2024, 1, 1)  # nothing before the first activity
    last = max(wide)
    assert last < date(2024, 5, 19)  # no zeros made up for days the events do not reach
    # quiet, in reach (b's April 10th is in its month): stored, 0 MAU with min_events 2
    assert wide[last]["dau"] == 0.0 and last == date(2024, 5, 9)
    for since in (date(2024, 4, 20), date(2024, 5, 12), date(2024, 5, 19)):
        narrow = by_day(backfill(source, context(folder, now=later), since=since))
        assert narrow == {day: v for day, v in wide.items() if day >= since}, since
    in_reach = datetime.combine(last + timedelta(days=1), time(12), UTC)  # its yesterday
    assert collect(source, context(folder, now=in_reach)) == wide[last]
    with pytest.raises(SourceError, match="no events"):
        collect(source, context(folder, now=datetime(2024, 5, 19, 12, tzinfo=UTC)))


def test_kpi_backfill_fills_a_derived_kpis_history_once(tmp_path: Path) -> None:
    """`kpi backfill` end to end: the events of the last days, a formula over the windows;
    the command says how many formula values it added, stores one a day, adds none again."""
    import sqlite3

    from tests.cli import run_kpi

    today = datetime.now(UTC).date()
    noon = [datetime.combine(today - timedelta(days=n), time(12), UTC) for n in (5, 4, 2)]
    write_parquet(tmp_path / "events.parquet", [("a", noon[0]), ("b", noon[1]), ("a", noon[2])])
    (tmp_path / "kpi.yaml").write_text(
        "kpis:\n"
        '  telemetry.share: {formula: "telemetry.dau / telemetry.wau"}\n'
        "sources:\n"
        "  - {name: telemetry, type: active_users, events: events.parquet,"
        " user: user_id, time: ts}\n"
    )
    first = run_kpi(tmp_path, "backfill", "--since", "30d")
    assert first.returncode == 0, first.stdout + first.stderr
    # days from 5 days ago to yesterday: 5 days of 3 windows, the share on each (wau > 0)
    assert "telemetry: 15 values added" in first.stdout
    assert "formulas: 5 values added" in first.stdout
    with sqlite3.connect(tmp_path / "kpi.db") as db:
        shares = db.execute(
            "SELECT value FROM observations WHERE kpi = 'telemetry.share' ORDER BY ts"
        ).fetchall()
    # dau / wau: 1/1, 1/2, 0/2, 1/2, 0/2
    assert [v for (v,) in shares] == [1.0, 0.5, 0.0, 0.5, 0.0]
    second = run_kpi(tmp_path, "backfill", "--since", "30d")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "telemetry: 0 values added" in second.stdout
    assert "formulas:" not in second.stdout


@pytest.mark.parametrize("since", ["today", "2099-01-01"])
def test_kpi_backfill_since_today_or_later_is_a_usage_error(tmp_path: Path, since: str) -> None:
    """A backfill gives complete past days, up to yesterday: `--since 2099-01-01` said
    "covered no values from 2099-01-01 to <yesterday> (the service has no values for these
    days)" and exited 0, as if the events were missing. Now it is exit 2, saying why."""
    from tests.cli import run_kpi

    write_parquet(tmp_path / "events.parquet", EVENTS)
    (tmp_path / "kpi.yaml").write_text(
        "sources:\n"
        "  - {name: telemetry, type: active_users, events: events.parquet,"
        " user: user_id, time: ts}\n"
    )
    done = run_kpi(tmp_path, "backfill", "--since", since)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "is after yesterday" in done.stderr and "kpi run" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


@pytest.mark.parametrize(
    ("windows", "min_events"),
    [
        (["dau", "wau", "mau"], 1),
        (["stickiness"], 1),
        (["dau", "stickiness"], 1),
        (["mau"], 2),
        (["dau"], 1),
        (["wau", "dau"], 2),
    ],
)
def test_backfill_stores_each_day_kpi_run_stores_with_the_same_values(
    folder: Path, windows: list[str], min_events: int
) -> None:
    """After the events stop (April 10th), `kpi run` stores zeros as long as the widest
    window holds an event: 0 stickiness on a quiet day of the month, 0 MAU while nobody has
    min_events. The backfill left out such days wherever every value asked for was 0 (the
    month's users not being asked for), a gap of up to 29 days in the history; now it
    stores each day `collect` would, with its values, from the first day with activity."""
    source = ActiveUsers.model_validate(
        {
            "name": "t",
            "events": "events/*.parquet",
            "user": "user_id",
            "time": "ts",
            "windows": windows,
            "min_events": min_events,
        }
    )
    later = datetime(2024, 5, 20, 12, tzinfo=UTC)
    history = by_day(backfill(source, context(folder, now=later), since=date(2024, 3, 1)))
    day = min(history)
    while day < date(2024, 5, 20):
        # the run of the day after stores the day
        noon = context(folder, now=datetime.combine(day + timedelta(days=1), time(12), BERLIN))
        try:
            live: dict[str, float] | None = collect(source, noon)
        except SourceError:
            live = None  # the events do not reach this day
        assert history.get(day) == live, day
        day += timedelta(days=1)
    assert max(history) == date(2024, 5, 9)  # b's April 10th event leaves the month


def test_a_quiet_day_gives_dau_0_whatever_windows_are_asked_for(folder: Path) -> None:
    """March 25th: nobody active, user a was active on the 20th. With windows [dau, wau,
    mau] kpi run stored dau 0; with windows [dau] alone it failed ('no events in the 1 days
    ending ...'), so a config's DAU hung on the other metrics it asked for. The events reach
    a day whose last 30 days hold an event, whatever the windows."""

    def source(windows: list[str]) -> ActiveUsers:
        return ActiveUsers.model_validate(
            {
                "name": "t",
                "events": "events/*.parquet",
                "user": "user_id",
                "time": "ts",
                "windows": windows,
            }
        )

    quiet = context(folder, now=datetime(2024, 3, 26, 12, tzinfo=UTC))  # the 25th's run
    everything = collect(source(["dau", "wau", "mau"]), quiet)
    assert everything == {"dau": 0.0, "wau": 1.0, "mau": 1.0}
    assert collect(source(["dau"]), quiet) == {"dau": 0.0}
    assert collect(source(["wau", "dau"]), quiet) == {"wau": 1.0, "dau": 0.0}
    # a month after the last event (b's, April 10th in Berlin) nothing reaches: no zeros
    gone = context(folder, now=datetime(2024, 5, 11, 12, tzinfo=UTC))
    with pytest.raises(SourceError, match="no events in the 30 days ending 2024-05-10"):
        collect(source(["dau"]), gone)
    assert collect(source(["dau"]), context(folder, now=datetime(2024, 5, 10, 12, tzinfo=UTC))) == {
        "dau": 0.0
    }


def test_a_relative_sqlite_database_is_beside_the_config(tmp_path: Path) -> None:
    """`url: sqlite:///app.db` was opened relative to the folder `kpi` ran in, not the
    config's (as the store's and a `sql` source's are): a run from cron (another folder)
    failed with "not there". It is the file beside the config, from any folder."""
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'app.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE events (account TEXT, at TEXT)"))
        conn.execute(
            sa.text("INSERT INTO events VALUES ('a', '2024-04-09T10:00:00Z'), ('b', '2024-04-03')")
        )
    engine.dispose()
    source = ActiveUsers.model_validate(
        {"url": "sqlite:///app.db", "table": "events", "user": "account", "time": "at"}
    )
    assert Path.cwd() != tmp_path
    assert collect(source, context(tmp_path)) == {"dau": 1.0, "wau": 2.0, "mau": 2.0}


def test_kpi_run_shows_and_stores_yesterdays_whole_day_once(tmp_path: Path) -> None:
    """`kpi run` end to end: the table names the day a DAU describes (yesterday), `kpi
    history` has it on that day, and a second run the same day stores nothing more."""
    import json
    import sqlite3

    from tests.cli import run_kpi

    today = datetime.now(UTC).date()
    yesterday = today - timedelta(days=1)
    at = {n: datetime.combine(today - timedelta(days=n), time(12), UTC) for n in (0, 1, 3)}
    write_parquet(
        tmp_path / "events.parquet",
        [("a", at[3]), ("b", at[1]), ("c", at[1]), ("a", at[0]), ("d", at[0])],
    )
    (tmp_path / "kpi.yaml").write_text(
        "sources:\n"
        "  - {name: telemetry, type: active_users, events: events.parquet,"
        " user: user_id, time: ts}\n"
    )
    first = run_kpi(tmp_path, "run")
    assert first.returncode == 0, first.stdout + first.stderr
    dau = next(line for line in first.stdout.splitlines() if "telemetry.dau" in line)
    assert f"telemetry.dau ({yesterday})" in dau and dau.split()[2] == "2"  # b and c, not today's
    second = run_kpi(tmp_path, "run")
    assert second.returncode == 0, second.stdout + second.stderr
    with sqlite3.connect(tmp_path / "kpi.db") as db:
        rows = db.execute("SELECT kpi, value FROM observations ORDER BY kpi").fetchall()
    assert rows == [("telemetry.dau", 2.0), ("telemetry.mau", 3.0), ("telemetry.wau", 3.0)]
    shown = run_kpi(tmp_path, "history", "--format", "json")
    assert shown.returncode == 0, shown.stderr
    kpis = json.loads(shown.stdout)["kpis"]
    assert kpis["telemetry.dau"] == [{"period": yesterday.isoformat(), "value": 2.0}]


def test_the_dashboard_does_not_call_a_whole_day_stale(folder: Path) -> None:
    """A complete day's value is stamped with the day's end, up to a day before the run that
    stored it: with an hourly schedule (1.5 hours before a value is stale) the dashboard
    showed DAU stale all day after every run. Its age counts from the end of the day after
    the one it describes (when the run could store it); a source that stops is still stale."""
    from kpi_collector.config import load_config
    from kpi_collector.pipeline import Pipeline
    from kpi_collector.report.data import DashboardData

    (folder / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\n"
        "timezone: Europe/Berlin\n"
        'schedule: "0 * * * *"\n'
        "sources:\n"
        "  - {name: telemetry, type: active_users, events: events/*.parquet,"
        " user: user_id, time: ts}\n"
    )
    assert Pipeline.from_config(folder / "kpi.yaml").process(deliver=False, now=NOW).ok
    loaded = load_config(folder / "kpi.yaml")

    def status(at: datetime) -> str:
        data = DashboardData(loaded, clock=at.timestamp)
        try:
            tiles = {t["id"]: t for t in data.overview("day")["kpis"]}
            return str(tiles["telemetry.dau"]["status"])
        finally:
            data.close()

    assert status(datetime(2024, 4, 10, 8, 30, tzinfo=BERLIN)) == "ok"
    assert status(datetime(2024, 4, 10, 23, 50, tzinfo=BERLIN)) == "ok"
    # April 10th's value is due from the first run of the 11th on; it never came
    assert status(datetime(2024, 4, 11, 3, tzinfo=BERLIN)) == "stale"


def test_a_stale_alert_allows_a_whole_day_its_day(folder: Path) -> None:
    """`stale_days: 1` on `telemetry.dau` fired every night: the DAU a 07:00 run stores is
    stamped with the end of the day before, a day old at midnight, whatever the run did.
    A complete day's value is stale once it is `stale_days` older than the day after it
    (when a run could store it); a source that stopped still fires."""
    from kpi_collector.alerts.engine import AlertScope, evaluate
    from kpi_collector.config.models import Alert
    from kpi_collector.pipeline import Pipeline

    (folder / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\n"
        "timezone: Europe/Berlin\n"
        "sources:\n"
        "  - {name: telemetry, type: active_users, events: events/*.parquet,"
        " user: user_id, time: ts}\n"
    )
    pipeline = Pipeline.from_config(folder / "kpi.yaml")
    assert pipeline.process(deliver=False, now=NOW).ok  # April 9th's DAU, at 07:00 on the 10th
    assert pipeline.store is not None
    scope = AlertScope(sources=pipeline.sources, kpis={}, tz=BERLIN, destinations=[])

    def stale(at: datetime) -> bool | None:
        alert = Alert(kpi="telemetry.dau", stale_days=1)
        ((_, finding),) = evaluate(scope, pipeline.store, [alert], now=at.timestamp())
        return finding.active

    assert stale(datetime(2024, 4, 11, 3, tzinfo=BERLIN)) is False  # the next run is at 07:00
    assert stale(datetime(2024, 4, 12, 3, tzinfo=BERLIN)) is True  # April 10th never came


def test_after_the_upgrade_a_day_is_compared_with_the_day_before_not_its_partial(
    folder: Path,
) -> None:
    """A store written before: each run stored the day so far at 07:00. The first run after
    the upgrade stores April 9th whole beside its 07:00 partial value; its change was
    against that partial value of the same day (`dau 1 -95%` for 21 at 07:00), not the
    day before. It is compared with the days before, and the whole day is the day's value."""
    from kpi_collector.pipeline import Pipeline

    (folder / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\n"
        "timezone: Europe/Berlin\n"
        "sources:\n"
        "  - {name: telemetry, type: active_users, events: events/*.parquet,"
        " user: user_id, time: ts}\n"
    )
    pipeline = Pipeline.from_config(folder / "kpi.yaml")
    store = pipeline.store
    assert store is not None
    for day, partial in ((8, 50.0), (9, 21.0)):
        at = datetime(2024, 4, day, 7, tzinfo=BERLIN).timestamp()
        run = store.begin_run(started_at=at)
        store.finish_run(run, observations=[("telemetry.dau", at, partial, "telemetry")])
    result = pipeline.process(deliver=False, now=NOW)
    assert result.values["telemetry.dau"] == 1.0
    assert result.previous["telemetry.dau"] == 50.0  # April 8th's, not April 9th's partial
    history = store.series(["telemetry.dau"], period="day", tz=BERLIN)["telemetry.dau"]
    assert history == [(date(2024, 4, 8), 50.0), (date(2024, 4, 9), 1.0)]


def test_credentials_in_an_events_url_never_show(tmp_path: Path) -> None:
    """A presigned S3 or GCS URL as `events:` carries its signature and session token in the
    query (`X-Amz-Signature`, `X-Amz-Security-Token`, `X-Goog-Signature`), and an `https://`
    URL may carry a password: messages showed them (`cannot read events from <the URL>`), and
    the run stored them with its error. They are masked, also where a server echoes one."""
    from kpi_collector.secrets import redact

    url = (
        "https://reader:pa55-word-9@files.example/e.parquet?X-Amz-Credential=AKIDEXAMPLE"
        "&X-Amz-Security-Token=FwoSESSIONtoken42&X-Amz-Signature=0f1e2d3c4b5a6978"
    )
    gcs = "https://storage.example/b/e.parquet?X-Goog-Signature=9a8b7c6d5e4f3021"
    ActiveUsers.model_validate({"events": [url, gcs], "user": "u", "time": "t"})
    shown = redact(f"cannot read events from {url}, {gcs}: HTTP 403")
    for secret in ("pa55-word-9", "FwoSESSIONtoken42", "0f1e2d3c4b5a6978", "9a8b7c6d5e4f3021"):
        assert secret not in shown
        assert secret not in redact(f"denied: {secret}")  # echoed alone
    assert "files.example/e.parquet" in shown


def test_a_daily_message_compares_a_whole_day_with_its_own_day_before(
    folder: Path, fast_delivery_retries: None
) -> None:
    """An `every: day` webhook with `compare: 3d`: the run of April 10th delivers April 9th's
    WAU; it was compared with the value stored by the end of April 7th (3 days before the
    run's day, so 2 days before the value's), and a message said "3 days earlier" of it.
    It is compared with April 6th's, 3 days before the day it describes."""
    import json

    from kpi_collector.pipeline import Pipeline
    from tests.fakes.webhooks import FakeHooks

    events = [*EVENTS, ("d", datetime(2024, 4, 7, 12, tzinfo=UTC))]
    write_parquet(folder / "events" / "part-3.parquet", events[-1:])
    with FakeHooks.serve("hook-token-1234") as hooks:
        (folder / "kpi.yaml").write_text(
            "store: sqlite:///kpi.db\n"
            "timezone: Europe/Berlin\n"
            "sources:\n"
            "  - {name: telemetry, type: active_users, events: events/*.parquet,"
            " user: user_id, time: ts}\n"
            "destinations:\n"
            f"  - {{type: webhook, url: '{hooks.hook_url}', every: day, compare: 3d}}\n"
        )
        pipeline = Pipeline.from_config(folder / "kpi.yaml")
        for day in (3, 4, 5, 6, 7, 8, 9, 10):  # each stores the day before
            result = pipeline.process(now=datetime(2024, 4, day, 7, tzinfo=BERLIN))
            assert result.ok, (result.errors, result.delivery_errors)
        document = json.loads(hooks.hooks[-1][0])
    expected = {
        item.day: item.values
        for item in reference(events, "Europe/Berlin", start=date(2024, 4, 2), end=date(2024, 4, 9))
    }
    wau = next(line for line in document["values"] if line["kpi"] == "telemetry.wau")
    assert document["period_start"] == "2024-04-10"
    assert (wau["value"], wau["previous"]) == (
        expected[date(2024, 4, 9)]["wau"],
        expected[date(2024, 4, 6)]["wau"],
    )
    assert expected[date(2024, 4, 6)]["wau"] != expected[date(2024, 4, 7)]["wau"]


@pytest.mark.parametrize(
    ("run_day", "day", "hours"),
    [(date(2024, 4, 1), date(2024, 3, 31), 23), (date(2024, 10, 28), date(2024, 10, 27), 25)],
)
def test_a_run_after_a_change_of_the_clocks_stores_that_whole_day(
    tmp_path: Path, run_day: date, day: date, hours: int
) -> None:
    """The days the clocks change have 23 and 25 hours: the run of the day after stores the
    users of all of them (an event in the first and in the last hour), at the day's 23:59:59."""
    from kpi_collector.pipeline import Pipeline

    start = datetime.combine(day, time(0), BERLIN).astimezone(UTC)  # elapsed-time arithmetic
    first, last = start + timedelta(minutes=10), start + timedelta(hours=hours, minutes=-10)
    assert first.astimezone(BERLIN).date() == last.astimezone(BERLIN).date() == day
    write_parquet(tmp_path / "events.parquet", [("early", first), ("late", last)])
    (tmp_path / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\n"
        "timezone: Europe/Berlin\n"
        "sources:\n"
        "  - {name: telemetry, type: active_users, events: events.parquet,"
        " user: user_id, time: ts}\n"
    )
    pipeline = Pipeline.from_config(tmp_path / "kpi.yaml")
    result = pipeline.process(deliver=False, now=datetime.combine(run_day, time(0, 5), BERLIN))
    assert result.values["telemetry.dau"] == 2.0
    assert pipeline.store is not None
    assert daily(pipeline.store, "telemetry.dau") == {day: [2.0]}


def test_a_rerun_the_same_day_shows_the_value_it_kept_not_one_it_did_not_store(
    folder: Path,
) -> None:
    """Late events of yesterday arrive between two runs of the same day: the second run
    showed (table, `--format json`) the new DAU while the store kept the first run's, a
    number nowhere stored. The day's value is stored once: a re-run shows the stored one,
    and the JSON names the day each complete-day value describes."""
    from kpi_collector.pipeline import Pipeline

    (folder / "kpi.yaml").write_text(
        "store: sqlite:///kpi.db\n"
        "timezone: Europe/Berlin\n"
        "sources:\n"
        "  - {name: telemetry, type: active_users, events: events/*.parquet,"
        " user: user_id, time: ts}\n"
    )
    pipeline = Pipeline.from_config(folder / "kpi.yaml")
    store = pipeline.store
    assert store is not None
    first = pipeline.process(deliver=False, now=NOW)  # April 9th, at 07:00 on the 10th
    assert first.values["telemetry.dau"] == 1.0
    # d and e were active on April 9th; their events came in late
    write_parquet(
        folder / "events" / "part-3.parquet",
        [("d", datetime(2024, 4, 9, 10, tzinfo=UTC)), ("e", datetime(2024, 4, 9, 11, tzinfo=UTC))],
    )
    again = pipeline.process(deliver=False, now=NOW + timedelta(hours=9))
    assert again.errors == {}
    stored = daily(store, "telemetry.dau")
    assert stored == {date(2024, 4, 9): [1.0]}  # once a day: the first run's
    assert again.values["telemetry.dau"] == 1.0  # what the store holds, not 3
    entry = next(v for v in again.to_dict()["values"] if v["kpi"] == "telemetry.dau")
    assert entry["value"] == 1.0 and entry["day"] == "2024-04-09"
