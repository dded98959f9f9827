"""What the message destinations' `send_text` (alerts) share: one short message sent now,
outside a delivery, with an HTTP pool of its own and the delivery engine's retry policy.

`kpi_collector.alerts` calls `send_text` after the run's deliveries, once per message; a
failure it sees is retried on the next run. Within the call, a transient failure (connection,
5xx, 429) is retried like a delivery: up to the destination's `retries`, with backoff and
jitter, waiting at least a `Retry-After` (a longer one than `MAX_RETRY_AFTER` fails now).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from kpi_collector.errors import DeliveryError

if TYPE_CHECKING:
    from kpi_collector.collect.http import Auth, HttpClient, HttpSession
    from kpi_collector.destinations.base import Destination


class Outbox:
    """What the posting helpers need from a `Delivery` (`http()`), for a message sent outside
    one: sessions on a pool that lives as long as the message."""

    def __init__(self, client: HttpClient) -> None:
        self.client = client

    def http(
        self,
        *,
        timeout: float = 30.0,
        auth: Auth | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpSession:
        # retries=0: the statuses come back to the destination's own error mapping
        return self.client.session(timeout=timeout, retries=0, auth=auth, headers=headers)


async def send_now(destination: Destination, attempt: Callable[[Outbox], Awaitable[None]]) -> None:
    """Run `attempt` until it succeeds, fails for good or runs out of `destination.retries`;
    the last DeliveryError propagates (already redacted by the destination's mapping)."""
    from kpi_collector import delivery as engine
    from kpi_collector.collect.http import HttpClient

    async with HttpClient() as client:
        outbox = Outbox(client)
        attempts = 0
        while True:
            attempts += 1
            try:
                await attempt(outbox)
                return
            except DeliveryError as error:
                retry_after: float | None = getattr(error, "retry_after", None)
                if (
                    not error.transient
                    or attempts > destination.retries
                    or (retry_after is not None and retry_after > engine.MAX_RETRY_AFTER)
                ):
                    raise
            delay = engine.BACKOFF * 2 ** (attempts - 1) * (0.5 + random.random())
            if retry_after is not None:
                delay = max(delay, retry_after)
            await asyncio.sleep(delay)
