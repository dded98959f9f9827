"""`sql` sources open exactly the database written, read-only: SQLite file names with URI
characters, a missing file, and `mysql://` without a driver name, through `kpi run`."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.cli import run_kpi


def make_db(path: Path, value: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE sales (amount INTEGER)")
        conn.execute("INSERT INTO sales VALUES (?)", (value,))
    conn.close()


def sql_config(folder: Path, url: str, query: str = "SELECT sum(amount) FROM sales") -> None:
    (folder / "kpi.yaml").write_text(f"""\
sources:
  - name: app
    type: sql
    url: "{url}"
    metrics:
      sales: {query}
""")


def stored(folder: Path) -> list[tuple[str, float]]:
    with sqlite3.connect(folder / "kpi.db") as conn:
        return conn.execute("SELECT kpi, value FROM observations").fetchall()


def errors(folder: Path) -> str:
    with sqlite3.connect(folder / "kpi.db") as conn:
        return "\n".join(m for (m,) in conn.execute("SELECT message FROM run_errors"))


@pytest.mark.parametrize(
    ("file_name", "written"),
    [
        ("sales#2024.db", "sales#2024.db"),
        ("sales?2024.db", "sales%3F2024.db"),  # `?` starts a URL's query: written %3F
        ("100%.db", "100%.db"),
        ("100%25.db", "100%2525.db"),  # a literal %25 in the name: the % written %25
        ("Q1 sales.db", "Q1 sales.db"),
        ("ventes-été-東京.db", "ventes-été-東京.db"),
    ],
)
def test_sqlite_opens_exactly_the_file_written(workdir: Path, file_name: str, written: str) -> None:
    data = workdir / "data"
    make_db(data / file_name, 2024)
    sql_config(workdir, f"sqlite:///{data}/{written}")
    before = sorted(p.name for p in data.iterdir())
    result = run_kpi(workdir, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert stored(workdir) == [("app.sales", 2024.0)]
    assert sorted(p.name for p in data.iterdir()) == before  # nothing created beside it


def test_sqlite_is_opened_read_only(workdir: Path) -> None:
    db = workdir / "data" / "sales#2024.db"
    make_db(db, 5)
    sql_config(workdir, f"sqlite:///{db}", query='"DELETE FROM sales RETURNING 1"')
    result = run_kpi(workdir, "run")
    assert result.returncode == 1
    assert errors(workdir) == "sales: the query failed: attempt to write a readonly database"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT amount FROM sales").fetchall() == [(5,)]
    conn.close()


def test_a_missing_sqlite_file_is_an_error_naming_it_and_is_not_created(workdir: Path) -> None:
    data = workdir / "data"
    data.mkdir()
    sql_config(workdir, f"sqlite:///{data}/sales#2024.db")
    result = run_kpi(workdir, "run")
    assert result.returncode == 1
    assert errors(workdir) == (
        f"no SQLite database at {data.resolve()}/sales#2024.db: check the path in `url:`; "
        "it is opened read-only and never created"
    )
    assert list(data.iterdir()) == []


def test_a_raw_question_mark_says_how_to_write_it(workdir: Path) -> None:
    data = workdir / "data"
    make_db(data / "sales?2024.db", 1)
    sql_config(workdir, f"sqlite:///{data}/sales?2024.db")
    result = run_kpi(workdir, "run")
    assert result.returncode == 1
    assert errors(workdir) == (
        f"no SQLite database at {data.resolve()}/sales (a `?` in a file name is written %3F in "
        "the URL): check the path in `url:`; it is opened read-only and never created"
    )
    assert sorted(p.name for p in data.iterdir()) == ["sales?2024.db"]


def test_mysql_url_without_a_driver_uses_pymysql(workdir: Path) -> None:
    from tests.services import require_mysql_url

    url = require_mysql_url().replace("mysql+pymysql://", "mysql://", 1)
    assert url.startswith("mysql://")
    sql_config(workdir, url, query="SELECT 6 * 7")
    result = run_kpi(workdir, "run")
    assert result.returncode == 0, result.stdout + result.stderr
    assert stored(workdir) == [("app.sales", 42.0)]


def test_every_database_url_without_a_mysql_driver_gets_pymysql() -> None:
    from sqlalchemy.engine import make_url

    from kpi_collector.collect.sql import with_driver

    written = [
        "mysql://u@h/db",
        "mariadb://u@h/db",
        "mysql+mysqldb://u@h/db",
        "postgresql://u@h/db",
    ]
    assert [with_driver(make_url(u)).drivername for u in written] == [
        "mysql+pymysql",
        "mariadb+pymysql",
        "mysql+mysqldb",
        "postgresql",
    ]


@pytest.mark.parametrize(
    ("url", "says"),
    [
        # a raw `@` in the password: SQLAlchemy ends the password at the first `@` and
        # took the rest of it for the host, which the driver's error then named
        ("postgresql://kpi:Qz@vu7@Kx9@127.0.0.1:1/test", "%40"),
        ("mysql://kpi:Qz@vu7@Kx9@127.0.0.1:1/test", "%40"),
        ("postgresq://kpi:Qz/vu7Kx9@127.0.0.1:1/test", "unknown database kind"),
        ("postgresql://kpi:Qzvu7Kx9@127.0.0.1:nope/test", "port"),
    ],
)
def test_a_wrong_database_url_is_a_config_error_that_never_shows_its_password(
    workdir: Path, url: str, says: str
) -> None:
    """The `sql` source's `url:`, like `store:`, is checked at load (exit 2, nothing ran),
    and the message names what is wrong without the password, whatever it holds."""
    sql_config(workdir, url, query="SELECT 1")
    result = run_kpi(workdir, "validate")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert says in output
    for piece in ("Qz", "vu7", "Kx9"):
        assert piece not in output, output


def test_a_store_url_with_a_slash_in_its_password_never_shows_it(workdir: Path) -> None:
    (workdir / "kpi.yaml").write_text(
        'store: "postgresq://kpi:Hidden/pass9@127.0.0.1/test"\nsources: []\n'
    )
    result = run_kpi(workdir, "validate")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "unknown database kind" in output
    assert "Hidden" not in output and "pass9" not in output, output


def test_a_sql_destination_url_with_a_raw_at_is_a_config_error_without_the_password(
    workdir: Path,
) -> None:
    (workdir / "kpi.yaml").write_text(
        "sources: []\n"
        "destinations:\n"
        '  - {type: sql, url: "postgresql://kpi:Qz@vu7@Kx9@127.0.0.1:1/test"}\n'
    )
    result = run_kpi(workdir, "validate")
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "%40" in output
    for piece in ("Qz", "vu7", "Kx9"):
        assert piece not in output, output


def test_a_query_cannot_attach_and_so_create_another_sqlite_file(workdir: Path) -> None:
    """`ATTACH DATABASE 'x.db'` opened (and created) a file beside the read-only one."""
    data = workdir / "data"
    make_db(data / "sales.db", 3)
    sql_config(
        workdir, f"sqlite:///{data}/sales.db", query=f"\"ATTACH DATABASE '{data}/new.db' AS x\""
    )
    result = run_kpi(workdir, "run")
    assert result.returncode == 1, result.stdout + result.stderr
    assert sorted(p.name for p in data.iterdir()) == ["sales.db"]
    assert "sales: the query failed" in errors(workdir)


def test_each_sqlite_query_gets_the_whole_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The timeout bounds each statement, as on PostgreSQL and MariaDB: a query that starts
    after earlier ones used up the timeout between them is not interrupted (the deadline was
    the connection's, so the third of three 0.4 s queries under `timeout: 1` failed as
    "took longer than the timeout"). A fake clock moves time between the queries."""
    import time

    from sqlalchemy import text

    from kpi_collector.collect.sql import open_readonly

    make_db(tmp_path / "app.db", 1)
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    engine = open_readonly(f"sqlite:///{tmp_path / 'app.db'}", 1.0)
    counting = (
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 100000) "
        "SELECT count(*) FROM c"
    )
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
            clock[0] += 5  # the next query starts long after the first one began
            assert conn.execute(text(counting)).scalar() == 100000
    finally:
        engine.dispose()


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_read_only_broken_names_a_turn_or_an_end_of_the_transaction(server: str) -> None:
    """Where the server has no XA transaction (Galera), the check after each query is what
    stops a later query from writing: it sees the session turned read-write and the
    transaction ended (the same on PostgreSQL, where it is always the check)."""
    import sqlalchemy as sa

    from kpi_collector.collect.sql import open_readonly, read_only_broken
    from tests.services import require_mysql_url, require_postgres_url

    url = require_postgres_url() if server == "postgresql" else require_mysql_url()
    turn = (
        "SET default_transaction_read_only = off"
        if server == "postgresql"
        else "SET SESSION TRANSACTION READ WRITE"
    )
    engine = open_readonly(url, 5)
    end = (
        ("COMMIT", "ended the read-only transaction")
        if server == "postgresql"
        else ("START TRANSACTION READ WRITE", "began a read-write transaction")
    )
    try:
        for statement, broken in [(turn, "read-only off"), end]:
            with engine.connect() as conn:  # not sealed by read_only_session: no XA
                conn.execute(sa.text("SELECT 1"))
                assert read_only_broken(conn) is None
                conn.execute(sa.text(statement))
                assert broken in (read_only_broken(conn) or "")
                conn.invalidate()
    finally:
        engine.dispose()


