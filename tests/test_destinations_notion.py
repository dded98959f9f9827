"""Notion against a local API that answers like Notion (2025-09-03): data source resolution,
idempotent page writes, automatic properties, the long layout, rate limits, and faults — 503s,
429 with Retry-After, a terminal 401, and the process killed between the write and its record.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from kpi_collector import Pipeline
from kpi_collector.deliver.engine import DeliveryEngine
from kpi_collector.destinations import Notion, Store
from kpi_collector.destinations.notion.fake import FakeNotion
from kpi_collector.sources.python import Function
from tests.conftest import Waits

TOKEN = "ntn_4242secrettokenvalue"
DAY = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    from kpi_collector.deliver import engine as delivery

    monkeypatch.setattr(delivery, "BACKOFF", 0.01)


@pytest.fixture
def notion() -> Iterator[FakeNotion]:
    with FakeNotion.serve(TOKEN) as fake:
        yield fake


def values() -> dict[str, float]:
    return {"stars": 1647.0, "forks": 12.0}


def pipeline(tmp_path: Path, destination: Notion, source: object = values) -> Pipeline:
    return Pipeline(
        sources=[Function(source, name="github")],
        destinations=[Store(f"sqlite:///{tmp_path / 'kpi.db'}"), destination],
        kpis={"github.stars": {"title": "GitHub Stargazers"}, "github.forks": {"title": "Forks"}},
        base_dir=tmp_path,
    )


def make(notion: FakeNotion, database: str, **kwargs: object) -> Notion:
    kwargs.setdefault("requests_per_second", 1000)
    kwargs.setdefault("every", "day")
    return Notion(token=TOKEN, database=database, api_url=notion.url, **kwargs)  # type: ignore[arg-type]


def test_wide_page_per_period_with_properties_added(notion: FakeNotion, tmp_path: Path) -> None:
    database = notion.add_database()
    result = pipeline(tmp_path, make(notion, database)).process(now=DAY)
    assert result.exit_code == 0, result.delivery_errors
    assert notion.schema(database) == {
        "Name": "title",
        "Date": "date",
        "Period": "rich_text",
        "GitHub Stargazers": "number",
        "Forks": "number",
    }
    assert notion.rows(database) == [
        {
            "Name": "2026-11-30",
            "Date": "2026-11-30",
            "Period": "2026-11-30",
            "GitHub Stargazers": 1647.0,
            "Forks": 12.0,
        }
    ]
    # every page is created under the data source, as API 2025-09-03 requires
    assert all(p["source"] == notion.source_of(database) for p in notion.pages.values())


def test_database_url_and_new_kpis(notion: FakeNotion, tmp_path: Path) -> None:
    database = notion.add_database()
    url = f"https://www.notion.so/acme/KPIs-{database}?v=0123456789abcdef0123456789abcdef"
    state = {"stars": 1.0}
    p = pipeline(tmp_path, make(notion, url), lambda: dict(state))
    assert p.process(now=DAY).exit_code == 0
    state["issues"] = 5.0  # a KPI appears: its property is added, the same page is updated
    assert p.process(now=DAY + timedelta(hours=1)).exit_code == 0
    assert notion.schema(database)["github.issues"] == "number"
    rows = notion.rows(database)
    assert len(rows) == 1 and rows[0]["github.issues"] == 5.0


def test_long_layout_one_page_per_kpi_and_period(notion: FakeNotion, tmp_path: Path) -> None:
    database = notion.add_database()
    state = {"stars": 1.0, "forks": 2.0}
    p = pipeline(tmp_path, make(notion, database, layout="long"), lambda: dict(state))
    assert p.process(now=DAY).exit_code == 0
    state["stars"] = 3.0
    assert p.process(now=DAY + timedelta(hours=2)).exit_code == 0
    rows = sorted(notion.rows(database), key=lambda r: r["KPI"])
    assert [(r["Name"], r["KPI"], r["Value"], r["Period"]) for r in rows] == [
        ("Forks", "github.forks", 2.0, "2026-11-30"),
        ("GitHub Stargazers", "github.stars", 3.0, "2026-11-30"),
    ]


def test_three_503s_are_retried_within_the_run(notion: FakeNotion, tmp_path: Path) -> None:
    database = notion.add_database()
    notion.fail_next(503, "service_unavailable", "Notion is unavailable.", times=3)
    p = pipeline(tmp_path, make(notion, database, retries=3))
    result = p.process(now=DAY)
    assert result.exit_code == 0, result.delivery_errors
    assert len(notion.rows(database)) == 1
    (record,) = p.delivery_engine().records()
    assert (record.status, record.attempts) == ("done", 4)


def test_429_waits_for_retry_after(notion: FakeNotion, tmp_path: Path, waits: Waits) -> None:
    database = notion.add_database()
    notion.fail_next(
        429,
        "rate_limited",
        "You have been rate limited. Please try again in a few minutes.",
        headers={"Retry-After": "1"},
    )
    result = pipeline(tmp_path, make(notion, database)).process(now=DAY)
    assert result.exit_code == 0
    assert max(waits.asked) >= 1.0
    assert len(notion.rows(database)) == 1


def test_long_retry_after_leaves_it_pending(
    notion: FakeNotion, tmp_path: Path, waits: Waits
) -> None:
    database = notion.add_database()
    notion.fail_next(429, "rate_limited", "rate limited", headers={"Retry-After": "3600"})
    result = pipeline(tmp_path, make(notion, database)).process(now=DAY)
    assert not [w for w in waits.asked if w > 1]  # paced, but never waited for the hour
    assert result.exit_code == 1
    assert "retry after 3600s" in result.delivery_errors["notion"]


def test_bad_token_is_terminal_and_says_how_to_fix(notion: FakeNotion, tmp_path: Path) -> None:
    database = notion.add_database()
    destination = Notion(
        token="ntn_wrong_token_value", database=database, api_url=notion.url, every="day"
    )
    p = pipeline(tmp_path, destination)
    result = p.process(now=DAY)
    message = result.delivery_errors["notion"]
    assert "401" in message and "check `token`" in message
    (record,) = p.delivery_engine().records()
    assert (record.status, record.attempts) == ("pending", 1)  # not retried within the run
    assert "ntn_wrong_token_value" not in message


def test_unshared_database_is_terminal(notion: FakeNotion, tmp_path: Path) -> None:
    result = pipeline(tmp_path, make(notion, "0" * 32)).process(now=DAY)
    assert "not shared with the integration" in result.delivery_errors["notion"]


def test_property_of_another_type_is_a_clear_error(notion: FakeNotion, tmp_path: Path) -> None:
    database = notion.add_database()
    source = notion.sources[notion.source_of(database)]
    source["properties"]["Forks"] = {
        "id": "abcd",
        "name": "Forks",
        "type": "rich_text",
        "rich_text": {},
    }
    result = pipeline(tmp_path, make(notion, database)).process(now=DAY)
    assert "'Forks' is a rich_text property, not number" in result.delivery_errors["notion"]


def test_several_data_sources_need_a_choice(notion: FakeNotion, tmp_path: Path) -> None:
    database = notion.add_database(sources=("Weekly", "Daily"))
    result = pipeline(tmp_path, make(notion, database)).process(now=DAY)
    assert "choose one with `data_source: NAME`" in result.delivery_errors["notion"]
    result = pipeline(tmp_path, make(notion, database, data_source="Daily")).process(now=DAY)
    assert result.exit_code == 0
    daily = [s for s, v in notion.sources.items() if v["name"] == "Daily"]
    assert [p["source"] for p in notion.pages.values()] == daily


def test_requests_are_paced(notion: FakeNotion, tmp_path: Path, waits: Waits) -> None:
    database = notion.add_database()
    result = pipeline(tmp_path, make(notion, database, requests_per_second=10)).process(now=DAY)
    assert result.exit_code == 0
    assert len(notion.requests) >= 4
    # on a clock that only the waits move, every request after the first waits its 0.1 s
    assert waits.asked == [pytest.approx(0.1)] * (len(notion.requests) - 1)


def test_killed_between_write_and_record_does_not_duplicate(
    notion: FakeNotion, tmp_path: Path
) -> None:
    """The process dies after Notion created the page but before the store marked it done: the
    next run finds the page by its period and updates it."""
    database = notion.add_database()
    (tmp_path / "kpis_for_test.py").write_text(
        "def github():\n    return {'stars': 1647, 'forks': 12}\n", encoding="utf-8"
    )
    (tmp_path / "kpi.yaml").write_text(
        f"""
