"""A local Homebrew JSON API (`/api/formula/{name}.json`, `/api/cask/{token}.json`) with the
`analytics` object formulae.brew.sh/docs/api shows: for a formula `install`,
`install_on_request` and `build_error`, for a cask `install`, each by period (`30d`, `90d`,
`365d`) and then by install variant (`"wget"`, `"wget --HEAD"`). An unknown name gets the site's
404 page (GitHub Pages, HTML).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kpi_collector.sources._fake import FakeService, respond

_NOT_FOUND = "<!DOCTYPE html><html><head><title>Page not found · GitHub Pages</title></head><body><h1>404</h1><p><strong>File not found</strong></p></body></html>"

#: analytics by category -> period -> variant -> count
Analytics = dict[str, dict[str, dict[str, int]]]


@dataclass
class FakeHomebrew(FakeService):
    formulae: dict[str, Analytics] = field(default_factory=dict)
    casks: dict[str, Analytics] = field(default_factory=dict)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/formula/{name}.json", self.formula)
        app.router.add_get("/api/cask/{name}.json", self.cask)

    async def formula(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self.formulae:
            return respond(404, _NOT_FOUND)
        body: dict[str, Any] = {
            "name": name,
            "full_name": name,
            "tap": "homebrew/core",
            "desc": "A formula",
            "versions": {"stable": "1.24.5", "head": "HEAD", "bottle": True},
            "analytics": self.formulae[name],
        }
        return respond(200, body)

    async def cask(self, request: web.Request) -> web.Response:
        token = request.match_info["name"]
        if token not in self.casks:
            return respond(404, _NOT_FOUND)
        body: dict[str, Any] = {
            "token": token,
            "full_token": token,
            "tap": "homebrew/cask",
            "version": "131.0",
            "analytics": self.casks[token],
        }
        return respond(200, body)
