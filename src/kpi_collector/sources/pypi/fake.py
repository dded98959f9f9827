"""A local PyPI Stats JSON API (`/api/packages/{p}/recent` and `/overall`), answering from a
daily series that ends yesterday, as the real one does, or at `landed`, the last day it has
counted. As PyPI Stats, it lists no row for a day without downloads, and the package
`__all__` counts every package of PyPI (never 0 on a counted day). As PyPI Stats, it answers
404 (its HTML page) for a list without rows: `/recent` of a package without downloads in 30
days, `/overall` of one without any in 180.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from aiohttp import web

from kpi_collector.sources._fake import FakeService, respond

_NOT_FOUND_PAGE = (
    "<!doctype html><html lang=en><title>404 Not Found</title><h1>Not Found</h1><p>The requested URL was "
    "not found on the server. If you entered the URL manually please check your spelling and try again.</p>"
)


#: the downloads of PyPI's other packages on each day, without mirrors
ALL_BASE = 1_500_000_000


@dataclass
class FakePyPIStats(FakeService):
    #: package -> day -> (downloads with mirrors, downloads without mirrors)
    packages: dict[str, dict[date, tuple[int, int]]] = field(default_factory=dict)
    today: date = field(default_factory=lambda: datetime.now(UTC).date())
    #: the last day PyPI Stats has counted; None: yesterday
    landed: date | None = None

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/packages/{package}/recent", self.recent)
        app.router.add_get("/api/packages/{package}/overall", self.overall)

    def _series(self, request: web.Request) -> dict[date, tuple[int, int]] | None:
        name = request.match_info["package"]
        series = self._all() if name == "__all__" else self.packages.get(name)
        if series is None:
            return None
        # PyPI Stats keeps 180 days and has nothing for today yet
        first = self.today - timedelta(days=180)
        last = self.landed or self.today - timedelta(days=1)
        return {d: v for d, v in series.items() if first <= d <= last and d < self.today}

    def _all(self) -> dict[date, tuple[int, int]]:
        total: dict[date, tuple[int, int]] = {}
        for n in range(1, 182):
            day = self.today - timedelta(days=n)
            counts = [s.get(day, (0, 0)) for s in self.packages.values()]
            total[day] = (
                ALL_BASE + 100_000 + sum(c[0] for c in counts),
                ALL_BASE + sum(c[1] for c in counts),
            )
        return total

    async def recent(self, request: web.Request) -> web.Response:
        series = self._series(request)
        if series is None:
            return respond(404, _NOT_FOUND_PAGE)
        # the recent figures end at the last day counted
        yesterday = self.landed or self.today - timedelta(days=1)

        def last(days: int) -> int:
            return sum(
                v[1]
                for d, v in series.items()
                if yesterday - timedelta(days=days - 1) <= d <= yesterday
            )

        data = {"last_day": last(1), "last_month": last(30), "last_week": last(7)}
        if not any(data.values()):
            # no row in its `recent` table: a package without downloads in 30 days is
            # answered as an unknown one
            return respond(404, _NOT_FOUND_PAGE)
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
                if not value:
                    continue  # no row for a day without downloads
                rows.append({"category": category, "date": day.isoformat(), "downloads": value})
        if not rows:
            return respond(404, _NOT_FOUND_PAGE)  # as PyPI Stats answers a list without rows
        return respond(
            200,
            {"data": rows, "package": request.match_info["package"], "type": "overall_downloads"},
        )
