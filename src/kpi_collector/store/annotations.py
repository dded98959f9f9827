"""Dated notes (`kpi annotate "v1.0 released"`) shown on every chart and in reports, and the
store's creation time (what "not run yet" is counted from)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from kpi_collector.errors import ConfigError
from kpi_collector.secrets import redact
from kpi_collector.store.limits import without_controls

if TYPE_CHECKING:
    from kpi_collector.store.history import HistoryStore

#: the longest note, in characters (a chart marker's label, not a document)
MAX_TEXT = 200


@dataclass(frozen=True)
class Annotation:
    """One note: `day` the date it is about (in the config's time zone), `created_at` when it
    was written (UTC epoch seconds)."""

    id: int
    day: date
    text: str
    created_at: float

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "day": self.day.isoformat(), "text": self.text}


def clean_text(text: str) -> str:
    """The note as stored: one line, trimmed, without control characters (an ESC sequence
    would reach `kpi history`'s terminal and the reports); ConfigError when empty or longer
    than MAX_TEXT."""
    line = without_controls(text)
    if not line:
        raise ConfigError("the note is empty: give a text, e.g. kpi annotate 'v1.0 released'")
    if len(line) > MAX_TEXT:
        raise ConfigError(f"the note has {len(line)} characters; keep it to {MAX_TEXT}")
    return line


def add_annotation(store: HistoryStore, text: str, day: date) -> Annotation:
    """Store a note about `day` (its text redacted, see `clean_text`); raises ConfigError for
    an empty or too long text, StoreError when the store cannot be written."""
    from kpi_collector.store.schema import notes as t

    line = redact(clean_text(text))
    now = time.time()
    with store.write() as conn:
        result = conn.execute(t.insert().values(day=day.isoformat(), text=line, created_at=now))
        return Annotation(int(result.inserted_primary_key[0]), day, line, now)


def list_annotations(
    store: HistoryStore, *, since: date | None = None, until: date | None = None
) -> list[Annotation]:
    """The notes from `since` to `until` (both included, None: unbounded), oldest day first."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import notes as t

    query = sa.select(t).order_by(t.c.day, t.c.id)
    if since is not None:
        query = query.where(t.c.day >= since.isoformat())
    if until is not None:
        query = query.where(t.c.day <= until.isoformat())
    with store.engine.connect() as conn:
        return [
            Annotation(r.id, date.fromisoformat(r.day), r.text, r.created_at)
            for r in conn.execute(query)
        ]


def store_created_at(store: HistoryStore) -> float | None:
    """When the store was created (UTC epoch seconds; see `schema._v8`), None if unknown."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import CREATED_AT, meta

    with store.engine.connect() as conn:
        value = conn.execute(sa.select(meta.c.value).where(meta.c.key == CREATED_AT)).scalar()
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
