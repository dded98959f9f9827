"""Sources: each folder is one config `type` (`sources/github/`: its code, README.md,
sample.yaml and local fake), each returns `{metric: number}`.

A built-in type is registered once, by its entry point in pyproject.toml; the class names
below it (`from kpi_collector.sources import GitHub`) are served from those entry points on
first use, so nothing here lists them again and `import kpi_collector.sources` stays light.
For a connector's own fields in the type checker, import it from its module
(`from kpi_collector.sources.github import GitHub`); from here it is a `type[Source]`.
"""

from __future__ import annotations

from kpi_collector.collect.extract import CSS, JMESPath, Metric, XPath
from kpi_collector.lazy import entry_point_exports, exported_names
from kpi_collector.sources.base import Observation, Source, SourceContext

__all__ = ["CSS", "JMESPath", "Metric", "Observation", "Source", "SourceContext", "XPath"]

_built_in = entry_point_exports(__name__, __name__)  # the entry-point group is named after us


def __getattr__(name: str) -> type[Source]:
    """A built-in source class by its class name (`GitHub`, `PyPI`, `HttpJson`, ...).

    Raises AttributeError for any other name.
    """
    cls: type[Source] = _built_in(name)
    return cls


def __dir__() -> list[str]:
    return sorted({*globals(), *exported_names(__name__, __name__)})
