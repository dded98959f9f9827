"""A local GitHub REST API v3: repos, pulls, contributors, releases, traffic, stargazers
(with `application/vnd.github.star+json`), Link pagination, the primary and secondary rate
limits (`x-ratelimit-*` and `retry-after` headers; 403 or 429) and GitHub's error bodies.

Rate limits as docs.github.com documents them ("Rate limits for the REST API"): 60 requests an
hour for anonymous callers (per address), 5,000 for an authenticated one (per token), each
answer carrying `x-ratelimit-limit/remaining/used/reset/resource`; past the limit GitHub
answers "403 or 429" with `x-ratelimit-remaining: 0` (`limited_status` picks which). The
secondary limit: at most 900 points a minute (a GET is one point) per caller, answered with
the same 403 or 429, a "secondary rate limit" message and `retry-after` (seconds), while the
primary quota still has requests left.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web
from yarl import URL

from kpi_collector.sources._fake import FakeService, bearer, respond

DOCS = "https://docs.github.com/rest"


@dataclass
class Repo:
    owner: str
    name: str
    starred_at: list[datetime] = field(default_factory=list)  # oldest first, as GitHub lists them
    forks: int = 0
    watchers: int = 0  # subscribers
    open_issues: int = 0  # issues only; GitHub's open_issues_count adds the open pull requests
    open_prs: int = 0
    contributors: int = 0
    release_assets: list[list[int]] = field(default_factory=list)  # download counts per release
    views: tuple[int, int] = (0, 0)
    clones: tuple[int, int] = (0, 0)
    private: bool = False
    extra_stars: int = 0  # stargazers_count beyond the listed ones (deleted accounts)
    too_large: bool = False  # GitHub does not list the contributors of its largest repositories
    #: the tokens that may see a private repository (None: every valid token); GitHub
    #: answers 404, not 403, to any other caller
    readers: set[str] | None = None
    id: int = 0  # the repository's id (`/repositories/{id}`, in Link headers); 0: given by `add`


@dataclass
class FakeGitHub(FakeService):
    repos: dict[str, Repo] = field(default_factory=dict)
    tokens: set[str] = field(default_factory=set)  # valid tokens
    push_tokens: set[str] = field(default_factory=set)  # tokens with push access (traffic)
    rate_limit: int = 5000  # an authenticated caller's requests per window (per token)
    anonymous_limit: int = 60  # an anonymous caller's
    rate_window: float = 3600.0
    limited_status: int = 403  # GitHub answers a spent primary limit with 403 or 429
    #: caller (a token, None for anonymous) -> [remaining, reset_at]
    quotas: dict[str | None, list[float]] = field(default_factory=dict)
    secondary_limit: int = 900  # points a minute per caller (a GET costs one)
    secondary_window: float = 60.0
    #: caller -> [points spent, window end]
    secondary: dict[str | None, list[float]] = field(default_factory=dict)
    max_star_pages: int = 400  # GitHub lists no stargazer page past this...
    star_cap: str = "empty"  # ...answering `200 []` (today) or "422" (as it used to)
    #: GitHub lists the first 1000 releases, then answers 422 "Only the first 1000 results
    #: are available." (while the Link header of page 10 still names a next page)
    max_results: int = 1000
    #: the API's address as the server knows it (GitHub Enterprise's hostname, behind a
    #: proxy: "https://github.example.com/api/v3"): Link headers are written with it; None:
    #: the address the request reached
    link_base: str | None = None
    #: a repository's former full names (owner/name) -> its current one: GitHub answers the
    #: old name with `301 Moved Permanently` to `/repositories/{id}...`
    renamed: dict[str, str] = field(default_factory=dict)
    #: organizations that enforce SAML single sign-on -> the tokens authorized for it; GitHub
    #: answers any other token's request for the organization's repositories with 403
    #: "Resource protected by organization SAML enforcement" and an `X-GitHub-SSO` header
    sso: dict[str, set[str]] = field(default_factory=dict)

    def add(self, repo: Repo) -> Repo:
        if not repo.id:
            repo.id = 1296269 + len(self.repos)
        self.repos[f"{repo.owner}/{repo.name}"] = repo
        return repo

    def spend_quota(self, remaining: int = 0, reset_in: float = 3600.0) -> None:
        """Set every caller's primary rate limit (anonymous and each token): `remaining` calls
        left until `reset_in` seconds from now."""
        reset_at = time.time() + reset_in
        for caller in (None, *self.tokens):
            self.quotas[caller] = [remaining, reset_at]

    def limit_of(self, caller: str | None) -> int:
        return self.anonymous_limit if caller is None else self.rate_limit

    def _quota(self, caller: str | None) -> list[float]:
        quota = self.quotas.setdefault(caller, [self.limit_of(caller), 0.0])
        now = time.time()
        if now >= quota[1]:
            quota[0], quota[1] = self.limit_of(caller), now + self.rate_window
        return quota

    def routes(self, app: web.Application) -> None:
        # a repository by name, or by id as GitHub's Link headers and renames name it
        for base in ("/repos/{owner}/{repo}", "/repositories/{id:\\d+}"):
            app.router.add_get(base, self.repo)
            app.router.add_get(base + "/pulls", self.pulls)
            app.router.add_get(base + "/contributors", self.contributors)
            app.router.add_get(base + "/releases", self.releases)
            app.router.add_get(base + "/traffic/views", self.traffic)
            app.router.add_get(base + "/traffic/clones", self.traffic)
            app.router.add_get(base + "/stargazers", self.stargazers)

    def _find(self, request: web.Request) -> Repo | None:
        if "id" in request.match_info:
            wanted = int(request.match_info["id"])
            return next((r for r in self.repos.values() if r.id == wanted), None)
        return self.repos.get(f"{request.match_info['owner']}/{request.match_info['repo']}")

    # plumbing ------------------------------------------------------------------------------

    def _limit_headers(self, caller: str | None = None) -> dict[str, str]:
        remaining, reset_at = self._quota(caller)
        limit = self.limit_of(caller)
        return {
            "x-ratelimit-limit": str(limit),
            "x-ratelimit-remaining": str(max(0, int(remaining))),
            "x-ratelimit-reset": str(math.ceil(reset_at)),
            "x-ratelimit-used": str(limit - max(0, int(remaining))),
            "x-ratelimit-resource": "core",
        }

    def _gate(self, request: web.Request) -> tuple[Repo | None, web.Response | None]:
        """Authentication, rate limit and repository lookup, in GitHub's order."""
        token = bearer(request)
        if token is not None and token not in self.tokens:
            return None, respond(
                401,
                {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"},
                self._limit_headers(),
            )
        quota = self._quota(token)
        if quota[0] <= 0:
            who = f"for {request.remote}" if token is None else "for user ID 1"
            more = (
                " (But here's the good news: Authenticated requests get a higher rate limit. "
                "Check out the documentation for more details.)"
                if token is None
                else " If you reach out to GitHub Support for help, please include the request ID."
            )
            body = {
                "message": f"API rate limit exceeded {who}.{more}",
                "documentation_url": DOCS + "/overview/rate-limits-for-the-rest-api",
            }
            return None, respond(self.limited_status, body, self._limit_headers(token))
        refused = self._secondary(token)
        if refused is not None:
            return None, refused
        quota[0] -= 1
        repo = self._find(request)
        moved = self.renamed.get(
            f"{request.match_info.get('owner')}/{request.match_info.get('repo')}"
        )
        if repo is None and moved in self.repos:
            target = self.repos[moved]
            rest = request.path.split("/", 4)[4:]
            base = self.link_base or f"{request.scheme}://{request.host}"
            where = URL(
                f"{base}/repositories/{target.id}" + (f"/{rest[0]}" if rest else "")
            ).with_query(request.query)
            body = {"message": "Moved Permanently", "url": str(where), "documentation_url": DOCS}
            headers = {**self._limit_headers(token), "Location": str(where)}
            return None, respond(301, body, headers)
        if (
            repo is not None
            and token is not None
            and repo.owner in self.sso
            and token not in self.sso[repo.owner]
        ):
            body = {
                "message": "Resource protected by organization SAML enforcement. You must grant "
                "your Personal Access token access to this organization.",
                "documentation_url": "https://docs.github.com/articles/authenticating-to-a-"
                "github-organization-with-saml-single-sign-on/",
                "status": "403",
            }
            sso_url = (
                f"https://github.com/orgs/{repo.owner}/sso?authorization_request="
                "A5RQBTCK2QXCNW6DXJFUQ3TKXZHKBAQRJHD2VWAPD"
            )
            headers = {**self._limit_headers(token), "X-GitHub-SSO": f"required; url={sso_url}"}
            return None, respond(403, body, headers)
        hidden = repo is not None and (
            repo.private
            and (token is None or (repo.readers is not None and token not in repo.readers))
        )
        if repo is None or hidden:
            return None, respond(
                404,
                {"message": "Not Found", "documentation_url": DOCS, "status": "404"},
                self._limit_headers(bearer(request)),
            )
        return repo, None

    def _secondary(self, caller: str | None) -> web.Response | None:
        """The 403/429 of a spent secondary limit (with `retry-after`), or None after spending
        one point of it."""
        now = time.time()
        spent = self.secondary.setdefault(caller, [0, now + self.secondary_window])
        if now >= spent[1]:
            spent[0], spent[1] = 0, now + self.secondary_window
        if spent[0] >= self.secondary_limit:
            body = {
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes "
                "before you try again. If you reach out to GitHub Support for help, please "
                "include the request ID E198:4063:33BD6:375FF:652AAB04.",
                "documentation_url": DOCS
                + "/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
            }
            headers = {**self._limit_headers(caller), "retry-after": str(math.ceil(spent[1] - now))}
            return respond(self.limited_status, body, headers)
        spent[0] += 1
        return None

    def _page(self, request: web.Request, items: list[Any], *, empty: bool = False) -> web.Response:
        per_page = min(100, int(request.query.get("per_page", 30)))
        page = int(request.query.get("page", 1))
        last = max(1, math.ceil(len(items) / per_page))
        chunk = [] if empty else items[(page - 1) * per_page : page * per_page]
        links = []
        # GitHub names the list by the repository's id, at the address it knows itself by
        repo = self._find(request)
        rest = request.path.split("/", 4 if request.path.startswith("/repos/") else 3)[-1]
        base = self.link_base or f"{request.scheme}://{request.host}"
        url = URL(f"{base}/repositories/{repo.id if repo else 0}/{rest}").with_query(request.query)

        def at(number: int) -> str:
            return str(url.update_query(page=number))

        if page > 1:
            links.append(f'<{at(page - 1)}>; rel="prev"')
        if page < last:
            links += [f'<{at(page + 1)}>; rel="next"', f'<{at(last)}>; rel="last"']
        if page > 1:
            links.append(f'<{at(1)}>; rel="first"')
        headers = self._limit_headers(bearer(request))
        if links:
            headers["Link"] = ", ".join(links)
        return respond(200, chunk, headers)

    # endpoints -----------------------------------------------------------------------------

    async def repo(self, request: web.Request) -> web.Response:
        repo, refused = self._gate(request)
        if refused:
            return refused
        assert repo is not None
        stars = len(repo.starred_at) + repo.extra_stars
        body = {
            "id": repo.id,
            "node_id": "MDEwOlJlcG9zaXRvcnkxMjk2MjY5",
            "name": repo.name,
            "full_name": f"{repo.owner}/{repo.name}",
            "owner": {"login": repo.owner, "id": 1, "type": "Organization"},
            "private": repo.private,
            "html_url": f"https://github.com/{repo.owner}/{repo.name}",
            "fork": False,
            "forks_count": repo.forks,
            "forks": repo.forks,
            "stargazers_count": stars,
            "watchers_count": stars,
            "watchers": stars,
            "subscribers_count": repo.watchers,
            "network_count": repo.forks,
            "open_issues_count": repo.open_issues + repo.open_prs,
            "open_issues": repo.open_issues + repo.open_prs,
            "default_branch": "main",
        }
        return respond(200, body, self._limit_headers(bearer(request)))

    async def pulls(self, request: web.Request) -> web.Response:
        repo, refused = self._gate(request)
        if refused:
            return refused
        assert repo is not None
        state = request.query.get("state", "open")
        count = repo.open_prs if state == "open" else 0
        items = [
            {"number": n, "state": "open", "title": f"PR {n}", "draft": False}
            for n in range(count, 0, -1)
        ]
        return self._page(request, items)

    async def contributors(self, request: web.Request) -> web.Response:
        repo, refused = self._gate(request)
        if refused:
            return refused
        assert repo is not None
        if repo.too_large:
            body = {
                "message": "The history or contributor list is too large to list contributors "
                "for this repository via the API.",
                "documentation_url": DOCS + "/repos/repos#list-repository-contributors",
                "status": "403",
            }
            return respond(403, body, self._limit_headers(bearer(request)))
        if repo.contributors == 0:
            return web.Response(status=204, headers=self._limit_headers(bearer(request)))
        items = [
            {"login": f"user{i}", "id": i, "type": "User", "contributions": 100 - i % 100}
            for i in range(repo.contributors)
        ]
        return self._page(request, items)

    async def releases(self, request: web.Request) -> web.Response:
        repo, refused = self._gate(request)
        if refused:
            return refused
        assert repo is not None
        per_page = min(100, int(request.query.get("per_page", 30)))
        if (int(request.query.get("page", 1)) - 1) * per_page >= self.max_results:
            body = {
                "message": f"Only the first {self.max_results} results are available.",
                "documentation_url": DOCS + "/releases/releases#list-releases",
                "status": "422",
            }
            return respond(422, body, self._limit_headers(bearer(request)))
        items = [
            {
                "id": i,
                "tag_name": f"v{i}.0",
                "name": f"v{i}.0",
                "draft": False,
                "prerelease": False,
                "assets": [
                    {
                        "id": i * 100 + j,
                        "name": f"pkg-{i}-{j}.tar.gz",
                        "state": "uploaded",
                        "content_type": "application/gzip",
                        "size": 1024,
                        "download_count": count,
                    }
                    for j, count in enumerate(assets)
                ],
            }
            for i, assets in enumerate(repo.release_assets)
        ]
        return self._page(request, items)

    async def traffic(self, request: web.Request) -> web.Response:
        repo, refused = self._gate(request)
        if refused:
            return refused
        assert repo is not None
        if bearer(request) not in self.push_tokens:
            return respond(
                403,
                {
                    "message": "Must have push access to repository",
                    "documentation_url": DOCS,
                    "status": "403",
                },
                self._limit_headers(bearer(request)),
            )
        kind = request.path.rsplit("/", 1)[-1]
        count, uniques = repo.views if kind == "views" else repo.clones
        body = {
            "count": count,
            "uniques": uniques,
            kind: [{"timestamp": "2026-01-01T00:00:00Z", "count": count, "uniques": uniques}],
        }
        return respond(200, body, self._limit_headers(bearer(request)))

    async def stargazers(self, request: web.Request) -> web.Response:
        repo, refused = self._gate(request)
        if refused:
            return refused
        assert repo is not None
        if int(request.query.get("page", 1)) > self.max_star_pages and self.star_cap == "422":
            body = {
                "message": "In order to keep the API fast for everyone, pagination is limited for this "
                "resource. Check the rel=last link relation in the Link response header to see how far "
                "back you can traverse.",
                "documentation_url": DOCS,
            }
            return respond(422, body, self._limit_headers(bearer(request)))
        with_dates = "application/vnd.github.star+json" in request.headers.get("Accept", "")
        items: list[Any] = []
        if int(request.query.get("page", 1)) > self.max_star_pages:
            # an empty page, while the Link header still promises the pages up to the last
            return self._page(request, [None] * len(repo.starred_at), empty=True)
        for i, when in enumerate(repo.starred_at):
            user = {"login": f"fan{i}", "id": 10_000 + i, "type": "User"}
            items.append(
                {"starred_at": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "user": user}
                if with_dates
                else user
            )
        return self._page(request, items)
