"""`type: sql`: one scalar query per metric against any SQLAlchemy URL, read-only, with a timeout."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar

from pydantic import field_validator

from kpi_collector.collect.extract import Metric, coerce_metric, finish
from kpi_collector.collect.offload import in_daemon_thread
from kpi_collector.collect.sql import first_line, open_readonly, read_only_session
from kpi_collector.errors import ExtractError, SourceError
from kpi_collector.secrets import DatabaseUrl
from kpi_collector.sources.base import Source, SourceContext


class SQL(Source):
    type: ClassVar[str] = "sql"

    url: DatabaseUrl
    metrics: dict[str, Metric]

    @field_validator("metrics", mode="before")
    @classmethod
    def _short_metrics(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: coerce_metric(v, "query") for k, v in value.items()}
        return value

    @field_validator("metrics")
    @classmethod
    def _queries(cls, value: dict[str, Metric]) -> dict[str, Metric]:
        if not value:
            raise ValueError("give at least one metric")
        for name, metric in value.items():
            if not metric.query:
                raise ValueError(f"metric {name!r} needs a query")
        return value

    async def collect(self, ctx: SourceContext) -> Mapping[str, float]:
        return await in_daemon_thread(lambda: self._run_queries(ctx.timeout))

    def _run_queries(self, timeout: float) -> dict[str, float]:
        from kpi_collector.errors import MetricErrors

        values: dict[str, float] = {}
        errors: dict[str, str] = {}
        engine = open_readonly(self.url.get(), timeout)
        try:
            with engine.connect() as conn:
                read_only_session(conn, timeout)
                for name, metric in self.metrics.items():
                    try:
                        values[name] = _scalar(conn, name, metric, self.locale)
                    except ExtractError as exc:
                        errors[name] = str(exc)
        except Exception as exc:
            if isinstance(exc, SourceError):
                raise
            raise SourceError(f"database error: {first_line(exc)}", transient=True) from None
        finally:
            engine.dispose()
        if errors:
            raise MetricErrors(values, errors)
        return values


# how SQLite, PostgreSQL, MariaDB and MySQL say a statement ran out of time
_TIMEOUT_WORDS = (
    "interrupted",
    "timeout",
    "timed out",
    "canceling statement",
    "max_statement_time",
)


def _scalar(conn: Any, name: str, metric: Metric, locale: str | None = None) -> float:
    from sqlalchemy import exc as sa_exc
    from sqlalchemy import text

    assert metric.query is not None
    try:
        # a savepoint, so one failing query does not abort the others' transaction
        with conn.begin_nested():
            row = conn.execute(text(metric.query)).first()
    except sa_exc.DBAPIError as exc:
        message = first_line(exc)
        if any(word in message.lower() for word in _TIMEOUT_WORDS):
            raise ExtractError(
                f"{name}: the query took longer than the timeout", transient=True
            ) from None
        raise ExtractError(f"{name}: the query failed: {message}") from None
    if row is None:
        if metric.allow_zero:
            return 0.0
        raise ExtractError(f"{name}: the query returned no rows")
    if len(row) != 1:
        raise ExtractError(f"{name}: the query must return one column, it returned {len(row)}")
    raw = row[0]
    if isinstance(raw, Decimal):  # NUMERIC: a whole one is an integer, exact or refused
        raw = int(raw) if raw.is_finite() and raw == raw.to_integral_value() else float(raw)
    elif raw is not None and not isinstance(raw, int | float | str | bool):
        raw = float(raw)
    return finish(name, raw, metric, locale)
