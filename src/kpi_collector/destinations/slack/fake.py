"""A local Slack, answering like the real one: incoming webhooks `POST /services/T…/B…/…` give
200 `ok` (text) or errors as plain-text codes (400 invalid_payload / no_text / invalid_blocks,
403 invalid_token, 410 channel_is_archived); `POST /api/chat.postMessage` (bearer token) is
always HTTP 200 with `{"ok": true, "channel", "ts", "message"}` or `{"ok": false, "error"}`.
Block Kit limits from api.slack.com/reference/block-kit: 50 blocks, a header's text 150
characters, a section's 3000, a rich text block's sections of non-empty text elements — refused as `invalid_blocks` with Slack's own `errors` lines
("no more than 50 items allowed [json-pointer:/blocks]"); blocks holding more than 12,000
characters of text in all: `msg_blocks_too_long`. Rate limit: about one message per second per
channel with short bursts (here `slack_limit`, 5 per 5 s), answered by HTTP 429 with
`Retry-After` (seconds): chat.postMessage `{"ok": false, "error": "ratelimited"}`, a webhook
the JSON count of recent calls (api.slack.com/docs/rate-limits).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from kpi_collector.destinations._fake import MessageService, rate_wait

SLACK_PATH = "/services/T00000000/B00000000"
SLACK_CHANNEL_ID = "C0123456789"


class FakeSlack(MessageService):
    """Read back the messages with `slack`; `archived = True` archives the webhook's channel."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.slack: list[dict[str, Any]] = []
        self.archived = False  # the Slack webhook's channel
        self.slack_limit = (5, 5.0)  # messages per seconds, per channel (bursts of 5)
        self._slack_times: dict[str, list[float]] = {}  # per channel
        self.rate_limited = 0  # 429s answered
        #: whether the bot token has `channels:history` (conversations.history answers)
        self.history_scope = True
        self.history_calls = 0
        #: whether the bot token has `channels:read` (conversations.list answers)
        self.list_scope = True
        self._history: list[dict[str, Any]] = []  # the channel's messages, oldest first
        #: the time a message is posted at (its `ts`, what `oldest` compares with): Slack's
        #: clock; a test whose runs are at other times than now sets its own
        self.clock: Callable[[], float] = time.time

    @property
    def slack_url(self) -> str:
        return f"{self.url}{SLACK_PATH}/{self.token}"

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_post(SLACK_PATH + "/{token}", self._slack_webhook)
        app.router.add_post("/api/chat.postMessage", self._slack_api)
        app.router.add_get("/api/conversations.history", self._slack_history)
        app.router.add_get("/api/conversations.list", self._slack_list)

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
        problem = block_problem(body.get("blocks", []))
        if problem:
            return web.Response(status=400, text=problem[0])
        wait = self._rate_limited("webhook")
        if wait is not None:
            recent = len(self._slack_times["webhook"])
            return web.json_response(
                {
                    "ok": False,
                    "count_hour_ago": len(self.slack),
                    "count_minute_ago": recent,
                    "count_second_ago": recent,
                },
                status=429,
                headers={"Retry-After": str(wait)},
            )
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
        problem = block_problem(body.get("blocks", []))
        if problem:
            code, errors = problem
            answer: dict[str, Any] = {"ok": False, "error": code}
            if errors:
                answer["errors"] = errors
                answer["response_metadata"] = {"messages": [f"[ERROR] {e}" for e in errors]}
            return web.json_response(answer)
        wait = self._rate_limited(SLACK_CHANNEL_ID)
        if wait is not None:
            return web.json_response(
                {"ok": False, "error": "ratelimited"},
                status=429,
                headers={"Retry-After": str(wait)},
            )
        self.slack.append(body)
        ts = f"{self.clock():.6f}"
        stored = {"type": "message", "ts": ts, "text": body.get("text", "")}
        if isinstance(body.get("metadata"), dict):
            stored["metadata"] = body["metadata"]
        self._history.append(stored)
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

    async def _slack_history(self, request: web.Request) -> web.Response:
        """conversations.history: the channel's messages newer than `oldest`, newest first,
        `limit` a page with `response_metadata.next_cursor`; metadata only with
        `include_all_metadata`; a channel *id* only; needs `channels:history`."""
        self.history_calls += 1
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if not self.history_scope:
            return web.json_response(
                {
                    "ok": False,
                    "error": "missing_scope",
                    "needed": "channels:history",
                    "provided": "chat:write",
                }
            )
        query = request.query
        if query.get("channel") != SLACK_CHANNEL_ID:
            return web.json_response({"ok": False, "error": "channel_not_found"})
        oldest = float(query.get("oldest") or 0)
        limit = int(query.get("limit") or 100)
        start = int(query.get("cursor") or 0)
        newer = [m for m in reversed(self._history) if float(m["ts"]) > oldest]
        page = newer[start : start + limit]
        if query.get("include_all_metadata") != "true":
            page = [{k: v for k, v in m.items() if k != "metadata"} for m in page]
        more = start + limit < len(newer)
        answer: dict[str, Any] = {"ok": True, "messages": page, "has_more": more}
        if more:
            answer["response_metadata"] = {"next_cursor": str(start + limit)}
        return web.json_response(answer)

    async def _slack_list(self, request: web.Request) -> web.Response:
        """conversations.list: the workspace's channels (here `#general` and `#kpis`, one a
        page with `limit=1`, `response_metadata.next_cursor`); needs `channels:read`."""
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"ok": False, "error": "invalid_auth"})
        if not self.list_scope:
            return web.json_response(
                {"ok": False, "error": "missing_scope", "needed": "channels:read"}
            )
        channels = [
            {"id": "C0000000001", "name": "general"},
            {"id": SLACK_CHANNEL_ID, "name": "kpis"},
        ]
        limit = int(request.query.get("limit") or 100)
        start = int(request.query.get("cursor") or 0)
        more = start + limit < len(channels)
        return web.json_response(
            {
                "ok": True,
                "channels": channels[start : start + limit],
                "response_metadata": {"next_cursor": str(start + limit) if more else ""},
            }
        )

    def _rate_limited(self, channel: str) -> int | None:
        """None when a message to `channel` may go now (and counts it), else the whole
        seconds to wait (the webhook posts to a channel of its own)."""
        wait = rate_wait(self._slack_times.setdefault(channel, []), self.slack_limit)
        if wait is None:
            return None
        self.rate_limited += 1
        return max(1, math.ceil(wait))


