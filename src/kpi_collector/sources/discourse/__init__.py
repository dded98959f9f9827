"""`type: discourse`: a Discourse forum's users, active users (7 and 30 days), topics, posts and
likes, from its `/about.json` (`about.stats`) or, where the about page hides them,
`/site/statistics.json` (docs.discourse.org; the keys are those of Discourse's `About#stats`).
The counts are today's: no backfill.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import Field, model_validator

from kpi_collector.collect import jsontext
from kpi_collector.collect.http import Auth, Response
from kpi_collector.errors import ExtractError, HttpError, MetricErrors
from kpi_collector.secrets import Secret
from kpi_collector.sources._service import ServiceSource
from kpi_collector.sources.base import SourceContext

#: metric -> the stats keys that hold it, newest Discourse first (`topics_count`) then the
#: names before 3.2 (`topic_count`)
STATS = {
    "users": ("users_count", "user_count"),
    "active_users_7_days": ("active_users_7_days",),
    "active_users_30_days": ("active_users_30_days",),
    "topics": ("topics_count", "topic_count"),
    "posts": ("posts_count", "post_count"),
    "likes": ("likes_count", "like_count"),
}


class Discourse(ServiceSource):
    type: ClassVar[str] = "discourse"
    service_name: ClassVar[str] = "Discourse"
    known_metrics: ClassVar[tuple[str, ...]] = tuple(STATS)
    default_metrics: ClassVar[tuple[str, ...]] = known_metrics
    credentials: ClassVar[Mapping[str, str]] = {"api_key": "DISCOURSE_API_KEY"}

    api_url: str = Field(description="the forum's base URL, e.g. https://forum.example.com")
    api_key: Secret | None = Field(
        default=None, description="an API key (Admin → API), for a forum that needs a login"
    )
    api_username: str | None = Field(
        default=None, description="the user the key acts as (system for a global key)"
    )

    @model_validator(mode="after")
    def _key_with_user(self) -> Discourse:
        if self.api_key is not None and not self.api_username:
            raise ValueError("`api_key:` needs `api_username:` (the user the key acts as)")
        if self.api_username and self.api_key is None:
            raise ValueError("`api_username:` needs `api_key:`")
        return self

    def auth(self) -> Auth | None:
        return Auth(header={"Api-Key": self.api_key}) if self.api_key is not None else None

    def headers(self) -> dict[str, str]:
        # the user name is no secret (masking it would hide "system" in every message)
        extra = {"Api-Username": self.api_username} if self.api_username else {}
        return {"Accept": "application/json", **extra}

    def not_found(self, response: Response) -> str:
        return f"no Discourse forum answers at {self.api_url}: check `api_url:` of source {self.name!r}"

    def forbidden(self, response: Response, message: str) -> str:
        if _error_type(response.body) == "invalid_access" and self.api_key is not None:
            return (
                f"Discourse refused the key (HTTP 403: {message}): `api_key` and `api_username` "
                f"of source {self.name!r} are wrong, revoked or not allowed to read the site"
            )
        if self.api_key is None:
            return (
                f"the forum at {self.api_url} shows its statistics only to signed-in users "
                f"(HTTP 403: {message}): add `api_key: ${{DISCOURSE_API_KEY}}` and `api_username:` "
                f"to source {self.name!r}"
            )
        return super().forbidden(response, message)

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        client = self.client(ctx)
        about = await client.json("/about.json")
        stats = about.get("about", {}).get("stats") if isinstance(about, dict) else None
        if not isinstance(stats, dict) or not stats:
            # the about page hides its stats from this user: the site statistics may not
            try:
                stats = await client.json("/site/statistics.json")
            except HttpError as exc:
                if exc.status != 404:
                    raise
                raise ExtractError(
                    f"the forum at {self.api_url} shares no statistics (no stats in /about.json, "
                    f"no /site/statistics.json): an admin can turn on `share_anonymized_statistics`"
                ) from None
        # a forum counts what its version counts (older ones no active users): a stat it
        # lacks fails that metric only
        values: dict[str, float] = {}
        errors: dict[str, str] = {}
        for metric in self.wanted():
            value = _number(stats, STATS[metric])
            if value is None:
                errors[metric] = (
                    f"{metric}: the Discourse statistics have no number in {STATS[metric][0]!r} "
                    f"(this forum's version may not count it): leave `{metric}` out of "
                    f"`metrics:` of source {self.name!r}"
                )
            else:
                values[metric] = value
        if errors:
            raise MetricErrors(values, errors)
        return values


def _number(stats: Any, keys: tuple[str, ...]) -> float | None:
    """The first of `keys` that holds a number in `stats`, or None."""
    for key in keys:
        value = stats.get(key) if isinstance(stats, dict) else None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    return None


def _error_type(body: bytes) -> str:
    try:
        data = jsontext.loads(body)
    except ValueError:
        return ""
    return str(data.get("error_type", "")) if isinstance(data, dict) else ""
