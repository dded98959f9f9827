"""`type: huggingface`: downloads (last 30 days) and likes of a model, dataset or Space on the
Hugging Face Hub, or summed over every repository of an organization or user, from the Hub API
(`GET /api/models/{id}`, `/api/models?author=`..., huggingface.co/docs/hub/api). The Hub keeps
no history of these counts: no backfill.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from kpi_collector.collect.http import Auth, Response
from kpi_collector.errors import ExtractError, HttpError
from kpi_collector.secrets import Secret, redact
from kpi_collector.sources._service import ServiceClient, ServiceSource, number
from kpi_collector.sources.base import SourceContext

RepoType = Literal["model", "dataset", "space"]
#: Spaces have likes but no download count
_DOWNLOADS = ("model", "dataset")
_NAME = re.compile(r"^[\w.-]+$")
_REPO = re.compile(r"^[\w.-]+/[\w.-]+$")
#: the Hub's answer to a bad token ("Invalid credentials in Authorization header"); a missing
#: or private repository answers 401 too, with `X-Error-Code: RepoNotFound`
_REPO_NOT_FOUND = "RepoNotFound"
_PER_PAGE = 1000


class HuggingFace(ServiceSource):
    type: ClassVar[str] = "huggingface"
    service_name: ClassVar[str] = "Hugging Face Hub"
    known_metrics: ClassVar[tuple[str, ...]] = ("downloads", "likes")
    default_metrics: ClassVar[tuple[str, ...]] = known_metrics
    credentials: ClassVar[Mapping[str, str]] = {"token": "HF_TOKEN"}

    repo: str | None = Field(default=None, description="one repository: owner/name")
    author: str | None = Field(
        default=None, description="an organization or user: sums over its repositories"
    )
    repo_type: RepoType | None = Field(
        default=None,
        description="model, dataset or space; with `repo` default model, with `author` all three",
    )
    token: Secret | None = Field(default=None, description="a User Access Token (read)")
    api_url: str = "https://huggingface.co"

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str | None) -> str | None:
        if value is not None and not _REPO.match(value.strip()):
            raise ValueError(f"{value!r} is not a repository like openai-community/gpt2")
        return value.strip() if value else value

    @field_validator("author")
    @classmethod
    def _author(cls, value: str | None) -> str | None:
        if value is not None and not _NAME.match(value.strip()):
            raise ValueError(f"{value!r} is not an organization or user name like huggingface")
        return value.strip() if value else value

    @model_validator(mode="after")
    def _one_target(self) -> HuggingFace:
        if (self.repo is None) == (self.author is None):
            raise ValueError("give exactly one of `repo:` (owner/name) and `author:` (an org)")
        if self.repo_type == "space" and "downloads" in self.metrics:
            raise ValueError("Spaces have no download count: use `metrics: [likes]`")
        return self

    def types(self) -> tuple[RepoType, ...]:
        """The repository types read: the one given, or for an author all three."""
        if self.repo_type is not None:
            return (self.repo_type,)
        return ("model",) if self.repo is not None else ("model", "dataset", "space")

    def wanted(self) -> list[str]:
        if self.metrics:
            return list(self.metrics)
        return ["likes"] if self.types() == ("space",) else list(self.known_metrics)

    def auth(self) -> Auth | None:
        return Auth(bearer=self.token) if self.token is not None else None

    def http_error(self, response: Response) -> HttpError:
        if response.headers.get("X-Error-Code") == _REPO_NOT_FOUND:
            # the Hub answers 401 (not 404) for a missing, private or gated repository
            hint = (
                " (a private repository needs `token:`)"
                if self.token is None
                else " (or it is private or gated and the token cannot read it)"
            )
            text = (
                f"the Hugging Face Hub has no {self.types()[0]} {self.repo!r}: check `repo:` "
                f"and `repo_type:` of source {self.name!r}{hint}"
            )
            return HttpError(redact(text), status=response.status, url=response.url)
        return super().http_error(response)

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        client = self.client(ctx)
        if self.repo is not None:
            kind = self.types()[0]
            repos = [await client.json(f"/api/{kind}s/{self.repo}")]
            return self._sum({kind: repos})
        found: dict[RepoType, list[Any]] = {}
        for kind in self.types():
            if kind == "space" and self.wanted() == ["downloads"]:
                continue
            found[kind] = await self._listed(client, kind)
        if not any(found.values()):
            private = "" if self.token is not None else " (private ones need `token:`)"
            raise ExtractError(
                f"the Hugging Face Hub lists no {'s, '.join(found)}s by {self.author!r}: check "
                f"`author:` of source {self.name!r}{private}"
            )
        return self._sum(found)

    async def _listed(self, client: ServiceClient, kind: RepoType) -> list[Any]:
        """Every repository of `kind` by the author, following `Link: rel="next"` (cursor)."""
        repos: list[Any] = []
        params = {"author": self.author or "", "limit": _PER_PAGE}
        async for page in client.pages(f"/api/{kind}s", params=params):
            items = page.json()
            if not isinstance(items, list):
                raise ExtractError(f"Hugging Face Hub: the {kind} list is not a list")
            repos.extend(items)
        return repos

    def _sum(self, found: Mapping[RepoType, list[Any]]) -> dict[str, float]:
        wanted = self.wanted()
        values = {m: 0.0 for m in wanted}
        for kind, repos in found.items():
            for repo in repos:
                if "likes" in values:
                    values["likes"] += number(repo, "likes", self.service_name)
                if "downloads" in values and kind in _DOWNLOADS:
                    values["downloads"] += number(repo, "downloads", self.service_name)
        return values
