"""Shared helpers for the benchmark scripts: process measurement and the page server.

Timing uses only the standard library: ``time.perf_counter`` for wall time and
``os.wait4`` for the child's CPU time and peak resident memory.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
VENV_BIN = REPO / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable
KPI = str(VENV_BIN / "kpi")


@dataclass(frozen=True)
class ProcessRun:
    """One measured child process."""

    argv: tuple[str, ...]
    returncode: int
    wall_s: float
    cpu_s: float  # user + system
    max_rss_mb: float
    stdout: str
    stderr: str
    started_at: float = 0.0  # time.time() just before the child was started

    def json_line(self) -> dict[str, Any]:
        """The last stdout line that parses as a JSON object (the baselines' result)."""
        for line in reversed(self.stdout.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    value = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(value, dict):
                    return value
        raise ValueError(f"no JSON result in output of {' '.join(self.argv)}:\n{self.stdout}")


def child_env() -> dict[str, str]:
    """The environment for measured children: ours, but with bytecode caching allowed.

    An installed package has its .pyc files; a sandbox that sets PYTHONDONTWRITEBYTECODE
    would otherwise make every run of the editable kpi_collector recompile its sources.
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def measure(
    argv: Sequence[str], *, env: dict[str, str] | None = None, cwd: str | Path | None = None
) -> ProcessRun:
    """Run ``argv`` to completion and measure wall time, CPU time and peak RSS."""
    env = child_env() if env is None else env
    out_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"kpi-bench-{os.getpid()}.out"
    err_path = out_path.with_suffix(".err")
    # Output goes to files, not pipes, so reading it costs the child nothing.
    with out_path.open("w+") as out, err_path.open("w+") as err:
        started_at = time.time()
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, env=env, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    out_path.unlink(missing_ok=True)
    err_path.unlink(missing_ok=True)
    return ProcessRun(
        argv=tuple(argv),
        returncode=proc.returncode,
        wall_s=wall,
        cpu_s=usage.ru_utime + usage.ru_stime,
        max_rss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
        stdout=stdout,
        stderr=stderr,
        started_at=started_at,
    )


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


@dataclass
class Measured:
    """One variant under test (a client, a set-up) and the runs measured for it; its wall
    time, CPU time and peak RSS are the medians over those runs."""

    name: str
    runs: list[ProcessRun] = field(default_factory=list)

    def wall(self) -> float:
        """Median wall time, in seconds."""
        return median([r.wall_s for r in self.runs])

    def cpu(self) -> float:
        """Median CPU time (user + sys), in seconds."""
        return median([r.cpu_s for r in self.runs])

    def rss(self) -> float:
        """Median peak resident memory, in MB."""
        return median([r.max_rss_mb for r in self.runs])


def measure_kpi_run(
    config: Path,
    *options: str,
    cache_home: Path | None = None,
    config_cache: bool = True,
    kpi: str = KPI,
) -> ProcessRun:
    """One measured ``kpi -c CONFIG run --no-deliver OPTIONS``, in the config's folder.

    With ``cache_home``, ``XDG_CACHE_HOME`` points there, so a run finds the config cache its
    previous run wrote, as a scheduled run does; ``config_cache=False`` turns the cache off
    (``KPI_CONFIG_CACHE=0``). ``kpi`` is the executable (another checkout's, to compare).
    Raises RuntimeError, with the end of its stderr, when the run exits non-zero.
    """
    env = child_env()
    if cache_home is not None:
        env["XDG_CACHE_HOME"] = str(cache_home)
    if not config_cache:
        env["KPI_CONFIG_CACHE"] = "0"
    argv = [kpi, "-c", str(config), "run", "--no-deliver", *options]
    run = measure(argv, cwd=config.parent, env=env)
    if run.returncode != 0:
        raise RuntimeError(f"kpi run exited {run.returncode}:\n{run.stderr[-2000:]}")
    return run


@dataclass(frozen=True)
class PageServer:
    base_url: str
    pages: int
    expected_total: int

    def url(self, i: int) -> str:
        return f"{self.base_url}/page/{i}"


def write_html_config(
    folder: Path,
    server: PageServer,
    sources: int,
    *,
    store: str,
    concurrency: int,
    timeout: float | None = None,
    executor: str | None = None,
    name: str = "p{:05d}",
    queue: str | None = None,
) -> Path:
    """Write ``folder/kpi.yaml`` (making the folder) of ``sources`` html sources, each
    counting the ``a.anthrazit`` links of its page of ``server`` as its metric ``posts``.

    Source i (from 1) is named ``name.format(i)`` and reads page ((i - 1) mod server.pages)
    + 1, so sources beyond the server's pages cycle through them; ``queue`` puts every source
    on that celery queue. Settings: the ``store`` URL, ``concurrency`` (per host too),
    ``timeout`` in seconds (kpi's default when None), and ``executor``, a YAML flow mapping
    written as given.
    """
    folder.mkdir(parents=True, exist_ok=True)
    defaults = f"concurrency: {concurrency}, per_host: {concurrency}"
    if timeout is not None:
        defaults += f", timeout: {timeout:g}"
    lines = [f"store: '{store}'", f"defaults: {{{defaults}}}"]
    if executor is not None:
        lines.append(f"executor: {executor}")
    lines.append("sources:")
    on_queue = f" queue: {queue}," if queue is not None else ""
    lines += [
        f"  - {{name: {name.format(i)}, type: html, url: {server.url((i - 1) % server.pages + 1)},"
        f'{on_queue} metrics: {{posts: {{css: "a.anthrazit", count: true}}}}}}'
        for i in range(1, sources + 1)
    ]
    path = folder / "kpi.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


@contextmanager
def server_process(argv: Sequence[str], what: str) -> Iterator[dict[str, Any]]:
    """Start a server script as a subprocess; yield the JSON line it prints once it listens
    (its ``port`` and whatever else it reports); stop it (SIGTERM, then SIGKILL) on exit."""
    proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, text=True, cwd=BENCH_DIR)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{what} exited with {proc.wait()} before it was ready")
        yield json.loads(line)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def serve_app(app: Any, *, port: int = 0, backlog: int = 128, **info: Any) -> None:
    """Serve an aiohttp ``app`` on loopback ``port`` (0: a free one) with an accept queue of
    ``backlog`` connections, print ``{"port": N, **info}`` as one JSON line once it
    listens, and run until SIGINT or SIGTERM (the other side of ``server_process``)."""
    import asyncio
    import signal
    import socket

    from aiohttp import web

    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(backlog)
    await web.SockSite(runner, sock, backlog=backlog).start()
    print(json.dumps({"port": sock.getsockname()[1], **info}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


@contextmanager
def page_server(pages: int, delay: float = 0.1) -> Iterator[PageServer]:
    """Start ``htmlserver.py`` as a subprocess on a free loopback port."""
    argv = [PYTHON, str(BENCH_DIR / "htmlserver.py"), "--pages", str(pages)]
    argv += ["--delay", str(delay)]
    with server_process(argv, "page server") as info:
        yield PageServer(
            base_url=f"http://127.0.0.1:{info['port']}",
            pages=info["pages"],
            expected_total=info["expected_total"],
        )


def machine_info() -> dict[str, str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def fmt_s(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


@dataclass(frozen=True)
class Check:
    """One line of RESULTS.md: a measured value against its target."""

    what: str
    measured: str
    target: str
    passed: bool | None  # None: informational, no target

    @property
    def verdict(self) -> str:
        return {True: "pass", False: "FAIL", None: "info"}[self.passed]


def print_checks(title: str, checks: Sequence[Check]) -> None:
    print(f"\n{title}")
    width = max(len(c.what) for c in checks)
    for c in checks:
        target = c.target or "-"
        print(f"  {c.what:<{width}}  {c.measured:>16}  target {target:<10} {c.verdict}")


@dataclass
class Report:
    """What one benchmark hands to run_all: its checks and any notes worth keeping."""

    title: str
    command: str
    checks: list[Check]
    notes: list[str]

    @property
    def failed(self) -> bool:
        """Whether a check missed its target (informational checks never fail)."""
        return any(c.passed is False for c in self.checks)


def print_report(report: Report, *, bullet: str = "") -> None:
    """Print a benchmark's checks as a table (``print_checks``), then its notes, one a line
    after ``bullet``."""
    print_checks(report.title, report.checks)
    for note in report.notes:
        print(f"  {bullet}{note}")
