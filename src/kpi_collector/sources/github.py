"""`type: github`: a repository's stars, forks, watchers and open issues (REST v3)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar
from urllib.parse import urlsplit

from pydantic import Field

from kpi_collector.errors import ExtractError, HttpError, SourceError
from kpi_collector.secrets import Secret
from kpi_collector.sources.base import Source, SourceContext

_REPO_FIELDS = {
    "stars": "stargazers_count",
    "forks": "forks_count",
    "watchers": "subscribers_count",
    "open_issues": "open_issues_count",
}


class GitHub(Source):
    type: ClassVar[str] = "github"
    default_metrics: ClassVar[tuple[str, ...]] = tuple(_REPO_FIELDS)

    repo: str = Field(pattern=r"^[\w.-]+/[\w.-]+$", description="owner/name")
    token: Secret | None = None
    api_url: str = "https://api.github.com"
    metrics: list[str] = Field(default_factory=list)

    def host(self) -> str | None:
        return urlsplit(self.api_url).netloc

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if self.token is not None and self.token.get():
            headers["Authorization"] = f"Bearer {self.token.get()}"
        session = ctx.http(headers=headers)
        try:
            repo = await session.get_json(f"{self.api_url.rstrip('/')}/repos/{self.repo}")
        except HttpError as exc:
            if exc.status == 404:
                raise SourceError(f"repository {self.repo!r} not found (or private without a token)") from None
            if exc.status == 401:
                raise SourceError("GitHub refused the token (401): it is wrong or expired") from None
            raise
        wanted = self.metrics or list(_REPO_FIELDS)
        values: dict[str, float] = {}
        for metric in wanted:
            field = _REPO_FIELDS.get(metric)
            if field is None:
                raise ExtractError(f"unknown github metric {metric!r}; known: {', '.join(_REPO_FIELDS)}")
            raw = repo.get(field)
            if not isinstance(raw, int | float):
                raise ExtractError(f"{metric}: the answer has no number in {field!r}")
            values[metric] = float(raw)
        return values
