"""The celery executor end to end: real `kpi worker` processes, real RabbitMQ / Redis brokers,
a PostgreSQL store, and html sources on a local page server.

Every worker is started in a session of its own and stopped by its pid (its process group:
the worker and its pool's children). Each test uses queues of its own, so runs of other
tests on the same brokers never meet its batches.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import sqlalchemy as sa
import yaml
from aiohttp import web

from kpi_collector.demo.server import BackgroundServer
from tests.cli import run_kpi
from tests.services import (
    require_binary,
    require_broker_url,
    require_module,
    require_postgres_url,
)

require_module("celery", hint="the celery executor needs kpi-collector[celery]")

KPI = str(Path(sys.executable).parent / "kpi")
SECRET = "s3cr3t-token-9f8e7d"  # a source's bearer token: must never reach the broker


def value_of(i: int) -> int:
    return i * 7 + 3  # what page i shows, by hand


class Pages:
    """A local site: `/n/{i}` shows value_of(i); records (path, X-Worker header) per request.
    While `hold` is clear, requests wait (up to 60 s) before answering; so do those of a
    worker whose tag is in `stuck`, whatever `hold` says."""

    def __init__(self) -> None:
        self.hits: list[tuple[str, str]] = []
        self.hold = threading.Event()
        self.hold.set()
        self.stuck: set[str] = set()
        self.lock = threading.Lock()

    def app(self) -> web.Application:
        async def page(request: web.Request) -> web.Response:
            import asyncio

            tag = request.headers.get("X-Worker", "")
            with self.lock:
                self.hits.append((request.path, tag))
            for _ in range(1200):
                if self.hold.is_set() and tag not in self.stuck:
                    break
                await asyncio.sleep(0.05)
            i = int(request.match_info["i"])
            return web.Response(
                text=f'<html><body><span id="n">{value_of(i)}</span></body></html>',
                content_type="text/html",
            )

        app = web.Application()
        app.router.add_get("/n/{i}", page)
        return app

    def tags(self, i: int) -> list[str]:
        with self.lock:
            return [tag for path, tag in self.hits if path == f"/n/{i}"]


@pytest.fixture
def pages() -> Iterator[tuple[str, Pages]]:
    site = Pages()
    with BackgroundServer(site.app()) as url:
        yield url, site


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL schema for the test's store, dropped afterwards."""
    url = require_postgres_url()
    name = f"kpi_celery_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {name}"))
    yield url + f"?options=-csearch_path%3D{name}"
    with engine.connect() as conn:
        conn.execute(sa.text(f"DROP SCHEMA {name} CASCADE"))
    engine.dispose()


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path


@dataclass
class Cluster:
    """The workers a test starts; every one is stopped at the end, by its pid."""

    folder: Path
    started: list[Worker] = field(default_factory=list)

    def start(
        self, config: Path, name: str, queues: list[str], env: dict[str, str] | None = None
    ) -> Worker:
        log = self.folder / f"{name.replace('@', '_')}.log"
        argv = [KPI, "-c", str(config), "worker", "--concurrency", "1"]
        argv += ["--queues", ",".join(queues), "--hostname", name]
        with log.open("wb") as out:
            proc = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **(env or {})},
                cwd=config.parent,
                start_new_session=True,  # its own process group: the worker and its pool
            )
        worker = Worker(name, proc, log)
        self.started.append(worker)
        # the worker's own queue (Celery's worker_direct), where a refused batch is sent again
        broker = yaml.safe_load(config.read_text())["executor"]["broker"]
        _QUEUES.append((broker, f"{name}.dq2"))
        deadline = time.monotonic() + 90
        while "ready." not in log.read_text(errors="replace"):
            if proc.poll() is not None:
                raise AssertionError(f"worker {name} exited:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {name} not ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        return worker

    def kill(self, worker: Worker, sig: int = signal.SIGKILL) -> None:
        if worker.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.proc.pid, sig)
        try:
            worker.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.proc.pid, signal.SIGKILL)
            worker.proc.wait(timeout=10)
        # the pool's children are in the worker's process group: none may outlive the test
        with contextlib.suppress(ProcessLookupError):
            os.killpg(worker.proc.pid, signal.SIGKILL)

    def stop_all(self) -> None:
        for worker in self.started:
            self.kill(worker, signal.SIGTERM)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    workers = Cluster(tmp_path)
    try:
        yield workers
    finally:
        workers.stop_all()


#: (broker, queue) of every queue a test's config names; deleted after the test
_QUEUES: list[tuple[str, str]] = []
_OWN_QUEUE = re.compile(r"[a-z]+[0-9a-f]{8}")  # a test's own queue (never `kpi`, shared)


@pytest.fixture(autouse=True)
def _delete_queues() -> Iterator[None]:
    """The broker keeps declared queues and exchanges: each test's own are deleted when it
    ends."""
    yield
    from kombu import Connection

    while _QUEUES:
        broker, queue = _QUEUES.pop()
        try:
            with Connection(broker, connect_timeout=2) as conn:
                conn.ensure_connection(max_retries=1)
                channel = conn.channel()
                channel.queue_delete(queue)
                channel.exchange_delete(queue)  # Celery declares one of the queue's name
                channel.close()
            if broker.startswith("redis://"):  # kombu's record of that exchange's bindings
                import redis

                client = redis.Redis.from_url(broker, socket_connect_timeout=2)
                client.delete(f"_kombu.binding.{queue}")
                client.close()
        except Exception:  # a broker of the test's own may be stopped already
            pass


def write_config(
    folder: Path,
    *,
    broker: str,
    store: str,
    url: str,
    sources: list[tuple[int, str]],
    wait: float = 60,
    batch_size: int = 50,
    extra: str = "",
    backend: str | None = None,
) -> Path:
    """A kpi.yaml with one html source `s{i}` per (i, queue); each sends the worker's tag
    and a bearer token from the environment."""
    folder.mkdir(parents=True, exist_ok=True)
    for queue in dict.fromkeys(q for _, q in sources):
        if _OWN_QUEUE.fullmatch(queue):
            _QUEUES.append((broker, queue))
    lines = [
        f"store: {store}",
        f"executor: {{type: celery, broker: '{broker}', wait: {wait}, batch_size: {batch_size}"
        + (f", backend: '{backend}'" if backend else "")
        + "}",
        "defaults: {timeout: 30, retries: 0}",
        extra,
        "sources:",
    ]
    lines += [
        f"  - {{name: s{i}, type: html, url: '{url}/n/{i}', queue: {queue},"
        " headers: {X-Worker: '${C15_TAG}', Authorization: 'Bearer ${C15_TOKEN}'},"
        " metrics: {n: {css: 'span#n'}}}"
        for i, queue in sources
    ]
    path = folder / "kpi.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


class OneQueue(NamedTuple):
    """A test's own queue and the config of its sources, all on that queue."""

    uid: str  # the test's own suffix: its queue's and its workers' names end with it
    queue: str
    plan: list[tuple[int, str]]  # (i, queue) of every source `s{i}`
    config: Path


def one_queue(
    folder: Path,
    *,
    prefix: str,
    sources: int,
    broker: str,
    store: str,
    url: str,
    wait: float = 60,
    batch_size: int = 50,
    backend: str | None = None,
) -> OneQueue:
    """A queue `{prefix}{uid}` of the test's own and a kpi.yaml in `folder` of html sources
    s1..s{sources} on it (see write_config)."""
    uid = uuid.uuid4().hex[:8]
    queue = f"{prefix}{uid}"
    plan = [(i, queue) for i in range(1, sources + 1)]
    config = write_config(
        folder,
        broker=broker,
        store=store,
        url=url,
        sources=plan,
        wait=wait,
        batch_size=batch_size,
        backend=backend,
    )
    return OneQueue(uid, queue, plan, config)


def kpi(config: Path, *args: str) -> Any:
    """`kpi -c CONFIG ARGS` as the coordinator: its tag, and the sources' token."""
    return run_kpi(config.parent, "-c", str(config), *args, env=env_for("coordinator"), timeout=180)


def stored(store: str) -> dict[str, list[float]]:
    """Every stored value by KPI id, in one list per KPI (one entry per stored row)."""
    engine = sa.create_engine(store)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT kpi, value FROM observations ORDER BY id")).all()
    engine.dispose()
    out: dict[str, list[float]] = {}
    for kpi_id, value in rows:
        out.setdefault(kpi_id, []).append(value)
    return out


