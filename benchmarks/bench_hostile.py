"""Hostile sources benchmark (issue 12): each hostile source beside two healthy ones.

Every case is one `kpi run` child process against a hostile local server (or program):
an endless body, a slow endless body, a 1 GB body (with and without Content-Length), a
gzip bomb (2 MB that inflate to 2 GiB), `yes` as a command, a command that leaves a
`sleep 300` behind, and `regex: '(a+)+b'` on a 32-character page. Reported per case: the
peak RSS and wall time of the `kpi run` process, whether the two healthy sources were
stored and whether the hostile one failed with its own error.

Targets: no case above 300 MB RSS or its source's time budget (timeout × attempts) + 2 s,
healthy sources always stored, nothing left running.

Usage: ``python benchmarks/bench_hostile.py [--timeout 10]``
(``--serve`` runs the hostile server alone and prints its port as JSON.)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from benchlib import KPI, PYTHON, Check, Report, measure, print_report, serve_app, server_process

RSS_TARGET_MB = 300
SLACK_S = 2.0
MiB = 1024 * 1024
CHUNK = b"<p>" + b"x" * (64 * 1024 - 7) + b"</p>"


# the hostile server (its own process: its memory is not the client's) --------------------


def _gzip_bomb(size: int) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(MiB)
    return b"".join([*(packer.compress(block) for _ in range(size // MiB)), packer.flush()])


def build_app() -> Any:
    from aiohttp import web

    bomb = _gzip_bomb(2048 * MiB)
    app = web.Application()

    async def healthy(request: web.Request) -> web.Response:
        return web.json_response({"value": 7})

    async def page(request: web.Request) -> web.Response:
        return web.Response(text="<p id=n>1,234 stars</p>", content_type="text/html")

    async def stream(request: web.Request, chunks: int, length: int | None, pause: float) -> Any:
        response = web.StreamResponse(headers={"Content-Type": "text/html"})
        if length is not None:
            response.content_length = length
        await response.prepare(request)
        for _ in range(chunks):  # bounded; the client hangs up long before
            try:
                await response.write(CHUNK if pause == 0 else b" ")
            except (ConnectionError, RuntimeError):
                break
            if pause:
                await asyncio.sleep(pause)
        return response

    async def endless(request: web.Request) -> Any:
        return await stream(request, 64 * 1024, None, 0)  # 4 GiB at most

    async def gigabyte(request: web.Request) -> Any:
        return await stream(request, 16 * 1024, None, 0)  # 1 GiB, chunked

    async def gigabyte_declared(request: web.Request) -> Any:
        return await stream(request, 16 * 1024, 1024 * MiB, 0)

    async def trickle(request: web.Request) -> Any:
        return await stream(request, 3000, None, 0.1)  # 5 minutes at most

    async def gzip_bomb(request: web.Request) -> web.Response:
        return web.Response(
            body=bomb, headers={"Content-Type": "text/html", "Content-Encoding": "gzip"}
        )

    async def a_run(request: web.Request) -> web.Response:
        return web.Response(text="<p id=n>" + "a" * 32 + "</p>", content_type="text/html")

    for path, handler in [
        ("/healthy", healthy),
        ("/page", page),
        ("/endless", endless),
        ("/gigabyte", gigabyte),
        ("/gigabyte-declared", gigabyte_declared),
        ("/trickle", trickle),
        ("/bomb", gzip_bomb),
        ("/a-run", a_run),
    ]:
        app.router.add_get(path, handler)
    return app


async def serve() -> None:
    await serve_app(build_app())


@contextmanager
def hostile_server() -> Iterator[str]:
    with server_process([PYTHON, __file__, "--serve"], "hostile server") as info:
        yield f"http://127.0.0.1:{info['port']}"


# the cases ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    source: dict[str, Any]


def cases(url: str, pidfile: Path) -> list[Case]:
    def html(path: str, **metric: Any) -> dict[str, Any]:
        return {"type": "html", "url": f"{url}{path}", "metrics": {"n": {"css": "p", **metric}}}

    return [
        Case("endless body", html("/endless")),
        Case("slow endless body", html("/trickle")),
        Case("1 GB body, chunked", html("/gigabyte")),
        Case("1 GB body, Content-Length", html("/gigabyte-declared")),
        Case("gzip bomb (2 MB → 2 GiB)", html("/bomb")),
        Case("command: yes", {"type": "command", "command": ["yes"]}),
        Case(
            "command: sleep 300 grandchild",
            {
                "type": "command",
                "command": ["sh", "-c", f"sleep 300 & echo $! > {pidfile}; echo 1"],
            },
        ),
        Case("regex (a+)+b on 32 a's", html("/a-run", regex="(a+)+b")),
    ]


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = next(line for line in status.splitlines() if line.startswith("State:"))
    return "Z" not in state.split()[1]


def run_case(case: Case, url: str, timeout: float, folder: Path) -> dict[str, Any]:
    config = {
        "store": f"sqlite:///{folder / 'kpi.db'}",
        "defaults": {"timeout": timeout, "retries": 0},
        "sources": [
            {"name": "hostile", **case.source},
            {
                "name": "api",
                "type": "http_json",
                "url": f"{url}/healthy",
                "metrics": {"v": "value"},
            },
            {"name": "site", "type": "html", "url": f"{url}/page", "metrics": {"stars": "#n"}},
        ],
    }
    (folder / "kpi.yaml").write_text(json.dumps(config))
    run = measure([KPI, "run", "--format", "json", "--no-deliver"], cwd=folder)
    try:
        doc = json.loads(run.stdout)
    except json.JSONDecodeError:
        doc = {}
    values = {row["kpi"]: row["value"] for row in doc.get("values", [])}
    errors = [e for e in doc.get("errors", []) if e["where"].startswith("hostile")]
    run_s = float("inf")
    if doc:
        run_s = (
            datetime.fromisoformat(doc["finished_at"]) - datetime.fromisoformat(doc["started_at"])
        ).total_seconds()
    return {
        "rss_mb": run.max_rss_mb,
        "wall_s": run.wall_s,
        "run_s": run_s,
        "healthy": values.get("api.v") == 7 and values.get("site.stars") == 1234,
        "hostile": values.get("hostile.value")
        if "hostile.value" in values
        else (errors[0]["message"] if errors else "?"),
        "traceback": "Traceback" in run.stderr,
    }


def run_benchmark(timeout: float = 10.0) -> Report:
    checks: list[Check] = []
    notes = [
        f"Each case: one `kpi run` with `defaults: {{timeout: {timeout:g}, retries: 0}}` and the "
        "default `max_bytes` (20 MiB); the time budget is the timeout (one attempt). The time "
        "is the run's own (its `started_at` to `finished_at`: collecting every source, "
        "storing), in brackets the process's wall time with interpreter start-up; peak RSS "
        "of the `kpi run` process from `os.wait4`.",
    ]
    budget = timeout + SLACK_S
    with tempfile.TemporaryDirectory() as tmp, hostile_server() as url:
        pidfile = Path(tmp) / "sleep.pid"
        for case in cases(url, pidfile):
            folder = Path(tmp) / case.name.replace(" ", "_").replace("/", "_")
            folder.mkdir()
            got = run_case(case, url, timeout, folder)
            left = ""
            if "grandchild" in case.name and pidfile.exists():
                pid = int(pidfile.read_text())
                if _alive(pid):
                    left = f"; sleep {pid} LEFT RUNNING"
                    os.kill(pid, signal.SIGKILL)
            ok = (
                got["rss_mb"] <= RSS_TARGET_MB
                and got["run_s"] <= budget
                and got["healthy"]
                and not got["traceback"]
                and not left
            )
            checks.append(
                Check(
                    case.name,
                    f"{got['rss_mb']:.0f} MB, {got['run_s']:.2f} s ({got['wall_s']:.1f} s)",
                    f"≤{RSS_TARGET_MB} MB, ≤{budget:g} s",
                    ok,
                )
            )
            healthy = "healthy stored" if got["healthy"] else "HEALTHY LOST"
            notes.append(f"{case.name}: {healthy}; hostile → {got['hostile']}{left}")
    return Report(
        "Hostile sources",
        f"python benchmarks/bench_hostile.py --timeout {timeout:g}",
        checks,
        notes,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=10.0, help="each source's timeout (s)")
    parser.add_argument("--serve", action="store_true", help="only run the hostile server")
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve())
        return 0
    report = run_benchmark(args.timeout)
    print_report(report, bullet="- ")
    return 0 if all(c.passed for c in report.checks) else 1


if __name__ == "__main__":
    sys.exit(main())
