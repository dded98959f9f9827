"""`kpi schedule`: jobs on their crons with an injectable clock (time travel through days, DST
and a sleeping machine), catch-up of missed runs, SIGTERM in a real process, health, snippets."""

from __future__ import annotations

import json
import os
import queue
import random
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from kpi_collector.cli import main
from kpi_collector.config import load_config
from kpi_collector.destinations.files import CSV
from kpi_collector.errors import ConfigError
from kpi_collector.pipeline import Pipeline
from kpi_collector.schedule.deploy import snippet
from kpi_collector.schedule.health import health_report, render
from kpi_collector.schedule.scheduler import Scheduler, plan
from kpi_collector.store import HistoryStore
from kpi_collector.store.heartbeats import SCHEDULER, job_states, write_heartbeat
from tests.cli import run_kpi
from tests.services import require_binary

ROOT = Path(__file__).resolve().parents[1]
KPI = [sys.executable, "-m", "kpi_collector"]
BERLIN = ZoneInfo("Europe/Berlin")
CALLS: list[str] = []


def app_values() -> dict[str, float]:
    CALLS.append("app")
    return {"users": 100 + len(CALLS)}


def fast_values() -> dict[str, float]:
    CALLS.append("fast")
    if SLOW:  # the run takes minutes on the scheduler's clock
        SLOW[0].t += timedelta(minutes=2)
    return {"events": len(CALLS)}


SLOW: list[FakeClock] = []  # the clock `fast_values` moves on, when set


CONFIG = """\
timezone: Europe/Berlin
schedule: "0 7 * * *"
sources:
  - {name: app, type: python, function: "tests.test_schedule:app_values"}
  - {name: fast, type: python, function: "tests.test_schedule:fast_values", schedule: "0 */6 * * *"}
destinations:
  - {type: csv, path: daily.csv, every: day}
  - {name: weekly, type: csv, path: weekly.csv, every: week, schedule: "0 9 * * 1"}
"""


class FakeClock:
    """Time that passes only when the scheduler sleeps; `suspend` makes one sleep jump ahead
    (the machine asleep); `until` sets the stop event once reached."""

    def __init__(
        self,
        start: datetime,
        until: datetime,
        stop: threading.Event,
        suspend: tuple[datetime, datetime] | None = None,
    ) -> None:
        self.t = start.astimezone(UTC)
        self.until = until
        self.stop = stop
        self.suspend = suspend
        self.sleeps = 0

    def now(self) -> datetime:
        return self.t

    def sleep(self, seconds: float, stop: threading.Event) -> None:
        self.sleeps += 1
        self.t += timedelta(seconds=max(seconds, 0.001))
        if self.suspend and self.t >= self.suspend[0]:
            self.t = self.suspend[1].astimezone(UTC)
            self.suspend = None
        if self.t >= self.until:
            self.stop.set()


@pytest.fixture
def folder(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "kpi.yaml").write_text(CONFIG, encoding="utf-8")
    CALLS.clear()
    yield tmp_path
    SLOW.clear()


def scheduler_at(folder: Path, start: datetime, until: datetime, **clock: object) -> Scheduler:
    stop = threading.Event()
    fake = FakeClock(start, until, stop, **clock)  # type: ignore[arg-type]
    return Scheduler(load_config(folder / "kpi.yaml"), clock=fake, stop=stop, heartbeat_every=3600)


def run_times(folder: Path) -> list[str]:
    """Each run: its local start and the sources it stored values of, e.g. `Sun 07:00 app`."""
    import sqlalchemy as sa

    from kpi_collector.store.schema import observations, runs

    store = HistoryStore(f"sqlite:///{folder / 'kpi.db'}")
    try:
        with store.engine.connect() as conn:
            started = dict(conn.execute(sa.select(runs.c.id, runs.c.started_at)).all())
            stored: dict[int, set[str]] = {}
            for run_id, kpi in conn.execute(sa.select(observations.c.run_id, observations.c.kpi)):
                stored.setdefault(run_id, set()).add(kpi.partition(".")[0])
    finally:
        store.close()
    return [
        datetime.fromtimestamp(started[i], BERLIN).strftime("%a %H:%M ")
        + "+".join(sorted(stored.get(i, ())))
        for i in sorted(started)
    ]


def test_plan_gives_sources_and_destinations_with_a_schedule_their_own_job(folder: Path) -> None:
    jobs = {job.name: job for job in plan(load_config(folder / "kpi.yaml"))}
    assert list(jobs) == ["source:fast", "main", "destination:weekly"]
    assert jobs["main"].sources == ("app",) and jobs["main"].destinations == ("csv",)
    assert jobs["source:fast"].sources == ("fast",) and not jobs["source:fast"].destinations
    assert jobs["destination:weekly"].destinations == ("weekly",)
    assert not jobs["destination:weekly"].collects
    assert str(jobs["main"].cron.tz) == "Europe/Berlin"


def test_two_days_on_the_clock_across_dst(folder: Path) -> None:
    # Saturday noon before the spring change (Sunday 02:00 -> 03:00) until Monday 10:00
    start = datetime(2026, 3, 28, 12, tzinfo=BERLIN)
    scheduler = scheduler_at(folder, start, datetime(2026, 3, 30, 10, tzinfo=BERLIN))
    scheduler.serve()
    assert run_times(folder) == [
        # catching up on start: nothing ever ran, so each collecting job runs once
        "Sat 12:00 fast",
        "Sat 12:00 app",
        "Sat 18:00 fast",
        "Sun 00:00 fast",
        "Sun 06:00 fast",  # CEST now: 04:00 UTC
        "Sun 07:00 app",
        "Sun 12:00 fast",
        "Sun 18:00 fast",
        "Mon 00:00 fast",
        "Mon 06:00 fast",
        "Mon 07:00 app",
    ]
    # the weekly destination got the newest run on start (catch-up) and on Monday 09:00, not
    # after every run; the daily one got each main run's day
    weekly = CSV(path="weekly.csv").read(folder / "weekly.csv")
    assert [row["period"] for row in weekly] == ["2026-W13", "2026-W14"]
    assert float(weekly[-1]["app.users"]) == 100 + CALLS.count("app") + CALLS.count("fast")
    daily = CSV(path="daily.csv").read(folder / "daily.csv")
    assert [row["period"] for row in daily] == ["2026-03-28", "2026-03-29", "2026-03-30"]
    states = job_states(scheduler.store)
    assert {name: s.last_status for name, s in states.items()} == {
        "main": "ok",
        "source:fast": "ok",
        "destination:weekly": "ok",
    }
    assert (
        states["destination:weekly"].last_success_at
        == datetime(2026, 3, 30, 9, tzinfo=BERLIN).timestamp()
    )
    beat = scheduler.store.heartbeats()[SCHEDULER]
    assert beat.state == "stopped" and beat.pid == os.getpid()


def test_a_restart_catches_up_once_not_once_per_missed_day(folder: Path) -> None:
    first = scheduler_at(
        folder, datetime(2026, 11, 2, 6, 30, tzinfo=BERLIN), datetime(2026, 11, 2, 8, tzinfo=BERLIN)
    )
    first.serve()
    app_runs = [t for t in run_times(folder) if t.endswith("app")]
    assert app_runs == ["Mon 06:30 app", "Mon 07:00 app"]  # never ran before: once on start
    # down for four days; back on Friday afternoon: one main run, then 07:00 on Saturday
    second = scheduler_at(
        folder, datetime(2026, 11, 6, 15, tzinfo=BERLIN), datetime(2026, 11, 7, 8, tzinfo=BERLIN)
    )
    assert [j.name for j in second.due(second.clock.now())] == [
        "source:fast",
        "main",
        "destination:weekly",
    ]
    second.serve()
    app_runs = [t for t in run_times(folder) if t.endswith("app")]
    assert app_runs == ["Mon 06:30 app", "Mon 07:00 app", "Fri 15:00 app", "Sat 07:00 app"]
    # started again right after: nothing is due
    third = scheduler_at(
        folder,
        datetime(2026, 11, 7, 8, 5, tzinfo=BERLIN),
        datetime(2026, 11, 7, 8, 6, tzinfo=BERLIN),
    )
    assert third.due(third.clock.now()) == []


