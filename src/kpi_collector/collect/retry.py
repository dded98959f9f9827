"""The one retry policy: transient failures are tried again with exponential backoff and
jitter, waiting at least a `Retry-After`; terminal ones, and waits longer than `max_wait`,
end the attempts at once. Used by the HTTP layer, deliveries and alert messages.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import TypeVar

from kpi_collector.errors import KpiError

log = logging.getLogger("kpi_collector.retry")

T = TypeVar("T")

MAX_RETRY_AFTER = 60.0  # a longer Retry-After fails now, and the message says when to come back
BACKOFF = 0.5  # seconds before the first retry; doubled each time, with jitter


async def pause(seconds: float) -> None:
    """Every deliberate wait (backoff, `Retry-After`, a rate-limit reset) goes through here,
    so one place decides how waiting is done and tests can see what was asked for."""
    await asyncio.sleep(seconds)


class Pacer:
    """At most `per_second` calls a second, evenly spaced: `await pacer.turn()` before each
    call. Turns are granted in order, each `1/per_second` after the one before."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self._next = float("-inf")
        self._lock = asyncio.Lock()

    async def turn(self) -> None:
        async with self._lock:
            now = monotonic()
            start = max(self._next, now)
            if start > now:
                await pause(start - now)
            self._next = start + self.interval


def wait_text(seconds: float) -> str:
    """A wait a server asks for (`Retry-After`), for a message: `45s`, `12 min`, `3.5 h`,
    `9 days`, or `a year or more` (an HTTP date in year 9999, 300 nines: no number of digits
    helps the reader)."""
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds < 365 * 86400:
        return f"{seconds / 86400:.0f} days"
    return "a year or more"


def backoff_delay(attempts: int, backoff: float, retry_after: float | None = None) -> float:
    """Seconds to wait after the `attempts`-th failed attempt."""
    delay = backoff * 2 ** (attempts - 1) * (0.5 + random.random())
    return delay if retry_after is None else max(delay, retry_after)


async def retrying(
    attempt: Callable[[], Awaitable[T]],
    *,
    retries: int,
    backoff: float = BACKOFF,
    max_wait: float = MAX_RETRY_AFTER,
    before: Callable[[int], None] | None = None,
) -> T:
    """Await `attempt()` until it succeeds; a `KpiError` that is transient is retried up to
    `retries` times, any other (or the last) propagates. `before(n)` runs before attempt n."""
    attempts = 0
    while True:
        attempts += 1
        if before is not None:
            before(attempts)
        try:
            return await attempt()
        except KpiError as error:
            retry_after: float | None = getattr(error, "retry_after", None)
            if (
                not error.transient
                or attempts > retries
                or (retry_after is not None and retry_after > max_wait)
            ):
                raise
            delay = backoff_delay(attempts, backoff, retry_after)
            if log.isEnabledFor(logging.INFO):
                from kpi_collector.secrets import redact

                log.info(
                    "retry %d of %d in %.1f s after: %s",
                    attempts,
                    retries,
                    delay,
                    redact(str(error)),
                )
            await pause(delay)
