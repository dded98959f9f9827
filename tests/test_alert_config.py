"""`alerts:` checked against the rest of the config at load: each problem is one line naming
the file, the line of the key at fault (counted by hand in the texts below), and the fix."""

from __future__ import annotations

import pytest

from kpi_collector.config import parse_config
from kpi_collector.errors import ConfigError

BASE = """\
sources:
  - name: web
    type: http_json
    url: http://127.0.0.1:1/x
    metrics: {k: a}
  - name: open
    type: python
    function: os:getpid
destinations:
  - {type: csv, name: sheet, path: out.csv}
  - {type: webhook, name: chat, url: "http://127.0.0.1:1/hook"}
alerts:
"""  # the first alert starts on line 13


def problem(alerts: str, base: str = BASE) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(base + alerts)
    return str(caught.value)


def test_an_unknown_kpi() -> None:
    assert problem("  - below: 1\n    kpi: web.nope\n") == (
        "kpi.yaml:14: alerts[0].kpi: 'web.nope' is not a KPI id of this config; KPI ids: web.k"
    )


def test_any_id_of_a_source_whose_metrics_are_known_at_run_time_is_accepted() -> None:
    config = parse_config(BASE + "  - below: 1\n    kpi: open.x.y\n")
    assert config.settings.alerts[0].kpi == "open.x.y"


def test_an_unknown_source() -> None:
    assert problem("  - failing_runs: 2\n    source: ghost\n") == (
        "kpi.yaml:14: alerts[0].source: no source named 'ghost'; sources: open, web"
    )


def test_an_unknown_destination() -> None:
    assert problem("  - pending_runs: 2\n    destination: nowhere\n") == (
        "kpi.yaml:14: alerts[0].destination: no destination named 'nowhere'; "
        "destinations: chat, sheet"
    )


def test_notify_names_unknown_and_textless_destinations() -> None:
    alert = "  - kpi: web.k\n    below: 1\n    notify:\n      - chat\n      - x\n"
    assert problem(alert) == (
        "kpi.yaml:17: alerts[0].notify: no destination named 'x'; destinations: chat, sheet"
    )
    alert = "  - kpi: web.k\n    below: 1\n    notify:\n      - chat\n      - sheet\n"
    assert problem(alert) == (
        "kpi.yaml:17: alerts[0].notify: destination 'sheet' (type csv) cannot send alerts; "
        "notify a message destination: chat"
    )


def test_without_any_message_destination_there_is_none_to_name() -> None:
    base = BASE.replace('  - {type: webhook, name: chat, url: "http://127.0.0.1:1/hook"}\n', "")
    alert = "  - kpi: web.k\n    below: 1\n    notify:\n      - sheet\n"
    assert problem(alert, base) == (
        "kpi.yaml:15: alerts[0].notify: destination 'sheet' (type csv) cannot send alerts; "
        "notify a message destination"
    )


def test_an_alert_cannot_notify_the_destination_it_watches() -> None:
    alert = "  - pending_runs: 2\n    destination: chat\n    notify: [chat]\n"
    assert problem(alert) == (
        "kpi.yaml:15: alerts[0].notify: 'chat' is the destination this alert watches: while its "
        "deliveries fail it cannot carry the alert either; notify another destination"
    )


def test_the_same_alert_twice() -> None:
    alerts = "  - kpi: web.k\n    below: 1\n  - kpi: web.k\n    below: 1\n"
    assert problem(alerts) == (
        "kpi.yaml:15: alerts[1]: the same alert as alerts[0] ('web.k below 1'); "
        "remove one or give each its own `name:`"
    )


def _with_metrics(count: int) -> str:
    metrics = ", ".join(f"k{i:02d}: a" for i in range(1, count + 1))
    return BASE.replace("metrics: {k: a}", f"metrics: {{{metrics}}}")


def test_long_lists_show_twelve_names() -> None:
    twelve = ", ".join(f"web.k{i:02d}" for i in range(1, 13))
    assert problem("  - below: 1\n    kpi: web.nope\n", _with_metrics(12)).endswith(
        f"KPI ids: {twelve}"
    )
    assert problem("  - below: 1\n    kpi: web.nope\n", _with_metrics(13)).endswith(
        f"KPI ids: {twelve}, ... (13 in all)"
    )


