"""A third-party source and destination, registered through entry points like the built-ins."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from kpi_collector.destinations.base import Delivery, Destination
from kpi_collector.sources.base import Source, SourceContext

DELIVERED: list[Delivery] = []


class Dice(Source):
    type: ClassVar[str] = "dice"
    sides: int = 6

    def metric_names(self) -> list[str]:
        return ["sides", "faces_sum"]

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        return {"sides": self.sides, "faces_sum": self.sides * (self.sides + 1) / 2}


class Memory(Destination):
    type: ClassVar[str] = "memory"

    async def deliver(self, delivery: Delivery) -> None:
        DELIVERED.append(delivery)
