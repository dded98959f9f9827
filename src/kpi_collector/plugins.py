"""Finding source and destination types by their config `type` name, through entry points.

Built-ins are registered in pyproject.toml exactly like third-party plugins; classes can
also be registered at run time with `register_source` / `register_destination`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from kpi_collector.errors import ConfigError

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from kpi_collector.destinations.base import Destination
    from kpi_collector.sources.base import Source

SOURCE_GROUP = "kpi_collector.sources"
DESTINATION_GROUP = "kpi_collector.destinations"
_extra: dict[str, dict[str, type[Any]]] = {SOURCE_GROUP: {}, DESTINATION_GROUP: {}}


@lru_cache(maxsize=2)
def _entry_points(group: str) -> dict[str, EntryPoint]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=group)}


def names(group: str) -> list[str]:
    return sorted({*_entry_points(group), *_extra[group]})


def _load(group: str, name: str, what: str) -> type[Any]:
    if name in _extra[group]:
        return _extra[group][name]
    return _load_entry_point(group, name, what)


@lru_cache(maxsize=256)
def _load_entry_point(group: str, name: str, what: str) -> type[Any]:
    ep = _entry_points(group).get(name)
    if ep is None:
        known = ", ".join(names(group))
        raise ConfigError(f"unknown {what} type {name!r}; known types: {known}")
    try:
        loaded: type[Any] = ep.load()
    except Exception as exc:  # a broken plugin must not take the others down silently
        raise ConfigError(f"{what} type {name!r} ({ep.value}) failed to load: {exc}") from exc
    return loaded


def source_type(name: str) -> type[Source]:
    return _load(SOURCE_GROUP, name, "source")


def destination_type(name: str) -> type[Destination]:
    return _load(DESTINATION_GROUP, name, "destination")


def register_source(cls: type[Source]) -> type[Source]:
    """Register a source class under its `type` name (for code that has no entry point)."""
    _extra[SOURCE_GROUP][cls.type] = cls
    return cls


def register_destination(cls: type[Destination]) -> type[Destination]:
    _extra[DESTINATION_GROUP][cls.type] = cls
    return cls
