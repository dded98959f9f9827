"""The stored history as a stable document (what `kpi history --format json` prints).

    {"period": "day", "timezone": "Europe/Berlin", "since": "2026-11-01" | null,
     "kpis": {"github.stars": [{"period": "2026-11-28", "value": 1647.0}, ...], ...}}

Periods are labelled by their first day (weeks start on Monday); values follow each KPI's
`agg` (default `last`), null for an aggregate past the largest double. KPIs come in display order: the north star, those in `kpis:`, the
sources' in config order, then the rest by id.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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
    from kpi_collector.schedule.health import missing_store

    series: dict[str, Any] = {}
    if missing_store(config) is None:  # no SQLite store yet: no history, and none created
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
        "kpis": {
            k: [{"period": d.isoformat(), "value": _finite(v)} for d, v in series[k]]
            for k in ordered
        },
    }


def _finite(value: float) -> float | None:
    """`value`, or None where an aggregate passed the largest double (a `sum` of two 1e308):
    JSON has no infinity, and `Infinity` would make the whole document unreadable."""
    return value if math.isfinite(value) else None


def history_lines(
    rows: Sequence[tuple[str, Mapping[str, str]]],
    periods: Sequence[str],
    *,
    width: int,
    corner: str = "",
) -> list[str]:
    """The history as text that fits `width` columns without cutting a value or a label.

    KPIs are rows and periods are columns; when the periods do not fit side by side they
    are split into blocks of consecutive periods, one under the other, each repeating the
    KPI names. A KPI title wider than a third of the width wraps onto more lines (at spaces
    where it can); a cell is never cut. `rows` are (title, {period: formatted value});
    widths are terminal cells (a CJK character or an emoji takes two).
    """
    gap = 2
    widths = {
        p: max([_cells(p), *(_cells(cells.get(p, "")) for _, cells in rows)]) for p in periods
    }
    widest_cell = max(widths.values(), default=0)
    longest_title = max([_cells(corner), *(_cells(title) for title, _ in rows)])
    # the name column gives way to at least one period column
    name_width = max(2, min(longest_title, max(width // 3, width - gap - widest_cell)))
    room = max(widest_cell, width - name_width - gap)
    blocks: list[list[str]] = []
    for period in periods:
        used = sum(widths[p] + gap for p in blocks[-1]) if blocks else 0
        if not blocks or used + widths[period] > room:
            blocks.append([])
        blocks[-1].append(period)
    lines: list[str] = []
    for number, block in enumerate(blocks):
        if number:
            lines.append("")
        head = _left(corner, name_width) + "".join(_right(p, widths[p] + gap) for p in block)
        lines.append(head.rstrip())
        for title, cells in rows:
            names = _wrap(title, name_width)
            values = "".join(_right(cells.get(p, ""), widths[p] + gap) for p in block)
            lines.append((_left(names[0], name_width) + values).rstrip())
            lines.extend(name.rstrip() for name in names[1:])
    return lines


def _cells(text: str) -> int:
    """The terminal cells `text` takes: a CJK character or an emoji two, a combining mark
    none (rich's tables of Unicode widths); printable ASCII one each, without loading them."""
    if text.isascii() and text.isprintable():
        return len(text)
    from rich.cells import cell_len

    return cell_len(text)


def _left(text: str, width: int) -> str:
    return text + " " * max(0, width - _cells(text))


def _right(text: str, width: int) -> str:
    return " " * max(0, width - _cells(text)) + text


def _wrap(text: str, width: int) -> list[str]:
    """`text` in lines of at most `width` cells, broken at spaces where possible."""
    lines: list[str] = []
    line = ""
    for word in text.split():
        joined = f"{line} {word}" if line else word
        if _cells(joined) <= width:
            line = joined
            continue
        if line:
            lines.append(line)
        line = ""
        for char in word:  # a word wider than the column breaks where it must
            if _cells(line + char) > width:
                lines.append(line)
                line = ""
            line += char
    return [*lines, line] if line or not lines else lines
