"""`type: slack`: a workspace's members (Web API `users.list`) and, with an admin token,
its active members by Slack's Fair Billing Policy (`team.billableInfo`); both paginated
with `response_metadata.next_cursor`.

A member is a person who has joined: `users.list` also lists deleted accounts, bots (apps'
bot users too), workflow bots, Slackbot and people invited who have not accepted yet
(`is_invited_user`), none of which count; people who authorized the calling app
(`is_app_user`) do. Guests (`is_restricted`, `is_ultra_restricted`) have joined and count;
`guests` gives them alone (https://api.slack.com/types/user).

Slack answers errors with HTTP 200 and `{"ok": false, "error": ...}`; those that say Slack
failed for now (`internal_error`, `fatal_error`, `service_unavailable`, a workspace moving
into an Enterprise org) are asked again, as a 5xx would be.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from pydantic import Field

from kpi_collector.collect import retry
from kpi_collector.collect.http import Auth
from kpi_collector.errors import ExtractError, SourceError
from kpi_collector.secrets import Secret, redact
from kpi_collector.sources._service import MAX_PAGES, ServiceClient, ServiceSource
from kpi_collector.sources.base import SourceContext

_PAGE = 200  # Slack's advice for users.list
_BAD_TOKEN = {"invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive"}
#: errors that say Slack could not answer now, not that the request is wrong
#: (https://api.slack.com/methods/users.list, "Errors"): asked again, then transient
_TRANSIENT = {
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
    "org_login_required",
}
#: errors of an org-level token that names no workspace (or one it cannot read)
_NEEDS_TEAM = {"missing_argument", "team_access_not_granted", "enterprise_is_restricted"}
_SCOPES = {
    "users.list": "users:read",
    "team.billableInfo": "admin (a workspace admin's user token)",
}


class Slack(ServiceSource):
    type: ClassVar[str] = "slack"
    service_name: ClassVar[str] = "Slack"
    known_metrics: ClassVar[tuple[str, ...]] = ("members", "guests", "active_members")
    default_metrics: ClassVar[tuple[str, ...]] = ("members",)
    credentials: ClassVar[Mapping[str, str]] = {"token": "SLACK_TOKEN"}

    token: Secret = Field(
        description="a bot or user token; active_members needs an admin user token"
    )
    team_id: str | None = Field(default=None, description="the workspace, for an org-level token")
    api_url: str = "https://slack.com"

    def auth(self) -> Auth | None:
        return Auth(bearer=self.token)

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        client = self.client(ctx)
        parts: dict[tuple[str, ...], Any] = {}
        people = tuple(m for m in ("members", "guests") if m in self.wanted())
        if people:
            parts[people] = self._members(client)
        if "active_members" in self.wanted():
            parts[("active_members",)] = self._active(client)
        return await self.gather(parts)

    async def _members(self, client: ServiceClient) -> dict[str, float]:
        members = guests = 0
        async for page in self._pages(client, "users.list", "members"):
            for user in page:
                if _is_member(user):
                    members += 1
                    guests += bool(user.get("is_restricted") or user.get("is_ultra_restricted"))
        return {"members": float(members), "guests": float(guests)}

    async def _active(self, client: ServiceClient) -> dict[str, float]:
        count = 0
        async for page in self._pages(client, "team.billableInfo", "billable_info"):
            count += sum(
                1 for info in page.values() if isinstance(info, dict) and info.get("billing_active")
            )
        return {"active_members": float(count)}

    async def _pages(self, client: ServiceClient, method: str, key: str) -> AsyncIterator[Any]:
        """Each page's `key`, following `response_metadata.next_cursor` until it is empty."""
        params: dict[str, Any] = {"limit": _PAGE}
        if self.team_id:
            params["team_id"] = self.team_id
        cursors: set[str] = set()
        for _ in range(MAX_PAGES):
            body = await self._call(client, method, params)
            page = body.get(key)
            if not isinstance(page, dict if key == "billable_info" else list):
                # an `ok` answer without its list: counting it as empty would read 0
                raise ExtractError(f"Slack {method} answered ok without `{key}`")
            yield page
            cursor = (body.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return
            if cursor in cursors:  # the same page again: its members would count twice
                raise ExtractError(f"Slack {method} gave a next cursor it had given before")
            cursors.add(cursor)
            params = {**params, "cursor": cursor}
        raise ExtractError(f"Slack {method} kept giving a next cursor after {MAX_PAGES} pages")

    async def _call(self, client: ServiceClient, method: str, params: dict[str, Any]) -> Any:
        """One page of `method`, asked again (up to `retries` times, with backoff) while
        Slack answers with an error that says it failed for now."""
        attempt = 0
        while True:
            body = await client.json(f"/api/{method}", params=params)
            error = _error(body)
            if error not in _TRANSIENT or attempt >= client.ctx.retries:
                self._check(method, body)
                return body
            attempt += 1
            await retry.pause(retry.backoff_delay(attempt, client.http.client.backoff))

    def _check(self, method: str, body: Any) -> None:
        """Slack answers errors with HTTP 200 and `{"ok": false, "error": ...}`."""
        if not isinstance(body, dict):
            raise ExtractError(f"Slack {method}: the answer is not an object")
        if body.get("ok"):
            return
        error = _error(body)
        if error in _BAD_TOKEN:
            raise SourceError(f"Slack refused the token ({error}): {self.credential_hint()}")
        if error == "missing_scope":
            needed = body.get("needed") or _SCOPES.get(method, "?")
            raise SourceError(
                redact(
                    f"the Slack token lacks the scope {needed} for {method} (it has: {body.get('provided') or 'none'}); "
                    f"{method} needs {_SCOPES.get(method, needed)}"
                )
            )
        if error in ("user_is_bot", "not_allowed_token_type"):
            # team.billableInfo "cannot be called by a bot user"
            raise SourceError(
                f"Slack {method} answered {error}: it needs {_SCOPES.get(method, 'a user token')}, "
                f"not a bot token (xoxb-); give `token:` of source {self.name!r} a user token (xoxp-)"
            )
        if error in _TRANSIENT:
            raise SourceError(
                redact(
                    f"Slack {method} answered {error} (Slack failed for now); the next run will try again"
                ),
                transient=True,
            )
        if error in _NEEDS_TEAM and not self.team_id:
            raise SourceError(
                redact(
                    f"Slack {method} answered {error}: an org-level token needs the workspace; set "
                    f"`team_id:` of source {self.name!r} (a workspace id like T012AB3C4)"
                )
            )
        raise SourceError(redact(f"Slack {method} answered {error}"))


def _error(body: Any) -> str:
    """The `error` of a Slack answer; "" when it is `ok` (or no object)."""
    if not isinstance(body, dict) or body.get("ok"):
        return ""
    return str(body.get("error") or "unknown_error")


def _is_member(user: Any) -> bool:
    """A person who has joined (guests too): not deleted, not a bot (apps' bot users are
    `is_bot`), workflow bot or Slackbot, not an invitation still pending. `is_app_user` is
    no bot: "an authorized user of the calling app", a person who installed or authorized it."""
    return (
        isinstance(user, dict)
        and not user.get("deleted")
        and not user.get("is_bot")
        and not user.get("is_workflow_bot")
        and not user.get("is_invited_user")
        and user.get("id") != "USLACKBOT"
    )
