"""`type: pypi` against a local copy of the PyPI Stats JSON API."""

from __future__ import annotations

from datetime import date, timedelta
from urllib.error import HTTPError
from urllib.request import urlopen

import pytest

from kpi_collector.sources.pypi import DOWNLOAD_WINDOWS, PyPI
from kpi_collector.sources.pypi.fake import FakePyPIStats
from tests.fakes.collect import backfill, collect, outcome
from tests.fakes.data import NOW, TODAY, downloads, window


@pytest.fixture
def pypistats():
    fake = FakePyPIStats(today=TODAY)
    fake.packages["zen-ml"] = {
        TODAY - timedelta(days=n): (
            downloads(TODAY - timedelta(days=n)) + 200,
            downloads(TODAY - timedelta(days=n)),
        )
        for n in range(1, 200)
    }
    with fake.serve():
        yield fake


def test_pypi_recent_and_totals(pypistats: FakePyPIStats) -> None:
    source = PyPI(package="Zen_ML", api_url=pypistats.url)
    assert source.package == "zen-ml"
    values = collect(source, now=NOW)
    yesterday = TODAY - timedelta(days=1)
    kept = [TODAY - timedelta(days=n) for n in range(1, 181)]  # 180 days kept
    assert values == {
        "downloads_last_day": downloads(yesterday),
        "downloads_last_week": window(yesterday, 7),
        "downloads_last_month": window(yesterday, 30),
        "downloads_total_with_mirrors": sum(downloads(d) + 200 for d in kept),
        "downloads_total_without_mirrors": sum(downloads(d) for d in kept),
    }
    # the package's daily series serves both groups; PyPI's says which day is the last counted
    assert [r.path for r in pypistats.requests] == [
        "/api/packages/zen-ml/overall",
        "/api/packages/__all__/overall",
    ]


def test_pypi_subsets_read_only_what_they_need(pypistats: FakePyPIStats) -> None:
    values = collect(
        PyPI(package="zen-ml", api_url=pypistats.url, metrics=["downloads_last_week"]), now=NOW
    )
    assert values == {"downloads_last_week": window(TODAY - timedelta(days=1), 7)}
    assert pypistats.calls("/recent") == 0 and pypistats.calls() == 2
    assert all(r.query.get("mirrors") == "false" for r in pypistats.requests)
    pypistats.requests.clear()
    totals = collect(
        PyPI(package="zen-ml", api_url=pypistats.url, metrics=["downloads_total_with_mirrors"]),
        now=NOW,
    )
    assert list(totals) == ["downloads_total_with_mirrors"]
    assert [r.path for r in pypistats.requests] == ["/api/packages/zen-ml/overall"]


def test_pypi_recent_figures_end_at_the_last_day_counted(pypistats: FakePyPIStats) -> None:
    """Before PyPI Stats' daily update the last day it has counted is the day before
    yesterday: the figures are those of the days counted, and the week is 7 of them."""
    pypistats.landed = TODAY - timedelta(days=2)
    values = collect(
        PyPI(package="zen-ml", api_url=pypistats.url, metrics=list(DOWNLOAD_WINDOWS)), now=NOW
    )
    landed = TODAY - timedelta(days=2)
    assert values == {
        "downloads_last_day": downloads(landed),
        "downloads_last_week": window(landed, 7),
        "downloads_last_month": window(landed, 30),
    }


def test_pypi_a_stalled_update_is_a_transient_error_not_the_same_figures_again(
    pypistats: FakePyPIStats,
) -> None:
    """PyPI Stats' `/recent` keeps answering the figures of its last update while its daily
    update does not run: they were stored as each new day's. Now a stall of more than a day
    is a transient error, and the totals are still stored."""
    pypistats.landed = TODAY - timedelta(days=4)
    result = outcome(PyPI(package="zen-ml", api_url=pypistats.url), now=NOW)
    assert set(result.values) == {
        "downloads_total_with_mirrors",
        "downloads_total_without_mirrors",
    }
    errors = {metric: (message, transient) for metric, message, transient in result.errors}
    assert set(errors) == set(DOWNLOAD_WINDOWS)
    message, _ = errors["downloads_last_day"]
    assert f"PyPI Stats has counted no downloads since {TODAY - timedelta(days=4)}" in message
    # beside the totals read, each stalled figure is still a transient failure (they were
    # stored as terminal: the source's failures carried one flag, always False)
    assert all(transient for _, transient in errors.values())
    # asked alone, the figures fail the source as transient: the next run tries again
    alone = outcome(
        PyPI(package="zen-ml", api_url=pypistats.url, metrics=["downloads_last_day"]), now=NOW
    )
    ((_, message, transient),) = alone.errors
    assert "the next run will try again" in message and transient


