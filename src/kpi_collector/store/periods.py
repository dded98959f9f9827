"""Calendar periods (day, week, month) in a time zone, and the per-period aggregation of values."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

Period = Literal["run", "day", "week", "month"]
PERIODS: tuple[str, ...] = ("day", "week", "month")


def period_start(day: date, period: str) -> date:
    """The first day of the period that contains `day` (weeks start on Monday, as ISO weeks)."""
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    raise ValueError(f"unknown period {period!r}; use day, week or month")


def next_period(start: date, period: str) -> date:
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(days=7)
    if period == "month":
        return (start.replace(day=28) + timedelta(days=4)).replace(day=1)
    raise ValueError(f"unknown period {period!r}")


def period_key(day: date, period: str) -> str:
    """A stable label: 2026-11-29, 2026-W48, 2026-11."""
    start = period_start(day, period)
    if period == "week":
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return start.strftime("%Y-%m")
    return start.isoformat()


def local_midnight(day: date, tz: ZoneInfo) -> float:
    """Epoch seconds of the start of `day` in `tz`."""
    return datetime.combine(day, time(0), tzinfo=tz).timestamp()


def compare_end(moment: datetime, days: int, tz: ZoneInfo) -> float:
    """The end (UTC epoch seconds, exclusive: the next local midnight) of the local day `days`
    days before `moment`'s local day: what `compare: <N>d` compares with is the newest value
    stored before it, so a run of that day counts whatever its time (a cron's runs start a
    little earlier or later each day, and a change of the clocks moves them by an hour)."""
    day = moment.astimezone(tz).date() - timedelta(days=days)
    return local_midnight(day + timedelta(days=1), tz)


def bucket(
    rows: Iterable[tuple[float, float]], period: str, tz: ZoneInfo, agg: str
) -> Iterator[tuple[date, float]]:
    """Aggregate (ts, value) rows sorted by ts into (period start, value) per period."""
    start: date | None = None
    end_ts = float("-inf")
    values: list[float] = []
    for ts, value in rows:
        if ts >= end_ts or start is None:
            if values and start is not None:
                yield start, aggregate(values, agg)
            day = datetime.fromtimestamp(ts, tz).date()
            start = period_start(day, period)
            end_ts = local_midnight(next_period(start, period), tz)
            values = []
        values.append(value)
    if values and start is not None:
        yield start, aggregate(values, agg)


def aggregate(values: list[float], agg: str) -> float:
    if agg == "last":
        return values[-1]
    if agg == "sum":
        return float(sum(values))
    if agg == "max":
        return max(values)
    if agg == "min":
        return min(values)
    if agg == "avg":
        return sum(values) / len(values)
    raise ValueError(f"unknown agg {agg!r}")
