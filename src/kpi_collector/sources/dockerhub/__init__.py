"""`type: dockerhub`: an image repository's pulls and stars from the Docker Hub API.

Public repositories need no credentials. For a private one give `username` and `token` (a
personal access token with read access): the connector trades them for a short-lived access
token (`POST /v2/auth/token`) and sends it as a bearer with the repository request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field, field_validator, model_validator

from kpi_collector.collect.http import Response
from kpi_collector.errors import ExtractError
from kpi_collector.secrets import Secret, remember
from kpi_collector.sources._service import ServiceSource, check_repo, number
from kpi_collector.sources.base import SourceContext

_FIELDS = {"pulls": "pull_count", "stars": "star_count"}


class DockerHub(ServiceSource):
    type: ClassVar[str] = "dockerhub"
    service_name: ClassVar[str] = "Docker Hub"
    json_not_found: ClassVar[bool] = True  # its 404s are JSON; a web page is not it
    known_metrics: ClassVar[tuple[str, ...]] = tuple(_FIELDS)
    default_metrics: ClassVar[tuple[str, ...]] = known_metrics
    credentials: ClassVar[Mapping[str, str]] = {"token": "DOCKERHUB_TOKEN"}

    repo: str = Field(
        description="namespace/name; an official image's bare name means library/name"
    )
    username: str | None = Field(default=None, description="the Docker ID, for a private repo")
    token: Secret | None = Field(
        default=None, description="a personal access token with read access, for a private repo"
    )
    api_url: str = "https://hub.docker.com"

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        value = value.strip().strip("/")
        return check_repo(value if "/" in value else f"library/{value}", "zenmldocker/zenml")

    @model_validator(mode="after")
    def _both_or_neither(self) -> DockerHub:
        if self.token is not None and not self.username:
            raise ValueError("token needs username: the Docker ID the access token belongs to")
        return self

    def credential_hint(self) -> str:
        # Docker Hub refuses the pair: a token of another Docker ID is refused like a wrong one
        hint = super().credential_hint()
        if self.token is None:
            return hint
        return f"{hint}; or `username: {self.username}` is not the Docker ID that token belongs to"

    def not_found(self, response: Response) -> str:
        if response.url.endswith("/v2/auth/token"):
            return f"Docker Hub at {self.api_url} has no token endpoint: check `api_url:`"
        private = (
            f" (or it is private and the Docker ID {self.username!r} cannot read it)"
            if self.token
            else " (a private one needs `username:` and `token:`)"
        )
        namespace, _, name = self.repo.partition("/")
        bare = (
            f"; a bare name is an official image, {self.repo!r}: for a repository of the "
            f"organisation or user {name!r} write `repo: {name}/NAME` (Docker Hub counts pulls "
            "per repository)"
            if namespace == "library"
            else ""
        )
        return (
            f"Docker Hub has no repository {self.repo!r}{private}: check `repo:` of source "
            f"{self.name!r}{bare}"
        )

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        client = self.client(ctx)
        headers: dict[str, str] | None = None
        if self.token is not None:
            answer = await client.json(
                "/v2/auth/token",
                method="POST",
                json_body={"identifier": self.username, "secret": self.token.get()},
            )
            access = answer.get("access_token") if isinstance(answer, dict) else None
            if not isinstance(access, str) or not access:
                raise ExtractError("Docker Hub: the token answer has no `access_token`")
            remember(access)  # never shown, like the personal access token it came from
            headers = {"Authorization": f"Bearer {access}"}
        data = await client.json(f"/v2/repositories/{self.repo}/", headers=headers)
        return {
            metric: number(data, _FIELDS[metric], self.service_name) for metric in self.wanted()
        }
