"""Backfill: import past values from sources that can give them, stored with their real
dates, marked as backfilled, never duplicated and never over a value collected live.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from kpi_collector.collect.http import HttpClient
from kpi_collector.errors import KpiError
from kpi_collector.format import plural
from kpi_collector.secrets import redact
from kpi_collector.sources.base import SourceContext
from kpi_collector.store import StoredObservation
from kpi_collector.store.history import unstorable
from kpi_collector.store.limits import cut

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from kpi_collector.config.models import Defaults, KpiSpec
    from kpi_collector.sources.base import Source
    from kpi_collector.store import HistoryStore

DEFAULT_DAYS = 365


@dataclass
class Coverage:
    """The days one source's backfill gave values for, against the days asked for, and why
    the two differ (`stopped`: the service's own reasons, else what the values show)."""

    asked_first: date
    asked_last: date
    first: date | None = None  # None: the service gave no values in the range
    last: date | None = None
    stopped: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.first == self.asked_first and self.last == self.asked_last

    def describe(self) -> str:
        """One line: `2025-01-01 to 2026-03-09` and, when that is less than asked, why."""
        if self.first is None or self.last is None:
            span = f"no values from {self.asked_first} to {self.asked_last}"
        else:
            span = f"{self.first} to {self.last}"
            if not self.complete:
                span += f" of {self.asked_first} to {self.asked_last}"
        return span + (f" ({'; '.join(self.stopped)})" if self.stopped else "")


@dataclass
class BackfillReport:
    """What a backfill did: values added per source, the days each source covered and why it
    stopped there, sources that cannot backfill, errors (by source name)."""

    added: dict[str, int] = field(default_factory=dict)
    covered: dict[str, Coverage] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    derived: int = 0  # values of derived KPIs (formulas) added for the days backfilled
    days: tuple[date, date] | None = None  # the local days asked for, first and last


async def abackfill(
    store: HistoryStore,
    sources: Sequence[Source],
    *,
    defaults: Defaults,
    tz: ZoneInfo,
    base_dir: Path,
    since: date | None = None,
    now: datetime | None = None,
    until: date | None = None,
) -> BackfillReport:
    """Ask each source that can backfill for its daily values from `since` (default: a year
    before `now`, in `tz`) and store those of the days `since` to yesterday, or to `until`
    when earlier (complete days: a source's value of today so far, or of days not asked
    for, is left out) with their own timestamps. Sources run concurrently and fail alone:
    errors land in the report, by source name, never raised."""
    now = now or datetime.now(UTC)
    since = since or (now.astimezone(tz).date() - timedelta(days=DEFAULT_DAYS))
    yesterday = now.astimezone(tz).date() - timedelta(days=1)
    if until is not None:
        yesterday = min(yesterday, until)
    report = BackfillReport(days=(since, yesterday))
    client = HttpClient(concurrency=defaults.concurrency, per_host=defaults.per_host)

    async def one(source: Source) -> None:
        if not source.can_backfill:
            report.unsupported.append(source.name)
            return
        timeout = source.timeout or defaults.timeout
        retries = defaults.retries if source.retries is None else source.retries
        max_bytes = source.max_bytes or defaults.max_bytes
        ctx = SourceContext(client, timeout, retries, tz, now, base_dir, max_bytes)
        points: list[StoredObservation] = []
        seen: set[date] = set()
        unstored: list[str] = []  # values the store cannot keep: NaN, inf, an over-long id
        try:
            async for obs in source.backfill(ctx, since):
                day = obs.ts.astimezone(tz).date()
                if not since <= day <= yesterday:
                    # complete past days only: today's value so far is a partial day (a `sum`
                    # would count it again beside the live runs'), and nothing was asked
                    # before `since`
                    continue
                point = StoredObservation(
                    kpi=f"{source.name}.{obs.metric}",
                    ts=obs.ts.timestamp(),
                    value=float(obs.value),
                    source=source.name,
                )
                problem = unstorable(point.kpi, point.value, point.source)
                if problem is not None:
                    unstored.append(f"{cut(point.kpi, 60)} on {day}: {problem}")
                    continue
                seen.add(day)
                points.append(point)
        except KpiError as exc:
            report.errors[source.name] = redact(str(exc))
            return
        except Exception as exc:
            report.errors[source.name] = redact(f"{type(exc).__name__}: {exc}")
            return
        report.covered[source.name] = _coverage(since, yesterday, seen, ctx.limits)
        try:
            added = await asyncio.to_thread(store.add_observations, points, tz=tz)
        except KpiError as exc:  # the store refused this source's values: the others go on
            report.errors[source.name] = redact(f"{plural(len(points), 'value')} not stored: {exc}")
            return
        report.added[source.name] = added
        if unstored:
            listed = "; ".join(unstored[:3]) + ("; ..." if len(unstored) > 3 else "")
            report.errors[source.name] = redact(
                f"{plural(len(unstored), 'value')} not stored: {listed}"
            )

    try:
        await asyncio.gather(*(one(s) for s in sources))
    finally:
        await client.close()
    return report


def _coverage(since: date, until: date, seen: set[date], limits: list[str]) -> Coverage:
    """The covered days and the reasons: the source's own, else what the values show."""
    coverage = Coverage(since, until, min(seen, default=None), max(seen, default=None))
    coverage.stopped = list(limits)
    if limits or coverage.complete:
        return coverage
    if coverage.first is None:
        coverage.stopped.append("the service has no values for these days")
        return coverage
    if coverage.first > since:
        coverage.stopped.append(f"the service has nothing before {coverage.first}")
    if coverage.last is not None and coverage.last < until:
        coverage.stopped.append(f"the service has nothing after {coverage.last} yet")
    return coverage


def backfill_formulas(
    store: HistoryStore,
    kpis: Mapping[str, KpiSpec],
    *,
    tz: ZoneInfo,
    since: date,
    until: date,
) -> int:
    """Give derived KPIs (formulas) their values for the local days `since`..`until`: each
    day where every input has a stored value (the day's values combined by the input's
    `agg`, as `kpi history --period day` shows them), stamped at the day's end. A day where
    the formula fails (division by zero) gets no value, and a day that has one keeps it
    (`HistoryStore.add_observations`). Returns how many were added; raises StoreError."""
    from kpi_collector.config.formula import Formula, evaluate_formulas, order_formulas
    from kpi_collector.sources._service import day_end
    from kpi_collector.store.periods import aggregate, local_midnight

    formulas = {k: Formula.parse(s.formula) for k, s in kpis.items() if s.formula}
    if not formulas or since > until:
        return 0
    inputs = {i for f in formulas.values() for i in f.inputs} - formulas.keys()
    order = order_formulas(formulas, inputs)
    by_day: dict[date, dict[str, list[float]]] = {}
    rows = store.rows(
        sorted(inputs),
        since=local_midnight(since, tz),
        until=local_midnight(until + timedelta(days=1), tz),
    )
    for kpi, ts, value in rows:
        day = datetime.fromtimestamp(ts, tz).date()
        by_day.setdefault(day, {}).setdefault(kpi, []).append(value)
    points = []
    for day, found in sorted(by_day.items()):
        values = {
            kpi: aggregate(found[kpi], kpis[kpi].agg if kpi in kpis else "last") for kpi in found
        }
        computed, _ = evaluate_formulas(formulas, values, order)
        stamp = day_end(day, tz).timestamp()
        points += [StoredObservation(k, stamp, v, "formula") for k, v in computed.items()]
    return store.add_observations(points, tz=tz)
