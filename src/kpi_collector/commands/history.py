"""The stored history as a stable document (what `kpi history --format json` prints).

    {"period": "day", "timezone": "Europe/Berlin", "since": "2026-11-01" | null,
     "kpis": {"github.stars": [{"period": "2026-11-28", "value": 1647.0}, ...], ...}}

Periods are labelled by their first day (weeks start on Monday); values follow each KPI's
`agg` (default `last`). KPIs come in display order: the north star, those in `kpis:`, the
sources' in config order, then the rest by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from kpi_collector.config import Config
from kpi_collector.store import HistoryStore


def history_document(
    config: Config,
    kpis: Sequence[str] | None = None,
    *,
    period: str = "day",
    since: date | None = None,
) -> dict[str, Any]:
    store = HistoryStore(config.store_url)
    try:
        agg = {k: spec.agg for k, spec in config.kpis.items()}
        series = store.series(kpis, period=period, since=since, tz=config.tz, agg=agg)
    finally:
        store.close()
    ordered = config.order(series)
    return {
        "period": period,
        "timezone": config.timezone,
        "since": since.isoformat() if since else None,
        "kpis": {k: [{"period": d.isoformat(), "value": v} for d, v in series[k]] for k in ordered},
    }
