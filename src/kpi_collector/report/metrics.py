"""`/metrics`: the newest value of every KPI and the health of the runs, in the Prometheus text
format (version 0.0.4), so a team with Prometheus and Grafana can scrape the dashboard.
"""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

from kpi_collector._version import __version__
from kpi_collector.destinations.exposition import CONTENT_TYPE, label, number

if TYPE_CHECKING:
    from kpi_collector.report.data import DashboardData, JobDoc

__all__ = ["CONTENT_TYPE", "metrics_text"]
#: every status a run can have (HistoryStore.finish_run, schedule.state.mark_interrupted)
RUN_STATUSES = ("ok", "partial", "failed", "running", "interrupted")
#: seconds without a heartbeat before the scheduler counts as gone (as `kpi validate --health`)
SCHEDULER_STALE = 180.0
#: seconds without a heartbeat before the run in progress counts as gone (as `--health`)
RUN_STALE = 60.0


def _family(lines: list[str], name: str, help_text: str, samples: list[tuple[str, float]]) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} gauge")
    lines.extend(f"{name}{labels} {number(value)}" for labels, value in samples)


def metrics_text(data: DashboardData) -> str:
    """The exposition text: KPI gauges (label `kpi`), run health, sources, pending deliveries."""
    latest = data.latest()
    ids = data.order(list(latest))
    lines: list[str] = []
    _family(
        lines,
        "kpi_value",
        "The newest stored value of each KPI.",
        [(f'{{kpi="{label(k)}"}}', latest[k][0]) for k in ids],
    )
    _family(
        lines,
        "kpi_value_timestamp_seconds",
        "When each KPI's newest value was collected (Unix time).",
        [(f'{{kpi="{label(k)}"}}', latest[k][1]) for k in ids],
    )
    targets = [(k, s.target) for k, s in data.config.kpis.items() if s.target is not None]
    _family(
        lines,
        "kpi_target",
        "The target set for a KPI in kpi.yaml.",
        [(f'{{kpi="{label(k)}"}}', float(t)) for k, t in targets],
    )
    runs = data.store.runs(1)
    run = runs[0] if runs else None
    _family(
        lines,
        "kpi_last_run_id",
        "The id of the newest run (0 before the first); ids grow by one per run.",
        [("", float(run.id if run else 0))],
    )
    if run is not None:
        _family(
            lines,
            "kpi_last_run_timestamp_seconds",
            "When the newest run started (Unix time).",
            [("", run.started_at)],
        )
        if run.duration is not None:
            _family(
                lines,
                "kpi_last_run_duration_seconds",
                "How long the newest run took.",
                [("", run.duration)],
            )
        _family(
            lines,
            "kpi_last_run_success",
            "1 when the newest run (of any job) had no errors, else 0.",
            [("", 1.0 if run.status == "ok" else 0.0)],
        )
        _family(
            lines,
            "kpi_last_run_status",
            "The newest run's status (one of the labels is 1).",
            [(f'{{status="{s}"}}', 1.0 if run.status == s else 0.0) for s in RUN_STATUSES],
        )
        _family(
            lines,
            "kpi_last_run_values",
            "Values the newest run stored.",
            [("", float(run.n_values))],
        )
        _family(
            lines, "kpi_last_run_errors", "Errors in the newest run.", [("", float(run.n_errors))]
        )
    _sources(lines, data)
    pending: dict[str, float] = {}
    failed: dict[str, float] = {}
    for row in data.pending_deliveries():
        counts = pending if row["status"] == "pending" else failed
        counts[row["destination"]] = counts.get(row["destination"], 0.0) + 1
    _family(
        lines,
        "kpi_deliveries_pending",
        "Deliveries of each destination waiting to be retried.",
        [
            (f'{{destination="{label(d.name)}"}}', pending.pop(d.name, 0.0))
            for d in data.config.destinations
            if d.enabled
        ]
        + [(f'{{destination="{label(name)}"}}', n) for name, n in sorted(pending.items())],
    )
    _family(
        lines,
        "kpi_deliveries_failed",
        "Deliveries the destination refused for good, until `kpi deliver --retry`.",
        [(f'{{destination="{label(name)}"}}', n) for name, n in sorted(failed.items())],
    )
    health = data.health()
    if health is not None:
        _family(
            lines,
            "kpi_health_ok",
            "1 when `kpi validate --health` finds no problem.",
            [("", 1.0 if health["ok"] else 0.0)],
        )
        _jobs(lines, health["jobs"])
        _alerts(lines, data, {a["alert"] for a in health["alerts"]})
        daemon = health["scheduler"]
        if daemon is not None:
            from datetime import datetime

            beat = datetime.fromisoformat(daemon["beat_at"]).timestamp()
            _family(
                lines,
                "kpi_scheduler_heartbeat_timestamp_seconds",
                "When the `kpi schedule` process last said it is alive (Unix time).",
                [("", beat)],
            )
            # a scheduler busy with a long job beats through its run's heartbeat; a run whose
            # heartbeat stopped too is what a process killed mid-job leaves behind
            running = health["run_in_progress"]
            run_beat = running["beat_at"] if running is not None else None
            run_alive = (
                run_beat is not None
                and data.clock() - datetime.fromisoformat(run_beat).timestamp() <= RUN_STALE
            )
            alive = daemon["state"] != "stopped" and (
                run_alive or data.clock() - beat <= SCHEDULER_STALE
            )
            _family(
                lines,
                "kpi_scheduler_up",
                "1 while `kpi schedule` beats (or its run is in progress), 0 once it stopped "
                "or went silent.",
                [("", 1.0 if alive else 0.0)],
            )
    _family(
        lines,
        "kpi_build_info",
        "Always 1; the labels say which kpi-collector and Python serve these metrics.",
        [(f'{{version="{label(__version__)}",python="{label(platform.python_version())}"}}', 1.0)],
    )
    return "\n".join(lines) + "\n"


