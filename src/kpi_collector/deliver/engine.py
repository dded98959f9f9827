"""The delivery engine: what goes to which destination when, recorded in the store so nothing
is lost or sent twice.

For each enabled destination and its `every` period (run, day, week, month in the config's
time zone) a row in the store's `deliveries` table says `pending` or `done`:

- after a run that has values, every destination gets a pending row for the run's period —
  unless a message destination already sent that period (`done`); table-like destinations
  (`upserts`) go back to pending so the period's row is updated with the newer values;
- the row is written before the attempt and marked done after it; a destination that fails
  stays pending and is retried on the next run and by `kpi deliver`, oldest period first
  (a destination stops at its first failure, so its periods never go out of order);
- transient errors (connection, 5xx, 429 with `Retry-After`) are retried with backoff within
  the run; terminal ones (401, 404, validation errors) are not;
- destinations run concurrently: one that fails or hangs never holds back the others.

A pending row is delivered from the store (the run's stored values and errors), so a retry a
week later sends what the run collected, not what is current.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from kpi_collector.collect.retry import BACKOFF, MAX_RETRY_AFTER, pause, retrying
from kpi_collector.config.plain import display_order
from kpi_collector.destinations.base import Delivery
from kpi_collector.errors import ConfigError, DeliveryError, KpiError, missing_package
from kpi_collector.secrets import redact
from kpi_collector.store import deliveries as ledger
from kpi_collector.store.deliveries import DONE, DROPPED, FAILED, PENDING, DeliveryRecord

if TYPE_CHECKING:
    from kpi_collector.collect.http import HttpClient
    from kpi_collector.config.models import KpiSpec
    from kpi_collector.destinations.base import Destination
    from kpi_collector.run.result import RunResult
    from kpi_collector.store import HistoryStore

__all__ = [
    "DONE",
    "DROPPED",
    "FAILED",
    "PENDING",
    "DeliveryEngine",
    "DeliveryOutcome",
    "DeliveryRecord",
]
LOCK_WAIT = 120.0  # seconds to wait for another process that is delivering


@dataclass(slots=True)
class DeliveryOutcome:
    """What happened to one destination and period in this call."""

    destination: str
    period: str
    ok: bool
    error: str | None = None
    attempts: int = 0
    transient: bool = False
    refused: bool = False  # refused for good: marked failed, later periods go on


def credential_hint(destination: Destination) -> str:
    """Which config keys, and the `${VAR}`s they came from, hold the credentials a service
    refused (names only, never a value)."""
    keys = destination.credential_keys()
    where = f"destination {destination.name!r}"
    if not keys:
        return f"check the credentials of {where}"
    named = " and ".join(f"`{key}`" for key in keys)
    variables = [f"${{{v}}}" for names in keys.values() for v in names]
    if not variables:
        return f"check {named} of {where}, written in the config"
    listed = ", ".join(dict.fromkeys(variables))
    return f"check {named} of {where}: {listed}, in the environment or in .env beside the config"


class DeliveryEngine:
    """Delivers runs to destinations with the guarantees above; state lives in `store`."""

    def __init__(
        self,
        store: HistoryStore | None,
        destinations: Iterable[Destination],
        *,
        kpis: dict[str, KpiSpec] | None = None,
        order: Callable[[Iterable[str]], list[str]] | None = None,
        tz: ZoneInfo | str = "UTC",
        base_dir: Path | None = None,
        backoff: float | None = None,
        max_retry_after: float = MAX_RETRY_AFTER,
    ) -> None:
        self.store = store
        self.destinations = [d for d in destinations if d.enabled]
        names = [d.name for d in self.destinations]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigError(
                f"two destinations are named {twice[0]!r}; give each its own `name:` "
                "(delivery state is kept per destination name)"
            )
        from kpi_collector.store.limits import ID_MAX

        long = next((n for n in names if len(n) > ID_MAX), None)
        if long is not None:  # PostgreSQL and MariaDB refused its every delivery, SQLite kept it
            raise ConfigError(
                f"destination name {long[:60]!r}... has {len(long)} characters; the store keeps "
                f"each destination's deliveries under its name, of at most {ID_MAX} characters: "
                "give it a shorter `name:`"
            )
        self.kpis = kpis or {}
        #: KPI ids -> display order (default: `display_order` by this engine's `kpis`)
        self.order = order or (lambda ids: display_order(ids, kpis=self.kpis))
        self.tz = ZoneInfo(tz) if isinstance(tz, str) else tz
        self.base_dir = base_dir or Path.cwd()
        self.backoff = BACKOFF if backoff is None else backoff
        self.max_retry_after = max_retry_after
        self._http: HttpClient | None = None

    # periods --------------------------------------------------------------------------------

    def period_of(self, destination: Destination, started_at: datetime, run_id: int | None) -> str:
        """The period key: "run:17", "2026-11-29", "2026-W48" or "2026-11"."""
        from kpi_collector.store.periods import period_key

        if destination.every == "run":
            return f"run:{run_id}" if run_id is not None else f"run@{started_at.timestamp():.0f}"
        return period_key(started_at.astimezone(self.tz).date(), destination.every)

    # entry points ---------------------------------------------------------------------------

    async def deliver_run(self, result: RunResult) -> list[DeliveryOutcome]:
        """After a run: record what is due for its period, then deliver everything pending."""
        if self.store is None or result.run_id is None:
            return await self._deliver_without_store(result)
        if result.values:  # a run without any value gives no period its first delivery
            self.record_run(result.run_id, result.started_at, partial=result.partial)
        return await self.deliver_pending()

    async def deliver_pending(self, only: Sequence[str] | None = None) -> list[DeliveryOutcome]:
        """Deliver every pending row of the (selected) destinations, oldest period first."""
        store = self._need_store()
        targets = self.selected(only)
        if not targets:  # nothing to deliver to: no need to read the ledger (nor import its SQL)
            return []
        if not self._pending_work(targets):
            return []
        from kpi_collector.collect.http import HttpClient

        mutex = await self._lock(store)
        # read again now that no one else delivers: what another process sent while this
        # one waited is done, and must not go out twice
        try:
            work = self._pending_work(targets)
        except BaseException:
            mutex.release()
            raise
        if not work:
            mutex.release()
            return []
        async with HttpClient() as http:
            self._http = http
            try:
                chains = await asyncio.gather(
                    *(self._deliver_chain(store, d, rows) for d, rows in work)
                )
            finally:
                self._http = None
                mutex.release()
        return [outcome for chain in chains for outcome in chain]

    def _pending_work(
        self, targets: Sequence[Destination]
    ) -> list[tuple[Destination, list[DeliveryRecord]]]:
        """Each of `targets` with its pending rows, oldest first; those without are left out."""
        by_name: dict[str, list[DeliveryRecord]] = {}
        for record in self.records(status=PENDING):
            by_name.setdefault(record.destination, []).append(record)
        return [(d, by_name[d.name]) for d in targets if d.name in by_name]

    async def _lock(self, store: HistoryStore) -> Any:
        """One delivering process per store (a run and `kpi deliver` may overlap): the other
        waits up to LOCK_WAIT seconds, so a pending row is never sent by two at once."""
        from kpi_collector.store.lock import store_mutex

        mutex = store_mutex(store, "deliveries")
        deadline = time.monotonic() + LOCK_WAIT
        while not mutex.try_acquire():
            if time.monotonic() > deadline:
                raise DeliveryError(
                    f"another process has been delivering for over {LOCK_WAIT:g}s; "
                    "the deliveries stay pending for the next run or `kpi deliver`",
                    transient=True,
                )
            await asyncio.sleep(0.2)
        return mutex

    def selected(self, only: Sequence[str] | None) -> list[Destination]:
        if not only:
            return list(self.destinations)
        from kpi_collector.errors import unknown_names

        problem = unknown_names("destination", only, (d.name for d in self.destinations))
        if problem:
            raise ConfigError(problem.replace("no destination", "no enabled destination", 1))
        return [d for d in self.destinations if d.name in only]

    # state ----------------------------------------------------------------------------------

    def record_run(self, run_id: int, started_at: datetime, *, partial: bool = False) -> None:
        """Make each destination's delivery of this run's period pending (or leave it done).

        A `partial` run (some sources, `--only`) neither opens a message's day, week or month
        nor takes over its pending delivery: that message goes out once, with a full run's
        values. A table's row of the period gets its values (merged), and a message of every
        run is that run's."""
        for destination in self.destinations:
            if partial and not destination.upserts and destination.every != "run":
                continue
            period = self.period_of(destination, started_at, run_id)
            self._record(destination, period, run_id, started_at.timestamp())

    def _record(self, destination: Destination, period: str, run_id: int, started: float) -> None:
        ledger.record_pending(
            self._need_store(),
            destination.name,
            period,
            run_id=run_id,
            started_at=started,
            upserts=destination.upserts,
        )

    def records(
        self, *, status: str | None = None, destination: str | None = None, limit: int | None = None
    ) -> list[DeliveryRecord]:
        """Rows of `deliveries`, oldest first (see `kpi_collector.store.deliveries.records`)."""
        return ledger.records(
            self._need_store(), status=status, destination=destination, limit=limit
        )

    def _update(self, record_id: int, **values: Any) -> None:
        ledger.update(self._need_store(), record_id, **values)

    def _bump_attempts(self, record_id: int) -> None:
        ledger.bump_attempts(self._need_store(), record_id)

    # delivering -----------------------------------------------------------------------------

    async def _deliver_chain(
        self, store: HistoryStore, destination: Destination, rows: list[DeliveryRecord]
    ) -> list[DeliveryOutcome]:
        outcomes: list[DeliveryOutcome] = []
        for record in rows:
            try:
                delivery = self.delivery_of(store, destination, record)
            except DeliveryError as exc:
                self._update(record.id, status=DROPPED, last_error=redact(str(exc)))
                outcomes.append(
                    DeliveryOutcome(destination.name, record.period, False, redact(str(exc)))
                )
                continue

            async def save_progress(
                sent: int, plan: str | None, parts: int | None, record: DeliveryRecord = record
            ) -> None:
                values = {"progress": sent, "sent_plan": plan, "parts": parts}
                if destination.upserts:  # not over a newer run's fresh start (`_finish`)
                    ledger.update_for_run(store, record.id, record.run_id, **values)
                else:
                    self._update(record.id, **values)

            delivery.on_progress = save_progress
            outcome = await self._attempt(destination, delivery, record.id)
            outcomes.append(outcome)
            if outcome.ok:
                self._finish(destination, record, status=DONE, last_error=None)
            elif outcome.refused:  # this payload, never: it must not hold the later periods
                self._finish(destination, record, status=FAILED, last_error=outcome.error)
            else:
                self._finish(destination, record, last_error=outcome.error)
                break  # later periods wait, so this destination's deliveries stay in order
        return outcomes

    def _finish(self, destination: Destination, record: DeliveryRecord, **values: Any) -> None:
        """Record how `record`'s delivery ended. A table's row is left as it is when a newer
        run of its period was recorded meanwhile (another process's `kpi run`): it stays
        pending, to be written whole with that run's values. A message went out (or not) once
        for its period, whichever run it carried."""
        if destination.upserts:
            ledger.update_for_run(self._need_store(), record.id, record.run_id, **values)
        else:
            self._update(record.id, **values)

    async def _attempt(
        self, destination: Destination, delivery: Delivery, record_id: int | None
    ) -> DeliveryOutcome:
        """Deliver once, retrying transient failures with backoff (and `Retry-After`)."""
        attempts = 0
        earlier = delivery.earlier_attempts

        def before(n: int) -> None:
            nonlocal attempts
            attempts = n
            delivery.earlier_attempts = earlier + n - 1
            if record_id is not None:
                self._bump_attempts(record_id)  # recorded before the attempt

        async def once() -> None:
            # A 429 after parts went through is pacing, not failure (issue 18 §5): wait its
            # Retry-After and go on from the parts sent, without spending an attempt; the
            # loop ends because every pass sends at least one more part.
            while True:
                sent = delivery.progress
                try:
                    await destination.deliver(delivery)
                    return
                except KpiError as error:
                    retry_after: float | None = getattr(error, "retry_after", None)
                    if (
                        error.transient
                        and retry_after is not None
                        and retry_after <= self.max_retry_after
                        and delivery.progress > sent
                    ):
                        await pause(retry_after)
                        continue
                    raise
                except Exception as exc:
                    message = missing_package(exc) or f"{type(exc).__name__}: {exc}"
                    raise DeliveryError(message, transient=False) from exc

        try:
            await retrying(
                once,
                retries=destination.retries,
                backoff=self.backoff,
                max_wait=self.max_retry_after,
                before=before,
            )
        except KpiError as error:
            message = redact(str(error))
            if error.transient:
                message += (
                    f" (after {attempts} attempt{'s' if attempts > 1 else ''}; stays pending)"
                )
            if isinstance(error, DeliveryError) and error.credentials:
                message += f" ({credential_hint(destination)})"
            refused = isinstance(error, DeliveryError) and error.refused
            if refused and "--retry" not in message:  # unless it says how to retry itself
                message += " (refused for good: marked failed; `kpi deliver --retry` resends it)"
            return DeliveryOutcome(
                destination.name,
                delivery.period,
                False,
                message,
                attempts,
                error.transient,
                refused=refused,
            )
        return DeliveryOutcome(destination.name, delivery.period, True, attempts=attempts)

    def delivery_of(
        self, store: HistoryStore, destination: Destination, record: DeliveryRecord
    ) -> Delivery:
        """The Delivery of a pending row, rebuilt from the run's stored values and errors.

        Raises DeliveryError when the run's values are gone (the row is then dropped)."""
        run = ledger.stored_run(store, record.run_id)
        if run is None:
            raise DeliveryError(
                f"run {record.run_id} has no stored values any more; nothing to deliver"
            )
        values, timestamps = run.values, run.timestamps
        if destination.upserts:
            values, timestamps = self._period_values(store, destination, record, run)
        return self._delivery(
            destination,
            record.period,
            record.run_id,
            run.started_at,
            values,
            timestamps,
            run.errors,
            progress=record.progress,
            sent_plan=record.sent_plan,
            earlier_attempts=record.attempts,
            due_since=_due_since(record),
        )

    def _period_values(
        self,
        store: HistoryStore,
        destination: Destination,
        record: DeliveryRecord,
        run: ledger.StoredRun,
    ) -> tuple[dict[str, float], dict[str, float]]:
        """The values (and their times) a table's row of `record.period` is written with: the
        newest of each KPI over the period's runs since the row became pending, `run` last.

        The row keeps each KPI's newest value of the period (a re-run without a KPI leaves
        its value), but a pending row moves on to the period's newest run: when an earlier
        run's delivery had not gone out (the service down), the KPIs only that run collected
        were never written."""
        first = record.pending_run
        if first is None or record.run_id is None or first >= record.run_id:
            return run.values, run.timestamps
        values: dict[str, float] = {}
        timestamps: dict[str, float] = {}
        for run_id, started in ledger.run_starts(store, first, record.run_id - 1):
            if self.period_of(destination, started, run_id) != record.period:
                continue
            earlier = ledger.stored_run(store, run_id)
            if earlier is not None:
                values.update(earlier.values)
                timestamps.update(earlier.timestamps)
        if not values:
            return run.values, run.timestamps
        values.update(run.values)
        timestamps.update(run.timestamps)
        return values, timestamps

    def delivery_from_result(self, destination: Destination, result: RunResult) -> Delivery:
        period = self.period_of(destination, result.started_at, result.run_id)
        ts = result.started_at.timestamp()
        return self._delivery(
            destination,
            period,
            result.run_id,
            result.started_at,
            dict(result.values),
            {kpi: result.stamps.get(kpi, ts) for kpi in result.values},
            list(result.errors.items()),
        )

    def _delivery(
        self,
        destination: Destination,
        period: str,
        run_id: int | None,
        started: datetime,
        values: dict[str, float],
        timestamps: dict[str, float],
        errors: list[tuple[str, str]],
        *,
        progress: int = 0,
        sent_plan: str | None = None,
        earlier_attempts: int = 0,
        due_since: float | None = None,
    ) -> Delivery:
        from kpi_collector.store.periods import period_start

        local = started.astimezone(self.tz).date()
        start = local if destination.every == "run" else period_start(local, destination.every)
        order = self.order(values)
        previous: dict[str, float] = {}
        days = destination.compare_days
        if days and self.store is not None:
            from kpi_collector.destinations.digest import compared_values

            previous = compared_values(
                self.store, list(values), started, days, self.tz, at=timestamps
            )
        return Delivery(
            period=period,
            period_start=start,
            run_id=run_id,
            values={k: values[k] for k in order},
            timestamps=timestamps,
            kpis=self.kpis,
            order=order,
            tz=self.tz,
            now=started,
            previous=previous,
            errors=[(where, redact(message)) for where, message in errors],
            store=self.store,
            base_dir=self.base_dir,
            destination=destination.name,
            every=destination.every,
            compare_days=days,
            http_client=self._http,
            progress=progress,
            sent_plan=sent_plan,
            earlier_attempts=earlier_attempts,
            due_since=due_since,
        )

    async def _deliver_without_store(self, result: RunResult) -> list[DeliveryOutcome]:
        """No store (a Python API pipeline without `Store`): deliver now, keep no state."""
        if not result.values:
            return []
        from kpi_collector.collect.http import HttpClient

        async with HttpClient() as http:
            self._http = http
            try:
                return list(
                    await asyncio.gather(
                        *(
                            self._attempt(d, self.delivery_from_result(d, result), None)
                            for d in self.destinations
                        )
                    )
                )
            finally:
                self._http = None

    # plumbing -------------------------------------------------------------------------------

    def _need_store(self) -> HistoryStore:
        if self.store is None:
            raise ConfigError(
                "delivery state needs the history store: add a Store(...) destination"
            )
        return self.store


def _due_since(record: DeliveryRecord) -> float:
    """When `record` became due, before any attempt at it (UTC epoch seconds): the earlier of
    its `pending_since` (the run's start, or the fire time a scheduled delivery serves) and
    when the row was written."""
    if record.pending_since is None:
        return record.created_at
    return min(record.pending_since, record.created_at)
