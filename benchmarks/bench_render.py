"""`render: true` and `kpi probe` benchmark (issue 14).

1. 20 single-page-app pages, each writing its number 300 ms after load (from a JSON call):
   `kpi run` (a child process: config, store, 20 `render: true` sources with `wait_for`,
   `render_concurrency: 4`) against the floor, `floor_playwright.py` (a plain Playwright
   loop over the same pages, same Chromium, same concurrency, also a child process).
   Target: kpi run ≤ 1.2 × the floor. Chromium's start-up (launch) is reported apart.
2. `kpi probe` on an 80 KB page: the time spent finding numbers, selectors and checking
   each through the extractor, beyond the fetch (`ProbeResult.probe_seconds`), on the
   fan-in benchmark's 80 KB page and on an 80 KB page packed with ~2,500 numbers (tables
   and cards: the worst case). Target: ≤ 0.3 s on the 80 KB page.

Medians over the runs. Usage: ``python benchmarks/bench_render.py [--runs 3]``
(``--serve`` runs the page server alone and prints its port as JSON.)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchlib import (
    KPI,
    PYTHON,
    Check,
    Report,
    fmt_s,
    measure,
    median,
    print_report,
    serve_app,
    server_process,
)

PAGES = 20
CONCURRENCY = 4
DELAY_MS = 300
RATIO_TARGET = 1.2
PROBE_TARGET_S = 0.3


def value(n: int) -> int:
    return 10_000 + 137 * n


_SPA = """<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Stats %(n)d</title>
</head><body><div id="app"></div><script>
window.addEventListener('load', () => setTimeout(async () => {
  const data = await (await fetch('/api/%(n)d')).json();
  const card = document.createElement('div');
  card.innerHTML = '<h3>Downloads</h3><span id="downloads"></span>';
  card.querySelector('#downloads').textContent = data.downloads.toLocaleString('en-US');
  document.getElementById('app').appendChild(card);
}, %(delay)d));
</script></body></html>"""


def dense_page(target: int = 80_000, seed: int = 1) -> str:
    """An 80 KB analytics page: tables of episodes, cards, prose; ~2,500 numbers."""
    rng = random.Random(seed)
    parts = [
        '<!DOCTYPE html><html lang="en"><head><title>Analytics</title></head><body>'
        '<header><nav><a href="/">Home</a></nav></header><main>'
    ]
    size, i = len(parts[0]), 0
    while size < target:
        match i % 3:
            case 0:
                rows = "".join(
                    f"<tr><td>Episode {i}-{r}</td><td>{rng.randint(1000, 99999):,}</td>"
                    f"<td>{rng.randint(1, 999) / 10}%</td><td>${rng.randint(1, 99999) / 100:,.2f}</td></tr>"
                    for r in range(10)
                )
                part = (
                    f'<table class="stats css-{i}ab12"><thead><tr><th>Episode</th><th>Downloads'
                    f"</th><th>Completion</th><th>Revenue</th></tr></thead><tbody>{rows}</tbody></table>"
                )
            case 1:
                part = "".join(
                    f'<div class="card sc-x{i}Yz"><h3>Metric {i}.{c}</h3><span class="value">'
                    f"{rng.randint(1, 999)}.{rng.randint(1, 9)}k</span><p>Up {rng.randint(1, 99)}% "
                    f"from {rng.randint(100, 9999):,} last week</p></div>"
                    for c in range(4)
                )
            case _:
                words = ["growth", "the", "community", "podcast", "listeners", "release"]
                part = "<p>" + " ".join(rng.choice(words) for _ in range(60)) + "</p>"
        parts.append(part)
        size += len(part)
        i += 1
    parts.append("</main></body></html>")
    return "".join(parts)


# the page server (its own process) ----------------------------------------------------------


async def serve() -> None:
    from aiohttp import web
    from htmlserver import render_page

    app = web.Application()
    dense = dense_page()
    plain = render_page(3)

    async def spa(request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        return web.Response(text=_SPA % {"n": n, "delay": DELAY_MS}, content_type="text/html")

    async def api(request: web.Request) -> web.Response:
        return web.json_response({"downloads": value(int(request.match_info["n"]))})

    async def page(request: web.Request) -> web.Response:
        if request.match_info["kind"] == "dense":
            return web.Response(text=dense, content_type="text/html")
        return web.Response(body=plain, content_type="text/html")

    app.router.add_get("/spa/{n:\\d+}", spa)
    app.router.add_get("/api/{n:\\d+}", api)
    app.router.add_get("/page/{kind:dense|plain}", page)
    await serve_app(app)


@contextmanager
def page_server() -> Iterator[str]:
    with server_process([PYTHON, __file__, "--serve"], "page server") as info:
        yield f"http://127.0.0.1:{info['port']}"


# the measures -------------------------------------------------------------------------------


def write_config(folder: Path, base: str) -> None:
    lines = [
        f"defaults: {{timeout: 20, retries: 0, render_concurrency: {CONCURRENCY}}}",
        "sources:",
    ]
    for n in range(PAGES):
        lines.append(
            f'  - {{name: spa{n}, type: html, url: "{base}/spa/{n}", render: true,'
            ' wait_for: "#downloads", metrics: {downloads: "#downloads"}}'
        )
    (folder / "kpi.yaml").write_text("\n".join(lines) + "\n")


def kpi_run(folder: Path) -> float:
    for leftover in ("kpi.db", "kpi.db-wal", "kpi.db-shm"):
        (folder / leftover).unlink(missing_ok=True)
    run = measure([KPI, "run", "--no-deliver"], cwd=folder, env=_env())
    if run.returncode != 0:
        raise RuntimeError(
            f"kpi run exited {run.returncode}:\n{run.stdout[-2000:]}{run.stderr[-2000:]}"
        )
    with sqlite3.connect(folder / "kpi.db") as db:
        stored = dict(db.execute("SELECT kpi, value FROM observations").fetchall())
    expected = {f"spa{n}.downloads": float(value(n)) for n in range(PAGES)}
    if stored != expected:
        raise RuntimeError(f"kpi run stored {stored}, expected {expected}")
    return run.wall_s


def floor_run(base: str) -> tuple[float, float]:
    urls = [f"{base}/spa/{n}" for n in range(PAGES)]
    argv = [PYTHON, str(Path(__file__).with_name("floor_playwright.py"))]
    run = measure([*argv, "--concurrency", str(CONCURRENCY), *urls], env=_env())
    if run.returncode != 0:
        raise RuntimeError(f"floor exited {run.returncode}:\n{run.stderr[-2000:]}")
    result = run.json_line()
    if result["values"] != [f"{value(n):,}" for n in range(PAGES)]:
        raise RuntimeError(f"floor read {result['values']}")
    return run.wall_s, float(result["launch_s"])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KPI_")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def probe_seconds(base: str, kind: str, runs: int) -> tuple[float, float, int]:
    """Median seconds beyond the fetch, median fetch seconds, and the numbers listed."""
    from kpi_collector.run.probe import probe

    found, fetches, counts = [], [], []
    for _ in range(runs + 1):
        result = probe(f"{base}/page/{kind}")
        found.append(result.probe_seconds)
        fetches.append(result.fetch_seconds)
        counts.append(len(result.findings))
    return median(found[1:]), median(fetches[1:]), counts[-1]


def run_benchmark(runs: int) -> Report:
    with page_server() as base, tempfile.TemporaryDirectory(prefix="kpi-bench-render-") as tmp:
        folder = Path(tmp)
        write_config(folder, base)
        kpi_run(folder)  # warm-up: bytecode, Chromium's disk cache of its own files
        floor_run(base)
        kpi_walls, floor_walls, launches = [], [], []
        for _ in range(runs):
            kpi_walls.append(kpi_run(folder))
            wall, launch = floor_run(base)
            floor_walls.append(wall)
            launches.append(launch)
        plain_s, plain_fetch, plain_n = probe_seconds(base, "plain", runs)
        dense_s, dense_fetch, dense_n = probe_seconds(base, "dense", runs)
    kpi_s, floor_s, launch_s = median(kpi_walls), median(floor_walls), median(launches)
    ratio = kpi_s / floor_s
    beyond = (kpi_s - launch_s) / (floor_s - launch_s)
    checks = [
        Check(
            f"kpi run, {PAGES} SPA pages, render_concurrency {CONCURRENCY}", fmt_s(kpi_s), "", None
        ),
        Check("plain Playwright loop (the floor)", fmt_s(floor_s), "", None),
        Check("kpi run / floor", f"{ratio:.2f}x", f"<= {RATIO_TARGET}x", ratio <= RATIO_TARGET),
        Check("Chromium start-up (launch), apart", fmt_s(launch_s), "", None),
        Check("kpi run / floor, launch taken off both", f"{beyond:.2f}x", "", None),
        Check(
            f"kpi probe, 80 KB page ({plain_n} numbers), beyond the fetch",
            fmt_s(plain_s),
            f"<= {fmt_s(PROBE_TARGET_S)}",
            plain_s <= PROBE_TARGET_S,
        ),
        Check(
            f"kpi probe, 80 KB page packed with {dense_n} numbers, beyond the fetch",
            fmt_s(dense_s),
            "",
            None,
        ),
    ]
    notes = [
        f"medians of {runs} runs after one warm-up; kpi run and the floor alternate",
        "both are whole child processes: Python start-up, Playwright's driver, Chromium's "
        "launch, 20 pages in a context each, closing; kpi run also loads the config and "
        "writes the store",
        f"each page writes its number {DELAY_MS} ms after `load`, from a JSON call; the "
        "values read are checked against the server's",
        f"probe fetch (median): {fmt_s(plain_fetch)} for the 80 KB page, {fmt_s(dense_fetch)} "
        "for the packed one; probe time is finding, selecting and checking each number "
        "through the real extractor",
    ]
    return Report(
        "Rendering and probe", f"python benchmarks/bench_render.py --runs {runs}", checks, notes
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--serve", action="store_true", help="only run the page server")
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve())
        return 0
    report = run_benchmark(args.runs)
    print_report(report, bullet="- ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
