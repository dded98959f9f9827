"""Table-like destinations in detail: long layouts, new KPIs adding columns, a KPI missing from
a re-run keeping its value, SQL on SQLite, PostgreSQL and MariaDB, sheets, files that are not ours;
and the email destination against a real SMTP server (STARTTLS, login, HTML + text)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from kpi_collector import Pipeline
from kpi_collector.destinations import CSV, JSONL, SQL, Email, GoogleSheets, Parquet, Store
from kpi_collector.destinations.base import Destination
from kpi_collector.destinations.email.fake import smtp_server
from kpi_collector.destinations.google_sheets.fake import FakeSheets, service_account
from kpi_collector.errors import DeliveryError
from kpi_collector.sources.python import Function
from tests.services import require_mysql_url, require_postgres_url

DAY = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    from kpi_collector.deliver import engine as delivery

    monkeypatch.setattr(delivery, "BACKOFF", 0.01)


def pipeline(tmp_path: Path, destination: Destination, state: dict[str, float]) -> Pipeline:
    return Pipeline(
        sources=[Function(lambda: dict(state), name="github")],
        destinations=[Store(f"sqlite:///{tmp_path / 'kpi.db'}"), destination],
        kpis={"github.stars": {"title": "GitHub Stargazers"}},
        base_dir=tmp_path,
    )


@pytest.mark.parametrize("cls", [CSV, JSONL, Parquet])
def test_files_wide_keep_kpis_missing_from_a_rerun(cls: type[CSV], tmp_path: Path) -> None:
    state = {"stars": 10.0, "forks": 2.0}
    path = tmp_path / f"k.{cls.type}"
    p = pipeline(tmp_path, cls(path=str(path), every="day"), state)
    assert p.process(now=DAY).exit_code == 0
    del state["forks"]  # e.g. `kpi run --only` or a failing metric
    state["stars"] = 11.0
    assert p.process(now=DAY + timedelta(hours=1)).exit_code == 0
    rows = cls(path=str(path)).read(path)
    assert len(rows) == 1
    assert float(rows[0]["github.stars"]) == 11 and float(rows[0]["github.forks"]) == 2
    assert rows[0]["period"] == "2026-11-30" and rows[0]["date"] == "2026-11-30"


@pytest.mark.parametrize("cls", [CSV, JSONL, Parquet])
def test_files_long_layout(cls: type[CSV], tmp_path: Path) -> None:
    state = {"stars": 10.0, "forks": 2.0}
    path = tmp_path / f"k.{cls.type}"
    p = pipeline(tmp_path, cls(path=str(path), every="day", layout="long"), state)
    p.process(now=DAY)
    state["stars"] = 12.0
    p.process(now=DAY + timedelta(hours=1))
    p.process(now=DAY + timedelta(days=1))
    rows = cls(path=str(path)).read(path)
    got = sorted((r["period"], r["kpi"], float(r["value"])) for r in rows)
    assert got == [
        ("2026-11-30", "github.forks", 2.0),
        ("2026-11-30", "github.stars", 12.0),
        ("2026-12-01", "github.forks", 2.0),
        ("2026-12-01", "github.stars", 12.0),
    ]
    assert {r["title"] for r in rows} == {"GitHub Stargazers", "github.forks"}


def test_csv_text(tmp_path: Path) -> None:
    pipeline(tmp_path, CSV(path="kpis.csv", every="day"), {"stars": 1647.0, "ratio": 0.25}).process(
        now=DAY
    )
    assert (
        tmp_path / "kpis.csv"
    ).read_text() == "period,date,github.stars,github.ratio\n2026-11-30,2026-11-30,1647,0.25\n"


def test_a_file_that_is_not_ours_is_a_terminal_error(tmp_path: Path) -> None:
    (tmp_path / "kpis.jsonl").write_text("[1, 2, 3]\n")
    result = pipeline(tmp_path, JSONL(path="kpis.jsonl", every="day"), {"stars": 1.0}).process(
        now=DAY
    )
    assert "move it away or point `path` elsewhere" in result.delivery_errors["jsonl"]
    assert (tmp_path / "kpis.jsonl").read_text() == "[1, 2, 3]\n"  # untouched


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'warehouse.db'}"
        return
    url = require_postgres_url() if request.param == "postgresql" else require_mysql_url()
    yield url


def _rows(url: str, table: str) -> list[dict[str, Any]]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [
                dict(r._mapping)
                for r in conn.execute(sa.text(f"SELECT * FROM {table} ORDER BY period"))
            ]
    finally:
        engine.dispose()


def _drop(url: str, table: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()


@pytest.mark.parametrize("layout", ["wide", "long"])
def test_sql_upserts_and_adds_columns(warehouse: str, layout: str, tmp_path: Path) -> None:
    table = f"kpi_test_{layout}_{tmp_path.name[-8:].replace('-', '_')}".lower()
    _drop(warehouse, table)
    try:
        state = {"stars": 10.0}
        p = pipeline(tmp_path, SQL(url=warehouse, table=table, layout=layout, every="day"), state)
        assert p.process(now=DAY).exit_code == 0
        state.update(stars=11.0, forks=3.0)  # a new KPI: a new column (wide)
        result = p.process(now=DAY + timedelta(hours=2))
        assert result.exit_code == 0, result.delivery_errors
        p.process(now=DAY + timedelta(days=1))
        rows = _rows(warehouse, table)
        if layout == "wide":
            assert [(r["period"], r["github_stars"], r["github_forks"]) for r in rows] == [
                ("2026-11-30", 11.0, 3.0),
                ("2026-12-01", 11.0, 3.0),
            ]
        else:
            got = sorted((r["period"], r["kpi"], r["value"]) for r in rows)
            assert got == [
                ("2026-11-30", "github.forks", 3.0),
                ("2026-11-30", "github.stars", 11.0),
                ("2026-12-01", "github.forks", 3.0),
                ("2026-12-01", "github.stars", 11.0),
            ]
    finally:
        _drop(warehouse, table)


def test_sql_bad_url_is_terminal_without_the_password(tmp_path: Path) -> None:
    url = "postgresql+psycopg://kpi:pw-in-url-42@127.0.0.1:1/warehouse"
    result = pipeline(
        tmp_path, SQL(url=url, every="day", retries=2, timeout=2), {"stars": 1.0}
    ).process(now=DAY)
    message = result.delivery_errors["sql"]
    assert (
        "pw-in-url-42" not in message and "stays pending" in message
    )  # connection refused: transient


def test_sheets_header_of_titles_and_new_columns(tmp_path: Path) -> None:
    with FakeSheets.serve() as sheets:
        key = sheets.add_spreadsheet()
        creds = tmp_path / "sa.json"
        creds.write_text(json.dumps(service_account(sheets.token_uri)))
        state = {"stars": 10.0}
        destination = GoogleSheets(
            spreadsheet=f"https://docs.google.com/spreadsheets/d/{key}/edit",
            credentials=str(creds),
            api_url=sheets.url,
            every="day",
        )
        p = pipeline(tmp_path, destination, state)
        assert p.process(now=DAY).exit_code == 0
        state.update(stars=12.0, forks=1.0)
        assert p.process(now=DAY + timedelta(hours=1)).exit_code == 0
        del state["forks"]
        assert p.process(now=DAY + timedelta(days=1)).exit_code == 0
        assert sheets.values(key, "KPIs") == [
            ["Period", "Date", "GitHub Stargazers", "github.forks"],
            ["2026-11-30", "2026-11-30", 12.0, 1.0],
            ["2026-12-01", "2026-12-01", 12.0],
        ]


def test_sheets_missing_spreadsheet_is_terminal(tmp_path: Path) -> None:
    with FakeSheets.serve() as sheets:
        destination = GoogleSheets(
            spreadsheet="1NoSuchSpreadsheetKey",
            api_url=sheets.url,
            every="day",
            credentials=json.dumps(service_account(sheets.token_uri)),
        )
        result = pipeline(tmp_path, destination, {"stars": 1.0}).process(now=DAY)
        assert "HTTP 404" in result.delivery_errors["google_sheets"]
        assert "check `spreadsheet`" in result.delivery_errors["google_sheets"]


def test_email_html_and_text_over_starttls(tmp_path: Path) -> None:
    with smtp_server(tmp_path, "bot", "smtp-pass-123") as (port, ca_file, messages):
        email = Email(
            host="127.0.0.1",
            port=port,
            username="bot",
            password="smtp-pass-123",
            sender="KPI bot <kpi@example.com>",
            to=["team@example.com"],
            cc=["ceo@example.com"],
            ca_file=str(ca_file),
            every="week",
        )
        p = pipeline(tmp_path, email, {"stars": 1647.0})
        assert p.process(now=DAY).exit_code == 0
        assert p.process(now=DAY + timedelta(days=1)).exit_code == 0  # same week: no second mail
        ((message, envelope),) = messages
        assert message["Subject"] == "KPIs — week 49, 2026"
        assert message["From"] == "KPI bot <kpi@example.com>"
        assert sorted(envelope.rcpt_tos) == ["ceo@example.com", "team@example.com"]
        text = message.get_body(preferencelist=("plain",)).get_content()
        html = message.get_body(preferencelist=("html",)).get_content()
        assert "GitHub Stargazers: 1,647" in text
        assert "<b>GitHub Stargazers</b>" in html
        assert message["Message-ID"].endswith("@example.com>")


def test_email_wrong_password_is_terminal(tmp_path: Path) -> None:
    with smtp_server(tmp_path, "bot", "right-password") as (port, ca_file, messages):
        email = Email(
            host="127.0.0.1",
            port=port,
            username="bot",
            password="wrong-password-77",
            sender="kpi@example.com",
            to=["team@example.com"],
            ca_file=str(ca_file),
            every="day",
        )
        result = pipeline(tmp_path, email, {"stars": 1.0}).process(now=DAY)
        message = result.delivery_errors["email"]
        assert "refused the login (535)" in message and "wrong-password-77" not in message
        assert messages == []


def test_email_untrusted_certificate_is_terminal(tmp_path: Path) -> None:
    with smtp_server(tmp_path, "bot", "pw") as (port, _ca, _messages):
        email = Email(
            host="127.0.0.1",
            port=port,
            username="bot",
            password="pw",
            sender="kpi@example.com",
            to=["team@example.com"],
            every="day",
        )
        result = pipeline(tmp_path, email, {"stars": 1.0}).process(now=DAY)
        assert "TLS with SMTP server" in result.delivery_errors["email"]


@pytest.mark.parametrize(
    ("server", "tls", "expected", "transient"),
    [
        # smtplib's errors are OSErrors: none of these may come out as "cannot reach"
        ({"tls": False}, "starttls", "does not offer STARTTLS: set tls: ssl", False),
        (
            {"tls": False},
            "none",
            "does not offer a login (no AUTH) (many do only over TLS: tls: starttls or ssl); "
            "if it relays without one, remove username and password",
            False,
        ),
        ({"oauth_only": True}, "starttls", "offers no login method kpi-collector can use", False),
        (None, "starttls", "cannot reach SMTP server 127.0.0.1:", True),  # nothing listening
        ("hang up", "starttls", "closed the connection: Connection unexpectedly closed", True),
    ],
)
def test_email_errors_say_what_went_wrong(
    tmp_path: Path, server: dict[str, bool] | str | None, tls: str, expected: str, transient: bool
) -> None:
    import socketserver
    import threading

    from kpi_collector.destinations.email.fake import free_port

    def attempt(port: int, ca_file: Path | None) -> DeliveryError:
        email = Email(
            host="127.0.0.1",
            port=port,
            tls=tls,  # type: ignore[arg-type]
            username="bot",
            password="smtp-pass-secret-123",
            sender="kpi@example.com",
            to=["team@example.com"],
            ca_file=str(ca_file) if ca_file else None,
            timeout=5,
            retries=0,
        )
        with pytest.raises(DeliveryError) as caught:
            asyncio.run(email.send_text("🚨 Alert: test"))
        return caught.value

    if server is None:
        error = attempt(free_port(), None)
    elif server == "hang up":  # a server that closes before its greeting
        with socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler) as tcp:
            threading.Thread(target=tcp.serve_forever, daemon=True).start()
            try:
                error = attempt(tcp.server_address[1], None)
            finally:
                tcp.shutdown()
    else:
        assert isinstance(server, dict)
        with smtp_server(tmp_path, "bot", "smtp-pass-secret-123", **server) as (port, ca, got):
            error = attempt(port, ca)
            assert got == []
    assert expected in str(error)
    assert error.transient is transient
    assert "smtp-pass-secret-123" not in str(error)
