"""Cron expressions with the meaning users know from crontab, computed by APScheduler 3.x.

APScheduler's `CronTrigger` does the calendar and time-zone arithmetic; this module fixes the
places where its reading of a crontab line differs from cron's (Vixie cron, cronie):

- day of week: 0 and 7 are Sunday (APScheduler 3.x counts 0 as Monday), steps count from Sunday;
- day of month *and* day of week restricted: cron fires when *either* matches (APScheduler: both);
- daylight saving time: a fixed hour (a time like 02:30) that happens twice when clocks go back
  fires once, the first time; a time skipped when clocks go forward fires once, an hour late
  (APScheduler's choice). Wildcard hours (`*`, `*/2`) follow real time: they fire in both
  copies of a repeated hour and not in a skipped one.
- `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly`, `@yearly` (`@annually`).
- `L` in the day of month is the month's last day (as in Quartz and cronie's extensions):
  `30 23 L * *` fires on Jan 31, Feb 28 (29), Apr 30, ... where `30 23 31 * *` skips the
  months without a 31st.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from apscheduler.triggers.cron import CronTrigger

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# cron's numbering (0 = Sunday); APScheduler reads these names the same way
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_DOW_ITEM = re.compile(
    r"^(?:(\*)|([0-7]|[a-z]{3})(?:-([0-7]|[a-z]{3}))?)(?:/(\d+))?$", re.IGNORECASE
)
_TICK = timedelta(microseconds=1)
_SECOND = timedelta(seconds=1)
_SPRING_SPAN = timedelta(hours=3)  # longer than any change of the clocks and its late fires
_LOOKBACK_LIMIT = timedelta(days=366 * 8)  # "0 0 29 2 1" fires once in up to 28 years; enough


class Cron:
    """A five-field cron expression in a time zone: `next_after(t)` and `previous(t)`."""

    def __init__(self, expr: str, tz: ZoneInfo | str = "UTC") -> None:
        self.expr = expr.strip()
        self.tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        fields = _fields(self.expr)
        minute, hour, dom, month, dow = fields
        self.fields = fields
        # APScheduler writes the last day of the month `last`
        dom = ",".join("last" if item.upper() == "L" else item for item in dom.split(","))
        # Vixie cron: a field that starts with "*" is unrestricted for the dom/dow rule and
        # for daylight saving time
        self.fixed_hour = not hour.startswith("*") and not minute.startswith("*")
        try:
            days = _weekdays(dow)
        except ValueError as exc:
            raise ValueError(f"{self.expr!r} is not a valid cron expression: {exc}") from None
        weekdays = "*" if len(days) == 7 else ",".join(_DAY_NAMES[d] for d in sorted(days))
        common = {"minute": minute, "hour": hour, "month": month, "timezone": self.tz}
        if dom.startswith("*") or dow.startswith("*"):
            variants = [{"day": dom, "day_of_week": weekdays}]
        else:  # both restricted: either one matching is enough
            variants = [{"day": dom, "day_of_week": "*"}, {"day": "*", "day_of_week": weekdays}]
        self._triggers: list[CronTrigger] = [_trigger(common | v, self.expr) for v in variants]
        self._clock: Cron | None = None  # the cron's times of day alone (see `_own_time`)

    def __repr__(self) -> str:
        return f"Cron({self.expr!r}, {str(self.tz)!r})"

    def next_after(self, when: datetime, *, inclusive: bool = False) -> datetime | None:
        """The first fire time after `when` (or at it, with `inclusive`), in the cron's zone."""
        # arithmetic in UTC: adding to a local time in a repeated hour would jump back an hour
        start = when.astimezone(UTC) + (timedelta(0) if inclusive else _TICK)
        # a time skipped in spring fires late, after the change (02:30 at 03:30), yet only
        # a search from before the change finds it: within hours after one, search from there
        search = self._forward_change_before(start) or start
        while True:
            found = [t.get_next_fire_time(None, search) for t in self._triggers]
            candidates = [f for f in found if f is not None]
            if not candidates:
                return None
            # through UTC: a wall time skipped in spring comes back as the real local time
            best = min(candidates, key=lambda f: f.timestamp()).astimezone(UTC).astimezone(self.tz)
            if best.astimezone(UTC) >= start and not (self.fixed_hour and _second_copy(best)):
                return best
            search = best.astimezone(UTC) + _TICK

    def late_fire(self, when: datetime) -> datetime | None:
        """The late fire time of a time of day the clocks skipped (02:30, firing at 03:30 on
        the day they go forward), when `when` is after the change and before that fire time;
        else None. Cron (cronie, Vixie) runs such a job right after the change, at 03:00."""
        start = when.astimezone(UTC)
        before = self._forward_change_before(start)
        following = self.next_after(start) if before is not None else None
        if before is None or following is None:
            return None
        jump = following.utcoffset() or timedelta(0)
        jump -= before.astimezone(self.tz).utcoffset() or timedelta(0)
        # late fire times lie in the span of the jump after the change (`before` is up to 2 s
        # before it), at a time of day that is not one of the cron's own
        if following.astimezone(UTC) - before > jump + 2 * _SECOND or self._own_time(following):
            return None
        return following

    def _own_time(self, when: datetime) -> bool:
        """Whether `when`'s local time of day is one of the cron's own hours and minutes."""
        minute, hour = self.fields[:2]
        if self._clock is None:
            self._clock = Cron(f"{minute} {hour} * * *")
        local = when.astimezone(self.tz)
        at = datetime(2000, 1, 1, local.hour, local.minute, tzinfo=UTC)
        return self._clock.previous(at) == at

    def _forward_change_before(self, start: datetime) -> datetime | None:
        """A moment (UTC) just before the clocks went forward, when they did in the
        `_SPRING_SPAN` before `start`; else None."""
        now = start.astimezone(self.tz).utcoffset()
        earlier = start - _SPRING_SPAN
        if not (now is not None and (then := earlier.astimezone(self.tz).utcoffset()) is not None):
            return None
        if then >= now:
            return None
        low, high = earlier, start  # offset `then` at low, a later one at high
        while high - low > _SECOND:
            middle = low + (high - low) / 2
            if middle.astimezone(self.tz).utcoffset() == then:
                low = middle
            else:
                high = middle
        # a whole second before: APScheduler rounds a start up to the second, which would
        # land on the first instant after the change again
        return low.replace(microsecond=0) - _SECOND

    def previous(self, when: datetime) -> datetime | None:
        """The last fire time at or before `when` (None when there was none in years)."""
        # instants compared in UTC: Python compares two times of one zone by their wall
        # clock, so 02:30 CEST would count as later than 02:15 CET (an hour after it)
        when = when.astimezone(UTC)
        span = timedelta(minutes=2)
        while span <= _LOOKBACK_LIMIT:
            found = self.next_after(when - span, inclusive=True)
            if found is not None and found.astimezone(UTC) <= when:
                while True:
                    following = self.next_after(found)
                    if following is None or following.astimezone(UTC) > when:
                        return found
                    found = following
            span *= 2
        return None

    def times(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Fire times in [start, end)."""
        end = end.astimezone(UTC)  # an instant, whatever the zone (see `previous`)
        found = self.next_after(start, inclusive=True)
        while found is not None and found.astimezone(UTC) < end:
            yield found
            found = self.next_after(found)


def check_cron(expr: str) -> str:
    """A validator: the expression, or ValueError saying what is wrong with it (including a
    day of month that none of its months has: `0 7 30 2 *` would never fire)."""
    cron = Cron(expr)
    _check_days_exist(cron)
    return expr


_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February: in leap years
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")


def _check_days_exist(cron: Cron) -> None:
    """ValueError when the day of month lists only days that none of the months has (with
    the day of week unrestricted: a restricted one fires on its weekdays anyway), however
    the fields are written: numbers, month names, ranges, steps."""
    _, _, dom, month, dow = cron.fields
    if not dow.startswith("*") or any(item.upper() == "L" for item in dom.split(",")):
        return
    months = _values(month, 1, 12, _MONTH_NAMES)
    days = _values(dom, 1, 31)
    if months is None or days is None:  # something APScheduler reads and we don't: let it be
        return
    if any(d <= _MONTH_DAYS[m - 1] for d in days for m in months):
        return
    named = " or ".join(_MONTH_NAMES[m - 1].title() for m in sorted(months))
    raise ValueError(
        f"{cron.expr!r} never fires: {named} has no day {', '.join(map(str, sorted(days)))}; "
        "use L for a month's last day"
    )


_ITEM = re.compile(r"^(?:(\*)|(\w+)(?:-(\w+))?)(?:/(\d+))?$")


def _values(field: str, low: int, high: int, names: tuple[str, ...] = ()) -> set[int] | None:
    """The numbers a cron field (`*`, `5`, `1-5`, `*/2`, `4/5`, `jan-mar`, lists of them)
    stands for; None for a form this does not read."""

    def number(text: str) -> int | None:
        if text.isdigit():
            return int(text)
        if text.lower() in names:
            return names.index(text.lower()) + low
        return None

    found: set[int] = set()
    for item in field.split(","):
        match = _ITEM.match(item.strip())
        if match is None:
            return None
        star, first, last, step = match.groups()
        start = low if star else number(first)
        end = high if star or (step and not last) else number(last) if last else start
        if start is None or end is None:
            return None
        found.update(range(start, min(end, high) + 1, int(step) if step else 1))
    return found


def _fields(expr: str) -> list[str]:
    text = MACROS.get(expr.lower(), expr) if expr.startswith("@") else expr
    if text.startswith("@"):
        raise ValueError(
            f"{expr!r}: unknown cron macro; use one of {', '.join(MACROS)} or five fields"
        )
    fields = text.split()
    if len(fields) == 1 and f"@{text.lower()}" in MACROS:
        raise ValueError(f"{expr!r} is not a cron expression; did you mean '@{text.lower()}'?")
    if len(fields) != 5:
        raise ValueError(
            f"{expr!r} is not a cron expression: expected 5 fields (minute hour day-of-month "
            f"month day-of-week) like '0 7 * * *', got {len(fields)}"
        )
    return fields


def _weekdays(field: str) -> set[int]:
    """Cron's day-of-week field as a set of days, 0 = Sunday."""
    days: set[int] = set()
    for item in field.split(","):
        match = _DOW_ITEM.match(item.strip())
        if match is None:
            raise ValueError(
                f"day of week {field!r}: {item!r} is not a day (0-7 or sun-sat), a range or a step"
            )
        star, first, last, step = match.groups()
        if star:
            low, high = 0, 6
        else:
            low = _day(first, field)
            high = _day(last, field) if last else low
            if last and high == 0 and low > 0:
                high = 7  # "fri-sun", "5-7": up to Sunday at the end of the week
            if high < low:
                raise ValueError(f"day of week {field!r}: the range {item!r} runs backwards")
            if not last and step:
                high = 6  # "1/2": from Monday on, every second day (cronie)
        stride = int(step) if step else 1
        if stride < 1:
            raise ValueError(f"day of week {field!r}: a step must be 1 or more")
        days.update(d % 7 for d in range(low, high + 1, stride))
    return days


def _day(text: str, field: str) -> int:
    if text.isdigit():
        return int(text)
    try:
        return _DAY_NAMES.index(text.lower())
    except ValueError:
        raise ValueError(f"day of week {field!r}: {text!r} is not a day name (sun-sat)") from None


def _trigger(options: dict[str, Any], expr: str) -> CronTrigger:
    from apscheduler.triggers.cron import CronTrigger

    try:
        return CronTrigger(**options)
    except ValueError as exc:
        problem = str(exc)
        # APScheduler names the value, not the field: "Error validating expression '60': ..."
        for name, words in (
            ("minute", "minute"),
            ("hour", "hour"),
            ("day", "day of month"),
            ("month", "month"),
        ):
            try:
                CronTrigger(**{name: options[name]}, timezone=options["timezone"])
            except ValueError as one:
                detail = re.sub(r"^Error validating expression '[^']*': ", "", str(one))
                problem = f"{words} {options[name]!r}: {detail}"
                break
        raise ValueError(f"{expr!r} is not a valid cron expression: {problem}") from None


def _second_copy(when: datetime) -> bool:
    """True for the second occurrence of a wall-clock time repeated when clocks go back."""
    return when.fold == 1 and when.replace(fold=0).utcoffset() != when.utcoffset()
