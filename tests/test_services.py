"""The helper that decides whether a missing service skips or fails a test, and the session
check that fails a run under KPI_REQUIRE_SERVICES where a test skipped outside the allowlist."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests import services
from tests.conftest import ALLOWED_SKIPS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("value", ["1", "true", "TRUE", "yes", "On", " on "])
def test_any_true_value_turns_the_switch_on(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPI_REQUIRE_SERVICES", value)
    assert services.services_required()


@pytest.mark.parametrize("value", ["", "0", "false", "no", "off", "2"])
def test_other_values_leave_it_off(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPI_REQUIRE_SERVICES", value)
    assert not services.services_required()


def test_no_switch_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KPI_REQUIRE_SERVICES", raising=False)
    assert not services.services_required()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql+psycopg://postgres@db.internal:6543/test", ("db.internal", 6543)),
        ("postgresql+psycopg://postgres@10.1.2.3/test", ("10.1.2.3", 5432)),
        ("mysql+pymysql://root@127.0.0.2/test", ("127.0.0.2", 3306)),
        ("redis://localhost/0", ("localhost", 6379)),
        ("amqp://guest:guest@127.0.0.1//", ("127.0.0.1", 5672)),
        ("amqp://guest:guest@[::1]:5673//", ("::1", 5673)),
    ],
)
def test_host_port_comes_from_the_url(url: str, expected: tuple[str, int]) -> None:
    assert services.host_port(url) == expected


def test_a_url_without_host_or_known_port_is_an_error() -> None:
    with pytest.raises(ValueError, match="no host"):
        services.host_port("sqlite:///x.db")
    with pytest.raises(ValueError, match="no default"):
        services.host_port("gopher://example.invalid/")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


def test_the_probe_goes_to_the_configured_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KPI_REQUIRE_SERVICES", raising=False)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        url = f"redis://127.0.0.1:{port}/0"
        assert services.require_url("Redis", url) == url
    closed = f"redis://127.0.0.1:{_closed_port()}/0"
    with pytest.raises(pytest.skip.Exception, match=r"Redis is not reachable on 127\.0\.0\.1:"):
        services.require_url("Redis", closed)


def test_a_missing_service_fails_under_the_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPI_REQUIRE_SERVICES", "yes")
    closed = f"postgresql://u@127.0.0.1:{_closed_port()}/test"
    with pytest.raises(pytest.fail.Exception, match="KPI_REQUIRE_SERVICES says it must be"):
        services.require_url("PostgreSQL", closed)
    with pytest.raises(pytest.fail.Exception, match="no-such-binary-kpi is not installed"):
        services.require_binary("no-such-binary-kpi", "/nonexistent/x")
    with pytest.raises(pytest.fail.Exception, match="module no_such_module_kpi"):
        services.require_module("no_such_module_kpi")


def test_binaries_and_modules_are_found(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KPI_REQUIRE_SERVICES", "1")
    assert services.require_binary("no-such-binary-kpi", sys.executable) == sys.executable
    assert services.require_module("json").dumps([1]) == "[1]"
    monkeypatch.delenv("KPI_REQUIRE_SERVICES")
    with pytest.raises(pytest.skip.Exception, match="no-such-binary-kpi is not installed"):
        services.require_binary("no-such-binary-kpi")


def test_every_allowed_skip_says_why() -> None:
    assert ALLOWED_SKIPS
    assert all(len(reason.split()) >= 4 for reason in ALLOWED_SKIPS.values())


def test_every_allowed_skip_names_a_test_that_exists() -> None:
    """A renamed test would leave its entry allowing nothing while its skip fails CI."""
    for pattern in ALLOWED_SKIPS:
        path, _, name = pattern.partition("::")
        function = name.split("[", 1)[0]
        source = (ROOT / path).read_text(encoding="utf-8")
        assert f"def {function}(" in source, f"{pattern}: no such test in {path}"


_SUITE = """
import pytest

def test_runs():
    assert True

def test_allowed():
    pytest.skip("fine here")

def test_hidden_service():
    pytest.skip("redis is not reachable")
"""

_CONFTEST = """
import pytest
from tests.services import SkipGuard

def pytest_configure(config):
    config.pluginmanager.register(SkipGuard({"*::test_allowed": "a reason"}), "guard")
"""


def _run(folder: Path, switch: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KPI_REQUIRE_SERVICES"}
    env["PYTHONPATH"] = str(ROOT)
    if switch is not None:
        env["KPI_REQUIRE_SERVICES"] = switch
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_skip_outside_the_allowlist_fails_the_session_under_the_switch(
    tmp_path: Path,
) -> None:
    (tmp_path / "conftest.py").write_text(_CONFTEST)
    (tmp_path / "test_suite.py").write_text(_SUITE)
    quiet = _run(tmp_path, None)
    assert quiet.returncode == 0, quiet.stdout
    assert "1 passed, 2 skipped" in quiet.stdout
    strict = _run(tmp_path, "true")
    assert strict.returncode == 1, strict.stdout
    assert "test_suite.py::test_hidden_service: redis is not reachable" in strict.stdout
    assert "test_suite.py::test_allowed:" not in strict.stdout.split("skipped under")[-1]
    allowed_only = _run(tmp_path, "on", "-k", "not hidden")
    assert allowed_only.returncode == 0, allowed_only.stdout
