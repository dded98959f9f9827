"""A local npm download counts API (`/downloads/point|range/{period}/{package}`), answering
from a daily series of UTC days that ends yesterday, as the real one does; a range that
reaches the UTC day under way lists it with 0 downloads, not counted yet, as npm answers a
day whose counts have not landed (npm/registry-issue-archive#382).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from aiohttp import web

from kpi_collector.sources._fake import FakeService, respond

NPM_FIRST_DAY = date(2015, 1, 10)


@dataclass
class FakeNpm(FakeService):
    packages: dict[str, dict[date, int]] = field(default_factory=dict)
    today: date = field(default_factory=lambda: datetime.now(UTC).date())
    max_range_days: int = 549  # "18 months"

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/downloads/point/{period}/{package:.+}", self.point)
        app.router.add_get("/downloads/range/{period}/{package:.+}", self.range)

    def _window(self, period: str) -> tuple[date, date] | str:
        last = self.today - timedelta(days=1)
        named = {"last-day": 1, "last-week": 7, "last-month": 30, "last-year": 365}
        if period in named:
            return last - timedelta(days=named[period] - 1), last
        start_text, _, end_text = period.partition(":")
        try:
            start = date.fromisoformat(start_text)
            end = date.fromisoformat(end_text or start_text)
        except ValueError:
            return "invalid date"
        if end < start:
            return "end date > start date"
        if (end - start).days + 1 > self.max_range_days:
            return f"range must not be longer than {self.max_range_days} days"
        return start, end

    def _lookup(
        self, request: web.Request
    ) -> tuple[str, dict[date, int], date, date] | web.Response:
        name = request.match_info["package"]
        window = self._window(request.match_info["period"])
        if isinstance(window, str):
            return respond(400, {"error": window})
        series = self.packages.get(name)
        if series is None:
            return respond(404, {"error": f"package {name} not found"})
        # "The earliest date for which data will be returned is January 10, 2015."
        start = max(window[0], NPM_FIRST_DAY)
        return name, series, start, min(window[1], self.today - timedelta(days=1))

    async def point(self, request: web.Request) -> web.Response:
        found = self._lookup(request)
        if isinstance(found, web.Response):
            return found
        name, series, start, end = found
        total = sum(v for d, v in series.items() if start <= d <= end)
        return respond(
            200,
            {
                "downloads": total,
                "start": start.isoformat(),
                "end": end.isoformat(),
                "package": name,
            },
        )

    async def range(self, request: web.Request) -> web.Response:
        found = self._lookup(request)
        if isinstance(found, web.Response):
            return found
        name, series, start, end = found
        rows = []
        day = start
        asked = self._window(request.match_info["period"])
        if not isinstance(asked, str):
            end = min(asked[1], self.today)  # the day under way too, uncounted
        while day <= end:
            counted = day < self.today
            rows.append({"downloads": series.get(day, 0) if counted else 0, "day": day.isoformat()})
            day += timedelta(days=1)
        return respond(
            200,
            {
                "start": start.isoformat(),
                "end": end.isoformat(),
                "package": name,
                "downloads": rows,
            },
        )
