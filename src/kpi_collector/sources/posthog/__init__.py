"""`type: posthog`: daily, weekly and monthly active users (distinct persons with any event,
or with `event:`) from PostHog's query API (HogQL) with a personal API key; the same three
for every past day in backfill.

The windows are whole days in the project's timezone ending yesterday, the last complete day:
dau is yesterday's, wau the 7 days to yesterday, mau the 30 days to yesterday. Backfill asks
for each day's three windows in one query: every distinct (person, active day) is spread
over the 30 days whose windows it falls in (`arrayJoin(range(30))`), and PostHog counts the
distinct persons per day; only one row per day comes back.

A misspelt `event:` matches no events, which counts 0 like a quiet one: when every count is
0, one more query asks whether the project ever received that event, and one not received is
an error naming it and the closest names of the last 30 days.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from datetime import date, timedelta
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator

from kpi_collector.collect.http import Auth, Response
from kpi_collector.errors import ExtractError, did_you_mean
from kpi_collector.secrets import Secret
from kpi_collector.sources._service import (
    ServiceClient,
    ServiceSource,
    day_end,
    parse_day,
    service_zone,
)
from kpi_collector.sources.base import Observation, SourceContext

ACTIVE_USERS = """
SELECT
    count(DISTINCT if(toDate(timestamp) >= today() - 1, person_id, NULL)) AS dau,
    count(DISTINCT if(toDate(timestamp) >= today() - 7, person_id, NULL)) AS wau,
    count(DISTINCT person_id) AS mau
FROM events
WHERE toDate(timestamp) >= today() - 30 AND toDate(timestamp) < today(){and_event}
""".strip()

ACTIVE_USERS_BY_DAY = """
SELECT
    day,
    count(DISTINCT if(day = active_day, person_id, NULL)) AS dau,
    count(DISTINCT if(day < addDays(active_day, 7), person_id, NULL)) AS wau,
    count(DISTINCT person_id) AS mau
