"""The rows table-like destinations write, and the upsert by period they share.

wide: one row per period — `period`, `date`, then one column per KPI;
long: one row per KPI and period — `period`, `date`, `kpi`, `title`, `value`.
"""

from __future__ import annotations

import re
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


#: what a spreadsheet runs as a formula at the start of a cell (OWASP, "CSV Injection"): `=`,
#: `+`, `-`, `@`, a tab, a carriage return, and their full-width forms (Excel in CJK locales)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")
#: a plain number as `number_text` or a spreadsheet saving the file writes it ("-5",
#: "-1.5e-07", "-0,25", "-$1,200.00", "-12 %"): it may start with a sign and stays a number
#: (no operator, parenthesis, letter or quote after the sign: never a formula)
_PLAIN_NUMBER = re.compile(
    r"[-+]\s?[$€£¥]?\s?(?:\d[\d.,\s\u00a0\u202f]*|[.,]\d+)(?:[eE][-+]?\d+)?\s?[%$€£¥]?"
)


def spreadsheet_text(text: str) -> str:
    """`text` as a CSV cell a spreadsheet shows and never runs: a text that starts like a
    formula (`FORMULA_STARTS`, after any `'`) gets a leading `'`; numbers ("-5") stay as they
    are. `cell_text` reads it back."""
    if text.lstrip("'").startswith(FORMULA_STARTS) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def cell_text(cell: str) -> str:
    """The text `spreadsheet_text` wrote into a cell (one leading `'` it added taken off)."""
    if cell.startswith("'") and cell.lstrip("'").startswith(FORMULA_STARTS):
        return cell[1:]
    return cell


def parse_number(text: Any) -> Any:
    """The inverse of `number_text` for cells read back from a text file."""
    if not isinstance(text, str) or text == "":
        return None if text == "" else text
    try:
        return float(text)
    except ValueError:
        return text