store: sqlite:///kpi.db
kpis:
  github.stars: {{title: GitHub Stargazers}}
sources:
  - {{name: github, type: python, function: "kpis_for_test:github"}}
destinations:
  - {{type: notion, token: "${{NOTION_TOKEN}}", database: {database}, api_url: "{notion.url}", every: day}}
""",
        encoding="utf-8",
    )
    env = {**os.environ, "NOTION_TOKEN": TOKEN, "PYTHONPATH": str(tmp_path)}
    kpi = [sys.executable, "-m", "kpi_collector", "-c", str(tmp_path / "kpi.yaml")]
    holder: dict[str, subprocess.Popen[bytes]] = {}
    notion.after_write = lambda: holder["process"].kill()
    holder["process"] = subprocess.Popen(
        [*kpi, "run"], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    holder["process"].communicate(timeout=60)
    assert holder["process"].returncode == -9  # killed by the fake, right after the write
    assert len(notion.rows(database)) == 1
    store = Store(f"sqlite:///{tmp_path / 'kpi.db'}").open()
    engine = DeliveryEngine(store, [])
    (record,) = engine.records()
    assert record.status == "pending"  # recorded before the attempt, never marked done

    done = subprocess.run(
        [*kpi, "deliver"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "delivered notion" in done.stdout
    rows = notion.rows(database)
    assert len(rows) == 1 and rows[0]["GitHub Stargazers"] == 1647
    assert [r.status for r in engine.records()] == ["done"]
    again = subprocess.run(
        [*kpi, "run"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert len(notion.rows(database)) == 1
    assert TOKEN not in done.stdout + done.stderr + again.stdout + again.stderr


def test_a_notion_that_does_not_answer_in_time_leaves_it_pending(
    notion: FakeNotion, tmp_path: Path
) -> None:
    """Every request times out (the fake answers after 3 s, the destination waits 0.3 s):
    a transient failure, retried within the run, then left pending with a message that says
    it timed out; nothing is written twice when Notion answers again."""
    database = notion.add_database()
    notion.delay = 3.0
    p = pipeline(tmp_path, make(notion, database, timeout=0.3, retries=1))
    result = p.process(now=DAY)
    assert result.exit_code == 1
    message = result.delivery_errors["notion"]
    assert "timed out" in message and TOKEN not in message
    (record,) = p.delivery_engine().records()
    assert (record.status, record.attempts) == ("pending", 2)
    notion.delay = 0.0
    assert p.process(now=DAY, deliver=True).exit_code == 0
    assert len(notion.rows(database)) == 1


def test_text_over_2000_characters_is_split_into_rich_text_objects_not_cut(
    notion: FakeNotion, tmp_path: Path
) -> None:
    """issue 18 §2: Notion takes 2000 characters per rich text object (the fake refuses more,
    as Notion does): a 4,500-character title goes out as several objects, read back whole,
    and a re-run finds the page by its KPI id (the longest the store keeps) again."""
    database = notion.add_database()
    metric = "m" * 193  # the KPI id github.<metric> is 200 characters, the store's longest
    kpi = f"github.{metric}"
    title = "T" * 4500
    p = Pipeline(
        sources=[Function(lambda: {metric: 5.0}, name="github")],
        destinations=[
            Store(f"sqlite:///{tmp_path / 'kpi.db'}"),
            make(notion, database, layout="long", every="day"),
        ],
        kpis={kpi: {"title": title}},
        base_dir=tmp_path,
    )
    assert p.process(now=DAY).delivery_errors == {}
    assert p.process(now=DAY + timedelta(hours=1)).delivery_errors == {}
    (row,) = notion.rows(database)
    assert (row["Name"], row["KPI"], row["Value"]) == (title, kpi, 5.0)


def test_text_over_notions_100_objects_is_refused_for_good(
    notion: FakeNotion, tmp_path: Path
) -> None:
    database = notion.add_database()
    p = pipeline(tmp_path, make(notion, database, layout="long", every="run"))
    p.kpis["github.stars"].title = "T" * 200_001  # 101 objects of 2000
    result = p.process(now=DAY)
    assert result.delivery_errors["notion"].startswith(
        "run:1: a Notion text of 200,001 characters is over Notion's 200,000 per property "
        "(100 rich text objects of 2,000): shorten the KPI's title or id"
    )
    (record,) = p.delivery_engine().records()
    assert record.status == "failed"


def test_notions_size_refusal_is_named_and_refused_for_good(notion: FakeNotion) -> None:
    """What Notion answers to 2001 characters in one rich text object reaches the error,
    as a size limit and a refusal of this payload (not a retry)."""
    import asyncio

    from kpi_collector.errors import DeliveryError

    database = notion.add_database()
    destination = make(notion, database)

    async def write() -> None:
        async with destination.client() as api:
            source = notion.source_of(database)
            await api.create_page(
                source, {"Name": {"title": [{"type": "text", "text": {"content": "x" * 2001}}]}}
            )

    with pytest.raises(DeliveryError) as caught:
        asyncio.run(write())
    assert caught.value.refused and not caught.value.transient
    assert str(caught.value) == (
        "Notion answered HTTP 400 validation_error: over one of Notion's size limits — body "
        "failed validation: body.properties.Name.title[0].text.content.length should be ≤ "
        "`2000`, instead was `2001`."
    )


def test_a_long_layout_delivery_is_paced_through_429s_in_one_run(
    notion: FakeNotion, tmp_path: Path
) -> None:
    """issue 18 §5: 80 pages against a Notion that allows 20 requests a second (the client set
    to outrun it): the 429s after pages went through are pacing — wait `Retry-After`, go on
    after the pages written — and the delivery finishes in this one run."""
    notion.rate_limit = (20, 1.0)
    database = notion.add_database()
    metrics = {f"kpi_{i:02d}": float(i) for i in range(80)}
    p = Pipeline(
        sources=[Function(lambda: dict(metrics), name="github")],
        destinations=[
            Store(f"sqlite:///{tmp_path / 'kpi.db'}"),
            make(notion, database, layout="long", retries=1),
        ],
        base_dir=tmp_path,
    )
    result = p.process(now=DAY)
    assert result.delivery_errors == {}
    assert notion.rate_limited >= 2  # 80 pages at 20 a second: several 429s on the way
    rows = notion.rows(database)
    assert sorted((r["KPI"], r["Value"]) for r in rows) == sorted(
        (f"github.kpi_{i:02d}", float(i)) for i in range(80)
    )  # each page once: none written twice after a 429
    (record,) = p.delivery_engine().records()
    assert (record.status, record.progress) == ("done", 80)


def test_a_wide_row_over_notions_500kb_per_request_is_split_over_create_and_updates(
    notion: FakeNotion, tmp_path: Path
) -> None:
    """issue 18 §2: Notion takes at most 500KB per request (the fake refuses more, as Notion
    does). 5,000 KPIs with 100-character ids make a wide row of about 600KB and a schema
    update of about 750KB: both go out in several requests under the limit, the row holds
    every value, and a re-run of the period updates that one row."""
    database = notion.add_database()
    metrics = {f"kpi_{i:05d}_" + "x" * 86: float(i) for i in range(5000)}
    state = {"bump": 0.0}
    p = Pipeline(
        sources=[
            Function(lambda: {k: v + state["bump"] for k, v in metrics.items()}, name="github")
        ],
        destinations=[Store(f"sqlite:///{tmp_path / 'kpi.db'}"), make(notion, database)],
        base_dir=tmp_path,
    )
    assert p.process(now=DAY).delivery_errors == {}
    writes = [(m, path) for _, m, path in notion.requests if path.startswith("/v1/pages")]
    assert writes[0] == ("POST", "/v1/pages") and len(writes) >= 2  # a create, then updates
    assert all(m == "PATCH" for m, _ in writes[1:])
    schema_updates = [
        m for _, m, path in notion.requests if m == "PATCH" and "data_sources" in path
    ]
    assert len(schema_updates) >= 2
    assert 400_000 < notion.largest_body <= 500_000
    (row,) = notion.rows(database)
    assert {k: v for k, v in row.items() if k.startswith("github.")} == {
        f"github.{k}": v for k, v in metrics.items()
    }
    assert (row["Name"], row["Period"]) == ("2026-11-30", "2026-11-30")

    state["bump"] = 1.0
    assert p.process(now=DAY + timedelta(hours=1)).delivery_errors == {}
    (row,) = notion.rows(database)
    assert row[f"github.kpi_04999_{'x' * 86}"] == 5000.0


def test_notion_refuses_a_request_over_500kb_with_its_validation_error(
    notion: FakeNotion,
) -> None:
    """The fake answers a body over 500KB as Notion documents it (400 validation_error), and
    the destination calls it a size limit, refused for good."""
    import asyncio

    from kpi_collector.errors import DeliveryError

    database = notion.add_database()
    destination = make(notion, database)
    properties = {f"p{i:05d}" + "y" * 100: {"number": 1.0} for i in range(5000)}

    async def write() -> None:
        async with destination.client() as api:
            await api.create_page(notion.source_of(database), properties)

    with pytest.raises(DeliveryError) as caught:
        asyncio.run(write())
    assert caught.value.refused and not caught.value.transient
    assert str(caught.value).startswith(
        "Notion answered HTTP 400 validation_error: over one of Notion's size limits — body "
        "failed validation: body.length should be ≤ `500000`, instead was `"
    )
    assert notion.pages == {}


def test_a_property_alone_over_the_request_limit_is_refused_naming_the_fix() -> None:
    from kpi_collector.destinations.notion import split_properties
    from kpi_collector.errors import DeliveryError

    fixed = {"Name": {"title": [{"type": "text", "text": {"content": "2026-11-30"}}]}}
    # the parent and Name take 170 bytes of JSON, each KPI 23 (`"k0": {"number": 0.0}, `):
    # two KPIs fit in 220 (216), three do not (239)
    kpis = {f"k{i}": {"number": float(i)} for i in range(6)}
    parts = split_properties(kpis, fixed, what="one row", budget=220)
    assert [sorted(set(p) - {"Name"}) for p in parts] == [["k0", "k1"], ["k2", "k3"], ["k4", "k5"]]
    assert all(p["Name"] == fixed["Name"] for p in parts)
    with pytest.raises(DeliveryError) as caught:
        split_properties({"T" * 200: {"number": 1.0}}, fixed, what="one row", budget=220)
    assert caught.value.refused
    assert str(caught.value) == (
        f"one row: the property {'T' * 200!r} alone is 221 bytes, over Notion's 500,000 bytes "
        "per request: shorten the KPI's title, or use `layout: long` (a page per KPI)"
    )


def test_an_emoji_title_is_split_by_notions_utf16_count(notion: FakeNotion, tmp_path: Path) -> None:
    """Notion counts a rich text object's 2000 characters in UTF-16 code units, as JavaScript
    does: an emoji (past U+FFFF) is 2. A title of 1,500 rockets went out as one object of
    1,500 Python characters — 3,000 to Notion, which refused the row every run. Objects are cut
    by Notion's count, never inside a character, and read back whole."""
    database = notion.add_database()
    title = "🚀" * 1500 + "é" * 10 + "📈" * 1001
    p = Pipeline(
        sources=[Function(lambda: {"stars": 5.0}, name="github")],
        destinations=[
            Store(f"sqlite:///{tmp_path / 'kpi.db'}"),
            make(notion, database, layout="long", every="day"),
        ],
        kpis={"github.stars": {"title": title}},
        base_dir=tmp_path,
    )
    assert p.process(now=DAY).delivery_errors == {}
    (row,) = notion.rows(database)
    assert (row["Name"], row["Value"]) == (title, 5.0)


