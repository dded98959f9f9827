"""The store's run lock between real processes, on SQLite, PostgreSQL and MariaDB: contention,
a holder killed with SIGKILL (its stale lock is taken over, its run marked interrupted), and
what `kpi run` does while another run holds the store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kpi_collector.cli import main
from kpi_collector.pipeline import Pipeline
from kpi_collector.store import HistoryStore
from kpi_collector.store.lock import LockBusy, RunLock, wait_until_free
from tests.fakes.tcp_proxy import TcpProxy
from tests.services import require_mysql_url, require_postgres_url
from tests.test_store import _isolated

ROOT = Path(__file__).resolve().parents[1]

# holds the run lock with a run in progress until stdin closes (or it is killed)
HOLDER = """
import sys
from kpi_collector.store import HistoryStore
from kpi_collector.store.lock import RunLock
store = HistoryStore(sys.argv[1])
lock = RunLock(store, detail="test holder", heartbeat_every=0.2)
lock.acquire()
run_id = store.begin_run()
print(run_id, flush=True)
sys.stdin.read()
store.finish_run(run_id, observations=[("x.y", 1.0, 1.0, "x")])
lock.release()
print("released", flush=True)
"""


class Holder:
    """A separate Python process holding the store's run lock."""

    def __init__(self, url: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLDER, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.proc.stdout is not None
        self.run_id = int(self.proc.stdout.readline())

    def release(self) -> None:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        assert self.proc.stdout.readline().strip() == "released"
        assert self.proc.wait(10) == 0

    def kill(self) -> None:
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.kill()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kpi.db'}"
        return
    urls = _isolated(
        require_postgres_url() if request.param == "postgresql" else require_mysql_url()
    )
    yield next(urls)
    next(urls, None)


@pytest.fixture
def store(store_url: str) -> Iterator[HistoryStore]:
    history = HistoryStore(store_url)
    _ = history.engine  # opening it creates the tables
    yield history
    history.close()


def test_a_second_process_waits_then_is_told_who_holds_the_store(store: HistoryStore) -> None:
    holder = Holder(store.url)
    try:
        with pytest.raises(LockBusy) as caught:
            RunLock(store, wait=0.6).acquire()
        message = str(caught.value)
        assert f"pid {holder.proc.pid} on {socket.gethostname()}" in message
        assert "test holder" in message and "waited" in message
        assert caught.value.holder is not None and caught.value.holder.pid == holder.proc.pid
        assert not wait_until_free(store, wait=0.2)

        holder.release()
        lock = RunLock(store, wait=5)
        lock.acquire()
        try:
            assert lock.taken_over is None  # a clean release leaves nothing stale
            assert store.heartbeats()["run"].pid == os.getpid()
        finally:
            lock.release()
        assert "run" not in store.heartbeats()
        assert store.runs(1)[0].status == "ok"
    finally:
        holder.stop()


def test_a_killed_run_leaves_a_stale_lock_that_is_taken_over(store: HistoryStore) -> None:
    holder = Holder(store.url)
    holder.kill()  # SIGKILL: no release, no finish_run
    assert store.heartbeats()["run"].pid == holder.proc.pid  # the stale record is still there
    assert store.runs(1)[0].status == "running"

    with RunLock(store, wait=0) as lock:  # the OS or the server freed the lock at once
        assert lock.taken_over is not None and lock.taken_over.pid == holder.proc.pid
        assert lock.interrupted == [holder.run_id]
    run = store.runs(1)[0]
    assert (run.id, run.status) == (holder.run_id, "interrupted")
    assert "run" not in store.heartbeats()


def test_a_lock_taken_only_to_look_leaves_a_stale_holders_record_to_the_next_run(
    store: HistoryStore, caplog: pytest.LogCaptureFixture
) -> None:
    """A job that takes the lock only to find its fire time served (`kpi schedule --run` on
    a second host) never registers: it deleted the dead holder's record as it let go, so
    the run that took over next neither logged whom it took over from nor said so."""
    import logging

    holder = Holder(store.url)
    holder.kill()
    look = RunLock(store, wait=10)  # the server may take a moment to end the dead session
    look.acquire(register=False)
    look.release()
    assert store.heartbeats()["run"].pid == holder.proc.pid  # still there for the next run
    with (
        caplog.at_level(logging.WARNING, logger="kpi_collector.schedule"),
        RunLock(store, wait=0) as lock,
    ):
        assert lock.taken_over is not None and lock.taken_over.pid == holder.proc.pid
        assert lock.interrupted == [holder.run_id]
    assert f"taking over a stale run lock: the holder, pid {holder.proc.pid}" in caplog.text


def test_the_holder_keeps_beating_while_it_holds(store: HistoryStore) -> None:
    holder = Holder(store.url)
    try:
        first = store.heartbeats()["run"].beat_at
        deadline = time.monotonic() + 5
        while store.heartbeats()["run"].beat_at == first and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.heartbeats()["run"].beat_at > first
    finally:
        holder.stop()


def _config(folder: Path) -> Path:
    config = folder / "kpi.yaml"
    config.write_text(
        f"sources:\n  - {{name: c, type: command, command: [{sys.executable}, -c, 'print(5)']}}\n",
        encoding="utf-8",
    )
    return config


def test_kpi_run_exits_1_with_a_clear_message_while_another_run_holds_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    holder = Holder(f"sqlite:///{tmp_path / 'kpi.db'}")
    try:
        assert main(["-c", str(config), "run", "--wait", "0.5"]) == 1
        err = capsys.readouterr().err
        assert "error: another run is using the store" in err
        assert f"pid {holder.proc.pid}" in err and "try again when it has finished" in err
        # a dry run writes nothing, so it does not need the lock
        assert main(["-c", str(config), "run", "--dry-run"]) == 0
    finally:
        holder.stop()
    assert [r.status for r in HistoryStore(f"sqlite:///{tmp_path / 'kpi.db'}").runs()] == [
        "running"
    ]


def test_kpi_run_waits_for_a_run_that_finishes_soon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path)
    monkeypatch.setattr(Pipeline, "lock_wait", 10.0)
    holder = Holder(f"sqlite:///{tmp_path / 'kpi.db'}")
    releasing = threading.Timer(0.5, holder.release)
    releasing.start()
    try:
        result = Pipeline.from_config(config).process()
        assert result.ok and result.values == {"c.value": 5.0}  # it waited, then ran
    finally:
        releasing.join()
        holder.stop()
    statuses = [r.status for r in HistoryStore(f"sqlite:///{tmp_path / 'kpi.db'}").runs()]
    assert statuses == ["ok", "ok"]  # the holder's run, then ours: one after the other