def test_a_fire_time_passing_while_the_start_catches_up_runs_late_not_a_day_later(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    scheduler_at(
        folder, datetime(2026, 11, 2, 6, 30, tzinfo=BERLIN), datetime(2026, 11, 2, 8, tzinfo=BERLIN)
    ).serve()
    # back at 06:59 the next day: main served 07:00 yesterday (not due), fast missed four
    # fire times and catches up, taking two minutes: main's 07:00 passes meanwhile
    second = scheduler_at(
        folder, datetime(2026, 11, 3, 6, 59, tzinfo=BERLIN), datetime(2026, 11, 3, 8, tzinfo=BERLIN)
    )
    assert "main" not in [j.name for j in second.due(second.clock.now())]
    SLOW.append(second.clock)  # type: ignore[arg-type]
    with caplog.at_level("INFO", logger="kpi_collector.schedule"):
        second.serve()
    assert [t for t in run_times(folder) if t.startswith("Tue")] == [
        "Tue 06:59 fast",
        "Tue 07:01 app",  # late, once (it was left until Wednesday)
    ]
    assert "while it ran" not in caplog.text
    states = job_states(second.store)
    assert states["main"].last_success_at == datetime(2026, 11, 3, 7, tzinfo=BERLIN).timestamp()


def test_a_job_catching_up_behind_a_slow_one_serves_its_newest_fire_time(folder: Path) -> None:
    # nothing ever ran; at 06:59 fast catches up first (two minutes), then main, at 07:01:
    # its run serves today's 07:00, not yesterday's (07:00 then skipped as a misfire)
    scheduler = scheduler_at(
        folder, datetime(2026, 11, 3, 6, 59, tzinfo=BERLIN), datetime(2026, 11, 3, 8, tzinfo=BERLIN)
    )
    SLOW.append(scheduler.clock)  # type: ignore[arg-type]
    scheduler.serve()
    assert [t for t in run_times(folder) if t.endswith("app")] == ["Tue 07:01 app"]
    states = job_states(scheduler.store)
    assert states["main"].last_success_at == datetime(2026, 11, 3, 7, tzinfo=BERLIN).timestamp()
    # --once does the same
    CALLS.clear()
    (folder / "kpi.db").unlink()
    once = scheduler_at(
        folder, datetime(2026, 11, 3, 6, 59, tzinfo=BERLIN), datetime(2026, 11, 3, 8, tzinfo=BERLIN)
    )
    SLOW[:] = [once.clock]  # type: ignore[list-item]
    assert [(r.job, r.status) for r in once.run_due()][:2] == [
        ("source:fast", "ok"),
        ("main", "ok"),
    ]
    assert job_states(once.store)["main"].last_success_at == states["main"].last_success_at


def test_a_machine_that_slept_through_fire_times_runs_each_job_once_on_waking(
    folder: Path,
) -> None:
    scheduler = scheduler_at(
        folder,
        datetime(2026, 11, 2, 7, 30, tzinfo=BERLIN),
        datetime(2026, 11, 5, 8, tzinfo=BERLIN),
        suspend=(datetime(2026, 11, 2, 9, tzinfo=BERLIN), datetime(2026, 11, 4, 16, tzinfo=BERLIN)),
    )
    scheduler.serve()
    app_runs = [t for t in run_times(folder) if t.endswith("app")]
    # catch-up on Monday, asleep Monday 09:00 to Wednesday 16:00 (two 07:00s missed): once
    assert app_runs == ["Mon 07:30 app", "Wed 16:00 app", "Thu 07:00 app"]
    fast_runs = [t for t in run_times(folder) if t.endswith("fast")]
    assert fast_runs[:3] == ["Mon 07:30 fast", "Wed 16:00 fast", "Wed 18:00 fast"]


def test_waking_serves_the_newest_fire_time_so_a_restart_runs_nothing_again(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # asleep Monday 10:00 to Wednesday 16:00 two weeks later: main's 07:00s, fast's 6-hourly
    # times and two Mondays 09:00 of the weekly digest passed
    scheduler = scheduler_at(
        folder,
        datetime(2026, 11, 2, 7, 30, tzinfo=BERLIN),
        datetime(2026, 11, 18, 16, 30, tzinfo=BERLIN),
        suspend=(
            datetime(2026, 11, 2, 10, tzinfo=BERLIN),
            datetime(2026, 11, 18, 16, tzinfo=BERLIN),
        ),
    )
    with caplog.at_level("INFO", logger="kpi_collector.schedule"):
        scheduler.serve()
    assert run_times(folder) == [
        "Mon 07:30 fast",
        "Mon 07:30 app",
        "Wed 16:00 fast",
        "Wed 16:00 app",
    ]
    # each run on waking served its job's newest fire time, not the first one it slept through
    served = {n: s.last_success_at for n, s in job_states(scheduler.store).items()}
    assert served == {
        "source:fast": datetime(2026, 11, 18, 12, tzinfo=BERLIN).timestamp(),
        "main": datetime(2026, 11, 18, 7, tzinfo=BERLIN).timestamp(),
        "destination:weekly": datetime(2026, 11, 16, 9, tzinfo=BERLIN).timestamp(),
    }
    # no run passed over fire times "while it ran": the jobs did not run then
    assert "while it ran" not in caplog.text
    # the digest on waking is this week's, with Wednesday's values (not week 46 with week 45's)
    weekly = CSV(path="weekly.csv").read(folder / "weekly.csv")
    assert [row["period"] for row in weekly] == ["2026-W45", "2026-W47"]
    assert float(weekly[-1]["app.users"]) == 100 + len(CALLS)
    # restarted an hour later: the fire times were served, nothing runs twice
    later = scheduler_at(
        folder,
        datetime(2026, 11, 18, 17, tzinfo=BERLIN),
        datetime(2026, 11, 18, 17, 30, tzinfo=BERLIN),
    )
    assert later.due(later.clock.now()) == []


def test_a_scheduled_digest_carries_the_main_jobs_run_not_a_source_jobs(folder: Path) -> None:
    # fast collected at 08:30, after main's 07:00 and before the weekly digest's Monday 09:00
    (folder / "kpi.yaml").write_text(CONFIG.replace("0 */6 * * *", "30 8 * * *"))
    scheduler = scheduler_at(
        folder,
        datetime(2026, 11, 8, 12, tzinfo=BERLIN),
        datetime(2026, 11, 9, 10, tzinfo=BERLIN),
    )
    scheduler.serve()
    assert run_times(folder) == [
        "Sun 12:00 fast",
        "Sun 12:00 app",
        "Mon 07:00 app",
        "Mon 08:30 fast",
    ]
    weekly = CSV(path="weekly.csv").read(folder / "weekly.csv")
    # each row is a run of the main job: Sunday's (the catch-up on start) and Monday 07:00's,
    # not the 08:30 run of fast alone (which left out app.users)
    assert [(row["period"], row["app.users"]) for row in weekly] == [
        ("2026-W45", str(100 + 2)),
        ("2026-W46", str(100 + 3)),
    ]


def test_runs_collecting_pages_past_the_runs_of_a_sources_own_job(folder: Path) -> None:
    from kpi_collector.store.runs import runs_collecting

    pipeline = Pipeline.from_config(load_config(folder / "kpi.yaml"))
    day = datetime(2026, 11, 2, 7, tzinfo=BERLIN)
    for hour, only in enumerate([None, ["fast"], ["fast"], ["fast"], ["app"], ["fast"]]):
        pipeline.process(only=only, now=day + timedelta(hours=hour), deliver=False)
    store = HistoryStore(f"sqlite:///{folder / 'kpi.db'}")
    try:
        found = [r.id for r in runs_collecting(store, ["app"], page=2)]
        assert found == [5, 1]  # across three pages of two runs
        assert [r.id for r in runs_collecting(store, [], page=2)] == [6, 5, 4, 3, 2, 1]
        assert [r.id for r in runs_collecting(store, ["app", "fast"], page=4)] == [1]
    finally:
        store.close()


def test_a_job_the_run_lock_kept_out_is_tried_again_not_lost_until_its_next_fire_time(
    folder: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from kpi_collector.store.lock import store_mutex

    # another run (a long backfill, say) holds the store when the scheduler starts at 07:30
    holder = store_mutex(HistoryStore(f"sqlite:///{folder / 'kpi.db'}"), "run")
    assert holder.try_acquire()

    class Releasing(FakeClock):
        def sleep(self, seconds: float, stop: threading.Event) -> None:
            holder.release()  # the other run ends while the scheduler waits
            super().sleep(seconds, stop)

    stop = threading.Event()
    clock = Releasing(
        datetime(2026, 11, 3, 7, 30, tzinfo=BERLIN), datetime(2026, 11, 3, 10, tzinfo=BERLIN), stop
    )
    scheduler = Scheduler(
        load_config(folder / "kpi.yaml"), clock=clock, stop=stop, heartbeat_every=600, lock_wait=0
    )
    with caplog.at_level("INFO", logger="kpi_collector.schedule"):
        scheduler.serve()
    holder.release()
    assert "main: skipped: another run holds the store" in caplog.text
    assert "main: trying again at 2026-11-03 07:40 CET" in caplog.text
    # each job ran once, ten minutes later, for its fire time: not on Wednesday
    assert run_times(folder) == ["Tue 07:40 fast", "Tue 07:40 app"]
    states = job_states(scheduler.store)
    assert states["main"].last_success_at == datetime(2026, 11, 3, 7, tzinfo=BERLIN).timestamp()
    assert states["main"].last_status == "ok"


def test_a_manual_kpi_run_counts_as_the_main_jobs_run(folder: Path) -> None:
    config = load_config(folder / "kpi.yaml")
    Pipeline.from_config(config).process(now=datetime(2026, 11, 2, 7, 5, tzinfo=BERLIN))
    at_eight = datetime(2026, 11, 2, 8, tzinfo=BERLIN)
    scheduler = scheduler_at(folder, at_eight, at_eight + timedelta(hours=1))
    # it collected every source after their last fire times (07:00 and 06:00)
    assert [job.name for job in scheduler.due(at_eight)] == ["destination:weekly"]
    # by 12:30 the fast source fired again at 12:00; main's 07:00 is still covered
    due = [job.name for job in scheduler.due(at_eight + timedelta(hours=4, minutes=30))]
    assert due == ["source:fast", "destination:weekly"]


def test_a_kpi_run_of_some_sources_is_not_the_main_jobs_run(folder: Path) -> None:
    config = load_config(folder / "kpi.yaml")
    Pipeline.from_config(config).process(
        only=["fast"], now=datetime(2026, 11, 2, 7, 5, tzinfo=BERLIN)
    )
    at_eight = datetime(2026, 11, 2, 8, tzinfo=BERLIN)
    scheduler = scheduler_at(folder, at_eight, at_eight + timedelta(hours=1))
    # app was not collected since its 07:00: main is due; fast was, at 07:05
    assert [job.name for job in scheduler.due(at_eight)] == ["main", "destination:weekly"]
    Pipeline.from_config(config).process(
        only=["app", "fast"], now=datetime(2026, 11, 2, 8, 1, tzinfo=BERLIN)
    )  # every source of the main job (named): that is its run
    assert [job.name for job in scheduler.due(at_eight)] == ["destination:weekly"]


def test_once_runs_what_is_due_and_then_nothing(folder: Path) -> None:
    scheduler = scheduler_at(
        folder, datetime(2026, 11, 2, 8, tzinfo=BERLIN), datetime(2026, 11, 2, 9, tzinfo=BERLIN)
    )
    results = scheduler.run_due()
    assert [(r.job, r.status) for r in results] == [
        ("source:fast", "ok"),
        ("main", "ok"),
        ("destination:weekly", "ok"),
    ]
    assert scheduler.run_due() == []


def test_a_failing_job_is_recorded_and_the_scheduler_goes_on(folder: Path) -> None:
    config = (folder / "kpi.yaml").read_text(encoding="utf-8")
    (folder / "kpi.yaml").write_text(
        config.replace("tests.test_schedule:fast_values", "tests.test_schedule:no_such_function")
    )
    scheduler = scheduler_at(
        folder, datetime(2026, 11, 2, 6, tzinfo=BERLIN), datetime(2026, 11, 2, 7, 30, tzinfo=BERLIN)
    )
    scheduler.serve()
    states = job_states(scheduler.store)
    assert states["source:fast"].last_status == "failed"
    assert states["source:fast"].last_success_at is None
    assert "no_such_function" in (states["source:fast"].last_error or "")
    assert states["main"].last_status == "ok"  # 07:00 still ran


# a real `kpi schedule` process ------------------------------------------------------------


SLOW_CONFIG = f"""\
schedule: "0 7 * * *"
sources:
  - name: slow
    type: command
    command: [{sys.executable}, -c, "import time; time.sleep(1.5); print(7)"]
"""


class Running:
    """`kpi schedule` in a subprocess, its stderr lines collected as they come."""

    def __init__(self, folder: Path, **extra_env: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}
        env["PYTHONPATH"] = str(ROOT)
        env.update(extra_env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "kpi_collector", "-c", str(folder / "kpi.yaml"), "schedule"],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 20) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            self.seen.append(line)
            if text in line:
                return line
        raise AssertionError(f"no {text!r} in {self.seen}")

    def __enter__(self) -> Running:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:  # a test that failed before it stopped the scheduler
            self.proc.kill()

    def finish(self, timeout: float = 20) -> int:
        code = self.proc.wait(timeout)
        self.reader.join(timeout)  # every line up to the end of its stderr
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code


def test_sigterm_during_a_run_finishes_writing_it_then_exits_0(tmp_path: Path) -> None:
    (tmp_path / "kpi.yaml").write_text(SLOW_CONFIG, encoding="utf-8")
    with Running(tmp_path) as running:
        started = running.wait_for("main: collect slow")  # the catch-up run on start
        assert started[:4].isdigit() and "T" in started[:11]  # an ISO timestamp leads each line
        time.sleep(0.3)  # the source is sleeping now
        running.proc.send_signal(signal.SIGTERM)
        assert running.finish() == 0
    log = "\n".join(running.seen)
    assert "SIGTERM: finishing the job in progress, then stopping" in log
    assert "main: run 1: 1 value, 0 errors" in log
    assert "scheduler stopped" in log
    store = HistoryStore(f"sqlite:///{tmp_path / 'kpi.db'}")
    try:
        run = store.runs(1)[0]
        assert (run.status, run.trigger) == ("ok", "schedule")
        assert store.latest(["slow.value"])["slow.value"].value == 7
        assert store.heartbeats()[SCHEDULER].state == "stopped"
        assert "run" not in store.heartbeats()  # the lock was released
    finally:
        store.close()


def test_a_second_sigterm_stops_at_once_with_exit_130(tmp_path: Path) -> None:
    # docs/schedule.md: "A second signal stops at once (exit 130)"; it used to exit 1 "aborted"
    (tmp_path / "kpi.yaml").write_text(SLOW_CONFIG.replace("1.5", "5"), encoding="utf-8")
    with Running(tmp_path) as running:
        running.wait_for("main: collect slow")
        running.proc.send_signal(signal.SIGTERM)
        running.wait_for("SIGTERM: finishing the job in progress, then stopping")
        running.proc.send_signal(signal.SIGTERM)
        assert running.finish() == 130
    log = "\n".join(running.seen)
    assert "SIGTERM again: stopping now" in log
    assert "interrupted" in running.seen
    assert "aborted" not in log and "Traceback" not in log


def test_sigint_while_idle_stops_at_once(tmp_path: Path) -> None:
    (tmp_path / "kpi.yaml").write_text(SLOW_CONFIG.replace("time.sleep(1.5); ", ""))
    with Running(tmp_path) as running:
        running.wait_for("main: run 1")
        time.sleep(0.2)
        running.proc.send_signal(signal.SIGINT)
        # idle until the next minute, it stops at once instead (a hang fails on the timeout)
        assert running.finish(timeout=10) == 0
    assert "SIGINT: finishing the job in progress, then stopping" in "\n".join(running.seen)


def test_a_second_scheduler_on_the_same_store_is_refused(tmp_path: Path) -> None:
    (tmp_path / "kpi.yaml").write_text(SLOW_CONFIG.replace("time.sleep(1.5); ", ""))
    running = Running(tmp_path)
    try:
        running.wait_for("main: run 1")
        second = run_kpi(tmp_path, "schedule", env={"PYTHONPATH": str(ROOT)})
        assert second.returncode == 1
        assert "another `kpi schedule` is running on this store" in second.stderr
        assert f"pid {running.proc.pid}" in second.stderr
    finally:
        running.proc.send_signal(signal.SIGTERM)
        running.finish()


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


def test_once_and_run_from_the_command_line(
    tmp_path: Path, cli: Callable[..., tuple[int, str, str]]
) -> None:
    (tmp_path / "kpi.yaml").write_text(SLOW_CONFIG.replace("time.sleep(1.5); ", ""))
    config = str(tmp_path / "kpi.yaml")
    code, _, err = cli("-c", config, "schedule", "--once")
    assert code == 0 and "main: run 1: 1 value," in err
    assert cli("-c", config, "schedule", "--once")[::2] == (0, "nothing is due\n")
    # the crontab's `--run main` after the fire time was served: nothing to do, exit 0
    code, _, err = cli("-c", config, "schedule", "--run", "main")
    assert code == 0 and "already ran" in err and err.endswith("nothing is due\n")
    code, _, err = cli("-c", config, "schedule", "--run", "main", "--force")
    assert code == 0 and "main: run 2" in err
    assert cli("-c", config, "schedule", "--force")[0] == 2
    code, _, err = cli("-c", config, "schedule", "--run", "source:nope")
    assert code == 2 and "no scheduled job named 'source:nope'; jobs: main" in err
    assert cli("-c", config, "schedule", "--once", "--print", "crontab")[0] == 2
    code, out, _ = cli("-c", config, "schedule", "--list")
    assert code == 0 and out.startswith("main") and "collect slow" in out
    # a failing source: the job is not ok, the exit code says so
    (tmp_path / "kpi.yaml").write_text(SLOW_CONFIG.replace("print(7)", "print('seven')"))
    code, _, err = cli("-c", config, "schedule", "--run", "main", "--force")
    assert code == 1 and "main: slow" in err


@pytest.mark.parametrize("args", [(), ("--once",), ("--list",), ("--run", "main")])
def test_a_config_with_nothing_to_schedule_is_refused_not_idle_for_ever(
    tmp_path: Path, cli: Callable[..., tuple[int, str, str]], args: tuple[str, ...]
) -> None:
    """Every source and destination disabled: `kpi schedule` used to wait for ever doing
    nothing (and `--once` said "nothing is due", exit 0); like `kpi run` and `--print`, it is
    a config error (exit 2) now, and nothing is created."""
    (tmp_path / "kpi.yaml").write_text(
        "sources:\n  - {name: pypi, type: pypi, package: zenml, enabled: false}\n"
    )
    code, _, err = cli("-c", str(tmp_path / "kpi.yaml"), "schedule", *args)
    assert code == 2
    assert "nothing to schedule: the config has no enabled source or destination" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kpi.yaml"]


# health ---------------------------------------------------------------------------------------


def test_health_says_what_is_wrong_and_exits_1(
    tmp_path: Path, cli: Callable[..., tuple[int, str, str]]
) -> None:
    (tmp_path / "kpi.yaml").write_text(SLOW_CONFIG.replace("time.sleep(1.5); ", ""))
    config = load_config(tmp_path / "kpi.yaml")
    nine = datetime(2026, 11, 2, 9, tzinfo=UTC).timestamp()
    created_on(config.store_url, datetime(2026, 11, 1, tzinfo=UTC).timestamp())
    report = health_report(config, now=nine)
    assert not report["ok"]
    assert any(
        "job main (0 7 * * *) is overdue" in p and "never succeeded" in p
        for p in report["problems"]
    )
    Pipeline.from_config(config).process(now=datetime(2026, 11, 2, 8, tzinfo=UTC))
    report = health_report(config, now=nine)
    assert report["ok"], report["problems"]
    assert report["last_run"]["status"] == "ok" and report["jobs"][0]["overdue"] is False
    # a scheduler that stopped beating without saying it stopped
    store = HistoryStore(config.store_url)
    write_heartbeat(store, SCHEDULER, now=nine - 3600, state="idle", next_run_at=nine)
    store.close()
    report = health_report(config, now=nine)
    assert any("the scheduler" in p and "stopped beating" in p for p in report["problems"])
    text = render(report)
    assert text.startswith("health: PROBLEMS") and "last heartbeat 60 min ago" in text

    code, out, _ = cli("-c", str(tmp_path / "kpi.yaml"), "validate", "--health", "--format", "json")
    assert code == 1
    doc = json.loads(out)
    assert set(doc) >= {"ok", "problems", "warnings", "scheduler", "jobs", "last_run", "alerts"}
    code, out, _ = cli("-c", str(tmp_path / "kpi.yaml"), "validate", "--health")
    assert code == 1 and "health: PROBLEMS" in out


def test_health_and_other_read_only_commands_create_no_store(
    tmp_path: Path, cli: Callable[..., tuple[int, str, str]]
) -> None:
    """A health probe, `kpi alerts list` and `kpi validate` read; they never create the store
    (nor its folder): a probe pointed at a store nothing writes to says so (exit 1) instead
    of creating an empty one that looks like a fresh install."""
    folder = tmp_path / "data"
    (tmp_path / "kpi.yaml").write_text(
        'store: "sqlite:///data/kpi.db"\n'
        + SLOW_CONFIG.replace("time.sleep(1.5); ", "")
        + "destinations:\n  - {name: hook, type: webhook, url: 'http://127.0.0.1:9/x'}\n"
        + "alerts:\n  - {kpi: slow.value, below: 1, notify: [hook]}\n"
    )
    config = str(tmp_path / "kpi.yaml")
    code, out, _ = cli("-c", config, "validate", "--health")
    assert code == 1 and out.startswith("health: PROBLEMS")
    assert f"the store {folder / 'kpi.db'} does not exist: nothing has run" in out
    assert "main" in out and "not run yet" in out
    code, out, _ = cli("-c", config, "validate", "--health", "--format", "json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and doc["last_run"] is None
    assert [(j["job"], j["overdue"], j["last_success"]) for j in doc["jobs"]] == [
        ("main", False, None)
    ]
    assert cli("-c", config, "validate")[0] == 0
    code, out, _ = cli("-c", config, "alerts", "list")
    assert code == 0 and "[never checked]" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kpi.yaml"]
    # once a run wrote the store, the probe reads it
    assert cli("-c", config, "run", "--no-deliver")[0] == 0
    code, out, _ = cli("-c", config, "validate", "--health")
    assert "does not exist" not in out and "last run: #1 ok" in out


def test_health_of_a_store_that_cannot_be_opened_is_still_the_document(
    tmp_path: Path, cli: Callable[..., tuple[int, str, str]]
) -> None:
    """A monitoring probe reads `--format json`: a database server that refuses gave only an
    `error:` line on stderr and nothing to parse; now the document says why (password
    hidden), exit 1."""
    (tmp_path / "kpi.yaml").write_text(
        'store: "postgresql+psycopg://kpi:hs2-secret-pw@127.0.0.1:1/kpi"\n'
        + SLOW_CONFIG.replace("time.sleep(1.5); ", "")
    )
    code, out, err = cli(
        "-c", str(tmp_path / "kpi.yaml"), "validate", "--health", "--format", "json"
    )
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and not err.strip()
    (problem,) = doc["problems"]
    assert problem.startswith("cannot open store ") and "hs2-secret-pw" not in out
    assert [j["job"] for j in doc["jobs"]] == ["main"]
    code, out, _ = cli("-c", str(tmp_path / "kpi.yaml"), "validate", "--health")
    assert code == 1 and out.startswith("health: PROBLEMS") and "cannot open store" in out


def test_a_frequent_job_that_stopped_running_is_overdue(tmp_path: Path) -> None:
    """A source collected every 5 minutes, last at 08:00: at 10:00 its newest fire time is
    always less than the 15 minutes of grace ago, so it was never overdue, however long it
    had not run (a crontab line gone, a timer stopped). The grace counts from the first fire
    time it missed (08:05)."""
    (tmp_path / "kpi.yaml").write_text(
        CONFIG.replace('schedule: "0 */6 * * *"}', 'schedule: "*/5 * * * *"}')
    )
    config = load_config(tmp_path / "kpi.yaml")
    created_on(config.store_url, datetime(2026, 11, 1, tzinfo=UTC).timestamp())
    eight = datetime(2026, 11, 2, 8, tzinfo=UTC)
    Pipeline.from_config(config).process(now=eight, deliver=False)  # main and fast, at 08:00

    def fast(minutes: float) -> dict[str, object]:
        report = health_report(config, now=(eight + timedelta(minutes=minutes)).timestamp())
        return next(j for j in report["jobs"] if j["job"] == "source:fast") | {
            "problems": report["problems"]
        }

    assert fast(4)["overdue"] is False
    assert fast(19)["overdue"] is False  # 08:05 missed, within its grace
    late = fast(120)
    assert late["overdue"] is True
    assert any(
        p.startswith(
            "job source:fast (*/5 * * * *) is overdue: it should have run at 2026-11-02 09:05 CET"
        )
        for p in late["problems"]
    ), late["problems"]


def created_on(store_url: str, when: float) -> None:
    """Make the store look created at `when` (UTC epoch seconds), as if it had been then."""
    import sqlite3

    HistoryStore(store_url).migrate()
    with sqlite3.connect(store_url.removeprefix("sqlite:///")) as db:
        db.execute("UPDATE kpi_meta SET value = ? WHERE key = 'created_at'", (repr(when),))


def test_a_job_that_never_ran_is_not_run_yet_until_its_first_fire_after_creation(
    tmp_path: Path,
) -> None:
    """`kpi init` then the dashboard a minute later: the 07:00 job that fired before the store
    existed is "not run yet", no problem; once a 07:00 after the store's creation has passed
    (with its 15 minutes of grace) without a run, it is overdue."""
    (tmp_path / "kpi.yaml").write_text(SLOW_CONFIG)
    config = load_config(tmp_path / "kpi.yaml")
    created = datetime(2026, 11, 2, 10, 30, tzinfo=UTC).timestamp()
    created_on(config.store_url, created)
    minute_later = created + 60
    report = health_report(config, now=minute_later)
    assert report["ok"], report["problems"]
    (job,) = report["jobs"]
    assert job["not_run_yet"] is True and job["overdue"] is False
    assert "main" in render(report) and "not run yet" in render(report)
    # the next day at 07:10, within the grace: still not a problem
    assert health_report(config, now=datetime(2026, 11, 3, 7, 10, tzinfo=UTC).timestamp())["ok"]
    late = health_report(config, now=datetime(2026, 11, 3, 7, 20, tzinfo=UTC).timestamp())
    assert late["jobs"][0]["overdue"] is True and late["jobs"][0]["not_run_yet"] is False
    assert any("job main" in p and "never succeeded" in p for p in late["problems"])


# deployment snippets --------------------------------------------------------------------------

SECRET_CONFIG = """\
timezone: Europe/Berlin
schedule: "0 7 * * *"
sources:
  - {name: gh, type: github, repo: a/b, token: "${GITHUB_TOKEN}", schedule: "30 */2 * * *"}
  - {name: crm, type: http_json, url: "https://crm.example/api", auth: {bearer: "${CRM_TOKEN}"},
     metrics: {paying: data.paying}}
destinations:
  - {type: csv, path: k.csv, schedule: "0 9 * * 7"}
store: sqlite:///data/kpi.db
# token: "${OLD_TOKEN}"  (a comment: not passed)
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / ".git").mkdir()
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "kpi.yaml").write_text(SECRET_CONFIG, encoding="utf-8")
    return tmp_path


ENV = {"GITHUB_TOKEN": "ghp_secret_value_123", "CRM_TOKEN": "crm-secret-value-456"}


def _config(repo: Path, monkeypatch: pytest.MonkeyPatch) -> object:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    return load_config(repo / "ops" / "kpi.yaml")


def test_crontab_snippet(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = snippet(_config(repo, monkeypatch), "crontab", kpi="/opt/kpi/bin/kpi")  # type: ignore[arg-type]
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    config = repo / "ops" / "kpi.yaml"
    assert lines == [
        "CRON_TZ=Europe/Berlin",
        f"30 */2 * * * cd {repo / 'ops'} && /opt/kpi/bin/kpi -c {config} schedule --run source:gh"
        f" >> {repo / 'ops' / 'kpi-schedule.log'} 2>&1",
        f"0 7 * * * cd {repo / 'ops'} && /opt/kpi/bin/kpi -c {config} schedule --run main"
        f" >> {repo / 'ops' / 'kpi-schedule.log'} 2>&1",
        f"0 9 * * 7 cd {repo / 'ops'} && /opt/kpi/bin/kpi -c {config} schedule --run destination:csv"
        f" >> {repo / 'ops' / 'kpi-schedule.log'} 2>&1",
    ]
    assert "Debian" in text
    assert all(value not in text for value in ENV.values())


def test_crontab_escapes_percent_signs(tmp_path: Path) -> None:
    folder = tmp_path / "100%"
    folder.mkdir()
    (folder / "kpi.yaml").write_text(SLOW_CONFIG)
    text = snippet(load_config(folder / "kpi.yaml"), "crontab", kpi="kpi")
    job = text.splitlines()[-1]
    assert "100\\%" in job and "100%" not in job.replace("100\\%", "")
    assert "CRON_TZ" not in text  # UTC needs none


def test_systemd_snippet(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = snippet(_config(repo, monkeypatch), "systemd", kpi="/opt/kpi/bin/kpi")  # type: ignore[arg-type]
    config = repo / "ops" / "kpi.yaml"
    assert f"ExecStart=/opt/kpi/bin/kpi -c {config} schedule\n" in text
    assert f"WorkingDirectory={repo / 'ops'}\n" in text
    for line in (
        "Type=notify",
        "WatchdogSec=600",
        "User=kpi",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "KillSignal=SIGTERM",
        "KillMode=mixed",
        "Restart=on-failure",
    ):
        assert f"\n{line}\n" in text
    assert f"\nReadWritePaths={repo / 'ops'} " in text  # the config's folder and the store's
    assert "WantedBy=multi-user.target" in text
    assert all(value not in text for value in ENV.values())


def test_github_actions_snippet(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = snippet(_config(repo, monkeypatch), "github-actions")  # type: ignore[arg-type]
    assert all(value not in text for value in ENV.values())
    workflow = yaml.safe_load(text)
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["schedule"] == [
        {"cron": "0 7 * * *", "timezone": "Europe/Berlin"},
        {"cron": "0 9 * * SUN", "timezone": "Europe/Berlin"},  # POSIX: Sunday is 0, not 7
        {"cron": "30 */2 * * *", "timezone": "Europe/Berlin"},
    ]
    assert "workflow_dispatch" in triggers
    assert workflow["permissions"] == {"contents": "write"}
    steps = workflow["jobs"]["kpi"]["steps"]
    collect = next(s for s in steps if s.get("name", "").startswith("Collect"))
    assert collect["run"] == "kpi -c ops/kpi.yaml schedule --once"
    assert collect["env"] == {
        "CRM_TOKEN": "${{ secrets.CRM_TOKEN }}",
        "GITHUB_TOKEN": "${{ secrets.GITHUB_TOKEN }}",
    }
    keep = next(s for s in steps if s.get("name", "").startswith("Keep the history"))
    assert keep["if"] == "always()"
    assert "git add -f ops/data/kpi.db" in keep["run"]
    assert "wal_checkpoint" in keep["run"] and "git push" in keep["run"]


def test_github_actions_with_a_database_server_store(tmp_path: Path) -> None:
    (tmp_path / "kpi.yaml").write_text(
        "store: postgresql+psycopg://kpi@db.example/kpi\n" + SLOW_CONFIG, encoding="utf-8"
    )
    text = snippet(load_config(tmp_path / "kpi.yaml"), "github-actions")
    workflow = yaml.safe_load(text)
    assert workflow[True]["schedule"] == [{"cron": "0 7 * * *"}]  # UTC: no time zone needed
    assert not any(
        "Keep the history" in s.get("name", "") for s in workflow["jobs"]["kpi"]["steps"]
    )
    assert "database server" in text
    (tmp_path / "kpi.yaml").write_text("sources: []\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="nothing to schedule"):
        snippet(load_config(tmp_path / "kpi.yaml"), "github-actions")


# exactly once -----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def once_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The store URL two `kpi schedule` processes share: a file, or a PostgreSQL schema as
    two hosts would share it."""
    from tests.services import require_postgres_url
    from tests.test_store import _isolated

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kpi.db'}"
        return
    urls = _isolated(require_postgres_url())
    yield next(urls)
    next(urls, None)


def test_two_once_processes_a_second_apart_run_the_fire_time_once(
    tmp_path: Path, once_store: str
) -> None:
    (tmp_path / "kpi.yaml").write_text(f"store: '{once_store}'\n" + SLOW_CONFIG)
    ready = HistoryStore(once_store)
    ready.migrate()  # the schema exists: this test is about the runs, not concurrent migrations
    ready.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "kpi_collector", "-c", str(tmp_path / "kpi.yaml")]
    first = subprocess.Popen(
        [*command, "schedule", "--once"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        time.sleep(1.0)  # the first holds the run lock, its source sleeping 1.5 s
        second = subprocess.run(
            [*command, "schedule", "--once"], env=env, capture_output=True, text=True, timeout=60
        )
        first_err = first.communicate(timeout=60)[1]
    finally:
        if first.poll() is None:
            first.kill()
    # whichever took the run lock first ran the fire time; the other found it served
    assert first.returncode == 0 and second.returncode == 0, first_err + second.stderr
    ran, idle = (
        (first_err, second.stderr) if "main: run 1" in first_err else (second.stderr, first_err)
    )
    assert "main: run 1: 1 value," in ran
    assert "already ran" in idle and idle.endswith("nothing is due\n")
    store = HistoryStore(once_store)
    try:
        assert [(r.id, r.trigger) for r in store.runs(10)] == [(1, "schedule")]
    finally:
        store.close()


def test_a_run_started_after_waiting_for_the_lock_is_stamped_when_it_starts(
    tmp_path: Path,
) -> None:
    from kpi_collector.store.lock import RunLock

    (tmp_path / "kpi.yaml").write_text(SLOW_CONFIG.replace("time.sleep(1.5); ", ""))
    config = load_config(tmp_path / "kpi.yaml")
    scheduler = Scheduler(config, lock_wait=30)
    holder = HistoryStore(config.store_url)
    lock = RunLock(holder, detail="kpi run")
    lock.acquire()
    released_at: list[float] = []

    def release_later() -> None:
        time.sleep(1.0)
        released_at.append(time.time())
        lock.release()

    thread = threading.Thread(target=release_later)
    thread.start()
    try:
        result = scheduler.run_job(scheduler.job("main"), fire=None)
    finally:
        thread.join()
        holder.close()
    assert result.status == "ok"
    run = scheduler.store.runs(1)[0]
    assert run.started_at >= released_at[0]  # not when it began to wait
    scheduler.store.close()


def test_one_shot_runs_leave_no_scheduler_heartbeat_for_health_to_miss(
    tmp_path: Path, cli: Callable[..., tuple[int, str, str]]
) -> None:
    (tmp_path / "kpi.yaml").write_text(SLOW_CONFIG.replace("time.sleep(1.5); ", ""))
    config = str(tmp_path / "kpi.yaml")
    assert cli("-c", config, "schedule", "--run", "main")[0] == 0
    assert cli("-c", config, "schedule", "--once")[0] == 0
    store = HistoryStore(f"sqlite:///{tmp_path / 'kpi.db'}")
    try:
        assert SCHEDULER not in store.heartbeats()
    finally:
        store.close()
    # hours later, between two cron ticks: nothing claims a scheduler stopped beating
    later = time.time() + 3 * 3600
    report = health_report(load_config(config), now=later)
    assert not any("stopped beating" in p for p in report["problems"]), report["problems"]


class SteppingClock(FakeClock):
    """A FakeClock that a job's source can move forward (a run that takes its time)."""


STEPPING: list[SteppingClock] = []


def long_job() -> dict[str, float]:
    STEPPING[0].t += timedelta(minutes=12)  # this run takes 12 minutes
    return {"n": 1}


MISFIRE_CONFIG = """\
schedule: "*/5 * * * *"
{misfire}
sources:
  - {{name: long, type: python, function: "tests.test_schedule:long_job"}}
"""


@pytest.mark.parametrize(
    ("misfire", "starts", "logged"),
    [
        (
            "",
            ["09:00:30", "09:15:00", "09:30:00"],
            "2 fire times passed while it ran (newest 2026-03-02 09:10 UTC): skipped (misfire: skip)",
        ),
        (
            "misfire: run_late",
            ["09:00:30", "09:12:30", "09:24:30"],
            "2 fire times passed while it ran; running the newest (2026-03-02 09:10 UTC) late",
        ),
        (
            "misfire: run_late\nmisfire_grace: 60",
            ["09:00:30", "09:15:00", "09:30:00"],
            "skipped (misfire: run_late, 150 s late > misfire_grace 60 s)",
        ),
    ],
)
def test_fire_times_passed_during_a_long_run_are_logged_and_follow_misfire(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    misfire: str,
    starts: list[str],
    logged: str,
) -> None:
    (tmp_path / "kpi.yaml").write_text(MISFIRE_CONFIG.format(misfire=misfire))
    config = load_config(tmp_path / "kpi.yaml")
    stop = threading.Event()
    start = datetime(2026, 3, 2, 9, 0, 30, tzinfo=UTC)  # the 09:00 fire is caught up on start
    clock = SteppingClock(start, start + timedelta(minutes=30), stop)
    STEPPING[:] = [clock]
    scheduler = Scheduler(config, clock=clock, stop=stop)
    with caplog.at_level("INFO", logger="kpi_collector.schedule"):
        scheduler.serve()
    # each run takes 12 minutes: skip waits for the next tick, run_late runs the newest
    # missed one at once while it is within misfire_grace
    runs = sorted(scheduler.store.runs(10), key=lambda r: r.id)
    assert [datetime.fromtimestamp(r.started_at, UTC).strftime("%H:%M:%S") for r in runs] == starts
    assert any(logged in r.getMessage() for r in caplog.records), [
        r.getMessage() for r in caplog.records
    ]
    scheduler.store.close()


def broken_members() -> dict[str, float]:
    raise RuntimeError("members API down")


HEALTH_CONFIG = """\
schedule: "0 7 * * *"
{health}
sources:
  - {{name: app, type: python, function: "tests.test_schedule:app_values"}}
  - {{name: members, type: python, function: "tests.test_schedule:broken_members"}}
alerts:
  - {{source: members, failing_runs: 2}}
  - {{kpi: app.users, below: 1000}}
"""


@pytest.mark.parametrize(
    ("health", "ok"),
    [
        ("", True),
        ("health: {fail_on: [failing_sources]}", False),
        ("health: {fail_on: [alerts]}", False),
    ],
)
def test_health_counts_failing_sources_and_alerts_as_problems_when_the_config_says_so(
    tmp_path: Path, health: str, ok: bool
) -> None:
    (tmp_path / "kpi.yaml").write_text(HEALTH_CONFIG.format(health=health))
    config = load_config(tmp_path / "kpi.yaml")
    for hour in (7, 8, 9):  # the source fails for three runs; both alerts fire
        Pipeline.from_config(config).process(now=datetime(2026, 11, 2, hour, tzinfo=UTC))
    report = health_report(config, now=datetime(2026, 11, 2, 10, tzinfo=UTC).timestamp())
    assert report["ok"] is ok, report["problems"]
    firing = [w for w in report["problems"] + report["warnings"] if "alert active" in w]
    assert len(firing) == 2  # a problem or a warning: never lost
    if "failing_sources" in health:
        assert any(
            p.startswith("source members failed its last 3 runs: ") and "members API down" in p
            for p in report["problems"]
        ), report["problems"]


def test_a_failing_source_stays_a_health_warning_after_another_jobs_run(tmp_path: Path) -> None:
    """`members` fails in the daily main job; an hourly source job runs fine afterwards. The
    newest run is the hourly one (ok), yet `members` still fails: its KPIs go stale, so health
    warns about it (a problem with `fail_on: [failing_sources]`), judged by the source's own
    newest attempt, not by whichever run came last."""
    (tmp_path / "kpi.yaml").write_text(
        HEALTH_CONFIG.format(health="").replace(
            "alerts:",
            '  - {name: hourly, type: python, function: "tests.test_schedule:app_values",'
            ' schedule: "0 * * * *"}\nalerts:',
        )
    )
    config = load_config(tmp_path / "kpi.yaml")
    scheduler = Scheduler(config)
    try:
        scheduler.run_job(scheduler.job("main"), fire=datetime(2026, 11, 2, 7, tzinfo=UTC))
        scheduler.run_job(scheduler.job("source:hourly"), fire=datetime(2026, 11, 2, 8, tzinfo=UTC))
    finally:
        scheduler.store.close()
    report = health_report(config, now=datetime(2026, 11, 2, 8, 5, tzinfo=UTC).timestamp())
    assert report["last_run"]["status"] == "ok" and report["ok"] is True
    assert any(
        w.startswith("source members failed its last run: ") and "members API down" in w
        for w in report["warnings"]
    ), report["warnings"]
    assert "source members failed" in render(report)


def test_heartbeat_url_is_pinged_after_each_job_that_succeeded(
    tmp_path: Path, cli: Callable[..., tuple[int, str, str]]
) -> None:
    """The dead-man's switch: a monitoring service hears from every successful job, and
    nothing from a failed one, so it alerts when the scheduler dies or keeps failing."""
    from aiohttp import web

    from kpi_collector.demo.server import BackgroundServer

    pings: list[str] = []

    async def ping(request: web.Request) -> web.Response:
        pings.append(request.path)
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_get("/ping/{uuid}", ping)
    with BackgroundServer(app) as url:
        base = SLOW_CONFIG.replace("time.sleep(1.5); ", "")
        (tmp_path / "kpi.yaml").write_text(f"heartbeat_url: {url}/ping/5e1f\n" + base)
        config = str(tmp_path / "kpi.yaml")
        assert cli("-c", config, "schedule", "--run", "main", "--force")[0] == 0
        assert pings == ["/ping/5e1f"]
        (tmp_path / "kpi.yaml").write_text(
            f"heartbeat_url: {url}/ping/5e1f\n" + base.replace("print(7)", "print('x')")
        )
        assert cli("-c", config, "schedule", "--run", "main", "--force")[0] == 1
        assert pings == ["/ping/5e1f"]  # a failed job says nothing
        (tmp_path / "kpi.yaml").write_text(f"heartbeat_url: {url}/gone\n" + base)
        code, _, err = cli("-c", config, "schedule", "--run", "main", "--force")
        assert code == 0 and "heartbeat_url: HTTP Error 404" in err  # logged, the job is fine
    (tmp_path / "kpi.yaml").write_text("heartbeat_url: ftp://x/y\n" + base)
    code, _, err = cli("-c", config, "validate")
    assert code == 2 and "heartbeat_url needs an http:// or https:// URL" in err


def test_a_scheduled_destinations_failed_delivery_is_retried_by_the_next_collecting_job(
    tmp_path: Path,
) -> None:
    """A monthly digest that failed at its own fire is not left for a month: the next
    collecting job retries it (after a backoff), and a failure is never summarised as
    "nothing new"."""
    from aiohttp import web

    from kpi_collector.demo.server import BackgroundServer

    posts: list[dict[str, object]] = []
    down = {"on": True}

    async def hook(request: web.Request) -> web.Response:
        if down["on"]:
            return web.json_response({"error": "maintenance"}, status=503)
        posts.append(await request.json())
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    with BackgroundServer(app) as url:
        (tmp_path / "kpi.yaml").write_text(
            'schedule: "0 7 * * *"\n'
            "sources:\n"
            '  - {name: app, type: python, function: "tests.test_schedule:app_values"}\n'
            "destinations:\n"
            f'  - {{name: digest, type: webhook, url: "{url}/hook", schedule: "0 9 L * *", '
            "retries: 0}\n"
        )
        config = load_config(tmp_path / "kpi.yaml")
        scheduler = Scheduler(config, retry_backoff=0)
        try:
            assert scheduler.run_job(scheduler.job("main")).status == "ok"
            failed = scheduler.run_job(scheduler.job("destination:digest"))
            assert failed.status == "failed" and "failed: digest run:1:" in failed.summary
            assert "nothing new" in failed.summary  # said, but never alone
            down["on"] = False
            again = scheduler.run_job(scheduler.job("main"))
            assert again.status == "ok", again.problems
            assert "delivered to digest" in again.summary
            assert len(posts) == 1
            states = {r.status for r in scheduler.store.runs(5) if r.id}
            assert states == {"ok"}
        finally:
            scheduler.store.close()


def _verify_units(folder: Path, text: str) -> None:
    """Split a snippet at its `# /etc/systemd/system/NAME` lines and run systemd-analyze
    verify on the files, as an operator installing them would."""

    analyze = require_binary("systemd-analyze", hint="Debian package systemd")
    files: list[Path] = []
    for line in text.splitlines(keepends=True):
        if line.startswith("# /etc/systemd/system/"):
            files.append(folder / line.strip().rsplit("/", 1)[1])
            files[-1].write_text("")
        with files[-1].open("a") as out:
            out.write(line)
    checked = subprocess.run(
        [analyze, "verify", *map(str, files)], capture_output=True, text=True, timeout=60
    )
    problems = [
        line
        for line in (checked.stdout + checked.stderr).splitlines()
        if "kpi" in line.lower() and "user" not in line.lower()  # the user is created on install
    ]
    assert checked.returncode == 0 or not problems, checked.stdout + checked.stderr
    assert not problems, problems


def test_systemd_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    (tmp_path / "kpi.yaml").write_text(
        'timezone: Europe/Berlin\nschedule: "0 7 * * 1-5"\njitter: 2m\n'
        + SLOW_CONFIG.split("\n", 1)[1]
    )
    config = load_config(tmp_path / "kpi.yaml")
    kpi = str(Path(sys.executable).parent / "kpi")
    daemon = snippet(config, "systemd", kpi=kpi)
    (tmp_path / "daemon").mkdir()
    _verify_units(tmp_path / "daemon", daemon)
    timer = snippet(config, "systemd-timer", kpi=kpi)
    assert "ExecStart=" in timer and "schedule --once" in timer and "Type=oneshot" in timer
    for line in (
        "OnCalendar=Mon,Tue,Wed,Thu,Fri *-*-* 07:00:00 Europe/Berlin",
        "Persistent=true",
        "RandomizedDelaySec=120",
        "WantedBy=timers.target",
    ):
        assert f"\n{line}\n" in timer
    (tmp_path / "timer").mkdir()
    _verify_units(tmp_path / "timer", timer)


@pytest.mark.parametrize(
    ("expr", "zone"),
    [
        ("0 7 * * *", "Europe/Berlin"),
        ("*/15 9-17 * * mon-fri", "UTC"),
        ("30 23 L * *", "UTC"),
        ("0 0 1 * mon", "UTC"),  # cron: the 1st OR Mondays
        ("5 4 * * 7", "America/New_York"),
        ("0 12 1,15 */3 *", "UTC"),
        ("0 9 * * */3", "UTC"),  # a stepped day of week: Sun, Wed, Sat, not every day
        ("0 9 */2 * 1-5/2", "UTC"),  # "*" days of month: both fields must match
        ("0 7 * jan-mar *", "Europe/Berlin"),  # month names
        ("0 7 1 feb,Aug *", "UTC"),
    ],
)
def test_timer_calendars_fire_when_the_cron_does(expr: str, zone: str) -> None:
    """Differential: systemd's own calendar arithmetic against the scheduler's crons."""
    import re

    from kpi_collector.config.cron import Cron
    from kpi_collector.schedule.deploy import on_calendar

    analyze = require_binary("systemd-analyze", hint="Debian package systemd")
    base = datetime(2026, 1, 5, 0, 0, 30, tzinfo=UTC)
    systemd_times: set[datetime] = set()
    for spec in on_calendar(expr, zone):
        out = subprocess.run(
            [
                analyze,
                "calendar",
                "--iterations=12",
                f"--base-time={base:%Y-%m-%d %H:%M:%S} UTC",
                spec,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        for stamp in re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC", out):
            systemd_times.add(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC))
    cron = Cron(expr, zone)
    ours, t = [], base
    for _ in range(12):
        t = cron.next_after(t)
        ours.append(t.astimezone(UTC))
    assert sorted(systemd_times)[:12] == ours


def test_github_actions_warns_about_crons_more_frequent_than_five_minutes(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "kpi.yaml").write_text('schedule: "*/2 * * * *"\n' + SLOW_CONFIG.split("\n", 1)[1])
    text = snippet(load_config(tmp_path / "kpi.yaml"), "github-actions")
    assert "GitHub runs scheduled workflows at most every 5 minutes; */2 * * * *" in text
    (tmp_path / "kpi.yaml").write_text(SLOW_CONFIG)
    assert "at most every 5 minutes" not in snippet(
        load_config(tmp_path / "kpi.yaml"), "github-actions"
    )


def test_jitter_delays_a_scheduled_job_within_its_bound(tmp_path: Path) -> None:
    (tmp_path / "kpi.yaml").write_text("jitter: 5m\n" + CONFIG)
    config = load_config(tmp_path / "kpi.yaml")
    stop = threading.Event()
    start = datetime(2026, 3, 2, 6, 59, tzinfo=UTC)
    clock = FakeClock(start, start + timedelta(minutes=2), stop)
    scheduler = Scheduler(config, clock=clock, stop=stop)
    fire = scheduler.job("main").cron.previous(datetime(2026, 3, 2, 7, 0, tzinfo=UTC))
    assert fire is not None
    clock.t = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # the Berlin 07:00 fire
    before = clock.t
    result = scheduler.run_job(scheduler.job("main"), fire=fire)
    assert result.status == "ok"
    waited = scheduler.store.runs(1)[0].started_at - before.timestamp()
    assert 0 <= waited <= 300
    scheduler.store.close()


def test_jitter_never_reaches_a_jobs_next_fire_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`jitter: 1h` spreads a daily job over an hour; a source collected every 10 minutes
    waited up to an hour too, past its next fire times (each one then a misfire). A job's
    jitter is at most half the time to its next fire time: 5 minutes here."""
    import random

    monkeypatch.setattr(random, "uniform", lambda low, high: high)  # the longest wait
    (tmp_path / "kpi.yaml").write_text(
        "jitter: 1h\n" + CONFIG.replace('schedule: "0 */6 * * *"}', 'schedule: "*/10 * * * *"}')
    )
    config = load_config(tmp_path / "kpi.yaml")
    stop = threading.Event()
    at = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # 07:00 in Berlin
    clock = FakeClock(at, at + timedelta(days=1), stop)
    scheduler = Scheduler(config, clock=clock, stop=stop)
    try:
        waited = {}
        for name in ("source:fast", "main"):
            job = scheduler.job(name)
            clock.t = at
            assert scheduler.run_job(job, fire=at).status == "ok"
            waited[name] = scheduler.store.runs(1)[0].started_at - at.timestamp()
        assert waited == {"source:fast": 300.0, "main": 3600.0}
    finally:
        scheduler.store.close()


def test_the_daemon_tells_systemd_it_is_ready_alive_and_stopping(tmp_path: Path) -> None:
    """sd_notify(3) as a `Type=notify` unit with `WatchdogSec=` needs it, over a real socket."""
    import socket as sockets

    address = str(tmp_path / "notify.sock")
    server = sockets.socket(sockets.AF_UNIX, sockets.SOCK_DGRAM)
    server.bind(address)
    server.settimeout(20)
    (tmp_path / "kpi.yaml").write_text(SLOW_CONFIG)  # its 1.5 s job spans watchdog pings
    try:
        with Running(tmp_path, NOTIFY_SOCKET=address, WATCHDOG_USEC="1000000") as running:
            got: list[str] = []
            while "WATCHDOG=1" not in got or "READY=1" not in got:
                got.append(server.recv(256).decode())
            running.wait_for("main: run 1")
            running.proc.send_signal(signal.SIGTERM)
            assert running.finish() == 0
            while "STOPPING=1" not in got:
                got.append(server.recv(256).decode())
    finally:
        server.close()
    assert got.index("READY=1") < got.index("STOPPING=1")


def test_a_caught_up_monthly_digest_carries_its_own_months_values(tmp_path: Path) -> None:
    """`every: month` on `30 23 L * *`, the scheduler down from Jan 31 to Feb 20: the catch-up
    sends January's digest with January's values, and February's goes out at its own fire."""
    (tmp_path / "kpi.yaml").write_text(
        'schedule: "0 7 1 * *"\n'
        "sources:\n"
        '  - {name: app, type: python, function: "tests.test_schedule:app_values"}\n'
        "destinations:\n"
        '  - {name: monthly, type: csv, path: monthly.csv, every: month, schedule: "30 23 L * *"}\n'
    )
    config = load_config(tmp_path / "kpi.yaml")
    CALLS.clear()
    for day in (29, 30):
        Pipeline.from_config(config).process(now=datetime(2026, 1, day, 7, tzinfo=UTC))
    Pipeline.from_config(config).process(now=datetime(2026, 2, 20, 7, tzinfo=UTC))
    stop = threading.Event()
    start = datetime(2026, 2, 20, 8, tzinfo=UTC)
    clock = FakeClock(start, datetime(2026, 3, 1, 0, tzinfo=UTC), stop)
    scheduler = Scheduler(config, clock=clock, stop=stop, heartbeat_every=6 * 3600)
    scheduler.serve()
    rows = (tmp_path / "monthly.csv").read_text().splitlines()
    header = rows[0].split(",")
    by_period = {r.split(",")[header.index("period")]: r for r in rows[1:]}
    assert sorted(by_period) == ["2026-01", "2026-02"]
    # app.users is 100 + calls: January's digest has the Jan 30 run (102), not Feb 20's (103)
    assert by_period["2026-01"].split(",")[header.index("app.users")] == "102"


def never_returns(marker: str) -> dict[str, float]:
    """A `python` source whose thread never returns (asyncio.run waits for it at its end)."""
    Path(marker).write_text("called")
    threading.Event().wait()
    return {"never": 0.0}


def _hung_config(tmp_path: Path, *, python_timeout: float, release: Path | None = None) -> str:
    """A job with a python source that never returns and a command whose shell leaves a
    child (`sleep`) in the background and waits for it; with `release`, the command waits
    for that file instead and then exits (its group, the `sleep` too, is killed)."""
    wait = f"while [ ! -e {release} ]; do sleep 0.1; done" if release else "wait"
    return (
        'schedule: "0 7 * * *"\n'
        "sources:\n"
        "  - {name: hung, type: python, function: tests.test_schedule:never_returns, "
        f"kwargs: {{marker: {str(tmp_path / 'called')!r}}}, timeout: {python_timeout}}}\n"
        "  - {name: bg, type: command, timeout: 600, command: [sh, -c, "
        f"'sleep 300 & echo $! > {tmp_path / 'bg.pid'}; {wait}']}}\n"
    )


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_second_sigterm_stops_at_once_even_when_a_source_never_returns(tmp_path: Path) -> None:
    """docs/schedule.md: "A second signal stops at once (exit 130)". A python source's thread
    that never returns used to keep the process waiting for ever (asyncio.run joins its
    thread); a command's background child must not outlive the stop either."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")
    (tmp_path / "kpi.yaml").write_text(_hung_config(tmp_path, python_timeout=600))
    child = None
    try:
        with Running(tmp_path) as running:
            running.wait_for("main: collect")
            deadline = time.monotonic() + 60
            while not ((tmp_path / "called").exists() and (tmp_path / "bg.pid").exists()):
                assert time.monotonic() < deadline, "the sources never started"
                time.sleep(0.05)
            while not (tmp_path / "bg.pid").read_text().strip():
                time.sleep(0.05)
            child = int((tmp_path / "bg.pid").read_text())
            running.proc.send_signal(signal.SIGTERM)
            running.wait_for("SIGTERM: finishing the job in progress, then stopping")
            running.proc.send_signal(signal.SIGTERM)
            assert running.finish(timeout=60) == 130
            # SIGKILL to the group is queued before kpi exits; the kernel ends the child when it
            # next runs, which a loaded machine can delay by a moment: allow that, not more
            gone_by = time.monotonic() + 5
            while _pid_alive(child) and time.monotonic() < gone_by:
                time.sleep(0.02)
            assert not _pid_alive(child), f"the command's child (pid {child}) outlived the stop"
    finally:
        if child is not None and _pid_alive(child):
            os.kill(child, signal.SIGKILL)
    log = "\n".join(running.seen)
    assert "SIGTERM again: stopping now" in log
    assert running.seen[-1] == "interrupted"
    assert "Traceback" not in log


# Loaded (as `sitecustomize`) by the `kpi schedule` of the test below: right after the fork
# of the command that writes HOOK_BG_PID, once its background child exists, a second signal
# lands (HOOK_LANDS=signals: SIGTERM twice, as two `kill`s would) or the hard stop starts in
# another thread (hard_stop: what a second signal's timer does), before kpi can do anything
# else with the program it just started. Not timing luck: the moment the bug lived in.
_RIGHT_AFTER_FORK = """
import os, signal, subprocess, threading, time
from pathlib import Path

_bg_pid = Path(os.environ["HOOK_BG_PID"])
_Popen = subprocess.Popen


class Popen(_Popen):
    def __init__(self, args, *rest, **options):
        super().__init__(args, *rest, **options)
        if str(_bg_pid) not in str(args):
            return
        deadline = time.monotonic() + 60
        while not (_bg_pid.exists() and _bg_pid.read_text().strip()):
            assert time.monotonic() < deadline, "the command never started its child"
            time.sleep(0.01)
        if os.environ["HOOK_LANDS"] == "signals":
            signal.raise_signal(signal.SIGTERM)  # its handler runs before this returns
            signal.raise_signal(signal.SIGTERM)
        else:
            from kpi_collector.schedule.scheduler import _exit_now

            threading.Thread(target=_exit_now, daemon=True).start()


subprocess.Popen = Popen
"""


@pytest.mark.parametrize("lands", ["signals", "hard_stop"])
def test_a_second_signal_right_after_a_commands_fork_still_stops_its_children(
    tmp_path: Path, lands: str
) -> None:
    """The flaky failure of the test above, made certain: a second SIGTERM (or the hard stop
    it starts) landing after a command's program was forked but before kpi announced its
    process group (once `subprocess_exec` returned) found no group to kill, and the shell's
    background `sleep` outlived `kpi schedule`."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")
    (tmp_path / "kpi.yaml").write_text(_hung_config(tmp_path, python_timeout=600))
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(_RIGHT_AFTER_FORK)
    running = Running(
        tmp_path,
        PYTHONPATH=f"{hook}{os.pathsep}{ROOT}",
        HOOK_BG_PID=str(tmp_path / "bg.pid"),
        HOOK_LANDS=lands,
    )
    child = None
    try:
        running.wait_for("main: collect")
        deadline = time.monotonic() + 60
        while not ((tmp_path / "bg.pid").exists() and (tmp_path / "bg.pid").read_text().strip()):
            assert time.monotonic() < deadline, "the command never started"
            time.sleep(0.05)
        child = int((tmp_path / "bg.pid").read_text())
        assert running.finish(timeout=60) == 130
        gone_by = time.monotonic() + 5  # SIGKILL is queued before kpi exits (see above)
        while _pid_alive(child) and time.monotonic() < gone_by:
            time.sleep(0.02)
        assert not _pid_alive(child), f"the command's child (pid {child}) outlived the stop"
    finally:
        if running.proc.poll() is None:
            running.proc.kill()
            running.proc.wait()
        if child is not None and _pid_alive(child):
            os.kill(child, signal.SIGKILL)
    log = "\n".join(running.seen)
    if lands == "signals":
        assert "SIGTERM again: stopping now" in log
    assert running.seen[-1] == "interrupted"
    assert "Traceback" not in log


def test_the_watchdog_is_pinged_while_the_job_loop_lives_and_not_once_it_hangs(
    tmp_path: Path,
) -> None:
    """systemd's watchdog must restart a scheduler whose job hangs for ever: pings come from
    the job's event loop while it runs (a command still working), and stop once the job
    hangs (a python source's thread that never returns, which asyncio.run waits for at the
    end of the run). A thread pinging beside the job would ping for ever."""
    import socket as sockets

    if not sys.platform.startswith("linux"):
        pytest.skip("reads /proc")
    address = str(tmp_path / "notify.sock")
    server = sockets.socket(sockets.AF_UNIX, sockets.SOCK_DGRAM)
    server.bind(address)
    release = tmp_path / "release"
    (tmp_path / "kpi.yaml").write_text(_hung_config(tmp_path, python_timeout=1, release=release))
    # WATCHDOG_USEC=1 s: a ping every 0.5 s
    running = Running(tmp_path, NOTIFY_SOCKET=address, WATCHDOG_USEC="1000000")
    child = None
    try:
        running.wait_for("main: collect")
        deadline = time.monotonic() + 60
        while not ((tmp_path / "called").exists() and (tmp_path / "bg.pid").exists()):
            assert time.monotonic() < deadline, "the sources never started"
            time.sleep(0.05)
        server.setblocking(False)  # what came before the job (READY=1, the idle loop's pings)
        while True:
            try:
                server.recv(256)
            except BlockingIOError:
                break
        server.setblocking(True)
        server.settimeout(20)
        for _ in range(3):  # pinged while the job's loop waits for the command
            assert server.recv(256).decode() == "WATCHDOG=1"
        child = int((tmp_path / "bg.pid").read_text())
        release.touch()  # the run ends, then asyncio.run waits for the hung thread for ever
        # pings stop: a silence of 10 ping intervals, while the process still lives
        server.settimeout(5)
        deadline = time.monotonic() + 60
        while True:
            assert time.monotonic() < deadline, "the watchdog pings never stopped"
            try:
                server.recv(256)
            except TimeoutError:
                break
        assert running.proc.poll() is None, "the scheduler was expected to hang, not exit"
    finally:
        running.proc.kill()
        running.proc.wait()
        server.close()
        if child is not None and _pid_alive(child):
            os.kill(child, signal.SIGKILL)


def test_kpi_scheduler_up_goes_stale_three_minutes_after_the_last_beat(folder: Path) -> None:
    """The dead-man's switch in `/metrics`: `kpi_scheduler_up` is 1 while the scheduler beats,
    0 once its heartbeat is more than 3 minutes old or it said it stopped; the heartbeat's
    time is `kpi_scheduler_heartbeat_timestamp_seconds`."""
    from prometheus_client.parser import text_string_to_metric_families

    from kpi_collector.report.data import DashboardData
    from kpi_collector.report.metrics import metrics_text

    config = load_config(folder / "kpi.yaml")
    beat = datetime(2026, 3, 2, 6, 0, tzinfo=UTC).timestamp()
    store = HistoryStore(config.store_url)
    store.migrate()
    write_heartbeat(store, SCHEDULER, now=beat, started_at=beat, state="idle")

    def gauges(at: float) -> dict[str, float]:
        data = DashboardData(config, clock=lambda: at, cache=False)
        try:
            text = metrics_text(data)
        finally:
            data.close()
        return {
            f.name: f.samples[0].value
            for f in text_string_to_metric_families(text)
            if f.name.startswith("kpi_scheduler")
        }

    try:
        assert gauges(beat + 60) == {
            "kpi_scheduler_heartbeat_timestamp_seconds": beat,
            "kpi_scheduler_up": 1.0,
        }
        assert gauges(beat + 179)["kpi_scheduler_up"] == 1.0
        assert gauges(beat + 181)["kpi_scheduler_up"] == 0.0
        write_heartbeat(store, SCHEDULER, now=beat, state="stopped")
        assert gauges(beat + 60)["kpi_scheduler_up"] == 0.0
    finally:
        store.close()


def test_a_crontab_run_beside_a_running_scheduler_serves_the_fire_time_once(
    tmp_path: Path,
) -> None:
    """`kpi schedule --run main` (what `--print crontab` installs) while `kpi schedule` runs
    that fire time: it waits for the run lock, finds the fire time served, exits 0; one run."""
    (tmp_path / "kpi.yaml").write_text(SLOW_CONFIG, encoding="utf-8")
    ready = HistoryStore(f"sqlite:///{tmp_path / 'kpi.db'}")
    ready.migrate()
    ready.close()
    with Running(tmp_path) as running:
        running.wait_for("main: collect slow")  # the daemon's catch-up holds the lock
        env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}
        env["PYTHONPATH"] = str(ROOT)
        cron = subprocess.run(
            [*KPI, "-c", str(tmp_path / "kpi.yaml"), "schedule", "--run", "main"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        # the daemon logs its job's start before it takes the lock: whichever took the lock
        # first ran the fire time, the other found it served
        while not any("main: run 1: 1 value" in x or "already ran" in x for x in running.seen):
            running.wait_for("main: ")
        running.proc.send_signal(signal.SIGTERM)
        assert running.finish() == 0
    assert cron.returncode == 0, cron.stderr
    daemon = "\n".join(running.seen)
    ran, idle = (daemon, cron.stderr) if "main: run 1" in daemon else (cron.stderr, daemon)
    assert "main: run 1: 1 value" in ran and "already ran" in idle
    store = HistoryStore(f"sqlite:///{tmp_path / 'kpi.db'}")
    try:
        assert [(r.id, r.trigger) for r in store.runs(10)] == [(1, "schedule")]
    finally:
        store.close()


@pytest.mark.parametrize("lock_taken", [True, False])
def test_the_hard_stop_never_waits_for_a_log_lock_a_signal_left_taken(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str], lock_taken: bool
) -> None:
    """A second signal's KeyboardInterrupt can land between a log handler's `acquire()` and
    its `try:`, leaving the lock taken for good; the hard stop (another thread) then hung
    in `log.warning` / `logging.shutdown()` and the process never exited (seen once: a
    `kpi schedule` still alive 60 s after its second SIGTERM)."""
    import logging

    from kpi_collector.collect import groups
    from kpi_collector.schedule import scheduler

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("kpi_collector")
    monkeypatch.setattr(logger, "handlers", [handler])
    monkeypatch.setattr(logger, "propagate", False)
    monkeypatch.setattr(logger, "level", logging.INFO)
    # the real one keeps the start lock for good: no command could start in later tests
    monkeypatch.setattr(groups, "kill_all_at_exit", lambda wait: [])

    class Exited(Exception):
        pass

    codes: list[int] = []

    def exit_now(code: int) -> None:
        codes.append(code)
        raise Exited

    monkeypatch.setattr(os, "_exit", exit_now)
    taken, release = threading.Event(), threading.Event()

    def hold_the_lock() -> None:  # as the interrupted main thread left it
        handler.acquire()
        taken.set()
        release.wait()
        handler.release()

    if lock_taken:
        threading.Thread(target=hold_the_lock, daemon=True).start()
        taken.wait()
    stopped = threading.Event()

    def hard_stop() -> None:
        try:
            scheduler._exit_now()
        except Exited:
            stopped.set()

    thread = threading.Thread(target=hard_stop, daemon=True)
    thread.start()
    thread.join(60)  # a hang guard, not a measure: the wait for a lock is 0.5 s
    release.set()
    assert stopped.is_set(), "the hard stop waited for a log handler's lock"
    assert codes == [scheduler.EXIT_INTERRUPTED]
    err = capfd.readouterr().err
    assert "WARNING kpi_collector.schedule: a job did not stop within 2 s: exiting" in err
    assert err.endswith("interrupted\n")


def test_a_formula_over_a_main_source_and_a_scheduled_one_is_computed_in_both_jobs(
    folder: Path,
) -> None:
    """`app` is collected by the main job, `fast` by its own: the formula over both was
    computed by neither job. Each job now computes it with the other input's newest value."""
    config = CONFIG.replace(
        "sources:\n", 'kpis:\n  app.per_event: {formula: "app.users / fast.events"}\nsources:\n'
    )
    (folder / "kpi.yaml").write_text(config, encoding="utf-8")
    start = datetime(2026, 3, 28, 12, tzinfo=BERLIN)
    scheduler_at(folder, start, datetime(2026, 3, 28, 19, tzinfo=BERLIN)).serve()
    # the formula's values are stored with the run that computed them (app.per_event)
    assert run_times(folder) == ["Sat 12:00 fast", "Sat 12:00 app", "Sat 18:00 app+fast"]
    store = HistoryStore(f"sqlite:///{folder / 'kpi.db'}")
    try:
        stored = {kpi: [v for _, _, v in rows] for kpi, rows in _by_kpi(store.rows()).items()}
    finally:
        store.close()
    # fast (events 1), then app (users 102) with fast's 1, then fast (events 3) with app's 102
    assert stored["fast.events"] == [1, 3]
    assert stored["app.users"] == [102]
    assert stored["app.per_event"] == [102 / 1, 102 / 3]


def _by_kpi(rows: list[tuple[str, float, float]]) -> dict[str, list[tuple[str, float, float]]]:
    found: dict[str, list[tuple[str, float, float]]] = {}
    for row in rows:
        found.setdefault(row[0], []).append(row)
    return found


def broken_values() -> dict[str, float]:
    raise RuntimeError("the API is down")


def test_a_partial_run_serves_its_fire_time_and_is_not_run_again(folder: Path) -> None:
    # one of main's sources fails: the run is partial (app's value stored); the fire time is
    # served, so neither `--once` nor a restart runs it again before the next 07:00
    config = (folder / "kpi.yaml").read_text(encoding="utf-8")
    broken = '  - {name: broken, type: python, function: "tests.test_schedule:broken_values"}\n'
    (folder / "kpi.yaml").write_text(config.replace("destinations:\n", broken + "destinations:\n"))
    at_eight = datetime(2026, 11, 2, 8, tzinfo=BERLIN)
    scheduler = scheduler_at(folder, at_eight, at_eight + timedelta(hours=1))
    results = scheduler.run_due()
    assert ("main", "partial") in [(r.job, r.status) for r in results]
    state = job_states(scheduler.store)["main"]
    assert state.last_status == "partial"
    assert state.last_success_at == datetime(2026, 11, 2, 7, tzinfo=BERLIN).timestamp()
    assert scheduler.due(at_eight + timedelta(minutes=30)) == []
    assert scheduler.run_due() == []
    assert [t for t in run_times(folder) if "app" in t] == ["Mon 08:00 app"]
    scheduler.store.close()
    # nor is it "overdue" for health (the store existed before that 07:00)
    created_on(scheduler.config.store_url, datetime(2026, 11, 1, tzinfo=UTC).timestamp())
    report = health_report(scheduler.config, now=(at_eight + timedelta(hours=1)).timestamp())
    assert not any("overdue" in p for p in report["problems"]), report["problems"]


def test_the_next_fire_time_in_the_repeated_autumn_hour_is_the_earliest_instant(
    folder: Path,
) -> None:
    # Sunday 2026-10-25, clocks go back at 03:00 CEST: `fast` next fires at 02:30 CEST (00:30
    # UTC), main at 02:00 CET (01:00 UTC), which has the earlier wall clock but comes later
    config = (folder / "kpi.yaml").read_text(encoding="utf-8")
    config = config.replace('schedule: "0 7 * * *"', 'schedule: "0 * * * *"')
    (folder / "kpi.yaml").write_text(config.replace('"0 */6 * * *"', '"30 * * * *"'))
    start = datetime(2026, 10, 25, 0, 20, tzinfo=UTC)
    scheduler = scheduler_at(folder, start, datetime(2026, 10, 25, 1, 10, tzinfo=UTC))
    beats: list[float | None] = []
    write = scheduler._beat

    def beat(state: str, **fields: object) -> None:
        if state == "idle" and "next_run_at" in fields:
            beats.append(fields["next_run_at"])  # type: ignore[arg-type]
        write(state, **fields)

    scheduler._beat = beat  # type: ignore[method-assign]
    scheduler.serve()
    assert beats[0] == datetime(2026, 10, 25, 0, 30, tzinfo=UTC).timestamp()
    import sqlalchemy as sa

    from kpi_collector.store.schema import observations, runs

    with scheduler.store.engine.connect() as conn:
        fast_runs = conn.execute(
            sa.select(runs.c.started_at)
            .join(observations, observations.c.run_id == runs.c.id)
            .where(observations.c.source == "fast")
            .order_by(runs.c.started_at)
        ).scalars()
        started = [datetime.fromtimestamp(t, UTC).strftime("%H:%M") for t in fast_runs]
    scheduler.store.close()
    assert started == ["00:20", "00:30"]  # caught up on start, then 02:30 CEST on time


def test_kpi_scheduler_up_goes_stale_when_the_run_in_progress_stopped_beating_too(
    folder: Path,
) -> None:
    """A scheduler killed mid-job (the OOM killer, a power cut) leaves its `running` beat and
    the run lock's row behind: neither beats any more, so `kpi_scheduler_up` must go to 0
    (while the run beats, a scheduler busy with a long job is up)."""
    from prometheus_client.parser import text_string_to_metric_families

    from kpi_collector.report.data import DashboardData
    from kpi_collector.report.metrics import metrics_text
    from kpi_collector.store.heartbeats import RUN

    config = load_config(folder / "kpi.yaml")
    beat = datetime(2026, 3, 2, 6, 0, tzinfo=UTC).timestamp()
    store = HistoryStore(config.store_url)
    store.migrate()
    write_heartbeat(store, SCHEDULER, now=beat, started_at=beat, state="running")
    write_heartbeat(store, RUN, now=beat, started_at=beat, state="running", detail="kpi schedule")

    def up(at: float) -> float:
        data = DashboardData(config, clock=lambda: at, cache=False)
        try:
            text = metrics_text(data)
        finally:
            data.close()
        (family,) = [
            f for f in text_string_to_metric_families(text) if f.name == "kpi_scheduler_up"
        ]
        return family.samples[0].value

    try:
        write_heartbeat(store, RUN, now=beat + 600)  # a long job, its run beating
        assert up(beat + 605) == 1.0
        assert up(beat + 600 + 3600) == 0.0  # both silent for an hour: the process is gone
    finally:
        store.close()


@pytest.mark.parametrize(
    ("expr", "zone", "spring"),
    [
        ("30 2 * * *", "Europe/Berlin", datetime(2026, 3, 25, tzinfo=UTC)),
        ("30 2 * * 0", "Europe/Berlin", datetime(2026, 3, 25, tzinfo=UTC)),  # a weekly Sunday job
        ("0,30 2 * * *", "America/New_York", datetime(2026, 3, 5, tzinfo=UTC)),
        ("15 2 * * *", "Australia/Lord_Howe", datetime(2026, 10, 1, tzinfo=UTC)),  # 30 min gap
        # two skipped times fire late, both (03:00 and 03:30): the timer needs both lines
        ("0,30 2 * * *", "Europe/Berlin", datetime(2026, 3, 25, tzinfo=UTC)),
        ("30 1,2 * * *", "Antarctica/Troll", datetime(2026, 3, 25, tzinfo=UTC)),  # 2 h gap
    ],
)
def test_a_timer_fires_on_the_day_clocks_go_forward(expr: str, zone: str, spring: datetime) -> None:
    """systemd skips a calendar time that does not exist (02:30 on the day clocks go forward),
    where the cron fires once, late (03:30): without a calendar for that, a timer deployment
    lost that day's run (a weekly Sunday job its week). Each fire time of the cron is one of
    the timer's; an extra one runs `kpi schedule --once` with nothing due."""
    import re

    from kpi_collector.config.cron import Cron
    from kpi_collector.schedule.deploy import on_calendar

    analyze = require_binary("systemd-analyze", hint="Debian package systemd")
    systemd_times: set[datetime] = set()
    for spec in on_calendar(expr, zone):
        out = subprocess.run(
            [
                analyze,
                "calendar",
                "--iterations=40",
                f"--base-time={spring:%Y-%m-%d %H:%M:%S} UTC",
                spec,
            ],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout
        for stamp in re.findall(r"(?:Next elapse|Iter\. #\d+): \w+ (\S+ \S+) UTC", out):
            systemd_times.add(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC))
    ours = [t.astimezone(UTC) for t in Cron(expr, zone).times(spring, spring + timedelta(days=14))]
    assert ours and [t for t in ours if t not in systemd_times] == []


def test_a_scheduler_started_after_the_spring_change_runs_the_late_fire_time(
    folder: Path,
) -> None:
    # 02:30 does not exist on 2026-03-29 and fires at 03:30 CEST; Saturday's 02:30 ran, the
    # machine rebooted and the scheduler starts at 03:10 CEST: it runs 03:30, not Monday's
    config = (folder / "kpi.yaml").read_text(encoding="utf-8")
    (folder / "kpi.yaml").write_text(config.replace('"0 7 * * *"', '"30 2 * * *"'))
    saturday = datetime(2026, 3, 28, 2, 20, tzinfo=BERLIN)
    scheduler_at(folder, saturday, saturday + timedelta(minutes=20)).serve()
    start = datetime(2026, 3, 29, 3, 10, tzinfo=BERLIN)
    scheduler_at(folder, start, datetime(2026, 3, 29, 4, tzinfo=BERLIN)).serve()
    assert [t for t in run_times(folder) if t.endswith("app")] == [
        "Sat 02:20 app",
        "Sat 02:30 app",
        "Sun 03:30 app",
    ]


def test_a_crontab_run_right_after_the_spring_change_serves_the_days_late_fire_time(
    folder: Path,
) -> None:
    # cron runs the 02:30 line right after the clocks jump to 03:00 CEST; the day's fire time
    # is 03:30 (late): `--run main` serves it then, instead of finding Saturday's served
    config = (folder / "kpi.yaml").read_text(encoding="utf-8")
    (folder / "kpi.yaml").write_text(config.replace('"0 7 * * *"', '"30 2 * * *"'))
    saturday = datetime(2026, 3, 28, 2, 30, 5, tzinfo=BERLIN)
    first = scheduler_at(folder, saturday, saturday + timedelta(minutes=1))
    main_job = first.job("main")
    assert first.run_job(main_job, fire=first.fire_to_serve(main_job, saturday)).status == "ok"
    first.store.close()
    at_three = datetime(2026, 3, 29, 3, 0, 20, tzinfo=BERLIN)
    second = scheduler_at(folder, at_three, at_three + timedelta(minutes=1))
    fire = second.fire_to_serve(second.job("main"), at_three)
    assert fire == datetime(2026, 3, 29, 3, 30, tzinfo=BERLIN)
    assert second.run_job(second.job("main"), fire=fire).status == "ok"
    # at 03:30 (a scheduler, or a second line) the fire time is served: nothing is due
    at_half_past = datetime(2026, 3, 29, 3, 30, 5, tzinfo=BERLIN)
    assert second.fire_to_serve(second.job("main"), at_half_past) == fire
    assert second.run_job(second.job("main"), fire=fire).status == "not_due"
    second.store.close()
    assert [t for t in run_times(folder) if t.endswith("app")] == ["Sat 02:30 app", "Sun 03:00 app"]


def test_a_job_waiting_out_its_jitter_is_not_overdue(tmp_path: Path) -> None:
    """With `jitter: 30m` a 07:00 job may start at 07:29 (it sleeps, holding no run lock):
    health counts its grace from the end of the jitter, not from 07:00."""
    (tmp_path / "kpi.yaml").write_text("jitter: 30m\n" + SLOW_CONFIG)
    config = load_config(tmp_path / "kpi.yaml")
    created_on(config.store_url, datetime(2026, 11, 1, 10, tzinfo=UTC).timestamp())
    waiting = health_report(config, now=datetime(2026, 11, 2, 7, 25, tzinfo=UTC).timestamp())
    assert waiting["ok"], waiting["problems"]
    assert waiting["jobs"][0]["overdue"] is False
    late = health_report(config, now=datetime(2026, 11, 2, 7, 50, tzinfo=UTC).timestamp())
    assert late["jobs"][0]["overdue"] is True
    assert any("job main" in p for p in late["problems"])


def test_crontab_and_github_lines_say_the_last_day_of_the_month_the_standard_way(
    tmp_path: Path,
) -> None:
    """Crontab (Vixie, cronie, busybox) and GitHub's cron have no `L`: a line with it is
    refused. The snippets fire on the 28th to 31st; `--run` / `--once` serve the month's last
    day once (on the other days its newest fire time is the one already served)."""
    (tmp_path / ".git").mkdir()
    config_text = SLOW_CONFIG.replace('"0 7 * * *"', '"30 23 L * *"')
    (tmp_path / "kpi.yaml").write_text(config_text)
    config = load_config(tmp_path / "kpi.yaml")
    lines = [line for line in snippet(config, "crontab", kpi="kpi").splitlines() if "--run" in line]
    assert len(lines) == 1 and lines[0].startswith("30 23 28-31 * * ")
    assert '- cron: "30 23 28-31 * *"' in snippet(config, "github-actions")
    # what the extra days do: nothing, once the month's last day was served
    at = datetime(2026, 11, 30, 23, 30, 5, tzinfo=UTC)
    scheduler = scheduler_at(tmp_path, at, at + timedelta(minutes=1))
    main_job = scheduler.job("main")
    assert scheduler.run_job(main_job, fire=scheduler.fire_to_serve(main_job, at)).status == "ok"
    for day in (28, 29, 30):
        early = datetime(2026, 12, day, 23, 30, 5, tzinfo=UTC)
        fire = scheduler.fire_to_serve(main_job, early)
        assert scheduler.run_job(main_job, fire=fire).status == "not_due", day
    last = datetime(2026, 12, 31, 23, 30, 5, tzinfo=UTC)
    assert scheduler.run_job(main_job, fire=scheduler.fire_to_serve(main_job, last)).status == "ok"
    scheduler.store.close()


def test_jitter_is_counted_from_the_fire_time_not_added_per_job(tmp_path: Path) -> None:
    """`jitter: 20m`: each job starts at most 20 minutes after its fire time. Jobs due
    together (`--once` on a timer or in GitHub Actions) do not add up their jitters (three
    jobs: up to an hour, past a 30-minute workflow timeout), and a catch-up run for a fire
    time hours ago starts at once."""
    (tmp_path / "kpi.yaml").write_text("jitter: 20m\n" + CONFIG)
    config = load_config(tmp_path / "kpi.yaml")
    stop = threading.Event()
    monday = datetime(2026, 3, 2, 9, 0, tzinfo=BERLIN)  # main 07:00, weekly 09:00, fast 06:00
    clock = FakeClock(monday, monday + timedelta(days=60), stop)
    scheduler = Scheduler(config, clock=clock, stop=stop)
    for seed in range(5):
        random.seed(seed)
        clock.t = (monday + timedelta(days=7 * seed)).astimezone(UTC)
        results = scheduler.run_due()
        assert [r.status for r in results] == ["ok", "ok", "ok"]
        # fast (06:00) and main (07:00) are hours late: no wait; weekly (09:00) within 20 min
        waited = clock.t - (monday + timedelta(days=7 * seed)).astimezone(UTC)
        assert waited <= timedelta(minutes=20), (seed, waited)
    scheduler.store.close()


def test_the_watchdog_is_pinged_while_a_job_waits_for_the_run_lock(tmp_path: Path) -> None:
    """A job waits up to 10 minutes for another run to let go of the store; systemd's
    watchdog (`WatchdogSec=600` in the unit) must keep hearing from the scheduler meanwhile,
    or it kills the scheduler at the end of the wait."""
    import socket as sockets

    from kpi_collector.store.lock import RunLock

    address = str(tmp_path / "notify.sock")
    server = sockets.socket(sockets.AF_UNIX, sockets.SOCK_DGRAM)
    server.bind(address)
    server.settimeout(10)
    (tmp_path / "kpi.yaml").write_text(SLOW_CONFIG.replace("time.sleep(1.5); ", ""))
    store = HistoryStore(f"sqlite:///{tmp_path / 'kpi.db'}")
    holder = RunLock(store, detail="kpi run")
    holder.acquire()  # a long manual run holds the store
    try:
        with Running(tmp_path, NOTIFY_SOCKET=address, WATCHDOG_USEC="1000000") as running:
            running.wait_for("main: collect slow")  # the catch-up job, now waiting
            while server.recv(256).decode() != "WATCHDOG=1":  # the job's own start beat
                pass
            pings = [server.recv(256).decode() for _ in range(3)]  # while it waits
            assert pings == ["WATCHDOG=1"] * 3
            holder.release()
            running.wait_for("main: run 1")
            running.proc.send_signal(signal.SIGTERM)
            assert running.finish() == 0
    finally:
        holder.release()
        store.close()
        server.close()


def test_a_stop_during_the_jitter_wait_does_not_start_the_job(tmp_path: Path) -> None:
    """SIGTERM lets the job *in progress* finish; a job still waiting out its jitter has not
    started: the scheduler stops without running it (its fire time is caught up on the next
    start), rather than running a whole job after being told to stop."""
    (tmp_path / "kpi.yaml").write_text("jitter: 30m\n" + CONFIG)
    config = load_config(tmp_path / "kpi.yaml")
    stop = threading.Event()
    fire = datetime(2026, 3, 2, 7, 0, tzinfo=BERLIN)

    class SignalledClock(FakeClock):
        def sleep(self, seconds: float, stop: threading.Event) -> None:
            super().sleep(seconds, stop)
            stop.set()  # SIGTERM arrives during the first sleep of the wait

    clock = SignalledClock(fire, fire + timedelta(days=1), stop)
    random.seed(1)  # a wait of some minutes
    scheduler = Scheduler(config, clock=clock, stop=stop)
    result = scheduler.run_job(scheduler.job("main"), fire=fire)
    assert result.status == "skipped" and "stopping" in result.summary
    assert scheduler.store.runs(5) == []
    assert scheduler.is_due(scheduler.job("main"), fire)  # caught up on the next start
    scheduler.store.close()


@pytest.mark.parametrize("kind", ["systemd", "systemd-timer"])
def test_systemd_units_quote_a_folder_with_a_space_or_percent(tmp_path: Path, kind: str) -> None:
    """A config in `/srv/KPIs 2026 100%/` gave `ExecStart=kpi -c '/srv/KPIs' '2026' ...`
    (the command was split at the path's spaces before each part was quoted) and a
    `ReadWritePaths=` of three paths: the service ran `kpi -c /srv/KPIs` and the sandbox let
    it write nowhere it needed. Each unit line reads back as the path, whole; the shell
    commands in the comments quote it too."""
    folder = tmp_path / "KPIs 2026 100%"
    folder.mkdir()
    (folder / "kpi.yaml").write_text(SLOW_CONFIG)
    config = load_config(folder / "kpi.yaml")
    kpi = str(Path(sys.executable).parent / "kpi")
    text = snippet(config, kind, kpi=kpi)
    fields = dict(
        line.split("=", 1) for line in text.splitlines() if re.match(r"^[A-Za-z]+=", line)
    )
    unit = {k: v.replace("%%", "%") for k, v in fields.items()}  # systemd's specifier escape
    assert "%" not in fields["ExecStart"].replace("%%", "")
    args = ["-c", str(folder / "kpi.yaml"), "schedule"] + (["--once"] if kind != "systemd" else [])
    assert shlex.split(unit["ExecStart"]) == [kpi, *args]
    assert shlex.split(unit["ReadWritePaths"]) == [str(folder)]
    assert unit["WorkingDirectory"] == str(folder)
    assert f"chown -R kpi: {shlex.quote(str(folder))}`" in text
    (tmp_path / "units").mkdir()
    _verify_units(tmp_path / "units", text)


@pytest.mark.parametrize(
    ("head", "fast", "delay", "longest"),
    [
        # `jitter: 1h`, a source every 10 minutes: `kpi schedule` waits at most 5 minutes
        # after its fire times (half the way to the next), the daily main job up to an hour
        ("jitter: 1h\n", "*/10 * * * *", 300, 3600),
        ("jitter: 1h\n", "* * * * *", 30, 3600),
        ("jitter: 2m\n", "0 */6 * * *", 120, 120),
        # no `jitter:`: the timer's own minute of spread, within half a minute's gap too
        ("", "* * * * *", 30, 0),
        ("", "0 */6 * * *", 60, 0),
    ],
)
def test_deployment_snippets_wait_as_long_as_the_scheduler_does(
    tmp_path: Path, head: str, fast: str, delay: int, longest: int
) -> None:
    """The systemd timer's `RandomizedDelaySec=` was the config's `jitter:` uncapped, while the
    scheduler caps each job's jitter at half the way to its next fire time: with `jitter: 1h`
    and a source every 10 minutes the timer started `--once` up to an hour late, past five of
    its fire times. It is the scheduler's cap of the most frequent job now; and since `--once`
    itself may wait out a job's jitter, the oneshot's `TimeoutStartSec=` and the GitHub job's
    `timeout-minutes` leave room for the longest one instead of killing the run."""
    (tmp_path / "kpi.yaml").write_text(
        head + CONFIG.replace('schedule: "0 */6 * * *"}', f'schedule: "{fast}"}}')
    )
    config = load_config(tmp_path / "kpi.yaml")
    timer = snippet(config, "systemd-timer", kpi="/opt/kpi/bin/kpi")
    assert f"\nRandomizedDelaySec={delay}\n" in timer
    assert f"\nTimeoutStartSec={3600 + longest}\n" in timer
    (tmp_path / ".git").mkdir()
    workflow = snippet(config, "github-actions")
    assert f"\n    timeout-minutes: {30 + longest // 60}\n" in workflow
    # the scheduler's own bound at each fire time of each job over a week
    scheduler = Scheduler(config)
    start = datetime(2026, 3, 2, tzinfo=UTC)
    waits = [
        scheduler.jitter(job, fire)
        for job in scheduler.jobs
        for fire in job.cron.times(start, start + timedelta(days=7))
    ]
    if head:
        assert (min(waits), max(waits)) == (delay, longest)


@pytest.mark.parametrize("kind", ["systemd", "systemd-timer"])
def test_the_sandbox_lets_the_store_and_file_destinations_be_written(
    tmp_path: Path, kind: str
) -> None:
    """`ReadWritePaths=` named the store's folder as is: a store in `data/` that no run had
    created yet stopped the unit at start (systemd cannot set up the namespace for a path
    that does not exist: 226/NAMESPACE), and a `csv` destination writing outside the config's
    folder met a read-only file system on every delivery. The config's folder (it exists: the
    config is in it) is listed plain; the store's and each file destination's folder are
    listed with `-` (ignored until they exist; a folder inside the config's is writable
    anyway)."""
    outside = tmp_path / "reports"
    (tmp_path / "ops").mkdir()
    (tmp_path / "ops" / "kpi.yaml").write_text(
        'store: "sqlite:///data/kpi.db"\n'
        + SLOW_CONFIG
        + f"destinations:\n  - {{type: csv, path: {outside / 'k.csv'}}}\n"
        + "  - {name: 'off', type: jsonl, path: /elsewhere/k.jsonl, enabled: false}\n"
    )
    config = load_config(tmp_path / "ops" / "kpi.yaml")
    text = snippet(config, kind, kpi=str(Path(sys.executable).parent / "kpi"))
    (line,) = [li for li in text.splitlines() if li.startswith("ReadWritePaths=")]
    assert shlex.split(line.partition("=")[2]) == [
        str(tmp_path / "ops"),
        f"-{tmp_path / 'ops' / 'data'}",
        f"-{outside}",
    ]
    (tmp_path / "units").mkdir()
    _verify_units(tmp_path / "units", text)
