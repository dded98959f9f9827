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


@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [("utf-8-sig", ","), ("utf-8-sig", ";"), ("utf-8", ";"), ("utf-8", "\t")],
    ids=["bom", "bom-semicolon", "semicolon", "tab"],
)
def test_a_csv_saved_again_by_a_spreadsheet_is_still_ours(
    tmp_path: Path, encoding: str, delimiter: str
) -> None:
    """Excel's "CSV UTF-8" starts the file with a byte order mark, and where the decimal sign
    is a comma it separates with `;`: such a file was "not a csv file this destination wrote"
    (no `period` column) and every later delivery to it failed. It is read, upserted and
    written back the way the spreadsheet saved it, its own cells as they were."""
    path = tmp_path / "kpis.csv"
    state = {"stars": 10.0, "ratio": 0.25}
    p = pipeline(tmp_path, CSV(path="kpis.csv", every="day"), state)
    assert p.process(now=DAY).exit_code == 0
    decimal = "," if delimiter != "," else "."  # as the spreadsheet writes numbers there
    saved = path.read_text(encoding="utf-8").replace(",", delimiter)
    saved = saved.replace("0.25", f"0{decimal}25")
    path.write_text(saved, encoding=encoding, newline="\r\n")
    state["stars"] = 11.0
    result = p.process(now=DAY + timedelta(days=1))
    assert result.exit_code == 0, result.delivery_errors
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") == (encoding == "utf-8-sig")
    lines = raw.decode(encoding).splitlines()
    assert lines == [
        delimiter.join(["period", "date", "github.stars", "github.ratio"]),
        delimiter.join(["2026-11-30", "2026-11-30", "10", f"0{decimal}25"]),
        delimiter.join(["2026-12-01", "2026-12-01", "11", "0.25"]),
    ]


def test_a_csv_behind_a_symlink_is_written_where_the_link_points(tmp_path: Path) -> None:
    """`kpis.csv -> shared/team.csv` (a synced folder): the file was replaced by a new
    regular file, cutting the link, and the file the team reads stopped changing."""
    (tmp_path / "shared").mkdir()
    state = {"stars": 10.0}
    p = pipeline(tmp_path, CSV(path="kpis.csv", every="day"), state)
    p.process(now=DAY)
    (tmp_path / "kpis.csv").rename(tmp_path / "shared" / "team.csv")
    (tmp_path / "kpis.csv").symlink_to(Path("shared") / "team.csv")
    state["stars"] = 11.0
    assert p.process(now=DAY + timedelta(days=1)).exit_code == 0
    assert (tmp_path / "kpis.csv").is_symlink()
    assert (tmp_path / "shared" / "team.csv").read_text().splitlines()[-1] == (
        "2026-12-01,2026-12-01,11"
    )
    assert sorted(p.name for p in (tmp_path / "shared").iterdir()) == [".team.csv.lock", "team.csv"]


