"""Calendar periods: the keys deliveries are stored under, around month ends, DST and New Year.

Every expected value is written by hand from a calendar: 2026-01-01 is a Thursday, so ISO
2026 has 53 weeks (2026-W01 starts Monday 2025-12-29, 2026-W53 ends Sunday 2027-01-03);
2020 (leap, starting on a Wednesday) has 53 weeks too; 2025-01-01 is a Wednesday, so
2025-W01 starts Monday 2024-12-30.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from kpi_collector.store.periods import (
    aggregate,
    bucket,
    local_midnight,
    next_period,
    period_key,
    period_start,
)

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.mark.parametrize(
    ("day", "period", "start"),
    [
        (date(2026, 11, 29), "day", date(2026, 11, 29)),
        (date(2026, 11, 29), "week", date(2026, 11, 23)),  # a Sunday: Monday before
        (date(2026, 11, 30), "week", date(2026, 11, 30)),  # a Monday: itself
        (date(2027, 1, 1), "week", date(2026, 12, 28)),
        (date(2026, 11, 29), "month", date(2026, 11, 1)),
        (date(2026, 12, 1), "month", date(2026, 12, 1)),
    ],
)
def test_period_start(day: date, period: str, start: date) -> None:
    assert period_start(day, period) == start


@pytest.mark.parametrize(
    ("start", "period", "after"),
    [
        (date(2026, 12, 31), "day", date(2027, 1, 1)),
        (date(2026, 12, 28), "week", date(2027, 1, 4)),
        (date(2026, 2, 1), "month", date(2026, 3, 1)),
        (date(2024, 2, 1), "month", date(2024, 3, 1)),
        (date(2026, 12, 1), "month", date(2027, 1, 1)),
        (date(2026, 1, 1), "month", date(2026, 2, 1)),
        (date(2026, 7, 1), "month", date(2026, 8, 1)),
    ],
)
def test_next_period(start: date, period: str, after: date) -> None:
    assert next_period(start, period) == after


@pytest.mark.parametrize(
    ("day", "period", "key"),
    [
        (date(2026, 11, 29), "day", "2026-11-29"),
        (date(2026, 3, 5), "day", "2026-03-05"),
        (date(2026, 3, 5), "month", "2026-03"),
        (date(2026, 12, 31), "month", "2026-12"),
        (date(2026, 11, 29), "week", "2026-W48"),
        (date(2026, 1, 5), "week", "2026-W02"),  # zero-padded: never "2026-W2"
        (date(2026, 1, 11), "week", "2026-W02"),
        (date(2026, 3, 1), "week", "2026-W09"),
        (date(2025, 12, 29), "week", "2026-W01"),  # calendar 2025, ISO 2026
        (date(2025, 12, 28), "week", "2025-W52"),
        (date(2026, 1, 1), "week", "2026-W01"),
        (date(2026, 12, 28), "week", "2026-W53"),
        (date(2027, 1, 1), "week", "2026-W53"),  # calendar 2027, ISO 2026, week 53
        (date(2027, 1, 3), "week", "2026-W53"),
        (date(2027, 1, 4), "week", "2027-W01"),
        (date(2021, 1, 3), "week", "2020-W53"),
        (date(2024, 12, 30), "week", "2025-W01"),
        (date(2024, 12, 29), "week", "2024-W52"),
    ],
)
def test_period_key(day: date, period: str, key: str) -> None:
    assert period_key(day, period) == key


def test_unknown_periods_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown period 'year'; use day, week or month"):
        period_start(date(2026, 1, 1), "year")
    with pytest.raises(ValueError, match="unknown period 'year'"):
        next_period(date(2026, 1, 1), "year")
    with pytest.raises(ValueError, match="unknown period"):
        period_key(date(2026, 1, 1), "quarter")


def test_local_midnight_follows_the_zone() -> None:
    # Berlin is UTC+1 in winter, UTC+2 from 2026-03-29 03:00 local
    assert (
        local_midnight(date(2026, 1, 15), BERLIN)
        == datetime(2026, 1, 14, 23, tzinfo=UTC).timestamp()
    )
    assert (
        local_midnight(date(2026, 3, 30), BERLIN)
        == datetime(2026, 3, 29, 22, tzinfo=UTC).timestamp()
    )
    assert local_midnight(date(2026, 1, 15), ZoneInfo("UTC")) == 1768435200.0


def _at(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


def test_a_value_at_local_midnight_opens_the_next_day() -> None:
    midnight = _at(2026, 1, 14, 23)  # 2026-01-15 00:00 in Berlin
    rows = [(midnight - 3600, 1.0), (midnight - 1, 2.0), (midnight, 5.0), (midnight + 60, 7.0)]
    assert list(bucket(rows, "day", BERLIN, "sum")) == [
        (date(2026, 1, 14), 3.0),
        (date(2026, 1, 15), 12.0),
    ]
    assert list(bucket(rows, "day", BERLIN, "last")) == [
        (date(2026, 1, 14), 2.0),
        (date(2026, 1, 15), 7.0),
    ]


def test_buckets_by_week_and_month_across_new_year() -> None:
    rows = [
        (_at(2026, 12, 27, 12), 1.0),  # Sunday: week of Mon 2026-12-21
        (_at(2026, 12, 28, 12), 2.0),  # Monday: week 53
        (_at(2027, 1, 3, 12), 4.0),  # Sunday: still week 53
        (_at(2027, 1, 4, 12), 8.0),  # Monday: 2027-W01
    ]
    utc = ZoneInfo("UTC")
    assert list(bucket(rows, "week", utc, "sum")) == [
        (date(2026, 12, 21), 1.0),
        (date(2026, 12, 28), 6.0),
        (date(2027, 1, 4), 8.0),
    ]
    assert list(bucket(rows, "month", utc, "max")) == [
        (date(2026, 12, 1), 2.0),
        (date(2027, 1, 1), 8.0),
    ]
    assert list(bucket([], "day", utc, "sum")) == []
    assert list(bucket(rows[:1], "day", utc, "min")) == [(date(2026, 12, 27), 1.0)]


def test_a_gap_of_several_periods_starts_a_fresh_bucket() -> None:
    utc = ZoneInfo("UTC")
    rows = [(_at(2026, 1, 1, 1), 3.0), (_at(2026, 1, 1, 2), 1.0), (_at(2026, 1, 9, 0), 2.0)]
    assert list(bucket(rows, "day", utc, "avg")) == [
        (date(2026, 1, 1), 2.0),
        (date(2026, 1, 9), 2.0),
    ]


@pytest.mark.parametrize(
    ("agg", "expected"),
    [("last", 2.0), ("sum", 6.0), ("max", 3.0), ("min", 1.0), ("avg", 2.0)],
)
def test_aggregate(agg: str, expected: float) -> None:
    assert aggregate([3.0, 1.0, 2.0], agg) == expected


def test_aggregate_of_one_value_and_of_integers() -> None:
    assert aggregate([5.0], "avg") == 5.0
    assert aggregate([-1.0, -4.0], "max") == -1.0
    assert aggregate([-1.0, -4.0], "min") == -4.0
    total = aggregate([1, 2], "sum")  # type: ignore[list-item]
    assert total == 3.0 and isinstance(total, float)
    assert aggregate([1.0, 2.0], "avg") == 1.5
    with pytest.raises(ValueError, match="unknown agg 'median'"):
        aggregate([1.0], "median")
