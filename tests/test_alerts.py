"""Alerts: each kind fires exactly once when its rule becomes true and resolves exactly once,
through a message destination talking to a real local HTTP server; config errors; secrets."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest
from aiohttp import web

from kpi_collector.config import load_config, parse_config, plugins
from kpi_collector.demo.server import BackgroundServer
from kpi_collector.destinations.base import Delivery, Destination
from kpi_collector.errors import ConfigError, DeliveryError
from kpi_collector.pipeline import Pipeline, RunResult
from kpi_collector.secrets import Secret
from kpi_collector.store import HistoryStore

READINGS: dict[str, float] = {}
FLAKY = {"fail": False}
TOKEN = "chat-token-5ecret-77"
DAY = timedelta(days=1)
T0 = datetime(2026, 11, 2, 7, tzinfo=UTC)


def readings() -> dict[str, float]:
    return dict(READINGS)


def flaky() -> dict[str, float]:
    if FLAKY["fail"]:
        raise RuntimeError("the flaky service is down")
    return {"ok": 1}


class Chat(Destination):
    """A message destination of the kind alerts need: `send_text` posts the text (and, like a
    careless plugin, names its secret URL when that fails)."""

    type: ClassVar[str] = "chat"
    url: Secret

    async def deliver(self, delivery: Delivery) -> None:
        await self._post({"values": delivery.values})

    async def send_text(self, text: str) -> None:
        await self._post({"text": text})

    async def _post(self, body: dict[str, Any]) -> None:
        async with aiohttp.ClientSession() as session, session.post(self.url.get(), json=body) as r:
            if r.status >= 400:
                raise DeliveryError(
                    f"POST {self.url.get()} answered {r.status}", transient=r.status >= 500
                )


@pytest.fixture
def chat() -> Iterator[tuple[str, web.Application]]:
    """A chat service: POST /hook/<token> keeps the text; `app["down"]` answers 503."""
    app = web.Application()
    app["texts"] = []
    app["values"] = []
    app["down"] = set()

    async def hook(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if request.match_info["token"] != TOKEN:
            return web.json_response({"error": "bad token"}, status=401)
        if name in app["down"]:
            return web.json_response({"error": "unavailable"}, status=503)
        body = await request.json()
        app["texts" if "text" in body else "values"].append((name, body.get("text")))
        return web.json_response({"ok": True})

    app.router.add_post("/{name}/{token}", hook)
    plugins.register_destination(Chat)
    try:
        with BackgroundServer(app) as url:
            yield url, app
    finally:
        plugins._extra[plugins.DESTINATION_GROUP].pop("chat", None)


BASE = """\
sources:
  - {name: app, type: python, function: "tests.test_alerts:readings"}
  - {name: flaky, type: python, function: "tests.test_alerts:flaky"}
destinations:
  - {name: team, type: chat, url: "${CHAT_URL}/team/${CHAT_TOKEN}", retries: 0}
  - {name: broken, type: chat, url: "${CHAT_URL}/broken/${CHAT_TOKEN}", retries: 0}
  - {type: csv, path: k.csv}
kpis:
  app.dau: {title: Daily active users}
