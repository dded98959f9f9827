"""The Celery app of `kpi.yaml`, for Celery's own tools: `celery -A kpi_collector.run.celery_app
inspect ping | active_queues | active | kpi_info`, `celery -A kpi_collector.run.celery_app
events`, Flower (`celery -A kpi_collector.run.celery_app flower`).

The config is the one `KPI_CONFIG` names, else `./kpi.yaml`; it is loaded without secrets
(only the executor's broker and backend are read). Importing this module loads it: it is
meant for the `celery` command, not for code.
"""

from __future__ import annotations

from kpi_collector.config.loader import load_config
from kpi_collector.config.plain import PlainCeleryExecutor
from kpi_collector.errors import ConfigError
from kpi_collector.run.celery_executor import celery_app, register_info_command

_config = load_config(None, need_secrets=False, need_store=False)
if not isinstance(_config.settings.executor, PlainCeleryExecutor):
    raise ConfigError(f"{_config.path}: no `executor: {{type: celery, ...}}` in it")
register_info_command()
app = celery_app(_config.settings.executor)
