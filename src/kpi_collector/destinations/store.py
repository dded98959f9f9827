"""`Store`: the history store as a destination of the Python API (`Store("sqlite:///kpi.db")`).

The pipeline writes runs and observations into it itself; this class only names the URL.
"""

from __future__ import annotations

from typing import Any, ClassVar

from kpi_collector.destinations.base import Delivery, Destination
from kpi_collector.secrets import DatabaseUrl
from kpi_collector.store import HistoryStore


class Store(Destination):
    type: ClassVar[str] = "store"

    url: DatabaseUrl

    def __init__(self, url: Any = None, /, **data: Any) -> None:
        if url is not None:
            data["url"] = url
        super().__init__(**data)

    def open(self) -> HistoryStore:
        return HistoryStore(self.url.get())

    async def deliver(self, delivery: Delivery) -> None:
        """Nothing to do: the pipeline stores every run before delivering."""