alerts:
"""


@pytest.fixture
def setup(
    tmp_path: Path, chat: tuple[str, web.Application], monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, web.Application]]:
    url, app = chat
    monkeypatch.setenv("CHAT_URL", url)
    monkeypatch.setenv("CHAT_TOKEN", TOKEN)
    READINGS.clear()
    FLAKY["fail"] = False
    yield tmp_path, app


def configure(folder: Path, *alerts: str) -> Path:
    path = folder / "kpi.yaml"
    path.write_text(BASE + "".join(f"  - {a}\n" for a in alerts), encoding="utf-8")
    return path


def run(config: Path, at: datetime | None = None, **values: float) -> RunResult:
    READINGS.clear()
    READINGS.update(values)
    pipeline = Pipeline.from_config(config)
    try:
        return pipeline.process(now=at)
    finally:
        assert pipeline.store is not None
        pipeline.store.close()


def texts(app: web.Application) -> list[str]:
    return [text for name, text in app["texts"]]


def test_a_threshold_below_fires_once_and_resolves_once(
    setup: tuple[Path, web.Application],
) -> None:
    folder, app = setup
    config = configure(folder, "{kpi: app.dau, below: 100, notify: [team]}")
    run(config, dau=150)
    assert texts(app) == []  # never true: nothing to say
    run(config, dau=90)
    run(config, dau=80)
    assert texts(app) == ["🚨 Alert: app.dau below 100 — Daily active users is 90, below 100"]
    run(config, dau=120)
    run(config, dau=130)
    assert texts(app)[1:] == ["✅ Resolved: app.dau below 100 — Daily active users is 120"]
    run(config, dau=99)
    assert len(texts(app)) == 3  # true again: a new alert


def test_a_threshold_above_fires_once_and_resolves_once(
    setup: tuple[Path, web.Application],
) -> None:
    folder, app = setup
    config = configure(folder, "{kpi: app.stars, above: 10000, notify: team}")
    for stars in (9000, 10001, 10500, 9999, 9998):
        run(config, stars=stars)
    assert texts(app) == [
        "🚨 Alert: app.stars above 10000 — app.stars is 10,001, above 10,000",
        "✅ Resolved: app.stars above 10000 — app.stars is 9,999",
    ]


def test_a_change_over_days_fires_once_and_resolves_once(
    setup: tuple[Path, web.Application],
) -> None:
    folder, app = setup
    config = configure(
        folder, "{kpi: app.downloads, change: {days: 7, below: -20%}, notify: [team]}"
    )
    run(config, T0, downloads=1000)
    run(config, T0 + DAY, downloads=950)  # nothing 7 days back yet: unknown, no message
    assert texts(app) == []
    run(config, T0 + 7 * DAY, downloads=700)  # -30% against T0
    run(config, T0 + 8 * DAY, downloads=740)  # -22.1% against T0+1: still true, quiet
    assert texts(app) == [
        "🚨 Alert: app.downloads change over 7 days below -20% — app.downloads changed -30.0% "
        "in 7 days (1,000 → 700)"
    ]
    run(config, T0 + 15 * DAY, downloads=760)  # +2.7% against T0+8
    run(config, T0 + 16 * DAY, downloads=770)
    assert texts(app)[1:] == [
        "✅ Resolved: app.downloads change over 7 days below -20% — app.downloads changed "
        "+2.7% in 7 days (740 → 760)"
    ]


def test_a_source_failing_runs_in_a_row_fires_once_and_resolves_once(
    setup: tuple[Path, web.Application],
) -> None:
    folder, app = setup
    config = configure(folder, "{source: flaky, failing_runs: 2, notify: [team]}")
    run(config, dau=1)
    FLAKY["fail"] = True
    run(config, dau=1)
    assert texts(app) == []  # one failure is not two in a row
    run(config, dau=1)
    run(config, dau=1)
    assert texts(app) == [
        "🚨 Alert: source flaky failing 2 runs in a row — source flaky failed the last 2 runs: "
        "RuntimeError: the flaky service is down"
    ]
    FLAKY["fail"] = False
    run(config, dau=1)
    run(config, dau=1)
    assert texts(app)[1:] == [
        "✅ Resolved: source flaky failing 2 runs in a row — source flaky works again"
    ]


def test_every_source_gets_its_own_failing_alert(setup: tuple[Path, web.Application]) -> None:
    folder, app = setup
    config = configure(folder, "{failing_runs: 1, notify: [team]}")
    FLAKY["fail"] = True
    run(config, dau=1)
    run(config, dau=1)
    assert texts(app) == [
        "🚨 Alert: source * failing 1 runs in a row [flaky] — source flaky failed the last 1 "
        "runs: RuntimeError: the flaky service is down"
    ]


def test_a_kpi_not_updated_for_days_fires_once_and_resolves_once(
    setup: tuple[Path, web.Application],
) -> None:
    folder, app = setup
    config = configure(folder, "{kpi: app.dau, stale_days: 2, notify: [team]}")
    run(config, T0, dau=10)
    run(config, T0 + DAY, other=1)  # the source answered, without dau
    assert texts(app) == []
    run(config, T0 + 3 * DAY, other=1)
    run(config, T0 + 4 * DAY, other=1)
    assert texts(app) == [
        "🚨 Alert: app.dau not updated for 2 days — Daily active users was last updated "
        "2026-11-02 07:00 UTC"
    ]
    run(config, T0 + 5 * DAY, dau=11)
    run(config, T0 + 6 * DAY, dau=12)
    assert texts(app)[1:] == [
        "✅ Resolved: app.dau not updated for 2 days — Daily active users was last updated "
        "2026-11-07 07:00 UTC"
    ]


def test_a_delivery_pending_for_runs_fires_once_and_resolves_once(
    setup: tuple[Path, web.Application],
) -> None:
    folder, app = setup
    config = configure(folder, "{destination: broken, pending_runs: 2, notify: [team]}")
    app["down"].add("broken")
    first = run(config, dau=1)
    assert "broken" in first.delivery_errors
    assert texts(app) == []
    run(config, dau=2)
    run(config, dau=3)
    assert len(texts(app)) == 1
    assert texts(app)[0].startswith(
        "🚨 Alert: delivery to broken pending for 2 runs — the delivery of run:1 to broken "
        "has been pending for 2 runs: "
    )
    assert TOKEN not in texts(app)[0]
    app["down"].clear()
    run(config, dau=4)
    run(config, dau=5)
    assert texts(app)[1:] == [
        "✅ Resolved: delivery to broken pending for 2 runs — deliveries to broken went out"
    ]


def test_a_table_delivery_counts_its_pending_runs_from_when_it_became_pending(
    setup: tuple[Path, web.Application],
) -> None:
    """A daily table row goes done -> pending at every run of the day: a failure at the 10th
    hourly run has been pending for 1 run, not for the 10 runs since the row was created."""
    folder, app = setup
    config = folder / "kpi.yaml"
    config.write_text(
        "sources:\n"
        '  - {name: app, type: python, function: "tests.test_alerts:readings"}\n'
        "destinations:\n"
        '  - {name: team, type: chat, url: "${CHAT_URL}/team/${CHAT_TOKEN}", retries: 0}\n'
        "  - {name: sheet, type: csv, path: k.csv, every: day, retries: 0}\n"
        "alerts:\n"
        "  - {destination: sheet, pending_runs: 3, notify: [team]}\n",
        encoding="utf-8",
    )
    hour = timedelta(hours=1)
    for i in range(9):
        assert run(config, T0 + i * hour, dau=i).exit_code == 0
    (folder / "k.csv").unlink()
    (folder / "k.csv").mkdir()  # the sheet cannot be written any more
    assert "sheet" in run(config, T0 + 9 * hour, dau=9).delivery_errors
    run(config, T0 + 10 * hour, dau=10)
    assert texts(app) == []
    run(config, T0 + 11 * hour, dau=11)
    assert len(texts(app)) == 1
    assert texts(app)[0].startswith(
        "🚨 Alert: delivery to sheet pending for 3 runs — the delivery of 2026-11-02 to sheet "
        "has been pending for 3 runs: "
    )
    (folder / "k.csv").rmdir()
    run(config, T0 + 12 * hour, dau=12)
    assert texts(app)[1:] == [
        "✅ Resolved: delivery to sheet pending for 3 runs — deliveries to sheet went out"
    ]


def test_a_message_that_could_not_go_out_is_sent_on_the_next_run_once(
    setup: tuple[Path, web.Application], caplog: pytest.LogCaptureFixture
) -> None:
    folder, app = setup
    config = configure(folder, "{kpi: app.dau, below: 100, notify: [team], name: DAU is low}")
    app["down"].add("team")
    with caplog.at_level(logging.INFO, logger="kpi_collector.alerts"):
        result = run(config, dau=50)
    assert texts(app) == []
    error = result.delivery_errors["team (alerts)"]
    assert "DAU is low: POST" in error and "answered 503" in error
    assert TOKEN not in error and TOKEN not in caplog.text
    assert result.exit_code == 1
    app["down"].clear()
    run(config, dau=60)
    run(config, dau=70)
    assert texts(app) == ["🚨 Alert: DAU is low — Daily active users is 60, below 100"]
    store = HistoryStore(load_config(config).store_url)
    try:
        states = {(s.alert, s.destination): s for s in store.active_alerts()}
        assert set(states) == {("DAU is low", "")}
        import sqlalchemy as sa

        with store.engine.connect() as conn:
            dumped = repr(conn.execute(sa.text("SELECT * FROM alert_states")).all())
        assert TOKEN not in dumped
    finally:
        store.close()


def test_an_alert_removed_from_the_config_forgets_its_state(
    setup: tuple[Path, web.Application],
) -> None:
    folder, app = setup
    rule = "{kpi: app.dau, below: 100, notify: [team]}"
    config = configure(folder, rule, "{kpi: app.dau, above: 1000}")
    run(config, dau=50)
    configure(folder, "{kpi: app.dau, above: 1000}")
    run(config, dau=50)
    configure(folder, rule)
    run(config, dau=50)  # back in the config while still true: it fires afresh
    assert texts(app) == ["🚨 Alert: app.dau below 100 — Daily active users is 50, below 100"] * 2


# config ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alert", "message"),
    [
        (
            "{kpi: app.dau, below: 100, notify: [tem]}",
            "kpi.yaml:11: alerts[0].notify: no destination named 'tem'; destinations: broken, csv, team",
        ),
        (
            "{kpi: app.dau, below: 100, notify: [csv]}",
            "alerts[0].notify: destination 'csv' (type csv) cannot send alerts; notify a message destination: team, broken",
        ),
        ("{kpi: ap.dau, below: 100}", "alerts[0].kpi: 'ap.dau' is not a KPI id of this config"),
        (
            "{source: flakey, failing_runs: 3}",
            "alerts[0].source: no source named 'flakey'; sources: app, flaky",
        ),
        (
            "{destination: nope, pending_runs: 3}",
            "alerts[0].destination: no destination named 'nope'",
        ),
        (
            "{kpi: app.dau, below: 1, change: {days: 7, below: -5%}}",
            "one rule per alert, this one has below/above and change: split it",
        ),
        ("{kpi: app.dau}", "an alert needs a rule"),
        ("{below: 5}", "below/above needs `kpi:`"),
        ("{kpi: app.dau, change: {days: 7}}", "a change rule needs `below:`"),
        ("{kpi: app.dau, change: {days: 7, below: lots}}", "'lots' is not a percentage like -20%"),
        ("{kpi: app.dau, below: 10, above: 5}", "`below:` must be smaller than `above:`"),
        ("{kpi: app.dau, belwo: 10}", "unknown key 'alerts.0.belwo'; did you mean 'below'?"),
        ("{source: app, pending_runs: 2}", "`source:` does not go with pending_runs"),
        (
            "{destination: team, pending_runs: 2, notify: [team]}",
            "alerts[0].notify: 'team' is the destination this alert watches",
        ),
        ("{kpi: app.dau, below: 100, for: soon}", "not a duration: 'soon'"),
        ("{kpi: app.dau, below: 100, for: 0}", "`for:` counts checks: 1 or more"),
        ("{kpi: app.dau, below: 100, repeat: -1d}", "a duration must be positive"),
        ("{kpi: app.dau, above: 100, resolve_above: 90}", "`resolve_above:` goes with `below:`"),
        ("{kpi: app.dau, below: 100, resolve_above: 90}", "is at least that value"),
        # a rule that would always be true (below +10% or above +5%: every change is one)
        (
            "{kpi: app.dau, change: {days: 7, below: 10%, above: 5%}}",
            "`below:` must be smaller than `above:`",
        ),
        ("{kpi: app.dau, change: {days: 7, below: 5%, above: 5%}}", "must be smaller than"),
        # hysteresis reaching past the other threshold: 220 would hold "below 100"
        (
            "{kpi: app.dau, below: 100, above: 200, resolve_above: 250}",
            "`resolve_above:` must stay under `above:`",
        ),
        (
            "{kpi: app.dau, below: 100, above: 200, resolve_below: 100}",
            "`resolve_below:` must stay over `below:`",
        ),
    ],
)
def test_alerts_are_checked_with_the_rest_of_the_config(
    setup: tuple[Path, web.Application], alert: str, message: str
) -> None:
    folder, _ = setup
    config = configure(folder, alert)
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"{config}:11: ")


def test_two_identical_alerts_need_names(setup: tuple[Path, web.Application]) -> None:
    folder, _ = setup
    config = configure(folder, "{kpi: app.dau, below: 100}", "{kpi: app.dau, below: 100}")
    with pytest.raises(
        ConfigError, match=r"kpi.yaml:12: alerts\[1\]: the same alert as alerts\[0\]"
    ):
        load_config(config)
    named = configure(
        folder, "{kpi: app.dau, below: 100}", "{kpi: app.dau, below: 100, name: twin}"
    )
    assert [a.key for a in load_config(named).settings.alerts] == ["app.dau below 100", "twin"]


def test_alert_rules_read_back(tmp_path: Path) -> None:
    text = (
        "sources:\n"
        "  - {name: app, type: python, function: 'tests.test_alerts:readings'}\n"
        "alerts:\n"
        "  - {kpi: app.dau, below: 100, above: 5000}\n"
        "  - {kpi: app.x, change: {days: 7, above: '+50 %'}}\n"
        "  - {stale_days: 1.5}\n"
        "  - {source: app, stale_days: 3}\n"
        "  - {pending_runs: 4}\n"
    )
    config = parse_config(text, path=tmp_path / "kpi.yaml", env={})
    assert [(a.kind, a.rule) for a in config.settings.alerts] == [
        ("threshold", "app.dau below 100 or above 5000"),
        ("change", "app.x change over 7 days above +50%"),
        ("stale", "any KPI not updated for 1.5 days"),
        ("stale", "app.* not updated for 3 days"),
        ("pending", "delivery to * pending for 4 runs"),
    ]


# noise control ---------------------------------------------------------------------------------


def test_for_n_checks_fires_only_after_the_rule_held_that_many_runs(
    setup: tuple[Path, web.Application],
) -> None:
    folder, app = setup
    config = configure(folder, "{kpi: app.dau, below: 100, for: 3, notify: [team]}")
    run(config, T0, dau=90)
    run(config, T0 + DAY, dau=95)
    assert texts(app) == []  # true for two checks: not yet
    run(config, T0 + 2 * DAY, dau=96)
    assert texts(app) == ["🚨 Alert: app.dau below 100 — Daily active users is 96, below 100"]
    run(config, T0 + 3 * DAY, dau=120)
    assert texts(app)[1:] == ["✅ Resolved: app.dau below 100 — Daily active users is 120"]
    run(config, T0 + 4 * DAY, dau=50)  # true again: counts from one
    run(config, T0 + 5 * DAY, dau=150)  # false before it held: nobody was told, nothing to say
    assert len(texts(app)) == 2


def test_for_a_duration_fires_once_the_rule_held_that_long(
    setup: tuple[Path, web.Application],
) -> None:
    folder, app = setup
    config = configure(folder, "{kpi: app.dau, below: 100, for: 2h, notify: [team]}")
    run(config, T0, dau=90)
    run(config, T0 + timedelta(hours=1), dau=90)
    assert texts(app) == []
    run(config, T0 + timedelta(hours=2), dau=90)
    assert len(texts(app)) == 1 and texts(app)[0].startswith("🚨 Alert: app.dau below 100")


def test_a_value_wobbling_around_its_threshold_sends_one_message_with_hysteresis(
    setup: tuple[Path, web.Application],
) -> None:
    folder, app = setup
    config = configure(folder, "{kpi: app.dau, below: 100, resolve_above: 110, notify: [team]}")
    for day, dau in enumerate((99, 101, 99, 101, 99, 101)):
        run(config, T0 + day * DAY, dau=dau)
    assert texts(app) == ["🚨 Alert: app.dau below 100 — Daily active users is 99, below 100"]
    run(config, T0 + 7 * DAY, dau=111)
    assert texts(app)[1:] == ["✅ Resolved: app.dau below 100 — Daily active users is 111"]


def test_repeat_reminds_while_the_alert_stays_true(setup: tuple[Path, web.Application]) -> None:
    folder, app = setup
    config = configure(folder, "{kpi: app.dau, below: 100, repeat: 1d, notify: [team]}")
    run(config, T0, dau=90)
    run(config, T0 + timedelta(hours=12), dau=91)
    assert len(texts(app)) == 1
    run(config, T0 + timedelta(hours=25), dau=92)
    assert texts(app)[1:] == [
        "🔁 Still firing: app.dau below 100 — Daily active users is 92, below 100"
    ]
    run(config, T0 + timedelta(hours=30), dau=93)
    assert len(texts(app)) == 2  # the next reminder is a day after this one


def test_alerts_that_change_together_reach_a_destination_as_one_message(
    setup: tuple[Path, web.Application],
) -> None:
    folder, app = setup
    config = configure(folder, "{source: app, stale_days: 2, notify: [team]}")
    run(config, T0, dau=1, wau=2, mau=3)
    run(config, T0 + 3 * DAY)  # the source answers, with none of them
    (text,) = texts(app)
    lines = text.splitlines()
    assert lines[0] == "3 alert updates:"
    assert [line.split(" — ")[0] for line in lines[1:]] == [
        "🚨 Alert: app.* not updated for 2 days [app.dau]",
        "🚨 Alert: app.* not updated for 2 days [app.mau]",
        "🚨 Alert: app.* not updated for 2 days [app.wau]",
    ]


def test_a_change_compared_with_an_older_value_says_the_real_span(
    setup: tuple[Path, web.Application],
) -> None:
    folder, app = setup
    config = configure(folder, "{kpi: app.x, change: {days: 2, below: -20%}, notify: [team]}")
    run(config, T0, x=100)
    run(config, T0 + 5 * DAY, x=50)  # nothing stored in between
    assert texts(app) == [
        "🚨 Alert: app.x change over 2 days below -20% — app.x changed -50.0% in 5 days "
        "(asked: 2) (100 → 50)"
    ]


def test_a_pending_delivery_is_never_reported_through_itself(
    setup: tuple[Path, web.Application],
) -> None:
    folder, app = setup
    config = configure(folder, "{pending_runs: 1, notify: [team, broken]}")
    app["down"].add("broken")
    run(config, dau=1)
    run(config, dau=2)
    told = [(name, text.split(" — ")[0]) for name, text in app["texts"]]
    assert ("team", "🚨 Alert: delivery to * pending for 1 runs [broken]") in told
    assert not [t for name, t in told if name == "broken" and "[broken]" in t]


def test_silenced_alerts_tell_no_one_until_the_silence_ends(
    setup: tuple[Path, web.Application], capsys: pytest.CaptureFixture[str]
) -> None:
    from kpi_collector.cli import main

    folder, app = setup
    config = configure(folder, "{kpi: app.dau, below: 100, notify: [team]}")
    run(config, T0, dau=150)
    assert main(["-c", str(config), "alerts", "silence", "1", "--for", "2d"]) == 0
    assert "silenced 'app.dau below 100' until " in capsys.readouterr().out
    run(config, datetime.now(UTC), dau=90)
    assert texts(app) == []
    main(["-c", str(config), "alerts", "list"])
    listed = capsys.readouterr().out
    assert "1  app.dau below 100  [true, silenced until " in listed and "→ team" in listed
    main(["-c", str(config), "alerts", "unsilence", "app.dau below 100"])
    assert "no longer silenced" in capsys.readouterr().out
    run(config, datetime.now(UTC), dau=80)
    assert texts(app) == ["🚨 Alert: app.dau below 100 — Daily active users is 80, below 100"]
    assert main(["-c", str(config), "alerts", "silence", "app.dau belw 100", "--for", "1d"]) == 2
    assert "did you mean 'app.dau below 100'?" in capsys.readouterr().err


def test_a_silence_shows_in_the_health_report_and_on_the_dashboard(
    setup: tuple[Path, web.Application], capsys: pytest.CaptureFixture[str]
) -> None:
    """`kpi alerts silence`: `kpi validate --health` and the dashboard's overview say which
    alert is silenced and until when (UTC here: the config names no time zone)."""
    import sqlite3

    from kpi_collector.cli import main
    from kpi_collector.report.data import DashboardData
    from kpi_collector.report.pages import overview_page

    folder, _ = setup
    config = configure(folder, "{kpi: app.dau, below: 100, notify: [team]}")
    run(config, datetime.now(UTC), dau=90)
    assert main(["-c", str(config), "alerts", "silence", "1", "--for", "2d"]) == 0
    capsys.readouterr()
    with sqlite3.connect(folder / "kpi.db") as conn:
        ((until,),) = conn.execute("SELECT until FROM alert_silences").fetchall()
    shown = datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%d %H:%M")
    main(["-c", str(config), "validate", "--health"])
    assert f"silenced until {shown} UTC: app.dau below 100" in capsys.readouterr().out
    data = DashboardData(load_config(config))
    try:
        page = overview_page(data.overview())
    finally:
        data.close()
    assert f'<li class="silence">silenced until {shown}: app.dau below 100</li>' in page


def test_metrics_say_which_alert_is_active(setup: tuple[Path, web.Application]) -> None:
    """`/metrics`: `kpi_alert_active{alert}` is 1 while that alert fires and 0 once it
    resolved; `kpi_alerts_active` counts the firing ones."""
    from prometheus_client.parser import text_string_to_metric_families

    from kpi_collector.report.data import DashboardData
    from kpi_collector.report.metrics import metrics_text

    folder, _ = setup
    config = configure(
        folder,
        "{kpi: app.dau, below: 100, notify: [team]}",
        "{kpi: app.dau, above: 1000, notify: [team]}",
    )

    def gauges() -> tuple[dict[str, float], float]:
        data = DashboardData(load_config(config))
        try:
            families = {f.name: f for f in text_string_to_metric_families(metrics_text(data))}
        finally:
            data.close()
        per_alert = {s.labels["alert"]: s.value for s in families["kpi_alert_active"].samples}
        return per_alert, families["kpi_alerts_active"].samples[0].value

    run(config, T0, dau=90)
    assert gauges() == ({"app.dau below 100": 1.0, "app.dau above 1000": 0.0}, 1.0)
    run(config, T0 + DAY, dau=150)
    assert gauges() == ({"app.dau below 100": 0.0, "app.dau above 1000": 0.0}, 0.0)


def test_kpi_alerts_test_sends_through_each_notify_destination(
    setup: tuple[Path, web.Application], capsys: pytest.CaptureFixture[str]
) -> None:
    from kpi_collector.cli import main

    folder, app = setup
    config = configure(folder, "{kpi: app.dau, below: 100, notify: [team, broken]}")
    app["down"].add("broken")
    assert main(["-c", str(config), "alerts", "test"]) == 1
    out = capsys.readouterr().out
    assert "team: sent" in out and "broken: failed: " in out and TOKEN not in out
    assert app["texts"] == [("team", "🧪 Test from kpi-collector: alerts reach this destination.")]


def test_pending_for_counts_time_not_runs_that_never_try_the_delivery(
    setup: tuple[Path, web.Application],
) -> None:
    folder, app = setup
    config = configure(folder, "{destination: broken, pending_for: 6h, notify: [team]}")
    app["down"].add("broken")
    run(config, T0, dau=1)
    for minutes in (10, 20, 30, 40):  # many runs in an hour: not six hours
        run(config, T0 + timedelta(minutes=minutes), dau=1)
    assert texts(app) == []
    run(config, T0 + timedelta(hours=6), dau=1)
    assert len(texts(app)) == 1
    assert texts(app)[0].startswith(
        "🚨 Alert: delivery to broken pending for 6h — the delivery of run:1 to broken has "
        "been pending for 6 h: "
    )


def test_an_alert_retried_on_a_later_run_keeps_its_idempotency_key(
    setup: tuple[Path, web.Application],
) -> None:
    """The webhook's Idempotency-Key names the alert message, not the attempt: a receiver
    that took the first try but answered 503 can drop the retry of the next run."""
    folder, _ = setup
    keys: list[tuple[int, str]] = []
    status = {"code": 503}

    async def hook(request: web.Request) -> web.Response:
        if (await request.json()).get("type") == "alert":  # not the run's own deliveries
            keys.append((status["code"], request.headers["Idempotency-Key"]))
        return web.json_response({}, status=status["code"])

    receiver = web.Application()
    receiver.router.add_post("/alerts", hook)
    with BackgroundServer(receiver) as url:
        path = folder / "kpi.yaml"
        path.write_text(
            "sources:\n"
            '  - {name: app, type: python, function: "tests.test_alerts:readings"}\n'
            "destinations:\n"
            f"  - {{name: hook, type: webhook, url: {url}/alerts, retries: 0}}\n"
            "alerts:\n"
            "  - {kpi: app.dau, below: 100, notify: [hook]}\n"
        )
        run(path, T0, dau=90)  # 503: stays to tell
        status["code"] = 200
        run(path, T0 + DAY, dau=80)  # the retry, a day later
        run(path, T0 + 2 * DAY, dau=120)  # resolved: a new message, a new key
    assert len(keys) == 3, keys
    (first, key1), (second, key2), (_, key3) = keys
    assert (first, second) == (503, 200)
    assert key1 == key2 and key1.startswith("hook:alert:")
    assert key3 != key1


def test_a_disabled_destination_is_not_told_and_is_no_error(
    setup: tuple[Path, web.Application], capsys: pytest.CaptureFixture[str]
) -> None:
    """`broken` switched off (`enabled: false`) while an alert notifies it: every run failed
    (exit 1, "broken (alerts): no enabled destination named 'broken'"). A disabled
    destination is not told, like it gets no deliveries; switched on again, it is told the
    alert's state on the next run, once. `kpi alerts test` skips it, saying so."""
    from kpi_collector.cli import main

    folder, app = setup
    config = configure(folder, "{kpi: app.dau, below: 100, notify: [team, broken]}")
    text = config.read_text()
    off = text.replace("retries: 0}\n  - {type: csv", "retries: 0, enabled: false}\n  - {type: csv")
    assert off != text
    config.write_text(off)
    result = run(config, dau=90)
    assert result.delivery_errors == {} and result.exit_code == 0
    assert app["texts"] == [
        ("team", "🚨 Alert: app.dau below 100 — Daily active users is 90, below 100")
    ]
    assert main(["-c", str(config), "alerts", "test"]) == 0
    out = capsys.readouterr().out
    assert "team: sent" in out and "broken: disabled (skipped)" in out
    config.write_text(text)  # on again
    run(config, dau=85)
    run(config, dau=80)
    assert [n for n, _ in app["texts"]] == ["team", "team", "broken"]
    assert app["texts"][-1][1].startswith("🚨 Alert: app.dau below 100 — Daily active users is 85")


