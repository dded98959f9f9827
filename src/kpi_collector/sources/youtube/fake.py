"""A local YouTube Data API v3 `channels.list` (`GET /youtube/v3/channels?part=statistics`),
answering with the shapes developers.google.com/youtube/v3/docs documents: a
`youtube#channelListResponse` whose counts are decimal strings, no `items` for an unknown
channel, and Google's error bodies for a bad key (400 `API_KEY_INVALID`) and a spent daily
quota (403 `quotaExceeded`; `channels.list` costs 1 unit).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kpi_collector.sources._fake import FakeService, respond

_QUOTA_MESSAGE = (
    'The request cannot be completed because you have exceeded your <a href="/youtube/v3/'
    'getting-started#quota">quota</a>.'
)
_BAD_KEY = "API key not valid. Please pass a valid API key."
_NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)


@dataclass
class Channel:
    id: str
    handle: str
    subscribers: int
    views: int
    videos: int
    hidden_subscribers: bool = False


@dataclass
class FakeYouTube(FakeService):
    channels: list[Channel] = field(default_factory=list)
    keys: set[str] = field(default_factory=set)
    #: quota units left today; None: unlimited
    quota: int | None = None

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/youtube/v3/channels", self.channels_list)

    async def channels_list(self, request: web.Request) -> web.Response:
        key = request.query.get("key")
        if key is None:
            return _error(403, _NO_KEY, "forbidden", "global", "PERMISSION_DENIED")
        if key not in self.keys:
            return _error(
                400, _BAD_KEY, "badRequest", "global", "INVALID_ARGUMENT", "API_KEY_INVALID"
            )
        if self.quota is not None:
            if self.quota <= 0:
                return _error(403, _QUOTA_MESSAGE, "quotaExceeded", "youtube.quota")
            self.quota -= 1
        if request.query.get("part") != "statistics":
            return _error(
                400, "No filter selected.", "missingRequiredParameter", "youtube.parameter"
            )
        ids = request.query.get("id", "").split(",")
        handle = request.query.get("forHandle", "").lower()
        found = [c for c in self.channels if c.id in ids or (handle and c.handle.lower() == handle)]
        body: dict[str, Any] = {
            "kind": "youtube#channelListResponse",
            "etag": "Wl9qZ2m0N7qC4Gm7-zq3ZHt8vqk",
            "pageInfo": {"totalResults": len(found), "resultsPerPage": 5},
        }
        if found:  # an unknown channel: no `items` at all
            body["items"] = [_channel(c) for c in found]
        return respond(200, body)


def _channel(channel: Channel) -> dict[str, Any]:
    statistics: dict[str, Any] = {
        "viewCount": str(channel.views),
        "hiddenSubscriberCount": channel.hidden_subscribers,
        "videoCount": str(channel.videos),
    }
    if not channel.hidden_subscribers:
        statistics["subscriberCount"] = str(channel.subscribers)
    return {
        "kind": "youtube#channel",
        "etag": "f3bm1o3UGh5Ahb1fa0fVv7sIH0A",
        "id": channel.id,
        "statistics": statistics,
    }


def _error(
    status: int, message: str, reason: str, domain: str, code: str = "", detail: str = ""
) -> web.Response:
    error: dict[str, Any] = {
        "code": status,
        "message": message,
        "errors": [{"message": message, "domain": domain, "reason": reason}],
    }
    if code:
        error["status"] = code
    if detail:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": detail,
                "domain": "googleapis.com",
                "metadata": {"service": "youtube.googleapis.com"},
            }
        ]
    return respond(status, {"error": error})
