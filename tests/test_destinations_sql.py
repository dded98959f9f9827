"""`sql`: upserts and new columns on SQLite, PostgreSQL and MariaDB; a bad URL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from kpi_collector.destinations import (
    SQL,
)
from tests.destinations import DAY, pipeline
from tests.services import require_mysql_url, require_postgres_url

pytestmark = pytest.mark.usefixtures("fast_delivery_retries")


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


@pytest.mark.parametrize("backend", ["postgresql", "mysql"])
def test_a_refused_login_is_terminal_and_names_the_url(tmp_path: Path, backend: str) -> None:
    """issue 18 §4: every OperationalError was 'transient' — a database that does not exist
    was retried as if the network had failed; it names the URL's database now, once."""
    base = sa.engine.make_url(
        require_postgres_url() if backend == "postgresql" else require_mysql_url()
    )
    url = base.set(database="no_such_db_kpi18").render_as_string(hide_password=False)
    destination = SQL(url=url, table="kpis", every="day", retries=3, timeout=5)
    p = pipeline(tmp_path, destination, {"stars": 1.0})
    message = p.process(now=DAY).delivery_errors["sql"]
    assert "the database refused the login (" in message
    assert "no_such_db_kpi18" in message
    assert message.endswith("check the user, password and database in `url`")
    (record,) = p.delivery_engine().records()
    assert (record.status, record.attempts) == ("pending", 1)  # not retried within the run


def test_a_wide_table_over_the_databases_columns_is_refused_and_later_periods_go_on(
    tmp_path: Path, warehouse: str
) -> None:
    """issue 18 §2: a wide table takes a column per KPI; 2,100 KPIs are over every database's
    limit (PostgreSQL 1600 columns, InnoDB 1017, SQLite 2000): the delivery is refused for
    good with the reason and the way out, and the next period (3 KPIs) still goes out."""
    table = f"kpis_wide_{tmp_path.name[-6:].replace('-', '_')}".lower()
    state = {f"k{i:04d}": float(i) for i in range(2100)}
    destination = SQL(url=warehouse, table=table, every="day", retries=1, timeout=5)
    p = pipeline(tmp_path, destination, state)
    try:
        message = p.process(now=DAY).delivery_errors["sql"]
        assert "sql destination 'sql': 2,100 KPIs are over the database's columns per table (" in (
            message
        )
        assert "use `layout: long` (a row per KPI) for this many KPIs" in message
        assert "refused for good" in message
        state.clear()
        state.update(stars=1.0, forks=2.0, issues=3.0)
        later = p.process(now=DAY + timedelta(days=1))
        assert later.delivery_errors == {}
        rows = _rows(warehouse, table)
        assert [(r["period"], r["github_forks"]) for r in rows] == [("2026-12-01", 2.0)]
        assert [r.status for r in p.delivery_engine().records()] == ["failed", "done"]
    finally:
        engine = sa.create_engine(warehouse)
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()


@pytest.mark.parametrize("earlier", [False, True], ids=["new-table", "table-of-an-earlier-version"])
def test_a_long_title_and_an_emoji_title_fit_the_long_table(
    tmp_path: Path, warehouse: str, earlier: bool
) -> None:
    """`layout: long` made `title` a VARCHAR(200): a KPI title over 200 characters (which
    `kpis:` allows, and Notion and the files take) failed the insert on PostgreSQL ("value too
    long") and MariaDB ("Data too long"), and the whole period's rows with it, every run.
    Titles are TEXT (an earlier version's table is widened); emoji and accents read back as
    written."""
    from kpi_collector import Pipeline
    from kpi_collector.destinations import Store
    from kpi_collector.sources.python import Function

    table = f"kpis_titles_{tmp_path.name[-6:].replace('-', '_')}".lower()
    _drop(warehouse, table)
    if earlier:  # the table as an earlier version made it
        engine = sa.create_engine(warehouse)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"CREATE TABLE {table} (period VARCHAR(32) NOT NULL, kpi VARCHAR(200) NOT "
                    "NULL, date VARCHAR(10) NOT NULL, title VARCHAR(200), value DOUBLE "
                    "PRECISION, updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (period, kpi))"
                )
            )
        engine.dispose()
    long_title = "Paying customers (all plans, all regions) — " + "x" * 400
    emoji_title = "🚀 Активные пользователи ✅ 日本"
    p = Pipeline(
        sources=[Function(lambda: {"a": 1.0, "b": 2.0}, name="app")],
        destinations=[
            Store(f"sqlite:///{tmp_path / 'kpi.db'}"),
            SQL(url=warehouse, table=table, layout="long", every="day", retries=0),
        ],
        kpis={"app.a": {"title": long_title}, "app.b": {"title": emoji_title}},
        base_dir=tmp_path,
    )
    try:
        result = p.process(now=DAY)
        assert result.delivery_errors == {}
        rows = {r["kpi"]: (r["title"], r["value"]) for r in _rows(warehouse, table)}
        assert rows == {"app.a": (long_title, 1.0), "app.b": (emoji_title, 2.0)}
    finally:
        _drop(warehouse, table)


