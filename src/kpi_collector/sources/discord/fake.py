"""A local Discord API: `GET /api/v10/invites/{code}` (counts only with `with_counts=true`),
Discord's JSON error codes and its 429 body with `retry_after`."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from kpi_collector.sources._fake import FakeService, respond


@dataclass
class FakeDiscord(FakeService):
    invites: dict[str, tuple[int, int]] = field(default_factory=dict)  # code -> (members, online)

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/v10/invites/{code}", self.invite)

    async def invite(self, request: web.Request) -> web.Response:
        code = request.match_info["code"]
        if code not in self.invites:
            return respond(404, {"message": "Unknown Invite", "code": 10006})
        members, online = self.invites[code]
        body = {
            "type": 0,
            "code": code,
            "expires_at": None,
            "flags": 2,
            "guild": {
                "id": "197038439483310086",
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
            },
            "guild_id": "197038439483310086",
            "channel": {"id": "165176875973476352", "type": 0, "name": "welcome"},
        }
        if request.query.get("with_counts") == "true":
            body["approximate_member_count"] = members
            body["approximate_presence_count"] = online
        return respond(200, body)


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
