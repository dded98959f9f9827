"""Alert rules at their boundaries, on a real SQLite store, with expected answers worked out by
hand: `below: 100` is false at exactly 100; a -25% change rule is false at exactly -25%
(100 -> 75); `stale_days: 2` is false at exactly 2 days; a KPI never stored is stale once the
store's first run is older than the limit; and the time an alert started and the transitions
`check_alerts` returns are asserted from the store's rows."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

import pytest

from kpi_collector.alerts.engine import AlertScope, check_alerts, evaluate
from kpi_collector.config.models import Alert
from kpi_collector.store import HistoryStore
from kpi_collector.store.alert_states import OWN, alert_states
from kpi_collector.store.history import RunError

DAY = 86400.0
NOW = 1_800_000_000.0  # 2027-01-15 08:00 UTC
SCOPE = AlertScope(sources=[], kpis={}, tz=ZoneInfo("UTC"), destinations=[])


@pytest.fixture
def store(tmp_path: Path) -> HistoryStore:
    return HistoryStore(f"sqlite:///{tmp_path / 'kpi.db'}")


def put(store: HistoryStore, ts: float, value: float, kpi: str = "s.k") -> None:
    run = store.begin_run(started_at=ts)
    source = kpi.partition(".")[0]
    store.finish_run(run, observations=[(kpi, ts, value, source)], finished_at=ts)


def fail(store: HistoryStore, ts: float, source: str = "s") -> None:
    run = store.begin_run(started_at=ts)
    store.finish_run(
        run, observations=[], errors=[RunError(source, None, "boom", False)], finished_at=ts
    )


def active(store: HistoryStore, alert: Alert, now: float = NOW) -> list[bool | None]:
    return [f.active for _, f in evaluate(SCOPE, store, [alert], now=now)]


@pytest.mark.parametrize(
    ("value", "expected"), [(100.0, False), (99.99, True), (100.01, False), (0.0, True)]
)
def test_below_is_strict(store: HistoryStore, value: float, expected: bool) -> None:
    put(store, NOW - 60, value)
    assert active(store, Alert(kpi="s.k", below=100)) == [expected]


@pytest.mark.parametrize(("value", "expected"), [(100.0, False), (100.01, True), (99.99, False)])
def test_above_is_strict(store: HistoryStore, value: float, expected: bool) -> None:
    put(store, NOW - 60, value)
    assert active(store, Alert(kpi="s.k", above=100)) == [expected]


def test_a_threshold_without_a_value_is_unknown(store: HistoryStore) -> None:
    assert active(store, Alert(kpi="s.k", below=100)) == [None]


def test_hysteresis_holds_until_the_resolve_value(store: HistoryStore) -> None:
    alert = Alert(kpi="s.k", below=100, resolve_above=120)
    put(store, NOW - 3 * 60, 90.0)
    assert asyncio.run(check_alerts(store, [alert], SCOPE, now=NOW - 2 * 60))[0].active
    put(store, NOW - 60, 119.0)  # above `below`, not yet at `resolve_above`: still true
    (finding,) = evaluate(SCOPE, store, [alert], now=NOW)
    assert finding[1].active is True
    assert finding[1].detail == "s.k is 119, below 100 (resolves at 120)"
    put(store, NOW, 120.0)  # at the resolve value exactly: resolved ("until it reaches")
    assert active(store, alert) == [False]


@pytest.mark.parametrize(
    ("now_value", "rule", "expected"),
    [
        (75.0, {"below": "-25%"}, False),  # exactly -25%: not below
        (74.0, {"below": "-25%"}, True),
        (125.0, {"above": "25%"}, False),  # exactly +25%: not above
        (126.0, {"above": "25%"}, True),
        (100.0, {"below": "-25%", "above": "25%"}, False),
    ],
)
def test_change_is_strict(
    store: HistoryStore, now_value: float, rule: dict[str, str], expected: bool
) -> None:
    put(store, NOW - 7 * DAY, 100.0)
    put(store, NOW, now_value)
    alert = Alert(kpi="s.k", change={"days": 7, **rule})  # type: ignore[arg-type]
    assert active(store, alert) == [expected]


def test_change_names_the_real_span_and_the_values(store: HistoryStore) -> None:
    put(store, NOW - 9 * DAY, 200.0)
    put(store, NOW, 150.0)  # 200 -> 150: -25.0%, over 9 days where 7 were asked
    (pair,) = evaluate(
        SCOPE, store, [Alert(kpi="s.k", change={"days": 7, "below": "-20%"})], now=NOW
    )  # type: ignore[arg-type]
    assert pair[1].active is True
    assert pair[1].detail == "s.k changed -25.0% in 9 days (asked: 7) (200 → 150)"


def test_change_without_a_baseline_is_unknown(store: HistoryStore) -> None:
    put(store, NOW - 6 * DAY, 100.0)  # not 7 days old yet
    put(store, NOW, 10.0)
    alert = Alert(kpi="s.k", change={"days": 7, "below": "-20%"})  # type: ignore[arg-type]
    assert active(store, alert) == [None]


@pytest.mark.parametrize(
    ("age", "expected"), [(2 * DAY, False), (2 * DAY + 1, True), (2 * DAY - 1, False)]
)
def test_stale_is_strict(store: HistoryStore, age: float, expected: bool) -> None:
    put(store, NOW - age, 1.0)
    assert active(store, Alert(kpi="s.k", stale_days=2)) == [expected]


@pytest.mark.parametrize(
    ("first_run_age", "expected"), [(2 * DAY, False), (2 * DAY + 1, True), (DAY, False)]
)
def test_a_kpi_never_stored_is_stale_once_the_store_is_old_enough(
    store: HistoryStore, first_run_age: float, expected: bool
) -> None:
    put(store, NOW - first_run_age, 1.0, kpi="other.k")  # the store's first run
    (pair,) = evaluate(SCOPE, store, [Alert(kpi="s.k", stale_days=2)], now=NOW)
    assert (pair[1].active, pair[1].detail) == (expected, "s.k has no value yet")


def test_a_kpi_never_stored_in_an_empty_store_is_unknown(store: HistoryStore) -> None:
    assert active(store, Alert(kpi="s.k", stale_days=2)) == [None]


@pytest.mark.parametrize(("failures", "expected"), [(2, False), (3, True), (4, True)])
def test_failing_runs_fires_at_the_count(
    store: HistoryStore, failures: int, expected: bool
) -> None:
    put(store, NOW - DAY, 1.0)
    for i in range(failures):
        fail(store, NOW - 60 * (failures - i))
    assert active(store, Alert(source="s", failing_runs=3)) == [expected]


def test_transitions_and_since_come_from_the_checks(store: HistoryStore) -> None:
    alert = Alert(kpi="s.k", below=100)
    key = "s.k below 100"
    put(store, NOW - 3 * DAY, 150.0)
    assert asyncio.run(check_alerts(store, [alert], SCOPE, now=NOW - 3 * DAY)) == []
    put(store, NOW - 2 * DAY, 90.0)
    (fired,) = asyncio.run(check_alerts(store, [alert], SCOPE, now=NOW - 2 * DAY))
    assert (fired.key, fired.active, fired.pending) == (key, True, False)
    assert fired.text == "🚨 Alert: s.k below 100 — s.k is 90, below 100"
    put(store, NOW - DAY, 80.0)  # still true: no transition, the start stays
    assert asyncio.run(check_alerts(store, [alert], SCOPE, now=NOW - DAY)) == []
    (own,) = [s for s in alert_states(store) if s.destination == OWN]
    assert (own.alert, own.active, own.since) == (key, True, NOW - 2 * DAY)
    put(store, NOW, 100.0)
    (resolved,) = asyncio.run(check_alerts(store, [alert], SCOPE, now=NOW))
    assert (resolved.active, resolved.text) == (False, "✅ Resolved: s.k below 100 — s.k is 100")
    (own,) = [s for s in alert_states(store) if s.destination == OWN]
    assert (own.active, own.since) == (False, NOW)


def test_an_alert_for_a_destination_that_cannot_carry_it_records_why(
    store: HistoryStore, tmp_path: Path
) -> None:
    """`notify` names a destination that is not enabled (gone from the scope) and one that
    cannot send text (a CSV file): the alert still fires, nobody is marked as told, and
    the run's delivery errors say why for each; the next check tries again."""
    from datetime import UTC, datetime

    from kpi_collector.destinations import CSV
    from kpi_collector.run.result import RunResult

    csv = CSV(path=str(tmp_path / "out.csv"), name="sheet")
    scope = AlertScope(sources=[], kpis={}, tz=ZoneInfo("UTC"), destinations=[csv])
    alert = Alert(kpi="s.k", below=100, notify=["gone", "sheet"])
    put(store, NOW - 60, 50.0)
    started = datetime.fromtimestamp(NOW, UTC)
    result = RunResult(run_id=1, started_at=started, finished_at=started)
    (fired,) = asyncio.run(check_alerts(store, [alert], scope, result))
    assert fired.active and fired.sent == []
    assert fired.errors == {
        "gone": "no enabled destination named 'gone'",
        "sheet": "destination 'sheet' (type csv) cannot send text messages",
    }
    assert result.delivery_errors == {
        "gone (alerts)": "s.k below 100: no enabled destination named 'gone'",
        "sheet (alerts)": "s.k below 100: destination 'sheet' (type csv) cannot send text messages",
    }
    assert [s.destination for s in alert_states(store)] == [OWN]  # no one was told
    (again,) = asyncio.run(check_alerts(store, [alert], scope, now=NOW + 60))
    assert sorted(again.errors) == ["gone", "sheet"]


