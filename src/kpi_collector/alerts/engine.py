"""Alerts: rules about KPIs, sources and deliveries, checked against the store after each run.

A message goes to the alert's `notify` destinations once when its rule becomes true and once
when it resolves, never on every run: the store's `alert_states` table keeps each alert's
condition (destination "") and what each destination has been told. A destination that could
not be told is told on the next run (its state only changes once the message went out).

    alerts:
      - {kpi: telemetry.dau, below: 100, notify: [slack]}
      - {kpi: github.stars, above: 10000, notify: [discord]}
      - {kpi: pypi.downloads_last_week, change: {days: 7, below: -20%}, notify: [slack]}
      - {source: github, failing_runs: 3, notify: [slack]}     # no source: every source
      - {kpi: telemetry.dau, stale_days: 2, notify: [email]}   # no kpi: every KPI
      - {destination: notion, pending_runs: 3, notify: [slack]} # no destination: every one
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from kpi_collector.errors import KpiError
from kpi_collector.secrets import redact

if TYPE_CHECKING:
    from kpi_collector.config.models import Alert, Config, KpiSpec
    from kpi_collector.destinations.base import Destination
    from kpi_collector.pipeline import Pipeline, RunResult
    from kpi_collector.store import HistoryStore

log = logging.getLogger("kpi_collector.alerts.engine")

OWN = ""  # the destination column of the row that holds an alert's own condition
_SHOW = 12  # names listed in a config error


@dataclass(frozen=True, slots=True)
class Finding:
    """An alert's condition for one subject: active, inactive or unknown (None: no data yet)."""

    key: str  # the alert's key, plus the subject when the rule covers several
    active: bool | None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class AlertState:
    """A row of `alert_states`: an alert's condition since when (destination ""), or what a
    destination was last told."""

    alert: str
    destination: str
    active: bool
    since: float
    message: str | None
    updated_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert": self.alert,
            "destination": self.destination,
            "active": self.active,
            "since": self.since,
            "message": self.message,
        }


@dataclass
class Transition:
    """An alert that fired or resolved on this check, and where its message went."""

    key: str
    active: bool
    text: str
    sent: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # destination -> why it was not told


# config ---------------------------------------------------------------------------------------


def alert_problems(config: Config) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """What is wrong with `alerts:` given the rest of the config: (key path, message)."""
    sources = {s.name for s in config.sources}
    known = set(config.kpi_ids())
    open_sources = {s.name for s in config.sources if not s.metric_names()}
    destinations = {d.name: d for d in config.destinations}
    keys: dict[str, int] = {}
    for index, alert in enumerate(config.settings.alerts):
        at: tuple[str | int, ...] = ("alerts", index)
        label = f"alerts[{index}]"
        if alert.kpi and alert.kpi not in known and alert.kpi.partition(".")[0] not in open_sources:
            yield (
                (*at, "kpi"),
                f"{label}.kpi: {alert.kpi!r} is not a KPI id of this config; {_listed('KPI ids', known)}",
            )
        if alert.source and alert.source not in sources:
            yield (
                (*at, "source"),
                f"{label}.source: no source named {alert.source!r}; {_listed('sources', sources)}",
            )
        if alert.destination and alert.destination not in destinations:
            yield (
                (*at, "destination"),
                f"{label}.destination: no destination named {alert.destination!r}; "
                f"{_listed('destinations', destinations)}",
            )
        for position, name in enumerate(alert.notify):
            target = destinations.get(name)
            if target is None:
                yield (
                    (*at, "notify", position),
                    f"{label}.notify: no destination named {name!r}; {_listed('destinations', destinations)}",
                )
            elif not target.can_send_text:
                able = [d.name for d in config.destinations if d.can_send_text]
                yield (
                    (*at, "notify", position),
                    f"{label}.notify: destination {name!r} (type {target.type}) cannot send alerts; "
                    f"notify a message destination{': ' + ', '.join(able) if able else ''}",
                )
        if alert.key in keys:
            yield (
                at,
                f"{label}: the same alert as alerts[{keys[alert.key]}] ({alert.key!r}); "
                "remove one or give each its own `name:`",
            )
        keys.setdefault(alert.key, index)


def _listed(what: str, names: Any) -> str:
    ordered = sorted(names)
    if not ordered:
        return f"there are no {what}"
    more = f", ... ({len(ordered)} in all)" if len(ordered) > _SHOW else ""
    return f"{what}: {', '.join(ordered[:_SHOW])}{more}"


# evaluation -----------------------------------------------------------------------------------


