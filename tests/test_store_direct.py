"""A run's statements on a SQLite file through the standard library (`store.direct`): the same
rows as through SQLAlchemy, the same errors, and no SQLAlchemy import in a `kpi run`."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from kpi_collector.errors import StoreError
from kpi_collector.store import HistoryStore, RunError, StoredObservation
from kpi_collector.store.heartbeats import (
    RUN,
    delete_heartbeat,
    forget_groups,
    heartbeats,
    mark_interrupted,
    process_groups,
    record_group,
    write_heartbeat,
)
from tests.cli import run_kpi

TABLES = ("runs", "run_errors", "observations", "heartbeats")


def new_store(path: Path, *, direct: bool = True) -> HistoryStore:
    """A store at `path` created (and migrated) through SQLAlchemy, then opened again."""
    creator = HistoryStore(f"sqlite:///{path}")
    creator.migrate()
    creator.close()
    return HistoryStore(f"sqlite:///{path}", direct=direct)


def tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(path) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in TABLES}


def both_ways(tmp_path: Path, steps: Callable[[HistoryStore], object]) -> tuple[object, object]:
    """Run `steps` on a direct store and on one through SQLAlchemy; every table and the
    results must be the same. Returns the two results."""
    direct, through_sa = new_store(tmp_path / "a.db"), new_store(tmp_path / "b.db", direct=False)
    assert direct.direct() is not None and through_sa.direct() is None
    results = steps(direct), steps(through_sa)
    assert tables(tmp_path / "a.db") == tables(tmp_path / "b.db")
    assert results[0] == results[1]
    return results


def test_a_run_writes_the_same_rows_both_ways(tmp_path: Path) -> None:
    def steps(store: HistoryStore) -> object:
        first = store.begin_run(started_at=1000.5, trigger="schedule")
        store.finish_run(
            first,
            observations=[StoredObservation(f"s.k{i}", 1000.5, i * 1.5, "s") for i in range(4500)],
            errors=[
                RunError(
                    "gh",
                    "gh.stars",
                    "401 for https://api.test/stars?token=ghp_abcdefghijklmnopqrst",
                    False,
                ),
                RunError("web", None, "timed out", True),
            ],
            finished_at=1002.25,
        )
        failed = store.begin_run(started_at=2000.0)
        store.finish_run(
            failed,
            observations=[],
            errors=[RunError("web", None, "down", True)],
            finished_at=2001.0,
        )
        ok = store.begin_run(started_at=3000.0)
        store.finish_run(
            ok, observations=[StoredObservation("s.k1", 3000.0, 7.0, "s")], finished_at=3001.0
        )
        forced = store.begin_run(started_at=4000.0)
        store.finish_run(forced, observations=[], status="interrupted", finished_at=4001.0)
        return [first, failed, ok, forced]

    (ids, _) = both_ways(tmp_path, steps)
    rows = tables(tmp_path / "a.db")
    assert [r[3] for r in rows["runs"]] == ["partial", "failed", "ok", "interrupted"]
    assert [(r[5], r[6]) for r in rows["runs"]] == [(4500, 2), (0, 1), (1, 0), (0, 0)]
    assert "ghp_" not in repr(rows["run_errors"])  # redacted on the way in
    assert ids == [1, 2, 3, 4]


def test_latest_values_are_the_same_both_ways(tmp_path: Path) -> None:
    def steps(store: HistoryStore) -> object:
        run = store.begin_run(started_at=100.0)
        points = [
            StoredObservation(f"k{i}", float(ts), float(i * 10 + ts), "s")
            for i in range(1200)
            for ts in (50, 100, 150)
        ]
        points.append(
            StoredObservation("k1", 150.0, -1.0, "later")
        )  # same newest time: the later row
        store.finish_run(run, observations=points, finished_at=200.0)
        kpis = [f"k{i}" for i in range(0, 1300, 3)]  # more than one `IN` chunk, some unknown
        return [
            store.latest(),
            store.latest(kpis),
            store.latest(kpis, before=100.0),
            store.latest(kpis, before=100.0, strictly=True),
            store.latest(["k1"], before=10.0),
            store.latest([]),
            store.previous_values(["k1", "k2", "nope"], before=150.0),
        ]

    (found, _) = both_ways(tmp_path, steps)
    assert isinstance(found, list)
    assert found[0]["k1"] == StoredObservation("k1", 150.0, -1.0, "later")
    assert found[3]["k3"].value == 80.0 and found[2]["k3"].value == 130.0
    assert found[4] == {} and found[5] == {}
    assert found[6] == {"k1": 110.0, "k2": 120.0}
    assert len(found[1]) == 400


def test_heartbeats_and_process_groups_are_the_same_both_ways(tmp_path: Path) -> None:
    def steps(store: HistoryStore) -> object:
        write_heartbeat(
            store,
            RUN,
            now=10.0,
            started_at=10.0,
            state="running",
            detail="kpi run postgresql://kpi:ghp_abcdefghijklmnopqrst@db/kpi",
        )
        write_heartbeat(store, RUN, now=20.0)  # a beat: only beat_at moves
        write_heartbeat(store, "scheduler", now=30.0, next_run_at=90.0)  # new row: idle
        record_group(store, 4242, program="sleep 60", started_at=12.0)
        record_group(store, 4141, program="sh -c x", started_at=11.0)
        seen = [heartbeats(store), process_groups(store)]
        forget_groups(store, ["group:4242", "group:1"])
        delete_heartbeat(store, "scheduler")
        run = store.begin_run(started_at=40.0)
        interrupted = mark_interrupted(store)
        return [
            *seen,
            process_groups(store),
            heartbeats(store),
            run,
            interrupted,
            mark_interrupted(store),
        ]

    (found, _) = both_ways(tmp_path, steps)
    assert isinstance(found, list)
    beats, groups = found[0], found[1]
    assert beats[RUN].beat_at == 20.0 and beats[RUN].started_at == 10.0
    assert "ghp_" not in (beats[RUN].detail or "")
    assert (beats["scheduler"].state, beats["scheduler"].started_at) == ("idle", 30.0)
    assert [g.name for g in groups] == ["group:4141", "group:4242"]  # oldest first
    assert [g.name for g in found[2]] == ["group:4141"] and list(found[3]) == [RUN]
    assert found[5] == [1] and found[6] == []


def test_a_heartbeat_column_the_table_lacks_is_refused(tmp_path: Path) -> None:
    store = new_store(tmp_path / "kpi.db")
    with pytest.raises(ValueError, match="heartbeats has no column colour"):
        write_heartbeat(store, RUN, colour="red")


@pytest.mark.parametrize(
    "url",
    [
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///{path}?timeout=5",
        "sqlite+pysqlite:///{path}",
        "sqlite:///file:{path}",
    ],
)
def test_only_a_plain_sqlite_file_url_goes_direct(tmp_path: Path, url: str) -> None:
    new_store(tmp_path / "kpi.db")
    assert HistoryStore(url.format(path=tmp_path / "kpi.db")).direct() is None
    assert HistoryStore(f"sqlite:///{tmp_path / 'kpi.db'}").direct() is not None


def test_a_new_file_or_an_older_schema_goes_through_sqlalchemy_which_migrates_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "kpi.db"
    fresh = HistoryStore(f"sqlite:///{path}")
    assert fresh.direct() is None and not path.exists()  # checking creates nothing
    sqlite3.connect(path).close()  # an empty database: no kpi_meta table
    assert HistoryStore(f"sqlite:///{path}").direct() is None
    HistoryStore(f"sqlite:///{path}").migrate()
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE kpi_meta SET value = '10' WHERE key = 'schema_version'")
    assert HistoryStore(f"sqlite:///{path}").direct() is None
    older = HistoryStore(f"sqlite:///{path}")
    older.begin_run(started_at=5.0)  # through SQLAlchemy, which migrates first
    assert HistoryStore(f"sqlite:///{path}").direct() is not None


@pytest.mark.parametrize("direct", [True, False])
def test_a_file_that_is_no_database_is_one_clear_error(tmp_path: Path, direct: bool) -> None:
    path = tmp_path / "kpi.db"
    path.write_bytes(b"not a database, but some text that is long enough" * 20)
    with pytest.raises(
        StoreError, match=r"^cannot open store '.*kpi\.db': file is not a database$"
    ):
        HistoryStore(f"sqlite:///{path}", direct=direct).begin_run()


def test_a_write_that_fails_rolls_back_and_says_which_store(tmp_path: Path) -> None:
    store = new_store(tmp_path / "kpi.db")
    run = store.begin_run(started_at=1.0)
    with sqlite3.connect(tmp_path / "kpi.db") as conn:  # a value no REAL column takes
        conn.execute(
            "CREATE TRIGGER no_nine BEFORE INSERT ON observations WHEN NEW.value = 9"
            " BEGIN SELECT RAISE(ABORT, 'nine refused'); END"
        )
    points = [StoredObservation("k.a", 1.0, 1.0, "s"), StoredObservation("k.b", 1.0, 9.0, "s")]
    with pytest.raises(StoreError, match=r"^cannot write to store '.*': nine refused$"):
        store.finish_run(run, observations=points)
    rows = tables(tmp_path / "kpi.db")
    assert rows["observations"] == [] and rows["runs"][0][3] == "running"  # all or nothing


def test_a_second_kpi_run_on_a_sqlite_store_never_imports_sqlalchemy(
    site: tuple[str, object], tmp_path: Path
) -> None:
    url, _ = site
    (tmp_path / "kpi.yaml").write_text(
        f"store: sqlite:///{tmp_path / 'kpi.db'}\n"
        "sources:\n"
        f"  - {{name: blog, type: html, url: {url}/blog,"
        ' metrics: {posts: {css: "a.anthrazit", count: true}}}\n'
    )
    env = {"PYTHONPROFILEIMPORTTIME": "1"}  # every import, on stderr
    first = run_kpi(tmp_path, "run", "--no-deliver", env=env)
    assert first.returncode == 0, first.stderr
    assert "| sqlalchemy\n" in first.stderr  # the new store is created through SQLAlchemy
    second = run_kpi(tmp_path, "run", env=env)  # delivering, to no destination
    assert second.returncode == 0, second.stderr
    assert "sqlalchemy" not in second.stderr
    with sqlite3.connect(tmp_path / "kpi.db") as conn:
        assert conn.execute("SELECT status, n_values FROM runs").fetchall() == [("ok", 1)] * 2
        assert conn.execute("SELECT count(*) FROM heartbeats").fetchone() == (0,)  # released


@pytest.mark.parametrize("name", ["a b/ü #x.db", "x@y:z.db", "semi;colon=1.db", "a+b.db"])
def test_a_file_name_sqlalchemy_reads_literally_is_the_same_file_direct(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    store = new_store(path)  # created where SQLAlchemy's URL parsing puts it
    assert store.direct() is not None
    run = store.begin_run(started_at=1.0)
    store.finish_run(run, observations=[StoredObservation("k", 1.0, 2.0, "s")], finished_at=2.0)
    assert tables(path)["observations"] == [(1, run, "k", 1.0, 2.0, "s", 0)]
    assert HistoryStore(f"sqlite:///{path}", direct=False).latest()["k"].value == 2.0


def test_one_connection_is_kept_between_transactions_and_checkpointed_at_close(
    tmp_path: Path,
) -> None:
    # a connection per transaction checkpointed the WAL into the file (with fsyncs) and
    # deleted it at each close; the kept one leaves it until the store is closed
    path = tmp_path / "kpi.db"
    store = new_store(path)
    run = store.begin_run(started_at=1.0)
    store.finish_run(run, observations=[StoredObservation("k", 1.0, 2.0, "s")], finished_at=2.0)
    assert store.latest()["k"].value == 2.0
    wal = tmp_path / "kpi.db-wal"
    assert wal.exists() and wal.stat().st_size > 0
    store.close()
    assert not wal.exists()  # the last connection closed: written into the file
    assert tables(path)["observations"] == [(1, run, "k", 1.0, 2.0, "s", 0)]
    again = store.begin_run(started_at=3.0)  # usable after close: it connects again
    assert tables(path)["runs"][-1][0] == again


def test_a_transaction_inside_another_or_from_a_busy_thread_gets_its_own_connection(
    tmp_path: Path,
) -> None:
    import threading

    store = new_store(tmp_path / "kpi.db")
    direct = store.direct()
    assert direct is not None
    with direct.read() as conn:
        run = store.begin_run(started_at=1.0)  # a write while this thread reads
        assert conn.execute("SELECT id FROM runs").fetchall() == [(run,)]
        seen: list[object] = []
        other = threading.Thread(target=lambda: seen.append(store.latest()))
        other.start()
        other.join(10)
        assert seen == [{}]  # did not wait for this read to end
    store.finish_run(run, observations=[StoredObservation("k", 1.0, 2.0, "s")], finished_at=2.0)
    assert store.latest()["k"].value == 2.0


def test_a_store_file_replaced_since_its_connection_opened_is_read_anew(tmp_path: Path) -> None:
    import shutil

    path = tmp_path / "kpi.db"
    store = new_store(path)
    run = store.begin_run(started_at=1.0)
    store.finish_run(run, observations=[StoredObservation("k", 1.0, 2.0, "s")], finished_at=2.0)
    other = new_store(tmp_path / "other.db")
    other_run = other.begin_run(started_at=5.0)
    other.finish_run(
        other_run, observations=[StoredObservation("k", 5.0, 9.0, "s")], finished_at=6.0
    )
    other.close()
    store.close()  # its WAL written into the file, so the file alone is the store
    assert store.latest()["k"].value == 2.0  # connected again
    shutil.copy(tmp_path / "other.db", tmp_path / "new.db")
    (tmp_path / "new.db").replace(path)  # a restore from a backup, a new file
    assert store.latest()["k"].value == 9.0


def test_a_forked_child_writes_through_its_own_connection(tmp_path: Path) -> None:
    import multiprocessing

    store = new_store(tmp_path / "kpi.db")
    first = store.begin_run(started_at=1.0)  # the parent's connection is open now

    def child() -> None:
        run = store.begin_run(started_at=2.0)
        store.finish_run(run, observations=[StoredObservation("c", 2.0, 3.0, "s")])

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(30)
    assert process.exitcode == 0

    direct = store.direct()
    assert direct is not None

    def close_in_child() -> None:  # forked while another thread held the connection
        store.close()
        run = store.begin_run(started_at=3.0)
        store.finish_run(run, observations=[StoredObservation("g", 3.0, 4.0, "s")])

    with direct.read():  # this thread holds the kept connection's guard across the fork
        closing = multiprocessing.get_context("fork").Process(target=close_in_child)
        closing.start()
        closing.join(30)
    if closing.is_alive():  # hung: stopped, then failed below
        closing.kill()
        closing.join(10)
    assert closing.exitcode == 0  # neither hung on the copied guard nor failed
    store.finish_run(first, observations=[StoredObservation("p", 1.0, 1.0, "s")], finished_at=2.0)
    latest = store.latest()
    assert (latest["c"].value, latest["p"].value, latest["g"].value) == (3.0, 1.0, 4.0)
