"""`csv`, `jsonl`, `parquet`: wide and long layouts, a KPI missing from a re-run keeping its
value, the CSV text, a file that is not ours.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from kpi_collector.destinations import (
    CSV,
    JSONL,
    Parquet,
)
from tests.destinations import DAY, pipeline

pytestmark = pytest.mark.usefixtures("fast_delivery_retries")


@pytest.mark.parametrize("cls", [CSV, JSONL, Parquet])
def test_files_wide_keep_kpis_missing_from_a_rerun(cls: type[CSV], tmp_path: Path) -> None:
    state = {"stars": 10.0, "forks": 2.0}
    path = tmp_path / f"k.{cls.type}"
    p = pipeline(tmp_path, cls(path=str(path), every="day"), state)
    assert p.process(now=DAY).exit_code == 0
    del state["forks"]  # e.g. `kpi run --only` or a failing metric
    state["stars"] = 11.0
    assert p.process(now=DAY + timedelta(hours=1)).exit_code == 0
    rows = cls(path=str(path)).read(path)
    assert len(rows) == 1
    assert float(rows[0]["github.stars"]) == 11 and float(rows[0]["github.forks"]) == 2
    assert rows[0]["period"] == "2026-11-30" and rows[0]["date"] == "2026-11-30"


@pytest.mark.parametrize("cls", [CSV, JSONL, Parquet])
def test_files_long_layout(cls: type[CSV], tmp_path: Path) -> None:
    state = {"stars": 10.0, "forks": 2.0}
    path = tmp_path / f"k.{cls.type}"
    p = pipeline(tmp_path, cls(path=str(path), every="day", layout="long"), state)
    p.process(now=DAY)
    state["stars"] = 12.0
    p.process(now=DAY + timedelta(hours=1))
    p.process(now=DAY + timedelta(days=1))
    rows = cls(path=str(path)).read(path)
    got = sorted((r["period"], r["kpi"], float(r["value"])) for r in rows)
    assert got == [
        ("2026-11-30", "github.forks", 2.0),
        ("2026-11-30", "github.stars", 12.0),
        ("2026-12-01", "github.forks", 2.0),
        ("2026-12-01", "github.stars", 12.0),
    ]
    assert {r["title"] for r in rows} == {"GitHub Stargazers", "github.forks"}


def test_csv_text(tmp_path: Path) -> None:
    pipeline(tmp_path, CSV(path="kpis.csv", every="day"), {"stars": 1647.0, "ratio": 0.25}).process(
        now=DAY
    )
    assert (
        tmp_path / "kpis.csv"
    ).read_text() == "period,date,github.stars,github.ratio\n2026-11-30,2026-11-30,1647,0.25\n"


def test_a_file_that_is_not_ours_is_a_terminal_error(tmp_path: Path) -> None:
    (tmp_path / "kpis.jsonl").write_text("[1, 2, 3]\n")
    result = pipeline(tmp_path, JSONL(path="kpis.jsonl", every="day"), {"stars": 1.0}).process(
        now=DAY
    )
    assert "move it away or point `path` elsewhere" in result.delivery_errors["jsonl"]
    assert (tmp_path / "kpis.jsonl").read_text() == "[1, 2, 3]\n"  # untouched