def run_statuses_once_running(engine: sa.Engine, timeout: float = 60) -> list[str]:
    """The store's run statuses, polled until they are just ["running"] (a coordinator
    holding its run) or `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    statuses: list[str] = []
    while time.monotonic() < deadline and statuses != ["running"]:
        time.sleep(0.2)
        with engine.connect() as conn:
            try:
                statuses = list(conn.execute(sa.text("SELECT status FROM runs")).scalars())
            except sa.exc.ProgrammingError:  # the tables are not there yet
                conn.rollback()
    return statuses


def fingerprint_by_hand(config: Path) -> str:
    """The config fingerprint as docs/scale-out.md defines it: SHA-256 of the canonical JSON
    of `sources`, `defaults`, `timezone` and `locale` as written (before `${VAR}`)."""
    data = yaml.safe_load(config.read_text())
    wanted = {k: data.get(k) for k in ("sources", "defaults", "timezone", "locale")}
    text = json.dumps(wanted, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def env_for(tag: str) -> dict[str, str]:
    return {"C15_TAG": tag, "C15_TOKEN": SECRET}


def _sigint_by_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@contextlib.contextmanager
def coordinator_in_background(config: Path, *options: str) -> Iterator[subprocess.Popen[str]]:
    """`kpi run --no-deliver OPTIONS` as the coordinator, its output piped, not waited for;
    killed (SIGKILL) at the end when it is still running."""
    run = subprocess.Popen(
        [KPI, "-c", str(config), "run", "--no-deliver", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env_for("coordinator")},
        cwd=config.parent,
        # Ctrl-C as a terminal's foreground process gets it: a suite started in the
        # background (`cmd &` in a script) hands its children SIGINT ignored, and Python
        # then never raises KeyboardInterrupt for it
        preexec_fn=_sigint_by_default,
    )
    try:
        yield run
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()


def wait_for_a_hit(site: Pages, timeout: float = 60) -> None:
    """Until a worker fetched a page of `site` (or `timeout` seconds passed)."""
    deadline = time.monotonic() + timeout
    while not site.hits and time.monotonic() < deadline:
        time.sleep(0.05)


# ---- tests -----------------------------------------------------------------------------


def test_celery_with_a_sqlite_store_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "kpi.yaml"
    path.write_text(
        "executor: {type: celery, broker: 'amqp://guest:guest@127.0.0.1:5672//'}\n"
        "sources:\n  - {name: a, type: html, url: 'http://127.0.0.1:9/', metrics: {n: {css: p}}}\n"
    )
    out = kpi(path, "run")
    assert out.returncode == 2
    [line] = out.stderr.strip().splitlines()
    assert line.startswith(f"config error: {path}:1:")
    assert "executor celery needs a store every machine shares" in line


def test_worker_and_workers_need_the_celery_executor(tmp_path: Path) -> None:
    path = tmp_path / "kpi.yaml"
    path.write_text(
        "sources:\n  - {name: a, type: html, url: 'http://127.0.0.1:9/', metrics: {n: {css: p}}}\n"
    )
    for command in ("worker", "workers"):
        out = kpi(path, command)
        assert out.returncode == 2
        assert out.stderr.strip().splitlines() == [
            f"config error: kpi {command} needs `executor: {{type: celery, broker: ...}}` in "
            f"{path}; see docs/scale-out.md"
        ]


def test_batches_keep_queues_apart_and_cut_at_batch_size() -> None:
    from kpi_collector.run.celery_executor import Batch, batches
    from kpi_collector.sources.html import HTML

    sources = [
        HTML(
            name=f"s{i}",
            url="http://127.0.0.1:9/",
            metrics={"n": {"css": "p"}},
            queue="b" if i % 3 == 0 else "a",
        )
        for i in range(1, 8)
    ]
    # queue a: s1 s2 s4 s5 s7; queue b: s3 s6
    assert batches(sources, 2) == [
        Batch("a", ["s1", "s2"]),
        Batch("a", ["s4", "s5"]),
        Batch("a", ["s7"]),
        Batch("b", ["s3", "s6"]),
    ]


def test_the_app_carries_the_failure_semantics() -> None:
    """acks_late + reject_on_worker_lost, prefetch 1, a Redis visibility timeout above
    `wait`, results that expire: the settings docs/scale-out.md promises."""
    from kpi_collector.config.models import CeleryExecutor
    from kpi_collector.run.celery_executor import celery_app

    executor = CeleryExecutor(type="celery", broker="redis://127.0.0.1:6379/0", wait="10m")
    conf = celery_app(executor).conf
    assert (conf.task_acks_late, conf.task_reject_on_worker_lost) == (True, True)
    assert conf.worker_prefetch_multiplier == 1
    assert conf.broker_transport_options == {  # 600 s + 60 s; reads that never block for ever
        "visibility_timeout": 660,
        "socket_timeout": 15.0,
        "socket_connect_timeout": 5.0,
    }
    assert (conf.redis_socket_timeout, conf.redis_socket_connect_timeout) == (15.0, 5.0)
    assert conf.result_expires == 600 + 3600
    assert conf.result_backend == "redis://127.0.0.1:6379/0"
    assert conf.accept_content == ["json"]
    rabbit = CeleryExecutor(type="celery", broker="amqp://guest:guest@127.0.0.1:5672//")
    assert celery_app(rabbit).conf.result_backend == "rpc://"
    # a coordinator's RabbitMQ reads time out; a worker's idle connection waits, by design
    assert celery_app(rabbit, client=True).conf.broker_transport_options == {
        "visibility_timeout": 660,
        "read_timeout": 15.0,
        "write_timeout": 15.0,
    }
    assert celery_app(rabbit).conf.broker_transport_options == {"visibility_timeout": 660}


def test_a_socket_timeout_is_named_as_one_not_as_the_systems_eagain() -> None:
    """A read that waited its socket timeout (SO_RCVTIMEO) fails with EAGAIN, which the
    system words "Resource temporarily unavailable": `kpi workers` against a RabbitMQ that
    stopped answering said "cannot reach the broker ...: [Errno 11] Resource temporarily
    unavailable"; the line says it timed out."""
    import errno

    from kombu.exceptions import OperationalError

    from kpi_collector.run.celery_executor import _cause

    eagain = OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))
    assert _cause(eagain) == "timed out: no answer within 15 s"
    try:
        raise OperationalError(str(eagain)) from eagain  # as kombu wraps it
    except OperationalError as exc:
        assert _cause(exc) == "timed out: no answer within 15 s"
    refused = ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused")
    assert _cause(refused) == "[Errno 111] Connection refused"


def test_a_workers_pool_shares_out_every_in_flight_limit_of_the_config(tmp_path: Path) -> None:
    """`kpi worker --concurrency 4`: four batches at once, each in its own process with its
    own HTTP client and its own Chromium, so each gets a quarter of `concurrency`,
    `per_host` and `render_concurrency` (rounded up, at least 1): the machine never has more
    requests or rendered pages in flight than the config allows (render_concurrency was
    not shared out: four Chromiums of 4 pages each on a machine sized for 4)."""
    from kpi_collector.config.loader import load_config
    from kpi_collector.run.celery_executor import _WorkerConfig, fingerprint

    path = tmp_path / "kpi.yaml"
    path.write_text(
        "store: 'postgresql+psycopg://kpi@127.0.0.1/kpi'\n"
        "executor: {type: celery, broker: 'amqp://guest:guest@127.0.0.1:5672//'}\n"
        "defaults: {concurrency: 64, per_host: 6, render_concurrency: 4}\n"
        "sources: [{name: a, type: html, url: 'http://127.0.0.1:1/', render: true,"
        " metrics: {n: {css: 'span'}}}]\n"
    )
    config = load_config(path)
    for pool, expected in ((1, (64, 6, 4)), (4, (16, 2, 1)), (5, (13, 2, 1)), (100, (1, 1, 1))):
        shared = _WorkerConfig(config, fingerprint(config), pool=pool).batch_defaults()
        assert (shared.concurrency, shared.per_host, shared.render_concurrency) == expected
    assert config.defaults.render_concurrency == 4  # the config itself is left as it is


def test_a_batch_answered_twice_keeps_each_sources_first_outcome() -> None:
    from kpi_collector.run.celery_executor import Batch, keep_first
    from kpi_collector.run.engine import SourceFailure

    batch = Batch("kpi", ["s1", "s2"])
    outcomes: dict[str, Any] = {}
    first = {"worker": "a@x", "refused": False, "outcomes": [["s1", {"n": 1.0}, [], 0.1]]}
    again = {
        "worker": "b@x",
        "refused": False,
        "outcomes": [
            ["s1", {"n": 2.0}, [], 0.1],
            ["s2", {}, [["n", "n: 'x' is not a number", False]], 0.2],
            ["s9", {"n": 9.0}, [], 0.1],  # no source of this batch: dropped
        ],
    }
    assert [o.source for o in keep_first(outcomes, batch, first, "f")] == ["s1"]
    assert [o.source for o in keep_first(outcomes, batch, again, "f")] == ["s2"]
    assert keep_first(outcomes, batch, again, "f") == []
    assert outcomes["s1"].values == {"n": 1.0}
    assert outcomes["s2"].errors == [SourceFailure("n", "n: 'x' is not a number", False)]
    assert set(outcomes) == {"s1", "s2"}


def test_the_day_a_workers_source_describes_reaches_the_run() -> None:
    """A source of complete days that read the day before yesterday (its service's day
    under way) says so (`SourceOutcome.day`): through a worker the day was dropped, and the
    run stamped the day before's figures as yesterday's. It travels with the outcome; a
    worker of an earlier version sends none (yesterday)."""
    from datetime import date

    from kpi_collector.run.celery_executor import Batch, keep_first

    outcomes: dict[str, Any] = {}
    answer = {
        "worker": "a@x",
        "refused": False,
        "outcomes": [["web", {"visitors": 3.0}, [], 0.1, "2026-03-08"], ["app", {}, [], 0.1]],
    }
    keep_first(outcomes, Batch("kpi", ["web", "app"]), answer, "f")
    assert outcomes["web"].day == date(2026, 3, 8)
    assert outcomes["app"].day is None


