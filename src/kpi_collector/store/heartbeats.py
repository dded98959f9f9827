"""The scheduler's rows in the store: heartbeats (who is alive, what it is doing) and the last
outcome of each scheduled job. Read by `kpi validate --health` and the dashboard.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kpi_collector.secrets import redact
from kpi_collector.store.limits import chunks, fit_text

if TYPE_CHECKING:
    from kpi_collector.store import HistoryStore

SCHEDULER, RUN = "scheduler", "run"  # the heartbeat rows: the `kpi schedule` process, the run lock
#: rows `group:<pgid>`: a process group a run's `command` source started (pid: the run's
#: process, started_at: when the group started, detail: the program), deleted when it ends
GROUP = "group:"


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """One heartbeat row: a process, what it is doing and when it last said so.

    `name` is the row (`scheduler` or `run`); `pid` and `hostname` the process; `started_at`
    and `beat_at` (its last beat) are UTC epoch seconds, as is `next_run_at` (the
    scheduler's next due run, if known); `detail` says what it runs ("kpi run"), redacted.
    """

    name: str
    pid: int
    hostname: str
    started_at: float
    beat_at: float
    state: str  # idle | running | stopped
    next_run_at: float | None = None
    detail: str | None = None

    def age(self, now: float | None = None) -> float:
        """Seconds since the last beat."""
        return max(0.0, (time.time() if now is None else now) - self.beat_at)

    def describe(self, now: float | None = None) -> str:
        """`pid 4242 on host-a (kpi run) since 07:00:01 UTC, last heartbeat 3 s ago`."""
        since = datetime.fromtimestamp(self.started_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        what = f" ({self.detail})" if self.detail else ""
        return (
            f"pid {self.pid} on {self.hostname}{what} since {since}, "
            f"last heartbeat {seconds_text(self.age(now))} ago"
        )

    def to_dict(self) -> dict[str, Any]:
        """The row as a JSON-ready dict (times stay UTC epoch seconds)."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class JobState:
    """The last outcome of a scheduled `job` (`main`, `source:<name>`, `destination:<name>`):
    `last_fire_at` when it last ran, `last_success_at` when it last succeeded, `updated_at`
    when the row was written (all UTC epoch seconds, None: never), its `last_status` and
    `last_error` (redacted)."""

    job: str
    last_fire_at: float | None
    last_success_at: float | None
    last_status: str | None  # ok | partial | failed | skipped | not_due
    last_error: str | None
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        """The row as a JSON-ready dict (times stay UTC epoch seconds)."""
        return asdict(self)


def this_process() -> tuple[int, str]:
    """(pid, hostname) of this process, as heartbeat rows name it."""
    return os.getpid(), socket.gethostname()


def seconds_text(seconds: float) -> str:
    """A duration for people: `3 s`, `12 min`, `5 h`, `2 days`."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.0f} h"
    return f"{seconds / 86400:.0f} days"


def heartbeats(store: HistoryStore) -> dict[str, Heartbeat]:
    """Every heartbeat row by name (`scheduler`, `run`), without the process groups' rows."""
    direct = store.direct()
    if direct is not None:
        return {row[0]: Heartbeat(*row) for row in direct.heartbeat_rows(groups=False)}
    import sqlalchemy as sa

    from kpi_collector.store.schema import heartbeats as t

    with store.reading() as conn:
        rows = conn.execute(sa.select(t).where(t.c.name.not_like(f"{GROUP}%")))
        return {r.name: Heartbeat(**r._mapping) for r in rows}


def process_groups(store: HistoryStore) -> list[Heartbeat]:
    """The process groups runs recorded and did not clear (name `group:<pgid>`, pid and
    hostname of the run that started them), oldest first."""
    direct = store.direct()
    if direct is not None:
        return [Heartbeat(*row) for row in direct.heartbeat_rows(groups=True)]
    import sqlalchemy as sa

    from kpi_collector.store.schema import heartbeats as t

    with store.reading() as conn:
        rows = conn.execute(sa.select(t).where(t.c.name.like(f"{GROUP}%")).order_by(t.c.started_at))
        return [Heartbeat(**r._mapping) for r in rows]


def record_group(store: HistoryStore, pgid: int, *, program: str, started_at: float) -> None:
    """Record process group `pgid` started by this process at `started_at` (epoch seconds)
    running `program`; StoreError if the write fails."""
    write_heartbeat(
        store,
        f"{GROUP}{pgid}",
        now=started_at,
        started_at=started_at,
        state="running",
        detail=program,
    )


def forget_groups(store: HistoryStore, names: list[str]) -> None:
    """Delete the heartbeat rows `names` (the process groups' `group:<pgid>` rows, or a
    process's own row); StoreError if the write fails."""
    if not names:
        return
    direct = store.direct()
    if direct is not None:
        direct.delete_heartbeats(names)
        return
    from kpi_collector.store.schema import heartbeats as t

    with store.write() as conn:
        for chunk in chunks(names):  # many: a backend's limit of bound values
            conn.execute(t.delete().where(t.c.name.in_(chunk)))


def write_heartbeat(
    store: HistoryStore, name: str, *, now: float | None = None, **fields: Any
) -> None:
    """Insert or update a heartbeat row of this process; `beat_at` is `now`."""
    pid, host = this_process()
    values = {
        "pid": pid,
        "hostname": host,
        "beat_at": time.time() if now is None else now,
        **fields,
    }
    if "detail" in values and values["detail"] is not None:
        values["detail"] = fit_text(redact(str(values["detail"])))
    direct = store.direct()
    if direct is not None:
        direct.write_heartbeat(name, values)
        return
    from kpi_collector.store.schema import heartbeats as t

    with store.write() as conn:
        updated = conn.execute(t.update().where(t.c.name == name).values(**values)).rowcount
        if not updated:
            values.setdefault("started_at", values["beat_at"])
            values.setdefault("state", "idle")
            conn.execute(t.insert().values(name=name, **values))


def delete_heartbeat(store: HistoryStore, name: str) -> None:
    """Remove the heartbeat row `name` (a process that stopped cleanly); StoreError if the
    write fails."""
    forget_groups(store, [name])


def job_states(store: HistoryStore) -> dict[str, JobState]:
    """The last outcome of every scheduled job that ever ran, by job name."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import schedule_jobs as t

    with store.reading() as conn:
        return {r.job: JobState(**r._mapping) for r in conn.execute(sa.select(t))}


def record_job(
    store: HistoryStore, job: str, *, fired_at: float, status: str, error: str | None = None
) -> None:
    """Remember a job's outcome; `ok` and `partial` (some sources failed, the others' values
    are stored: the fire time is served) also move its last success to `fired_at`."""
    from kpi_collector.store.schema import schedule_jobs as t

    values: dict[str, Any] = {
        "last_fire_at": fired_at,
        "last_status": status,
        "last_error": fit_text(redact(error)) if error else None,
        "updated_at": time.time(),
    }
    if status in ("ok", "partial"):
        values["last_success_at"] = fired_at
    with store.write() as conn:
        if not conn.execute(t.update().where(t.c.job == job).values(**values)).rowcount:
            conn.execute(t.insert().values(job=job, **values))


def mark_interrupted(store: HistoryStore) -> list[int]:
    """Runs still `running` while nobody holds the run lock died midway: mark them `interrupted`."""
    direct = store.direct()
    if direct is not None:
        return direct.mark_interrupted()
    import sqlalchemy as sa

    from kpi_collector.store.schema import runs

    with store.write() as conn:
        ids = [r[0] for r in conn.execute(sa.select(runs.c.id).where(runs.c.status == "running"))]
        for chunk in chunks(ids):  # many: a backend's limit of bound values
            conn.execute(runs.update().where(runs.c.id.in_(chunk)).values(status="interrupted"))
    return ids
