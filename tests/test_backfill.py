"""`kpi backfill` (run/backfill.py): which past days are stored, on a real SQLite store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

import pytest

from kpi_collector.config.models import Defaults
from kpi_collector.run.backfill import abackfill
from kpi_collector.sources.base import Observation, Source, SourceContext
from kpi_collector.store import HistoryStore

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 11, 10, 9, tzinfo=UTC)  # 10:00 on November 10th in Berlin


class Daily(Source):
    """A service's daily series that runs from before `since` to tomorrow: today's value is
    the day so far, tomorrow's a forecast."""

    type: ClassVar[str] = "daily"

    async def collect(self, ctx: SourceContext) -> dict[str, float]:
        return {}

    async def backfill(self, ctx: SourceContext, since: date) -> AsyncIterator[Observation]:
        for day in range(3, 12):  # November 3rd to 11th, local noon
            when = datetime(2026, 11, day, 12, tzinfo=BERLIN)
            yield Observation("downloads", float(day), when)


def test_only_complete_days_from_since_to_yesterday_are_stored(tmp_path: Path) -> None:
    """A backfill gives complete past days: today's value so far (10, a partial day that a
    `sum` over the day would count again beside the live runs' values) and tomorrow's are not
    stored, nor days before `--since`; the coverage says what was asked and given."""
    store = HistoryStore(f"sqlite:///{tmp_path / 'kpi.db'}")
    try:
        report = asyncio.run(
            abackfill(
                store,
                [Daily(name="d")],
                defaults=Defaults(),
                tz=BERLIN,
                base_dir=tmp_path,
                since=date(2026, 11, 5),
                now=NOW,
            )
        )
        stored = [(datetime.fromtimestamp(ts, BERLIN).day, value) for _, ts, value in store.rows()]
        assert stored == [(day, float(day)) for day in range(5, 10)]
        assert report.added == {"d": 5} and not report.errors
        coverage = report.covered["d"]
        assert (coverage.first, coverage.last) == (date(2026, 11, 5), date(2026, 11, 9))
        assert coverage.complete and coverage.describe() == "2026-11-05 to 2026-11-09"
        assert report.days == (date(2026, 11, 5), NOW.date() - timedelta(days=1))
    finally:
        store.close()


def _events_config(folder: Path) -> Path:
    (folder / "events.csv").write_text("user_id,ts\na,2026-11-20T10:00:00+00:00\n")
    config = folder / "kpi.yaml"
    config.write_text(
        "timezone: Asia/Kathmandu\nsources:\n"
        "  - {name: telemetry, type: active_users, events: events.csv, user: user_id, time: ts}\n"
    )
    return config


@pytest.mark.parametrize("since", ["0001-01-01", "0100-06-30", "1969-12-31"])
def test_a_since_before_1970_is_a_usage_error_not_a_sources_crash(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], since: str
) -> None:
    """`--since 0001-01-01` failed inside the source ("ValueError: year 0 is out of range");
    times are stored as Unix time, so the first day a backfill can ask for is 1970-01-01."""
    from kpi_collector.cli import main

    config = _events_config(tmp_path)
    assert main(["-c", str(config), "backfill", "--since", since]) == 2
    err = capsys.readouterr().err
    assert f"{since} is before 1970-01-01" in err and "--since" in err
    assert "ValueError" not in err
    assert not (tmp_path / "kpi.db").exists()
    assert main(["-c", str(config), "backfill", "--since", "1970-01-01"]) == 0


def test_a_store_that_refuses_one_sources_values_fails_that_source_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store error while writing one source's days raised out of the whole backfill (the
    other sources' reports lost, a traceback's one line); it is now that source's error,
    saying how many values were not stored, and the others are stored and reported."""
    from kpi_collector.errors import StoreError

    store = HistoryStore(f"sqlite:///{tmp_path / 'kpi.db'}")
    write = store.add_observations

    def refusing(points: list[object], **kwargs: object) -> int:
        if any(str(getattr(p, "kpi", "")).startswith("bad.") for p in points):
            raise StoreError("cannot write to store 'kpi.db': disk I/O error")
        return write(points, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "add_observations", refusing)
    try:
        report = asyncio.run(
            abackfill(
                store,
                [Daily(name="bad"), Daily(name="good")],
                defaults=Defaults(),
                tz=BERLIN,
                base_dir=tmp_path,
                since=date(2026, 11, 5),
                now=NOW,
            )
        )
        assert report.added == {"good": 5}
        assert report.errors == {
            "bad": "5 values not stored: cannot write to store 'kpi.db': disk I/O error"
        }
        assert {kpi for kpi, _, _ in store.rows()} == {"good.downloads"}
    finally:
        store.close()


def test_until_stops_before_yesterday(tmp_path: Path) -> None:
    """`until` (a run filling in the days a complete-day source missed, before it stores
    yesterday itself): no day after it is stored, and the coverage asks no more."""
    store = HistoryStore(f"sqlite:///{tmp_path / 'kpi.db'}")
    try:
        report = asyncio.run(
            abackfill(
                store,
                [Daily(name="d")],
                defaults=Defaults(),
                tz=BERLIN,
                base_dir=tmp_path,
                since=date(2026, 11, 5),
                until=date(2026, 11, 7),
                now=NOW,
            )
        )
        stored = [datetime.fromtimestamp(ts, BERLIN).day for _, ts, _ in store.rows()]
        assert stored == [5, 6, 7]
        assert report.covered["d"].complete and report.days == (
            date(2026, 11, 5),
            date(2026, 11, 7),
        )
    finally:
        store.close()
