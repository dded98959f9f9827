"""A SQLite store file through the standard library's `sqlite3`, for the statements a run makes.

Importing SQLAlchemy costs about 0.35 s of CPU on the 2-core benchmark machine (a third of a
1,000-page `kpi run` at 0 ms latency; `benchmarks/bench_fanin.py`); a run against a SQLite
file needs only a few plain statements: its run row, its observations and errors, the run
lock's heartbeat rows and each KPI's previous value. `HistoryStore` sends those here when the
store is a plain `sqlite:///path` URL whose file exists with the current schema version, and
everything else (creating and migrating the schema, the dashboard's queries, deliveries,
other databases) through SQLAlchemy as before. Both write the same rows (the store's tests
run each statement both ways and compare the tables).

The connections are set up as `HistoryStore` sets up SQLAlchemy's (WAL journal, a 30 s busy
timeout, `synchronous=NORMAL`, foreign keys on); write transactions begin with `BEGIN
IMMEDIATE`, so a writer waits for another one instead of failing on upgrading its read lock.

One connection is kept open between transactions, for any thread, one at a time. Closing a
database's last connection checkpoints its WAL into the file and deletes the WAL (with an
fsync of each); a connection per transaction did that about ten times a run, four of them
after the last answer. A thread that finds the kept connection busy (the heartbeat's beat
during the run's write), a transaction inside another one on the same thread, a forked child
(a connection must not cross `fork()`, SQLite's "how to corrupt" page) and a file replaced
since it was opened each get a connection of their own, closed after the transaction.
`close()` closes the kept one (one checkpoint, at the end).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from itertools import islice
from typing import Any

from kpi_collector.errors import StoreError
from kpi_collector.secrets import redact
from kpi_collector.store.limits import chunks, storable_ids
from kpi_collector.store.version import SCHEMA_VERSION

_TIMEOUT = 30  # seconds a statement waits for another connection's lock, as SQLAlchemy's

#: every KPI id with a stored value, sorted, one step of the (kpi, ts) index per id (a
#: recursive query; PostgreSQL has no skip scan, and SQLite without `ANALYZE` statistics,
#: which no store has, read the whole index for a `SELECT DISTINCT kpi`: 40 ms at 300,000
#: values, 2 ms this way)
STORED_IDS = (
    "WITH RECURSIVE k(kpi) AS (SELECT min(kpi) FROM observations"
    " UNION ALL SELECT (SELECT min(i.kpi) FROM observations AS i WHERE i.kpi > k.kpi)"
    " FROM k WHERE k.kpi IS NOT NULL)"
    " SELECT kpi FROM k WHERE kpi IS NOT NULL ORDER BY kpi"
)

HEARTBEAT_COLUMNS = (
    "name",
    "pid",
    "hostname",
    "started_at",
    "beat_at",
    "state",
    "next_run_at",
    "detail",
)


def plain_sqlite_file(url: str) -> str | None:
    """The file of a plain `sqlite:///path` URL (no driver, no query, no %-escapes);
    None for any other URL, a memory database or a `file:` URI."""
    if not url.startswith("sqlite:///") or "?" in url or "%" in url:
        return None
    path = url.removeprefix("sqlite:///")
    if not path or path == ":memory:" or path.startswith("file:"):
        return None
    return path


def open_direct(url: str) -> DirectSqlite | None:
    """The direct connection maker for store `url`, or None when the statements must go
    through SQLAlchemy: not a plain SQLite file URL, no file yet, or a schema that is not
    this version's (SQLAlchemy creates and migrates it). Raises StoreError when the file
    exists but cannot be read."""
    path = plain_sqlite_file(url)
    if path is None or not os.path.isfile(path):
        return None
    direct = DirectSqlite(path, url)
    with direct.read() as conn:
        try:
            row = conn.execute("SELECT value FROM kpi_meta WHERE key = 'schema_version'").fetchone()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return None
            raise
    if row is None or row[0] != str(SCHEMA_VERSION):
        return None
    return direct


class DirectSqlite:
    """Transactions on SQLite file `path` (of store URL `url`, used in error messages with its
    secrets hidden). Every failure becomes StoreError, as through SQLAlchemy."""

    def __init__(self, path: str, url: str) -> None:
        self.path = path
        self.url = url
        self._guard = threading.Lock()  # held while a transaction uses `_kept`
        self._kept: sqlite3.Connection | None = None
        self._kept_as: tuple[int, int, int] = (0, 0, 0)  # (pid, st_dev, st_ino) it was opened in

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA busy_timeout={_TIMEOUT * 1000}")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            conn.close()
            raise
        return conn

    def _file_id(self) -> tuple[int, int, int]:
        try:
            st = os.stat(self.path)
        except OSError:
            return (os.getpid(), 0, 0)
        return (os.getpid(), st.st_dev, st.st_ino)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """The kept connection, opened on first use; a connection of its own (closed at the
        end) when the kept one is busy, was opened in another process, or is of a file that
        has been replaced since. Raises sqlite3.Error when it cannot be opened."""
        if not self._guard.acquire(blocking=False):
            conn = self._connect()
            try:
                yield conn
            finally:
                conn.close()
            return
        try:
            here = self._file_id()
            if self._kept is not None and self._kept_as != here:
                # another process (forked) or another file: leave that one alone, even
                # unclosed (closing it here would release the parent's locks)
                stale, self._kept = self._kept, None
                if self._kept_as[0] == here[0]:
                    stale.close()
            if self._kept is None:
                self._kept = self._connect()
                self._kept_as = self._file_id()
            yield self._kept
        finally:
            self._guard.release()

    def close(self) -> None:
        """Close the kept connection (SQLite checkpoints the WAL when it is the last); the
        next transaction opens one again. In a forked child the parent's is only dropped:
        its guard may have been copied held by a thread the child does not have."""
        if self._kept_as[0] != os.getpid():
            self._kept = None
            return
        with self._guard:
            kept, self._kept = self._kept, None
            if kept is not None:
                kept.close()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A connection for reading (autocommit: each statement sees the latest commit)."""
        try:
            opened = self._connection()
            conn = opened.__enter__()
        except sqlite3.Error as exc:
            raise self._error("open", exc) from None
        try:
            yield conn
        except sqlite3.Error as exc:
            raise self._error("read", exc) from None
        finally:
            opened.__exit__(None, None, None)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (`BEGIN IMMEDIATE`), committed at the end of the block and
        rolled back on an exception."""
        try:
            opened = self._connection()
            conn = opened.__enter__()
        except sqlite3.Error as exc:
            raise self._error("write to", exc) from None
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise self._error("write to", exc) from None
            raise
        finally:
            opened.__exit__(None, None, None)

    def _error(self, verb: str, exc: sqlite3.Error) -> StoreError:
        text = str(exc).strip()
        reason = redact(text.splitlines()[0]) if text else type(exc).__name__
        return StoreError(f"cannot {verb} store {redact(self.url)!r}: {reason}")

    # runs ---------------------------------------------------------------------------------

    def begin_run(self, started_at: float, trigger: str) -> int:
        """Insert a `running` run row; its id."""
        with self.write() as conn:
            cursor = conn.execute(
                'INSERT INTO runs (started_at, status, "trigger") VALUES (?, ?, ?)',
                (started_at, "running", trigger),
            )
            assert cursor.lastrowid is not None
            return cursor.lastrowid

    def finish_run(
        self,
        run_id: int,
        observations: Iterator[tuple[str, float, float, str]],
        errors: list[dict[str, Any]],
        finished_at: float,
        status: str | None,
        batch: int,
    ) -> None:
        """Insert the run's observations ((kpi, ts, value, source), `batch` rows at a time)
        and `errors` (run_errors rows as dicts), then mark the run finished with `status`
        (None: from what was stored), all in one transaction."""
        from kpi_collector.store.history import run_status

        with self.write() as conn:
            stored = 0
            while rows := [
                (run_id, kpi, ts, value, source)
                for kpi, ts, value, source in islice(observations, batch)
            ]:
                conn.executemany(
                    "INSERT INTO observations (run_id, kpi, ts, value, source, backfilled)"
                    " VALUES (?, ?, ?, ?, ?, 0)",
                    rows,
                )
                stored += len(rows)
            if errors:
                conn.executemany(
                    "INSERT INTO run_errors (run_id, source, kpi, message, transient)"
                    " VALUES (:run_id, :source, :kpi, :message, :transient)",
                    [{**e, "transient": int(e["transient"])} for e in errors],
                )
            conn.execute(
                "UPDATE runs SET finished_at = ?, status = ?, n_values = ?, n_errors = ?"
                " WHERE id = ?",
                (finished_at, run_status(status, stored, len(errors)), stored, len(errors), run_id),
            )

    def mark_interrupted(self) -> list[int]:
        """Mark every `running` run `interrupted`; their ids."""
        with self.write() as conn:
            ids = [r[0] for r in conn.execute("SELECT id FROM runs WHERE status = 'running'")]
            for chunk in chunks(ids):
                conn.execute(
                    f"UPDATE runs SET status = 'interrupted' WHERE id IN ({_marks(chunk)})", chunk
                )
        return ids

    # values -------------------------------------------------------------------------------

    def latest(
        self, kpis: Sequence[str] | None, before: float | None, strictly: bool
    ) -> list[tuple[str, float, float, str]]:
        """(kpi, ts, value, source) of each KPI's newest observation (of `kpis`, default all)
        at or before `before` (strictly before when `strictly`), in the order of their ids
        (of two at the same newest time, the later one)."""
        args = [] if before is None else [before]
        found: list[tuple[int, str, float, float, str]] = []
        with self.read() as conn:
            # each KPI's newest row straight from the (kpi, ts, id) index, a lookup per KPI,
            # where max(ts) ... GROUP BY read every row of its history (0.3 s a run for
            # 1,000 KPIs with three years of daily values); every KPI: the ids as stored,
            # from the index too
            every = kpis is None
            asked = [r[0] for r in conn.execute(STORED_IDS)] if every else storable_ids(kpis or ())
            newer = "" if before is None else (" AND i.ts < ?" if strictly else " AND i.ts <= ?")
            for chunk in chunks(asked):
                wanted = ", ".join(["(?)"] * len(chunk))
                found += conn.execute(
                    f"WITH wanted(kpi) AS (VALUES {wanted})"
                    " SELECT o.id, o.kpi, o.ts, o.value, o.source FROM wanted"
                    " JOIN observations AS o ON o.id = (SELECT i.id FROM observations AS i"
                    f" WHERE i.kpi = wanted.kpi{newer} ORDER BY i.ts DESC, i.id DESC LIMIT 1)",
                    [*chunk, *args],
                ).fetchall()
        found.sort()
        return [(kpi, ts, value, source) for _id, kpi, ts, value, source in found]

    # heartbeats ---------------------------------------------------------------------------

    def heartbeat_rows(self, groups: bool) -> list[tuple[Any, ...]]:
        """The heartbeat rows (columns as `HEARTBEAT_COLUMNS`): the process groups' rows
        (`group:%`, oldest first) when `groups`, else every other row."""
        like = "LIKE" if groups else "NOT LIKE"
        order = " ORDER BY started_at" if groups else ""
        with self.read() as conn:
            return conn.execute(
                f"SELECT {', '.join(HEARTBEAT_COLUMNS)} FROM heartbeats"
                f" WHERE name {like} 'group:%'{order}"
            ).fetchall()

    def write_heartbeat(self, name: str, values: dict[str, Any]) -> None:
        """Update row `name` with `values` (by column), or insert it (started_at: its beat,
        state: idle). Raises ValueError for a column the table does not have."""
        unknown = set(values) - set(HEARTBEAT_COLUMNS)
        if unknown:
            raise ValueError(f"heartbeats has no column {', '.join(sorted(unknown))}")
        with self.write() as conn:
            sets = ", ".join(f"{column} = :{column}" for column in values)
            updated = conn.execute(
                f"UPDATE heartbeats SET {sets} WHERE name = :name", {**values, "name": name}
            ).rowcount
            if not updated:
                row = {"started_at": values["beat_at"], "state": "idle", **values, "name": name}
                conn.execute(
                    f"INSERT INTO heartbeats ({', '.join(row)})"
                    f" VALUES ({', '.join(':' + column for column in row)})",
                    row,
                )

    def delete_heartbeats(self, names: Sequence[str]) -> None:
        """Delete the heartbeat rows `names`."""
        with self.write() as conn:
            for chunk in chunks(names):
                conn.execute(f"DELETE FROM heartbeats WHERE name IN ({_marks(chunk)})", chunk)


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))
