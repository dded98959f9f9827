"""Per-day/week/month aggregates of every KPI in one time zone, kept in step with the observations.

The `rollup` table is derived data: `catch_up(engine, zone)` folds in every observation
whose id is above the zone's mark in `rollup_state` (live runs and backfills alike: a
backfilled value gets a new id, whatever its timestamp) by recomputing each touched period
from the raw observations, in ts order, as `periods.aggregate` does, so a rolled-up value is
exactly what `HistoryStore.series` computes. Readers (the dashboard) call it before
reading; writers need not know it exists.

Ids do not commit in order on PostgreSQL and MariaDB: a transaction that took id 10 may
commit after one that took id 11 was folded in. So the mark only moves up to an id that was
already the highest `SETTLE` seconds earlier (every id below it was handed out before then,
and a transaction that writes observations is over in seconds); the ids above the mark are
folded again whenever their count or highest id changes — which a late commit does — and
folding is idempotent, since it recomputes whole periods from the raw observations.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta
from itertools import chain
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

from kpi_collector.store.limits import among, id_chunks
from kpi_collector.store.periods import (
    PERIODS,
    local_midnight,
    next_period,
    period_start,
)

if TYPE_CHECKING:
    import sqlalchemy as sa

AGGS = ("last", "sum", "min", "max", "avg")
_BATCH = 5000


class Point(NamedTuple):
    """One period of one KPI: `start`, the period's first local day; `value`, its values
    aggregated by the KPI's `agg`; `last_ts`, when its newest value was collected (UTC epoch
    seconds)."""

    start: date
    value: float
    last_ts: float


#: a build whose owner has not moved for this long is taken over (its process died)
BUILD_TIMEOUT = 15 * 60.0
#: seconds after which no transaction is expected to commit an id that was below the highest
SETTLE = 300.0
_BUILDING = -1  # rollup_state.last_id while a first build is under way


def _unbuilt(row: Any) -> bool:
    """No rollup yet (or one being built); a built one may have the mark 0 and a seen_id."""
    return row is None or row.last_id == _BUILDING or (row.last_id == 0 and not row.seen_id)


class RollupBusy(RuntimeError):
    """Another process is building the rollup of this time zone right now."""


def catch_up(engine: sa.Engine, zone: ZoneInfo) -> int:
    """Fold observations added since the last call into the rollup of `zone`; returns how many
    rollup rows were written. The first call builds the whole rollup, in chunks of KPIs that
    each commit, so a run writing meanwhile never waits long; RollupBusy while another process
    does that."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import observations as o
    from kpi_collector.store.schema import rollup_state

    with engine.connect() as conn:
        row: Any = conn.execute(
            sa.select(rollup_state).where(rollup_state.c.zone == zone.key)
        ).first()
        if _unbuilt(row):
            high = conn.execute(sa.select(sa.func.max(o.c.id))).scalar()
        else:
            low = int(row.last_id)
            n, high = conn.execute(
                sa.select(sa.func.count(), sa.func.max(o.c.id)).where(o.c.id > low)
            ).one()
    if _unbuilt(row):
        if high is None and row is None:
            with engine.begin() as conn:
                _set_mark(conn, zone.key, 0, insert=True)
            return 0
        if high is None:
            return 0
        return _build(engine, zone, int(high), row)
    now = time.time()
    changed = (int(n), int(high or low)) != (row.seen_n or 0, row.seen_id or low)
    settled = row.settle_at is not None and now - row.settle_at >= SETTLE
    if not changed and not settled:
        return 0
    with engine.begin() as conn:
        claimed = conn.execute(  # one process folds; another one waits here, then skips
            rollup_state.update()
            .where(
                rollup_state.c.zone == zone.key,
                rollup_state.c.last_id == low,
                rollup_state.c.updated_at == row.updated_at,
            )
            .values(updated_at=now)
        ).rowcount
        if claimed != 1:  # another process got there first
            return 0
        # counted before folding: a row committing in between is then folded and not counted
        # (so the next call folds again), never counted and not folded
        n, high = conn.execute(
            sa.select(sa.func.count(), sa.func.max(o.c.id)).where(o.c.id > low)
        ).one()
        high = int(high or low)
        mark, settle_id, settle_at = low, row.settle_id, row.settle_at
        if settled:
            mark, settle_id, settle_at = max(low, int(row.settle_id)), None, None
        above = int(n) if mark == low else _count(conn, mark, high)
        added = 0
        if (int(n), high) != (row.seen_n or 0, row.seen_id or low):
            added = _refresh(conn, zone, low, high)
        _save_state(conn, zone.key, mark, high, above, (settle_id, settle_at), now)
    return added


