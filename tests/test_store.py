"""The history store on SQLite, PostgreSQL and MariaDB: runs, values, periods, migrations."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from kpi_collector.errors import StoreError
from kpi_collector.store import HistoryStore, RunError
from kpi_collector.store.periods import bucket, period_key
from kpi_collector.store.schema import SCHEMA_VERSION, meta
from tests.services import require_mysql_url, require_postgres_url


def _isolated(url: str) -> Iterator[str]:
    """A fresh schema (PostgreSQL) or database (MariaDB) per test, dropped afterwards."""
    name = f"kpi_test_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text(f"CREATE SCHEMA {name}"))
            yield url + f"?options=-csearch_path%3D{name}"
            conn.execute(sa.text(f"DROP SCHEMA {name} CASCADE"))
        else:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
            yield url.rsplit("/", 1)[0] + f"/{name}"
            conn.execute(sa.text(f"DROP DATABASE {name}"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[HistoryStore]:
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path / 'kpi.db'}"])
    elif request.param == "postgresql":
        urls = _isolated(require_postgres_url())
    else:
        urls = _isolated(require_mysql_url())
    url = next(urls)
    history = HistoryStore(url)
    yield history
    history.close()
    next(urls, None)


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@contextlib.contextmanager
def _rewound(url: str, version: int) -> Iterator[sa.Connection]:
    """A transaction on the (closed) store at `url` that makes it a store of schema
    `version`: the body undoes what later versions added; the version row is set here."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            yield conn
            conn.execute(
                meta.update().where(meta.c.key == "schema_version").values(value=str(version))
            )
    finally:
        engine.dispose()


@contextlib.contextmanager
def _migrated(url: str) -> Iterator[HistoryStore]:
    """The store at `url` reopened and migrated to SCHEMA_VERSION; closed afterwards."""
    reopened = HistoryStore(url)
    try:
        assert reopened.migrate() == SCHEMA_VERSION
        yield reopened
    finally:
        reopened.close()


def test_runs_values_and_errors(store: HistoryStore) -> None:
    run = store.begin_run(started_at=ts("2026-11-28T07:00:00+00:00"))
    store.finish_run(
        run,
        observations=[("github.stars", ts("2026-11-28T07:00:00+00:00"), 1647.0, "github")],
        errors=[("blog", None, "HTTP 500 from http://x/", True)],
        finished_at=ts("2026-11-28T07:00:03+00:00"),
    )
    [record] = store.runs()
    assert (record.id, record.status, record.n_values, record.n_errors) == (run, "partial", 1, 1)
    assert record.duration == pytest.approx(3)
    assert record.errors == [
        RunError(source="blog", kpi=None, message="HTTP 500 from http://x/", transient=True)
    ]
    assert store.latest()["github.stars"].value == 1647
    assert store.kpi_ids() == ["github.stars"]


def test_a_large_run_is_written_in_batches_all_or_nothing(store: HistoryStore) -> None:
    """A run's observations go in in batches (the rows are not all held at once), within one
    transaction: all of them, or, when the rows fail part way, none."""
    at = ts("2026-11-28T07:00:00+00:00")
    many = 4_500  # more than two batches of 2,000
    run = store.begin_run(started_at=at)
    store.finish_run(run, observations=((f"s{i}.n", at, float(i), f"s{i}") for i in range(many)))
    [record] = store.runs()
    assert (record.status, record.n_values, record.n_errors) == ("ok", many, 0)
    latest = store.latest()
    assert len(latest) == many
    assert sum(o.value for o in latest.values()) == many * (many - 1) / 2

    def failing() -> Iterator[tuple[str, float, float, str]]:
        yield from ((f"t{i}.n", at + 60, 1.0, f"t{i}") for i in range(3_000))
        raise RuntimeError("the rows failed part way")

    second = store.begin_run(started_at=at + 60)
    with pytest.raises(RuntimeError, match="part way"):
        store.finish_run(second, observations=failing())
    assert not any(kpi.startswith("t") for kpi in store.latest())
    assert len(store.latest()) == many


def test_period_queries_follow_agg_and_time_zone(store: HistoryStore) -> None:
    points = [
        # 23:30 UTC on the 1st is already the 2nd in Berlin
        ("dl", "2026-03-01T10:00:00+00:00", 10.0),
        ("dl", "2026-03-01T23:30:00+00:00", 20.0),
        ("dl", "2026-03-02T12:00:00+00:00", 5.0),
        ("dl", "2026-03-09T12:00:00+00:00", 7.0),
    ]
    for kpi, when, value in points:
        run = store.begin_run(started_at=ts(when))
        store.finish_run(run, observations=[(kpi, ts(when), value, "s")])
    utc = store.series(["dl"], period="day", tz="UTC", agg={"dl": "sum"})["dl"]
    assert utc == [(date(2026, 3, 1), 30.0), (date(2026, 3, 2), 5.0), (date(2026, 3, 9), 7.0)]
    berlin = store.series(["dl"], period="day", tz="Europe/Berlin", agg={"dl": "sum"})["dl"]
    assert berlin == [(date(2026, 3, 1), 10.0), (date(2026, 3, 2), 25.0), (date(2026, 3, 9), 7.0)]
    weeks = store.series(["dl"], period="week", tz="UTC")["dl"]  # last: Monday-start weeks
    assert weeks == [(date(2026, 2, 23), 20.0), (date(2026, 3, 2), 5.0), (date(2026, 3, 9), 7.0)]
    months = store.series(["dl"], period="month", tz="UTC", agg={"dl": "max"})["dl"]
    assert months == [(date(2026, 3, 1), 20.0)]
    since = store.series(["dl"], period="day", tz="UTC", since=date(2026, 3, 2))["dl"]
    assert [d for d, _ in since] == [date(2026, 3, 2), date(2026, 3, 9)]


def test_backfill_never_duplicates_or_overwrites_live_values(store: HistoryStore) -> None:
    run = store.begin_run(started_at=ts("2026-11-20T07:00:00+00:00"))
    store.finish_run(
        run, observations=[("pypi.dl", ts("2026-11-20T07:00:00+00:00"), 100.0, "pypi")]
    )
    past = [
        ("pypi.dl", ts(f"2026-11-{d:02d}T00:00:00+00:00"), float(d), "pypi") for d in range(18, 22)
    ]
    assert store.add_observations(past) == 3  # the 20th has a live value
    assert store.add_observations(past) == 0
    series = dict(store.series(["pypi.dl"], period="day", tz="UTC")["pypi.dl"])
    assert series[date(2026, 11, 20)] == 100.0 and series[date(2026, 11, 21)] == 21.0


def test_previous_values(store: HistoryStore) -> None:
    for day, value in ((1, 1.0), (2, 2.0), (3, 3.0)):
        run = store.begin_run(started_at=ts(f"2026-11-0{day}T07:00:00+00:00"))
        store.finish_run(
            run, observations=[("k", ts(f"2026-11-0{day}T07:00:00+00:00"), value, "s")]
        )
    assert store.previous_values(["k"], before=ts("2026-11-03T07:00:00+00:00")) == {"k": 2.0}
    assert store.latest(["k"], before=ts("2026-11-02T12:00:00+00:00"))["k"].value == 2.0


def test_schema_is_versioned_and_reopening_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kpi.db'}"
    first = HistoryStore(url)
    first.begin_run()
    first.close()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        version = conn.execute(
            sa.text("SELECT value FROM kpi_meta WHERE key = 'schema_version'")
        ).scalar()
        journal = conn.execute(sa.text("PRAGMA journal_mode")).scalar()
    assert int(version) == SCHEMA_VERSION
    assert journal == "wal"
    again = HistoryStore(url)
    assert again.migrate() == SCHEMA_VERSION
    assert len(again.runs()) == 1


