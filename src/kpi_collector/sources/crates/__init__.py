"""`type: crates`: a Rust crate's downloads (all-time, last 90 days, yesterday's) and published
versions from the crates.io API (`GET /api/v1/crates/{name}` and `/downloads`; crates.io/data-access).
crates.io requires a User-Agent that names the client and how to reach its operator; `contact:`
adds yours. Backfill gives the daily downloads and the all-time total of each of the last 90 days.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from datetime import date, timedelta
from typing import Any, ClassVar

from pydantic import Field, field_validator

from kpi_collector._version import __version__
from kpi_collector.collect.http import Response
from kpi_collector.errors import ExtractError
from kpi_collector.sources._service import (
    ServiceClient,
    ServiceSource,
    day_end,
    days,
    last_utc_day,
    number,
    parse_day,
    parse_time,
)
from kpi_collector.sources.base import Observation, SourceContext

#: "the last 90 days" of daily downloads the API keeps (crates.io/data-access)
HISTORY_DAYS = 90
_NAME = re.compile(r"^[A-Za-z][\w-]{0,63}$")


class Crates(ServiceSource):
    type: ClassVar[str] = "crates"
    service_name: ClassVar[str] = "crates.io"
    json_not_found: ClassVar[bool] = True  # its 404s are JSON; a web page is not it
    known_metrics: ClassVar[tuple[str, ...]] = (
        "downloads",
        "recent_downloads",
        "daily_downloads",
        "versions",
    )
    default_metrics: ClassVar[tuple[str, ...]] = known_metrics

    crate: str = Field(description="the crate's name, e.g. serde")
    contact: str | None = Field(
        default=None,
        description="an email or URL for crates.io to reach you, added to the User-Agent",
    )
    api_url: str = "https://crates.io"

    @field_validator("crate")
    @classmethod
    def _crate_name(cls, value: str) -> str:
        if not _NAME.match(value.strip()):
            raise ValueError(f"{value!r} is not a crate name like serde or tokio-util")
        return value.strip()

    @field_validator("contact")
    @classmethod
    def _contact(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or any(c in value for c in "\r\n()")):
            raise ValueError(f"{value!r} is not an email or URL for a User-Agent")
        return value.strip() if value else value

    def user_agent(self) -> str:
        """`kpi-collector/VERSION (crates.io connector; contact)`: what the crawler policy
        asks for, a name for the bot and a way to reach whoever runs it."""
        contact = f"; {self.contact}" if self.contact else ""
        return f"kpi-collector/{__version__} (crates.io connector; KPI collection bot{contact})"

    def headers(self) -> dict[str, str]:
        return {"Accept": "application/json", "User-Agent": self.user_agent()}

    def not_found(self, response: Response) -> str:
        return f"crates.io has no crate {self.crate!r}: check `crate:` of source {self.name!r}"

    def forbidden(self, response: Response, message: str) -> str:
        return (
            f"crates.io refused the request (HTTP 403: {message or 'forbidden'}); it requires a "
            f"User-Agent that says how to reach you: add `contact: you@example.com` to source "
            f"{self.name!r}"
        )

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        client = self.client(ctx)
        wanted = self.wanted()
        parts: dict[tuple[str, ...], Any] = {}
        totals = tuple(m for m in ("downloads", "recent_downloads", "versions") if m in wanted)
        if totals:
            parts[totals] = self._totals(client, totals)
        if "daily_downloads" in wanted:
            parts[("daily_downloads",)] = self._yesterday(client, last_utc_day(ctx))
        return await self.gather(parts)

    async def _crate(self, client: ServiceClient) -> dict[str, Any]:
        data = await client.json(f"/api/v1/crates/{self.crate}")
        if not isinstance(data, dict) or not isinstance(data.get("crate"), dict):
            raise ExtractError("the crates.io answer has no `crate`")
        return data

    async def _totals(self, client: ServiceClient, metrics: tuple[str, ...]) -> dict[str, float]:
        data = await self._crate(client)
        values = {}
        for metric in metrics:
            if metric == "versions":
                listed = data.get("versions")
                if not isinstance(listed, list):
                    raise ExtractError("the crates.io answer has no `versions` list")
                values[metric] = float(sum(1 for v in listed if not v.get("yanked")))
            else:
                values[metric] = number(data["crate"], metric, self.service_name)
        return values

    async def _daily(self, client: ServiceClient) -> dict[date, float]:
        """Downloads of each day of the last 90 (UTC days, today's so far included): the
        most recent versions' `version_downloads` plus `meta.extra_downloads`, which holds
        every other version's, by date."""
        data = await client.json(f"/api/v1/crates/{self.crate}/downloads")
        rows = data.get("version_downloads") if isinstance(data, dict) else None
        extra = (data.get("meta") or {}).get("extra_downloads") if isinstance(data, dict) else None
        if not isinstance(rows, list) or not isinstance(extra, list):
            raise ExtractError(
                "the crates.io answer has no `version_downloads` and `meta.extra_downloads`"
            )
        daily: dict[date, float] = {}
        for row in [*rows, *extra]:
            day = parse_day(str(row.get("date")))
            daily[day] = daily.get(day, 0.0) + number(row, "downloads", self.service_name)
        return daily

    async def _yesterday(self, client: ServiceClient, last: date) -> dict[str, float]:
        daily = await self._daily(client)
        return {"daily_downloads": daily.get(last, 0.0)}

    async def backfill(self, ctx: SourceContext, since: date) -> AsyncIterator[Observation]:
        """For each day from `since` to yesterday within the last 90: `daily_downloads` (a day
        without downloads is 0) and `downloads`, the all-time total at the end of that day
        (today's total less the downloads of the days after it). Yesterday is the last day
        complete both in UTC (crates.io's days) and in the config's time zone."""
        wanted = [m for m in ("downloads", "daily_downloads") if m in self.wanted()]
        if not wanted:
            return
        client = self.client(ctx)
        data = await self._crate(client)
        total = number(data["crate"], "downloads", self.service_name)
        created = parse_time(str(data["crate"].get("created_at"))).date()
        daily = await self._daily(client)
        first = max(ctx.today - timedelta(days=HISTORY_DAYS - 1), created)
        if since < first:
            ctx.limit(
                f"crates.io keeps daily downloads for {HISTORY_DAYS} days (from {first})"
                if first > created
                else f"{self.crate} was published on {created}"
            )
        yesterday = last_utc_day(ctx)
        later = sum(v for d, v in daily.items() if d > yesterday)  # the day under way's, so far
        for day in sorted(days(max(since, first), yesterday), reverse=True):
            stamp = day_end(day, ctx.tz)
            if "daily_downloads" in wanted:
                yield Observation("daily_downloads", daily.get(day, 0.0), stamp)
            if "downloads" in wanted:
                yield Observation("downloads", total - later, stamp)
            later += daily.get(day, 0.0)
