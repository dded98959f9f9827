"""The contract every destination keeps, checked against each one's real or faithful local
service: it delivers; a re-run in the same period updates the row (tables) or sends nothing
more (messages); an outage leaves the delivery pending and a later run delivers it, in order;
its secret never shows in errors, output or the store; two KPIs never share one name in it
(refused, nothing written, or each keeps its own); and a delivery over the service's size
limits is split, or refused for good without holding back the periods after it (issue 18).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kpi_collector import Pipeline
from kpi_collector.destinations import (
    CSV,
    JSONL,
    SQL,
    Discord,
    Email,
    GoogleSheets,
    Notion,
    Parquet,
    Pushgateway,
    Segment,
    Slack,
    Store,
    Webhook,
)
from kpi_collector.destinations.base import Destination
from kpi_collector.destinations.email.fake import smtp_server
from kpi_collector.destinations.google_sheets.fake import FakeSheets, service_account
from kpi_collector.destinations.notion.fake import FakeNotion
from kpi_collector.sources.python import Function
from tests.fakes.pushgateway import gauge, groups, pushgateway
from tests.fakes.tcp_proxy import TcpProxy
from tests.fakes.webhooks import FakeHooks
from tests.services import require_mysql_url, require_postgres_url

SECRET = "s3cret-destination-token-9f8e7d"
TITLE = "GitHub Stargazers"
DAY1 = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)  # a Monday
DAY2 = DAY1 + timedelta(days=1)


@dataclass
class Harness:
    """One destination type wired to its local service."""

    make: Callable[..., Destination]  # make(every=...) -> a destination
    table: bool  # upserts one row per period (else: a message per period)
    count: Callable[[], int]  # rows (tables) or messages held by the service
    value: Callable[[], float | None]  # the newest delivered value of github.stars
    down: Callable[[], None]
    up: Callable[[], None]
    secret: str | None = SECRET
    extra: dict[str, Any] = field(default_factory=dict)
    keeps_history: bool = True  # False: holds only the newest period (a Pushgateway's gauges)
    name: str = ""  # the harness's name (NAMES)
    size_options: dict[str, Any] = field(default_factory=dict)  # e.g. a size limit to split at


def _message_value(text: str) -> float | None:
    found = re.findall(rf"{TITLE}\**:\** ([\d,.]+)", text)
    return float(found[-1].replace(",", "")) if found else None


def _harness(name: str, tmp: Path, stack: ExitStack) -> Harness:
    if name == "notion":
        notion = stack.enter_context(FakeNotion.serve(SECRET))
        database = notion.add_database()

        def notion_value() -> float | None:
            rows = notion.rows(database)
            return rows[-1].get(TITLE) if rows else None

        return Harness(
            lambda **kw: Notion(
                token=SECRET, database=database, api_url=notion.url, requests_per_second=1000, **kw
            ),
            True,
            lambda: len(notion.rows(database)),
            notion_value,
            lambda: setattr(notion, "down", True),
            lambda: setattr(notion, "down", False),
        )
    if name in ("discord", "slack", "slack_bot", "webhook", "segment"):
        hooks = stack.enter_context(FakeHooks.serve(SECRET))
        down = lambda: setattr(hooks, "down", True)  # noqa: E731
        up = lambda: setattr(hooks, "down", False)  # noqa: E731
        if name == "discord":
            return Harness(
                lambda **kw: Discord(webhook_url=hooks.discord_url, **kw),
                False,
                lambda: len(hooks.discord),
                lambda: _message_value(hooks.discord[-1]["content"]) if hooks.discord else None,
                down,
                up,
            )
        if name in ("slack", "slack_bot"):

            def make_slack(**kw: Any) -> Destination:
                if name == "slack":
                    return Slack(webhook_url=hooks.slack_url, **kw)
                return Slack(token=SECRET, channel="#kpis", api_url=f"{hooks.url}/api", **kw)

            return Harness(
                make_slack,
                False,
                lambda: len(hooks.slack),
                lambda: _message_value(hooks.slack[-1]["text"]) if hooks.slack else None,
                down,
                up,
            )
        if name == "webhook":

            def hook_value() -> float | None:
                if not hooks.hooks:
                    return None
                body = json.loads(hooks.hooks[-1][0])
                return next(v["value"] for v in body["values"] if v["kpi"] == "github.stars")

            return Harness(
                lambda **kw: Webhook(url=hooks.hook_url, secret="hmac-key-for-tests", **kw),
                False,
                lambda: len(hooks.hooks),
                hook_value,
                down,
                up,
            )
        return Harness(
            lambda **kw: Segment(write_key=SECRET, api_url=hooks.url, **kw),
            False,
            lambda: len(hooks.segment),
            lambda: hooks.segment[-1]["properties"]["github.stars"] if hooks.segment else None,
            down,
            up,
        )
    if name == "email":
        port, ca_file, messages = stack.enter_context(smtp_server(tmp, "kpi-bot", SECRET))
        proxy = stack.enter_context(TcpProxy("127.0.0.1", port))

        def email_value() -> float | None:
            if not messages:
                return None
            body = messages[-1][0].get_body(preferencelist=("plain",)).get_content()
            return _message_value(body)

        return Harness(
            lambda **kw: Email(
                host="127.0.0.1",
                port=proxy.port,
                username="kpi-bot",
                password=SECRET,
                sender="KPI bot <kpi@example.com>",
                to=["team@example.com"],
                ca_file=str(ca_file),
                timeout=5,
                **kw,
            ),
            False,
            lambda: len(messages),
            email_value,
            proxy.down,
            proxy.up,
        )
    if name == "pushgateway":
        url = stack.enter_context(pushgateway())
        port = int(url.rsplit(":", 1)[1])
        proxy = stack.enter_context(TcpProxy("127.0.0.1", port))
        return Harness(
            lambda **kw: Pushgateway(url=f"http://127.0.0.1:{proxy.port}", timeout=5, **kw),
            True,
            lambda: len([g for g in groups(url) if g["labels"].get("job") == "kpi_collector"]),
            lambda: gauge(url, "github.stars"),
            proxy.down,
            proxy.up,
            secret=None,
            keeps_history=False,
        )
    if name == "google_sheets":
        sheets = stack.enter_context(FakeSheets.serve())
        key = sheets.add_spreadsheet()
        credentials = json.dumps(service_account(sheets.token_uri))

        def sheet_value() -> float | None:
            values = sheets.values(key, "KPIs")
            if len(values) < 2 or TITLE not in values[0]:
                return None
            return values[-1][values[0].index(TITLE)]

        return Harness(
            lambda **kw: GoogleSheets(
                spreadsheet=key, credentials=credentials, api_url=sheets.url, timeout=5, **kw
            ),
            True,
            lambda: (
                max(0, len(sheets.values(key, "KPIs")) - 1)
                if any(s["title"] == "KPIs" for s in sheets.spreadsheets[key])
                else 0
            ),
            sheet_value,
            lambda: setattr(sheets, "down", True),
            lambda: setattr(sheets, "down", False),
            secret=None,
            extra={"private_key": json.loads(credentials)["private_key"]},
        )
    if name in ("csv", "jsonl", "parquet"):
        folder = tmp / "out"
        path = folder / f"kpis.{name}"
        cls = {"csv": CSV, "jsonl": JSONL, "parquet": Parquet}[name]

        def file_rows() -> list[dict[str, Any]]:
            if not path.exists():
                return []
            return cls(path=str(path)).read(path)

        def file_value() -> float | None:
            rows = file_rows()
            return float(rows[-1]["github.stars"]) if rows else None

        def block() -> None:  # the folder is a plain file: every write fails
            shutil.rmtree(folder, ignore_errors=True)
            folder.write_text("not a folder")

        def unblock() -> None:
            folder.unlink()

        return Harness(
            lambda **kw: cls(path=str(path), **kw),
            True,
            lambda: len(file_rows()),
            file_value,
            block,
            unblock,
            secret=None,
        )
    if name in ("sql_sqlite", "sql_postgres", "sql_mysql"):
        return _sql_harness(name, tmp, stack)
    raise AssertionError(name)


def _sql_harness(name: str, tmp: Path, stack: ExitStack) -> Harness:
    import sqlalchemy as sa

    table = f"kpis_{uuid.uuid4().hex[:8]}"
    if name == "sql_sqlite":
        folder = tmp / "warehouse"
        folder.mkdir()
        url = f"sqlite:///{folder / 'w.db'}"
        direct = url

        def down() -> None:
            shutil.move(folder, tmp / "moved")
            folder.write_text("not a folder")

        def up() -> None:
            folder.unlink()
            shutil.move(tmp / "moved", folder)

        secret = None
    else:
        base = require_postgres_url() if name == "sql_postgres" else require_mysql_url()
        parsed = sa.engine.make_url(base)
        proxy = stack.enter_context(TcpProxy(parsed.host or "127.0.0.1", parsed.port or 5432))
        direct = base
        # PostgreSQL trusts local connections, so the password is never checked but is still sent
        password = SECRET if name == "sql_postgres" else None
        url = parsed.set(host="127.0.0.1", port=proxy.port, password=password).render_as_string(
            hide_password=False
        )
        down, up = proxy.down, proxy.up
        secret = SECRET if password else None
        engine = sa.create_engine(direct)
        stack.callback(engine.dispose)
        stack.callback(lambda: _drop(engine, table))

    def rows() -> list[dict[str, Any]]:
        if name == "sql_sqlite" and not (tmp / "warehouse").is_dir():
            return []  # during the outage: nothing written, nothing to read
        engine = sa.create_engine(direct)
        try:
            with engine.connect() as conn:
                if not sa.inspect(conn).has_table(table):
                    return []
                return [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {table}"))]
        finally:
            engine.dispose()

    def value() -> float | None:
        found = rows()
        return float(found[-1]["github_stars"]) if found else None

    return Harness(
        lambda **kw: SQL(url=url, table=table, timeout=5, **kw),
        True,
        lambda: len(rows()),
        value,
        down,
        up,
        secret=secret,
    )


def _drop(engine: Any, table: str) -> None:
    import sqlalchemy as sa

    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))


NAMES = [
    "notion",
    "discord",
    "slack",
    "slack_bot",
    "email",
    "webhook",
    "segment",
    "pushgateway",
    "google_sheets",
    "csv",
    "jsonl",
    "parquet",
    "sql_sqlite",
    "sql_postgres",
    "sql_mysql",
]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    from kpi_collector.deliver import engine as delivery

    monkeypatch.setattr(delivery, "BACKOFF", 0.01)


@pytest.fixture(params=NAMES)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    with ExitStack() as stack:
        made = _harness(request.param, tmp_path, stack)
        made.name = request.param
        if request.param == "email":  # the local server announces no small SIZE: set one
            made.size_options = {"max_size": 50_000}
        yield made


class Source:
    """A source whose values the test sets: `github.stars`, `github.forks`."""

    def __init__(self) -> None:
        self.values = {"stars": 1647.0, "forks": 12.0}

    def __call__(self) -> dict[str, float]:
        return dict(self.values)


def make_pipeline(tmp_path: Path, destination: Destination, source: Source) -> Pipeline:
    return Pipeline(
        sources=[Function(source, name="github")],
        destinations=[Store(f"sqlite:///{tmp_path / 'kpi.db'}"), destination],
        kpis={"github.stars": {"title": TITLE}},
        north_star="github.stars",
        base_dir=tmp_path,
    )


def test_delivers(harness: Harness, tmp_path: Path) -> None:
    pipeline = make_pipeline(tmp_path, harness.make(every="day", retries=0), Source())
    result = pipeline.process(now=DAY1)
    assert result.delivery_errors == {}
    assert result.exit_code == 0
    assert harness.count() == 1
    assert harness.value() == 1647


def test_rerun_in_the_same_period_updates_or_sends_nothing(
    harness: Harness, tmp_path: Path
) -> None:
    source = Source()
    pipeline = make_pipeline(tmp_path, harness.make(every="day", retries=0), source)
    assert pipeline.process(now=DAY1).exit_code == 0
    source.values["stars"] = 1650.0
    result = pipeline.process(now=DAY1 + timedelta(hours=3))
    assert result.exit_code == 0, result.delivery_errors
    assert harness.count() == 1  # never a second row, never a second message
    assert harness.value() == (1650 if harness.table else 1647)
    source.values["stars"] = 1700.0
    assert pipeline.process(now=DAY2).exit_code == 0  # the next period: a new row / message
    assert harness.count() == (2 if harness.keeps_history else 1)
    assert harness.value() == 1700


def test_outage_stays_pending_and_recovers_in_order(harness: Harness, tmp_path: Path) -> None:
    source = Source()
    destination = harness.make(every="day", retries=1)
    pipeline = make_pipeline(tmp_path, destination, source)
    harness.down()
    first = pipeline.process(now=DAY1)
    assert first.exit_code == 1
    assert destination.name in first.delivery_errors
    assert first.values["github.stars"] == 1647  # the run itself is stored
    source.values["stars"] = 1700.0
    second = pipeline.process(now=DAY2)
    assert second.exit_code == 1
    engine = pipeline.delivery_engine()
    pending = engine.records(status="pending")
    assert [r.period for r in pending] == ["2026-11-23", "2026-11-24"]
    assert pending[0].attempts >= 2 and pending[0].last_error
    assert harness.count() == 0
    harness.up()
    outcomes = asyncio.run(engine.deliver_pending())
    assert [(o.period, o.ok) for o in outcomes] == [("2026-11-23", True), ("2026-11-24", True)]
    assert engine.records(status="pending") == []
    assert harness.count() == (2 if harness.keeps_history else 1)
    assert harness.value() == 1700  # the newer period went out last


def test_secret_never_leaks(
    harness: Harness, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secrets = [s for s in (harness.secret, harness.extra.get("private_key")) if s]
    if not secrets:
        pytest.skip("this destination has no secret of its own")
    destination = harness.make(every="day", retries=0)
    assert all(
        s not in repr(destination) and s not in str(destination.model_dump()) for s in secrets
    )
    pipeline = make_pipeline(tmp_path, destination, Source())
    harness.down()
    result = pipeline.process(now=DAY1)
    assert result.exit_code == 1
    text = json.dumps(result.to_dict()) + str(result.delivery_errors)
    records = pipeline.delivery_engine().records()
    text += json.dumps([r.to_dict() for r in records])
    harness.up()
    assert pipeline.process(now=DAY2).exit_code == 0
    pipeline.store.close()  # type: ignore[union-attr]
    with sqlite3.connect(tmp_path / "kpi.db") as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'").fetchall():
            text += json.dumps(db.execute(f"SELECT * FROM {table}").fetchall())
    captured = capsys.readouterr()
    text += captured.out + captured.err
    assert records and records[0].last_error  # the failure was recorded ...
    for secret in secrets:
        assert secret not in text  # ... without the secret


# names and sizes (issue 18) ------------------------------------------------------------------

#: where two KPIs of one title, one folded id, or a derived KPI called `period` would share a
#: name (each destination's own naming rule, in its README.md)
REFUSED_CLASHES = {
    "title": {"notion", "google_sheets"},
    "folded_id": {"sql_sqlite", "sql_postgres", "sql_mysql"},
    "reserved": {"csv", "jsonl", "parquet", "segment", "sql_sqlite", "sql_postgres", "sql_mysql"},
}


@pytest.mark.parametrize("clash", sorted(REFUSED_CLASHES))
def test_two_kpis_never_share_one_name(harness: Harness, tmp_path: Path, clash: str) -> None:
    """The collision kind over every destination: either each KPI keeps a name of its own and
    all are delivered, or the delivery is refused for good naming both KPIs, with nothing
    written — never one value silently in the other's place. Run-time KPIs (as from a source
    whose metrics come from its answer), so the load-time check does not see them."""
    source = Source()
    kpis: dict[str, Any] = {"github.stars": {"title": TITLE}}
    if clash == "title":
        source.values["stars_copy"] = 1647.0
        kpis["github.stars_copy"] = {"title": TITLE}
    elif clash == "folded_id":
        source.values.update({"Forks": 3.0, "forks": 12.0})
    else:
        kpis["period"] = {"formula": "github.forks + 1"}
    destination = harness.make(every="day", retries=0)
    pipeline = Pipeline(
        sources=[Function(source, name="github")],
        destinations=[Store(f"sqlite:///{tmp_path / 'kpi.db'}"), destination],
        kpis=kpis,
        north_star="github.stars",
        base_dir=tmp_path,
    )
    result = pipeline.process(now=DAY1)
    (record,) = pipeline.delivery_engine().records()
    if harness.name in REFUSED_CLASHES[clash]:
        error = result.delivery_errors[destination.name]
        named = {
            "title": "KPIs github.stars and github.stars_copy both map to ",
            "folded_id": "KPIs github.Forks and github.forks both map to column 'github_forks'",
            "reserved": "KPI period maps to ",
        }[clash]
        assert named in error and "refused for good" in error
        assert record.status == "failed"
        assert harness.count() == 0  # nothing written
    else:
        assert result.delivery_errors == {}
        assert record.status == "done"
        assert harness.value() == 1647


def test_a_delivery_over_the_size_limits_is_split_or_refused_never_held(
    harness: Harness, tmp_path: Path
) -> None:
    """The size kind over every destination: 1,800 KPIs are over Discord's 2000 characters,
    Slack's blocks, Segment's 32 KB, the email's size limit and PostgreSQL's / InnoDB's
    columns per table. Each destination splits the delivery within its service's limits (the
    fakes refuse what the services refuse) or refuses it for good with the reason, and the
    next period goes out either way."""
    source = Source()
    source.values.update({f"kpi_{i:04d}": float(i) for i in range(1800)})
    destination = harness.make(every="day", retries=1, **harness.size_options)
    pipeline = make_pipeline(tmp_path, destination, source)
    first = pipeline.process(now=DAY1)
    (record,) = pipeline.delivery_engine().records()
    if harness.name in ("sql_postgres", "sql_mysql"):  # a wide table: one column per KPI
        assert (
            "1,802 KPIs are over the database's columns per table"
            in (first.delivery_errors[destination.name])
        )
        assert record.status == "failed"
    else:
        assert first.delivery_errors == {}
        assert record.status == "done"
        assert harness.count() >= 1
        if harness.table:
            assert harness.value() == 1647
    sent = harness.count()
    source.values = {"stars": 1700.0}
    second = pipeline.process(now=DAY2)
    assert second.delivery_errors == {}
    assert harness.value() == 1700
    assert harness.count() == (sent + 1 if harness.keeps_history else 1)


# pushgateway in detail ------------------------------------------------------------------------


# a secret echoed by the service --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["discord", "slack", "webhook"])
def test_a_webhook_token_echoed_by_the_service_never_leaks(tmp_path: Path, kind: str) -> None:
    """The service refuses the delivery and its error body echoes the webhook URL's path and
    its token alone (as a proxy's or the service's own "no webhook at ..." does): `kpi run`,
    `kpi deliver`, `kpi deliver --list` and every table of the store show neither, only the
    service's answer around them."""
    from urllib.parse import urlsplit

    from tests.cli import run_kpi

    token = "TokenOnlyInTheUrl0123456789abcdef"
    with FakeHooks.serve(token) as hooks:
        url = {"discord": hooks.discord_url, "slack": hooks.slack_url, "webhook": hooks.hook_url}
        path = urlsplit(url[kind]).path
        echoed = f"no webhook at {path} (token {token})"
        hooks.fail_next(500, {"message": echoed, "error": echoed}, times=20)
        (tmp_path / "echo_kpis.py").write_text("def get():\n    return {'stars': 5}\n")
        key = "url" if kind == "webhook" else "webhook_url"
        (tmp_path / "kpi.yaml").write_text(
            "sources:\n"
            '  - {name: github, type: python, function: "echo_kpis:get"}\n'
            "destinations:\n"
            f'  - {{type: {kind}, {key}: "${{HOOK_URL}}", every: day, retries: 0}}\n'
        )
        env = {"HOOK_URL": url[kind], "PYTHONPATH": str(tmp_path), "KPI_LOG_LEVEL": "debug"}
        outputs = [run_kpi(tmp_path, "run", env=env), run_kpi(tmp_path, "deliver", env=env)]
        outputs.append(run_kpi(tmp_path, "deliver", "--list", "--format", "json", env=env))
    text = "".join(o.stdout + o.stderr for o in outputs)
    assert [o.returncode for o in outputs] == [1, 1, 0]
    assert "no webhook at" in text  # the service's answer is shown ...
    with sqlite3.connect(tmp_path / "kpi.db") as db:
        text += "\n".join(db.iterdump())
    assert token not in text  # ... without the token it echoed
    assert "TokenOnlyInTheUrl" not in text  # nor the start of it, where a message is cut


