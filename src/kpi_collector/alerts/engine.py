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

import asyncio
import hashlib
import logging
import math
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from kpi_collector.destinations.base import message_id
from kpi_collector.errors import KpiError
from kpi_collector.format import plural, signed
from kpi_collector.secrets import redact
from kpi_collector.store.alert_states import (
    OWN,
    AlertState,
    active_alerts,
    alert_states,
    prune_alert_states,
    save_alert_state,
)
from kpi_collector.store.deliveries import pending_runs
from kpi_collector.store.runs import ALERT_REACH, failing_streaks, first_run_at

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from kpi_collector.config.models import Alert, KpiSpec
    from kpi_collector.destinations.base import Destination
    from kpi_collector.run.result import RunResult
    from kpi_collector.sources.base import Source
    from kpi_collector.store import HistoryStore

__all__ = [
    "OWN",
    "AlertScope",
    "AlertState",
    "Finding",
    "Transition",
    "active_alerts",
    "alert_states",
    "check_alerts",
    "evaluate",
    "is_firing",
    "rule_of",
]

log = logging.getLogger("kpi_collector.alerts")
#: the number in a formatted value ("$1,234.50", "99.5%", "1e-07 ms")
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?(?:e[+-]?\d+)?")


@dataclass(frozen=True)
class AlertScope:
    """What the rules look at besides the store: the enabled sources, the KPI specs, the time
    zone of dates in messages, and the destinations alerts may notify (and whose pending
    deliveries `pending_runs` watches)."""

    sources: Sequence[Source]
    kpis: Mapping[str, KpiSpec]
    tz: ZoneInfo
    destinations: Sequence[Destination]
    #: destinations switched off (`enabled: false`): not told, and no error; told the
    #: alert's state on the first check after they are switched on again
    disabled: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Finding:
    """An alert's condition for one subject: active, inactive or unknown (None: no data yet)."""

    key: str  # the alert's key, plus the subject when the rule covers several
    active: bool | None
    detail: str = ""
    about: str | None = None  # the destination a `pending_runs` finding is about
    side: str | None = None  # "below" / "above": which side of a two-sided rule is true


@dataclass
class Transition:
    """An alert that fired or resolved on this check, and where its message went."""

    key: str
    active: bool  # firing now
    text: str
    sent: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # destination -> why it was not told
    pending: bool = False  # true, but not yet for as long as its `for:` asks
    side: str | None = None  # the side of a two-sided rule it says


# config ---------------------------------------------------------------------------------------


# evaluation -----------------------------------------------------------------------------------


