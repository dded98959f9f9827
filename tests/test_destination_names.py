"""issue 18 §1: two KPIs never share one column, property, header, field or metric name in a
destination. The config's KPIs are checked at load (`kpi validate` names both, exit 2); KPIs
only known at run time make the delivery refused (`failed`, later periods go on) instead of
one value silently overwriting the other.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from kpi_collector import Pipeline
from kpi_collector.destinations import SQL, Notion, Store
from kpi_collector.destinations.notion.fake import FakeNotion
from kpi_collector.sources.python import Function
from tests.destinations import DAY
from tests.services import require_postgres_url

pytestmark = pytest.mark.usefixtures("fast_delivery_retries")


def validate(folder: Path, config: str) -> subprocess.CompletedProcess[str]:
    (folder / "kpi.yaml").write_text(config, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}
    env["NOTION_TOKEN"] = "ntn_test"
    return subprocess.run(
        [sys.executable, "-m", "kpi_collector", "validate"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def command(name: str, metric: str) -> str:
    return f"  - {{name: {name}, type: command, command: [echo, '1'], metric: {metric!r}}}\n"


def test_validate_names_both_kpis_of_one_notion_property(tmp_path: Path) -> None:
    result = validate(
        tmp_path,
        "kpis:\n  gh_main.a: {title: Stars}\n  gh_docs.a: {title: Stars}\n"
        f"sources:\n{command('gh_main', 'a')}{command('gh_docs', 'a')}"
        "destinations:\n  - {type: notion, token: '${NOTION_TOKEN}', "
        "database: 0123456789abcdef0123456789abcdef}\n",
    )
    assert result.returncode == 2, result.stderr
    assert "KPIs gh_main.a and gh_docs.a both map to property 'Stars'" in result.stderr
    fixed = validate(
        tmp_path,
        "kpis:\n  gh_main.a: {title: Stars}\n  gh_docs.a: {title: Docs stars}\n"
        f"sources:\n{command('gh_main', 'a')}{command('gh_docs', 'a')}"
        "destinations:\n  - {type: notion, token: '${NOTION_TOKEN}', "
        "database: 0123456789abcdef0123456789abcdef}\n",
    )
    assert fixed.returncode == 0, fixed.stderr


@pytest.mark.parametrize(
    ("first", "second", "column"),
    [("Revenue", "revenue", "fin_revenue"), ("rev-x", "rev_x", "fin_rev_x")],
)
def test_validate_names_both_kpis_of_one_sql_column(
    tmp_path: Path, first: str, second: str, column: str
) -> None:
    result = validate(
        tmp_path,
        "sources:\n  - {name: fin, type: command, command: [echo, '{}'], metrics: "
        f"{{{first!r}: {{jmespath: a}}, {second!r}: {{jmespath: b}}}}}}\n"
        "destinations:\n  - {type: sql, url: 'sqlite:///w.db', table: kpis}\n",
    )
    assert result.returncode == 2, result.stderr
    assert f"KPIs fin.{first} and fin.{second} both map to column {column!r}" in result.stderr


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sql_run_time_collision_is_refused_and_later_periods_go_on(
    tmp_path: Path, backend: str
) -> None:
    url = f"sqlite:///{tmp_path / 'w.db'}" if backend == "sqlite" else require_postgres_url()
    table = f"kpi_clash_{tmp_path.name[-8:].replace('-', '_')}".lower()
    state = {"Revenue": 5.0, "revenue": 1.0}
    pipeline = Pipeline(
        sources=[Function(lambda: dict(state), name="fin")],
        destinations=[
            Store(f"sqlite:///{tmp_path / 'kpi.db'}"),
            SQL(url=url, table=table, every="run", retries=0),
        ],
        base_dir=tmp_path,
    )
    engine = sa.create_engine(url)
    try:
        result = pipeline.process(now=DAY)
        assert result.delivery_errors["sql"] == (
            "run:1: sql destination 'sql': KPIs fin.Revenue and fin.revenue both map to column "
            "'fin_revenue'; rename one (column names are ids in lower case, other characters "
            "than letters and digits as `_`, cut to 60) (refused for good: marked failed; "
            "`kpi deliver --retry` resends it)"
        )
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table(table)  # nothing half-written
        state.pop("Revenue")
        later = pipeline.process(now=DAY.replace(hour=DAY.hour + 1))
        assert "sql" not in later.delivery_errors
        with engine.connect() as conn:
            rows = conn.execute(sa.text(f"SELECT fin_revenue FROM {table}")).all()
        assert [tuple(r) for r in rows] == [(1.0,)]
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()


def test_notion_run_time_collision_is_refused(tmp_path: Path) -> None:
    with FakeNotion.serve("ntn_test_token") as notion:
        destination = Notion(
            token="ntn_test_token",
            database=notion.add_database(),
            api_url=notion.url,
            every="run",
            retries=0,
        )
        pipeline = Pipeline(
            sources=[Function(lambda: {"a": 5.0, "b": 1.0}, name="gh")],
            destinations=[Store(f"sqlite:///{tmp_path / 'kpi.db'}"), destination],
            kpis={"gh.a": {"title": "Stars"}, "gh.b": {"title": "Stars"}},
            base_dir=tmp_path,
        )
        result = pipeline.process(now=DAY)
        assert "KPIs gh.a and gh.b both map to property 'Stars'" in result.delivery_errors["notion"]


def test_every_destination_naming_by_kpi_keeps_names_apart() -> None:
    """The collision kind over every destination type: where a destination names columns,
    properties or headers by KPI, two KPIs with one title (or one folded id) are caught by
    `kpi_names`; the others name by the (unique) id or by nothing."""
    from kpi_collector.config.plugins import DESTINATION_GROUP, destination_type, names
    from kpi_collector.destinations.base import name_collision

    kpis = ["gh_main.a", "gh_docs.a", "fin.Revenue", "fin.revenue"]
    titles = {"gh_main.a": "Stars", "gh_docs.a": "Stars"}
    caught: dict[str, tuple[str, str, str] | None] = {}
    for kind in names(DESTINATION_GROUP):
        cls = destination_type(kind)
        wide = {"layout": "wide"} if "layout" in cls.model_fields else {}
        destination = cls.model_construct(**wide)  # no service: only the naming rule runs
        names = destination.kpi_names(kpis, titles)
        caught[kind] = name_collision(names)
        assert names == {} or set(names) == set(kpis)
    assert caught["notion"] == ("gh_main.a", "gh_docs.a", "Stars")
    assert caught["google_sheets"] == ("gh_main.a", "gh_docs.a", "Stars")
    assert caught["sql"] == ("fin.Revenue", "fin.revenue", "fin_revenue")
    assert {k for k, v in caught.items() if v} == {"notion", "google_sheets", "sql"}


def test_validate_refuses_a_derived_kpi_named_like_a_column_the_destination_writes(
    tmp_path: Path,
) -> None:
    """A formula KPI may have any id: `period` would overwrite the csv's own `period` column."""
    result = validate(
        tmp_path,
        "kpis:\n  period: {formula: 'fin.a * 2'}\n"
        f"sources:\n{command('fin', 'a')}"
        "destinations:\n  - {type: csv, path: out.csv}\n",
    )
    assert result.returncode == 2, result.stderr
    assert "KPI period maps to column 'period', which the destination writes itself" in (
        result.stderr
    )
    long = validate(
        tmp_path,
        "kpis:\n  period: {formula: 'fin.a * 2'}\n"
        f"sources:\n{command('fin', 'a')}"
        "destinations:\n  - {type: csv, path: out.csv, layout: long}\n",
    )
    assert long.returncode == 0, long.stderr  # long names nothing by KPI


