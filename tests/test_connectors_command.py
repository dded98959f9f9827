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


def test_numbers_on_separate_lines_are_never_read_as_one() -> None:
    """A program's output is lines, not HTML: `12` and `374` printed on two lines (or in a
    JSON string) are two numbers, an error, never 12374; a line of text before the one
    number is fine."""
    result = run(
        Command(name="two", command=[sys.executable, "-c", "print(12); print(374)"]),
        Command(name="crlf", command=[sys.executable, "-c", "print('12\\r\\n374', end='')"]),
        Command(name="log", command=[sys.executable, "-c", "print('Loading...'); print('1,234')"]),
        Command(name="j", command=[sys.executable, "-c", 'print(\'{"a": "12\\\\n374", "b": 5}\')']),
    )
    assert result.values == {"log.value": 1234, "j.b": 5}
    assert "more than one number" in result.errors["two"]
    assert "more than one number" in result.errors["crlf"]
    assert "more than one number" in result.errors["j.a"]