class _Context:
    """What rules look at: the store, the scope's KPIs and names, the time of the check."""

    def __init__(
        self,
        scope: AlertScope,
        store: HistoryStore,
        now: float,
        states: Mapping[tuple[str, str], AlertState] | None = None,
    ) -> None:
        self.scope = scope
        self.store = store
        self.now = now
        self.specs: Mapping[str, KpiSpec] = scope.kpis
        self.states = states or {}

    def holds(self, alert: Alert) -> bool:
        """Whether `alert` fired at the previous check (for hysteresis): its condition was
        true and, with a `for:`, had held that long. A pending alert is not held: until it
        fires, the plain threshold decides (90, 105, 105 with `below: 100, resolve_above: 110,
        for: 3` never fires)."""
        own = self.states.get((alert.key, OWN))
        if own is None or not own.active:
            return False
        if alert.hold_seconds is None and (alert.hold_checks or 1) <= 1:
            return True
        from kpi_collector.store.runs import previous_run_start

        previous = previous_run_start(self.store, self.now)
        return (
            previous is not None
            and previous >= own.since
            and _firing(alert, own, self.store, previous)
        )

    def switched_off(self, source: str) -> bool:
        """Whether the config has `source` with `enabled: false`."""
        return any(s.name == source and not s.enabled for s in self.scope.sources)

    def not_watched(self, subject: str, *, destination: bool = False) -> str:
        """Why a source or KPI (a `destination`) `subject` of a rule is no longer watched."""
        if destination and subject in self.scope.disabled:
            return f"destination {subject} is switched off (`enabled: false`)"
        for source in () if destination else (subject, subject.partition(".")[0]):
            if self.switched_off(source):
                return f"source {source} is switched off (`enabled: false`)"
        return f"{subject} is no longer watched (removed from the config)"

    def title(self, kpi: str) -> str:
        spec = self.specs.get(kpi)
        return spec.title if spec is not None and spec.title else kpi

    def value(self, kpi: str, value: float) -> str:
        from kpi_collector.format import format_value

        spec = self.specs.get(kpi)
        return format_value(value, spec.unit if spec is not None else None)

    def apart(self, kpi: str, value: float, *bounds: float | None) -> str:
        """`value` as `value()` shows it, with more digits where it would look like one of
        `bounds` it is not: 99.996 next to `below: 100` is 99.996, not "100, below 100"."""
        text = self.value(kpi, value)
        number = _NUMBER.search(text)
        if number is None:
            return text

        def read(shown: str) -> float | None:  # "$1,000.00" and "$1,000" read the same
            found = _NUMBER.search(shown)
            if found is None:
                return None
            sign = -1 if "-" in shown[: found.start()] else 1
            return sign * float(found.group().replace(",", ""))

        close = [
            b
            for b in bounds
            if b is not None and b != value and read(self.value(kpi, b)) == read(text)
        ]
        if not close:
            return text
        spec = self.specs.get(kpi)
        scale = 100 if spec is not None and spec.unit == "ratio" else 1  # shown in percent
        for digits in range(5, 18):
            shown = f"{abs(value) * scale:,.{digits}g}"  # the sign stays where it was
            if all(f"{abs(b) * scale:,.{digits}g}" != shown for b in close):
                break
        before = text[: number.start()]
        if value < 0 and "-" not in before:  # -0.001 USD was "$0.00": no sign on a zero
            before = f"-{before}"
        return f"{before}{shown}{text[number.end() :]}"

    def watched_kpis(self, source: str | None) -> list[str]:
        """KPI ids of the pipeline's enabled sources (and formulas); stored ids of sources whose
        metrics are only known at run time."""
        sources = [
            s for s in self.scope.sources if s.enabled and (source is None or s.name == source)
        ]
        ids = [k for s in sources for k in s.kpi_ids()]
        if source is None:
            ids += [k for k, spec in self.specs.items() if spec.formula]
        open_names = {s.name for s in sources if not s.metric_names()}
        if open_names:
            ids += [k for k in self.store.kpi_ids() if k.partition(".")[0] in open_names]
        return list(dict.fromkeys(ids))


def evaluate(
    scope: AlertScope, store: HistoryStore, alerts: Sequence[Alert], *, now: float
) -> list[tuple[Alert, Finding]]:
    """Each alert's findings (one per subject) from the store's current contents; `now` is the
    time of the check (UTC epoch seconds)."""
    ctx = _Context(scope, store, now, {(s.alert, s.destination): s for s in alert_states(store)})
    found: list[tuple[Alert, Finding]] = []
    keys = {a.key for a in alerts}
    for alert in alerts:
        findings = list(_RULES[alert.kind](alert, ctx))
        findings += _unwatched(alert, ctx, {f.key for f in findings} | keys)
        found += [(alert, finding) for finding in findings]
    return found


