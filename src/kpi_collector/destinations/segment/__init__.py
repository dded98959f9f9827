"""`type: segment`: one Segment `track` call per delivery, the KPI values as its properties;
over Segment's 32 KB per call, several `track` events (`part`/`parts` properties) through the
batch endpoint, at most 500 KB per batch.

    - {type: segment, write_key: "${SEGMENT_WRITE_KEY}", event: KPIs Collected}

The call's `messageId` is derived from the destination and period (and, for a split delivery,
the KPIs each event holds), so Segment drops the repeat if a crash between sending and
recording makes the next run send it again.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import Field

from kpi_collector._version import __version__
from kpi_collector.collect.http import Auth
from kpi_collector.destinations._http import check_success, error_detail, send, status_error
from kpi_collector.destinations.base import (
    Delivery,
    MessageDestination,
    delivery_error,
    plan_fingerprint,
    refuse_name_collision,
)
from kpi_collector.secrets import Secret

_NAMESPACE = uuid.UUID("6f1d3c3e-8d0b-4b8e-9a51-6b2f7f0e8c11")
# Segment's HTTP Tracking API limits: "32KB per call" and "500KB per batch request"
# (segment.com/docs/connections/sources/catalog/libraries/server/http-api, "Max request size")
CALL_LIMIT = 32 * 1024
BATCH_LIMIT = 500 * 1024


def _size(body: dict[str, Any]) -> int:
    """The JSON body's size in bytes, at most what goes on the wire (ASCII escapes and spaced
    separators: the largest spelling of the same JSON)."""
    return len(json.dumps(body).encode())


class Segment(MessageDestination):
    type: ClassVar[str] = "segment"

    write_key: Secret
    api_url: str = "https://api.segment.io"
    event: str = "KPIs Collected"
    user_id: str | None = None
    anonymous_id: str = "kpi-collector"
    compare: str | None = Field(default=None, pattern=r"^\d+d$")
    name_kind: ClassVar[str] = "property"
    name_fix: ClassVar[str] = "give the KPI another id"

    def kpi_names(self, kpis: Sequence[str], titles: Mapping[str, str]) -> dict[str, str]:
        """{kpi: property}: each KPI is a `track` property named by its id."""
        return {kpi: kpi for kpi in kpis}

    def reserved_names(self) -> frozenset[str]:
        """The `period` property, and `part`/`parts` of a split delivery."""
        return frozenset({"period", "part", "parts"})

    def track(self, delivery: Delivery) -> dict[str, Any]:
        properties: dict[str, Any] = {kpi: delivery.values[kpi] for kpi in delivery.ordered}
        properties["period"] = delivery.row_period
        identity = {"userId": self.user_id} if self.user_id else {"anonymousId": self.anonymous_id}
        return {
            **identity,
            "type": "track",
            "event": self.event,
            "properties": properties,
            "timestamp": delivery.now.isoformat(),
            "messageId": str(uuid.uuid5(_NAMESPACE, delivery.delivery_id)),
            "context": {"library": {"name": "kpi-collector", "version": __version__}},
        }

    def _auth(self) -> Auth:
        # Segment's HTTP API: the write key as the basic-auth user, no password
        return Auth(basic=(self.write_key, Secret("")))

    def tracks(self, delivery: Delivery) -> list[dict[str, Any]]:
        """The delivery's `track` events: one when it fits Segment's 32 KB per call, else the
        KPIs split over as few events as fit, each with the `period` and `part`/`parts`
        (1-based) properties and its own stable `messageId`, named by the delivery and the
        KPIs the event holds: Segment drops a repeat of an event, never another split's
        event that holds other KPIs.
        Raises DeliveryError(refused) when one KPI alone cannot fit."""
        whole = self.track(delivery)
        if _size(whole) <= CALL_LIMIT:
            return [whole]
        chunks: list[dict[str, Any]] = []
        current: dict[str, Any] = {}
        for kpi in delivery.ordered:
            trial = {**current, kpi: delivery.values[kpi]}
            # room for period/part/parts, always included
            probe = {
                **whole,
                "properties": {**trial, "period": delivery.row_period, "part": 9999, "parts": 9999},
            }
            if current and _size(probe) > CALL_LIMIT:
                chunks.append(current)
                trial = {kpi: delivery.values[kpi]}
            current = trial
        chunks.append(current)
        events = []
        for index, chunk in enumerate(chunks, start=1):
            properties = {
                **chunk,
                "period": delivery.row_period,
                "part": index,
                "parts": len(chunks),
            }
            # named by the KPIs it holds, not its place: a later run's split of the period
            # (other KPIs, other boundaries) must not reuse the id of an event Segment took
            # holding other KPIs, or Segment drops it as a repeat and its KPIs never arrive
            held = plan_fingerprint(sorted(chunk))
            event = {
                **whole,
                "properties": properties,
                "messageId": str(uuid.uuid5(_NAMESPACE, f"{delivery.delivery_id}#{held}")),
            }
            if _size(event) > CALL_LIMIT:
                raise delivery_error(
                    f"Segment: one track call is {_size(event)} bytes, over Segment's 32 KB "
                    "per call even with one KPI: shorten the event name or KPI ids",
                    transient=False,
                    refused=True,
                )
            events.append(event)
        return events

    async def deliver(self, delivery: Delivery) -> None:
        refuse_name_collision(self, delivery)  # the config's own KPIs are checked at load
        events = self.tracks(delivery)
        if len(events) == 1:
            await self._post(delivery, "/v1/track", events[0])
            return
        batches: list[list[dict[str, Any]]] = [[]]
        for event in events:  # 500 KB per batch, with room for the envelope
            if batches[-1] and _size({"batch": [*batches[-1], event]}) > BATCH_LIMIT - 1024:
                batches.append([])
            batches[-1].append(event)
        # after the batches an earlier attempt (or the failed delivery retried) sent
        for index, batch in delivery.unsent(batches):
            await self._post(delivery, "/v1/batch", {"batch": batch})
            await delivery.checkpoint(index + 1)

    async def _post(self, delivery: Delivery, path: str, body: dict[str, Any]) -> None:
        response = await send(
            delivery,
            "POST",
            f"{self.api_url.rstrip('/')}{path}",
            service="Segment",
            timeout=self.timeout,
            json_body=body,
            auth=self._auth(),
        )
        if response.status == 200:
            # Segment answers `{"success": true}`; a proxy's page or `{"success": false}`
            # tracked nothing: the delivery stays pending
            check_success(
                response,
                service="Segment",
                keys=("message", "error"),
                fix="check api_url (and that no proxy stands between)",
            )
            return
        raise status_error(
            response,
            service="Segment",
            detail=error_detail(response, "message", "error"),
            hint="check write_key" if response.status in (401, 403) else None,
        )
