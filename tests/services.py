"""The machine's database servers for tests: skip with a reason where one is not reachable,
fail instead when KPI_REQUIRE_SERVICES=1 (CI), where every service-backed test must run.
"""

from __future__ import annotations

import os
import socket

import pytest

POSTGRES_URL = os.environ.get(
    "KPI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("KPI_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    reason = f"{name} is not reachable on {host}:{port}"
    if os.environ.get("KPI_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason}, and KPI_REQUIRE_SERVICES=1 says it must be")
    pytest.skip(reason)


def require_postgres_url() -> str:
    require("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_URL


def require_mysql_url() -> str:
    require("MariaDB/MySQL", "127.0.0.1", 3306)
    return MYSQL_URL


def require_broker_url(kind: str) -> str:
    """A Celery broker URL on this machine: kind "rabbitmq" (guest/guest) or "redis"."""
    if kind == "rabbitmq":
        require("RabbitMQ", "127.0.0.1", 5672)
        return os.environ.get("KPI_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
    require("Redis", "127.0.0.1", 6379)
    return os.environ.get("KPI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
