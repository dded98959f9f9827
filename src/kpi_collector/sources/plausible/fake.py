"""A local Plausible Stats API v2 (`POST /api/v2/query`) answering from per-day figures, with
the bodies plausible.io/docs/stats-api-v2 documents: `{"results": [{"metrics": [...],
"dimensions": [...]}], "meta": {}, "query": {...}}` and `{"error": "..."}` for a refused query;
by day, days without visits are left out of the results, and `include: {"time_labels": true}`
lists every day of the range in `meta.time_labels` (those before the site's stats began too).
Imported stats count only with `include: {"imports": true}`, which adds
`meta.imports_included`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from kpi_collector.sources._fake import FakeService, bearer, respond

_MISSING_KEY = "Missing API key. Please use a valid Plausible API key as a Bearer Token."
_BAD_KEY = (
    "Invalid API key or site ID. Please make sure you're using a valid API key with access "
    "to the site you've requested."
)


@dataclass
class FakePlausible(FakeService):
    #: site_id -> day -> {"visitors": n, "pageviews": n, "visits": n, "bounces": n, "duration": s}
    sites: dict[str, dict[date, dict[str, int]]] = field(default_factory=dict)
    #: API key -> the sites it may read
    keys: dict[str, set[str]] = field(default_factory=dict)
    #: the sites' time zone (Site settings), whose days the dates of a query are
    time_zone: str = "Etc/UTC"
    #: site_id -> day -> figures imported (from Google Analytics, CSV files): in an answer
    #: only with `include: {"imports": true}`, added to the day's own
    imported: dict[str, dict[date, dict[str, int]]] = field(default_factory=dict)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/v2/query", self.query)

    async def query(self, request: web.Request) -> web.Response:
        key = bearer(request)
        if key is None:
            return respond(401, {"error": _MISSING_KEY})
        body: dict[str, Any] = await request.json()
        site = body.get("site_id")
        if site not in self.keys.get(key, set()) or site not in self.sites:
            return respond(401, {"error": _BAD_KEY})
        metrics = body.get("metrics") or []
        first, last = (date.fromisoformat(d) for d in body["date_range"])
        include = body.get("include") or {}
        sources = [self.sites[site]]
        if include.get("imports"):
            sources.append(self.imported.get(site, {}))
        days: dict[date, dict[str, int]] = {}
        for figures in sources:
            for d, v in figures.items():
                if first <= d <= last and _matches(v, body.get("filters") or []):
                    days[d] = _added(days.get(d), v)
        if body.get("dimensions") == ["time:day"]:
            results = [
                {"metrics": _metrics({d: days[d]}, metrics), "dimensions": [d.isoformat()]}
                for d in sorted(days)
                if any(days[d].get(k) for k in ("visitors", "pageviews", "visits"))
            ]
        else:
            results = [{"metrics": _metrics(days, metrics), "dimensions": []}]
        meta: dict[str, Any] = {}
        if include.get("imports"):
            imported = self.imported.get(site, {})
            meta["imports_included"] = any(first <= d <= last for d in imported)
        if include.get("time_labels"):
            if body.get("dimensions") != ["time:day"]:
                return respond(
                    400, {"error": "Invalid include.time_labels: requires a time dimension"}
                )
            # every day of the range, those without visits too (left out of the results)
            meta["time_labels"] = [
                date.fromordinal(n).isoformat()
                for n in range(first.toordinal(), last.toordinal() + 1)
            ]
        # the answer echoes the query with its date range resolved in the site's time zone:
        # ["2024-09-04T00:00:00+00:00", "2024-09-10T23:59:59+00:00"]
        zone = ZoneInfo(self.time_zone)
        resolved = [
            datetime.combine(first, time(0, 0, 0), zone).isoformat(),
            datetime.combine(last, time(23, 59, 59), zone).isoformat(),
        ]
        echo = {**body, "date_range": resolved}
        return respond(200, {"results": results, "meta": meta, "query": echo})


def _added(day: dict[str, int] | None, more: dict[str, int]) -> dict[str, int]:
    if day is None:
        return dict(more)
    return {k: v + more[k] if k != "page" and k in more else v for k, v in day.items()}


def _matches(day: dict[str, int], filters: list[Any]) -> bool:
    # the fake knows one filter: ["is", "event:page", [path]] keeps days whose "page" is listed
    for op, dimension, values in filters:
        if op == "is" and dimension == "event:page" and day.get("page") not in values:
            return False
    return True


def _metrics(days: dict[date, dict[str, int]], metrics: list[str]) -> list[float | int]:
    visits = sum(v["visits"] for v in days.values())
    values: dict[str, float | int] = {
        "visitors": sum(v["visitors"] for v in days.values()),
        "pageviews": sum(v["pageviews"] for v in days.values()),
        "visits": visits,
        # Plausible rounds both to whole numbers (percent, seconds)
        "bounce_rate": round(100 * sum(v["bounces"] for v in days.values()) / visits)
        if visits
        else 0,
        "visit_duration": round(sum(v["duration"] for v in days.values()) / visits)
        if visits
        else 0,
    }
    return [values[m] for m in metrics]
