"""`/metrics`: the newest value of every KPI and the health of the runs, in the Prometheus text
format (version 0.0.4), so a team with Prometheus and Grafana can scrape the dashboard.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpi_collector.destinations.exposition import CONTENT_TYPE, label, number

if TYPE_CHECKING:
    from kpi_collector.report.data import DashboardData

__all__ = ["CONTENT_TYPE", "metrics_text"]
#: every status a run can have (HistoryStore.finish_run, schedule.state.mark_interrupted)
RUN_STATUSES = ("ok", "partial", "failed", "running", "interrupted")


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
        "kpi_runs_total",
        "Runs stored so far (the id of the newest run).",
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
            "1 when the newest run had no errors, else 0.",
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
    failing = {e["source"] for e in (run.errors if run else [])}
    sources = [s for s in data.config.sources if s.enabled]
    _family(
        lines,
        "kpi_source_up",
        "1 when the source had no error in the newest run, else 0.",
        [(f'{{source="{label(s.name)}"}}', 0.0 if s.name in failing else 1.0) for s in sources],
    )
    _family(
        lines,
        "kpi_deliveries_pending",
        "Deliveries waiting to be retried.",
        [("", float(len(data.pending_deliveries())))],
    )
    health = data.health()
    if health is not None:
        _family(
            lines,
            "kpi_health_ok",
            "1 when `kpi validate --health` finds no problem.",
            [("", 1.0 if health["ok"] else 0.0)],
        )
        _family(
            lines,
            "kpi_alerts_active",
            "Alerts whose condition is true now.",
            [("", float(len(health["alerts"])))],
        )
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
    return "\n".join(lines) + "\n"
