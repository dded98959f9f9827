"""The deliveries ledger: one row per destination and period, `pending`, `done` or `dropped`.

The delivery engine (`kpi_collector.deliver.engine`) decides what is due; this module is the
only code that reads or writes the `deliveries` table. Times are UTC epoch seconds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kpi_collector.collect.sql import first_line
from kpi_collector.errors import StoreError

if TYPE_CHECKING:
    from kpi_collector.store import HistoryStore

PENDING, DONE, DROPPED, FAILED = "pending", "done", "dropped", "failed"


@dataclass(frozen=True, slots=True)
class DeliveryRecord:
    """One row of the `deliveries` table (times in UTC epoch seconds)."""

    id: int
    destination: str
    period: str
    run_id: int | None
    status: str  # pending | done | dropped (its run is gone) | failed (refused for good)
    attempts: int
    last_error: str | None
    created_at: float
    updated_at: float
    progress: int = 0
    pending_since: float | None = None  # when it last became pending (a run's started_at)
    sent_plan: str | None = None  # fingerprint of the `progress` parts sent (Delivery.unsent)
    pending_run: int | None = None  # the newest run id when it last became pending
    parts: int | None = None  # how many parts the split message has (None: not known)

    @property
    def parts_sent(self) -> str | None:
        """ "2/3 parts sent" for a delivery not done whose first parts went out ("2 parts
        sent" when the total is not known); None otherwise."""
        if self.status == DONE or not self.progress:
            return None
        total = f"/{self.parts}" if self.parts else ""
        return f"{self.progress}{total} part{'s' if (self.parts or self.progress) > 1 else ''} sent"

    def to_dict(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "period": self.period,
            "run_id": self.run_id,
            "status": self.status,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "parts_sent": self.progress,
            "parts": self.parts,
        }


@dataclass(frozen=True, slots=True)
class StoredRun:
    """What a run stored, as a pending delivery is rebuilt from it.

    `values` and `timestamps` are keyed by KPI id in the order they were stored; `errors` are
    `(KPI id or source, message)` pairs; `started_at` is an aware UTC datetime."""

    run_id: int
    started_at: datetime
    values: dict[str, float]
    timestamps: dict[str, float]
    errors: list[tuple[str, str]]


def record_pending(
    store: HistoryStore,
    destination: str,
    period: str,
    *,
    run_id: int,
    started_at: float,
    upserts: bool,
) -> None:
    """Make `destination`'s delivery of `period` pending for `run_id`.

    A period already `done` stays done, unless the destination `upserts` (a table whose row
    for the period gets the newer values); a pending row not yet begun moves to the newer run,
    and so does a table's row begun part-way (from its first part again: its parts are
    upserts).
    `started_at` (UTC epoch) is when it becomes pending: the run's start, or the fire time a
    scheduled delivery serves. Raises StoreError when the row cannot be written after three
    tries (concurrent inserts)."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import deliveries as t
    from kpi_collector.store.schema import runs

    now = time.time()
    key = sa.and_(t.c.destination == destination, t.c.period == period)
    for _ in range(3):  # a concurrent run may insert the same row between select and insert
        try:
            with store.write() as conn:
                # the runs begun after this one are the runs it waits (`pending_runs`); a
                # scheduled delivery of an older run waits from the newest run there is
                newest = conn.execute(sa.select(sa.func.max(runs.c.id))).scalar()
                pending_run = max(run_id, int(newest or 0))
                row = conn.execute(sa.select(t).where(key)).first()
                if row is None:
                    conn.execute(
                        t.insert().values(
                            destination=destination,
                            period=period,
                            run_id=run_id,
                            status=PENDING,
                            attempts=0,
                            created_at=now,
                            updated_at=now,
                            progress=0,
                            pending_since=started_at,
                            pending_run=pending_run,
                        )
                    )
                elif row.status in (DONE, FAILED):
                    if upserts:  # the period's row gets the newer values (a new chance)
                        conn.execute(
                            t.update()
                            .where(key)
                            .values(
                                status=PENDING,
                                run_id=run_id,
                                # a new delivery: the earlier ones' attempts are not its own
                                attempts=0,
                                last_error=None,
                                progress=0,
                                sent_plan=None,
                                parts=None,
                                updated_at=now,
                                pending_since=started_at,  # not created_at: see pending_runs
                                pending_run=pending_run,
                            )
                        )
                elif row.status == PENDING and upserts and row.run_id != run_id:
                    # a table's parts are upserts: a row written part-way is written again,
                    # whole, with the period's newest values (going on after the parts of the
                    # older run would leave those parts with the older values for good)
                    conn.execute(
                        t.update()
                        .where(key)
                        .values(
                            run_id=run_id, progress=0, sent_plan=None, parts=None, updated_at=now
                        )
                    )
                elif row.status == PENDING and not row.progress:
                    # not sent yet: it goes out with the period's newest values (a message
                    # begun goes on with the run its first parts came from)
                    conn.execute(t.update().where(key).values(run_id=run_id, updated_at=now))
            return
        except StoreError as exc:
            if "unique" not in str(exc).lower() and "duplicate" not in str(exc).lower():
                raise
    raise StoreError(f"cannot record the delivery of {destination!r} for {period}")


def records(
    store: HistoryStore,
    *,
    status: str | None = None,
    destination: str | None = None,
    limit: int | None = None,
) -> list[DeliveryRecord]:
    """Rows of `deliveries`, oldest first (with `limit`: the newest `limit`, oldest first).

    Raises StoreError when the table cannot be read."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import deliveries as t

    query = sa.select(t).order_by(t.c.created_at, t.c.id)
    if status is not None:
        query = query.where(t.c.status == status)
    if destination is not None:
        query = query.where(t.c.destination == destination)
    if limit is not None:
        query = query.order_by(None).order_by(t.c.created_at.desc(), t.c.id.desc()).limit(limit)
    try:
        with store.engine.connect() as conn:
            rows = [_record_of(r) for r in conn.execute(query)]
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"cannot read deliveries: {first_line(exc)}") from None
    return sorted(rows, key=lambda r: (r.created_at, r.id)) if limit is not None else rows


