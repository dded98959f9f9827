"""kpi-collector: collect KPIs on a schedule, keep their history, show and push them.

from kpi_collector import Pipeline
Pipeline.from_config("kpi.yaml").process()
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

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
    "Pipeline": "kpi_collector.pipeline",
    "RunResult": "kpi_collector.pipeline",
    "load_config": "kpi_collector.config",
    "ConfigError": "kpi_collector.errors",
    "DeliveryError": "kpi_collector.errors",
    "KpiError": "kpi_collector.errors",
    "SourceError": "kpi_collector.errors",
    "StoreError": "kpi_collector.errors",
}


def __getattr__(name: str) -> Any:
    # lazy, so `kpi --help` does not pay for pydantic and SQLAlchemy
    if name in _LAZY:
        from importlib import import_module

        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(name)
