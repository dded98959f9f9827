"""Questions about past runs that alerts, the scheduler and the dashboard ask the store: failing
streaks, the first run, the newest manual run, the newest value of a source. UTC epoch seconds."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from kpi_collector.store.limits import among, chunks, id_chunks

if TYPE_CHECKING:
    import sqlalchemy as sa

    from kpi_collector.store import HistoryStore, RunRecord


#: runs `failing_streaks` reads at most per query
_STREAK_PAGE = 5000
#: how far back `failing_streaks` looks for a source's runs: a source with its own weekly
#: `schedule` among jobs of other sources every five minutes (2,016 runs a week) or hourly
#: for years is still found
REACH = 50_000
#: the same, as alerts name it
ALERT_REACH = REACH


def failing_streaks(
    store: HistoryStore, sources: Sequence[str], *, depth: int, reach: int = REACH
) -> dict[str, tuple[int, str | None]]:
    """For each source: how many of its newest runs failed in a row (any error counts), and
    the newest error. Looks at the newest `depth` runs that included it (values or errors)
    among the store's newest `reach` runs (`REACH`: a source with its own weekly `schedule`
    among jobs of others every few minutes is found; a fixed window of the newest 50 runs
    made it look never run, in health, the dashboard, /metrics and the report alike): the
    runs are read newest first, page by page, until each source has `depth` runs or one
    that did not fail. A source in none of them is left out."""
    limit = reach
    import sqlalchemy as sa

    from kpi_collector.store.schema import observations, run_errors, runs

    failed: dict[tuple[int, str], str] = {}
    page, below, read = min(max(50, depth * 10), _STREAK_PAGE, limit), None, 0
    with store.reading() as conn:
        # a source that never ran (a new one on its own weekly schedule) is in none of the
        # runs: looked for, it had every call read all `reach` runs (0.5 s for 50,000 runs
        # of 20 values); whether it left any trace is two cheap questions
        traced = _traced(conn, sources)
        # run ids, newest first
        history: dict[str, list[int]] = {name: [] for name in sources if name in traced}
        while read < limit:
            # a source is done once it has `depth` runs or a run that did not fail
            todo = [
                name
                for name, ids in history.items()
                if len(ids) < depth and all((i, name) in failed for i in ids)
            ]
            if not todo:
                break
            query = sa.select(runs.c.id).where(runs.c.status.notin_(("running", "interrupted")))
            if below is not None:
                query = query.where(runs.c.id < below)
            ids = [r[0] for r in conn.execute(query.order_by(runs.c.id.desc()).limit(page))]
            if not ids:
                break
            read, below = read + len(ids), ids[-1]
            page = min(page * 4, _STREAK_PAGE, limit - read) or 1
            finished = set(ids)
            # a range of run ids (the index on run_id), not an IN (...) of thousands
            error_span = run_errors.c.run_id.between(ids[-1], ids[0])
            value_span = observations.c.run_id.between(ids[-1], ids[0])
            seen: set[tuple[int, str]] = set()
            # many sources would pass a backend's limit of bound values in one IN (...)
            for names in id_chunks(conn, todo):
                for run_id, source, message in conn.execute(
                    sa.select(run_errors.c.run_id, run_errors.c.source, run_errors.c.message)
                    .where(error_span, among(conn, run_errors.c.source, names))
                    .order_by(run_errors.c.id)
                ):
                    if run_id in finished:
                        failed.setdefault((run_id, source), message)
                        seen.add((run_id, source))
                seen.update(
                    (r[0], r[1])
                    for r in conn.execute(
                        sa.select(observations.c.run_id, observations.c.source)
                        .where(value_span, among(conn, observations.c.source, names))
                        .distinct()
                    )
                    if r[0] in finished
                )
            for run_id in ids:  # newest first
                for name in todo:
                    if (run_id, name) in seen:
                        history[name].append(run_id)
    out: dict[str, tuple[int, str | None]] = {}
    for source, ids in history.items():
        if not ids:
            continue
        streak, newest = 0, None
        for run_id in ids[:depth]:
            if (run_id, source) not in failed:
                break
            newest = newest or failed[(run_id, source)]
            streak += 1
        out[source] = (streak, newest)
    return out


def _traced(conn: sa.Connection, sources: Sequence[str]) -> set[str]:
    """Which of `sources` stored a value (a KPI id `<source>.<metric>`, from the index) or an
    error ever."""
    import sqlalchemy as sa

    from kpi_collector.store.history import stored_ids
    from kpi_collector.store.schema import run_errors

    wanted = set(sources)
    found = {kpi.split(".")[0] for kpi in stored_ids(conn)} & wanted
    rest = [name for name in sources if name not in found]
    for names in id_chunks(conn, rest):
        query = sa.select(run_errors.c.source).where(among(conn, run_errors.c.source, names))
        found.update(row[0] for row in conn.execute(query.distinct()))
    return found


def first_run_at(store: HistoryStore) -> float | None:
    """When the store's first run started (UTC epoch), None before any run."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import runs

    with store.reading() as conn:
        value = conn.execute(sa.select(sa.func.min(runs.c.started_at))).scalar()
    return float(value) if value is not None else None


