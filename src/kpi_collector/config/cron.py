"""Cron expressions with the meaning users know from crontab, computed by APScheduler 3.x.

APScheduler's `CronTrigger` does the calendar arithmetic on local times; this module maps
them to instants across changes of the clocks and fixes the places where APScheduler's
reading of a crontab line differs from cron's (Vixie cron, cronie):

- day of week: 0 and 7 are Sunday (APScheduler 3.x counts 0 as Monday), steps count from Sunday;
- day of month *and* day of week restricted: cron fires when *either* matches (APScheduler: both);
- daylight saving time: a fixed time (neither minute nor hour starts with `*`, like 02:30)
  that happens twice when clocks go back fires once, the first time; each fixed time skipped
  when clocks go forward fires once, late by the jump (an hour in Europe; 30 minutes on Lord
  Howe Island): `0,30 2 * * *` fires at 03:00 and 03:30 that day, where APScheduler alone
  would fire once. A wildcard minute or hour (`*/20 2 * * *`, `0 * * * *`) follows real time,
  as Vixie cron's "wildcard jobs" do: it fires in both copies of a repeated hour and not in
  a skipped one.
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
        _check_items(self.expr, fields)
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
        # the triggers work on local times written as UTC (see `_wall`); `_instants` maps
        # them to real instants, across changes of the clocks
        common = {"minute": minute, "hour": hour, "month": month, "timezone": UTC}
        if dom.startswith("*") or dow.startswith("*"):
            variants = [{"day": dom, "day_of_week": weekdays}]
        else:  # both restricted: either one matching is enough
            variants = [{"day": dom, "day_of_week": "*"}, {"day": "*", "day_of_week": weekdays}]
        self._triggers: list[CronTrigger] = [_trigger(common | v, self.expr) for v in variants]

    def __repr__(self) -> str:
        return f"Cron({self.expr!r}, {str(self.tz)!r})"

    def next_after(self, when: datetime, *, inclusive: bool = False) -> datetime | None:
        """The first fire time after `when` (or at it, with `inclusive`), in the cron's zone."""
        # arithmetic in UTC: adding to a local time in a repeated hour would jump back an hour
        start = when.astimezone(UTC) + (timedelta(0) if inclusive else _TICK)
        wall = _wall(start, self.tz)
        limit = wall + _LOOKBACK_LIMIT
        found: list[datetime] = []
        # local times that exist once keep their order as instants: from the start's own
        # local time on, the first of them that fires at or after the start ends the search;
        # skipped or repeated ones on the way (few: within a change) may fire earlier
        local = self._next_wall(wall)
        while local is not None and local <= limit:
            instants, once = self._instants(local)
            hits = [i for i in instants if i >= start]
            found += hits
            if once and hits:
                break
            local = self._next_wall(local + _SECOND)
        # around a change of the clocks near the start, a skipped local time before the
        # start's fires late, after it (02:30 at 03:30), and so does the second copy of a
        # repeated one
        for low, high in self._changes_near(start):
            # those from the start's own local time on were seen above
            local = self._next_wall(low)
            while local is not None and local < min(high, wall):
                found += [i for i in self._instants(local)[0] if i >= start]
                local = self._next_wall(local + _SECOND)
        return min(found).astimezone(self.tz) if found else None

    def _changes_near(self, moment: datetime) -> list[tuple[datetime, datetime]]:
        """The local times (as `_wall` writes them, [low, high)) that a change of the clocks
        within `_SPRING_SPAN` of `moment` skips or repeats, when they may fire at or after
        `moment` (late or as a second copy, they fire within the jump after the change)."""
        spans = []
        for low, high in ((moment - _SPRING_SPAN, moment), (moment, moment + _SPRING_SPAN)):
            before, after = (
                low.astimezone(self.tz).utcoffset(),
                high.astimezone(self.tz).utcoffset(),
            )
            if before is None or after is None or before == after:
                continue
            while high - low > _SECOND:  # the first instant with the new offset, to the second
                middle = low + (high - low) / 2
                if middle.astimezone(self.tz).utcoffset() == before:
                    low = middle
                else:
                    high = middle
            change = high.replace(tzinfo=UTC)
            if change + abs(after - before) + _SECOND < moment:
                continue
            spans.append(
                (change + min(before, after) - _SECOND, change + max(before, after) + _SECOND)
            )
        return spans

    def _next_wall(self, wall: datetime) -> datetime | None:
        """The first local time of day (written as UTC, see `_wall`) at or after `wall` that
        the expression names, ignoring changes of the clocks."""
        found = [t.get_next_fire_time(None, wall) for t in self._triggers]
        candidates = [f for f in found if f is not None]
        return min(candidates) if candidates else None

    def _instants(self, wall: datetime) -> tuple[list[datetime], bool]:
        """The instants (UTC) at which the cron fires for its local time `wall`: one, but
        in an hour the clocks repeat both copies for a wildcard (`*/30 2 * * *`, `0 * * * *`)
        and the first for a fixed time; in a span they skip, nothing for a wildcard (it
        follows real time) and, for a fixed time, the same time of day read with the offset
        before the change: late by the jump (02:30 at 03:30 CEST; 02:15 at 02:45 on Lord
        Howe Island, whose clocks move 30 minutes). Every skipped time fires, each late:
        `0,30 2 * * *` at 03:00 and 03:30. The flag: whether the local time exists once."""
        naive = wall.replace(tzinfo=None)
        first = naive.replace(tzinfo=self.tz, fold=0).astimezone(UTC)
        second = naive.replace(tzinfo=self.tz, fold=1).astimezone(UTC)
        if first == second:
            return [first], True
        if first.astimezone(self.tz).replace(tzinfo=None) != naive:  # skipped
            return ([first] if self.fixed_hour else []), False
        return ([first] if self.fixed_hour else [first, second]), False

    def late_fire(self, when: datetime) -> datetime | None:
        """The late fire time of a time of day the clocks skipped (02:30, firing at 03:30 on
        the day they go forward), when `when` is after the change and before that fire time
        (the last of them when several times were skipped); else None. Cron (cronie, Vixie)
        runs such a job right after the change, at 03:00."""
        start = when.astimezone(UTC)
        following = self.next_after(start)
        if following is None or self._names(_wall(following, self.tz)):
            return None  # none, or one of the cron's own times of day
        offset = following.utcoffset() or timedelta(0)
        earlier = following.astimezone(UTC) - _SPRING_SPAN
        jump = offset - (earlier.astimezone(self.tz).utcoffset() or timedelta(0))
        # late fire times lie within the jump after the change; `when` after the change
        # has the offset that came with it
        after_change = start.astimezone(self.tz).utcoffset() == offset
        if jump <= timedelta(0) or not after_change or following.astimezone(UTC) - start > jump:
            return None
        # cron runs every skipped time right after the change: one run serves them all
        # (`0,30 1,2 * * *` where clocks jump 01:00 to 03:00: up to 04:30)
        while (later := self.next_after(following)) is not None and (
            later.astimezone(UTC) - start <= jump and not self._names(_wall(later, self.tz))
        ):
            following = later
        return following

    def _names(self, wall: datetime) -> bool:
        """Whether the expression names the local time `wall` (see `_wall`) itself."""
        return self._next_wall(wall) == wall

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


