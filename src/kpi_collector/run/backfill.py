"""Backfill: import past values from sources that can give them, stored with their real
dates, marked as backfilled, never duplicated and never over a value collected live.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from kpi_collector.collect.http import HttpClient
from kpi_collector.errors import KpiError
from kpi_collector.secrets import redact
from kpi_collector.sources.base import Source, SourceContext
from kpi_collector.store import StoredObservation

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from kpi_collector.config.models import Defaults
    from kpi_collector.store import HistoryStore

DEFAULT_DAYS = 365


@dataclass
class BackfillReport:
    """What a backfill did: values added per source, sources that cannot backfill, errors."""

    added: dict[str, int] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


async def abackfill(
    store: HistoryStore,
    sources: Sequence[Source],
    *,
    defaults: Defaults,
    tz: ZoneInfo,
    base_dir: Path,
    since: date | None = None,
    now: datetime | None = None,
) -> BackfillReport:
    """Ask each source that can backfill for its daily values from `since` (default: a year
    before `now`, in `tz`) and store them with their own timestamps. Sources run concurrently
    and fail alone: errors land in the report, by source name, never raised."""
    now = now or datetime.now(UTC)
    since = since or (now.astimezone(tz).date() - timedelta(days=DEFAULT_DAYS))
    report = BackfillReport()
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
        try:
            async for obs in source.backfill(ctx, since):
                points.append(
                    StoredObservation(
                        kpi=f"{source.name}.{obs.metric}",
                        ts=obs.ts.timestamp(),
                        value=float(obs.value),
                        source=source.name,
                    )
                )
        except KpiError as exc:
            report.errors[source.name] = redact(str(exc))
            return
        except Exception as exc:
            report.errors[source.name] = redact(f"{type(exc).__name__}: {exc}")
            return
        report.added[source.name] = await asyncio.to_thread(store.add_observations, points, tz=tz)

    try:
        await asyncio.gather(*(one(s) for s in sources))
    finally:
        await client.close()
    return report
