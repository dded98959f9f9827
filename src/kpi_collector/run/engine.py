"""The fan-in engine: every source concurrently on asyncio, within the global concurrency
limit and its own timeout; one failing source never stops the others.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple
from zoneinfo import ZoneInfo

from kpi_collector.collect.browser import Browser
from kpi_collector.collect.http import HttpClient, printable
from kpi_collector.collect.numbers import exact_float
from kpi_collector.errors import KpiError, MetricErrors, missing_package
from kpi_collector.secrets import redact
from kpi_collector.sources.base import SourceContext
from kpi_collector.store.limits import id_problem

if TYPE_CHECKING:
    from kpi_collector.config.models import Defaults
    from kpi_collector.sources.base import Source

log = logging.getLogger("kpi_collector.run")


class SourceFailure(NamedTuple):
    """One failure of one source: the `metric` (source-local name) that failed, or None when
    the whole source failed; the one-line `message`, secrets redacted; `transient`: a retry
    may succeed (timeout, connection error, 5xx, 429)."""

    metric: str | None
    message: str
    transient: bool


@dataclass(slots=True)  # one per source: 50,000 of them without a __dict__ each
class SourceOutcome:
    """What one source gave: finite values by metric, its failures, and how long it took
    (`seconds`, wall clock, login and retries included)."""

    source: str
    values: dict[str, float] = field(default_factory=dict)
    errors: list[SourceFailure] = field(default_factory=list)
    seconds: float = 0.0
    #: the day the values describe when the source said so (`SourceContext.describes`, a
    #: `complete_days` source whose service has not finished yesterday); None: yesterday
    day: date | None = None

    @property
    def ok(self) -> bool:
        """True when nothing failed."""
        return not self.errors


async def collect_all(
    sources: Sequence[Source],
    *,
    defaults: Defaults,
    tz: ZoneInfo,
    base_dir: Path,
    now: datetime,
    on_done: Callable[[SourceOutcome], None] | None = None,
    http: HttpClient | None = None,
) -> list[SourceOutcome]:
    """Collect every source concurrently (at most `defaults.concurrency` at once) and return
    their outcomes in the order of `sources`; `on_done` is called with each outcome as it
    finishes. `now` (an aware datetime) is the run's moment, given to every source. `http`:
    a connection pool to share (closed by its owner); by default one is opened and closed
    here. Sources with `render: true` share one headless Chromium, launched on the first
    of them and closed here (at most `defaults.render_concurrency` pages at once). Never
    raises for a failing source: failures land in its outcome."""
    # imported before any source's clock starts: a first import inside a source blocks the
    # loop (seconds on a busy machine, while the store opens in a thread) and eats budgets
    import aiohttp  # noqa: F401

    client = http or HttpClient(concurrency=defaults.concurrency, per_host=defaults.per_host)
    outcomes: list[SourceOutcome | None] = [None] * len(sources)
    # `concurrency` workers take the next source from one shared iterator: a task per
    # worker, not per source, so 50,000 sources cost no 50,000 waiting tasks (memory, and
    # a first request that waited until every task had started)
    todo = iter(enumerate(sources))
    browser = Browser(concurrency=defaults.render_concurrency)

    async def worker() -> None:
        for index, source in todo:
            outcome = await collect_one(
                source,
                client,
                defaults=defaults,
                tz=tz,
                base_dir=base_dir,
                now=now,
                browser=browser,
            )
            outcomes[index] = outcome
            if on_done is not None:
                on_done(outcome)

    try:
        await asyncio.gather(*(worker() for _ in range(min(defaults.concurrency, len(sources)))))
    finally:
        await browser.close()
        if http is None:
            await client.close()
    return [outcome for outcome in outcomes if outcome is not None]


async def collect_one(
    source: Source,
    client: HttpClient,
    *,
    defaults: Defaults,
    tz: ZoneInfo,
    base_dir: Path,
    now: datetime,
    browser: Browser | None = None,
) -> SourceOutcome:
    """Collect one source within its time budget (its timeout in seconds per attempt, times
    the attempts, plus a second); every failure becomes a SourceFailure, never an exception.
    `browser`: the run's shared Chromium for `render: true` sources."""
    timeout = source.timeout or defaults.timeout
    retries = defaults.retries if source.retries is None else source.retries
    max_bytes = source.max_bytes or defaults.max_bytes
    ctx = SourceContext(client, timeout, retries, tz, now, base_dir, max_bytes, browser=browser)
    outcome = SourceOutcome(source.name)
    started = time.perf_counter()
    # the whole source (login, every attempt) fits in its timeout per attempt, plus backoff
    budget = timeout * (retries + 1) + 1
    try:
        async with source.prepared(ctx):  # a browser slot: waiting for it is not the source's
            started = time.perf_counter()
            async with asyncio.timeout(budget):
                values = await source.collect(ctx)
        _keep_numbers(outcome, values)
        outcome.day = ctx.day
    except MetricErrors as exc:
        _keep_numbers(outcome, exc.values)
        outcome.day = ctx.day
        outcome.errors += [
            SourceFailure(metric, _message(message), metric in exc.transient_metrics)
            for metric, message in exc.errors.items()
        ]
    except KpiError as exc:
        outcome.errors = [SourceFailure(None, _message(str(exc)), exc.transient)]
    except TimeoutError:
        attempts = f" ({retries + 1} attempts of {timeout:g}s)" if retries else ""
        outcome.errors = [SourceFailure(None, f"timed out after {budget - 1:g}s{attempts}", True)]
    except Exception as exc:  # a bug in a plugin must not take the run down
        message = missing_package(exc) or f"{type(exc).__name__}: {exc}"
        outcome.errors = [SourceFailure(None, _message(message), False)]
    _name_the_missing(outcome, source)
    outcome.seconds = time.perf_counter() - started
    if log.isEnabledFor(logging.DEBUG):
        got = ", ".join(f"{k}={v:g}" for k, v in outcome.values.items()) or "no values"
        failed = f"; {len(outcome.errors)} failed" if outcome.errors else ""
        log.debug("%s (%s): %s%s in %.2f s", source.name, source.type, got, failed, outcome.seconds)
    return outcome