@pytest.mark.parametrize("earlier", [False, True], ids=["new-table", "table-of-an-earlier-version"])
def test_lookalike_kpi_ids_keep_their_own_rows_in_the_long_table(
    tmp_path: Path, warehouse: str, earlier: bool
) -> None:
    """`layout: long` keys a row by (period, kpi): MariaDB/MySQL compare text by the table's
    collation, whose default (utf8mb4_general_ci, PAD SPACE) takes `app.Stars` and
    `app.stars`, `app.cafe` and `app.café`, `app.x` and `app.x ` for one key, so the second
    upsert overwrote the first KPI's value (one row of two, holding the other's number).
    Each keeps its own row on every backend, as in the store; an earlier version's table is
    converted."""
    from kpi_collector import Pipeline
    from kpi_collector.destinations import Store
    from kpi_collector.sources.python import Function

    values = {"Stars": 1.0, "stars": 2.0, "cafe": 3.0, "café": 4.0, "x": 5.0, "x ": 6.0}
    table = f"kpis_alike_{tmp_path.name[-6:].replace('-', '_')}".lower()
    _drop(warehouse, table)
    if earlier:  # the table as an earlier version made it: the server's default collation
        engine = sa.create_engine(warehouse)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    f"CREATE TABLE {table} (period VARCHAR(32) NOT NULL, kpi VARCHAR(200) NOT "
                    "NULL, date VARCHAR(10) NOT NULL, title TEXT, value DOUBLE PRECISION,"
                    " updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (period, kpi))"
                )
            )
        engine.dispose()
    p = Pipeline(
        sources=[Function(lambda: dict(values), name="app")],
        destinations=[
            Store(f"sqlite:///{tmp_path / 'kpi.db'}"),
            SQL(url=warehouse, table=table, layout="long", every="day", retries=0),
        ],
        base_dir=tmp_path,
    )
    try:
        for hours in (0, 2):  # the second run updates each row, never another KPI's
            result = p.process(now=DAY + timedelta(hours=hours))
            assert result.delivery_errors == {}
        rows = {r["kpi"]: r["value"] for r in _rows(warehouse, table)}
        assert rows == {f"app.{k}": v for k, v in values.items()}
    finally:
        _drop(warehouse, table)


@pytest.mark.parametrize("earlier", [False, True], ids=["new-table", "table-of-an-earlier-version"])
def test_a_long_table_in_a_latin1_mariadb_database_takes_any_title(
    tmp_path: Path, earlier: bool
) -> None:
    """A warehouse database made with `CHARACTER SET latin1` (MariaDB's and MySQL 5.7's own
    default) gave the long table's `title` that character set: a title with an emoji or
    Cyrillic failed the period's rows ("Incorrect string value"), every run. The long table
    keeps its text in utf8mb4 whatever the database's default; an earlier table's `title` is
    converted, its titles kept."""
    from kpi_collector import Pipeline
    from kpi_collector.destinations import Store
    from kpi_collector.sources.python import Function

    server = require_mysql_url()
    name = f"kpi_test_latin1_{tmp_path.name[-6:].replace('-', '_')}".lower()
    root = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    with root.connect() as conn:
        conn.execute(sa.text(f"CREATE DATABASE {name} CHARACTER SET latin1"))
    warehouse = server.rsplit("/", 1)[0] + f"/{name}"
    try:
        if earlier:  # as an earlier version made it: the database's character set
            engine = sa.create_engine(warehouse)
            with engine.begin() as conn:
                conn.execute(
                    sa.text(
                        "CREATE TABLE kpis (period VARCHAR(32) NOT NULL, kpi VARCHAR(200) NOT "
                        "NULL, date VARCHAR(10) NOT NULL, title TEXT, value DOUBLE PRECISION,"
                        " updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (period, kpi))"
                    )
                )
                conn.execute(
                    sa.text(
                        "INSERT INTO kpis VALUES ('2026-01-01', 'app.a', '2026-01-01', 'Café', 1, 0)"
                    )
                )
            engine.dispose()
        emoji_title = "🚀 Активные пользователи ✅"
        p = Pipeline(
            sources=[Function(lambda: {"b": 2.0}, name="app")],
            destinations=[
                Store(f"sqlite:///{tmp_path / 'kpi.db'}"),
                SQL(url=warehouse, table="kpis", layout="long", every="day", retries=0),
            ],
            kpis={"app.b": {"title": emoji_title}},
            base_dir=tmp_path,
        )
        result = p.process(now=DAY)
        assert result.delivery_errors == {}
        rows = {r["kpi"]: r["title"] for r in _rows(warehouse, "kpis")}
        assert rows == {"app.b": emoji_title, **({"app.a": "Café"} if earlier else {})}
    finally:
        with root.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE {name}"))
        root.dispose()


