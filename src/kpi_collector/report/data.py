"""What the dashboard, the JSON API, `/metrics` and the HTML report show, as plain documents.

Read only over the history store (the derived `rollup` table is the one thing it keeps up to
date). Period values come from `HistoryStore.series` or from the rollup, which computes them
the same way (each KPI's `agg`, the config's time zone), so they equal `kpi history`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, TypeVar, overload

from kpi_collector.format import format_change, format_value, percent_change
from kpi_collector.secrets import redact
from kpi_collector.store.periods import PERIODS, next_period, period_start

if TYPE_CHECKING:
    from kpi_collector.config import Config
    from kpi_collector.store import HistoryStore, RunRecord

log = logging.getLogger(__name__)
T = TypeVar("T")

# The documents (JSON-bound: /api/kpis, /api/kpis/{id}/series, /api/runs, the pages' data).
# Times are ISO 8601 strings in the config's time zone, periods the ISO date of their start.


class KpiDoc(TypedDict):
    """How a KPI is shown, from its `kpis:` entry (the id as title when it has none)."""

    id: str
    title: str
    unit: str | None
    description: str | None
    target: float | None
    agg: str
    higher_is_better: bool
    source: str  # the part of the id before the first dot
    group: str | None  # its `group:` (a section heading), None without one
    hidden: bool  # `hidden: true`: left off the overview page


class Tile(KpiDoc):
    """One KPI on the overview: its newest period's value against the period before."""

    period: str | None  # the newest period with a value (None: only older than the sparkline)
    value: float | None
    value_text: str  # formatted with the unit; "no data" without a value
    previous: float | None  # the value of the period before `period`
    previous_period: str | None
    #: where `previous` ends when `period` is unfinished (today, this week) and the KPI's agg
    #: grows or shrinks as a period goes on (sum, max, min): `previous` is then the value of
    #: `previous_period` up to the same point (ISO time, exclusive), like with like; None: the
    #: whole period (also when that point is past its end, as 31 March is for February)
    previous_until: str | None
    change: float | None  # value - previous
    change_pct: float | None
    change_text: str
    progress: float | None  # value / target
    sparkline: list[float | None]  # one value per period of `OverviewDoc.periods`
    updated_at: str | None  # when the newest value was collected
    stale: bool  # older than its source's schedule allows (see `stale_after`)
    status: str  # "failing" (in the newest run), "stale", "no data" or "ok"
    error: str | None  # why it failed in the newest run (its own or its source's error)


class RunErrorDoc(TypedDict):
    """One error of a run (`store.history.RunError`), its message redacted."""

    source: str
    kpi: str | None
    message: str
    transient: bool


class RunDoc(TypedDict):
    """One run (`store.history.RunRecord`); `duration` in seconds."""

    id: int
    started_at: str
    finished_at: str | None
    duration: float | None
    status: str
    trigger: str
    n_values: int
    n_errors: int
    errors: list[RunErrorDoc]


class SourceStatusDoc(TypedDict):
    """A source's state on the overview: ok, failing, stale, no data or disabled."""

    name: str
    type: str | None  # "formula": a derived KPI (by its id); None: a source since removed
    status: str
    updated_at: str | None  # its newest value
    error: str | None  # from the newest run


class SchedulerDoc(TypedDict):
    state: str
    beat_at: str
    next_run_at: str | None


class RunInProgressDoc(TypedDict):
    started_at: str | None
    beat_at: str | None  # the run lock holder's last heartbeat
    detail: str | None


class AlertDoc(TypedDict):
    alert: str
    message: str
    since: str | None


class SilenceDoc(TypedDict):
    """An alert silenced (`kpi alerts silence`) until `until` (ISO, the config's zone)."""

    alert: str
    until: str | None


class JobDoc(TypedDict):
    """A scheduled job's state: `last_success` in UTC epoch seconds (None: never)."""

    job: str
    last_success: float | None
    last_status: str | None
    overdue: bool
    not_run_yet: bool  # never ran, and no fire time since the store was created has passed
    running: bool  # its run is in progress (and beating)
    next_fire: str | None


class HealthDoc(TypedDict):
    """The collector's health (`kpi validate --health`), texts redacted."""

    ok: bool
    problems: list[str]
    warnings: list[str]
    scheduler: SchedulerDoc | None  # None: no `kpi schedule` ever ran on this store
    run_in_progress: RunInProgressDoc | None
    alerts: list[AlertDoc]
    silences: list[SilenceDoc]
    jobs: list[JobDoc]


