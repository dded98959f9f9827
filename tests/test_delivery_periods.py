"""Which period a delivery is for: deliveries are keyed by these strings, so a wrong key around
New Year or midnight means a duplicated or a missing delivery. Expected keys come from a
calendar by hand (2027-01-01 is a Friday in ISO week 2026-W53; Berlin is UTC+1 in winter,
Los Angeles UTC-8)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from kpi_collector.deliver.engine import DeliveryEngine
from kpi_collector.destinations import CSV
from kpi_collector.run.result import RunResult

NEW_YEAR_EVE_UTC = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)  # 2027-01-01 00:30 in Berlin


def _engine(tz: str, every: str) -> tuple[DeliveryEngine, CSV]:
    destination = CSV(path="out.csv", every=every)  # type: ignore[arg-type]
    return DeliveryEngine(None, [destination], tz=tz), destination


@pytest.mark.parametrize(
    ("tz", "every", "key"),
    [
        ("UTC", "day", "2026-12-31"),
        ("Europe/Berlin", "day", "2027-01-01"),
        ("America/Los_Angeles", "day", "2026-12-31"),
        ("UTC", "week", "2026-W53"),
        ("Europe/Berlin", "week", "2026-W53"),
        ("UTC", "month", "2026-12"),
        ("Europe/Berlin", "month", "2027-01"),
    ],
)
def test_the_period_is_the_local_one(tz: str, every: str, key: str) -> None:
    engine, destination = _engine(tz, every)
    assert engine.period_of(destination, NEW_YEAR_EVE_UTC, 17) == key


def test_a_week_key_across_the_iso_new_year() -> None:
    engine, destination = _engine("UTC", "week")
    monday = datetime(2027, 1, 4, 0, 0, tzinfo=UTC)
    sunday_night = datetime(2027, 1, 3, 23, 59, 59, tzinfo=UTC)
    assert engine.period_of(destination, sunday_night, 1) == "2026-W53"
    assert engine.period_of(destination, monday, 2) == "2027-W01"
    early = datetime(2026, 1, 7, 9, tzinfo=UTC)
    assert engine.period_of(destination, early, 3) == "2026-W02"


def test_every_run_is_keyed_by_run_id_or_start_time() -> None:
    engine, destination = _engine("Europe/Berlin", "run")
    assert engine.period_of(destination, NEW_YEAR_EVE_UTC, 17) == "run:17"
    assert engine.period_of(destination, NEW_YEAR_EVE_UTC, 0) == "run:0"
    # 2026-12-31 23:30 UTC = 1798759800 epoch seconds (by hand: 20818 days * 86400 + 84600)
    assert engine.period_of(destination, NEW_YEAR_EVE_UTC, None) == "run@1798759800"


@pytest.mark.parametrize(
    ("tz", "every", "start"),
    [
        ("Europe/Berlin", "run", date(2027, 1, 1)),
        ("UTC", "run", date(2026, 12, 31)),
        ("Europe/Berlin", "day", date(2027, 1, 1)),
        ("Europe/Berlin", "week", date(2026, 12, 28)),
        ("Europe/Berlin", "month", date(2027, 1, 1)),
        ("America/Los_Angeles", "month", date(2026, 12, 1)),
    ],
)
def test_a_delivery_carries_its_local_period_start(tz: str, every: str, start: date) -> None:
    engine, destination = _engine(tz, every)
    result = RunResult(
        run_id=5,
        started_at=NEW_YEAR_EVE_UTC,
        finished_at=NEW_YEAR_EVE_UTC,
        values={"b": 2.0, "a": 1.0},
        errors={"src": "token=hunter2 refused"},
    )
    delivery = engine.delivery_from_result(destination, result)
    assert delivery.period_start == start
    assert delivery.run_id == 5
    assert delivery.values == {"a": 1.0, "b": 2.0}
    assert delivery.timestamps == {"a": 1798759800.0, "b": 1798759800.0}
    assert delivery.every == every and delivery.destination == destination.name


def test_a_delivery_carries_everything_a_destination_reads(tmp_path: Path) -> None:
    """compare: 14d -> `previous` is the newest value stored at least 14 days before the
    run (100 at -15 days, not 110 at -13 days); errors are redacted; the rest is the
    engine's: zone, KPI specs, store, folder; a new delivery has sent no parts yet."""
    from zoneinfo import ZoneInfo

    from kpi_collector.config.models import KpiSpec
    from kpi_collector.store import HistoryStore

    store = HistoryStore(f"sqlite:///{tmp_path / 'kpi.db'}")
    day = 86400.0
    start = NEW_YEAR_EVE_UTC.timestamp()
    for ts, value in ((start - 15 * day, 100.0), (start - 13 * day, 110.0)):
        run = store.begin_run(started_at=ts)
        store.finish_run(run, observations=[("s.k", ts, value, "s")], finished_at=ts)
    destination = CSV(path="out.csv", every="run", compare="14d")  # type: ignore[arg-type]
    kpis = {"s.k": KpiSpec(title="K")}
    engine = DeliveryEngine(store, [destination], kpis=kpis, tz="Europe/Berlin", base_dir=tmp_path)
    result = RunResult(
        run_id=5,
        started_at=NEW_YEAR_EVE_UTC,
        finished_at=NEW_YEAR_EVE_UTC,
        values={"s.k": 120.0},
        errors={"src": "GET /x?token=abc123 refused"},
    )
    delivery = engine.delivery_from_result(destination, result)
    assert delivery.period == "run:5"
    assert delivery.previous == {"s.k": 100.0}
    assert delivery.compare_days == 14
    assert delivery.errors == [("src", "GET /x?token=*** refused")]
    assert delivery.tz == ZoneInfo("Europe/Berlin")
    assert delivery.now == NEW_YEAR_EVE_UTC
    assert delivery.kpis == kpis and delivery.order == ["s.k"]
    assert delivery.store is store and delivery.base_dir == tmp_path
    assert delivery.progress == 0
    no_compare = CSV(path="out.csv", every="run", name="plain")
    assert (
        DeliveryEngine(store, [no_compare]).delivery_from_result(no_compare, result).previous == {}
    )
    assert (
        DeliveryEngine(None, [destination]).delivery_from_result(destination, result).previous == {}
    )
    store.close()


