"""`type: npm` against a local copy of npm's download counts API."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from kpi_collector.errors import HttpError
from kpi_collector.sources.npm import Npm
from kpi_collector.sources.npm.fake import NPM_FIRST_DAY, FakeNpm
from tests.fakes.collect import backfill, collect, outcome
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


def test_npm_counts_for_a_scoped_package(npm: FakeNpm) -> None:
    values = collect(Npm(package="@acme/widget", api_url=npm.url), now=NOW)
    yesterday = TODAY - timedelta(days=1)
    assert values == {
        "downloads_last_day": downloads(yesterday),
        "downloads_last_week": window(yesterday, 7),
        "downloads_last_month": window(yesterday, 30),
    }
    # the registry's week says which days are counted; the package's month gives all three
    assert [r.path for r in npm.requests] == [
        "/downloads/range/2026-03-03:2026-03-09",
        "/downloads/range/2026-02-08:2026-03-09/@acme/widget",
    ]


def test_npm_a_day_not_counted_yet_is_not_stored_as_0(npm: FakeNpm) -> None:
    """Early in the UTC day npm has not counted yesterday: `point/last-day` answered 0 for it
    and that 0 was stored (the week and month missed a day too). The figures are now those
    of the last day npm has counted, as npm's `last-day` means."""
    npm.landed = TODAY - timedelta(days=2)
    values = collect(Npm(package="@acme/widget", api_url=npm.url), now=NOW)
    last = TODAY - timedelta(days=2)
    assert values == {
        "downloads_last_day": downloads(last),
        "downloads_last_week": window(last, 7),
        "downloads_last_month": window(last, 30),
    }


def test_npm_a_day_left_out_of_the_registrys_week_is_not_counted(npm: FakeNpm) -> None:
    """npm has also answered ranges with the uncounted days left out (not listed as 0)."""
    week = [TODAY - timedelta(days=n) for n in range(7, 1, -1)]  # the 3rd to the 8th
    npm.inject(
        200,
        {
            "start": week[0].isoformat(),
            "end": (TODAY - timedelta(days=1)).isoformat(),
            "downloads": [{"day": d.isoformat(), "downloads": 5_000_000} for d in week],
        },
        path="/downloads/range/2026-03-03:2026-03-09",
    )
    values = collect(
        Npm(package="@acme/widget", api_url=npm.url, metrics=["downloads_last_day"]), now=NOW
    )
    assert values == {"downloads_last_day": downloads(TODAY - timedelta(days=2))}


def test_npm_a_real_zero_is_stored(npm: FakeNpm) -> None:
    """A package nobody downloaded yesterday, on a day npm has counted: 0 is the number."""
    npm.packages["quiet"] = {TODAY - timedelta(days=3): 4}
    values = collect(Npm(package="quiet", api_url=npm.url), now=NOW)
    assert values == {"downloads_last_day": 0, "downloads_last_week": 4, "downloads_last_month": 4}


def test_npm_counts_that_stopped_landing_are_an_error_not_zeros(npm: FakeNpm) -> None:
    """npm's counts stuck for days (its outages): no last-day figure is a number kpi can
    trust; a transient error, the next run tries again."""
    for landed in (TODAY - timedelta(days=3), TODAY - timedelta(days=30)):
        npm.landed = landed
        result = outcome(Npm(package="@acme/widget", api_url=npm.url), now=NOW)
        assert result.values == {}
        ((_, message, transient),) = result.errors
        assert "npm has counted no downloads" in message and transient
        assert "the next run will try again" in message


def test_npm_backfill_ends_at_the_last_counted_day(npm: FakeNpm) -> None:
    npm.landed = TODAY - timedelta(days=2)
    limits: list[str] = []
    points = backfill(
        Npm(package="@acme/widget", api_url=npm.url),
        TODAY - timedelta(days=5),
        now=NOW,
        limits=limits,
    )
    by = {(p.metric, p.ts.date()): p.value for p in points}
    last = TODAY - timedelta(days=2)
    assert max(d for _, d in by) == last
    assert by[("downloads_last_day", last)] == downloads(last)
    assert limits == [f"npm has not counted the downloads after {last} yet"]