class _Context:
    """What rules look at: the store, the pipeline's KPIs and names, the time of the check."""

    def __init__(self, pipeline: Pipeline, store: HistoryStore, now: float) -> None:
        self.pipeline = pipeline
        self.store = store
        self.now = now
        self.specs: dict[str, KpiSpec] = pipeline.kpis

    def title(self, kpi: str) -> str:
        spec = self.specs.get(kpi)
        return spec.title if spec is not None and spec.title else kpi

    def value(self, kpi: str, value: float) -> str:
        from kpi_collector.format import format_value

        spec = self.specs.get(kpi)
        return format_value(value, spec.unit if spec is not None else None)

    def watched_kpis(self, source: str | None) -> list[str]:
        """KPI ids of the pipeline's enabled sources (and formulas); stored ids of sources whose
        metrics are only known at run time."""
        sources = [
            s for s in self.pipeline.sources if s.enabled and (source is None or s.name == source)
        ]
        ids = [k for s in sources for k in s.kpi_ids()]
        if source is None:
            ids += [k for k, spec in self.specs.items() if spec.formula]
        open_names = {s.name for s in sources if not s.metric_names()}
        if open_names:
            ids += [k for k in self.store.kpi_ids() if k.partition(".")[0] in open_names]
        return list(dict.fromkeys(ids))


def evaluate(
    pipeline: Pipeline, store: HistoryStore, alerts: Sequence[Alert], *, now: float
) -> list[tuple[Alert, Finding]]:
    """Each alert's findings (one per subject) from the store's current contents."""
    ctx = _Context(pipeline, store, now)
    found: list[tuple[Alert, Finding]] = []
    for alert in alerts:
        rule = _RULES[alert.kind]
        found += [(alert, finding) for finding in rule(alert, ctx)]
    return found


def _threshold(alert: Alert, ctx: _Context) -> Iterator[Finding]:
    assert alert.kpi is not None
    row = ctx.store.latest([alert.kpi]).get(alert.kpi)
    if row is None:
        yield Finding(alert.key, None)
        return
    crossed = None
    if alert.below is not None and row.value < alert.below:
        crossed = f"below {ctx.value(alert.kpi, alert.below)}"
    elif alert.above is not None and row.value > alert.above:
        crossed = f"above {ctx.value(alert.kpi, alert.above)}"
    detail = f"{ctx.title(alert.kpi)} is {ctx.value(alert.kpi, row.value)}"
    yield Finding(alert.key, crossed is not None, f"{detail}, {crossed}" if crossed else detail)


def _change(alert: Alert, ctx: _Context) -> Iterator[Finding]:
    from kpi_collector.format import percent_change

    assert alert.kpi is not None and alert.change is not None
    rule = alert.change
    row = ctx.store.latest([alert.kpi]).get(alert.kpi)
    before = (
        ctx.store.latest([alert.kpi], before=row.ts - rule.days * 86400).get(alert.kpi)
        if row
        else None
    )
    pct = percent_change(row.value, before.value) if row and before else None
    if row is None or before is None or pct is None:
        yield Finding(alert.key, None)
        return
    active = (rule.below is not None and pct < rule.below) or (
        rule.above is not None and pct > rule.above
    )
    detail = (
        f"{ctx.title(alert.kpi)} changed {pct:+.1f}% in {rule.days} days "
        f"({ctx.value(alert.kpi, before.value)} → {ctx.value(alert.kpi, row.value)})"
    )
    yield Finding(alert.key, active, detail)


def _failing(alert: Alert, ctx: _Context) -> Iterator[Finding]:
    assert alert.failing_runs is not None
    names = [alert.source] if alert.source else [s.name for s in ctx.pipeline.sources if s.enabled]
    streaks = failing_streaks(ctx.store, names, depth=alert.failing_runs)
    for name in names:
        streak, last_error = streaks.get(name, (None, None))
        key = alert.key if alert.source else f"{alert.key} [{name}]"
        if streak is None:
            yield Finding(key, None)
        elif streak >= alert.failing_runs:
            yield Finding(key, True, f"source {name} failed the last {streak} runs: {last_error}")
        else:
            yield Finding(key, False, f"source {name} works again")


def _stale(alert: Alert, ctx: _Context) -> Iterator[Finding]:
    assert alert.stale_days is not None
    ids = [alert.kpi] if alert.kpi else ctx.watched_kpis(alert.source)
    latest = ctx.store.latest(ids)
    limit = alert.stale_days * 86400
    first_run = _first_run_at(ctx.store)
    for kpi in ids:
        key = alert.key if alert.kpi else f"{alert.key} [{kpi}]"
        row = latest.get(kpi)
        if row is None:  # never stored: stale once the store has been running that long
            if first_run is None:
                yield Finding(key, None)
            else:
                yield Finding(
                    key, ctx.now - first_run > limit, f"{ctx.title(kpi)} has no value yet"
                )
            continue
        when = datetime.fromtimestamp(row.ts, ctx.pipeline.tz).strftime("%Y-%m-%d %H:%M")
        yield Finding(key, ctx.now - row.ts > limit, f"{ctx.title(kpi)} was last updated {when}")


