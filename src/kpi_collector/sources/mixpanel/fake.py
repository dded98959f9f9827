"""A local Mixpanel query API: `GET /api/query/segmentation` (type=unique by day or by an
`interval` of days), `GET /api/query/events/names` (the events of the last 31 days, most
frequent first) and `POST /api/query/jql` running the two scripts the connector sends, over
stored events; service-account basic auth, project access and Mixpanel's error bodies.

Segmentation answers an event that has no data in the range, a misspelt one as well, with
no series at all (`"values": {}`, `legend_size` 0), as Mixpanel does: only the event names
tell an unknown event from a quiet one."""

from __future__ import annotations

import base64
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from kpi_collector.sources._fake import FakeService, respond


@dataclass
class FakeMixpanel(FakeService):
    accounts: dict[str, str] = field(default_factory=dict)  # username -> secret
    projects: dict[int, set[str]] = field(default_factory=dict)  # project -> usernames with a role
    events: list[tuple[datetime, str, str]] = field(
        default_factory=list
    )  # (time, distinct_id, event)
    today: date = field(default_factory=lambda: datetime.now(UTC).date())
    #: the project's time zone (Project settings), whose days Segmentation counts in
    timezone: str = "UTC"

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/api/query/segmentation", self.segmentation)
        app.router.add_get("/api/query/events/names", self.names)
        app.router.add_post("/api/query/jql", self.jql)

    def _error(self, status: int, request: web.Request, message: str) -> web.Response:
        return respond(status, {"request": request.path_qs, "error": message})

    def _check(self, request: web.Request) -> web.Response | None:
        header = request.headers.get("Authorization", "")
        try:
            user, _, secret = (
                base64.b64decode(header.removeprefix("Basic ")).decode().partition(":")
            )
        except ValueError:
            user, secret = "", ""
        if not header.startswith("Basic ") or self.accounts.get(user) != secret:
            return respond(401, {"error": "Invalid credentials", "status": "error"})
        project = request.query.get("project_id", "")
        if not project.isdigit():
            return self._error(
                400, request, "project_id is required for service account authentication"
            )
        if user not in self.projects.get(int(project), set()):
            return respond(
                403, {"error": f"Permission denied for project {project}", "status": "error"}
            )
        return None

    def _users(
        self, first: date, last: date, event: str | None = None, zone: str = "UTC"
    ) -> dict[date, set[str]]:
        out: dict[date, set[str]] = {}
        for when, user, name in self.events:
            day = when.astimezone(ZoneInfo(zone)).date()
            if first <= day <= last and (event is None or name == event):
                out.setdefault(day, set()).add(user)
        return out

    async def segmentation(self, request: web.Request) -> web.Response:
        refused = self._check(request)
        if refused:
            return refused
        query = request.query
        event = query.get("event")
        if not event:
            return self._error(400, request, "event is a required parameter")
        try:
            first, last = (
                date.fromisoformat(query["from_date"]),
                date.fromisoformat(query["to_date"]),
            )
        except (KeyError, ValueError):
            return self._error(400, request, "from_date and to_date must be dates like 2026-01-31")
        if query.get("type") != "unique":
            return self._error(400, request, "the fake answers type=unique only")
        width = int(query["interval"]) if "interval" in query else 1
        per_day = self._users(first, last, event, self.timezone)
        series, values = [], {}
        start = first
        while start <= last:
            end = min(last, start + timedelta(days=width - 1))
            users = set().union(
                *(
                    per_day.get(start + timedelta(days=i), set())
                    for i in range((end - start).days + 1)
                )
            )
            series.append(start.isoformat())
            values[start.isoformat()] = len(users)
            start = end + timedelta(days=1)
        seen = any(values.values())
        return respond(
            200,
            {
                "data": {"series": series, "values": {event: values} if seen else {}},
                "legend_size": 1 if seen else 0,
            },
        )

    async def names(self, request: web.Request) -> web.Response:
        """The names of the events of the last 31 days (today's included), the most frequent
        first, at most `limit` (255 unless told)."""
        refused = self._check(request)
        if refused:
            return refused
        if request.query.get("type") not in ("general", "unique", "average"):
            return self._error(400, request, "type must be one of general, unique, average")
        first = self.today - timedelta(days=30)
        counts = Counter(
            name for when, _, name in self.events if first <= when.astimezone(UTC).date()
        )
        limit = int(request.query.get("limit", 255))
        return respond(200, [name for name, _ in counts.most_common(limit)])

    async def jql(self, request: web.Request) -> web.Response:
        refused = self._check(request)
        if refused:
            return refused
        form = await request.post()
        script = str(form.get("script", ""))
        try:
            params: dict[str, Any] = json.loads(str(form.get("params") or "{}"))
            first, last = (
                date.fromisoformat(params["from_date"]),
                date.fromisoformat(params["to_date"]),
            )
        except (ValueError, KeyError):
            return self._error(400, request, "Events() needs from_date and to_date")
        per_day = self._users(first, last)
        if 'groupByUser(mixpanel.reducer.max("time"))' in script:
            last_seen: dict[str, date] = {}
            for day, users in per_day.items():
                for user in users:
                    last_seen[user] = max(day, last_seen.get(user, day))
            out = {
                "dau": sum(1 for d in last_seen.values() if d.isoformat() >= params["dau_from"]),
                "wau": sum(1 for d in last_seen.values() if d.isoformat() >= params["wau_from"]),
                "mau": len(last_seen),
            }
            return respond(200, [out])
        if "mixpanel.reducer.null()" in script and "mixpanel.reducer.count()" in script:
            return respond(
                200, [{"key": [d.isoformat()], "value": len(u)} for d, u in sorted(per_day.items())]
            )
        return self._error(
            400,
            request,
            "Uncaught exception ReferenceError: the fake runs only the connector's scripts",
        )