def test_a_refusal_fails_the_batch_in_one_line_naming_both_fingerprints() -> None:
    from kpi_collector.run.celery_executor import Batch, keep_first

    outcomes: dict[str, Any] = {}
    answer = {"worker": "old@x", "fingerprint": "1111", "refused": True, "outcomes": []}
    kept = keep_first(outcomes, Batch("kpi", ["s1", "s2"]), answer, "2222")
    line = (
        "worker old@x refused the batch: its config fingerprint 1111 is not the run's 2222; "
        "give every worker the coordinator's kpi.yaml and restart it"
    )
    assert [(o.source, [e.message for e in o.errors]) for o in kept] == [
        ("s1", [line]),
        ("s2", [line]),
    ]


def test_three_workers_and_queue_routing(
    tmp_path: Path, pages: tuple[str, Pages], pg_url: str, cluster: Cluster
) -> None:
    broker = require_broker_url("rabbitmq")
    url, site = pages
    uid = uuid.uuid4().hex[:8]
    public, internal = f"pub{uid}", f"int{uid}"
    plan = [(i, internal if i % 4 == 0 else public) for i in range(1, 25)]
    config = write_config(
        tmp_path / "cfg", broker=broker, store=pg_url, url=url, sources=plan, batch_size=3
    )
    for n, queues in ((1, [public]), (2, [public]), (3, [internal])):
        cluster.start(config, f"w{n}@{uid}", queues, env_for(f"w{n}"))

    out = kpi(config, "run", "--no-deliver", "--format", "json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert {v["kpi"]: v["value"] for v in doc["values"]} == {
        f"s{i}.n": value_of(i) for i, _ in plan
    }
    assert stored(pg_url) == {f"s{i}.n": [value_of(i)] for i, _ in plan}
    for i, queue in plan:
        # each page fetched once, by a worker of its queue: w3 alone serves `internal`
        [tag] = site.tags(i)
        assert tag == "w3" if queue == internal else tag in ("w1", "w2"), (i, tag)

    listed = kpi(config, "workers", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    # only this test's workers: others may share the broker
    found = json.loads(listed.stdout)["workers"]
    workers = {w["name"]: w for w in found if w["name"].endswith(uid)}
    assert {n: w["queues"] for n, w in workers.items()} == {
        f"w1@{uid}": [public],
        f"w2@{uid}": [public],
        f"w3@{uid}": [internal],
    }
    ours = fingerprint_by_hand(config)
    assert {w["fingerprint"] for w in workers.values()} == {ours}

    # Celery's own command line sees the workers, and kpi's inspect command
    argv = [str(Path(sys.executable).parent / "celery"), "-A", "kpi_collector.run.celery_app"]
    argv += ["inspect", "kpi_info", "-d", f"w3@{uid}", "--json"]
    inspect = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env={**os.environ, "KPI_CONFIG": str(config)},
        timeout=60,
    )
    assert inspect.returncode == 0, inspect.stderr
    from kpi_collector._version import __version__

    assert json.loads(inspect.stdout) == {
        f"w3@{uid}": {"fingerprint": ours, "version": __version__}
    }

    cluster.kill(cluster.started[2], signal.SIGTERM)  # w3, the only `internal` worker
    listed = kpi(config, "workers")
    assert listed.returncode == 1
    assert f"queue `{internal}` has no worker" in listed.stderr
    assert f"--queues {internal}" in listed.stderr


@pytest.mark.parametrize("kind", ["rabbitmq", "redis"])
def test_a_worker_killed_mid_batch_hands_it_over_and_each_source_is_stored_once(
    kind: str, tmp_path: Path, pages: tuple[str, Pages], pg_url: str, cluster: Cluster
) -> None:
    """The worker holding the batch is SIGKILLed (it and its pool: nothing of it can hand the
    batch back). RabbitMQ redelivers it when the connection drops; Redis only after its
    visibility timeout (`wait` + 60 s, beyond the run's patience): the coordinator sees
    that no live worker holds it and hands it back itself, well within `wait`."""
    broker = require_broker_url(kind)
    url, site = pages
    uid, queue, plan, config = one_queue(
        tmp_path / "cfg", prefix="kill", sources=6, broker=broker, store=pg_url, url=url, wait=30
    )
    first = cluster.start(config, f"a@{uid}", [queue], env_for("a"))
    second = cluster.start(config, f"b@{uid}", [queue], env_for("b"))
    site.hold.clear()  # the pages answer only once a worker holding the batch is killed
    with coordinator_in_background(config, "--format", "json") as run:
        wait_for_a_hit(site)
        assert site.hits, "no worker fetched a page"
        holder = site.hits[0][1]
        killed, survivor = (first, "b") if holder == "a" else (second, "a")
        cluster.kill(killed, signal.SIGKILL)
        site.hold.set()
        stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, stderr
    assert stored(pg_url) == {f"s{i}.n": [value_of(i)] for i, _ in plan}
    for i, _ in plan:
        assert survivor in site.tags(i)  # the batch went to the other worker
    assert json.loads(stdout)["errors"] == []


def test_a_worker_with_another_config_refuses_and_the_run_names_it(
    tmp_path: Path, pages: tuple[str, Pages], pg_url: str, cluster: Cluster
) -> None:
    broker = require_broker_url("rabbitmq")
    url, site = pages
    uid, queue, plan, config = one_queue(
        tmp_path / "coord", prefix="fp", sources=3, broker=broker, store=pg_url, url=url
    )
    # the worker's copy was edited: another timezone
    other = write_config(
        tmp_path / "worker",
        broker=broker,
        store=pg_url,
        url=url,
        sources=plan,
        extra="timezone: Europe/Berlin",
    )
    cluster.start(other, f"old@{uid}", [queue], env_for("old"))
    out = kpi(config, "run", "--no-deliver", "--format", "json")
    assert out.returncode == 1
    theirs, ours = fingerprint_by_hand(other), fingerprint_by_hand(config)
    assert theirs != ours
    expected = (
        f"worker old@{uid} refused the batch: its config fingerprint {theirs} is not the "
        f"run's {ours}, and no other live worker of queue `{queue}` has the run's; give every "
        "worker the coordinator's kpi.yaml and restart it"
    )
    assert json.loads(out.stdout)["errors"] == [
        {"where": f"s{i}", "message": expected} for i, _ in plan
    ]
    assert site.hits == []  # nothing was collected with the other config
    assert stored(pg_url) == {}


def test_a_refused_batch_is_sent_again_to_a_worker_with_the_runs_config(
    tmp_path: Path, pages: tuple[str, Pages], pg_url: str, cluster: Cluster
) -> None:
    """A worker with another config refuses its batch; another worker of the queue has the
    run's config: the batch goes to that one (once), and every source is stored, once."""
    broker = require_broker_url("rabbitmq")
    url, site = pages
    uid, queue, plan, config = one_queue(
        tmp_path / "coord",
        prefix="again",
        sources=2,
        broker=broker,
        store=pg_url,
        url=url,
        batch_size=1,
    )
    other = write_config(
        tmp_path / "worker",
        broker=broker,
        store=pg_url,
        url=url,
        sources=plan,
        extra="timezone: Europe/Berlin",
    )
    cluster.start(config, f"good@{uid}", [queue], env_for("good"))
    site.hold.clear()  # the good worker's first batch waits, so the second one stays queued
    with coordinator_in_background(config, "--format", "json") as run:
        wait_for_a_hit(site)
        assert [tag for _, tag in site.hits] == ["good"]
        # the old worker takes the queued batch and refuses it
        old = cluster.start(other, f"old@{uid}", [queue], env_for("old"))
        deadline = time.monotonic() + 60
        while "'refused': True" not in old.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "'refused': True" in old.log.read_text(), old.log.read_text()[-3000:]
        site.hold.set()
        stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 0, stderr
    assert json.loads(stdout)["errors"] == []
    assert stored(pg_url) == {f"s{i}.n": [value_of(i)] for i, _ in plan}
    assert site.tags(1) == ["good"] and site.tags(2) == ["good"]  # never fetched by `old`
    assert old.log.read_text().count("'refused': True") == 1