def test_every_run_rows_and_ids_survive_a_new_store(tmp_path: Path) -> None:
    """Run ids start again at 1 in a new store (kpi.db deleted, or another store URL): the
    `every: run` rows were keyed `run:1`, so the new store's first run overwrote the old
    store's first row in the CSV, JSONL and SQL tables, and a webhook's or Segment's
    idempotency key repeated, so the receiver dropped the new run as a repeat. What a
    destination writes is keyed by the run and when it started."""
    from datetime import timedelta

    import sqlalchemy as sa

    from kpi_collector import Pipeline
    from kpi_collector.destinations import JSONL, SQL, Store, Webhook
    from kpi_collector.destinations.webhook.fake import FakeReceiver
    from kpi_collector.sources.python import Function

    warehouse = f"sqlite:///{tmp_path / 'warehouse.db'}"
    with FakeReceiver.serve("hook-key-0123") as hooks:
        state = {"stars": 1.0}

        def pipeline() -> Pipeline:
            return Pipeline(
                sources=[Function(lambda: dict(state), name="github")],
                destinations=[
                    Store(f"sqlite:///{tmp_path / 'kpi.db'}"),
                    CSV(path="k.csv"),
                    JSONL(path="k.jsonl"),
                    SQL(url=warehouse, table="kpis_every_run"),
                    Webhook(url=hooks.hook_url),
                ],
                base_dir=tmp_path,
            )

        first = datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
        assert pipeline().process(now=first).exit_code == 0
        (tmp_path / "kpi.db").unlink()  # a new store: its first run is run 1 again
        state["stars"] = 2.0
        result = pipeline().process(now=first + timedelta(hours=1))
        assert result.exit_code == 0, result.delivery_errors
        keys = [headers["Idempotency-Key"] for _, headers in hooks.hooks]
    assert len(keys) == 2 and keys[0] != keys[1]
    csv_rows = CSV(path="k.csv").read(tmp_path / "k.csv")
    jsonl_rows = JSONL(path="k.jsonl").read(tmp_path / "k.jsonl")
    engine = sa.create_engine(warehouse)
    with engine.connect() as conn:
        sql_rows = [dict(r._mapping) for r in conn.execute(sa.text("SELECT * FROM kpis_every_run"))]
    engine.dispose()
    for rows, column in (
        (csv_rows, "github.stars"),
        (jsonl_rows, "github.stars"),
        (sql_rows, "github_stars"),
    ):
        assert sorted(float(r[column]) for r in rows) == [1.0, 2.0]
        assert len({r["period"] for r in rows}) == 2
        assert all(str(r["period"]).startswith("run:1") for r in rows)


def _two_sources(tmp_path: Path, *destinations: object, scheduled: bool = False) -> Any:
    """`github` and `pypi` (its own `schedule` when `scheduled`), values 1 and 2."""
    from kpi_collector import Pipeline
    from kpi_collector.destinations import Store
    from kpi_collector.sources.python import Function

    pypi = Function(lambda: {"downloads": 2.0}, name="pypi")
    if scheduled:
        pypi = pypi.model_copy(update={"schedule": "*/15 * * * *"})
    return Pipeline(
        sources=[Function(lambda: {"stars": 1.0}, name="github"), pypi],
        destinations=[Store(f"sqlite:///{tmp_path / 'kpi.db'}"), *destinations],  # type: ignore[list-item]
        timezone="Europe/Berlin",
        base_dir=tmp_path,
    )


