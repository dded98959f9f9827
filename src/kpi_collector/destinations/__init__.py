"""Destinations: where collected values go (the history store, Notion, messages, files...)."""

from __future__ import annotations

from kpi_collector.destinations.base import Delivery, Destination
from kpi_collector.destinations.store import Store
from kpi_collector.lazy import lazy_exports

__all__ = [
    "CSV",
    "JSONL",
    "SQL",
    "Delivery",
    "Destination",
    "Discord",
    "Email",
    "GoogleSheets",
    "Notion",
    "Parquet",
    "Pushgateway",
    "Segment",
    "Slack",
    "Store",
    "Webhook",
]

# heavier destinations load when first named: `from kpi_collector.destinations import Notion`
_LAZY: dict[str, str] = {
    "CSV": "files",
    "JSONL": "files",
    "Parquet": "files",
    "SQL": "sql",
    "Notion": "notion",
    "Discord": "discord",
    "Slack": "slack",
    "Email": "email",
    "Webhook": "webhook",
    "Segment": "segment",
    "Pushgateway": "pushgateway",
    "GoogleSheets": "google_sheets",
}


__getattr__ = lazy_exports("kpi_collector.destinations", _LAZY)