def test_npm_unknown_package_is_named(npm: FakeNpm) -> None:
    with pytest.raises(HttpError) as caught:
        collect(
            Npm(package="left-pad-nope", api_url=npm.url, metrics=["downloads_last_day"]), now=NOW
        )
    assert "npm has no download counts for package 'left-pad-nope'" in str(caught.value)


def test_npm_rate_limited_then_answers(npm: FakeNpm) -> None:
    npm.inject(429, {"error": "Too many requests"}, headers={"Retry-After": "1"})
    assert collect(
        Npm(package="@acme/widget", api_url=npm.url, metrics=["downloads_last_day"]), now=NOW
    )


def test_npm_backfill_reads_chunks_within_the_range_limit(npm: FakeNpm) -> None:
    since = TODAY - timedelta(days=500)
    points = backfill(Npm(package="@acme/widget", api_url=npm.url), since, now=NOW)
    ranges = [r.match_info["period"] for r in npm.requests if "package" in r.match_info]
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


def test_npm_backfill_three_years_back_reads_every_chunk(npm: FakeNpm) -> None:
    """18 months is the limit of one request, not of history: three years are all there."""
    npm.packages["@acme/widget"] = {
        NPM_FIRST_DAY + timedelta(days=n): 5 + n % 7 for n in range((TODAY - NPM_FIRST_DAY).days)
    }
    since = date(2023, 3, 10)
    limits: list[str] = []
    points = backfill(Npm(package="@acme/widget", api_url=npm.url), since, now=NOW, limits=limits)
    by = {(p.metric, p.ts.date()): p.value for p in points}
    assert min(d for _, d in by) == since and max(d for _, d in by) == TODAY - timedelta(days=1)
    assert len({d for _, d in by}) == (TODAY - since).days  # every day, not 540
    assert npm.calls("/@acme/widget") == 4 and limits == []  # 1,125 days in chunks of 365


def test_npm_backfill_from_before_2015_says_what_npm_cannot_give(npm: FakeNpm) -> None:
    npm.packages["@acme/widget"] = {
        NPM_FIRST_DAY + timedelta(days=n): 1000 for n in range((TODAY - NPM_FIRST_DAY).days)
    }
    limits: list[str] = []
    points = backfill(
        Npm(package="@acme/widget", api_url=npm.url, metrics=["downloads_last_day"]),
        date(2014, 1, 1),
        now=NOW,
        limits=limits,
    )
    assert min(p.ts.date() for p in points) == NPM_FIRST_DAY
    assert len(points) == (TODAY - NPM_FIRST_DAY).days
    assert all(r.match_info["period"] >= "2015-01-10" for r in npm.requests)
    assert limits == ["npm keeps no download counts before 2015-01-10"]


def test_npm_backfill_ahead_of_utc_never_stores_the_uncounted_utc_day(npm: FakeNpm) -> None:
    """npm counts UTC days. kpi runs in Tokyo at 05:00 on the 10th: its yesterday, the 9th,
    is the UTC day under way, which npm lists with 0 downloads (not counted yet). That 0 was
    stored as the 9th's downloads (and pulled the week's and month's totals down); the last
    day is now the 8th."""
    now = NOW - timedelta(hours=11)  # 2026-03-09 20:00 UTC, 2026-03-10 05:00 in Tokyo
    npm.today = now.date()
    points = backfill(
        Npm(package="@acme/widget", api_url=npm.url),
        TODAY - timedelta(days=5),
        now=now,
        tz="Asia/Tokyo",
    )
    by = {(p.metric, p.ts.date()): p.value for p in points}
    last = TODAY - timedelta(days=2)
    assert max(d for _, d in by) == last
    assert by[("downloads_last_day", last)] == downloads(last)
    assert by[("downloads_last_week", last)] == window(last, 7)


def test_npm_rejects_a_name_that_is_not_a_package() -> None:
    with pytest.raises(ValueError, match="not an npm package name"):
        Npm(package="../etc/passwd")
