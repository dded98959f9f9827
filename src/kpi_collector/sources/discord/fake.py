"""A local Discord API: `GET /api/v10/invites/{code}` (counts only with `with_counts=true`),
and for a bot (`Authorization: Bot <token>`) `GET /api/v10/guilds/{id}` (counts with
`with_counts=true`) and `GET /api/v10/guilds/{id}/members` (at most `limit` members, 1 unless
told, at most 1,000, ordered by user id, after the user id `after`; 403 Missing Access
without the Server Members Intent); Discord's JSON error codes and its 429 body with
`retry_after`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kpi_collector.sources._fake import FakeService, respond

_GUILD_ID = "197038439483310086"


@dataclass
class Member:
    id: int
    name: str
    bot: bool = False
    #: has not passed membership screening yet
    pending: bool = False


@dataclass
class Bot:
    #: the servers the bot was added to
    guilds: set[str]
    #: the Server Members Intent, a privileged intent turned on in the Developer Portal
    members_intent: bool = True


@dataclass
class FakeDiscord(FakeService):
    invites: dict[str, tuple[int, int]] = field(default_factory=dict)  # code -> (members, online)
    #: server id -> its members (any order; Discord lists them by user id)
    guilds: dict[str, list[Member]] = field(default_factory=dict)
    #: server id -> members shown online
    online: dict[str, int] = field(default_factory=dict)
    #: bot token -> the bot
    bots: dict[str, Bot] = field(default_factory=dict)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v10/invites/{code}", self.invite)
        app.router.add_get("/api/v10/guilds/{guild}", self.guild)
        app.router.add_get("/api/v10/guilds/{guild}/members", self.members)

    async def invite(self, request: web.Request) -> web.Response:
        code = request.match_info["code"]
        if code not in self.invites:
            return respond(404, {"message": "Unknown Invite", "code": 10006})
        members, online = self.invites[code]
        body: dict[str, Any] = {
            "type": 0,
            "code": code,
            "expires_at": None,
            "flags": 2,
            "guild": _guild_object(_GUILD_ID),
            "guild_id": _GUILD_ID,
            "channel": {"id": "165176875973476352", "type": 0, "name": "welcome"},
        }
        if request.query.get("with_counts") == "true":
            body["approximate_member_count"] = members
            body["approximate_presence_count"] = online
        return respond(200, body)

    def _bot(self, request: web.Request) -> Bot | web.Response:
        """The bot a request's `Authorization: Bot <token>` names, or Discord's refusal; a
        server the bot is not in is unknown to it."""
        header = request.headers.get("Authorization", "")
        bot = self.bots.get(header.removeprefix("Bot ")) if header.startswith("Bot ") else None
        if bot is None:
            return respond(401, {"message": "401: Unauthorized", "code": 0})
        if request.match_info["guild"] not in bot.guilds:
            return respond(404, {"message": "Unknown Guild", "code": 10004})
        return bot

    async def guild(self, request: web.Request) -> web.Response:
        bot = self._bot(request)
        if isinstance(bot, web.Response):
            return bot
        guild_id = request.match_info["guild"]
        body = _guild_object(guild_id)
        if request.query.get("with_counts") == "true":
            body["approximate_member_count"] = len(self.guilds.get(guild_id, []))
            body["approximate_presence_count"] = self.online.get(guild_id, 0)
        return respond(200, body)

    async def members(self, request: web.Request) -> web.Response:
        bot = self._bot(request)
        if isinstance(bot, web.Response):
            return bot
        if not bot.members_intent:
            return respond(403, {"message": "Missing Access", "code": 50001})
        try:
            limit = int(request.query.get("limit", 1))
            after = int(request.query.get("after", 0))
        except ValueError:
            return _invalid("limit", "NUMBER_TYPE_COERCE", "Value is not int.")
        if not 1 <= limit <= 1000:
            return _invalid(
                "limit", "NUMBER_TYPE_MAX", "int value should be less than or equal to 1000."
            )
        members = sorted(self.guilds.get(request.match_info["guild"], []), key=lambda m: m.id)
        chosen = [m for m in members if m.id > after][:limit]
        return respond(200, [_member(m) for m in chosen])


def _guild_object(guild_id: str) -> dict[str, Any]:
    return {
        "id": guild_id,
        "name": "Rocket Community",
        "splash": None,
        "banner": None,
        "description": "Everything about rockets",
        "icon": None,
        "features": ["COMMUNITY", "NEWS"],
        "verification_level": 1,
        "vanity_url_code": None,
        "nsfw_level": 0,
        "nsfw": False,
        "premium_subscription_count": 3,
    }


def _member(member: Member) -> dict[str, Any]:
    user: dict[str, Any] = {
        "id": str(member.id),
        "username": member.name,
        "discriminator": "0",
        "global_name": member.name.title(),
        "avatar": None,
        "public_flags": 0,
    }
    if member.bot:  # sent only for bots
        user["bot"] = True
    return {
        "user": user,
        "nick": None,
        "avatar": None,
        "roles": [],
        "joined_at": "2024-01-15T10:00:00.000000+00:00",
        "premium_since": None,
        "deaf": False,
        "mute": False,
        "flags": 0,
        "pending": member.pending,
        "communication_disabled_until": None,
    }


def _invalid(name: str, code: str, message: str) -> web.Response:
    body = {
        "code": 50035,
        "errors": {name: {"_errors": [{"code": code, "message": message}]}},
        "message": "Invalid Form Body",
    }
    return respond(400, body)


def rate_limited(retry_after: float = 1.0) -> tuple[int, dict[str, object], dict[str, str]]:
    """Discord's 429: the body and the headers (for `FakeService.inject`)."""
    body = {"message": "You are being rate limited.", "retry_after": retry_after, "global": False}
    headers = {
        "Retry-After": f"{retry_after:g}",
        "X-RateLimit-Scope": "user",
        "X-RateLimit-Limit": "5",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-Reset-After": f"{retry_after:g}",
    }
    return 429, body, headers