def test_csv_run_time_clash_with_its_own_column_is_refused_and_writes_nothing(
    tmp_path: Path,
) -> None:
    from kpi_collector.destinations import CSV

    pipeline = Pipeline(
        sources=[Function(lambda: {"a": 5.0}, name="fin")],
        destinations=[
            Store(f"sqlite:///{tmp_path / 'kpi.db'}"),
            CSV(path="out.csv", every="run", retries=0),
        ],
        kpis={"date": {"formula": "fin.a + 1"}},
        base_dir=tmp_path,
    )
    result = pipeline.process(now=DAY)
    assert result.delivery_errors["csv"].startswith(
        "run:1: csv destination 'csv': KPI date maps to column 'date', which the destination "
        "writes itself; give the KPI another id, or use `layout: long`"
    )
    assert not (tmp_path / "out.csv").exists()
    (record,) = pipeline.delivery_engine().records()
    assert record.status == "failed"


def test_segment_run_time_clash_with_its_period_property_is_refused(tmp_path: Path) -> None:
    from kpi_collector.destinations import Segment
    from kpi_collector.destinations.segment.fake import FakeSegment

    with FakeSegment.serve("seg-write-key") as segment:
        pipeline = Pipeline(
            sources=[Function(lambda: {"a": 5.0}, name="fin")],
            destinations=[
                Store(f"sqlite:///{tmp_path / 'kpi.db'}"),
                Segment(write_key="seg-write-key", api_url=segment.url, retries=0),
            ],
            kpis={"period": {"formula": "fin.a + 1"}},
            base_dir=tmp_path,
        )
        result = pipeline.process(now=DAY)
        assert "KPI period maps to property 'period'" in result.delivery_errors["segment"]
        assert segment.segment == []  # nothing sent
