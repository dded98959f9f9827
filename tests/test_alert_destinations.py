"""Alerts through the built-in message destinations — discord, slack (webhook and bot token),
email and webhook — against their local services (tests/fakes/webhooks.py, a real aiosmtpd
SMTP server): an alert in a real kpi.yaml fires once and resolves once through each, the text
arrives, an outage is told on the next run, and no secret reaches output, errors or the store.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from kpi_collector.config import parse_config
from kpi_collector.destinations import CSV, Discord, Segment, Slack, Webhook
from kpi_collector.destinations.email.fake import free_port, smtp_server
from kpi_collector.errors import ConfigError, DeliveryError
from kpi_collector.pipeline import Pipeline, RunResult
from tests.destinations import FIRED
from tests.fakes.tcp_proxy import TcpProxy
from tests.fakes.webhooks import FakeHooks

ROOT = Path(__file__).resolve().parents[1]
SECRET = "alert-secret-7b3c91-in-urls-tokens-passwords"  # webhook URLs, bot token, SMTP password
HMAC_KEY = "alert-hmac-key-55e1d0"
NAMES = ["discord", "slack", "slack_bot", "email", "webhook"]
RESOLVED = "✅ Resolved: app.dau below 100 — Daily active users is 120"


def dau() -> dict[str, float]:
    """The source: today's value from the environment (works in `kpi run` subprocesses too)."""
    return {"dau": float(os.environ["ALERT_DAU"])}


DESTINATIONS = {
    "discord": '{name: discord, type: discord, webhook_url: "${DISCORD_WEBHOOK}"',
    "slack": '{name: slack, type: slack, webhook_url: "${SLACK_WEBHOOK}"',
    "slack_bot": (
        '{name: slack_bot, type: slack, token: "${SLACK_BOT_TOKEN}", channel: "#kpis", '
        'api_url: "${SLACK_API}"'
    ),
    "email": (
        '{name: email, type: email, host: 127.0.0.1, port: "${SMTP_PORT}", username: kpi-bot, '
        'password: "${SMTP_PASSWORD}", from: "KPI bot <kpi@example.com>", to: [team@example.com], '
        'ca_file: "${SMTP_CA}", timeout: 5'
    ),
    "webhook": '{name: webhook, type: webhook, url: "${HOOK_URL}", secret: "${HOOK_SECRET}"',
}


