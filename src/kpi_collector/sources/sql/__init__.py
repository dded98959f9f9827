"""`type: sql`: one scalar query per metric against any SQLAlchemy URL, read-only, with a timeout."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import field_validator

from kpi_collector.collect.extract import Metric, coerce_metric, finish_plain
from kpi_collector.collect.offload import in_daemon_thread
from kpi_collector.collect.sql import (
    abandon,
    cancel_after,
    connection_problem,
    escape_colons,
    first_line,
    limit_statements,
    open_readonly,
    read_only_broken,
    read_only_session,
    session_time_zone,
    sqlite_refused,
)
from kpi_collector.config.plain import MAX_BYTES, resolve_database_url
from kpi_collector.errors import ExtractError, SourceError
from kpi_collector.secrets import DatabaseUrl
from kpi_collector.sources.base import Source, SourceContext

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo


class SQL(Source):
    type: ClassVar[str] = "sql"

    url: DatabaseUrl
    metrics: dict[str, Metric]

    @field_validator("url")
    @classmethod
    def _database_url(cls, value: DatabaseUrl) -> DatabaseUrl:
        from kpi_collector.config.plain import check_database_url

        check_database_url(value.get())
        return value

    @field_validator("metrics", mode="before")
    @classmethod
    def _short_metrics(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: coerce_metric(v, "query") for k, v in value.items()}
        return value

    @field_validator("metrics")
    @classmethod
    def _queries(cls, value: dict[str, Metric]) -> dict[str, Metric]:
        if not value:
            raise ValueError("give at least one metric")
        for name, metric in value.items():
            if not (metric.query or "").strip():
                raise ValueError(f"metric {name!r} needs a query")
        return value

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        # a daemon thread: a connection that goes silent mid-query (no driver reads with a
        # timeout) fails the source at its budget and does not keep `kpi` from exiting
        # the queries share the time the run gives the source (its timeout per attempt,
        # and a second; a query does not retry): none runs on after it, and the ones it
        # leaves no time say so
        budget = ctx.timeout * (ctx.retries + 1) + _SLACK
        return await in_daemon_thread(
            lambda: self._run_queries(
                ctx.timeout, budget, ctx.tz, ctx.now, ctx.max_bytes, ctx.base_dir
            )
        )

    def _run_queries(
        self,
        timeout: float,
        budget: float | None = None,
        tz: ZoneInfo | None = None,
        now: datetime | None = None,
        max_bytes: int = MAX_BYTES,
        base_dir: Path | None = None,
    ) -> dict[str, float]:
        """Each metric's value (its query run on one read-only connection, in time zone
        `tz` as at `now`, the config's: `current_date` is the day the value is stored
        for), within `budget` seconds in all and `timeout` each; a value's text or bytes
        of more than `max_bytes` is its metric's error. A relative SQLite path is taken
        relative to `base_dir` (the config's folder), as the store's is.

        Raises: MetricErrors for the metrics that failed (with the values of the others;
        each failure transient or not on its own: a query's timeout or lost connection is,
        a query's mistake is not), SourceError when the database cannot be reached or read
        at all. A database that goes away after the first connection (a connection lost,
        and the reconnect refused) fails the metrics left, keeping the values read.
        """
        import time
        from datetime import UTC
        from zoneinfo import ZoneInfo

        from kpi_collector.errors import MetricErrors

        values: dict[str, float] = {}
        errors: dict[str, str] = {}
        transient: set[str] = set()
        connected = False  # once: a database that goes away later fails the metrics left
        budget = timeout if budget is None else budget
        deadline = time.monotonic() + budget
        url = self.url.get() if base_dir is None else resolve_database_url(self.url.get(), base_dir)
        engine = open_readonly(url, timeout, strict_sums=True)
        conn: Any = None
        try:
            names = list(self.metrics)
            for index, (name, metric) in enumerate(self.metrics.items()):
                left = deadline - time.monotonic()
                if left < _LEAST:
                    errors[name] = (
                        f"{name}: not run: the queries before it took the source's time "
                        f"({budget:g}s); raise `timeout` or make them faster"
                    )
                    transient.add(name)
                    continue
                try:
                    if conn is None:
                        conn = engine.connect()
                        read_only_session(conn, timeout)
                        session_time_zone(conn, tz or ZoneInfo("UTC"), now or datetime.now(UTC))
                    if left < timeout:
                        limit_statements(conn, left)
                except SourceError:
                    raise
                except Exception as exc:
                    if not connected:  # the database was never there: the source's error
                        raise
                    # it went away after the first connection: what was read stays read
                    message, passing = self._problem(exc)
                    errors[name] = f"{name}: could not connect again to run it: {message}"
                    for later in names[index + 1 :]:
                        errors[later] = f"{later}: not run: {message}"
                    transient.update(names[index:] if passing else ())
                    break
                connected = True
                try:
                    # the server's own limit stops it first; this one whatever a query did
                    # to that limit, and before the source's time is up
                    with cancel_after(conn, min(timeout + _GRACE, left)):
                        values[name] = _scalar(conn, name, metric, self.locale, max_bytes)
                except ExtractError as exc:
                    errors[name] = str(exc)
                    if exc.transient:
                        transient.add(name)
                if conn.invalidated:  # dropped (by the server, or after a cancel): a new one
                    conn.close()
                    conn = None
        except Exception as exc:
            if isinstance(exc, SourceError):
                raise
            message, passing = self._problem(exc)
            raise SourceError(message, transient=passing) from None
        finally:
            if conn is not None:
                conn.close()
            engine.dispose()
        if errors:
            raise MetricErrors(values, errors, transient)
        return values

    def _problem(self, exc: Exception) -> tuple[str, bool]:
        """What a failure to reach or read the database says (secrets hidden), and whether
        it is transient."""
        problem = connection_problem(exc, self.url.get(), self.url.variables)
        if problem is not None:
            return problem
        return f"database error: {first_line(exc)}", True


#: seconds a query needs at least: with less of the source's time left, it is not run
_LEAST = 0.05
#: seconds after its timeout a statement the server did not stop is cancelled
_GRACE = 0.25
#: of the second the run adds to a source's time, what its queries may use (the rest is
#: for the thread to hand the values over before the run gives the source up)
_SLACK = 0.75

# how SQLite, PostgreSQL, MariaDB and MySQL say a statement ran out of time
_TIMEOUT_WORDS = (
    "interrupted",
    "timeout",
    "timed out",
    "canceling statement",
    "max_statement_time",
)


def _scalar(
    conn: Any, name: str, metric: Metric, locale: str | None = None, max_bytes: int = MAX_BYTES
) -> float:
    from sqlalchemy import exc as sa_exc
    from sqlalchemy import text

    assert metric.query is not None
    writes = _writes_files(metric.query, conn.dialect.name)
    if writes is not None:
        raise ExtractError(
            f"{name}: the query may only read, but {writes}; a metric's query is one SELECT"
        )
    given_as_text: str | None = None
    warnings: list[tuple[int, str]] = []
    try:
        # a savepoint, so one failing query does not abort the others' transaction
        with conn.begin_nested():
            # rows come as they are fetched (a server-side cursor), so a query that returns
            # millions of them (`SELECT amount FROM orders`, the sum forgotten) holds two in
            # memory, not all of them
            streamed = _streamable(metric.query)
            statement = text(escape_colons(metric.query)).execution_options(stream_results=streamed)
            result = conn.execute(statement)
            # two rows at most: whether there is one is all a metric needs to know
            given_as_text = _text_of(conn, result)  # before the fetch may close the cursor
            rows = result.fetchmany(2) if result.returns_rows else None
            if (
                streamed
                and rows is not None
                and len(rows) > 1
                and conn.dialect.name != "postgresql"
            ):
                # MariaDB/MySQL would read the rest of them to close the result: the
                # connection goes instead (the next metric gets a new one)
                abandon(conn)
                raise _TooManyRows
            result.close()
            if rows is not None and len(rows) == 1:
                warnings = _warnings(conn)  # before the next statement clears them
            broken = read_only_broken(conn)
            if broken is not None:
                # the database rolls back whatever the connection holds; the next metric
                # gets a new one, read-only again
                conn.invalidate()
                raise _ReadOnlyBroken(broken)
    except _TooManyRows:
        rows = [(), ()]
    except _ReadOnlyBroken as exc:
        raise ExtractError(
            f"{name}: the query may only read, but {exc}; a metric's query is one SELECT"
        ) from None
    except sa_exc.DBAPIError as exc:
        message = first_line(exc)
        refused = sqlite_refused(conn)
        if refused is not None:
            raise ExtractError(f"{name}: {refused}") from None
        if _several_statements(exc, metric.query):
            raise ExtractError(
                f"{name}: the query holds several statements; a metric's query is one SELECT"
            ) from None
        if "XAER_RMFAIL" in message:  # MariaDB/MySQL: a COMMIT in the XA transaction
            raise ExtractError(
                f"{name}: the query may only read, but it tries to end the read-only "
                "transaction (COMMIT, ROLLBACK, a statement or procedure that commits); "
                "a metric's query is one SELECT"
            ) from None
        if "database is locked" in message or "database table is locked" in message:
            raise ExtractError(  # SQLite: another connection writing held it past the timeout
                f"{name}: the SQLite file stayed locked by another connection writing to it "
                "for the whole timeout; raise `timeout`, or collect when the writer is done",
                transient=True,
            ) from None
        if any(word in message.lower() for word in _TIMEOUT_WORDS):
            raise ExtractError(
                f"{name}: the query took longer than the timeout", transient=True
            ) from None
        if exc.connection_invalidated:
            raise ExtractError(
                f"{name}: the database dropped the connection during the query: {message}",
                transient=True,
            ) from None
        raise ExtractError(f"{name}: the query failed: {message}") from None
    if rows is None:
        raise ExtractError(
            f"{name}: the statement returns no rows; a metric's query is a SELECT of one value"
        )
    if not rows:
        if metric.allow_zero:
            return 0.0
        raise ExtractError(f"{name}: the query returned no rows")
    if len(rows) > 1:
        raise ExtractError(
            f"{name}: the query returned more than one row; a metric's query returns one "
            "(aggregate the rows, or add a WHERE)"
        )
    row = rows[0]
    if len(row) != 1:
        raise ExtractError(f"{name}: the query must return one column, it returned {len(row)}")
    warned = next((text for code, text in warnings if code in _CONVERSION_WARNINGS), None)
    if warned is not None:
        raise ExtractError(
            f"{name}: the value is not the data's: the database warned {warned!r} (it reads "
            "text as a number up to its first other character); make the text a number in "
            "the query, e.g. REPLACE(amount, ',', '')"
        )
    if row[0] is None and warnings:  # MariaDB's `1/0`, a repeat() past max_allowed_packet
        raise ExtractError(
            f"{name}: the query returned NULL, and the database warned {warnings[0][1]!r}"
        )
    if given_as_text is not None and isinstance(row[0], str):
        raise ExtractError(f"{name}: {given_as_text}")
    if isinstance(row[0], str) and _DATE_TEXT.fullmatch(row[0].strip()):
        # SQLite keeps dates as text: `max(created_at)` is '2026-12-01', whose `regex:`
        # would pick the year
        how = (
            "days with julianday(...) or seconds with strftime('%s', ...)"
            if conn.dialect.name == "sqlite"
            else "seconds with EXTRACT(EPOCH FROM ...) (PostgreSQL) or UNIX_TIMESTAMP(...) "
            "(MariaDB)"
        )
        raise ExtractError(
            f"{name}: the query returned a date or time as text ({row[0].strip()}), not a "
            f"number; return one, e.g. {how}"
        )
    _not_too_long(name, row[0], max_bytes)
    return finish_plain(name, _value(name, row[0]), metric, locale)


#: MariaDB/MySQL's syntax error (1064), with the text from where it stopped understanding
_NEAR = re.compile(r" near '(.+)' at line \d+$", re.S)


def _several_statements(exc: BaseException, query: str) -> bool:
    """Whether the database refused `query` (with `exc`) for holding several statements:
    PostgreSQL and SQLite say so; MariaDB/MySQL report a syntax error at the start of the
    second statement (near 'SELECT 2')."""
    orig = getattr(exc, "orig", None) or exc
    message = str(orig)
    if "multiple commands" in message or "one statement at a time" in message:
        return True
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    if len(args) != 2 or args[0] != 1064 or not isinstance(args[1], str):
        return False
    near = _NEAR.search(args[1])
    at = query.find(near.group(1)) if near is not None else -1
    return at > 0 and query[:at].rstrip().endswith(";")


#: a date, a time or both as ISO 8601 and SQL write them (`2026-12-01`, `20:25:47`,
#: `2026-12-01 20:25:47.079+00:00`)
_DATE_TEXT = re.compile(
    r"(?:\d{4}-\d\d-\d\d(?:[ T]\d\d:\d\d(?::\d\d(?:\.\d+)?)?)?|\d\d:\d\d:\d\d(?:\.\d+)?)"
    r"(?:Z|[+-]\d\d(?::?\d\d)?)?"
)


#: MariaDB/MySQL warnings that a value was made up from what could not be read as one:
#: Out of range (1264), Data truncated (1265), Truncated incorrect ... value (1292),
#: Incorrect ... value (1366), illegal value when converting (1918)
_CONVERSION_WARNINGS = frozenset({1264, 1265, 1292, 1366, 1918})


def _warnings(conn: Any) -> list[tuple[int, str]]:
    """The warnings (code, message) of the statement `conn` just ran on MariaDB/MySQL, which
    say why a value is not the data's (`_CONVERSION_WARNINGS`) or is NULL (`Division by
    0`); empty elsewhere. Call it before the next statement, which clears them."""
    if conn.dialect.name not in ("mysql", "mariadb"):
        return []
    raw = conn.connection.dbapi_connection
    if getattr(getattr(raw, "_result", None), "warning_count", None) == 0:  # PyMySQL's
        return []
    cursor = raw.cursor()
    try:
        cursor.execute("SHOW WARNINGS")
        return [(int(code), str(message)) for _level, code, message in cursor.fetchall()]
    finally:
        cursor.close()


#: PostgreSQL types (by OID) that psycopg hands over as their text, which is no number as
#: written: why, and the cast that gives one
_TEXT_NOT_NUMBER = {
    790: "a money value, written as the server's lc_monetary says ('1.234,56 €'); "
    "cast it: SELECT amount::numeric",
    1560: "a bit string (B'101' is 5, not 101); cast it: SELECT bits::integer",
    1562: "a bit string (B'101' is 5, not 101); cast it: SELECT bits::bit(32)::integer",
}


def _text_of(conn: Any, result: Any) -> str | None:
    """Why the first column of `result` (PostgreSQL) is text that is not the number it
    stands for (`_TEXT_NOT_NUMBER`), or None."""
    if conn.dialect.name != "postgresql":
        return None
    description = result.cursor.description if result.cursor is not None else None
    if not description:
        return None
    why = _TEXT_NOT_NUMBER.get(description[0][1])
    return f"the query returned {why}" if why else None


#: what a query's words are read without, by database: string literals, quoted names,
#: PostgreSQL's dollar quotes ($$...$$, $f$...$f$) and comments; a backslash escapes in
#: MariaDB/MySQL strings and PostgreSQL's E'...' only, `#` starts a comment in MariaDB/MySQL
#: only (XOR in PostgreSQL), and their `/*! ... */` is code they run, no comment
_NOT_WORDS = {
    "postgresql": re.compile(
        r"[eE]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\""
        r"|(\$\w*\$).*?\1|--[^\n]*|/\*.*?\*/",
        re.S,
    ),
    "mysql": re.compile(
        r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.|\"\")*\"|`[^`]*`"
        r"|--\s[^\n]*|#[^\n]*|/\*(?!!|M!).*?\*/",
        re.S,
    ),
}
#: statements and clauses that write files on the database server, which a read-only
#: transaction allows: PostgreSQL's COPY ... TO 'file' (or TO PROGRAM, a shell command)
#: and DO blocks that could run one, lo_export(); MariaDB/MySQL's INTO OUTFILE/DUMPFILE
_FILE_WRITES = {
    "postgresql": (
        (re.compile(r"^\W*(COPY|DO)\b", re.I), "{0} can write files on the database server"),
        (re.compile(r"\b(LO_EXPORT)\s*\(", re.I), "{0}() writes a file on the database server"),
    ),
    "mysql": (
        (
            re.compile(r"\bINTO\s+(OUTFILE|DUMPFILE)\b", re.I),
            "INTO {0} writes a file on the server",
        ),
    ),
}


def _writes_files(query: str, dialect: str) -> str | None:
    """Why `query` would write a file on the server of database `dialect` (`_FILE_WRITES`),
    or None: read-only transactions stop writes to tables, not these, and a superuser's
    URL may run them."""
    if dialect not in ("postgresql", "mysql", "mariadb"):
        return None  # SQLite: no statement writes outside the database file
    kind = "postgresql" if dialect == "postgresql" else "mysql"
    words = _NOT_WORDS[kind].sub(
        # a PostgreSQL "quoted name" is still the name: "lo_export"(...) calls it
        lambda m: f" {m[0][1:-1]} " if dialect == "postgresql" and m[0][0] == '"' else " ",
        query,
    )
    for pattern, why in _FILE_WRITES[kind]:
        found = pattern.search(words)
        if found is not None:
            return why.format(found.group(1).upper())
    return None


#: what may stand before a query's first word: spaces, parentheses and comments (a
#: `-- all orders` line above it)
_LEADING = re.compile(r"(?:\s+|\(|--[^\n]*|#[^\n]*|/\*(?![!M]).*?\*/)*", re.S)


def _streamable(query: str) -> bool:
    """Whether `query` can be read through a server-side cursor: a SELECT, WITH, VALUES or
    TABLE (PostgreSQL declares a cursor for those only; a SHOW, say, is read whole)."""
    lead = _LEADING.match(query)
    words = query[lead.end() if lead else 0 :].split(None, 1)
    return bool(words) and words[0].lower() in ("select", "with", "values", "table")


class _TooManyRows(Exception):
    """A streamed query had more than one row; its connection was dropped unread."""


class _ReadOnlyBroken(Exception):
    """A metric's statement ended the read-only transaction or turned read-only off."""


def _not_too_long(name: str, raw: Any, max_bytes: int) -> None:
    """ExtractError when `raw`, a query's text or binary value, is longer than `max_bytes`
    (the source's cap on one answer): read as a number, 50 MB of text took 18 s and 4 GB."""
    if isinstance(raw, str):
        size = len(raw) if len(raw) * 4 <= max_bytes else len(raw.encode(errors="replace"))
    elif isinstance(raw, bytes | bytearray | memoryview):
        size = len(bytes(raw)) if isinstance(raw, memoryview) else len(raw)
    else:
        return
    if size > max_bytes:
        from pydantic import ByteSize  # an error's wording only

        raise ExtractError(
            f"{name}: the query returned {size:,} bytes, more than max_bytes = "
            f"{ByteSize(max_bytes).human_readable()}; return the number, not the text "
            "around it, or raise `max_bytes` for this source"
        )


def _value(name: str, raw: Any) -> Any:
    """A database's value as `finish_plain` reads it: numbers and text as they are, bytes as
    UTF-8 text; NULL, a date, a time, an interval or another type is an ExtractError saying
    so."""
    from datetime import date, time, timedelta

    if raw is None:
        raise ExtractError(
            f"{name}: the query returned NULL (sum(), max() and avg() of no rows are NULL: "
            "COALESCE(sum(...), 0) when zero is right)"
        )
    if isinstance(raw, int | float | str | bool | Decimal):
        return raw
    if isinstance(raw, bytes | bytearray | memoryview):
        try:
            text = bytes(raw).decode()
        except UnicodeDecodeError:
            text = "\x00"
        if any(char < " " and char not in "\t\n\r" for char in text):
            # MariaDB/MySQL's BIT (b'101' is the byte 5), a BLOB
            raise ExtractError(
                f"{name}: the query returned binary data (a BIT or BLOB value), not a number; "
                "cast it, e.g. SELECT flags + 0"
            )
        return text
    kind = type(raw).__name__
    if isinstance(raw, timedelta):
        raise ExtractError(
            f"{name}: the query returned an interval ({raw}), not a number; return one, e.g. "
            "seconds with EXTRACT(EPOCH FROM ...) (PostgreSQL) or TIME_TO_SEC(...) (MariaDB)"
        )
    if isinstance(raw, date | time):
        raise ExtractError(f"{name}: the query returned a {kind} ({raw}), not a number")
    raise ExtractError(f"{name}: the query returned a {kind} value, not a number")