class SectionDoc(TypedDict):
    """A `group:` of the overview (None: the KPIs without one) and its KPI ids, in order."""

    group: str | None
    kpis: list[str]


class OverviewDoc(TypedDict):
    """Every KPI's tile, in display order by section, with the newest run, sources and health."""

    title: str  # the config's `title:`, else "KPIs"
    generated_at: str
    timezone: str
    period: str  # day, week or month
    since: str  # the first sparkline period
    periods: list[str]  # the sparkline's periods, oldest first
    north_star: str | None
    last_run: RunDoc | None
    sources: list[SourceStatusDoc]
    health: HealthDoc | None  # None for a single-KPI overview or when it cannot be read
    sections: list[SectionDoc]  # groups in config order, then the KPIs without a group
    annotations: list[NoteDoc]  # the notes of the sparklines' periods (`at`: their period)
    kpis: list[Tile]


class PointDoc(TypedDict):
    """One period's value; `at` (comparison windows only): the period it is drawn against."""

    period: str
    value: float
    text: str
    at: NotRequired[str]
    #: today's period of a sum, max or min (RUNNING_AGGS): not over, its value so far (shown
    #: "(so far)": the window before, beside it, has whole periods)
    partial: NotRequired[bool]


class NoteDoc(TypedDict):
    """A dated note (`kpi annotate`): `day` an ISO date in the config's time zone."""

    id: int
    day: str
    text: str
    at: NotRequired[str]  # in a series: the start of the period the day falls in (its x)


class SeriesDoc(KpiDoc):
    """One KPI per period, with the window before, the same window a year earlier and the
    notes about the days of the window (markers on its chart)."""

    period: str
    timezone: str
    since: str | None
    until: str  # the window's last period (today's): a chart's x runs from `since` to it
    points: list[PointDoc]
    previous: list[PointDoc]
    year_ago: list[PointDoc]
    annotations: list[NoteDoc]


class PendingDeliveryDoc(TypedDict):
    """A delivery not done: `status` "pending" (retried) or "failed" (refused for good)."""

    destination: str
    period: str
    run_id: int | None
    status: str
    attempts: int
    last_error: str | None
    created_at: str | None
    updated_at: str | None
    parts_sent: str | None  # a split message part-way: "2/3 parts sent"


class RunsDoc(TypedDict):
    """The newest runs, newest first, and the deliveries pending or refused for good."""

    timezone: str
    runs: list[RunDoc]
    deliveries: list[PendingDeliveryDoc]


#: the aggs whose period value grows or shrinks as the period goes on (a sum so far is less
#: than the whole day's): an unfinished period is compared with the same part of the one before
RUNNING_AGGS = frozenset({"sum", "max", "min"})
#: the `source` of a derived KPI's values and errors in the store (see `Pipeline._derive`)
FORMULA = "formula"
#: how many periods the overview's sparklines show
SPARK_PERIODS = {"day": 30, "week": 26, "month": 24}
#: a value is stale once its schedule has missed this many runs in a row (1.5: the next run
#: is half an interval late), never sooner than MIN_STALE_AFTER
STALE_INTERVALS = 1.5
MIN_STALE_AFTER = timedelta(hours=1)


def stale_after(expr: str, zone: Any, now: float) -> timedelta:
    """How old a value collected on cron `expr` may get before it is stale: 1.5 times the
    longest gap between the schedule's next runs (36 h for a daily run, 10.5 days for a
    weekly one), looked at over the next 62 days or 64 runs."""
    import itertools
    from datetime import datetime

    from kpi_collector.config.cron import Cron

    cron = Cron(expr, zone)
    start = datetime.fromtimestamp(now, cron.tz)
    horizon = start + timedelta(days=62)
    runs: list[datetime] = []
    when = cron.next_after(start)
    while when is not None and when <= horizon and len(runs) < 64:
        runs.append(when)
        when = cron.next_after(when)
    gaps = [b.timestamp() - a.timestamp() for a, b in itertools.pairwise(runs)]
    if not gaps:  # fires at most once in two months: its one gap is all there is
        previous = cron.previous(start)
        if previous is None or not runs:
            return timedelta(days=366)
        gaps = [runs[0].timestamp() - previous.timestamp()]
    return max(timedelta(seconds=STALE_INTERVALS * max(gaps)), MIN_STALE_AFTER)