@pytest.mark.parametrize(
    ("hold", "step"), [("3", DAY), ("2h", timedelta(hours=1))], ids=["checks", "duration"]
)
def test_alerts_list_says_pending_until_the_for_has_passed_at_a_check(
    setup: tuple[Path, web.Application],
    capsys: pytest.CaptureFixture[str],
    hold: str,
    step: timedelta,
) -> None:
    """`kpi alerts list` said `[true]` for an alert whose `for:` had not passed (nobody was
    told), as if it fired; it says `[pending]` until a check finds it held (a `for: 2h` whose
    two hours passed after the last check fires at the next one: pending until then)."""
    import json

    from kpi_collector.cli import main

    folder, app = setup
    config = configure(folder, f"{{kpi: app.dau, below: 100, for: {hold}, notify: [team]}}")

    def listed() -> tuple[str, list[str], list[str]]:
        main(["-c", str(config), "alerts", "list", "--format", "json"])
        (row,) = json.loads(capsys.readouterr().out)["alerts"]
        return row["state"], row["true_for"], row["pending_for"]

    run(config, T0, dau=90)
    assert listed() == ("pending", [], ["app.dau below 100"])
    main(["-c", str(config), "alerts", "list"])
    assert "1  app.dau below 100  [pending] → team" in capsys.readouterr().out
    run(config, T0 + step, dau=90)
    assert listed()[0] == "pending" and texts(app) == []
    run(config, T0 + 2 * step, dau=90)
    assert len(texts(app)) == 1
    assert listed() == ("true", ["app.dau below 100"], [])