def test_a_source_with_no_run_history_is_unknown_not_failing(store: HistoryStore) -> None:
    """`failing_runs` for a source that never ran (another source's runs are stored): no
    finding either way, and nothing fires or is recorded."""
    put(store, NOW - 60, 1.0, kpi="other.k")  # a run of another source
    fail(store, NOW - 30, source="other")
    assert active(store, Alert(source="s", failing_runs=1)) == [None]
    assert (
        asyncio.run(check_alerts(store, [Alert(source="s", failing_runs=1)], SCOPE, now=NOW)) == []
    )
    assert alert_states(store) == []
    assert active(store, Alert(source="other", failing_runs=1)) == [True]


# --- what the rules look at and say (mutants `make mutate` showed alive) -----------------------

CONFIG = """
sources:
  - {name: s, type: http_json, url: "http://127.0.0.1:1/", metrics: {a: x, b: y}}
  - {name: t, type: http_json, url: "http://127.0.0.1:1/", metrics: {c: x}}
  - {name: u, type: http_json, url: "http://127.0.0.1:1/", metrics: {d: x}, enabled: false}
  - {name: o, type: python, function: "os:getpid"}
kpis:
  f.x: {formula: "s.a + 1"}
  s.a: {title: Revenue, unit: USD}
"""


def _scope(tz: str = "UTC") -> AlertScope:
    from kpi_collector.config import parse_config

    config = parse_config(CONFIG)
    return AlertScope(sources=config.sources, kpis=config.kpis, tz=ZoneInfo(tz), destinations=[])


def test_messages_use_the_kpi_title_and_unit(store: HistoryStore) -> None:
    put(store, NOW - 60, 90.0, kpi="s.a")
    alert = Alert(kpi="s.a", below=100, resolve_above=120)
    (pair,) = evaluate(_scope(), store, [alert], now=NOW)
    assert pair[1].detail == "Revenue is $90, below $100"
    above = Alert(kpi="s.a", above=50, resolve_below=40)
    asyncio.run(check_alerts(store, [above], _scope(), now=NOW))
    put(store, NOW, 45.0, kpi="s.a")  # under `above`, not yet at `resolve_below`: still true
    (pair,) = evaluate(_scope(), store, [above], now=NOW + 1)
    assert (pair[1].active, pair[1].detail) == (True, "Revenue is $45, above $50 (resolves at $40)")
    put(store, NOW + 2, 40.0, kpi="s.a")
    (pair,) = evaluate(_scope(), store, [above], now=NOW + 3)
    assert (pair[1].active, pair[1].detail) == (False, "Revenue is $40")


def test_unknown_findings_keep_their_key(store: HistoryStore) -> None:
    alerts = [
        Alert(kpi="s.a", below=1),
        Alert(kpi="s.a", change={"days": 7, "below": "-20%"}),  # type: ignore[arg-type]
        Alert(source="s", failing_runs=2),
    ]
    found = evaluate(_scope(), store, alerts, now=NOW)
    assert [(f.key, f.active) for _, f in found] == [
        ("s.a below 1", None),
        ("s.a change over 7 days below -20%", None),
        ("source s failing 2 runs in a row", None),
    ]


