"""The README and docs/ describe every command, every config key and every type."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from pydantic import BaseModel

from kpi_collector.cli import COMMANDS
from kpi_collector.collect.extract import Metric
from kpi_collector.collect.http import Auth, LoginForm
from kpi_collector.config.models import Defaults, KpiSpec, Settings
from kpi_collector.config.plugins import (
    DESTINATION_GROUP,
    SOURCE_GROUP,
    destination_type,
    names,
    source_type,
)

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DOCS = README + "\n".join(
    p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md"))
)
BUILT_IN = "kpi_collector."


def documented_key(key: str, text: str = DOCS) -> bool:
    return (
        re.search(rf"`{re.escape(key)}`|`{re.escape(key)}:|\b{re.escape(key)}:", text) is not None
    )


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_is_in_the_readme(command: str) -> None:
    assert f"`kpi {command}" in README, f"README's command table lacks `kpi {command}`"


@pytest.mark.parametrize("model", [Settings, Defaults, KpiSpec, Metric, Auth, LoginForm])
def test_every_config_key_is_in_the_readme(model: type[BaseModel]) -> None:
    missing = [key for key in model.model_fields if not documented_key(key, README)]
    assert not missing, f"{model.__name__} keys not in README: {missing}"


def _built_in(group: str) -> list[str]:
    from importlib.metadata import entry_points

    return sorted(ep.name for ep in entry_points(group=group) if ep.value.startswith(BUILT_IN))


@pytest.mark.parametrize("name", _built_in(SOURCE_GROUP))
def test_every_source_type_and_key_is_documented(name: str) -> None:
    cls = source_type(name)
    assert f"`{name}`" in DOCS
    missing = [key for key in cls.model_fields if not documented_key(key)]
    assert not missing, f"source {name!r} keys not documented: {missing}"


@pytest.mark.parametrize("name", _built_in(DESTINATION_GROUP))
def test_every_destination_type_and_key_is_documented(name: str) -> None:
    cls = destination_type(name)
    assert f"`{name}`" in DOCS
    missing = [key for key in cls.model_fields if not documented_key(key)]
    assert not missing, f"destination {name!r} keys not documented: {missing}"


def test_types_are_found_through_entry_points() -> None:
    assert {"html", "http_json", "sql", "python", "command"} <= set(names(SOURCE_GROUP))
    assert {"dice"} <= set(names(SOURCE_GROUP))  # the test plugin, registered the same way


def test_connector_docs_are_what_their_readmes_build() -> None:
    """README.md and docs/ hold the connectors' sections as scripts/build_docs.py builds them
    from each `sources/<type>/README.md` and `destinations/<type>/README.md`, so the two
    never drift."""
    spec = importlib.util.spec_from_file_location("build_docs", ROOT / "scripts" / "build_docs.py")
    assert spec is not None and spec.loader is not None
    build_docs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build_docs)
    pages = build_docs.build()
    assert {p.relative_to(ROOT).as_posix() for p in pages} == {
        "README.md",
        "docs/active-users.md",
        "docs/connectors.md",
        "docs/destinations.md",
    }
    stale = [p.name for p, text in pages.items() if p.read_text(encoding="utf-8") != text]
    assert not stale, f"{stale} differ from the connectors' README.md: run `make docs`"
