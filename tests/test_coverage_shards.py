"""scripts/coverage_shards.py (`make coverage`) splits the suite into shards of about equal size."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _script():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(
        "coverage_shards", ROOT / "scripts" / "coverage_shards.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_test_file_lands_in_exactly_one_shard_of_about_equal_size() -> None:
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_*.py"))
    groups = _script().shards(files, 3)
    assert len(groups) == 3
    assert sorted(f for g in groups for f in g) == files
    assert all(g == sorted(g) for g in groups)
    sizes = [sum((ROOT / f).stat().st_size for f in g) for g in groups]
    largest = max((ROOT / f).stat().st_size for f in files)
    assert max(sizes) - min(sizes) <= largest  # greedy: never off by more than one file


def test_fewer_targets_than_jobs_make_fewer_shards() -> None:
    shards = _script().shards
    assert shards(["tests/test_cli.py"], 3) == [["tests/test_cli.py"]]
    assert shards(["tests/test_cli.py::test_a", "tests/test_cli.py::test_b"], 1) == [
        ["tests/test_cli.py::test_a", "tests/test_cli.py::test_b"]
    ]
