"""An optional package that is not installed gives one line naming the extra to install,
from the command line, from a destination's delivery and from a source."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from kpi_collector import Pipeline
from kpi_collector.cli import main
from kpi_collector.destinations import Notion, Store
from kpi_collector.errors import missing_package
from kpi_collector.sources.python import Function


def test_missing_package_names_the_extra() -> None:
    exc = ModuleNotFoundError("No module named 'notion_client'", name="notion_client")
    assert missing_package(exc) == (
        "this needs notion_client, which is not installed: pip install 'kpi-collector[notion]'"
    )
    nested = ModuleNotFoundError("x", name="starlette.applications")
    assert "kpi-collector[dashboard]" in str(missing_package(nested))
    assert missing_package(ModuleNotFoundError("x", name="left_pad")) is None
    assert missing_package(ValueError("x")) is None


def test_kpi_serve_without_the_dashboard_extra_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "kpi.yaml").write_text(f"store: sqlite:///{tmp_path / 'kpi.db'}\n")
    monkeypatch.setitem(sys.modules, "starlette", None)  # as if it were not installed
    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["-c", str(tmp_path / "kpi.yaml"), "serve", "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "pip install 'kpi-collector[dashboard]'" in err and "Traceback" not in err


def test_a_destination_without_its_extra_stays_pending_saying_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "notion_client", None)
    result = Pipeline(
        sources=[Function(lambda: {"stars": 5}, name="github")],
        destinations=[
            Store(f"sqlite:///{tmp_path / 'kpi.db'}"),
            Notion(token="secret_abcdefgh", database="0" * 32, api_url="http://127.0.0.1:9"),
        ],
        base_dir=tmp_path,
    ).process()
    assert result.values == {"github.stars": 5}
    assert result.exit_code == 1
    assert "pip install 'kpi-collector[notion]'" in result.delivery_errors["notion"]


def test_a_source_and_a_store_without_their_driver_say_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kpi_collector.errors import StoreError
    from kpi_collector.sources.sql import SQL
    from kpi_collector.store import HistoryStore

    monkeypatch.setitem(sys.modules, "psycopg", None)
    url = "postgresql+psycopg://kpi:pw-1234@127.0.0.1:1/app"
    result = Pipeline(
        sources=[SQL(name="app", url=url, metrics={"n": "SELECT 1"})],
        destinations=[Store(f"sqlite:///{tmp_path / 'kpi.db'}")],
        base_dir=tmp_path,
    ).process()
    assert "pip install 'kpi-collector[postgres]'" in result.errors["app"]
    with pytest.raises(StoreError, match=r"pip install 'kpi-collector\[postgres\]'"):
        _ = HistoryStore(url).engine


def test_event_files_without_duckdb_say_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kpi_collector.sources.active_users.activity import ActivityError, daily_series

    events = tmp_path / "events.csv"
    events.write_text("user_id,ts\nu1,2026-01-01T10:00:00Z\n")
    monkeypatch.setitem(sys.modules, "duckdb", None)
    with pytest.raises(ActivityError, match=r"pip install 'kpi-collector\[duckdb\]'"):
        daily_series(str(events), user="user_id", time="ts")