def _count(conn: sa.Connection, low: int, high: int) -> int:
    """How many observations have low < id <= high."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import observations as o

    if high <= low:
        return 0
    query = sa.select(sa.func.count()).where(o.c.id > low, o.c.id <= high)
    return int(conn.execute(query).scalar_one())


def _save_state(
    conn: sa.Connection,
    zone: str,
    mark: int,
    high: int,
    above: int,
    settle: tuple[int | None, float | None],
    now: float,
) -> None:
    """The mark, the `above` observations over it up to `high` that were folded in, and, while
    there are any, the id that becomes the mark once it has been the highest for SETTLE s."""
    from kpi_collector.store.schema import rollup_state

    settle_id, settle_at = settle
    if high <= mark:
        settle_id, settle_at = None, None
    elif settle_id is None:
        settle_id, settle_at = high, now
    conn.execute(
        rollup_state.update()
        .where(rollup_state.c.zone == zone)
        .values(
            last_id=mark,
            seen_id=max(high, mark),
            seen_n=above,
            settle_id=settle_id,
            settle_at=settle_at,
            updated_at=now,
        )
    )


def _build(engine: sa.Engine, zone: ZoneInfo, high: int, row: Any) -> int:
    """The whole rollup of `zone` from scratch, claimed in rollup_state while it is built."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import observations as o
    from kpi_collector.store.schema import rollup, rollup_state

    now = time.time()
    if row is not None and row.last_id == _BUILDING and now - row.updated_at < BUILD_TIMEOUT:
        raise RollupBusy(f"another process is building the rollup of {zone.key}")
    with engine.begin() as conn:  # the claim: one process wins, the others fail on the key
        if row is None:
            _set_mark(conn, zone.key, _BUILDING, insert=True)
        else:
            claimed = conn.execute(
                rollup_state.update()
                .where(
                    rollup_state.c.zone == zone.key,
                    rollup_state.c.last_id == row.last_id,
                    rollup_state.c.updated_at == row.updated_at,
                )
                .values(last_id=_BUILDING, updated_at=now)
            ).rowcount
            if claimed != 1:
                raise RollupBusy(f"another process is building the rollup of {zone.key}")
        # an id below `high` may still commit: the mark starts at what had surely settled,
        # and the ids above it are folded again as they change (see the module docstring);
        # counted before the KPIs are listed and folded, as in catch_up
        mark = _settled_before(conn, now - SETTLE, high)
        above = _count(conn, mark, high)
        conn.execute(rollup.delete().where(rollup.c.zone == zone.key))
        kpis = [k for (k,) in conn.execute(sa.select(o.c.kpi).distinct().where(o.c.id <= high))]
    added = 0
    for chunk in _chunks(sorted(kpis), 50):
        with engine.begin() as conn:
            added += _rebuild(conn, zone, None, chunk, high)
            _set_mark(conn, zone.key, _BUILDING, insert=False)  # still alive
    with engine.begin() as conn:
        _save_state(conn, zone.key, mark, high, above, (high, now), time.time())
    return added