@pytest.mark.parametrize("cls", [CSV, JSONL, Parquet])
def test_a_rewritten_file_keeps_its_permissions(cls: type[CSV], tmp_path: Path) -> None:
    """A file the user made private (`chmod 600`, revenue in it) came back as the umask's
    0644 from the temporary file that replaced it: readable by everyone on the machine."""
    path = tmp_path / f"kpis.{cls.type}"
    state = {"stars": 10.0}
    p = pipeline(tmp_path, cls(path=str(path), every="day"), state)
    p.process(now=DAY)
    path.chmod(0o600)
    state["stars"] = 11.0
    assert p.process(now=DAY + timedelta(days=1)).exit_code == 0
    assert len(cls(path=str(path)).read(path)) == 2
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("cls", [CSV, JSONL, Parquet])
def test_a_read_only_file_is_not_replaced(cls: type[CSV], tmp_path: Path) -> None:
    """`chmod a-w kpis.csv` says "do not change this file"; replacing it through its folder
    went around that (and gave it write permission back). Now the delivery stays pending
    with a line that says so, and goes out once the file is writable again."""
    path = tmp_path / f"kpis.{cls.type}"
    state = {"stars": 10.0}
    p = pipeline(tmp_path, cls(path=str(path), every="day"), state)
    p.process(now=DAY)
    before = path.read_bytes()
    path.chmod(0o444)
    state["stars"] = 11.0
    result = p.process(now=DAY + timedelta(days=1))
    assert result.exit_code == 1
    message = result.delivery_errors[cls.type]
    assert "read-only" in message and "chmod u+w" in message and "\n" not in message
    assert cls.type in result.delivery_pending
    assert path.read_bytes() == before and path.stat().st_mode & 0o777 == 0o444
    path.chmod(0o644)
    assert p.deliver_pending()[0].ok
    assert len(cls(path=str(path)).read(path)) == 2


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("{type: csv, path: k.csv}", "{type: csv, name: long, path: ./k.csv, layout: long}"),
        ("{type: csv}", "{type: csv, name: copy, path: out/../kpis.csv, every: day}"),
        ("{type: jsonl, path: k.csv}", "{type: csv, path: k.csv}"),
    ],
)
def test_two_file_destinations_writing_one_file_are_a_config_error(
    tmp_path: Path, first: str, second: str
) -> None:
    """`path: k.csv` and `path: ./k.csv` (say wide and long) rewrote the one file in turn,
    each upserting the other's rows as its own: the second run lost the first run's rows."""
    from kpi_collector.config import load_config
    from kpi_collector.errors import ConfigError

    config = tmp_path / "kpi.yaml"
    config.write_text(
        "sources:\n"
        "  - {name: app, type: command, command: [echo, '1'], metric: users}\n"
        f"destinations:\n  - {first}\n  - {second}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    message = str(caught.value)
    assert message.startswith(f"{config}:5: destination ")
    assert "destinations[0]" in message and "`path`" in message and "\n" not in message
    # the same file name in another folder is another file
    config.write_text(
        config.read_text()
        .replace("path: ./k.csv", "path: other/k.csv")
        .replace("path: out/../kpis.csv", "path: out/kpis.csv")
        .replace("{type: csv, path: k.csv}", "{type: csv, path: k2.csv}")
    )
    assert len(load_config(config).destinations) == 2


@pytest.mark.parametrize("cls", [CSV, JSONL, Parquet])
def test_an_empty_file_is_a_file_without_rows(cls: type[CSV], tmp_path: Path) -> None:
    """`touch kpis.csv` (or a file emptied to start over) was "not a csv file this
    destination wrote (no `period` column)": every delivery to it failed until it was
    deleted. An empty file holds no rows; the delivery writes the first."""
    path = tmp_path / f"kpis.{cls.type}"
    path.touch()
    result = pipeline(tmp_path, cls(path=path.name, every="day"), {"stars": 10.0}).process(now=DAY)
    assert result.exit_code == 0, result.delivery_errors
    [row] = cls(path=path.name).read(path)
    assert float(row["github.stars"]) == 10


def test_a_jsonl_file_saved_with_a_byte_order_mark_is_still_ours(tmp_path: Path) -> None:
    """An editor that saves UTF-8 with a byte order mark (Notepad) made the first line
    unreadable JSON: "not a jsonl file this destination wrote"."""
    path = tmp_path / "kpis.jsonl"
    state = {"stars": 10.0}
    p = pipeline(tmp_path, JSONL(path="kpis.jsonl", every="day"), state)
    p.process(now=DAY)
    path.write_text(path.read_text(encoding="utf-8"), encoding="utf-8-sig")
    state["stars"] = 11.0
    result = p.process(now=DAY + timedelta(days=1))
    assert result.exit_code == 0, result.delivery_errors
    rows = JSONL(path="kpis.jsonl").read(path)
    assert [(r["period"], r["github.stars"]) for r in rows] == [
        ("2026-11-30", 10.0),
        ("2026-12-01", 11.0),
    ]


_FORMULAS = ['=HYPERLINK("http://x","y")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx"]


@pytest.mark.parametrize("layout", ["wide", "long"])
def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_text(
    tmp_path: Path, layout: str
) -> None:
    """A title or KPI id that starts with `=`, `+`, `-`, `@`, a tab or a carriage return was
    written as it was: Excel and Sheets open such a cell as a formula (OWASP, CSV injection).
    Every text cell that starts so gets a leading `'` (shown, never run); numbers, negative
    ones too, stay numbers; the file reads back to the same rows, so a re-run upserts them."""
    import csv

    from kpi_collector import Pipeline
    from kpi_collector.destinations import Store
    from kpi_collector.sources.python import Function

    metrics = {f"m{i}": float(i) for i in range(len(_FORMULAS))}
    metrics["neg"] = -5.0
    metrics["tiny"] = -1.5e-7
    state = dict(metrics)
    p = Pipeline(
        sources=[
            Function(lambda: dict(state), name="app"),
            Function(lambda: {"x": -3.25}, name="=cmd|' /C calc'!A0"),
        ],
        destinations=[
            Store(f"sqlite:///{tmp_path / 'kpi.db'}"),
            CSV(path="kpis.csv", every="day", layout=layout),
        ],
        kpis={f"app.m{i}": {"title": text} for i, text in enumerate(_FORMULAS)},
        base_dir=tmp_path,
    )
    assert p.process(now=DAY).exit_code == 0
    state["neg"] = -6.0
    result = p.process(now=DAY + timedelta(hours=1))
    assert result.exit_code == 0, result.delivery_errors
    path = tmp_path / "kpis.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        cells = [cell for row in csv.reader(handle) for cell in row]
    dangerous = ("=", "+", "-", "@", "\t", "\r")
    for cell in cells:
        if cell.startswith(dangerous):
            float(cell)  # only a number may start so: it stays a number
    assert "-6" in cells and "-3.25" in cells and "-1.5e-07" in cells
    assert "'=cmd|' /C calc'!A0.x" in cells
    if layout == "long":
        assert {f"'{text}" for text in _FORMULAS} <= set(cells)
    rows = CSV(path="kpis.csv").read(path)
    assert len(rows) == (1 if layout == "wide" else len(metrics) + 1)  # upserted, not added
    if layout == "wide":
        assert rows[0]["=cmd|' /C calc'!A0.x"] == "-3.25"
    else:
        titles = {r["kpi"]: r["title"] for r in rows}
        assert titles["app.m0"] == _FORMULAS[0] and titles["=cmd|' /C calc'!A0.x"] == (
            "=cmd|' /C calc'!A0.x"
        )


@pytest.mark.parametrize(
    ("cell", "written"),
    [
        ("-5", "-5"),
        ("-1.5e-07", "-1.5e-07"),
        ("-0,25", "-0,25"),  # a spreadsheet where the decimal sign is a comma saved it
        ("-$1,200.00", "-$1,200.00"),  # ... or a currency-formatted column
        ("-12 %", "-12 %"),
        ("+1", "+1"),
        ("-2+3", "'-2+3"),
        ("-2-3", "'-2-3"),
        ("=1+1", "'=1+1"),
        ("-A1", "'-A1"),
        ("-(1)", "'-(1)"),
        ("@x", "'@x"),
        ("'=x", "''=x"),
        ("plain", "plain"),
    ],
)
def test_spreadsheet_text_escapes_formulas_and_keeps_numbers(cell: str, written: str) -> None:
    from kpi_collector.format import cell_text, spreadsheet_text

    assert spreadsheet_text(cell) == written
    assert cell_text(written) == (cell if written.startswith("'") else written)


@pytest.mark.parametrize("cls", [CSV, JSONL, Parquet])
def test_a_value_of_an_undelivered_run_of_the_period_is_not_lost(
    cls: type[CSV], tmp_path: Path
) -> None:
    """A period's row holds each KPI's newest value of the period: a re-run without a KPI (a
    failing metric, `kpi run --only`) keeps the value the first run wrote. When the first
    run's delivery had not gone out (the file read-only, a service down), the pending row
    moved to the newer run and was written with its values alone: the first run's forks was
    lost for the period. The values of the period's runs not delivered yet are written too,
    the newest of each KPI."""
    path = tmp_path / f"kpis.{cls.type}"
    path.write_bytes(b"")
    path.chmod(0o444)
    state = {"stars": 10.0, "forks": 2.0}
    p = pipeline(tmp_path, cls(path=str(path), every="day"), state)
    assert cls.type in p.process(now=DAY).delivery_pending
    path.chmod(0o644)
    del state["forks"]
    state["stars"] = 11.0
    assert p.process(now=DAY + timedelta(hours=1)).exit_code == 0
    (row,) = cls(path=str(path)).read(path)
    assert float(row["github.stars"]) == 11 and float(row["github.forks"]) == 2


def test_a_wide_parquet_keeps_kpis_named_like_the_long_layouts_text_columns(
    tmp_path: Path,
) -> None:
    """A derived KPI may have an id without a dot (`kpis: {title: {formula: ...}}`): in a wide
    Parquet file its column was typed as text, like the long layout's `kpi` and `title`,
    and 4.0 was written as the string "4.0". Only `period` and `date` are text in a wide
    file; every KPI column holds numbers."""
    from kpi_collector import Pipeline
    from kpi_collector.destinations import Store
    from kpi_collector.sources.python import Function

    path = tmp_path / "kpis.parquet"
    p = Pipeline(
        sources=[Function(lambda: {"x": 2.0}, name="app")],
        destinations=[Store(f"sqlite:///{tmp_path / 'kpi.db'}"), Parquet(path=str(path))],
        kpis={
            "title": {"formula": "app.x * 2"},
            "kpi": {"formula": "app.x * 3"},
            "value": {"formula": "app.x * 4"},
        },
        base_dir=tmp_path,
    )
    assert p.process(now=DAY).exit_code == 0
    (row,) = Parquet(path=str(path)).read(path)
    assert (row["title"], row["kpi"], row["value"], row["app.x"]) == (4.0, 6.0, 8.0, 2.0)


@pytest.mark.parametrize("cls", [CSV, JSONL, Parquet])
def test_a_half_file_left_by_a_crash_is_cleared_by_the_next_write(
    cls: type[CSV], tmp_path: Path
) -> None:
    """A process killed while writing leaves its temporary file (`.kpis.csv.<pid>.tmp`, half
    written) beside the file it would have replaced: the file itself is whole, but every
    crash left one more half file in the folder for good. The next write, holding the lock
    no other writer gets, removes them; other files stay."""
    path = tmp_path / f"kpis.{cls.type}"
    stale = [tmp_path / f".kpis.{cls.type}.{pid}.tmp" for pid in (4242, 99999)]
    for half in stale:
        half.write_bytes(b"period,date,github.st")
    kept = [tmp_path / f".other.{cls.type}.4242.tmp", tmp_path / f"kpis.{cls.type}.4242.tmp"]
    for other in kept:
        other.write_bytes(b"not ours")
    p = pipeline(tmp_path, cls(path=str(path), every="day"), {"stars": 10.0})
    assert p.process(now=DAY).exit_code == 0
    assert [half for half in stale if half.exists()] == []
    assert all(other.read_bytes() == b"not ours" for other in kept)
    assert len(cls(path=str(path)).read(path)) == 1
