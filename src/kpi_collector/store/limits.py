"""How long the store's names may be, readable without importing SQLAlchemy (the run engine
checks each KPI id against it before the store would refuse the run's whole transaction),
and how many ids a statement asks for at once."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TypeVar

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


#: values the store puts in one `IN (...)`: far below every backend's limit of bound values
#: in a statement (SQLite 999 before 3.32, 32,766 since; PostgreSQL 65,535), and at most
#: about 100 kB of ids in a statement (MariaDB's `max_allowed_packet`)
IN_CHUNK = 500

_T = TypeVar("_T")


def chunks(values: Iterable[_T], size: int = IN_CHUNK) -> Iterator[list[_T]]:
    """`values` in lists of at most `size` (none for no values), in their order."""
    items = values if isinstance(values, Sequence) else list(values)
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def id_chunks(conn: Any, ids: Iterable[str]) -> list[list[str]]:
    """`ids` the store can hold (`storable_ids`) in the lists a statement of `conn`'s
    database asks for at once (`among`): tens of thousands in one `IN (...)` pass the limit
    of bound values (SQLite 32,766, 999 before 3.32; PostgreSQL 65,535) or MariaDB's packet
    size. PostgreSQL takes them all as one array."""
    unique = storable_ids(ids)
    if conn.dialect.name == "postgresql":
        return [unique] if unique else []
    return list(chunks(unique))


def storable_ids(ids: Iterable[str]) -> list[str]:
    """`ids`, each once and sorted, without those the store never holds (`id_problem`: a
    control character, too long), which a lookup finds nowhere (PostgreSQL refused a
    statement holding a NUL)."""
    return sorted({kpi for kpi in ids if id_problem(kpi) is None})


def among(conn: Any, column: Any, ids: list[str]) -> Any:
    """`column` is one of `ids` (a list from `id_chunks`): one array parameter on
    PostgreSQL (`= ANY(...)`, however many ids), an `IN (...)` of bound values elsewhere."""
    import sqlalchemy as sa

    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        return column == sa.any_(sa.bindparam(None, ids, type_=ARRAY(sa.String)))
    return column.in_(ids)


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


#: characters of a run's trigger the store keeps (runs.trigger: VARCHAR(16))
TRIGGER_MAX = 16

#: characters of a text the store keeps (an error message, a job's or delivery's last error,
#: an alert's message, a process's detail): 16,000 characters are at most 64,000 bytes in
#: UTF-8, within MariaDB/MySQL's TEXT (65,535 bytes, which refused the whole write of a
#: longer one); every backend keeps the same cut
TEXT_MAX = 16_000


def fit_text(text: str) -> str:
    """`text` as the store keeps it: cut to TEXT_MAX characters ("…" last) when longer."""
    return cut(text, TEXT_MAX)


def without_controls(text: str) -> str:
    """`text` without control characters (C0 but whitespace's own, DEL, C1: an ESC sequence
    or a NUL a terminal, a report or PostgreSQL would take as a command)."""
    return " ".join(_CONTROL.sub("", " ".join(text.split())).split())


def printable_name(text: str, limit: int | None = ID_MAX) -> str:
    """`text` as a stored error may hold it: control characters as `?`, cut to `limit`
    characters (None: not cut)."""
    text = _CONTROL.sub("?", text)
    return text if limit is None else cut(text, limit)