def test_v5_gives_pending_deliveries_a_pending_since(store: HistoryStore) -> None:
    """A store of schema 4 (no deliveries.pending_since) gets the column; its pending rows
    count from created_at, the best bound they keep, and done rows stay without one."""
    url = store.url
    run = store.begin_run(started_at=ts("2026-11-02T07:00:00+00:00"))
    store.close()
    with _rewound(url, 4) as conn:
        conn.execute(sa.text("ALTER TABLE deliveries DROP COLUMN pending_since"))
        for name, status, created in (("sheet", "pending", 100.0), ("chat", "done", 200.0)):
            conn.execute(
                sa.text(
                    "INSERT INTO deliveries (destination, period, run_id, status, attempts,"
                    " created_at, updated_at) VALUES (:d, '2026-11-02', :r, :s, 1, :c, :c)"
                ),
                {"d": name, "r": run, "s": status, "c": created},
            )
    with _migrated(url) as reopened, reopened.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT destination, pending_since FROM deliveries ORDER BY destination")
        ).all()
    assert [tuple(r) for r in rows] == [("chat", None), ("sheet", 100.0)]


def test_v10_gives_deliveries_a_sent_plan_and_keeps_their_progress(store: HistoryStore) -> None:
    """A store of schema 9 (no deliveries.sent_plan) gets the column; a row's progress stays,
    with no fingerprint (unknown: a retry resumes after its parts by count, as before)."""
    from kpi_collector.store import deliveries as ledger

    url = store.url
    run = store.begin_run(started_at=ts("2026-11-02T07:00:00+00:00"))
    store.close()
    with _rewound(url, 9) as conn:
        conn.execute(sa.text("ALTER TABLE deliveries DROP COLUMN sent_plan"))
        conn.execute(
            sa.text(
                "INSERT INTO deliveries (destination, period, run_id, status, attempts,"
                " created_at, updated_at, progress) VALUES ('chat', 'run:1', :r, 'failed',"
                " 1, 100, 100, 2)"
            ),
            {"r": run},
        )
    with _migrated(url) as reopened:
        assert ledger.retry_failed(reopened, "run:1") == 1
        [row] = ledger.records(reopened)
        assert (row.status, row.progress, row.sent_plan) == ("pending", 2, None)


def test_v6_keeps_a_rollup_of_schema_5_going(store: HistoryStore) -> None:
    """rollup_state of schema 5 (a mark, nothing else) gets the columns of the out-of-order
    watch, and catching up from its old mark folds in what came after it."""
    from zoneinfo import ZoneInfo

    from kpi_collector.store import rollup

    url, zone = store.url, ZoneInfo("UTC")
    day = ts("2026-11-02T07:00:00+00:00")
    run = store.begin_run()
    store.finish_run(run, observations=[("k", day, 1.0, "s"), ("k", day + 60, 2.0, "s")])
    rollup.catch_up(store.engine, zone)
    store.close()
    with _rewound(url, 5) as conn:
        for column in ("seen_id", "seen_n", "settle_id", "settle_at"):
            conn.execute(sa.text(f"ALTER TABLE rollup_state DROP COLUMN {column}"))
        high = conn.execute(sa.text("SELECT max(id) FROM observations")).scalar()
        conn.execute(sa.text("UPDATE rollup_state SET last_id = :h"), {"h": high})
    with _migrated(url) as reopened:
        run = reopened.begin_run()
        reopened.finish_run(run, observations=[("k", day + 120, 4.0, "s")])
        assert rollup.pending(reopened.engine, zone) == 1
        rollup.catch_up(reopened.engine, zone)
        assert rollup.pending(reopened.engine, zone) == 0
        got = rollup.read(reopened.engine, zone, "day", since=date(2026, 11, 1), agg={"k": "sum"})
        assert [(p.start, p.value) for p in got["k"]] == [(date(2026, 11, 2), 7.0)]


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kpi.db'}"
    _ = HistoryStore(url).engine
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE kpi_meta SET value = '999' WHERE key = 'schema_version'"))
    with pytest.raises(StoreError, match="newer than this kpi-collector"):
        _ = HistoryStore(url).engine


def test_store_errors_hide_the_password() -> None:
    with pytest.raises(StoreError) as info:
        _ = HistoryStore("postgresql+psycopg://kpi:hunter2-pw@127.0.0.1:1/kpi").engine
    assert "hunter2-pw" not in str(info.value) and "***" in str(info.value)


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        # autumn: 2026-10-25 has 25 hours in Berlin; 22:30 UTC is still that day
        (
            ["2026-10-24T22:30:00+00:00", "2026-10-25T22:30:00+00:00", "2026-10-25T23:30:00+00:00"],
            [(date(2026, 10, 25), 2.0), (date(2026, 10, 26), 3.0)],
        ),
        # spring: 2026-03-29 has 23 hours; 22:30 UTC is already the next day
        (
            ["2026-03-28T23:30:00+00:00", "2026-03-29T21:30:00+00:00", "2026-03-29T22:30:00+00:00"],
            [(date(2026, 3, 29), 2.0), (date(2026, 3, 30), 3.0)],
        ),
    ],
)
def test_bucket_handles_dst(times: list[str], expected: list[tuple[date, float]]) -> None:
    rows = [(ts(t), float(i + 1)) for i, t in enumerate(times)]
    assert list(bucket(rows, "day", ZoneInfo("Europe/Berlin"), "last")) == expected


def test_period_keys() -> None:
    assert period_key(date(2026, 11, 29), "day") == "2026-11-29"
    assert period_key(date(2026, 11, 29), "week") == "2026-W48"
    assert period_key(date(2026, 11, 29), "month") == "2026-11"
    assert period_key(date(2027, 1, 1), "week") == "2026-W53"


def test_a_store_url_shows_its_host_but_never_its_password() -> None:
    from kpi_collector.destinations import Store

    store = Store("postgresql+psycopg://kpi:hunter3-pw@127.0.0.1:1/kpi")
    assert "hunter3-pw" not in repr(store) and "127.0.0.1:1/kpi" in repr(store)
    with pytest.raises(StoreError) as info:
        _ = store.open().engine
    assert "kpi:***@127.0.0.1:1/kpi" in str(info.value)


def test_newest_collected_by_kpis_skips_backfilled_values(store: HistoryStore) -> None:
    """When each source last stored a value a run collected: a backfilled value, even a
    newer one, does not count; a source with known KPI ids and one without (a python
    function naming its metrics as it runs) get the same answer, and a derived KPI whose id
    starts like the source's (`b.total`, source `formula`) is not the source's; one never
    run, or only backfilled, is left out. Each KPI's newest row is read from the index
    (before: `source = ...` read every observation, at each scheduler check of a source
    job)."""
    from kpi_collector.store import StoredObservation
    from kpi_collector.store.runs import newest_collected, newest_collected_by_kpis

    try:
        store.migrate()
        for ts in (1000.0, 2000.0):
            run = store.begin_run(started_at=ts)
            store.finish_run(
                run,
                observations=[
                    StoredObservation("a.x", ts, 1.0, "a"),
                    StoredObservation("a.y", ts + 5, 2.0, "a"),
                    StoredObservation("b.z", ts + 7, 3.0, "b"),
                    StoredObservation("b.total", ts + 9, 3.0, "formula"),
                    StoredObservation("bb.z", ts + 8, 3.0, "bb"),
                ],
                finished_at=ts + 10,
            )
        store.add_observations(
            [
                StoredObservation("a.x", 900_000.0, 4.0, "a"),
                StoredObservation("b.z", 900_000.0, 5.0, "b"),
                StoredObservation("c.w", 900_000.0, 5.0, "c"),
            ]
        )
        asked = {"a": ["a.x", "a.y"], "b": [], "never": ["never.v"], "c": []}
        assert newest_collected_by_kpis(store, asked) == {"a": 2005.0, "b": 2007.0}
        assert newest_collected_by_kpis(store, {"a": [], "b": ["b.z"], "c": ["c.w"]}) == {
            "a": 2005.0,
            "b": 2007.0,
        }
        assert newest_collected(store, "a") == 2005.0 and newest_collected(store, "b") == 2007.0
        assert newest_collected(store, "c") is None and newest_collected(store, "never") is None
    finally:
        store.close()