def _name_the_missing(outcome: SourceOutcome, source: Source) -> None:
    """A metric the config names (`metric_names`) that the source gave neither a value nor
    an error for becomes its error: a configured metric is stored or says why, never
    silently absent. Not when the whole source failed (its error says why for all), nor
    when the source gave metrics its config does not name (its names come from what it
    read, a program's JSON or a function's dict, and the config's are no promise)."""
    if any(failure.metric is None for failure in outcome.errors):
        return
    try:
        named = [str(name) for name in source.metric_names()]
    except Exception:  # a plugin's metric_names with a bug: nothing to check against
        return
    failed = {failure.metric for failure in outcome.errors}
    if any(name not in named for name in (*outcome.values, *failed)):
        return
    for name in named:
        if name not in outcome.values and name not in failed:
            message = (
                f"{name}: source type {source.type!r} gave no value and no error for it; "
                "not stored (a bug in the source: report it)"
            )
            outcome.errors.append(SourceFailure(name, _message(message), False))


def _message(text: str) -> str:
    """An error as it is stored and shown: secrets masked, no control characters (a
    server's or a program's bytes may carry NULs and terminal escapes)."""
    return redact(printable(text))


def _keep_numbers(outcome: SourceOutcome, values: Mapping[str, Any]) -> None:
    """Store finite numbers; NaN, infinity, non-numbers and a KPI id the store cannot keep
    (`store.limits.id_problem`: too long, a control character) become that metric's error."""
    for key, raw in values.items():
        name = str(key)
        problem = id_problem(f"{outcome.source}.{name}")
        if problem is not None:
            message = f"{problem}: give the metric another name; not stored"
            # named without its control characters: the failure is shown in tables too
            shown = "".join(char for char in name if unicodedata.category(char) != "Cc")
            outcome.errors.append(SourceFailure(shown, _message(message), False))
            continue
        try:
            value = exact_float(raw) if type(raw) is int else float(raw)
        except (TypeError, ValueError) as exc:
            why = str(exc) if type(raw) is int else f"{raw!r} is not a number"
            outcome.errors.append(SourceFailure(name, f"{name}: {why}", False))
            continue
        if math.isfinite(value):
            outcome.values[name] = value + 0.0  # -0.0 as 0.0, as the store keeps it
        else:
            outcome.errors.append(
                SourceFailure(name, f"{name}: {value} is not a finite number; not stored", False)
            )
