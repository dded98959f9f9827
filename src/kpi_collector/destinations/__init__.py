"""Destinations: where collected values go (the history store, Notion, messages, files...)."""

from __future__ import annotations

from typing import Any

from kpi_collector.destinations.base import Delivery, Destination
from kpi_collector.destinations.store import Store

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


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"kpi_collector.destinations.{_LAZY[name]}"), name)
    raise AttributeError(name)
