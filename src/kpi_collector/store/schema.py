"""The history store's tables and their migrations (one numbered step per schema change)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from kpi_collector.store.limits import ID_MAX, TRIGGER_MAX
from kpi_collector.store.version import SCHEMA_VERSION

metadata = sa.MetaData()

meta = sa.Table(
    "kpi_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("started_at", sa.Double, nullable=False),  # epoch seconds, UTC
    sa.Column("finished_at", sa.Double),
    sa.Column("status", sa.String(16), nullable=False),  # running | ok | failed | partial
    sa.Column("trigger", sa.String(TRIGGER_MAX), nullable=False, server_default="run"),
    sa.Column("n_values", sa.Integer, nullable=False, server_default="0"),
    sa.Column("n_errors", sa.Integer, nullable=False, server_default="0"),
)

run_errors = sa.Table(
    "run_errors",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), nullable=False, index=True),
    sa.Column("source", sa.String(ID_MAX), nullable=False),
    sa.Column("kpi", sa.String(ID_MAX)),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("transient", sa.Boolean, nullable=False, server_default=sa.false()),
)

observations = sa.Table(
    "observations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id"), index=True),
    sa.Column("kpi", sa.String(ID_MAX), nullable=False),
    sa.Column("ts", sa.Double, nullable=False),  # epoch seconds, UTC
    sa.Column("value", sa.Double, nullable=False),
    sa.Column("source", sa.String(ID_MAX), nullable=False),
    sa.Column("backfilled", sa.Boolean, nullable=False, server_default=sa.false()),
    # (kpi, ts) lookups use `observations_cover` (_v3); _v13 dropped the (kpi, ts) index
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("destination", sa.String(200), nullable=False),
    sa.Column("period", sa.String(32), nullable=False),  # e.g. 2026-11-29, 2026-W48, run:17
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id")),
    sa.Column("status", sa.String(16), nullable=False),  # pending | done
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    # added by _v2: parts of a multi-part message already sent, so a retry does not repeat them
    sa.Column("progress", sa.Integer, nullable=False, server_default="0"),
    # added by _v5: when the row last became pending (the started_at of the run that made it
    # so); a table destination's row goes done -> pending again, long after created_at
    sa.Column("pending_since", sa.Double),
    # added by _v10: fingerprint of the `progress` parts as sent, so a retry resumes after them
    # only when the message still splits the same way (`Delivery.unsent`)
    sa.Column("sent_plan", sa.String(64)),
    # added by _v11: the newest run id when the row last became pending (the run that made it
    # so): `pending_runs` counts the runs after it by id, never by comparing start times
    sa.Column("pending_run", sa.Integer),
    # added by _v11: how many parts the split message has, with `progress` ("2/3 parts sent")
    sa.Column("parts", sa.Integer),
    sa.UniqueConstraint("destination", "period", name="uq_deliveries_destination_period"),
)


def _v1(conn: sa.Connection) -> None:
    for table in (meta, runs, run_errors, observations, deliveries):
        table.create(conn, checkfirst=True)


def _v2(conn: sa.Connection) -> None:
    """deliveries.progress: how many parts of a split message went out (Discord's 2000 chars)."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("deliveries")}
    if "progress" not in columns:  # a store created by _v1 of this version has it already
        conn.execute(
            sa.text("ALTER TABLE deliveries ADD COLUMN progress INTEGER NOT NULL DEFAULT 0")
        )


# Per-period aggregates of the observations in one time zone: derived data, never the truth.
# `kpi_collector.store.rollup` keeps them in step with the observations (for fast overviews).
rollup = sa.Table(
    "rollup",
    metadata,
    sa.Column("zone", sa.String(64), primary_key=True),
    sa.Column("period", sa.String(8), primary_key=True),  # day | week | month
    sa.Column("start", sa.Integer, primary_key=True, autoincrement=False),  # first day, toordinal()
    sa.Column("kpi", sa.String(200), primary_key=True),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("last", sa.Double, nullable=False),
    sa.Column("last_ts", sa.Double, nullable=False),
    sa.Column("sum", sa.Double, nullable=False),
    sa.Column("min", sa.Double, nullable=False),
    sa.Column("max", sa.Double, nullable=False),
    sa.Column("avg", sa.Double, nullable=False),
    sqlite_with_rowid=False,  # rows stored in key order: the last N periods are one range read
)

rollup_state = sa.Table(
    "rollup_state",
    metadata,
    sa.Column("zone", sa.String(64), primary_key=True),
    sa.Column("last_id", sa.Integer, nullable=False),  # observations up to this id are rolled up
    sa.Column("updated_at", sa.Double, nullable=False),
    # added by _v6: ids commit out of order (PostgreSQL, MariaDB), so the ids above last_id
    # are folded again while a lower one may still commit: how many there were at the last
    # fold and the highest; and the id that becomes last_id once `settle_at` is old enough
    sa.Column("seen_id", sa.Integer),
    sa.Column("seen_n", sa.Integer),
    sa.Column("settle_id", sa.Integer),
    sa.Column("settle_at", sa.Double),
)


# (kpi, ts, id, value) covers `HistoryStore.rows`: one KPI's history is one index range read
observations_cover = sa.Index(
    "ix_observations_kpi_ts_id_value",
    observations.c.kpi,
    observations.c.ts,
    observations.c.id,
    observations.c.value,
)


def _v3(conn: sa.Connection) -> None:
    """The rollup tables; an index covering `HistoryStore.rows` (one KPI = one range read)."""
    rollup.create(conn, checkfirst=True)
    rollup_state.create(conn, checkfirst=True)
    observations_cover.create(conn, checkfirst=True)


# The scheduler's state (kpi_collector.schedule, kpi_collector.alerts.engine): who is alive, what ran.
heartbeats = sa.Table(
    "heartbeats",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),  # scheduler | run (the run lock's holder)
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("hostname", sa.String(255), nullable=False),
    sa.Column("started_at", sa.Double, nullable=False),
    sa.Column("beat_at", sa.Double, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),  # idle | running | stopped
    sa.Column("next_run_at", sa.Double),
    sa.Column("detail", sa.Text),
)