def _settled_before(conn: sa.Connection, when: float, high: int) -> int:
    """The highest id of the observations of runs that finished before `when` (0: none):
    every id below it was handed out before then."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import observations as o
    from kpi_collector.store.schema import runs

    # a run's observations commit with its finished_at (HistoryStore.finish_run)
    finished = sa.select(runs.c.id).where(runs.c.finished_at < when)
    found = conn.execute(
        sa.select(sa.func.max(o.c.id)).where(o.c.run_id.in_(finished), o.c.id <= high)
    ).scalar()
    return int(found or 0)


def pending(engine: sa.Engine, zone: ZoneInfo) -> int:
    """How many observations `catch_up` has still to fold in for `zone` (an upper bound)."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import observations as o
    from kpi_collector.store.schema import rollup_state

    with engine.connect() as conn:
        row: Any = conn.execute(
            sa.select(rollup_state).where(rollup_state.c.zone == zone.key)
        ).first()
        if _unbuilt(row):  # all of them, at most the highest id
            return int(conn.execute(sa.select(sa.func.max(o.c.id))).scalar() or 0)
        above = conn.execute(sa.select(sa.func.count()).where(o.c.id > row.last_id)).scalar_one()
    return max(int(above) - int(row.seen_n or 0), 0)  # the ones the last fold did not see


def _set_mark(conn: sa.Connection, zone: str, last_id: int, *, insert: bool) -> None:
    from kpi_collector.store.schema import rollup_state

    values = {"last_id": last_id, "updated_at": time.time()}
    if insert:
        conn.execute(rollup_state.insert().values(zone=zone, **values))
    else:
        conn.execute(rollup_state.update().where(rollup_state.c.zone == zone).values(**values))


def _refresh(conn: sa.Connection, zone: ZoneInfo, low: int, high: int) -> int:
    """Recompute the periods that contain an observation with low < id <= high."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import observations as o

    touched = conn.execute(
        sa.select(o.c.kpi, sa.func.min(o.c.ts), sa.func.max(o.c.ts))
        .where(o.c.id > low, o.c.id <= high)
        .group_by(o.c.kpi)
    ).all()
    by_range: dict[tuple[date, date], list[str]] = {}
    for kpi, first, last in touched:
        days = (_local_day(first, zone), _local_day(last, zone))
        by_range.setdefault(days, []).append(kpi)
    added = 0
    for days, kpis in by_range.items():
        for chunk in _chunks(kpis, 500):
            added += _rebuild(conn, zone, days, chunk, high)
    return added


def _rebuild(
    conn: sa.Connection,
    zone: ZoneInfo,
    days: tuple[date, date] | None,
    kpis: Sequence[str],
    high: int,
) -> int:
    """Recompute the periods of `kpis` (every level) that contain one of `days` (None: all)."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import observations as o
    from kpi_collector.store.schema import rollup

    query = (
        sa.select(o.c.kpi, o.c.ts, o.c.value)
        .where(o.c.kpi.in_(list(kpis)), o.c.id <= high)
        .order_by(o.c.kpi, o.c.ts, o.c.id)
    )
    keep: dict[str, tuple[date, date]] = {}
    if days is not None:
        first, last = days
        # the fetched span holds every week and month that touches [first, last] whole
        lo = min(period_start(first, "week"), period_start(first, "month"))
        hi = max(
            next_period(period_start(last, "week"), "week"),
            next_period(period_start(last, "month"), "month"),
        )
        query = query.where(o.c.ts >= local_midnight(lo, zone), o.c.ts < local_midnight(hi, zone))
        keep = {p: (period_start(first, p), period_start(last, p)) for p in PERIODS}
    rows = conn.execute(query).all()  # whole, so the writes below may share the connection
    insert = _Inserter(conn)
    deleted: set[str] = set()
    for kpi, period, start, chunks, last_ts in _periods(rows, zone):
        if days is not None:
            lo_p, hi_p = keep[period]
            if not lo_p <= start <= hi_p:
                continue
            if kpi not in deleted:
                deleted.add(kpi)
                for p, (a, b) in keep.items():
                    conn.execute(
                        rollup.delete().where(
                            rollup.c.zone == zone.key,
                            rollup.c.period == p,
                            rollup.c.kpi == kpi,
                            rollup.c.start >= a.toordinal(),
                            rollup.c.start <= b.toordinal(),
                        )
                    )
        insert.add((zone.key, period, start.toordinal(), kpi, last_ts, *_aggregates(chunks)))
    return insert.finish()


