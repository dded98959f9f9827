"""A local Slack, answering like the real one: incoming webhooks `POST /services/T…/B…/…` give
200 `ok` (text) or errors as plain-text codes (400 invalid_payload / no_text / invalid_blocks,
403 invalid_token, 410 channel_is_archived); `POST /api/chat.postMessage` (bearer token) is
always HTTP 200 with `{"ok": true, "channel", "ts", "message"}` or `{"ok": false, "error"}`.
Block Kit limits from api.slack.com/reference/block-kit: 50 blocks, a header's text 150
characters, a section's 3000.
"""

from __future__ import annotations

import json
import time
from typing import Any

from aiohttp import web

from kpi_collector.destinations._fake import MessageService

SLACK_PATH = "/services/T00000000/B00000000"
SLACK_CHANNEL_ID = "C0123456789"


class FakeSlack(MessageService):
    """Read back the messages with `slack`; `archived = True` archives the webhook's channel."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.slack: list[dict[str, Any]] = []
        self.archived = False  # the Slack webhook's channel

    @property
    def slack_url(self) -> str:
        return f"{self.url}{SLACK_PATH}/{self.token}"

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_post(SLACK_PATH + "/{token}", self._slack_webhook)
        app.router.add_post("/api/chat.postMessage", self._slack_api)

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
