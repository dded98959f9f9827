"""`type: sql`: one scalar query per metric, read-only and with the timeout, on SQLite and
on the local PostgreSQL and MariaDB servers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kpi_collector.config.models import Defaults
from kpi_collector.sources import SQL
from tests.fakes.collect import run


def test_sql_source_sqlite(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE users (id INTEGER, paying INTEGER)")
        conn.executemany("INSERT INTO users VALUES (?, ?)", [(1, 1), (2, 0), (3, 1)])
    result = run(
        SQL(
            name="app",
            url=f"sqlite:///{db}",
            metrics={
                "users": "SELECT count(*) FROM users",
                "paying": {"query": "SELECT sum(paying) FROM users", "expect": {"min": 1}},
                "broken": "SELECT nope FROM users",
                "write": "DELETE FROM users",
            },
        )
    )
    assert result.values == {"app.users": 3, "app.paying": 2}
    assert "query failed" in result.errors["app.broken"]
    assert "readonly" in result.errors["app.write"].replace(" ", "").lower()
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM users").fetchone() == (3,)


def test_sql_source_timeout(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    sqlite3.connect(db).close()
    slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
    result = run(
        SQL(name="app", url=f"sqlite:///{db}", metrics={"slow": slow}),
        defaults=Defaults(timeout=0.5, retries=0),
    )
    assert "longer than the timeout" in result.errors["app.slow"]


def test_sql_source_hides_database_password() -> None:
    result = run(
        SQL(
            name="db",
            url="postgresql+psycopg://kpi:hunter2-secret@127.0.0.1:1/app",
            metrics={"n": "SELECT 1"},
        ),
        defaults=Defaults(timeout=1, retries=0),
    )
    assert "db" in result.errors
    assert "hunter2-secret" not in result.errors["db"]


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_sql_source_on_database_servers(server: str) -> None:
    import uuid

    import sqlalchemy as sa

    from tests.services import require_mysql_url, require_postgres_url

    url = require_postgres_url() if server == "postgresql" else require_mysql_url()
    table = f"kpi_users_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} (id INTEGER, paying INTEGER)"))
        conn.execute(sa.text(f"INSERT INTO {table} VALUES (1, 1), (2, 0), (3, 1)"))
    try:
        slow = (
            "SELECT pg_sleep(5)"
            if server == "postgresql"
            else "SELECT count(*) FROM information_schema.columns a, information_schema.columns b,"
            " information_schema.columns c"
        )
        result = run(
            SQL(
                name="app",
                url=url,
                metrics={
                    "users": f"SELECT count(*) FROM {table}",
                    "paying": f"SELECT sum(paying) FROM {table}",
                    "write": f"DELETE FROM {table}",
                    "slow": slow,
                },
            ),
            defaults=Defaults(timeout=1, retries=0),
        )
        assert result.values["app.users"] == 3 and result.values["app.paying"] == 2
        assert "read" in result.errors["app.write"].lower()
        assert "longer than the timeout" in result.errors["app.slow"]
        with engine.connect() as conn:
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() == 3
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {table}"))
        engine.dispose()


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_a_numeric_column_is_stored_exactly_or_refused(server: str) -> None:
    """`sum()` of a BIGINT column is a NUMERIC, which the driver gives as a Decimal: it was
    turned into the nearest float, so 12345678901234567890 was stored as
    12345678901234567168. A whole Decimal is an integer, exact or refused, and a fraction
    is read as before."""
    from tests.services import require_mysql_url, require_postgres_url

    url = require_postgres_url() if server == "postgresql" else require_mysql_url()
    cast = "::numeric" if server == "postgresql" else " + 0.0"
    exact = "" if server == "postgresql" else " + 0"
    result = run(
        SQL(
            name="app",
            url=url,
            metrics={
                "huge": f"SELECT CAST(12345678901234567890 AS DECIMAL(30, 0)){exact}",
                "big": "SELECT CAST(9007199254740992 AS DECIMAL(30, 0))",
                "tenth": f"SELECT 0.1{cast}",
            },
        ),
        defaults=Defaults(timeout=5, retries=0),
    )
    assert result.values == {"app.big": 2.0**53, "app.tenth": 0.1}
    assert (
        "12345678901234567890 is an integer a stored number cannot hold exactly"
        in (result.errors["app.huge"])
    )
