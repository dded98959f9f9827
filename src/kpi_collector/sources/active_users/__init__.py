"""`type: active_users`: unique active users per day, week and month (DAU, WAU, MAU) and
stickiness, from event files or an events table; the whole daily series for backfill.

The computation lives in :mod:`kpi_collector.sources.active_users.activity`; this module maps the config onto it.
Days are counted in the config's time zone. Every value stored is a complete window, stamped
with the day it ends on (that day's 23:59:59 local): `collect` gives the windows ending on
the last complete day (yesterday; `Source.complete_days`), which the run stores with
yesterday's stamp, once per day, filling in the complete days missed since the last stored
one (`run.complete_days`); `backfill` gives every complete day since the given date, in
one pass over the events. A window ending today would hold the day so far: a 07:00 run's
DAU of 7 hours, compared with whole days.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from kpi_collector.collect.offload import in_daemon_thread
from kpi_collector.secrets import Secret, remember_url_credentials
from kpi_collector.sources._service import day_end
from kpi_collector.sources.active_users import activity
from kpi_collector.sources.base import Observation, Source, SourceContext

Window = Literal["dau", "wau", "mau", "stickiness"]
_DEFAULT_WINDOWS: tuple[Window, ...] = ("dau", "wau", "mau")


class ActiveUsers(Source):
    """```yaml
    - {name: telemetry, type: active_users, events: events/*.parquet, user: user_id, time: ts}
    - name: app
      type: active_users
      url: "${APP_DATABASE_URL}"
      table: events
      user: account_id
      time: created_at
      where: "name = 'pipeline_run'"
      min_events: 5
      windows: [dau, wau, mau, stickiness]
    ```
    """

    type: ClassVar[str] = "active_users"
    default_metrics: ClassVar[tuple[str, ...]] = _DEFAULT_WINDOWS
    complete_days: ClassVar[bool] = True

    events: str | list[str] | None = Field(
        default=None,
        description="event files: a path or glob (relative to the config file), an fsspec "
        "URL, or a list of them; CSV, Parquet or JSON lines",
    )
    format: Literal["csv", "parquet", "json"] | None = Field(
        default=None, description="the files' format when their names do not tell"
    )
    url: Secret | None = Field(
        default=None, description="a SQLAlchemy database URL holding the events table"
    )
    table: str | None = Field(default=None, description="the events table (or schema.table)")
    user: str = Field(description="the column with the user (or account) id")
    time: str = Field(description="the column with the event time (naive times are UTC)")
    where: str | None = Field(
        default=None, description="a SQL condition choosing the events that count"
    )
    min_events: int = Field(
        default=1, ge=1, description="count a user with at least this many events in the window"
    )
    windows: list[Window] = Field(
        default_factory=lambda: list(_DEFAULT_WINDOWS),
        description="the metrics: dau, wau, mau (1, 7, 30 days ending that day), stickiness",
    )

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: list[Window]) -> list[Window]:
        activity.check_metrics(value)
        return value

    @field_validator("user", "time", "table")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must not be empty")
        return value

    @model_validator(mode="after")
    def _one_place(self) -> ActiveUsers:
        if self.events is not None and (self.url is not None or self.table is not None):
            raise ValueError("give either `events` (files) or `url` and `table`, not both")
        if self.events is None:
            if self.url is None or self.table is None:
                raise ValueError("give `events` (files), or `url` and `table` (a SQL table)")
        else:
            if not self.events:
                raise ValueError("`events` is empty")
            # An unknown suffix is a config error now, not a failure at every run.
            _ = activity.EventFiles(self.events, format=self.format).file_format
            for path in [self.events] if isinstance(self.events, str) else self.events:
                if "://" in path:  # a password, a presigned URL's signature: never shown
                    remember_url_credentials(path)
        if self.format is not None and self.events is None:
            raise ValueError("`format` is for `events` files")
        return self

    def metric_names(self) -> list[str]:
        return list(self.windows)

    def host(self) -> str | None:
        return None

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        """The windows ending yesterday in the config's time zone: the last complete day."""
        return await in_daemon_thread(lambda: self._current(ctx))

    async def backfill(self, ctx: SourceContext, since: date) -> AsyncIterator[Observation]:
        """Every complete day from `since` to yesterday, from the first day with activity."""
        for observation in await in_daemon_thread(lambda: self._history(ctx, since)):
            yield observation

    def _current(self, ctx: SourceContext) -> dict[str, float]:
        with self._events(ctx) as events:
            values = activity.current(
                events, today=ctx.today - timedelta(days=1), **self._options(ctx)
            )
        return {metric: float(value) for metric, value in values.items()}

    def _history(self, ctx: SourceContext, since: date) -> list[Observation]:
        until = ctx.today - timedelta(days=1)
        if since > until:
            return []
        reached: list[int] = []  # the days with an event, from a month before since
        options = self._options(ctx)
        if activity.reach(self.windows) < activity.REACH_DAYS:
            options["windows"] = [*self.windows, "mau"]  # reached goes a month back
        with self._events(ctx) as events:
            series = [
                activity.DailyActivity(
                    day.day, {m: day.values[m] for m in self.windows}, day.active
                )
                for day in activity.daily_series(
                    events, start=since, end=until, reached=reached, **options
                )
            ]
            # Leading days where every count is zero (before anyone was active, or before
            # anyone reached min_events) are not history worth storing; zeros after activity
            # are, wherever the backfill starts. Only a backfill that starts on a zero day
            # reads the events before it.
            started = False
            if series and not any(series[0].values.values()):
                before = activity.daily_series(
                    events, end=since - timedelta(days=1), **self._options(ctx)
                )
                started = any(any(day.values.values()) for day in before)
        # Trailing days whose last month holds no event are days the events do not reach
        # (an export that stopped): no zeros are stored for them, as `collect` stores none.
        # Zeros of days the events reach are real, and stored, as `collect` stores them: a
        # quiet day (of DAU alone, too, or of stickiness), or users short of min_events.
        last = max(reached, default=None)
        while series and (
            last is None or _day_number(series[-1].day) >= last + activity.REACH_DAYS
        ):
            series.pop()
        observations = []
        for day in series:
            started = started or any(day.values.values())
            if started:
                stamp = day_end(day.day, ctx.tz)
                observations += [
                    Observation(metric, float(value), stamp) for metric, value in day.values.items()
                ]
        return observations

    def _options(self, ctx: SourceContext) -> dict[str, Any]:
        return {
            "user": self.user,
            "time": self.time,
            "where": self.where,
            "min_events": self.min_events,
            "timezone": ctx.tz.key,
            "windows": self.windows,
        }

    @contextmanager
    def _events(self, ctx: SourceContext) -> Iterator[activity.EventSource]:
        if self.events is not None:
            paths = [self.events] if isinstance(self.events, str) else self.events
            yield activity.EventFiles(
                [_resolve(path, ctx.base_dir) for path in paths],
                format=self.format,
                timeout=ctx.timeout,
            )
            return
        from kpi_collector.collect.sql import open_readonly
        from kpi_collector.config.plain import resolve_database_url

        assert self.url is not None and self.table is not None
        # a relative SQLite path is beside the config, as the store's and a `sql` source's
        engine = open_readonly(resolve_database_url(self.url.get(), ctx.base_dir), ctx.timeout)
        try:
            yield activity.EventTable(engine, self.table, timeout=ctx.timeout)
        finally:
            engine.dispose()


def _day_number(day: date) -> int:
    """Days since 1970-01-01, as `activity.daily_series(reached=...)` gives them."""
    return (day - date(1970, 1, 1)).days


def _resolve(path: str, base_dir: Path) -> str:
    """Local paths are relative to the config file's folder; URLs are left as they are."""
    if "://" in path:
        return path
    expanded = Path(path).expanduser()
    return str(expanded if expanded.is_absolute() else base_dir / expanded)
