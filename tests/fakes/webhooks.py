"""Local message services for tests, answering like the real ones:

- Discord incoming webhooks `POST /api/webhooks/{id}/{token}[?wait=true]`: 200 with the message
  object (wait) or 204; errors `{"message", "code"}` (10015 Unknown Webhook, 50027 Invalid
  Webhook Token, 50006 empty message, 50035 Invalid Form Body for > 2000 chars); a rate limit
  of 5 requests per 2 s per webhook answered by 429 `{"message", "retry_after", "global"}`
  with `Retry-After` and `X-RateLimit-*` headers.
- Slack incoming webhooks `POST /services/T…/B…/…`: 200 `ok` (text); errors as plain-text
  codes (400 invalid_payload / no_text, 403 invalid_token, 404 no_service, 410
  channel_is_archived); and `POST /api/chat.postMessage` (bearer token): always HTTP 200 with
  `{"ok": true, "channel", "ts", "message"}` or `{"ok": false, "error": "invalid_auth"}`.
- Segment `POST /v1/track` (basic auth with the write key): 200 `{"success": true}`.
- A generic receiver `POST /hook` that keeps the raw body and headers.

`down = True` makes every route answer 503; `fail_next(status, body, headers)` injects answers.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kpi_collector.demo.server import BackgroundServer

DISCORD_ID = "1234567890"
SLACK_PATH = "/services/T00000000/B00000000"
SLACK_CHANNEL_ID = "C0123456789"


@dataclass
class Injected:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


class FakeHooks:
    """Every message service at once; read back with `discord`, `slack`, `segment`, `hooks`."""

    def __init__(self, token: str) -> None:
        self.token = token  # the secret part of every URL, the bot token and the write key
        self.url = ""
        self.down = False
        self.injected: list[Injected] = []
        self.discord: list[dict[str, Any]] = []
        self.slack: list[dict[str, Any]] = []
        self.segment: list[dict[str, Any]] = []
        self.hooks: list[tuple[bytes, dict[str, str]]] = []
        self.discord_limit = (5, 2.0)  # requests per seconds, per webhook
        self._discord_times: dict[str, list[float]] = defaultdict(list)
        self.archived = False  # the Slack webhook's channel

    # URLs the destinations are configured with ---------------------------------------------

    @property
    def discord_url(self) -> str:
        return f"{self.url}/api/webhooks/{DISCORD_ID}/{self.token}"

    @property
    def slack_url(self) -> str:
        return f"{self.url}{SLACK_PATH}/{self.token}"

    @property
    def hook_url(self) -> str:
        return f"{self.url}/hook?key={self.token}"

    def fail_next(
        self, status: int, body: Any = "", headers: dict[str, str] | None = None, times: int = 1
    ) -> None:
        self.injected += [Injected(status, body, dict(headers or {}))] * times

    @classmethod
    @contextmanager
    def serve(cls, token: str) -> Iterator[FakeHooks]:
        fake = cls(token)
        with BackgroundServer(fake.app()) as url:
            fake.url = url
            yield fake

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/api/webhooks/{id}/{token}", self._discord)
        app.router.add_post(SLACK_PATH + "/{token}", self._slack_webhook)
        app.router.add_post("/api/chat.postMessage", self._slack_api)
        app.router.add_post("/v1/track", self._segment)
        app.router.add_post("/hook", self._hook)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.down:
            return web.Response(
                status=503,
                text="<html><body>503 Service Unavailable</body></html>",
                content_type="text/html",
            )
        if self.injected:
            answer = self.injected.pop(0)
            if isinstance(answer.body, dict | list):
                return web.json_response(answer.body, status=answer.status, headers=answer.headers)
            return web.Response(status=answer.status, text=str(answer.body), headers=answer.headers)
        return await handler(request)

    # Discord -----------------------------------------------------------------------------------

    async def _discord(self, request: web.Request) -> web.Response:
        if request.match_info["id"] != DISCORD_ID:
            return web.json_response({"message": "Unknown Webhook", "code": 10015}, status=404)
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"message": "Invalid Webhook Token", "code": 50027}, status=401
            )
        count, window = self.discord_limit
        now = time.monotonic()
        times = [t for t in self._discord_times[DISCORD_ID] if now - t < window]
        self._discord_times[DISCORD_ID] = times
        if len(times) >= count:
            wait = round(window - (now - times[0]), 3)
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
        times.append(now)
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

    # Slack -------------------------------------------------------------------------------------

    async def _slack_webhook(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=403, text="invalid_token")
        if self.archived:
            return web.Response(status=410, text="channel_is_archived")
        try:
            body = json.loads(await request.text())
        except ValueError:
            return web.Response(status=400, text="invalid_payload")
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return web.Response(status=400, text="no_text")
        if not _valid_blocks(body.get("blocks", [])):
            return web.Response(status=400, text="invalid_blocks")
        self.slack.append(body)
        return web.Response(text="ok", content_type="text/html")

    async def _slack_api(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        body = await request.json()
        if body.get("channel") not in ("#kpis", SLACK_CHANNEL_ID):
            return web.json_response({"ok": False, "error": "channel_not_found"})
        if not (body.get("text") or body.get("blocks")):
            return web.json_response({"ok": False, "error": "no_text"})
        if not _valid_blocks(body.get("blocks", [])):
            return web.json_response({"ok": False, "error": "invalid_blocks"})
        self.slack.append(body)
        ts = f"{time.time():.6f}"
        return web.json_response(
            {
                "ok": True,
                "channel": SLACK_CHANNEL_ID,
                "ts": ts,
                "message": {
                    "type": "message",
                    "subtype": "bot_message",
                    "text": body.get("text"),
                    "ts": ts,
                    "bot_id": "B0123456789",
                    "blocks": body.get("blocks", []),
                },
            }
        )

    # Segment and a plain receiver --------------------------------------------------------------

    async def _segment(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(f"{self.token}:".encode()).decode()
        if request.headers.get("Authorization") != expected:
            # Segment's HTTP API answers 401 for a bad write key on authenticated endpoints
            return web.json_response({"success": False, "message": "Invalid write key"}, status=401)
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"success": False, "message": "Invalid JSON"}, status=400)
        if not body.get("event") or not (body.get("userId") or body.get("anonymousId")):
            return web.json_response(
                {"success": False, "message": "userId or anonymousId is required"}, status=400
            )
        self.segment.append(body)
        return web.json_response({"success": True})

    async def _hook(self, request: web.Request) -> web.Response:
        if request.query.get("key") != self.token:
            return web.json_response({"error": "forbidden"}, status=403)
        self.hooks.append((await request.read(), dict(request.headers)))
        return web.json_response({"received": True})


def _valid_blocks(blocks: list[dict[str, Any]]) -> bool:
    if len(blocks) > 50:
        return False
    for block in blocks:
        kind = block.get("type")
        if kind == "header" and len(block["text"]["text"]) > 150:
            return False
        if kind == "section" and len(block["text"]["text"]) > 3000:
            return False
        if kind not in ("header", "section", "divider", "context"):
            return False
    return True