@overload
def iso(ts: float, zone: Any) -> str: ...
@overload
def iso(ts: None, zone: Any) -> None: ...
@overload
def iso(ts: float | None, zone: Any) -> str | None: ...
def iso(ts: float | None, zone: Any) -> str | None:
    """UTC epoch seconds as an ISO 8601 time in `zone`, to the second; None stays None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, zone).isoformat(timespec="seconds")


def shift_periods(start: date, period: str, count: int) -> date:
    """The start of the period `count` periods before (negative: after) the one at `start`."""
    start = period_start(start, period)
    if period == "day":
        return start - timedelta(days=count)
    if period == "week":
        return start - timedelta(weeks=count)
    months = start.year * 12 + start.month - 1 - count
    return date(months // 12, months % 12 + 1, 1)


def periods_between(start: date, end: date, period: str) -> int:
    """How many periods from the one at `start` to the one at `end` (excluded): 2 from
    1 February to 1 April, whatever the months' lengths."""
    start, end = period_start(start, period), period_start(end, period)
    if period == "day":
        return (end - start).days
    if period == "week":
        return (end - start).days // 7
    return (end.year - start.year) * 12 + end.month - start.month


def year_earlier(day: date, period: str) -> date:
    """The same period a year before: 52 weeks for weeks (same weekday), else the same date."""
    if period == "week":
        return day - timedelta(weeks=52)
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


