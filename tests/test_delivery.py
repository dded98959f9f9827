"""The delivery engine: once per period, pending/done in the store, oldest first, retries of
transient errors only, isolation between destinations, `kpi deliver`. (Each destination's own
behaviour is in tests/test_destinations_<type>.py.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from click.testing import CliRunner
from pydantic import Field

from kpi_collector.cli import group
from kpi_collector.deliver.engine import DeliveryEngine
from kpi_collector.destinations import CSV, Webhook
from kpi_collector.destinations.base import Delivery, MessageDestination, TableDestination
from kpi_collector.errors import ConfigError, DeliveryError
from tests.destinations import MONDAY, TOKEN, make
from tests.fakes.webhooks import FakeHooks

pytestmark = pytest.mark.usefixtures("fast_delivery_retries")


@pytest.fixture
def hooks() -> Iterator[FakeHooks]:
    with FakeHooks.serve(TOKEN) as fake:
        yield fake


class Recorder(MessageDestination):
    """A destination that keeps what it got and fails as told (a plugin, not a mock)."""

    type: ClassVar[str] = "recorder"
    got: list[Any] = Field(default_factory=list)  # Delivery objects
    failures: list[Any] = Field(default_factory=list)  # DeliveryErrors to raise first

    async def deliver(self, delivery: Delivery) -> None:
        if self.failures:
            raise self.failures.pop(0)
        self.got.append(delivery)


def test_weekly_message_once_per_week(tmp_path: Path) -> None:
    recorder = Recorder(name="weekly", every="week")
    p = make(tmp_path, recorder)
    for day in range(7):  # every day of ISO week 48
        assert p.process(now=MONDAY + timedelta(days=day)).exit_code == 0
    assert [d.period for d in recorder.got] == ["2026-W48"]
    p.process(now=MONDAY + timedelta(days=7))
    assert [d.period for d in recorder.got] == ["2026-W48", "2026-W49"]
    assert recorder.got[0].period_start.isoformat() == "2026-11-23"


def test_periods_are_in_the_config_time_zone(tmp_path: Path) -> None:
    recorder = Recorder(name="daily", every="day")
    p = make(tmp_path, recorder)
    p.process(now=datetime(2026, 11, 23, 22, 30, tzinfo=UTC))  # 23:30 in Berlin
    p.process(now=datetime(2026, 11, 23, 23, 30, tzinfo=UTC))  # 00:30 the next day in Berlin
    assert [d.period for d in recorder.got] == ["2026-11-23", "2026-11-24"]


def test_every_run_and_a_run_without_values(tmp_path: Path) -> None:
    recorder = Recorder(name="each")
    values: dict[str, float] = {"stars": 1.0}
    p = make(tmp_path, recorder, values=values)
    p.process(now=MONDAY)
    p.process(now=MONDAY)
    assert [d.period for d in recorder.got] == ["run:1", "run:2"]
    values.clear()  # a run that collected nothing starts no delivery
    p.process(now=MONDAY)
    assert len(recorder.got) == 2
    assert p.delivery_engine().records(status="pending") == []


def test_one_failing_destination_does_not_hold_back_the_others(tmp_path: Path) -> None:
    ok = Recorder(name="ok", every="day")
    bad = Recorder(name="bad", every="day", retries=0)
    bad.failures.append(DeliveryError("the bad one is down", transient=True))
    p = make(tmp_path, bad, ok)
    result = p.process(now=MONDAY)
    assert result.exit_code == 1
    assert result.delivered == ["ok"]
    assert result.delivery_errors == {
        "bad": "2026-11-23: the bad one is down (after 1 attempt; stays pending)"
    }


def test_terminal_errors_are_not_retried_transient_ones_are(tmp_path: Path) -> None:
    terminal = Recorder(name="terminal", every="day", retries=3)
    terminal.failures.append(DeliveryError("401: check the token", transient=False))
    transient = Recorder(name="transient", every="day", retries=3)
    transient.failures += [DeliveryError("503", transient=True)] * 2
    p = make(tmp_path, terminal, transient)
    result = p.process(now=MONDAY)
    attempts = {r.destination: (r.status, r.attempts) for r in p.delivery_engine().records()}
    assert attempts == {"terminal": ("pending", 1), "transient": ("done", 3)}
    assert result.delivery_errors == {"terminal": "2026-11-23: 401: check the token"}


def test_a_crashing_destination_is_an_error_not_a_crash(tmp_path: Path) -> None:
    class Broken(MessageDestination):
        type: ClassVar[str] = "broken"

        async def deliver(self, delivery: Delivery) -> None:
            raise KeyError("oops")

    result = make(tmp_path, Broken(every="day")).process(now=MONDAY)
    assert result.delivery_errors == {"broken": "2026-11-23: KeyError: 'oops'"}


def test_pending_message_goes_out_with_the_periods_newest_values(tmp_path: Path) -> None:
    recorder = Recorder(name="weekly", every="week", retries=0)
    recorder.failures.append(DeliveryError("down", transient=True))
    values = {"stars": 1.0}
    p = make(tmp_path, recorder, values=values)
    assert p.process(now=MONDAY).exit_code == 1
    values["stars"] = 2.0
    assert p.process(now=MONDAY + timedelta(days=1)).exit_code == 0
    assert [(d.period, d.values["github.stars"]) for d in recorder.got] == [("2026-W48", 2.0)]


def test_duplicate_destination_names_are_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="two destinations are named 'csv'"):
        DeliveryEngine(None, [CSV(path="a.csv"), CSV(path="b.csv")])


def test_a_delivery_without_a_connection_pool_says_so_and_opens_none(
    tmp_path: Path, hooks: FakeHooks
) -> None:
    """Outside the engine (or `send_now`) no pool is open: a clear error, not a client that
    is never closed."""
    hook = Webhook(url=hooks.hook_url, every="day", retries=0)
    p = make(tmp_path, hook)
    delivery = p.delivery_engine().delivery_from_result(hook, p.process(now=MONDAY, deliver=False))
    with pytest.raises(DeliveryError, match="no HTTP connection pool") as caught:
        asyncio.run(hook.deliver(delivery))
    assert not caught.value.transient
    assert delivery.http_client is None and hooks.hooks == []


# the command line ----------------------------------------------------------------------------


def write_config(tmp_path: Path, hooks: FakeHooks) -> Path:
    (tmp_path / "kpis_for_cli.py").write_text(
        "def github():\n    return {'stars': 5}\n", encoding="utf-8"
    )
    config = tmp_path / "kpi.yaml"
    config.write_text(
        """
