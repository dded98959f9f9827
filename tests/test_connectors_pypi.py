"""`type: pypi` against a local copy of the PyPI Stats JSON API."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from kpi_collector.sources.pypi import PyPI
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
    values = collect(source)
    yesterday = TODAY - timedelta(days=1)
    kept = [TODAY - timedelta(days=n) for n in range(1, 181)]  # 180 days kept
    assert values == {
        "downloads_last_day": downloads(yesterday),
        "downloads_last_week": window(yesterday, 7),
        "downloads_last_month": window(yesterday, 30),
        "downloads_total_with_mirrors": sum(downloads(d) + 200 for d in kept),
        "downloads_total_without_mirrors": sum(downloads(d) for d in kept),
    }
    assert pypistats.calls() == 2


def test_pypi_subset_costs_one_call(pypistats: FakePyPIStats) -> None:
    values = collect(PyPI(package="zen-ml", api_url=pypistats.url, metrics=["downloads_last_week"]))
    assert list(values) == ["downloads_last_week"]
    assert pypistats.calls("/overall") == 0 and pypistats.calls("/recent") == 1


def test_pypi_unknown_package_is_named(pypistats: FakePyPIStats) -> None:
    result = outcome(PyPI(package="no-such-pkg", api_url=pypistats.url))
    ((_, message, transient),) = result.errors
    assert "PyPI Stats knows no package 'no-such-pkg'" in message and "`package:`" in message
    assert not transient and "<html" not in message


def test_pypi_rate_limit_and_server_error_are_retried(pypistats: FakePyPIStats) -> None:
    pypistats.inject(
        429, "<html><body>Too Many Requests</body></html>", headers={"Retry-After": "1"}
    )
    pypistats.inject(500, "<html><body>Internal Server Error</body></html>")
    values = collect(PyPI(package="zen-ml", api_url=pypistats.url, metrics=["downloads_last_day"]))
    assert values == {"downloads_last_day": downloads(TODAY - timedelta(days=1))}
    assert pypistats.calls() == 3


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
