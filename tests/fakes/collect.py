"""Running sources in tests: through the Pipeline (`run`), or one source against its local
fake (`kpi_collector.sources.<type>.fake`) the way the engine does: through a real HTTP
client with a short backoff (`collect`, `outcome`, `backfill`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from kpi_collector.config.models import Defaults

FAST = Defaults(timeout=2, retries=2)


def run(*sources: Any, **kwargs: Any) -> Any:
    """`Pipeline(sources=...).process()` with short timeouts and retries: the RunResult."""
    from kpi_collector import Pipeline

    return Pipeline(sources=sources, defaults=kwargs.pop("defaults", FAST), **kwargs).process()


def _context(client: Any, *, now: datetime | None, tz: str, timeout: float, retries: int) -> Any:
    from zoneinfo import ZoneInfo

    from kpi_collector.sources.base import SourceContext

    return SourceContext(
        client, timeout, retries, ZoneInfo(tz), now or datetime.now(UTC), Path.cwd()
    )


def collect(
    source: Any,
    *,
    now: datetime | None = None,
    tz: str = "UTC",
    timeout: float = 5.0,
    retries: int = 2,
) -> dict[str, float]:
    """`source.collect` through a real HTTP client (short backoff); errors raise."""
    from kpi_collector.collect.http import HttpClient

    async def go() -> dict[str, float]:
        async with HttpClient(backoff=0.05) as client:
            ctx = _context(client, now=now, tz=tz, timeout=timeout, retries=retries)
            return dict(await source.collect(ctx))

    return asyncio.run(go())


def outcome(
    source: Any,
    *,
    now: datetime | None = None,
    tz: str = "UTC",
    timeout: float = 5.0,
    retries: int = 2,
) -> Any:
    """What the engine records for the source: values and (redacted) error messages."""
    from zoneinfo import ZoneInfo

    from kpi_collector.collect.http import HttpClient
    from kpi_collector.config.models import Defaults
    from kpi_collector.run.engine import collect_one

    async def go() -> Any:
        async with HttpClient(backoff=0.05) as client:
            return await collect_one(
                source,
                client,
                defaults=Defaults(timeout=timeout, retries=retries),
                tz=ZoneInfo(tz),
                base_dir=Path.cwd(),
                now=now or datetime.now(UTC),
            )

    return asyncio.run(go())


def backfill(
    source: Any,
    since: date,
    *,
    now: datetime | None = None,
    tz: str = "UTC",
    timeout: float = 5.0,
    retries: int = 2,
    limits: list[str] | None = None,
) -> list[Any]:
    """Every observation `source.backfill` yields; the reasons it gives for stopping short
    of the range (`ctx.limit`) are added to `limits`."""
    from kpi_collector.collect.http import HttpClient

    async def go() -> list[Any]:
        async with HttpClient(backoff=0.05) as client:
            ctx = _context(client, now=now, tz=tz, timeout=timeout, retries=retries)
            observations = [obs async for obs in source.backfill(ctx, since)]
            if limits is not None:
                limits.extend(ctx.limits)
            return observations

    return asyncio.run(go())
