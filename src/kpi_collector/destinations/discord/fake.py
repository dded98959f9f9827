"""A local Discord incoming webhook, answering like the real one: `POST
/api/webhooks/{id}/{token}[?wait=true]` gives 200 with the message object (wait) or 204; errors
`{"message", "code"}` (10015 Unknown Webhook, 50027 Invalid Webhook Token, 50006 empty message,
50035 Invalid Form Body for > 2000 chars); a rate limit of 5 requests per 2 s per webhook
answered by 429 `{"message", "retry_after", "global"}` with `Retry-After` and `X-RateLimit-*`
headers (discord.com/developers/docs/topics/rate-limits).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from aiohttp import web

from kpi_collector.destinations._fake import MessageService, rate_wait

DISCORD_ID = "1234567890"


class FakeDiscord(MessageService):
    """Read back the messages with `discord`."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.discord: list[dict[str, Any]] = []
        self.discord_limit = (5, 2.0)  # requests per seconds, per webhook
        self._discord_times: dict[str, list[float]] = defaultdict(list)

    @property
    def discord_url(self) -> str:
        return f"{self.url}/api/webhooks/{DISCORD_ID}/{self.token}"

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_post("/api/webhooks/{id}/{token}", self._discord)

    async def _discord(self, request: web.Request) -> web.Response:
        if request.match_info["id"] != DISCORD_ID:
            return web.json_response({"message": "Unknown Webhook", "code": 10015}, status=404)
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"message": "Invalid Webhook Token", "code": 50027}, status=401
            )
        count, _ = self.discord_limit
        waited = rate_wait(self._discord_times[DISCORD_ID], self.discord_limit)
        if waited is not None:
            wait = round(waited, 3)
            return web.json_response(
                {"message": "You are being rate limited.", "retry_after": wait, "global": False},
                status=429,
                headers={
                    "Retry-After": str(max(1, round(wait))),
                    "X-RateLimit-Limit": str(count),
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset-After": str(wait),
                    "X-RateLimit-Scope": "user",
                },
            )
        try:
            body = await request.json()
        except ValueError:
            return web.json_response(
                {"message": "Cannot send an empty message", "code": 50006}, status=400
            )
        content = body.get("content") or ""
        if not content and not body.get("embeds"):
            return web.json_response(
                {"message": "Cannot send an empty message", "code": 50006}, status=400
            )
        if len(content) > 2000:
            return web.json_response(
                {
                    "code": 50035,
                    "errors": {
                        "content": {
                            "_errors": [
                                {
                                    "code": "BASE_TYPE_MAX_LENGTH",
                                    "message": "Must be 2000 or fewer in length.",
                                }
                            ]
                        }
                    },
                    "message": "Invalid Form Body",
                },
                status=400,
            )
        message = {
            "id": str(uuid.uuid4().int)[:19],
            "type": 0,
            "content": content,
            "channel_id": "111111111111111111",
            "webhook_id": DISCORD_ID,
            "author": {
                "bot": True,
                "id": DISCORD_ID,
                "username": body.get("username") or "Captain Hook",
                "avatar": None,
                "discriminator": "0000",
            },
            "attachments": [],
            "embeds": [],
            "mentions": [],
            "mention_roles": [],
            "pinned": False,
            "mention_everyone": False,
            "tts": False,
            "timestamp": "2026-11-30T07:00:00.000000+00:00",
            "edited_timestamp": None,
            "flags": 0,
            "components": [],
            "allowed_mentions": body.get("allowed_mentions"),
        }
        self.discord.append(message)
        if request.query.get("wait") == "true":
            return web.json_response(message)
        return web.Response(status=204)
