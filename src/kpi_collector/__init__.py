"""kpi-collector: collect KPIs on a schedule, keep their history, show and push them.

from kpi_collector import Pipeline
Pipeline.from_config("kpi.yaml").process()
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kpi_collector._version import __version__
from kpi_collector.lazy import lazy_exports

__all__ = [
    "ConfigError",
    "DeliveryError",
    "KpiError",
    "Pipeline",
    "RunResult",
    "SourceError",
    "StoreError",
    "__version__",
    "load_config",
]

if TYPE_CHECKING:
    from kpi_collector.config import load_config
    from kpi_collector.errors import ConfigError, DeliveryError, KpiError, SourceError, StoreError
    from kpi_collector.pipeline import Pipeline, RunResult

_LAZY = {
    "Pipeline": "pipeline",
    "RunResult": "pipeline",
    "load_config": "config",
    "ConfigError": "errors",
    "DeliveryError": "errors",
    "KpiError": "errors",
    "SourceError": "errors",
    "StoreError": "errors",
}


# lazy, so `kpi --help` does not pay for pydantic and SQLAlchemy
__getattr__ = lazy_exports("kpi_collector", _LAZY)