def plain_text(message: EmailMessage) -> str:
    """The text/plain body as sent (SMTP carries CRLF line ends)."""
    body = message.get_body(preferencelist=("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n").rstrip("\n")


@dataclass
class Services:
    """Every message service at once, and the environment that points kpi.yaml at them."""

    hooks: FakeHooks
    mails: list[tuple[EmailMessage, Any]]
    smtp: TcpProxy
    env: dict[str, str]

    def texts(self, name: str) -> list[str]:
        """The alert texts the destination `name` delivered, oldest first (digests left out)."""
        if name == "discord":
            found = [m["content"] for m in self.hooks.discord]
        elif name in ("slack", "slack_bot"):  # the bot's messages name their channel
            found = [b["text"] for b in self.hooks.slack if ("channel" in b) == (name != "slack")]
        elif name == "email":
            found = [plain_text(m) for m, _ in self.mails if m["X-KPI-Alert"]]
        else:
            bodies = [json.loads(raw) for raw, _ in self.hooks.hooks]
            found = [b["text"] for b in bodies if b.get("type") == "alert"]
        return [t for t in found if t.startswith(("🚨", "✅"))]

    def down(self) -> None:
        self.hooks.down = True
        self.smtp.down()

    def up(self) -> None:
        self.hooks.down = False
        self.smtp.up()


@pytest.fixture
def services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    from kpi_collector.deliver import engine as delivery

    monkeypatch.setattr(delivery, "BACKOFF", 0.01)  # retries within the run, quickly
    with ExitStack() as stack:
        hooks = stack.enter_context(FakeHooks.serve(SECRET))
        port, ca_file, mails = stack.enter_context(smtp_server(tmp_path, "kpi-bot", SECRET))
        proxy = stack.enter_context(TcpProxy("127.0.0.1", port))
        env = {
            "DISCORD_WEBHOOK": hooks.discord_url,
            "SLACK_WEBHOOK": hooks.slack_url,
            "SLACK_BOT_TOKEN": SECRET,
            "SLACK_API": f"{hooks.url}/api",
            "SMTP_PORT": str(proxy.port),
            "SMTP_PASSWORD": SECRET,
            "SMTP_CA": str(ca_file),
            "HOOK_URL": hooks.hook_url,
            "HOOK_SECRET": HMAC_KEY,
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield Services(hooks, mails, proxy, env)


def configure(folder: Path, *names: str, retries: int = 1) -> Path:
    """kpi.yaml: the source, the destinations (`every: month`: their digest goes out once, on
    the first run) and one alert that notifies all of them."""
    lines = [
        "store: sqlite:///kpi.db",
        "sources:",
        '  - {name: app, type: python, function: "tests.test_alert_destinations:dau"}',
        "destinations:",
        *(f"  - {DESTINATIONS[n]}, every: month, retries: {retries}}}" for n in names),
        "kpis:",
        "  app.dau: {title: Daily active users}",
        "alerts:",
        f"  - {{kpi: app.dau, below: 100, notify: [{', '.join(names)}]}}",
    ]
    path = folder / "kpi.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def run(config: Path, value: float, monkeypatch: pytest.MonkeyPatch) -> RunResult:
    monkeypatch.setenv("ALERT_DAU", str(value))
    pipeline = Pipeline.from_config(config)
    try:
        return pipeline.process()
    finally:
        assert pipeline.store is not None
        pipeline.store.close()


def store_dump(folder: Path) -> str:
    """Every row of every table of the store, as text."""
    text = ""
    with sqlite3.connect(folder / "kpi.db") as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
            text += json.dumps(db.execute(f"SELECT * FROM {table}").fetchall(), default=str)
    return text


def assert_no_secret(text: str) -> None:
    for secret in (SECRET, HMAC_KEY):
        assert secret not in text


# firing and resolving through each destination --------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_an_alert_fires_once_and_resolves_once_through_the_destination(
    name: str,
    services: Services,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    config = configure(tmp_path, name)
    first = run(config, 150, monkeypatch)
    assert first.exit_code == 0 and first.delivered == [name]  # the digest went out
    assert services.texts(name) == []  # a rule that was never true says nothing

    fired = run(config, 80, monkeypatch)
    assert fired.exit_code == 0, fired.delivery_errors
    assert services.texts(name) == [FIRED]
    run(config, 70, monkeypatch)  # still below: nothing new
    assert services.texts(name) == [FIRED]

    resolved = run(config, 120, monkeypatch)
    assert resolved.exit_code == 0, resolved.delivery_errors
    assert services.texts(name) == [FIRED, RESOLVED]
    run(config, 130, monkeypatch)
    assert services.texts(name) == [FIRED, RESOLVED]

    assert_no_secret(store_dump(tmp_path) + caplog.text)


@pytest.mark.parametrize("name", NAMES)
def test_a_destination_that_is_down_is_told_on_the_next_run_without_leaking_its_secret(
    name: str,
    services: Services,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    config = configure(tmp_path, name)
    run(config, 150, monkeypatch)
    services.down()
    failed = run(config, 80, monkeypatch)
    assert failed.exit_code == 1
    error = failed.delivery_errors[f"{name} (alerts)"]
    assert error.startswith("app.dau below 100: ")
    assert "503" in error or "cannot reach" in error  # says why ...
    assert services.texts(name) == []
    services.up()

    again = run(config, 75, monkeypatch)  # still firing: told now, once
    assert again.exit_code == 0, again.delivery_errors
    assert services.texts(name) == [
        "🚨 Alert: app.dau below 100 — Daily active users is 75, below 100"
    ]
    run(config, 70, monkeypatch)
    assert len(services.texts(name)) == 1

    captured = capsys.readouterr()
    text = json.dumps(failed.to_dict()) + str(failed.delivery_errors) + captured.out + captured.err
    assert_no_secret(text + caplog.text + store_dump(tmp_path))  # ... but never the secret


def test_kpi_run_sends_alerts_through_every_message_destination(
    services: Services, tmp_path: Path
) -> None:
    """`kpi run` subprocesses with the five destinations in one kpi.yaml: fire (with all of
    them down, then told on the next run), resolve; no secret in any output."""
    config = configure(tmp_path, *NAMES, retries=0)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}
    env.update(services.env, PYTHONPATH=str(ROOT))
    outputs: list[str] = []

    def kpi_run(value: float) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "kpi_collector", "-c", str(config), "run"],
            cwd=tmp_path,
            env={**env, "ALERT_DAU": str(value)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        outputs.append(done.stdout + done.stderr)
        return done

    assert kpi_run(150).returncode == 0, outputs[-1]
    services.down()
    down = kpi_run(80)
    assert down.returncode == 1
    for name in NAMES:
        assert f"delivery failed {name} (alerts): app.dau below 100: " in down.stdout + down.stderr
    services.up()
    assert kpi_run(80).returncode == 0, outputs[-1]
    assert kpi_run(120).returncode == 0, outputs[-1]
    for name in NAMES:
        assert services.texts(name) == [FIRED, RESOLVED], name
    assert_no_secret("".join(outputs) + store_dump(tmp_path))


# each destination's message ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["discord", "slack", "webhook"])
def test_an_unreachable_secret_url_is_transient_and_never_named(
    kind: str, services: Services
) -> None:
    url = f"http://127.0.0.1:{free_port()}/api/webhooks/1/{SECRET}?key={SECRET}"
    destination = {
        "discord": lambda: Discord(webhook_url=url, retries=1),
        "slack": lambda: Slack(webhook_url=url, retries=1),
        "webhook": lambda: Webhook(url=url, retries=1),
    }[kind]()
    with pytest.raises(DeliveryError) as caught:
        asyncio.run(destination.send_text(FIRED))
    assert caught.value.transient and "cannot reach" in str(caught.value)
    assert_no_secret(str(caught.value) + repr(caught.value))


# which destinations can carry alerts ---------------------------------------------------------------


def test_message_destinations_can_send_text_and_the_others_cannot(services: Services) -> None:
    config = parse_config(
        "sources:\n"
        '  - {name: app, type: python, function: "tests.test_alert_destinations:dau"}\n'
        "destinations:\n"
        + "".join(f"  - {DESTINATIONS[n]}}}\n" for n in NAMES)
        + "kpis: {app.dau: {title: DAU}}\n"
        f"alerts:\n  - {{kpi: app.dau, below: 1, notify: [{', '.join(NAMES)}]}}\n",
        env=services.env,
    )
    assert [d.can_send_text for d in config.destinations] == [True] * len(NAMES)
    assert not Segment(write_key=SECRET).can_send_text
    assert not CSV(path="k.csv").can_send_text
    with pytest.raises(ConfigError) as caught:
        parse_config(
            "sources:\n"
            '  - {name: app, type: python, function: "tests.test_alert_destinations:dau"}\n'
            "destinations:\n"
            f"  - {DESTINATIONS['discord']}}}\n"
            '  - {type: segment, write_key: "${SEGMENT_KEY}"}\n'
            "alerts:\n  - {kpi: app.dau, below: 1, notify: [segment]}\n",
            env={**services.env, "SEGMENT_KEY": SECRET},
        )
    message = str(caught.value)
    assert "destination 'segment' (type segment) cannot send alerts" in message
    assert "notify a message destination: discord" in message
    assert_no_secret(message)


def test_a_secret_written_into_an_alert_name_or_title_is_never_sent_nor_logged(
    services: Services,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An alert `name:` and a KPI title that use a secret's `${VAR}` went out as written in
    the alert's message, the log and the run's delivery errors (the store kept its message
    redacted only)."""
    caplog.set_level(logging.INFO)
    config = configure(tmp_path, "webhook")
    text = config.read_text(encoding="utf-8")
    text = text.replace("{title: Daily active users}", '{title: "DAU ${HOOK_SECRET}"}')
    text = text.replace("{kpi: app.dau,", '{name: "low ${HOOK_SECRET}", kpi: app.dau,')
    config.write_text(text, encoding="utf-8")
    run(config, 150, monkeypatch)
    services.down()
    failed = run(config, 80, monkeypatch)
    assert failed.delivery_errors["webhook (alerts)"].startswith("low ***: ")
    services.up()
    run(config, 75, monkeypatch)
    assert services.texts("webhook") == ["🚨 Alert: low *** — DAU *** is 75, below 100"]
    assert_no_secret(str(failed.delivery_errors) + caplog.text + "".join(services.texts("webhook")))
