"""Where `kpi run` spends its start: a timeline from the process start to its first request.

Starts the local page server (0 ms latency), writes a kpi.yaml of ``--pages`` html sources,
runs ``kpi run --no-deliver`` once to write its config cache (as a scheduled run finds it),
then ``--runs`` times each: ``kpi run`` and the floor (aiohttp + selectolax), both under an
audit hook (PEP 578) that notes the moment each milestone module is first imported, the
cached config starts unpickling, and the first socket connects. Prints the median moment of
each milestone, milliseconds from the interpreter's start of the script, and the floor's
first connect beside kpi's. The audit hook itself adds a little to every import: read the
steps as shares, and the first-request times of `bench_fanin.py` (taken by the server,
without the hook) as the figures.

Usage: ``python benchmarks/bench_startup.py [--pages 1000] [--runs 7]``
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchlib import (
    BENCH_DIR,
    PYTHON,
    Check,
    Report,
    child_env,
    median,
    page_server,
    print_report,
    write_html_config,
)

#: the modules whose first import marks a step, in the order a run meets them
MILESTONES = (
    "click",
    "kpi_collector.pipeline",
    "pydantic",  # a cached config of html sources imports none: absent from kpi's timeline
    "kpi_collector.run.engine",
    "kpi_collector.config.cache",
    "aiohttp",
    "selectolax.lexbor",
)

_HOOK = """
import sys, time
_t0 = time.perf_counter()
_marks = {}
_wanted = set(%(milestones)r)
def _hook(event, args):
    if event == "import" and args[0] in _wanted and args[0] not in _marks:
        _marks[args[0]] = time.perf_counter() - _t0
    elif event == "pickle.find_class" and "unpickling the cached config" not in _marks:
        _marks["unpickling the cached config"] = time.perf_counter() - _t0
    elif event == "socket.connect" and "first request (connect)" not in _marks:
        _marks["first request (connect)"] = time.perf_counter() - _t0
        import json, os
        os.write(%(fd)d, (json.dumps(_marks) + "\\n").encode())
sys.addaudithook(_hook)
sys.argv = %(argv)r
"""


def timeline(script: Path, argv: list[str], cwd: Path) -> dict[str, float]:
    """Run `script` with `argv` under the audit hook; its milestones in seconds."""
    import os

    read, write = os.pipe()
    code = _HOOK % {"milestones": MILESTONES, "fd": write, "argv": [str(script), *argv]}
    code += f"import runpy\nrunpy.run_path({str(script)!r}, run_name='__main__')\n"
    proc = subprocess.run(
        [PYTHON, "-c", code],
        cwd=cwd,
        env=child_env(),
        pass_fds=(write,),
        capture_output=True,
        text=True,
    )
    os.close(write)
    with os.fdopen(read) as lines:
        line = lines.readline()
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"{script.name} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return {name: float(seconds) for name, seconds in json.loads(line).items()}


def run_benchmark(pages: int = 1000, runs: int = 7) -> Report:
    """The median moment of each milestone of `kpi run` and of the floor, and the gap between
    their first requests (target: at most 100 ms, issue 16)."""
    import os

    kpi_main = Path(PYTHON).parent / "kpi"
    floor = BENCH_DIR / "floor_aiohttp_selectolax.py"
    with tempfile.TemporaryDirectory() as tmp, page_server(pages, delay=0.0) as server:
        folder = Path(tmp)
        config = write_html_config(
            folder, server, pages, store=f"sqlite:///{folder / 'kpi.db'}", concurrency=64
        )
        kpi_argv = ["-c", str(config), "run", "--no-deliver"]
        cache_was = os.environ.get("XDG_CACHE_HOME")
        os.environ["XDG_CACHE_HOME"] = str(folder / "cache")  # children get it (child_env)
        try:  # the first run writes the config cache a scheduled run finds
            subprocess.run([str(kpi_main), *kpi_argv], cwd=folder, check=True, capture_output=True)
            kpi_runs, floor_runs = [], []
            for _ in range(runs):
                kpi_runs.append(timeline(kpi_main, kpi_argv, folder))
                floor_runs.append(timeline(floor, [server.base_url, str(pages), "64"], folder))
        finally:
            if cache_was is None:
                os.environ.pop("XDG_CACHE_HOME", None)
            else:
                os.environ["XDG_CACHE_HOME"] = cache_was

    def moments(of: list[dict[str, float]]) -> list[tuple[str, float]]:
        names = {name for run in of for name in run}
        found = [(n, median([r[n] for r in of if n in r])) for n in names]
        return sorted(found, key=lambda item: item[1])

    first = "first request (connect)"
    checks = [Check(f"kpi: {n}", f"{t * 1000:.0f} ms", "", None) for n, t in moments(kpi_runs)]
    checks += [Check(f"floor: {n}", f"{t * 1000:.0f} ms", "", None) for n, t in moments(floor_runs)]
    gap = median([r[first] for r in kpi_runs]) - median([r[first] for r in floor_runs])
    checks.append(
        Check(
            "kpi's first request after the floor's", f"{gap * 1000:.0f} ms", "<= 100 ms", gap <= 0.1
        )
    )
    return Report(
        f"Start-up timeline: {pages} html sources, from the process start (medians of {runs})",
        f"python benchmarks/bench_startup.py --pages {pages} --runs {runs}",
        checks,
        [
            "milestones: the first import of a module, the cached config's unpickling, the first "
            "socket connect (audit hooks, PEP 578; they add a little to every import)"
        ],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    report = run_benchmark(args.pages, args.runs)
    print_report(report)
    print(f"  command: {report.command}")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
