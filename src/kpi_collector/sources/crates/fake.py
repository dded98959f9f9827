"""A local crates.io API: a crate (`GET /api/v1/crates/{name}`, with `crate.downloads`,
`crate.recent_downloads` of the last 90 days and its `versions`) and its daily downloads of the
last 90 days (`GET /api/v1/crates/{name}/downloads`: `version_downloads` for the five newest
versions, `meta.extra_downloads` for all others, by date). Like crates.io it answers 403 to a
request without a User-Agent, or with only an HTTP library's, with the body its crawler policy
(crates.io/data-access) sends, and `{"errors": [{"detail": "crate `x` does not exist"}]}` for an
unknown crate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from aiohttp import web

from kpi_collector.sources._fake import FakeService, respond

_UA_REQUIRED = (
    "We require that all requests include a `User-Agent` header.  To allow us to determine the "
    "impact your bot has on our service, we ask that your user agent actually identify your bot, "
    "and not just report the HTTP client library you're using.  Including contact information "
    "will also reduce the chance that we will need to take action against your bot.\n\nBad:\n  "
    "User-Agent: reqwest/0.9.1\n\nBetter:\n  User-Agent: my_crawler\n\nBest:\n  User-Agent: "
    "my_crawler (my_crawler.com/info)\n  User-Agent: my_crawler (help@my_crawler.com)\n\n"
    "If you believe you've received this message in error, please email help@crates.io and "
    "include the request id 0f7b1c2e."
)
#: what an HTTP library sends by itself: no bot named
_LIBRARY_AGENT = re.compile(
    r"^(Python/[\d.]+ aiohttp|python-requests|curl/|reqwest/|Go-http-client)"
)
_WINDOW = 90


@dataclass
class Crate:
    created: date
    #: version numbers, oldest first, and whether each is yanked
    versions: list[tuple[str, bool]]
    #: day -> version number -> downloads
    daily: dict[date, dict[str, int]] = field(default_factory=dict)
    #: downloads before the 90-day window
    before: int = 0


@dataclass
class FakeCrates(FakeService):
    crates: dict[str, Crate] = field(default_factory=dict)
    today: date = field(default_factory=lambda: datetime.now(UTC).date())
    #: refuse User-Agents without contact details (an email or URL) too
    require_contact: bool = False

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v1/crates/{name}", self.crate)
        app.router.add_get("/api/v1/crates/{name}/downloads", self.downloads)

    def _refused(self, request: web.Request) -> web.Response | None:
        agent = request.headers.get("User-Agent", "")
        bare = not agent.strip() or _LIBRARY_AGENT.match(agent)
        if bare or (self.require_contact and not re.search(r"@|https?://|\w\.\w+/", agent)):
            return respond(403, {"errors": [{"detail": _UA_REQUIRED}]})
        return None

    def _find(self, request: web.Request) -> tuple[str, Crate | web.Response]:
        name = request.match_info["name"]
        refused = self._refused(request)
        if refused is not None:
            return name, refused
        crate = self.crates.get(name)
        if crate is None:
            return name, respond(404, {"errors": [{"detail": f"crate `{name}` does not exist"}]})
        return name, crate

    def _window(self, crate: Crate) -> dict[date, dict[str, int]]:
        first = self.today - timedelta(days=_WINDOW - 1)
        return {d: v for d, v in crate.daily.items() if first <= d <= self.today}

    async def crate(self, request: web.Request) -> web.Response:
        name, crate = self._find(request)
        if isinstance(crate, web.Response):
            return crate
        total = crate.before + sum(sum(v.values()) for v in crate.daily.values())
        recent = sum(sum(v.values()) for v in self._window(crate).values())
        newest = crate.versions[-1][0]
        versions = [
            {
                "id": 100 + i,
                "crate": name,
                "num": num,
                "dl_path": f"/api/v1/crates/{name}/{num}/download",
                "yanked": yanked,
                "downloads": sum(v.get(num, 0) for v in crate.daily.values()),
                "license": "MIT OR Apache-2.0",
                "created_at": f"{crate.created.isoformat()}T10:00:00.000000Z",
            }
            for i, (num, yanked) in reversed(list(enumerate(crate.versions)))
        ]
        body: dict[str, Any] = {
            "crate": {
                "id": name,
                "name": name,
                "created_at": f"{crate.created.isoformat()}T10:00:00.000000Z",
                "updated_at": f"{self.today.isoformat()}T08:00:00.000000Z",
                "downloads": total,
                "recent_downloads": recent,
                "max_version": newest,
                "newest_version": newest,
                "description": "A crate",
                "links": {"version_downloads": f"/api/v1/crates/{name}/downloads"},
            },
            "versions": versions,
            "keywords": [],
            "categories": [],
        }
        return respond(200, body)

    async def downloads(self, request: web.Request) -> web.Response:
        _, crate = self._find(request)
        if isinstance(crate, web.Response):
            return crate
        newest = {num: 100 + i for i, (num, _) in enumerate(crate.versions)}
        top = [num for num, _ in crate.versions[-5:]]
        rows, extra = [], []
        for day, counts in sorted(self._window(crate).items()):
            for num, count in counts.items():
                if num in top:
                    rows.append(
                        {"version": newest[num], "downloads": count, "date": day.isoformat()}
                    )
            others = sum(c for n, c in counts.items() if n not in top)
            if others:
                extra.append({"date": day.isoformat(), "downloads": others})
        return respond(200, {"version_downloads": rows, "meta": {"extra_downloads": extra}})
