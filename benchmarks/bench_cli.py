"""CLI start-up benchmark: `kpi --help` and `kpi validate` on a 50-source config.

Both run as child processes, as a user runs them; the median of N runs is reported.

Usage: ``python benchmarks/bench_cli.py [--runs 10]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from benchlib import KPI, Check, Report, fmt_s, measure, median, print_report

HELP_TARGET_S = 0.25
VALIDATE_TARGET_S = 0.5
SOURCES = 50


def write_config(directory: Path) -> Path:
    """50 sources of the kinds a real config mixes; none is contacted by validate."""
    lines = [
        f"store: sqlite:///{directory / 'kpi.db'}",
        "timezone: Europe/Berlin",
        "defaults: {timeout: 20, retries: 2, concurrency: 64, per_host: 8}",
        "sources:",
    ]
    for i in range(SOURCES):
        match i % 3:
            case 0:
                lines.append(
                    f"  - {{name: blog{i}, type: html, url: http://127.0.0.1:9/blog/{i},"
                    ' metrics: {posts: {css: "a.anthrazit", count: true}}}'
                )
            case 1:
                lines.append(
                    f"  - {{name: api{i}, type: http_json, url: http://127.0.0.1:9/api/{i},"
                    " metrics: {customers: data.customers.paying}}"
                )
            case _:
                lines.append(
                    f"  - {{name: page{i}, type: html, url: http://127.0.0.1:9/stats/{i},"
                    ' metrics: {downloads: {css: "#total-downloads", expect: {min: 0}}}}'
                )
    path = directory / "kpi.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def median_wall_and_cpu(argv: list[str], runs: int, cwd: Path) -> tuple[float, float]:
    walls, cpus = [], []
    for _ in range(runs):
        run = measure(argv, cwd=cwd)
        if run.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited {run.returncode}:\n{run.stderr[-2000:]}")
        walls.append(run.wall_s)
        cpus.append(run.cpu_s)
    return median(walls), median(cpus)


def run_benchmark(runs: int) -> Report:
    with tempfile.TemporaryDirectory(prefix="kpi-bench-cli-") as tmp:
        config = write_config(Path(tmp))
        # One untimed run of each fills the bytecode caches a user's second call would have.
        help_argv = [KPI, "--help"]
        validate_argv = [KPI, "-c", str(config), "validate"]
        median_wall_and_cpu(help_argv, 1, Path(tmp))
        median_wall_and_cpu(validate_argv, 1, Path(tmp))
        help_s, help_cpu = median_wall_and_cpu(help_argv, runs, Path(tmp))
        validate_s, validate_cpu = median_wall_and_cpu(validate_argv, runs, Path(tmp))
    checks = [
        Check("kpi --help", fmt_s(help_s), f"< {fmt_s(HELP_TARGET_S)}", help_s < HELP_TARGET_S),
        Check(
            f"kpi validate ({SOURCES} sources)",
            fmt_s(validate_s),
            f"< {fmt_s(VALIDATE_TARGET_S)}",
            validate_s < VALIDATE_TARGET_S,
        ),
    ]
    notes = [
        f"wall time of the whole process, median of {runs} runs after one warm-up",
        f"CPU time (user + sys): kpi --help {fmt_s(help_cpu)}, kpi validate {fmt_s(validate_cpu)}"
        " (less sensitive than wall time to other work on the machine)",
    ]
    return Report("CLI start-up", f"python benchmarks/bench_cli.py --runs {runs}", checks, notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args(argv)
    report = run_benchmark(args.runs)
    print_report(report)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