FROM (
    SELECT person_id, active_day, addDays(active_day, arrayJoin(range(30))) AS day
    FROM (
        SELECT DISTINCT person_id, toDate(timestamp) AS active_day
        FROM events
        WHERE toDate(timestamp) >= addDays(toDate({since}), -29)
            AND toDate(timestamp) < today(){and_event}
    )
)
WHERE day >= toDate({since}) AND day < today()
GROUP BY day
ORDER BY day
LIMIT 10000
""".strip()

_EVENT_FILTER = " AND event = {event}"

#: whether the project ever received the event (one row, or none)
EVENT_SEEN = "SELECT event FROM events WHERE event = {event} LIMIT 1"

#: the project's events of the last 30 days, the most frequent first
RECENT_EVENTS = """
SELECT event
FROM events
WHERE toDate(timestamp) >= today() - 30
GROUP BY event
ORDER BY count() DESC
LIMIT 1000
""".strip()


#: PostHog Cloud's regions: each refuses the other's keys
_OTHER_REGION = {
    "https://us.posthog.com": "https://eu.posthog.com",
    "https://app.posthog.com": "https://eu.posthog.com",
    "https://eu.posthog.com": "https://us.posthog.com",
}


class PostHog(ServiceSource):
    type: ClassVar[str] = "posthog"
    service_name: ClassVar[str] = "PostHog"
    known_metrics: ClassVar[tuple[str, ...]] = ("dau", "wau", "mau")
    default_metrics: ClassVar[tuple[str, ...]] = known_metrics
    credentials: ClassVar[Mapping[str, str]] = {"api_key": "POSTHOG_API_KEY"}

    project_id: str = Field(description="the project's id (Project settings)")
    api_key: Secret = Field(description="a personal API key with the Query Read scope")
    event: str | None = Field(default=None, description="count only persons who sent this event")
    api_url: str = "https://us.posthog.com"

    @field_validator("project_id", mode="before", json_schema_input_type=str | int)
    @classmethod
    def _id(cls, value: Any) -> str:
        text = str(value).strip()
        if not re.fullmatch(r"\d+", text):
            raise ValueError(f"{value!r} is not a project id (a number, from the project settings)")
        return text

    def auth(self) -> Auth | None:
        return Auth(bearer=self.api_key)

    def credential_hint(self) -> str:
        """What to check for a refused key; on PostHog Cloud, the other region too: a key of
        an EU Cloud project is refused by US Cloud as an invalid key, and the other way."""
        hint = super().credential_hint()
        other = _OTHER_REGION.get(self.api_url.rstrip("/"))
        if other is None:
            return hint
        return f"{hint}; or the project is on the other PostHog Cloud: set `api_url: {other}`"

    def not_found(self, response: Response) -> str:
        return (
            f"PostHog has no project {self.project_id} at {self.api_url}: check `project_id:` of source "
            f"{self.name!r} (and `api_url:`: https://eu.posthog.com for EU Cloud)"
        )

    def forbidden(self, response: Response, message: str) -> str:
        return (
            f"PostHog refused the query (HTTP 403{': ' + message if message else ''}): the personal API key "
            f"needs the Query Read scope (query:read) and access to project {self.project_id}"
        )

    async def _query(
        self, client: ServiceClient, sql: str, values: dict[str, Any]
    ) -> tuple[list[list[Any]], ZoneInfo | None]:
        """The rows of a HogQL query, and the project's time zone as the answer names it
        (`timezone`; None when it names none PostHog's `today()` and days count in)."""
        if self.event is not None:
            values = {**values, "event": self.event}
        sql = sql.replace("{and_event}", _EVENT_FILTER if self.event is not None else "")
        body = await client.json(
            f"/api/projects/{self.project_id}/query/",
            method="POST",
            json_body={
                "query": {"kind": "HogQLQuery", "query": sql, "values": values},
                "name": "kpi-collector",
            },
        )
        rows = body.get("results") if isinstance(body, dict) else None
        if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
            raise ExtractError("PostHog: the query answer has no `results` rows")
        return rows, service_zone(body.get("timezone"))

    async def _check_event(self, client: ServiceClient) -> None:
        """Raise ExtractError naming `event` when the project never received it (event names
        are case-sensitive), with the closest names of its last 30 days."""
        seen, _ = await self._query(client, EVENT_SEEN, {})
        if seen:
            return
        recent, _ = await self._query(client, RECENT_EVENTS, {})
        known = [str(row[0]) for row in recent if row]
        event = self.event or ""
        hint = did_you_mean(event, known)  # "Sign Up" for "sign up" first
        raise ExtractError(
            f"PostHog project {self.project_id} has never received an event {event!r}{hint}: "
            f"check `event:` of source {self.name!r} (event names are case-sensitive; page "
            "views are $pageview)"
        )

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        client = self.client(ctx)
        rows, _ = await self._query(client, ACTIVE_USERS, {})
        if len(rows) != 1 or len(rows[0]) != 3:
            raise ExtractError("PostHog: expected one row of dau, wau, mau")
        counts = dict(zip(("dau", "wau", "mau"), rows[0], strict=True))
        if self.event is not None and not any(counts.values()):
            await self._check_event(client)
        return {metric: float(counts[metric] or 0) for metric in self.wanted()}

    async def backfill(self, ctx: SourceContext, since: date) -> AsyncIterator[Observation]:
        """dau, wau and mau of each day from `since` (or the first day with events) to
        yesterday, the config's or the project's, whichever comes first."""
        wanted = self.wanted()
        client = self.client(ctx)
        rows, zone = await self._query(client, ACTIVE_USERS_BY_DAY, {"since": since.isoformat()})
        if any(len(row) != 4 for row in rows):
            raise ExtractError("PostHog: expected rows of day, dau, wau, mau")
        counted = {
            parse_day(str(row[0])): dict(zip(("dau", "wau", "mau"), row[1:], strict=True))
            for row in rows
        }
        if not counted:
            if self.event is not None:
                await self._check_event(client)
            return
        day = max(since, min(counted))  # from the first day in a window; quiet days count 0
        # PostHog counts whole days of the project's time zone up to its `today()`: where
        # that is behind the config's, the config's yesterday is still today there, not
        # counted yet (no row), and no zero for it
        end = min(ctx.today, ctx.now.astimezone(zone).date()) if zone else ctx.today
        while day < end:
            counts = counted.get(day, {})
            for metric in wanted:
                yield Observation(metric, float(counts.get(metric) or 0), day_end(day, ctx.tz))
            day += timedelta(days=1)