def test_no_destinations_at_all() -> None:
    base = BASE.split("destinations:")[0] + "alerts:\n"
    assert problem("  - pending_runs: 2\n    destination: x\n", base) == (
        "kpi.yaml:11: alerts[0].destination: no destination named 'x'; there are no destinations"
    )


@pytest.mark.parametrize(
    ("first", "second", "keys"),
    [
        # the rule wrote thresholds with 6 digits (`:g`): 1000001 and 1000002 were both
        # 'web.k above 1e+06', refused as the same alert, and messages named 1e+06
        ("above: 1000001", "above: 1000002", ["web.k above 1000001", "web.k above 1000002"]),
        (
            "below: 0.1234567",
            "below: 0.1234568",
            ["web.k below 0.1234567", "web.k below 0.1234568"],
        ),
        (
            "change: {days: 7, below: -12.345678%}",
            "change: {days: 7, below: -12.345679%}",
            [
                "web.k change over 7 days below -12.345678%",
                "web.k change over 7 days below -12.345679%",
            ],
        ),
        (
            "stale_days: 1.0000001",
            "stale_days: 1.0000002",
            ["web.k not updated for 1.0000001 days", "web.k not updated for 1.0000002 days"],
        ),
    ],
)
def test_alerts_that_differ_past_six_digits_are_two_alerts(
    first: str, second: str, keys: list[str]
) -> None:
    config = parse_config(BASE + f"  - {{kpi: web.k, {first}}}\n  - {{kpi: web.k, {second}}}\n")
    assert [alert.key for alert in config.settings.alerts] == keys


@pytest.mark.parametrize(
    ("rule", "key"),
    [
        # the keys stored alert states (and silences) have stay as they were
        ("below: 100", "web.k below 100"),
        ("above: 1000000", "web.k above 1e+06"),
        ("below: 0.5", "web.k below 0.5"),
        ("change: {days: 7, below: -20%}", "web.k change over 7 days below -20%"),
        ("change: {days: 1, above: 50}", "web.k change over 1 days above +50%"),
        ("stale_days: 2", "web.k not updated for 2 days"),
    ],
)
def test_the_keys_of_round_thresholds_are_unchanged(rule: str, key: str) -> None:
    config = parse_config(BASE + f"  - {{kpi: web.k, {rule}}}\n")
    assert config.settings.alerts[0].key == key


@pytest.mark.parametrize("days", ["800000", "100000000000000000000"])
def test_a_change_over_more_days_than_the_calendar_has_is_a_config_error(days: str) -> None:
    """`change: {days: 800000}` (before year 1) raised OverflowError ('date value out of
    range', or 'Python int too large to convert to C int') at every run's alert check."""
    assert problem(f"  - {{kpi: web.k, change: {{days: {days}, below: -20%}}}}\n") == (
        f"kpi.yaml:13: alerts.0.change.days: {days} is too large; it must be at most 36500"
    )
    config = parse_config(BASE + "  - {kpi: web.k, change: {days: 36500, below: -20%}}\n")
    assert config.settings.alerts[0].change is not None


def test_an_alert_key_longer_than_the_store_keeps_is_a_config_error() -> None:
    """A `name:` of 300 characters (or 60 on a rule over every source, whose rows add a
    subject) was accepted, then PostgreSQL and MariaDB refused its state row ('value too
    long for type character varying(255)') at every run's alert check."""
    assert problem(f"  - {{name: {'x' * 300}, kpi: web.k, below: 1}}\n") == (
        "kpi.yaml:13: alerts[0]: its `name:` is 300 characters, longer than the store keeps "
        "(at most 255); give it a shorter `name:`"
    )
    assert problem(f"  - {{name: {'x' * 60}, failing_runs: 2}}\n") == (
        "kpi.yaml:13: alerts[0]: its `name:` is 60 characters, longer than the store keeps "
        "(at most 52 with a subject of each source, KPI or destination); give it a shorter "
        "`name:`"
    )
    assert parse_config(BASE + f"  - {{name: {'x' * 255}, kpi: web.k, below: 1}}\n")
    assert parse_config(BASE + f"  - {{name: {'x' * 52}, stale_days: 2}}\n")
    assert parse_config(BASE + f"  - {{name: {'x' * 255}, kpi: web.k, stale_days: 2}}\n")
