"""Values of complete days: a source whose `collect` gives the last complete day
(`Source.complete_days`, such as `active_users`) has its values stored with that day's stamp,
once per day, and the days missed since its last stored day filled in through its backfill.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from kpi_collector.errors import StoreError
from kpi_collector.store import RunError

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from kpi_collector.config.models import Defaults, KpiSpec
    from kpi_collector.run.engine import SourceOutcome
    from kpi_collector.sources.base import Source
    from kpi_collector.store import HistoryStore, StoredObservation


@dataclass
class CompleteDays:
    """What a run stamps with the last complete day: `day` (yesterday in the config's time
    zone), `stamp` (its end, 23:59:59 local, in UTC epoch seconds: where `kpi backfill`
    stamps a day), the `sources` whose values describe it, by name, and `kpis`, their KPI
    ids and those of the derived KPIs (formulas) computed from them alone."""

    day: date
    stamp: float
    sources: dict[str, Source]
    kpis: set[str] = field(default_factory=set)


def complete_days(
    sources: Sequence[Source], kpis: Mapping[str, KpiSpec], *, now: datetime, tz: ZoneInfo
) -> CompleteDays | None:
    """The run's complete-day plan at `now`; None when no source gives complete days."""
    chosen = {source.name: source for source in sources if source.complete_days}
    if not chosen:
        return None
    # here, not at the top: every `kpi run` imports this module, and `_service` imports
    # pydantic, which a run from the config cache never needs (see tests/test_startup.py)
    from kpi_collector.sources._service import day_end

    day = now.astimezone(tz).date() - timedelta(days=1)
    return CompleteDays(
        day, day_end(day, tz).timestamp(), chosen, complete_day_kpis(chosen.values(), kpis)
    )


def complete_day_kpis(sources: Iterable[Source], kpis: Mapping[str, KpiSpec]) -> set[str]:
    """The KPI ids whose values describe a complete day: those of the sources that give
    complete days (`Source.complete_days`) and the derived KPIs computed from them alone."""
    found = {kpi for source in sources if source.complete_days for kpi in source.kpi_ids()}
    formulas = {kpi: spec.formula for kpi, spec in kpis.items() if spec.formula}
    if found and formulas:
        from kpi_collector.config.formula import Formula

        inputs = {kpi: Formula.parse(text).inputs for kpi, text in formulas.items()}
        grew = True
        while grew:  # a formula over formulas over complete days describes that day too
            grew = False
            for kpi, needed in inputs.items():
                if kpi not in found and needed and needed <= found:
                    found.add(kpi)
                    grew = True
    return found


def newest_stamps(store: HistoryStore, plan: CompleteDays) -> dict[str, StoredObservation]:
    """Each of `plan.kpis`' newest stored value at or before the day's stamp (UTC epoch
    seconds): a KPI at the stamp already has the day's value (an earlier run of today, or
    `kpi backfill`), and the day of the newest is where the missed days start. Raises
    StoreError."""
    return store.latest(sorted(plan.kpis), before=plan.stamp)


def described_days(plan: CompleteDays, outcomes: Iterable[SourceOutcome]) -> dict[str, date]:
    """The complete day each of `plan.sources` that answered describes, by source name:
    `plan.day` (yesterday), or the earlier day its `collect` named (`SourceContext.describes`:
    the service's yesterday is still under way, or not counted yet). A later day than
    yesterday (a bug in the source) counts as yesterday."""
    return {
        outcome.source: min(outcome.day or plan.day, plan.day)
        for outcome in outcomes
        if outcome.source in plan.sources
    }


def source_stamps(
    plan: CompleteDays, outcomes: Iterable[SourceOutcome], tz: ZoneInfo
) -> dict[str, float]:
    """KPI id -> the stamp (UTC epoch seconds) of each value of `plan.sources`: the end of
    the day it describes (`described_days`), as `kpi backfill` stamps a day."""
    from kpi_collector.sources._service import day_end

    stamps: dict[str, float] = {}
    described = described_days(plan, outcomes)
    for outcome in outcomes:
        day = described.get(outcome.source)
        if day is None:
            continue
        stamp = plan.stamp if day == plan.day else day_end(day, tz).timestamp()
        stamps.update({f"{outcome.source}.{metric}": stamp for metric in outcome.values})
    return stamps