def check_zone(name: str) -> str:
    """`name` when it is an IANA time zone every machine reads the same (`timezone:`);
    ValueError otherwise: unknown; `localtime`, this machine's own zone, which a worker, a
    CI runner or a server elsewhere reads as theirs (day boundaries, fire times); tzdata's
    `right/` (leap seconds) and `posix/` copies, which the deployment snippets' cron,
    systemd and GitHub do not read as the plain name."""
    from zoneinfo import ZoneInfoNotFoundError

    if name.rpartition("/")[2].lower() == "localtime":
        raise ValueError(
            f"{name!r} is this machine's own time zone, which another machine (a worker, "
            "a CI runner, a server) reads as its own; name the zone, e.g. Europe/Berlin"
        )
    for prefix in ("right/", "posix/"):
        if name.startswith(prefix):
            raise ValueError(
                f"{name!r}: write {name.removeprefix(prefix)!r} (tzdata's {prefix} "
                "copies are not read the same by cron, systemd and GitHub)"
            )
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {name!r}; use an IANA name like Europe/Berlin"
        ) from None
    return name


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
            + (
                "; a first field of seconds or a last of years (Quartz cron) is not read "
                "here: drop it"
                if len(fields) in (6, 7)
                else ""
            )
        )
    return fields


_FIELD_WORDS = ("minute", "hour", "day of month", "month", "day of week")
_QUARTZ = (
    (re.compile(r"\?"), "? is Quartz cron's 'no value'; write *"),
    (
        re.compile("#"),
        "# (the nth weekday of the month) is Quartz cron, not read here; name the weekday "
        "and days of the month instead, e.g. 0 12 8-14 * * for the 8th to the 14th",
    ),
    (
        re.compile(r"[0-9L]W", re.IGNORECASE),  # 15W, LW (a day name such as wed is not one)
        "W (the nearest weekday) is Quartz cron, not read here; write the day, or L for "
        "the month's last day",
    ),
)


def _check_items(expr: str, fields: list[str]) -> None:
    """ValueError, in field order, for what the fields' own checks would name without a fix
    or let through: Quartz cron's `?`, `#` and `W`, an empty item (`0,,5`), and characters
    other than ASCII (digits of other scripts, `٣`, which APScheduler reads as numbers)."""
    for words, field in zip(_FIELD_WORDS, fields, strict=True):
        problem = None
        if not field.isascii():  # APScheduler reads `\d` and int(): '٣' would be minute 3
            odd = "".join(dict.fromkeys(c for c in field if not c.isascii()))
            problem = (
                f"{odd!r} is not cron: write digits 0-9, English names, * , - and / "
                "(crontab and systemd read nothing else)"
            )
        elif any(not item for item in field.split(",")):
            problem = "an empty item between commas; remove the extra comma"
        for mark, why in _QUARTZ:
            if problem is None and mark.search(field):
                problem = why
        if problem is not None:
            raise ValueError(
                f"{expr!r} is not a valid cron expression: {words} {field!r}: {problem}"
            )


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
        if stride > high - low and step:  # as APScheduler says it for the other fields
            raise ValueError(
                f"day of week {field!r}: the step value ({step}) is higher than the total "
                f"range of the expression ({high - low})"
            )
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
                if detail == "Increment must be higher than 0":
                    detail = "a step must be 1 or more"  # as the day of week says it
                problem = f"{words} {options[name]!r}: {detail}"
                break
        raise ValueError(f"{expr!r} is not a valid cron expression: {problem}") from None


def _wall(moment: datetime, tz: ZoneInfo) -> datetime:
    """The local time of `moment` in `tz`, written as a UTC time: the triggers read the
    expression on local times alone, without the zone's changes of the clocks."""
    return moment.astimezone(tz).replace(tzinfo=UTC, fold=0)
