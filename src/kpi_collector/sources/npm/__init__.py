"""`type: npm`: a JavaScript package's downloads from npm's public download counts API;
daily downloads for backfill, as far back as npm keeps them (2015-01-10), read in chunks
because one request may span at most 18 months
(https://github.com/npm/registry/blob/main/docs/download-counts.md#limits).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from datetime import date, timedelta
from typing import Any, ClassVar

from pydantic import Field, field_validator

from kpi_collector.collect.http import Response
from kpi_collector.errors import ExtractError
from kpi_collector.sources._service import (
    ServiceClient,
    ServiceSource,
    last_utc_day,
    parse_day,
    rolling_sums,
)
from kpi_collector.sources.base import Observation, SourceContext
from kpi_collector.sources.pypi import DOWNLOAD_WINDOWS

_PERIODS = {
    "downloads_last_day": "last-day",
    "downloads_last_week": "last-week",
    "downloads_last_month": "last-month",
}
#: days per range request: within the API's limit of 18 months per request
CHUNK_DAYS = 365
FIRST_DAY = date(2015, 1, 10)  # "the earliest date for which data will be returned"


class Npm(ServiceSource):
    type: ClassVar[str] = "npm"
    service_name: ClassVar[str] = "npm"
    known_metrics: ClassVar[tuple[str, ...]] = tuple(_PERIODS)
    default_metrics: ClassVar[tuple[str, ...]] = known_metrics

    package: str = Field(description="the package's name, scoped ones too (@scope/name)")
    api_url: str = "https://api.npmjs.org"

    @field_validator("package")
    @classmethod
    def _name(cls, value: str) -> str:
        value = value.strip()
        if not re.fullmatch(r"(@[a-z0-9][\w.-]*/)?[a-z0-9][\w.-]*", value, flags=re.IGNORECASE):
            raise ValueError(f"{value!r} is not an npm package name like express or @scope/name")
        return value

    def not_found(self, response: Response) -> str:
        return f"npm has no download counts for package {self.package!r}: check `package:` of source {self.name!r}"

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        client = self.client(ctx)
        return await self.gather({(m,): self._point(client, m) for m in self.wanted()})

    async def _point(self, client: ServiceClient, metric: str) -> dict[str, float]:
        body = await client.json(f"/downloads/point/{_PERIODS[metric]}/{self.package}")
        downloads = body.get("downloads") if isinstance(body, dict) else None
        if isinstance(downloads, bool) or not isinstance(downloads, int | float):
            raise ExtractError(f"npm: no `downloads` number for {_PERIODS[metric]}")
        return {metric: float(downloads)}

    async def backfill(self, ctx: SourceContext, since: date) -> AsyncIterator[Observation]:
        """Downloads of the day, week and month ending on each day, from daily counts."""
        windows = {m: w for m, w in DOWNLOAD_WINDOWS.items() if m in self.wanted()}
        if not windows:
            return
        # npm counts UTC days, and answers one it has not counted yet with 0
        until = last_utc_day(ctx)
        # the month-long window of `since` needs the 29 days before it too
        wanted_from = since - timedelta(days=max(windows.values()) - 1)
        if wanted_from < FIRST_DAY:
            ctx.limit(
                f"npm keeps no download counts before {FIRST_DAY}"
                + (
                    ", and a week or month total needs its whole window"
                    if max(windows.values()) > 1
                    else ""
                )
            )
        start = max(wanted_from, FIRST_DAY)
        client = self.client(ctx)
        daily: dict[date, float] = {}
        while start <= until:
            end = min(until, start + timedelta(days=CHUNK_DAYS - 1))
            body = await client.json(
                f"/downloads/range/{start.isoformat()}:{end.isoformat()}/{self.package}"
            )
            for row in _rows(body):
                daily[parse_day(str(row.get("day")))] = float(row.get("downloads") or 0)
            start = end + timedelta(days=1)
        for observation in rolling_sums(daily, windows, since=since, until=until, tz=ctx.tz):
            yield observation


def _rows(body: Any) -> list[dict[str, Any]]:
    rows = body.get("downloads") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise ExtractError("npm: the range answer has no `downloads` list")
    return [row for row in rows if isinstance(row, dict)]