def test_a_pipeline_run_takes_over_a_killed_holder_and_stores_its_own_run(
    tmp_path: Path,
) -> None:
    from kpi_collector.destinations import Store

    url = f"sqlite:///{tmp_path / 'kpi.db'}"
    holder = Holder(url)
    holder.kill()

    def stars() -> dict[str, float]:
        return {"n": 5.0}

    pipeline = Pipeline(sources=(stars,), destinations=(Store(url),))
    pipeline.lock_wait = 5
    result = pipeline.process()
    assert result.ok and result.values == {"stars.n": 5.0}
    runs = {r.id: r.status for r in HistoryStore(url).runs()}
    assert runs == {holder.run_id: "interrupted", result.run_id: "ok"}
    assert "run" not in HistoryStore(url).heartbeats()


def _sigint_by_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_a_kpi_run_stopped_with_ctrl_c_is_marked_interrupted_at_once(tmp_path: Path) -> None:
    """Ctrl-C in `kpi run` released the store with its run still `running` (in the history,
    the dashboard and health until some later run); the run is `interrupted` as it stops,
    and the next run is fine."""
    started = tmp_path / "started"
    slow = f"open({str(started)!r}, 'w').close(); import time; time.sleep(60)"
    config = tmp_path / "kpi.yaml"
    config.write_text(
        "sources:\n"
        f"  - {{name: slow, type: command, timeout: 120, command: [{sys.executable}, -c, {slow!r}]}}\n"
        f"  - {{name: c, type: command, command: [{sys.executable}, -c, 'print(5)']}}\n",
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "kpi_collector", "-c", str(config), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # Ctrl-C as a terminal's foreground process gets it: a suite started in the
        # background (`cmd &` in a script) hands its children SIGINT ignored, and the run
        # then never hears it (it ran its 60 s source to the end, exit 1, in such a CI)
        preexec_fn=_sigint_by_default,
    )
    url = f"sqlite:///{tmp_path / 'kpi.db'}"
    try:
        deadline = time.monotonic() + 60
        while not started.exists() or not (tmp_path / "kpi.db").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        probe = HistoryStore(url)
        while not probe.runs():  # the run's row is written beside the requests
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        probe.close()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 130, f"stdout: {out}\nstderr: {err}"
    assert "run 1 stopped before it finished; marked interrupted" in err
    store = HistoryStore(url)
    assert [r.status for r in store.runs()] == ["interrupted"]
    assert "run" not in store.heartbeats()
    store.close()
    config.write_text(_config(tmp_path).read_text(encoding="utf-8"), encoding="utf-8")
    assert main(["-c", str(config), "run"]) == 0
    assert [r.status for r in HistoryStore(url).runs()] == ["ok", "interrupted"]


