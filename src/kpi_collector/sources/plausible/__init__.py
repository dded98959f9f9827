"""`type: plausible`: a site's visitors, pageviews, visits, bounce rate and visit duration of
each day from the Plausible Stats API v2 (`POST /api/v2/query`, plausible.io/docs/stats-api-v2);
backfill gives each past day. Imported stats (Google Analytics, CSV) count, as on the site's
dashboard (`include: {"imports": true}`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import date, datetime, timedelta, tzinfo
from typing import Any, ClassVar

from pydantic import Field

from kpi_collector.collect.http import Auth, Response
from kpi_collector.errors import ExtractError, MetricErrors
from kpi_collector.secrets import Secret
from kpi_collector.sources._service import ServiceSource, day_end, days, parse_day
from kpi_collector.sources.base import Observation, SourceContext

#: the Stats API v2 metrics this connector asks for (visit_duration in seconds, bounce_rate in %)
METRICS = ("visitors", "pageviews", "visits", "bounce_rate", "visit_duration")
#: the metrics that count (0 on a day without visits); the others average over visits
_COUNTS = ("visitors", "pageviews", "visits")
_AVERAGES = ("bounce_rate", "visit_duration")


class Plausible(ServiceSource):
    type: ClassVar[str] = "plausible"
    service_name: ClassVar[str] = "Plausible"
    known_metrics: ClassVar[tuple[str, ...]] = METRICS
    default_metrics: ClassVar[tuple[str, ...]] = METRICS
    credentials: ClassVar[Mapping[str, str]] = {"api_key": "PLAUSIBLE_API_KEY"}
    #: every metric is one whole day's: the run stores them with that day's end
    complete_days: ClassVar[bool] = True

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

    async def _query(
        self, ctx: SourceContext, first: date, last: date, by_day: bool
    ) -> tuple[list[tuple[list[Any], dict[str, Any]]], tzinfo | None, list[date]]:
        """(dimensions, {metric: value}) of each result row over [first, last] (the site's
        days); the site's UTC offset, from the date range the answer echoes resolved
        (`query.date_range`: ["2024-09-04T00:00:00+02:00", ...]), None when it gives none;
        and, by day, every day the answer covers (`meta.time_labels`): Plausible leaves the
        days without visits out of the results. `visits` is asked along with an average,
        wanted or not, to tell an average over no visit (which Plausible gives as 0)."""
        wanted = self.wanted()
        if "visits" not in wanted and any(m in _AVERAGES for m in wanted):
            wanted = [*wanted, "visits"]
        body: dict[str, Any] = {
            "site_id": self.site_id,
            "metrics": wanted,
            "date_range": [first.isoformat(), last.isoformat()],
        }
        if self.filters:
            body["filters"] = self.filters
        # the API leaves imported stats out unless told, where the dashboard shows them: the
        # days before the site used Plausible would count 0
        body["include"] = {"imports": True}
        if by_day:
            body["dimensions"] = ["time:day"]
            body["include"]["time_labels"] = True
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
        covered = _time_labels(data) if by_day else None
        if covered is None:
            covered = list(days(first, last)) if by_day else []
        return rows, _site_offset(data), covered

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        """Yesterday's figures: the config's yesterday, as the site's time zone counts it,
        unless that day is still under way at the site (its time zone behind the config's):
        then the day before (a second call), which the run stamps so (`ctx.describes`)."""
        yesterday = day = ctx.today - timedelta(days=1)
        rows, site, _ = await self._query(ctx, yesterday, yesterday, by_day=False)
        if site is not None:
            day = min(yesterday, ctx.now.astimezone(site).date() - timedelta(days=1))
            if day != yesterday:
                rows, _, _ = await self._query(ctx, day, day, by_day=False)
                ctx.describes(day)
        if not rows:
            raise ExtractError(f"Plausible answered no results for {day} of {self.site_id!r}")
        values: dict[str, float] = {}
        errors: dict[str, str] = {}
        answer = rows[0][1]
        for metric in self.wanted():
            value = answer.get(metric)
            if metric in _AVERAGES and answer.get("visits") == 0:
                # Plausible gives 0 where there is nothing to average: a 0 % bounce rate on
                # a day nobody came is no figure (backfill stores none for such a day)
                errors[metric] = f"{metric}: no visit to {self.site_id} on {day} to average over"
            elif isinstance(value, int | float) and not isinstance(value, bool):
                values[metric] = float(value)
            else:  # `null`: no visits to average over, or a metric the site cannot give
                errors[metric] = f"{metric}: Plausible gave {value!r} for {day}, no number"
        if errors:
            raise MetricErrors(values, errors)
        return values

    async def backfill(self, ctx: SourceContext, since: date) -> AsyncIterator[Observation]:
        """Each day's figures from the first day with visits on or after `since` to
        yesterday, one call (`dimensions: ["time:day"]`). A later day the answer covers
        (`meta.time_labels`) without a result had no visits: its counts are 0, its bounce
        rate and visit duration (averages over no visit) get no value. The days before the
        first visit get none: Plausible lists every day of the range asked, those before the
        site's stats began (it counts nothing before `native_stats_start_at`) too. A day
        still under way at the site (its time zone behind the config's) is left out."""
        yesterday = ctx.today - timedelta(days=1)
        if since > yesterday:
            return
        rows, site, covered = await self._query(ctx, since, yesterday, by_day=True)
        site_today = ctx.now.astimezone(site).date() if site is not None else ctx.today
        by_day: dict[date, dict[str, Any]] = {}
        for dims, values in rows:
            day = parse_day(str(dims[0])) if dims else None
            if day is None:
                raise ExtractError("Plausible: a daily result has no `time:day` dimension")
            by_day[day] = values
        # `kpi backfill` says from the values where they begin (and end)
        visited = [day for day, values in by_day.items() if _visited(values)]
        if not visited:
            return
        first = min(visited)
        empty = {m: 0 for m in self.wanted() if m in _COUNTS}
        for day in sorted(set(by_day) | set(covered)):
            if day < first or day >= site_today:
                continue
            values = by_day.get(day, empty)
            for metric, value in values.items():
                if metric in _AVERAGES and values.get("visits") == 0:
                    continue  # no visit to average over (Plausible gives 0)
                if metric in self.wanted() and isinstance(value, int | float):
                    yield Observation(metric, float(value), day_end(day, ctx.tz))


def _visited(values: Mapping[str, Any]) -> bool:
    """Whether a day's result shows any visit (a count above 0; with only averages asked,
    the result itself: Plausible gives a day no row without visits)."""
    counts = [values[m] for m in _COUNTS if m in values]
    return not counts or any(isinstance(n, int | float) and n > 0 for n in counts)


def _time_labels(data: Any) -> list[date] | None:
    """The days a daily answer covers (`meta.time_labels`), or None when it lists none."""
    meta = data.get("meta") if isinstance(data, dict) else None
    labels = meta.get("time_labels") if isinstance(meta, dict) else None
    if not isinstance(labels, list):
        return None
    return [parse_day(str(label)) for label in labels]


def _site_offset(data: Any) -> tzinfo | None:
    """The site's UTC offset, from the end of the resolved `query.date_range` of an answer."""
    query = data.get("query") if isinstance(data, dict) else None
    span = query.get("date_range") if isinstance(query, dict) else None
    if not isinstance(span, list) or not span or not isinstance(span[-1], str):
        return None
    try:
        return datetime.fromisoformat(span[-1]).tzinfo
    except ValueError:
        return None
