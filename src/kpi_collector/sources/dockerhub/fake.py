"""A local Docker Hub API: `GET /v2/repositories/{namespace}/{name}/` with the
`X-RateLimit-*` headers and Docker Hub's error body; `POST /v2/auth/token` trading a Docker ID
and personal access token for a short-lived bearer; private repositories answer 404 without it."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from aiohttp import web

from kpi_collector.sources._fake import FakeService, bearer, respond


@dataclass
class FakeDockerHub(FakeService):
    repos: dict[str, tuple[int, int]] = field(default_factory=dict)  # "ns/name" -> (pulls, stars)
    remaining: int = 180
    private: set[str] = field(default_factory=set)  # repos only a bearer may see
    accounts: dict[str, str] = field(default_factory=dict)  # Docker ID -> personal access token
    issued: set[str] = field(default_factory=set)  # access tokens handed out
    #: access token -> the Docker ID it was handed to
    holders: dict[str, str] = field(default_factory=dict)
    #: a private repo -> the Docker IDs that may read it (absent: every signed-in one);
    #: Docker Hub answers 404 to anyone else
    readers: dict[str, set[str]] = field(default_factory=dict)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/v2/repositories/{namespace}/{name}/", self.repository)
        app.router.add_post("/v2/auth/token", self.auth_token)

    async def auth_token(self, request: web.Request) -> web.Response:
        body = await request.json()
        identifier, secret = body.get("identifier"), body.get("secret")
        if not identifier or not secret:
            return respond(400, {"errinfo": {}, "detail": "identifier and secret are required"})
        if self.accounts.get(identifier) != secret:
            return respond(
                401,
                {
                    "errinfo": {},
                    "detail": "Incorrect authentication credentials",
                    "message": "Incorrect authentication credentials",
                },
            )
        token = "eyJhbGciOiJSUzI1NiJ9." + secrets.token_urlsafe(24)
        self.issued.add(token)
        self.holders[token] = str(identifier)
        return respond(200, {"access_token": token})

    async def repository(self, request: web.Request) -> web.Response:
        namespace, name = request.match_info["namespace"], request.match_info["name"]
        self.remaining -= 1
        headers = {
            "X-RateLimit-Limit": "180",
            "X-RateLimit-Remaining": str(max(0, self.remaining)),
            "X-RateLimit-Reset": str(int(time.time()) + 60),
        }
        found = self.repos.get(f"{namespace}/{name}")
        caller = bearer(request)
        allowed = self.readers.get(f"{namespace}/{name}")
        if f"{namespace}/{name}" in self.private and (
            caller not in self.issued
            or (allowed is not None and self.holders.get(caller or "") not in allowed)
        ):
            found = None  # a private repository does not exist for a stranger
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
                "is_private": f"{namespace}/{name}" in self.private,
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