def test_a_silence_past_any_date_is_refused_and_one_stored_ends_at_the_latest(
    setup: tuple[Path, web.Application], capsys: pytest.CaptureFixture[str]
) -> None:
    """`--for 999999999999999w` stored the silence, then raised OverflowError (a traceback)
    printing its end, and `kpi alerts list` and the health report failed the same way for
    as long as it lasted."""
    from kpi_collector.cli import main
    from kpi_collector.store.alert_states import silence

    folder, _ = setup
    config = configure(folder, "{kpi: app.dau, below: 100, notify: [team]}")
    run(config, T0, dau=150)
    for long in ("999999999999999w", "1e20d", "36501d"):
        assert main(["-c", str(config), "alerts", "silence", "1", "--for", long]) == 2
        err = capsys.readouterr().err
        assert "is longer than a silence lasts (at most 100 years, 5200w)" in err
        assert "Traceback" not in err
    main(["-c", str(config), "alerts", "list"])
    assert "silenced" not in capsys.readouterr().out  # nothing was stored
    assert main(["-c", str(config), "alerts", "silence", "1", "--for", "5200w"]) == 0
    capsys.readouterr()
    # one stored past any date (by an earlier version) ends at 9999-01-01
    store = HistoryStore(load_config(config).store_url)
    try:
        silence(store, "app.dau below 100", until=1e20)
    finally:
        store.close()
    assert main(["-c", str(config), "alerts", "list"]) == 0
    assert "silenced until 9999-01-01 00:00 UTC" in capsys.readouterr().out
    main(["-c", str(config), "validate", "--health"])
    assert "silenced until 9999-01-01" in capsys.readouterr().out


