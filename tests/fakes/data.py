"""Test data that connectors counting the same things share, all seen from TODAY: a daily
download series (`pypi`, `npm`) and the events of a set of users (`posthog`, `mixpanel`)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

TODAY = date(2026, 3, 10)
NOW = datetime(2026, 3, 10, 7, 0, tzinfo=UTC)


def downloads(day: date) -> int:
    """A plausible daily count that differs every day."""
    return 1000 + (day - date(2025, 1, 1)).days * 3 + day.weekday() * 50


def window(last: date, days: int) -> int:
    return sum(downloads(last - timedelta(days=i)) for i in range(days))


def make_events() -> list[tuple[datetime, str, str]]:
    """Person p<i> is active on days i..i+k; 'signup' only on the first day; plus today's events."""
    events = []
    for i in range(60):
        first = TODAY - timedelta(days=60 - i)
        for k in range(i % 5 + 1):
            day = first + timedelta(days=k)
            if day < TODAY:
                events.append(
                    (
                        datetime(day.year, day.month, day.day, 10, tzinfo=UTC),
                        f"p{i}",
                        "signup" if k == 0 else "pageview",
                    )
                )
    events.append(
        (datetime(2026, 3, 10, 6, tzinfo=UTC), "early-bird", "pageview")
    )  # today: not counted
    return events


EVENTS = make_events()


def expected(first: date, last: date, event: str | None = None) -> int:
    return len(
        {p for t, p, e in EVENTS if first <= t.date() <= last and (event is None or e == event)}
    )


YESTERDAY = TODAY - timedelta(days=1)
WINDOWS = {
    "dau": YESTERDAY,
    "wau": YESTERDAY - timedelta(days=6),
    "mau": YESTERDAY - timedelta(days=29),
}
