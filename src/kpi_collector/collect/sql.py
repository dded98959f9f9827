"""Reading other people's databases: an engine that cannot write where the database lets
us say so, and a read-only, time-bounded transaction. Used by the `sql` source and the
active-users queries."""

from __future__ import annotations

from typing import Any

from kpi_collector.secrets import redact


def open_readonly(url: str, timeout: float) -> Any:
    """An engine for `url` that cannot write where the database lets us say so."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    parsed = make_url(url)
    backend = parsed.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            parsed = parsed.set(database=f"file:{database}?mode=ro", query={"uri": "true"})
        connect_args["timeout"] = timeout
    elif backend == "postgresql":
        connect_args["connect_timeout"] = max(1, int(timeout))
    elif backend in ("mysql", "mariadb"):
        connect_args["connect_timeout"] = max(1, int(timeout))
        connect_args["read_timeout"] = max(1, int(timeout))
    engine = create_engine(parsed, poolclass=NullPool, connect_args=connect_args)
    if backend == "sqlite":
        import time

        @event.listens_for(engine, "connect")
        def _deadline(dbapi_conn: Any, _record: Any) -> None:
            # sqlite has no statement timeout: interrupt a query that runs past it
            deadline = time.monotonic() + timeout
            dbapi_conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)

    return engine


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
