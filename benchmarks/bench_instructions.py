"""Instructions, not seconds: `kpi run` and the floor counted by valgrind's callgrind.

Wall times on a shared 2-core machine drift by a fifth within minutes; the number of
instructions a process executes does not depend on what else runs (valgrind's callgrind
counts them, each child process included). Starts the local page server (0 ms latency),
writes kpi.yaml files of ``--pages`` html sources and of one source, runs ``kpi run
--no-deliver`` on each once to write its config cache (as a scheduled run finds it), then
counts the instructions of kpi and of the floor (aiohttp + selectolax) for ``--pages``
pages and for one page. Their difference splits each into a fixed part (start-up and
exit: imports, config, store) and a part per page, and kpi's part against the floor's
says where the gap is. ``--imports`` also counts what importing click, pydantic and kpi's
run modules costs on top of the floor's imports. Counts vary by well under 1 % between
runs (asyncio's loop turns depend on timing), so one run of each is enough.

Needs ``valgrind`` on PATH. Usage: ``python benchmarks/bench_instructions.py [--pages 1000]
[--imports]``
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchlib import (
    BENCH_DIR,
    KPI,
    PYTHON,
    Check,
    Report,
    child_env,
    page_server,
    print_report,
    write_html_config,
)

FLOOR = str(BENCH_DIR / "floor_aiohttp_selectolax.py")
KPI_VS_FLOOR = 1.2  # the 0 ms wall target of issue 16, read here as instructions

#: (label, modules imported on top of the floor's aiohttp and selectolax)
IMPORT_STEPS: tuple[tuple[str, str], ...] = (
    ("the floor's imports (aiohttp, selectolax)", "aiohttp, selectolax.lexbor"),
    ("+ click", "click"),
    (
        "+ kpi's plain config and html source (what a cached run reads)",
        "kpi_collector.config.plain, kpi_collector.sources.html",
    ),
    ("+ kpi's pipeline and CLI", "kpi_collector.pipeline, kpi_collector.cli"),
    ("+ pydantic and the config models (a run from YAML only)", "kpi_collector.config.models"),
)


def instructions(argv: Sequence[str], cwd: Path, cache_home: Path, out: Path) -> int:
    """Instructions `argv` executes, its children included (callgrind's `summary:` lines).
    Raises RuntimeError when it exits non-zero."""
    out.mkdir(parents=True, exist_ok=True)
    env = child_env()
    env["XDG_CACHE_HOME"] = str(cache_home)
    done = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--trace-children=yes",
            f"--callgrind-out-file={out}/callgrind.%p",
            *argv,
        ],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{argv[0]} under callgrind exited {done.returncode}: {done.stderr[-800:]}"
        )
    total = 0
    for file in out.glob("callgrind.*"):
        for line in file.read_text(errors="replace").splitlines():
            if line.startswith("summary:"):
                total += int(line.split()[1])
                break
    return total


def run_benchmark(pages: int, imports: bool = False) -> Report:
    with tempfile.TemporaryDirectory(prefix="kpi-instr-") as tmp, page_server(pages, 0.0) as server:
        root = Path(tmp)
        cache = root / "cache"
        env = child_env()
        env["XDG_CACHE_HOME"] = str(cache)
        counts: dict[tuple[str, int], int] = {}
        for n in (pages, 1):
            folder = root / f"kpi{n}"
            config = write_html_config(folder, server, n, store="sqlite:///kpi.db", concurrency=64)
            # the config cache written, the bytecode compiled: what a scheduled run meets
            argv = [KPI, "-c", str(config), "run", "--no-deliver"]
            subprocess.run(argv, cwd=folder, env=env, capture_output=True, check=True)
            counts["kpi", n] = instructions(argv, folder, cache, root / f"cg-kpi{n}")
            floor = [PYTHON, FLOOR, server.base_url, str(n), "64"]
            counts["floor", n] = instructions(floor, root, cache, root / f"cg-floor{n}")
        steps: list[tuple[str, int]] = []
        if imports:
            modules: list[str] = []
            for label, more in IMPORT_STEPS:
                modules.append(more)
                code = "import " + ", ".join(modules)
                steps.append(
                    (
                        label,
                        instructions([PYTHON, "-c", code], root, cache, root / f"cg-i{len(steps)}"),
                    )
                )

    def per_page(who: str) -> float:
        return (counts[who, pages] - counts[who, 1]) / max(pages - 1, 1)

    ratio = counts["kpi", pages] / counts["floor", pages]
    g = 1e9
    checks = [
        Check(
            f"kpi run, {pages:,} pages, 0 ms",
            f"{counts['kpi', pages] / g:.2f} G",
            "",
            None,
        ),
        Check(f"floor, {pages:,} pages, 0 ms", f"{counts['floor', pages] / g:.2f} G", "", None),
        Check(
            "kpi / floor, instructions",
            f"{ratio:.2f}x",
            f"<= {KPI_VS_FLOOR}x",
            ratio <= KPI_VS_FLOOR,
        ),
        Check(
            "fixed (one page): kpi / floor",
            f"{counts['kpi', 1] / g:.2f} / {counts['floor', 1] / g:.2f} G",
            "",
            None,
        ),
        Check(
            "per page: kpi / floor",
            f"{per_page('kpi') / 1e6:.2f} / {per_page('floor') / 1e6:.2f} M",
            "",
            None,
        ),
    ]
    notes = [
        "callgrind counts instructions of every process (`--trace-children=yes`); the fixed "
        "part is the one-page run, the part per page the difference spread over the other pages",
    ]
    previous = None
    for label, count in steps:
        more = "" if previous is None else f" (+{(count - previous) / 1e6:,.0f} M)"
        notes.append(f"import {label}: {count / 1e6:,.0f} M instructions{more}")
        previous = count
    command = f"python benchmarks/bench_instructions.py --pages {pages}" + (
        " --imports" if imports else ""
    )
    return Report("Instructions (callgrind)", command, checks, notes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--imports", action="store_true", help="also count the imports' steps")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (Debian: apt-get install valgrind)", file=sys.stderr)
        return 2
    report = run_benchmark(args.pages, args.imports)
    print_report(report)
    print(f"  command: {report.command}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
