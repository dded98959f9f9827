"""`type: sql`: one scalar query per metric, read-only and with the timeout, on SQLite and
on the local PostgreSQL and MariaDB servers."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

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


def test_a_text_result_with_numbers_on_two_lines_is_an_error(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    sqlite3.connect(db).close()
    result = run(
        SQL(
            name="app",
            url=f"sqlite:///{db}",
            metrics={
                "split": "SELECT '12' || char(10) || '374'",
                "labelled": "SELECT 'total:' || char(13, 10) || '1,234'",
            },
        )
    )
    assert result.values == {"app.labelled": 1234}
    assert "more than one number" in result.errors["app.split"]


def test_a_query_returning_several_rows_is_an_error_not_its_first_row(tmp_path: Path) -> None:
    """`SELECT count(*) ... GROUP BY` returns a row per group: storing the first group's
    count would be a wrong number; a query returns one row."""
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE users (plan TEXT)")
        conn.executemany("INSERT INTO users VALUES (?)", [("free",), ("pro",), ("pro",)])
    result = run(
        SQL(
            name="app",
            url=f"sqlite:///{db}",
            metrics={
                "by_plan": "SELECT count(*) FROM users GROUP BY plan",
                "pro": "SELECT count(*) FROM users WHERE plan = 'pro'",
            },
        )
    )
    assert result.values == {"app.pro": 2}
    assert "more than one row" in result.errors["app.by_plan"]


def _no_source_error(result: object) -> None:
    errors = result.errors  # type: ignore[attr-defined]
    assert "app" not in errors, errors["app"]


def test_a_statement_without_rows_or_a_binary_value_fails_its_metric_only(
    tmp_path: Path,
) -> None:
    """A statement that returns no result set (a PRAGMA that sets, ATTACH) and a value that
    is no number fail their own metric, saying why; the other metrics are stored (before,
    the whole source failed as a transient "database error" and was retried)."""
    db = tmp_path / "app.db"
    sqlite3.connect(db).close()
    result = run(
        SQL(
            name="app",
            url=f"sqlite:///{db}",
            metrics={
                "ok": "SELECT 5",
                "setting": "PRAGMA foreign_keys = ON",
                "blob": "SELECT x'00ff'",
                "digits": "SELECT CAST('12' AS BLOB)",
            },
        ),
        defaults=Defaults(timeout=2, retries=0),
    )
    _no_source_error(result)
    assert result.values == {"app.ok": 5, "app.digits": 12}
    assert "returns no rows" in result.errors["app.setting"]
    assert "binary" in result.errors["app.blob"]


def test_dates_intervals_and_other_types_fail_their_metric_saying_so() -> None:
    from tests.services import require_postgres_url

    result = run(
        SQL(
            name="app",
            url=require_postgres_url(),
            metrics={
                "ok": "SELECT 5",
                "day": "SELECT DATE '2026-12-01'",
                "span": "SELECT interval '2 hours'",
                "id": "SELECT '8c2f1e9a-3d4b-4c5d-9e6f-7a8b9c0d1e2f'::uuid",
                "list": "SELECT ARRAY[1, 2]",
            },
        ),
        defaults=Defaults(timeout=5, retries=0),
    )
    _no_source_error(result)
    assert result.values == {"app.ok": 5}
    assert "date" in result.errors["app.day"] and "not a number" in result.errors["app.day"]
    assert "EXTRACT(EPOCH" in result.errors["app.span"]
    assert "UUID" in result.errors["app.id"]
    assert "list" in result.errors["app.list"]


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_a_commit_in_a_query_does_not_open_a_writable_transaction(server: str) -> None:
    """Every transaction of the source's connection is read-only, not only the first: a
    query that ends it (`COMMIT; DELETE ...` on PostgreSQL, which runs several statements in
    one query; a metric `COMMIT` before a metric `DELETE` on MariaDB) writes nothing."""
    import uuid

    import sqlalchemy as sa

    from tests.services import require_mysql_url, require_postgres_url

    url = require_postgres_url() if server == "postgresql" else require_mysql_url()
    table = f"kpi_keep_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} (id INTEGER)"))
        conn.execute(sa.text(f"INSERT INTO {table} VALUES (1), (2), (3)"))
    if server == "postgresql":
        metrics = {"sneaky": f"COMMIT; DELETE FROM {table}; SELECT 1"}
    else:
        metrics = {
            "end": "COMMIT",
            "sneaky": f"DELETE FROM {table}",
            "again": "COMMIT",
            "n": "SELECT 1",
        }
    try:
        result = run(SQL(name="app", url=url, metrics=metrics), defaults=Defaults(retries=0))
        assert "app.sneaky" in result.errors or "app" in result.errors
        with engine.connect() as conn:
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar() == 3
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {table}"))
        engine.dispose()


@pytest.mark.parametrize("server", ["sqlite", "postgresql", "mariadb"])
def test_big_integers_and_decimals_are_stored_exactly_or_refused(
    server: str, tmp_path: Path
) -> None:
    from tests.services import require_mysql_url, require_postgres_url

    if server == "sqlite":
        db = tmp_path / "app.db"
        sqlite3.connect(db).close()
        url = f"sqlite:///{db}"
        metrics = {"big": "SELECT 9007199254740993", "ok": "SELECT 9007199254740992"}
    else:
        url = require_postgres_url() if server == "postgresql" else require_mysql_url()
        metrics = {
            "big": "SELECT CAST(9007199254740993 AS DECIMAL(38, 0))",
            "money": "SELECT CAST(1234567.8912345678 AS DECIMAL(38, 10))",
            "ok": "SELECT CAST(9007199254740992 AS DECIMAL(38, 10))",
        }
    result = run(SQL(name="app", url=url, metrics=metrics), defaults=Defaults(retries=0))
    assert "stored exactly" in result.errors["app.big"]
    assert result.values["app.ok"] == 2**53
    if server != "sqlite":
        assert result.values["app.money"] == pytest.approx(1234567.8912345678)


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_a_connection_lost_mid_source_fails_one_metric_and_the_rest_reconnect(
    server: str,
) -> None:
    """The server drops the connection during one query (a restart, a proxy, here the query
    kills its own session): that metric fails saying so, the next ones run on a new
    connection (before: the whole source failed with SQLAlchemy's "Can't reconnect until
    invalid transaction is rolled back")."""
    from tests.services import require_mysql_url, require_postgres_url

    url = require_postgres_url() if server == "postgresql" else require_mysql_url()
    kill = (
        "SELECT pg_terminate_backend(pg_backend_pid())"
        if server == "postgresql"
        else "KILL CONNECTION_ID()"
    )
    result = run(
        SQL(name="app", url=url, metrics={"dropped": kill, "after": "SELECT 2"}),
        defaults=Defaults(timeout=5, retries=0),
    )
    assert "app" not in result.errors, result.errors["app"]
    assert result.values == {"app.after": 2}
    assert "rolled back" not in result.errors["app.dropped"]


def test_a_slow_query_on_mariadb_with_a_fractional_timeout_fails_only_itself() -> None:
    """The statement time limit is the source's timeout (2.5 s); the client's own read
    timeout is a backstop after it, so the server's clear "interrupted" comes first and the
    connection goes on (before: the client gave up at 2 s, the connection was lost and the
    whole source failed with an unclear error)."""
    from tests.services import require_mysql_url

    result = run(
        SQL(
            name="app",
            url=require_mysql_url(),
            metrics={"slow": "SELECT SLEEP(10)", "after": "SELECT 2"},
        ),
        defaults=Defaults(timeout=2.5, retries=0),
    )
    assert "app" not in result.errors, result.errors["app"]
    assert result.values == {"app.after": 2}
    assert "longer than the timeout" in result.errors["app.slow"]


def test_a_null_result_says_how_to_make_it_zero(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (amount INTEGER)")
    result = run(
        SQL(
            name="app", url=f"sqlite:///{db}", metrics={"revenue": "SELECT sum(amount) FROM orders"}
        )
    )
    assert "returned NULL" in result.errors["app.revenue"]
    assert "COALESCE" in result.errors["app.revenue"]


STALLED_SERVER = """
import socket, sys, threading
from kpi_collector.config.models import Defaults
from kpi_collector.sources import SQL
from tests.fakes.collect import run

# a proxy to the PostgreSQL server that stops passing anything on once it sees the marked
# query: the network path to a database that dies mid-query (no reset, no answer)
upstream = ("127.0.0.1", int(sys.argv[1]))
listener = socket.create_server(("127.0.0.1", 0))

def pump(source, target, watch):
    stalled = False
    while data := source.recv(65536):
        stalled = stalled or (watch and b"stall_here" in data)
        if not stalled:
            target.sendall(data)

def serve():
    while True:
        client, _ = listener.accept()
        server = socket.create_connection(upstream)
        threading.Thread(target=pump, args=(client, server, True), daemon=True).start()
        threading.Thread(target=pump, args=(server, client, False), daemon=True).start()

threading.Thread(target=serve, daemon=True).start()
port = listener.getsockname()[1]
url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/test"
result = run(
    SQL(name="db", url=url, metrics={"n": "SELECT 1 /* stall_here */"}),
    defaults=Defaults(timeout=1, retries=0),
)
print(result.errors)
"""


def test_a_database_that_stops_answering_does_not_keep_the_run_from_ending() -> None:
    """The connection to the server goes silent mid-query: the source fails at its budget
    and the run ends (the query's thread was the loop's default executor's, which the run
    waited for, for ever, before it returned)."""
    from urllib.parse import urlsplit

    from tests.services import require_postgres_url

    port = urlsplit(require_postgres_url()).port or 5432
    done = subprocess.run(
        [sys.executable, "-c", STALLED_SERVER, str(port)],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=60,  # a guard against the hang, not a measure
    )
    assert done.returncode == 0, done.stderr
    assert "'db': 'timed out after" in done.stdout


def _sneaky_metrics(server: str, table: str, procedure: str) -> list[dict[str, str]]:
    """Ways a query turns the read-only guarantee off and then writes: several statements
    in one query, one statement per metric across the source's metrics, a function that
    sets the session's default, a stored procedure that commits."""
    if server == "postgresql":
        return [
            {
                "m": f"SET default_transaction_read_only = off; COMMIT; DELETE FROM {table}; SELECT 1"
            },
            {"m": f"COMMIT; BEGIN READ WRITE; DELETE FROM {table}; COMMIT; SELECT 1"},
            {
                "m": "COMMIT; SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE;"
                f" DELETE FROM {table}; SELECT 1"
            },
            {
                "a": "SET default_transaction_read_only = off",
                "b": "COMMIT",
                "c": f"DELETE FROM {table}",
                "d": "COMMIT",
            },
            {
                "a": "SELECT set_config('default_transaction_read_only', 'off', false)::int",
                "b": "COMMIT",
                "c": f"DELETE FROM {table}",
                "d": "COMMIT",
            },
            {  # a number all the same: only the session's setting says what it did
                "a": "SELECT length(set_config('default_transaction_read_only', 'off', false))",
                "b": "COMMIT",
                "c": f"DELETE FROM {table}",
                "d": "COMMIT",
            },
            {
                "a": "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
                "b": "ROLLBACK",
                "c": f"DELETE FROM {table}",
                "d": "COMMIT",
            },
            {"a": "COMMIT", "b": "BEGIN READ WRITE", "c": f"DELETE FROM {table}", "d": "COMMIT"},
            # a SELECT first: read through a server-side cursor, one query all the same
            {"m": f"SELECT 1; COMMIT; BEGIN READ WRITE; DELETE FROM {table}; COMMIT"},
        ]
    return [
        {
            "a": "SET SESSION TRANSACTION READ WRITE",
            "b": "COMMIT",
            "c": f"DELETE FROM {table}",
            "d": "COMMIT",
        },
        {"a": "SET autocommit = 1", "b": f"DELETE FROM {table}"},
        {"a": "START TRANSACTION READ WRITE", "b": f"DELETE FROM {table}", "c": "COMMIT"},
        {"a": "ROLLBACK", "b": "SET SESSION TRANSACTION READ WRITE", "c": "BEGIN"},
        {"a": f"CALL {procedure}()"},
        {"m": f"SET SESSION TRANSACTION READ WRITE; COMMIT; DELETE FROM {table}; COMMIT; SELECT 1"},
        {"m": f"SELECT 1; SET SESSION TRANSACTION READ WRITE; COMMIT; DELETE FROM {table}; COMMIT"},
    ]


@pytest.mark.parametrize("server", ["postgresql", "postgresql-before-14", "mariadb"])
def test_no_statement_turns_the_read_only_guarantee_off(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A query that turns read-only off (`SET default_transaction_read_only = off`, `SET
    SESSION CHARACTERISTICS`/`SET SESSION TRANSACTION READ WRITE`, `set_config()`, a
    procedure that commits) and then writes, in one query or across the source's metrics,
    writes nothing: each turn fails its metric saying why (before: the rows were deleted).

    `postgresql-before-14`: the client as it is with a server before PostgreSQL 14, which
    does not report `default_transaction_read_only` after each statement (the source asks
    for it), and a libpq before 14, which has no pipelines (one statement per query is a
    prepared statement); the same server answers the queries."""
    import uuid

    import psycopg
    import sqlalchemy as sa

    from tests.services import require_mysql_url, require_postgres_url

    if server == "postgresql-before-14":
        server = "postgresql"
        reported = psycopg.ConnectionInfo.parameter_status

        def before_14(info: psycopg.ConnectionInfo, name: str) -> str | None:
            return None if name == "default_transaction_read_only" else reported(info, name)

        monkeypatch.setattr(psycopg.ConnectionInfo, "parameter_status", before_14)
        monkeypatch.setattr(psycopg.Pipeline, "is_supported", classmethod(lambda cls: False))
    url = require_postgres_url() if server == "postgresql" else require_mysql_url()
    table = f"kpi_keep_{uuid.uuid4().hex[:8]}"
    procedure = f"kpi_commits_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} (id INTEGER)"))
        conn.execute(sa.text(f"INSERT INTO {table} VALUES (1), (2), (3)"))
        if server == "mariadb":
            conn.execute(
                sa.text(
                    f"CREATE PROCEDURE {procedure}() BEGIN SET SESSION TRANSACTION READ WRITE;"
                    f" COMMIT; START TRANSACTION; DELETE FROM {table}; COMMIT; SELECT 1; END"
                )
            )
    # a URL that asks PyMySQL for several statements per query gets one all the same
    urls = [url] if server == "postgresql" else [url, f"{url}?client_flag=65536"]
    try:
        for each_url in urls:
            for metrics in _sneaky_metrics(server, table, procedure):
                result = run(
                    SQL(name="app", url=each_url, metrics={**metrics, "after": "SELECT 2"}),
                    defaults=Defaults(timeout=5, retries=0),
                )
                with engine.connect() as conn:
                    left = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
                assert left == 3, (each_url, metrics, result.errors)
                assert "app" not in result.errors, result.errors["app"]
                assert result.values == {"app.after": 2}, (metrics, result.errors)
                assert set(result.errors) == {f"app.{key}" for key in metrics}
                for message in result.errors.values():  # said in the source's words
                    assert "savepoint" not in message.lower() and "XAER" not in message
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {table}"))
            if server == "mariadb":
                conn.execute(sa.text(f"DROP PROCEDURE {procedure}"))
        engine.dispose()


MILLIONS_OF_ROWS = """
import resource, sys
from kpi_collector.sources.sql import SQL
from kpi_collector.errors import MetricErrors

url, rows = sys.argv[1], sys.argv[2]
SQL(name="app", url=url, metrics={"n": "SELECT 1"})._run_queries(30)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
source = SQL(name="app", url=url, metrics={"amounts": rows, "after": "SELECT 2"})
try:
    source._run_queries(30)
except MetricErrors as exc:
    print(exc.values, exc.errors)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print("grown_mb", grown // 1024)
"""


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
@pytest.mark.parametrize("comment", ["", "-- every order\n", "/* amounts */ "])
def test_a_query_of_millions_of_rows_holds_two_in_memory(server: str, comment: str) -> None:
    """`SELECT amount FROM orders` with the sum forgotten: the metric fails ("more than one
    row") and the next one runs, without the millions of rows in memory (before: all of
    them were fetched first, 4 million rows took 120 MB on PostgreSQL and 360 MB on
    MariaDB), and without PyMySQL complaining on stderr about the result it left unread.
    A comment before the SELECT is no reason to fetch them all (it was)."""
    from tests.services import require_mysql_url, require_postgres_url

    url = require_postgres_url() if server == "postgresql" else require_mysql_url()
    rows = comment + (
        "SELECT g FROM generate_series(1, 4000000) AS g"
        if server == "postgresql"
        else "SELECT seq FROM seq_1_to_4000000"
    )
    done = subprocess.run(
        [sys.executable, "-c", MILLIONS_OF_ROWS, url, rows],
        cwd=Path(__file__).resolve().parents[1],
        capture_output=True,
        text=True,
        timeout=120,  # a guard against a hang, not a measure
    )
    assert done.returncode == 0 and not done.stderr, done.stderr
    values, _, grown = done.stdout.rpartition("grown_mb ")
    assert "{'app.after': 2.0}" in values or "'after': 2.0" in values, done.stdout
    assert "more than one row" in values, done.stdout
    assert int(grown) < 50, done.stdout


@pytest.mark.parametrize("server", ["sqlite", "postgresql", "mariadb"])
def test_a_colon_word_in_a_query_is_sql_not_a_missing_parameter(
    server: str, tmp_path: Path
) -> None:
    """A query is run as written: `':active'`, `'{"a":1}'` or a comment `-- see :note`
    made SQLAlchemy ask for a bind parameter (`A value is required for bind parameter
    'active'`), and the whole source failed, every other metric with it. Casts (`::int`)
    and times (`'10:30'`) keep working."""
    from tests.services import require_mysql_url, require_postgres_url

    if server == "sqlite":
        db = tmp_path / "app.db"
        sqlite3.connect(db).close()
        url = f"sqlite:///{db}"
        cast = "SELECT CAST('7' AS INTEGER)"
    else:
        url = require_postgres_url() if server == "postgresql" else require_mysql_url()
        cast = "SELECT '7'::int" if server == "postgresql" else "SELECT CAST('7' AS SIGNED)"
    metrics = {
        "word": "SELECT length(':active')",
        "json": """SELECT length('{"a":1}')""",
        "comment": "SELECT 3 -- a note :about it\n",
        "time": "SELECT length('10:30')",
        "percent": "SELECT length('50%:x %s')",
        "cast": cast,
        "backslash": "SELECT length('a\\:b')" if server != "mariadb" else "SELECT 4",
    }
    result = run(SQL(name="app", url=url, metrics=metrics), defaults=Defaults(retries=0))
    assert result.errors == {}
    assert result.values == {
        "app.word": 7,
        "app.json": 7,
        "app.comment": 3,
        "app.time": 5,
        "app.percent": 8,
        "app.cast": 7,
        "app.backslash": 4,
    }


def test_postgres_values_given_as_text_that_is_no_number_fail_saying_how_to_cast() -> None:
    """psycopg hands some PostgreSQL types over as their text: a bit string B'101' (5) was
    stored as 101, and a money value was read from the text the server's lc_monetary
    writes ('1.234,56 €' on a German server). Each is now an error saying how to cast it;
    text, enums and JSON numbers are read as before."""
    from tests.services import require_postgres_url

    result = run(
        SQL(
            name="app",
            url=require_postgres_url(),
            metrics={
                "bits": "SELECT B'101'",
                "varbits": "SELECT B'11'::varbit",
                "money": "SELECT 1234.56::money",
                "money_row": "SELECT sum(x) FROM (VALUES (1::money), (2::money)) AS t(x)",
                "text": "SELECT '1,234'",
                "json": "SELECT '5'::json",
                "numeric": "SELECT 1234.56::money::numeric",
            },
        ),
        defaults=Defaults(timeout=5, retries=0),
    )
    _no_source_error(result)
    assert result.values == {"app.text": 1234, "app.json": 5, "app.numeric": 1234.56}
    assert "bit string" in result.errors["app.bits"] and "::integer" in result.errors["app.bits"]
    assert "bit string" in result.errors["app.varbits"]
    assert "money" in result.errors["app.money"] and "::numeric" in result.errors["app.money"]
    assert "::numeric" in result.errors["app.money_row"]


@pytest.mark.parametrize("server", ["sqlite", "postgresql", "mariadb"])
def test_slow_queries_share_the_sources_time_and_none_runs_after_it(
    server: str, tmp_path: Path
) -> None:
    """Each query had the whole timeout: three slow ones ran on past the source's budget,
    the run gave the source up as a whole (`timed out`, every metric lost, the fast one
    too) and its thread went on querying the database after the run had moved on. Now the
    queries share the budget: the first that runs out of it fails saying so, the ones after
    it are not run and say why, and the thread is done when the source is."""
    from tests.services import require_mysql_url, require_postgres_url

    if server == "sqlite":
        db = tmp_path / "app.db"
        sqlite3.connect(db).close()
        url = f"sqlite:///{db}"
        slow = (
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
        )
    elif server == "postgresql":
        url, slow = require_postgres_url(), "SELECT pg_sleep(30)"
    else:
        url, slow = require_mysql_url(), "SELECT SLEEP(30)"
    metrics = {"a": slow, "b": slow, "c": slow, "fast": "SELECT 1"}
    result = run(SQL(name="app", url=url, metrics=metrics), defaults=Defaults(timeout=1, retries=0))
    assert "app" not in result.errors, result.errors
    assert "longer than the timeout" in result.errors["app.a"]
    assert result.errors["app.fast"].startswith("fast: not run: the queries before it took")
    for name in ("b", "c"):
        error = result.errors[f"app.{name}"]
        assert "longer than the timeout" in error or error.startswith(f"{name}: not run")


def test_a_mariadb_bit_value_says_it_is_binary_and_how_to_cast_it() -> None:
    """MariaDB hands a BIT value over as bytes: b'101' failed with `no number in '\\x05'`,
    which says nothing a user can act on. Now it names binary data and the cast."""
    from tests.services import require_mysql_url

    result = run(
        SQL(
            name="app",
            url=require_mysql_url(),
            metrics={"bits": "SELECT b'101'", "flag": "SELECT b'1'", "ok": "SELECT b'101' + 0"},
        ),
        defaults=Defaults(timeout=5, retries=0),
    )
    _no_source_error(result)
    assert result.values == {"app.ok": 5}
    for name in ("bits", "flag"):
        assert "binary data" in result.errors[f"app.{name}"]
        assert "+ 0" in result.errors[f"app.{name}"]


def _running(url: str, marker: str) -> list[Any]:
    """The statements still running on the server of `url` of connections named `marker`
    (PostgreSQL's application_name) or whose text holds `marker` (MariaDB)."""
    import sqlalchemy as sa

    engine = sa.create_engine(url.split("?")[0])
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                query = (
                    "SELECT query FROM pg_stat_activity WHERE application_name = :marker"
                    " AND state = 'active'"
                )
            else:
                query = (
                    "SELECT info FROM information_schema.processlist"
                    " WHERE info LIKE concat('%', :marker, '%') AND id <> connection_id()"
                )
            return list(conn.execute(sa.text(query), {"marker": marker}).all())
    finally:
        engine.dispose()


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_a_query_that_turns_the_time_limit_off_is_cancelled_on_the_server(server: str) -> None:
    """The session's statement time limit was all that stopped a query: one that turned it
    off (`SET statement_timeout = 0` in the metric before it, MariaDB's `SET STATEMENT
    max_statement_time=0 FOR ...` in itself) ran on, the run gave the whole source up
    (`timed out`, the fast metric after it lost too) and the statement went on running on
    the server, holding its locks, after `kpi` had moved on. Now each statement is cancelled
    on the server at its timeout, whatever the session's limit says, and the rest run."""
    import uuid

    from tests.services import require_mysql_url, require_postgres_url

    marker = f"kpi-{uuid.uuid4().hex[:12]}"
    if server == "postgresql":
        url = f"{require_postgres_url()}?application_name={marker}"
        metrics = {
            "off": "SET statement_timeout = 0",
            "slow": "SELECT pg_sleep(30)",
            "in_one": "SELECT pg_sleep(30) FROM (SELECT set_config('statement_timeout', '0', true)) s",
            "fast": "SELECT 7",
        }
    else:
        url = require_mysql_url()
        metrics = {
            "off": "SET SESSION max_statement_time = 0",
            "slow": f"SELECT SLEEP(30) /* {marker} */",
            "in_one": f"SET STATEMENT max_statement_time=0 FOR SELECT SLEEP(30) /* {marker} */",
            "fast": "SELECT 7",
        }
    result = run(SQL(name="app", url=url, metrics=metrics), defaults=Defaults(timeout=1, retries=2))
    try:
        _no_source_error(result)
        assert result.values == {"app.fast": 7}
        assert "longer than the timeout" in result.errors["app.slow"]
        assert "longer than the timeout" in result.errors["app.in_one"]
        assert _running(url, marker) == []
    finally:  # a failing run leaves them sleeping: end them for the tests after this one
        _kill(url, marker)


def _kill(url: str, marker: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url.split("?")[0])
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE application_name = :marker"
                    ),
                    {"marker": marker},
                )
            else:
                for (thread,) in conn.execute(
                    sa.text(
                        "SELECT id FROM information_schema.processlist"
                        " WHERE info LIKE concat('%', :marker, '%') AND id <> connection_id()"
                    ),
                    {"marker": marker},
                ).all():
                    conn.execute(sa.text(f"KILL {int(thread)}"))
    finally:
        engine.dispose()


@pytest.mark.parametrize("server", ["sqlite", "postgresql", "mariadb"])
def test_a_number_of_thousands_of_digits_fails_its_metric_saying_so(
    server: str, tmp_path: Path
) -> None:
    """A NUMERIC of 5001 digits failed the whole source as a transient `database error:
    Exceeds the limit (4300 digits) for integer string conversion` (retried, every metric
    lost), and a text of 5001 digits said to call `sys.set_int_max_str_digits()`: Python
    writes and reads no int of more than 4300 digits as text. Each is now its metric's
    error saying no stored number holds it; the other metrics are stored."""
    from tests.services import require_mysql_url, require_postgres_url

    if server == "sqlite":
        db = tmp_path / "app.db"
        sqlite3.connect(db).close()
        url, zeros = f"sqlite:///{db}", "replace(printf('%.5000c', 'x'), 'x', '0')"
        metrics = {"text": f"SELECT '1' || {zeros}", "padded": f"SELECT {zeros} || '12'"}
    elif server == "postgresql":
        url, zeros = require_postgres_url(), "repeat('0', 5000)"
        metrics = {
            "numeric": f"SELECT ('1' || {zeros})::numeric",
            "text": f"SELECT '1' || {zeros}",
            "padded": f"SELECT {zeros} || '12'",
        }
    else:
        url, zeros = require_mysql_url(), "repeat('0', 5000)"
        metrics = {
            "text": f"SELECT concat('1', {zeros})",
            "padded": f"SELECT concat({zeros}, '12')",
        }
    result = run(
        SQL(name="app", url=url, metrics={**metrics, "ok": "SELECT 3"}),
        defaults=Defaults(timeout=5, retries=0),
    )
    _no_source_error(result)
    assert result.values == {"app.ok": 3, "app.padded": 12}
    for name in set(metrics) - {"padded"}:
        assert "a 5001-digit number cannot be stored exactly" in result.errors[f"app.{name}"]


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
@pytest.mark.parametrize(("zone", "minutes"), [("Pacific/Pago_Pago", -660), ("Asia/Kolkata", 330)])
def test_today_in_a_query_is_the_config_s_day_not_the_server_s(
    server: str, zone: str, minutes: int
) -> None:
    """`SELECT count(*) FROM users WHERE created_at >= current_date` counted from midnight
    in the database server's time zone (UTC), whatever the config's `timezone:` said: in
    the evening in Pago Pago (UTC-11) it counted the next day's first hours and stored them
    as today's. The queries now run in the config's zone: its offset, its day."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from kpi_collector import Pipeline
    from tests.services import require_mysql_url, require_postgres_url

    if server == "postgresql":
        url = require_postgres_url()
        metrics = {
            "offset": "SELECT EXTRACT(TIMEZONE FROM now()) / 60",
            "day": "SELECT to_char(current_date, 'YYYYMMDD')::int",
        }
    else:
        url = require_mysql_url()
        metrics = {
            "offset": "SELECT TIMESTAMPDIFF(MINUTE, UTC_TIMESTAMP(), NOW())",
            "day": "SELECT CURDATE() + 0",
        }
    before = int(datetime.now(ZoneInfo(zone)).strftime("%Y%m%d"))
    result = Pipeline(
        sources=[SQL(name="app", url=url, metrics=metrics)],
        timezone=zone,
        defaults=Defaults(timeout=5, retries=0),
    ).process()
    after = int(datetime.now(ZoneInfo(zone)).strftime("%Y%m%d"))
    assert result.errors == {}
    assert result.values["app.offset"] == minutes
    assert result.values["app.day"] in {before, after}


def test_a_database_that_refuses_the_login_or_is_down_says_what_to_fix() -> None:
    """A wrong user or password, a wrong database name and a server that is not running
    all said `database error: connection failed: connection to server at ... failed:
    FATAL: ...` (or PyMySQL's `(1045, "Access denied ...")`), every one a transient error
    retried as a network fault. Each now says which part of `url:` to check (and the
    `${VAR}` it came from); a refused login or a missing database is not retried."""
    from kpi_collector.errors import SourceError
    from tests.services import require_mysql_url, require_postgres_url

    pg, my = require_postgres_url(), require_mysql_url()
    pg_base, my_base = pg.rsplit("/", 1)[0], my.rsplit("/", 1)[0]
    cases = {
        pg_base.replace("://postgres@", "://nobody_kpi:S3cretPw0rd@") + "/test": (
            "refused the login as nobody_kpi",
            "check the user and password in `url:`",
            False,
        ),
        f"{pg_base}/no_such_db_kpi": ("no database 'no_such_db_kpi'", "database name", False),
        my_base.replace("://root@", "://root:S3cretPw0rd@") + "/test": (
            "refused the login as root",
            "check the user and password in `url:`",
            False,
        ),
        f"{my_base}/no_such_db_kpi": ("no database 'no_such_db_kpi'", "database name", False),
        "postgresql+psycopg://kpi:S3cretPw0rd@127.0.0.1:1/app": (
            "cannot reach the database server at 127.0.0.1:1",
            "is it running",
            True,
        ),
        "mysql+pymysql://kpi:S3cretPw0rd@127.0.0.1:1/app": (
            "cannot reach the database server at 127.0.0.1:1",
            "is it running",
            True,
        ),
    }
    for url, (what, fix, transient) in cases.items():
        source = SQL(name="app", url=url, metrics={"n": "SELECT 1"})
        with pytest.raises(SourceError) as caught:
            source._run_queries(5)
        message = str(caught.value)
        assert what in message and fix in message, message
        assert "S3cretPw0rd" not in message and "\n" not in message
        assert caught.value.transient is transient, message


def test_a_refused_login_names_the_variables_the_url_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.services import require_postgres_url

    url = require_postgres_url().replace("://postgres@", "://nobody_kpi:S3cretPw0rd@")
    monkeypatch.setenv("APP_DATABASE_URL", url)
    (tmp_path / "kpi.yaml").write_text(
        "sources:\n"
        "  - {name: app, type: sql, url: '${APP_DATABASE_URL}', retries: 0,"
        " metrics: {n: SELECT 1}}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "kpi_collector", "run", "--dry-run"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    output = done.stdout + done.stderr
    assert "refused the login as nobody_kpi" in output
    assert "check the user and password in `url:` (${APP_DATABASE_URL})" in output
    assert "S3cretPw0rd" not in output


@pytest.mark.parametrize("server", ["sqlite", "postgresql", "mariadb"])
def test_several_statements_in_a_query_say_so_on_every_database(
    server: str, tmp_path: Path
) -> None:
    """PostgreSQL said a query of two statements holds several; MariaDB reported `(1064,
    "You have an error in your SQL syntax; ... near 'SELECT 2' at line 1")` and SQLite
    `You can only execute one statement at a time.`. Each now says the query holds several
    statements; a `;` or a comment at the end of one is still one."""
    from tests.services import require_mysql_url, require_postgres_url

    if server == "sqlite":
        db = tmp_path / "app.db"
        sqlite3.connect(db).close()
        url = f"sqlite:///{db}"
    else:
        url = require_postgres_url() if server == "postgresql" else require_mysql_url()
    metrics = {
        "two": "SELECT 1; SELECT 2",
        "lines": "SELECT 1;\nSELECT\n  2",
        "ended": "SELECT 3;",
        "commented": "SELECT 4; -- the total",
        "broken": "SELECT 1 FROM",
    }
    result = run(SQL(name="app", url=url, metrics=metrics), defaults=Defaults(retries=0))
    _no_source_error(result)
    assert result.values == {"app.ended": 3, "app.commented": 4}
    for name in ("two", "lines"):
        assert "holds several statements" in result.errors[f"app.{name}"]
    assert "several" not in result.errors["app.broken"]


def test_a_value_longer_than_max_bytes_fails_its_metric_before_it_is_read(tmp_path: Path) -> None:
    """A query's value was read as a number however long: a text column of 50 MB (the
    JSON payload selected instead of its count) took 18 s and 4 GB of memory to say
    `cannot read a number`, past `max_bytes`, the cap on one answer every other source
    keeps. A text or binary value longer than it is now the metric's error naming it."""
    db = tmp_path / "app.db"
    sqlite3.connect(db).close()
    padded = "SELECT printf('%.{n}c', ' ') || '5'"
    result = run(
        SQL(
            name="app",
            url=f"sqlite:///{db}",
            max_bytes=1000,
            metrics={
                "long": padded.format(n=2000),
                "blob": "SELECT CAST(printf('%.2000c', '1') AS BLOB)",
                "wide": "SELECT printf('%.400c', ' ') || '€5'",
                "short": padded.format(n=900),
            },
        ),
        defaults=Defaults(retries=0),
    )
    _no_source_error(result)
    assert result.values == {"app.short": 5, "app.wide": 5}  # 402 characters, 404 bytes
    for name, size in (("long", "2,001"), ("blob", "2,000")):
        message = result.errors[f"app.{name}"]
        assert f"returned {size} bytes, more than max_bytes = 1000B" in message, message
        assert "raise `max_bytes`" in message


@pytest.mark.parametrize("server", ["sqlite", "mariadb"])
def test_a_date_kept_as_text_says_it_is_a_date_not_to_pick_a_number_of_it(
    server: str, tmp_path: Path
) -> None:
    """SQLite keeps dates as text: `SELECT max(created_at)` failed with `more than one
    number in '2026-12-01'; pick one with regex:`, whose regex would store the year. A date
    or time as text now says so and how to return a number; other text is read as before."""
    from tests.services import require_mysql_url

    if server == "sqlite":
        db = tmp_path / "app.db"
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE orders (created_at TEXT)")
            conn.execute("INSERT INTO orders VALUES ('2026-11-30 10:00:00'), ('2026-12-01')")
        url, query = f"sqlite:///{db}", "SELECT max(created_at) FROM orders"
    else:
        url, query = require_mysql_url(), "SELECT '2026-12-01T10:00:00Z'"
    metrics = {
        "last": query,
        "time": "SELECT '20:25:47.5'",
        "year": "SELECT '2026'",
        "ratio": "SELECT '12:30'",
    }
    result = run(SQL(name="app", url=url, metrics=metrics), defaults=Defaults(retries=0))
    _no_source_error(result)
    assert result.values == {"app.year": 2026}
    for name in ("last", "time"):
        message = result.errors[f"app.{name}"]
        assert "returned a date or time as text" in message and "regex" not in message
    assert "julianday" in result.errors["app.last"] or "UNIX_TIMESTAMP" in result.errors["app.last"]
    assert "more than one number" in result.errors["app.ratio"]


def test_a_query_of_only_spaces_is_a_config_error() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="needs a query"):
        SQL(name="app", url="sqlite:///app.db", metrics={"n": "   \n"})


@pytest.mark.parametrize("password", ["café-Secret1", "snow☃man-Secret1"])
def test_a_mariadb_password_beyond_ascii_logs_in(password: str) -> None:
    """PyMySQL sends a password in Latin-1, MariaDB's own client in UTF-8: a user whose
    password holds `é` was refused (`Access denied`) with the right password, and one
    with `☃` failed with "'latin-1' codec can't encode character '\\u2603' in position 4",
    a transient database error that told a character of the password and where."""
    import uuid
    from urllib.parse import quote

    import sqlalchemy as sa

    from tests.services import require_mysql_url

    admin = require_mysql_url()
    user = f"kpi_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(admin)
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE USER '{user}'@'%' IDENTIFIED BY :pw"), {"pw": password})
        database = conn.execute(sa.text("SELECT DATABASE()")).scalar()
        conn.execute(sa.text(f"GRANT SELECT ON `{database}`.* TO '{user}'@'%'"))
    try:
        host = admin.split("@", 1)[1]
        url = f"mysql+pymysql://{user}:{quote(password, safe='')}@{host}"
        result = run(
            SQL(name="app", url=url, metrics={"n": "SELECT 41 + 1"}),
            defaults=Defaults(retries=0),
        )
        assert result.errors == {} and result.values == {"app.n": 42}
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP USER '{user}'@'%'"))
        engine.dispose()


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_a_query_never_writes_a_file_on_the_database_server(server: str) -> None:
    """A read-only transaction stops writes to tables, not to files: `COPY (SELECT 1) TO
    '/tmp/x'` on PostgreSQL (or `TO PROGRAM`, a shell command) and `SELECT 1 INTO OUTFILE
    '/tmp/x'` on MariaDB wrote the file with a superuser's URL, and the metric only said
    the statement returns no rows. Each is refused before it runs; the same words in a
    string or a comment are no statement."""
    import uuid

    import sqlalchemy as sa

    from tests.services import require_mysql_url, require_postgres_url

    target = f"/tmp/kpi-{uuid.uuid4().hex}.txt"
    if server == "postgresql":
        url = require_postgres_url()
        metrics = {
            "copy": f"/* total */ COPY (SELECT 1) TO '{target}'",
            "do": f"DO $$ BEGIN EXECUTE 'COPY (SELECT 1) TO ''{target}'''; END $$",
            "export": f"SELECT \"lo_export\"(1, '{target}')",
            "words": "SELECT length('COPY x TO y; lo_export(1)') -- COPY",
        }
        exists = "SELECT (pg_stat_file(:path, true)).size IS NOT NULL"
    else:
        url = require_mysql_url()
        metrics = {
            "outfile": f"SELECT 1 INTO OUTFILE '{target}'",
            "hidden": f"SELECT 1 /*! INTO DUMPFILE '{target}' */",
            "words": "SELECT length('INTO OUTFILE') # INTO OUTFILE",
        }
        exists = "SELECT LOAD_FILE(:path) IS NOT NULL"
    result = run(SQL(name="app", url=url, metrics=metrics), defaults=Defaults(retries=0))
    _no_source_error(result)
    assert result.values["app.words"] in (25, 12)
    for name in set(metrics) - {"words"}:
        message = result.errors[f"app.{name}"]
        assert "may only read" in message and "file" in message, message
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            assert not conn.execute(sa.text(exists), {"path": target}).scalar()
    finally:
        engine.dispose()


def test_a_sqlite_file_a_writer_keeps_locked_says_so_and_what_to_do(tmp_path: Path) -> None:
    """A SQLite file another connection held locked for writing failed its metric with
    `the query failed: database is locked`, as if the query were wrong. It now says a
    writer held it through the timeout and what to do."""
    from kpi_collector.errors import MetricErrors

    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE users (id INTEGER)")
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN EXCLUSIVE")
    try:
        source = SQL(name="app", url=f"sqlite:///{db}", metrics={"n": "SELECT count(*) FROM users"})
        with pytest.raises(MetricErrors) as caught:
            source._run_queries(0.2, 5)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    message = caught.value.errors["n"]
    assert "locked by another connection writing" in message and "raise `timeout`" in message


def test_a_number_mariadb_made_up_from_text_is_refused_not_stored() -> None:
    """MariaDB reads text as a number up to its first other character and only warns:
    `SELECT sum(amount)` over '1,234.50' and '2' stored 3, `CAST('12abc' AS INTEGER)` 12
    and `CAST('abc' AS DECIMAL)` 0 (PostgreSQL refuses each). A value the database warned
    it made up is now the metric's error quoting the warning; clean values are stored, and
    a NULL the database warned about (`5 / 0`) says why."""
    from tests.services import require_mysql_url

    amounts = "(SELECT '1,234.50' AS amount UNION ALL SELECT '2') AS t"
    result = run(
        SQL(
            name="app",
            url=require_mysql_url(),
            metrics={
                "sum": f"SELECT sum(amount) FROM {amounts}",
                "cast": "SELECT CAST('12abc' AS INTEGER)",
                "zero": "SELECT CAST('abc' AS DECIMAL(10, 2))",
                "clean": f"SELECT sum(REPLACE(amount, ',', '')) FROM {amounts}",
                "text": "SELECT '1,234.50'",
                "ratio": "SELECT 5 / 0",
            },
        ),
        defaults=Defaults(retries=0),
    )
    _no_source_error(result)
    assert result.values == {"app.clean": 1236.5, "app.text": 1234.5}
    # NULL, and why: not the sum of no rows the NULL error otherwise guesses
    assert "NULL, and the database warned 'Division by 0'" in result.errors["app.ratio"]
    for name, value in (("sum", "'1,234.50'"), ("cast", "'12abc'"), ("zero", "'abc'")):
        message = result.errors[f"app.{name}"]
        assert "not the data's" in message and f"value: {value}" in message, message


def test_values_read_before_the_database_went_away_are_kept() -> None:
    """The database went away during the second query (a restart, a failover): its
    connection was cut, and the reconnect for the third was refused. The whole source
    failed as one "database error", and the first metric's value, read before, was lost.
    Now it is kept; the metric whose connection was cut and the ones that could not
    reconnect fail, saying so, and their failures are transient."""
    import threading
    import time

    import sqlalchemy as sa

    from kpi_collector.sources.sql import SQL as SQLSource
    from tests.fakes.tcp_proxy import TcpProxy
    from tests.services import host_port, require_postgres_url

    url = require_postgres_url()
    host, port = host_port(url)
    marker = f"kpi_outage_{time.time_ns()}"
    with TcpProxy(host, port) as proxy:
        via = url.replace(f"@{host}:{port}/", f"@127.0.0.1:{proxy.port}/", 1)
        assert via != url and "?" not in via
        via += f"?application_name={marker}"  # how the watcher tells the source's session
        watcher = sa.create_engine(url)

        def outage_during_the_slow_query() -> None:
            with watcher.connect() as conn:  # straight to the server, past the proxy
                # the query runs as a cursor's FETCH: its session waits in pg_sleep
                query = sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
                    "AND wait_event = 'PgSleep'"
                )
                for _ in range(500):
                    running = conn.execute(query, {"name": marker}).scalar()
                    conn.rollback()  # pg_stat_activity is a snapshot per transaction
                    if running:
                        proxy.down()
                        return
                    time.sleep(0.02)

        thread = threading.Thread(target=outage_during_the_slow_query, daemon=True)
        thread.start()
        source = SQLSource(
            name="app",
            url=via,
            metrics={
                "first": "SELECT 1",
                "cut": "SELECT 2 FROM pg_sleep(20)",
                "after": "SELECT 3",
            },
        )
        result = run(source, defaults=Defaults(timeout=10, retries=0))
        thread.join(timeout=10)
        watcher.dispose()
    assert "app" not in result.errors, result.errors["app"]
    assert result.values == {"app.first": 1}
    assert set(result.errors) == {"app.cut", "app.after"}
    assert result.errors["app.after"].startswith("after: could not connect again to run it: ")
    assert "cannot reach the database server" in result.errors["app.after"]
    transient = {f.metric: f.transient for o in result.outcomes for f in o.errors}
    assert transient == {"cut": True, "after": True}


def test_a_timeout_of_one_query_is_transient_and_a_broken_query_is_not(tmp_path: Path) -> None:
    """A source's failing metrics were all stored as terminal (`MetricErrors` carried one
    flag, always False), a query's timeout as well as a query's mistake: each metric's
    failure is now told apart, in the run and in the store."""
    from kpi_collector.destinations import Store
    from kpi_collector.store import HistoryStore

    db = tmp_path / "app.db"
    sqlite3.connect(db).close()
    slow = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
    store = f"sqlite:///{tmp_path / 'kpi.db'}"
    result = run(
        SQL(
            name="app",
            url=f"sqlite:///{db}",
            metrics={"ok": "SELECT 1", "broken": "SELECT nope", "slow": slow},
        ),
        destinations=[Store(store)],
        # the source's time (the timeout per attempt, 3 attempts) leaves the slow query
        # ending at its own timeout of 1 s, and the source's values handed over
        defaults=Defaults(timeout=1, retries=2),
    )
    assert result.values == {"app.ok": 1}, result.errors
    transient = {f.metric: f.transient for o in result.outcomes for f in o.errors}
    assert transient == {"slow": True, "broken": False}
    history = HistoryStore(store)
    try:
        (record,) = history.runs()
        assert {e.kpi: e.transient for e in record.errors} == {
            "app.slow": True,
            "app.broken": False,
        }
    finally:
        history.close()


def test_a_number_sqlite_made_up_from_text_is_refused_not_stored(tmp_path: Path) -> None:
    """SQLite reads text as a number up to its first other character without a word:
    `SELECT sum(amount)` over the text '1,234.50' and '2' stored 3 (`avg()` 1.5), as MariaDB
    did before it was made to fail the metric on its warning. sum() and avg() over text that
    is no number now fail the metric naming the text; over numbers, and numeric text
    (' 2 ', '1e3'), they give SQLite's own answers (and total() its 0.0 of no rows)."""
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE orders (amount TEXT, price REAL, n INTEGER)")
        conn.executemany(
            "INSERT INTO orders VALUES (?, ?, ?)",
            [("1,234.50", 1.5, 2), ("2", 2.25, 3), (None, None, None)],
        )
        conn.execute("CREATE TABLE clean (amount TEXT)")
        conn.executemany("INSERT INTO clean VALUES (?)", [(" 2 ",), ("1e3",), ("0.5",)])
    result = run(
        SQL(
            name="app",
            url=f"sqlite:///{db}",
            metrics={
                "sum": "SELECT sum(amount) FROM orders",
                "avg": "SELECT avg(amount) FROM orders WHERE amount IS NOT NULL",
                "cleaned": "SELECT sum(REPLACE(amount, ',', '')) FROM orders",
                "numeric_text": "SELECT sum(amount) FROM clean",
                "price": "SELECT sum(price) FROM orders",
                "price_avg": "SELECT avg(price) FROM orders",
                "n": "SELECT sum(n) FROM orders",
                "n_total": "SELECT total(n) FROM orders",
                "none": {"query": "SELECT sum(n) FROM orders WHERE 0", "allow_zero": True},
                "none_total": "SELECT total(n) FROM orders WHERE 0",
                "overflow": "SELECT sum(n) FROM (SELECT 9223372036854775807 AS n UNION ALL"
                " SELECT 1)",
                "window": "SELECT sum(price) OVER (ORDER BY rowid ROWS 1 PRECEDING) FROM orders"
                " ORDER BY rowid DESC LIMIT 1",
                "window_avg": "SELECT avg(n) OVER (ORDER BY rowid ROWS 1 PRECEDING) FROM orders"
                " ORDER BY rowid LIMIT 1 OFFSET 1",
                "window_text": "SELECT sum(amount) OVER () FROM orders LIMIT 1",
                "other_digits": "SELECT sum(x) FROM (SELECT '١٢' AS x)",
                "nbsp": "SELECT avg(x) FROM (SELECT char(160) || '12' AS x)",
            },
        ),
        defaults=Defaults(retries=0),
    )
    _no_source_error(result)
    for name in ("sum", "avg", "window_text", "other_digits", "nbsp"):
        message = result.errors[f"app.{name}"]
        assert "not the data's" in message, message
    assert "'1,234.50'" in result.errors["app.sum"]
    assert result.values == {
        "app.cleaned": 1236.5,
        "app.numeric_text": 1002.5,
        "app.price": 3.75,
        "app.price_avg": 1.875,
        "app.n": 5,
        "app.n_total": 5.0,
        "app.none_total": 0.0,
        "app.window": 2.25,
        "app.window_avg": 2.5,
    }
    assert "NULL" in result.errors["app.none"]
    assert "integer overflow" in result.errors["app.overflow"]
