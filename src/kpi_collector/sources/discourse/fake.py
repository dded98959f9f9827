"""A local Discourse forum: `/about.json` (`{"about": {"stats": {...}}}`) and
`/site/statistics.json` (the same counts, flat), with Discourse's error bodies
(`{"errors": [...], "error_type": "invalid_access"}` for a bad key, `not_logged_in` for a
forum that needs a login, `rate_limit` with `extras.wait_seconds` and `Retry-After` for a 429),
as meta.discourse.org and Discourse's API docs (docs.discourse.org) show them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from kpi_collector.sources._fake import FakeService, respond

_INVALID = (
    "You are not permitted to view the requested resource. The API username or key is invalid."
)
_LOGIN = "You need to be logged in to do that."


@dataclass
class FakeDiscourse(FakeService):
    stats: dict[str, int] = field(default_factory=dict)
    #: API key -> the user names it may act as
    keys: dict[str, set[str]] = field(default_factory=dict)
    login_required: bool = False
    #: the about page hides its stats (then only /site/statistics.json has them)
    about_hides_stats: bool = False
    #: `share_anonymized_statistics` (off: /site/statistics.json answers 404)
    shares_statistics: bool = True
    #: Discourse before 3.2 named the totals topic_count, post_count, user_count, like_count
    old_names: bool = False

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/about.json", self.about)
        app.router.add_get("/site/statistics.json", self.statistics)

    def _refused(self, request: web.Request) -> web.Response | None:
        key = request.headers.get("Api-Key")
        if key is not None:
            if request.headers.get("Api-Username") not in self.keys.get(key, set()):
                return respond(403, {"errors": [_INVALID], "error_type": "invalid_access"})
            return None
        if self.login_required:
            return respond(403, {"errors": [_LOGIN], "error_type": "not_logged_in"})
        return None

    def _stats(self) -> dict[str, int]:
        if not self.old_names:
            return dict(self.stats)
        renamed = {"topics_count": "topic_count", "posts_count": "post_count"}
        renamed |= {"users_count": "user_count", "likes_count": "like_count"}
        return {renamed.get(k, k): v for k, v in self.stats.items()}

    async def about(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        about: dict[str, Any] = {
            "title": "Acme Community",
            "description": "Where Acme users help each other",
            "version": "3.1.0" if self.old_names else "3.4.0",
            "https": True,
            "admins": [],
            "moderators": [],
        }
        if not self.about_hides_stats:
            about["stats"] = self._stats()
        return respond(200, {"about": about})

    async def statistics(self, request: web.Request) -> web.Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        if not self.shares_statistics:
            return respond(
                404,
                {
                    "errors": ["The requested URL or resource could not be found."],
                    "error_type": "not_found",
                },
            )
        return respond(200, self._stats())
