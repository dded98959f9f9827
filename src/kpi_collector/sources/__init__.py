"""Sources: each folder is one config `type` (`sources/github/`: its code, README.md,
sample.yaml and local fake), each returns `{metric: number}`.

A built-in type is registered once, by its entry point in pyproject.toml; the class names
below it (`from kpi_collector.sources import GitHub`) are served from those entry points on
first use, so nothing here lists them again and `import kpi_collector.sources` stays light.
For a connector's own fields in the type checker, import it from its module
(`from kpi_collector.sources.github import GitHub`); from here it is a `type[Source]`.
"""

from __future__ import annotations

import typing

from kpi_collector.lazy import entry_point_exports, exported_names, lazy_exports

if typing.TYPE_CHECKING:
    from kpi_collector.collect.metric import CSS, JMESPath, Metric, XPath
    from kpi_collector.sources.base import Observation, SourceContext
    from kpi_collector.sources.model import Source

__all__ = ["CSS", "JMESPath", "Metric", "Observation", "Source", "SourceContext", "XPath"]

_built_in = entry_point_exports(__name__, __name__)  # the entry-point group is named after us
#: served on first use too: a run from the config cache imports a source's module without
#: this package's models (pydantic)
_names = lazy_exports(
    "kpi_collector",
    {
        "CSS": "collect.metric",
        "JMESPath": "collect.metric",
        "Metric": "collect.metric",
        "XPath": "collect.metric",
        "Observation": "sources.base",
        "SourceContext": "sources.base",
        "Source": "sources.model",
    },
)


def __getattr__(name: str) -> typing.Any:
    """`Metric`, `Source` and the other names of `__all__`, or a built-in source class by its
    class name (`GitHub`, `PyPI`, `HttpJson`, ...).

    Raises AttributeError for any other name.
    """
    if name in __all__:
        return _names(name)
    return _built_in(name)


def __dir__() -> list[str]:
    return sorted({*globals(), *exported_names(__name__, __name__)})
