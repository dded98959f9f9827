"""Scale-out benchmark: `kpi run` on N html sources, the local executor against the celery
executor with 1, 2 and 4 `kpi worker` processes (RabbitMQ broker, `rpc://` results), both
with a PostgreSQL store.

The page server answers each request after 100 ms with an ~80 KB page (`htmlserver.py`);
source i fetches page ((i - 1) mod P) + 1, so N sources make N requests while the server
keeps P pages in memory. Every worker collects 16 sources at once (`defaults.concurrency`,
shared out among its 4 pool processes, each with a batch of 50), and the local run too; `--concurrency 64` as well. Measured
per run, for the coordinator process (`kpi run`): wall time, CPU time (user + sys), peak
RSS (`os.wait4`); for the workers: the CPU of their process groups (from /proc) during the
run. Every run must store N values whose sum is the pages' known link total.

Usage: ``python benchmarks/bench_scale.py [--sources 10000] [--runs 3] [--concurrency 16 64]``
Needs RabbitMQ on 127.0.0.1:5672 (guest/guest) and PostgreSQL on 127.0.0.1:5432 (db `test`).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import (
    KPI,
    Check,
    Measured,
    PageServer,
    ProcessRun,
    Report,
    child_env,
    measure_kpi_run,
    median,
    page_server,
    print_report,
    write_html_config,
)
from htmlserver import expected_links

BROKER = os.environ.get("KPI_BENCH_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
POSTGRES = os.environ.get("KPI_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PAGES = 1000  # distinct pages the server holds
SMALL = 20  # sources of the run that measures the coordinator's fixed cost
WORKER_COUNTS = (1, 2, 4)
POOL = 4  # processes per worker: they share its concurrency (16: 4 each), batches overlap

# targets of issue 15
ONE_WORKER_VS_LOCAL = 1.15  # wall, at most
TWO_VS_ONE_THROUGHPUT = 1.7  # at least
OVERHEAD_MS = 0.3  # coordinator CPU per source, at most
PEAK_MB = 200.0  # coordinator peak RSS, at most


def expected(sources: int) -> tuple[int, int]:
    """(values, their sum) a run of `sources` sources must store."""
    return sources, sum(expected_links((i - 1) % PAGES + 1) for i in range(1, sources + 1))


def write_config(
    folder: Path,
    server: PageServer,
    *,
    sources: int,
    concurrency: int,
    store: str,
    celery: bool,
    queue: str,
) -> Path:
    """A kpi.yaml of `sources` html sources on `queue`, run by the celery executor (with
    `celery`) or the local one."""
    executor = f"{{type: celery, broker: '{BROKER}', wait: 600, batch_size: 50}}"
    return write_html_config(
        folder,
        server,
        sources,
        store=store,
        concurrency=concurrency,
        timeout=60,
        executor=executor if celery else None,
        queue=queue,
    )


@contextmanager
def schema() -> Iterator[str]:
    import sqlalchemy as sa

    name = f"kpi_bench_{uuid.uuid4().hex[:8]}"
    engine = sa.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f"CREATE SCHEMA {name}"))
    try:
        yield POSTGRES + f"?options=-csearch_path%3D{name}"
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f"DROP SCHEMA {name} CASCADE"))
        engine.dispose()


def stored(store: str) -> tuple[int, int]:
    """(values, their sum) of the newest run."""
    import sqlalchemy as sa

    engine = sa.create_engine(store)
    with engine.connect() as conn:
        count, total = conn.execute(
            sa.text(
                "SELECT count(*), coalesce(sum(value), 0) FROM observations"
                " WHERE run_id = (SELECT max(id) FROM runs)"
            )
        ).one()
    engine.dispose()
    return int(count), round(total)


def group_cpu(pgids: list[int]) -> float:
    """CPU seconds (user + sys, with reaped children) of every process in these groups."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as file:
                stat = file.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) in pgids:  # field 5, pgrp
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / tick


def delete_queue(queue: str) -> None:
    """Delete the benchmark's queue and its exchange from the broker (it keeps them)."""
    from kombu import Connection

    with Connection(BROKER, connect_timeout=5) as conn:
        channel = conn.channel()
        channel.queue_delete(queue)
        channel.exchange_delete(queue)
        channel.close()


