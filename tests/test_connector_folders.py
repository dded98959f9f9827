"""A connector is one folder: `sources/<type>/` holds its code, README.md, sample.yaml and
local fake, and its entry point in pyproject.toml is its only registration."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.resources import files
from pathlib import Path

import pytest

import kpi_collector.sources
from kpi_collector.config.loader import parse_config
from kpi_collector.config.plugins import SOURCE_GROUP, source_sample

ROOT = Path(__file__).resolve().parents[1]
ENTRY_POINTS: dict[str, str] = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))[
    "project"
]["entry-points"][SOURCE_GROUP]
BUILT_IN = sorted(ENTRY_POINTS)


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_built_in_source_is_a_folder_with_its_docs_and_sample(name: str) -> None:
    module, _, attr = ENTRY_POINTS[name].partition(":")
    assert module == f"kpi_collector.sources.{name}"
    folder = files(module)
    for part in ("__init__.py", "README.md", "sample.yaml"):
        assert (folder / part).is_file(), f"{module}: {part} is missing"
    assert getattr(kpi_collector.sources, attr).type == name  # served from the entry point


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_sample_is_a_working_config(name: str, tmp_path: Path) -> None:
    """The sample loads through the config loader, with the variables it names set."""
    text = source_sample(name)
    assert text.startswith("#"), "a sample says what it is in a comment first"
    variables = set(re.findall(r"\$\{(\w+)", text))
    env = {v: "sqlite:///app.db" if v.endswith("_URL") else f"value-of-{v}" for v in variables}
    config = parse_config(text, path=tmp_path / "kpi.yaml", env=env)
    assert [source.type for source in config.sources] == [name]


def test_the_package_serves_exactly_the_built_in_classes() -> None:
    served = {n for n in dir(kpi_collector.sources) if n[0].isupper()} - set(
        kpi_collector.sources.__all__
    )
    assert served == {target.partition(":")[2] for target in ENTRY_POINTS.values()}
    with pytest.raises(ImportError):
        exec("from kpi_collector.sources import Dice", {})  # a plugin's class is not ours


def test_a_run_never_imports_a_fake(tmp_path: Path) -> None:
    """The fakes ship in the package for tests and `kpi demo`; `kpi run` loads none, even
    with every source type loaded."""
    (tmp_path / "kpi.yaml").write_text(
        f"sources:\n  - {{name: n, type: command, command: [{sys.executable}, -c, 'print(3)']}}\n",
        encoding="utf-8",
    )
    code = (
        "import sys\n"
        "from kpi_collector.cli import run_command\n"
        "from kpi_collector.config.plugins import SOURCE_GROUP, names, source_type\n"
        "for name in names(SOURCE_GROUP):\n    source_type(name)\n"
        "code = run_command(['run'])\n"
        "print('fakes:', code, sorted(m for m in sys.modules if m.rsplit('.', 1)[-1] in ('fake', '_fake')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "fakes: 0 []"