@pytest.mark.parametrize("reminder", [False, True], ids=["fired", "reminder"])
def test_an_alert_slack_took_but_answered_too_late_is_not_posted_again_by_a_later_run(
    setup: tuple[Path, web.Application], reminder: bool
) -> None:
    """A Slack bot took the alert but answered after the timeout; the next run (another
    process: the bot's memory of the unanswered post is gone) posted it a second time, as
    the digest's retries look in the channel's history first but alerts did not. An alert
    pending since an earlier run is looked for in the history first, by its key, since the
    alert's identity began (its condition's `since`, a reminder's last telling)."""
    from kpi_collector.destinations.slack.fake import SLACK_CHANNEL_ID, FakeSlack

    folder, _ = setup
    repeat = ", repeat: 2d" if reminder else ""
    with FakeSlack.serve(TOKEN) as slack:
        path = folder / "kpi.yaml"
        path.write_text(
            "sources:\n"
            '  - {name: app, type: python, function: "tests.test_alerts:readings"}\n'
            "destinations:\n"
            f"  - {{name: slack, type: slack, token: {TOKEN}, channel: {SLACK_CHANNEL_ID},"
            f" api_url: '{slack.url}/api', every: month, timeout: 0.5, retries: 0}}\n"
            "alerts:\n"
            f"  - {{kpi: app.dau, below: 100, notify: [slack]{repeat}}}\n"
        )
        run(path, T0, dau=150)  # the month's digest, no alert
        at = T0 + DAY
        if reminder:
            run(path, at, dau=90)  # fired, told
            at += 2 * DAY
        # a reminder (begun at the last telling) is looked for first: that read is late too
        slack.answer_late(1.5, times=2 if reminder else 1)
        late = run(path, at, dau=80)  # the alert (or its reminder) posted, answered too late
        assert "timed out" in late.delivery_errors["slack (alerts)"]
        calls = slack.history_calls
        retried = run(path, at + DAY, dau=70)  # the next run: Slack has it already
        assert retried.delivery_errors == {}, retried.delivery_errors
        run(path, at + 2 * DAY, dau=60)  # told: nothing more to say
    alerts = [m["text"] for m in slack.slack if "blocks" not in m]
    assert len(alerts) == (2 if reminder else 1), alerts
    assert slack.history_calls > calls