@dataclass
class Workers:
    config: Path
    folder: Path
    queue: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, count: int) -> None:
        logs = []
        for n in range(count):
            log = self.folder / f"worker{n}.log"
            logs.append(log)
            argv = [KPI, "-c", str(self.config), "worker", "--concurrency", str(POOL)]
            argv += ["--queues", self.queue, "--hostname", f"bench{n}@%h", "--loglevel", "WARNING"]
            with log.open("wb") as out:
                self.procs.append(
                    subprocess.Popen(
                        argv,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        env=child_env(),
                        cwd=self.config.parent,
                        start_new_session=True,
                    )
                )
        deadline = time.monotonic() + 120
        while True:
            up = subprocess.run(
                [KPI, "-c", str(self.config), "workers", "--format", "json", "--timeout", "2"],
                capture_output=True,
                text=True,
                env=child_env(),
            )
            import json

            names = {w["name"] for w in json.loads(up.stdout or "{}").get("workers", [])}
            if (
                sum(1 for n in range(count) if any(x.startswith(f"bench{n}@") for x in names))
                == count
            ):
                return
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                raise RuntimeError("workers did not start: " + logs[0].read_text()[-2000:])
            time.sleep(1)

    def pgids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)  # any pool child left behind
        self.procs.clear()


@dataclass
class Variant(Measured):
    """One set-up (local, or celery with N workers), its runs and its workers' CPU seconds
    per run."""

    worker_cpu: list[float] = field(default_factory=list)


def run_kpi(
    config: Path, store: str, sources: int, workers: Workers | None = None, *, only: int = 0
) -> tuple[ProcessRun, float]:
    """`kpi run` of `config` (of its first `only` sources when given), measured."""
    before = group_cpu(workers.pgids()) if workers else 0.0
    options: list[str] = []
    for i in range(1, only + 1):
        options += ["--only", f"p{i:05d}"]
    run = measure_kpi_run(config, *options)
    after = group_cpu(workers.pgids()) if workers else 0.0
    got = stored(store)
    if got != expected(only or sources):
        raise RuntimeError(f"stored {got}, expected {expected(only or sources)}")
    return run, after - before


