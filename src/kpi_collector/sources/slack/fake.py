"""A local Slack Web API: `users.list` and `team.billableInfo` with cursor pagination
(`response_metadata.next_cursor`), token scopes, and Slack's `{"ok": false, "error": ...}`
answers (HTTP 200) for token and scope problems.

`users.list` lists every account of the workspace: deleted ones, bots, apps, Slackbot,
guests (`is_restricted`, single-channel ones also `is_ultra_restricted`) and people invited
who have not joined yet (`is_invited_user: true`, a field sent only for them)
(https://api.slack.com/methods/users.list, https://api.slack.com/types/user).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kpi_collector.sources._fake import FakeService, bearer, respond


@dataclass
class Member:
    id: str
    name: str
    deleted: bool = False
    is_bot: bool = False
    #: a person who has authorized the calling app (Slack's `is_app_user`); an app's own
    #: bot user is `is_bot`
    is_app_user: bool = False
    billing_active: bool = True
    invited: bool = False  # invited, not yet joined: `is_invited_user: true`
    guest: str | None = (
        None  # "multi" (is_restricted) or "single" channel (also is_ultra_restricted)
    )
    is_workflow_bot: bool = False


def _cursor(user_id: str) -> str:
    return base64.b64encode(f"user:{user_id}".encode()).decode()


@dataclass
class FakeSlack(FakeService):
    members: list[Member] = field(default_factory=list)
    tokens: dict[str, set[str]] = field(default_factory=dict)  # token -> scopes

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/users.list", self.users_list)
        app.router.add_get("/api/team.billableInfo", self.billable_info)

    def _auth(self, request: web.Request, scope: str) -> web.Response | None:
        token = bearer(request)
        if token is None:
            return respond(200, {"ok": False, "error": "not_authed"})
        if token not in self.tokens:
            return respond(200, {"ok": False, "error": "invalid_auth"})
        if scope not in self.tokens[token]:
            return respond(
                200,
                {
                    "ok": False,
                    "error": "missing_scope",
                    "needed": scope,
                    "provided": ",".join(sorted(self.tokens[token])),
                },
            )
        return None

    def _authorized_page(
        self, request: web.Request, scope: str
    ) -> tuple[list[Member], str] | web.Response:
        """The members a request's page holds and the next page's cursor, or Slack's refusal
        (no token, a wrong one, one without `scope`, an unknown cursor)."""
        refused = self._auth(request, scope)
        return refused if refused is not None else self._page(request)

    def _page(self, request: web.Request) -> tuple[list[Member], str] | web.Response:
        limit = int(request.query.get("limit", 0)) or len(self.members)
        start = 0
        cursor = request.query.get("cursor")
        if cursor:
            ids = [_cursor(m.id) for m in self.members]
            if cursor not in ids:
                return respond(200, {"ok": False, "error": "invalid_cursor"})
            start = ids.index(cursor)
        chunk = self.members[start : start + limit]
        following = self.members[start + limit : start + limit + 1]
        return chunk, _cursor(following[0].id) if following else ""

    async def users_list(self, request: web.Request) -> web.Response:
        page = self._authorized_page(request, "users:read")
        if isinstance(page, web.Response):
            return page
        chunk, next_cursor = page
        members: list[dict[str, Any]] = [
            {
                "id": m.id,
                "team_id": "T012AB3C4",
                "name": m.name,
                "deleted": m.deleted,
                "color": "9f69e7",
                "real_name": m.name.title(),
                "tz": "Europe/Berlin",
                "tz_label": "Central European Time",
                "tz_offset": 3600,
                "profile": {
                    "real_name": m.name.title(),
                    "display_name": m.name,
                    "team": "T012AB3C4",
                },
                "is_admin": False,
                "is_owner": False,
                "is_primary_owner": False,
                "is_restricted": m.guest is not None,
                "is_ultra_restricted": m.guest == "single",
                "is_bot": m.is_bot,
                "is_app_user": m.is_app_user,
                "is_workflow_bot": m.is_workflow_bot,
                "updated": 1502138686,
            }
            | ({"is_invited_user": True} if m.invited else {})
            for m in chunk
        ]
        return respond(
            200,
            {
                "ok": True,
                "members": members,
                "cache_ts": 1498777272,
                "response_metadata": {"next_cursor": next_cursor},
            },
        )

    async def billable_info(self, request: web.Request) -> web.Response:
        page = self._authorized_page(request, "admin")
        if isinstance(page, web.Response):
            return page
        chunk, next_cursor = page
        info = {
            m.id: {"billing_active": m.billing_active and not m.deleted and not m.invited}
            for m in chunk
            if not (m.is_bot or m.is_workflow_bot) and m.id != "USLACKBOT"
        }
        return respond(
            200,
            {"ok": True, "billable_info": info, "response_metadata": {"next_cursor": next_cursor}},
        )