def test_v8_dates_an_older_store_by_its_first_run_and_v9_adds_notes(
    store: HistoryStore, tmp_path: Path
) -> None:
    """A store of schema 7 gets `created_at` = its first run's start (the earliest thing it
    knows), and an empty annotations table; a new store is dated when it is created."""
    import time

    from kpi_collector.store.annotations import add_annotation, list_annotations, store_created_at

    url = store.url
    store.begin_run(started_at=ts("2026-11-02T07:00:00+00:00"))
    store.begin_run(started_at=ts("2026-11-03T07:00:00+00:00"))
    store.close()
    with _rewound(url, 7) as conn:
        conn.execute(sa.text("DROP TABLE annotations"))
        conn.execute(meta.delete().where(meta.c.key == "created_at"))
    with _migrated(url) as reopened:
        assert store_created_at(reopened) == ts("2026-11-02T07:00:00+00:00")
        assert list_annotations(reopened) == []
        add_annotation(reopened, "v1.0 released", date(2026, 11, 20))
        assert [n.text for n in list_annotations(reopened)] == ["v1.0 released"]
    before = time.time()
    fresh = HistoryStore(f"sqlite:///{tmp_path / 'fresh.db'}")
    try:
        created = store_created_at(fresh)
        assert created is not None and before <= created <= time.time()
    finally:
        fresh.close()


def test_a_note_keeps_no_control_characters(store: HistoryStore) -> None:
    """A note kept control characters other than whitespace: an ESC sequence in
    `kpi annotate` reached the terminal of whoever ran `kpi history` and the reports. They are
    taken out (as `printable` does for other stored text); a note of nothing else is empty."""
    from kpi_collector.errors import ConfigError
    from kpi_collector.store.annotations import add_annotation, list_annotations

    add_annotation(store, "v1.0\x1b[2J\x1b]0;pwned\x07 released\x00\x9b", date(2026, 11, 20))
    assert [n.text for n in list_annotations(store)] == ["v1.0[2J]0;pwned released"]
    with pytest.raises(ConfigError, match="the note is empty"):
        add_annotation(store, "\x1b\x07\t", date(2026, 11, 20))


def test_the_last_full_manual_run_is_found_behind_many_partial_ones(store: HistoryStore) -> None:
    """The newest `kpi run` that collected every source of the main job was looked for among
    the newest 20 manual runs only: 20 `kpi run --only` runs after a full one hid it, and
    health said the main job had not run. Every manual run is looked at now (newest first)."""
    from kpi_collector.store import StoredObservation
    from kpi_collector.store.runs import last_manual_run

    full = store.begin_run(started_at=1000.0)
    store.finish_run(
        full,
        observations=[StoredObservation(f"{n}.v", 1000.0, 1.0, n) for n in ("a", "b")],
        finished_at=1001.0,
    )
    for i in range(45):
        only = store.begin_run(started_at=2000.0 + i)
        store.finish_run(
            only,
            observations=[StoredObservation("a.v", 2000.0 + i, 2.0, "a")],
            finished_at=2001.0 + i,
        )
    assert last_manual_run(store, ["a", "b"]) == 1000.0
    assert last_manual_run(store, ["a"]) == 2044.0
    assert last_manual_run(store, ["a", "c"]) is None


def test_v13_drops_the_kpi_ts_index_the_covering_one_serves(store: HistoryStore) -> None:
    """A store of schema 12 has two indexes led by (kpi, ts), and every value was written
    into both; after _v13 only the covering (kpi, ts, id, value) one is left, a new store
    never has the other, and each KPI's history and newest value read as before."""
    url = store.url
    run = store.begin_run(started_at=ts("2026-11-02T07:00:00+00:00"))
    store.finish_run(
        run,
        observations=[("a.x", ts("2026-11-02T07:00:00+00:00"), 1.0, "a")],
        finished_at=ts("2026-11-02T07:00:01+00:00"),
    )
    store.close()

    def indexes() -> set[str]:
        engine = sa.create_engine(url)
        try:
            with engine.connect() as conn:
                return {ix["name"] for ix in sa.inspect(conn).get_indexes("observations")}
        finally:
            engine.dispose()

    assert "ix_observations_kpi_ts" not in indexes()  # a new store
    with _rewound(url, 12) as conn:
        conn.execute(sa.text("CREATE INDEX ix_observations_kpi_ts ON observations (kpi, ts)"))
    assert "ix_observations_kpi_ts" in indexes()
    with _migrated(url) as reopened:
        later = reopened.begin_run(started_at=ts("2026-11-03T07:00:00+00:00"))
        reopened.finish_run(
            later,
            observations=[("a.x", ts("2026-11-03T07:00:00+00:00"), 2.0, "a")],
            finished_at=ts("2026-11-03T07:00:01+00:00"),
        )
        assert reopened.latest()["a.x"].value == 2.0
        assert [value for _, _, value in reopened.rows(["a.x"])] == [1.0, 2.0]
    assert indexes() >= {"ix_observations_kpi_ts_id_value"}
    assert "ix_observations_kpi_ts" not in indexes()


def test_pending_runs_counts_runs_not_clock_readings(store: HistoryStore) -> None:
    """How many runs a delivery has waited is counted by run, never by comparing start times:
    the scheduler records a run's delivery at its fire time, which can be before the run
    began (the period's only run started after the fire time it serves); two runs can start
    at the same clock reading; a clock stepped back gives a later run an earlier start."""
    from kpi_collector.store import deliveries as ledger

    fire = ts("2026-11-02T07:00:00+00:00")
    first = store.begin_run(started_at=fire + 1800)  # the period's run, after the fire time
    # the scheduler's destination job: the run's delivery, recorded at the fire time it serves
    ledger.record_pending(
        store, "sheet", "2026-11-02", run_id=first, started_at=fire, upserts=False
    )
    assert ledger.pending_runs(store)["sheet"][0] == 1  # only the run that made it pending

    same = store.begin_run(started_at=fire + 1800)  # a second run at the same clock reading
    ledger.record_pending(
        store, "chat", "run:2", run_id=same, started_at=fire + 1800, upserts=False
    )
    assert ledger.pending_runs(store)["chat"][0] == 1
    store.begin_run(started_at=fire + 1800)  # and a third one
    assert ledger.pending_runs(store)["chat"][0] == 2  # `same` and this one
    assert ledger.pending_runs(store)["sheet"][0] == 3  # `first`, `same` and the third

    store.begin_run(started_at=fire - 3600)  # begun after them, by a clock set an hour back
    assert ledger.pending_runs(store)["chat"][0] == 3
    assert ledger.pending_runs(store)["sheet"][0] == 4