@pytest.mark.parametrize(
    ("now_value", "rule", "expected", "moved"),
    [
        # no percentage against zero: a rise is past any `above`, a fall past any `below`
        (5.0, {"above": "10%"}, True, "rose from zero"),
        (0.001, {"above": "1000000%"}, True, "rose from zero"),
        (5.0, {"below": "-20%"}, False, "rose from zero"),
        (-3.0, {"below": "-20%"}, True, "fell from zero"),
        (-3.0, {"above": "10%"}, False, "fell from zero"),
        (0.0, {"above": "10%"}, False, "changed 0.0%"),  # 0 → 0: no change
        (0.0, {"below": "-10%", "above": "10%"}, False, "changed 0.0%"),
    ],
)
def test_a_change_from_zero_fires_for_any_move_away_from_it(
    store: HistoryStore, now_value: float, rule: dict[str, str], expected: bool, moved: str
) -> None:
    """A KPI that was 0 a week ago (a new product's signups) and is 50 now changed by an
    infinite percentage: the alert on `above: 10%` must fire, not stay unknown for ever."""
    put(store, NOW - 7 * DAY, 0.0)
    put(store, NOW, now_value)
    alert = Alert(kpi="s.k", change={"days": 7, **rule})  # type: ignore[arg-type]
    (pair,) = evaluate(SCOPE, store, [alert], now=NOW)
    assert pair[1].active is expected
    assert pair[1].detail.startswith(f"s.k {moved} in 7 days (0 → ")


def test_a_change_from_zero_is_told_once_and_resolves(store: HistoryStore) -> None:
    alert = Alert(kpi="s.k", change={"days": 7, "above": "50%"})  # type: ignore[arg-type]
    put(store, NOW - 7 * DAY, 0.0)
    put(store, NOW, 50.0)
    (fired,) = asyncio.run(check_alerts(store, [alert], SCOPE, now=NOW))
    assert fired.active and fired.text.endswith("s.k rose from zero in 7 days (0 → 50)")
    put(store, NOW + DAY - 7 * DAY + 60, 40.0)  # the new baseline a week before the next day
    put(store, NOW + DAY, 50.0)  # +25%: below the rule, resolved
    (resolved,) = asyncio.run(check_alerts(store, [alert], SCOPE, now=NOW + DAY))
    assert not resolved.active


@pytest.mark.parametrize(
    ("age_days", "days"),
    [(7.0, "7 days"), (7.49, "7 days"), (7.5, "8 days (asked: 7)"), (8.0, "8 days (asked: 7)")],
)
def test_a_change_says_the_real_span_from_half_a_day_more(
    store: HistoryStore, age_days: float, days: str
) -> None:
    put(store, NOW - age_days * DAY, 100.0)
    put(store, NOW, 50.0)
    alert = Alert(kpi="s.k", change={"days": 7, "below": "-20%"})  # type: ignore[arg-type]
    (pair,) = evaluate(SCOPE, store, [alert], now=NOW)
    assert pair[1].detail == f"s.k changed -50.0% in {days} (100 → 50)"


def test_stale_watches_a_source_or_every_enabled_kpi(store: HistoryStore) -> None:
    put(store, NOW - 5 * DAY, 1.0, kpi="s.b")  # s.a never stored, s.b stale
    put(store, NOW - 60, 1.0, kpi="o.anything")  # a python source's KPI, known when stored
    scope = _scope("Europe/Berlin")
    by_source = evaluate(scope, store, [Alert(source="s", stale_days=2)], now=NOW)
    assert [(f.key, f.active, f.detail) for _, f in by_source] == [
        ("s.* not updated for 2 days [s.a]", True, "Revenue has no value yet"),
        # with its zone: was "2027-01-10 09:00", which a team elsewhere reads as its own time
        ("s.* not updated for 2 days [s.b]", True, "s.b was last updated 2027-01-10 09:00 CET"),
    ]
    everything = evaluate(scope, store, [Alert(stale_days=2)], now=NOW)
    assert [f.key.split("[")[1] for _, f in everything] == [
        "s.a]",
        "s.b]",
        "t.c]",
        "f.x]",
        "o.anything]",
    ]


def test_message_texts() -> None:
    from kpi_collector.alerts.engine import Finding, message

    assert message(Finding("k", True), True) == "🚨 Alert: k"
    assert message(Finding("k", False), False) == "✅ Resolved: k"
    assert message(Finding("k", True, "d"), True, reminder=True) == "🔁 Still firing: k — d"
    assert message(Finding("k", True, "d"), True) == "🚨 Alert: k — d"


def test_send_test_says_why_each_destination_failed(tmp_path: Path) -> None:

    from kpi_collector.alerts.engine import TEST_MESSAGE, send_test
    from kpi_collector.destinations import CSV
    from kpi_collector.destinations.base import Delivery, Destination

    sent: list[str] = []

    class Broken(Destination):
        type: ClassVar[str] = "broken"

        async def deliver(self, delivery: Delivery) -> None:
            raise NotImplementedError

        async def send_text(self, text: str) -> None:
            raise RuntimeError("boom at https://h/x?token=abc123")

    class Good(Broken):
        type: ClassVar[str] = "good"

        async def send_text(self, text: str) -> None:
            sent.append(text)

    errors = asyncio.run(
        send_test(
            [CSV(path=str(tmp_path / "o.csv"), name="sheet"), Broken(name="b"), Good(name="g")]
        )
    )
    assert errors == {
        "sheet": "destination 'sheet' (type csv) cannot send text messages",
        "b": "RuntimeError: boom at https://h/x?token=***",
    }
    assert sent == [TEST_MESSAGE]