schedule_jobs = sa.Table(
    "schedule_jobs",
    metadata,
    sa.Column("job", sa.String(255), primary_key=True),  # main | source:<name> | destination:<name>
    sa.Column("last_fire_at", sa.Double),
    sa.Column("last_success_at", sa.Double),
    sa.Column("last_status", sa.String(16)),  # ok | failed | skipped
    sa.Column("last_error", sa.Text),
    sa.Column("updated_at", sa.Double, nullable=False),
)

alert_states = sa.Table(
    "alert_states",
    metadata,
    sa.Column("alert", sa.String(255), primary_key=True),  # the alert's key and subject
    # "" holds the condition itself; a destination's name holds what that destination was told
    sa.Column("destination", sa.String(200), primary_key=True),
    sa.Column("active", sa.Boolean, nullable=False),
    sa.Column("since", sa.Double, nullable=False),
    sa.Column("message", sa.Text),
    sa.Column("updated_at", sa.Double, nullable=False),
)


def _v4(conn: sa.Connection) -> None:
    """The scheduler's heartbeats and jobs, and the alerts' states."""
    for table in (heartbeats, schedule_jobs, alert_states):
        table.create(conn, checkfirst=True)


def _v5(conn: sa.Connection) -> None:
    """deliveries.pending_since: how long a delivery has been pending (for `pending_runs`)."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("deliveries")}
    if "pending_since" not in columns:  # a store created by _v1 of this version has it already
        kind = sa.Double().compile(dialect=conn.dialect)
        conn.execute(sa.text(f"ALTER TABLE deliveries ADD COLUMN pending_since {kind}"))
    # when an older row became pending is unknown; created_at is the best bound the row keeps
    conn.execute(
        deliveries.update()
        .where(deliveries.c.status == "pending", deliveries.c.pending_since.is_(None))
        .values(pending_since=deliveries.c.created_at)
    )


def _v6(conn: sa.Connection) -> None:
    """rollup_state: what the last fold saw above the mark (see `kpi_collector.store.rollup`)."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("rollup_state")}
    for name, kind in (
        ("seen_id", sa.Integer()),
        ("seen_n", sa.Integer()),
        ("settle_id", sa.Integer()),
        ("settle_at", sa.Double()),
    ):
        if name not in columns:  # a store created by _v3 of this version has them already
            sql_type = kind.compile(dialect=conn.dialect)
            conn.execute(sa.text(f"ALTER TABLE rollup_state ADD COLUMN {name} {sql_type}"))


alert_silences = sa.Table(
    "alert_silences",
    metadata,
    sa.Column("alert", sa.String(255), primary_key=True),  # the alert's key (and subject)
    sa.Column("until", sa.Double, nullable=False),  # UTC epoch seconds
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("note", sa.Text),
)


def _v7(conn: sa.Connection) -> None:
    """alert_silences: `kpi alerts silence`."""
    alert_silences.create(conn, checkfirst=True)


CREATED_AT = "created_at"  # kpi_meta key: when the store was created (UTC epoch seconds)


def _v8(conn: sa.Connection) -> None:
    """kpi_meta.created_at: when the store was created, so a job that never ran is "not run
    yet" rather than overdue until its first fire time after it. An older store's is its
    first run or first observation (the earliest thing it knows), else now."""
    import time

    if conn.execute(sa.select(meta.c.value).where(meta.c.key == CREATED_AT)).first():
        return
    first = [
        conn.execute(sa.select(sa.func.min(runs.c.started_at))).scalar(),
        conn.execute(sa.select(sa.func.min(observations.c.ts))).scalar(),
    ]
    known = [float(t) for t in first if t is not None]
    created = min(known) if known else time.time()
    conn.execute(meta.insert().values(key=CREATED_AT, value=repr(created)))


notes = sa.Table(
    "annotations",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("day", sa.String(10), nullable=False, index=True),  # ISO date, the config's zone
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),  # UTC epoch seconds
)


def _v9(conn: sa.Connection) -> None:
    """annotations: `kpi annotate` (dated notes shown on charts and in reports)."""
    notes.create(conn, checkfirst=True)