def _sources(lines: list[str], data: DashboardData) -> None:
    """Per source, from its own newest attempt (the newest run that collected it), not from
    the newest run of any job: a source on its own schedule is judged by its own runs."""
    from kpi_collector.store.runs import failing_streaks, newest_collected_by_kpis

    enabled = [s for s in data.config.sources if s.enabled]
    names = [s.name for s in enabled]
    streaks = failing_streaks(data.store, names, depth=1)
    _family(
        lines,
        "kpi_source_up",
        "1 when the source's newest attempt stored no error; 0 when it failed or never ran.",
        [
            (f'{{source="{label(n)}"}}', 1.0 if n in streaks and not streaks[n][0] else 0.0)
            for n in names
        ],
    )
    collected = newest_collected_by_kpis(data.store, {s.name: s.kpi_ids() for s in enabled})
    _family(
        lines,
        "kpi_source_last_success_timestamp_seconds",
        "When the source last stored a value collected by a run (Unix time).",
        [(f'{{source="{label(n)}"}}', collected[n]) for n in names if n in collected],
    )


def _jobs(lines: list[str], jobs: list[JobDoc]) -> None:
    """Per scheduled job (`main`, `source:NAME`, `destination:NAME`)."""
    from kpi_collector.schedule.scheduler import SUCCESS

    _family(
        lines,
        "kpi_job_up",
        "1 while the job's run is in progress, or when its newest outcome served its fire "
        "time (ok, or partial: some sources failed, kpi_source_up says which) and it is not "
        "overdue, else 0.",
        [
            (
                f'{{job="{label(j["job"])}"}}',
                # partial served its fire time (health: a warning, not a problem)
                1.0
                if j["running"]
                or (
                    not j["overdue"]
                    and j["last_success"] is not None
                    and j["last_status"] in (None, *SUCCESS)
                )
                else 0.0,
            )
            for j in jobs
        ],
    )
    _family(
        lines,
        "kpi_job_running",
        "1 while the job's run is in progress (its heartbeat beating), else 0.",
        [(f'{{job="{label(j["job"])}"}}', 1.0 if j["running"] else 0.0) for j in jobs],
    )
    _family(
        lines,
        "kpi_job_last_success_timestamp_seconds",
        "When the job last succeeded (Unix time).",
        [(f'{{job="{label(j["job"])}"}}', j["last_success"]) for j in jobs if j["last_success"]],
    )


def _alerts(lines: list[str], data: DashboardData, active: set[str]) -> None:
    """Every alert the store knows (its own condition row), 1 while it fires."""
    from kpi_collector.store.alert_states import OWN, alert_states

    known = sorted({s.alert for s in alert_states(data.store) if s.destination == OWN} | active)
    _family(
        lines,
        "kpi_alerts_active",
        "Alerts whose condition is true now.",
        [("", float(len(active)))],
    )
    _family(
        lines,
        "kpi_alert_active",
        "1 while the alert's condition is true, else 0.",
        [(f'{{alert="{label(a)}"}}', 1.0 if a in active else 0.0) for a in known],
    )
