"""`type: command`: a program whose stdout is a number or a JSON object of numbers."""

from __future__ import annotations

import sys
from pathlib import Path

from kpi_collector.sources import Command
from tests.fakes.collect import run


def test_command_source(tmp_path: Path) -> None:
    result = run(
        Command(name="n", command=[sys.executable, "-c", "print('12,374')"]),
        Command(name="j", command=[sys.executable, "-c", 'print(\'{"a": 1, "b": "2.5k"}\')']),
        Command(name="f", command=[sys.executable, "-c", "import sys; sys.exit('no data today')"]),
    )
    assert result.values == {"n.value": 12374, "j.a": 1, "j.b": 2500}
    assert "exited with 1: no data today" in result.errors["f"]
