"""What the message destinations' `send_text` (alerts) share: one short message sent now,
outside a delivery, with an HTTP pool of its own and the delivery engine's retry policy.

`kpi_collector.alerts.engine` calls `send_text` after the run's deliveries, once per message; a
failure it sees is retried on the next run. Within the call, a transient failure (connection,
5xx, 429) is retried like a delivery: up to the destination's `retries`, with backoff and
jitter, waiting at least a `Retry-After` (a longer one than `MAX_RETRY_AFTER` fails now).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from kpi_collector.destinations.base import PooledHttp

if TYPE_CHECKING:
    from kpi_collector.collect.http import HttpClient
    from kpi_collector.destinations.base import Destination


class Outbox(PooledHttp):
    """What the posting helpers need from a `Delivery` (`http()`), for a message sent outside
    one: sessions on a pool that lives as long as the message."""

    def __init__(self, client: HttpClient) -> None:
        self.http_client = client


async def send_now(destination: Destination, attempt: Callable[[Outbox], Awaitable[None]]) -> None:
    """Run `attempt` until it succeeds, fails for good or runs out of `destination.retries`;
    the last DeliveryError propagates (already redacted by the destination's mapping)."""
    from kpi_collector.collect.http import HttpClient
    from kpi_collector.collect.retry import retrying

    async with HttpClient() as client:
        outbox = Outbox(client)
        await retrying(lambda: attempt(outbox), retries=destination.retries)