def test_v11_gives_pending_deliveries_the_run_they_count_from(store: HistoryStore) -> None:
    """A store of schema 10 gets deliveries.pending_run and parts: a pending row's
    pending_run is the newest run begun by its pending_since (what its count started from),
    else its own run; a done row gets none."""
    from kpi_collector.store import deliveries as ledger

    url = store.url
    runs = [store.begin_run(started_at=ts(f"2026-11-02T0{h}:00:00+00:00")) for h in (6, 7, 8)]
    store.close()
    rows = (  # (destination, status, run, pending_since)
        ("sheet", "pending", runs[0], ts("2026-11-02T07:30:00+00:00")),  # -> runs[1]
        ("early", "pending", runs[2], ts("2026-11-02T05:00:00+00:00")),  # no run yet -> runs[2]
        ("chat", "done", runs[0], None),
    )
    with _rewound(url, 10) as conn:
        conn.execute(sa.text("ALTER TABLE deliveries DROP COLUMN pending_run"))
        conn.execute(sa.text("ALTER TABLE deliveries DROP COLUMN parts"))
        for name, status, run, since in rows:
            conn.execute(
                sa.text(
                    "INSERT INTO deliveries (destination, period, run_id, status, attempts,"
                    " created_at, updated_at, pending_since) VALUES (:d, '2026-11-02', :r, :s,"
                    " 1, 100, 100, :p)"
                ),
                {"d": name, "r": run, "s": status, "p": since},
            )
    with _migrated(url) as reopened:
        marks = {r.destination: r.pending_run for r in ledger.records(reopened)}
        assert marks == {"sheet": runs[1], "early": runs[2], "chat": None}
        assert [r.parts for r in ledger.records(reopened)] == [None, None, None]  # not known
        # sheet has waited for runs[1] and runs[2]; early for runs[2] alone
        assert {k: v[0] for k, v in ledger.pending_runs(reopened).items()} == {
            "sheet": 2,
            "early": 1,
        }


# KPI ids (and names of sources, destinations, alerts) that differ only in case, accents or a
# trailing space: MariaDB's default collation (utf8mb4_general_ci, PAD SPACE) took them for one
_LOOKALIKE_IDS = ("gh.Stars", "gh.stars", "gh.stars ", "café.n", "cafe.n")


def test_ids_differing_in_case_accents_or_trailing_space_stay_apart(store: HistoryStore) -> None:
    """Each lookalike id reads back its own values only, on every backend: its history, its
    newest value, the list of ids, and the rollup (whose key holds the id)."""
    from kpi_collector.store import rollup

    at = ts("2026-11-02T07:00:00+00:00")
    for i, kpi in enumerate(_LOOKALIKE_IDS):
        run = store.begin_run(started_at=at + 60 * i)
        store.finish_run(run, observations=[(kpi, at + 60 * i, float(i + 1), kpi.split(".")[0])])
    assert sorted(store.kpi_ids()) == sorted(_LOOKALIKE_IDS)  # (the order is the database's)
    for i, kpi in enumerate(_LOOKALIKE_IDS):
        assert store.rows([kpi]) == [(kpi, at + 60 * i, float(i + 1))]
        assert {k: o.value for k, o in store.latest([kpi]).items()} == {kpi: float(i + 1)}
    zone = ZoneInfo("UTC")
    rollup.catch_up(store.engine, zone)
    got = rollup.read(store.engine, zone, "day", since=date(2026, 11, 1))
    assert {k: [p.value for p in v] for k, v in got.items()} == {
        kpi: [float(i + 1)] for i, kpi in enumerate(_LOOKALIKE_IDS)
    }


def test_v12_tells_lookalike_ids_apart_in_a_store_of_schema_11(store: HistoryStore) -> None:
    """A MariaDB store of schema 11 (tables in the server's case- and accent-blind collation)
    is converted, and its rollup, which had merged lookalike ids, is built again; on the other
    backends the step changes nothing."""
    from kpi_collector.store import rollup

    url, zone = store.url, ZoneInfo("UTC")
    at = ts("2026-11-02T07:00:00+00:00")
    run = store.begin_run(started_at=at)
    store.finish_run(run, observations=[("gh.stars", at, 1.0, "gh")])
    rollup.catch_up(store.engine, zone)
    store.close()
    with _rewound(url, 11) as conn:
        if conn.dialect.name in ("mysql", "mariadb"):
            for table in conn.execute(sa.text("SHOW TABLES")).scalars():
                conn.execute(
                    sa.text(
                        f"ALTER TABLE {table} CONVERT TO CHARACTER SET utf8mb4"
                        " COLLATE utf8mb4_general_ci"
                    )
                )
            # what schema 11 did: its rollup knows `gh.Stars` as the row of `gh.stars`
            conn.execute(sa.text("UPDATE rollup SET last = 99, sum = 99, min = 99, max = 99"))
        conn.execute(
            sa.text(
                "INSERT INTO observations (run_id, kpi, ts, value, source, backfilled)"
                " VALUES (:r, 'gh.Stars', :ts, 2, 'gh', :f)"
            ),
            {"r": run, "ts": at + 60, "f": False},
        )
    with _migrated(url) as reopened:
        assert reopened.rows(["gh.stars"]) == [("gh.stars", at, 1.0)]
        assert reopened.rows(["gh.Stars"]) == [("gh.Stars", at + 60, 2.0)]
        rollup.catch_up(reopened.engine, zone)
        got = rollup.read(reopened.engine, zone, "day", since=date(2026, 11, 1))
        assert {k: [p.value for p in v] for k, v in got.items()} == {
            "gh.stars": [1.0],
            "gh.Stars": [2.0],
        }


def test_a_kpi_id_longer_than_the_store_keeps_is_that_metrics_error(store: HistoryStore) -> None:
    """A metric whose KPI id is longer than the store's id columns (200 characters) is that
    metric's error, on every backend alike: the run's other values are stored (PostgreSQL and
    MariaDB refused the whole run: "value too long for type character varying(200)")."""
    from kpi_collector import Pipeline
    from kpi_collector.destinations import Store
    from kpi_collector.sources import Function

    long_name = "p" * 250

    def metrics() -> dict[str, float]:
        return {"ok": 1.0, long_name: 2.0}

    pipeline = Pipeline(sources=(Function(metrics, name="fn"),), store=Store(store.url))
    result = pipeline.process(deliver=False)
    long_id = f"fn.{long_name}"
    assert result.values == {"fn.ok": 1.0}
    assert "at most 200 characters" in result.errors[long_id]
    assert [(k, v) for k, _, v in store.rows()] == [("fn.ok", 1.0)]
    [record] = store.runs()
    assert (record.status, record.n_values, record.n_errors) == ("partial", 1, 1)
    [error] = record.errors
    assert error.kpi is not None and len(error.kpi) <= 200 and error.kpi.startswith("fn.ppp")
    assert "at most 200 characters" in error.message and len(error.message) < 300


