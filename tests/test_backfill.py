"""`kpi backfill` (run/backfill.py): which past days are stored, on a real SQLite store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import ClassVar
from zoneinfo import ZoneInfo

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
