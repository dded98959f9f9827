"""The history store: every run, every observation and every delivery, in one SQL database."""

from kpi_collector.store.history import HistoryStore, RunRecord, first_line, resolve_url

__all__ = ["HistoryStore", "RunRecord", "first_line", "resolve_url"]
