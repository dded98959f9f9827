"""`type: dockerhub`: an image repository's pulls and stars from the Docker Hub API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from pydantic import Field, field_validator

from kpi_collector.collect.http import Response
from kpi_collector.sources._service import ServiceSource, check_repo, number
from kpi_collector.sources.base import SourceContext

_FIELDS = {"pulls": "pull_count", "stars": "star_count"}


class DockerHub(ServiceSource):
    type: ClassVar[str] = "dockerhub"
    service_name: ClassVar[str] = "Docker Hub"
    known_metrics: ClassVar[tuple[str, ...]] = tuple(_FIELDS)
    default_metrics: ClassVar[tuple[str, ...]] = known_metrics

    repo: str = Field(
        description="namespace/name; an official image's bare name means library/name"
    )
    api_url: str = "https://hub.docker.com"

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        value = value.strip().strip("/")
        return check_repo(value if "/" in value else f"library/{value}", "zenmldocker/zenml")

    def not_found(self, response: Response) -> str:
        return f"Docker Hub has no repository {self.repo!r}: check `repo:` of source {self.name!r}"

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        data = await self.client(ctx).json(f"/v2/repositories/{self.repo}/")
        return {
            metric: number(data, _FIELDS[metric], self.service_name) for metric in self.wanted()
        }
