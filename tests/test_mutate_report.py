"""scripts/mutate.py (`make mutate`): the report keeps the rows of modules not run here."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("mutate", ROOT / "scripts" / "mutate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutate"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_a_report_of_one_module_keeps_the_other_modules_rows_and_survivors() -> None:
    """`scripts/mutate.py numbers --report` in a checkout that ran only numbers used to drop
    the seven other modules' rows from benchmarks/MUTATION.md."""
    mutate = _script()
    old = (
        "| module | file | tests run | mutants | equivalent | killed | score |\n"
        "|---|---|---|---|---|---|---|\n"
        "| numbers | `x` | t | 10 | 0 | 1 | 10.0% |\n"
        "| cron | `kpi_collector/config/cron.py` | t | 235 | 15 | 214 | 97.3% |\n"
        "## Survivors\n"
        "- `kpi_collector.config.cron.x__fields__mutmut_9` (survived)\n"
        "- `kpi_collector.collect.numbers.x__value__mutmut_1` (survived)\n"
    )
    found = {
        "kpi_collector.collect.numbers.x__value__mutmut_1": "killed",
        "kpi_collector.collect.numbers.x__value__mutmut_2": "survived",
    }
    new = mutate.report({"numbers": found}, old)
    lines = new.splitlines()
    assert "| cron | `kpi_collector/config/cron.py` | t | 235 | 15 | 214 | 97.3% |" in lines
    assert "- `kpi_collector.config.cron.x__fields__mutmut_9` (survived)" in lines
    numbers = [ln for ln in lines if ln.startswith("| numbers | ")]
    assert numbers == [
        "| numbers | `kpi_collector/collect/numbers.py` | test_numbers_extract.py, "
        "test_numbers_locale.py | 2 | 0 | 1 | 50.0% |"
    ]
    assert "- `kpi_collector.collect.numbers.x__value__mutmut_1` (survived)" not in lines
    assert "- `kpi_collector.collect.numbers.x__value__mutmut_2` (survived)" in lines
    # the modules keep the order of MODULES, numbers first
    assert lines.index(numbers[0]) < lines.index(
        "| cron | `kpi_collector/config/cron.py` | t | 235 | 15 | 214 | 97.3% |"
    )
