"""Reading other people's databases: an engine that cannot write where the database lets
us say so, and a read-only, time-bounded transaction that no query can end or turn
read-write. Used by the `sql` source and the active-users queries."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kpi_collector.errors import SourceError, missing_package
from kpi_collector.secrets import redact

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from sqlalchemy.engine import URL


#: where SQLAlchemy's `text()` would take a query's own text for a bind parameter (`:word`
#: not after a letter, digit or colon) or drop a backslash of it (`\:`, its escape)
_COLON = re.compile(r"(?:(?<=\\)(?=:)|(?<![:\w\\])(?=:\w))(:\w*)(?![:\w])")


def escape_colons(sql: str) -> str:
    """`sql` written for SQLAlchemy's `text()` so that it runs exactly as written: a colon
    word in a string, a comment or JSON (`':active'`, `'{"a":1}'`) is no bind parameter
    (`A value is required for bind parameter 'active'`) and a backslash before a colon
    stays. Casts (`::int`) and times (`'10:30'`) are left as they are."""
    return _COLON.sub(lambda match: "\\" + match.group(1), sql)


def with_driver(url: URL) -> URL:
    """`url` with the driver kpi-collector installs when it names none: `mysql://` and
    `mariadb://` mean PyMySQL (the `[mysql]` extra), as SQLAlchemy already reads
    `postgresql://` as psycopg 3 (the `[postgres]` extra); SQLAlchemy's own default for
    MySQL, mysqlclient (`MySQLdb`), needs a C library and is not installed."""
    if url.drivername in ("mysql", "mariadb"):
        return url.set(drivername=f"{url.drivername}+pymysql")
    return url


def url_option_problem(url: URL) -> str | None:
    """Why a query option of database URL `url` (its driver already chosen, `with_driver`)
    cannot work, in words that say how to fix it, or None: a `?charset=` PyMySQL does not
    know (it failed with "'NoneType' object has no attribute 'encoding'")."""
    if url.get_driver_name() != "pymysql" or "charset" not in url.query:
        return None
    from pymysql.charset import charset_by_name

    written = url.query["charset"]
    charset = written if isinstance(written, str) else ",".join(written)
    if isinstance(written, str) and charset_by_name(charset) is not None:
        return None
    return (
        f"the URL's charset={charset} is no character set MariaDB/MySQL knows: "
        "write ?charset=utf8mb4 (the default) or leave it out"
    )


def open_readonly(url: str, timeout: float, *, strict_sums: bool = False) -> Any:
    """An engine for `url` that cannot write where the database lets us say so: a SQLite
    file is opened read-only exactly at the path written (never created; SourceError when
    it is not there) and no query can ATTACH another; on PostgreSQL and MariaDB/MySQL every
    transaction of a connection is read-only, from its start (`read_only_session` bounds
    its statements' time), and each execution runs one statement: `COMMIT; SET ... READ
    WRITE; DELETE ...` in one query is refused by the server before any of it runs (it
    would end the read-only transaction and write in the same call, before
    `read_only_broken` could look). With `strict_sums`, a SQLite sum() or avg() over text
    that is no number fails its statement (`sqlite_refused` says why) instead of reading
    the number the text starts with."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    parsed = with_driver(make_url(url))
    problem = url_option_problem(parsed)
    if problem is not None:
        raise SourceError(problem, transient=False)
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
    if backend == "postgresql":
        event.listen(engine, "do_execute", _one_postgres_statement)
    elif parsed.get_driver_name() == "pymysql":
        event.listen(engine, "do_connect", _no_pymysql_multi_statements)
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
            if strict_sums:
                _strict_sqlite_sums(dbapi_conn, record.info.setdefault(_REFUSED, []))

        @event.listens_for(engine, "before_cursor_execute")
        def _start(conn: Any, *_: Any) -> None:
            # each statement its own timeout, within what `limit_statements` left it
            deadline = time.monotonic() + timeout
            conn.info[_DEADLINE][0] = min(deadline, conn.info.get(_CAP, deadline))

    return engine


#: where a SQLite connection keeps the time its current statement is interrupted at
_DEADLINE = "kpi_deadline"

#: where a SQLite connection keeps the time no statement runs past (`limit_statements`)
_CAP = "kpi_cap"

#: where a SQLite connection keeps why its statement's sum() or avg() stopped
_REFUSED = "kpi_refused"

#: text SQLite reads whole as a number (its `sqlite3AtoF`: ASCII spaces around, a sign,
#: ASCII digits with one point, an exponent); of any other text it reads the number it
#: starts with (of '١٢', Arabic-Indic digits, or one after a no-break space: 0)
_SQLITE_NUMBER = re.compile(
    r"[ \t\n\v\f\r]*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t\n\v\f\r]*"
)


def sqlite_refused(conn: Any) -> str | None:
    """Why the statement `conn` (of `open_readonly`, SQLite) ran last failed in its sum() or
    avg(), as a metric's error says it: the text it met that is no number, or an integer
    overflow; None when they did not stop it. Asking forgets it."""
    refused = conn.info.get(_REFUSED) if conn.dialect.name == "sqlite" else None
    if not refused:
        return None
    why = refused[-1]
    refused.clear()
    return why


def _strict_sqlite_sums(dbapi_conn: Any, refused: list[str]) -> None:
    """sum() and avg() on SQLite connection `dbapi_conn`, window functions too, as SQLite's
    own (sum() an integer while every value is one, NULL of no values; avg() a float), but
    text that is no number as a whole ('1,234.50', which SQLite reads as 1) stops the
    statement, its reason in `refused` (`sqlite_refused`): MariaDB warns of such a number
    and PostgreSQL refuses it. Floats are summed with SQLite 3.43+'s compensation."""

    class Sum:
        kind = "sum"

        def __init__(self) -> None:
            self.whole = 0  # the integers, exactly
            self.high = 0.0  # the floats' running sum
            self.low = 0.0  # what its roundings lost
            self.count = 0
            self.floats = False

        def _number(self, value: Any) -> int | float:
            if not isinstance(value, str | bytes):
                return value
            text = value.decode(errors="replace") if isinstance(value, bytes) else value
            if not _SQLITE_NUMBER.fullmatch(text):
                shown = text if len(text) <= 60 else text[:57] + "..."
                refused.append(
                    f"the value would be made up, not the data's: {self.kind}() met the "
                    f"text {shown!r}, which SQLite reads as a number up to its first other "
                    "character; make the text a number in the query, e.g. "
                    "REPLACE(amount, ',', '')"
                )
                raise ValueError(refused[-1])
            number = text.strip(" \t\n\v\f\r")
            return int(number) if number.lstrip("+-").isdigit() else float(number)

        def _add(self, value: Any, sign: int) -> None:
            kind = type(value)
            if kind is int:
                self.count += sign
                self.whole += sign * value
                return
            if kind is not float:
                if value is None:
                    return
                value = self._number(value)
                if type(value) is int:
                    self._add(value, sign)
                    return
            self.count += sign
            self.floats = True
            # Kahan-Babuska-Neumaier, as SQLite 3.43+ sums: the running sum and what its
            # rounding lost (a step costs about as much as a Python call, not a loop)
            x = sign * value
            high = self.high
            total = high + x
            if abs(high) >= abs(x):
                self.low += (high - total) + x
            else:
                self.low += (x - total) + high
            self.high = total

        def step(self, value: Any) -> None:
            # the usual values inline: a call less per row (about a third of the time)
            kind = type(value)
            if kind is int:
                self.count += 1
                self.whole += value
            elif kind is float:
                self.count += 1
                self.floats = True
                high = self.high
                total = high + value
                if abs(high) >= abs(value):
                    self.low += (high - total) + value
                else:
                    self.low += (value - total) + high
                self.high = total
            elif value is not None:
                self._add(value, 1)

        def inverse(self, value: Any) -> None:  # a row leaving a window's frame
            self._add(value, -1)

        def total(self) -> float:
            return (self.high + self.low) + self.whole if self.floats else float(self.whole)

        def value(self) -> int | float | None:
            if not self.count:
                return None
            if self.floats:
                return self.total()
            if not -(2**63) <= self.whole < 2**63:
                refused.append(
                    "the query failed: integer overflow (a sum() of integers past 64 bits; "
                    "sum CAST(... AS REAL) for a float)"
                )
                raise OverflowError(refused[-1])
            return self.whole

        def finalize(self) -> int | float | None:
            return self.value()

    class Avg(Sum):
        kind = "avg"

        def value(self) -> float | None:
            return self.total() / self.count if self.count else None

    # total() stays SQLite's: Python's sqlite3 gives NULL for an aggregate of no rows
    # without asking its class, and total()'s 0.0 then is what a query uses it for
    for name, aggregate in (("sum", Sum), ("avg", Avg)):
        dbapi_conn.create_window_function(name, 1, aggregate)


#: where a MariaDB/MySQL connection keeps the id of the XA transaction it reads in
_XA = "kpi_xa"


def _one_postgres_statement(cursor: Any, statement: str, parameters: Any, _context: Any) -> bool:
    # psycopg sends a query without parameters by the simple protocol, which runs every
    # statement of it; the extended protocol parses one (else "cannot insert multiple
    # commands into a prepared statement"). A pipeline sends it unnamed (no prepared
    # statement a PgBouncer in transaction mode would lose); `prepare=True` where the
    # client library has no pipelines (libpq < 14).
    from psycopg import Pipeline, ServerCursor

    if isinstance(cursor, ServerCursor):  # `DECLARE ... CURSOR FOR` takes one query itself
        cursor.execute(statement, parameters)
    elif Pipeline.is_supported():
        cursor.executemany(statement, [parameters], returning=True)
    else:
        cursor.execute(statement, parameters, prepare=True)
    return True  # executed: SQLAlchemy does not execute it again


def _no_pymysql_multi_statements(_dialect: Any, _record: Any, _args: Any, params: Any) -> None:
    # a URL's `?client_flag=65536` would let one query hold several statements
    from pymysql.constants import CLIENT

    params["client_flag"] = int(params.get("client_flag", 0)) & ~CLIENT.MULTI_STATEMENTS
    # PyMySQL sends a password given as text in Latin-1: `é` as one byte where the server
    # hashed the two of UTF-8 (`Access denied` for the right password), and `☃` failed with
    # "'latin-1' codec can't encode character '\u2603' in position 2" (which told one
    # character of it); MariaDB's and MySQL's own clients send UTF-8
    password = params.get("password")
    if isinstance(password, str):
        params["password"] = password.encode()


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
    but the MariaDB/MySQL statement time limit, a session setting there.

    On MariaDB/MySQL the transaction is an XA transaction, which no statement can end: a
    COMMIT, a `SET autocommit = 1`, a statement that commits implicitly, a stored procedure
    that commits all fail with XAER_RMFAIL, so nothing a query turns read-write can ever
    be committed; it is rolled back when SQLAlchemy rolls the connection's transaction
    back (or closes it). A server without XA (Galera) gets a plain read-only transaction,
    and `read_only_broken` after each query is what stops a later one from writing."""
    from sqlalchemy import text

    backend = conn.engine.url.get_backend_name()
    if backend == "postgresql":
        conn.execute(text("SET TRANSACTION READ ONLY"))
        if timeout:
            conn.execute(text(f"SET LOCAL statement_timeout = {int(timeout * 1000)}"))
    elif backend in ("mysql", "mariadb"):
        # without SESSION: only the next transaction, so a pooled connection comes back as it was
        conn.execute(text("SET TRANSACTION READ ONLY"))
        if timeout:
            if getattr(conn.dialect, "is_mariadb", False):
                conn.execute(text(f"SET SESSION max_statement_time = {timeout:g}"))
            else:
                conn.execute(text(f"SET SESSION max_execution_time = {int(timeout * 1000)}"))
        _start_xa(conn)


def session_time_zone(conn: Any, tz: ZoneInfo, now: datetime) -> None:
    """Make the queries of `conn` (prepared by `read_only_session`) see the config's time
    zone `tz`: `current_date`, `now()::date`, `date_trunc('day', now())`, `CURDATE()` are
    its day, the day whose period the value is stored in, not the database server's (UTC:
    a `signups_today` run in the evening in New York counted the next day's few hours).

    PostgreSQL: the zone by name, for this transaction (its UTC offset at `now` where the
    server does not know the name); MariaDB/MySQL: by name where the server has its time
    zone tables, else its UTC offset at `now` (SourceError for an offset past +13:00, which
    MariaDB takes by name only). SQLite has no session time zone:
    `date('now')` is UTC there, `'localtime'` the machine's."""
    from sqlalchemy import exc as sa_exc
    from sqlalchemy import text

    backend = conn.dialect.name
    offset = _offset(tz, now)
    if backend == "postgresql":
        try:
            with conn.begin_nested():  # an unknown name would abort the transaction
                conn.execute(text("SELECT set_config('TimeZone', :zone, true)"), {"zone": tz.key})
            return
        except sa_exc.DBAPIError:
            if conn.invalidated:
                raise
        conn.execute(text(f"SET LOCAL TIME ZONE INTERVAL '{offset}' HOUR TO MINUTE"))
    elif backend in ("mysql", "mariadb"):
        try:
            conn.execute(text("SET time_zone = :zone"), {"zone": tz.key})
        except sa_exc.DBAPIError:  # no time zone tables (the default): Unknown time zone
            if conn.invalidated:
                raise
            try:
                conn.execute(text(f"SET time_zone = '{offset}'"))
            except sa_exc.DBAPIError:  # MariaDB takes offsets up to +13:00 only
                if conn.invalidated:
                    raise
                raise SourceError(
                    f"the database cannot take the config's time zone {tz.key} (UTC{offset}) "
                    "without its time zone tables: load them (mariadb-tzinfo-to-sql "
                    "/usr/share/zoneinfo | mariadb mysql), so that CURDATE() is that zone's day",
                    transient=False,
                ) from None


def _offset(tz: ZoneInfo, now: datetime) -> str:
    """The UTC offset of `tz` at `now` as `+05:30`, `-03:00` (whole minutes)."""
    minutes = round((now.astimezone(tz).utcoffset() or timedelta(0)).total_seconds() / 60)
    sign = "-" if minutes < 0 else "+"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def limit_statements(conn: Any, seconds: float) -> None:
    """Stop the next statements of `conn` (prepared by `read_only_session`) after `seconds`
    instead of the timeout they were given: what is left of a source's time."""
    import time

    from sqlalchemy import text

    backend = conn.dialect.name
    if backend == "postgresql":
        conn.execute(text(f"SET LOCAL statement_timeout = {max(1, math.ceil(seconds * 1000))}"))
    elif backend in ("mysql", "mariadb"):
        if getattr(conn.dialect, "is_mariadb", False):  # 0 would be no limit at all
            conn.execute(text(f"SET SESSION max_statement_time = {max(seconds, 0.001):.3f}"))
        else:
            ms = max(1, math.ceil(seconds * 1000))
            conn.execute(text(f"SET SESSION max_execution_time = {ms}"))
    elif backend == "sqlite":
        conn.info[_CAP] = time.monotonic() + seconds


@contextmanager
def cancel_after(conn: Any, seconds: float) -> Iterator[None]:
    """Cancel on the server whatever statement `conn` runs once `seconds` have passed,
    whatever the session's own time limit says by then: a query can turn that limit off
    (`SET statement_timeout = 0` before it, MariaDB's `SET STATEMENT max_statement_time=0
    FOR ...`) or be two statements that each get it (PostgreSQL's cursor DECLARE and
    FETCH), and a statement left running on the server after the source gave up holds its
    locks and its CPU. The statement fails with the database's words for a cancelled one
    (`canceling statement due to user request`, `Query execution was interrupted`).

    A connection whose statement was cancelled is invalidated when the block ends (the
    database rolls its transaction back), as a late cancel could reach the next statement:
    the caller opens a new one. A cancel that cannot be sent (the server is gone) is left
    to the caller's own timeout."""
    import threading

    lock = threading.Lock()
    state = {"done": False, "fired": False}

    def fire() -> None:
        with lock:
            if state["done"]:
                return
            state["fired"] = True
        with suppress(Exception):
            _cancel(conn)

    timer = threading.Timer(max(seconds, 0.0), fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        with lock:
            state["done"] = True
        timer.cancel()
        if state["fired"] and not conn.invalidated:
            conn.invalidate()


def _cancel(conn: Any) -> None:
    """Cancel the statement SQLAlchemy connection `conn` runs, from another thread: a
    PostgreSQL cancel request, a MariaDB/MySQL `KILL QUERY` on a connection of its own, a
    SQLite interrupt."""
    raw = conn.connection.dbapi_connection
    backend = conn.dialect.name
    if backend == "postgresql":
        if hasattr(raw, "cancel_safe"):  # psycopg 3.2+: does not block on a silent server
            raw.cancel_safe(timeout=5.0)
        else:
            raw.cancel()
    elif backend in ("mysql", "mariadb"):
        thread_id = int(raw.thread_id())
        other = conn.engine.raw_connection()
        try:
            cursor = other.cursor()
            try:
                cursor.execute(f"KILL QUERY {thread_id}")
            finally:
                cursor.close()
        finally:
            other.close()
    elif backend == "sqlite":
        raw.interrupt()


def _start_xa(conn: Any) -> None:
    """Begin the connection's transaction as an XA transaction (`read_only_session`)."""
    import uuid

    from sqlalchemy import event
    from sqlalchemy import exc as sa_exc

    conn.info.pop(_XA, None)  # a pooled connection's from an earlier checkout
    xid = f"kpi-{uuid.uuid4().hex}"
    try:
        conn.exec_driver_sql(f"XA START '{xid}'")
    except sa_exc.DBAPIError:
        if conn.invalidated:
            raise
        return  # Galera, Vitess: no XA; `read_only_broken` looks after each query instead
    conn.info[_XA] = xid
    if not event.contains(conn, "rollback", _end_xa):
        event.listen(conn, "rollback", _end_xa)


def _end_xa(conn: Any) -> None:
    # before SQLAlchemy's ROLLBACK, which an active XA transaction refuses; a lost
    # connection's server ended it (and `info` would try to reconnect)
    if conn.invalidated:
        return
    xid = conn.info.pop(_XA, None)
    if xid is None:
        return
    cursor = conn.connection.dbapi_connection.cursor()
    try:
        for statement in (f"XA END '{xid}'", f"XA ROLLBACK '{xid}'"):
            try:
                cursor.execute(statement)
            except Exception:  # lost or already ended: the ROLLBACK after it says how
                break
    finally:
        cursor.close()


def read_only_broken(conn: Any) -> str | None:
    """Why the read-only guarantee of `conn` (prepared by `read_only_session`) no longer
    holds after the statement just executed, in a few words, or None while it holds: the
    statement ended the read-only transaction (PostgreSQL: COMMIT, ROLLBACK), began a
    read-write one (MariaDB/MySQL: `START TRANSACTION READ WRITE`), or turned read-only off for the session's next transactions (`SET default_transaction_
    read_only`, `SET SESSION CHARACTERISTICS ...`, `set_config(...)`, MariaDB's `SET SESSION
    TRANSACTION READ WRITE`). The caller discards the connection (`conn.invalidate()`), so
    the database rolls it back and no later statement runs on it. A SQLite file (opened
    read-only) and a MariaDB/MySQL XA transaction (which no statement can end) always
    hold: None."""
    backend = conn.dialect.name
    if backend not in _SESSION_READ_ONLY or conn.invalidated or conn.info.get(_XA):
        return None
    raw = conn.connection.dbapi_connection
    if backend == "postgresql":
        from psycopg.pq import TransactionStatus

        if raw.info.transaction_status != TransactionStatus.INTRANS:
            return _ENDED
        # reported by the server after each statement since PostgreSQL 14
        default = raw.info.parameter_status("default_transaction_read_only")
        if default is None:
            default = _ask(raw, "SELECT current_setting('default_transaction_read_only')")
        return None if default == "on" else _TURNED_OFF
    from pymysql.constants import SERVER_STATUS

    # MariaDB/MySQL begin a transaction at its first table, so a COMMIT leaves none open:
    # the next one is read-only while the session is, unless begun READ WRITE
    status = raw.server_status
    if status & SERVER_STATUS.SERVER_STATUS_IN_TRANS and not status & _IN_TRANS_READONLY:
        return _READ_WRITE
    variable = "tx_read_only" if conn.dialect.is_mariadb else "transaction_read_only"
    return None if str(_ask(raw, f"SELECT @@session.{variable}")) == "1" else _TURNED_OFF


_ENDED = "it ended the read-only transaction (COMMIT, ROLLBACK)"
_READ_WRITE = "it began a read-write transaction (START TRANSACTION READ WRITE)"
_TURNED_OFF = "it turned read-only off for the session (SET ... READ WRITE, set_config)"
_IN_TRANS_READONLY = 8192  # SERVER_STATUS_IN_TRANS_READONLY (MySQL 5.6+, MariaDB 10.0+)


def _ask(raw: Any, query: str) -> Any:
    """The one value of `query` on DBAPI connection `raw`."""
    cursor = raw.cursor()
    try:
        cursor.execute(query)
        return cursor.fetchone()[0]
    finally:
        cursor.close()


def abandon(conn: Any) -> None:
    """Drop SQLAlchemy connection `conn` (invalidated: the database rolls its transaction
    back) without reading the rest of a result it is streaming: PyMySQL would read every
    remaining row to close it, and complain on stderr after the socket is gone."""
    raw = conn.connection.dbapi_connection
    pending = getattr(raw, "_result", None)  # PyMySQL's unbuffered result in progress
    if pending is not None and getattr(pending, "unbuffered_active", False):
        pending.unbuffered_active = False
    conn.invalidate()


#: binary collations that tell trailing spaces apart, best first: MariaDB 10.2+, MySQL 8,
#: older servers (PAD SPACE: `x` and `x ` are one)
BINARY_COLLATIONS = ("utf8mb4_nopad_bin", "utf8mb4_0900_bin", "utf8mb4_bin")


def binary_collation(conn: Any) -> str:
    """The first of `BINARY_COLLATIONS` the MariaDB/MySQL server of `conn` has: text compared
    as PostgreSQL and SQLite compare it (a server's default, utf8mb4_general_ci, takes
    `gh.Stars`, `gh.stars`, `gh.stars ` and `café`/`cafe` for one)."""
    from sqlalchemy import bindparam, text

    have = set(
        conn.execute(
            text(
                "SELECT COLLATION_NAME FROM information_schema.COLLATIONS"
                " WHERE COLLATION_NAME IN :names"
            ).bindparams(bindparam("names", expanding=True)),
            {"names": list(BINARY_COLLATIONS)},
        ).scalars()
    )
    return next((c for c in BINARY_COLLATIONS if c in have), "utf8mb4_bin")


#: a server that refused the URL's login (PostgreSQL, MariaDB/MySQL wording; 1045, 1698)
_LOGIN_REFUSED = re.compile(
    r'password authentication failed|role "[^"]*" does not exist|no pg_hba\.conf entry'
    r"|no password supplied|access denied for user",
    re.I,
)
#: a server that has no database of the URL's name
_NO_DATABASE = re.compile(r'database "[^"]*" does not exist|unknown database', re.I)
#: no server answered at the URL's host and port
_UNREACHABLE = re.compile(
    r"connection refused|can't connect to|could not translate host|failed to resolve host"
    r"|name or service not known|timeout expired|timed out|no route to host"
    r"|network is unreachable|nodename nor servname",
    re.I,
)


def connection_problem(
    exc: BaseException, url: str, variables: tuple[str, ...] = ()
) -> tuple[str, bool] | None:
    """Why connecting to database `url` failed with `exc`, in one line that says what to
    fix (the URL's user and password, its database name, whether the server runs at its
    host and port; `variables`: the `${VAR}`s the URL came from, named there), and whether
    trying again may help; None for another error. The password never shows."""
    from sqlalchemy.engine import make_url

    message = first_line(exc)
    reason = _reason(exc, message)
    parsed = make_url(url)
    where = f"`url:` (${{{'}, ${'.join(variables)}}})" if variables else "`url:`"
    server = f"{parsed.host or 'localhost'}" + (f":{parsed.port}" if parsed.port else "")
    if _LOGIN_REFUSED.search(message):
        user = f" as {parsed.username}" if parsed.username else ""
        return (
            f"the database server at {server} refused the login{user} ({reason}): "
            f"check the user and password in {where}",
            False,
        )
    if _NO_DATABASE.search(message):
        return (
            f"the database server at {server} has no database {parsed.database!r} ({reason}): "
            f"check the database name in {where}",
            False,
        )
    if _UNREACHABLE.search(message):
        return (
            f"cannot reach the database server at {server} ({reason}): is it running, "
            f"and are the host and port in {where} right?",
            True,
        )
    return None


def _reason(exc: BaseException, message: str) -> str:
    """The driver's own words in `message` (the first line of `exc`, secrets masked)
    without its wrapping: PyMySQL's `(1045, "...")`, psycopg's `connection failed:
    connection to server at ... failed: FATAL:`."""
    args: tuple[Any, ...] = tuple(getattr(getattr(exc, "orig", None), "args", ()))
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        code_text: str = args[1]
        return redact(code_text.splitlines()[0]) if code_text.strip() else message
    words = (
        message.rsplit(" failed: ", 1)[-1] if message.startswith("connection failed") else message
    )
    return words.replace("FATAL:", "").strip() or message


def first_line(exc: BaseException) -> str:
    """The first line of a database error (the driver's own message), secrets masked."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return redact(text.splitlines()[0]) if text else type(exc).__name__