def test_pending_deliveries_by_runs_and_by_time(store: HistoryStore, tmp_path: Path) -> None:
    """Two runs whose CSV delivery cannot be written (its folder is a file): pending for 2
    runs, with the error; by time, the age is told in hours below two days and in days
    from there (30.2 h -> "30 h", 2.6 days -> "3 days"); the finding is about `sheet`."""
    import time
    from datetime import UTC, datetime

    from kpi_collector.deliver.engine import DeliveryEngine
    from kpi_collector.destinations import CSV

    (tmp_path / "file").write_text("not a folder")
    sheet = CSV(path=str(tmp_path / "file" / "o.csv"), name="sheet", every="run", retries=0)
    engine = DeliveryEngine(store, [sheet], base_dir=tmp_path, backoff=0)
    for n in range(2):
        ts = float(int(time.time()) - 10 + n)  # whole seconds: exact as a datetime too
        run = store.begin_run(started_at=ts)
        store.finish_run(run, observations=[("s.k", ts, 1.0, "s")], finished_at=ts)
        engine.record_run(run, datetime.fromtimestamp(ts, UTC))
    asyncio.run(engine.deliver_pending())
    scope = AlertScope(sources=[], kpis={}, tz=ZoneInfo("UTC"), destinations=[sheet])
    error = (
        f"cannot write {tmp_path / 'file' / 'o.csv'}: File exists (after 1 attempt; stays pending)"
    )

    def found(alert: Alert, later: float) -> list[tuple[str, bool | None, str, str | None]]:
        pairs = evaluate(scope, store, [alert], now=time.time() + later)
        return [(f.key, f.active, f.detail, f.about) for _, f in pairs]

    assert found(Alert(destination="sheet", pending_runs=2), 0) == [
        (
            "delivery to sheet pending for 2 runs",
            True,
            f"the delivery of run:1 to sheet has been pending for 2 runs: {error}",
            "sheet",
        )
    ]
    assert found(Alert(destination="sheet", pending_runs=3), 0)[0][1:] == (
        False,
        "the delivery of run:1 to sheet is pending for 2 runs (the alert fires at 3 runs)",
        "sheet",
    )
    by_time = Alert(pending_for="6h")
    assert found(by_time, 30.2 * 3600) == [
        (
            "delivery to * pending for 6h [sheet]",
            True,
            f"the delivery of run:1 to sheet has been pending for 30 h: {error}",
            "sheet",
        )
    ]
    assert found(by_time, 2.6 * 86400)[0][2].startswith(
        "the delivery of run:1 to sheet has been pending for 3 days: "
    )
    # pending, but not for long enough: it says so, never that the delivery went out
    assert found(by_time, 5 * 3600)[0][1:] == (
        False,
        "the delivery of run:1 to sheet is pending for 5 h (the alert fires at 6h)",
        "sheet",
    )
    # under two hours in minutes: a `pending_for: 30m` alert said "pending for 0 h"
    assert found(Alert(pending_for="30m"), 31 * 60)[0][2].startswith(
        "the delivery of run:1 to sheet has been pending for 31 min: "
    )
    assert found(Alert(pending_for="30m"), 119.5 * 60)[0][2].startswith(
        "the delivery of run:1 to sheet has been pending for 119 min: "
    )
    assert found(Alert(pending_for="30m"), 2 * 3600)[0][2].startswith(
        "the delivery of run:1 to sheet has been pending for 2 h: "
    )


class _Told:
    """What the message destination below was sent."""

    texts: ClassVar[list[str]] = []


def _chat() -> Any:

    from kpi_collector.destinations.base import Delivery, Destination

    class Chat(Destination):
        type: ClassVar[str] = "chat"

        async def deliver(self, delivery: Delivery) -> None:
            raise NotImplementedError

        async def send_text(self, text: str) -> None:
            _Told.texts.append(text)

    return Chat(name="chat")


def test_what_alerts_log(store: HistoryStore, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    _Told.texts = []
    chat = _chat()
    scope = AlertScope(sources=[], kpis={}, tz=ZoneInfo("UTC"), destinations=[chat])
    alert = Alert(kpi="s.k", below=100, notify=["chat", "gone"])
    held = Alert(kpi="s.k", above=5, hold=2, name="held")
    caplog.set_level(logging.INFO, logger="kpi_collector.alerts")
    put(store, NOW - 60, 50.0)
    asyncio.run(check_alerts(store, [alert, held], scope, now=NOW))
    put(store, NOW + 60, 150.0)
    asyncio.run(check_alerts(store, [alert], scope, now=NOW + 120))
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("WARNING", "alert firing: 🚨 Alert: s.k below 100 — s.k is 50, below 100 (sent to chat)"),
        ("WARNING", "alert not sent: s.k below 100: gone: no enabled destination named 'gone'"),
        ("INFO", "alert pending (its `for:` has not passed): held"),
        ("INFO", "alert resolved: ✅ Resolved: s.k below 100 — s.k is 150 (sent to chat)"),
    ]  # `gone` was never told it fired, so it is not told it resolved either
    assert _Told.texts == [
        "🚨 Alert: s.k below 100 — s.k is 50, below 100",
        "✅ Resolved: s.k below 100 — s.k is 150",
    ]


@pytest.mark.parametrize(
    ("after", "reminded"),
    [
        (DAY - 5401, False),
        # a daily cron's next run a moment earlier in its minute, or 23 hours later across
        # the spring change of the clocks: was no reminder that day (one every other day)
        (DAY - 5400, True),
        (DAY - 3600.2, True),
        (DAY - 0.3, True),
        (DAY, True),
    ],
)
def test_a_reminder_comes_once_repeat_has_passed(
    store: HistoryStore, after: float, reminded: bool
) -> None:
    _Told.texts = []
    chat = _chat()
    scope = AlertScope(sources=[], kpis={}, tz=ZoneInfo("UTC"), destinations=[chat])
    alert = Alert(kpi="s.k", below=100, notify=["chat"], repeat="1d")
    put(store, NOW - 60, 50.0)
    asyncio.run(check_alerts(store, [alert], scope, now=NOW))
    asyncio.run(check_alerts(store, [alert], scope, now=NOW + after))
    expected = ["🚨 Alert: s.k below 100 — s.k is 50, below 100"]
    if reminded:
        expected.append("🔁 Still firing: s.k below 100 — s.k is 50, below 100")
    assert _Told.texts == expected


@pytest.mark.parametrize(("checks", "fires_on"), [(1, 1), (2, 2), (3, 3)])
def test_for_n_checks_fires_on_the_nth(store: HistoryStore, checks: int, fires_on: int) -> None:
    """`for: N`: the runs since the condition became true, this one included, must be N."""
    _Told.texts = []
    chat = _chat()
    scope = AlertScope(sources=[], kpis={}, tz=ZoneInfo("UTC"), destinations=[chat])
    alert = Alert(kpi="s.k", below=100, notify=["chat"], hold=checks)
    fired = []
    for n in range(1, 5):
        put(store, NOW + n * 60, 50.0)  # a run, then its check, as of the run's start
        asyncio.run(check_alerts(store, [alert], scope, now=NOW + n * 60))
        fired.append(len(_Told.texts))
    assert fired.index(1) + 1 == fires_on


