"""The config: `kpi.yaml` read, expanded (`${VAR}`) and validated once, into typed models.

The names below are served on first use, so that importing a module of this package (the
config cache's `plain`, which a cached run reads) does not import the loader and pydantic."""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpi_collector.lazy import lazy_exports

if TYPE_CHECKING:
    from kpi_collector.config.loader import find_config, load_config, parse_config
    from kpi_collector.config.models import Defaults, KpiSpec
    from kpi_collector.config.plain import Config

__all__ = ["Config", "Defaults", "KpiSpec", "find_config", "load_config", "parse_config"]

__getattr__ = lazy_exports(
    __name__,
    {
        "Config": "plain",
        "Defaults": "models",
        "KpiSpec": "models",
        "find_config": "loader",
        "load_config": "loader",
        "parse_config": "loader",
    },
)
