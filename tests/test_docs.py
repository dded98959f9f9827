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
from kpi_collector.config.models import (
    Alert,
    CeleryExecutor,
    ChangeRule,
    Defaults,
    HealthSettings,
    KpiSpec,
    Settings,
)
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


def table_after(marker: str, text: str = README) -> set[str]:
    """The keys in the first column of the first table after `marker` (a line of text):
    every backticked name there (`jmespath` / `css`, `title`, `unit`)."""
    at = text.find(marker)
    assert at >= 0, f"{marker!r} is not in the docs any more"
    lines = text[at:].splitlines()[1:]
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    keys: set[str] = set()
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        keys |= set(re.findall(r"`([^`]+)`", line.split("|")[1]))
    return keys


def section(heading: str, text: str) -> str:
    """The text of the `## ...` section whose heading contains `heading`, to the next one."""
    match = re.search(rf"^## [^\n]*{re.escape(heading)}[^\n]*$", text, re.M)
    assert match is not None, f"no section {heading!r}"
    rest = text[match.end() :]
    following = re.search(r"^## ", rest, re.M)
    return rest[: following.start()] if following else rest


# each model's keys belong in its own table: (model, the line the table follows, the text)
TABLES: list[tuple[type[BaseModel], str, str]] = [
    (Settings, "### Top level", README),
    (Defaults, "`defaults`:", README),
    (KpiSpec, "`kpis.<id>`", README),
    (Metric, "A **metric** is either", README),
]

# keys that are knowingly undocumented, each with why (to fix, not to grow)
KNOWN_GAPS: dict[tuple[str, str], str] = {}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_is_in_the_readme(command: str) -> None:
    assert f"`kpi {command}" in README, f"README's command table lacks `kpi {command}`"


@pytest.mark.parametrize(
    ("model", "marker", "text"), TABLES, ids=lambda v: getattr(v, "__name__", "")[:20]
)
def test_every_config_key_is_in_its_own_table(
    model: type[BaseModel], marker: str, text: str
) -> None:
    keys = table_after(marker, text)
    missing = [key for key in model.model_fields if key not in keys]
    assert not missing, f"{model.__name__} keys not in the table after {marker!r}: {missing}"


SCHEDULE = (ROOT / "docs" / "schedule.md").read_text(encoding="utf-8")

# models documented in a section of docs/ rather than a table: (model, the section, its doc)
SECTIONS: list[tuple[type[BaseModel], str, str]] = [
    (Alert, "Alerts", SCHEDULE),
    (ChangeRule, "Alerts", SCHEDULE),
    (HealthSettings, "Health", SCHEDULE),
]


@pytest.mark.parametrize(
    ("model", "heading", "text"), SECTIONS, ids=lambda v: getattr(v, "__name__", "")[:20]
)
def test_every_key_of_a_nested_model_is_in_its_own_section(
    model: type[BaseModel], heading: str, text: str
) -> None:
    """Keys as written in kpi.yaml (an alert's `hold` is `for:`), in the section that
    describes them, not anywhere in the docs."""
    own = section(heading, text)
    keys = [field.alias or name for name, field in model.model_fields.items()]
    missing = [key for key in keys if not documented_key(key, own)]
    assert not missing, f"{model.__name__} keys not in the {heading!r} section: {missing}"


def test_every_celery_executor_key_is_in_the_executor_row() -> None:
    (row,) = [line for line in README.splitlines() if line.startswith("| `executor` |")]
    missing = [key for key in CeleryExecutor.model_fields if f"{key}:" not in row]
    assert not missing, f"celery executor keys not in README's `executor` row: {missing}"


def test_every_auth_kind_is_in_the_auth_row() -> None:
    http_json = (ROOT / "src/kpi_collector/sources/http_json/README.md").read_text(encoding="utf-8")
    (row,) = [line for line in http_json.splitlines() if line.startswith("| `auth` |")]
    missing = [key for key in Auth.model_fields if f"{{{key}:" not in row]
    assert not missing, f"auth kinds not in http_json's `auth` row: {missing}"


def test_every_login_key_is_in_the_login_table() -> None:
    html = (ROOT / "src/kpi_collector/sources/html/README.md").read_text(encoding="utf-8")
    keys = table_after("`login`:", html)
    missing = [key for key in LoginForm.model_fields if key not in keys]
    assert not missing, f"login keys not in html's `login` table: {missing}"


def _built_in(group: str) -> list[str]:
    """The built-in types registered under `group`; a name that fails the tests when the
    entry points are missing (a broken install), so they never pass as an empty set."""
    from importlib.metadata import entry_points

    found = sorted(ep.name for ep in entry_points(group=group) if ep.value.startswith(BUILT_IN))
    return found or [f"<no {group} entry points: run make install>"]


def _module_folder(group: str, name: str) -> Path:
    from importlib.metadata import entry_points

    (ep,) = [ep for ep in entry_points(group=group) if ep.name == name]
    return ROOT / "src" / Path(*ep.value.partition(":")[0].split("."))


def test_the_entry_points_register_every_connector_folder() -> None:
    """Every folder under sources/ and destinations/ is some registered type's module."""
    from importlib.metadata import entry_points

    for group, folder in ((SOURCE_GROUP, "sources"), (DESTINATION_GROUP, "destinations")):
        modules = {ep.value.partition(":")[0] for ep in entry_points(group=group)}
        folders = {
            f"kpi_collector.{folder}.{p.parent.name}"
            for p in (ROOT / "src/kpi_collector" / folder).glob("*/__init__.py")
        }
        assert folders <= modules, f"{group}: not registered: {sorted(folders - modules)}"


@pytest.mark.parametrize("name", _built_in(SOURCE_GROUP))
def test_every_source_type_and_key_is_documented_in_its_own_readme(name: str) -> None:
    from kpi_collector.sources.base import Source

    cls = source_type(name)
    own = (_module_folder(SOURCE_GROUP, name) / "README.md").read_text(encoding="utf-8")
    if "Same keys as `http_json`" in own:
        own += (ROOT / "src/kpi_collector/sources/http_json/README.md").read_text("utf-8")
    common = table_after("Every source has these keys:")
    missing = [
        key
        for key in cls.model_fields
        if not (key in common if key in Source.model_fields else documented_key(key, own))
    ]
    assert not missing, f"source {name!r} keys not in its README.md nor the common table: {missing}"


@pytest.mark.parametrize("name", _built_in(DESTINATION_GROUP))
def test_every_destination_type_and_key_is_documented_in_its_own_section(name: str) -> None:
    from kpi_collector.destinations.base import Destination

    cls = destination_type(name)
    text = (ROOT / "docs" / "destinations.md").read_text(encoding="utf-8")
    own = section(f"`{name}`", text)
    common = section("Keys every destination has", text)
    missing = [
        key
        for key in cls.model_fields
        if not documented_key(key, common if key in Destination.model_fields else own)
        and (name, key) not in KNOWN_GAPS
    ]
    assert not missing, f"destination {name!r} keys not in its section: {missing}"


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