@pytest.mark.parametrize(("hold", "step"), [(2, 60.0), ("2h", 3600.0)])
def test_a_held_alert_without_notify_returns_the_check_it_starts_firing(
    store: HistoryStore, hold: int | str, step: float
) -> None:
    """`for: 2` (two checks) or `for: 2h` with no `notify`: the first true check returns a
    pending transition, the one where the hold has passed returns the firing one (it used to
    return nothing there, so the run never said the alert fired), later checks nothing."""
    alert = Alert(kpi="s.k", below=100, hold=hold, name="held")
    seen = []
    for n in range(4):  # checks at NOW, +1 step, +2 steps, +3 steps
        at = NOW + n * step
        put(store, at, 50.0)
        transitions = asyncio.run(check_alerts(store, [alert], SCOPE, now=at))
        seen.append([(t.key, t.active, t.pending) for t in transitions])
    # `for: 2`: the second check (two runs since it became true, this one included);
    # `for: 2h`: the check 2 h after the first true one (checks an hour apart)
    fires = 1 if hold == 2 else 2
    expected: list[list[tuple[str, bool, bool]]] = [[] for _ in range(4)]
    expected[0] = [("held", False, True)]  # true, not firing yet: pending
    expected[fires] = [("held", True, False)]
    assert seen == expected


@pytest.mark.parametrize(
    ("tz", "then", "now"),
    [
        # a daily cron: 7 days ago its run started 50 ms later in the day than today's
        ("UTC", NOW - 7 * DAY + 0.05, NOW),
        # 08:00 in Berlin each day, across the spring change of the clocks (2027-03-28):
        # 7 local days are 7 × 86,400 s less an hour
        ("Europe/Berlin", 1_806_044_400.0, 1_806_645_600.0),
    ],
)
def test_change_compares_with_the_value_of_the_local_day_n_days_before(
    store: HistoryStore, tz: str, then: float, now: float
) -> None:
    """`change: {days: 7}` compares with the value of the local day 7 days before: it took
    the value 8 days old when the 7-day-old one was stored a moment later in its day, or an
    hour less than 7 × 24 h before across a change of the clocks."""
    put(store, then - DAY, 400.0)  # the day before: the baseline it used to take
    put(store, then, 100.0)
    put(store, now, 70.0)
    alert = Alert(kpi="s.k", change={"days": 7, "below": "-20%"})  # type: ignore[arg-type]
    (pair,) = evaluate(_scope(tz), store, [alert], now=now)
    assert pair[1].active is True
    assert pair[1].detail.endswith("changed -30.0% in 7 days (100 → 70)")


def test_hysteresis_holds_only_the_side_that_fired(store: HistoryStore) -> None:
    # a two-sided alert fired for `above`; the value falls to 105, inside `below`'s
    # hysteresis band (100 to 110) but never below 100: it resolves, it is not "below 100"
    alert = Alert(kpi="s.k", below=100, above=1000, resolve_above=110, resolve_below=900)
    put(store, NOW - 5 * 60, 1500.0)
    (fired,) = asyncio.run(check_alerts(store, [alert], SCOPE, now=NOW - 4 * 60))
    assert fired.active and fired.text.endswith("is 1,500, above 1,000")
    put(store, NOW - 3 * 60, 105.0)
    (resolved,) = asyncio.run(check_alerts(store, [alert], SCOPE, now=NOW - 2 * 60))
    assert not resolved.active
    assert resolved.text == "✅ Resolved: s.k below 100 or above 1000 — s.k is 105"
    # the other way round: fired for `below`, then 950 (inside `above`'s band, not above it)
    put(store, NOW - 60, 50.0)
    assert asyncio.run(check_alerts(store, [alert], SCOPE, now=NOW - 50))[0].active
    put(store, NOW - 40, 950.0)
    assert not asyncio.run(check_alerts(store, [alert], SCOPE, now=NOW - 35))[0].active
    # a side that did fire still holds inside its own band: 50, then 105 is still "below"
    put(store, NOW - 30, 50.0)
    assert asyncio.run(check_alerts(store, [alert], SCOPE, now=NOW - 20))[0].active
    put(store, NOW - 10, 105.0)
    (finding,) = evaluate(SCOPE, store, [alert], now=NOW)
    assert finding[1].active is True
    assert finding[1].detail == "s.k is 105, below 100 (resolves at 110)"


def test_hysteresis_holds_a_firing_alert_not_a_pending_one(store: HistoryStore) -> None:
    """`below: 100, resolve_above: 110, for: 3`: hysteresis keeps an alert that *fired* until
    110; while it is still pending (its `for:` not passed), the plain threshold decides. So
    90, 105, 105 never fires: only one check was below 100 (it used to fire on the third,
    saying "is 105, below 100")."""
    _Told.texts = []
    chat = _chat()
    scope = AlertScope(sources=[], kpis={}, tz=ZoneInfo("UTC"), destinations=[chat])
    alert = Alert(kpi="s.k", below=100, resolve_above=110, notify=["chat"], hold=3)
    for n, value in enumerate((90.0, 105.0, 105.0, 105.0), 1):
        put(store, NOW + n * 60, value)
        asyncio.run(check_alerts(store, [alert], scope, now=NOW + n * 60))
    assert _Told.texts == []
    # three checks below 100 in a row fire it; then 105 holds it (firing: hysteresis)
    for n, value in enumerate((90.0, 95.0, 99.0, 105.0, 109.0, 110.0), 5):
        put(store, NOW + n * 60, value)
        asyncio.run(check_alerts(store, [alert], scope, now=NOW + n * 60))
    assert _Told.texts == [
        "🚨 Alert: s.k below 100 — s.k is 99, below 100",
        "✅ Resolved: s.k below 100 — s.k is 110",
    ]


def _two_sided(kind: str, hold: int | str | None) -> Alert:
    held: dict[str, Any] = {} if hold is None else {"hold": hold}
    if kind == "threshold":
        return Alert(kpi="s.k", below=100, above=1000, notify=["chat"], **held)
    return Alert(
        kpi="s.k",
        change={"days": 1, "below": "-20%", "above": "20%"},  # type: ignore[arg-type]
        notify=["chat"],
        **held,
    )


THRESHOLD = "s.k below 100 or above 1000 — s.k is "
CHANGE = "s.k change over 1 days below -20% or above +20% — s.k changed "


