"""`type: discord`: a server's member and online counts, read through one of its invites or
with a bot in the server; with the bot, its people and bots counted apart.

`members` is Discord's `approximate_member_count`: every account in the server, its bots and
members who have not yet passed membership screening included; `online` is
`approximate_presence_count` (https://discord.com/developers/docs/resources/invite#invite-object,
or `GET /guilds/{id}?with_counts=true` with the bot). `humans` and `bots` need the bot: they
read the whole member list (`GET /guilds/{id}/members`, 1,000 a page, `after` the last user
id) and split it by the user's `bot` flag, which Discord's counts cannot.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator

from kpi_collector.collect import jsontext
from kpi_collector.collect.http import Auth, Response
from kpi_collector.errors import ExtractError
from kpi_collector.secrets import Secret
from kpi_collector.sources._service import MAX_PAGES, ServiceClient, ServiceSource, number
from kpi_collector.sources.base import SourceContext

_FIELDS = {"members": "approximate_member_count", "online": "approximate_presence_count"}
#: the metrics that read the member list, with the bot only
_LISTED = ("humans", "bots")
#: members a page of `GET /guilds/{id}/members` holds at most (Discord's limit)
_PAGE = 1000
#: Discord's JSON error codes (discord.com/developers/docs/topics/opcodes-and-status-codes)
_MISSING_ACCESS = 50001
_UNKNOWN_GUILD = 10004


class Discord(ServiceSource):
    type: ClassVar[str] = "discord"
    service_name: ClassVar[str] = "Discord"
    known_metrics: ClassVar[tuple[str, ...]] = (*_FIELDS, *_LISTED)
    default_metrics: ClassVar[tuple[str, ...]] = tuple(_FIELDS)
    credentials: ClassVar[Mapping[str, str]] = {"bot_token": "DISCORD_BOT_TOKEN"}

    invite: str | None = Field(
        default=None, description="an invite code that does not expire, or its discord.gg link"
    )
    guild_id: str | None = Field(
        default=None, description="the server's id, read with `bot_token` (humans, bots)"
    )
    bot_token: Secret | None = Field(
        default=None,
        description="a bot's token; the bot is in the server, with the Server Members Intent",
    )
    api_url: str = "https://discord.com"

    @field_validator("invite")
    @classmethod
    def _code(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = re.sub(
            r"^(https?://)?(www\.)?(discord\.gg|discord(app)?\.com/invite)/", "", value.strip()
        ).strip("/")
        if not re.fullmatch(r"[A-Za-z0-9-]+", code):
            raise ValueError(
                f"{value!r} is not an invite code like AbCdEf or https://discord.gg/AbCdEf"
            )
        return code

    @field_validator("guild_id", mode="before", json_schema_input_type=str | int | None)
    @classmethod
    def _snowflake(cls, value: Any) -> str | None:
        if value is None:
            return None
        text = str(value).strip()
        if not re.fullmatch(r"\d{15,20}", text):
            raise ValueError(
                f"{value!r} is not a server id like 197038439483310086 (Server Settings → "
                "Widget, or Copy Server ID in developer mode)"
            )
        return text

    @model_validator(mode="after")
    def _a_way_in(self) -> Discord:
        if self.guild_id is not None and self.bot_token is None:
            raise ValueError(
                "`guild_id:` needs `bot_token:`, the bot that reads the server (e.g. "
                "`bot_token: ${DISCORD_BOT_TOKEN}`, set in the environment or in .env)"
            )
        if self.bot_token is not None and self.guild_id is None:
            raise ValueError("`bot_token:` needs `guild_id:`, the server the bot reads")
        if self.invite is None and self.guild_id is None:
            raise ValueError(
                "give `invite:` (members, online) or `guild_id:` with `bot_token:` (members, "
                "online, humans, bots)"
            )
        listed = [m for m in self.metrics if m in _LISTED]
        if listed and self.bot_token is None:
            raise ValueError(
                f"{listed[0]} reads the member list: it needs `guild_id:` and `bot_token:` "
                "(an invite gives only members and online)"
            )
        return self

    def auth(self) -> Auth | None:
        if self.bot_token is None:
            return None
        return Auth(header={"Authorization": Secret(f"Bot {self.bot_token.get()}")})

    def not_found(self, response: Response) -> str:
        if "/guilds/" in response.url:
            return (
                f"Discord knows no server {self.guild_id} the bot can see: check `guild_id:` of "
                f"source {self.name!r}, and that the bot was added to that server"
            )
        return (
            f"Discord knows no invite {self.invite!r} (expired or deleted?): give `invite:` of source "
            f"{self.name!r} an invite that never expires"
        )

    def forbidden(self, response: Response, message: str) -> str:
        if "/members" in response.url and _code(response.body) == _MISSING_ACCESS:
            return (
                f"Discord refused the member list of server {self.guild_id} (HTTP 403: {message}): "
                "turn on the bot's Server Members Intent (Developer Portal → Bot → Privileged "
                f"Gateway Intents), and check that the bot of source {self.name!r} is in the server"
            )
        return super().forbidden(response, message)

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        client = self.client(ctx)
        wanted = self.wanted()
        parts: dict[tuple[str, ...], Any] = {}
        counts = tuple(m for m in wanted if m in _FIELDS)
        if counts:
            parts[counts] = self._counts(client, counts)
        listed = tuple(m for m in wanted if m in _LISTED)
        if listed:
            parts[listed] = self._listed(client)
        return await self.gather(parts)

    async def _counts(self, client: ServiceClient, metrics: tuple[str, ...]) -> dict[str, float]:
        """Discord's approximate counts: of the invite's server, or of the bot's."""
        if self.invite is not None:
            path = f"/api/v10/invites/{self.invite}"
        else:
            path = f"/api/v10/guilds/{self.guild_id}"
        data = await client.json(path, params={"with_counts": "true"})
        return {metric: number(data, _FIELDS[metric], self.service_name) for metric in metrics}

    async def _listed(self, client: ServiceClient) -> dict[str, float]:
        """People and bots of the whole member list, page by page (`after` the highest user
        id read, as Discord orders it), to the first page short of 1,000."""
        humans = bots = 0
        after = "0"
        for _ in range(MAX_PAGES):
            page = await client.json(
                f"/api/v10/guilds/{self.guild_id}/members", params={"limit": _PAGE, "after": after}
            )
            if not isinstance(page, list):
                raise ExtractError("Discord: the member list is not a list")
            ids = []
            for member in page:
                user = member.get("user") if isinstance(member, dict) else None
                if not isinstance(user, dict) or not str(user.get("id", "")).isdigit():
                    raise ExtractError("Discord: a member of the list has no user id")
                ids.append(int(user["id"]))
                if user.get("bot"):
                    bots += 1
                else:
                    humans += 1
            if len(page) < _PAGE:
                return {"humans": float(humans), "bots": float(bots)}
            if max(ids) <= int(after):
                # the same members again: they would be counted twice
                raise ExtractError(f"Discord listed no member after user {after} on the next page")
            after = str(max(ids))
        raise ExtractError(f"Discord kept listing members after {MAX_PAGES} pages")


def _code(body: bytes) -> int | None:
    """Discord's JSON error `code` of an error answer."""
    try:
        data = jsontext.loads(body)
    except ValueError:
        return None
    code = data.get("code") if isinstance(data, dict) else None
    return code if isinstance(code, int) else None