def measure_concurrency(
    server: PageServer, tmp: Path, sources: int, runs: int, concurrency: int
) -> tuple[list[Check], list[str]]:
    queue = f"bench{uuid.uuid4().hex[:8]}"
    local, small = Variant("local"), Variant(f"celery, 1 worker, {SMALL} sources")
    celery = {n: Variant(f"celery, {n} worker{'s' if n > 1 else ''}") for n in WORKER_COUNTS}
    with schema() as store:
        args = {"concurrency": concurrency, "store": store, "queue": queue}
        local_cfg = write_config(
            tmp / f"local{concurrency}", server, sources=sources, celery=False, **args
        )
        celery_cfg = write_config(
            tmp / f"celery{concurrency}", server, sources=sources, celery=True, **args
        )
        run_kpi(local_cfg, store, sources)  # untimed warm-up: schema, caches
        for _ in range(runs):
            run, _ = run_kpi(local_cfg, store, sources)
            local.runs.append(run)
            print(
                f"c{concurrency} local: wall {run.wall_s:.2f} s cpu {run.cpu_s:.2f} s rss {run.max_rss_mb:.0f} MB",
                file=sys.stderr,
            )
        for count in WORKER_COUNTS:
            workers = Workers(celery_cfg, tmp, queue)
            try:
                workers.start(count)
                run_kpi(celery_cfg, store, sources, workers, only=SMALL)  # warm-up of the workers
                for _ in range(runs):
                    run, worker_cpu = run_kpi(celery_cfg, store, sources, workers)
                    celery[count].runs.append(run)
                    celery[count].worker_cpu.append(worker_cpu)
                    print(
                        f"c{concurrency} {count} workers: wall {run.wall_s:.2f} s cpu {run.cpu_s:.2f} s"
                        f" rss {run.max_rss_mb:.0f} MB workers' cpu {worker_cpu:.1f} s",
                        file=sys.stderr,
                    )
                    if count == 1:
                        run, _ = run_kpi(celery_cfg, store, sources, workers, only=SMALL)
                        small.runs.append(run)
            finally:
                workers.stop()
    delete_queue(queue)
    one, two = celery[1], celery[2]
    per_source = (one.cpu() - small.cpu()) / (sources - SMALL) * 1000
    whole = one.cpu() / sources * 1000
    c = f"c={concurrency}"
    checks = [
        Check(
            f"{c} local wall / coordinator CPU / peak RSS",
            f"{local.wall():.2f} s / {local.cpu():.2f} s / {local.rss():.0f} MB",
            "",
            None,
        ),
    ]
    for count, v in celery.items():
        checks.append(
            Check(
                f"{c} celery {count} worker(s): wall / coordinator CPU / peak RSS / workers' CPU",
                f"{v.wall():.2f} s / {v.cpu():.2f} s / {v.rss():.0f} MB / {median(v.worker_cpu):.1f} s",
                "",
                None,
            )
        )
    ratio = one.wall() / local.wall()
    speedup = one.wall() / two.wall()
    checks += [
        Check(
            f"{c} celery 1 worker wall / local wall",
            f"{ratio:.2f}x",
            f"<= {ONE_WORKER_VS_LOCAL}x",
            ratio <= ONE_WORKER_VS_LOCAL,
        ),
        Check(
            f"{c} throughput 2 workers / 1 worker",
            f"{speedup:.2f}x",
            f">= {TWO_VS_ONE_THROUGHPUT}x",
            speedup >= TWO_VS_ONE_THROUGHPUT,
        ),
        Check(
            f"{c} throughput 4 workers / 1 worker",
            f"{one.wall() / celery[4].wall():.2f}x",
            "",
            None,
        ),
        Check(
            f"{c} coordinator CPU per source beyond a {SMALL}-source run (dispatch + gather + store)",
            f"{per_source:.3f} ms",
            f"<= {OVERHEAD_MS} ms",
            per_source <= OVERHEAD_MS,
        ),
        Check(
            f"{c} coordinator CPU per source, whole process (start-up included)",
            f"{whole:.3f} ms",
            "",
            None,
        ),
        Check(
            f"{c} coordinator peak RSS (1 worker)",
            f"{one.rss():.0f} MB",
            f"<= {PEAK_MB:.0f} MB",
            one.rss() <= PEAK_MB,
        ),
    ]
    notes = [
        f"{c} {v.name}: wall {', '.join(f'{r.wall_s:.2f}' for r in v.runs)} s; coordinator CPU "
        f"{', '.join(f'{r.cpu_s:.2f}' for r in v.runs)} s; peak RSS "
        f"{', '.join(f'{r.max_rss_mb:.0f}' for r in v.runs)} MB"
        + (
            f"; workers' CPU {', '.join(f'{x:.1f}' for x in v.worker_cpu)} s"
            if v.worker_cpu
            else ""
        )
        for v in (local, *celery.values(), small)
    ]
    return checks, notes


def run_benchmark(sources: int, runs: int, concurrencies: list[int]) -> Report:
    checks: list[Check] = []
    notes: list[str] = []
    with page_server(PAGES) as server, tempfile.TemporaryDirectory(prefix="kpi-scale-") as tmp:
        for concurrency in concurrencies:
            got_checks, got_notes = measure_concurrency(
                server, Path(tmp), sources, runs, concurrency
            )
            checks += got_checks
            notes += got_notes
    notes.append(
        f"{os.cpu_count()} CPUs: the coordinator, every worker, RabbitMQ, PostgreSQL and the page "
        "server share them; beyond what 2 cores can parse, more workers add no throughput"
    )
    command = (
        f"python benchmarks/bench_scale.py --sources {sources} --runs {runs}"
        f" --concurrency {' '.join(map(str, concurrencies))}"
    )
    return Report(
        f"Scale-out: {sources} html sources, 100 ms latency, PostgreSQL store",
        command,
        checks,
        notes,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    args = parser.parse_args(argv)
    report = run_benchmark(args.sources, args.runs, args.concurrency)
    print_report(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
