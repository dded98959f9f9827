"""How long the store's names may be, readable without importing SQLAlchemy (the run engine
checks each KPI id against it before the store would refuse the run's whole transaction)."""

from __future__ import annotations

#: characters of a KPI id or a source name that the store keeps (observations.kpi and
#: .source, run_errors.kpi and .source: VARCHAR(200) on PostgreSQL and MariaDB)
ID_MAX = 200


def too_long(kpi: str) -> str:
    """Why KPI id `kpi` (longer than ID_MAX) cannot be stored: one line, the id cut short."""
    return f"KPI id {cut(kpi, 60)!r} has {len(kpi)} characters; the store keeps at most {ID_MAX} characters"


def cut(text: str, limit: int = ID_MAX) -> str:
    """`text` itself when it has at most `limit` characters, else its start and "…" in
    `limit` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
