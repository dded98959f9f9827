"""The config: `kpi.yaml` read, expanded (`${VAR}`) and validated once, into typed models."""

from kpi_collector.config.loader import find_config, load_config, parse_config
from kpi_collector.config.models import Config, Defaults, KpiSpec

__all__ = ["Config", "Defaults", "KpiSpec", "find_config", "load_config", "parse_config"]