def _backfill_config(folder: Path) -> Path:
    """An `active_users` source over a local CSV of events: it can backfill offline."""
    from datetime import UTC, datetime, timedelta

    from tests.test_activity import write_csv

    now = datetime.now(UTC)
    write_csv(folder / "events.csv", [("a", now - timedelta(days=d)) for d in (2, 3, 5)])
    config = folder / "kpi.yaml"
    config.write_text(
        "sources:\n  - {name: telemetry, type: active_users, events: events.csv,"
        " user: user_id, time: ts}\n",
        encoding="utf-8",
    )
    return config


def test_kpi_backfill_takes_the_run_lock_like_kpi_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A backfill writes the store like a run: while another run (or backfill) holds the
    store it waits `--wait` seconds, then exits 1 with the message `kpi run` gives, having
    written nothing; once the store is free it runs and lets go of the lock."""
    config = _backfill_config(tmp_path)
    url = f"sqlite:///{tmp_path / 'kpi.db'}"
    holder = Holder(url)
    try:
        assert main(["-c", str(config), "backfill", "--since", "10d", "--wait", "0.5"]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: another run is using the store: ")
        assert f"pid {holder.proc.pid}" in err and "test holder" in err
        assert "waited" in err and "try again when it has finished" in err
        assert len(err.strip().splitlines()) == 1
        assert HistoryStore(url).kpi_ids() == []  # nothing backfilled under another's lock
    finally:
        holder.release()
    assert main(["-c", str(config), "backfill", "--since", "10d"]) == 0
    assert "telemetry: " in capsys.readouterr().out
    store = HistoryStore(url)
    assert "telemetry.dau" in store.kpi_ids()
    assert "run" not in store.heartbeats()  # released
    with RunLock(store, wait=0):  # free again: nothing left holding it
        pass


def test_two_backfills_never_write_at_once(tmp_path: Path) -> None:
    """A backfill in progress holds the lock: a second one (or a `kpi run`) is refused."""
    from kpi_collector.config import load_config

    config = load_config(_backfill_config(tmp_path))
    pipeline = Pipeline.from_config(config)
    assert pipeline.store is not None
    seen: list[str] = []
    original = pipeline.store.add_observations

    def add_observations(*args: object, **kwargs: object) -> int:
        # in the middle of the backfill's writes, another process's `kpi run` is refused
        code = subprocess.run(
            [sys.executable, "-m", "kpi_collector", "-c", str(config.path), "run", "--wait", "0"],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=60,
        )
        seen.append(f"{code.returncode} {code.stderr.strip()}")
        return original(*args, **kwargs)  # type: ignore[arg-type]

    pipeline.store.add_observations = add_observations  # type: ignore[method-assign]
    report = pipeline.backfill(since=None)
    assert report.added and not report.errors
    (refused,) = seen
    assert refused.startswith("1 error: another run is using the store: ")
    assert "kpi backfill" in refused


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_a_database_store_that_goes_down_fails_a_scheduled_job_in_one_line(
    tmp_path: Path, kind: str
) -> None:
    """A PostgreSQL/MariaDB store that stops answering while `kpi schedule` serves (a server
    restarting at night): each job failed with the driver's four-line error and a link to
    its web pages as its summary, and asking what is due (`--once`, a start) died with a
    traceback; now one line naming the store, its password hidden."""
    from datetime import UTC, datetime

    from kpi_collector.config import load_config
    from kpi_collector.errors import StoreError
    from kpi_collector.schedule.scheduler import Scheduler
    from tests.services import host_port

    urls = _isolated(require_postgres_url() if kind == "postgresql" else require_mysql_url())
    url = next(urls)
    proxy = TcpProxy(*host_port(url))
    proxy.up()
    host, port = host_port(url)
    via = url.replace(f"@{host}:{port}/", f"@127.0.0.1:{proxy.port}/", 1)
    assert via != url
    if kind == "postgresql":  # trust authentication: a password is sent, never checked
        scheme, rest = via.split("://", 1)
        user, place = rest.split("@", 1)
        via = f"{scheme}://{user.split(':')[0]}:s3cret-pw@{place}"
    (tmp_path / "kpi.yaml").write_text(
        f'store: "{via}"\n'
        "sources:\n"
        '  - {name: app, type: python, function: "tests.test_schedule:app_values"}\n',
        encoding="utf-8",
    )
    scheduler = Scheduler(load_config(tmp_path / "kpi.yaml"), lock_wait=0)
    try:
        job = scheduler.job("main")
        assert scheduler.run_job(job).status == "ok"  # the store answers
        proxy.down()
        outcome = scheduler.run_job(job, fire=job.cron.previous(datetime.now(UTC)))
        assert outcome.status == "failed"
        assert outcome.summary.startswith("cannot lock store '")
        assert "\n" not in outcome.summary and "s3cret" not in outcome.summary
        assert "http" not in outcome.summary  # no link to the driver's error pages
        with pytest.raises(StoreError) as caught:  # what --once and a start ask first
            scheduler.due(datetime.now(UTC))
        assert str(caught.value).startswith("cannot read store '")
        assert "\n" not in str(caught.value) and "s3cret" not in str(caught.value)
        with pytest.raises(StoreError, match=r"^cannot lock store"):
            RunLock(scheduler.store).acquire()
    finally:
        scheduler.store.close()
        proxy.down()
        next(urls, None)


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_a_run_lock_whose_database_connection_drops_is_taken_again(
    tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL's and MariaDB's run lock lives in the holder's database session: a dropped
    connection (a server restart, a network blip) freed it silently mid-run, and a second
    run could start writing beside the first. The holder checks its session at each
    heartbeat and takes the lock again."""
    import logging

    from kpi_collector.store.lock import store_mutex
    from tests.services import host_port

    urls = _isolated(require_postgres_url() if kind == "postgresql" else require_mysql_url())
    url = next(urls)
    host, port = host_port(url)
    proxy = TcpProxy(host, port)
    proxy.up()
    via = url.replace(f"@{host}:{port}/", f"@127.0.0.1:{proxy.port}/", 1)
    assert via != url
    store, direct = HistoryStore(via), HistoryStore(url)
    lock = RunLock(store, heartbeat_every=0.1)
    try:
        with caplog.at_level(logging.WARNING, logger="kpi_collector.schedule"):
            lock.acquire()
            proxy.drop()  # the server ends the holder's sessions, and the lock with them
            deadline = time.monotonic() + 30
            while "run lock was lost" not in caplog.text or "taken again" not in caplog.text:
                assert time.monotonic() < deadline, caplog.text
                time.sleep(0.05)
        other = store_mutex(direct, "run")
        assert not other.try_acquire()  # still the holder's: no second run starts
        lock.release()
        assert other.try_acquire()  # and given back at the end
        other.release()
    finally:
        lock.release()
        proxy.down()
        store.close()
        direct.close()
        next(urls, None)