def _aggregates(chunks: Sequence[list[float]]) -> tuple[int, float, float, float, float, float]:
    """(n, last, sum, min, max, avg) of the values of `chunks` in order: exactly what
    `periods.aggregate` gives for their concatenation (sum adds left to right from 0)."""
    if len(chunks) == 1:
        values = chunks[0]
        total = sum(values)
        return len(values), values[-1], float(total), min(values), max(values), total / len(values)
    n = sum(len(c) for c in chunks)
    total = sum(chain.from_iterable(chunks))
    low = min(min(c) for c in chunks)
    high = max(max(c) for c in chunks)
    return n, chunks[-1][-1], float(total), low, high, total / n


class _Inserter:
    """Batched inserts of rollup rows straight through the driver (tuples, no per-row dicts)."""

    COLUMNS = ("zone", "period", "start", "kpi", "last_ts", "n", "last", "sum", "min", "max", "avg")

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.rows: list[tuple[Any, ...]] = []
        self.written = 0
        style = conn.dialect.paramstyle
        mark = "?" if style == "qmark" else "%s" if style in ("format", "pyformat") else None
        quote = conn.dialect.identifier_preparer.quote
        self.sql = (
            f"INSERT INTO {quote('rollup')} ({', '.join(quote(c) for c in self.COLUMNS)}) "
            f"VALUES ({', '.join([mark] * len(self.COLUMNS))})"
            if mark
            else None
        )

    def add(self, row: tuple[Any, ...]) -> None:
        self.rows.append(row)
        if len(self.rows) >= _BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.rows:
            return
        if self.sql is not None:
            self.conn.exec_driver_sql(self.sql, self.rows)
        else:  # a driver with another parameter style: through SQLAlchemy
            from kpi_collector.store.schema import rollup

            self.conn.execute(
                rollup.insert(), [dict(zip(self.COLUMNS, r, strict=True)) for r in self.rows]
            )
        self.written += len(self.rows)
        self.rows = []

    def finish(self) -> int:
        self.flush()
        return self.written


def _periods(
    rows: Iterable[Any], zone: ZoneInfo
) -> Iterator[tuple[str, str, date, list[list[float]], float]]:
    """(kpi, period, start, its values as per-day lists in ts order, last ts) for every day,
    week and month of rows sorted by kpi, ts."""
    for kpi, days in _days(rows, zone):
        for period in PERIODS:
            if period == "day":
                for day, values, last_ts in days:
                    yield kpi, "day", day, [values], last_ts
                continue
            start: date | None = None
            chunks: list[list[float]] = []
            last = 0.0
            for day, values, last_ts in days:
                begins = period_start(day, period)
                if begins != start:
                    if start is not None:
                        yield kpi, period, start, chunks, last
                    start, chunks = begins, []
                chunks.append(values)
                last = last_ts
            if start is not None:
                yield kpi, period, start, chunks, last


def _days(rows: Iterable[Any], zone: ZoneInfo) -> Iterator[tuple[str, list[list[Any]]]]:
    """Per KPI: [local day, values in ts order, last ts] for each day it has values."""
    kpi_now: str | None = None
    days: list[list[Any]] = []
    group: list[Any] = []
    day_end = float("-inf")
    for kpi, ts, value in rows:
        if kpi != kpi_now:
            if kpi_now is not None:
                yield kpi_now, days
            kpi_now, days, day_end = kpi, [], float("-inf")
        if ts >= day_end:
            day = _local_day(ts, zone)
            day_end = local_midnight(day + timedelta(days=1), zone)
            group = [day, [], ts]
            days.append(group)
        group[1].append(value)
        group[2] = ts
    if kpi_now is not None:
        yield kpi_now, days


def read(
    engine: sa.Engine,
    zone: ZoneInfo,
    period: str,
    *,
    since: date,
    agg: Mapping[str, str] | None = None,
    kpis: Sequence[str] | None = None,
) -> dict[str, list[Point]]:
    """Each KPI's value per period from `since` on, by its `agg` (default last), oldest first
    (as `Point`s; the dashboard reads `read_flat`'s rows)."""
    days: dict[int, date] = {}
    out: dict[str, list[Point]] = {}
    for kpi, start, value, last_ts in read_flat(
        engine, zone, period, since=since, agg=agg, kpis=kpis
    ):
        day = days.get(start)
        if day is None:
            day = days[start] = date.fromordinal(start)
        out.setdefault(kpi, []).append(Point(day, value, last_ts))
    return out


