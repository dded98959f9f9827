"""A local Hugging Face Hub API: one repository (`GET /api/{models,datasets,spaces}/{owner}/{name}`)
and an author's repositories (`GET /api/models?author=...&limit=...`), paginated with a cursor
in a `Link: <...>; rel="next"` header, as huggingface.co/docs/hub/api and the huggingface_hub
client describe. Errors as the Hub gives them: 401 `{"error": "Invalid credentials in
Authorization header"}` for a bad token, and 401 with `X-Error-Code: RepoNotFound` for a
missing or private repository (the Hub does not tell the two apart).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from kpi_collector.sources._fake import FakeService, bearer, respond


@dataclass
class Repo:
    kind: str  # model, dataset or space
    id: str  # owner/name
    likes: int
    downloads: int = 0  # last 30 days; Spaces have none
    private: bool = False


@dataclass
class FakeHub(FakeService):
    repos: list[Repo] = field(default_factory=list)
    #: token -> the owners whose private repositories it may read
    tokens: dict[str, set[str]] = field(default_factory=dict)
    #: the most items a list page holds (the Hub's cap is 1000)
    page_size: int = 1000
    #: the address the Hub writes its `Link` headers with (a mirror serving the Hub's own
    #: answers: "https://huggingface.co"); None: the address the request reached
    link_base: str | None = None

    def routes(self, app: web.Application) -> None:
        for kind in ("model", "dataset", "space"):
            app.router.add_get(f"/api/{kind}s", partial(self.listing, kind=kind))
            app.router.add_get(f"/api/{kind}s/{{owner}}/{{name}}", partial(self.info, kind=kind))

    def _reader(self, request: web.Request) -> tuple[bool, set[str]]:
        """(token refused, owners whose private repositories the caller sees)."""
        token = bearer(request)
        if token is None:
            return False, set()
        if token not in self.tokens:
            return True, set()
        return False, self.tokens[token]

    async def info(self, request: web.Request, *, kind: str) -> web.Response:
        refused, owners = self._reader(request)
        if refused:
            return respond(401, {"error": "Invalid credentials in Authorization header"})
        repo_id = f"{request.match_info['owner']}/{request.match_info['name']}"
        repo = next((r for r in self.repos if r.kind == kind and r.id == repo_id), None)
        if repo is None or (repo.private and repo.id.split("/")[0] not in owners):
            return respond(401, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"})
        return respond(200, _item(repo, full=True))

    async def listing(self, request: web.Request, *, kind: str) -> web.Response:
        refused, owners = self._reader(request)
        if refused:
            return respond(401, {"error": "Invalid credentials in Authorization header"})
        author = request.query.get("author")
        found = [
            r
            for r in self.repos
            if r.kind == kind
            and (author is None or r.id.split("/")[0] == author)
            and (not r.private or r.id.split("/")[0] in owners)
        ]
        limit = min(self.page_size, int(request.query.get("limit", self.page_size)))
        cursor = request.query.get("cursor")
        start = json.loads(base64.b64decode(cursor))["offset"] if cursor else 0
        page = found[start : start + limit]
        headers = {}
        if start + limit < len(found):
            following = base64.b64encode(json.dumps({"offset": start + limit}).encode()).decode()
            query = {**request.query, "cursor": following}
            base = self.link_base or f"{request.url.scheme}://{request.host}"
            url = f"{base}{request.path}?{urlencode(query)}"
            headers["Link"] = f'<{url}>; rel="next"'
        return respond(200, [_item(r, full=False) for r in page], headers)


def _item(repo: Repo, *, full: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "_id": f"65f0{abs(hash(repo.id)) % 10**20:020d}",
        "id": repo.id,
        "likes": repo.likes,
        "private": repo.private,
        "tags": [],
        "createdAt": "2025-06-01T12:00:00.000Z",
    }
    if repo.kind != "space":
        item["downloads"] = repo.downloads
    if repo.kind == "model":
        item["modelId"] = repo.id
    if repo.kind == "space":
        item["sdk"] = "gradio"
    if full:
        item |= {"author": repo.id.split("/")[0], "disabled": False, "gated": False}
    return item