def formula_stamps(
    plan: CompleteDays,
    values: Mapping[str, float],
    stamps: Mapping[str, float],
    kpis: Mapping[str, KpiSpec],
) -> tuple[dict[str, float], dict[str, float]]:
    """The stamps of the derived KPIs of `plan.kpis` that have a value, by KPI id: that of
    their inputs, all of one day; and, apart, those whose inputs describe different days (a
    source whose service has not finished yesterday beside one that has), with the stamp of
    the earliest: the run's value of such a formula mixes two days (a ratio of no one day's
    figures), and is computed again from that day's stored values (`backfill_formulas`)."""
    found: dict[str, float] = {}
    mixed: dict[str, float] = {}
    formulas = {
        kpi: spec.formula
        for kpi, spec in kpis.items()
        if spec.formula and kpi in plan.kpis and kpi in values
    }
    if not formulas:
        return found, mixed
    from kpi_collector.config.formula import Formula

    inputs = {kpi: Formula.parse(text).inputs for kpi, text in formulas.items()}
    grew = True
    while grew:  # a formula over formulas: once its inputs have theirs
        grew = False
        for kpi, needed in inputs.items():
            known = {**stamps, **found, **mixed}
            if kpi in found or kpi in mixed or any(i in inputs and i not in known for i in needed):
                continue
            # an input the run did not collect (a run of some sources: `--only`, a source's
            # own schedule) is the stored value of the day
            days = sorted({known.get(i, plan.stamp) for i in needed})
            if len(days) == 1 and not any(i in mixed for i in needed):
                found[kpi] = days[0]
            else:
                mixed[kpi] = days[0]
            grew = True
    return found, mixed


def kept_values(
    store: HistoryStore,
    stamps: Mapping[str, float],
    plan: CompleteDays,
    newest: Mapping[str, StoredObservation] | None,
) -> dict[str, float]:
    """The KPIs of `stamps` whose day's value is stored already (a run earlier today, `kpi
    backfill`), with that stored value: the day is stored once, and the run shows and
    delivers the stored value, never one it did not store (late events since). `newest`:
    `newest_stamps`, read already (None: read here). Raises StoreError."""
    by_stamp: dict[float, list[str]] = {}
    for kpi, stamp in stamps.items():
        by_stamp.setdefault(stamp, []).append(kpi)
    kept: dict[str, float] = {}
    for stamp, kpis in by_stamp.items():
        if stamp == plan.stamp and newest is not None and all(k in plan.kpis for k in kpis):
            rows = newest
        else:  # another day's, or a metric the source gave beyond those it declared
            rows = store.latest(sorted(kpis), before=stamp)
        kept.update({k: rows[k].value for k in kpis if k in rows and rows[k].ts == stamp})
    return kept


async def fill_missed_days(
    store: HistoryStore,
    plan: CompleteDays,
    newest: Mapping[str, StoredObservation],
    *,
    described: Mapping[str, date],
    failed: set[str],
    kpis: Mapping[str, KpiSpec],
    defaults: Defaults,
    tz: ZoneInfo,
    base_dir: Path,
    now: datetime,
) -> list[RunError]:
    """Store the complete days between each source's last stored day and `plan.day`
    (neither included; at most a year), through the source's backfill, with the derived
    KPIs' values of those days: a daily job that missed days (the machine was off) leaves no
    hole. `described`: the day each source's values of this run describe when not
    `plan.day` (`described_days`), the day before which its filling stops. A source that
    never stored a value is left to `kpi backfill`, and one that failed in this run
    (`failed`, by name) to the next run. Returns the errors, one per source."""
    from kpi_collector.run.backfill import DEFAULT_DAYS, abackfill, backfill_formulas

    errors: list[RunError] = []
    filled: list[date] = []
    last = plan.day - timedelta(days=1)
    for name, source in plan.sources.items():
        until = described.get(name, plan.day) - timedelta(days=1)
        stored = [newest[kpi].ts for kpi in source.kpi_ids() if kpi in newest]
        if name in failed or not stored:
            continue
        first = datetime.fromtimestamp(max(stored), tz).date() + timedelta(days=1)
        first = max(first, plan.day - timedelta(days=DEFAULT_DAYS))
        if first > until:
            continue
        report = await abackfill(
            store,
            [source],
            defaults=defaults,
            tz=tz,
            base_dir=base_dir,
            since=first,
            until=until,
            now=now,
        )
        if name in report.errors:
            errors.append(
                RunError(
                    name,
                    None,
                    f"filling in the complete days {first} to {until}, missed since its last "
                    f"stored day, failed: {report.errors[name]}; `kpi backfill --since {first} "
                    f"--only {name}` fills them in",
                    False,
                )
            )
        else:
            filled.append(first)
    if filled:
        try:
            await asyncio.to_thread(
                backfill_formulas, store, kpis, tz=tz, since=min(filled), until=last
            )
        except StoreError as exc:
            errors.append(
                RunError("formula", None, f"derived KPIs of the days filled in: {exc}", False)
            )
    return errors
