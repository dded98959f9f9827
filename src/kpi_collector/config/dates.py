"""Days written as people write them on a command line: `2026-01-31`, `today`,
`yesterday`, or a span back from today (`30d`, `2w`, `6mo`, `1y`)."""

from __future__ import annotations

import re
from datetime import date, timedelta

_SPAN = re.compile(
    r"(?P<n>\d{1,5})\s*(?P<unit>d|days?|w|weeks?|mo|months?|y|years?)(?:\s+ago)?", re.IGNORECASE
)
FORMS = "a date like 2026-01-31, today, yesterday, or a span back like 30d, 2w, 6mo, 1y"


def parse_day(text: str, today: date) -> date:
    """The day `text` names, counted back from `today` for the relative forms; a month back
    is the same day of the month (or the month's last day: 31 March - 1mo = 28/29 Feb).
    Raises ValueError naming the forms accepted."""
    value = text.strip().lower()
    if value == "today":
        return today
    if value == "yesterday":
        return today - timedelta(days=1)
    match = _SPAN.fullmatch(value)
    if match:
        n, unit = int(match["n"]), match["unit"][:2]
        if unit[0] == "d":
            return today - timedelta(days=n)
        if unit[0] == "w":
            return today - timedelta(weeks=n)
        months = n * 12 if unit[0] == "y" else n
        return _months_back(today, months)
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not {FORMS}") from None


def _months_back(day: date, months: int) -> date:
    import calendar

    index = day.year * 12 + day.month - 1 - months
    if index < 12:  # before year 1
        raise ValueError(f"{months} months before {day} is before year 1")
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))
