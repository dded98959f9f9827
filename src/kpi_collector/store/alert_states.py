"""The `alert_states` table: each alert's own condition since when (destination ""), and what
each `notify` destination was last told. Times are UTC epoch seconds.

The side of a rule with two (`below` and `above`) that a row holds is kept at the start of
its `message` as `[below] ` or `[above] ` (`[] ` before a message of no side that starts with
`[` itself), and read back as `AlertState.side`: written and read only here."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kpi_collector.secrets import redact
from kpi_collector.store.limits import chunks, fit_text

if TYPE_CHECKING:
    from kpi_collector.store import HistoryStore

OWN = ""  # the destination column of the row that holds an alert's own condition
SIDES = ("below", "above")  # the sides of a rule with two


@dataclass(frozen=True, slots=True)
class AlertState:
    """A row of `alert_states`: an alert's condition since when (destination ""), or what a
    destination was last told."""

    alert: str
    destination: str
    active: bool
    since: float
    message: str | None
    updated_at: float
    side: str | None = None  # "below" / "above": the side of a two-sided rule it is about

    def to_dict(self) -> dict[str, Any]:
        return {
            "alert": self.alert,
            "destination": self.destination,
            "active": self.active,
            "since": self.since,
            "message": self.message,
        }


def alert_states(store: HistoryStore) -> list[AlertState]:
    """Every row of `alert_states`; `destination == ""` rows are the alerts' own conditions."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import alert_states as t

    with store.engine.connect() as conn:
        return [
            AlertState(
                r.alert,
                r.destination,
                bool(r.active),
                r.since,
                _split(r.message)[0],
                r.updated_at,
                _split(r.message)[1],
            )
            for r in conn.execute(sa.select(t).order_by(t.c.alert, t.c.destination))
        ]


def active_alerts(store: HistoryStore) -> list[AlertState]:
    """The alerts whose condition is true now, oldest first (for health and the dashboard)."""
    return sorted(
        (s for s in alert_states(store) if s.destination == OWN and s.active), key=lambda s: s.since
    )


def save_alert_state(
    store: HistoryStore,
    key: str,
    destination: str,
    *,
    active: bool,
    message: str,
    now: float,
    side: str | None = None,
) -> None:
    """Record `key`'s condition (destination OWN) or what `destination` was told, since `now`,
    and the `side` of a two-sided rule it is about."""
    from kpi_collector.store.schema import alert_states as t

    where = (t.c.alert == key) & (t.c.destination == destination)
    text = redact(message)
    if side is not None or text.startswith("["):  # "[] " keeps a message's own "[below] "
        text = f"[{side or ''}] {text}"
    values = {"active": active, "since": now, "message": fit_text(text), "updated_at": time.time()}
    with store.write() as conn:
        if not conn.execute(t.update().where(where).values(**values)).rowcount:
            conn.execute(t.insert().values(alert=key, destination=destination, **values))


def _split(stored: str | None) -> tuple[str | None, str | None]:
    """A stored message as (message, side)."""
    for side in (*SIDES, ""):
        if stored is not None and stored.startswith(f"[{side}] "):
            return stored[len(side) + 3 :], side or None
    return stored, None


def prune_alert_states(store: HistoryStore, keep: set[str]) -> None:
    """Forget alerts that are no longer in the config (so a re-added one starts afresh)."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import alert_states as t

    with store.write() as conn:
        # the few stored keys, not every configured one in a NOT IN (...): thousands of
        # alerts passed a backend's limit of bound values in one statement
        gone = sorted({a for (a,) in conn.execute(sa.select(t.c.alert))} - keep)
        for chunk in chunks(gone):
            conn.execute(t.delete().where(t.c.alert.in_(chunk)))


#: the end of the latest silence (9999-01-01 UTC): every date type and `time.gmtime` reach it
LATEST_UNTIL = 253_370_764_800.0
#: the longest silence `kpi alerts silence --for` sets (100 years)
LONGEST_SILENCE = 100 * 365 * 86400.0


def silences(store: HistoryStore, *, now: float | None = None) -> dict[str, float]:
    """Alerts silenced at `now` (UTC epoch, default: the current time): key -> until (epoch),
    at most `LATEST_UNTIL` (a silence set before that limit, for 10^15 weeks, ends then)."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import alert_silences as t

    at = time.time() if now is None else now
    with store.engine.connect() as conn:
        return {
            r.alert: min(float(r.until), LATEST_UNTIL)
            for r in conn.execute(sa.select(t.c.alert, t.c.until).where(t.c.until > at))
        }


def silence(store: HistoryStore, alert: str, *, until: float, note: str | None = None) -> None:
    """Silence `alert` (its key) until `until` (UTC epoch seconds): its state is still kept,
    but no destination is told while the silence lasts."""
    from kpi_collector.store.schema import alert_silences as t

    values = {
        "until": until,
        "created_at": time.time(),
        "note": fit_text(redact(note)) if note else None,
    }
    with store.write() as conn:
        if not conn.execute(t.update().where(t.c.alert == alert).values(**values)).rowcount:
            conn.execute(t.insert().values(alert=alert, **values))


def unsilence(store: HistoryStore, alert: str) -> bool:
    """End `alert`'s silence; False when it had none."""
    from kpi_collector.store.schema import alert_silences as t

    with store.write() as conn:
        return bool(conn.execute(t.delete().where(t.c.alert == alert)).rowcount)
