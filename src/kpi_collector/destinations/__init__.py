"""Destinations: where collected values go. Each folder is one config `type`
(`destinations/notion/`: its code, README.md, sample.yaml and local fake; `files/` holds
`csv`, `jsonl` and `parquet`); the modules beside the folders are what they share (`base`,
`digest`, `text`, `_http`, `_table`, `exposition`, `store`).

A built-in type is registered once, by its entry point in pyproject.toml; the class names
(`from kpi_collector.destinations import Notion`) are served from those entry points on first
use, so nothing here lists them again and `import kpi_collector.destinations` stays light.
For a destination's own fields in the type checker, import it from its module
(`from kpi_collector.destinations.notion import Notion`); from here it is a
`type[Destination]`.
"""

from __future__ import annotations

from kpi_collector.destinations.base import Delivery, Destination
from kpi_collector.destinations.store import Store
from kpi_collector.lazy import entry_point_exports, exported_names

__all__ = ["Delivery", "Destination", "Store"]

_built_in = entry_point_exports(__name__, __name__)  # the entry-point group is named after us


def __getattr__(name: str) -> type[Destination]:
    """A built-in destination class by its class name (`Notion`, `CSV`, `GoogleSheets`, ...).

    Raises AttributeError for any other name.
    """
    cls: type[Destination] = _built_in(name)
    return cls


def __dir__() -> list[str]:
    return sorted({*globals(), *exported_names(__name__, __name__)})
