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

import typing

from kpi_collector.lazy import entry_point_exports, exported_names, lazy_exports

if typing.TYPE_CHECKING:
    from kpi_collector.destinations.base import Delivery
    from kpi_collector.destinations.model import Destination
    from kpi_collector.destinations.store import Store

__all__ = ["Delivery", "Destination", "Store"]

_built_in = entry_point_exports(__name__, __name__)  # the entry-point group is named after us
#: served on first use too: a run with no destination never imports the models (pydantic)
_names = lazy_exports(__name__, {"Delivery": "base", "Destination": "model", "Store": "store"})


def __getattr__(name: str) -> typing.Any:
    """`Delivery`, `Destination`, `Store`, or a built-in destination class by its class name
    (`Notion`, `CSV`, `GoogleSheets`, ...).

    Raises AttributeError for any other name.
    """
    if name in __all__:
        return _names(name)
    return _built_in(name)


def __dir__() -> list[str]:
    return sorted({*globals(), *exported_names(__name__, __name__)})
