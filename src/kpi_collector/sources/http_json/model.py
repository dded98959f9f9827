"""The model of `type: http_json` (no fields of its own beyond `HttpSource`'s); its behaviour is
`PlainHttpJson`, which a run from the config cache uses without pydantic."""

from __future__ import annotations

from kpi_collector.sources._http_model import HttpSource
from kpi_collector.sources.http_json import PlainHttpJson

__all__ = ["HttpJson"]


class HttpJson(PlainHttpJson, HttpSource):
    """`type: http_json`: any JSON API; each metric is a JMESPath into the answer."""
