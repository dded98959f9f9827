"""A local Codecov API v2: `GET /api/v2/{service}/{owner}/repos/{repo}/totals/` with bearer
tokens and Django REST framework's error bodies (`{"detail": ...}`): "Not found." for an
unknown repository, "No coverage report found for commit ..." for a head without an upload."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kpi_collector.sources._fake import FakeService, bearer, respond

#: the head commit of every branch
_HEAD = "3f5a9c2d8e1b4f7a6c0d9e8b7a6f5e4d3c2b1a09"


@dataclass
class FakeCodecov(FakeService):
    #: (service, "owner/repo", branch or None for the default) -> report totals; None: the
    #: head commit has no coverage uploaded (Codecov answers 404 naming the commit)
    reports: dict[tuple[str, str, str | None], dict[str, Any] | None] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)
    private: set[str] = field(default_factory=set)
    #: "owner/repo" -> the tokens whose users may see that private repository (absent: every
    #: valid token); Codecov answers 404 to anyone else
    readers: dict[str, set[str]] = field(default_factory=dict)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v2/{service}/{owner}/repos/{repo}/totals/", self.totals)

    async def totals(self, request: web.Request) -> web.Response:
        token = bearer(request)
        if request.headers.get("Authorization") is not None and token not in self.tokens:
            return respond(401, {"detail": "Invalid token."})
        repo = f"{request.match_info['owner']}/{request.match_info['repo']}"
        key = (request.match_info["service"], repo, request.query.get("branch"))
        hidden = repo in self.private and (
            token is None or token not in self.readers.get(repo, self.tokens)
        )
        if key not in self.reports or hidden:
            return respond(404, {"detail": "Not found."})
        report = self.reports[key]
        if report is None:  # the head commit has no upload
            return respond(404, {"detail": f"No coverage report found for commit {_HEAD}"})
        totals = {
            "files": report.get("files", 0),
            "lines": report.get("lines", 0),
            "hits": report.get("hits", 0),
            "misses": report.get("misses", 0),
            "partials": report.get("partials", 0),
            "coverage": round(100 * report.get("hits", 0) / max(1, report.get("lines", 0)), 2),
            "branches": 0,
            "methods": 0,
            "messages": 0,
            "sessions": 1,
            "complexity": 0.0,
            "complexity_total": 0.0,
            "complexity_ratio": 0,
            "diff": 0,
        }
        return respond(200, {"totals": totals, "files": [{"name": "src/app.py", "totals": totals}]})