def read_flat(
    engine: sa.Engine,
    zone: ZoneInfo,
    period: str,
    *,
    since: date,
    agg: Mapping[str, str] | None = None,
    kpis: Sequence[str] | None = None,
    with_ts: bool = True,
) -> list[Any]:
    """Rows (kpi, start ordinal, value by the KPI's agg[, last ts]), each KPI's oldest first:
    the cheapest form for hundreds of KPIs."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import rollup as r

    agg = agg or {}
    first = period_start(since, period).toordinal()
    wanted = set(kpis) if kpis is not None else None
    others = {k: a for k, a in agg.items() if a != "last" and (wanted is None or k in wanted)}
    if wanted is None:
        # every KPI: one read of the periods' rows with each agg's column in use, the
        # column picked per KPI (a query per agg naming its KPIs 500 at a time read every
        # row once per 500: 3,000 `sum` KPIs among 10,000 read the 300,000 rows 7 times)
        names = sorted({"last", *others.values()})
        query = (
            sa.select(
                r.c.kpi, r.c.start, *(r.c[n] for n in names), *([r.c.last_ts] if with_ts else [])
            )
            .where(r.c.zone == zone.key, r.c.period == period, r.c.start >= first)
            .order_by(r.c.start, r.c.kpi)  # the key order: no sort
        )
        column = {n: 2 + i for i, n in enumerate(names)}
        at = {k: column[a] for k, a in others.items()}
        last, ts = column["last"], 2 + len(names)
        with engine.connect() as conn:
            found = conn.execute(query).all()
        if with_ts:
            return [(row[0], row[1], row[at.get(row[0], last)], row[ts]) for row in found]
        return [(row[0], row[1], row[at.get(row[0], last)]) for row in found]
    # the named KPIs: one query per agg in use, reading just that column
    groups: dict[str, list[str]] = {}
    for kpi, a in others.items():
        groups.setdefault(a, []).append(kpi)
    groups["last"] = [k for k in wanted if k not in others]
    rows: list[Any] = []
    with engine.connect() as conn:
        for a, members in groups.items():
            query = (
                sa.select(r.c.kpi, r.c.start, r.c[a], *([r.c.last_ts] if with_ts else []))
                .where(r.c.zone == zone.key, r.c.period == period, r.c.start >= first)
                .order_by(r.c.start, r.c.kpi)  # the key order: no sort
            )
            # tens of thousands of ids would pass a backend's limit of bound values
            for chunk in id_chunks(conn, members):
                rows += conn.execute(query.where(among(conn, r.c.kpi, chunk))).all()
    return rows


def newest_timestamps(engine: sa.Engine, zone: ZoneInfo, since: date) -> dict[str, float]:
    """When each KPI with a value since `since` got its newest one (from the month rows)."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import rollup as r

    query = (
        sa.select(r.c.kpi, r.c.last_ts)
        .where(r.c.zone == zone.key, r.c.period == "month")
        .where(r.c.start >= period_start(since, "month").toordinal())
        .order_by(r.c.start, r.c.kpi)
    )
    with engine.connect() as conn:
        return dict(conn.execute(query).all())  # later months overwrite earlier ones


def latest(engine: sa.Engine, zone: ZoneInfo) -> dict[str, tuple[float, float]]:
    """Each KPI's newest value and its timestamp: (value, ts)."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import rollup as r

    newest = (
        sa.select(r.c.kpi, sa.func.max(r.c.start).label("start"))
        .where(r.c.zone == zone.key, r.c.period == "month")
        .group_by(r.c.kpi)
        .subquery()
    )
    query = (
        sa.select(r.c.kpi, r.c["last"], r.c.last_ts)
        .join(newest, sa.and_(r.c.kpi == newest.c.kpi, r.c.start == newest.c.start))
        .where(r.c.zone == zone.key, r.c.period == "month")
    )
    with engine.connect() as conn:
        return {kpi: (value, ts) for kpi, value, ts in conn.execute(query)}


def _local_day(ts: float, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(ts, zone).date()


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]
