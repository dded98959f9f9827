"""What every fake service shares: a real aiohttp server on 127.0.0.1, request counts, and
injected answers (an error, a 5xx, a 429 with Retry-After) before the normal ones.

Each fake answers like its real service: the same paths, JSON field names and nesting, headers,
pagination and error bodies (copied from the services' public API documentation).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from kpi_collector.demo.server import BackgroundServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Injected:
    status: int
    body: Any
    headers: dict[str, str]
    path: str | None  # only requests whose path contains this; None: any request


@dataclass
class FakeService:
    """Base of the fakes: subclasses add routes in `routes()` and keep their data as fields."""

    hits: Counter[str] = field(default_factory=Counter)
    requests: list[web.Request] = field(default_factory=list)
    injected: list[Injected] = field(default_factory=list)
    url: str = ""

    def inject(
        self,
        status: int,
        body: Any = None,
        *,
        headers: dict[str, str] | None = None,
        path: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next `times` matching requests with this instead of the normal answer."""
        for _ in range(times):
            self.injected.append(Injected(status, body, dict(headers or {}), path))

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def app(self) -> web.Application:
        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            self.hits[request.path] += 1
            self.requests.append(request)
            for item in self.injected:
                if item.path is None or item.path in request.path:
                    self.injected.remove(item)
                    return respond(item.status, item.body, item.headers)
            return await handler(request)

        app = web.Application(middlewares=[record])
        self.routes(app)
        return app

    @contextmanager
    def serve(self) -> Iterator[str]:
        with BackgroundServer(self.app()) as url:
            self.url = url
            yield url

    def calls(self, path_part: str = "") -> int:
        return sum(n for p, n in self.hits.items() if path_part in p)


def respond(status: int, body: Any, headers: dict[str, str] | None = None) -> web.Response:
    if body is None:
        return web.Response(status=status, headers=headers)
    if isinstance(body, str):
        return web.Response(status=status, text=body, headers=headers, content_type="text/html")
    return web.Response(
        status=status, text=json.dumps(body), headers=headers, content_type="application/json"
    )


def bearer(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    for prefix in ("Bearer ", "token "):
        if value.startswith(prefix):
            return value[len(prefix) :]
    return None


# running a source against a fake -------------------------------------------------------------


def _context(client: Any, *, now: datetime | None, tz: str, timeout: float, retries: int) -> Any:
    from zoneinfo import ZoneInfo

    from kpi_collector.sources.base import SourceContext

    return SourceContext(
        client, timeout, retries, ZoneInfo(tz), now or datetime.now(UTC), Path.cwd()
    )


def collect(
    source: Any,
    *,
    now: datetime | None = None,
    tz: str = "UTC",
    timeout: float = 5.0,
    retries: int = 2,
) -> dict[str, float]:
    """`source.collect` through a real HTTP client (short backoff); errors raise."""
    from kpi_collector.collect.http import HttpClient

    async def go() -> dict[str, float]:
        async with HttpClient(backoff=0.05) as client:
            ctx = _context(client, now=now, tz=tz, timeout=timeout, retries=retries)
            return dict(await source.collect(ctx))

    return asyncio.run(go())


def outcome(
    source: Any,
    *,
    now: datetime | None = None,
    tz: str = "UTC",
    timeout: float = 5.0,
    retries: int = 2,
) -> Any:
    """What the engine records for the source: values and (redacted) error messages."""
    from zoneinfo import ZoneInfo

    from kpi_collector.collect.http import HttpClient
    from kpi_collector.config.models import Defaults
    from kpi_collector.run.engine import collect_one

    async def go() -> Any:
        async with HttpClient(backoff=0.05) as client:
            return await collect_one(
                source,
                client,
                defaults=Defaults(timeout=timeout, retries=retries),
                tz=ZoneInfo(tz),
                base_dir=Path.cwd(),
                now=now or datetime.now(UTC),
            )

    return asyncio.run(go())


def backfill(
    source: Any,
    since: date,
    *,
    now: datetime | None = None,
    tz: str = "UTC",
    timeout: float = 5.0,
    retries: int = 2,
) -> list[Any]:
    """Every observation `source.backfill` yields."""
    from kpi_collector.collect.http import HttpClient

    async def go() -> list[Any]:
        async with HttpClient(backoff=0.05) as client:
            ctx = _context(client, now=now, tz=tz, timeout=timeout, retries=retries)
            return [obs async for obs in source.backfill(ctx, since)]

    return asyncio.run(go())
