"""Backfill: import past values from sources that can give them, stored with their real
dates, marked as backfilled, never duplicated and never over a value collected live.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from kpi_collector.collect.http import HttpClient
from kpi_collector.errors import ConfigError, KpiError
from kpi_collector.secrets import redact
from kpi_collector.sources.base import Source, SourceContext

if TYPE_CHECKING:
    from kpi_collector.pipeline import Pipeline

DEFAULT_DAYS = 365


@dataclass
class BackfillReport:
    added: dict[str, int] = field(default_factory=dict)
    unsupported: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)


def run_backfill(
    pipeline: Pipeline,
    *,
    since: date | None = None,
    only: Sequence[str] = (),
    now: datetime | None = None,
) -> BackfillReport:
    return asyncio.run(abackfill(pipeline, since=since, only=only, now=now))


async def abackfill(
    pipeline: Pipeline,
    *,
    since: date | None = None,
    only: Sequence[str] = (),
    now: datetime | None = None,
) -> BackfillReport:
    store = pipeline.store
    if store is None:
        raise ConfigError("backfill needs a store to write into")
    now = now or datetime.now(UTC)
    since = since or (now.astimezone(pipeline.tz).date() - timedelta(days=DEFAULT_DAYS))
    report = BackfillReport()
    sources = pipeline.selected(only)
    client = HttpClient(
        concurrency=pipeline.defaults.concurrency, per_host=pipeline.defaults.per_host
    )

    async def one(source: Source) -> None:
        if not source.can_backfill:
            report.unsupported.append(source.name)
            return
        timeout = source.timeout or pipeline.defaults.timeout
        retries = pipeline.defaults.retries if source.retries is None else source.retries
        ctx = SourceContext(client, timeout, retries, pipeline.tz, now, pipeline.base_dir)
        points = []
        try:
            async for obs in source.backfill(ctx, since):
                points.append(
                    (
                        f"{source.name}.{obs.metric}",
                        obs.ts.timestamp(),
                        float(obs.value),
                        source.name,
                    )
                )
        except KpiError as exc:
            report.errors[source.name] = redact(str(exc))
            return
        except Exception as exc:
            report.errors[source.name] = redact(f"{type(exc).__name__}: {exc}")
            return
        report.added[source.name] = await asyncio.to_thread(
            store.add_observations, points, tz=pipeline.tz
        )

    try:
        await asyncio.gather(*(one(s) for s in sources))
    finally:
        await client.close()
    return report