def retry_failed(
    store: HistoryStore,
    period: str,
    destination: str | None = None,
    *,
    from_start: bool = False,
) -> int:
    """Make the `failed` deliveries of `period` (of one destination, or of all) pending again;
    returns how many. `kpi deliver --retry PERIOD [--from-start]`.

    A split message resumes after the parts already sent (`progress` and `sent_plan` are
    kept: `Delivery.unsent` refuses to resume when the message now splits differently);
    `from_start` forgets them, and the attempts made, so every part is sent again as a new
    delivery: a destination that looks before sending again after an attempt (a Slack bot
    searches the channel for the part's key) would find the old split's part under the same
    key and skip the new one."""
    from kpi_collector.store.schema import deliveries as t

    where = (t.c.status == FAILED) & (t.c.period == period)
    if destination is not None:
        where &= t.c.destination == destination
    values: dict[str, Any] = {"status": PENDING, "updated_at": time.time()}
    if from_start:
        values |= {"progress": 0, "sent_plan": None, "parts": None, "attempts": 0}
    with store.write() as conn:
        return int(conn.execute(t.update().where(where).values(**values)).rowcount)


def update(store: HistoryStore, record_id: int, **values: Any) -> None:
    """Set columns of one row (`status`, `last_error`, `progress`, ...); stamps `updated_at`."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import deliveries as t

    values["updated_at"] = time.time()
    _fit_last_error(values)
    with store.write() as conn:
        conn.execute(sa.update(t).where(t.c.id == record_id).values(**values))


def update_for_run(store: HistoryStore, record_id: int, run_id: int | None, **values: Any) -> bool:
    """`update` one row while it still delivers `run_id`; False (nothing written) when a newer
    run of its period was recorded meanwhile (`record_pending` from another process while this
    one delivered a table's row): the row stays pending for that run's values, from its
    first part."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import deliveries as t

    values["updated_at"] = time.time()
    _fit_last_error(values)
    where = (t.c.id == record_id) & (
        t.c.run_id.is_(None) if run_id is None else t.c.run_id == run_id
    )
    with store.write() as conn:
        return bool(conn.execute(sa.update(t).where(where).values(**values)).rowcount)


def _fit_last_error(values: dict[str, Any]) -> None:
    """`values["last_error"]`, when given, as the store keeps a text (`limits.fit_text`)."""
    if isinstance(values.get("last_error"), str):
        from kpi_collector.store.limits import fit_text

        values["last_error"] = fit_text(values["last_error"])


def bump_attempts(store: HistoryStore, record_id: int) -> None:
    """Count one more attempt of a row (written before the attempt is made)."""
    from kpi_collector.store.schema import deliveries as t

    update(store, record_id, attempts=t.c.attempts + 1)


def pending_summary(store: HistoryStore) -> tuple[int, float | None]:
    """How many rows are pending, and when one of them last changed (UTC epoch)."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import deliveries as d

    with store.engine.connect() as conn:
        count, newest = conn.execute(
            sa.select(sa.func.count(), sa.func.max(d.c.updated_at)).where(d.c.status == PENDING)
        ).one()
    return int(count), newest


def pending_runs(store: HistoryStore) -> dict[str, tuple[int, str | None, str | None]]:
    """For each destination with a pending delivery: for how many runs the one pending longest
    has been pending (the run that made it pending counts), its period and last error.

    Counted by run id from `pending_run`, the newest run when the row last became pending (a
    table destination's row for a day goes done -> pending again at a later run, and only
    that run starts its pending time). Never by comparing start times: a scheduled delivery
    becomes pending at the fire time it serves, which can precede its run's start; two runs
    can start at the same clock reading; a clock set back gives a later run an earlier one."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import runs

    out: dict[str, tuple[int, str | None, str | None]] = {}
    oldest: dict[str, tuple[int, DeliveryRecord]] = {}
    for record in records(store, status=PENDING):
        mark = record.pending_run if record.pending_run is not None else record.run_id or 0
        if record.destination not in oldest or mark < oldest[record.destination][0]:
            oldest[record.destination] = (mark, record)
    if not oldest:
        return out
    with store.engine.connect() as conn:
        for name, (mark, record) in oldest.items():
            later = conn.execute(
                sa.select(sa.func.count()).select_from(runs).where(runs.c.id > mark)
            ).scalar_one()
            out[name] = (int(later) + 1, record.period, record.last_error)
    return out


def oldest_pending(store: HistoryStore) -> dict[str, tuple[float, str, str | None]]:
    """For each destination with a pending delivery: since when (UTC epoch) the one pending
    longest has been pending, its period and last error."""
    out: dict[str, tuple[float, str, str | None]] = {}
    for record in records(store, status=PENDING):
        since = record.created_at if record.pending_since is None else record.pending_since
        if record.destination not in out or since < out[record.destination][0]:
            out[record.destination] = (since, record.period, record.last_error)
    return out


def stored_run(store: HistoryStore, run_id: int | None) -> StoredRun | None:
    """The values and errors run `run_id` stored; None when the run or its values are gone."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import observations, run_errors, runs

    with store.engine.connect() as conn:
        run = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
        obs = conn.execute(
            sa.select(observations.c.kpi, observations.c.value, observations.c.ts)
            .where(observations.c.run_id == run_id)
            .order_by(observations.c.id)
        ).all()
        errs = conn.execute(
            sa.select(run_errors.c.source, run_errors.c.kpi, run_errors.c.message)
            .where(run_errors.c.run_id == run_id)
            .order_by(run_errors.c.id)
        ).all()
    if run is None or not obs or run_id is None:
        return None
    return StoredRun(
        run_id=run_id,
        started_at=datetime.fromtimestamp(run.started_at, UTC),
        values={r.kpi: r.value for r in obs},
        timestamps={r.kpi: r.ts for r in obs},
        errors=[(e.kpi or e.source, e.message) for e in errs],
    )


def run_starts(store: HistoryStore, first: int, last: int) -> list[tuple[int, datetime]]:
    """(run id, start as an aware UTC datetime) of the runs `first` to `last` (both
    included), oldest first: the runs a table's pending row of a period went through."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import runs

    with store.engine.connect() as conn:
        rows = conn.execute(
            sa.select(runs.c.id, runs.c.started_at)
            .where(runs.c.id >= first, runs.c.id <= last)
            .order_by(runs.c.id)
        ).all()
    return [(int(r.id), datetime.fromtimestamp(r.started_at, UTC)) for r in rows]


def _record_of(row: Any) -> DeliveryRecord:
    return DeliveryRecord(
        row.id,
        row.destination,
        row.period,
        row.run_id,
        row.status,
        row.attempts,
        row.last_error,
        row.created_at,
        row.updated_at,
        row.progress or 0,
        row.pending_since,
        row.sent_plan,
        row.pending_run,
        row.parts,
    )
