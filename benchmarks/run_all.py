"""Run every benchmark and write benchmarks/RESULTS.md (what `make bench` calls).

Usage: ``python benchmarks/run_all.py [--pages 1000] [--runs 3] [--cli-runs 10] [--dashboard-runs 15] [--hostile-timeout 10] [--render-runs 3] [--scale-sources 10000] [--scale-runs 3] [--check]``
With ``--check`` the exit status is 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import bench_cli
import bench_dashboard
import bench_extract
import bench_fanin
import bench_hostile
import bench_instructions
import bench_render
import bench_scale
import bench_startup
from benchlib import BENCH_DIR, Check, Report, machine_info, print_checks


def render(reports: list[Report], command: str, info: dict[str, str]) -> str:
    load_now = machine_info()["loadavg"]
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{command}` on {info['date']}.",
        "",
        f"- Machine: {info['nproc']} CPUs ({info['cpu']}), {info['platform']}",
        f"- Python {info['python']}",
        f"- Load average (1, 5, 15 min) at start: {info['loadavg']}; at the end: {load_now}"
        " (other work on the machine skews the numbers; rerun on a quiet machine)",
        "- Wall time with `time.perf_counter`, CPU time (user + sys) and peak RSS of each"
        " child process with `os.wait4`; medians over the runs.",
        "",
    ]
    for report in reports:
        lines += [
            f"## {report.title}",
            "",
            f"`{report.command}`",
            "",
            "| measure | median | target | result |",
            "|---|---:|---|---|",
        ]
        lines += [
            f"| {c.what} | {c.measured} | {c.target or '-'} | {c.verdict} |" for c in report.checks
        ]
        if report.notes:
            lines.append("")
            lines += [f"- {note}" for note in report.notes]
        lines.append("")
    return "\n".join(lines)


def guarded(title: str, command: str, run: Callable[[], Report]) -> Report:
    """A benchmark that crashes becomes a failed row, and the others still run."""
    try:
        return run()
    except Exception as exc:
        traceback.print_exc()
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        error = f"{type(exc).__name__}: {first_line}".replace("|", "\\|")
        return Report(title, command, [Check("benchmark ran", "error", "runs", False)], [error])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--cli-runs", type=int, default=10)
    parser.add_argument("--dashboard-runs", type=int, default=15)
    parser.add_argument("--hostile-timeout", type=float, default=10.0)
    parser.add_argument("--scale-sources", type=int, default=10_000)
    parser.add_argument("--scale-runs", type=int, default=3)
    parser.add_argument("--render-runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "RESULTS.md")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    args = parser.parse_args(argv)
    command = "python benchmarks/run_all.py " + " ".join(sys.argv[1:] if argv is None else argv)
    info = machine_info()
    reports = [
        guarded(
            "Fan-in",
            "python benchmarks/bench_fanin.py",
            lambda: bench_fanin.run_benchmark(args.pages, args.runs, args.concurrency, 20),
        ),
        guarded(
            "Fan-in, 0 ms latency",
            "python benchmarks/bench_fanin.py --latency 0",
            lambda: bench_fanin.run_benchmark(args.pages, args.runs, args.concurrency, 20, 0.0),
        ),
        guarded(
            "Start-up timeline",
            "python benchmarks/bench_startup.py",
            lambda: bench_startup.run_benchmark(args.pages, 7),
        ),
        guarded(
            "Extraction",
            "python benchmarks/bench_extract.py",
            lambda: bench_extract.run_benchmark(page=1, repeat=7),
        ),
        guarded(
            "CLI start-up",
            "python benchmarks/bench_cli.py",
            lambda: bench_cli.run_benchmark(args.cli_runs),
        ),
        guarded(
            "Dashboard",
            "python benchmarks/bench_dashboard.py",
            lambda: bench_dashboard.run_benchmark(args.dashboard_runs),
        ),
        guarded(
            "Hostile sources",
            "python benchmarks/bench_hostile.py",
            lambda: bench_hostile.run_benchmark(args.hostile_timeout),
        ),
        guarded(
            "Rendering and probe",
            "python benchmarks/bench_render.py",
            lambda: bench_render.run_benchmark(args.render_runs),
        ),
        guarded(
            "Scale-out",
            "python benchmarks/bench_scale.py",
            lambda: bench_scale.run_benchmark(args.scale_sources, args.scale_runs, [16, 64]),
        ),
    ]
    if shutil.which("valgrind") is not None:  # instructions: the same however busy the machine
        reports.insert(
            3,
            guarded(
                "Instructions (callgrind)",
                "python benchmarks/bench_instructions.py --imports",
                lambda: bench_instructions.run_benchmark(args.pages, imports=True),
            ),
        )
    for report in reports:
        print_checks(report.title, report.checks)
    args.out.write_text(render(reports, command.strip(), info))
    print(f"\nwrote {args.out}")
    failed = any(r.failed for r in reports)
    return 1 if failed and args.check else 0


if __name__ == "__main__":
    sys.exit(main())