def last_manual_run(
    store: HistoryStore, sources: Sequence[str], *, statuses: Sequence[str] = ("ok", "partial")
) -> float | None:
    """When the newest successful `kpi run` that collected every one of `sources` started: a
    `kpi run --only` of some of them is no run of the main job. A run collected a source when
    it stored a value or an error of it (every manual run is looked at, newest first, a page
    of `_MANUAL_PAGE` at a time)."""
    with store.reading() as conn:
        return _last_manual_run(conn, tuple(sources), tuple(statuses))


#: manual runs asked for at a time while looking for the newest full one
_MANUAL_PAGE = 20


def _last_manual_run(
    conn: sa.Connection, sources: tuple[str, ...], statuses: tuple[str, ...]
) -> float | None:
    import sqlalchemy as sa

    from kpi_collector.store.schema import runs

    wanted = set(sources)
    before: int | None = None
    while True:  # newest first, a page at a time: 20 `kpi run --only` runs hid a full one
        query = (
            sa.select(runs.c.id, runs.c.started_at)
            .where(runs.c.trigger == "run", runs.c.status.in_(statuses))
            .order_by(runs.c.id.desc())
            .limit(_MANUAL_PAGE)
        )
        if before is not None:
            query = query.where(runs.c.id < before)
        recent = conn.execute(query).all()
        if not recent or not sources:
            return float(recent[0].started_at) if recent else None
        collected = _collected(conn, [r.id for r in recent], sources)
        for run in recent:
            if collected.get(run.id, set()) >= wanted:
                return float(run.started_at)
        if len(recent) < _MANUAL_PAGE:
            return None
        before = recent[-1].id


