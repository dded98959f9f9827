"""`type: segment`: one Segment `track` call per delivery, the KPI values as its properties.

    - {type: segment, write_key: "${SEGMENT_WRITE_KEY}", event: KPIs Collected}

The call's `messageId` is derived from the destination and period, so Segment drops the
repeat if a crash between sending and recording makes the next run send it again.
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar

from pydantic import Field

from kpi_collector._version import __version__
from kpi_collector.collect.http import Auth
from kpi_collector.destinations._http import error_detail, send, status_error
from kpi_collector.destinations.base import Delivery, MessageDestination
from kpi_collector.secrets import Secret

_NAMESPACE = uuid.UUID("6f1d3c3e-8d0b-4b8e-9a51-6b2f7f0e8c11")


class Segment(MessageDestination):
    type: ClassVar[str] = "segment"

    write_key: Secret
    api_url: str = "https://api.segment.io"
    event: str = "KPIs Collected"
    user_id: str | None = None
    anonymous_id: str = "kpi-collector"
    compare: str | None = Field(default=None, pattern=r"^\d+d$")

    def track(self, delivery: Delivery) -> dict[str, Any]:
        properties: dict[str, Any] = {kpi: delivery.values[kpi] for kpi in delivery.ordered}
        properties["period"] = delivery.period
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

    async def deliver(self, delivery: Delivery) -> None:
        url = f"{self.api_url.rstrip('/')}/v1/track"
        response = await send(
            delivery,
            "POST",
            url,
            service="Segment",
            timeout=self.timeout,
            json_body=self.track(delivery),
            auth=self._auth(),
        )
        if response.status == 200:
            return
        raise status_error(
            response,
            service="Segment",
            detail=error_detail(response, "message", "error"),
            hint="check write_key" if response.status in (401, 403) else None,
        )