def test_a_run_of_some_sources_opens_no_message_period(tmp_path: Path) -> None:
    """`kpi run --only github` on Monday morning opened the weekly digest's period: the week's
    one message went out with github's value alone, and the full run an hour later sent
    nothing. A run of some sources opens no message period now (a table's row for the
    period still gets its values; a message of every run is that run's); the first full
    run of the week sends the message, with every source's value."""
    from datetime import timedelta

    from tests.test_delivery import Recorder

    weekly = Recorder(name="weekly", every="week")
    each = Recorder(name="each")
    table = CSV(path="k.csv", every="week")
    p = _two_sources(tmp_path, weekly, each, table)
    monday = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    assert p.process(only=["github"], now=monday).exit_code == 0
    assert weekly.got == [] and [d.values for d in each.got] == [{"github.stars": 1.0}]
    assert p.delivery_engine().records(destination="weekly") == []
    assert [r["github.stars"] for r in table.read(tmp_path / "k.csv")] == ["1"]
    assert p.process(now=monday + timedelta(hours=1)).exit_code == 0
    assert [(d.period, d.values) for d in weekly.got] == [
        ("2026-W48", {"github.stars": 1.0, "pypi.downloads": 2.0})
    ]


def test_a_run_of_some_sources_never_takes_over_a_pending_message(tmp_path: Path) -> None:
    """The week's message failed (the service was down) and stayed pending with the full
    run's values; a `--only` run later that week moved the pending row to itself, so the
    retry sent one source's value for the whole week. The pending row keeps its full run."""
    from datetime import timedelta

    from kpi_collector.errors import DeliveryError
    from tests.test_delivery import Recorder

    weekly = Recorder(name="weekly", every="week", retries=0)
    weekly.failures.append(DeliveryError("down", transient=True))
    weekly.failures.append(DeliveryError("still down", transient=True))
    p = _two_sources(tmp_path, weekly)
    monday = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    assert p.process(now=monday).exit_code == 1
    assert p.process(only=["pypi"], now=monday + timedelta(days=1)).exit_code == 1
    assert p.deliver_pending() and len(weekly.got) == 1
    assert weekly.got[0].values == {"github.stars": 1.0, "pypi.downloads": 2.0}
    assert weekly.got[0].run_id == 1


def test_a_run_of_every_source_without_its_own_schedule_is_a_full_run(tmp_path: Path) -> None:
    """The scheduler's main job runs the sources that have no `schedule:` of their own (the
    others run on theirs): that run opens the week's message as `kpi run` does."""
    from tests.test_delivery import Recorder

    weekly = Recorder(name="weekly", every="week")
    p = _two_sources(tmp_path, weekly, scheduled=True)
    monday = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    assert p.process(only=["pypi"], now=monday).exit_code == 0
    assert weekly.got == []  # pypi has its own schedule: github, due each main run, is missing
    assert p.process(only=["github"], now=monday).exit_code == 0
    assert [d.period for d in weekly.got] == ["2026-W48"]


def test_a_destination_name_longer_than_the_store_keeps_is_a_config_error(tmp_path: Path) -> None:
    """The store keeps each destination's deliveries under its name (`deliveries.destination`,
    VARCHAR(200)): a longer `name:` was kept on SQLite and failed every run's delivery on
    PostgreSQL ("value too long") and MariaDB ("Data too long"). It is a config error on
    every backend, saying the limit, before anything is collected."""
    from kpi_collector import Pipeline
    from kpi_collector.destinations import Store
    from kpi_collector.errors import ConfigError
    from kpi_collector.sources.python import Function

    p = Pipeline(
        sources=[Function(lambda: {"a": 1.0}, name="app")],
        destinations=[
            Store(f"sqlite:///{tmp_path / 'kpi.db'}"),
            CSV(path="out.csv", name="team-" + "x" * 196),
        ],
        base_dir=tmp_path,
    )
    with pytest.raises(ConfigError, match="at most 200 characters"):
        p.process()
    assert not (tmp_path / "out.csv").exists()
    ok = Pipeline(
        sources=[Function(lambda: {"a": 1.0}, name="app")],
        destinations=[
            Store(f"sqlite:///{tmp_path / 'kpi.db'}"),
            CSV(path="out.csv", name="team-" + "x" * 195),
        ],
        base_dir=tmp_path,
    )
    assert ok.process().exit_code == 0


def test_a_destination_name_longer_than_the_store_keeps_is_refused_at_load() -> None:
    """The same limit in a config file: `kpi validate` and `kpi run` refuse it at load,
    naming the line, before anything runs (exit 2 means nothing ran)."""
    from kpi_collector.config import parse_config
    from kpi_collector.errors import ConfigError

    text = (
        "sources:\n  - {name: app, type: python, function: 'acme:metrics'}\n"
        "destinations:\n  - {type: csv, path: out.csv, name: team-%s}\n"
    )
    with pytest.raises(ConfigError, match=r"kpi\.yaml:4.*at most 200 characters"):
        parse_config(text % ("x" * 196), path=Path("kpi.yaml"), env={}, need_secrets=False)
    config = parse_config(text % ("x" * 195), path=Path("kpi.yaml"), env={}, need_secrets=False)
    assert len(config.destinations[0].name) == 200
    from kpi_collector.config.loader import DESTINATION_NAME_MAX
    from kpi_collector.store.limits import ID_MAX

    assert DESTINATION_NAME_MAX == ID_MAX  # the config's limit is the store's
