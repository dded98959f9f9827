"""A local Segment HTTP Tracking API: `POST /v1/track` with basic auth (the write key as the
user name) answers 200 `{"success": true}`; a bad write key 401, a body without `event` or
`userId`/`anonymousId` 400 (segment.com/docs/connections/sources/catalog/libraries/server/http-api).
`POST /v1/batch` takes `{"batch": [calls]}`. Size limits as documented: a call over 32 KB and
a batch over 500 KB are refused with 400. A call whose `messageId` was taken before is answered
as taken and dropped (segment.com/docs/guides/duplicate-data: Segment deduplicates on the
messageId, not the contents, over about 24 hours).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from aiohttp import web

from kpi_collector.destinations._fake import MessageService
from kpi_collector.destinations.segment import BATCH_LIMIT, CALL_LIMIT


class FakeSegment(MessageService):
    """Read back the tracked events with `segment`; the write key is the token."""

    def __init__(self, token: str) -> None:
        super().__init__(token)
        self.segment: list[dict[str, Any]] = []
        self.batches = 0  # accepted /v1/batch requests
        self.message_ids: set[str] = set()  # of the calls taken
        self.dropped = 0  # calls dropped as repeats of a messageId taken before

    def routes(self, app: web.Application) -> None:
        super().routes(app)
        app.router.add_post("/v1/track", self._segment)
        app.router.add_post("/v1/batch", self._batch)

    async def _segment(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(f"{self.token}:".encode()).decode()
        if request.headers.get("Authorization") != expected:
            # Segment's HTTP API answers 401 for a bad write key on authenticated endpoints
            return web.json_response({"success": False, "message": "Invalid write key"}, status=401)
        if len(await request.read()) > CALL_LIMIT:
            return web.json_response(
                {"success": False, "message": "Exceed payload limit"}, status=400
            )
        try:
            body = await request.json()
        except ValueError:
            return web.json_response({"success": False, "message": "Invalid JSON"}, status=400)
        return self._accept(body)

    async def _batch(self, request: web.Request) -> web.Response:
        expected = "Basic " + base64.b64encode(f"{self.token}:".encode()).decode()
        if request.headers.get("Authorization") != expected:
            return web.json_response({"success": False, "message": "Invalid write key"}, status=401)
        if len(await request.read()) > BATCH_LIMIT:
            return web.json_response(
                {"success": False, "message": "Exceed payload limit"}, status=400
            )
        try:
            calls = (await request.json())["batch"]
        except (ValueError, KeyError, TypeError):
            return web.json_response({"success": False, "message": "Invalid JSON"}, status=400)
        for call in calls:
            if len(json.dumps(call).encode()) > CALL_LIMIT:
                return web.json_response(
                    {"success": False, "message": "Exceed payload limit"}, status=400
                )
        for call in calls:
            self._accept(call)
        self.batches += 1
        return web.json_response({"success": True})

    def _accept(self, body: dict[str, Any]) -> web.Response:
        if not body.get("event") or not (body.get("userId") or body.get("anonymousId")):
            return web.json_response(
                {"success": False, "message": "userId or anonymousId is required"}, status=400
            )
        message_id = body.get("messageId")
        if isinstance(message_id, str) and message_id in self.message_ids:
            self.dropped += 1
        else:
            self.segment.append(body)
            if isinstance(message_id, str):
                self.message_ids.add(message_id)
        return web.json_response({"success": True})
