"""A local GitLab REST API v4: a project (`GET /api/v4/projects/:id`, by id or URL-encoded
path), its open merge requests (and their count from the GraphQL API, `POST /api/graphql`) and its
starrers, paginated the way docs.gitlab.com/api/rest
documents (`page`/`per_page`, `x-total`, `x-total-pages`, `x-next-page`... and a `Link`
header), with GitLab's error bodies: `{"message": "401 Unauthorized"}` for a bad token and
`{"message": "404 Project Not Found"}` for a project the caller cannot see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlencode

from aiohttp import web

from kpi_collector.sources._fake import FakeService, respond


@dataclass
class Project:
    id: int
    path: str
    forks: int = 0
    open_issues: int | None = 0  # None: issues turned off (the field is left out)
    open_merge_requests: int = 0
    starrers: list[datetime] = field(default_factory=list)
    private: bool = False
    #: the tokens whose users are members of a private project (None: every valid token);
    #: GitLab answers 404 to anyone else
    members: set[str] | None = None
    #: issues visible to project members only (`issues_access_level: private`): GitLab leaves
    #: `open_issues_count` out for anyone else, as for issues turned off
    issues_members_only: bool = False


@dataclass
class FakeGitLab(FakeService):
    projects: list[Project] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    #: the instance's configured host[:port] (`external_url`): GitLab writes its `Link`
    #: header with it, whatever host the request reached; None: the request's
    external_host: str | None = None
    #: False: lists answer with the `Link` header alone, without `x-next-page` and the other
    #: x- page headers (keyset pagination; a proxy that passes no x- headers)
    page_headers: bool = True

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v4/projects/{rest:.*}", self.project_route)
        app.router.add_post("/api/graphql", self.graphql)
        # Grape's answer to a path under the API it has no route for, and the web app's page
        # to any other
        app.router.add_route("*", "/api/v4/{tail:.*}", _no_route)
        app.router.add_route("*", "/{tail:.*}", _web_page_404)

    def _visible(self, project: Project, token: str | None) -> bool:
        return not project.private or (
            token is not None and (project.members is None or token in project.members)
        )

    async def graphql(self, request: web.Request) -> web.Response:
        """`project(fullPath:) { mergeRequests(state: opened) { count } }`, the one query the
        connector sends; GraphQL answers a project the caller cannot see with `null`, and a
        query it cannot run with `errors`, both with 200."""
        token = request.headers.get("PRIVATE-TOKEN")
        if token is not None and token not in self.tokens:
            return respond(401, {"message": "401 Unauthorized"})
        body = await request.json()
        query = " ".join(str(body.get("query", "")).split())
        if "project(fullPath: $path) { mergeRequests(state: opened) { count } }" not in query:
            return respond(200, {"errors": [{"message": "the fake knows one query"}]})
        path = (body.get("variables") or {}).get("path")
        project = next((p for p in self.projects if p.path == path), None)
        if project is None or not self._visible(project, token):
            return respond(200, {"data": {"project": None}})
        count = project.open_merge_requests
        return respond(200, {"data": {"project": {"mergeRequests": {"count": count}}}})

    async def project_route(self, request: web.Request) -> web.Response:
        token = request.headers.get("PRIVATE-TOKEN")
        if token is not None and token not in self.tokens:
            return respond(401, {"message": "401 Unauthorized"})
        # the raw path keeps %2F: the project is one segment, what follows is the resource
        raw = request.raw_path.split("?")[0].removeprefix("/api/v4/projects/")
        ident, _, resource = raw.partition("/")
        ident = unquote(ident)
        project = next((p for p in self.projects if ident in (str(p.id), p.path)), None)
        hidden = project is not None and (
            project.private
            and (token is None or (project.members is not None and token not in project.members))
        )
        if project is None or hidden:
            return respond(404, {"message": "404 Project Not Found"})
        if resource == "":
            member = token is not None and (project.members is None or token in project.members)
            return respond(200, _project(project, member=member))
        if resource == "merge_requests":
            opened = request.query.get("state") == "opened"
            items = [
                {"id": 1000 + i, "iid": i + 1, "project_id": project.id, "state": "opened"}
                for i in range(project.open_merge_requests if opened else 0)
            ]
            return _page(request, items, self.external_host, self.page_headers)
        if resource == "starrers":
            items = [
                {
                    "starred_since": t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                    "user": {"id": 500 + i, "username": f"user{i}", "state": "active"},
                }
                for i, t in enumerate(project.starrers)
            ]
            return _page(request, items, self.external_host, self.page_headers)
        return respond(404, {"error": "404 Not Found"})


async def _no_route(request: web.Request) -> web.Response:
    return respond(404, {"error": "404 Not Found"})


async def _web_page_404(request: web.Request) -> web.Response:
    return respond(
        404,
        "<!DOCTYPE html><html><head><title>Not Found</title></head><body><h1>404</h1>"
        "<p>Page not found</p><p>Make sure the address is correct and the page has not moved."
        "</p></body></html>",
    )


def _project(project: Project, *, member: bool = False) -> dict[str, Any]:
    issues = project.open_issues is not None and (not project.issues_members_only or member)
    level = "private" if project.issues_members_only else "enabled"
    body: dict[str, Any] = {
        "id": project.id,
        "description": "",
        "name": project.path.rsplit("/", 1)[-1],
        "path_with_namespace": project.path,
        "visibility": "private" if project.private else "public",
        "star_count": len(project.starrers),
        "forks_count": project.forks,
        "issues_enabled": issues,
        "issues_access_level": "disabled" if project.open_issues is None else level,
    }
    if issues:
        body["open_issues_count"] = project.open_issues
    return body


def _page(
    request: web.Request, items: list[Any], external_host: str | None, page_headers: bool = True
) -> web.Response:
    per_page = min(100, int(request.query.get("per_page", "20")))
    page = int(request.query.get("page", "1"))
    pages = max(1, -(-len(items) // per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    # the request's scheme and path, the configured host and port (GitLab's base_request_uri)
    host = external_host or request.host
    base = f"{request.url.scheme}://{host}{request.raw_path.split('?')[0]}"

    def link(n: int) -> str:
        return f"{base}?{urlencode({**request.query, 'page': n, 'per_page': per_page})}"

    links = [(page - 1, "prev")] if page > 1 else []
    links += [(page + 1, "next")] if page < pages else []
    links += [(1, "first")]
    if len(items) <= 10_000:  # past 10,000 no rel="last" either (docs.gitlab.com/api/rest)
        links += [(pages, "last")]
    headers = {
        "x-page": str(page),
        "x-per-page": str(per_page),
        "x-next-page": str(page + 1) if page < pages else "",
        "x-prev-page": str(page - 1) if page > 1 else "",
        "Link": ", ".join(f'<{link(n)}>; rel="{rel}"' for n, rel in links),
    }
    if len(items) <= 10_000:  # GitLab counts lists up to 10,000 items
        headers |= {"x-total": str(len(items)), "x-total-pages": str(pages)}
    if not page_headers:
        headers = {"Link": headers["Link"]}
    return respond(200, chunk, headers)
