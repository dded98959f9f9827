"""Growth benchmark: how `kpi run --no-deliver` grows with the number of `html` sources.

For each size (default 1,000, 10,000 and 50,000 sources) it writes a kpi.yaml whose source i
reads page ((i - 1) mod 1000) + 1 of the local page server (100 ms per answer, ~80 KB), then
runs `kpi run --no-deliver` as a child process, alternating two passes: the config read
from the config cache (as a scheduled run finds it; an untimed run first writes the cache)
and parsed from YAML (`KPI_CONFIG_CACHE=0`). Each run is measured for wall time, CPU time
(user + sys) and peak RSS (`os.wait4`), and must store one value per source whose sum is
the pages' known link total (read back from the SQLite store).

The "after collection" share is the part of the wall time from the moment the run's
collecting ended (`runs.finished_at`, taken before the store's writes) to the process's
exit: the store's writes of observations and errors, the previous values and the exit; an
upper bound on the store's share.

Usage: ``python benchmarks/bench_growth.py [--sources 1000 10000 50000] [--runs 1]
[--concurrency 64] [--latency 0.1]``
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

from benchlib import (
    KPI,
    PageServer,
    ProcessRun,
    measure_kpi_run,
    median,
    page_server,
    write_html_config,
)
from htmlserver import expected_links

PAGES = 1000  # distinct pages the server holds


def write_config(folder: Path, server: PageServer, sources: int, concurrency: int) -> Path:
    """A kpi.yaml of `sources` html sources with its SQLite store `kpi.db` beside it."""
    store = f"sqlite:///{folder / 'kpi.db'}"
    return write_html_config(
        folder, server, sources, store=store, concurrency=concurrency, timeout=60
    )


def expected_sum(sources: int) -> int:
    return sum(expected_links((i - 1) % PAGES + 1) for i in range(1, sources + 1))


def run_kpi(config: Path, *, cache: bool, kpi: str = KPI) -> tuple[ProcessRun, float, int, int]:
    """One measured `kpi run --no-deliver`: the run, its after-collection share, and the
    count and sum of the values it stored."""
    run = measure_kpi_run(config, cache_home=config.parent / "cache", config_cache=cache, kpi=kpi)
    with sqlite3.connect(f"file:{config.parent / 'kpi.db'}?mode=ro", uri=True) as conn:
        run_id, finished = conn.execute(
            "SELECT id, finished_at FROM runs ORDER BY id DESC"
        ).fetchone()
        count, total = conn.execute(
            "SELECT count(*), coalesce(sum(value), 0) FROM observations WHERE run_id = ?",
            (run_id,),
        ).fetchone()
    return run, (run.started_at + run.wall_s - finished) / run.wall_s, int(count), round(total)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sources", type=int, nargs="+", default=[1000, 10_000, 50_000])
    parser.add_argument("--runs", type=int, default=1, help="pairs of passes per size")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per page answer")
    parser.add_argument("--kpi", default=KPI, help="the kpi executable (another checkout's)")
    args = parser.parse_args(argv)
    rows = []
    with (
        page_server(PAGES, args.latency) as server,
        tempfile.TemporaryDirectory(prefix="kpi-growth-") as tmp,
    ):
        for n in args.sources:
            config = write_config(Path(tmp) / f"n{n}", server, n, args.concurrency)
            run_kpi(config, cache=True, kpi=args.kpi)  # untimed: writes the config cache
            passes: dict[str, list[tuple[ProcessRun, float]]] = {"cache": [], "yaml": []}
            for _ in range(args.runs):
                for name in passes:
                    run, share, count, total = run_kpi(config, cache=name == "cache", kpi=args.kpi)
                    if (count, total) != (n, expected_sum(n)):
                        raise RuntimeError(
                            f"{n} sources, {name}: stored {count} values, sum {total}"
                        )
                    passes[name].append((run, share))
                    print(
                        f"{n} {name}: wall {run.wall_s:.2f} s cpu {run.cpu_s:.2f} s"
                        f" rss {run.max_rss_mb:.0f} MB after collection {share:.1%}",
                        file=sys.stderr,
                        flush=True,
                    )
            rows.append((n, passes))
    print(
        f"`kpi run --no-deliver`, html sources, {args.latency * 1000:.0f} ms latency,"
        f" c{args.concurrency}, {args.runs} pair(s) per size, medians; load average"
        f" {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n"
    )
    print("| sources | wall | CPU | peak RSS (cache / YAML) | after collection |")
    print("|---:|---:|---:|---:|---:|")
    for n, passes in rows:
        every = passes["cache"] + passes["yaml"]
        walls = [r.wall_s for r, _ in every]
        cpus = [r.cpu_s for r, _ in every]
        shares = [s for _, s in every]
        rss = [median([r.max_rss_mb for r, _ in passes[k]]) for k in ("cache", "yaml")]
        print(
            f"| {n:,} | {min(walls):.1f}–{max(walls):.1f} s | {min(cpus):.1f}–{max(cpus):.1f} s"
            f" | {rss[0]:.0f} / {rss[1]:.0f} MB | {min(shares):.1%}–{max(shares):.1%} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
