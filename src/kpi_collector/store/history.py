"""`HistoryStore`: SQLAlchemy Core over SQLite (default), PostgreSQL or MariaDB/MySQL."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

from kpi_collector.collect.sql import first_line, url_option_problem, with_driver
from kpi_collector.errors import StoreError, missing_package
from kpi_collector.secrets import redact
from kpi_collector.store.limits import (
    ID_MAX,
    TEXT_MAX,
    TRIGGER_MAX,
    among,
    chunks,
    cut,
    fit_text,
    id_chunks,
    id_problem,
    printable_name,
)

if TYPE_CHECKING:
    import sqlalchemy as sa

    from kpi_collector.store.alert_states import AlertState
    from kpi_collector.store.direct import DirectSqlite
    from kpi_collector.store.heartbeats import Heartbeat


_BATCH = 2000  # rows per INSERT of a run's observations


class StoredObservation(NamedTuple):
    """One stored value: `kpi` id (`source.metric`, or a derived KPI's id), `ts` when it was
    collected (UTC epoch seconds), `value`, and the `source` name that gave it ("formula" for
    a derived KPI). What `finish_run` and `add_observations` take and `latest` returns."""

    kpi: str
    ts: float
    value: float
    source: str


class RunError(NamedTuple):
    """One failure of a run: the `source` name ("formula" for a derived KPI), the `kpi` id
    when a single metric failed (None: the whole source), the one-line `message` (secrets
    redacted when stored), and `transient` (a retry may succeed: timeout, 5xx, 429)."""

    source: str
    kpi: str | None
    message: str
    transient: bool


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One run as the store keeps it: its `id`; `started_at` and `finished_at` in UTC epoch
    seconds (`finished_at` None while running); `status` ("running", "ok", "partial",
    "failed" or "interrupted"); `trigger` ("run", "schedule", ...); `n_values` and
    `n_errors`, how many values and errors it stored; and the `errors` themselves, in the
    order they were stored (empty unless read `with_errors`)."""

    id: int
    started_at: float
    finished_at: float | None
    status: str
    trigger: str
    n_values: int
    n_errors: int
    errors: list[RunError] = field(default_factory=list)

    @property
    def duration(self) -> float | None:
        """Seconds from start to finish; None while the run is in progress."""
        return None if self.finished_at is None else self.finished_at - self.started_at


class HistoryStore:
    """The store at a SQLAlchemy `url` (`sqlite:///kpi.db`, `postgresql+psycopg://...`,
    `mysql+pymysql://...`). Nothing connects until first use; the first use migrates the
    schema to the current version.

    Times go in and come out as UTC epoch seconds (floats); `series` and
    `add_observations` take a time zone to tell which local day a moment falls on.
    Every method raises StoreError (one line, the URL's password hidden) when the database
    cannot be opened or written.
    """

    def __init__(self, url: str, *, direct: bool = True) -> None:
        """`direct=False` sends every statement through SQLAlchemy, even a run's on a SQLite
        file (`store.direct`; the tests compare the two)."""
        #: the SQLAlchemy URL as given (may hold a password: show it through `redact`)
        self.url = url
        self._engine: sa.Engine | None = None
        self._direct: DirectSqlite | None = None
        self._direct_checked = not direct

    def __repr__(self) -> str:
        return f"HistoryStore({redact(self.url)!r})"

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine, connected and migrated on first use.

        Raises StoreError for a URL that is no database URL, a missing driver, a database
        that cannot be reached, or a schema newer than this kpi-collector."""
        if self._engine is None:
            engine = self._connect()
            self._migrate(engine)
            self._engine = engine
        return self._engine

    def _connect(self) -> sa.Engine:
        import sqlalchemy as sa

        from kpi_collector.config.plain import check_store_url

        try:
            check_store_url(self.url)  # a password with `@` written as is: how to write it
            url = with_driver(sa.engine.make_url(self.url))
        except sa.exc.ArgumentError:
            raise StoreError(f"store {redact(self.url)!r} is not a database URL") from None
        except ValueError as exc:
            raise StoreError(f"store: {exc}") from None
        problem = url_option_problem(url)
        if problem is not None:
            raise StoreError(f"store {redact(self.url)!r}: {problem}")
        kwargs: dict[str, Any] = {}
        if url.get_backend_name() == "sqlite":
            database = url.database
            if database and database != ":memory:":
                try:
                    Path(database).parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(
                        f"cannot open store {redact(self.url)!r}: {os_reason(exc)}"
                    ) from None
            kwargs["connect_args"] = {"timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        try:
            engine = sa.create_engine(url, **kwargs)
        except Exception as exc:  # missing driver and the like
            reason = missing_package(exc) or redact(str(exc))
            raise StoreError(f"cannot open store {redact(self.url)!r}: {reason}") from None
        if url.get_backend_name() == "sqlite":

            @sa.event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cursor = dbapi_conn.cursor()
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA busy_timeout=30000")
                cursor.execute("PRAGMA synchronous=NORMAL")
                cursor.execute("PRAGMA foreign_keys=ON")
                cursor.close()

        return engine

    def has_schema(self) -> bool:
        """Whether the database holds a kpi-collector schema (something wrote this store):
        asked without creating or migrating anything, for commands that only read (a SQLite
        file is opened read-only: no folder made, no switch to WAL). Raises StoreError when
        the database cannot be reached or read."""
        if self._engine is not None:
            return True
        from kpi_collector.config.plain import sqlite_file
        from kpi_collector.store.schema import meta

        path = sqlite_file(self.url)
        if path is not None:
            import sqlite3

            try:
                with closing(
                    sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
                ) as conn:
                    found = conn.execute(
                        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                        (meta.name,),
                    ).fetchone()
            except sqlite3.Error as exc:
                reason = f"{exc}{sqlite_hint(path, str(exc))}"
                raise StoreError(f"cannot open store {redact(self.url)!r}: {reason}") from None
            return found is not None
        engine = self._connect()
        try:
            with engine.connect() as conn:
                return _schema_version(conn) is not None
        except Exception as exc:
            raise StoreError(f"cannot open store {redact(self.url)!r}: {first_line(exc)}") from None
        finally:
            engine.dispose()

    def migrate(self) -> int:
        """Bring the schema to the current version; returns that version.

        Raises StoreError as `engine` does."""
        return self._migrate(self._engine or self.engine)

    def _migrate(self, engine: sa.Engine) -> int:
        deadline = time.monotonic() + _SQLITE_FIRST_OPEN_WAIT
        while True:
            try:
                return self._migrate_once(engine)
            except _SqliteBusy:
                # a new SQLite file: switching it to WAL, or upgrading a read lock, is
                # refused at once (no busy handler) while another process does the same
                if time.monotonic() > deadline:
                    raise StoreError(
                        f"cannot open store {redact(self.url)!r}: the database stayed locked "
                        f"for {_SQLITE_FIRST_OPEN_WAIT}s"
                    ) from None
                time.sleep(0.05)
                engine.dispose()

    def _migrate_once(self, engine: sa.Engine) -> int:
        from kpi_collector.store import schema

        try:
            with engine.connect() as conn:  # the usual case: up to date, no lock needed
                if _schema_version(conn) == schema.SCHEMA_VERSION:
                    return schema.SCHEMA_VERSION
            if engine.dialect.name in ("mysql", "mariadb"):
                # GET_LOCK is the session's: taken before the transaction and released after
                # its commit, so the next process reads this one's schema_version row (held
                # inside it, the lock went before the commit: a second insert, error 1062)
                with engine.connect() as conn, _migration_lock(conn):
                    conn.commit()  # the lock's own statements; the session keeps the lock
                    with conn.begin():
                        return self._migrate_locked(conn)
            with engine.begin() as conn, _migration_lock(conn):
                return self._migrate_locked(conn)
        except StoreError:
            raise
        except Exception as exc:
            if engine.dialect.name == "sqlite" and "database is locked" in str(exc):
                raise _SqliteBusy from None
            reason = first_line(exc)
            if engine.dialect.name == "sqlite" and engine.url.database:
                reason += sqlite_hint(engine.url.database, reason)
            raise StoreError(f"cannot open store {redact(self.url)!r}: {reason}") from None

    def _migrate_locked(self, conn: sa.Connection) -> int:
        """Create or migrate the schema on `conn`, holding the migration lock."""
        import sqlalchemy as sa

        from kpi_collector.store import schema

        schema.meta.create(conn, checkfirst=True)
        row = conn.execute(
            sa.select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")
        ).first()
        version = int(row[0]) if row else 0
        if version > schema.SCHEMA_VERSION:
            raise StoreError(
                f"the store has schema version {version}, newer than this kpi-collector "
                f"({schema.SCHEMA_VERSION}); upgrade kpi-collector"
            )
        for step in schema.MIGRATIONS[version:]:
            step(conn)
        if version != schema.SCHEMA_VERSION:
            if row:
                conn.execute(
                    schema.meta.update()
                    .where(schema.meta.c.key == "schema_version")
                    .values(value=str(schema.SCHEMA_VERSION))
                )
            else:
                conn.execute(
                    schema.meta.insert().values(
                        key="schema_version", value=str(schema.SCHEMA_VERSION)
                    )
                )
        return schema.SCHEMA_VERSION

    def direct(self) -> DirectSqlite | None:
        """The store's SQLite file through the standard library (`store.direct`), for the
        statements a run makes; None when they go through SQLAlchemy (another database, a
        new file or an older schema: SQLAlchemy migrates it). Decided at the first call.
        Raises StoreError when the file exists but cannot be read."""
        if not self._direct_checked:
            from kpi_collector.store.direct import open_direct

            self._direct = open_direct(self.url)
            self._direct_checked = True
        return self._direct

    def close(self) -> None:
        """Close the connection pool and the SQLite file's kept connection (`store.direct`);
        the next use connects again."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._direct is not None:
            self._direct.close()

    # runs ---------------------------------------------------------------------------------

    def begin_run(self, *, started_at: float | None = None, trigger: str = "run") -> int:
        """Record a run as "running" and return its id; `started_at` is UTC epoch seconds
        (default now), `trigger` says who started it ("run", "schedule"; at most
        `TRIGGER_MAX` characters). Raises StoreError, also for a longer `trigger` (PostgreSQL
        and MariaDB refused it with their own words, SQLite kept it)."""
        if len(trigger) > TRIGGER_MAX:
            raise StoreError(
                f"run trigger {cut(trigger, 60)!r} has {len(trigger)} characters; the store "
                f"keeps at most {TRIGGER_MAX} characters"
            )
        started_at = started_at or time.time()
        direct = self.direct()
        if direct is not None:
            return direct.begin_run(started_at, trigger)
        from kpi_collector.store.schema import runs

        with self.write() as conn:
            result = conn.execute(
                runs.insert().values(started_at=started_at, status="running", trigger=trigger)
            )
            return int(result.inserted_primary_key[0])

    def finish_run(
        self,
        run_id: int,
        *,
        observations: Iterable[StoredObservation],
        errors: Iterable[RunError] = (),
        finished_at: float | None = None,
        status: str | None = None,
    ) -> None:
        """Store run `run_id`'s observations and errors and mark it finished, in one
        transaction (all of it or nothing).

        Error messages are stored with secrets redacted. `finished_at` is UTC epoch seconds
        (default now); `status` defaults to "ok" without errors, "partial" with errors and
        values, "failed" with errors only. Raises StoreError when the write fails."""
        errs = [
            {
                "run_id": run_id,
                "source": printable_name(e.source),
                "kpi": None if e.kpi is None else printable_name(e.kpi),
                "message": printable_name(redact(e.message), TEXT_MAX),
                "transient": e.transient,
            }
            for e in map(RunError._make, errors)
        ]
        # an observation whose KPI id or source name is longer than the store keeps is not
        # stored but becomes an error of the run (appended to `errs` while the rows are
        # inserted, before `errs` is), so the run's other values are (PostgreSQL and MariaDB
        # refused the whole transaction; SQLite kept any length)
        rows = _fitting(observations, run_id, errs)
        finished_at = finished_at or time.time()
        direct = self.direct()
        if direct is not None:
            direct.finish_run(run_id, rows, errs, finished_at, status, batch=_BATCH)
            return
        from kpi_collector.store.schema import observations as obs_table
        from kpi_collector.store.schema import run_errors, runs

        with self.write() as conn:
            # in batches within the one transaction: 50,000 rows as parameter dicts at once
            # would hold tens of MB
            stored = 0
            while batch := [
                {"run_id": run_id, "kpi": k, "ts": ts, "value": v, "source": s, "backfilled": False}
                for k, ts, v, s in islice(rows, _BATCH)
            ]:
                conn.execute(obs_table.insert(), batch)
                stored += len(batch)
            if errs:
                conn.execute(run_errors.insert(), errs)
            conn.execute(
                runs.update()
                .where(runs.c.id == run_id)
                .values(
                    finished_at=finished_at,
                    status=run_status(status, stored, len(errs)),
                    n_values=stored,
                    n_errors=len(errs),
                )
            )

    def runs(self, limit: int = 20, *, with_errors: bool = True) -> list[RunRecord]:
        """The newest `limit` runs, newest first, each with its errors in the order they were
        stored (none read unless `with_errors`). Raises StoreError."""
        import sqlalchemy as sa

        from kpi_collector.store.schema import run_errors, runs

        with self.reading() as conn:
            rows = conn.execute(sa.select(runs).order_by(runs.c.id.desc()).limit(limit)).all()
            errors: dict[int, list[RunError]] = {}
            for chunk in chunks([r.id for r in rows]) if with_errors else ():
                for e in conn.execute(
                    sa.select(run_errors)
                    .where(run_errors.c.run_id.in_(chunk))
                    .order_by(run_errors.c.id)
                ):
                    errors.setdefault(e.run_id, []).append(
                        RunError(e.source, e.kpi, e.message, bool(e.transient))
                    )
        return [
            RunRecord(
                r.id,
                r.started_at,
                r.finished_at,
                r.status,
                r.trigger,
                r.n_values,
                r.n_errors,
                errors.get(r.id, []),
            )
            for r in rows
        ]

    # values -------------------------------------------------------------------------------

    def latest(
        self,
        kpis: Sequence[str] | None = None,
        *,
        before: float | None = None,
        strictly: bool = False,
    ) -> dict[str, StoredObservation]:
        """The newest observation of each KPI (of `kpis`, default all), by KPI id: at or
        before `before` (UTC epoch seconds; default any time), or before it when `strictly`.
        KPIs without such a value are left out. Raises StoreError."""
        direct = self.direct()
        if direct is not None:
            return {
                row[0]: StoredObservation(*row) for row in direct.latest(kpis, before, strictly)
            }
        import sqlalchemy as sa

        from kpi_collector.store.schema import observations as o

        found: list[Any] = []
        with self.reading() as conn:
            if kpis is None and conn.dialect.name not in ("postgresql", "sqlite"):
                # MariaDB/MySQL read each KPI's max(ts) skipping through the (kpi, ts) index
                newest = sa.select(o.c.kpi, sa.func.max(o.c.ts).label("ts")).group_by(o.c.kpi)
                if before is not None:
                    newest = newest.where(o.c.ts < before if strictly else o.c.ts <= before)
                sub = newest.subquery()
                found += conn.execute(
                    sa.select(o.c.id, o.c.kpi, o.c.value, o.c.ts, o.c.source).join(
                        sub, sa.and_(o.c.kpi == sub.c.kpi, o.c.ts == sub.c.ts)
                    )
                ).all()
            else:
                # each KPI's newest row from the (kpi, ts, id) index, one short read per KPI,
                # as `store.direct` does (`max(ts) ... GROUP BY` read every row of their
                # history on PostgreSQL, or the whole table: each run slower than the one
                # before). Every KPI: their ids first, from the index too (`stored_ids`),
                # as stored (`id_chunks` would leave out an id an older store kept, with a
                # control character); in one array on PostgreSQL
                if kpis is None:
                    every = stored_ids(conn)
                    parts = [every] if conn.dialect.name == "postgresql" else list(chunks(every))
                else:
                    parts = id_chunks(conn, kpis)
                for chunk in parts:
                    if chunk:
                        found += conn.execute(newest_each(conn, chunk, before, strictly)).all()
        found.sort(key=lambda r: r.id)  # of two at the same newest time, the later one wins
        return {r.kpi: StoredObservation(r.kpi, r.ts, r.value, r.source) for r in found}

    def previous_values(self, kpis: Sequence[str], *, before: float) -> dict[str, float]:
        """Each KPI's newest value stored strictly before `before` (UTC epoch seconds), live
        or backfilled: {kpi: value}; KPIs without one are left out. Raises StoreError."""
        return {k: r.value for k, r in self.latest(kpis, before=before, strictly=True).items()}

    def kpi_ids(self) -> list[str]:
        """Every KPI id that has at least one stored value, sorted. Raises StoreError."""
        with self.reading() as conn:
            return stored_ids(conn)

    def rows(
        self,
        kpis: Sequence[str] | None = None,
        *,
        since: float | None = None,
        until: float | None = None,
    ) -> list[tuple[str, float, float]]:
        """Every stored value as (kpi, ts, value), ordered by KPI id (in the database's order
        of text; more than 500 `kpis` are asked in chunks and put in Python's), then time,
        then the order of storing; `since` (inclusive) and `until` (exclusive) are UTC epoch
        seconds. Raises StoreError."""
        import sqlalchemy as sa

        from kpi_collector.store.schema import observations as o

        query = sa.select(o.c.kpi, o.c.ts, o.c.value).order_by(o.c.kpi, o.c.ts, o.c.id)
        if since is not None:
            query = query.where(o.c.ts >= since)
        if until is not None:
            query = query.where(o.c.ts < until)
        if kpis is None:
            with self.reading() as conn:
                return [(r[0], r[1], r[2]) for r in conn.execute(query)]
        out: list[tuple[str, float, float]] = []
        with self.reading() as conn:
            parts = id_chunks(conn, kpis)
            for chunk in parts:
                out += [
                    (r[0], r[1], r[2])
                    for r in conn.execute(query.where(among(conn, o.c.kpi, chunk)))
                ]
        if len(parts) > 1:  # each chunk in the database's order of ids; all of them in one
            out.sort(key=lambda r: r[0])  # stable: each KPI's rows keep their time order
        return out

    def series(
        self,
        kpis: Sequence[str] | None = None,
        *,
        period: str = "day",
        since: date | None = None,
        tz: ZoneInfo | str = "UTC",
        agg: Mapping[str, str] | None = None,
    ) -> dict[str, list[tuple[date, float]]]:
        """The value of each KPI (of `kpis`, default all) per `period` ("day", "week" starting
        Monday, "month") in time zone `tz`: {kpi: [(period start date, value), ...]} oldest
        first, from the period holding `since` (a local date; default all history). Each
        KPI's values in a period are aggregated by its `agg` ("last" when not in `agg`; see
        `store.periods`). Raises StoreError."""
        from itertools import groupby

        from kpi_collector.store.periods import bucket, local_midnight, period_start

        zone = ZoneInfo(tz) if isinstance(tz, str) else tz
        since_ts = local_midnight(period_start(since, period), zone) if since else None
        agg = agg or {}
        out: dict[str, list[tuple[date, float]]] = {}
        for kpi, group in groupby(self.rows(kpis, since=since_ts), key=lambda r: r[0]):
            out[kpi] = list(
                bucket(((ts, v) for _, ts, v in group), period, zone, agg.get(kpi, "last"))
            )
        return out

    def add_observations(
        self,
        points: Iterable[StoredObservation],
        *,
        backfilled: bool = True,
        tz: ZoneInfo | str = "UTC",
    ) -> int:
        """Store past values outside any run; returns how many were added.

        A point is skipped when its KPI already has a value on the same local day in `tz`
        (stored earlier or earlier in `points`), so a second backfill adds nothing and a
        value collected live is never overwritten. Raises StoreError when the write fails.
        """
        import sqlalchemy as sa

        from kpi_collector.store.schema import observations as o

        zone = ZoneInfo(tz) if isinstance(tz, str) else tz
        points = list(map(StoredObservation._make, points))
        if not points:
            return 0
        for point in points:
            problem = unstorable(point.kpi, point.value, point.source)
            if problem is not None:
                what = "" if problem.startswith("KPI id") else f"{cut(point.kpi, 60)}: "
                raise StoreError(f"cannot store {what}{problem}")
        kpis = sorted({p.kpi for p in points})
        low = min(p.ts for p in points) - 86400 * 2
        existing: set[tuple[str, date]] = set()
        with self.reading() as conn:
            for chunk in id_chunks(conn, kpis):
                existing.update(
                    (r.kpi, datetime.fromtimestamp(r.ts, zone).date())
                    for r in conn.execute(
                        sa.select(o.c.kpi, o.c.ts).where(among(conn, o.c.kpi, chunk), o.c.ts >= low)
                    )
                )
        fresh = []
        for kpi, ts, value, source in points:
            key = (kpi, datetime.fromtimestamp(ts, zone).date())
            if key in existing:
                continue
            existing.add(key)
            fresh.append(
                {
                    "run_id": None,
                    "kpi": kpi,
                    "ts": ts,
                    "value": value + 0.0,  # -0.0 as 0.0, as in `_fitting`
                    "source": source,
                    "backfilled": backfilled,
                }
            )
        if fresh:
            with self.write() as conn:
                conn.execute(o.insert(), fresh)
        return len(fresh)

    # scheduler and alerts (store.heartbeats, store.alert_states) -----

    def heartbeats(self) -> dict[str, Heartbeat]:
        """Who is alive: `scheduler` (the `kpi schedule` process: state, next run) and `run`
        (the holder of the run lock while a run is in progress), each with its last beat."""
        from kpi_collector.store.heartbeats import heartbeats

        return heartbeats(self)

    def active_alerts(self) -> list[AlertState]:
        """The alerts whose rule is true now, oldest first."""
        from kpi_collector.store.alert_states import active_alerts

        return active_alerts(self)

    # plumbing -----------------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A connection for the store's reads: `with store.reading() as conn:`; a database
        failure (on connecting or inside the block) becomes StoreError, one line that names
        the store with its password hidden."""
        import sqlalchemy as sa

        engine = self.engine
        try:
            with engine.connect() as conn:
                yield conn
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"cannot read store {redact(self.url)!r}: {first_line(exc)}") from None

    def write(self) -> Any:
        """A write transaction for the store's own modules: `with store.write() as conn:`
        commits at the end of the block and rolls back on an exception; a database failure
        (on entering, inside, or on commit) becomes StoreError."""
        return _Writing(self.engine, self.url)


def stored_ids(conn: sa.Connection) -> list[str]:
    """Every KPI id with a stored value, sorted as the database sorts text. On PostgreSQL
    and SQLite one step of the (kpi, ts) index per id (`store.direct.STORED_IDS`: their
    `DISTINCT` read the whole index, 0.04-0.1 s for 300,000 values and growing);
    MariaDB/MySQL skip through the index for a `DISTINCT` themselves (and MySQL stops a
    recursion at 1,000 steps)."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import observations as o

    if conn.dialect.name in ("postgresql", "sqlite"):
        from kpi_collector.store.direct import STORED_IDS

        return [r[0] for r in conn.execute(sa.text(STORED_IDS))]
    return [r[0] for r in conn.execute(sa.select(o.c.kpi).distinct().order_by(o.c.kpi))]


def newest_each(
    conn: sa.Connection,
    kpis: list[str],
    before: float | None = None,
    strictly: bool = False,
    *,
    live: bool = False,
) -> sa.Executable:
    """The newest row (id, kpi, value, ts, source, backfilled, run_id) of each of `kpis` (a list from
    `id_chunks`) at or before `before` (strictly before when `strictly`; None: any time),
    only of those a run collected when `live` (not backfilled), of two at the same time
    the one stored last: a backward read of the (kpi, ts, id) index
    per KPI, however long its history. PostgreSQL: a LATERAL join on the ids as one array
    (`unnest`); elsewhere (MariaDB/MySQL, SQLite) a correlated subquery per id of a derived
    table, which MariaDB reads from the index (`ref`, then the row by its primary key)."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import observations as o

    i = o.alias("i")
    where = [] if before is None else [i.c.ts < before if strictly else i.c.ts <= before]
    if live:
        where.append(i.c.backfilled == sa.false())
    order = (i.c.ts.desc(), i.c.id.desc())
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        wanted: Any = (
            sa.func.unnest(sa.bindparam("kpis", kpis, type_=ARRAY(sa.String)))
            .table_valued("kpi")
            .render_derived(name="wanted")
        )
        newest = (
            sa.select(i.c.id, i.c.kpi, i.c.value, i.c.ts, i.c.source, i.c.backfilled, i.c.run_id)
            .where(i.c.kpi == wanted.c.kpi, *where)
            .order_by(*order)
            .limit(1)
            .lateral("newest")
        )
        return sa.select(newest).select_from(wanted).join(newest, sa.true())
    # as text: building 500 SELECTs as SQLAlchemy constructs took longer than the query
    newer = (
        "" if before is None else (" AND i.ts < :before" if strictly else " AND i.ts <= :before")
    )
    if live:
        newer += " AND i.backfilled = :no"
    union = " UNION ALL ".join(f"SELECT :k{n} AS kpi" for n in range(len(kpis)))
    return sa.text(
        "SELECT o.id, o.kpi, o.value, o.ts, o.source, o.backfilled, o.run_id"
        f" FROM ({union}) AS wanted JOIN observations AS o ON o.id ="
        f" (SELECT i.id FROM observations AS i WHERE i.kpi = wanted.kpi{newer}"
        " ORDER BY i.ts DESC, i.id DESC LIMIT 1)"
    ).bindparams(
        *(sa.bindparam(f"k{n}", kpi, type_=sa.String(ID_MAX)) for n, kpi in enumerate(kpis)),
        *([] if before is None else [sa.bindparam("before", before, type_=sa.Double)]),
        *([sa.bindparam("no", False, type_=sa.Boolean)] if live else []),
    )


def _fitting(
    observations: Iterable[StoredObservation], run_id: int, errors: list[dict[str, Any]]
) -> Iterator[tuple[str, float, float, str]]:
    """`observations` as (kpi, ts, value, source) tuples, but those the store cannot keep
    (`unstorable`), each appended to `errors` as a run_errors row instead."""
    for kpi, ts, value, source in observations:
        problem = unstorable(kpi, value, source)
        if problem is None:
            yield kpi, ts, value + 0.0, source  # -0.0 + 0.0 is 0.0, as every backend reads it
            continue
        errors.append(
            {
                "run_id": run_id,
                "source": printable_name(source),
                "kpi": printable_name(kpi),
                "message": fit_text(redact(f"{problem}; not stored")),
                "transient": False,
            }
        )


def unstorable(kpi: str, value: float, source: str) -> str | None:
    """Why an observation cannot be stored alike on every backend (one line), None when it
    can: a KPI id or source name too long or holding a control character
    (`store.limits.id_problem`), a value that is no finite number (SQLite kept inf and
    refused NaN, PostgreSQL kept both, MariaDB refused both)."""
    problem = id_problem(kpi) or id_problem(source)
    if problem is not None:
        return problem
    if not math.isfinite(value):
        return f"{value} is not a finite number"
    return None


#: what SQLite says when it cannot create or write a file of the store
_CANNOT_WRITE = ("unable to open database file", "readonly database")


def sqlite_hint(path: str, message: str) -> str:
    """Why SQLite could not open or write the store file at `path`, when it said so
    (`message`, one of `_CANNOT_WRITE`) because this user cannot write the file or its
    folder: " (its folder /srv/kpi is read-only ...)", else "". SQLite writes `<file>-wal`
    and `<file>-shm` beside a store (WAL journal) even to read it."""
    import os

    if not any(words in message for words in _CANNOT_WRITE):
        return ""
    file = Path(path).resolve()
    beside = f"SQLite writes {file.name}-wal and {file.name}-shm beside the store, even to read it"
    if file.parent.is_dir() and not os.access(file.parent, os.W_OK):
        return (
            f" (its folder {file.parent} is read-only for this user: {beside}; let it write there)"
        )
    if file.is_file() and not os.access(file, os.W_OK):
        return f" ({file} is read-only for this user; let it write the file)"
    return ""


def os_reason(exc: OSError) -> str:
    """Why a file or folder of a SQLite store cannot be used, in one line: the path the
    system named and its reason ("/srv/kpi: File exists", "/srv: Permission denied")."""
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


def run_status(status: str | None, stored: int, errors: int) -> str:
    """A finished run's status: `status` when given, else "ok" without errors, "partial"
    with errors and `stored` values, "failed" with errors only."""
    if status is not None:
        return status
    return "ok" if not errors else ("partial" if stored else "failed")


class _Writing:
    """A write transaction whose failures become StoreError with the URL's password hidden."""

    def __init__(self, engine: sa.Engine, url: str) -> None:
        self._ctx = engine.begin()
        self._url = url

    def __enter__(self) -> sa.Connection:
        try:
            return self._ctx.__enter__()
        except Exception as exc:
            raise StoreError(
                f"cannot write to store {redact(self._url)!r}: {first_line(exc)}"
            ) from None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        import sqlalchemy as sa

        try:
            self._ctx.__exit__(exc_type, exc, tb)
        except Exception as error:
            raise StoreError(
                f"cannot write to store {redact(self._url)!r}: {first_line(error)}"
            ) from None
        if isinstance(exc, sa.exc.SQLAlchemyError):
            raise StoreError(
                f"cannot write to store {redact(self._url)!r}: {first_line(exc)}"
            ) from None


class _SqliteBusy(Exception):
    """SQLite said `database is locked` while the schema was checked or migrated."""


_SQLITE_FIRST_OPEN_WAIT = 30  # seconds
_MIGRATION_LOCK = "kpi_collector:migrate"
_MIGRATION_WAIT = 120  # seconds a process waits for another one's migration (MariaDB)


def _schema_version(conn: sa.Connection) -> int | None:
    """The store's schema version, None when it has none yet."""
    import sqlalchemy as sa

    from kpi_collector.store import schema

    if not sa.inspect(conn).has_table(schema.meta.name):
        return None
    row = conn.execute(
        sa.select(schema.meta.c.value).where(schema.meta.c.key == "schema_version")
    ).first()
    return int(row[0]) if row else None


@contextmanager
def _migration_lock(conn: sa.Connection) -> Iterator[None]:
    """Hold the store's migration lock on `conn` while the schema is checked and migrated,
    so that processes opening a new shared store at once create it one after the other
    (without it: PostgreSQL's duplicate `pg_type` rows, MariaDB's "concurrent DDL").

    - PostgreSQL: `pg_advisory_xact_lock`, released with the transaction (PostgreSQL manual,
      "Advisory Lock Functions"); the key is per database, so two stores in one server do
      not wait on each other.
    - MariaDB / MySQL: `GET_LOCK` with a name per database (DDL commits implicitly there, so
      a transaction cannot be the lock), released here.
    - SQLite: `BEGIN IMMEDIATE` takes the database's write lock before the schema is read
      (pysqlite would begin only at the first write); `busy_timeout` makes others wait.
    """
    import sqlalchemy as sa

    backend = conn.dialect.name
    if backend == "postgresql":
        conn.execute(
            sa.text(
                "SELECT pg_advisory_xact_lock(hashtextextended("
                ":name || current_database() || '.' || current_schema(), 0))"
            ),
            {"name": _MIGRATION_LOCK},
        )
        yield
    elif backend in ("mysql", "mariadb"):
        name = conn.execute(
            sa.text("SELECT CONCAT(:name, ':', MD5(COALESCE(DATABASE(), '')))"),  # <= 64 chars
            {"name": _MIGRATION_LOCK},
        ).scalar()
        got = conn.execute(
            sa.text("SELECT GET_LOCK(:name, :wait)"), {"name": name, "wait": _MIGRATION_WAIT}
        ).scalar()
        if got != 1:
            raise StoreError(
                f"another process has been migrating the store for {_MIGRATION_WAIT}s; "
                f"try again when it is done"
            )
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT RELEASE_LOCK(:name)"), {"name": name})
    elif backend == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        yield
    else:
        yield