def _unwatched(alert: Alert, ctx: _Context, seen: set[str]) -> Iterator[Finding]:
    """Resolved findings for the subjects of a rule over several (every source, KPI or
    destination) that it no longer watches (switched off, removed from the config) while it
    was true for them or a destination still believes so: without them their state was
    dropped and nobody was told the alert ended. Once all are told, the state goes. `seen`:
    keys that are no such subject (this check's findings, the alerts' own keys)."""
    one = {"failing": alert.source, "stale": alert.kpi, "pending": alert.destination}
    if alert.kind not in one or one[alert.kind]:  # a rule about one subject has none
        return
    prefix = f"{alert.key} ["
    subjects = sorted(
        {
            key[len(prefix) : -1]
            for (key, _), state in ctx.states.items()
            if state.active and key.startswith(prefix) and key.endswith("]") and key not in seen
        }
    )
    for subject in subjects:
        about = subject if alert.kind == "pending" else None
        detail = ctx.not_watched(subject, destination=about is not None)
        yield Finding(f"{prefix}{subject}]", False, detail, about=about)


def _threshold(alert: Alert, ctx: _Context) -> Iterator[Finding]:
    assert alert.kpi is not None
    row = ctx.store.latest([alert.kpi]).get(alert.kpi)
    if row is None:
        yield Finding(alert.key, None)
        return
    crossed = None
    # hysteresis: once true, a `below` alert holds until the value reaches `resolve_above`
    # (an `above` one until `resolve_below`); an alert with both holds the side that fired
    held = _held_side(alert, ctx, row.ts) if ctx.holds(alert) else None
    below = alert.below
    if below is not None and alert.resolve_above is not None and held in ("below", "either"):
        below = alert.resolve_above
    above = alert.above
    if above is not None and alert.resolve_below is not None and held in ("above", "either"):
        above = alert.resolve_below
    if below is not None and alert.below is not None and row.value < below:
        crossed = f"below {ctx.value(alert.kpi, alert.below)}"
        if below != alert.below:
            crossed += f" (resolves at {ctx.value(alert.kpi, below)})"
    elif above is not None and alert.above is not None and row.value > above:
        crossed = f"above {ctx.value(alert.kpi, alert.above)}"
        if above != alert.above:
            crossed += f" (resolves at {ctx.value(alert.kpi, above)})"
    shown = ctx.apart(alert.kpi, row.value, below, above, alert.below, alert.above)
    detail = f"{ctx.title(alert.kpi)} is {shown}"
    side = None
    if crossed is not None and alert.below is not None and alert.above is not None:
        side = crossed.partition(" ")[0]
    yield Finding(
        alert.key, crossed is not None, f"{detail}, {crossed}" if crossed else detail, side=side
    )


def _held_side(alert: Alert, ctx: _Context, newest: float) -> str:
    """Which side of a true threshold alert holds: "below" or "above" for an alert with both
    (the side of the newest value before the one at `newest` that crossed a threshold: the
    value that made it true, or a later one that crossed the other way), else "either"."""
    assert alert.kpi is not None
    if alert.below is None or alert.above is None:
        return "either"
    own = ctx.states.get((alert.key, OWN))
    since = own.since if own is not None else newest

    def side(value: float) -> str | None:
        if alert.below is not None and value < alert.below:
            return "below"
        if alert.above is not None and value > alert.above:
            return "above"
        return None

    # the values since the alert became true, newest first, then the one it became true on
    for _, _, value in reversed(ctx.store.rows([alert.kpi], since=since, until=newest)):
        if found := side(value):
            return found
    before = ctx.store.latest([alert.kpi], before=min(since, newest), strictly=True)
    first = before.get(alert.kpi)
    return (side(first.value) if first is not None else None) or "either"


