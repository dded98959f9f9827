"""Is the collector alive and up to date? `kpi validate --health`, and the dashboard.

Problems (exit 1): a job without a success since a fire time (the first it missed) more than
15 minutes of grace plus `jitter:` ago (none while a run is in progress; a job that never ran is "not run yet" until
a fire time after the store was created), a scheduler or a run whose heartbeat stopped, a
last run that failed or was interrupted. Warnings: active alerts, pending deliveries, a partial run,
a source whose newest attempt failed (problems too with `health: {fail_on: [...]}`).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from kpi_collector.errors import StoreError
from kpi_collector.format import plural
from kpi_collector.schedule.scheduler import HEARTBEAT_EVERY, SUCCESS, Scheduler
from kpi_collector.secrets import redact
from kpi_collector.store.alert_states import silences
from kpi_collector.store.annotations import store_created_at
from kpi_collector.store.heartbeats import RUN, SCHEDULER, heartbeats, job_states, seconds_text
from kpi_collector.store.lock import HEARTBEAT_EVERY as RUN_HEARTBEAT_EVERY

if TYPE_CHECKING:
    from kpi_collector.config.plain import Config
    from kpi_collector.store import HistoryStore

GRACE = 15 * 60.0  # seconds after a fire time before a job without a success is overdue
STALE_BEATS = 3  # heartbeats missed before a process counts as gone


def health_report(
    config: Config, *, now: float | None = None, store: HistoryStore | None = None
) -> dict[str, Any]:
    """The health document (`kpi validate --health --format json`); times are epoch seconds.
    `store`: read it instead of the config's (the dashboard's empty stand-in for a store
    nothing has written yet), left open."""
    from kpi_collector.alerts.engine import active_alerts, is_firing, rule_of
    from kpi_collector.deliver.engine import PENDING, DeliveryEngine

    now = time.time() if now is None else now
    missing = missing_store(config) if store is None else None
    if missing is not None:  # reading would create it: a health check writes nothing
        return _unread_report(
            config,
            now,
            f"{missing}: nothing has run with this config yet (start "
            "`kpi schedule`, or `kpi run`), or the scheduler uses another `store:`",
        )
    scheduler = Scheduler(config, store=store)
    own = store is None
    store = scheduler.store
    try:
        try:
            beats = heartbeats(store)
        except StoreError as exc:  # a probe's answer is the document, with why it is unwell
            return _unread_report(config, now, redact(str(exc)))
        jobs = job_states(store)
        runs = store.runs(1)
        pending = DeliveryEngine(store, []).records(status=PENDING)
        refused = DeliveryEngine(store, []).records(status="failed")
        # an alert removed from the config keeps its row until a run checks alerts (never,
        # once the config has none left): not the config's alert, nothing to report
        alerts = [a for a in active_alerts(store) if rule_of(config.settings.alerts, a.alert)]
        silenced = silences(store, now=now)
        problems: list[str] = []
        warnings: list[str] = []
        running = beats.get(RUN)
        beating = running  # a run whose heartbeat stopped is no run: its process may be gone
        if running is not None and running.age(now) > STALE_BEATS * 2 * RUN_HEARTBEAT_EVERY:
            beating = None
            problems.append(
                f"the run in progress ({running.describe(now)}) stopped beating: it may hang"
            )
        daemon = beats.get(SCHEDULER)
        if (
            daemon is not None
            and daemon.state != "stopped"
            and running is None
            and daemon.age(now) > STALE_BEATS * HEARTBEAT_EVERY
        ):
            problems.append(
                f"the scheduler ({daemon.describe(now)}) stopped beating: is `kpi schedule` running?"
            )
        at = datetime.fromtimestamp(now, UTC)
        created = store_created_at(store)
        job_rows = []
        for job in scheduler.jobs:
            fired = job.cron.previous(at)
            following = job.cron.next_after(at)
            success = scheduler.last_success(job)
            state = jobs.get(job.name)
            # a job that never succeeded is "not run yet" until a fire time after the store
            # was created (a new config's first minutes are no alarm)
            not_run_yet = success is None and (
                fired is None or (created is not None and fired.timestamp() < created)
            )
            # the first fire time it missed (after its last success, or after the store was
            # created): a job every 5 minutes always has a newest fire time within the grace
            missed = None
            if fired is not None and not not_run_yet:
                if success is not None and success < fired.timestamp():
                    missed = job.cron.next_after(datetime.fromtimestamp(success, UTC))
                elif success is None:
                    start = created if created is not None else fired.timestamp() - 1
                    missed = job.cron.next_after(datetime.fromtimestamp(start, UTC))
            # a job with `jitter:` may sleep that long after its fire time before it starts;
            # none is overdue while a run is in progress (the others wait for its lock)
            grace = GRACE + (scheduler.jitter(job, missed) if missed is not None else 0.0)
            overdue = missed is not None and now - missed.timestamp() > grace and beating is None
            if overdue:
                assert missed is not None
                last = (
                    "never succeeded"
                    if success is None
                    else f"last success {_when(success, config.tz)}"
                )
                problems.append(
                    f"job {job.name} ({job.cron.expr}) is overdue: it should have run at "
                    f"{_when(missed.timestamp(), config.tz)}; {last}"
                )
            status, error = (state.last_status, state.last_error) if state else (None, None)
            if (
                state is not None
                and status not in SUCCESS
                and success is not None
                and success > (state.last_fire_at or 0.0)
            ):
                # a run after the job's failed one served it (a fixed source's `kpi run`):
                # that success is its newest outcome, not the failure it replaced
                status, error = _served_status(scheduler, job, success), None
            job_rows.append(
                _job_row(
                    job,
                    fired,
                    following,
                    last_success=success,
                    last_status=status,
                    last_error=error,
                    overdue=overdue,
                    not_run_yet=not_run_yet,
                    running=_runs(beating, job.name),
                )
            )
        last_run = runs[0] if runs else None
        if last_run is not None and last_run.status in ("failed", "interrupted"):
            why = "; ".join(f"{e.source}: {e.message}" for e in last_run.errors[:3])
            problems.append(
                f"the last run (#{last_run.id}) {last_run.status}{': ' + why if why else ''}"
            )
        elif last_run is not None and last_run.status == "partial":
            failed = sorted({e.source for e in last_run.errors})
            warnings.append(
                f"the last run (#{last_run.id}) was partial; failed: {', '.join(failed)}"
            )
        fail_on = set(config.settings.health.fail_on)
        # an alert whose `for:` has not passed has fired for nobody yet: never a problem
        rules = config.settings.alerts
        fires = {a.alert: is_firing(rules, a, store, now) for a in alerts}
        firing = [
            f"alert active since {_when(a.since, config.tz)}: {a.alert}"
            for a in alerts
            if fires[a.alert]
        ]
        (problems if "alerts" in fail_on else warnings).extend(firing)
        warnings += [
            f"alert pending since {_when(a.since, config.tz)} (its `for:` has not passed): "
            f"{a.alert}"
            for a in alerts
            if not fires[a.alert]
        ]
        # a switched-off destination's deliveries wait for it, untried: never a problem
        off = {d.name for d in config.destinations if not d.enabled}
        parked = [r for r in pending if r.destination in off]
        waiting = [r for r in pending if r.destination not in off]
        if parked:
            names = sorted({r.destination for r in parked})
            warnings.append(
                f"{plural(len(parked), 'delivery', 'deliveries')} pending for destinations "
                f"switched off (`enabled: false`): {', '.join(names)}; it goes out once they "
                "are switched on"
            )
        if waiting:
            names = sorted({r.destination for r in waiting})
            line = f"{plural(len(waiting), 'delivery', 'deliveries')} pending ({', '.join(names)})"
            (problems if "pending_deliveries" in fail_on else warnings).append(line)
        if refused:
            names = sorted({r.destination for r in refused})
            line = (
                f"{plural(len(refused), 'delivery', 'deliveries')} refused for good ({', '.join(names)}): "
                "see `kpi deliver --list`, resend with `kpi deliver --retry PERIOD`"
            )
            (problems if "pending_deliveries" in fail_on else warnings).append(line)
        # judged by each source's own newest attempt, whichever job collects it: a source
        # that fails in the daily job stays a warning after an hourly job's run went fine
        from kpi_collector.store.runs import failing_streaks

        names = [s.name for s in config.sources if s.enabled]
        for name, (streak, error) in failing_streaks(store, names, depth=50).items():
            if streak:
                runs_text = "run" if streak == 1 else f"{streak} runs"
                line = f"source {name} failed its last {runs_text}: {error}"
                (problems if "failing_sources" in fail_on else warnings).append(line)
        return {
            "ok": not problems,
            "checked_at": now,
            "timezone": config.timezone,
            "problems": problems,
            "warnings": warnings,
            "scheduler": daemon.to_dict() if daemon else None,
            "run_in_progress": running.to_dict() if running else None,
            "last_run": _run_dict(last_run),
            "jobs": job_rows,
            "alerts": [a.to_dict() | {"firing": fires[a.alert]} for a in alerts],
            "silences": [{"alert": k, "until": u} for k, u in sorted(silenced.items())],
            "pending_deliveries": [r.to_dict() for r in pending],
        }
    finally:
        if own:
            store.close()


def missing_store(config: Config) -> str | None:
    """What says that nothing has written the config's store yet ("the store kpi.db does not
    exist", "the store postgresql://... has no tables"), else None. Commands that only read
    ask first: opening the store would create it (a SQLite file and its folder, the tables in
    a database server or in an existing file: an empty one, another program's), and a read
    must write nothing. A store that could never be opened (its
    folder is a file, a server that refuses) is not missing: opening it raises the StoreError
    that says why."""
    import os

    from kpi_collector.config.plain import sqlite_file
    from kpi_collector.store import HistoryStore

    path = sqlite_file(config.store_url)
    if path is None or os.path.isfile(path):  # asked without creating or migrating anything
        try:
            if HistoryStore(config.store_url).has_schema():
                return None
        except StoreError:
            return None
        return f"the store {path or redact(config.store_url)} has no tables"
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    return f"the store {path} does not exist" if os.path.isdir(folder) else None


def _job_row(
    job: Any,
    fired: datetime | None,
    following: datetime | None,
    *,
    last_success: float | None = None,
    last_status: str | None = None,
    last_error: str | None = None,
    overdue: bool = False,
    not_run_yet: bool = True,
    running: bool = False,
) -> dict[str, Any]:
    """One job of the health document: its fire times (UTC epoch seconds) and its state (the
    defaults: a job nothing has run yet)."""
    return {
        "job": job.name,
        "cron": job.cron.expr,
        "does": job.describe(),
        "last_fire": fired.timestamp() if fired else None,
        "next_fire": following.timestamp() if following else None,
        "last_success": last_success,
        "last_status": last_status,
        "last_error": last_error,
        "overdue": overdue,
        "not_run_yet": not_run_yet,
        "running": running,
    }


def _served_status(scheduler: Scheduler, job: Any, success: float) -> str:
    """The status of the run that served `job` at `success` outside the scheduler: for `main`
    a manual `kpi run` (ok, or partial), for a source job the run that stored its value."""
    from kpi_collector.store.runs import last_manual_run

    if job.name != "main":
        return "ok"
    clean = last_manual_run(scheduler.store, job.sources, statuses=("ok",))
    return "ok" if clean is not None and clean >= success else "partial"


def _runs(run: Any, job: str) -> bool:
    """Whether `run` (the run in progress, still beating, or None) is a run of the scheduled
    `job`: the scheduler's (`kpi schedule main`), or for `main` a manual `kpi run`."""
    if run is None:
        return False
    return run.detail == f"kpi schedule {job}" or (job == "main" and run.detail == "kpi run")


def _unread_report(config: Config, now: float, problem: str) -> dict[str, Any]:
    """The health document when the store cannot be read (`problem` says why: a SQLite store
    that was never written, a database server that refuses): the jobs from the config alone."""
    from kpi_collector.schedule.scheduler import plan

    at = datetime.fromtimestamp(now, UTC)
    jobs = []
    for job in plan(config):
        fired, following = job.cron.previous(at), job.cron.next_after(at)
        jobs.append(_job_row(job, fired, following))
    return {
        "ok": False,
        "checked_at": now,
        "timezone": config.timezone,
        "problems": [problem],
        "warnings": [],
        "scheduler": None,
        "run_in_progress": None,
        "last_run": None,
        "jobs": jobs,
        "alerts": [],
        "silences": [],
        "pending_deliveries": [],
    }


def render(report: dict[str, Any]) -> str:
    """The health document for people."""
    tz = ZoneInfo(report["timezone"])
    now = report["checked_at"]
    lines = [f"health: {'ok' if report['ok'] else 'PROBLEMS'}"]
    daemon = report["scheduler"]
    if daemon is None:
        lines.append("scheduler: never started on this store (cron or manual runs only)")
    else:
        age = seconds_text(max(0.0, now - daemon["beat_at"]))
        upcoming = (
            f", next run {_when(daemon['next_run_at'], tz)}" if daemon.get("next_run_at") else ""
        )
        lines.append(
            f"scheduler: {daemon['state']} — pid {daemon['pid']} on {daemon['hostname']}, "
            f"last heartbeat {age} ago{upcoming}"
        )
    running = report["run_in_progress"]
    if running is not None:
        lines.append(
            f"run in progress: {running['detail'] or 'a run'} — pid {running['pid']} on "
            f"{running['hostname']} since {_when(running['started_at'], tz)}"
        )
    last = report["last_run"]
    if last is None:
        lines.append("last run: none yet")
    else:
        lines.append(
            f"last run: #{last['id']} {last['status']} at {_when(last['started_at'], tz)} "
            f"({plural(last['values'], 'value')}, {plural(last['errors'], 'error')})"
        )
    lines.append("jobs:")
    for job in report["jobs"]:
        success = _when(job["last_success"], tz) if job["last_success"] else "never"
        state = "not run yet" if job.get("not_run_yet") else f"last success {success}"
        lines.append(
            f"  {job['job']:<24} {job['cron']:<16} {state}, "
            f"next {_when(job['next_fire'], tz) if job['next_fire'] else 'never'}"
            + ("  OVERDUE" if job["overdue"] else "")
            + ("  RUNNING" if job.get("running") else "")
        )
    for silence in report["silences"]:
        lines.append(f"silenced until {_when(silence['until'], tz)}: {silence['alert']}")
    for title, items in (("problems", report["problems"]), ("warnings", report["warnings"])):
        if items:
            lines.append(f"{title}:")
            lines += [f"  - {item}" for item in items]
    return "\n".join(lines)


def _run_dict(run: Any) -> dict[str, Any] | None:
    if run is None:
        return None
    return {
        "id": run.id,
        "status": run.status,
        "trigger": run.trigger,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "values": run.n_values,
        "errors": run.n_errors,
    }


def _when(ts: float, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M %Z")