def _pending(alert: Alert, ctx: _Context) -> Iterator[Finding]:
    assert alert.pending_runs is not None
    from kpi_collector.destinations.store import Store

    names = (
        [alert.destination]
        if alert.destination
        else [d.name for d in _destinations(ctx.pipeline) if not isinstance(d, Store)]
    )
    pending = pending_runs(ctx.store)
    for name in names:
        key = alert.key if alert.destination else f"{alert.key} [{name}]"
        runs, period, error = pending.get(name, (0, None, None))
        if runs >= alert.pending_runs:
            why = f": {error}" if error else ""
            yield Finding(
                key,
                True,
                f"the delivery of {period} to {name} has been pending for {runs} runs{why}",
            )
        else:
            yield Finding(key, False, f"deliveries to {name} went out")


_RULES = {
    "threshold": _threshold,
    "change": _change,
    "failing": _failing,
    "stale": _stale,
    "pending": _pending,
}


# store queries --------------------------------------------------------------------------------


def failing_streaks(
    store: HistoryStore, sources: Sequence[str], *, depth: int
) -> dict[str, tuple[int, str | None]]:
    """For each source: how many of its newest runs failed in a row (any error counts), and
    the newest error. Looks at the newest `depth` runs that included it (values or errors)."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import observations, run_errors, runs

    wanted = set(sources)
    out: dict[str, tuple[int, str | None]] = {}
    window = max(50, depth * 10)
    with store.engine.connect() as conn:
        ids = [
            r[0]
            for r in conn.execute(
                sa.select(runs.c.id)
                .where(runs.c.status.notin_(("running", "interrupted")))
                .order_by(runs.c.id.desc())
                .limit(window)
            )
        ]
        if not ids:
            return out
        failed: dict[tuple[int, str], str] = {}
        for run_id, source, message in conn.execute(
            sa.select(run_errors.c.run_id, run_errors.c.source, run_errors.c.message)
            .where(run_errors.c.run_id.in_(ids), run_errors.c.source.in_(wanted))
            .order_by(run_errors.c.id)
        ):
            failed.setdefault((run_id, source), message)
        seen = {
            (r[0], r[1])
            for r in conn.execute(
                sa.select(observations.c.run_id, observations.c.source)
                .where(observations.c.run_id.in_(ids), observations.c.source.in_(wanted))
                .distinct()
            )
        }
    included = seen | set(failed)
    for source in sources:
        streak, newest = 0, None
        history = [run_id for run_id in ids if (run_id, source) in included][:depth]
        if not history:
            continue
        for run_id in history:
            if (run_id, source) not in failed:
                break
            newest = newest or failed[(run_id, source)]
            streak += 1
        out[source] = (streak, newest)
    return out


def pending_runs(store: HistoryStore) -> dict[str, tuple[int, str | None, str | None]]:
    """For each destination with a pending delivery: for how many runs the one pending longest
    has been pending (the run that made it pending counts), its period and last error.

    Counted from `pending_since`, not `created_at`: a table destination's row for a day goes
    done -> pending again at a later run, and only that run starts its pending time."""
    import sqlalchemy as sa

    from kpi_collector.deliver.engine import PENDING, DeliveryEngine
    from kpi_collector.store.schema import runs

    out: dict[str, tuple[int, str | None, str | None]] = {}
    oldest: dict[str, tuple[float, Any]] = {}
    for record in DeliveryEngine(store, []).records(status=PENDING):
        since = record.created_at if record.pending_since is None else record.pending_since
        if record.destination not in oldest or since < oldest[record.destination][0]:
            oldest[record.destination] = (since, record)
    if not oldest:
        return out
    with store.engine.connect() as conn:
        for name, (since, record) in oldest.items():
            later = conn.execute(
                sa.select(sa.func.count()).select_from(runs).where(runs.c.started_at > since)
            ).scalar_one()
            out[name] = (int(later) + 1, record.period, record.last_error)
    return out


def _first_run_at(store: HistoryStore) -> float | None:
    import sqlalchemy as sa

    from kpi_collector.store.schema import runs

    with store.engine.connect() as conn:
        value = conn.execute(sa.select(sa.func.min(runs.c.started_at))).scalar()
    return float(value) if value is not None else None


def alert_states(store: HistoryStore) -> list[AlertState]:
    """Every row of `alert_states`; `destination == ""` rows are the alerts' own conditions."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import alert_states as t

    with store.engine.connect() as conn:
        return [
            AlertState(r.alert, r.destination, bool(r.active), r.since, r.message, r.updated_at)
            for r in conn.execute(sa.select(t).order_by(t.c.alert, t.c.destination))
        ]