@pytest.mark.parametrize(
    ("kind", "hold", "values", "told"),
    [
        (
            "threshold",
            None,
            [50.0, 50.0, 1500.0, 1500.0, 500.0],
            [f"🚨 Alert: {THRESHOLD}50, below 100", f"🚨 Alert: {THRESHOLD}1,500, above 1,000"],
        ),
        (
            "threshold",
            2,  # fires on the second check below, switches on the third
            [50.0, 50.0, 1500.0, 1500.0, 500.0],
            [f"🚨 Alert: {THRESHOLD}50, below 100", f"🚨 Alert: {THRESHOLD}1,500, above 1,000"],
        ),
        (
            "threshold",
            "36h",  # true for 48 h when it fires: on the side of that check
            [50.0, 50.0, 1500.0, 1500.0, 500.0],
            [f"🚨 Alert: {THRESHOLD}1,500, above 1,000"],
        ),
        (
            "change",
            None,  # -50%, -50%, then +300%, +100%
            [100.0, 50.0, 25.0, 100.0, 200.0, 200.0],
            [
                f"🚨 Alert: {CHANGE}-50.0% in 1 day (100 → 50)",
                f"🚨 Alert: {CHANGE}+300.0% in 1 day (25 → 100)",
            ],
        ),
        (
            "change",
            2,
            [100.0, 50.0, 25.0, 100.0, 200.0, 200.0],
            [
                f"🚨 Alert: {CHANGE}-50.0% in 1 day (50 → 25)",
                f"🚨 Alert: {CHANGE}+300.0% in 1 day (25 → 100)",
            ],
        ),
    ],
)
def test_a_firing_alert_that_switches_side_says_the_new_side(
    store: HistoryStore, kind: str, hold: int | str | None, values: list[float], told: list[str]
) -> None:
    """A rule with two sides (`below` and `above`, of a threshold or a change) fired for
    `below`, then the value jumped past `above`: the condition stayed true, so nobody was
    told, and the chat still believed "below 100" while the KPI was at 1,500. A switch of side
    while it fires is told at once, with the new side (a `for:` hold is about the condition,
    which has held); staying on that side is not told again, and it resolves once."""
    _Told.texts = []
    scope = AlertScope(sources=[], kpis={}, tz=ZoneInfo("UTC"), destinations=[_chat()])
    alert = _two_sided(kind, hold)
    for n, value in enumerate(values):
        put(store, NOW + n * DAY, value)
        asyncio.run(check_alerts(store, [alert], scope, now=NOW + n * DAY))
    resolved = [t for t in _Told.texts if t.startswith("✅")]
    assert _Told.texts == [*told, *resolved] and len(resolved) == 1


def test_a_side_switch_that_could_not_be_told_is_told_on_the_next_check(
    store: HistoryStore,
) -> None:
    """The chat was down at the check that switched sides: it is told the new side at the
    next check, once."""
    _Told.texts = []
    chat = _chat()
    scope = AlertScope(sources=[], kpis={}, tz=ZoneInfo("UTC"), destinations=[chat])
    alert = _two_sided("threshold", None)
    put(store, NOW, 50.0)
    asyncio.run(check_alerts(store, [alert], scope, now=NOW))
    put(store, NOW + DAY, 1500.0)
    down = AlertScope(sources=[], kpis={}, tz=ZoneInfo("UTC"), destinations=[])
    (switched,) = asyncio.run(check_alerts(store, [alert], down, now=NOW + DAY))
    assert switched.active and switched.errors == {"chat": "no enabled destination named 'chat'"}
    for n in (2, 3):
        put(store, NOW + n * DAY, 1400.0)
        asyncio.run(check_alerts(store, [alert], scope, now=NOW + n * DAY))
    assert _Told.texts == [
        f"🚨 Alert: {THRESHOLD}50, below 100",
        f"🚨 Alert: {THRESHOLD}1,400, above 1,000",
    ]


def _sources_scope(enabled: bool) -> AlertScope:
    """Sources `s` (switched on or off) and `t`, and the chat to notify."""
    from kpi_collector.config import parse_config

    config = parse_config(
        "sources:\n"
        '  - {name: s, type: http_json, url: "http://127.0.0.1:1/", metrics: {k: x}, '
        f"enabled: {'true' if enabled else 'false'}}}\n"
        '  - {name: t, type: http_json, url: "http://127.0.0.1:1/", metrics: {k: x}}\n'
    )
    return AlertScope(
        sources=config.sources, kpis=config.kpis, tz=ZoneInfo("UTC"), destinations=[_chat()]
    )


@pytest.mark.parametrize(
    ("alert", "key"),
    [
        (Alert(source="s", failing_runs=2, notify=["chat"]), "source s failing 2 runs in a row"),
        (Alert(failing_runs=2, notify=["chat"]), "source * failing 2 runs in a row [s]"),
        (Alert(kpi="s.k", stale_days=2, notify=["chat"]), "s.k not updated for 2 days"),
        (Alert(source="s", stale_days=2, notify=["chat"]), "s.* not updated for 2 days [s.k]"),
        (Alert(stale_days=2, notify=["chat"]), "any KPI not updated for 2 days [s.k]"),
    ],
)
def test_switching_a_source_off_resolves_its_alerts(
    store: HistoryStore, alert: Alert, key: str
) -> None:
    """A source that failed (or went stale) and was then switched off (`enabled: false`): its
    last failures stayed the newest, so a `failing_runs` (or `stale_days`) alert naming it fired
    for ever, and one over every source dropped its state without telling anyone it ended.
    Switching the source off resolves the alert, told once; then its state is gone."""
    _Told.texts = []
    put(store, NOW - 10 * DAY, 1.0, kpi="s.k")
    put(store, NOW - 10 * DAY, 1.0, kpi="t.k")
    fail(store, NOW - 2 * 60)
    fail(store, NOW - 60)
    put(store, NOW - 30, 1.0, kpi="t.k")  # `t` works and is fresh
    assert alert.key == key.partition(" [")[0]
    asyncio.run(check_alerts(store, [alert], _sources_scope(enabled=True), now=NOW))
    assert len(_Told.texts) == 1 and _Told.texts[0].startswith(f"🚨 Alert: {key} — ")
    for n in (1, 2):
        asyncio.run(check_alerts(store, [alert], _sources_scope(enabled=False), now=NOW + n * 60))
    assert _Told.texts[1:] == [f"✅ Resolved: {key} — source s is switched off (`enabled: false`)"]
    # switched on again, nothing changed: the rule is checked afresh and fires again
    asyncio.run(check_alerts(store, [alert], _sources_scope(enabled=True), now=NOW + 3 * 60))
    assert len(_Told.texts) == 3 and _Told.texts[2] == _Told.texts[0]