def test_kpi_schedules_own_lock_is_taken_again_after_its_connection_drops(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`kpi schedule` holds its own lock for months: a PostgreSQL restart freed it silently
    and a second `kpi schedule` on the store could start; each heartbeat checks it now."""
    import logging
    from datetime import UTC, datetime, timedelta

    from kpi_collector.config import load_config
    from kpi_collector.schedule.scheduler import Scheduler
    from kpi_collector.store.heartbeats import SCHEDULER
    from kpi_collector.store.lock import store_mutex
    from tests.services import host_port

    urls = _isolated(require_postgres_url())
    url = next(urls)
    host, port = host_port(url)
    proxy = TcpProxy(host, port)
    proxy.up()
    via = url.replace(f"@{host}:{port}/", f"@127.0.0.1:{proxy.port}/", 1)
    (tmp_path / "kpi.yaml").write_text(
        f'store: "{via}"\nschedule: "0 7 1 1 *"\n'
        "sources:\n"
        '  - {name: app, type: python, function: "tests.test_schedule:app_values"}\n',
        encoding="utf-8",
    )
    direct = HistoryStore(url)
    stop = threading.Event()
    seen: list[bool] = []
    deadline: list[float] = []

    class Clock:
        t = datetime(2026, 11, 3, 12, tzinfo=UTC)

        def now(self) -> datetime:
            return self.t

        def sleep(self, seconds: float, stop_event: threading.Event) -> None:
            self.t += timedelta(seconds=60)
            if not seen:
                proxy.drop()  # the server restarts while the scheduler idles
                seen.append(True)
                deadline.append(time.monotonic() + 30)
            elif "taken again" not in caplog.text and time.monotonic() < deadline[0]:
                time.sleep(0.05)  # the server may not have ended the session yet: a beat more
            else:  # a second `kpi schedule` finds the store taken
                other = store_mutex(direct, SCHEDULER)
                seen.append(other.try_acquire())
                other.release()
                stop.set()

    scheduler = Scheduler(load_config(tmp_path / "kpi.yaml"), clock=Clock(), stop=stop)
    try:
        with caplog.at_level(logging.WARNING, logger="kpi_collector.schedule"):
            scheduler.serve()
        assert "the store's scheduler lock was lost" in caplog.text
        assert "taken again" in caplog.text
        assert seen == [True, False]
    finally:
        proxy.down()
        direct.close()
        next(urls, None)
