"""Fan-in benchmark: `kpi run` on N html sources against the floor and Scrapy.

Starts the local page server (100 ms per response, or ``--latency``), writes a kpi.yaml with
one `html` source per page, then runs, alternating within each round, ``kpi run
--no-deliver`` (with its config cache, as a scheduled run finds it, and without), the
aiohttp + selectolax floor and Scrapy at the same concurrency, each as a child
process measured for wall time, CPU time (user + sys) and peak RSS. Every variant must
count the same total of ``a.anthrazit`` links; kpi's values are read back from its store.

Usage: ``python benchmarks/bench_fanin.py [--pages 1000] [--runs 3] [--concurrency 64]
[--latency 0.1]``
"""

from __future__ import annotations

import argparse
import json
import math
import sqlite3
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchlib import (
    BENCH_DIR,
    KPI,
    PYTHON,
    Check,
    Measured,
    PageServer,
    ProcessRun,
    Report,
    fmt_s,
    measure,
    measure_kpi_run,
    median,
    page_server,
    print_report,
    write_html_config,
)
from htmlserver import expected_total

KPI_WALL_VS_FLOOR = 1.1  # kpi wall / floor wall, at most (issue 16), with 100 ms latency
KPI_WALL_VS_FLOOR_CPU_BOUND = 1.2  # the same with 0 ms latency, where start-up weighs more
SCRAPY_VS_KPI = 2.0  # Scrapy wall / kpi wall, at least, with 100 ms latency
KPI_CPU_MS_PER_PAGE = 1.5  # at most
KPI_PEAK_MB = 150.0  # below
SMALL_PAGES = 20


@dataclass
class Variant(Measured):
    """One client under test, the runs measured for it and the link totals they counted."""

    totals: list[int] = field(default_factory=list)
    # from the server: seconds from the process start to its first request, and from its
    # first request to the last answer handed over
    to_first: list[float] = field(default_factory=list)
    fetching: list[float] = field(default_factory=list)


def write_config(
    directory: Path, server: PageServer, pages: int, concurrency: int, store: Path
) -> Path:
    """A kpi.yaml with one html source per page, writing to the SQLite file `store`."""
    return write_html_config(
        directory,
        server,
        pages,
        store=f"sqlite:///{store}",
        concurrency=concurrency,
        name="page{:04d}",
    )


