"""A local PostHog query API: `POST /api/projects/{id}/query/` running the HogQL shapes the
connector sends (distinct persons over day windows, per day; whether an event was ever
received, the recent event names) over stored events, with
`values` placeholders, the default 100-row limit, personal API keys and PostHog's error bodies
(`{"type", "code", "detail", "attr"}`)."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from kpi_collector.sources._fake import FakeService, bearer, respond

_WINDOW = re.compile(
    r"count\(DISTINCT if\(toDate\(timestamp\) >= today\(\) - (\d+), person_id, NULL\)\) AS (\w+)"
)
_ALL = re.compile(r"count\(DISTINCT person_id\) AS (\w+)")
_ACTIVE_WHERE = re.compile(
    r"FROM events WHERE toDate\(timestamp\) >= today\(\) - (\d+) AND toDate\(timestamp\) < today\(\)"
)
# every (person, active day) spread over the `spread` days after it, counted per day
_BY_DAY = re.compile(
    r"^SELECT day, (?P<columns>.*) FROM \( SELECT person_id, active_day, "
    r"addDays\(active_day, arrayJoin\(range\((?P<spread>\d+)\)\)\) AS day FROM \( "
    r"SELECT DISTINCT person_id, toDate\(timestamp\) AS active_day FROM events "
    r"WHERE toDate\(timestamp\) >= addDays\(toDate\(\{since\}\), -(?P<back>\d+)\) "
    r"AND toDate\(timestamp\) < today\(\)(?P<event> AND event = \{event\})? \) \) "
    r"WHERE day >= toDate\(\{since\}\) AND day < today\(\) GROUP BY day ORDER BY day"
    r"(?: LIMIT (?P<limit>\d+))?$"
)
_EVENT_SEEN = re.compile(r"^SELECT event FROM events WHERE event = \{event\} LIMIT (\d+)$")
_RECENT_EVENTS = re.compile(
    r"^SELECT event FROM events WHERE toDate\(timestamp\) >= today\(\) - (\d+) "
    r"GROUP BY event ORDER BY count\(\) DESC LIMIT (\d+)$"
)
_BY_DAY_COLUMN = re.compile(
    r"count\(DISTINCT (?:if\(day (?:(?P<same>= active_day)|< addDays\(active_day, (?P<span>\d+)\)),"
    r" person_id, NULL\)|person_id)\) AS (?P<name>\w+)"
)


@dataclass
class FakePostHog(FakeService):
    projects: set[str] = field(default_factory=lambda: {"4242"})
    keys: dict[str, set[str]] = field(default_factory=dict)  # personal API key -> scopes
    events: list[tuple[datetime, str, str]] = field(
        default_factory=list
    )  # (timestamp, person, event)
    today: date = field(default_factory=lambda: datetime.now(UTC).date())
    #: the project's time zone (Project settings), in which `today()` and `toDate` count days
    #: and which every answer names in `timezone`
    timezone: str = "UTC"
    queries: list[dict[str, Any]] = field(default_factory=list)

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/api/projects/{project_id}/query/", self.query)

    @staticmethod
    def _error(status: int, kind: str, code: str, detail: str) -> web.Response:
        return respond(status, {"type": kind, "code": code, "detail": detail, "attr": None})

    async def query(self, request: web.Request) -> web.Response:
        key = bearer(request)
        if key is None:
            return self._error(
                401,
                "authentication_error",
                "not_authenticated",
                "Authentication credentials were not provided.",
            )
        if key not in self.keys:
            return self._error(
                401,
                "authentication_error",
                "authentication_failed",
                "Personal API key found in request Authorization header is invalid.",
            )
        if "query:read" not in self.keys[key]:
            return self._error(
                403,
                "authentication_error",
                "permission_denied",
                "API key missing required scope 'query:read'",
            )
        if request.match_info["project_id"] not in self.projects:
            return self._error(404, "invalid_request", "not_found", "Not found.")
        body = await request.json()
        self.queries.append(body)
        query = body.get("query") or {}
        if query.get("kind") != "HogQLQuery":
            return self._error(400, "validation_error", "invalid_input", "Unsupported query kind")
        text = " ".join(str(query.get("query", "")).split())
        values = query.get("values") or {}
        for name in re.findall(r"\{(\w+)\}", text):
            if name not in values:
                return self._error(
                    400,
                    "validation_error",
                    "query_validation_error",
                    f"Placeholder {{{name}}} is not available in this context",
                )
        seen = _EVENT_SEEN.match(text)
        if seen:
            names = [[e] for _, _, e in self.events if e == values.get("event")]
            return self._result(["event"], names[: int(seen.group(1))], self.timezone)
        recent = _RECENT_EVENTS.match(text)
        if recent:
            first = self.today - timedelta(days=int(recent.group(1)))
            counts = Counter(e for t, _, e in self.events if first <= self._day(t))
            rows = [[e] for e, _ in counts.most_common(int(recent.group(2)))]
            return self._result(["event"], rows, self.timezone)
        event = values.get("event") if " AND event = {event}" in text else None
        by_day = _BY_DAY.match(text)
        if by_day:
            return self._by_day(by_day, values, event)
        if _ACTIVE_WHERE.search(text):
            return self._active(text, event)
        return self._error(
            400,
            "validation_error",
            "query_validation_error",
            f"Unable to resolve field: {text[:40]}",
        )

    def _day(self, moment: datetime) -> date:
        """`toDate(timestamp)`: the event's day in the project's time zone."""
        return moment.astimezone(ZoneInfo(self.timezone)).date()

    def _persons(self, first: date, event: str | None) -> set[str]:
        return {
            p
            for t, p, e in self.events
            if first <= self._day(t) < self.today and (event is None or e == event)
        }

    def _active(self, text: str, event: str | None) -> web.Response:
        outer = int(_ACTIVE_WHERE.search(text).group(1))  # type: ignore[union-attr]
        columns, row = [], []
        for days, name in _WINDOW.findall(text):
            columns.append(name)
            row.append(
                len(self._persons(self.today - timedelta(days=min(int(days), outer)), event))
            )
        for name in _ALL.findall(text):
            columns.append(name)
            row.append(len(self._persons(self.today - timedelta(days=outer), event)))
        return self._result(columns, [row], self.timezone)

    def _by_day(
        self, match: re.Match[str], values: dict[str, Any], event: str | None
    ) -> web.Response:
        since = date.fromisoformat(str(values["since"])[:10])
        spread = int(match.group("spread"))
        first = since - timedelta(days=int(match.group("back")))
        active = {  # (person, active day), as the innermost SELECT DISTINCT gives them
            (p, self._day(t))
            for t, p, e in self.events
            if first <= self._day(t) < self.today and (event is None or e == event)
        }
        columns: list[tuple[str, int]] = []
        for column in _BY_DAY_COLUMN.finditer(match.group("columns")):
            span = 1 if column["same"] else int(column["span"] or spread)
            columns.append((column["name"], span))
        rows = []
        day = since
        while day < self.today:
            counts = [
                len({p for p, d in active if 0 <= (day - d).days < min(span, spread)})
                for _, span in columns
            ]
            if any(counts) or any(0 <= (day - d).days < spread for _, d in active):
                rows.append([day.isoformat(), *counts])
            day += timedelta(days=1)
        limit = int(match.group("limit") or 100)  # PostHog returns 100 rows unless told otherwise
        names = ["day", *(name for name, _ in columns)]
        return self._result(names, rows[:limit], self.timezone, has_more=len(rows) > limit)

    @staticmethod
    def _result(
        columns: list[str], rows: list[list[Any]], timezone: str, *, has_more: bool = False
    ) -> web.Response:
        return respond(
            200,
            {
                "cache_key": "cache_fake",
                "clickhouse": "SELECT ...",
                "columns": columns,
                "error": None,
                "hasMore": has_more,
                "hogql": "SELECT ...",
                "is_cached": False,
                "limit": 100,
                "modifiers": {},
                "offset": 0,
                "query_status": None,
                "results": rows,
                "timezone": timezone,
                "types": [[c, "UInt64"] for c in columns],
            },
        )
