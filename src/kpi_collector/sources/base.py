"""The source contract: a config model that knows how to `collect` its metrics.

A source declares its fields (pydantic, unknown keys forbidden), a `type` name, and
`async collect(ctx) -> {metric: number}`. Sources that can give past values also
implement `backfill(ctx, since)`, yielding `Observation`s with their real timestamps.
HTTP, auth, retries and parsing live in `kpi_collector.collect`, never in a source.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo

from pydantic import ByteSize, Field

from kpi_collector.collect.offload import run_off_loop
from kpi_collector.config.models import MAX_BYTES
from kpi_collector.config.plugins import Plugin

if TYPE_CHECKING:
    from kpi_collector.collect.http import HttpClient, HttpSession

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Observation:
    """One value of one metric at one moment (`metric` is the source-local name)."""

    metric: str
    value: float
    ts: datetime


@dataclass
class SourceContext:
    """What a source gets to do its work: the HTTP layer and where and when it runs."""

    http_client: HttpClient
    timeout: float
    retries: int
    tz: ZoneInfo
    now: datetime
    base_dir: Path
    #: the cap on one answer, in bytes (HTTP body after decompression, command output)
    max_bytes: int = MAX_BYTES

    def http(self, **kwargs: Any) -> HttpSession:
        """An HTTP session with this source's timeout, retries and answer cap (and any
        auth/headers)."""
        kwargs.setdefault("timeout", self.timeout)
        kwargs.setdefault("retries", self.retries)
        kwargs.setdefault("max_bytes", self.max_bytes)
        return self.http_client.session(**kwargs)

    async def off_loop(self, work: Callable[[], T], *, what: str, inline: bool = False) -> T:
        """Run CPU-heavy `work` (parsing a page, evaluating its selectors) in a thread, so
        the event loop and every other source go on; it fails with ExtractError when it
        takes longer than the source's timeout. `inline` runs small work on the loop. See
        `collect.offload.run_off_loop`."""
        return await run_off_loop(work, timeout=self.timeout, what=what, inline=inline)

    @property
    def today(self) -> date:
        return self.now.astimezone(self.tz).date()


class Source(Plugin):
    """Base of every source. Subclasses set `type` and implement `collect`."""

    #: metrics this source gives when it cannot know them from its config (for `kpi validate`)
    default_metrics: ClassVar[tuple[str, ...]] = ()

    timeout: float | None = Field(default=None, gt=0)
    retries: int | None = Field(default=None, ge=0, le=10)
    #: the cap on one answer (HTTP body after decompression, a command's output); bytes
    #: or a size like "50MiB"; default `defaults.max_bytes`
    max_bytes: ByteSize | None = Field(default=None, gt=0)

    def metric_names(self) -> list[str]:
        """The metrics this source will give, as far as the config tells."""
        metrics = getattr(self, "metrics", None)
        if isinstance(metrics, Mapping):
            return list(metrics)
        if isinstance(metrics, list | tuple) and metrics:
            return [str(m) for m in metrics]
        return list(self.default_metrics)

    def kpi_ids(self) -> list[str]:
        return [f"{self.name}.{m}" for m in self.metric_names()]

    def host(self) -> str | None:
        """The host this source talks to, for display; None for non-HTTP sources."""
        return None

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        raise NotImplementedError

    @property
    def can_backfill(self) -> bool:
        return type(self).backfill is not Source.backfill

    def backfill(self, ctx: SourceContext, since: date) -> AsyncIterator[Observation]:
        raise NotImplementedError(f"source type {self.type!r} cannot give past values")
