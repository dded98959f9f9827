"""`type: pypi`: a Python package's downloads from the PyPI Stats JSON API (pypistats.org);
daily downloads for backfill (the service keeps 180 days).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Mapping
from datetime import date, timedelta
from typing import Any, ClassVar

from pydantic import Field, field_validator

from kpi_collector.collect.http import Response
from kpi_collector.errors import ExtractError
from kpi_collector.sources._service import (
    ServiceClient,
    ServiceSource,
    days,
    last_utc_day,
    parse_day,
    rolling_sums,
)
from kpi_collector.sources.base import Observation, SourceContext

#: the recent-downloads metrics and the days each sums (the last complete days, UTC)
DOWNLOAD_WINDOWS = {"downloads_last_day": 1, "downloads_last_week": 7, "downloads_last_month": 30}
_RECENT = tuple(DOWNLOAD_WINDOWS)
_TOTALS = {
    "downloads_total_with_mirrors": "with_mirrors",
    "downloads_total_without_mirrors": "without_mirrors",
}


class PyPI(ServiceSource):
    type: ClassVar[str] = "pypi"
    service_name: ClassVar[str] = "PyPI Stats"
    known_metrics: ClassVar[tuple[str, ...]] = (*_RECENT, *_TOTALS)
    default_metrics: ClassVar[tuple[str, ...]] = known_metrics

    package: str = Field(description="the package's name on the Python Package Index")
    api_url: str = "https://pypistats.org"

    @field_validator("package")
    @classmethod
    def _normalise(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?", value.strip()):
            raise ValueError(f"{value!r} is not a Python package name")
        return re.sub(r"[-_.]+", "-", value.strip()).lower()  # PEP 503, as the API keys them

    def not_found(self, response: Response) -> str:
        return (
            f"PyPI Stats knows no package {self.package!r}: check `package:` of source {self.name!r} "
            f"(a new package appears a day after its first downloads)"
        )

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        """The recent figures are sums of the daily series without mirrors, ending at the last
        day PyPI Stats has counted (as its `/recent` is, which cannot say which day that is,
        answers 404 for a package without downloads in 30 days, and keeps the same figures
        while PyPI Stats stalls); one read of `/overall` serves them and the totals."""
        client = self.client(ctx)
        wanted = self.wanted()
        recent = tuple(m for m in _RECENT if m in wanted)
        totals = tuple(m for m in _TOTALS if m in wanted)
        rows = asyncio.ensure_future(self._overall(client, mirrors=None if totals else False))
        parts: dict[tuple[str, ...], Any] = {}
        if recent:
            parts[recent] = self._recent(client, ctx, rows, recent)
        if totals:
            parts[totals] = self._totals(rows)
        try:
            return await self.gather(parts)
        finally:
            if not rows.done():
                rows.cancel()

    async def _recent(
        self,
        client: ServiceClient,
        ctx: SourceContext,
        rows: Awaitable[list[dict[str, Any]]],
        metrics: tuple[str, ...],
    ) -> dict[str, float]:
        counted, listed = await asyncio.gather(
            self._last_counted(client), rows, return_exceptions=True
        )
        if isinstance(counted, BaseException):
            raise counted
        if isinstance(listed, BaseException):
            raise listed
        expected = last_utc_day(ctx)
        if counted is None or counted < expected - timedelta(days=1):
            since = f"since {counted}" if counted is not None else "in its 180 days"
            raise ExtractError(
                f"PyPI Stats has counted no downloads {since} (its daily update has not run); "
                "the next run will try again",
                transient=True,
            )
        daily = _without_mirrors(listed)
        return {
            metric: sum(
                daily.get(counted - timedelta(days=n), 0.0) for n in range(DOWNLOAD_WINDOWS[metric])
            )
            for metric in metrics
        }

    async def _totals(self, rows: Awaitable[list[dict[str, Any]]]) -> dict[str, float]:
        totals = {metric: 0.0 for metric in _TOTALS}
        category_metric = {v: k for k, v in _TOTALS.items()}
        for row in await rows:
            metric = category_metric.get(row.get("category", ""))
            if metric is not None:
                totals[metric] += float(row.get("downloads") or 0)
        return totals

    async def _last_counted(self, client: ServiceClient) -> date | None:
        """The last day PyPI Stats has counted, or None when it has counted none in its 180.

        PyPI Stats lists no row for a day without downloads, nor for one it has not counted
        yet: the days PyPI as a whole (`__all__`, never 0 on a counted day) has downloads for
        tell them apart."""
        counted = _without_mirrors(await self._overall(client, mirrors=False, package="__all__"))
        return max((d for d, n in counted.items() if n > 0), default=None)

    async def _overall(
        self, client: ServiceClient, *, mirrors: bool | None, package: str | None = None
    ) -> list[dict[str, Any]]:
        params = {} if mirrors is None else {"mirrors": str(mirrors).lower()}
        path = f"/api/packages/{package or self.package}/overall"
        rows = _data(await client.json(path, params=params))
        if not isinstance(rows, list):
            raise ExtractError("PyPI Stats: `data` of the overall downloads is not a list")
        return [row for row in rows if isinstance(row, dict)]

    async def backfill(self, ctx: SourceContext, since: date) -> AsyncIterator[Observation]:
        """Downloads of the day, week and month ending on each day, without mirrors (like the
        recent figures), from the daily series; PyPI Stats keeps 180 days."""
        windows = {m: w for m, w in DOWNLOAD_WINDOWS.items() if m in self.wanted()}
        if not windows:
            return
        client = self.client(ctx)
        daily = _without_mirrors(await self._overall(client, mirrors=False))
        last = await self._last_counted(client)
        if last is None:
            ctx.limit("PyPI Stats has counted no downloads of PyPI in its 180 days")
            return
        until = last_utc_day(ctx)
        if last < until:
            ctx.limit(f"PyPI Stats has not counted the downloads after {last} yet")
            until = last
        daily = {d: n for d, n in daily.items() if d <= until}
        for day in days(min(daily, default=until + timedelta(days=1)), until):
            daily.setdefault(day, 0.0)  # counted, without downloads
        if daily and since - timedelta(days=max(windows.values()) - 1) < min(daily):
            ctx.limit(
                f"PyPI Stats keeps the last 180 days (from {min(daily)}), and a week or month "
                "total needs its whole window"
                if max(windows.values()) > 1
                else f"PyPI Stats keeps the last 180 days (from {min(daily)})"
            )
        for observation in rolling_sums(daily, windows, since=since, until=until, tz=ctx.tz):
            yield observation


def _without_mirrors(rows: list[dict[str, Any]]) -> dict[date, float]:
    """The downloads without mirrors of each day listed."""
    daily: dict[date, float] = {}
    for row in rows:
        if row.get("category") == "without_mirrors":
            day = parse_day(str(row.get("date")))
            daily[day] = daily.get(day, 0.0) + float(row.get("downloads") or 0)
    return daily


def _data(body: Any) -> Any:
    if not isinstance(body, dict) or "data" not in body:
        raise ExtractError("the answer has no `data`")
    return body["data"]