@pytest.mark.parametrize("kind", ["rabbitmq", "redis"])
def test_a_resent_batchs_answer_is_taken_while_another_batch_of_its_queue_is_out(
    kind: str, tmp_path: Path, pages: tuple[str, Pages], pg_url: str, cluster: Cluster
) -> None:
    """Three batches, three workers: one with another config refuses its batch, which is
    sent again to a free worker with the run's (`a-fast`, first in turn) and answered at
    once; another worker is stuck on its batch past `wait`. The resent batch's answer is
    taken when it comes: its source is stored and only the stuck batch's source fails
    (before, an answer to a batch sent again waited until every batch sent first had come
    back, so the stuck one's silence failed both)."""
    broker = require_broker_url(kind)
    url, site = pages
    uid, queue, plan, config = one_queue(
        tmp_path / "coord",
        prefix="resent",
        sources=3,
        broker=broker,
        store=pg_url,
        url=url,
        batch_size=1,
        wait=8,
    )
    other = write_config(
        tmp_path / "worker",
        broker=broker,
        store=pg_url,
        url=url,
        sources=plan,
        extra="timezone: Europe/Berlin",
    )
    site.stuck.add("slow")
    cluster.start(config, f"a-fast@{uid}", [queue], env_for("fast"))
    cluster.start(config, f"b-slow@{uid}", [queue], env_for("slow"))
    old = cluster.start(other, f"old@{uid}", [queue], env_for("old"))
    try:
        out = kpi(config, "run", "--no-deliver", "--format", "json")
    finally:
        site.stuck.clear()
    assert old.log.read_text().count("'refused': True") == 1, old.log.read_text()[-3000:]
    slow = [i for i, _ in plan if site.tags(i) == ["slow"]]
    assert len(slow) == 1, site.hits  # one batch each: the slow worker held one
    message = f"no worker answered for queue `{queue}` within 8 s"
    assert json.loads(out.stdout)["errors"] == [{"where": f"s{slow[0]}", "message": message}]
    assert stored(pg_url) == {f"s{i}.n": [value_of(i)] for i, _ in plan if i not in slow}


@pytest.mark.parametrize("kind", ["rabbitmq", "redis"])
def test_no_worker_fails_the_queue_within_the_wait_and_the_messages_hold_no_secret(
    kind: str, tmp_path: Path, pages: tuple[str, Pages], pg_url: str
) -> None:
    broker = require_broker_url(kind)
    url, site = pages
    _, queue, plan, config = one_queue(
        tmp_path / "cfg",
        prefix="none",
        sources=4,
        broker=broker,
        store=pg_url,
        url=url,
        wait=2,
        batch_size=2,
    )
    out = kpi(config, "run", "--no-deliver", "--format", "json")
    assert out.returncode == 1
    message = f"no worker answered for queue `{queue}` within 2 s"
    assert json.loads(out.stdout)["errors"] == [
        {"where": f"s{i}", "message": message} for i, _ in plan
    ]
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        errors = conn.execute(
            sa.text("SELECT source, message FROM run_errors ORDER BY source")
        ).all()
        status = conn.execute(sa.text("SELECT status FROM runs")).scalars().all()
    engine.dispose()
    assert errors == [(f"s{i}", message) for i, _ in plan]
    assert status == ["failed"]

    # the two batches are still in the queue: read them back, raw
    from kombu import Connection

    raw: list[str] = []
    with Connection(broker) as conn:
        channel = conn.channel()
        try:
            while (got := channel.basic_get(queue, no_ack=True)) is not None:
                body = got.body if isinstance(got.body, bytes) else str(got.body).encode()
                raw.append(body.decode(errors="replace") + repr(got.headers) + repr(got.properties))
        finally:
            channel.queue_delete(queue)
            channel.close()
    assert len(raw) == 2
    text = "\n".join(raw)
    assert '"s1", "s2"' in text and '"s3", "s4"' in text  # what the messages do carry
    assert fingerprint_by_hand(config) in text
    for secret in (SECRET, "Bearer", "guest", "/n/1", "span#n", str(tmp_path)):
        assert secret not in text, secret
    assert site.hits == []


def test_a_result_backend_without_push_is_polled_for_every_batch(
    tmp_path: Path, pages: tuple[str, Pages], pg_url: str, cluster: Cluster
) -> None:
    """Celery's database backend cannot push results (no native join): the coordinator asks
    each pending result in turn, and every source is stored."""
    broker = require_broker_url("rabbitmq")
    require_module("sqlalchemy")
    url, site = pages
    uid, queue, plan, config = one_queue(
        tmp_path / "cfg",
        prefix="poll",
        sources=5,
        broker=broker,
        store=pg_url,
        url=url,
        batch_size=2,
        backend=f"db+{pg_url}",  # celery's tables in the test's own schema
    )
    cluster.start(config, f"p@{uid}", [queue], env_for("p"))
    out = kpi(config, "run", "--no-deliver", "--format", "json")
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["errors"] == []
    assert stored(pg_url) == {f"s{i}.n": [value_of(i)] for i, _ in plan}
    assert all(site.tags(i) == ["p"] for i, _ in plan)