@pytest.mark.parametrize("on", ["/query", "/pages"])
def test_an_error_object_in_a_200_answer_is_no_success(
    notion: FakeNotion, tmp_path: Path, on: str
) -> None:
    """An answer whose `object` is not what was asked for (Notion's error object passed on
    with a 200, by a gateway in between) was read as a success: a query's as "no page for
    this period" (a second page: the period's row twice), a create's as the page written.
    It is Notion's error (retried when its code is transient) and the period keeps one
    page with its values."""
    database = notion.add_database()
    state = values()
    p = pipeline(tmp_path, make(notion, database), lambda: dict(state))
    assert p.process(now=DAY).exit_code == 0
    state["stars"] = 1700.0
    notion.fail_next(200, "service_unavailable", "Notion is unavailable.", on=on)
    result = p.process(now=DAY + timedelta(hours=1))
    assert result.delivery_errors == {} and not notion.faults
    rows = notion.rows(database)
    assert len(rows) == 1 and rows[0]["GitHub Stargazers"] == 1700.0


@pytest.mark.parametrize(
    ("keys", "said"),
    [
        ("date_property: Period", "date_property and period_property are both 'Period'"),
        ("layout: long, value_property: KPI", "kpi_property and value_property are both 'KPI'"),
        ("layout: long, kpi_property: Date", "date_property and kpi_property are both 'Date'"),
    ],
)
def test_two_of_its_own_properties_of_one_name_are_a_config_error(
    tmp_path: Path, keys: str, said: str
) -> None:
    """`date_property: Period` named the period's property too: each page's date was written
    over by its period (one property of one name) without a word. Each of the properties the
    destination writes besides the KPIs' needs its own name, said at load."""
    from kpi_collector.config import load_config
    from kpi_collector.errors import ConfigError

    config = tmp_path / "kpi.yaml"
    config.write_text(
        "sources:\n  - {name: app, type: python, function: 'os:getpid'}\n"
        "destinations:\n"
        f"  - {{type: notion, token: secret-token-123, database: {'a' * 32}, {keys}}}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert said in str(caught.value)
    wide = Notion(token="secret-token-123", database="a" * 32, kpi_property="Date")
    assert wide.kpi_property == "Date"  # the wide layout writes no KPI property