def test_the_store_keeps_a_run_whose_observation_has_an_over_long_kpi_id(
    store: HistoryStore,
) -> None:
    """Given to the store itself (the Python API, a plugin), an observation whose KPI id is
    longer than 200 characters becomes the run's error and the others are stored; a backfill
    of one is refused with a one-line error before anything is written."""
    at = ts("2026-11-02T07:00:00+00:00")
    long_id = "s." + "x" * 230
    run = store.begin_run(started_at=at)
    store.finish_run(
        run,
        observations=[("s.a", at, 1.0, "s"), (long_id, at, 2.0, "s"), ("s.b", at, 3.0, "s")],
        errors=[("s", long_id, "HTTP 500", True)],
    )
    assert [(k, v) for k, _, v in store.rows()] == [("s.a", 1.0), ("s.b", 3.0)]
    [record] = store.runs()
    assert (record.status, record.n_values, record.n_errors) == ("partial", 2, 2)
    assert all(e.kpi is not None and len(e.kpi) <= 200 for e in record.errors)
    assert "has 232 characters; the store keeps at most 200" in record.errors[1].message
    with pytest.raises(StoreError, match=r"^cannot store KPI id 's\.x+…' has 232 characters"):
        store.add_observations([("s.c", at, 4.0, "s"), (long_id, at, 5.0, "s")])
    assert [k for k, _, _ in store.rows()] == ["s.a", "s.b"]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://kpi:p@ss12345@127.0.0.1:1/kpi",  # an `@` as is: a host `ss12345@...`
        "postgresql+psycopg://kpi:p@ss:w/ord12@127.0.0.1:1/kpi",  # a port `w`: int('w') failed
        "mysql+pymysql://kpi:s3cr@t99@127.0.0.1:1/kpi",
    ],
)
def test_a_store_password_with_an_unencoded_at_is_a_clear_error_that_hides_it(
    url: str, tmp_path: Path
) -> None:
    """A password written as is with `@` (and `:` or `/`) in the store URL: a one-line error
    that says how to write it (percent-encoded), in the Python API and from `kpi run`,
    without any part of the password (it named the host `ss12345@127.0.0.1`)."""
    from tests.cli import run_kpi

    secret_parts = ("p@ss", "ss12345", "ss:w", "ord12", "s3cr", "t99")
    with pytest.raises(StoreError) as info:
        _ = HistoryStore(url).engine
    message = str(info.value)
    assert "%40" in message and "\n" not in message
    assert not any(part in message for part in secret_parts), message
    (tmp_path / "kpi.yaml").write_text(
        f'store: "{url}"\nsources:\n  - {{name: fn, type: python, function: "acme:metrics"}}\n',
        encoding="utf-8",
    )
    (tmp_path / "acme.py").write_text("def metrics():\n    return {'ok': 1}\n", encoding="utf-8")
    ran = run_kpi(tmp_path, "run")
    output = ran.stdout + ran.stderr
    assert ran.returncode == 2 and "%40" in output and len(output.strip().splitlines()) == 1
    assert not any(part in output for part in secret_parts), output


@pytest.mark.parametrize("under", ["a-file", "a-file/sub"])
def test_a_sqlite_store_under_a_file_is_a_store_error_naming_the_store(
    under: str, tmp_path: Path
) -> None:
    """A SQLite store whose folder is a file (or under one): StoreError naming the store, in
    the Python API and from `kpi run` / `kpi history` (a bare FileExistsError /
    NotADirectoryError; the command said only "error: /x/a-file: File exists")."""
    from tests.cli import run_kpi

    (tmp_path / "a-file").write_text("not a folder", encoding="utf-8")
    path = tmp_path / under / "kpi.db"
    with pytest.raises(StoreError, match=r"^cannot open store 'sqlite:///.*kpi\.db': .*a-file"):
        _ = HistoryStore(f"sqlite:///{path}").engine
    (tmp_path / "kpi.yaml").write_text(
        f'store: "sqlite:///{path}"\n'
        'sources:\n  - {name: fn, type: python, function: "acme:metrics"}\n',
        encoding="utf-8",
    )
    (tmp_path / "acme.py").write_text("def metrics():\n    return {'ok': 1}\n", encoding="utf-8")
    for command in ("run", "history"):
        ran = run_kpi(tmp_path, command)
        assert ran.returncode == 1, ran.stdout + ran.stderr
        [line] = ran.stderr.strip().splitlines()
        assert line.startswith("error: cannot open store 'sqlite:///") and "a-file" in line


@pytest.mark.parametrize("folder", ["q?1", "p%41b", "100%", "a#b c"])
def test_the_default_store_is_in_the_configs_folder_whatever_its_name_holds(
    folder: str, tmp_path: Path
) -> None:
    """The default store (and a relative `store:` path) is `kpi.db` in the config's folder,
    also when the folder's name holds `?` or `%XX`, which a SQLAlchemy URL reads as a query
    and an escape: the store went to `<parent>/q` or `<parent>/pAb/kpi.db`, where two
    configs could share it; its lock file stays beside it."""
    from tests.cli import run_kpi

    home = tmp_path / folder
    home.mkdir()
    (home / "kpi.yaml").write_text(
        'sources:\n  - {name: fn, type: python, function: "acme:metrics"}\n', encoding="utf-8"
    )
    (home / "acme.py").write_text("def metrics():\n    return {'x': 1.5}\n", encoding="utf-8")
    ran = run_kpi(home, "run")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert {p.name for p in tmp_path.iterdir()} == {folder}
    assert {"kpi.db", "kpi.db.lock"} <= {p.name for p in home.iterdir()}
    history = run_kpi(home, "history", "--format", "csv")
    assert history.stdout.splitlines()[1].endswith(",fn.x,1.5"), history.stdout
    assert {p.name for p in tmp_path.iterdir()} == {folder}


def test_a_value_that_is_no_finite_number_is_never_stored(store: HistoryStore) -> None:
    """NaN and infinities given to the store itself (the Python API, a plugin's backfill):
    a run's becomes its error and the others are stored; a backfill of one is refused with a
    one-line error before anything is written. (SQLite kept inf and refused NaN, PostgreSQL
    kept both, MariaDB refused both: "nan can not be used with MySQL".)"""
    at = ts("2026-11-02T07:00:00+00:00")
    run = store.begin_run(started_at=at)
    store.finish_run(
        run,
        observations=[
            ("s.a", at, 1.0, "s"),
            ("s.nan", at, float("nan"), "s"),
            ("s.inf", at, float("-inf"), "s"),
        ],
    )
    assert [(k, v) for k, _, v in store.rows()] == [("s.a", 1.0)]
    [record] = store.runs()
    assert (record.status, record.n_values, record.n_errors) == ("partial", 1, 2)
    assert [(e.kpi, e.message) for e in record.errors] == [
        ("s.nan", "nan is not a finite number; not stored"),
        ("s.inf", "-inf is not a finite number; not stored"),
    ]
    with pytest.raises(StoreError, match=r"^cannot store s\.x: inf is not a finite number$"):
        store.add_observations([("s.c", at, 4.0, "s"), ("s.x", at, float("inf"), "s")])
    assert [k for k, _, _ in store.rows()] == ["s.a"]


