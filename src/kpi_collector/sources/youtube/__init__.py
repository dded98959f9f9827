"""`type: youtube`: a channel's subscribers, views and videos from the YouTube Data API v3
(`GET /youtube/v3/channels?part=statistics`, developers.google.com/youtube/v3/docs/channels/list)
with an API key. The API gives today's totals only: no backfill.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import ClassVar
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from kpi_collector.collect import jsontext
from kpi_collector.collect.http import Auth, Response
from kpi_collector.errors import ExtractError, HttpError, MetricErrors
from kpi_collector.secrets import Secret, redact
from kpi_collector.sources._service import ServiceSource, service_message
from kpi_collector.sources.base import SourceContext

#: metric -> the field of the channel's `statistics` (counts come as decimal strings)
STATISTICS = {"subscribers": "subscriberCount", "views": "viewCount", "videos": "videoCount"}
#: "Daily quotas reset at midnight Pacific Time" (developers.google.com/youtube/v3/getting-started)
QUOTA_ZONE = ZoneInfo("America/Los_Angeles")
_CHANNEL_ID = re.compile(r"^UC[\w-]{22}$")
_HANDLE = re.compile(r"^@[\w.\-·]{3,30}$")
_LINK = re.compile(
    r"^(https?://)?((www|m)\.)?youtube\.com/(channel/)?(?P<channel>[^/?#]+)([/?#].*)?$"
)


class YouTube(ServiceSource):
    type: ClassVar[str] = "youtube"
    service_name: ClassVar[str] = "YouTube Data API"
    known_metrics: ClassVar[tuple[str, ...]] = tuple(STATISTICS)
    default_metrics: ClassVar[tuple[str, ...]] = known_metrics
    credentials: ClassVar[Mapping[str, str]] = {"api_key": "YOUTUBE_API_KEY"}

    channel: str = Field(description="a channel id (UC + 22 characters) or a handle (@name)")
    api_key: Secret = Field(description="a Google Cloud API key with the YouTube Data API v3")
    api_url: str = "https://www.googleapis.com"

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        given = value = value.strip()
        # the channel's address as a browser shows it: youtube.com/@name/videos,
        # youtube.com/channel/UC.../featured
        link = _LINK.match(value)
        if link:
            value = link.group("channel")
        if not (_CHANNEL_ID.match(value) or _HANDLE.match(value)):
            raise ValueError(
                f"{given!r} is neither a channel id like UC_x5XG1OV2P6uZZ5FSM9Ttw nor a handle "
                "like @GoogleDevelopers (or youtube.com/@GoogleDevelopers)"
            )
        return value

    def auth(self) -> Auth | None:
        return Auth(query={"key": self.api_key})

    def not_found(self, response: Response) -> str:
        return f"the YouTube Data API is not at {self.api_url}: check `api_url:` of source {self.name!r}"

    def http_error(self, response: Response) -> HttpError:
        """Google's error body (`{"error": {"code", "message", "errors": [{"reason"}],
        "details": [{"reason"}]}}`): a spent daily quota (403 `quotaExceeded`) is transient
        and resets at midnight Pacific Time; a bad key (400 `API_KEY_INVALID`) or none (403
        `PERMISSION_DENIED`) names `api_key`."""
        reasons = _reasons(response.body)
        message = service_message(response.body, response.headers.get("Content-Type"))
        if "quotaExceeded" in reasons or "dailyLimitExceeded" in reasons:
            now = datetime.now(QUOTA_ZONE)
            midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time())
            resets = midnight.replace(tzinfo=QUOTA_ZONE)
            text = (
                "YouTube Data API daily quota exceeded (HTTP 403 quotaExceeded); it resets at "
                f"midnight Pacific Time ({resets.astimezone(ZoneInfo('UTC')):%Y-%m-%d %H:%M} UTC); "
                "the next run will try again"
            )
            return HttpError(text, status=response.status, url=response.url, transient=True)
        if {"API_KEY_INVALID", "keyInvalid", "API_KEY_SERVICE_BLOCKED"} & reasons or (
            response.status == 403 and "SERVICE_DISABLED" in reasons
        ):
            text = (
                f"YouTube Data API refused the key (HTTP {response.status}: {message}): "
                f"{self.credential_hint()} (the key needs the YouTube Data API v3 enabled)"
            )
            return HttpError(redact(text), status=response.status, url=response.url)
        return super().http_error(response)

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        """The channel's statistics: one call, one quota unit."""
        key = "forHandle" if self.channel.startswith("@") else "id"
        data = await self.client(ctx).json(
            "/youtube/v3/channels", params={"part": "statistics", key: self.channel}
        )
        items = data.get("items") if isinstance(data, dict) else None
        if not items:
            what = "handle" if key == "forHandle" else "channel id"
            raise ExtractError(
                f"YouTube has no channel with the {what} {self.channel!r}: check `channel:` of "
                f"source {self.name!r}"
            )
        statistics = items[0].get("statistics") if isinstance(items[0], dict) else None
        if not isinstance(statistics, dict):
            raise ExtractError("YouTube Data API: the channel came without `statistics`")
        values: dict[str, float] = {}
        errors: dict[str, str] = {}
        for metric in self.wanted():
            if metric == "subscribers" and statistics.get("hiddenSubscriberCount"):
                errors[metric] = f"{metric}: the channel hides its subscriber count"
                continue
            try:
                values[metric] = float(int(statistics[STATISTICS[metric]]))
            except (KeyError, TypeError, ValueError):
                errors[metric] = f"{metric}: the answer has no number in {STATISTICS[metric]!r}"
        if errors:
            raise MetricErrors(values, errors)
        return values


def _reasons(body: bytes) -> set[str]:
    """The `reason`s of a Google API error body (`errors[]` and `details[]`)."""
    try:
        error = jsontext.loads(body).get("error")
    except (ValueError, AttributeError):
        return set()
    if not isinstance(error, dict):
        return set()
    found: set[str] = set()
    for item in [*(error.get("errors") or []), *(error.get("details") or [])]:
        if isinstance(item, dict) and isinstance(item.get("reason"), str):
            found.add(item["reason"])
    if isinstance(error.get("status"), str):
        found.add(error["status"])
    return found