def test_redis_broker_collects_with_a_worker(
    tmp_path: Path, pages: tuple[str, Pages], pg_url: str, cluster: Cluster
) -> None:
    broker = require_broker_url("redis")
    url, site = pages
    uid, queue, plan, config = one_queue(
        tmp_path / "cfg",
        prefix="redis",
        sources=7,
        broker=broker,
        store=pg_url,
        url=url,
        batch_size=3,
    )
    cluster.start(config, f"r@{uid}", [queue], env_for("r"))
    out = kpi(config, "run", "--no-deliver", "--format", "json")
    assert out.returncode == 0, out.stderr
    assert stored(pg_url) == {f"s{i}.n": [value_of(i)] for i, _ in plan}
    assert all(site.tags(i) == ["r"] for i, _ in plan)
    # `kpi schedule` runs with the same executor
    scheduled = kpi(config, "schedule", "--run", "main", "--force")
    assert scheduled.returncode == 0, scheduled.stderr
    assert all(site.tags(i) == ["r", "r"] for i, _ in plan)
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT trigger, status FROM runs ORDER BY id")).all()
    engine.dispose()
    assert [tuple(r) for r in runs] == [("run", "ok"), ("schedule", "ok")]
    # the coordinator deleted every result it read: none of this worker's is left in Redis
    import redis

    client = redis.Redis.from_url(broker)
    left = [
        key
        for key in client.scan_iter(match="celery-task-meta-*", count=1000)
        if f"r@{uid}".encode() in (client.get(key) or b"")
    ]
    client.close()
    assert left == []
    listed = kpi(config, "workers", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    [worker] = [w for w in json.loads(listed.stdout)["workers"] if w["name"].endswith(uid)]
    assert (worker["name"], worker["queues"]) == (f"r@{uid}", [queue])


def test_systemd_snippet_adds_a_worker_unit_on_the_sources_queues(tmp_path: Path) -> None:
    from kpi_collector.config import load_config
    from kpi_collector.schedule.deploy import snippet
    from tests.test_schedule import _verify_units

    plan = [(1, "kpi"), (2, "internal"), (3, "kpi")]
    path = write_config(
        tmp_path,
        broker="amqp://guest:guest@127.0.0.1:5672//",
        store="postgresql+psycopg://kpi@db.example.internal/kpi",
        url="http://127.0.0.1:9",
        sources=plan,
        wait=300,
    )
    config = load_config(path, need_secrets=False, need_store=False)
    kpi_bin = str(Path(sys.executable).parent / "kpi")
    text = snippet(config, "systemd", kpi=kpi_bin)
    assert "# /etc/systemd/system/kpi-collector.service" in text
    worker = text.split("# /etc/systemd/system/kpi-collector-worker.service", 1)[1]
    assert f"\nExecStart={kpi_bin} -c {path} worker --queues kpi,internal\n" in worker
    assert "\nKillSignal=SIGTERM\n" in worker
    assert "\nTimeoutStopSec=360\n" in worker  # wait 300 s + 60 s
    (tmp_path / "units").mkdir()
    _verify_units(tmp_path / "units", text)


def test_the_local_executor_prints_no_worker_unit(tmp_path: Path) -> None:
    from kpi_collector.config import load_config
    from kpi_collector.schedule.deploy import snippet

    path = tmp_path / "kpi.yaml"
    path.write_text(
        "sources:\n  - {name: a, type: html, url: 'http://127.0.0.1:9/', metrics: {n: {css: p}}}\n"
    )
    text = snippet(load_config(path), "systemd", kpi="/opt/kpi/bin/kpi")
    assert "kpi-collector-worker" not in text and " worker" not in text


def test_a_killed_coordinator_leaves_an_interrupted_run_and_the_next_run_proceeds(
    tmp_path: Path, pages: tuple[str, Pages], pg_url: str, cluster: Cluster
) -> None:
    broker = require_broker_url("rabbitmq")
    url, site = pages
    uid, queue, plan, config = one_queue(
        tmp_path / "cfg", prefix="coord", sources=3, broker=broker, store=pg_url, url=url
    )
    # no worker yet: the coordinator waits for its batch, holding the run lock
    with coordinator_in_background(config) as first:
        engine = sa.create_engine(pg_url)
        assert run_statuses_once_running(engine) == ["running"]
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    cluster.start(config, f"late@{uid}", [queue], env_for("late"))
    out = kpi(config, "run", "--no-deliver", "--format", "json")
    assert out.returncode == 0, out.stderr
    with engine.connect() as conn:
        runs = conn.execute(sa.text("SELECT id, status FROM runs ORDER BY id")).all()
    engine.dispose()
    assert [status for _, status in runs] == ["interrupted", "ok"]
    assert stored(pg_url) == {f"s{i}.n": [value_of(i)] for i, _ in plan}
    # the first batch, still queued when its run died, was skipped: its answer had nowhere
    # to go (before, the late worker collected it for nobody, ahead of the second run's)
    for i, _ in plan:
        assert site.tags(i) == ["late"], (i, site.tags(i))


def test_an_unreachable_broker_fails_the_sources_in_one_line_without_its_password(
    tmp_path: Path, pages: tuple[str, Pages], pg_url: str
) -> None:
    port = _free_port()  # a port nothing listens on
    broker = f"amqp://kpi:pw-{SECRET}@127.0.0.1:{port}//"
    url, site = pages
    config = write_config(
        tmp_path / "cfg", broker=broker, store=pg_url, url=url, sources=[(1, "kpi"), (2, "kpi")]
    )
    out = kpi(config, "run", "--no-deliver", "--format", "json")
    assert out.returncode == 1
    errors = json.loads(out.stdout)["errors"]
    assert [e["where"] for e in errors] == ["s1", "s2"]
    for error in errors:
        assert error["message"].startswith(
            f"cannot send to the broker amqp://kpi:***@127.0.0.1:{port}//: "
        )
    assert SECRET not in out.stdout + out.stderr
    listed = kpi(config, "workers")
    assert listed.returncode == 1
    assert listed.stderr.startswith(
        f"error: cannot reach the broker amqp://kpi:***@127.0.0.1:{port}//"
    )
    assert SECRET not in listed.stdout + listed.stderr
    assert site.hits == []


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _listening(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


class PrivateRedis(NamedTuple):
    """A redis-server of a test's own: its URL (database 0), port and process (a test may
    SIGSTOP it; it is stopped by its pid when the context ends)."""

    url: str
    port: int
    proc: subprocess.Popen[bytes]


@contextlib.contextmanager
def _private_redis(
    tmp_path: Path, *, port: int | None = None, persistent: bool = False
) -> Iterator[PrivateRedis]:
    """A redis-server on `port` (default: a free one) of 127.0.0.1, its files in `tmp_path`:
    for a test that stops, freezes or restarts a broker no other test shares. `persistent`:
    its data kept on disk, append-only and synced on every write, so that a server started
    again on the same port and folder has it back; else nothing is saved. SIGCONT then
    SIGTERM by its pid at the end (it may have been left stopped)."""
    require_broker_url("redis")  # the machine has Redis: its server program is here too
    server = require_binary("redis-server", hint="Debian package redis-server")
    port = port or _free_port()
    argv = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    kept = ["--appendonly", "yes", "--appendfsync", "always"] if persistent else []
    argv += (kept or ["--appendonly", "no"]) + ["--dir", str(tmp_path)]
    proc = subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 30
        while not _listening(port):
            assert proc.poll() is None and time.monotonic() < deadline, "no redis"
            time.sleep(0.05)
        yield PrivateRedis(f"redis://127.0.0.1:{port}/0", port, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGCONT)
            proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_a_broker_restart_mid_run_loses_nothing(
    tmp_path: Path, pages: tuple[str, Pages], pg_url: str, cluster: Cluster
) -> None:
    """A Redis of the test's own (its queue kept on disk, append-only), restarted while a
    worker holds a batch: the run still stores every source, once."""
    url, site = pages
    with contextlib.ExitStack() as servers:
        redis = servers.enter_context(_private_redis(tmp_path, persistent=True))
        try:
            uid, queue, plan, config = one_queue(
                tmp_path / "cfg",
                prefix="rs",
                sources=6,
                broker=redis.url,
                store=pg_url,
                url=url,
                batch_size=2,
            )
            cluster.start(config, f"rs@{uid}", [queue], env_for("rs"))
            site.hold.clear()
            with coordinator_in_background(config, "--format", "json") as run:
                wait_for_a_hit(site)
                assert site.hits, "no worker fetched a page"
                redis.proc.terminate()  # a clean restart: Redis writes its append-only file
                redis.proc.wait(timeout=30)
                servers.enter_context(_private_redis(tmp_path, port=redis.port, persistent=True))
                site.hold.set()
                stdout, stderr = run.communicate(timeout=150)
            assert run.returncode == 0, stderr
            assert json.loads(stdout)["errors"] == []
            assert stored(pg_url) == {f"s{i}.n": [value_of(i)] for i, _ in plan}
        finally:
            cluster.stop_all()  # the worker first, while its broker is still there


def test_a_worker_without_a_sources_variable_says_so(
    tmp_path: Path, pages: tuple[str, Pages], pg_url: str, cluster: Cluster
) -> None:
    broker = require_broker_url("rabbitmq")
    url, site = pages
    uid, queue, _, config = one_queue(
        tmp_path / "cfg", prefix="var", sources=1, broker=broker, store=pg_url, url=url
    )
    assert "C15_TOKEN" not in os.environ
    cluster.start(config, f"novar@{uid}", [queue], {"C15_TAG": "novar"})  # no C15_TOKEN here
    out = kpi(config, "run", "--no-deliver", "--format", "json")
    assert out.returncode == 1
    assert json.loads(out.stdout)["errors"] == [
        {
            "where": "s1",
            "message": f"worker novar@{uid} cannot collect s1: a variable it names is not set on "
            "that machine; set it there, or give the source a `queue:` of workers that have it",
        }
    ]
    assert site.hits == []


def test_ctrl_c_stops_a_coordinator_waiting_for_workers(
    tmp_path: Path, pages: tuple[str, Pages], pg_url: str, cluster: Cluster
) -> None:
    """Ctrl-C ends the wait at once; the batch no worker heard the revocation of (none was
    running) is skipped by a worker that starts later, not collected for nobody."""
    broker = require_broker_url("rabbitmq")
    url, site = pages
    uid, queue, _, config = one_queue(
        tmp_path / "cfg", prefix="cc", sources=1, broker=broker, store=pg_url, url=url, wait=600
    )
    with coordinator_in_background(config) as run:
        engine = sa.create_engine(pg_url)
        statuses = run_statuses_once_running(engine)
        engine.dispose()
        assert statuses == ["running"]
        run.send_signal(signal.SIGINT)
        # long before the 600 s wait: the thread waiting for answers lets go too
        _, stderr = run.communicate(timeout=60)
    assert run.returncode == 130
    assert stderr.strip().splitlines()[-1] == "interrupted"
    late = cluster.start(config, f"late@{uid}", [queue], env_for("late"))
    # skipped as gone; or discarded as revoked, when a worker of another test on the same
    # broker heard the revocation and the late one learnt it from that one at its start
    skipped = ("the run that sent it is gone", "Discarding revoked task")
    deadline = time.monotonic() + 30
    while not site.hits and not any(s in late.log.read_text(errors="replace") for s in skipped):
        assert time.monotonic() < deadline, late.log.read_text(errors="replace")[-3000:]
        time.sleep(0.1)
    assert site.hits == []


def test_the_config_of_docs_scale_out_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kpi_collector.config import load_config
    from kpi_collector.config.models import CeleryExecutor

    doc = (Path(__file__).resolve().parents[1] / "docs" / "scale-out.md").read_text()
    block = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "kpi.yaml").write_text(block)
    monkeypatch.setenv("KPI_DB_PASSWORD", "pw")
    monkeypatch.setenv("KPI_BROKER_URL", "amqp://kpi:pw@127.0.0.1:5672/kpi")
    monkeypatch.setenv("ORDERS_DB_URL", "postgresql+psycopg://kpi:pw@127.0.0.1/orders")
    config = load_config(tmp_path / "kpi.yaml")
    executor = config.settings.executor
    assert isinstance(executor, CeleryExecutor)
    assert (executor.batch_size, executor.wait_seconds) == (50, 600)
    assert {s.name: s.queue for s in config.sources} == {"github": "kpi", "orders": "internal"}


def test_a_config_with_a_mapping_of_mixed_key_types_is_a_config_error_not_a_crash(
    tmp_path: Path,
) -> None:
    """YAML gives `{open: 1, 2: 0}` a text key and a number key: the fingerprint of a celery
    config (canonical JSON, where every key is text) is still computed, and the config
    error names the key, as with the local executor."""
    from kpi_collector.config.models import config_fingerprint

    path = tmp_path / "kpi.yaml"
    path.write_text(
        "store: 'postgresql+psycopg://kpi@127.0.0.1/kpi'\n"
        "executor: {type: celery, broker: 'amqp://guest:guest@127.0.0.1:5672//'}\n"
        "sources:\n"
        "  - {name: a, type: html, url: 'http://127.0.0.1:9/',"
        " metrics: {n: {css: p, map: {open: 1, 2: 0, null: 3}}}}\n"
    )
    for command in ("validate", "worker"):
        out = kpi(path, command)
        assert out.returncode == 2, out.stderr
        [line] = out.stderr.strip().splitlines()
        assert "metrics.n.map: the key 2 is not a text" in line, line
    data = yaml.safe_load(path.read_text())
    # canonical JSON: every key is text ("2", "null"), sorted as text
    canonical = (
        '{"defaults":null,"locale":null,"sources":[{"metrics":{"n":{"css":"p",'
        '"map":{"2":0,"null":3,"open":1}}},"name":"a","type":"html",'
        '"url":"http://127.0.0.1:9/"}],"timezone":null}'
    )
    assert config_fingerprint(data) == hashlib.sha256(canonical.encode()).hexdigest()[:16]


def test_a_redis_broker_that_is_down_fails_the_sources_in_one_line_naming_the_cause(
    tmp_path: Path, pages: tuple[str, Pages], pg_url: str
) -> None:
    """With Redis, Celery's own error is about its result store, over three lines; the run
    says in one line per source that the broker cannot be reached, and why."""
    port = _free_port()  # a port nothing listens on
    broker = f"redis://:pw-{SECRET}@127.0.0.1:{port}/0"
    url, site = pages
    config = write_config(
        tmp_path / "cfg", broker=broker, store=pg_url, url=url, sources=[(1, "kpi"), (2, "kpi")]
    )
    out = kpi(config, "run", "--no-deliver", "--format", "json")
    assert out.returncode == 1
    errors = json.loads(out.stdout)["errors"]
    assert [e["where"] for e in errors] == ["s1", "s2"]
    for error in errors:
        message = error["message"]
        assert "\n" not in message and "  " not in message, message
        assert message.startswith(f"cannot send to the broker redis://:***@127.0.0.1:{port}/0: ")
        assert f"127.0.0.1:{port}" in message.split(": ", 1)[1] and "refused" in message, message
        assert "result store" not in message, message
    assert SECRET not in out.stdout + out.stderr
    shown = kpi(config, "run", "--no-deliver")  # the terminal's lines: one per source
    assert shown.returncode == 1
    failed = [line for line in shown.stdout.splitlines() if line.startswith("failed ")]
    assert len(failed) == 2 and all("refused" in line for line in failed), shown.stdout
    assert site.hits == []


def test_a_source_still_running_after_its_timeout_does_not_hold_the_batchs_answer(
    tmp_path: Path, pg_url: str, cluster: Cluster
) -> None:
    """A `type: python` function that never returns times out on the worker; the batch's
    answer (the other source's value, the time-out) comes back at once, not when the
    function's thread ends, nor as "no worker answered" for the whole batch."""
    broker = require_broker_url("rabbitmq")
    uid = uuid.uuid4().hex[:8]
    queue = f"py{uid}"
    _QUEUES.append((broker, queue))
    folder = tmp_path / "cfg"
    folder.mkdir()
    release = tmp_path / "release"
    (folder / f"stuck{uid}.py").write_text(
        "import time\n"
        "from pathlib import Path\n\n"
        "def stuck():\n"
        f"    while not Path({str(release)!r}).exists():  # until the test ends\n"
        "        time.sleep(0.05)\n"
        "    return {'n': 1}\n\n"
        "def fine():\n"
        "    return {'n': 5}\n"
    )
    config = folder / "kpi.yaml"
    config.write_text(
        f"store: {pg_url}\n"
        f"executor: {{type: celery, broker: '{broker}', wait: 45, batch_size: 10}}\n"
        "defaults: {timeout: 2, retries: 0}\n"
        "sources:\n"
        f"  - {{name: stuck, type: python, function: 'stuck{uid}:stuck', queue: {queue}}}\n"
        f"  - {{name: fine, type: python, function: 'stuck{uid}:fine', queue: {queue}}}\n"
    )
    try:
        cluster.start(config, f"py@{uid}", [queue])
        out = kpi(config, "run", "--no-deliver", "--format", "json")
    finally:
        release.touch()  # the function's thread ends: the worker stops cleanly
    assert out.returncode == 1, out.stderr
    assert json.loads(out.stdout)["errors"] == [{"where": "stuck", "message": "timed out after 2s"}]
    assert stored(pg_url) == {"fine.n": [5.0]}


def _worker_until_exit(config: Path, *args: str, timeout: float = 30) -> tuple[int | None, str]:
    """`kpi -c CONFIG worker ARGS` in a session of its own: its exit code and stderr, or None
    when it still ran after `timeout` seconds (then it is stopped, by its process group)."""
    proc = subprocess.Popen(
        [KPI, "-c", str(config), "worker", "--concurrency", "1", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=config.parent,
        start_new_session=True,
    )
    try:
        _, stderr = proc.communicate(timeout=timeout)
        return proc.returncode, stderr
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        _, stderr = proc.communicate(timeout=30)
        return None, stderr
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the pool's children, if any are left


def test_a_queue_name_the_broker_cannot_take_is_a_config_error(tmp_path: Path) -> None:
    """RabbitMQ takes queue names of at most 255 bytes: a longer `queue:` is refused when the
    config is loaded (before, every batch of the run failed with "ubyte format requires 0 <=
    number <= 255"), and so is a `kpi worker --queues` name no source could give."""
    long = "q" * 256
    path = tmp_path / "kpi.yaml"
    path.write_text(
        "store: 'postgresql+psycopg://kpi@127.0.0.1/kpi'\n"
        "executor: {type: celery, broker: 'amqp://guest:guest@127.0.0.1:5672//', wait: 2}\n"
        "sources:\n"
        f"  - {{name: a, type: html, url: 'http://127.0.0.1:9/', queue: {long},"
        " metrics: {n: {css: p}}}\n"
        "  - {name: b, type: html, url: 'http://127.0.0.1:9/', metrics: {n: {css: p}}}\n"
    )
    out = kpi(path, "validate")
    assert out.returncode == 2
    [line] = out.stderr.strip().splitlines()
    assert line.startswith(f"config error: {path}:4:") and "queue" in line and "255" in line
    path.write_text(path.read_text().replace(long, "internal"))
    assert kpi(path, "validate").returncode == 0
    for queues in (long, "kpi,a b", "kpi,ü"):
        code, stderr = _worker_until_exit(path, "--queues", queues)
        assert code == 2, (queues, stderr[-2000:])
        [line] = stderr.strip().splitlines()
        assert "--queues" in line, line
    # a worker's own queue is `<node name>.dq2`: its name has the same bound
    code, stderr = _worker_until_exit(path, "--hostname", f"{'w' * 260}@%h")
    assert code == 2, stderr[-2000:]
    [line] = stderr.strip().splitlines()
    assert "--hostname" in line and "251" in line, line


def test_a_coordinator_whose_kpi_yaml_changed_since_it_started_says_so_when_refused(
    tmp_path: Path, pages: tuple[str, Pages], pg_url: str, cluster: Cluster
) -> None:
    """The config is edited while a coordinator (`kpi schedule` reads it on start) runs, and
    the workers are restarted with it: they refuse the coordinator's batches. The one line
    names the coordinator as the one to restart, not "give every worker the coordinator's
    kpi.yaml" (they have it already)."""
    broker = require_broker_url("rabbitmq")
    url, site = pages
    uid, queue, plan, config = one_queue(
        tmp_path / "cfg", prefix="stale", sources=2, broker=broker, store=pg_url, url=url
    )
    ours = fingerprint_by_hand(config)
    with coordinator_in_background(config, "--format", "json") as run:
        engine = sa.create_engine(pg_url)
        statuses = run_statuses_once_running(engine)  # its batch is queued: no worker yet
        engine.dispose()
        assert statuses == ["running"]
        config.write_text(config.read_text() + "timezone: Europe/Berlin\n")
        edited = fingerprint_by_hand(config)
        cluster.start(config, f"new@{uid}", [queue], env_for("new"))
        stdout, stderr = run.communicate(timeout=120)
    assert run.returncode == 1, stderr
    expected = (
        f"worker new@{uid} refused the batch: its config fingerprint {edited} is not the run's "
        f"{ours}: {config} changed since this coordinator read it (now {edited}); restart the "
        "coordinator (kpi schedule reads its config when it starts)"
    )
    assert json.loads(stdout)["errors"] == [
        {"where": f"s{i}", "message": expected} for i, _ in plan
    ]
    assert site.hits == []
    assert stored(pg_url) == {}


def test_batches_a_run_gave_up_on_are_skipped_by_a_worker_that_starts_later(
    tmp_path: Path, pages: tuple[str, Pages], pg_url: str, cluster: Cluster
) -> None:
    """No worker consumed the queue during a run: its batches stay queued, and no worker
    heard their revocation (a broker of the test's own: no other worker can tell a new one
    about it either). A worker started once the run can no longer take their answers skips
    them (they expire) instead of collecting every stale batch ahead of the next run's;
    that next run is collected."""
    with _private_redis(tmp_path) as redis:
        try:
            url, site = pages
            uid, queue, plan, config = one_queue(
                tmp_path / "cfg",
                prefix="late",
                sources=2,
                broker=redis.url,
                store=pg_url,
                url=url,
                wait=2,
                batch_size=1,
            )
            out = kpi(config, "run", "--no-deliver", "--format", "json")
            assert out.returncode == 1
            message = f"no worker answered for queue `{queue}` within 2 s"
            assert json.loads(out.stdout)["errors"] == [
                {"where": f"s{i}", "message": message} for i, _ in plan
            ]
            time.sleep(8)  # past the longest the run could have waited for these batches
            worker = cluster.start(config, f"late@{uid}", [queue], env_for("late"))
            deadline = time.monotonic() + 60
            done = ("Discarding revoked task", "succeeded in")
            while time.monotonic() < deadline:
                text = worker.log.read_text(errors="replace")
                if sum(text.count(d) for d in done) >= 2:
                    break
                time.sleep(0.1)
            text = worker.log.read_text(errors="replace")
            assert text.count("Discarding revoked task") == 2, text[-3000:]
            assert site.hits == []  # the stale batches were not collected
            again = kpi(config, "run", "--no-deliver", "--format", "json")
            assert again.returncode == 0, again.stdout + again.stderr
            assert stored(pg_url) == {f"s{i}.n": [value_of(i)] for i, _ in plan}
        finally:
            cluster.stop_all()  # the worker first, while its broker is still there


def test_refused_batches_go_to_the_good_workers_in_turn_asking_the_broker_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stale worker refuses batch after batch: finding the workers with the run's config
    asks the broker once (a ping waits its whole timeout, 2 s: once per refused batch, 200
    batches cost minutes), and the batches are sent again to those workers in turn, not all
    to the first by name."""
    from kpi_collector.config.models import CeleryExecutor
    from kpi_collector.run import celery_executor as ce

    asked: list[float] = []

    def live(executor: Any, *, timeout: float = 2.0) -> list[Any]:
        asked.append(timeout)
        return [
            ce.WorkerInfo("a@x", ("kpi",), "good", "1"),
            ce.WorkerInfo("b@x", ("kpi", "internal"), "good", "1"),
            ce.WorkerInfo("old@x", ("kpi",), "stale", "1"),
            ce.WorkerInfo("c@x", ("internal",), "good", "1"),
        ]

    monkeypatch.setattr(ce, "live_workers", live)
    finder = ce._LiveWorkers(CeleryExecutor(type="celery", broker="redis://127.0.0.1:9/0"), "good")
    assert [finder.worker_for("kpi") for _ in range(5)] == ["a@x", "b@x", "a@x", "b@x", "a@x"]
    assert [finder.worker_for("internal") for _ in range(3)] == ["b@x", "c@x", "b@x"]
    assert finder.worker_for("vpn") is None
    assert len(asked) == 1


def test_a_wait_the_broker_cannot_take_is_a_config_error(tmp_path: Path) -> None:
    """`wait: 1e300` used to pass validation and then fail every source of every run with
    "cannot send to the broker ...: int too large to convert"; `wait` is at most 30 days."""
    path = tmp_path / "kpi.yaml"
    for wait, ok in (("1e300", False), ("31d", False), ("30d", True), ("10m", True)):
        path.write_text(
            "store: 'postgresql+psycopg://kpi@127.0.0.1/kpi'\n"
            "executor: {type: celery, broker: 'amqp://guest:guest@127.0.0.1:5672//',"
            f" wait: {wait}}}\n"
            "sources:\n  - {name: a, type: html, url: 'http://127.0.0.1:9/',"
            " metrics: {n: {css: p}}}\n"
        )
        out = kpi(path, "validate")
        if ok:
            assert out.returncode == 0, (wait, out.stderr)
            continue
        assert out.returncode == 2, (wait, out.stdout)
        [line] = out.stderr.strip().splitlines()
        assert line.startswith(f"config error: {path}:2: executor.wait: ") and "30d" in line, line


def test_a_result_backend_that_is_down_is_named_not_the_broker(
    tmp_path: Path, pages: tuple[str, Pages], pg_url: str
) -> None:
    """RabbitMQ is up, the Redis result backend is not: the one line names the result
    backend (its password masked), not the broker that works."""
    broker = require_broker_url("rabbitmq")
    port = _free_port()  # a port nothing listens on
    url, site = pages
    uid = uuid.uuid4().hex[:8]
    config = write_config(
        tmp_path / "cfg",
        broker=broker,
        store=pg_url,
        url=url,
        sources=[(1, f"be{uid}")],
        wait=5,
        backend=f"redis://:pw-{SECRET}@127.0.0.1:{port}/0",
    )
    out = kpi(config, "run", "--no-deliver", "--format", "json")
    assert out.returncode == 1
    [error] = json.loads(out.stdout)["errors"]
    assert error["message"].startswith(
        f"cannot reach the result backend redis://:***@127.0.0.1:{port}/0: "
    ), error
    assert "\n" not in error["message"] and "refused" in error["message"], error
    assert SECRET not in out.stdout + out.stderr
    assert site.hits == []


def test_a_broker_refusing_the_login_is_one_line_without_the_password(
    tmp_path: Path, pages: tuple[str, Pages], pg_url: str
) -> None:
    """RabbitMQ is up but refuses the broker URL's password: `kpi workers` and `kpi run`
    say so in one line (before, `kpi workers` died with a traceback)."""
    require_broker_url("rabbitmq")
    broker = f"amqp://guest:pw-{SECRET}@127.0.0.1:5672//"
    url, site = pages
    config = write_config(
        tmp_path / "cfg", broker=broker, store=pg_url, url=url, sources=[(1, "kpi")]
    )
    listed = kpi(config, "workers")
    assert listed.returncode == 1
    [line] = listed.stderr.strip().splitlines()
    assert line.startswith("error: cannot reach the broker amqp://guest:***@127.0.0.1:5672//: ")
    assert "ACCESS_REFUSED" in line, line
    out = kpi(config, "run", "--no-deliver", "--format", "json")
    assert out.returncode == 1
    [error] = json.loads(out.stdout)["errors"]
    assert "ACCESS_REFUSED" in error["message"] and "\n" not in error["message"], error
    assert SECRET not in listed.stdout + listed.stderr + out.stdout + out.stderr
    assert site.hits == []


def test_a_database_result_backend_that_is_down_is_one_line_not_a_traceback(
    tmp_path: Path, pages: tuple[str, Pages], pg_url: str
) -> None:
    """`backend: db+postgresql...` on a database that does not answer: each source fails
    with one line naming the result backend (its password masked), and no batch is sent
    that nobody could read the answer of."""
    broker = require_broker_url("rabbitmq")
    port = _free_port()  # a port nothing listens on
    url, site = pages
    uid = uuid.uuid4().hex[:8]
    queue = f"dbbe{uid}"
    config = write_config(
        tmp_path / "cfg",
        broker=broker,
        store=pg_url,
        url=url,
        sources=[(1, queue), (2, queue)],
        wait=5,
        backend=f"db+postgresql+psycopg://kpi:pw-{SECRET}@127.0.0.1:{port}/kpi",
    )
    out = kpi(config, "run", "--no-deliver", "--format", "json")
    assert out.returncode == 1, out.stderr[-3000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    errors = json.loads(out.stdout)["errors"]
    assert [e["where"] for e in errors] == ["s1", "s2"]
    for error in errors:
        message = error["message"]
        assert message.startswith(
            f"cannot reach the result backend db+postgresql+psycopg://kpi:***@127.0.0.1:{port}/kpi: "
        ), message
        assert "\n" not in message and "refused" in message, message
    assert SECRET not in out.stdout + out.stderr
    from kombu import Connection

    with Connection(broker) as conn:  # nothing was sent
        channel = conn.channel()
        try:
            assert channel.basic_get(queue, no_ack=True) is None
        except Exception as exc:  # the queue was never declared: just as good
            assert "NOT_FOUND" in str(exc), exc
        finally:
            channel.close()
    assert site.hits == []


@pytest.mark.parametrize("case", ["password", "vhost", "down", "redis-db"])
def test_a_worker_the_broker_refuses_at_its_start_says_so_in_one_line_and_exits(
    case: str, tmp_path: Path
) -> None:
    """`kpi worker` whose broker refuses the login, has no such vhost or Redis database, or
    is not there: one line naming the broker (password masked) and why, exit 1 (a systemd
    unit restarts it), as `kpi workers` says. Before, a refused login died with a 40-line
    traceback and a missing vhost was retried for ever with Celery's tracebacks."""
    rabbit = require_broker_url("rabbitmq")
    redis_url = require_broker_url("redis")
    port = _free_port()  # nothing listens on it
    broker, masked, why = {
        "password": (
            f"amqp://guest:pw-{SECRET}@127.0.0.1:5672//",
            "amqp://guest:***@127.0.0.1:5672//",
            "ACCESS_REFUSED",
        ),
        "vhost": (
            f"amqp://guest:guest@127.0.0.1:5672/nohost{uuid.uuid4().hex[:8]}",
            "amqp://guest:***@127.0.0.1:5672/nohost",
            "NOT_ALLOWED - vhost nohost",
        ),
        "down": (
            f"amqp://kpi:pw-{SECRET}@127.0.0.1:{port}//",
            f"amqp://kpi:***@127.0.0.1:{port}//",
            "refused",
        ),
        "redis-db": (
            redis_url.rsplit("/", 1)[0] + "/999",
            redis_url.rsplit("/", 1)[0] + "/999",
            "DB index is out of range",
        ),
    }[case]
    assert rabbit and redis_url
    path = tmp_path / "kpi.yaml"
    path.write_text(
        "store: 'postgresql+psycopg://kpi@127.0.0.1/kpi'\n"
        f"executor: {{type: celery, broker: '{broker}', wait: 5}}\n"
        "sources:\n  - {name: a, type: html, url: 'http://127.0.0.1:9/', metrics: {n: {css: p}}}\n"
    )
    code, stderr = _worker_until_exit(path, "--queues", f"ref{uuid.uuid4().hex[:8]}")
    assert code == 1, stderr[-3000:]
    [line] = stderr.strip().splitlines()
    assert line.startswith(f"error: cannot reach the broker {masked}"), line
    assert why in line, line
    listed = kpi(path, "workers")
    assert listed.returncode == 1
    assert listed.stderr.strip().splitlines() == [line]
    assert SECRET not in stderr + listed.stdout + listed.stderr


@pytest.mark.parametrize(
    ("key", "url"),
    [
        ("broker", f"amqp://kpi:pw#{SECRET}@127.0.0.1:5672//"),
        ("broker", f"redis://:pw/{SECRET}@127.0.0.1:6379/0"),
        ("backend", f"redis://:pw?{SECRET}@127.0.0.1:6379/0"),
    ],
    ids=["broker-hash", "broker-slash", "backend-question-mark"],
)
def test_a_broker_url_with_a_raw_hash_slash_or_question_mark_in_its_password_is_one_line(
    key: str, url: str, tmp_path: Path, pg_url: str
) -> None:
    """A password written as is with `#`, `/` or `?` ends the URL's host part there: every
    command died with a traceback about the port (its text shows the password's first
    characters). Now `kpi worker` and `kpi workers` give one config error, and `kpi run`
    fails each source with it, its run finished (not left running for the next run to mark
    interrupted)."""
    broker = url if key == "broker" else "amqp://guest:guest@127.0.0.1:5672//"
    backend = f", backend: '{url}'" if key == "backend" else ""
    path = tmp_path / "kpi.yaml"
    path.write_text(
        f"store: '{pg_url}'\n"
        f"executor: {{type: celery, broker: '{broker}', wait: 5{backend}}}\n"
        "sources:\n  - {name: a, type: html, url: 'http://127.0.0.1:9/', metrics: {n: {css: p}}}\n"
    )
    line = (
        f"executor.{key}: the URL cannot be read: write its port as a number, and a `#`, `/` "
        "or `?` in its user or password percent-encoded (%23, %2F, %3F)"
    )
    seen = ""
    for command in ("worker", "workers"):
        out = kpi(path, command)
        assert out.returncode == 2, out.stderr[-3000:]
        assert out.stderr.strip().splitlines() == [f"config error: {line}"]
        seen += out.stdout + out.stderr
    for _ in range(2):
        out = kpi(path, "run", "--no-deliver", "--format", "json")
        assert out.returncode == 1, out.stderr[-3000:]
        assert json.loads(out.stdout)["errors"] == [{"where": "a", "message": line}]
        seen += out.stdout + out.stderr
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        statuses = conn.execute(sa.text("SELECT status FROM runs ORDER BY id")).scalars().all()
    engine.dispose()
    assert statuses == ["failed", "failed"]
    assert SECRET not in seen


def test_sigterm_to_a_coordinator_revokes_its_queued_batches(
    tmp_path: Path, pages: tuple[str, Pages], pg_url: str, cluster: Cluster
) -> None:
    """`kpi run` is stopped with SIGTERM (systemd, `kill`) while one batch is collected and
    another still queued: it revokes its batches before it ends, so the worker skips the
    queued one instead of collecting it for nobody (before, the process died at once and
    the worker collected every batch left behind). It still ends as SIGTERM does, and the
    next run marks its run interrupted."""
    broker = require_broker_url("rabbitmq")
    url, site = pages
    uid, queue, _, config = one_queue(
        tmp_path / "cfg",
        prefix="term",
        sources=2,
        broker=broker,
        store=pg_url,
        url=url,
        batch_size=1,
    )
    worker = cluster.start(config, f"t@{uid}", [queue], env_for("t"))
    site.hold.clear()  # the worker holds the first batch; the second waits in the queue
    with coordinator_in_background(config) as run:
        wait_for_a_hit(site)
        assert [path for path, _ in site.hits] == ["/n/1"]
        run.send_signal(signal.SIGTERM)
        run.communicate(timeout=30)
    assert run.returncode == -signal.SIGTERM
    site.hold.set()
    deadline = time.monotonic() + 30
    while "Discarding revoked task" not in worker.log.read_text(errors="replace"):
        assert time.monotonic() < deadline, worker.log.read_text(errors="replace")[-3000:]
        time.sleep(0.1)
    assert site.tags(2) == []  # the queued batch was never collected
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT status FROM runs")).scalars().all() == ["running"]
    engine.dispose()
    assert stored(pg_url) == {}


def test_a_redis_broker_that_stops_answering_mid_run_does_not_hang_the_run(
    tmp_path: Path, pages: tuple[str, Pages], pg_url: str
) -> None:
    """A Redis of the test's own is frozen (SIGSTOP: it takes connections, answers nothing)
    while the coordinator waits: the queue is given up after `wait` and the revocation's
    read times out, so the run ends (before, it blocked until Redis answered again). Frozen
    while the batch is still being sent, the send's read times out instead (about a minute
    of retries): one of the two, never a hang."""
    with _private_redis(tmp_path) as redis:
        url, site = pages
        _, queue, plan, config = one_queue(
            tmp_path / "cfg",
            prefix="frozen",
            sources=2,
            broker=redis.url,
            store=pg_url,
            url=url,
            wait=3,
        )
        with coordinator_in_background(config, "--format", "json") as run:
            engine = sa.create_engine(pg_url)
            statuses = run_statuses_once_running(engine)  # its batch is sent: no worker
            engine.dispose()
            assert statuses == ["running"]
            redis.proc.send_signal(signal.SIGSTOP)
            try:
                stdout, stderr = run.communicate(timeout=90)
            finally:
                redis.proc.send_signal(signal.SIGCONT)
        assert run.returncode == 1, stderr
        # frozen after the batch went out: the queue is given up; frozen while it was still
        # being sent (the run row is written first): the send's read times out. Either way
        # the run ends and each source says why.
        waited = f"no worker answered for queue `{queue}` within 3 s"
        unsent = f"cannot send to the broker {redis.url}: Timeout reading from socket"
        errors = json.loads(stdout)["errors"]
        assert [error["where"] for error in errors] == [f"s{i}" for i, _ in plan]
        assert {error["message"] for error in errors} in ({waited}, {unsent}), errors
        assert site.hits == []


def _queued(broker: str, queue: str) -> int:
    """How many messages `queue` holds on `broker` (0 when it is not there yet)."""
    from kombu import Connection

    with Connection(broker, connect_timeout=5) as conn:
        channel = conn.channel()
        try:
            return int(channel.queue_declare(queue, passive=True).message_count)
        except conn.channel_errors:
            return 0
        finally:
            with contextlib.suppress(Exception):
                channel.close()


def test_a_rabbitmq_that_stops_answering_mid_run_does_not_hang_the_run(
    tmp_path: Path, pages: tuple[str, Pages], pg_url: str
) -> None:
    """RabbitMQ stops answering (frozen behind a proxy: connections stay open, nothing
    passes either way) once the coordinator has sent its batch: the queue is given up after
    `wait`, and revoking the batch and closing the connections fail after the read timeout,
    so the run ends (before, the close of the revocation's channel waited for RabbitMQ's
    answer for ever; so did a batch's queue declaration when it froze during the send)."""
    from urllib.parse import urlsplit

    from tests.fakes.tcp_proxy import TcpProxy

    real = require_broker_url("rabbitmq")
    parts = urlsplit(real)
    with TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5672) as proxy:
        broker = parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{proxy.port}")
        url, site = pages
        _, queue, plan, config = one_queue(
            tmp_path / "cfg",
            prefix="frozenmq",
            sources=8,
            broker=broker.geturl(),
            store=pg_url,
            url=url,
            wait=3,
            batch_size=1,  # eight batches to revoke: in one message, not one wait each
        )
        _QUEUES.append((real, queue))  # deleted through the broker itself, not the proxy
        try:
            with coordinator_in_background(config, "--format", "json") as run:
                deadline = time.monotonic() + 60
                while _queued(real, queue) < 8:  # the batches are sent: no worker takes them
                    assert run.poll() is None and time.monotonic() < deadline, run.stderr
                    time.sleep(0.05)
                proxy.freeze()
                stdout, stderr = run.communicate(timeout=100)
        finally:
            proxy.thaw()
    assert run.returncode == 1, stderr
    # frozen once the coordinator listens for answers: the queue is given up; frozen before
    # it opened that connection (it does once the batches are out): opening it times out
    waited = f"no worker answered for queue `{queue}` within 3 s"
    shown = f"{parts.scheme}://{parts.username}:***@127.0.0.1:{proxy.port}{parts.path}"
    unread = f"cannot read the answers from the broker {shown}: timed out"
    errors = json.loads(stdout)["errors"]
    assert [error["where"] for error in errors] == [f"s{i}" for i, _ in plan]
    assert {error["message"] for error in errors} in ({waited}, {unread}), errors
    assert site.hits == []