@pytest.mark.parametrize(
    ("alert", "key"),
    [
        (
            Alert(destination="sheet", pending_runs=2, notify=["chat"]),
            "delivery to sheet pending for 2 runs",
        ),
        (Alert(pending_runs=2, notify=["chat"]), "delivery to * pending for 2 runs [sheet]"),
    ],
)
def test_switching_a_destination_off_resolves_its_pending_alert(
    store: HistoryStore, tmp_path: Path, alert: Alert, key: str
) -> None:
    """A destination whose deliveries stay pending, then switched off (`enabled: false`): its
    pending rows are never tried again and count one more run each run, so a `pending_runs`
    alert naming it fired for ever. Switching it off resolves the alert, told once."""
    from datetime import UTC, datetime

    from kpi_collector.deliver.engine import DeliveryEngine
    from kpi_collector.destinations import CSV

    _Told.texts = []
    chat = _chat()
    (tmp_path / "file").write_text("not a folder")
    sheet = CSV(path=str(tmp_path / "file" / "o.csv"), name="sheet", every="run", retries=0)
    engine = DeliveryEngine(store, [sheet], base_dir=tmp_path, backoff=0)
    for n in range(2):
        run = store.begin_run(started_at=NOW + n)
        store.finish_run(run, observations=[("s.k", NOW + n, 1.0, "s")], finished_at=NOW + n)
        engine.record_run(run, datetime.fromtimestamp(NOW + n, UTC))
    asyncio.run(engine.deliver_pending())
    on = AlertScope(sources=[], kpis={}, tz=ZoneInfo("UTC"), destinations=[sheet, chat])
    off = AlertScope(
        sources=[], kpis={}, tz=ZoneInfo("UTC"), destinations=[chat], disabled=frozenset({"sheet"})
    )
    asyncio.run(check_alerts(store, [alert], on, now=NOW + 10))
    assert len(_Told.texts) == 1 and _Told.texts[0].startswith(f"🚨 Alert: {key}")
    for n in (2, 3):  # runs go on; the switched-off destination is never tried
        put(store, NOW + n * 60, 1.0)
        asyncio.run(check_alerts(store, [alert], off, now=NOW + n * 60))
    assert _Told.texts[1:] == [
        f"✅ Resolved: {key} — destination sheet is switched off (`enabled: false`)"
    ]


def test_a_side_switch_without_notify_is_still_a_transition(store: HistoryStore) -> None:
    """An alert without `notify` only logs: a switch of side while it fires is logged (and
    returned) as it fires with the new side, once."""
    alert = Alert(kpi="s.k", below=100, above=1000)
    seen = []
    for n, value in enumerate((50.0, 1500.0, 1400.0)):
        put(store, NOW + n * DAY, value)
        transitions = asyncio.run(check_alerts(store, [alert], SCOPE, now=NOW + n * DAY))
        seen.append([(t.active, t.text) for t in transitions])
    assert seen == [
        [(True, f"🚨 Alert: {THRESHOLD}50, below 100")],
        [(True, f"🚨 Alert: {THRESHOLD}1,500, above 1,000")],
        [],
    ]


@pytest.mark.parametrize("side", [None, "below", "above"])
@pytest.mark.parametrize("text", ["[below] x is 5", "[] y", "plain", ""])
def test_an_alert_state_keeps_its_message_and_side_whatever_the_message(
    store: HistoryStore, side: str | None, text: str
) -> None:
    """A state row keeps the side of a two-sided rule with its message; a message that looks
    like a side itself (a KPI titled `[below] x`) reads back as written, with its own side."""
    from kpi_collector.store.alert_states import save_alert_state

    save_alert_state(store, "k", OWN, active=True, message=text, now=NOW, side=side)
    (state,) = alert_states(store)
    assert (state.message, state.side) == (text, side)


def test_failing_runs_of_a_source_run_rarely_among_many_other_runs(store: HistoryStore) -> None:
    """A source with its own weekly `schedule` among hourly jobs of other sources: its three
    failed runs in a row lie hundreds of runs apart. Only the newest 50 runs were read, so
    `failing_runs: 3` never fired (no finding at all) and a recovered source stayed firing."""
    ts = NOW - 30 * DAY
    put(store, ts, 1.0, kpi="weekly.k")
    for _ in range(3):
        ts += 7 * DAY
        fail(store, ts, source="weekly")
        for hour in range(1, 120):  # the hourly source's runs in between
            put(store, ts + hour * 3600, 1.0, kpi="hourly.k")
    alert = Alert(source="weekly", failing_runs=3)
    assert active(store, alert, now=ts + DAY) == [True]
    (finding,) = [f for _, f in evaluate(SCOPE, store, [alert], now=ts + DAY)]
    assert finding.detail == "source weekly failed the last 3 runs: boom"
    assert active(store, Alert(source="weekly", failing_runs=4), now=ts + DAY) == [False]
    put(store, ts + DAY, 1.0, kpi="weekly.k")  # it works again, then 60 hourly runs
    for hour in range(1, 61):
        put(store, ts + DAY + hour * 3600, 1.0, kpi="hourly.k")
    assert active(store, alert, now=ts + 4 * DAY) == [False]
    # a source of the config that has never run in this store: still unknown
    assert active(store, Alert(source="never", failing_runs=1), now=ts + 4 * DAY) == [None]


@pytest.mark.parametrize(
    ("unit", "value", "rule", "detail"),
    [
        # was "s.k is 100, below 100": the value rounded to the threshold it is under
        (None, 99.996, {"below": 100}, "s.k is 99.996, below 100"),
        (None, 100.004, {"above": 100}, "s.k is 100.004, above 100"),
        ("%", 49.999, {"below": 50}, "s.k is 49.999%, below 50%"),
        ("ratio", 0.49999, {"below": 0.5}, "s.k is 49.999%, below 50%"),
        ("USD", 999.999, {"below": 1000}, "s.k is $999.999, below $1,000"),  # was $1,000.00
        ("USD", -0.001, {"below": 0}, "s.k is -$0.001, below $0"),  # was "$0.00, below $0"
        # held by hysteresis, next to the value it resolves at
        (None, 109.996, {"below": 100, "resolve_above": 110}, None),
        # nothing to tell apart: as before
        (None, 99.5, {"below": 100}, "s.k is 99.5, below 100"),
        ("USD", 1234.5, {"above": 1000}, "s.k is $1,234.50, above $1,000"),
    ],
)
def test_a_value_is_never_shown_as_the_threshold_it_crossed(
    store: HistoryStore, unit: str | None, value: float, rule: dict[str, float], detail: str | None
) -> None:
    from kpi_collector.config.models import KpiSpec

    scope = AlertScope(
        sources=[], kpis={"s.k": KpiSpec(unit=unit)}, tz=ZoneInfo("UTC"), destinations=[]
    )
    alert = Alert(kpi="s.k", **rule)
    if detail is None:  # fire at 90 first, then the value next to the resolve value
        put(store, NOW - 120, 90.0)
        asyncio.run(check_alerts(store, [alert], scope, now=NOW - 60))
        detail = "s.k is 109.996, below 100 (resolves at 110)"
    put(store, NOW - 30, value)
    (fired,) = asyncio.run(check_alerts(store, [alert], scope, now=NOW)) or [None]
    findings = [f for _, f in evaluate(scope, store, [alert], now=NOW)]
    assert [f.detail for f in findings] == [detail]
    assert findings[0].active is True
    if fired is not None:
        assert fired.text.endswith(detail)


