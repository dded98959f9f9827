"""`type: npm` against a local copy of npm's download counts API."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from kpi_collector.errors import HttpError
from kpi_collector.sources.npm import Npm
from kpi_collector.sources.npm.fake import FakeNpm
from tests.fakes.collect import backfill, collect
from tests.fakes.data import NOW, TODAY, downloads, window


@pytest.fixture
def npm():
    fake = FakeNpm(today=TODAY)
    fake.packages["@acme/widget"] = {
        date(2024, 6, 1) + timedelta(days=n): downloads(date(2024, 6, 1) + timedelta(days=n))
        for n in range(700)
    }
    with fake.serve():
        yield fake


def test_npm_point_counts_for_a_scoped_package(npm: FakeNpm) -> None:
    values = collect(Npm(package="@acme/widget", api_url=npm.url))
    yesterday = TODAY - timedelta(days=1)
    assert values == {
        "downloads_last_day": downloads(yesterday),
        "downloads_last_week": window(yesterday, 7),
        "downloads_last_month": window(yesterday, 30),
    }
    assert sorted(r.path for r in npm.requests) == [
        f"/downloads/point/{p}/@acme/widget" for p in ("last-day", "last-month", "last-week")
    ]


def test_npm_unknown_package_is_named(npm: FakeNpm) -> None:
    with pytest.raises(HttpError) as caught:
        collect(Npm(package="left-pad-nope", api_url=npm.url, metrics=["downloads_last_day"]))
    assert "npm has no download counts for package 'left-pad-nope'" in str(caught.value)


def test_npm_rate_limited_then_answers(npm: FakeNpm) -> None:
    npm.inject(429, {"error": "Too many requests"}, headers={"Retry-After": "1"})
    assert collect(Npm(package="@acme/widget", api_url=npm.url, metrics=["downloads_last_day"]))


def test_npm_backfill_reads_chunks_within_the_range_limit(npm: FakeNpm) -> None:
    since = TODAY - timedelta(days=500)
    points = backfill(Npm(package="@acme/widget", api_url=npm.url), since, now=NOW)
    ranges = [r.match_info["period"] for r in npm.requests]
    assert len(ranges) == 2  # 529 days (500 + the month before) in chunks of at most a year
    spans = [tuple(date.fromisoformat(x) for x in r.split(":")) for r in ranges]
    assert all((end - start).days < 365 for start, end in spans)
    assert spans[0][1] + timedelta(days=1) == spans[1][0] and spans[1][1] == TODAY - timedelta(
        days=1
    )
    by = {(p.metric, p.ts.date()): p.value for p in points}
    assert min(d for _, d in by) == since
    assert by[("downloads_last_month", since)] == window(since, 30)
    assert by[("downloads_last_week", TODAY - timedelta(days=1))] == window(
        TODAY - timedelta(days=1), 7
    )


def test_npm_backfill_from_long_ago_stops_at_18_months(npm: FakeNpm) -> None:
    points = backfill(
        Npm(package="@acme/widget", api_url=npm.url, metrics=["downloads_last_day"]),
        date(2020, 1, 1),
        now=NOW,
    )
    assert min(p.ts.date() for p in points) == TODAY - timedelta(days=540)
    assert npm.calls() == 2


def test_npm_rejects_a_name_that_is_not_a_package() -> None:
    with pytest.raises(ValueError, match="not an npm package name"):
        Npm(package="../etc/passwd")
