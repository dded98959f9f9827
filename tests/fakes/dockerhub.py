"""A local Docker Hub API: `GET /v2/repositories/{namespace}/{name}/` with the
`X-RateLimit-*` headers and Docker Hub's error body."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from aiohttp import web

from tests.fakes._base import FakeService, respond


@dataclass
class FakeDockerHub(FakeService):
    repos: dict[str, tuple[int, int]] = field(default_factory=dict)  # "ns/name" -> (pulls, stars)
    remaining: int = 180

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v2/repositories/{namespace}/{name}/", self.repository)

    async def repository(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        self.remaining -= 1
        headers = {
            "X-RateLimit-Limit": "180",
            "X-RateLimit-Remaining": str(max(0, self.remaining)),
            "X-RateLimit-Reset": str(int(time.time()) + 60),
        }
        found = self.repos.get(f"{namespace}/{name}")
        if found is None:
            body = {
                "message": "httperror 404: object not found",
                "errinfo": {"namespace": namespace, "repository": name},
            }
            return respond(404, body, headers)
        pulls, stars = found
        return respond(
            200,
            {
                "user": namespace,
                "name": name,
                "namespace": namespace,
                "repository_type": "image",
                "status": 1,
                "status_description": "active",
                "description": "An image",
                "is_private": False,
                "is_automated": False,
                "star_count": stars,
                "pull_count": pulls,
                "last_updated": "2026-03-01T10:00:00.000000Z",
                "date_registered": "2021-05-01T10:00:00.000000Z",
                "collaborator_count": 0,
                "affiliation": None,
                "hub_user": namespace,
                "has_starred": False,
                "full_description": "# An image",
                "permissions": {"read": True, "write": False, "admin": False},
                "media_types": ["application/vnd.docker.container.image.v1+json"],
                "content_types": ["image"],
                "categories": [],
            },
            headers,
        )
