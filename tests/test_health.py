"""`kpi validate --health` and the commands that only read the store, on a database server:
reading creates nothing (a store without tables is one nothing ran with yet)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from kpi_collector.cli import main
from tests.services import require_mysql_url, require_postgres_url
from tests.test_store import _isolated

CONFIG = f"""\
schedule: "0 7 * * *"
sources:
  - name: seven
    type: command
    command: [{sys.executable}, -c, "print(7)"]
destinations:
  - {{name: hook, type: webhook, url: 'http://127.0.0.1:9/x'}}
alerts:
  - {{kpi: seven.value, below: 1, notify: [hook]}}
"""


@pytest.fixture(params=["postgresql", "mariadb"])
def server_store(request: pytest.FixtureRequest) -> Iterator[str]:
    """An empty PostgreSQL schema or MariaDB database, dropped afterwards."""
    server = require_postgres_url() if request.param == "postgresql" else require_mysql_url()
    urls = _isolated(server)
    yield next(urls)
    next(urls, None)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """`kpi ARGS` in this process: (exit code, stdout, stderr)."""

    def invoke(*args: str) -> tuple[int, str, str]:
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code
        out = capsys.readouterr()
        return int(code or 0), out.out, out.err

    return invoke


def tables(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return sorted(sa.inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_reading_a_server_store_nothing_ran_with_creates_no_table(
    server_store: str, tmp_path: Path, cli: Callable[..., tuple[int, str, str]]
) -> None:
    """On SQLite a health probe creates no file; on PostgreSQL/MariaDB it created every table
    (and a schema_version row), so an empty store looked like a fresh install that ran. Now
    the probe and every command that only reads leave the database as it was."""
    (tmp_path / "kpi.yaml").write_text(f'store: "{server_store}"\n' + CONFIG)
    config = str(tmp_path / "kpi.yaml")
    code, out, _ = cli("-c", config, "validate", "--health", "--format", "json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and doc["last_run"] is None
    (problem,) = doc["problems"]
    assert "has no tables: nothing has run with this config yet" in problem
    assert [(j["job"], j["overdue"], j["not_run_yet"]) for j in doc["jobs"]] == [
        ("main", False, True)
    ]
    code, out, _ = cli("-c", config, "validate", "--health")
    assert code == 1 and out.startswith("health: PROBLEMS") and "not run yet" in out
    code, out, _ = cli("-c", config, "alerts", "list")
    assert code == 0 and "[never checked]" in out
    assert cli("-c", config, "history", "--format", "json")[0] == 0
    code, out, _ = cli("-c", config, "deliver", "--list")
    assert code == 0 and "no deliveries yet" in out
    assert cli("-c", config, "report", "--out", str(tmp_path / "r.md"))[0] == 1
    assert tables(server_store) == []
    # once a run wrote the store, the probe reads it
    assert cli("-c", config, "run", "--no-deliver")[0] == 0
    code, out, _ = cli("-c", config, "validate", "--health")
    assert "has no tables" not in out and "last run: #1 ok" in out, out


def test_an_overdue_job_whose_run_is_in_progress_is_running_not_down(tmp_path: Path) -> None:
    """The 07:00 job started late (it waited for the lock, its source is slow) and still runs
    at 09:00: `kpi_job_up` said 0 and the job's row said overdue, as if nothing ran, while
    `--health` rightly listed no problem. The row says it runs (`running`, not overdue) and
    `kpi_job_up` is 1 while its run beats; a run that stopped beating is no run: overdue, 0."""
    from datetime import UTC, datetime

    from prometheus_client.parser import text_string_to_metric_families

    from kpi_collector.config import load_config
    from kpi_collector.report.data import DashboardData
    from kpi_collector.report.metrics import metrics_text
    from kpi_collector.schedule.health import health_report
    from kpi_collector.store import HistoryStore
    from kpi_collector.store.heartbeats import RUN, write_heartbeat
    from tests.test_schedule import created_on

    (tmp_path / "kpi.yaml").write_text(
        CONFIG.split("destinations:")[0]
        + '  - {name: hourly, type: command, command: [x], schedule: "0 * * * *"}\n'
    )
    config = load_config(tmp_path / "kpi.yaml")
    created_on(config.store_url, datetime(2026, 11, 1, tzinfo=UTC).timestamp())
    nine = datetime(2026, 11, 2, 9, tzinfo=UTC).timestamp()

    def metric(name: str, at: float) -> dict[str, float]:
        data = DashboardData(config, clock=lambda: at, cache=False)
        try:
            text = metrics_text(data)
        finally:
            data.close()
        (family,) = [f for f in text_string_to_metric_families(text) if f.name == name]
        return {s.labels["job"]: s.value for s in family.samples}

    def rows(at: float) -> dict[str, tuple[bool, bool]]:
        report = health_report(config, now=at)
        return {j["job"]: (j["running"], j["overdue"]) for j in report["jobs"]}

    assert rows(nine) == {"source:hourly": (False, True), "main": (False, True)}
    assert metric("kpi_job_up", nine) == {"source:hourly": 0.0, "main": 0.0}
    store = HistoryStore(config.store_url)
    try:
        started = nine - 2 * 3600 + 60
        write_heartbeat(
            store,
            RUN,
            now=nine - 5,
            started_at=started,
            state="running",
            detail="kpi schedule main",
        )
        # main runs; the hourly job waits for the lock: not overdue, not running
        assert rows(nine) == {"source:hourly": (False, False), "main": (True, False)}
        assert health_report(config, now=nine)["problems"] == []
        assert metric("kpi_job_up", nine) == {"source:hourly": 0.0, "main": 1.0}
        assert metric("kpi_job_running", nine) == {"source:hourly": 0.0, "main": 1.0}
        # its heartbeat stopped an hour ago: the process is gone, the job is overdue again
        later = nine + 3600
        assert rows(later) == {"source:hourly": (False, True), "main": (False, True)}
        assert metric("kpi_job_up", later) == {"source:hourly": 0.0, "main": 0.0}
        # a manual full `kpi run` serves the main job
        write_heartbeat(store, RUN, now=later, started_at=later, detail="kpi run")
        assert rows(later) == {"source:hourly": (False, False), "main": (True, False)}
    finally:
        store.close()


@pytest.mark.parametrize("existing", ["empty", "another app's"])
def test_reading_a_sqlite_file_without_the_stores_tables_writes_nothing_to_it(
    tmp_path: Path, cli: Callable[..., tuple[int, str, str]], existing: str
) -> None:
    """`store:` pointing at a file that exists but holds no store (an empty file, another
    program's database, a misspelt path to one): a health probe created every table of the
    store in it and switched it to WAL. Now it and the other commands that only read leave
    the file byte for byte as it was, and say nothing has run with this config yet."""
    import sqlite3

    db = tmp_path / "app.db"
    if existing == "empty":
        db.write_bytes(b"")
    else:
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY)")
        conn.close()
    before = db.read_bytes()
    (tmp_path / "kpi.yaml").write_text('store: "sqlite:///app.db"\n' + CONFIG)
    config = str(tmp_path / "kpi.yaml")
    code, out, _ = cli("-c", config, "validate", "--health", "--format", "json")
    (problem,) = json.loads(out)["problems"]
    assert code == 1 and problem.startswith(f"the store {db} has no tables: nothing has run")
    assert cli("-c", config, "alerts", "list")[0] == 0
    assert cli("-c", config, "history", "--format", "json")[0] == 0
    assert cli("-c", config, "deliver", "--list")[0] == 0
    assert db.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app.db", "kpi.yaml"]


def test_an_alert_whose_for_has_not_passed_is_pending_not_a_problem(tmp_path: Path) -> None:
    """`health: {fail_on: [alerts]}` makes "an alert that fires" a problem; an alert true for
    one check of its `for: 3` has fired for nobody (nobody was told), yet health called it
    active and exited 1. It is a warning that says it is pending until it fires."""
    from datetime import UTC, datetime

    from kpi_collector.config import load_config
    from kpi_collector.pipeline import Pipeline
    from kpi_collector.schedule.health import health_report

    (tmp_path / "kpi.yaml").write_text(
        "health: {fail_on: [alerts]}\n"
        + CONFIG.split("destinations:")[0]
        + "alerts:\n  - {kpi: seven.value, below: 100, for: 3}\n"
    )
    config = load_config(tmp_path / "kpi.yaml")
    at = [datetime(2026, 11, 2, 7, 0, n, tzinfo=UTC) for n in range(3)]
    Pipeline.from_config(config).process(now=at[0])
    report = health_report(config, now=at[0].timestamp() + 60)
    assert report["ok"], report["problems"]
    assert report["warnings"] == [
        "alert pending since 2026-11-02 07:00 UTC (its `for:` has not passed): "
        "seven.value below 100"
    ]
    for when in at[1:]:
        Pipeline.from_config(config).process(now=when)
    report = health_report(config, now=at[2].timestamp() + 60)
    assert not report["ok"] and report["warnings"] == []
    assert report["problems"] == ["alert active since 2026-11-02 07:00 UTC: seven.value below 100"]


def test_a_manual_run_that_succeeded_after_a_failed_scheduled_one_is_the_jobs_newest_outcome(
    tmp_path: Path,
) -> None:
    """The 07:00 job failed (its API was down); someone fixed it and ran `kpi run`, which
    serves the main job: `--health` said ok, but the job's row kept "failed" with the old
    error and `kpi_job_up` stayed 0 until the next day's 07:00. The newer success is the
    job's outcome now."""
    import time
    from datetime import UTC, datetime

    from prometheus_client.parser import text_string_to_metric_families

    from kpi_collector.config import load_config
    from kpi_collector.pipeline import Pipeline
    from kpi_collector.report.data import DashboardData
    from kpi_collector.report.metrics import metrics_text
    from kpi_collector.schedule.health import health_report
    from kpi_collector.schedule.scheduler import Scheduler

    broken = tmp_path / "broken"
    broken.write_text("API down")
    check = f"import pathlib, sys; p = pathlib.Path({str(broken)!r}); "
    check += "sys.exit(p.read_text()) if p.exists() else print(7)"
    (tmp_path / "kpi.yaml").write_text(
        'schedule: "0 7 * * *"\nsources:\n'
        f"  - {{name: api, type: command, command: [{sys.executable}, -c, {json.dumps(check)}]}}\n"
    )
    config = load_config(tmp_path / "kpi.yaml")
    scheduler = Scheduler(config)
    job = scheduler.job("main")
    fire = job.cron.previous(datetime.now(UTC))
    try:
        assert scheduler.run_job(job, fire=fire).status == "failed"
    finally:
        scheduler.store.close()
    broken.unlink()
    Pipeline.from_config(config).process()  # `kpi run`: every source of the main job
    now = time.time()
    report = health_report(config, now=now)
    (row,) = report["jobs"]
    assert report["ok"] and not row["overdue"], report["problems"]
    assert (row["last_status"], row["last_error"]) == ("ok", None)
    data = DashboardData(config, clock=lambda: now, cache=False)
    try:
        text = metrics_text(data)
    finally:
        data.close()
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "kpi_job_up"]
    assert [(s.labels["job"], s.value) for s in family.samples] == [("main", 1.0)]


