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

#: days per range request: within the API's limit of 18 months per request
CHUNK_DAYS = 365
FIRST_DAY = date(2015, 1, 10)  # "the earliest date for which data will be returned"


class Npm(ServiceSource):
    type: ClassVar[str] = "npm"
    service_name: ClassVar[str] = "npm"
    json_not_found: ClassVar[bool] = True  # its 404s are JSON; a web page is not it
    known_metrics: ClassVar[tuple[str, ...]] = tuple(DOWNLOAD_WINDOWS)
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
        """Downloads of the last day, week and month that npm has counted: the last complete
        UTC day, or the day before while that one's counts have not landed."""
        client = self.client(ctx)
        last = await _last_counted_day(client, last_utc_day(ctx))
        if last is None or last < last_utc_day(ctx) - timedelta(days=1):
            since = f"since {last}" if last is not None else "for the last week"
            raise ExtractError(
                f"npm has counted no downloads {since} (its daily counts have not landed); "
                "the next run will try again",
                transient=True,
            )
        windows = {m: DOWNLOAD_WINDOWS[m] for m in self.wanted()}
        first = last - timedelta(days=max(windows.values()) - 1)
        daily = await self._daily(client, first, last)
        return {
            metric: sum(daily.get(last - timedelta(days=n), 0.0) for n in range(width))
            for metric, width in windows.items()
        }

    async def _daily(self, client: ServiceClient, first: date, last: date) -> dict[date, float]:
        body = await client.json(
            f"/downloads/range/{first.isoformat()}:{last.isoformat()}/{self.package}"
        )
        daily: dict[date, float] = {}
        for row in _rows(body):
            day = parse_day(str(row.get("day")))
            if first <= day <= last:
                daily[day] = _downloads(row)
        return daily

    async def backfill(self, ctx: SourceContext, since: date) -> AsyncIterator[Observation]:
        """Downloads of the day, week and month ending on each day, from daily counts, up to
        the last day npm has counted."""
        windows = {m: w for m, w in DOWNLOAD_WINDOWS.items() if m in self.wanted()}
        if not windows:
            return
        # npm counts UTC days, and answers one it has not counted yet with 0: the backfill
        # ends at the last day the whole registry has downloads for
        client = self.client(ctx)
        until = last_utc_day(ctx)
        counted = await _last_counted_day(client, until)
        if counted is None:
            ctx.limit(f"npm has counted no downloads from {until - timedelta(days=6)} on yet")
            return
        if counted < until:
            ctx.limit(f"npm has not counted the downloads after {counted} yet")
            until = counted
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
        daily: dict[date, float] = {}
        while start <= until:
            end = min(until, start + timedelta(days=CHUNK_DAYS - 1))
            daily.update(await self._daily(client, start, end))
            start = end + timedelta(days=1)
        for observation in rolling_sums(daily, windows, since=since, until=until, tz=ctx.tz):
            yield observation


async def _last_counted_day(client: ServiceClient, last: date) -> date | None:
    """The last day up to `last` whose counts have landed, or None for none in its week.

    npm answers a day not counted yet with 0 downloads (or leaves it out), for a package as
    for the whole registry, so a package's 0 cannot tell; the whole registry's downloads are
    never 0 for a counted day (`/downloads/range/{week}` without a package)."""
    first = last - timedelta(days=6)
    body = await client.json(f"/downloads/range/{first.isoformat()}:{last.isoformat()}")
    landed = [
        day
        for row in _rows(body)
        if first <= (day := parse_day(str(row.get("day")))) <= last and _downloads(row) > 0
    ]
    return max(landed, default=None)


def _downloads(row: dict[str, Any]) -> float:
    value = row.get("downloads")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ExtractError(f"npm: the downloads of {row.get('day')} are not a number")
    return float(value)


def _rows(body: Any) -> list[dict[str, Any]]:
    rows = body.get("downloads") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise ExtractError("npm: the range answer has no `downloads` list")
    return [row for row in rows if isinstance(row, dict)]