#: characters of text all blocks of one message may hold (beyond: msg_blocks_too_long)
BLOCKS_TEXT_LIMIT = 12_000


def block_problem(blocks: list[dict[str, Any]]) -> tuple[str, list[str]] | None:
    """Slack's error code and `errors` lines for blocks it refuses; None when they are valid."""
    if len(blocks) > 50:
        return "invalid_blocks", ["no more than 50 items allowed [json-pointer:/blocks]"]
    total = 0
    for index, block in enumerate(blocks):
        kind = block.get("type")
        if kind not in ("header", "section", "divider", "context", "rich_text"):
            return "invalid_blocks", [f"unsupported type: {kind} [json-pointer:/blocks/{index}]"]
        if kind == "rich_text":
            problem = _rich_text_problem(block, f"/blocks/{index}")
            if problem:
                return "invalid_blocks", [problem]
            total += sum(
                len(e["text"]) for s in block["elements"] for e in s["elements"] if "text" in e
            )
            continue
        limit = {"header": 150, "section": 3000}.get(str(kind))
        text = block.get("text", {}).get("text", "") if "text" in block else ""
        if limit is not None and len(text) > limit:
            return "invalid_blocks", [
                f"must be less than {limit + 1} characters [json-pointer:/blocks/{index}/text/text]"
            ]
        total += len(text) + sum(len(e.get("text", "")) for e in block.get("elements", []))
    if total > BLOCKS_TEXT_LIMIT:
        return "msg_blocks_too_long", []
    return None


_STYLES = {"bold", "italic", "strike", "code", "underline"}


def _rich_text_problem(block: dict[str, Any], where: str) -> str | None:
    """What Slack says of a `rich_text` block it refuses: sections of text elements, each a
    non-empty string with a style of known flags."""
    sections = block.get("elements")
    if not isinstance(sections, list) or not sections:
        return f"must provide an array of at least 1 items [json-pointer:{where}/elements]"
    for i, section in enumerate(sections):
        if section.get("type") != "rich_text_section":
            return f"unsupported type: {section.get('type')} [json-pointer:{where}/elements/{i}]"
        elements = section.get("elements")
        if not isinstance(elements, list):
            return f"must provide an array [json-pointer:{where}/elements/{i}/elements]"
        for j, element in enumerate(elements):
            at = f"{where}/elements/{i}/elements/{j}"
            if element.get("type") != "text":
                return f"unsupported type: {element.get('type')} [json-pointer:{at}]"
            text = element.get("text")
            if not isinstance(text, str) or not text:
                return f"must be more than 0 characters [json-pointer:{at}/text]"
            style = element.get("style", {})
            if not isinstance(style, dict) or set(style) - _STYLES:
                return f"invalid style [json-pointer:{at}/style]"
    return None
