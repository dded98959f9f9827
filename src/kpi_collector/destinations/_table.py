"""The rows table-like destinations write, and the upsert by period they share.

wide: one row per period — `period`, `date`, then one column per KPI;
long: one row per KPI and period — `period`, `date`, `kpi`, `title`, `value`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from kpi_collector.destinations.base import Delivery

WIDE_KEY = ("period",)
LONG_KEY = ("period", "kpi")
LONG_COLUMNS = ["period", "date", "kpi", "title", "value"]


def rows_of(delivery: Delivery, layout: str) -> list[dict[str, Any]]:
    date = delivery.period_start.isoformat()
    if layout == "wide":
        row: dict[str, Any] = {"period": delivery.row_period, "date": date}
        row.update({kpi: delivery.values[kpi] for kpi in delivery.ordered})
        return [row]
    return [
        {
            "period": delivery.row_period,
            "date": date,
            "kpi": kpi,
            "title": delivery.title(kpi),
            "value": delivery.values[kpi],
        }
        for kpi in delivery.ordered
    ]


def key_of(layout: str) -> tuple[str, ...]:
    return WIDE_KEY if layout == "wide" else LONG_KEY


def upsert(
    existing: Iterable[dict[str, Any]], new: Iterable[dict[str, Any]], key: Sequence[str]
) -> list[dict[str, Any]]:
    """Rows with `new` merged in by `key`: a row of the same key is updated (KPIs missing from
    the new row keep their values), others are appended; the order of rows is kept."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in existing:
        merged[tuple(str(row.get(k)) for k in key)] = dict(row)
    for row in new:
        k = tuple(str(row.get(c)) for c in key)
        merged[k] = {**merged.get(k, {}), **row}
    return list(merged.values())


def columns_of(rows: Iterable[dict[str, Any]], first: Sequence[str]) -> list[str]:
    """Every column of `rows`: `first`, then the others in order of appearance."""
    columns = list(first)
    for row in rows:
        for column in row:
            if column not in columns:
                columns.append(column)
    return columns


def number_text(value: Any) -> str:
    """1647.0 → "1647", 0.5 → "0.5", None → "" (for text formats)."""
    if value is None or value == "":
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(value)


def parse_number(text: Any) -> Any:
    """The inverse of `number_text` for cells read back from a text file."""
    if not isinstance(text, str) or text == "":
        return None if text == "" else text
    try:
        return float(text)
    except ValueError:
        return text
