"""The history store: every run, every observation and every delivery, in one SQL database."""

from kpi_collector.collect.sql import first_line
from kpi_collector.config.plain import resolve_url
from kpi_collector.store.history import HistoryStore, RunError, RunRecord, StoredObservation

__all__ = [
    "HistoryStore",
    "RunError",
    "RunRecord",
    "StoredObservation",
    "first_line",
    "resolve_url",
]
