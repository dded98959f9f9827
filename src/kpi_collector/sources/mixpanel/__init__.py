"""`type: mixpanel`: daily, weekly and monthly active users from Mixpanel's query API with a
service account (basic auth); daily active users for backfill.

With `event:` the Segmentation API counts unique users of that event; without it a JQL query
counts users with any event. Segmentation answers a misspelt event as it answers a quiet one,
with no series: when every count is 0 the project's event names of the last 31 days (`GET
/api/query/events/names`) tell the two apart, and an event not among them is an error. The windows are whole days ending yesterday (the last complete
day; Mixpanel's days are in the project's timezone, JQL's in UTC).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from datetime import date, timedelta
from typing import Any, ClassVar

from pydantic import Field, field_validator

from kpi_collector.collect.http import Auth, Response
from kpi_collector.errors import ExtractError, did_you_mean
from kpi_collector.secrets import Secret
from kpi_collector.sources._service import (
    ServiceClient,
    ServiceSource,
    day_end,
    days,
    last_utc_day,
    parse_day,
    service_zone,
)
from kpi_collector.sources.base import Observation, SourceContext

WINDOWS = {"dau": 1, "wau": 7, "mau": 30}
#: the event names asked for; a project that tracks more than these cannot be told about
#: a missing event (Mixpanel lists 255 unless told otherwise)
NAMES_LIMIT = 10_000
#: the days `events/names` looks back over, today's included (docs.mixpanel.com, Top Events)
NAMES_DAYS = 31

#: users whose last event is on or after each window's first day
ACTIVE_USERS_JQL = """
function main() {
  return Events({from_date: params.from_date, to_date: params.to_date})
    .groupByUser(mixpanel.reducer.max("time"))
    .reduce(function (accumulators, users) {
      var out = {dau: 0, wau: 0, mau: 0};
      _.each(accumulators, function (a) { out.dau += a.dau; out.wau += a.wau; out.mau += a.mau; });
      _.each(users, function (user) {
        var day = new Date(user.value).toISOString().slice(0, 10);
        out.mau += 1;
        if (day >= params.wau_from) { out.wau += 1; }
        if (day >= params.dau_from) { out.dau += 1; }
      });
      return out;
    });
}
""".strip()

#: distinct users per day
DAILY_USERS_JQL = """
function main() {
  return Events({from_date: params.from_date, to_date: params.to_date})
    .groupByUser([function (e) { return new Date(e.time).toISOString().slice(0, 10); }], mixpanel.reducer.null())
    .groupBy([function (row) { return row.key[1]; }], mixpanel.reducer.count());
}
""".strip()


class Mixpanel(ServiceSource):
    type: ClassVar[str] = "mixpanel"
    service_name: ClassVar[str] = "Mixpanel"
    known_metrics: ClassVar[tuple[str, ...]] = tuple(WINDOWS)
    default_metrics: ClassVar[tuple[str, ...]] = known_metrics
    credentials: ClassVar[Mapping[str, str]] = {
        "username": "MIXPANEL_USERNAME",
        "secret": "MIXPANEL_SECRET",
    }
    #: every metric is a window of whole days ending the last complete one: the run stores
    #: them with that day's end
    complete_days: ClassVar[bool] = True

    project_id: int = Field(description="the project's id (Project settings)")
    username: str = Field(description="the service account's username")
    secret: Secret = Field(description="the service account's secret")
    event: str | None = Field(default=None, description="count only users who sent this event")
    project_timezone: str | None = Field(
        default=None,
        description="the project's time zone (Project settings → Overview → Timezone), e.g. "
        "America/Los_Angeles; default: its days end by UTC midnight",
    )
    api_url: str = "https://mixpanel.com"

    @field_validator("project_timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None and service_zone(value) is None:
            raise ValueError(f"{value!r} is not a time zone like America/Los_Angeles")
        return value

    def auth(self) -> Auth | None:
        return Auth(basic=(self.username, self.secret))

    def last_day(self, ctx: SourceContext) -> date:
        """The last day complete in the config's time zone, in UTC (JQL's days) and, when
        `project_timezone` is given, in the project's (Segmentation's days): a project behind
        UTC (America) is still in the UTC yesterday for hours after UTC midnight."""
        complete = last_utc_day(ctx)
        zone = service_zone(self.project_timezone)
        if zone is not None:
            complete = min(complete, ctx.now.astimezone(zone).date() - timedelta(days=1))
        return complete

    def forbidden(self, response: Response, message: str) -> str:
        return (
            f"Mixpanel refused the query (HTTP 403{': ' + message if message else ''}): the service account "
            f"needs a role in project {self.project_id} (check `project_id:` of source {self.name!r})"
        )

    def not_found(self, response: Response) -> str:
        return f"Mixpanel has no project {self.project_id} here: check `project_id:` and `api_url:` of source {self.name!r}"

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        client = self.client(ctx)
        last = self.last_day(ctx)
        if last < ctx.today - timedelta(days=1):
            ctx.describes(last)  # the windows end before the config's yesterday
        if self.event is None:
            rows = await self._jql(
                client,
                ACTIVE_USERS_JQL,
                {
                    "from_date": (last - timedelta(days=29)).isoformat(),
                    "to_date": last.isoformat(),
                    "wau_from": (last - timedelta(days=6)).isoformat(),
                    "dau_from": last.isoformat(),
                },
            )
            counts = (
                rows[0] if rows and isinstance(rows[0], dict) else {"dau": 0, "wau": 0, "mau": 0}
            )
            return {m: float(counts.get(m) or 0) for m in self.wanted()}
        values = await self.gather({(m,): self._unique(client, m, last) for m in self.wanted()})
        if not any(values.values()):
            await self._check_event(client)
        return values

    async def _unique(self, client: ServiceClient, metric: str, last: date) -> dict[str, float]:
        """Unique users of the event over the window: one bucket of `interval` days, read
        whatever day it is keyed by (none: nobody sent the event). Unique users of several
        buckets cannot be added up: an answer split in more than one is an error."""
        width = WINDOWS[metric]
        first = last - timedelta(days=width - 1)
        series = await self._segmentation(client, first, last, interval=width)
        if len(series) > 1:
            raise ExtractError(
                f"Mixpanel split the {width} days to {last} into {len(series)} buckets of "
                f"unique users, which cannot be added up ({metric} of event {self.event!r})"
            )
        return {metric: next(iter(series.values()), 0.0)}

    async def _segmentation(
        self, client: ServiceClient, first: date, last: date, *, interval: int | None = None
    ) -> dict[date, float]:
        params: dict[str, Any] = {
            "project_id": self.project_id,
            "event": self.event,
            "from_date": first.isoformat(),
            "to_date": last.isoformat(),
            "type": "unique",
        }
        if interval is None:
            params["unit"] = "day"
        else:
            params["interval"] = interval
        body = await client.json("/api/query/segmentation", params=params)
        # no series is `"values": {}`; an answer without `values` is no answer (not 0)
        data = body.get("data") if isinstance(body, dict) else None
        values = data.get("values") if isinstance(data, dict) else None
        if not isinstance(values, dict):
            raise ExtractError("Mixpanel: the segmentation answer has no data.values")
        series = values.get(self.event) or {}
        return {parse_day(day): float(count or 0) for day, count in series.items()}

    async def _check_event(self, client: ServiceClient) -> None:
        """Raise ExtractError naming `event` when the project sent no such event in the last
        31 days (its names are case-sensitive), with the closest names it did send."""
        names = await client.json(
            "/api/query/events/names",
            params={"project_id": self.project_id, "type": "general", "limit": NAMES_LIMIT},
        )
        if not isinstance(names, list):
            raise ExtractError("Mixpanel: the event names answer is not a list")
        known = [str(name) for name in names]
        if self.event in known or len(known) >= NAMES_LIMIT:
            return
        event = self.event or ""
        hint = did_you_mean(event, known)  # "Sign Up" for "sign up" first
        raise ExtractError(
            f"Mixpanel project {self.project_id} has no event {self.event!r} in the last "
            f"{NAMES_DAYS} days{hint}: check `event:` of source {self.name!r} (event names are "
            "case-sensitive)"
        )

    async def _jql(self, client: ServiceClient, script: str, params: dict[str, Any]) -> list[Any]:
        rows = await client.json(
            "/api/query/jql",
            method="POST",
            params={"project_id": self.project_id},
            data={"script": script, "params": json.dumps(params)},
        )
        if not isinstance(rows, list):
            raise ExtractError("Mixpanel: the JQL answer is not a list")
        return rows

    async def backfill(self, ctx: SourceContext, since: date) -> AsyncIterator[Observation]:
        """Unique users of each day from `since` (or the first day with users) to yesterday."""
        if "dau" not in self.wanted():
            return
        client = self.client(ctx)
        last = self.last_day(ctx)
        if since > last:
            return
        if self.event is None:
            rows = await self._jql(
                client,
                DAILY_USERS_JQL,
                {"from_date": since.isoformat(), "to_date": last.isoformat()},
            )
            counted = {
                parse_day(str(row["key"][0])): float(row.get("value") or 0)
                for row in rows
                if isinstance(row, dict) and row.get("key")
            }
        else:
            counted = await self._segmentation(client, since, last)
        active = [d for d, n in counted.items() if n]
        if not active:
            if self.event is not None:
                await self._check_event(client)
            return
        for day in days(max(since, min(active)), last):
            yield Observation("dau", counted.get(day, 0.0), day_end(day, ctx.tz))
