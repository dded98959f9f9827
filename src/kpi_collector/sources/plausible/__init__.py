"""`type: plausible`: a site's visitors, pageviews, visits, bounce rate and visit duration of
each day from the Plausible Stats API v2 (`POST /api/v2/query`, plausible.io/docs/stats-api-v2);
backfill gives each past day.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import date, timedelta
from typing import Any, ClassVar

from pydantic import Field

from kpi_collector.collect.http import Auth, Response
from kpi_collector.errors import ExtractError
from kpi_collector.secrets import Secret
from kpi_collector.sources._service import ServiceSource, day_end, parse_day
from kpi_collector.sources.base import Observation, SourceContext

#: the Stats API v2 metrics this connector asks for (visit_duration in seconds, bounce_rate in %)
METRICS = ("visitors", "pageviews", "visits", "bounce_rate", "visit_duration")


class Plausible(ServiceSource):
    type: ClassVar[str] = "plausible"
    service_name: ClassVar[str] = "Plausible"
    known_metrics: ClassVar[tuple[str, ...]] = METRICS
    default_metrics: ClassVar[tuple[str, ...]] = METRICS
    credentials: ClassVar[Mapping[str, str]] = {"api_key": "PLAUSIBLE_API_KEY"}

    site_id: str = Field(description="the site's domain as registered in Plausible")
    api_key: Secret = Field(description="a Stats API key (Settings → API keys)")
    filters: list[Any] = Field(
        default_factory=list, description='Stats API v2 filters, e.g. [["is", "event:page", ["/"]]]'
    )
    api_url: str = "https://plausible.io"

    def auth(self) -> Auth | None:
        return Auth(bearer=self.api_key)

    def not_found(self, response: Response) -> str:
        return f"Plausible has no Stats API at {self.api_url}: check `api_url:` of source {self.name!r}"

    async def _query(self, ctx: SourceContext, first: date, last: date, by_day: bool) -> Any:
        wanted = self.wanted()
        body: dict[str, Any] = {
            "site_id": self.site_id,
            "metrics": wanted,
            "date_range": [first.isoformat(), last.isoformat()],
        }
        if self.filters:
            body["filters"] = self.filters
        if by_day:
            body["dimensions"] = ["time:day"]
        data = await self.client(ctx).json("/api/v2/query", method="POST", json_body=body)
        results = data.get("results") if isinstance(data, dict) else None
        if not isinstance(results, list):
            raise ExtractError("Plausible: the answer has no `results` list")
        rows = []
        for row in results:
            values = row.get("metrics") if isinstance(row, dict) else None
            if not isinstance(values, list) or len(values) != len(wanted):
                raise ExtractError("Plausible: a result's `metrics` do not match the query")
            rows.append((row.get("dimensions") or [], dict(zip(wanted, values, strict=True))))
        return rows

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        """Yesterday's figures (the last complete day in the site's time zone)."""
        yesterday = ctx.today - timedelta(days=1)
        rows = await self._query(ctx, yesterday, yesterday, by_day=False)
        if not rows:
            return {}
        return {m: float(v) for m, v in rows[0][1].items() if isinstance(v, int | float)}

    async def backfill(self, ctx: SourceContext, since: date) -> AsyncIterator[Observation]:
        """Each day's figures from `since` to yesterday, one call (`dimensions: ["time:day"]`);
        days without visits are absent from the answer and get no value."""
        yesterday = ctx.today - timedelta(days=1)
        if since > yesterday:
            return
        for dims, values in await self._query(ctx, since, yesterday, by_day=True):
            day = parse_day(str(dims[0])) if dims else None
            if day is None:
                raise ExtractError("Plausible: a daily result has no `time:day` dimension")
            for metric, value in values.items():
                if isinstance(value, int | float):
                    yield Observation(metric, float(value), day_end(day, ctx.tz))
