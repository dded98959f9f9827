"""The history store: every run, every observation and every delivery, in one SQL database."""

from kpi_collector.store.history import HistoryStore, RunRecord, resolve_url

__all__ = ["HistoryStore", "RunRecord", "resolve_url"]