def test_deliveries_of_a_switched_off_destination_are_no_health_problem(tmp_path: Path) -> None:
    """A webhook that was down, then switched off (`enabled: false`): its pending delivery is
    never tried while it is off, and with `fail_on: [pending_deliveries]` health stayed a
    problem for ever. It is a warning that says the destination is switched off."""
    from kpi_collector.config import load_config
    from kpi_collector.pipeline import Pipeline
    from kpi_collector.schedule.health import health_report

    body = CONFIG.split("alerts:")[0].replace(
        "  - {name: hook, type: webhook, url: 'http://127.0.0.1:9/x'}",
        "  - {name: hook, type: webhook, url: 'http://127.0.0.1:9/x', retries: 0, enabled: %s}",
    )
    config_file = tmp_path / "kpi.yaml"
    config_file.write_text("health: {fail_on: [pending_deliveries]}\n" + body % "true")
    Pipeline.from_config(load_config(config_file)).process()
    report = health_report(load_config(config_file))
    assert not report["ok"] and "1 delivery pending (hook)" in report["problems"]
    config_file.write_text("health: {fail_on: [pending_deliveries]}\n" + body % "false")
    report = health_report(load_config(config_file))
    assert report["ok"], report["problems"]
    assert report["warnings"] == [
        "1 delivery pending for destinations switched off (`enabled: false`): hook; "
        "it goes out once they are switched on"
    ]


