"""Sources: each module is one config `type`; each returns `{metric: number}`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from kpi_collector.collect.extract import CSS, JMESPath, Metric, XPath
from kpi_collector.sources.base import Observation, Source, SourceContext

if TYPE_CHECKING:
    from kpi_collector.sources.command import Command
    from kpi_collector.sources.github import GitHub
    from kpi_collector.sources.html import HTML
    from kpi_collector.sources.http_json import HttpJson
    from kpi_collector.sources.python import Function
    from kpi_collector.sources.sql import SQL

__all__ = [
    "CSS",
    "HTML",
    "SQL",
    "Command",
    "Function",
    "GitHub",
    "HttpJson",
    "JMESPath",
    "Metric",
    "Observation",
    "Source",
    "SourceContext",
    "XPath",
]

_LAZY = {
    "Command": "command",
    "Function": "python",
    "GitHub": "github",
    "HTML": "html",
    "HttpJson": "http_json",
    "SQL": "sql",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(f"kpi_collector.sources.{_LAZY[name]}"), name)
    raise AttributeError(name)