def active_alerts(store: HistoryStore) -> list[AlertState]:
    """The alerts whose condition is true now, oldest first (for health and the dashboard)."""
    return sorted(
        (s for s in alert_states(store) if s.destination == OWN and s.active), key=lambda s: s.since
    )


def _save(
    store: HistoryStore, key: str, destination: str, *, active: bool, message: str, now: float
) -> None:
    from kpi_collector.store.schema import alert_states as t

    where = (t.c.alert == key) & (t.c.destination == destination)
    values = {"active": active, "since": now, "message": redact(message), "updated_at": time.time()}
    with store.write() as conn:
        if not conn.execute(t.update().where(where).values(**values)).rowcount:
            conn.execute(t.insert().values(alert=key, destination=destination, **values))


def _prune(store: HistoryStore, keep: set[str]) -> None:
    """Forget alerts that are no longer in the config (so a re-added one starts afresh)."""
    from kpi_collector.store.schema import alert_states as t

    with store.write() as conn:
        conn.execute(t.delete().where(t.c.alert.notin_(keep)) if keep else t.delete())


# checking and telling ---------------------------------------------------------------------------


def message(finding: Finding, active: bool) -> str:
    """The text a destination gets."""
    detail = f" — {finding.detail}" if finding.detail else ""
    return f"🚨 Alert: {finding.key}{detail}" if active else f"✅ Resolved: {finding.key}{detail}"


async def check_alerts(
    pipeline: Pipeline, result: RunResult | None = None, *, now: float | None = None
) -> list[Transition]:
    """Evaluate the pipeline's alerts against its store and tell each `notify` destination about
    every alert that fired or resolved since it was last told. Send failures land in
    `result.delivery_errors` (as "<destination> (alerts)") and are retried on the next check."""
    store = pipeline.store
    if store is None or not pipeline.alerts:
        return []
    if now is None:  # as of the run: "not updated for N days" counts from the run's start
        now = result.started_at.timestamp() if result is not None else time.time()
    findings = evaluate(pipeline, store, pipeline.alerts, now=now)
    states = {(s.alert, s.destination): s for s in alert_states(store)}
    targets = {d.name: d for d in _destinations(pipeline)}
    transitions: list[Transition] = []
    for alert, finding in findings:
        if finding.active is None:
            continue
        own = states.get((finding.key, OWN))
        changed = own is None or own.active != finding.active
        if changed:
            _save(store, finding.key, OWN, active=finding.active, message=finding.detail, now=now)
        transition = Transition(finding.key, finding.active, message(finding, finding.active))
        for name in alert.notify:
            told = states.get((finding.key, name))
            if (told is not None and told.active) == finding.active:
                continue
            error = await _send(targets.get(name), name, transition.text)
            if error is None:
                _save(
                    store,
                    finding.key,
                    name,
                    active=finding.active,
                    message=transition.text,
                    now=now,
                )
                transition.sent.append(name)
            else:
                transition.errors[name] = error
        quiet_start = own is None and not finding.active  # a rule that has never been true
        if (changed and not quiet_start) or transition.sent or transition.errors:
            transitions.append(transition)
    _prune(store, {f.key for _, f in findings})
    for transition in transitions:
        _log(transition)
        if result is not None:
            for name, error in transition.errors.items():
                label = f"{name} (alerts)"
                before = result.delivery_errors.get(label)
                entry = f"{transition.key}: {error}"
                result.delivery_errors[label] = f"{before}; {entry}" if before else entry
    return transitions


async def _send(destination: Destination | None, name: str, text: str) -> str | None:
    """None when sent, else why not."""
    if destination is None:
        return f"no enabled destination named {name!r}"
    if not destination.can_send_text:
        return f"destination {name!r} (type {destination.type}) cannot send text messages"
    try:
        await destination.send_text(text)
    except KpiError as exc:
        return redact(str(exc))
    except Exception as exc:  # a destination's bug must not stop the other alerts
        return redact(f"{type(exc).__name__}: {exc}")
    return None


def _destinations(pipeline: Pipeline) -> list[Destination]:
    """The enabled destinations alerts may use: the config's, else the pipeline's own."""
    found = pipeline.config.destinations if pipeline.config is not None else pipeline.destinations
    return [d for d in found if d.enabled]


def _log(transition: Transition) -> None:
    where = f" (sent to {', '.join(transition.sent)})" if transition.sent else ""
    failed = "; ".join(f"{n}: {e}" for n, e in transition.errors.items())
    if transition.active:
        log.warning("alert firing: %s%s", transition.text, where)
    else:
        log.info("alert resolved: %s%s", transition.text, where)
    if failed:
        log.warning("alert not sent: %s: %s", transition.key, failed)
