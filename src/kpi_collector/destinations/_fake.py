"""What the local message services share (the fakes of `discord`, `slack`, `segment` and
`webhook`): a token that is the secret part of every URL, an outage switch and injected answers,
on a real aiohttp server on 127.0.0.1.

For tests only: a destination never imports its `fake.py` or this module. A fake subclasses
`MessageService` and adds its routes in `routes()` (calling `super().routes(app)`), so several
services can share one server: `class FakeHooks(FakeDiscord, FakeSlack, ...)`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

from kpi_collector.sources._fake import BackgroundServer


def rate_wait(times: list[float], limit: tuple[int, float]) -> float | None:
    """A service's rate limit of `limit` = (count, seconds): None when one more request fits
    in the sliding window (it is recorded in `times`, the recent requests' monotonic times,
    pruned here), else the seconds until it would."""
    count, window = limit
    now = time.monotonic()
    times[:] = [t for t in times if now - t < window]
    if len(times) >= count:
        return window - (now - times[0])
    times.append(now)
    return None


@dataclass
class Injected:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    after: int = 0  # requests to let through first


class MessageService:
    """A local service: `down = True` makes every route answer 503; `fail_next(status, body,
    headers, times, after)` answers the next `times` requests (after `after` answered as
    usual: part 3 of a split message, say) with that instead."""

    def __init__(self, token: str) -> None:
        self.token = token  # the secret part of every URL, the bot token and the write key
        self.url = ""
        self.down = False
        self.injected: list[Injected] = []
        #: seconds to hold the answer of each of the next requests after carrying it out (a
        #: service that took the message, answering after the client gave up)
        self.late: list[float] = []

    def answer_late(self, seconds: float, times: int = 1) -> None:
        """Carry out the next `times` requests, but answer each only after `seconds`."""
        self.late += [seconds] * times

    def fail_next(
        self,
        status: int,
        body: Any = "",
        headers: dict[str, str] | None = None,
        times: int = 1,
        after: int = 0,
    ) -> None:
        self.injected += [Injected(status, body, dict(headers or {}), after)] + [
            Injected(status, body, dict(headers or {}))
        ] * (times - 1)

    @classmethod
    @contextmanager
    def serve(cls, token: str) -> Iterator[Self]:
        fake = cls(token)
        with BackgroundServer(fake.app()) as url:
            fake.url = url
            yield fake

    def routes(self, app: web.Application) -> None:
        """Add this service's routes; subclasses call `super().routes(app)` first."""

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        self.routes(app)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if self.down:
            return web.Response(
                status=503,
                text="<html><body>503 Service Unavailable</body></html>",
                content_type="text/html",
            )
        if self.injected and self.injected[0].after:
            self.injected[0].after -= 1
        elif self.injected:
            answer = self.injected.pop(0)
            if isinstance(answer.body, dict | list):
                return web.json_response(answer.body, status=answer.status, headers=answer.headers)
            return web.Response(status=answer.status, text=str(answer.body), headers=answer.headers)
        response = await handler(request)
        if self.late:
            await asyncio.sleep(self.late.pop(0))
        return response