class DashboardData:
    """The documents behind every page, built from one config and its store."""

    def __init__(
        self,
        config: Config,
        *,
        store: HistoryStore | None = None,
        clock: Callable[[], float] = time.time,
        stale_after: timedelta | None = None,
        cache: bool = True,
    ) -> None:
        from kpi_collector.store import HistoryStore

        self.config = config
        self.store = store or HistoryStore(config.store_url)
        self.zone = config.tz
        self.agg = {k: spec.agg for k, spec in config.kpis.items()}
        self.clock = clock
        self.stale_after = stale_after  # None: from each source's schedule
        self._stale_by_cron: dict[str, float] = {}
        self._schedules = {s.name: s.schedule for s in config.sources if s.schedule}
        from kpi_collector.run.complete_days import complete_day_kpis

        #: KPIs stamped with the end of the day they describe, up to a day before the run
        #: that stored them (`Source.complete_days`): their age counts a day less
        self._whole_days = complete_day_kpis(config.sources, config.kpis)
        self.rollup_error: str | None = None
        self._lock = threading.Lock()
        self._cache: dict[tuple[Any, ...], Any] | None = {} if cache else None

    def close(self) -> None:
        """Close the store's connections."""
        self.store.close()

    # the rollup -------------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Bring the rollup up to date; False (and raw queries) where the store cannot be written."""
        from kpi_collector.store import rollup

        with self._lock:
            try:
                rollup.catch_up(self.store.engine, self.zone)
            except Exception as exc:  # a read-only store still works, only slower
                message = redact(str(getattr(exc, "orig", None) or exc).splitlines()[0])
                if self.rollup_error != message:
                    log.warning("cannot update the rollup (%s); reading raw observations", message)
                self.rollup_error = message
                return False
            self.rollup_error = None
            return True

    def version(self) -> tuple[Any, ...]:
        """What the documents depend on: newest observation, newest run, pending deliveries."""
        from kpi_collector.store.runs import data_version

        return data_version(self.store)

    def cached(self, key: tuple[Any, ...], build: Callable[[], T]) -> T:
        """`build()`, reused while the store is unchanged (and for at most five minutes)."""
        if self._cache is None:
            return build()
        full = (*key, self.version(), int(self.clock() // 300))
        with self._lock:
            if full in self._cache:
                return self._cache[full]
        doc = build()
        with self._lock:
            if len(self._cache) >= 32:
                self._cache.pop(next(iter(self._cache)))
            self._cache[full] = doc
        return doc

    def _periods(
        self, period: str, since: date, kpis: Sequence[str] | None = None
    ) -> tuple[list[Any], dict[str, float] | None]:
        """Rows (kpi, start ordinal, value) per KPI and period from `since` on, and when each
        KPI got its newest value (None where only raw observations could be read)."""
        from kpi_collector.store import rollup

        if self.refresh():
            engine = self.store.engine
            rows = rollup.read_flat(
                engine, self.zone, period, since=since, agg=self.agg, kpis=kpis, with_ts=False
            )
            today = datetime.fromtimestamp(self.clock(), self.zone).date()
            recent = max(since, shift_periods(today, "month", 1))  # this month and the last
            stamps = rollup.newest_timestamps(engine, self.zone, recent)
            older = list({r[0] for r in rows if r[0] not in stamps})  # nothing for two months
            stamps.update({k: r.ts for k, r in self.store.latest(older).items()} if older else {})
            return rows, stamps
        series = self.store.series(kpis, period=period, since=since, tz=self.zone, agg=self.agg)
        return [(k, d.toordinal(), v) for k, pts in series.items() for d, v in pts], None

    # KPIs ---------------------------------------------------------------------------------------

    def order(self, ids: Sequence[str]) -> list[str]:
        """`ids` in display order, as everywhere else (`config.models.display_order`)."""
        return self.config.order(ids)

    def spec(self, kpi: str) -> KpiDoc:
        """How `kpi` is shown: its `kpis:` entry, or defaults (the id as title)."""
        spec = self.config.kpis.get(kpi)
        return {
            "id": kpi,
            "title": (spec.title if spec and spec.title else kpi),
            "unit": spec.unit if spec else None,
            "description": spec.description if spec else None,
            "target": spec.target if spec else None,
            "agg": spec.agg if spec else "last",
            "higher_is_better": spec.higher_is_better if spec else True,
            "source": kpi.partition(".")[0],
            "group": spec.group if spec else None,
            "hidden": spec.hidden if spec else False,
        }

    def overview(self, period: str = "day", *, only: Sequence[str] | None = None) -> OverviewDoc:
        """Every KPI's current value, change against the previous period, sparkline, target
        (`only`: just these KPIs)."""
        if period not in PERIODS:
            raise ValueError(f"unknown period {period!r}; use day, week or month")
        now = self.clock()
        today = datetime.fromtimestamp(now, self.zone).date()
        count = SPARK_PERIODS[period]
        since = shift_periods(today, period, count - 1)
        rows, stamps = self._periods(period, since, only)
        starts = [shift_periods(today, period, count - 1 - i) for i in range(count)]
        slot = {d.toordinal(): i for i, d in enumerate(starts)}
        labels = [d.isoformat() for d in starts]
        sparks: dict[str, list[float | None]] = {}
        for kpi, start, number in rows:
            spark = sparks.get(kpi)
            if spark is None:
                spark = sparks[kpi] = [None] * count
            at = slot.get(start)
            if at is not None:
                spark[at] = number
        sections = self.config.sections(
            list(only) if only is not None else [*self.config.kpi_ids(), *self.config.kpis, *sparks]
        )
        ids = [kpi for _, members in sections for kpi in members]
        missing = [k for k in ids if k not in sparks]
        older = self.store.latest(missing) if missing else {}
        older_values = self._newest_period_values(older, period)
        lone = [k for k in ids if sum(v is not None for v in sparks.get(k, ())) == 1]
        before = self._period_before(lone, period, since)
        runs = self.store.runs(1)
        standing = self._standing_failures()
        failures = {**standing, **self._failures(runs[0] if runs else None)}
        tiles: list[Tile] = []
        raw_latest: dict[str, Any] | None = None
        #: the KPIs whose unfinished period is compared with part of the one before: (its
        #: start, the point it ends, UTC epoch seconds)
        cuts: dict[str, tuple[date, float]] = {}
        for kpi in ids:
            spec = self.spec(kpi)
            spark = sparks.get(kpi)
            known = [i for i, v in enumerate(spark) if v is not None] if spark else []
            unit = spec["unit"]
            value: float | None = None
            previous: float | None = None
            updated: float | None = None
            shown: str | None = None
            previous_period: str | None = None
            if spark and known:
                value = spark[known[-1]]
                updated = stamps.get(kpi) if stamps is not None else None
                shown = labels[known[-1]]
                if len(known) > 1:
                    previous = spark[known[-2]]
                    previous_period = labels[known[-2]]
                elif kpi in before:  # the period before it is older than the sparkline
                    start_before, previous = before[kpi]
                    previous_period = start_before.isoformat()
            elif kpi in older:
                row = older[kpi]
                value, updated = older_values.get(kpi, row.value), row.ts
            if (
                previous_period is not None
                and shown == labels[-1]  # today's period: not over yet
                and spec["agg"] in RUNNING_AGGS
            ):
                start = date.fromisoformat(previous_period)
                cut = self._same_point(start, date.fromisoformat(shown), period, now)
                if cut is not None:
                    cuts[kpi] = (start, cut)
            if stamps is None and known:  # raw-query fallback: no timestamps with the periods
                if raw_latest is None:
                    raw_latest = self.store.latest(ids)
                updated = raw_latest[kpi].ts if kpi in raw_latest else None
            target = spec["target"]
            stale = updated is None or now - updated > self._stale_seconds(kpi, now)
            error = failures.get(kpi)
            if error is None and not self._is_formula(kpi):
                error = failures.get(spec["source"])
            if error is not None:
                status = "failing"
            elif value is None:
                status = "no data"
            else:
                status = "stale" if stale else "ok"
            tiles.append(
                Tile(
                    **spec,
                    period=shown,
                    value=value,
                    value_text=format_value(value, unit) if value is not None else "no data",
                    previous=previous,
                    previous_period=previous_period,
                    previous_until=None,
                    change=value - previous if value is not None and previous is not None else None,
                    change_pct=percent_change(value, previous) if value is not None else None,
                    change_text=format_change(value, previous, unit) if value is not None else "",
                    progress=value / target if value is not None and target else None,
                    sparkline=spark or [None] * count,
                    updated_at=iso(updated, self.zone),
                    stale=stale,
                    status=status,
                    error=error,
                )
            )
        self._compare_same_part(tiles, cuts)
        newest = {t["id"]: t for t in tiles}
        last_run = self._run(runs[0]) if runs else None
        return {
            "title": self.config.title,
            "generated_at": iso(now, self.zone),
            "timezone": self.config.timezone,
            "period": period,
            "since": since.isoformat(),
            "periods": labels,
            "north_star": self.config.settings.north_star,
            "last_run": last_run,
            "sources": self._sources(newest, runs[0] if runs else None, now, standing),
            "health": self.health() if only is None else None,
            "sections": [{"group": group, "kpis": members} for group, members in sections],
            "annotations": [
                {**note, "at": period_start(date.fromisoformat(note["day"]), period).isoformat()}
                for note in self.notes(since, today)
            ],
            "kpis": tiles,
        }

    def _period_before(
        self, kpis: Sequence[str], period: str, start: date
    ) -> dict[str, tuple[date, float]]:
        """Each KPI's newest period before `start` (a period's first day) that has a value, and
        that value by its `agg`: {kpi: (period start, value)}; KPIs without one are left out."""
        from kpi_collector.store.periods import local_midnight

        if not kpis:
            return {}
        newest = self.store.latest(kpis, before=local_midnight(start, self.zone), strictly=True)
        out: dict[str, tuple[date, float]] = {}
        for kpi, row in newest.items():
            points = self._periods_from(kpi, row.ts, period)
            if points and points[0][0] < start:  # the period of `row`, whole
                out[kpi] = points[0]
        return out

    def _same_point(self, before: date, current: date, period: str, now: float) -> float | None:
        """The moment (UTC epoch seconds) as far into the period starting `before` as `now` is
        into the one starting `current`, by the local clock (a day that changed the clocks
        included); None where that is at or past the end of `before`'s period."""
        from datetime import time as clock_time

        local = datetime.fromtimestamp(now, self.zone).replace(tzinfo=None)
        into = local - datetime.combine(current, clock_time())
        point = datetime.combine(before, clock_time()) + into
        if point >= datetime.combine(next_period(before, period), clock_time()):
            return None
        return point.replace(tzinfo=self.zone).timestamp()

    def _compare_same_part(self, tiles: list[Tile], cuts: dict[str, tuple[date, float]]) -> None:
        """Compare each tile of `cuts` ({kpi: (its previous period's start, the point)}) with
        the value of that period's observations before the point, by its agg (one query per
        period and point, however many KPIs share them); "" as the change where the period
        had none by then (not "new": it had values, later)."""
        from kpi_collector.store.periods import aggregate, local_midnight

        groups: dict[tuple[date, float], list[str]] = {}
        for kpi, key in cuts.items():
            groups.setdefault(key, []).append(kpi)
        found: dict[str, list[float]] = {}
        for (start, until), kpis in groups.items():
            since = local_midnight(start, self.zone)
            for kpi, _, value in self.store.rows(kpis, since=since, until=until):
                found.setdefault(kpi, []).append(value)
        for tile in tiles:
            kpi = tile["id"]
            if kpi not in cuts or tile["value"] is None:
                continue
            values = found.get(kpi)
            previous = aggregate(values, self.agg.get(kpi, "last")) if values else None
            value = tile["value"]
            tile["previous"] = previous
            tile["previous_until"] = iso(cuts[kpi][1], self.zone)
            tile["change"] = None if previous is None else value - previous
            tile["change_pct"] = percent_change(value, previous)
            tile["change_text"] = (
                "" if previous is None else format_change(value, previous, tile["unit"])
            )

    def _newest_period_values(self, newest: dict[str, Any], period: str) -> dict[str, float]:
        """The value by its `agg` of the period that holds each KPI's newest observation
        (`newest`: {kpi: StoredObservation}), for the KPIs whose agg is not `last` (there,
        the newest observation is that value)."""
        out: dict[str, float] = {}
        for kpi, row in newest.items():
            if self.agg.get(kpi, "last") == "last":
                continue
            points = self._periods_from(kpi, row.ts, period)
            if points:
                out[kpi] = points[-1][1]
        return out

    def _periods_from(self, kpi: str, ts: float, period: str) -> list[tuple[date, float]]:
        """`kpi`'s values by period, each by its `agg`, from the period holding moment `ts`
        (UTC epoch seconds) on."""
        day = datetime.fromtimestamp(ts, self.zone).date()
        series = self.store.series([kpi], period=period, since=day, tz=self.zone, agg=self.agg)
        return list(series.get(kpi) or [])

    def health(self) -> HealthDoc | None:
        """The collector's health (`kpi validate --health`): problems, warnings, the scheduler
        and the active alerts, in the config's time zone; None where it cannot be read."""
        try:
            from kpi_collector.schedule.health import health_report

            report = health_report(self.config, now=self.clock())
        except Exception as exc:  # the dashboard shows the KPIs even without it
            log.warning("cannot read the health report: %s", redact(str(exc)))
            return None
        daemon = report.get("scheduler")
        running = report.get("run_in_progress")
        return {
            "ok": bool(report["ok"]),
            "problems": [redact(p) for p in report["problems"]],
            "warnings": [redact(w) for w in report["warnings"]],
            "scheduler": None
            if daemon is None
            else {
                "state": daemon["state"],
                "beat_at": iso(daemon["beat_at"], self.zone),
                "next_run_at": iso(daemon.get("next_run_at"), self.zone),
            },
            "run_in_progress": None
            if running is None
            else {
                "started_at": iso(running["started_at"], self.zone),
                "beat_at": iso(running["beat_at"], self.zone),
                "detail": redact(running["detail"]) if running.get("detail") else None,
            },
            "alerts": [
                {
                    "alert": a["alert"],
                    "message": redact(a["message"] or a["alert"]),
                    "since": iso(a["since"], self.zone),
                }
                for a in report["alerts"]
            ],
            "silences": [
                {"alert": s["alert"], "until": iso(s["until"], self.zone)}
                for s in report.get("silences", [])
            ],
            "jobs": [
                {
                    "job": j["job"],
                    "last_success": j["last_success"],  # UTC epoch seconds or None
                    "last_status": j["last_status"],
                    "overdue": bool(j["overdue"]),
                    "not_run_yet": bool(j.get("not_run_yet")),
                    "running": bool(j.get("running")),
                    "next_fire": iso(j["next_fire"], self.zone),
                }
                for j in report["jobs"]
            ],
        }

    def _stale_seconds(self, kpi: str, now: float) -> float:
        """How old `kpi`'s newest value may be: from its source's schedule (or the config's),
        and a day more for a complete day's value (stamped with the end of that day)."""
        whole_day = 86400.0 if kpi in self._whole_days else 0.0
        if self.stale_after is not None:
            return self.stale_after.total_seconds() + whole_day
        expr = self._schedules.get(kpi.partition(".")[0]) or self.config.settings.schedule
        if expr not in self._stale_by_cron:
            self._stale_by_cron[expr] = stale_after(expr, self.zone, now).total_seconds()
        return self._stale_by_cron[expr] + whole_day

    def _is_formula(self, kpi: str) -> bool:
        spec = self.config.kpis.get(kpi)
        return bool(spec and spec.formula)

    def _standing_failures(self) -> dict[str, str]:
        """The sources whose newest run that included them (values or errors, among the
        newest 50 runs) failed, with that error, redacted: a run of other sources since
        (a source's own `schedule:`) does not make them look fine."""
        from kpi_collector.store.runs import failing_streaks

        names = [s.name for s in self.config.sources if s.enabled]
        if not names:
            return {}
        streaks = failing_streaks(self.store, names, depth=1)
        return {name: redact(msg) for name, (streak, msg) in streaks.items() if streak and msg}

    def _failures(self, run: RunRecord | None) -> dict[str, str]:
        """The newest run's errors, redacted: by KPI id (one metric, or a formula) and by
        source name (a whole source); the first error of each."""
        out: dict[str, str] = {}
        for error in run.errors if run else []:
            message = redact(error.message)
            if error.kpi:
                out.setdefault(error.kpi, message)
            if error.source != FORMULA:
                out.setdefault(error.source, message)
        return out

    def _sources(
        self,
        tiles: dict[str, Tile],
        run: RunRecord | None,
        now: float,
        standing: dict[str, str] | None = None,
    ) -> list[SourceStatusDoc]:
        """Each configured source: ok, failing (with its error from the newest run, or from
        `standing`: its newest run that included it) or stale; then each derived KPI
        (formula) that failed, under its own id."""
        errors: dict[str, str] = {}
        formulas: set[str] = set()
        for error in run.errors if run else []:
            name = error.source
            if name == FORMULA and error.kpi:  # not a source: the derived KPI itself
                name = error.kpi
                formulas.add(name)
            errors.setdefault(name, redact(error.message))
        for name, message in (standing or {}).items():
            errors.setdefault(name, message)
        by_source: dict[str, list[Tile]] = {}
        for kpi, tile in tiles.items():
            by_source.setdefault(kpi.partition(".")[0], []).append(tile)
        out: list[SourceStatusDoc] = []
        for source in self.config.sources:
            kpis = by_source.get(source.name, [])
            stamps = [t["updated_at"] for t in kpis if t["updated_at"]]
            # by the moment, not the text: when the clocks go back, 02:30+02:00 is the earlier
            newest = max(stamps, key=datetime.fromisoformat) if stamps else None
            if not source.enabled:
                status = "disabled"
            elif source.name in errors:
                status = "failing"
            elif newest is None:
                status = "no data"
            elif all(t["stale"] for t in kpis if t["updated_at"]):
                status = "stale"
            else:
                status = "ok"
            out.append(
                {
                    "name": source.name,
                    "type": source.type,
                    "status": status,
                    "updated_at": newest,
                    "error": errors.get(source.name),
                }
            )
        known = {s.name for s in self.config.sources}
        for name, message in errors.items():  # e.g. formulas, or a source since removed
            if name not in known:
                out.append(
                    {
                        "name": name,
                        "type": "formula" if name in formulas else None,
                        "status": "failing",
                        "updated_at": None,
                        "error": message,
                    }
                )
        return out

    def series(self, kpi: str, period: str = "day", since: date | None = None) -> SeriesDoc:
        """One KPI per period from `since`, plus the window before and the same window a year earlier.

        Values come from `HistoryStore.series`, as in `kpi history`.
        """
        if period not in PERIODS:
            raise ValueError(f"unknown period {period!r}; use day, week or month")
        spec = self.spec(kpi)
        unit = spec["unit"]
        today = datetime.fromtimestamp(self.clock(), self.zone).date()
        end = next_period(period_start(today, period), period)
        fetch_from = None
        count = 0  # how many periods the window shows (the window before has as many)
        if since is not None:
            since = period_start(since, period)
            # a `since` after today has no window (nor one before it); one near the year 1
            # has its window before and its year earlier cut at the calendar's start
            count = max(periods_between(since, end, period), 0)
            before = _within_calendar(lambda: shift_periods(since, period, count))
            fetch_from = min(
                period_start(before, period),
                period_start(_within_calendar(lambda: year_earlier(since, period)), period),
            )
        history = self.store.series(
            [kpi], period=period, since=fetch_from, tz=self.zone, agg=self.agg
        )
        points = history.get(kpi, [])

        def point(day: date, value: float, at: date | None = None) -> PointDoc:
            out = PointDoc(period=day.isoformat(), value=value, text=format_value(value, unit))
            if at is not None:
                out["at"] = at.isoformat()
            return out

        current = [point(d, v) for d, v in points if since is None or d >= since]
        if (
            current
            and spec["agg"] in RUNNING_AGGS
            and current[-1]["period"] == (period_start(today, period).isoformat())
        ):
            current[-1]["partial"] = True
        previous: list[PointDoc] = []
        year_ago: list[PointDoc] = []
        if since is not None:
            year_from = _within_calendar(lambda: year_earlier(since, period))
            year_to = _within_calendar(lambda: year_earlier(end, period))
            for d, v in points:
                if before <= d < since:  # drawn `count` periods later (months, not days)
                    previous.append(point(d, v, shift_periods(d, period, -count)))
                if year_from <= d < year_to:
                    shifted = d + timedelta(weeks=52) if period == "week" else _next_year(d)
                    year_ago.append(point(d, v, shifted))
        return SeriesDoc(
            **spec,
            period=period,
            timezone=self.config.timezone,
            since=since.isoformat() if since else None,
            until=period_start(today, period).isoformat(),
            points=current,
            previous=previous,
            year_ago=year_ago,
            annotations=[
                {**note, "at": period_start(date.fromisoformat(note["day"]), period).isoformat()}
                for note in self.notes(since, end - timedelta(days=1))
            ],
        )

    def notes(self, since: date | None = None, until: date | None = None) -> list[NoteDoc]:
        """The notes (`kpi annotate`) from `since` to `until` (both included), oldest first;
        their texts redacted again."""
        from kpi_collector.store.annotations import list_annotations

        return [
            {"id": n.id, "day": n.day.isoformat(), "text": redact(n.text)}
            for n in list_annotations(self.store, since=since, until=until)
        ]

    # runs ---------------------------------------------------------------------------------------

    def _run(self, run: RunRecord) -> RunDoc:
        return {
            "id": run.id,
            "started_at": iso(run.started_at, self.zone),
            "finished_at": iso(run.finished_at, self.zone),
            "duration": None if run.duration is None else round(run.duration, 3),
            "status": run.status,
            "trigger": run.trigger,
            "n_values": run.n_values,
            "n_errors": run.n_errors,
            "errors": [
                RunErrorDoc(
                    source=e.source, kpi=e.kpi, message=redact(e.message), transient=e.transient
                )
                for e in run.errors
            ],
        }

    def runs(self, limit: int = 50) -> RunsDoc:
        """The newest runs with their errors per source, and the deliveries still pending."""
        return {
            "timezone": self.config.timezone,
            "runs": [self._run(r) for r in self.store.runs(limit)],
            "deliveries": self.pending_deliveries(),
        }

    def pending_deliveries(self) -> list[PendingDeliveryDoc]:
        """Deliveries waiting to be retried (`pending`) and refused for good (`failed`, until
        `kpi deliver --retry`), oldest first; not `dropped` ones (their run is gone)."""
        from kpi_collector.store.deliveries import FAILED, PENDING, records

        rows = sorted(
            [*records(self.store, status=PENDING), *records(self.store, status=FAILED)],
            key=lambda r: (r.created_at, r.id),
        )
        return [
            {
                "destination": r.destination,
                "period": r.period,
                "run_id": r.run_id,
                "status": r.status,
                "attempts": r.attempts,
                "last_error": redact(r.last_error) if r.last_error else None,
                "created_at": iso(r.created_at, self.zone),
                "updated_at": iso(r.updated_at, self.zone),
                "parts_sent": r.parts_sent,
            }
            for r in rows
        ]

    def latest(self) -> dict[str, tuple[float, float]]:
        """Each KPI's newest value and when it was collected: {kpi: (value, ts)}."""
        from kpi_collector.store import rollup

        if self.refresh():
            return rollup.latest(self.store.engine, self.zone)
        return {k: (r.value, r.ts) for k, r in self.store.latest().items()}


def _within_calendar(shifted: Callable[[], date]) -> date:
    """`shifted()`, or the calendar's first day where it would fall before the year 1."""
    try:
        return shifted()
    except (OverflowError, ValueError):
        return date.min


def _next_year(day: date) -> date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        return day.replace(year=day.year + 1, day=28)
