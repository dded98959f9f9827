"""A local npm download counts API (`/downloads/point|range/{period}[/{package}]`), answering
from a daily series of UTC days that ends yesterday, as the real one does. A day whose counts
have not landed (the UTC day under way, and `landed` days after the last counted one) is
answered with 0 downloads, for a package and for the whole registry alike, as npm answers it
(`point/last-day` says 0 for yesterday until its counts land: npm/registry-issue-archive#382).
Without a package, the answers count every package of the registry: never 0 for a counted day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from aiohttp import web

from kpi_collector.sources._fake import FakeService, respond

NPM_FIRST_DAY = date(2015, 1, 10)
#: the downloads of the registry's other packages on each counted day
REGISTRY_BASE = 4_000_000_000


@dataclass
class FakeNpm(FakeService):
    packages: dict[str, dict[date, int]] = field(default_factory=dict)
    today: date = field(default_factory=lambda: datetime.now(UTC).date())
    #: the last day whose counts have landed; None: yesterday (the usual case)
    landed: date | None = None
    max_range_days: int = 549  # "18 months"

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/downloads/point/{period}", self.point)
        app.router.add_get("/downloads/range/{period}", self.range)
        app.router.add_get("/downloads/point/{period}/{package:.+}", self.point)
        app.router.add_get("/downloads/range/{period}/{package:.+}", self.range)

    def counted(self, day: date) -> bool:
        last = self.landed if self.landed is not None else self.today - timedelta(days=1)
        return day <= last and day < self.today

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

    def _series(self, name: str | None) -> dict[date, int] | None:
        if name is not None:
            return self.packages.get(name)
        return _Registry(self.packages)

    def _lookup(
        self, request: web.Request
    ) -> tuple[str | None, dict[date, int], date, date] | web.Response:
        name = request.match_info.get("package")
        window = self._window(request.match_info["period"])
        if isinstance(window, str):
            return respond(400, {"error": window})
        series = self._series(name)
        if series is None:
            return respond(404, {"error": f"package {name} not found"})
        # "The earliest date for which data will be returned is January 10, 2015."
        start = max(window[0], NPM_FIRST_DAY)
        return name, series, start, min(window[1], self.today - timedelta(days=1))

    def _downloads(self, series: dict[date, int], day: date) -> int:
        return series.get(day, 0) if self.counted(day) else 0

    async def point(self, request: web.Request) -> web.Response:
        found = self._lookup(request)
        if isinstance(found, web.Response):
            return found
        name, series, start, end = found
        total = 0
        day = start
        while day <= end:
            total += self._downloads(series, day)
            day += timedelta(days=1)
        body: dict[str, object] = {"downloads": total, "start": start.isoformat()}
        body["end"] = end.isoformat()
        if name is not None:
            body["package"] = name
        return respond(200, body)

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
            rows.append({"downloads": self._downloads(series, day), "day": day.isoformat()})
            day += timedelta(days=1)
        body: dict[str, object] = {"start": start.isoformat(), "end": end.isoformat()}
        if name is not None:
            body["package"] = name
        body["downloads"] = rows
        return respond(200, body)


class _Registry(dict[date, int]):
    """Every package's downloads of a day: the fake's packages and the registry's others."""

    def __init__(self, packages: dict[str, dict[date, int]]) -> None:
        super().__init__()
        self.packages = packages

    def get(self, day: date, default: int | None = 0) -> int:  # type: ignore[override]
        return REGISTRY_BASE + sum(series.get(day, 0) for series in self.packages.values())