def _change(alert: Alert, ctx: _Context) -> Iterator[Finding]:
    assert alert.kpi is not None and alert.change is not None
    rule = alert.change
    row = ctx.store.latest([alert.kpi]).get(alert.kpi)
    before = None
    if row is not None:
        # the newest value of the local day `days` days before the newest value's day, as
        # `compare:` of messages reads it: a cron's run that started a moment later that day,
        # or at the same local hour across a change of the clocks, still counts
        from kpi_collector.store.periods import compare_end

        end = compare_end(datetime.fromtimestamp(row.ts, UTC), rule.days, ctx.scope.tz)
        before = ctx.store.latest([alert.kpi], before=end, strictly=True).get(alert.kpi)
    if row is None or before is None:
        yield Finding(alert.key, None)
        return
    pct = _percent(row.value, before.value)
    fell = rule.below is not None and pct < rule.below
    active = fell or (rule.above is not None and pct > rule.above)
    both = rule.below is not None and rule.above is not None
    side = ("below" if fell else "above") if active and both else None
    # the baseline is the newest value of the day `days` days before: say the real span when the history
    # has a gap there (asked 2 days, compared with a value 5 days old)
    span = (row.ts - before.ts) / 86400
    days = (
        plural(rule.days, "day")
        if span < rule.days + 0.5
        else f"{plural(round(span), 'day')} (asked: {rule.days})"
    )
    # one decimal, or the digits that tell it from a bound it is not (-20.04% is not -20.0%)
    digits = 1
    while digits < 6 and any(
        b is not None and b != pct and signed(pct, digits) == signed(b, digits)
        for b in (rule.below, rule.above)
    ):
        digits += 1
    moved = f"changed {signed(pct, digits)}%"
    if before.value == 0 and pct != 0:  # from zero: any rise (fall) is past any bound
        moved = f"{'rose' if pct > 0 else 'fell'} from zero"
    elif math.isinf(pct):  # past the largest number (from 1e-320 to 5, say)
        moved = f"{'rose' if pct > 0 else 'fell'} by more than 1e308%"
    detail = (
        f"{ctx.title(alert.kpi)} {moved} in {days} "
        f"({ctx.value(alert.kpi, before.value)} → {ctx.value(alert.kpi, row.value)})"
    )
    yield Finding(alert.key, active, detail, side=side)


def _percent(current: float, baseline: float) -> float:
    """The change from `baseline` to `current` in percent (of the baseline's size); from a
    baseline of zero, any rise is +inf and any fall -inf (0 → 0 is 0), so a `change` rule
    fires for any move away from zero rather than never."""
    from kpi_collector.format import percent_change

    if baseline == 0:
        return 0.0 if current == 0 else math.copysign(math.inf, current)
    pct = percent_change(current, baseline)
    assert pct is not None  # a baseline that is not zero has a percentage
    return pct


def _failing(alert: Alert, ctx: _Context) -> Iterator[Finding]:
    assert alert.failing_runs is not None
    if alert.source and ctx.switched_off(alert.source):  # its last failures stay the newest
        yield Finding(alert.key, False, ctx.not_watched(alert.source))
        return
    names = [alert.source] if alert.source else [s.name for s in ctx.scope.sources if s.enabled]
    streaks = failing_streaks(ctx.store, names, depth=alert.failing_runs, reach=ALERT_REACH)
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
    if alert.kpi and ctx.switched_off(alert.kpi.partition(".")[0]):  # stale by choice
        yield Finding(alert.key, False, ctx.not_watched(alert.kpi))
        return
    from kpi_collector.run.complete_days import complete_day_kpis

    ids = [alert.kpi] if alert.kpi else ctx.watched_kpis(alert.source)
    latest = ctx.store.latest(ids)
    first_run = first_run_at(ctx.store)
    # a complete day's value (active_users) is stamped with the end of its day, which a run
    # stores on the day after: a day old at the next midnight, however well the runs go
    whole_days = complete_day_kpis(ctx.scope.sources, ctx.specs)
    for kpi in ids:
        limit = alert.stale_days * 86400 + (86400 if kpi in whole_days else 0)
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
        # with its zone: a team elsewhere reads the message too (07:00 CET, not 07:00)
        when = datetime.fromtimestamp(row.ts, ctx.scope.tz).strftime("%Y-%m-%d %H:%M %Z")
        yield Finding(key, ctx.now - row.ts > limit, f"{ctx.title(kpi)} was last updated {when}")


