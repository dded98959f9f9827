"""Cron edge cases worked out on a calendar: 2026-11-30 is a Monday; in Europe/Berlin clocks
go back on 2026-10-25 at 03:00 CEST (01:00 UTC) to 02:00 CET, so 02:00-02:59 happens twice:
at 00:00-00:59 UTC (CEST, +2) and at 01:00-01:59 UTC (CET, +1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kpi_collector.config.cron import Cron, check_cron

MONDAY = datetime(2026, 11, 30, tzinfo=UTC)
NEXT_MONDAY = datetime(2026, 12, 7, tzinfo=UTC)


def _days(expr: str) -> list[int]:
    """Days of the month of the fire times in the week from MONDAY (Nov 30 - Dec 6)."""
    return [t.day for t in Cron(expr).times(MONDAY, NEXT_MONDAY)]


@pytest.mark.parametrize(
    ("dow", "days"),
    [
        ("1/2", [30, 2, 4]),  # from Monday, every second day: Mon, Wed, Fri (never Sunday)
        ("1-0", [30, 1, 2, 3, 4, 5, 6]),  # Monday to Sunday: every day
        ("0-0", [6]),  # Sunday only
        ("7", [6]),  # 7 is Sunday too
        ("5-7", [4, 5, 6]),
        ("fri-sun", [4, 5, 6]),
        ("*/3", [2, 5, 6]),  # Sunday, Wednesday, Saturday (0, 3, 6)
        ("mon,wed", [30, 2]),
        ("0-6", [30, 1, 2, 3, 4, 5, 6]),
        ("*/6", [5, 6]),  # Sunday and Saturday: 0 and 6
        ("mon-fri/4", [30, 4]),
        ("1-0/6", [30, 6]),  # Monday, then Sunday at the end of the week
    ],
)
def test_day_of_week_fields(dow: str, days: list[int]) -> None:
    assert _days(f"0 7 * * {dow}") == days


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        (
            "0 7 * * 5-1",
            "'0 7 * * 5-1' is not a valid cron expression: day of week '5-1': "
            "the range '5-1' runs backwards",
        ),
        (
            "0 7 * * 1/0",
            "'0 7 * * 1/0' is not a valid cron expression: day of week '1/0': "
            "a step must be 1 or more",
        ),
        (
            "0 7 * * mon,foo",
            "'0 7 * * mon,foo' is not a valid cron expression: day of week "
            "'mon,foo': 'foo' is not a day name (sun-sat)",
        ),
        (
            "0 7 * * 8",
            "'0 7 * * 8' is not a valid cron expression: day of week '8': '8' is not "
            "a day (0-7 or sun-sat), a range or a step",
        ),
        # a step past the field's range was refused in every field but the day of week,
        # where it quietly meant the first day only
        (
            "0 7 * * */7",
            "'0 7 * * */7' is not a valid cron expression: day of week '*/7': the step value "
            "(7) is higher than the total range of the expression (6)",
        ),
        (
            "0 7 * * mon-fri/5",
            "'0 7 * * mon-fri/5' is not a valid cron expression: day of week 'mon-fri/5': the "
            "step value (5) is higher than the total range of the expression (4)",
        ),
        (
            "0 7 * * 1,*/99999999999999999999",
            "'0 7 * * 1,*/99999999999999999999' is not a valid cron expression: day of week "
            "'1,*/99999999999999999999': the step value (99999999999999999999) is higher than "
            "the total range of the expression (6)",
        ),
        # Quartz (Spring, AWS) cron: the messages named a field but not why nor the fix
        (
            "0 0 12 * * ?",
            "'0 0 12 * * ?' is not a cron expression: expected 5 fields (minute hour "
            "day-of-month month day-of-week) like '0 7 * * *', got 6; a first field of "
            "seconds or a last of years (Quartz cron) is not read here: drop it",
        ),
        (
            "0 12 ? * MON",
            "'0 12 ? * MON' is not a valid cron expression: day of month '?': ? is Quartz "
            "cron's 'no value'; write *",
        ),
        (
            "0 12 * * 5#2",
            "'0 12 * * 5#2' is not a valid cron expression: day of week '5#2': # (the nth "
            "weekday of the month) is Quartz cron, not read here; name the weekday and days "
            "of the month instead, e.g. 0 12 8-14 * * for the 8th to the 14th",
        ),
        (
            "0 12 15W * *",
            "'0 12 15W * *' is not a valid cron expression: day of month '15W': W (the "
            "nearest weekday) is Quartz cron, not read here; write the day, or L for the "
            "month's last day",
        ),
        (
            "*/0 * * * *",
            "'*/0 * * * *' is not a valid cron expression: minute '*/0': a step must be 1 or more",
        ),
        (
            "0,,5 * * * *",
            "'0,,5 * * * *' is not a valid cron expression: minute '0,,5': an empty item "
            "between commas; remove the extra comma",
        ),
        (
            "\u0663 7 * * *",  # an Arabic-Indic 3: APScheduler read minute 3, crontab refuses
            "'\u0663 7 * * *' is not a valid cron expression: minute '\u0663': '\u0663' is not "
            "cron: write digits 0-9, English names, * , - and / (crontab and systemd read "
            "nothing else)",
        ),
        (
            "0 7 * * mon-\uff15",  # a fullwidth 5
            "'0 7 * * mon-\uff15' is not a valid cron expression: day of week "
            "'mon-\uff15': '\uff15' is not cron: write digits 0-9, English names, * , - and "
            "/ (crontab and systemd read nothing else)",
        ),
        (
            "@often",
            "'@often': unknown cron macro; use one of @yearly, @annually, @monthly, "
            "@weekly, @daily, @midnight, @hourly or five fields",
        ),
        (
            "0 7 * *",
            "'0 7 * *' is not a cron expression: expected 5 fields (minute hour "
            "day-of-month month day-of-week) like '0 7 * * *', got 4",
        ),
    ],
)
def test_errors_say_what_is_wrong(expr: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Cron(expr)
    assert str(caught.value) == message


def test_fields_and_macros() -> None:
    assert Cron("  0 7 * * 1 ").fields == ["0", "7", "*", "*", "1"]
    assert Cron("@DAILY").fields == ["0", "0", "*", "*", "*"]
    assert repr(Cron("@hourly", "Europe/Berlin")) == "Cron('@hourly', 'Europe/Berlin')"


def test_previous_at_a_fire_time_is_that_time() -> None:
    cron = Cron("0 7 * * *")
    at = datetime(2026, 11, 30, 7, tzinfo=UTC)
    assert cron.previous(at) == at
    assert cron.previous(datetime(2026, 11, 30, 6, 59, 59, tzinfo=UTC)) == datetime(
        2026, 11, 29, 7, tzinfo=UTC
    )
    weekly = Cron("0 7 * * 1")  # the Monday before: 7 days back, found by widening the span
    assert weekly.previous(datetime(2026, 12, 6, 23, tzinfo=UTC)) == at


BERLIN = ZoneInfo("Europe/Berlin")
FALL_BACK = (datetime(2026, 10, 24, 23, tzinfo=UTC), datetime(2026, 10, 25, 3, tzinfo=UTC))


def _utc(expr: str) -> list[str]:
    return [t.astimezone(UTC).strftime("%H:%M") for t in Cron(expr, BERLIN).times(*FALL_BACK)]


def test_a_fixed_time_in_the_repeated_hour_fires_once() -> None:
    assert _utc("30 2 * * *") == ["00:30"]


def test_a_wildcard_minute_fires_in_both_copies_of_the_hour() -> None:
    assert _utc("*/30 2 * * *") == ["00:00", "00:30", "01:00", "01:30"]


def test_a_wildcard_hour_follows_real_time() -> None:
    # 01:30 CEST (23:30 UTC), 02:30 CEST, 02:30 CET, 03:30 CET (02:30 UTC)
    assert _utc("30 * * * *") == ["23:30", "00:30", "01:30", "02:30"]


def test_a_field_apscheduler_refuses_names_the_expression() -> None:
    with pytest.raises(ValueError) as caught:
        Cron("61 7 * * *")
    assert str(caught.value).startswith("'61 7 * * *' is not a valid cron expression: ")
    assert "59" in str(caught.value)  # a minute is at most 59


def _instant(when: datetime | None) -> str | None:
    """A time as UTC text: `==` across zones is always false for a time in a repeated hour."""
    return when.astimezone(UTC).strftime("%d %H:%M") if when else None


def test_times_in_the_crons_own_zone_are_compared_as_instants() -> None:
    # Python compares two times of one zone by their wall clock, ignoring `fold`: 02:30 CEST
    # (00:30 UTC) looks later than 02:15 CET (01:15 UTC). Fire times are instants.
    second_copy = datetime(2026, 10, 25, 2, 15, fold=1, tzinfo=BERLIN)
    assert _instant(second_copy) == "25 01:15"
    half_hourly = Cron("*/30 * * * *", BERLIN)
    assert _instant(half_hourly.previous(second_copy)) == "25 01:00"
    # today's 02:30 CEST, not yesterday's
    assert _instant(Cron("30 2 * * *", BERLIN).previous(second_copy)) == "25 00:30"
    new_york = ZoneInfo("America/New_York")
    at_one_est = datetime(2026, 11, 1, 1, 0, fold=1, tzinfo=new_york)  # 06:00 UTC
    assert _instant(Cron("45 1 * * *", new_york).previous(at_one_est)) == "01 05:45"
    start = datetime(2026, 10, 25, 1, 45, tzinfo=BERLIN)
    assert [_instant(t) for t in half_hourly.times(start, second_copy)] == [
        "25 00:00",
        "25 00:30",
        "25 01:00",
    ]


SPRING_FORWARD = datetime(2026, 3, 29, 1, tzinfo=UTC)  # Berlin: 02:00 CET becomes 03:00 CEST


def test_a_time_skipped_in_spring_still_fires_when_looked_for_after_the_change() -> None:
    # 02:30 does not exist on 2026-03-29 and fires late, at 03:30 CEST (01:30 UTC): also for
    # a scheduler that starts (or a timer that asks) at 03:10 CEST, after the change
    cron = Cron("30 2 * * *", BERLIN)
    from_before = cron.next_after(datetime(2026, 3, 28, 12, tzinfo=UTC))
    assert _instant(from_before) == "29 01:30"
    for start in ("01:00", "01:10", "01:29"):
        hours, minutes = map(int, start.split(":"))
        after = datetime(2026, 3, 29, hours, minutes, tzinfo=UTC)
        assert _instant(cron.next_after(after)) == "29 01:30", start
    assert _instant(cron.next_after(SPRING_FORWARD, inclusive=True)) == "29 01:30"
    assert _instant(cron.next_after(datetime(2026, 3, 29, 1, 30, tzinfo=UTC))) == "30 00:30"
    assert [_instant(t) for t in cron.times(SPRING_FORWARD, SPRING_FORWARD.replace(hour=2))] == [
        "29 01:30"
    ]
    # a 30-minute change (Lord Howe Island: 02:00 becomes 02:30): 02:15 fires at 02:45
    lord_howe = ZoneInfo("Australia/Lord_Howe")
    change = datetime(2026, 10, 3, 15, 30, tzinfo=UTC)  # 02:30 +11, the first instant after
    assert _instant(Cron("15 2 * * *", lord_howe).next_after(change)) == "03 15:45"


def test_a_late_fire_time_is_served_from_the_change_of_the_clocks_on() -> None:
    # cron (cronie, Vixie) runs a job whose time was skipped right after the change, at
    # 03:00 CEST: `kpi schedule --run` then serves the late fire time (03:30), so the day's
    # run is not lost as "nothing is due" (the newest fire time being yesterday's)
    cron = Cron("30 2 * * *", BERLIN)
    for at in ("01:00:30", "01:01", "01:29"):
        hours, minutes, *seconds = map(int, at.split(":"))
        when = datetime(2026, 3, 29, hours, minutes, *seconds, tzinfo=UTC)
        assert _instant(cron.late_fire(when)) == "29 01:30", at
    assert cron.late_fire(datetime(2026, 3, 29, 0, 59, tzinfo=UTC)) is None  # 01:59 CET
    assert cron.late_fire(datetime(2026, 3, 29, 1, 30, tzinfo=UTC)) is None  # it is due now
    assert cron.late_fire(datetime(2026, 3, 30, 1, 0, 30, tzinfo=UTC)) is None  # a normal day
    # wildcard hours follow real time: 03:30 is one of their own times, nothing is late
    assert Cron("*/30 * * * *", BERLIN).late_fire(datetime(2026, 3, 29, 1, 1, tzinfo=UTC)) is None
    assert (
        _instant(
            Cron("15 2 * * *", ZoneInfo("Australia/Lord_Howe")).late_fire(
                datetime(2026, 10, 3, 15, 31, tzinfo=UTC)  # 02:31 +11, after the 30-minute change
            )
        )
        == "03 15:45"
    )


@pytest.mark.parametrize(
    "expr",
    ["0 0 30 feb *", "0 0 31 apr,jun *", "0 0 31 2-4/2 *", "0 0 30-31 2 *", "0 0 31 4/5 *"],
)
def test_a_day_no_month_of_the_cron_has_is_refused_however_the_months_are_written(
    expr: str,
) -> None:
    # month names, ranges and steps as well as numbers: such a cron would never fire (and
    # looking for its fire times takes seconds: years of calendar are searched)
    with pytest.raises(ValueError, match="never fires"):
        check_cron(expr)


@pytest.mark.parametrize(
    "expr", ["0 0 31 jan-mar *", "0 0 29 feb *", "0 0 31 */2 *", "0 0 30-31 1-2 *", "0 0 30 feb 1"]
)
def test_a_day_one_of_the_months_has_is_accepted(expr: str) -> None:
    assert check_cron(expr) == expr


# every change of the clocks of 2026 in zones with odd offsets and jumps: Lord Howe Island moves
# 30 minutes, Troll (Antarctica) two hours, Chatham and Kathmandu are 45 minutes off the hour
ZONES = (
    "Europe/Berlin",
    "America/New_York",
    "America/St_Johns",
    "Australia/Lord_Howe",
    "Pacific/Chatham",
    "Antarctica/Troll",
    "Asia/Kathmandu",
    "Europe/Dublin",  # winter time is the "daylight saving" one in tzdata (negative DST)
)
EXPRESSIONS = (
    "0,30 2 * * *",
    "15,45 1-3 * * *",
    "0 1,2,3 * * *",
    "*/20 2 * * *",
    "*/30 * * * *",
    "45 * * * *",
    "0,20,40 0-4 * * *",
)


def _field(text: str, high: int) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        span, _, step = item.partition("/")
        low, _, top = span.partition("-")
        first, last = (0, high) if span == "*" else (int(low), int(top or low))
        values.update(range(first, last + 1, int(step or 1)))
    return values


def _reference(expr: str, zone: ZoneInfo, start: datetime, end: datetime) -> list[str]:
    """The fire times in [start, end) by the documented rule, minute by minute of real time: a
    wildcard (minute or hour starting with `*`) fires at every real minute whose local time
    matches; a fixed time fires at the first real minute with its local time, and a local time
    the clocks skipped fires late, at the same time of day read with the offset before the
    change."""
    minute_field, hour_field = expr.split()[:2]
    minutes, hours = _field(minute_field, 59), _field(hour_field, 23)
    wildcard = minute_field.startswith("*") or hour_field.startswith("*")
    found: set[datetime] = set()
    seen: set[datetime] = set()  # local times already passed
    at = start - timedelta(hours=4)
    previous = at.astimezone(zone).replace(tzinfo=None)
    while at < end + timedelta(hours=4):
        local = at.astimezone(zone).replace(tzinfo=None)
        skipped = previous + timedelta(minutes=1)
        while skipped < local:  # clocks went forward: these local times never happened
            if not wildcard and skipped.minute in minutes and skipped.hour in hours:
                found.add(skipped.replace(tzinfo=zone, fold=0).astimezone(UTC))
            skipped += timedelta(minutes=1)
        if local.minute in minutes and local.hour in hours and (wildcard or local not in seen):
            found.add(at)
        seen.add(local)
        previous = local
        at += timedelta(minutes=1)
    return [f"{t:%m-%d %H:%M}" for t in sorted(found) if start <= t < end]


def _changes(zone: ZoneInfo) -> list[datetime]:
    at, changes = datetime(2026, 1, 1, tzinfo=UTC), []
    while at.year == 2026:
        if (
            at.astimezone(zone).utcoffset()
            != (at + timedelta(hours=1)).astimezone(zone).utcoffset()
        ):
            changes.append(at)
        at += timedelta(hours=1)
    return changes


@pytest.mark.parametrize("zone_name", ZONES)
def test_fire_times_across_every_change_of_the_clocks_follow_the_documented_rule(
    zone_name: str,
) -> None:
    """`0,30 2 * * *` on the day Berlin's clocks go forward fires twice (03:00 and 03:30, each
    skipped time late by the jump), not once; a wildcard fires only at real times."""
    zone = ZoneInfo(zone_name)
    changes = _changes(zone)
    assert len(changes) == 2 or zone_name == "Asia/Kathmandu"
    for change in changes or [datetime(2026, 3, 29, tzinfo=UTC)]:
        start, end = change - timedelta(hours=6), change + timedelta(hours=8)
        for expr in EXPRESSIONS:
            cron = Cron(expr, zone)
            got = [f"{t.astimezone(UTC):%m-%d %H:%M}" for t in cron.times(start, end)]
            assert got == _reference(expr, zone, start, end), (zone_name, expr, change)


def test_two_fixed_times_skipped_in_spring_both_fire_late() -> None:
    spring = [
        t.strftime("%H:%M %Z")
        for t in Cron("0,30 2 * * *", BERLIN).times(
            datetime(2026, 3, 28, 12, tzinfo=UTC), datetime(2026, 3, 29, 12, tzinfo=UTC)
        )
    ]
    assert spring == ["03:00 CEST", "03:30 CEST"]
    troll = ZoneInfo("Antarctica/Troll")  # 01:00 UTC+0 becomes 03:00 UTC+2
    late = [
        t.strftime("%H:%M")
        for t in Cron("0,30 1,2 * * *", troll).times(
            datetime(2026, 3, 29, 0, tzinfo=UTC), datetime(2026, 3, 29, 6, tzinfo=UTC)
        )
    ]
    assert late == ["03:00", "03:30", "04:00", "04:30"]
    # a wildcard minute follows real time: the skipped hour has no fire times
    assert (
        list(
            Cron("*/20 2 * * *", BERLIN).times(
                datetime(2026, 3, 29, 0, tzinfo=UTC), datetime(2026, 3, 29, 3, tzinfo=UTC)
            )
        )
        == []
    )


def test_a_crontab_run_right_after_the_change_serves_the_last_late_fire_time() -> None:
    """Cron runs `0,30 2 * * *` right after the change (03:00 CEST, once per skipped time)
    and never at the late times: `--run` then serves the day's last late fire time (03:30;
    a success there serves the earlier ones), so no late run is lost; on Troll the clocks
    jump 2 h (01:00 to 03:00 local): four late times, up to 04:30."""
    cron = Cron("0,30 2 * * *", BERLIN)
    assert _instant(cron.late_fire(datetime(2026, 3, 29, 1, 0, 30, tzinfo=UTC))) == "29 01:30"
    assert cron.late_fire(datetime(2026, 3, 29, 1, 30, tzinfo=UTC)) is None  # due now
    troll = Cron("0,30 1,2 * * *", ZoneInfo("Antarctica/Troll"))
    after = datetime(2026, 3, 29, 1, 0, 30, tzinfo=UTC)  # 03:00:30 UTC+2
    assert _instant(troll.late_fire(after)) == "29 02:30"  # 04:30 local
    assert _instant(troll.late_fire(datetime(2026, 3, 29, 2, 10, tzinfo=UTC))) == "29 02:30"
    assert troll.late_fire(datetime(2026, 3, 29, 2, 31, tzinfo=UTC)) is None  # all served
    # a late time that is also one of the cron's own (03:30 for `30 2,3 * * *`) is not late:
    # cron runs that line at 03:30 itself
    assert Cron("30 2,3 * * *", BERLIN).late_fire(after) is None


@pytest.mark.parametrize(
    ("zone", "message"),
    [
        (
            "localtime",  # /etc/localtime: Europe/Berlin here, UTC on a CI runner or a worker
            "'localtime' is this machine's own time zone, which another machine (a worker, a CI "
            "runner, a server) reads as its own; name the zone, e.g. Europe/Berlin",
        ),
        (
            "right/UTC",
            "'right/UTC': write 'UTC' (tzdata's right/ copies are not read the same by cron, "
            "systemd and GitHub)",
        ),
        (
            "posix/Europe/Berlin",
            "'posix/Europe/Berlin': write 'Europe/Berlin' (tzdata's posix/ copies are not read "
            "the same by cron, systemd and GitHub)",
        ),
        ("Mars/Olympus", "unknown time zone 'Mars/Olympus'; use an IANA name like Europe/Berlin"),
    ],
)
def test_a_time_zone_every_machine_reads_the_same_is_asked_for(
    tmp_path: Path, zone: str, message: str
) -> None:
    from kpi_collector.config import load_config
    from kpi_collector.config.cron import check_zone
    from kpi_collector.errors import ConfigError

    with pytest.raises(ValueError) as caught:
        check_zone(zone)
    assert str(caught.value) == message
    (tmp_path / "kpi.yaml").write_text(
        f'timezone: "{zone}"\nsources:\n  - {{name: a, type: python, function: "math:floor"}}\n',
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path / "kpi.yaml")
    assert message in str(refused.value)


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires"])
def test_iana_zones_are_taken(zone: str) -> None:
    from kpi_collector.config.cron import check_zone

    assert check_zone(zone) == zone