def _v10(conn: sa.Connection) -> None:
    """deliveries.sent_plan: what the parts already sent were (`kpi deliver --retry` resumes)."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("deliveries")}
    if "sent_plan" not in columns:  # a store created by _v1 of this version has it already
        conn.execute(sa.text("ALTER TABLE deliveries ADD COLUMN sent_plan VARCHAR(64)"))


def _v11(conn: sa.Connection) -> None:
    """deliveries.pending_run: the run a pending row counts its waiting runs from. An older
    pending row's is the newest run begun by its `pending_since` (what it counted from), else
    its own run. deliveries.parts: how many parts a split message has (unknown before)."""
    columns = {c["name"] for c in sa.inspect(conn).get_columns("deliveries")}
    for name in ("pending_run", "parts"):
        if name not in columns:  # a store created by _v1 of this version has them already
            conn.execute(sa.text(f"ALTER TABLE deliveries ADD COLUMN {name} INTEGER"))
    newest_then = (
        sa.select(sa.func.max(runs.c.id))
        .where(runs.c.started_at <= deliveries.c.pending_since)
        .scalar_subquery()
    )
    conn.execute(
        deliveries.update()
        .where(deliveries.c.status == "pending", deliveries.c.pending_run.is_(None))
        .values(pending_run=sa.func.coalesce(newest_then, deliveries.c.run_id))
    )


# MariaDB / MySQL compare text by the table's collation, and a server's default
# (utf8mb4_general_ci, PAD SPACE) takes `gh.Stars`, `gh.stars`, `gh.stars ` and `cafe.n` /
# `café.n` for one id: a KPI's history held another's values, its rollup key collided. Every
# table there is converted to a binary collation that also tells trailing spaces apart
# (`_binary_collation`), as the other backends compare: on creating it, and by _v12.
def _binary_collation(conn: sa.Connection) -> str:
    """The first of `collect.sql.BINARY_COLLATIONS` the server has (MariaDB 10.2+, MySQL 8,
    older)."""
    from kpi_collector.collect.sql import binary_collation

    return binary_collation(conn)


def _binary_text(conn: sa.Connection, names: list[str]) -> None:
    """On MariaDB / MySQL: tables `names` with their text in utf8mb4 and a binary collation
    (those that already have it are left as they are); elsewhere nothing."""
    if conn.dialect.name not in ("mysql", "mariadb"):
        return
    collation = _binary_collation(conn)
    done = set(
        conn.execute(
            sa.text(
                "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
                " AND TABLE_COLLATION = :collation"
            ),
            {"collation": collation},
        ).scalars()
    )
    for name in names:
        if name not in done:
            conn.execute(
                sa.text(f"ALTER TABLE {name} CONVERT TO CHARACTER SET utf8mb4 COLLATE {collation}")
            )


def _binary_on_create(target: sa.Table, connection: sa.Connection, **_: Any) -> None:
    _binary_text(connection, [target.name])


for _table in metadata.tables.values():  # every table, a later migration's new ones too
    sa.event.listen(_table, "after_create", _binary_on_create)


def _v12(conn: sa.Connection) -> None:
    """MariaDB / MySQL: every table's text compared as the other backends do (binary, trailing
    spaces count). When the observations hold lookalike KPI ids, the rollup (derived data,
    which merged them) is dropped, to be built again from the observations on its next use."""
    if conn.dialect.name not in ("mysql", "mariadb"):
        return
    merged, apart = conn.execute(
        sa.text("SELECT COUNT(DISTINCT kpi), COUNT(DISTINCT CAST(kpi AS BINARY)) FROM observations")
    ).one()
    _binary_text(conn, [t.name for t in metadata.sorted_tables])
    if merged != apart:
        conn.execute(rollup.delete())
        conn.execute(rollup_state.delete())


def _v13(conn: sa.Connection) -> None:
    """Drop the (kpi, ts) index: `observations_cover` (kpi, ts, id, value, from _v3) serves
    every lookup it served, and each stored value was written into both. A run of 1,000 KPIs
    touches an index page per KPI in each (their newest entries lie apart), so the second
    index added about 45% to the pages a run writes (and to the WAL SQLite copies back)."""
    indexes = {ix["name"] for ix in sa.inspect(conn).get_indexes("observations")}
    if "ix_observations_kpi_ts" in indexes:
        on = " ON observations" if conn.dialect.name in ("mysql", "mariadb") else ""
        conn.execute(sa.text(f"DROP INDEX ix_observations_kpi_ts{on}"))


#: migrations[i] brings the schema from version i to i + 1; append, never edit.
MIGRATIONS: list[Callable[[sa.Connection], None]] = [
    _v1,
    _v2,
    _v3,
    _v4,
    _v5,
    _v6,
    _v7,
    _v8,
    _v9,
    _v10,
    _v11,
    _v12,
    _v13,
]
if len(MIGRATIONS) != SCHEMA_VERSION:  # pragma: no cover - a mistake when adding a migration
    raise RuntimeError(
        f"store.version.SCHEMA_VERSION is {SCHEMA_VERSION} but there are {len(MIGRATIONS)} "
        "migrations: set it to their number"
    )