def test_an_alert_removed_from_the_config_is_no_longer_active_in_health(tmp_path: Path) -> None:
    """The config's last alert fired, then was removed: no run checks alerts any more, so its
    state stayed, and health (with `fail_on: [alerts]`, a problem: exit 1 for ever) still
    called it active. Health judges the config's alerts only."""
    from kpi_collector.config import load_config
    from kpi_collector.pipeline import Pipeline
    from kpi_collector.schedule.health import health_report

    head = "health: {fail_on: [alerts]}\n" + CONFIG.split("destinations:")[0]
    config_file = tmp_path / "kpi.yaml"
    config_file.write_text(head + "alerts:\n  - {kpi: seven.value, below: 100}\n")
    Pipeline.from_config(load_config(config_file)).process()
    report = health_report(load_config(config_file))
    assert report["problems"] == [p for p in report["problems"] if "alert active" in p] != []
    config_file.write_text(head)
    Pipeline.from_config(load_config(config_file)).process()
    report = health_report(load_config(config_file))
    assert report["ok"] and report["alerts"] == [], report["problems"]


def test_a_weekly_source_among_jobs_every_five_minutes_keeps_its_own_outcome(
    tmp_path: Path,
) -> None:
    """`weekly` (its own weekly schedule) failed on Monday and `monthly` stored its value;
    a job every five minutes ran `often` alone 700 times since. Health, the dashboard,
    `/metrics` and the report looked at the newest 50 (health: 500) runs only, so `weekly`
    looked never run (its failure gone from every page) and `monthly`'s kpi_source_up read 0
    ("failed or never ran"). Each source is judged by its own newest run, however many runs
    of other jobs came since."""
    import time

    from prometheus_client.parser import text_string_to_metric_families

    from kpi_collector.config import load_config
    from kpi_collector.destinations.digest import Digest
    from kpi_collector.report.data import DashboardData
    from kpi_collector.report.metrics import metrics_text
    from kpi_collector.schedule.health import health_report
    from kpi_collector.store import HistoryStore
    from kpi_collector.store.schema import observations, runs

    command = f"[{sys.executable}, -c, 'print(1)']"
    (tmp_path / "kpi.yaml").write_text(
        'schedule: "*/5 * * * *"\nsources:\n'
        f"  - {{name: often, type: command, command: {command}}}\n"
        f"  - {{name: weekly, type: command, command: {command}, schedule: '0 6 * * 1'}}\n"
        f"  - {{name: monthly, type: command, command: {command}, schedule: '0 6 1 * *'}}\n"
    )
    config = load_config(tmp_path / "kpi.yaml")
    now = time.time()
    start = now - 700 * 300 - 600
    store = HistoryStore(config.store_url)
    try:
        first = store.begin_run(started_at=start)
        store.finish_run(
            first,
            observations=[
                ("often.value", start, 1.0, "often"),
                ("monthly.value", start, 2.0, "monthly"),
            ],
            errors=[("weekly", None, "HTTP 503 from the weekly API", True)],
            finished_at=start + 1,
        )
        with store.engine.begin() as conn:
            for n in range(1, 701):
                at = start + n * 300
                run = conn.execute(
                    runs.insert().values(
                        started_at=at,
                        finished_at=at + 1,
                        status="ok",
                        trigger="schedule",
                        n_values=1,
                    )
                ).inserted_primary_key[0]
                conn.execute(
                    observations.insert().values(
                        run_id=run, kpi="often.value", ts=at, value=1.0, source="often"
                    )
                )
    finally:
        store.close()

    report = health_report(config, now=now)
    assert any(
        w.startswith("source weekly failed its last run: HTTP 503") for w in report["warnings"]
    )

    data = DashboardData(config, clock=lambda: now, cache=False)
    try:
        sources = {s["name"]: s for s in data.overview("day")["sources"]}
        text = metrics_text(data)
    finally:
        data.close()
    assert sources["weekly"]["status"] == "failing"
    assert "HTTP 503" in (sources["weekly"]["error"] or "")
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == "kpi_source_up"]
    up = {s.labels["source"]: s.value for s in family.samples}
    assert up == {"often": 1.0, "weekly": 0.0, "monthly": 1.0}

    store = HistoryStore(config.store_url)
    try:
        digest = Digest.from_store(store, tz="UTC", sources=["often", "weekly", "monthly"])
    finally:
        store.close()
    assert [e.where for e in digest.errors] == ["weekly"]