def _pending(alert: Alert, ctx: _Context) -> Iterator[Finding]:
    from kpi_collector.config.plain import parse_duration
    from kpi_collector.store.deliveries import oldest_pending

    if alert.destination in ctx.scope.disabled:  # its pending rows are never tried again
        assert alert.destination is not None
        name = alert.destination
        yield Finding(alert.key, False, ctx.not_watched(name, destination=True), about=name)
        return
    names = [alert.destination] if alert.destination else [d.name for d in ctx.scope.destinations]
    pending = pending_runs(ctx.store) if alert.pending_runs is not None else {}
    since = oldest_pending(ctx.store) if alert.pending_for is not None else {}
    for name in names:
        key = alert.key if alert.destination else f"{alert.key} [{name}]"
        if alert.pending_for is not None:
            # by time: runs that never try this destination (hourly source jobs) don't count
            start, period, error = since.get(name, (None, None, None))
            age = ctx.now - start if start is not None else 0.0
            active = start is not None and _lasted(age, parse_duration(alert.pending_for))
            # minutes under two hours: a `pending_for: 30m` alert was "pending for 0 h"
            if age < 2 * 3600:
                how_long = f"{age // 60:.0f} min"
            elif age < 2 * 86400:
                how_long = f"{age / 3600:.0f} h"
            else:
                how_long = f"{age / 86400:.0f} days"
            waiting, limit = start is not None, alert.pending_for
        else:
            assert alert.pending_runs is not None
            runs, period, error = pending.get(name, (0, None, None))
            active = runs >= alert.pending_runs
            how_long = f"{runs} runs"
            waiting, limit = runs > 0, f"{alert.pending_runs} runs"
        if active:
            why = f": {error}" if error else ""
            yield Finding(
                key,
                True,
                f"the delivery of {period} to {name} has been pending for {how_long}{why}",
                about=name,
            )
        elif waiting:  # pending, not long enough to fire: never "went out"
            yield Finding(
                key,
                False,
                f"the delivery of {period} to {name} is pending for {how_long} "
                f"(the alert fires at {limit})",
                about=name,
            )
        else:
            yield Finding(key, False, f"deliveries to {name} went out", about=name)


_RULES = {
    "threshold": _threshold,
    "change": _change,
    "failing": _failing,
    "stale": _stale,
    "pending": _pending,
}


# store queries --------------------------------------------------------------------------------


# checking and telling ---------------------------------------------------------------------------


def message(finding: Finding, active: bool, *, reminder: bool = False) -> str:
    """The text a destination gets, redacted: an alert's `name:` or a KPI's title written
    with a secret's `${VAR}` shows it as ***."""
    detail = f" — {finding.detail}" if finding.detail else ""
    if reminder:
        return redact(f"🔁 Still firing: {finding.key}{detail}")
    told = "🚨 Alert" if active else "✅ Resolved"
    return redact(f"{told}: {finding.key}{detail}")


def is_firing(alerts: Sequence[Alert], state: AlertState, store: HistoryStore, now: float) -> bool:
    """Whether the alert whose own condition row is `state` fired at the newest check (run)
    up to `now`: its condition true and held for its rule's `for:` then; one still pending
    was told to nobody, even when its `for:` passes before the next check (a row of no rule
    in `alerts`: as it says)."""
    from kpi_collector.store.runs import previous_run_start

    alert = rule_of(alerts, state.alert)
    if alert is None:
        return state.active
    checked = previous_run_start(store, math.nextafter(now, math.inf))
    return _firing(alert, state, store, now if checked is None else checked)


def rule_of(alerts: Sequence[Alert], key: str) -> Alert | None:
    """The alert of `alerts` whose state row is `key` (its key, or its key and a subject),
    None for the row of an alert no longer in the config (kept until the next check)."""
    for alert in alerts:  # its own key first: `name: "x [y]"` is no subject of an alert `x`
        if key == alert.key:
            return alert
    for alert in alerts:
        if key.startswith(f"{alert.key} [") and key.endswith("]"):
            return alert
    return None