def _collected(conn: sa.Connection, ids: list[int], sources: Sequence[str]) -> dict[int, set[str]]:
    """Which of `sources` each run of `ids` collected: stored a value or an error of."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import observations, run_errors

    collected: dict[int, set[str]] = {}
    for table in (observations, run_errors):
        for names in id_chunks(conn, sources):  # many: a backend's limit of bound values
            for chunk in chunks(ids):
                query = (
                    sa.select(table.c.run_id, table.c.source)
                    .where(table.c.run_id.in_(chunk), among(conn, table.c.source, names))
                    .distinct()
                )
                for run_id, source in conn.execute(query):
                    collected.setdefault(run_id, set()).add(source)
    return collected


def runs_collecting(
    store: HistoryStore, sources: Sequence[str], *, page: int = 200, pages: int = 500
) -> Iterator[RunRecord]:
    """The runs with stored values that collected every one of `sources` (a value or an
    error of each: runs of the main job and full manual runs, not a source's own job),
    newest first; every run with values when `sources` is empty. Reads `page` runs at a
    time, at most `pages` pages (a source collected every minute leaves many runs between
    two daily ones: 100,000 runs by default, ten weeks of it). Raises StoreError."""
    import sqlalchemy as sa

    from kpi_collector.store import history
    from kpi_collector.store.schema import runs

    below: int | None = None
    for _ in range(pages):
        with store.reading() as conn:
            query = sa.select(runs).where(runs.c.n_values > 0)
            if below is not None:
                query = query.where(runs.c.id < below)
            rows = conn.execute(query.order_by(runs.c.id.desc()).limit(page)).all()
            collected = _collected(conn, [r.id for r in rows], sources) if sources else {}
        for r in rows:
            if not sources or collected.get(r.id, set()) >= set(sources):
                yield history.RunRecord(
                    r.id, r.started_at, r.finished_at, r.status, r.trigger, r.n_values, r.n_errors
                )
        if len(rows) < page:
            return
        below = rows[-1].id


def newest_collected(store: HistoryStore, source: str) -> float | None:
    """When `source` last stored a value collected by a run (not backfilled), UTC epoch."""
    return newest_collected_by_kpis(store, {source: []}).get(source)


def newest_collected_by_kpis(
    store: HistoryStore, kpis: Mapping[str, Sequence[str]]
) -> dict[str, float]:
    """For each source (name -> its KPI ids, empty when the source names them only as it
    runs): when it last stored a value collected by a run (not backfilled), UTC epoch;
    sources that never did are left out. Each KPI id costs one short read of the (kpi, ts)
    index, newest first; a source without known ids has those stored as `<source>.<metric>`
    (a source name holds no `.`), found in the index too (`store.history.stored_ids`).
    Asking per source (`source = ... GROUP BY source`, no index) read every observation
    each time: a scheduler's check of each source job, slower as the history grows.
    A value stamped before its run started (a complete day's, stamped with the end of that
    day: `Source.complete_days`) counts at its run's start."""
    import sqlalchemy as sa

    from kpi_collector.store.history import newest_each, stored_ids
    from kpi_collector.store.schema import runs

    unnamed = {source for source, ids in kpis.items() if not ids}
    wanted: dict[str, set[str]] = {}  # KPI id -> the sources asking for it
    for source, ids in kpis.items():
        for kpi in ids:
            wanted.setdefault(kpi, set()).add(source)
    newest: dict[str, float] = {}
    stored: list[tuple[str, float, int | None]] = []  # (source, ts, run id) of each newest
    with store.reading() as conn:
        if unnamed:
            for kpi in stored_ids(conn):
                if (source := kpi.split(".")[0]) in unnamed:
                    wanted.setdefault(kpi, set()).add(source)
        behind: list[str] = []  # KPIs whose newest value was backfilled
        for chunk in id_chunks(conn, wanted):
            for row in conn.execute(newest_each(conn, chunk)):
                if row.backfilled:
                    behind.append(row.kpi)
                # (a derived KPI's values, source `formula`, are no source's collection)
                elif row.source in wanted[row.kpi]:
                    stored.append((row.source, float(row.ts), row.run_id))
        # asked with `backfilled = false` at once, PostgreSQL read every row of each KPI's
        # history (few are live after a backfill: it expects to find the newest at the end)
        for chunk in id_chunks(conn, behind):
            for row in conn.execute(newest_each(conn, chunk, live=True)):
                if row.source in wanted[row.kpi]:
                    stored.append((row.source, float(row.ts), row.run_id))
        started: dict[int, float] = {}
        for part in chunks(sorted({run for _, _, run in stored if run is not None})):
            started.update(
                (r.id, float(r.started_at))
                for r in conn.execute(
                    sa.select(runs.c.id, runs.c.started_at).where(runs.c.id.in_(part))
                )
            )
    for source, ts, run in stored:
        moment = max(ts, started.get(run, ts)) if run is not None else ts
        newest[source] = max(moment, newest.get(source, -math.inf))
    return newest


def data_version(store: HistoryStore) -> tuple[object, ...]:
    """What documents built from the store depend on: the newest observation id, the newest
    run's (id, status, finished_at), the pending deliveries' (count, newest update) and the
    newest annotation id."""
    import sqlalchemy as sa

    from kpi_collector.store.deliveries import PENDING
    from kpi_collector.store.schema import deliveries as d
    from kpi_collector.store.schema import notes as n
    from kpi_collector.store.schema import observations as o
    from kpi_collector.store.schema import runs as r

    with store.reading() as conn:
        newest = conn.execute(sa.select(sa.func.max(o.c.id))).scalar()
        run = conn.execute(
            sa.select(r.c.id, r.c.status, r.c.finished_at).order_by(r.c.id.desc()).limit(1)
        ).first()
        pending = conn.execute(
            sa.select(sa.func.count(), sa.func.max(d.c.updated_at)).where(d.c.status == PENDING)
        ).one()
        note = conn.execute(sa.select(sa.func.max(n.c.id))).scalar()
    return (newest, tuple(run or ()), tuple(pending), note)


def previous_run_start(store: HistoryStore, before: float) -> float | None:
    """When the newest run that started before `before` started (UTC epoch seconds): the
    alert check made before the one at `before`; None when there is none."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import runs

    with store.reading() as conn:
        started = conn.execute(
            sa.select(sa.func.max(runs.c.started_at)).where(runs.c.started_at < before)
        ).scalar_one()
    return None if started is None else float(started)


def runs_between(store: HistoryStore, start: float, end: float) -> int:
    """How many runs started in [start, end] (UTC epoch seconds): the alert checks made."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import runs

    with store.reading() as conn:
        count = conn.execute(
            sa.select(sa.func.count())
            .select_from(runs)
            .where(runs.c.started_at >= start, runs.c.started_at <= end)
        ).scalar_one()
    return int(count)
