"""Checks of `alerts:` against the rest of the config (names of KPIs, sources, destinations),
run at load by `kpi_collector.config.loader`; the rules themselves are `kpi_collector.alerts`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kpi_collector.config.plain import Config

_SHOW = 12  # names listed in a config error
#: the longest alert key the store keeps (`alert_states.alert`, `alert_silences.alert`:
#: VARCHAR(255)), and the longest subject a rule over every source, KPI or destination adds
#: to it as " [subject]" (a KPI id, `store.limits.ID_MAX`)
KEY_MAX = 255
SUBJECT_MAX = 200


def alert_problems(config: Config) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """What is wrong with `alerts:` given the rest of the config: (key path, message)."""
    sources = {s.name for s in config.sources}
    known = set(config.kpi_ids())
    open_sources = {s.name for s in config.sources if not s.metric_names()}
    destinations = {d.name: d for d in config.destinations}
    keys: dict[str, int] = {}
    for index, alert in enumerate(config.settings.alerts):
        at: tuple[str | int, ...] = ("alerts", index)
        label = f"alerts[{index}]"
        if alert.kpi and alert.kpi not in known and alert.kpi.partition(".")[0] not in open_sources:
            yield (
                (*at, "kpi"),
                f"{label}.kpi: {alert.kpi!r} is not a KPI id of this config; {_listed('KPI ids', known)}",
            )
        if alert.source and alert.source not in sources:
            yield (
                (*at, "source"),
                f"{label}.source: no source named {alert.source!r}; {_listed('sources', sources)}",
            )
        if alert.destination and alert.destination not in destinations:
            yield (
                (*at, "destination"),
                f"{label}.destination: no destination named {alert.destination!r}; "
                f"{_listed('destinations', destinations)}",
            )
        for position, name in enumerate(alert.notify):
            target = destinations.get(name)
            if target is None:
                yield (
                    (*at, "notify", position),
                    f"{label}.notify: no destination named {name!r}; {_listed('destinations', destinations)}",
                )
            elif not target.can_send_text:
                able = [d.name for d in config.destinations if d.can_send_text]
                yield (
                    (*at, "notify", position),
                    f"{label}.notify: destination {name!r} (type {target.type}) cannot send alerts; "
                    f"notify a message destination{': ' + ', '.join(able) if able else ''}",
                )
        if alert.destination and alert.notify and set(alert.notify) == {alert.destination}:
            yield (
                (*at, "notify"),
                f"{label}.notify: {alert.destination!r} is the destination this alert watches: "
                "while its deliveries fail it cannot carry the alert either; notify another "
                "destination",
            )
        # a rule that watches several subjects keeps a row per subject: "<key> [<subject>]"
        subject = {"failing": alert.source, "stale": alert.kpi, "pending": alert.destination}
        several = alert.kind in subject and not subject[alert.kind]
        room = KEY_MAX - (SUBJECT_MAX + 3 if several else 0)
        if len(alert.key) > room:
            # PostgreSQL and MariaDB refused the state row: every run's alert check failed
            what = "its `name:`" if alert.name else "the rule in words (its default name)"
            over = " with a subject of each source, KPI or destination" if several else ""
            yield (
                (*at, "name") if alert.name else at,
                f"{label}: {what} is {len(alert.key):,} characters, longer than the store keeps "
                f"(at most {room}{over}); give it a shorter `name:`",
            )
        if alert.key in keys:
            yield (
                at,
                f"{label}: the same alert as alerts[{keys[alert.key]}] ({alert.key!r}); "
                "remove one or give each its own `name:`",
            )
        keys.setdefault(alert.key, index)


def _listed(what: str, names: Any) -> str:
    ordered = sorted(names)
    if not ordered:
        return f"there are no {what}"
    more = f", ... ({len(ordered)} in all)" if len(ordered) > _SHOW else ""
    return f"{what}: {', '.join(ordered[:_SHOW])}{more}"
