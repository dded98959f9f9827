"""`type: github`: a repository's stars, forks, watchers, issues, pull requests, contributors,
release downloads and (with a token that can push) traffic, from the REST API v3; stars over
time for backfill.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import date, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from kpi_collector.collect.http import Auth, Response, url_without_query
from kpi_collector.errors import ExtractError, HttpError, MetricErrors
from kpi_collector.secrets import Secret
from kpi_collector.sources._service import (
    ServiceClient,
    ServiceSource,
    check_repo,
    day_end,
    days,
    number,
    page_number,
    parse_time,
)
from kpi_collector.sources.base import Observation, SourceContext

_REPO_FIELDS = {
    "stars": "stargazers_count",
    "forks": "forks_count",
    "watchers": "subscribers_count",
    "open_issues": "open_issues_count",  # counts pull requests too; open_prs is taken off
}
_TRAFFIC = {
    "views": "count",
    "unique_views": "uniques",
    "clones": "count",
    "unique_clones": "uniques",
}
_PUBLIC = (*_REPO_FIELDS, "open_prs", "contributors", "releases_downloads")
_STARS_PER_PAGE = 100
#: where GitHub Enterprise Server serves the REST API on its hostname
_ENTERPRISE_API = "/api/v3"


class GitHub(ServiceSource):
    type: ClassVar[str] = "github"
    service_name: ClassVar[str] = "GitHub"
    known_metrics: ClassVar[tuple[str, ...]] = (*_PUBLIC, *_TRAFFIC)
    default_metrics: ClassVar[tuple[str, ...]] = _PUBLIC
    credentials: ClassVar[Mapping[str, str]] = {"token": "GITHUB_TOKEN"}
    # "wait for at least one minute before retrying" a secondary rate limit without
    # retry-after (https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api)
    rate_limit_backoff: ClassVar[float] = 60.0
    # the REST API answers every 404 with JSON; a web page is GitHub Enterprise's web UI
    # (an `api_url` without /api/v3), which knows no repository
    json_not_found: ClassVar[bool] = True

    repo: str = Field(description="owner/name")
    token: Secret | None = Field(
        default=None, description="a token; traffic metrics need push access"
    )
    api_url: str = "https://api.github.com"

    @field_validator("repo")
    @classmethod
    def _repo(cls, value: str) -> str:
        return check_repo(value, "zenml-io/zenml")

    def wanted(self) -> list[str]:
        # traffic needs push access, which most tokens (a CI's own, a read-only one) lack:
        # it is collected only when `metrics:` asks for it
        return list(self.metrics) if self.metrics else list(_PUBLIC)

    def auth(self) -> Auth | None:
        return Auth(bearer=self.token) if self.token is not None else None

    def headers(self) -> dict[str, str]:
        return {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}

    def api_path(self, url: str) -> str | None:
        # GitHub Enterprise serves its API at /api/v3 of its hostname and writes a renamed
        # repository's 301 with it: the rest of the path is that of `api_url`
        parts = urlsplit(url)
        if not parts.path.startswith(_ENTERPRISE_API + "/"):
            return None
        below = parts.path[len(_ENTERPRISE_API) :]
        return f"{below}?{parts.query}" if parts.query else below

    def not_api(self, response: Response) -> str:
        return (
            f"{super().not_api(response).removesuffix(')')}; GitHub Enterprise Server: "
            f"https://HOST{_ENTERPRISE_API})"
        )

    def not_found(self, response: Response) -> str:
        path = urlsplit(response.url).path
        if not path.rstrip("/").endswith(f"/repos/{self.repo}"):
            # the repository answered, one of its lists did not (an API without that endpoint)
            return f"GitHub answered 404 for {path} of repository {self.repo!r}: check `api_url:` of source {self.name!r}"
        hidden = (
            " (a private repository needs `token:`)"
            if self.token is None
            else " (or it is private and the token cannot see it: a fine-grained token must "
            "list it under Repository access, a classic one needs the `repo` scope)"
        )
        return f"GitHub repository {self.repo!r} not found: check `repo:` of source {self.name!r}{hidden}"

    def forbidden(self, response: Response, message: str) -> str:
        if "/traffic/" in response.url:
            return (
                f"GitHub refused the traffic of {self.repo!r} (HTTP 403: {message or 'forbidden'}): traffic needs "
                f"a token with push access (classic: `repo` scope; fine-grained: Administration read)"
                + (
                    ""
                    if self.metrics
                    else "; or list the metrics you want in `metrics:`, without the traffic ones"
                )
            )
        if response.url.split("?")[0].endswith("/contributors") and "too large" in message:
            # GitHub's API does not count the contributors of its largest repositories
            others = [m for m in self.wanted() if m != "contributors"]
            return (
                f"GitHub does not list the contributors of {self.repo!r} (HTTP 403: {message}): "
                f"leave `contributors` out of `metrics:` of source {self.name!r}"
                + (f", e.g. `metrics: [{', '.join(others)}]`" if not self.metrics else "")
            )
        sso = response.headers.get("X-GitHub-SSO", "")
        if sso.startswith("required") and self.token is not None:
            # an organization enforcing SAML SSO, for which the token is not authorized: no
            # permission is missing, the token needs authorizing (the URL's query is a
            # per-request id, left out)
            url = sso.partition("url=")[2].strip()
            where = f" (or sign in at {url_without_query(url)} first)" if url else ""
            return (
                f"GitHub refused {urlsplit(response.url).path} (HTTP 403: {message or 'forbidden'}): "
                f"the organization owning {self.repo!r} enforces SAML single sign-on and the "
                f"token of source {self.name!r} is not authorized for it: on "
                f"github.com/settings/tokens, Configure SSO → Authorize for that "
                f"organization{where}"
            )
        wants = response.headers.get("x-accepted-github-permissions", "").strip()
        if wants and self.token is not None:
            # a fine-grained token without a permission: GitHub names the one it accepts
            return (
                f"GitHub refused {urlsplit(response.url).path} (HTTP 403: {message or 'forbidden'}): "
                f"the token of source {self.name!r} needs the permission {wants} on {self.repo!r}"
            )
        return super().forbidden(response, message)

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        wanted = set(self.wanted())
        if self.token is None and wanted & set(_TRAFFIC):
            raise ExtractError(
                f"{', '.join(sorted(wanted & set(_TRAFFIC)))} need a token with push access: "
                f"add `token: ${{GITHUB_TOKEN}}` to source {self.name!r}"
            )
        client = self.client(ctx)
        base = f"/repos/{self.repo}"
        parts: dict[tuple[str, ...], Any] = {}
        repo_metrics = tuple(m for m in _REPO_FIELDS if m in wanted)
        if repo_metrics or "open_prs" in wanted:
            # open_issues needs open_prs taken off, so the two travel together
            group = (*repo_metrics, *(("open_prs",) if "open_prs" in wanted else ()))
            parts[group] = self._repo_numbers(client, base, wanted)
        if "contributors" in wanted:
            parts[("contributors",)] = self._count(
                client, f"{base}/contributors", "contributors", {"anon": "false"}
            )
        if "releases_downloads" in wanted:
            parts[("releases_downloads",)] = self._release_downloads(client, base)
        for kind, (total, unique) in {
            "views": ("views", "unique_views"),
            "clones": ("clones", "unique_clones"),
        }.items():
            group = tuple(m for m in (total, unique) if m in wanted)
            if group:
                parts[group] = self._traffic(client, f"{base}/traffic/{kind}", total, unique)
        return await self.gather(parts)

    async def _repo_numbers(
        self, client: ServiceClient, base: str, wanted: set[str]
    ) -> dict[str, float]:
        repo = await client.json(base)
        values: dict[str, float] = {}
        for metric, field in _REPO_FIELDS.items():
            if metric in wanted or (metric == "open_issues" and "open_prs" in wanted):
                values[metric] = number(repo, field, self.service_name)
        if "open_prs" in wanted or "open_issues" in wanted:
            try:
                prs = await client.count(f"{base}/pulls", params={"state": "open"})
            except HttpError as exc:
                # a token that reads the repository but not its pull requests: the
                # repository's own numbers still count
                kept = {m: v for m, v in values.items() if m in wanted and m != "open_issues"}
                if not kept:
                    raise
                failed = [m for m in ("open_issues", "open_prs") if m in wanted]
                failures: dict[str, str] = {m: f"{m}: {exc}" for m in failed}
                raise MetricErrors(kept, failures, failed if exc.transient else ()) from None
            if "open_prs" in wanted:
                values["open_prs"] = float(prs)
            if "open_issues" in wanted:
                values["open_issues"] = max(0.0, values["open_issues"] - prs)
        return {m: v for m, v in values.items() if m in wanted}

    async def _count(
        self, client: ServiceClient, path: str, metric: str, params: dict[str, str]
    ) -> dict[str, float]:
        return {metric: float(await client.count(path, params=params))}

    async def _release_downloads(self, client: ServiceClient, base: str) -> dict[str, float]:
        total = 0.0
        read = 0
        try:
            async for page in client.pages(f"{base}/releases", params={"per_page": 100}):
                for release in _list(page):
                    read += 1
                    for asset in release.get("assets") or []:
                        total += float(asset.get("download_count") or 0)
        except HttpError as exc:
            if exc.status != 422 or not read:
                raise
            # past its first 1000 releases GitHub answers 422: the sum of those is no total
            raise ExtractError(
                f"GitHub lists only the first {read:,} releases of {self.repo!r} ({exc}): their "
                f"downloads are not all of them; leave `releases_downloads` out of `metrics:` "
                f"of source {self.name!r}"
            ) from None
        return {"releases_downloads": total}

    async def _traffic(
        self, client: ServiceClient, path: str, total: str, unique: str
    ) -> dict[str, float]:
        data = await client.json(path)
        return {
            total: number(data, "count", self.service_name),
            unique: number(data, "uniques", self.service_name),
        }

    async def backfill(self, ctx: SourceContext, since: date) -> AsyncIterator[Observation]:
        """Stars at the end of each day from `since` to yesterday, from the stargazers' `starred_at`.

        The stargazers list is oldest first, so only the pages from `since` on are read, walking
        back from the last page. Unstarred stars are not in the list: the past is a lower bound.
        GitHub lists at most 400 pages: a later page is refused (422) or, today, answered with
        an empty list although `Link: rel="last"` promises more; either ends the backfill
        with an error saying so, never with the 40,000th star repeated for every day.
        """
        if self.metrics and "stars" not in self.metrics:
            return
        client = self.client(ctx)
        path = f"/repos/{self.repo}/stargazers"
        until = ctx.today - timedelta(days=1)
        first_page = await self._stargazer_page(client, path, 1)
        if not first_page[1]:
            return
        last = page_number(first_page[0].links["last"]) if "last" in first_page[0].links else 1
        before_since = day_end(since - timedelta(days=1), ctx.tz)
        read: dict[int, list[datetime]] = {1: first_page[1]}
        page = last
        while page > 1:
            stars = (await self._stargazer_page(client, path, page))[1]
            if not stars:  # a page inside the promised range with nothing on it: the cap
                raise self._capped(page, "came back empty")
            read[page] = stars
            if stars and stars[0] <= before_since:
                break  # every earlier page is older than `since`: only its size matters
            page -= 1
        if all(p in read for p in range(1, last + 1)):
            base = 0
            stamps = [t for p in range(1, last + 1) for t in read[p]]
            first_star = stamps[0].astimezone(ctx.tz).date()
            first_day = max(since, first_star)
            if first_star > since:
                ctx.limit(f"the first star of {self.repo} came on {first_star}")
        else:
            lowest = min(p for p in read if p > 1)
            base = (lowest - 1) * _STARS_PER_PAGE
            stamps = [t for p in range(lowest, last + 1) for t in read[p]]
            first_day = since
        index = 0
        for day in days(first_day, until):
            end = day_end(day, ctx.tz)
            while index < len(stamps) and stamps[index] <= end:
                index += 1
            yield Observation("stars", float(base + index), end)

    async def _stargazer_page(
        self, client: ServiceClient, path: str, page: int
    ) -> tuple[Response, list[datetime]]:
        try:
            response = await client.get(
                path,
                params={"per_page": _STARS_PER_PAGE, "page": page},
                headers={"Accept": "application/vnd.github.star+json"},
            )
        except HttpError as exc:
            if exc.status == 422:
                raise self._capped(page, "refused") from None
            raise
        stamps = []
        for item in _list(response):
            if not isinstance(item, dict) or "starred_at" not in item:
                raise ExtractError(
                    "GitHub stargazers came without `starred_at` (the star+json media type)"
                )
            stamps.append(parse_time(item["starred_at"]))
        return response, stamps

    def _capped(self, page: int, answer: str) -> ExtractError:
        return ExtractError(
            f"GitHub lists only the first {_STARS_PER_PAGE * (page - 1):,} stargazers of a "
            f"repository this large (page {page} {answer}): stars over time cannot be backfilled "
            f"for {self.repo!r}"
        )


def _list(response: Response) -> list[Any]:
    data = response.json()
    if not isinstance(data, list):
        raise ExtractError(f"expected a list from GitHub, got {type(data).__name__}")
    return data
