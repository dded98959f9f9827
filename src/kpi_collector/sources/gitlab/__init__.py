"""`type: gitlab`: a project's stars, forks, open issues and open merge requests from the GitLab
REST API v4 (`GET /api/v4/projects/:id`, docs.gitlab.com/api/projects), on gitlab.com or a
self-managed instance; stars over time for backfill from the starrers' `starred_since`
(`GET /projects/:id/starrers`, docs.gitlab.com/api/project_starring).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import AsyncIterator, Mapping
from datetime import date, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlsplit

from pydantic import Field, field_validator

from kpi_collector.collect.http import Auth, Response
from kpi_collector.errors import ExtractError, MetricErrors
from kpi_collector.secrets import Secret
from kpi_collector.sources._service import (
    MAX_PAGES,
    ServiceClient,
    ServiceSource,
    day_end,
    days,
    number,
    page_number,
    parse_time,
    service_message,
)
from kpi_collector.sources.base import Observation, SourceContext

_PROJECT_FIELDS = {
    "stars": "star_count",
    "forks": "forks_count",
    "open_issues": "open_issues_count",
}
_ISSUES = _PROJECT_FIELDS["open_issues"]
_PATH = re.compile(r"^[\w.-]+(/[\w.-]+)+$")
#: GitLab leaves out `x-total` when a list has more than 10,000 items (docs.gitlab.com/api/rest,
#: "Other pagination headers")
_UNCOUNTED = 10_000
_COUNT_OPEN_MERGE_REQUESTS = (
    "query($path: ID!) { project(fullPath: $path) { mergeRequests(state: opened) { count } } }"
)


class GitLab(ServiceSource):
    type: ClassVar[str] = "gitlab"
    service_name: ClassVar[str] = "GitLab"
    known_metrics: ClassVar[tuple[str, ...]] = (*_PROJECT_FIELDS, "open_merge_requests")
    default_metrics: ClassVar[tuple[str, ...]] = known_metrics
    credentials: ClassVar[Mapping[str, str]] = {"token": "GITLAB_TOKEN"}

    project: str = Field(description="the project's path (group/name) or numeric id")
    token: Secret | None = Field(
        default=None, description="a personal, group or project access token (read_api)"
    )
    api_url: str = "https://gitlab.com"

    @field_validator("project")
    @classmethod
    def _project(cls, value: str) -> str:
        value = value.strip().strip("/")
        if not (value.isdigit() or _PATH.match(value)):
            raise ValueError(f"{value!r} is not a project path like gitlab-org/gitlab or an id")
        return value

    def auth(self) -> Auth | None:
        return Auth(header={"PRIVATE-TOKEN": self.token}) if self.token is not None else None

    def base(self) -> str:
        """The project's API path; a path is URL-encoded as one segment (group%2Fname)."""
        return f"/api/v4/projects/{quote(self.project, safe='')}"

    def not_found(self, response: Response) -> str:
        if urlsplit(response.url).path.endswith("/api/graphql"):
            return (
                f"GitLab at {self.api_url} counts no list above {_UNCOUNTED:,} items, and has no "
                "GraphQL API (/api/graphql, turned off?) to count the open merge requests of "
                f"{self.project!r}: leave `open_merge_requests` out of `metrics:` of source "
                f"{self.name!r}"
            )
        said = service_message(response.body, response.headers.get("Content-Type"))
        if "project not found" not in said.lower():
            # GitLab names a project it does not show ("404 Project Not Found"); a path it has
            # no route for ("404 Not Found", from an `api_url` ending in /api/v4) or a web page
            # (another server) is the address, not the project
            return (
                f"GitLab at {self.api_url} has no REST API v4 route "
                f"{urlsplit(response.url).path} (HTTP 404{': ' + said if said else ''}): check "
                f"`api_url:` of source {self.name!r}, the instance's base URL without /api/v4"
            )
        hidden = (
            " (a private project needs `token:`)"
            if self.token is None
            else " (or it is private and the token cannot see it: its user must be a member "
            "of the project, and the token needs the read_api scope)"
        )
        return (
            f"GitLab at {self.api_url} has no project {self.project!r}: check `project:` and "
            f"`api_url:` of source {self.name!r}{hidden}"
        )

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        client = self.client(ctx)
        wanted = self.wanted()
        parts: dict[tuple[str, ...], Any] = {}
        why: dict[str, str] = {}  # metrics the answer left out, and why
        fields = tuple(m for m in _PROJECT_FIELDS if m in wanted)
        if fields:
            parts[fields] = self._project_numbers(client, fields, why)
        if "open_merge_requests" in wanted:
            parts[("open_merge_requests",)] = self._open_merge_requests(client)
        try:
            return await self.gather(parts)
        except MetricErrors as exc:
            exc.errors.update({m: f"{m}: {text}" for m, text in why.items() if m in exc.errors})
            raise MetricErrors(exc.values, exc.errors, exc.transient_metrics) from None

    async def _project_numbers(
        self, client: ServiceClient, fields: tuple[str, ...], why: dict[str, str]
    ) -> dict[str, float]:
        project = await client.json(self.base())
        values = {}
        for metric in fields:
            if metric == "open_issues" and isinstance(project, dict) and _ISSUES not in project:
                # absent when the project has issues turned off, or shows them to its members
                # only and the caller is none; stars and forks still count
                why[metric] = self._no_issues(project)
                continue
            values[metric] = number(project, _PROJECT_FIELDS[metric], self.service_name)
        return values

    def _no_issues(self, project: dict[str, Any]) -> str:
        """Why the project's answer has no `open_issues_count`, as its `issues_access_level`
        says: issues turned off, or shown to project members only."""
        leave = f"leave `open_issues` out of `metrics:` of source {self.name!r}"
        if project.get("issues_access_level") == "private":
            who = (
                "the token's user is not a member"
                if self.token is not None
                else "source sends no `token:`"
            )
            return (
                f"GitLab project {self.project!r} shows its issues to project members only, "
                f"and {who}: give a member's token (read_api), or {leave}"
            )
        return f"GitLab project {self.project!r} has issues turned off: {leave}"

    async def _open_merge_requests(self, client: ServiceClient) -> dict[str, float]:
        response = await client.get(
            f"{self.base()}/merge_requests", params={"state": "opened", "per_page": 1}
        )
        total = response.headers.get("x-total")
        if total is None:
            # no x- headers (a proxy that drops them): with one item a page, an empty page is
            # 0, else the number of the last page is the count (GitLab names a last page
            # even for an empty list)
            items = response.json()
            last = response.links.get("last")
            if isinstance(items, list) and (not items or last or "next" not in response.links):
                total = str(page_number(last) if items and last else len(items))
        if total is None:
            # above 10,000 GitLab counts no list: its GraphQL API counts the merge requests
            return {"open_merge_requests": await self._graphql_open_merge_requests(client)}
        if not total.strip().isdigit():
            raise ExtractError(f"GitLab: x-total is not a count ({total[:20]!r})")
        return {"open_merge_requests": float(int(total))}

    async def _graphql_open_merge_requests(self, client: ServiceClient) -> float:
        """`mergeRequests(state: opened) { count }` of the project (POST /api/graphql), the
        count GitLab gives for any number of merge requests."""
        path = self.project
        if path.isdigit():  # GraphQL finds a project by its full path
            info = await client.json(self.base())
            path = str(info.get("path_with_namespace", "")) if isinstance(info, dict) else ""
        response = await client.request(
            "POST",
            "/api/graphql",
            json_body={"query": _COUNT_OPEN_MERGE_REQUESTS, "variables": {"path": path}},
        )
        body = response.json()
        data = body.get("data") if isinstance(body, dict) else None
        project = data.get("project") if isinstance(data, dict) else None
        requests = project.get("mergeRequests") if isinstance(project, dict) else None
        count = requests.get("count") if isinstance(requests, dict) else None
        if isinstance(count, bool) or not isinstance(count, int):
            said = service_message(response.body)  # GraphQL's `errors`, answered with 200
            raise ExtractError(
                f"GitLab did not count the open merge requests of {self.project!r}: no x-total "
                f"header (GitLab leaves it out above {_UNCOUNTED:,}), and its GraphQL API gave "
                f"no count{' (' + said + ')' if said else ''}"
            )
        return float(count)

    async def _pages(
        self, client: ServiceClient, path: str, params: dict[str, Any]
    ) -> AsyncIterator[Response]:
        """Every page of an offset-paginated list. `x-next-page` names the next page, asked
        of `api_url` itself: GitLab writes its `Link` header with its configured host
        (`external_url`), which need not be the address kpi reaches it at. A list without
        that header (keyset pagination) follows `Link: rel="next"` (`ServiceClient.next_page`:
        its query, asked of `api_url`, when it names another host)."""
        response = await client.get(path, params=params)
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            if response.url in seen:
                # a next page that is one already read: its items would count twice
                raise ExtractError(f"GitLab named a page already read as the next one of {path}")
            seen.add(response.url)
            yield response
            following = response.headers.get("x-next-page")
            if following is None:
                keyset = await client.next_page(response, path, params=params)
                if keyset is None:
                    return
                response = keyset
                continue
            following = following.strip()
            if not following:
                return
            if not following.isdigit():
                raise ExtractError(f"GitLab: x-next-page is not a page number ({following[:20]!r})")
            response = await client.get(path, params={**params, "page": following})
        raise ExtractError(f"GitLab kept answering with a next page after {MAX_PAGES} pages")

    async def backfill(self, ctx: SourceContext, since: date) -> AsyncIterator[Observation]:
        """Stars at the end of each day from `since` to yesterday: today's `star_count` less
        the stars given after that day (the starrers' `starred_since`, every page read). A
        star taken back is gone from both, so past days hold the stars that are still there."""
        if self.metrics and "stars" not in self.metrics:
            return
        client = self.client(ctx)
        now = number(await client.json(self.base()), "star_count", self.service_name)
        stamps: list[datetime] = []
        async for page in self._pages(client, f"{self.base()}/starrers", {"per_page": 100}):
            items = page.json()
            if not isinstance(items, list):
                raise ExtractError("GitLab: the starrers are not a list")
            for item in items:
                if not isinstance(item, dict) or "starred_since" not in item:
                    raise ExtractError("GitLab: a starrer came without `starred_since`")
                stamps.append(parse_time(item["starred_since"]))
        if not stamps:
            return
        stamps.sort()
        first = stamps[0].astimezone(ctx.tz).date()
        if first > since:
            ctx.limit(f"the first star of {self.project} came on {first}")
        for day in days(max(since, first), ctx.today - timedelta(days=1)):
            end = day_end(day, ctx.tz)
            later = len(stamps) - bisect_right(stamps, end)
            yield Observation("stars", max(0.0, now - later), end)