def test_an_unknown_mysql_charset_says_where_and_how_to_fix_it(workdir: Path) -> None:
    """`?charset=bogus` in a MariaDB URL: PyMySQL failed with "'NoneType' object has no
    attribute 'encoding'" (a transient "database error" for a source, retried; the same for
    the store). Now one line naming the option and what to write, the password hidden."""
    from kpi_collector.config.models import Defaults
    from kpi_collector.errors import StoreError
    from kpi_collector.sources import SQL
    from kpi_collector.sources.active_users import ActiveUsers
    from kpi_collector.store import HistoryStore
    from tests.fakes.collect import run
    from tests.services import require_mysql_url

    url = require_mysql_url().replace("root@", "root:Hunter2secret@", 1) + "?charset=bogus"
    result = run(
        SQL(name="app", url=url, metrics={"n": "SELECT 1"}),
        ActiveUsers(name="au", url=url, table="events", user="u", time="t"),
        defaults=Defaults(retries=0),
    )
    with pytest.raises(StoreError) as failed:
        HistoryStore(url).migrate()
    for message in (result.errors["app"], result.errors["au"], str(failed.value)):
        assert "charset=bogus" in message and "utf8mb4" in message, message
        assert "Hunter2secret" not in message and "\n" not in message
    failures = [f for o in result.outcomes for f in o.errors]
    assert failures and not any(f.transient for f in failures)  # a config error: no retry


