"""A destination is one folder: `destinations/<type>/` holds its code, README.md, sample.yaml
and (for a service) its local fake; its entry point in pyproject.toml is its only
registration. `destinations/files/` holds the three file types."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.resources import files
from pathlib import Path

import pytest

import kpi_collector.destinations
from kpi_collector.config.loader import parse_config
from kpi_collector.config.plugins import DESTINATION_GROUP, destination_sample

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))[
    "project"
]["entry-points"][DESTINATION_GROUP]
#: the history store is a destination only in the Python API (`Store(url)`): no folder
BUILT_IN = sorted(set(ENTRY_POINTS) - {"store"})
FOLDER = {"csv": "files", "jsonl": "files", "parquet": "files"}
#: services with a local fake in their folder; pushgateway's tests run the real binary
#: (tests/fakes/pushgateway.py), files and sql write real files and databases
FAKES = {"notion", "discord", "slack", "email", "webhook", "segment", "google_sheets"}


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_built_in_destination_is_a_folder_with_its_docs_and_sample(name: str) -> None:
    module, _, attr = ENTRY_POINTS[name].partition(":")
    assert module == f"kpi_collector.destinations.{FOLDER.get(name, name)}"
    folder = files(module)
    for part in ("__init__.py", "README.md", "sample.yaml"):
        assert (folder / part).is_file(), f"{module}: {part} is missing"
    assert (folder / "fake.py").is_file() == (name in FAKES)
    assert getattr(kpi_collector.destinations, attr).type == name  # served from the entry point


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_sample_is_a_working_config(name: str, tmp_path: Path) -> None:
    """The sample loads through the config loader, with the variables it names set."""
    text = destination_sample(name)
    assert text.startswith("#"), "a sample says what it is in a comment first"
    variables = set(re.findall(r"\$\{(\w+)", text))
    env = {
        v: "sqlite:///warehouse.db" if v.endswith("_URL") else f"value-of-{v}" for v in variables
    }
    env.update(
        {v: "https://hooks.example/T0/B0/x" for v in variables if v.endswith("WEBHOOK")},
        KPI_WEBHOOK_URL="https://hooks.example/kpi",
    )
    config = parse_config(text, path=tmp_path / "kpi.yaml", env=env)
    types = [destination.type for destination in config.destinations]
    # the file types share one folder and one sample with an entry of each
    assert types == (["csv", "jsonl", "parquet"] if name in FOLDER else [name])


def test_kpi_init_destination_prints_the_sample(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kpi_collector", "init", "--destination", "notion"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    sample = ROOT / "src/kpi_collector/destinations/notion/sample.yaml"
    assert result.stdout == sample.read_text(encoding="utf-8")
    assert not (tmp_path / "kpi.yaml").exists()  # prints only


def test_kpi_init_unknown_destination_lists_the_types(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kpi_collector", "init", "--destination", "notoin"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and result.stdout == ""
    assert "unknown destination type 'notoin'; known types: csv, discord, email," in result.stderr


def test_the_package_serves_exactly_the_built_in_classes() -> None:
    served = {n for n in dir(kpi_collector.destinations) if n[0].isupper()} - set(
        kpi_collector.destinations.__all__
    )
    assert served | {"Store"} == {target.partition(":")[2] for target in ENTRY_POINTS.values()}
    assert {"Delivery", "Destination", "Store"} <= set(kpi_collector.destinations.__all__)
    with pytest.raises(ImportError):
        exec("from kpi_collector.destinations import Memory", {})  # a plugin's class is not ours


def test_a_run_never_imports_a_destination_fake(tmp_path: Path) -> None:
    """The fakes ship in the package for tests; `kpi run` loads none, even with every
    destination type loaded."""
    (tmp_path / "kpi.yaml").write_text(
        f"sources:\n  - {{name: n, type: command, command: [{sys.executable}, -c, 'print(3)']}}\n"
        "destinations:\n  - {type: csv, path: kpis.csv}\n",
        encoding="utf-8",
    )
    code = (
        "import sys\n"
        "from kpi_collector.cli import run_command\n"
        "from kpi_collector.config.plugins import DESTINATION_GROUP, names, destination_type\n"
        "for name in names(DESTINATION_GROUP):\n    destination_type(name)\n"
        "code = run_command(['run'])\n"
        "print('fakes:', code, sorted(m for m in sys.modules if m.rsplit('.', 1)[-1] in ('fake', '_fake')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "fakes: 0 []"
    assert (tmp_path / "kpis.csv").is_file()
