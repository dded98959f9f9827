"""What a test needs from the machine (a database, a broker, a browser, a binary, an optional
module): one helper decides whether a missing one skips the test or fails it.

The switch: ``KPI_REQUIRE_SERVICES`` set to a true value (``1``, ``true``, ``yes``, ``on``, any
case; CI sets ``1``) says every service-backed test must run, so a missing service *fails* the
test instead of skipping it; and ``tests/conftest.py`` fails the whole session when any test
skipped under the switch, except the skips listed there in ``ALLOWED_SKIPS`` with a reason.

Use (every helper returns what the test needs, or skips/fails with a one-line reason):

    from tests.services import (
        missing, require_binary, require_module, require_url,
        require_postgres_url, require_mysql_url, require_redis_url, require_rabbitmq_url,
    )

    url = require_postgres_url()                 # KPI_TEST_POSTGRES_URL, probed at its host:port
    url = require_redis_url()                    # KPI_TEST_REDIS_URL (redis://127.0.0.1:6379/0)
    url = require_rabbitmq_url()                 # KPI_TEST_RABBITMQ_URL (amqp://guest:guest@...)
    url = require_url("Elastic", "http://127.0.0.1:9200")   # any service by URL (default port
                                                 # from the scheme when the URL has none)
    chromium = require_binary("chromium", "/usr/bin/chromium", hint="Debian package `chromium`")
    fsspec = require_module("fsspec")            # instead of pytest.importorskip
    missing("the foo daemon is not running")     # anything else: skip, or fail under the switch

Never call ``pytest.skip`` / ``pytest.importorskip`` for a missing service directly: the
session check in conftest.py would fail it under the switch anyway, with a less clear reason.
"""

from __future__ import annotations

import importlib
import os
import shutil
import socket
from fnmatch import fnmatch
from types import ModuleType
from typing import Any, NoReturn
from urllib.parse import urlsplit

import pytest

SWITCH = "KPI_REQUIRE_SERVICES"
TRUE_VALUES = frozenset({"1", "true", "yes", "on"})

POSTGRES_URL = os.environ.get(
    "KPI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("KPI_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
REDIS_URL = os.environ.get("KPI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
RABBITMQ_URL = os.environ.get(
    "KPI_TEST_RABBITMQ_URL",
    os.environ.get("KPI_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
)

# The port a URL without one means, by scheme (the part before any "+driver").
DEFAULT_PORTS = {
    "postgresql": 5432,
    "postgres": 5432,
    "mysql": 3306,
    "mariadb": 3306,
    "redis": 6379,
    "rediss": 6380,
    "amqp": 5672,
    "amqps": 5671,
    "http": 80,
    "https": 443,
}


def services_required() -> bool:
    """True when ``KPI_REQUIRE_SERVICES`` holds a true value (1/true/yes/on, any case)."""
    return os.environ.get(SWITCH, "").strip().lower() in TRUE_VALUES


def missing(reason: str) -> NoReturn:
    """The one decision: skip the test with `reason`, or fail it under the switch."""
    if services_required():
        pytest.fail(f"{reason}, and {SWITCH} says it must be there", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


def host_port(url: str) -> tuple[str, int]:
    """The (host, port) a service URL points at; the scheme's default port when it has none.

    Raises ValueError for a URL with no host or an unknown scheme without a port."""
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError(f"{url!r} has no host")
    if parts.port is not None:
        return parts.hostname, parts.port
    scheme = parts.scheme.split("+", 1)[0].lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"{url!r} has no port and {scheme!r} has no default one")
    return parts.hostname, DEFAULT_PORTS[scheme]


def reachable(host: str, port: int) -> bool:
    """Whether a TCP connection to host:port opens within a second."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def require(name: str, host: str, port: int) -> None:
    """Skip (fail under the switch) unless something listens on host:port."""
    if not reachable(host, port):
        missing(f"{name} is not reachable on {host}:{port}")


def require_url(name: str, url: str) -> str:
    """`url`, after probing the host and port it names (skip/fail when nothing listens)."""
    host, port = host_port(url)
    require(name, host, port)
    return url


def require_postgres_url() -> str:
    """KPI_TEST_POSTGRES_URL (default: postgres@127.0.0.1:5432/test, trust auth)."""
    return require_url("PostgreSQL", POSTGRES_URL)


def require_mysql_url() -> str:
    """KPI_TEST_MYSQL_URL (default: root@127.0.0.1:3306/test)."""
    return require_url("MariaDB/MySQL", MYSQL_URL)


def require_redis_url() -> str:
    """KPI_TEST_REDIS_URL (default: redis://127.0.0.1:6379/0)."""
    return require_url("Redis", REDIS_URL)


def require_rabbitmq_url() -> str:
    """KPI_TEST_RABBITMQ_URL (default: amqp://guest:guest@127.0.0.1:5672//)."""
    return require_url("RabbitMQ", RABBITMQ_URL)


def require_binary(name: str, *paths: str, hint: str = "") -> str:
    """The path of an executable: `name` on PATH, else the first of `paths` that exists."""
    found = shutil.which(name) or next((p for p in paths if os.access(p, os.X_OK)), None)
    if found:
        return found
    missing(f"{name} is not installed" + (f" ({hint})" if hint else ""))


def require_module(module: str, hint: str = "") -> ModuleType:
    """The imported module, instead of ``pytest.importorskip`` (which ignores the switch)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        missing(f"the Python module {module} is not installed" + (f" ({hint})" if hint else ""))


class SkipGuard:
    """A pytest plugin: under the switch, a skipped test that no `allowed` pattern names
    (fnmatch on the node id, e.g. ``"tests/test_x.py::test_y[sqlite]"``) fails the session,
    listed with its reason. `allowed` maps each pattern to why that skip is fine in CI."""

    def __init__(self, allowed: dict[str, str]) -> None:
        self.allowed = allowed
        self.unexpected: list[tuple[str, str]] = []

    def is_allowed(self, nodeid: str) -> bool:
        return any(fnmatch(nodeid, pattern) for pattern in self.allowed)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.skipped and not self.is_allowed(report.nodeid):
            longrepr = report.longrepr
            reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
            self.unexpected.append((report.nodeid, reason.removeprefix("Skipped: ")))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.unexpected and services_required():
            terminalreporter.section(f"skipped under {SWITCH}", red=True)
            for nodeid, reason in self.unexpected:
                terminalreporter.line(f"{nodeid}: {reason}")
            terminalreporter.line(
                f"{len(self.unexpected)} test(s) skipped outside ALLOWED_SKIPS (tests/conftest.py):"
                " the session fails"
            )

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.unexpected and services_required() and session.exitstatus in (0, 5):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED


def require_broker_url(kind: str) -> str:
    """A Celery broker URL on this machine: kind "rabbitmq" (KPI_TEST_AMQP_URL or
    KPI_TEST_RABBITMQ_URL, guest/guest) or "redis" (KPI_TEST_REDIS_URL), probed at its
    host and port."""
    return require_rabbitmq_url() if kind == "rabbitmq" else require_redis_url()