def stored_total(config: Path, store: Path) -> tuple[int, int]:
    """(observations, sum of values) of the `pageNNNN.posts` KPIs of kpi's latest run."""
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as conn:
            count, total = conn.execute(
                "SELECT count(*), coalesce(sum(value), 0) FROM observations"
                " WHERE kpi LIKE 'page%.posts' AND run_id = (SELECT max(id) FROM runs)"
            ).fetchone()
        return int(count), round(total)
    except sqlite3.Error as exc:
        print(f"reading {store} directly failed ({exc}); asking `kpi history`", file=sys.stderr)
    # Today's value of each KPI is the latest run's (the default `agg: last`).
    out = subprocess.run(
        [KPI, "-c", str(config), "history", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    series: dict[str, list[dict[str, Any]]] = json.loads(out)["kpis"]
    values = [points[-1]["value"] for kpi, points in series.items() if kpi.endswith(".posts")]
    return len(values), round(sum(values))


def run_kpi(
    config: Path, store: Path, pages: int, *, config_cache: bool = True
) -> tuple[ProcessRun, int]:
    """`kpi run --no-deliver`; its config cache in the benchmark's folder (a scheduled run
    finds the cache its previous run wrote), or off (`KPI_CONFIG_CACHE=0`)."""
    run = measure_kpi_run(config, cache_home=store.parent / "cache", config_cache=config_cache)
    observations, total = stored_total(config, store)
    if observations != pages:
        raise RuntimeError(f"kpi stored {observations} of {pages} page counts")
    return run, total


def run_baseline(
    script: str, server: PageServer, pages: int, concurrency: int
) -> tuple[ProcessRun, int]:
    argv = [PYTHON, str(BENCH_DIR / script), server.base_url, str(pages), str(concurrency)]
    run = measure(argv)
    if run.returncode != 0:
        raise RuntimeError(f"{script} exited {run.returncode}:\n{run.stderr[-2000:]}")
    result = run.json_line()
    return run, int(result["total"])


def run_benchmark(
    pages: int, runs: int, concurrency: int, sample: int, latency: float = 0.1
) -> Report:
    expected = expected_total(pages)
    kpi, floor, scrapy = Variant("kpi run"), Variant("aiohttp+selectolax"), Variant("scrapy")
    # the same run without the config cache: what the first run of a changed config costs
    cold = Variant("kpi run, config cache off")
    # kpi on a few pages each round: its fixed cost (start-up, config, store), so that the
    # CPU each further page costs can be told apart from it.
    kpi_small = Variant(f"kpi run, {SMALL_PAGES} pages")
    with (
        page_server(pages, latency) as server,
        tempfile.TemporaryDirectory(prefix="kpi-bench-") as tmp,
    ):
        print(f"page server {server.base_url}: {pages} pages, {expected} links", file=sys.stderr)
        # One store for every run, as a scheduled `kpi run` finds it: the schema exists and
        # history accumulates. The warm-up run creates it.
        store = Path(tmp) / "kpi.db"
        configs = {
            n: write_config(Path(tmp) / f"pages{n}", server, n, concurrency, store)
            for n in (SMALL_PAGES, pages)
        }

        def timed(
            variant: Variant, run: Callable[[], tuple[ProcessRun, int]]
        ) -> tuple[Variant, tuple[ProcessRun, int], dict[str, Any]]:
            server_timeline(server)  # starts afresh
            measured = run()
            return variant, measured, server_timeline(server)

        def round_of(n: int) -> list[tuple[Variant, tuple[ProcessRun, int], dict[str, Any]]]:
            return [
                timed(kpi, lambda: run_kpi(configs[n], store, n)),
                timed(cold, lambda: run_kpi(configs[n], store, n, config_cache=False)),
                timed(
                    floor,
                    lambda: run_baseline("floor_aiohttp_selectolax.py", server, n, concurrency),
                ),
                timed(scrapy, lambda: run_baseline("baseline_scrapy.py", server, n, concurrency)),
            ]

        # Untimed warm-up: bytecode caches, page cache, and a first check of every variant.
        for variant, (_, total), _ in round_of(SMALL_PAGES):
            if total != expected_total(SMALL_PAGES):
                raise RuntimeError(f"warm-up: {variant.name} counted {total}")
        for round_ in range(1, runs + 1):
            measured = round_of(pages)
            measured.append(
                timed(kpi_small, lambda: run_kpi(configs[SMALL_PAGES], store, SMALL_PAGES))
            )
            for variant, (run, total), timeline in measured:
                variant.runs.append(run)
                variant.totals.append(total)
                if timeline["first"] is not None and timeline["last"] is not None:
                    variant.to_first.append(timeline["first"] - run.started_at)
                    variant.fetching.append(timeline["last"] - timeline["first"])
                print(
                    f"round {round_}: {variant.name:<20} wall {run.wall_s:6.2f} s"
                    f"  cpu {run.cpu_s:6.2f} s  rss {run.max_rss_mb:6.1f} MB  total {total}",
                    file=sys.stderr,
                )
        seed_run, seed_total = run_baseline_sampled(server, sample)

    seed = seed_run.json_line()
    per_page_ms = float(seed["per_page_ms"])
    counts_ok = all(t == expected for v in (kpi, cold, floor, scrapy) for t in v.totals)
    counts_ok = counts_ok and all(t == expected_total(SMALL_PAGES) for t in kpi_small.totals)
    counts_ok = counts_ok and seed_total == expected_total(sample)
    kpi_vs_floor = kpi.wall() / floor.wall()
    vs_floor = KPI_WALL_VS_FLOOR if latency else KPI_WALL_VS_FLOOR_CPU_BOUND
    scrapy_vs_kpi = scrapy.wall() / kpi.wall()
    cpu_ms = kpi.cpu() / pages * 1000
    marginal_cpu_ms = (kpi.cpu() - kpi_small.cpu()) / (pages - SMALL_PAGES) * 1000
    checks = [
        Check(
            f"kpi run wall ({pages} pages, concurrency {concurrency})", fmt_s(kpi.wall()), "", None
        ),
        Check("kpi run wall, config cache off", fmt_s(cold.wall()), "", None),
        Check("floor wall (aiohttp+selectolax)", fmt_s(floor.wall()), "", None),
        Check("Scrapy wall", fmt_s(scrapy.wall()), "", None),
        Check(
            "kpi / floor wall",
            f"{kpi_vs_floor:.2f}x",
            f"<= {vs_floor}x",
            kpi_vs_floor <= vs_floor,
        ),
        Check(
            "Scrapy / kpi wall",
            f"{scrapy_vs_kpi:.2f}x",
            f">= {SCRAPY_VS_KPI}x" if latency else "",
            scrapy_vs_kpi >= SCRAPY_VS_KPI if latency else None,
        ),
        Check(
            "kpi CPU per page (whole process)",
            f"{cpu_ms:.2f} ms",
            f"<= {KPI_CPU_MS_PER_PAGE} ms",
            cpu_ms <= KPI_CPU_MS_PER_PAGE,
        ),
        Check(
            f"kpi CPU per further page (beyond a {SMALL_PAGES}-page run)",
            f"{marginal_cpu_ms:.2f} ms",
            "",
            None,
        ),
        Check(
            f"kpi fixed cost ({SMALL_PAGES}-page run): wall / CPU",
            f"{fmt_s(kpi_small.wall())} / {fmt_s(kpi_small.cpu())}",
            "",
            None,
        ),
        Check(
            "kpi / floor wall, config cache off",
            f"{cold.wall() / floor.wall():.2f}x",
            "",
            None,
        ),
        Check(
            "from the start to the first request: kpi / kpi cache off / floor / Scrapy",
            " / ".join(fmt_s(median(v.to_first)) for v in (kpi, cold, floor, scrapy)),
            "",
            None,
        ),
        Check(
            "from the first request to the last answer: kpi / floor / Scrapy",
            " / ".join(fmt_s(median(v.fetching)) for v in (kpi, floor, scrapy)),
            "",
            None,
        ),
        Check(
            f"least possible first request to last answer ({pages} × {latency * 1000:g} ms,"
            f" {concurrency} at a time)",
            fmt_s(math.ceil(pages / concurrency) * latency),
            "",
            None,
        ),
        Check(
            "kpi peak RSS",
            f"{kpi.rss():.0f} MB",
            f"< {KPI_PEAK_MB:.0f} MB",
            kpi.rss() < KPI_PEAK_MB,
        ),
        Check(
            "floor CPU per page / peak RSS",
            f"{floor.cpu() / pages * 1000:.2f} ms / {floor.rss():.0f} MB",
            "",
            None,
        ),
        Check(
            "Scrapy CPU per page / peak RSS",
            f"{scrapy.cpu() / pages * 1000:.2f} ms / {scrapy.rss():.0f} MB",
            "",
            None,
        ),
        Check(
            f"requests+bs4 per page (sequential, sampled {sample} pages)",
            f"{per_page_ms:.0f} ms",
            "",
            None,
        ),
        Check(
            f"same link total in every variant ({expected})",
            "yes" if counts_ok else "NO",
            "equal",
            counts_ok,
        ),
    ]
    notes = [
        f"{v.name}: wall {', '.join(f'{r.wall_s:.2f}' for r in v.runs)} s; "
        f"CPU {', '.join(f'{r.cpu_s:.2f}' for r in v.runs)} s; "
        f"peak RSS {', '.join(f'{r.max_rss_mb:.0f}' for r in v.runs)} MB; totals {v.totals}"
        for v in (kpi, cold, floor, scrapy, kpi_small)
    ]
    notes.append(
        f"requests+bs4: {sample} pages in {float(seed['wall_s']):.2f} s "
        f"-> {per_page_ms:.0f} ms per page, about {per_page_ms * pages / 1000:.0f} s for {pages}"
    )
    command = (
        f"python benchmarks/bench_fanin.py --pages {pages} --runs {runs}"
        f" --concurrency {concurrency} --sample {sample} --latency {latency:g}"
    )
    title = f"Fan-in: {pages} html sources, {latency * 1000:g} ms latency"
    return Report(title, command, checks, notes)


def server_timeline(server: PageServer) -> dict[str, Any]:
    """The page server's first-request and last-answer times since the last call (and reset)."""
    with urllib.request.urlopen(f"{server.base_url}/timeline", timeout=10) as answer:
        timeline: dict[str, Any] = json.load(answer)
    return timeline


def run_baseline_sampled(server: PageServer, sample: int) -> tuple[ProcessRun, int]:
    argv = [PYTHON, str(BENCH_DIR / "baseline_requests_bs4.py"), server.base_url]
    argv += [str(server.pages), "1", "--sample", str(sample)]
    run = measure(argv)
    if run.returncode != 0:
        raise RuntimeError(
            f"baseline_requests_bs4.py exited {run.returncode}:\n{run.stderr[-2000:]}"
        )
    return run, int(run.json_line()["total"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--sample", type=int, default=20, help="pages for requests+bs4")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per page answer")
    args = parser.parse_args(argv)
    report = run_benchmark(args.pages, args.runs, args.concurrency, args.sample, args.latency)
    print_report(report)
    print(f"  command: {report.command}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