@pytest.mark.parametrize(
    ("before", "now_value", "rule", "moved"),
    [
        # was "changed -20.0%" under a rule "below -20%": the decimals that tell them apart
        (100.0, 79.96, {"below": -20}, "changed -20.04%"),
        (100.0, 150.002, {"above": 50}, "changed +50.002%"),
        (100.0, 70.0, {"below": -20}, "changed -30.0%"),  # nothing to tell apart
        # a baseline that is not zero, only tiny: was "rose from zero" (the percent overflows)
        (1e-320, 5.0, {"above": 50}, "rose by more than 1e308%"),
        (-1e-320, -5.0, {"below": -50}, "fell by more than 1e308%"),
        (0.0, 5.0, {"above": 50}, "rose from zero"),
    ],
)
def test_a_change_is_said_as_it_is(
    store: HistoryStore, before: float, now_value: float, rule: dict[str, float], moved: str
) -> None:
    put(store, NOW - DAY, before)
    put(store, NOW, now_value)
    alert = Alert(kpi="s.k", change={"days": 1, **rule})
    ((_, finding),) = evaluate(SCOPE, store, [alert], now=NOW)
    assert finding.active is True
    assert finding.detail.startswith(f"s.k {moved} in 1 day (")  # was "in 1 days"


def test_a_destination_named_twice_in_notify_is_told_once(store: HistoryStore) -> None:
    """`notify: [chat, chat]` sent "2 alert updates:" with the same line twice."""
    _Told.texts.clear()
    scope = AlertScope(sources=[], kpis={}, tz=ZoneInfo("UTC"), destinations=[_chat()])
    alert = Alert(kpi="s.k", below=10, notify=["chat", "chat"])
    put(store, NOW - 60, 5.0)
    (fired,) = asyncio.run(check_alerts(store, [alert], scope, now=NOW))
    assert fired.sent == ["chat"]
    assert _Told.texts == ["🚨 Alert: s.k below 10 — s.k is 5, below 10"]


def test_a_failing_runs_count_past_any_store_is_checked_not_a_crash(store: HistoryStore) -> None:
    """`failing_runs: 10**20` asked the database for the newest 10**21 runs: SQLite's
    'Python int too large to convert to SQLite INTEGER', on every run's alert check."""
    for n in range(3):
        fail(store, NOW - 60 * (3 - n))
    assert active(store, Alert(source="s", failing_runs=10**20)) == [False]
    assert active(store, Alert(source="s", failing_runs=3)) == [True]


def test_daily_runs_across_the_spring_change_remind_and_fire_every_day(store: HistoryStore) -> None:
    """Runs at 07:00 Europe/Berlin, 23 hours apart across 2027-03-28 and a few tenths of a
    second early or late: `repeat: 1d` reminded every other day and `for: 1d` fired a day
    late (23h59m59.7s is less than a day)."""
    from datetime import datetime

    berlin = ZoneInfo("Europe/Berlin")
    starts = [
        datetime(2027, 3, day, 7, 0, 0, micro, tzinfo=berlin).timestamp()
        for day, micro in ((26, 500_000), (27, 200_000), (28, 100_000), (29, 0), (30, 300_000))
    ]
    _Told.texts = []
    scope = AlertScope(sources=[], kpis={}, tz=berlin, destinations=[_chat()])
    reminded = Alert(kpi="s.k", below=100, notify=["chat"], repeat="1d")
    held = Alert(name="held", kpi="s.k", below=100, notify=["chat"], hold="1d")
    told = []
    for start in starts:
        put(store, start, 50.0)
        asyncio.run(check_alerts(store, [reminded, held], scope, now=start))
        lines = [line for text in _Told.texts for line in text.splitlines()]
        told.append(sorted(line.split(" — ")[0] for line in lines if " — " in line))
        _Told.texts = []
    assert told == [
        ["🚨 Alert: s.k below 100"],
        ["🔁 Still firing: s.k below 100", "🚨 Alert: held"],  # 23:59:59.7 later
        ["🔁 Still firing: s.k below 100"],
        ["🔁 Still firing: s.k below 100"],  # 23 hours later: the clocks went forward
        ["🔁 Still firing: s.k below 100"],
    ]


@pytest.mark.parametrize(
    ("tz", "shown"),
    [
        ("Europe/Berlin", "2027-07-01 09:00 CEST"),  # summer time: not CET
        ("America/New_York", "2027-07-01 03:00 EDT"),
        ("UTC", "2027-07-01 07:00 UTC"),
    ],
)
def test_a_stale_kpi_says_when_in_the_configs_zone_and_names_it(
    store: HistoryStore, tz: str, shown: str
) -> None:
    from datetime import UTC, datetime

    summer = datetime(2027, 7, 1, 7, 0, tzinfo=UTC).timestamp()
    put(store, summer, 1.0, kpi="s.b")
    ((_, finding),) = evaluate(
        _scope(tz), store, [Alert(kpi="s.b", stale_days=2)], now=summer + 3 * DAY
    )
    assert (finding.active, finding.detail) == (True, f"s.b was last updated {shown}")


def test_an_alert_named_like_another_ones_subject_is_its_own() -> None:
    """`rule_of` matched the row of an alert named `low [eu]` to an earlier alert named
    `low` (as if `eu` were one of its subjects): health and `kpi alerts list` judged it by
    the other alert's `for:`."""
    from kpi_collector.alerts.engine import rule_of

    first = Alert(name="low", failing_runs=1)
    second = Alert(name="low [eu]", kpi="s.k", below=1, hold=3)
    assert rule_of([first, second], "low [eu]") is second
    assert rule_of([first, second], "low [github]") is first
    assert rule_of([first, second], "low") is first
    assert rule_of([first, second], "gone") is None
