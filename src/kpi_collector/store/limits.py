"""How long the store's names may be, readable without importing SQLAlchemy (the run engine
checks each KPI id against it before the store would refuse the run's whole transaction)."""

from __future__ import annotations

import re

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


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def id_problem(kpi: str) -> str | None:
    """Why `kpi` (a KPI id or a source name) cannot be stored alike on every backend, in one
    line, or None: longer than ID_MAX, or holding a control character (PostgreSQL refuses a
    NUL; a newline or a terminal escape would split or drive the tables and exports)."""
    if len(kpi) > ID_MAX:
        return too_long(kpi)
    found = _CONTROL.search(kpi)
    if found:
        return f"KPI id {cut(kpi, 60)!r} holds a control character ({found.group()!r})"
    return None


def printable_name(text: str, limit: int | None = ID_MAX) -> str:
    """`text` as a stored error may hold it: control characters as `?`, cut to `limit`
    characters (None: not cut)."""
    text = _CONTROL.sub("?", text)
    return text if limit is None else cut(text, limit)