def test_a_backfill_stores_a_sources_finite_values_and_names_the_others(tmp_path: Path) -> None:
    """A source's backfill that yields a NaN or an infinity among its values: the finite ones
    are stored and the others are that source's error (a NaN failed the whole backfill on
    SQLite, `NOT NULL constraint failed`; PostgreSQL stored it)."""
    import asyncio
    from collections.abc import AsyncIterator
    from datetime import UTC, timedelta
    from typing import ClassVar

    from kpi_collector.config.models import Defaults
    from kpi_collector.run.backfill import abackfill
    from kpi_collector.sources.base import Observation, Source, SourceContext

    class Past(Source):
        type: ClassVar[str] = "past"

        async def collect(self, ctx: SourceContext) -> dict[str, float]:
            return {}

        async def backfill(self, ctx: SourceContext, since: date) -> AsyncIterator[Observation]:
            for i, value in enumerate((1.0, float("nan"), 3.0, float("inf"))):
                when = datetime(2026, 11, 1, 12, tzinfo=UTC) + timedelta(days=i)
                yield Observation("n", value, when)

    store = HistoryStore(f"sqlite:///{tmp_path / 'kpi.db'}")
    try:
        report = asyncio.run(
            abackfill(
                store,
                [Past(name="past")],
                defaults=Defaults(),
                tz=ZoneInfo("UTC"),
                base_dir=tmp_path,
                since=date(2026, 11, 1),
                now=datetime(2026, 11, 10, tzinfo=UTC),
            )
        )
        assert [v for _, _, v in store.rows()] == [1.0, 3.0]
        assert report.added == {"past": 2}
        assert report.errors == {
            "past": "2 values not stored: past.n on 2026-11-02: nan is not a finite number; "
            "past.n on 2026-11-04: inf is not a finite number"
        }
    finally:
        store.close()


def test_a_kpi_id_with_a_control_character_is_that_metrics_error(store: HistoryStore) -> None:
    """A metric name holding a control character (a NUL, a newline, a terminal escape) is
    that metric's error on every backend, and the run's other values are stored (PostgreSQL
    refused the whole run: "text fields cannot contain NUL (0x00) bytes"; SQLite kept the
    id, whose newline split the tables and whose escape went to the terminal from the CSV)."""
    from kpi_collector import Pipeline
    from kpi_collector.destinations import Store
    from kpi_collector.sources import Function

    def metrics() -> dict[str, float]:
        return {"ok": 1.0, "d\x00e": 2.0, "a\nb": 3.0, "c\x1b[31mred": 4.0}

    pipeline = Pipeline(sources=(Function(metrics, name="fn"),), store=Store(store.url))
    result = pipeline.process(deliver=False)
    assert result.values == {"fn.ok": 1.0}
    assert "control character" in result.errors["fn.de"]  # named without it
    assert [(k, v) for k, _, v in store.rows()] == [("fn.ok", 1.0)]
    [record] = store.runs()
    assert (record.status, record.n_values, record.n_errors) == ("partial", 1, 3)
    for error in record.errors:
        assert error.kpi is not None and error.kpi.isprintable(), error
        assert error.message.isprintable() and "control character" in error.message
    # given to the store itself, such an observation is the run's error as well
    run = store.begin_run()
    store.finish_run(run, observations=[("s.x\x00", 1.0, 5.0, "s"), ("s.y", 1.0, 6.0, "s")])
    assert [k for k, _, _ in store.rows()] == ["fn.ok", "s.y"]


def test_a_negative_zero_reads_back_as_zero_on_every_backend(store: HistoryStore) -> None:
    """-0.0 (a difference of equal numbers, a rounded small negative) is stored as 0.0: it
    read back as 0.0 from SQLite and MariaDB but -0.0 from PostgreSQL ("-0.0" in `kpi
    history --format json` on one backend only)."""
    import math

    at = ts("2026-11-02T07:00:00+00:00")
    run = store.begin_run(started_at=at)
    store.finish_run(run, observations=[("s.a", at, -0.0, "s")])
    store.add_observations([("s.b", at, -0.0, "s")])
    values = [v for _, _, v in store.rows()] + [o.value for o in store.latest().values()]
    assert values == [0.0] * 4 and all(math.copysign(1.0, v) == 1.0 for v in values)


@pytest.mark.parametrize("direct", [True, False])
def test_tens_of_thousands_of_kpi_ids_are_asked_in_chunks(
    store: HistoryStore, direct: bool
) -> None:
    """A dashboard or a run asking for 70,000 KPI ids (more bound values than PostgreSQL
    takes in a statement, 65,535, and SQLite, 32,766): `latest`, `previous_values`, `rows`
    and `series` ask for them in chunks (before: "number of parameters must be between 0 and
    65535")."""
    from kpi_collector.store import StoredObservation

    if not direct and not store.url.startswith("sqlite"):
        pytest.skip("only SQLite has a direct path")
    store = HistoryStore(store.url, direct=direct)
    ids = [f"big.k{i:05d}" for i in range(70_000)]
    stored = ids[::100]  # a value for 700 of them: the statements' size is the question
    day = ts("2026-03-02T12:00:00+00:00")
    points = [StoredObservation(k, day + i % 7, float(i), "big") for i, k in enumerate(stored)]
    assert store.add_observations(points) == len(stored)
    assert store.add_observations(points) == 0  # each id's day is found again
    store.add_observations([StoredObservation(stored[-1], day + 86400, -1.0, "big")])
    asked = [*reversed(ids), "big.never"]
    newest = store.latest(asked)
    assert len(newest) == len(stored) and newest[stored[-1]].value == -1.0
    assert newest[stored[0]] == StoredObservation(stored[0], day, 0.0, "big")
    previous = store.previous_values(asked, before=day + 86400)
    assert len(previous) == len(stored) and previous[stored[-1]] == len(stored) - 1
    rows = store.rows(asked)
    assert [r[0] for r in rows] == [*stored, stored[-1]]
    assert rows[-2:] == [(stored[-1], day + 699 % 7, 699.0), (stored[-1], day + 86400, -1.0)]
    series = store.series(asked, since=date(2026, 3, 1))
    assert len(series) == len(stored) and series[stored[1]] == [(date(2026, 3, 2), 1.0)]
    # the dashboard's read of the rollup, with every other stored KPI summed
    from kpi_collector.store import rollup

    utc = ZoneInfo("UTC")
    rollup.catch_up(store.engine, utc)
    sums = {k: "sum" for k in ids[::200]}
    flat = rollup.read_flat(store.engine, utc, "day", since=date(2026, 3, 1), agg=sums, kpis=asked)
    assert {row[0]: row[2] for row in flat} == {k: float(i) for i, k in enumerate(stored)} | {
        stored[-1]: -1.0
    }
    every = rollup.read_flat(store.engine, utc, "day", since=date(2026, 3, 1), agg=sums)
    assert sorted(every) == sorted(flat)
    store.close()


def test_a_backfill_of_tens_of_thousands_of_new_kpis_is_looked_up_in_chunks() -> None:
    """The backfill's check for values already stored asks for every KPI id of its points:
    66,000 of them passed PostgreSQL's 65,535 bound values in a statement (the backfill
    failed with a raw driver error)."""
    from kpi_collector.store import StoredObservation

    urls = _isolated(require_postgres_url())
    store = HistoryStore(next(urls))
    try:
        day = ts("2026-03-02T12:00:00+00:00")
        points = [StoredObservation(f"big.k{i:05d}", day, 1.0, "big") for i in range(66_000)]
        assert store.add_observations(points) == len(points)
        assert store.add_observations(points) == 0
    finally:
        store.close()
        next(urls, None)


def test_asking_for_an_id_the_store_cannot_hold_finds_nothing(store: HistoryStore) -> None:
    """A KPI id with a NUL or another control character, or longer than the store keeps, is
    never stored (`unstorable`): asking for one (a dashboard URL's `%00`) finds nothing on
    every backend (PostgreSQL raised a raw driver error: "text fields cannot contain NUL")."""
    run = store.begin_run(started_at=ts("2026-11-20T07:00:00+00:00"))
    store.finish_run(run, observations=[("ok", ts("2026-11-20T07:00:00+00:00"), 1.0, "s")])
    odd = ["a\x00b", "a\nb", "x" * 201]
    asked = [*odd, "ok"]
    assert list(store.latest(asked)) == ["ok"]
    assert list(store.previous_values(asked, before=ts("2026-11-21T00:00:00+00:00"))) == ["ok"]
    assert [r[0] for r in store.rows(asked)] == ["ok"]
    assert list(store.series(asked)) == ["ok"]
    assert store.latest(odd) == {} and store.rows(odd) == [] and store.series(odd) == {}


