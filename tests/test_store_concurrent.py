"""A new shared store survives its first use by several processes at once (issue 12,
section 4): creating and migrating the schema is serialized by a lock on every backend."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from kpi_collector.store import HistoryStore
from kpi_collector.store.schema import SCHEMA_VERSION
from tests.services import require_mysql_url, require_postgres_url

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = 5


def fresh_database(url: str) -> Iterator[str]:
    """A new, empty database on the server of `url` (its URL), dropped afterwards."""
    name = f"kpi_new_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
        yield url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def new_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kpi.db'}"
    else:
        server = require_postgres_url() if request.param == "postgresql" else require_mysql_url()
        yield from fresh_database(server)


def open_store(
    url: str, start: multiprocessing.synchronize.Barrier, results: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    """In a process of its own: wait until all are ready, then open (and so migrate) the store."""
    start.wait()
    try:
        store = HistoryStore(url)
        version = store.migrate()
        store.begin_run()
        store.close()
        results.put(("ok", version))
    except Exception as exc:  # reported to the test, which names it
        results.put(("failed", f"{type(exc).__name__}: {exc}"))


def test_processes_opening_a_new_store_at_once_all_succeed(new_store: str) -> None:
    context = multiprocessing.get_context("fork")  # fast; nothing is open yet
    start = context.Barrier(PROCESSES)
    results = context.Queue()
    processes = [
        context.Process(target=open_store, args=(new_store, start, results))
        for _ in range(PROCESSES)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(30)
    assert outcomes == [("ok", SCHEMA_VERSION)] * PROCESSES
    store = HistoryStore(new_store)
    try:
        assert [run.id for run in store.runs(10)] == list(range(PROCESSES, 0, -1))
    finally:
        store.close()


@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_three_kpi_runs_at_once_on_a_new_database(server: str, tmp_path: Path) -> None:
    url = require_postgres_url() if server == "postgresql" else require_mysql_url()
    for database in fresh_database(url):
        (tmp_path / "kpi.yaml").write_text(
            f"store: {database}\n"
            "sources:\n"
            f"  - {{name: one, type: command, command: [{sys.executable}, -c, 'print(1)']}}\n",
            encoding="utf-8",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}
        env["PYTHONPATH"] = str(ROOT)
        runs = [
            subprocess.Popen(
                [sys.executable, "-m", "kpi_collector", "run", "--no-deliver"],
                cwd=tmp_path,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(3)
        ]
        outcomes = [(run.wait(120), run.communicate()[1]) for run in runs]
        assert [code for code, _ in outcomes] == [0, 0, 0], outcomes
        store = HistoryStore(database)
        try:
            assert store.latest(["one.value"])["one.value"].value == 1
            assert len(store.runs(10)) == 3
        finally:
            store.close()