def _firing(alert: Alert, own: AlertState | None, store: HistoryStore, now: float) -> bool:
    """Whether a condition that is true (since `own.since`) has held long enough to fire:
    `for: N` checks in a row (the runs since it became true, this one included) or `for: 6h`."""
    if own is None or not own.active:
        return False
    if alert.hold_seconds is not None:
        return _lasted(now - own.since, alert.hold_seconds)
    if alert.hold_checks is not None and alert.hold_checks > 1:
        from kpi_collector.store.runs import runs_between

        return runs_between(store, own.since, now) >= alert.hold_checks
    return True


def _lasted(elapsed: float, asked: float) -> bool:
    """Whether `elapsed` seconds between two checks count as the `asked` duration (`for: 1d`,
    `repeat: 1d`, `pending_for: 1d`): runs of a daily cron start a moment earlier or later
    each day, and 23 hours apart across the spring change of the clocks; a tenth of the
    duration, at most 90 minutes, less still counts (else a reminder skipped every other
    day)."""
    return elapsed >= asked - min(asked / 10, 5400.0)


def _held_until_now(alert: Alert, own: AlertState | None, store: HistoryStore, now: float) -> bool:
    """Whether an alert with a `for:` hold fires at this check and did not at the one before
    (the newest run started before `now`): the transition from pending to firing, which is
    a transition even when no `notify` destination is told."""
    from kpi_collector.store.runs import previous_run_start

    if alert.hold_seconds is None and (alert.hold_checks or 1) <= 1:
        return False
    if own is None or not own.active or own.since >= now:  # became true at this very check
        return False
    if not _firing(alert, own, store, now):
        return False
    previous = previous_run_start(store, now)
    return previous is None or previous < own.since or not _firing(alert, own, store, previous)