def test_a_read_the_database_refuses_is_a_store_error(store: HistoryStore) -> None:
    """The store's tables changed behind its back (a partial restore dropped one): every
    read is a StoreError in one line that names the store (before: SQLAlchemy's raw error
    with the statement, which the CLI showed as a crash)."""
    run = store.begin_run(started_at=ts("2026-11-20T07:00:00+00:00"))
    store.finish_run(run, observations=[("ok", ts("2026-11-20T07:00:00+00:00"), 1.0, "s")])
    engine = sa.create_engine(store.url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE observations"))
    engine.dispose()
    reads = [
        lambda: store.latest(["ok"]),
        lambda: store.latest(),
        lambda: store.rows(["ok"]),
        lambda: store.series(),
        lambda: store.kpi_ids(),
        lambda: store.add_observations([("ok", ts("2026-11-01T07:00:00+00:00"), 1.0, "s")]),
    ]
    for read in reads:
        with pytest.raises(StoreError) as failed:
            read()
        message = str(failed.value)
        assert "observations" in message and "\n" not in message, message


def test_latest_by_id_agrees_with_the_whole_history_read(store: HistoryStore) -> None:
    """`latest` of named KPIs looks each one's newest row up in the (kpi, ts, id) index
    (`max(ts) ... GROUP BY` read every row of the history: a run slower each day); over a
    history with ties at one moment, at, before and strictly before each bound, it gives
    what reading every row gives, on every backend and both SQLite paths: the newest at the
    bound, of a tie the one stored last. Lookalike ids (case, a trailing space, an accent)
    stay apart on MariaDB's binary collation. `latest()` of every KPI and `kpi_ids` read
    the ids from the index too on PostgreSQL (its `DISTINCT` read all of it)."""
    import random

    from kpi_collector.store.schema import observations

    rng = random.Random(5)
    _ = store.engine  # the schema
    kpis = [f"k.{i}" for i in range(12)] + ["k.A", "k.a", "k.a ", "k.é"]
    rows = [(rng.choice(kpis), 1000.0 + rng.randrange(40), float(n)) for n in range(500)]
    with store.write() as conn:
        for kpi, at, value in rows:  # one by one: ids in the order of the list
            conn.execute(
                observations.insert().values(
                    kpi=kpi, ts=at, value=value, source="k", backfilled=True
                )
            )
    stores = [store]
    if store.url.startswith("sqlite"):
        stores.append(HistoryStore(store.url, direct=False))
        assert store.direct() is not None and stores[1].direct() is None
    for before in (None, 1000.0, 1017.0, 1039.0, 999.0):
        for strictly in (False, True):
            expected: dict[str, tuple[float, float]] = {}
            for kpi, at, value in rows:  # in the order of storing: the last one wins a tie
                in_range = before is None or (at < before if strictly else at <= before)
                if in_range and (kpi not in expected or at >= expected[kpi][0]):
                    expected[kpi] = (at, value)
            for each in stores:
                found = each.latest([*kpis, "k.none", "K.A"], before=before, strictly=strictly)
                got = {k: (o.ts, o.value) for k, o in found.items()}
                assert got == expected, (before, strictly, each.direct() is not None)
                everything = each.latest(before=before, strictly=strictly)
                assert {k: (o.ts, o.value) for k, o in everything.items()} == expected
                if strictly and before is not None:
                    values = each.previous_values([*kpis, "k.none"], before=before)
                    assert values == {k: v for k, (_, v) in expected.items()}
    with store.reading() as conn:  # every id, as the database sorts text
        every = conn.execute(
            sa.select(observations.c.kpi).distinct().order_by(observations.c.kpi)
        ).scalars()
        assert store.kpi_ids() == list(every) and len(store.kpi_ids()) == len(kpis)
    for each in stores[1:]:
        each.close()


def test_many_sources_runs_and_process_groups_are_asked_in_chunks(store: HistoryStore) -> None:
    """The store's questions about runs and the scheduler's rows put every asked source
    name, run id or heartbeat row in one IN (...): 70,000 of them passed PostgreSQL's 65,535
    bound values in a statement and SQLite's 32,766 ("too many SQL variables", a raw driver
    error). Now they are asked in chunks (one array on PostgreSQL): the failing streaks,
    the newest manual run and the newest collected value of each source, the runs marked
    interrupted and the process groups forgotten through SQLAlchemy."""
    from kpi_collector.store import StoredObservation
    from kpi_collector.store.heartbeats import forget_groups, mark_interrupted, process_groups
    from kpi_collector.store.runs import failing_streaks, last_manual_run, newest_collected_by_kpis
    from kpi_collector.store.schema import heartbeats, runs

    names = [f"s{i:05d}" for i in range(70_000)]
    first = store.begin_run(started_at=1000.0)
    store.finish_run(
        first,
        observations=[
            StoredObservation(f"{n}.v", 1000.0 + i % 3, 1.0, n) for i, n in enumerate(names)
        ],
        finished_at=1010.0,
    )
    second = store.begin_run(started_at=2000.0, trigger="schedule")
    store.finish_run(
        second,
        observations=[StoredObservation(f"{n}.v", 2000.0, 2.0, n) for n in names[3:10]],
        errors=[RunError(n, None, f"{n} failed", False) for n in names[:3]],
        finished_at=2010.0,
    )
    _upstream_sqlite_limit(store.engine)
    streaks = failing_streaks(store, names, depth=5)
    assert len(streaks) == len(names)
    assert [streaks[n] for n in names[:4]] == [
        (1, "s00000 failed"),
        (1, "s00001 failed"),
        (1, "s00002 failed"),
        (0, None),
    ]
    assert streaks[names[-1]] == (0, None)
    assert last_manual_run(store, names) == 1000.0
    newest = newest_collected_by_kpis(store, {n: [] for n in names})
    assert len(newest) == len(names)
    assert (newest[names[0]], newest[names[5]], newest[names[-1]]) == (
        1000.0,
        2000.0,
        1000.0 + 69_999 % 3,
    )

    generic = HistoryStore(store.url, direct=False)  # SQLite's direct path chunks already
    _upstream_sqlite_limit(generic.engine)
    try:
        with generic.write() as conn:
            conn.execute(
                runs.insert(),
                [{"started_at": 3000.0 + i, "status": "running"} for i in range(70_000)],
            )
            conn.execute(
                heartbeats.insert(),
                [
                    {
                        "name": f"group:{i}",
                        "pid": 1,
                        "hostname": "h",
                        "started_at": 1.0,
                        "beat_at": 1.0,
                        "state": "running",
                    }
                    for i in range(70_000)
                ],
            )
        interrupted = mark_interrupted(generic)
        assert len(interrupted) == 70_000 and first not in interrupted
        assert mark_interrupted(generic) == []
        assert [r.status for r in generic.runs(3)] == ["interrupted"] * 3
        forget_groups(generic, [f"group:{i}" for i in range(1, 70_000)])
        assert [g.name for g in process_groups(generic)] == ["group:0"]
    finally:
        generic.close()


def test_pruning_alert_states_of_thousands_of_configured_alerts(store: HistoryStore) -> None:
    """Forgetting the alerts no longer configured put every configured key in one NOT IN
    (...): 70,000 passed PostgreSQL's 65,535 bound values and SQLite's 32,766 (a raw driver
    error at each alert check). The stored keys are read and the gone ones deleted in
    chunks."""
    from kpi_collector.store.alert_states import alert_states, prune_alert_states, save_alert_state

    for key in ("a", "b", "c"):
        for destination in ("slack", "mail"):
            save_alert_state(store, key, destination, active=True, message="m", now=1.0)
    _upstream_sqlite_limit(store.engine)
    prune_alert_states(store, {"a", "c", *(f"x{i}" for i in range(70_000))})
    assert sorted((s.alert, s.destination) for s in alert_states(store)) == [
        ("a", "mail"),
        ("a", "slack"),
        ("c", "mail"),
        ("c", "slack"),
    ]
    prune_alert_states(store, set())
    assert alert_states(store) == []


def _upstream_sqlite_limit(engine: sa.Engine) -> None:
    """SQLite connections of `engine` that take at most 32,766 bound values in a statement,
    as SQLite's own build does (Debian's takes 250,000)."""
    import sqlite3

    if engine.dialect.name != "sqlite":
        return

    @sa.event.listens_for(engine, "connect")
    def _limit(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        dbapi_conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32_766)

    engine.dispose()  # the connections already open had the build's limit


def test_a_text_longer_than_mariadb_s_text_column_never_loses_the_write(
    store: HistoryStore,
) -> None:
    """MariaDB's TEXT holds 65,535 bytes: a run whose source failed with a long message (an
    error page quoted whole: 80,000 characters) was refused whole ("Data too long for
    column 'message'"), its values lost, as was a delivery's, a job's or an alert's long
    error. Every text the store keeps is now cut to `TEXT_MAX` characters, which each
    backend holds, alike on all of them."""
    from kpi_collector.store import StoredObservation
    from kpi_collector.store.alert_states import active_alerts, save_alert_state
    from kpi_collector.store.deliveries import record_pending, records, update
    from kpi_collector.store.heartbeats import job_states, record_job
    from kpi_collector.store.limits import TEXT_MAX

    long = "bad gateway 😀 " * 6000  # 90,000 characters, 114,000 bytes in UTF-8
    run_id = store.begin_run(started_at=1000.0)
    store.finish_run(
        run_id,
        observations=[StoredObservation("app.users", 1000.0, 7.0, "app")],
        errors=[RunError("web", None, long, True)],
        finished_at=1001.0,
    )
    assert store.latest()["app.users"].value == 7.0
    (message,) = [e.message for e in store.runs(1)[0].errors]
    assert len(message) == TEXT_MAX and message.endswith("…")
    assert long.startswith(message[:-1])

    record_pending(store, "slack", "2026-W48", run_id=run_id, started_at=1000.0, upserts=False)
    (record,) = records(store)
    update(store, record.id, last_error=long)
    assert records(store)[0].last_error == message

    record_job(store, "main", fired_at=1000.0, status="failed", error=long)
    assert job_states(store)["main"].last_error == message

    save_alert_state(store, "app.users:below", "", active=True, message=long, now=1000.0)
    (alert,) = active_alerts(store)
    assert alert.message == message


def test_a_run_trigger_longer_than_the_store_keeps_is_refused_alike_on_every_backend(
    store: HistoryStore,
) -> None:
    """`runs.trigger` is VARCHAR(16): `begin_run(trigger="nightly-full-sync")` (or a
    `Pipeline.trigger` of that name) was stored whole on SQLite and failed the run's start
    on PostgreSQL ("value too long") and MariaDB ("Data too long"), with the database's
    words. It is refused before anything is written, on every backend, saying the limit."""
    with pytest.raises(StoreError, match="at most 16 characters"):
        store.begin_run(trigger="nightly-full-sync")
    run_id = store.begin_run(trigger="nightly-fullsync")  # 16: kept
    assert store.runs(1)[0].id == run_id and store.runs(1)[0].trigger == "nightly-fullsync"


def test_a_table_row_due_again_counts_its_attempts_from_zero(store: HistoryStore) -> None:
    """A table destination's row of a period goes done -> pending again with each newer run
    of the period; it kept the attempts of its earlier deliveries: after six runs of a day,
    each delivered at the first try, `kpi deliver --list` said 6 attempts, and a destination
    with its own schedule waited the backoff of five failures before the new values went
    out. A row due again with new values counts from zero; one still pending keeps its."""
    from kpi_collector.store.deliveries import (
        DONE,
        FAILED,
        bump_attempts,
        record_pending,
        records,
        update,
    )

    def record(name: str, run_id: int) -> None:
        record_pending(
            store, name, "2026-12-01", run_id=run_id, started_at=1000.0 + run_id, upserts=True
        )

    first = store.begin_run(started_at=1000.0)
    for name in ("sheet", "refused"):
        record(name, first)
        (row,) = records(store, destination=name)
        bump_attempts(store, row.id)
        bump_attempts(store, row.id)
        update(store, row.id, status=DONE if name == "sheet" else FAILED)
    second = store.begin_run(started_at=1001.0)
    for name in ("sheet", "refused"):
        record(name, second)
        (row,) = records(store, destination=name)
        assert (row.status, row.run_id, row.attempts) == ("pending", second, 0)
    bump_attempts(store, row.id)
    third = store.begin_run(started_at=1002.0)
    record("refused", third)  # still pending: its attempts go on
    (row,) = records(store, destination="refused")
    assert (row.status, row.run_id, row.attempts) == ("pending", third, 1)


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """`folder` read-only for this process: its mode without write bits, or (root writes
    whatever the mode says) a read-only bind mount of it onto itself, as a store on a
    mounted backup or snapshot is."""
    import os
    import subprocess

    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"no read-only folder can be made here: {mounted.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True)
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_a_store_in_a_read_only_folder_says_why_it_cannot_be_opened(tmp_path: Path) -> None:
    """A SQLite store in a folder this user cannot write (a mounted backup, another user's
    folder) could not even be read, and said only "unable to open database file": SQLite
    writes its -wal and -shm files beside the store to read it. The error now names the
    folder and why, in the Python API and from `kpi history`; the store is left as it was."""
    from tests.cli import run_kpi

    folder = tmp_path / "ro"
    folder.mkdir()
    url = f"sqlite:///{folder / 'kpi.db'}"
    history = HistoryStore(url)
    run_id = history.begin_run(started_at=1000.0)
    history.finish_run(run_id, observations=[("app.users", 1000.0, 7.0, "app")])
    history.close()
    (tmp_path / "kpi.yaml").write_text(
        f'store: "{url}"\nsources:\n  - {{name: app, type: python, function: "acme:metrics"}}\n',
        encoding="utf-8",
    )
    (tmp_path / "acme.py").write_text("def metrics():\n    return {'users': 8}\n", encoding="utf-8")
    with _read_only(folder):
        with pytest.raises(StoreError, match=r"read-only") as caught:
            HistoryStore(url).has_schema()
        assert str(folder) in str(caught.value) and "-wal" in str(caught.value)
        ran = run_kpi(tmp_path, "history")
        assert ran.returncode == 1, ran.stdout + ran.stderr
        [line] = ran.stderr.strip().splitlines()
        assert line.startswith("error: cannot open store") and "read-only" in line, line
    reopened = HistoryStore(url)
    assert reopened.latest()["app.users"].value == 7.0
    reopened.close()