@pytest.mark.parametrize("scheme", ["sqlite", "sqlite+pysqlite"])
def test_a_relative_sqlite_path_is_beside_the_config_not_where_kpi_runs(
    tmp_path: Path, scheme: str
) -> None:
    """`url: sqlite:///app.db` opened app.db in the folder `kpi` ran from, not the config's
    folder, which the store's `sqlite:///kpi.db` and every other relative path use: from
    cron (run in the home folder) it failed, or read another app.db there and stored its
    number. It is now the file beside the config."""
    config_dir, elsewhere = tmp_path / "config", tmp_path / "elsewhere"
    for folder, rows in ((config_dir, 3), (elsewhere, 99)):
        folder.mkdir()
        with sqlite3.connect(folder / "app.db") as conn:
            conn.execute("CREATE TABLE users (id INTEGER)")
            conn.executemany("INSERT INTO users VALUES (?)", [(i,) for i in range(rows)])
    (config_dir / "kpi.yaml").write_text(
        "sources:\n"
        f"  - {{name: app, type: sql, url: '{scheme}:///app.db',"
        " metrics: {users: SELECT count(*) FROM users}}\n"
    )
    config = str(config_dir / "kpi.yaml")
    done = run_kpi(elsewhere, "-c", config, "run", "--dry-run", "--format", "json")
    assert done.returncode == 0, done.stdout + done.stderr
    values = {v["kpi"]: v["value"] for v in json.loads(done.stdout)["values"]}
    assert values == {"app.users": 3}
