"""Cron expressions mean what they mean in crontab, in the config's time zone, across DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from kpi_collector.config import parse_config
from kpi_collector.config.cron import Cron
from kpi_collector.errors import ConfigError

BERLIN = ZoneInfo("Europe/Berlin")


def fires(expr: str, start: datetime, count: int, tz: ZoneInfo | str = BERLIN) -> list[datetime]:
    cron = Cron(expr, tz)
    out, at = [], start
    for _ in range(count):
        found = cron.next_after(at)
        assert found is not None
        out.append(found)
        at = found
    return out


def local(found: list[datetime], fmt: str = "%a %d %H:%M") -> list[str]:
    return [f.astimezone(BERLIN).strftime(fmt) for f in found]


def test_daily_at_seven_stays_at_seven_local_across_both_dst_changes() -> None:
    spring = fires("0 7 * * *", datetime(2026, 3, 27, 12, tzinfo=BERLIN), 3)
    assert local(spring) == ["Sat 28 07:00", "Sun 29 07:00", "Mon 30 07:00"]
    assert [f.astimezone(UTC).hour for f in spring] == [6, 5, 5]  # CET, then CEST
    autumn = fires("0 7 * * *", datetime(2026, 10, 24, 12, tzinfo=BERLIN), 2)
    assert [f.astimezone(UTC).hour for f in autumn] == [6, 6]  # Sun 25 07:00 CET is 06:00 UTC
    assert local(autumn) == ["Sun 25 07:00", "Mon 26 07:00"]


def test_a_fixed_time_in_the_repeated_autumn_hour_fires_once() -> None:
    found = fires("30 2 * * *", datetime(2026, 10, 24, 12, tzinfo=BERLIN), 3)
    assert [f.astimezone(UTC).strftime("%d %H:%M") for f in found] == [
        "25 00:30",  # 02:30 CEST, the first of the two 02:30s
        "26 01:30",
        "27 01:30",
    ]


def test_a_fixed_time_skipped_in_spring_fires_once_an_hour_late() -> None:
    found = fires("30 2 * * *", datetime(2026, 3, 28, 12, tzinfo=BERLIN), 2)
    assert local(found) == ["Sun 29 03:30", "Mon 30 02:30"]


def test_wildcard_hours_follow_real_time_through_dst() -> None:
    autumn = fires("*/30 * * * *", datetime(2026, 10, 25, 1, 45, tzinfo=BERLIN), 6)
    assert [f.astimezone(UTC).strftime("%H:%M") for f in autumn] == [
        "00:00",
        "00:30",
        "01:00",
        "01:30",
        "02:00",
        "02:30",
    ]  # 02:00 and 02:30 local, twice each: every half hour of real time
    spring = fires("*/30 * * * *", datetime(2026, 3, 29, 1, 15, tzinfo=BERLIN), 3)
    assert local(spring, "%H:%M") == ["01:30", "03:00", "03:30"]  # 02:xx does not exist


def test_days_of_week_count_from_sunday_like_crontab() -> None:
    start = datetime(2026, 11, 24, 12, tzinfo=BERLIN)  # a Tuesday
    assert local(fires("0 9 * * 1", start, 2), "%a %d") == ["Mon 30", "Mon 07"]
    assert local(fires("0 9 * * 0", start, 1), "%a") == ["Sun"]
    assert local(fires("0 9 * * 7", start, 1), "%a") == ["Sun"]
    assert local(fires("0 9 * * fri-sun", start, 4), "%a") == ["Fri", "Sat", "Sun", "Fri"]
    assert local(fires("0 9 * * 5-7", start, 3), "%a") == ["Fri", "Sat", "Sun"]
    assert local(fires("0 9 * * 1-5/2", start, 3), "%a") == ["Wed", "Fri", "Mon"]
    assert local(fires("0 9 * * */3", start, 3), "%a") == ["Wed", "Sat", "Sun"]


def test_day_of_month_or_day_of_week_when_both_are_given() -> None:
    found = fires("0 0 13 * 5", datetime(2026, 11, 1, tzinfo=BERLIN), 6)
    assert local(found, "%a %d") == ["Fri 06", "Fri 13", "Fri 20", "Fri 27", "Fri 04", "Fri 11"]
    found = fires("0 0 1 * mon", datetime(2026, 11, 29, tzinfo=BERLIN), 3)
    assert local(found, "%a %d") == ["Mon 30", "Tue 01", "Mon 07"]
    # a restricted day of month with a "*" day of week is just the day of month
    assert local(fires("0 0 1 * *", datetime(2026, 11, 29, tzinfo=BERLIN), 1), "%d") == ["01"]


def test_macros_and_other_zones() -> None:
    start = datetime(2026, 11, 24, 12, tzinfo=UTC)
    assert fires("@weekly", start, 1, "UTC")[0] == datetime(2026, 11, 29, tzinfo=UTC)
    assert fires("@hourly", start, 1, "UTC")[0] == datetime(2026, 11, 24, 13, tzinfo=UTC)
    assert fires("@monthly", start, 1, "UTC")[0] == datetime(2026, 12, 1, tzinfo=UTC)
    kolkata = fires("0 7 * * *", start, 1, ZoneInfo("Asia/Kolkata"))[0]
    assert kolkata.astimezone(UTC) == datetime(2026, 11, 25, 1, 30, tzinfo=UTC)


def test_previous_fire_time() -> None:
    cron = Cron("0 7 * * *", BERLIN)
    at_seven = datetime(2026, 11, 29, 7, tzinfo=BERLIN)
    assert cron.previous(at_seven) == at_seven
    assert cron.previous(at_seven - timedelta(seconds=1)) == at_seven - timedelta(days=1)
    assert Cron("* * * * *").previous(datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)) == datetime(
        2026, 1, 1, tzinfo=UTC
    )
    # a rare cron looks back far enough: Feb 29 or a Monday
    assert Cron("0 0 29 2 *").previous(datetime(2026, 11, 29, tzinfo=UTC)) == datetime(
        2024, 2, 29, tzinfo=UTC
    )
    assert list(cron.times(at_seven, at_seven + timedelta(days=2))) == [
        at_seven,
        at_seven + timedelta(days=1),
    ]


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        ("0 7 * *", "expected 5 fields"),
        ("61 * * * *", "higher than the maximum"),
        ("0 7 * * 8", "not a day"),
        ("0 7 * * sun-mon-", "not a day"),
        ("0 25 * * *", "higher than the maximum"),
        ("@reboot", "unknown cron macro"),
    ],
)
def test_bad_expressions_are_refused_with_a_reason(expr: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Cron(expr)


def test_bad_schedules_are_config_errors_with_the_line(tmp_path: Path) -> None:
    text = (
        "schedule: '0 7 * * *'\n"
        "sources:\n"
        "  - name: c\n"
        "    type: command\n"
        "    command: [echo, '1']\n"
        "    schedule: '0 */2 * *'\n"
    )
    with pytest.raises(ConfigError, match=r"kpi.yaml:6: source 'c': schedule: .*expected 5 fields"):
        parse_config(text, path=tmp_path / "kpi.yaml", env={})
    with pytest.raises(ConfigError, match=r"kpi.yaml:1: schedule: .*not a day"):
        parse_config("schedule: '0 7 * * 9'\n", path=tmp_path / "kpi.yaml", env={})
    bad_destination = "destinations:\n  - {type: csv, path: k.csv, schedule: 'every monday'}\n"
    with pytest.raises(ConfigError, match=r"kpi.yaml:2: destination 'csv': schedule:"):
        parse_config(bad_destination, path=tmp_path / "kpi.yaml", env={})
    config = parse_config(
        "timezone: Europe/Berlin\nschedule: '@daily'\n", path=tmp_path / "kpi.yaml", env={}
    )
    assert config.settings.schedule == "@daily"


def test_l_is_the_last_day_of_each_month() -> None:
    from kpi_collector.config.cron import Cron

    cron = Cron("30 23 L * *", "Europe/Berlin")
    start = datetime(2026, 1, 1, tzinfo=ZoneInfo("Europe/Berlin"))
    fires = list(cron.times(start, start.replace(year=2027)))
    assert [f.day for f in fires] == [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    assert all((f.hour, f.minute) == (23, 30) for f in fires)
    both = Cron("0 7 15,L * *", "UTC")
    assert both.next_after(datetime(2028, 2, 16, tzinfo=ZoneInfo("UTC"))).day == 29  # leap year