async def check_alerts(
    store: HistoryStore,
    alerts: Sequence[Alert],
    scope: AlertScope,
    result: RunResult | None = None,
    *,
    now: float | None = None,
) -> list[Transition]:
    """Evaluate `alerts` against `store` and tell each `notify` destination about every alert
    that fired or resolved since it was last told. `now` (UTC epoch seconds) defaults to the
    run's start. Send failures land in `result.delivery_errors` (as "<destination> (alerts)")
    and are retried on the next check; nothing is raised for them.

    A condition that becomes true fires once it has held for the alert's `for:`; a firing alert
    with `repeat:` reminds each destination again after that long; a silenced alert (`kpi
    alerts silence`) tells no one until the silence ends. Messages for one destination from
    one check go out as one message."""
    from kpi_collector.store.alert_states import silences

    if not alerts:
        return []
    if now is None:  # as of the run: "not updated for N days" counts from the run's start
        now = result.started_at.timestamp() if result is not None else time.time()
    findings = evaluate(scope, store, alerts, now=now)
    states = {(s.alert, s.destination): s for s in alert_states(store)}
    silenced = silences(store, now=now)
    targets = {d.name: d for d in scope.destinations}
    transitions: list[Transition] = []
    # destination -> (transition, text, the message's identity: stable while it is pending)
    outbox: dict[str, list[tuple[Transition, str, str]]] = {}
    for alert, finding in findings:
        if finding.active is None:
            continue
        before = states.get((finding.key, OWN))
        own = before
        changed = own is None or own.active != finding.active
        switched = False  # true on its other side now (a rule with two)
        if changed:
            save_alert_state(
                store,
                finding.key,
                OWN,
                active=finding.active,
                message=finding.detail,
                now=now,
                side=finding.side,
            )
            own = AlertState(
                finding.key, OWN, finding.active, now, finding.detail, now, finding.side
            )
        elif own is not None and finding.active and own.side != finding.side:
            # a two-sided rule true on its other side now: still true since then (its `for:`
            # counts on), but what it says is the new side
            save_alert_state(
                store,
                finding.key,
                OWN,
                active=True,
                message=finding.detail,
                now=own.since,
                side=finding.side,
            )
            switched = before is not None and before.side is not None
            own = AlertState(finding.key, OWN, True, own.since, finding.detail, now, finding.side)
        firing = _firing(alert, own, store, now)
        transition = Transition(
            finding.key,
            firing,
            message(finding, firing),
            pending=bool(finding.active) and not firing,
            side=finding.side if firing else None,
        )
        if finding.key not in silenced and alert.key not in silenced:
            for name in dict.fromkeys(alert.notify):  # each destination once
                if name == finding.about:  # a destination whose deliveries fail can't carry it
                    continue
                if name in scope.disabled:  # switched off: its state stays, told when back on
                    continue
                told = states.get((finding.key, name))
                was_told = told is not None and told.active
                text = transition.text
                identity = f"{finding.key}|{firing}|{own.since if own else now}"
                # told it fired on one side of a two-sided rule, firing on the other now: a
                # new alert with the new side (a row from before sides were kept has none)
                other_side = (
                    firing
                    and told is not None
                    and told.side is not None
                    and finding.side is not None
                    and told.side != finding.side
                )
                if other_side:
                    identity += f"|{finding.side}"
                elif was_told == firing:
                    repeat = alert.repeat_seconds
                    if not (
                        firing and repeat and told is not None and _lasted(now - told.since, repeat)
                    ):
                        continue
                    text = message(finding, True, reminder=True)
                    identity = f"{finding.key}|reminder|{told.since if told else now}"
                outbox.setdefault(name, []).append((transition, text, identity))
        quiet_start = before is None and not finding.active  # a rule that has never been true
        told_now = any(t is transition for items in outbox.values() for t, _, _ in items)
        if (
            (changed and not quiet_start)
            or (switched and firing)
            or told_now
            or _held_until_now(alert, own, store, now)
        ):
            transitions.append(transition)
    for name, items in outbox.items():
        text = (
            items[0][1]
            if len(items) == 1
            else "\n".join([f"{len(items)} alert updates:", *(t for _, t, _ in items)])
        )
        identity = "\n".join(sorted(i for _, _, i in items))
        token = message_id.set(hashlib.sha256(f"{name}\n{identity}".encode()).hexdigest()[:32])
        try:
            error = await _send(targets.get(name), name, text)
        finally:
            message_id.reset(token)
        for transition, sent_text, _ in items:
            if error is None:
                save_alert_state(
                    store,
                    transition.key,
                    name,
                    active=transition.active,
                    message=sent_text,
                    now=now,
                    side=transition.side,
                )
                transition.sent.append(name)
            else:
                transition.errors[name] = error
    prune_alert_states(store, {f.key for _, f in findings})
    for transition in transitions:
        _log(transition)
        if result is not None:
            for name, error in transition.errors.items():
                label = f"{name} (alerts)"
                earlier = result.delivery_errors.get(label)
                entry = f"{redact(transition.key)}: {error}"
                result.delivery_errors[label] = f"{earlier}; {entry}" if earlier else entry
                result.delivery_pending.add(label)  # told again on the next run
    return transitions


TEST_MESSAGE = "🧪 Test from kpi-collector: alerts reach this destination."


async def send_test(destinations: Sequence[Destination]) -> dict[str, str]:
    """Send `TEST_MESSAGE` through each destination; returns why it failed, by name."""
    errors = await asyncio.gather(*(_send(d, d.name, TEST_MESSAGE) for d in destinations))
    return {d.name: e for d, e in zip(destinations, errors, strict=True) if e is not None}


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


def _log(transition: Transition) -> None:
    where = f" (sent to {', '.join(transition.sent)})" if transition.sent else ""
    failed = "; ".join(f"{n}: {e}" for n, e in transition.errors.items())
    if transition.pending:
        log.info("alert pending (its `for:` has not passed): %s", redact(transition.key))
    elif transition.active:
        log.warning("alert firing: %s%s", transition.text, where)
    else:
        log.info("alert resolved: %s%s", transition.text, where)
    if failed:
        log.warning("alert not sent: %s: %s", redact(transition.key), failed)
