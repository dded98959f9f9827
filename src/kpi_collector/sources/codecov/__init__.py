"""`type: codecov`: a repository's coverage (and line counts) of the head of its default
branch, or of `branch:`, from the Codecov API v2.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from kpi_collector.collect.http import Auth, Response
from kpi_collector.errors import ExtractError
from kpi_collector.secrets import Secret
from kpi_collector.sources._service import ServiceSource, check_repo, number, service_message
from kpi_collector.sources.base import SourceContext

_TOTALS = ("coverage", "lines", "hits", "misses", "partials", "files")


class Codecov(ServiceSource):
    type: ClassVar[str] = "codecov"
    service_name: ClassVar[str] = "Codecov"
    json_not_found: ClassVar[bool] = True  # its 404s are JSON; a web page is not it
    known_metrics: ClassVar[tuple[str, ...]] = _TOTALS
    default_metrics: ClassVar[tuple[str, ...]] = ("coverage",)
    credentials: ClassVar[Mapping[str, str]] = {"token": "CODECOV_TOKEN"}

    repo: str = Field(description="owner/name")
    service: Literal[
        "github",
        "gitlab",
        "bitbucket",
        "github_enterprise",
        "gitlab_enterprise",
        "bitbucket_server",
    ] = "github"
    branch: str | None = Field(default=None, description="default: the repository's default branch")
    token: Secret | None = Field(default=None, description="a Codecov API access token")
    api_url: str = "https://api.codecov.io"

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        return check_repo(value, "zenml-io/zenml")

    def auth(self) -> Auth | None:
        return Auth(bearer=self.token) if self.token is not None else None

    def not_found(self, response: Response) -> str:
        where = f" branch {self.branch!r} of" if self.branch else ""
        said = service_message(response.body, response.headers.get("Content-Type"))
        if "report" in said.lower():
            # the repository is known, the head commit has no upload ("No coverage report
            # found for commit ..."): CI skipped coverage for it, or its upload is pending
            head = f"branch {self.branch!r}" if self.branch else "the default branch"
            return (
                f"Codecov has no coverage report for the head commit of {head} of "
                f"{self.service} repository {self.repo!r} (HTTP 404: {said}): no coverage was "
                "uploaded for that commit yet (a CI run that skipped coverage, or one still "
                "running); the next run after an upload reads it"
            )
        return (
            f"Codecov has no coverage for{where} {self.service} repository {self.repo!r}: check `repo:`"
            f"{', `branch:`' if self.branch else ''} and `service:` of source {self.name!r}"
            + (
                " (a private repository needs `token:`)"
                if self.token is None
                else " (or it is private and the token's user cannot see it on Codecov)"
            )
        )

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        owner, name = self.repo.split("/", 1)
        params = {"branch": self.branch} if self.branch else None
        body = await self.client(ctx).json(
            f"/api/v2/{self.service}/{owner}/repos/{name}/totals/", params=params
        )
        totals = body.get("totals") if isinstance(body, dict) else None
        if not isinstance(totals, dict):
            raise ExtractError(
                f"Codecov has no totals for {self.repo!r} yet (no coverage uploaded?)"
            )
        return {metric: number(totals, metric, self.service_name) for metric in self.wanted()}