@pytest.mark.parametrize("layout", ["wide", "long"])
def test_a_table_without_a_key_on_its_period_is_refused_never_filled_twice(
    warehouse: str, layout: str, tmp_path: Path
) -> None:
    """A table made beforehand by hand (or by a migration tool) with the destination's
    columns but no primary key: MariaDB's `ON DUPLICATE KEY` found no key and added a
    second row for the period at each re-run, without a word; PostgreSQL and SQLite refused
    `ON CONFLICT` with their own words. Such a table now refuses the delivery (marked
    failed), saying which key to add; nothing is written to it."""
    table = f"kpi_nokey_{layout}_{tmp_path.name[-6:].replace('-', '_')}".lower()
    _drop(warehouse, table)
    columns = (
        "period VARCHAR(32) NOT NULL, date VARCHAR(10) NOT NULL, updated_at DOUBLE PRECISION"
        " NOT NULL, github_stars DOUBLE PRECISION"
        if layout == "wide"
        else "period VARCHAR(32) NOT NULL, kpi VARCHAR(200) NOT NULL, date VARCHAR(10) NOT NULL,"
        " title TEXT, value DOUBLE PRECISION, updated_at DOUBLE PRECISION NOT NULL"
    )
    engine = sa.create_engine(warehouse)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} ({columns})"))
    engine.dispose()
    try:
        p = pipeline(
            tmp_path, SQL(url=warehouse, table=table, layout=layout, every="day"), {"stars": 1.0}
        )
        for hours in (0, 2):
            result = p.process(now=DAY + timedelta(hours=hours))
            assert result.exit_code == 1
            message = result.delivery_errors["sql"]
            key = "(period)" if layout == "wide" else "(period, kpi)"
            assert f"no primary key {key}" in message and "ADD PRIMARY KEY" in message, message
        assert _rows(warehouse, table) == []
        assert [r.status for r in p.delivery_engine().records()] == ["failed"]
    finally:
        _drop(warehouse, table)


def test_a_table_with_an_id_key_and_a_unique_period_is_upserted_by_its_period(
    warehouse: str, tmp_path: Path
) -> None:
    """A wide table made beforehand with its own `id` primary key and a unique `period`:
    the upsert went by the primary key (PostgreSQL and SQLite refused `ON CONFLICT (id)`);
    it goes by the period, which the unique index keeps one row of."""
    table = f"kpi_idkey_{tmp_path.name[-6:].replace('-', '_')}".lower()
    _drop(warehouse, table)
    engine = sa.create_engine(warehouse)
    serial = {
        "sqlite": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "postgresql": "SERIAL PRIMARY KEY",
    }.get(engine.dialect.name, "INTEGER AUTO_INCREMENT PRIMARY KEY")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f"CREATE TABLE {table} (id {serial}, period VARCHAR(32) NOT NULL UNIQUE,"
                " date VARCHAR(10) NOT NULL, updated_at DOUBLE PRECISION NOT NULL,"
                " github_stars DOUBLE PRECISION)"
            )
        )
    engine.dispose()
    try:
        state = {"stars": 1.0}
        p = pipeline(tmp_path, SQL(url=warehouse, table=table, every="day"), state)
        for hours, stars in ((0, 1.0), (2, 2.0)):
            state["stars"] = stars
            result = p.process(now=DAY + timedelta(hours=hours))
            assert result.exit_code == 0, result.delivery_errors
        rows = _rows(warehouse, table)
        assert [(r["period"], r["github_stars"]) for r in rows] == [("2026-11-30", 2.0)]
    finally:
        _drop(warehouse, table)


@pytest.mark.parametrize("layout", ["wide", "long"])
def test_a_table_made_beforehand_gets_the_columns_it_lacks(
    warehouse: str, layout: str, tmp_path: Path
) -> None:
    """A table made beforehand with its key and values but without `date` or `updated_at`
    (or `title`): every delivery failed with SQLAlchemy's "Unconsumed column names:
    updated_at", while a KPI's missing column is added. The destination's own columns it
    lacks are added the same way, and its rows are written."""
    table = f"kpi_lacks_{layout}_{tmp_path.name[-6:].replace('-', '_')}".lower()
    _drop(warehouse, table)
    columns = (
        "period VARCHAR(32) NOT NULL PRIMARY KEY, github_stars DOUBLE PRECISION"
        if layout == "wide"
        else "period VARCHAR(32) NOT NULL, kpi VARCHAR(200) NOT NULL, value DOUBLE PRECISION,"
        " PRIMARY KEY (period, kpi)"
    )
    engine = sa.create_engine(warehouse)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} ({columns})"))
    engine.dispose()
    try:
        p = pipeline(
            tmp_path, SQL(url=warehouse, table=table, layout=layout, every="day"), {"stars": 3.0}
        )
        result = p.process(now=DAY)
        assert result.exit_code == 0, result.delivery_errors
        (row,) = _rows(warehouse, table)
        assert row["date"] == "2026-11-30" and row["updated_at"] > 0
        if layout == "wide":
            assert row["github_stars"] == 3.0
        else:
            assert (row["kpi"], row["title"], row["value"]) == (
                "github.stars",
                "GitHub Stargazers",
                3.0,
            )
    finally:
        _drop(warehouse, table)