def test_refused_credentials_name_the_key_and_variable_to_check(tmp_path: Path) -> None:
    """Several destinations at once, each with a wrong token, webhook URL or write key: each
    fails at once (no retry: a retry cannot fix a credential), stays pending, and its line
    names the destination, the config key and the `${VAR}` to check (never a value); with the
    right values, `kpi deliver` sends every one."""
    from tests.cli import run_kpi

    with FakeNotion.serve(SECRET) as notion, FakeHooks.serve(SECRET) as hooks:
        database = notion.add_database()
        (tmp_path / "cred_kpis.py").write_text("def get():\n    return {'stars': 5}\n")
        (tmp_path / "kpi.yaml").write_text(
            "sources:\n"
            '  - {name: github, type: python, function: "cred_kpis:get"}\n'
            "destinations:\n"
            f'  - {{type: notion, token: "${{NOTION_TOKEN}}", database: {database}, '
            f'api_url: "{notion.url}", every: day}}\n'
            '  - {type: discord, webhook_url: "${DISCORD_WEBHOOK}", every: day}\n'
            '  - {type: slack, webhook_url: "${SLACK_WEBHOOK}", every: day}\n'
            f'  - {{name: bot, type: slack, token: "${{SLACK_BOT_TOKEN}}", channel: "#kpis", '
            f'api_url: "{hooks.url}/api", every: day}}\n'
            '  - {type: webhook, url: "${HOOK_URL}", every: day}\n'
            f'  - {{type: segment, write_key: "${{SEGMENT_KEY}}", api_url: "{hooks.url}", '
            "every: day}\n"
        )
        right = {
            "NOTION_TOKEN": SECRET,
            "DISCORD_WEBHOOK": hooks.discord_url,
            "SLACK_WEBHOOK": hooks.slack_url,
            "SLACK_BOT_TOKEN": SECRET,
            "HOOK_URL": hooks.hook_url,
            "SEGMENT_KEY": SECRET,
        }
        wrong = {k: v.replace(SECRET, "wrong-credential-0123456789") for k, v in right.items()}
        run = run_kpi(tmp_path, "run", env={**wrong, "PYTHONPATH": str(tmp_path)})
        assert run.returncode == 1
        lines = {
            line.split(":")[0].removeprefix("delivery failed "): line
            for line in run.stdout.splitlines()
            if line.startswith("delivery failed ")
        }
        expected = {
            "notion": "check `token` of destination 'notion': ${NOTION_TOKEN}",
            "discord": "check `webhook_url` of destination 'discord': ${DISCORD_WEBHOOK}",
            "slack": "check `webhook_url` of destination 'slack': ${SLACK_WEBHOOK}",
            "bot": "check `token` of destination 'bot': ${SLACK_BOT_TOKEN}",
            "webhook": "check `url` of destination 'webhook': ${HOOK_URL}",
            "segment": "check `write_key` of destination 'segment': ${SEGMENT_KEY}",
        }
        assert sorted(lines) == sorted(expected)
        for name, hint in expected.items():
            assert hint in lines[name] and "(pending; retried on the next run)" in lines[name]
        assert "wrong-credential" not in run.stdout + run.stderr
        with sqlite3.connect(tmp_path / "kpi.db") as db:
            states = set(db.execute("SELECT status, attempts FROM deliveries"))
        assert states == {("pending", 1)}  # tried once each, never retried in a loop
        done = run_kpi(tmp_path, "deliver", env={**right, "PYTHONPATH": str(tmp_path)})
        assert done.returncode == 0, done.stdout + done.stderr
        assert "6 delivered, 0 failed, 0 pending" in done.stdout
