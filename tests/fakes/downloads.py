"""Local download-count services: the PyPI Stats JSON API (`/api/packages/{p}/recent` and
`/overall`) and npm's download counts API (`/downloads/point|range/{period}/{package}`), both
answering from a daily series that ends yesterday, as the real ones do.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from aiohttp import web

from tests.fakes._base import FakeService, respond

_NOT_FOUND_PAGE = (
    "<!doctype html><html lang=en><title>404 Not Found</title><h1>Not Found</h1><p>The requested URL was "
    "not found on the server. If you entered the URL manually please check your spelling and try again.</p>"
)


@dataclass
class FakePyPIStats(FakeService):
    #: package -> day -> (downloads with mirrors, downloads without mirrors)
    packages: dict[str, dict[date, tuple[int, int]]] = field(default_factory=dict)
    today: date = field(default_factory=lambda: datetime.now(UTC).date())

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/packages/{package}/recent", self.recent)
        app.router.add_get("/api/packages/{package}/overall", self.overall)

    def _series(self, request: web.Request) -> dict[date, tuple[int, int]] | None:
        series = self.packages.get(request.match_info["package"])
        if series is None:
            return None
        # PyPI Stats keeps 180 days and has nothing for today yet
        first = self.today - timedelta(days=180)
        return {d: v for d, v in series.items() if first <= d < self.today}

    async def recent(self, request: web.Request) -> web.Response:
        series = self._series(request)
        if series is None:
            return respond(404, _NOT_FOUND_PAGE)
        yesterday = self.today - timedelta(days=1)

        def last(days: int) -> int:
            return sum(
                v[1]
                for d, v in series.items()
                if yesterday - timedelta(days=days - 1) <= d <= yesterday
            )

        data = {"last_day": last(1), "last_month": last(30), "last_week": last(7)}
        period = request.query.get("period")
        if period:
            data = {f"last_{period}": data[f"last_{period}"]}
        return respond(
            200,
            {"data": data, "package": request.match_info["package"], "type": "recent_downloads"},
        )

    async def overall(self, request: web.Request) -> web.Response:
        series = self._series(request)
        if series is None:
            return respond(404, _NOT_FOUND_PAGE)
        mirrors = request.query.get("mirrors")
        categories = {"true": ["with_mirrors"], "false": ["without_mirrors"]}.get(
            mirrors or "", ["with_mirrors", "without_mirrors"]
        )
        rows = []
        for day in sorted(series):
            for category in categories:
                value = series[day][0] if category == "with_mirrors" else series[day][1]
                rows.append({"category": category, "date": day.isoformat(), "downloads": value})
        return respond(
            200,
            {"data": rows, "package": request.match_info["package"], "type": "overall_downloads"},
        )


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
        return name, series, window[0], min(window[1], self.today - timedelta(days=1))

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
        while day <= end:
            rows.append({"downloads": series.get(day, 0), "day": day.isoformat()})
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
