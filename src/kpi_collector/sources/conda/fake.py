"""A local anaconda.org package API (`GET /package/{channel}/{package}`): the package with its
`versions` and `files` (one per version, platform and build, each with `ndownloads`), in the
shape anaconda-client reads; a package a channel lacks answers 404 with a JSON `error`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kpi_collector.sources._fake import FakeService, respond


@dataclass
class CondaFile:
    version: str
    platform: str  # linux-64, osx-arm64, noarch...
    build: str
    ndownloads: int


@dataclass
class FakeAnaconda(FakeService):
    #: channel -> package -> its files
    channels: dict[str, dict[str, list[CondaFile]]] = field(default_factory=dict)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/package/{channel}/{package}", self.package)

    async def package(self, request: web.Request) -> web.Response:
        channel, name = request.match_info["channel"], request.match_info["package"]
        files = self.channels.get(channel, {}).get(name)
        if files is None:
            return respond(404, {"error": f'Package "{channel}/{name}" not found'})
        versions = sorted({f.version for f in files})
        body: dict[str, Any] = {
            "name": name,
            "full_name": f"{channel}/{name}",
            "owner": {"login": channel, "user_type": "org"},
            "summary": "A package",
            "public": True,
            "package_types": ["conda"],
            "latest_version": versions[-1] if versions else None,
            "versions": versions,
            "files": [_file(channel, name, f) for f in files],
        }
        return respond(200, body)


def _file(channel: str, name: str, item: CondaFile) -> dict[str, Any]:
    basename = f"{item.platform}/{name}-{item.version}-{item.build}.conda"
    return {
        "basename": basename,
        "full_name": f"{channel}/{name}/{item.version}/{basename}",
        "version": item.version,
        "labels": ["main"],
        "ndownloads": item.ndownloads,
        "size": 1_048_576,
        "type": "conda",
        "upload_time": "2025-05-01 10:00:00.000000+00:00",
        "attrs": {"subdir": item.platform, "build": item.build},
    }
