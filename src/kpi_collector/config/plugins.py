"""Finding source and destination types by their config `type` name, through entry points.

Built-ins are registered in pyproject.toml exactly like third-party plugins; classes can
also be registered at run time with `register_source` / `register_destination`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

from kpi_collector.errors import ConfigError
from kpi_collector.lazy import lazy_exports

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

    from kpi_collector.config.models import Plugin as Plugin
    from kpi_collector.destinations.base import Destination
    from kpi_collector.sources.base import Source


#: the model, served from `config.models` on first use (pydantic is imported there)
__getattr__ = lazy_exports("kpi_collector.config", {"Plugin": "models"})


SOURCE_GROUP = "kpi_collector.sources"
DESTINATION_GROUP = "kpi_collector.destinations"
_extra: dict[str, dict[str, type[Any]]] = {SOURCE_GROUP: {}, DESTINATION_GROUP: {}}


def has_extra() -> bool:
    """Whether a type was registered at run time (`register_source`, `register_destination`)."""
    return any(_extra.values())


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
        from difflib import get_close_matches

        known = names(group)
        close = get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"unknown {what} type {name!r}; known types: {', '.join(known)}{hint}")
    try:
        loaded: type[Any] = ep.load()
    except Exception as exc:  # a broken plugin must not take the others down silently
        raise ConfigError(f"{what} type {name!r} ({ep.value}) failed to load: {exc}") from exc
    return loaded


def source_type(name: str) -> type[Source]:
    return _load(SOURCE_GROUP, name, "source")


def destination_type(name: str) -> type[Destination]:
    return _load(DESTINATION_GROUP, name, "destination")


def source_sample(name: str) -> str:
    """The commented, working `sources:` entry that a source type ships as `sample.yaml` in
    its folder (`kpi_collector/sources/github/sample.yaml`): what `kpi init --source NAME`
    prints. Third-party types ship one the same way, beside their class's module.

    Raises ConfigError for an unknown type (listing the known ones and the closest name), or
    for a type whose module is not a folder with a `sample.yaml`.
    """
    return _sample(source_type(name), "source", name)


def register_source(cls: type[Source]) -> type[Source]:
    """Register a source class under its `type` name (for code that has no entry point)."""
    _extra[SOURCE_GROUP][cls.type] = cls
    return cls


def register_destination(cls: type[Destination]) -> type[Destination]:
    _extra[DESTINATION_GROUP][cls.type] = cls
    return cls


def destination_sample(name: str) -> str:
    """The commented, working `destinations:` entry that a destination type ships as
    `sample.yaml` in its folder (`kpi_collector/destinations/notion/sample.yaml`; the file
    types share `destinations/files/`): what `kpi init --destination NAME` prints.
    Third-party types ship one the same way, beside their class's module.

    Raises ConfigError for an unknown type (listing the known ones), or for a type whose
    module is not a folder with a `sample.yaml`.
    """
    return _sample(destination_type(name), "destination", name)


def _sample(cls: type[Any], what: str, name: str) -> str:
    """The `sample.yaml` in the folder of the module that defines `cls`."""
    import sys
    from importlib.resources import files

    package = sys.modules[cls.__module__].__package__  # its folder (`html/` of `html/model.py`)
    if package:
        sample = files(package) / "sample.yaml"
        if sample.is_file():
            return sample.read_text(encoding="utf-8")
    raise ConfigError(
        f"{what} type {name!r} ({cls.__module__}) ships no sample.yaml beside its code; "
        "see its documentation for its keys"
    )