def test_pypi_a_package_without_downloads_this_month_counts_0(pypistats: FakePyPIStats) -> None:
    """PyPI Stats answers `/recent` of a package without downloads in the last 30 days with
    404, as an unknown package: that was an error telling to check `package:`. It counts 0."""
    series = pypistats.packages["zen-ml"]
    for n in range(1, 31):
        del series[TODAY - timedelta(days=n)]
    with pytest.raises(HTTPError) as answer:  # as PyPI Stats answers
        urlopen(f"{pypistats.url}/api/packages/zen-ml/recent")
    assert answer.value.code == 404
    pypistats.requests.clear()
    values = collect(PyPI(package="zen-ml", api_url=pypistats.url), now=NOW)
    assert values["downloads_last_day"] == 0 and values["downloads_last_month"] == 0
    assert values["downloads_total_without_mirrors"] == sum(
        downloads(TODAY - timedelta(days=n)) for n in range(31, 181)
    )


def test_pypi_unknown_package_is_named(pypistats: FakePyPIStats) -> None:
    result = outcome(PyPI(package="no-such-pkg", api_url=pypistats.url), now=NOW)
    ((_, message, transient),) = result.errors
    assert "PyPI Stats knows no package 'no-such-pkg'" in message and "`package:`" in message
    assert not transient and "<html" not in message


def test_pypi_rate_limit_and_server_error_are_retried(pypistats: FakePyPIStats) -> None:
    pypistats.inject(
        429, "<html><body>Too Many Requests</body></html>", headers={"Retry-After": "1"}
    )
    pypistats.inject(500, "<html><body>Internal Server Error</body></html>")
    values = collect(
        PyPI(package="zen-ml", api_url=pypistats.url, metrics=["downloads_last_day"]), now=NOW
    )
    assert values == {"downloads_last_day": downloads(TODAY - timedelta(days=1))}
    assert pypistats.calls() == 2 + 2  # the two reads, and each refusal asked again


def test_pypi_backfill_rolls_daily_counts_into_windows(pypistats: FakePyPIStats) -> None:
    since = TODAY - timedelta(days=200)
    limits: list[str] = []
    points = backfill(PyPI(package="zen-ml", api_url=pypistats.url), since, now=NOW, limits=limits)
    by = {(p.metric, p.ts.date()): p.value for p in points}
    first = TODAY - timedelta(days=180)  # the oldest day PyPI Stats still has
    assert limits == [
        "PyPI Stats keeps the last 180 days (from 2025-09-11), and a week or month total needs "
        "its whole window"
    ]
    assert min(d for _, d in by) == first and max(d for _, d in by) == TODAY - timedelta(days=1)
    day = date(2026, 2, 14)
    assert by[("downloads_last_day", day)] == downloads(day)
    assert by[("downloads_last_week", day)] == window(day, 7)
    assert by[("downloads_last_month", day)] == window(day, 30)
    # a window reaching before the first kept day is not guessed
    assert ("downloads_last_month", first + timedelta(days=28)) not in by
    assert ("downloads_last_month", first + timedelta(days=29)) in by
    assert [r.path for r in pypistats.requests] == [
        "/api/packages/zen-ml/overall",
        "/api/packages/__all__/overall",
    ]
    assert all(r.query["mirrors"] == "false" for r in pypistats.requests)


def test_pypi_backfill_does_not_invent_days_the_service_has_not_counted(
    pypistats: FakePyPIStats,
) -> None:
    pypistats.landed = TODAY - timedelta(days=2)
    limits: list[str] = []
    points = backfill(
        PyPI(package="zen-ml", api_url=pypistats.url, metrics=["downloads_last_day"]),
        TODAY - timedelta(days=5),
        now=NOW,
        limits=limits,
    )
    assert [p.ts.date() for p in points] == [TODAY - timedelta(days=n) for n in (5, 4, 3, 2)]
    assert limits == [
        f"PyPI Stats has not counted the downloads after {TODAY - timedelta(days=2)} yet"
    ]


def test_pypi_backfill_stores_0_for_days_without_downloads(pypistats: FakePyPIStats) -> None:
    """PyPI Stats lists no row for a day without downloads: the last quiet days of a package
    got no value at all (the series seemed to end there), and its week and month totals
    stopped with them. A day PyPI Stats has counted (PyPI's `__all__` has it) is 0 now."""
    for n in (1, 2, 4):
        del pypistats.packages["zen-ml"][TODAY - timedelta(days=n)]
    points = backfill(
        PyPI(package="zen-ml", api_url=pypistats.url), TODAY - timedelta(days=5), now=NOW
    )
    by = {(p.metric, p.ts.date()): p.value for p in points}
    yesterday = TODAY - timedelta(days=1)
    assert max(d for _, d in by) == yesterday
    assert [by["downloads_last_day", TODAY - timedelta(days=n)] for n in (5, 4, 3, 2, 1)] == [
        downloads(TODAY - timedelta(days=5)),
        0,
        downloads(TODAY - timedelta(days=3)),
        0,
        0,
    ]
    assert by["downloads_last_week", yesterday] == window(yesterday, 7) - sum(
        downloads(TODAY - timedelta(days=n)) for n in (1, 2, 4)
    )