sources:
  - {name: github, type: python, function: "kpis_for_cli:github"}
destinations:
  - {type: discord, webhook_url: "${DISCORD_WEBHOOK}", every: day, retries: 0}
  - {type: csv, path: out/kpis.csv, every: day}
""",
        encoding="utf-8",
    )
    return config


def test_kpi_run_fails_and_kpi_deliver_recovers(
    tmp_path: Path, hooks: FakeHooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(tmp_path, hooks)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DISCORD_WEBHOOK", hooks.discord_url)
    runner = CliRunner()
    hooks.down = True
    run = runner.invoke(group, ["-c", str(config), "run"], catch_exceptions=False)
    assert run.exit_code == 1
    assert "delivery failed discord" in run.output and "HTTP 503" in run.output
    assert TOKEN not in run.output
    assert (tmp_path / "out" / "kpis.csv").exists()  # the other destination went on

    listing = runner.invoke(group, ["-c", str(config), "deliver", "--list", "--format", "json"])
    states = {(r["destination"], r["status"]) for r in json.loads(listing.output)}
    assert states == {("discord", "pending"), ("csv", "done")}
    assert TOKEN not in listing.output

    still = runner.invoke(group, ["-c", str(config), "deliver"])
    assert still.exit_code == 1 and "still pending" in still.output
    hooks.down = False
    done = runner.invoke(group, ["-c", str(config), "deliver"])
    assert done.exit_code == 0, done.output
    assert "delivered discord" in done.output and "0 pending" in done.output
    assert len(hooks.discord) == 1
    again = runner.invoke(group, ["-c", str(config), "deliver"])
    assert (again.exit_code, again.output.strip()) == (0, "nothing pending")
    unknown = runner.invoke(group, ["-c", str(config), "deliver", "-d", "nope"])
    assert unknown.exit_code != 0


def test_a_delivery_state_that_cannot_be_written_is_a_store_error(tmp_path: Path) -> None:
    """Writes go through the store's own write transaction: a database error becomes a
    StoreError naming the store (its URL's password hidden), not a crash."""
    import sqlalchemy as sa

    from kpi_collector.errors import StoreError
    from kpi_collector.store import HistoryStore

    store = HistoryStore(f"sqlite:///{tmp_path / 'kpi.db'}")
    run = store.begin_run()
    with store.engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE deliveries"))
    engine = DeliveryEngine(store, [Recorder(name="daily", every="day")])
    with pytest.raises(StoreError, match=r"cannot write to store .*no such table: deliveries"):
        engine.record_run(run, MONDAY)
    store.close()


def test_one_delivering_process_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from kpi_collector.deliver import engine as delivery
    from kpi_collector.store.lock import store_mutex

    monkeypatch.setattr(delivery, "LOCK_WAIT", 0.3)
    recorder = Recorder(name="daily", every="day")
    p = make(tmp_path, recorder)
    other = store_mutex(p.store, "deliveries")  # type: ignore[arg-type]
    assert other.try_acquire()  # as another process delivering would
    try:
        result = p.process(now=MONDAY)
    finally:
        other.release()
    assert result.exit_code == 1
    assert "another process has been delivering" in result.delivery_errors["deliveries"]
    assert recorder.got == []
    assert [r.status for r in p.delivery_engine().records()] == ["pending"]
    assert p.process(now=MONDAY, deliver=True).exit_code == 0
    assert [d.period for d in recorder.got] == ["2026-11-23"]


def test_a_payload_refused_for_good_is_marked_failed_and_later_periods_go_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 400 for one run's payload (too big for the service, say) must not block the
    destination forever: that delivery is marked failed, the next period goes out, and
    `kpi deliver --retry PERIOD` resends it by hand."""
    from aiohttp import web

    from kpi_collector.demo.server import BackgroundServer

    received: list[dict[str, Any]] = []
    refuse = {"value": 999.0}

    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        if refuse["value"] in [v["value"] for v in body.get("values", [])]:
            return web.json_response({"error": "payload too large"}, status=400)
        received.append(body)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    values = {"stars": 999.0}
    (tmp_path / "refused_payload_kpis.py").write_text(
        f"import json\ndef github():\n    return json.load(open({str(tmp_path / 'v.json')!r}))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    runner = CliRunner()
    with BackgroundServer(app) as url:
        config = tmp_path / "kpi.yaml"
        config.write_text(
            "sources:\n"
            '  - {name: github, type: python, function: "refused_payload_kpis:github"}\n'
            "destinations:\n"
            f'  - {{name: hook, type: webhook, url: "{url}/hook", retries: 0}}\n'
        )
        (tmp_path / "v.json").write_text(json.dumps(values))
        first = runner.invoke(group, ["-c", str(config), "run"], catch_exceptions=False)
        assert first.exit_code == 1 and "refused for good" in first.output
        assert "pending" not in first.output  # marked failed: never told it stays pending
        (tmp_path / "v.json").write_text(json.dumps({"stars": 5.0}))
        second = runner.invoke(group, ["-c", str(config), "run"], catch_exceptions=False)
        assert second.exit_code == 0, second.output  # run:2 went out past the failed run:1
        assert [b["values"][0]["value"] for b in received] == [5.0]
        listing = runner.invoke(group, ["-c", str(config), "deliver", "--list", "--format", "json"])
        states = {r["period"]: r["status"] for r in json.loads(listing.output)}
        assert states == {"run:1": "failed", "run:2": "done"}
        assert runner.invoke(group, ["-c", str(config), "deliver"]).output.strip() == (
            "nothing pending"
        )
        refuse["value"] = -1.0  # the service takes it now
        wrong = runner.invoke(group, ["-c", str(config), "deliver", "--retry", "run:7"])
        assert wrong.exit_code == 2 and "no failed delivery of 'run:7'" in wrong.output
        retried = runner.invoke(
            group, ["-c", str(config), "deliver", "--retry", "run:1", "--format", "json"]
        )
        assert retried.exit_code == 0, retried.output
        # the line said on stdout before the document made it no JSON
        assert "run:1: 1 failed delivery pending again" in retried.stderr
        document = json.loads(retried.stdout)
        assert [(d["period"], d["ok"]) for d in document["deliveries"]] == [("run:1", True)]
        assert [b["values"][0]["value"] for b in received] == [5.0, 999.0]


class PagedTable(TableDestination):
    """A table written in parts (as Notion's long layout writes a page per KPI): `rows` holds
    {KPI: value} as written; `fail_after` parts go through, then a 500."""

    type: ClassVar[str] = "paged_table"
    rows: dict[str, float] = Field(default_factory=dict)
    fail_after: int | None = None
    during: list[Any] = Field(default_factory=list)  # callables run before each part's write

    async def deliver(self, delivery: Delivery) -> None:
        for index, kpi in delivery.unsent(delivery.ordered, idempotent=True):
            if self.during:
                self.during.pop(0)()
            if self.fail_after is not None and index >= self.fail_after:
                raise DeliveryError("HTTP 500", transient=True)
            self.rows[kpi] = delivery.values[kpi]
            await delivery.checkpoint(index + 1)


def test_a_table_cut_short_part_way_gets_the_periods_newer_values(tmp_path: Path) -> None:
    """A table row (page) written part-way then left pending, and a newer run of the same
    period: the period's row ends with the newer run's values in every part, never the first
    parts of one run and the rest of the older one."""
    table = PagedTable(name="pages", every="day", retries=0, fail_after=2)
    values = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 4.0}
    p = make(tmp_path, table, values=values)
    assert p.process(now=MONDAY).exit_code == 1
    assert table.rows == {"github.a": 1.0, "github.b": 2.0}
    table.fail_after = None
    values.update({"a": 10.0, "b": 20.0, "c": 30.0, "d": 40.0})
    assert p.process(now=MONDAY + timedelta(hours=2)).exit_code == 0
    assert table.rows == {"github.a": 10.0, "github.b": 20.0, "github.c": 30.0, "github.d": 40.0}
    (record,) = p.delivery_engine().records()
    assert (record.status, record.run_id) == ("done", 2)


def test_a_newer_run_recorded_while_a_table_delivers_is_delivered_too(tmp_path: Path) -> None:
    """`kpi deliver` is writing the period's row with run 1's values when `kpi run` records run
    2 of the same period (its own delivery waits for the lock): the row must not be marked done
    with run 1's values, so the waiting run writes run 2's."""
    table = PagedTable(name="pages", every="day", retries=0)
    values = {"a": 1.0, "b": 2.0}
    p = make(tmp_path, table, values=values)
    first = p.process(now=MONDAY, deliver=False)
    engine = p.delivery_engine()
    engine.record_run(first.run_id, first.started_at)  # type: ignore[arg-type]
    values.update({"a": 10.0, "b": 20.0})
    second = p.process(now=MONDAY + timedelta(hours=2), deliver=False)
    # the other process records run 2 while run 1's parts are being written
    table.during.append(lambda: engine.record_run(second.run_id, second.started_at))  # type: ignore[arg-type]
    asyncio.run(engine.deliver_pending())
    assert [r.status for r in engine.records()] == ["pending"]  # run 2 still to write
    asyncio.run(engine.deliver_pending())
    assert table.rows == {"github.a": 10.0, "github.b": 20.0}
    (record,) = engine.records()
    assert (record.status, record.run_id) == ("done", 2)


def test_deliveries_pending_for_a_renamed_destination_are_named_never_silent(
    tmp_path: Path, hooks: FakeHooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A destination renamed (or removed, or switched off) while a delivery of it is pending:
    `kpi deliver` cannot send it (its state is kept per name), so it says which deliveries
    wait for a destination the config no longer has, and how to send them, instead of
    "nothing pending"; giving the old name back sends them."""
    config = write_config(tmp_path, hooks)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DISCORD_WEBHOOK", hooks.discord_url)
    runner = CliRunner()
    hooks.down = True
    assert runner.invoke(group, ["-c", str(config), "run"]).exit_code == 1
    hooks.down = False
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("{type: discord,", "{name: team, type: discord,"))
    renamed = runner.invoke(group, ["-c", str(config), "deliver"])
    assert renamed.exit_code == 0, renamed.output
    assert "nothing pending" not in renamed.output
    assert (
        "1 delivery pending for discord, which is no enabled destination of the config "
        "(renamed, removed or `enabled: false`?)"
    ) in renamed.output
    assert TOKEN not in renamed.output and hooks.discord == []
    config.write_text(text)  # the old name back: it goes out
    back = runner.invoke(group, ["-c", str(config), "deliver"])
    assert back.exit_code == 0 and "delivered discord" in back.output
    assert len(hooks.discord) == 1


@pytest.mark.parametrize(
    ("earlier", "now"),
    [
        # a daily cron's runs start a little later or earlier each day
        (
            datetime(2026, 11, 9, 6, 0, 0, 600_000, UTC),
            datetime(2026, 11, 23, 6, 0, 0, 200_000, UTC),
        ),
        # 07:00 in Berlin before and after the clocks went forward (29 March 2026)
        (datetime(2026, 3, 15, 6, 0, tzinfo=UTC), datetime(2026, 3, 29, 5, 0, tzinfo=UTC)),
        # ... and back (25 October 2026)
        (datetime(2026, 10, 18, 5, 0, tzinfo=UTC), datetime(2026, 11, 1, 6, 0, tzinfo=UTC)),
    ],
)
def test_compare_takes_the_value_of_the_local_day_n_days_before(
    tmp_path: Path, earlier: datetime, now: datetime
) -> None:
    """`compare: 14d` compares with the value stored 14 days before, by the local calendar:
    a run of that day counts whether it started a little later in the day than this one, or
    at the same local hour across a change of the clocks (never the day before it)."""
    recorder = Recorder(name="daily", every="day", compare="14d")
    values = {"stars": 1.0}
    p = make(tmp_path, recorder, values=values)
    assert p.process(now=earlier - timedelta(days=1)).exit_code == 0  # the day before: 1
    values["stars"] = 2.0
    assert p.process(now=earlier).exit_code == 0  # 14 days before: 2
    values["stars"] = 5.0
    assert p.process(now=now).exit_code == 0
    assert recorder.got[-1].previous == {"github.stars": 2.0}


def test_a_period_another_process_delivered_while_this_one_waited_is_not_sent_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kpi deliver` beside a scheduled run: both find the same period pending; the one that
    waits for the other to finish delivering must look again, not send a second message."""
    import threading

    from kpi_collector.deliver import engine as delivery
    from kpi_collector.store import deliveries as ledger
    from kpi_collector.store.lock import store_mutex

    monkeypatch.setattr(delivery, "LOCK_WAIT", 0.3)
    recorder = Recorder(name="daily", every="day")
    p = make(tmp_path, recorder)
    other = store_mutex(p.store, "deliveries")  # type: ignore[arg-type]
    assert other.try_acquire()
    try:
        p.process(now=MONDAY)  # another process is delivering: this period stays pending
    finally:
        other.release()
    (record,) = p.delivery_engine().records(status="pending")
    monkeypatch.setattr(delivery, "LOCK_WAIT", 30)
    engine = p.delivery_engine()
    read = threading.Event()
    records = engine.records

    def reading(**options: Any) -> list[Any]:
        found = records(**options)
        read.set()
        return found

    monkeypatch.setattr(engine, "records", reading)
    assert other.try_acquire()  # the other process delivers again
    outcomes: list[Any] = []
    waiting = threading.Thread(
        target=lambda: outcomes.extend(asyncio.run(engine.deliver_pending()))
    )
    waiting.start()
    try:
        assert read.wait(30)  # this one found the period pending and waits for the other
        ledger.update(p.store, record.id, status="done")  # type: ignore[arg-type]
    finally:
        other.release()
        waiting.join(60)
    assert recorder.got == [] and outcomes == []


def test_compare_never_takes_a_value_far_older_than_n_days(tmp_path: Path) -> None:
    """A source that failed for weeks: `compare: 14d` took its newest value before the day 14
    days ago however old (40 days), and the message said "⬆ 400.00%" under "Changes against
    14 days earlier". A value older than twice the N days is no comparison now (no marker);
    one of 20 days (a source collected weekly, a day off) still is. The Markdown report
    compares the same way."""
    from kpi_collector.destinations.digest import Digest

    recorder = Recorder(name="daily", every="day", compare="14d")
    values = {"stars": 1.0}
    p = make(tmp_path, recorder, values=values)
    assert p.process(now=MONDAY - timedelta(days=40)).exit_code == 0
    values["stars"] = 5.0
    assert p.process(now=MONDAY).exit_code == 0
    assert recorder.got[-1].previous == {}
    assert Digest.from_delivery(recorder.got[-1]).lines[0].change_text == ""
    assert p.store is not None
    report = Digest.from_store(p.store, compare_days=14, tz="Europe/Berlin", now=MONDAY)
    assert report.lines[0].previous is None
    values["stars"] = 2.0
    assert p.process(now=MONDAY + timedelta(days=20)).exit_code == 0  # 20 days: MONDAY's 5
    assert recorder.got[-1].previous == {"github.stars": 5.0}
    report = Digest.from_store(
        p.store, compare_days=14, tz="Europe/Berlin", now=MONDAY + timedelta(days=20)
    )
    assert report.lines[0].previous == 5.0


@pytest.mark.parametrize("kind", ["discord", "webhook", "csv"])
def test_a_compare_beyond_a_hundred_years_is_a_config_error(tmp_path: Path, kind: str) -> None:
    """`compare: 400000d` passed the config and every delivery of the destination then failed
    with a traceback (OverflowError: date value out of range, looking back twice the days).
    It is a config error naming the key and the most it takes, as `kpi report --compare`
    says; the most itself delivers (its comparison finds nothing that old)."""
    from kpi_collector.config import load_config

    where = {
        "discord": "webhook_url: 'https://discord.example/api/webhooks/1/x'",
        "webhook": "url: 'https://hooks.example/x'",
        "csv": "path: k.csv",
    }[kind]
    config = tmp_path / "kpi.yaml"
    for days, fails in ((400000, True), (36600, False)):
        config.write_text(
            "sources:\n"
            "  - {name: app, type: python, function: 'os:getpid'}\n"
            "destinations:\n"
            f"  - {{type: {kind}, {where}, compare: {days}d}}\n"
        )
        if fails:
            with pytest.raises(ConfigError) as caught:
                load_config(config)
            assert "compare" in str(caught.value) and "at most 36600d" in str(caught.value)
        else:
            load_config(config)
    recorder = Recorder(name="daily", every="day", compare="36600d")
    p = make(tmp_path, recorder)
    assert p.process(now=MONDAY).exit_code == 0
    assert recorder.got[-1].previous == {} and recorder.got[-1].compare_days == 36600
