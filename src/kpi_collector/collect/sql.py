"""Reading other people's databases: an engine that cannot write where the database lets
us say so, and a read-only, time-bounded transaction. Used by the `sql` source and the
active-users queries."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kpi_collector.errors import SourceError, missing_package
from kpi_collector.secrets import redact

if TYPE_CHECKING:
    from sqlalchemy.engine import URL


def with_driver(url: URL) -> URL:
    """`url` with the driver kpi-collector installs when it names none: `mysql://` and
    `mariadb://` mean PyMySQL (the `[mysql]` extra), as SQLAlchemy already reads
    `postgresql://` as psycopg 3 (the `[postgres]` extra); SQLAlchemy's own default for
    MySQL, mysqlclient (`MySQLdb`), needs a C library and is not installed."""
    if url.drivername in ("mysql", "mariadb"):
        return url.set(drivername=f"{url.drivername}+pymysql")
    return url


def open_readonly(url: str, timeout: float) -> Any:
    """An engine for `url` that cannot write where the database lets us say so: a SQLite
    file is opened read-only exactly at the path written (never created; SourceError when
    it is not there) and no query can ATTACH another; on PostgreSQL and MariaDB/MySQL every
    transaction of a connection is read-only, from its start (`read_only_session` bounds
    its statements' time)."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    parsed = with_driver(make_url(url))
    backend = parsed.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        parsed = _sqlite_readonly(parsed, written=url)
        connect_args["timeout"] = timeout
    elif backend == "postgresql":
        connect_args["connect_timeout"] = max(1, int(timeout))
    elif backend in ("mysql", "mariadb"):
        connect_args["connect_timeout"] = max(1, int(timeout))
        # a backstop after the server's statement time limit (`read_only_session`), whose
        # clear error keeps the connection: the client giving up first loses it
        connect_args["read_timeout"] = math.ceil(timeout) + 2
    try:
        engine = create_engine(parsed, poolclass=NullPool, connect_args=connect_args)
    except ModuleNotFoundError as exc:  # the driver of this database is not installed
        reason = missing_package(exc) or f"the database driver is not installed ({exc})"
        raise SourceError(reason, transient=False) from None
    if backend in _SESSION_READ_ONLY:

        @event.listens_for(engine, "connect")
        def _read_only(dbapi_conn: Any, _record: Any) -> None:
            # every transaction of the session, not only the first: a query's own COMMIT
            # (`COMMIT; DELETE ...`) must not leave the rest of it, or the next query, writing
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute(_SESSION_READ_ONLY[backend])
            finally:
                cursor.close()
            dbapi_conn.commit()

    if backend == "sqlite":
        import sqlite3
        import time

        @event.listens_for(engine, "connect")
        def _deadline(dbapi_conn: Any, record: Any) -> None:
            # sqlite has no statement timeout: interrupt a statement that runs past it
            deadline = record.info[_DEADLINE] = [time.monotonic() + timeout]
            dbapi_conn.set_progress_handler(lambda: int(time.monotonic() > deadline[0]), 10_000)
            # ATTACH opens (and creates) another file, read-write
            dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)

        @event.listens_for(engine, "before_cursor_execute")
        def _start(conn: Any, *_: Any) -> None:
            conn.info[_DEADLINE][0] = time.monotonic() + timeout  # each statement its own

    return engine


#: where a SQLite connection keeps the time its current statement is interrupted at
_DEADLINE = "kpi_deadline"

#: the statement that makes every later transaction of a session read-only
_SESSION_READ_ONLY = {
    "postgresql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
    "mysql": "SET SESSION TRANSACTION READ ONLY",
    "mariadb": "SET SESSION TRANSACTION READ ONLY",
}


def _sqlite_readonly(url: URL, *, written: str) -> URL:
    """The SQLite URL as a read-only `file:` URI of exactly the file written.

    SQLAlchemy has already decoded the path (`%3F` → `?`); in a URI, `?`, `#` and `%` start
    the query, the fragment and an escape, so the path is percent-encoded into the URI
    (RFC 8089, SQLite's "URI filenames"); else `sales#2024.db?mode=ro` opens `sales`
    read-write and creates it. `mode=ro` opens an existing file only.
    """
    from urllib.parse import unquote, urlsplit

    database = url.database or ""
    if not database or database == ":memory:":
        return url
    if database.startswith("file:"):  # a URI written by hand: its own escapes; forced read-only
        path = unquote(urlsplit(database).path)
        uri = database.partition("?")[0]
    else:
        path = database
        uri = Path(database).resolve().as_uri()
    if path and not Path(path).is_file():
        where = Path(path).resolve()
        hint = " (a `?` in a file name is written %3F in the URL)" if "?" in written else ""
        raise SourceError(
            f"no SQLite database at {where}{hint}: check the path in `url:`; "
            "it is opened read-only and never created",
            transient=False,
        )
    return url.set(database=uri, query={**url.query, "mode": "ro", "uri": "true"})


def read_only_session(conn: Any, timeout: float | None) -> None:
    """Make the transaction this connection is about to begin read-only and bound its
    statements by `timeout` (PostgreSQL, MariaDB, MySQL; SQLite is opened read-only by
    `open_readonly`). Call it first on a fresh connection: nothing outlives the transaction
    but the MariaDB/MySQL statement time limit, a session setting there."""
    from sqlalchemy import text

    backend = conn.engine.url.get_backend_name()
    if backend == "postgresql":
        conn.execute(text("SET TRANSACTION READ ONLY"))
        if timeout:
            conn.execute(text(f"SET LOCAL statement_timeout = {int(timeout * 1000)}"))
    elif backend in ("mysql", "mariadb"):
        # without SESSION: only the next transaction, so a pooled connection comes back as it was
        conn.execute(text("SET TRANSACTION READ ONLY"))
        if not timeout:
            return
        if getattr(conn.dialect, "is_mariadb", False):
            conn.execute(text(f"SET SESSION max_statement_time = {timeout:g}"))
        else:
            conn.execute(text(f"SET SESSION max_execution_time = {int(timeout * 1000)}"))


def first_line(exc: BaseException) -> str:
    """The first line of a database error (the driver's own message), secrets masked."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return redact(text.splitlines()[0]) if text else type(exc).__name__
