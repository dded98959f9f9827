"""`Pipeline`: the flow in one object. It collects (`kpi_collector.run`), stores
(`kpi_collector.store`), delivers (`kpi_collector.deliver`) and checks alerts
(`kpi_collector.alerts`); every one of those sits below it and never calls back up."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeGuard, TypeVar
from zoneinfo import ZoneInfo

from kpi_collector.config.plain import Config, PlainCeleryExecutor, PlainKpiSpec, display_order
from kpi_collector.errors import ConfigError, StoreError
from kpi_collector.run.complete_days import (
    complete_days,
    described_days,
    fill_missed_days,
    formula_stamps,
    kept_values,
    newest_stamps,
    source_stamps,
)
from kpi_collector.run.engine import SourceOutcome, collect_all
from kpi_collector.run.result import RunResult
from kpi_collector.secrets import DatabaseUrl, redact
from kpi_collector.sources.base import PlainSource
from kpi_collector.store import RunError, StoredObservation
from kpi_collector.store.periods import local_midnight

if TYPE_CHECKING:
    from kpi_collector.alerts.engine import AlertScope
    from kpi_collector.config.models import Alert, Defaults, KpiSpec, Settings
    from kpi_collector.deliver.engine import DeliveryEngine, DeliveryOutcome
    from kpi_collector.destinations.base import Destination
    from kpi_collector.destinations.store import Store
    from kpi_collector.run.backfill import BackfillReport
    from kpi_collector.sources.base import Source
    from kpi_collector.store import HistoryStore
    from kpi_collector.store.lock import RunLock

__all__ = ["Pipeline", "RunResult", "run_sync"]

T = TypeVar("T")


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion from synchronous code and return its result.

    `asyncio.run` refuses to start inside a running event loop (a Jupyter cell, an async
    web handler), so there the coroutine runs in a fresh loop on a worker thread while the
    caller waits; exceptions propagate either way."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_boxed(coro)).value
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="kpi-pipeline") as pool:
        return pool.submit(asyncio.run, coro).result()


class _Box(Generic[T]):
    __slots__ = ("value",)

    def __init__(self, value: T) -> None:
        self.value = value

    def __repr__(self) -> str:
        return "<result>"


async def _boxed(coro: Coroutine[Any, Any, T]) -> _Box[T]:
    """`coro`'s result in a box of a short repr: when `asyncio.run` ends it restores the SIGINT
    handler, and Python 3.11's `signal` module formats the repr of the old one, a partial
    holding the main task, whose repr holds its result (a whole RunResult: 1,000 outcomes
    cost about 15 ms)."""
    return _Box(await coro)


def _function(function: Callable[..., Any]) -> Source:
    """A plain callable as a `type: python` source (imported only when a pipeline has one)."""
    from kpi_collector.sources.python import Function

    return Function(function)


def _store_url(url: str) -> DatabaseUrl:
    """The config's store URL as a `DatabaseUrl`, without validating it again (the config
    did): a `Store` model's validator, built before the first request, costs tens of
    milliseconds (pydantic's import and plugin scan)."""
    return DatabaseUrl(str(url), getattr(url, "variables", ()))


def _is_store(destination: object) -> TypeGuard[Store]:
    """Whether `destination` is a `Store` (the history store given as a destination)."""
    from kpi_collector.destinations.store import Store

    return isinstance(destination, Store)


def _open(store: Store | DatabaseUrl) -> HistoryStore:
    """The history store of a `Store` or of a database URL."""
    if isinstance(store, DatabaseUrl):
        from kpi_collector.store import HistoryStore

        return HistoryStore(store.get())
    return store.open()


def _kpi_spec(fields: Mapping[str, Any]) -> KpiSpec:
    """A `KpiSpec` of the Python API's mapping (validated)."""
    from kpi_collector.config.models import KpiSpec

    return KpiSpec(**fields)


def _defaults() -> Defaults:
    from kpi_collector.config.models import Defaults

    return Defaults()


class Pipeline:
    """Sources in, history and destinations out.

    `sources` are Source objects or plain callables returning `{name: number}`; `store` is
    the history store (a `Store`, or its SQLAlchemy URL) that keeps values, runs and delivery
    state. Without one a run collects and delivers but remembers nothing. A `Store` among the
    `destinations` is the same as `store=` (the shorthand of the reference bot).

    Raises ConfigError for two sources of one name.
    """

    #: seconds a run waits for another run on the same store to finish (see
    #: `kpi_collector.store.lock`); then it raises LockBusy (exit 1) and collects nothing
    lock_wait: float = 10.0
    #: how runs are recorded in the store: "run" (kpi run, the Python API) or "schedule"
    trigger: str = "run"

    def __init__(
        self,
        sources: Iterable[Source | Callable[..., Any]] = (),
        destinations: Iterable[Destination] = (),
        *,
        store: Store | DatabaseUrl | str | None = None,
        kpis: Mapping[str, KpiSpec | Mapping[str, Any]] | None = None,
        timezone: str = "UTC",
        defaults: Defaults | None = None,
        north_star: str | None = None,
        base_dir: Path | None = None,
        alerts: Iterable[Alert] = (),
    ) -> None:
        self.sources: list[Source] = [
            s if isinstance(s, PlainSource) else _function(s) for s in sources
        ]
        given = list(destinations)
        stores = [d for d in given if _is_store(d)]
        if isinstance(store, str):
            from kpi_collector.destinations.store import Store

            store = Store(store)
        if store is None and stores:
            store = stores[0]
        #: the destinations proper (the history store is `store`, never one of these)
        self.destinations: list[Destination] = [d for d in given if not _is_store(d)]
        counts = Counter(s.name for s in self.sources)
        duplicate = next((name for name, n in counts.items() if n > 1), None)
        if duplicate:
            raise ConfigError(f"two sources are named {duplicate!r}; give each its own name")
        self.kpis = {
            k: v if isinstance(v, PlainKpiSpec) else _kpi_spec(v) for k, v in (kpis or {}).items()
        }
        self.tz = ZoneInfo(timezone)
        self.defaults = defaults or _defaults()
        self.north_star = north_star
        self.base_dir = base_dir or Path.cwd()
        self.config: Config | None = None
        self.alerts = list(alerts)
        self.store: HistoryStore | None = _open(store) if store is not None else None

    @classmethod
    def from_config(
        cls, config: Config | str | Path | None = None, *, with_store: bool = True
    ) -> Pipeline:
        """A pipeline from `kpi.yaml` (or a path, or an already loaded Config); without
        `with_store`, its store is not opened (opening a SQLite store creates it)."""
        from kpi_collector.config import load_config

        if not isinstance(config, Config):
            config = load_config(config)
        pipeline = cls(
            sources=[s for s in config.sources if s.enabled],
            destinations=[d for d in config.destinations if d.enabled],
            store=_store_url(config.store_url) if with_store else None,
            kpis=config.kpis,
            timezone=config.timezone,
            defaults=config.defaults,
            north_star=config.settings.north_star,
            base_dir=config.base_dir,
            alerts=config.settings.alerts,
        )
        pipeline.config = config
        return pipeline

    @property
    def settings(self) -> Settings | None:
        return self.config.settings if self.config else None

    def order(self, kpis: Iterable[str]) -> list[str]:
        """KPI ids in display order (`config.models.display_order`): the config's order when
        the pipeline comes from one (disabled sources keep their place), else its own."""
        if self.config is not None:
            return self.config.order(kpis)
        config_ids = [kid for source in self.sources for kid in source.kpi_ids()]
        return display_order(
            kpis, kpis=self.kpis, north_star=self.north_star, config_ids=config_ids
        )

    def process(
        self,
        *,
        only: Sequence[str] | None = None,
        dry_run: bool = False,
        deliver: bool = True,
        on_source_done: Callable[[SourceOutcome], None] | None = None,
        now: datetime | None = None,
        run_lock: RunLock | None = None,
    ) -> RunResult:
        """Run once: collect, store (unless `dry_run`), deliver (unless `deliver=False`).

        `now` (an aware datetime, default: the current time) is the run's `started_at`.
        `run_lock` is the store's run lock when the caller already holds it (the scheduler
        takes it first, to check that a job is still due); otherwise the run takes it, waiting
        up to `lock_wait` seconds, and raises LockBusy when another run keeps it.

        Inside a running event loop (Jupyter, an async web app) the run gets its own loop on
        a worker thread and this call blocks until it ends; there, `await aprocess()` is the
        non-blocking way."""
        return run_sync(
            self.aprocess(
                only=only,
                dry_run=dry_run,
                deliver=deliver,
                on_source_done=on_source_done,
                now=now,
                run_lock=run_lock,
            )
        )

    def selected(self, only: Sequence[str] | None) -> list[Source]:
        if not only:
            return [s for s in self.sources if s.enabled]
        from kpi_collector.errors import unknown_names

        names = {s.name for s in self.sources}
        switched_off = [
            s.name
            for s in (self.config.sources if self.config is not None else ())
            if not s.enabled and s.name in only and s.name not in names
        ]
        if switched_off:  # in the config, not "no source named"
            raise ConfigError(
                f"--only: source {switched_off[0]!r} is switched off (`enabled: false`); "
                "set `enabled: true` (or remove the line) to run it"
            )
        problem = unknown_names("source", only, (s.name for s in self.sources))
        if problem:
            raise ConfigError(f"--only: {problem}")
        return [s for s in self.sources if s.name in only]

    def partial(self, sources: Sequence[Source]) -> bool:
        """Whether a run of `sources` leaves out an enabled source that every full run
        collects (one without a `schedule:` of its own; those with one run on theirs)."""
        chosen = {s.name for s in sources}
        return any(s.enabled and not s.schedule and s.name not in chosen for s in self.sources)

    async def aprocess(
        self,
        *,
        only: Sequence[str] | None = None,
        dry_run: bool = False,
        deliver: bool = True,
        on_source_done: Callable[[SourceOutcome], None] | None = None,
        now: datetime | None = None,
        run_lock: RunLock | None = None,
    ) -> RunResult:
        """`process` for code that already runs an event loop: `await pipeline.aprocess()`. A run that writes to the store holds the store's
        run lock throughout, so runs (manual, scheduled, on other machines) never overlap."""
        kwargs: dict[str, Any] = {
            "only": only,
            "dry_run": dry_run,
            "deliver": deliver,
            "on_source_done": on_source_done,
            "now": now,
        }
        if dry_run or self.store is None:
            return await self._process(**kwargs)
        if run_lock is not None and run_lock.held:  # the caller's lock, the caller's to release
            return await self._process(**kwargs, lock=run_lock)
        from kpi_collector.store.lock import RunLock

        lock = RunLock(self.store, wait=self.lock_wait, detail=f"kpi {self.trigger}")
        # only the cross-process lock now; the lock's record in the store is written with
        # the run's own row, while the first requests are out
        await asyncio.to_thread(lock.acquire, register=False)
        try:
            return await self._process(**kwargs, lock=lock)
        finally:
            await asyncio.to_thread(lock.release)

    async def _process(
        self,
        *,
        only: Sequence[str] | None,
        dry_run: bool,
        deliver: bool,
        on_source_done: Callable[[SourceOutcome], None] | None,
        now: datetime | None,
        lock: RunLock | None = None,
    ) -> RunResult:
        sources = self.selected(only)
        started = now or datetime.now(UTC)
        store = None if dry_run else self.store
        # values of sources that give the last complete day are stored with that day's stamp
        days = complete_days(sources, self.kpis, now=started, tz=self.tz)
        # opening the store (imports, connection, migration check) overlaps the requests, and
        # so does reading each KPI's previous value (strictly before this run's start, which
        # the run's own values, stored later at its start, never are): after the last answer
        # only this run's values are written
        begin = None
        if store is not None:

            def open_run() -> tuple[
                int, set[str], dict[str, float] | None, dict[str, StoredObservation] | None
            ]:
                if lock is not None:
                    lock.register()
                run_id = store.begin_run(started_at=started.timestamp(), trigger=self.trigger)
                planned = {kpi for source in sources for kpi in source.kpi_ids()}
                planned.update(kpi for kpi, spec in self.kpis.items() if spec.formula)
                try:
                    previous = store.previous_values(sorted(planned), before=started.timestamp())
                except StoreError:  # read again after the run is stored, as it was before
                    previous = None
                try:
                    newest = newest_stamps(store, days) if days is not None else {}
                except StoreError:  # read again before the run is stored
                    newest = None
                return run_id, planned, previous, newest

            begin = asyncio.create_task(asyncio.to_thread(open_run))
        try:
            outcomes = await self._collect(sources, started, on_source_done)
        finally:
            run_id, planned, previous, newest = (
                await begin if begin is not None else (None, set(), None, {})
            )
        result = RunResult(run_id, started, started, outcomes=outcomes, zone=self.tz)
        result.partial = self.partial(sources)
        errors: list[RunError] = []
        for outcome in outcomes:
            for metric, value in outcome.values.items():
                kpi = f"{outcome.source}.{metric}"
                result.values[kpi] = value
                result.sources[kpi] = outcome.source
            for failure in outcome.errors:
                kpi_id = f"{outcome.source}.{failure.metric}" if failure.metric else None
                result.errors[kpi_id or outcome.source] = failure.message
                errors.append(RunError(outcome.source, kpi_id, failure.message, failure.transient))
        kept: dict[str, float] = {}
        mixed: dict[str, float] = {}
        if days is not None:
            # each value of a complete day is stamped with that day's end; a day stored
            # already (a run earlier today, `kpi backfill`) is kept, and the run shows it
            result.stamps = source_stamps(days, outcomes, self.tz)
            if store is not None and run_id is not None:
                if newest is None:
                    newest = await asyncio.to_thread(newest_stamps, store, days)
                kept = await asyncio.to_thread(kept_values, store, result.stamps, days, newest)
                result.values.update(kept)
        stored: dict[str, float] = {}
        if only and self.store is not None:
            stored = await asyncio.to_thread(self._stored_inputs, sources, started)
        derived = self._derive(
            result.values, partial=bool(only), failed=result.errors.keys(), stored=stored
        )
        if days is not None:
            formulas, mixed = formula_stamps(days, result.values, result.stamps, self.kpis)
            for kpi in mixed:  # a figure of two days: computed again from the earlier one's
                result.values.pop(kpi, None)
                if store is None or run_id is None:
                    derived[kpi] = (
                        f"{kpi}: not computed: its inputs describe different days (a "
                        "service's day is still under way); a run that stores computes it "
                        "from the earlier day's stored values"
                    )
            if store is not None and run_id is not None and formulas:
                more = await asyncio.to_thread(kept_values, store, formulas, days, newest)
                result.values.update(more)
                kept.update(more)
            result.stamps.update(formulas)
        for kpi, message in derived.items():
            result.errors[kpi] = message
            errors.append(RunError("formula", kpi, message, transient=False))
        if days is not None and store is not None and run_id is not None and self._fills_in():
            missed = await fill_missed_days(
                store,
                days,
                newest or {},
                described=described_days(days, outcomes),
                failed={outcome.source for outcome in outcomes if outcome.errors},
                kpis=self.kpis,
                defaults=self.defaults,
                tz=self.tz,
                base_dir=self.base_dir,
                now=started,
            )
            for error in missed:
                result.errors.setdefault(error.kpi or error.source, error.message)
            errors += missed
        result.finished_at = datetime.now(UTC)
        if store is not None and run_id is not None:
            ts = started.timestamp()
            store.finish_run(
                run_id,
                observations=(
                    StoredObservation(
                        k, result.stamps.get(k, ts), v, result.sources.get(k, "formula")
                    )
                    for k, v in result.values.items()
                    # a day's value already stored (a run earlier today, `kpi backfill`)
                    if k not in kept
                ),
                errors=errors,
                finished_at=result.finished_at.timestamp(),
            )
            if mixed:
                again = await asyncio.to_thread(self._mixed_days, store, mixed, result)
                for kpi, message in again.items():
                    result.errors[kpi] = message
            unplanned = result.values.keys() - planned if previous is not None else set()
            if previous is None or unplanned:  # a source that gave metrics it did not declare
                asked = list(result.values) if previous is None else sorted(unplanned)
                previous = {
                    **(previous or {}),
                    **store.previous_values(asked, before=started.timestamp()),
                }
            if days is not None and result.stamps:  # a day's value: with the days before it
                for kpi in result.stamps:
                    previous.pop(kpi, None)
                # (not a value of the day itself: one a run stored before the upgrade, partial)
                by_day: dict[float, list[str]] = {}
                for kpi, stamp in result.stamps.items():
                    by_day.setdefault(stamp, []).append(kpi)
                for stamp, kpis in by_day.items():
                    day = datetime.fromtimestamp(stamp, self.tz).date()
                    since_midnight = local_midnight(day, self.tz)
                    previous.update(store.previous_values(sorted(kpis), before=since_midnight))
            result.previous = {k: previous[k] for k in result.values if k in previous}
        result.values = {k: result.values[k] for k in self.order(result.values)}
        if deliver and not dry_run:
            await self.deliver(result)
            await self.check_alerts(result)
        return result

    def _mixed_days(
        self, store: HistoryStore, mixed: Mapping[str, float], result: RunResult
    ) -> dict[str, str]:
        """Compute the derived KPIs whose inputs described different days in this run (a
        service whose day is under way beside one whose is not) for the earliest of those
        days (`mixed`: KPI id -> that day's stamp), from the day's stored values, as `kpi
        backfill` does, into `result` with their stamps. Returns the errors by KPI id of
        those that day cannot give (an input not stored for it)."""
        from kpi_collector.run.backfill import backfill_formulas

        by_stamp: dict[float, list[str]] = {}
        for kpi, stamp in mixed.items():
            by_stamp.setdefault(stamp, []).append(kpi)
        errors: dict[str, str] = {}
        for stamp, kpis in by_stamp.items():
            day = datetime.fromtimestamp(stamp, self.tz).date()
            try:
                backfill_formulas(
                    store, {k: self.kpis[k] for k in kpis}, tz=self.tz, since=day, until=day
                )
                rows = store.latest(sorted(kpis), before=stamp)
            except StoreError as exc:
                errors.update({k: f"{k}: not computed for {day}: {exc}" for k in kpis})
                continue
            for kpi in kpis:
                row = rows.get(kpi)
                if row is not None and row.ts == stamp:
                    result.values[kpi] = row.value
                    result.stamps[kpi] = stamp
                    result.sources[kpi] = "formula"
                else:
                    errors[kpi] = (
                        f"{kpi}: not computed: its inputs describe different days (a "
                        f"service's day is still under way), and {day}'s values of them are "
                        "not all stored; `kpi backfill` fills them in"
                    )
        return errors

    async def _collect(
        self,
        sources: Sequence[Source],
        now: datetime,
        on_done: Callable[[SourceOutcome], None] | None,
    ) -> list[SourceOutcome]:
        """Collect with the config's executor: in this process, or through Celery workers
        (`kpi_collector.run.celery_executor`)."""
        executor = self.config.settings.executor if self.config is not None else None
        if self.config is not None and isinstance(executor, PlainCeleryExecutor):
            from kpi_collector.run.celery_executor import collect_celery, fingerprint

            return await collect_celery(
                sources,
                executor=executor,
                config_fingerprint=fingerprint(self.config),
                now=now,
                on_done=on_done,
                config_path=self.config.path,
            )
        return await collect_all(
            sources,
            defaults=self.defaults,
            tz=self.tz,
            base_dir=self.base_dir,
            now=now,
            on_done=on_done,
        )

    def _fills_in(self) -> bool:
        """Whether a run fills in the complete days a source missed: with the local executor
        (Celery workers read events the coordinator may not reach; `kpi backfill` does)."""
        executor = self.config.settings.executor if self.config is not None else None
        return not isinstance(executor, PlainCeleryExecutor)

    def _stored_inputs(self, sources: Sequence[Source], started: datetime) -> dict[str, float]:
        """The newest stored value (at or before `started`) of each formula input that none of
        `sources` collects: what a run of some sources (`--only`, a source's own `schedule`)
        computes its formulas with. Empty when the store cannot be read."""
        collected = {kpi for source in sources for kpi in source.kpi_ids()}
        formulas = {k: s.formula for k, s in self.kpis.items() if s.formula}
        if not formulas or self.store is None:
            return {}
        from kpi_collector.config.formula import Formula

        # a disabled source's KPIs fail a formula in a full run: the same in a partial one
        enabled = {source.name for source in self.sources if source.enabled}
        needed = {
            kpi
            for text in formulas.values()
            for kpi in Formula.parse(text).inputs
            if kpi not in collected and kpi not in formulas and kpi.partition(".")[0] in enabled
        }
        if not needed:
            return {}
        try:
            newest = self.store.latest(sorted(needed), before=started.timestamp())
        except StoreError:
            return {}
        return {kpi: row.value for kpi, row in newest.items()}

    def _derive(
        self,
        values: dict[str, float],
        *,
        partial: bool = False,
        failed: Iterable[str] = (),
        stored: Mapping[str, float] | None = None,
    ) -> dict[str, str]:
        """Evaluate derived KPIs (formulas) into `values`; returns errors by KPI id.

        In a partial run (`--only`, a source's own `schedule`), a formula is computed when
        the run collected one of its inputs (or computed a formula it uses), each input the
        run did not collect taken from `stored` (the newest stored values); formulas with an
        input in neither are left alone instead of failing. `failed`: the KPI ids and source
        names that failed in this run; a formula missing one of those inputs says that its
        input failed."""
        formulas = {k: s.formula for k, s in self.kpis.items() if s.formula}
        if not formulas:
            return {}
        from kpi_collector.config.formula import Formula, evaluate_formulas

        parsed = {k: Formula.parse(f) for k, f in formulas.items()}
        # a source whose metrics are known only at run time gave a derived KPI's id itself:
        # its number stays (the formula's replaced it, stored as the source's); the config
        # check says the same of a declared metric
        taken = {kpi: parsed.pop(kpi) for kpi in sorted(parsed.keys() & values.keys())}
        # inputs of sources switched off (`enabled: false`): no value, in any run
        configured = self.config.sources if self.config is not None else ()
        off = {s.name for s in (*self.sources, *configured) if not s.enabled}
        switched_off = {
            i for f in parsed.values() for i in f.inputs if i.partition(".")[0] in off
        } - parsed.keys()
        known: Mapping[str, float] = values
        keep: set[str] = set(parsed)
        if partial:
            known = {**(stored or {}), **values}
            while True:
                # an input switched off fails the formula as in a full run, where one not
                # collected yet (a source of its own schedule) leaves it alone
                ready = {
                    k: f
                    for k, f in parsed.items()
                    if f.inputs <= known.keys() | parsed.keys() | switched_off
                }
                if len(ready) == len(parsed):
                    break
                parsed = ready
            # a formula that none of this run's values reaches stays as it was stored
            keep = set(values)
            grew = True
            while grew:
                grew = False
                for kpi, formula in parsed.items():
                    if kpi not in keep and formula.inputs & keep:
                        keep.add(kpi)
                        grew = True
        computed, errors = evaluate_formulas(parsed, known)
        values.update({k: v for k, v in computed.items() if k in keep})
        errors = {k: e for k, e in errors.items() if k in keep}
        broken = set(failed)
        out: dict[str, str] = {
            kpi: (
                f"{kpi}: source {kpi.partition('.')[0]!r} gives {kpi} itself, so the formula "
                f"{formula.text!r} is not computed; give the derived KPI an id of its own, "
                f"e.g. {kpi}_derived"
            )
            for kpi, formula in taken.items()
        }
        for kpi, error in errors.items():
            inputs = sorted(
                i
                for i in parsed[kpi].inputs
                if i not in values and (i in broken or i.partition(".")[0] in broken)
            )
            dark = sorted(i for i in parsed[kpi].inputs & switched_off if i not in values)
            if inputs:
                out[kpi] = (
                    f"{kpi}: not computed because its input {', '.join(inputs)} failed "
                    f"(formula {parsed[kpi].text!r})"
                )
            elif dark:
                names = sorted({i.partition(".")[0] for i in dark})
                out[kpi] = (
                    f"{kpi}: not computed because its input {', '.join(dark)} comes from "
                    f"source {', '.join(names)}, switched off (`enabled: false`); switch it on "
                    f"or change the formula {parsed[kpi].text!r}"
                )
            else:
                out[kpi] = f"{kpi}: {error}"
        return out

    def delivery_engine(self, **kwargs: Any) -> DeliveryEngine:
        """The delivery engine for this pipeline's store and destinations (`kwargs` go to
        `DeliveryEngine`: backoff, max_retry_after)."""
        from kpi_collector.deliver.engine import DeliveryEngine

        return DeliveryEngine(
            self.store,
            self.destinations,
            kpis=self.kpis,
            order=self.order,
            tz=self.tz,
            base_dir=self.base_dir,
            **kwargs,
        )

    def deliver_pending(self, only: Sequence[str] | None = None) -> list[DeliveryOutcome]:
        """`kpi deliver`: retry every pending delivery of the (selected) destinations, oldest
        period first. Raises ConfigError for an unknown name in `only` or without a store."""
        return run_sync(self.delivery_engine().deliver_pending(only))

    async def deliver(self, result: RunResult) -> None:
        """Deliver the run to each destination due in its period and retry pending deliveries
        (see `kpi_collector.deliver.engine`); failures land in `result.delivery_errors`."""
        from kpi_collector.errors import ConfigError, KpiError

        try:
            outcomes = await self.delivery_engine().deliver_run(result)
        except ConfigError:
            raise
        except KpiError as exc:  # e.g. another process is delivering: all stays pending
            result.delivery_errors["deliveries"] = redact(str(exc))
            result.delivery_pending.add("deliveries")
            return
        for outcome in outcomes:
            if outcome.ok:
                result.delivered.append(outcome.destination)
            else:
                message = redact(f"{outcome.period}: {outcome.error}")
                name = outcome.destination
                before = result.delivery_errors.get(name)
                result.delivery_errors[name] = f"{before}; {message}" if before else message
                if not outcome.refused and outcome.attempts:  # not marked failed nor dropped
                    result.delivery_pending.add(name)

    def alert_scope(self) -> AlertScope:
        """What alert rules look at: the enabled sources, KPI specs, time zone and the enabled
        destinations (the config's, so a `kpi run --only` still notifies every one)."""
        from kpi_collector.alerts.engine import AlertScope

        found = self.config.destinations if self.config is not None else self.destinations
        return AlertScope(
            sources=[s for s in self.sources if s.enabled],
            kpis=self.kpis,
            tz=self.tz,
            destinations=[d for d in found if d.enabled and not _is_store(d)],
            disabled=frozenset(d.name for d in found if not d.enabled),
        )

    async def check_alerts(self, result: RunResult | None = None) -> None:
        """Tell the `notify` destinations about alerts that fired or resolved (see
        `kpi_collector.alerts`); messages that could not go out land in `delivery_errors`."""
        if self.alerts and self.store is not None:
            from kpi_collector.alerts.engine import check_alerts

            await check_alerts(self.store, self.alerts, self.alert_scope(), result)

    def backfill(
        self,
        *,
        since: date | None = None,
        only: Sequence[str] = (),
        now: datetime | None = None,
    ) -> BackfillReport:
        """`kpi backfill`: import past daily values from the (selected) sources that can give
        them, from `since` (default: a year back), then the derived KPIs' values of those days
        (`BackfillReport.derived`). It writes the store as a run does, so it holds the store's
        run lock throughout (waiting up to `lock_wait` seconds, then LockBusy): a backfill
        never writes at the same time as a run, a scheduled job or another backfill. Raises
        ConfigError without a store."""
        from kpi_collector.store.lock import RunLock

        if self.store is None:
            raise ConfigError("backfill needs a store to write into")
        with RunLock(self.store, wait=self.lock_wait, detail="kpi backfill"):
            return self._backfill(since=since, only=only, now=now)

    def _backfill(
        self, *, since: date | None, only: Sequence[str], now: datetime | None
    ) -> BackfillReport:
        from kpi_collector.run.backfill import abackfill, backfill_formulas

        assert self.store is not None
        report = run_sync(
            abackfill(
                self.store,
                self.selected(only),
                defaults=self.defaults,
                tz=self.tz,
                base_dir=self.base_dir,
                since=since,
                now=now,
            )
        )
        if report.added and report.days is not None:
            try:
                first, last = report.days
                report.derived = backfill_formulas(
                    self.store, self.kpis, tz=self.tz, since=first, until=last
                )
            except StoreError as exc:
                report.errors["formulas"] = redact(str(exc))
        return report
