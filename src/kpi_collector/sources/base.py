"""The source contract: a config model that knows how to `collect` its metrics.

A source declares its fields (pydantic, unknown keys forbidden), a `type` name, and
`async collect(ctx) -> {metric: number}`. Sources that can give past values also
implement `backfill(ctx, since)`, yielding `Observation`s with their real timestamps; one
whose `collect` gives the last complete day (yesterday) sets `complete_days = True`, and the
run stores its values with that day's stamp, as `backfill` does (`run.complete_days`).
HTTP, auth, retries and parsing live in `kpi_collector.collect`, never in a source.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo

from kpi_collector.collect.offload import run_off_loop
from kpi_collector.config.plain import MAX_BYTES, PlainPlugin
from kpi_collector.lazy import lazy_exports

if TYPE_CHECKING:
    from kpi_collector.collect.browser import Browser
    from kpi_collector.collect.http import HttpClient, HttpSession
    from kpi_collector.sources.model import Source as Source

T = TypeVar("T")

#: what a Celery queue's name (`queue:`, `kpi worker --queues`) may be: ASCII, at most the
#: 255 bytes an AMQP queue name has (RabbitMQ refuses longer ones)
QUEUE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"
QUEUE_MAX = 255


@dataclass(frozen=True, slots=True)
class Observation:
    """One past value, as `Source.backfill` yields it: the `metric` (the source-local name,
    "stars", not "github.stars"), its `value` (a finite number) and `ts`, the moment it
    describes as an aware datetime (any zone; stored as UTC epoch seconds)."""

    metric: str
    value: float
    ts: datetime


@dataclass
class SourceContext:
    """What a source gets to do its work: the HTTP layer and where and when it runs.

    - `http_client`: the run's shared connection pool (opened and closed by the run; a
      source opens sessions on it through `http`, never its own pool);
    - `timeout`: seconds per attempt of each request (the source's `timeout:` or the
      config's default);
    - `retries`: how many times a transient failure (connection error, timeout, 5xx, 429)
      is retried, 0 to 10;
    - `tz`: the config's time zone (`timezone:`), for "today" and local days;
    - `now`: the run's moment, an aware datetime (every source of a run gets the same);
    - `base_dir`: the folder of `kpi.yaml`; relative paths in a source's config are
      relative to it.
    """

    http_client: HttpClient
    timeout: float
    retries: int
    tz: ZoneInfo
    now: datetime
    base_dir: Path
    #: the cap on one answer, in bytes (HTTP body after decompression, command output)
    max_bytes: int = MAX_BYTES
    #: why a backfill gives less than the range asked for, in the service's terms ("npm
    #: keeps no counts before 2015-01-10"); filled by `backfill` through `limit`
    limits: list[str] = field(default_factory=list)
    #: the run's headless Chromium for `render: true`, shared by its sources; None: a
    #: source that renders opens one for itself and closes it
    browser: Browser | None = None
    #: the day a `complete_days` source's values describe when it is not the config's
    #: yesterday (the service counts days in a time zone behind the config's, where
    #: yesterday is still under way, or it has not counted yesterday yet); set through
    #: `describes`, None: yesterday
    day: date | None = None

    def describes(self, day: date) -> None:
        """Say that `collect`'s values describe the complete day `day`, an earlier one than
        the config's yesterday (`complete_days` sources only): the run stamps them with
        that day's end, as `backfill` does."""
        self.day = day

    def limit(self, reason: str) -> None:
        """Record why a backfill stops short of the range asked for (shown by `kpi backfill`)."""
        if reason not in self.limits:
            self.limits.append(reason)

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
        """The run's date in the config's time zone."""
        return self.now.astimezone(self.tz).date()


class PlainSource(PlainPlugin):
    """What every source does (see `sources.model.Source`, the model its types subclass)."""

    #: metrics this source gives when it cannot know them from its config (for `kpi validate`)
    default_metrics: ClassVar[tuple[str, ...]] = ()
    #: True when `collect` gives the values of the last complete day in the config's time
    #: zone (yesterday, `ctx.today - 1`), not of the run's moment: the run stores them with
    #: that day's stamp (its end, as `backfill` stamps a day), once per day, and fills in
    #: the complete days missed since the source's last stored day through `backfill`
    complete_days: ClassVar[bool] = False

    if TYPE_CHECKING:
        timeout: float | None
        retries: int | None
        max_bytes: int | None
        queue: str
        locale: str | None

    def metric_names(self) -> list[str]:
        """The metrics this source will give, as far as the config tells."""
        metrics = getattr(self, "metrics", None)
        if isinstance(metrics, Mapping):
            return list(metrics)
        if isinstance(metrics, list | tuple) and metrics:
            return [str(m) for m in metrics]
        return list(self.default_metrics)

    def kpi_ids(self) -> list[str]:
        """The KPI ids this source gives: `name.metric` for each of `metric_names`."""
        return [f"{self.name}.{m}" for m in self.metric_names()]

    def host(self) -> str | None:
        """The host this source talks to, for display; None for non-HTTP sources."""
        return None

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        """The current value of each metric: {metric (source-local name): number}.

        Numbers may be int, float or anything `float()` takes; NaN, infinities and
        non-numbers become that metric's error and are not stored. Raise a KpiError
        (SourceError, HttpError, ExtractError, with `transient` set) when the whole source
        fails, or MetricErrors to give the metrics that worked and the errors of the others;
        any other exception is recorded as a bug in the source. The run gives each source
        `timeout * (retries + 1) + 1` seconds in all, then cancels it.
        """
        raise NotImplementedError

    def prepared(self, ctx: SourceContext) -> contextlib.AbstractAsyncContextManager[None]:
        """What the source needs before its clock starts, held while it collects: the run
        waits for it outside the source's time budget (a page slot in the run's browser for
        `render: true`). The base needs nothing."""
        return contextlib.nullcontext()

    @property
    def can_backfill(self) -> bool:
        """True when this source's type implements `backfill`."""
        return type(self).backfill is not PlainSource.backfill

    def backfill(self, ctx: SourceContext, since: date) -> AsyncIterator[Observation]:
        """Past values, one Observation per metric and day from `since` (a date in
        `ctx.tz`) up to today, in any order; an async generator (`async def ... yield`).

        The store keeps at most one value per KPI and local day and never overwrites a value
        collected live, so yielding a day twice is harmless. Raise a KpiError as `collect`
        does; the base raises NotImplementedError (see `can_backfill`).
        """
        raise NotImplementedError(f"source type {self.type!r} cannot give past values")


#: the model, served from `sources.model` on first use (pydantic is imported there)
__getattr__ = lazy_exports("kpi_collector.sources", {"Source": "model"})
